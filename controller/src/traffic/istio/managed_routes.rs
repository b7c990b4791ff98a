//! Header and mirror routes: the http routes Sluice owns, kept at the top of a VirtualService.
//!
//! Istio evaluates http routes in order, so a route that sends matching requests to the canary
//! only works above the user's catch-all route. Managed routes therefore sit at indices
//! `0..k`, in the order of `trafficRouting.managedRoutes` (Argo's order). Only routes whose name is
//! listed there are ever inserted, replaced or removed; every other route is left as it is.

use serde_json::{Map, Value, json};

use super::config::IstioConfig;
use super::json::{self, Guarded, Loc};
use super::routes::{SplitRoute, VirtualServiceView};
use crate::traffic::{
    DesiredTraffic, HeaderRoute, MirrorRoute, RequestMatch, StringMatch, TrafficError,
};

/// A managed route as it must appear in `spec.http`.
#[derive(Debug, PartialEq)]
pub(crate) struct RenderedRoute {
    pub name: String,
    pub value: Value,
}

/// The managed routes `desired` asks for, in `managedRoutes` order.
pub(crate) fn desired_routes(
    config: &IstioConfig,
    view: &VirtualServiceView,
    desired: &DesiredTraffic,
) -> Result<Vec<RenderedRoute>, TrafficError> {
    check_names(config, desired)?;
    let mut rendered = Vec::new();
    for name in &config.managed_routes {
        let header = desired
            .header_routes
            .iter()
            .find(|route| &route.name == name);
        let mirror = desired
            .mirror_routes
            .iter()
            .find(|route| &route.name == name);
        let value = match (header, mirror) {
            (Some(header), _) => header_route(header, first_http(view, name)?)?,
            (None, Some(mirror)) => {
                mirror_route(mirror, first_http(view, name)?, desired.canary_weight)?
            }
            (None, None) => continue,
        };
        rendered.push(RenderedRoute {
            name: name.clone(),
            value,
        });
    }
    Ok(rendered)
}

/// Every desired route must be listed in `managedRoutes`, once: otherwise Sluice could neither
/// place it nor ever remove it again.
fn check_names(config: &IstioConfig, desired: &DesiredTraffic) -> Result<(), TrafficError> {
    let names = desired
        .header_routes
        .iter()
        .map(|route| &route.name)
        .chain(desired.mirror_routes.iter().map(|route| &route.name));
    let mut seen = Vec::new();
    for name in names {
        if !config.is_managed(name) {
            return Err(TrafficError::InvalidReference(format!(
                "route \"{name}\" is not listed in trafficRouting.managedRoutes"
            )));
        }
        if seen.contains(&name) {
            return Err(TrafficError::InvalidReference(format!(
                "route \"{name}\" is requested twice (as header and mirror route)"
            )));
        }
        seen.push(name);
    }
    Ok(())
}

fn first_http<'a, 'v>(
    view: &'a VirtualServiceView<'v>,
    name: &str,
) -> Result<&'a SplitRoute<'v>, TrafficError> {
    view.first_http().ok_or_else(|| {
        TrafficError::InvalidReference(format!(
            "{} has no selected http route, so managed route \"{name}\" cannot be placed",
            view.label
        ))
    })
}

/// All matching requests to the canary destination of the first selected route (its host,
/// subset and port), so a header route reaches exactly the pods the weighted split calls canary.
fn header_route(route: &HeaderRoute, first: &SplitRoute) -> Result<Value, TrafficError> {
    if route.matches.is_empty() {
        return Err(no_match(&route.name));
    }
    // One match entry per header, as Argo Rollouts writes them: Istio ORs the entries, so a
    // request with any one of the headers reaches the canary.
    let matches: Vec<Value> = route
        .matches
        .iter()
        .map(|m| json!({ "headers": { m.header_name.clone(): string_match(&m.value) } }))
        .collect();
    Ok(json!({
        "name": route.name,
        "match": matches,
        "route": [{ "destination": canary_destination(first), "weight": 100 }],
    }))
}

/// Served by the same destinations and weights as the first selected route (Argo's behaviour,
/// so matching requests keep their normal split), with a copy of `percentage` % sent to canary.
fn mirror_route(
    route: &MirrorRoute,
    first: &SplitRoute,
    canary_weight: u8,
) -> Result<Value, TrafficError> {
    if route.matches.is_empty() || route.matches.iter().any(is_unconditional) {
        return Err(no_match(&route.name));
    }
    if route.percentage > 100 {
        return Err(TrafficError::InvalidReference(format!(
            "mirror route \"{}\" percentage {} is above 100",
            route.name, route.percentage
        )));
    }
    let matches: Vec<Value> = route.matches.iter().map(request_match).collect();
    Ok(json!({
        "name": route.name,
        "match": matches,
        "route": weighted_copy(first, canary_weight),
        "mirror": canary_destination(first),
        "mirrorPercentage": { "value": route.percentage },
    }))
}

/// A route without conditions would match every request: refused rather than guessed at.
fn no_match(name: &str) -> TrafficError {
    TrafficError::InvalidReference(format!(
        "managed route \"{name}\" has no match condition; it would catch all traffic"
    ))
}

fn is_unconditional(m: &RequestMatch) -> bool {
    m.method.is_none() && m.path.is_none() && m.headers.is_empty()
}

fn canary_destination(route: &SplitRoute) -> Value {
    route
        .canary
        .entry
        .get("destination")
        .cloned()
        .unwrap_or(Value::Null)
}

/// The first selected route's destinations, with the weights `canary_weight` gives them.
fn weighted_copy(first: &SplitRoute, canary_weight: u8) -> Vec<Value> {
    let stable_weight = 100 - canary_weight.min(100);
    let mut copy = Vec::new();
    for (index, entry) in first.entries.iter().enumerate() {
        let Some(destination) = entry.get("destination") else {
            continue;
        };
        let weight = if index == first.canary.index {
            Some(Value::from(canary_weight))
        } else if index == first.stable.index {
            Some(Value::from(stable_weight))
        } else {
            entry.get("weight").cloned()
        };
        let mut out = json!({ "destination": destination });
        if let (Some(weight), Some(object)) = (weight, out.as_object_mut()) {
            object.insert("weight".to_owned(), weight);
        }
        copy.push(out);
    }
    copy
}

fn string_match(value: &StringMatch) -> Value {
    match value {
        StringMatch::Exact(text) => json!({ "exact": text }),
        StringMatch::Prefix(text) => json!({ "prefix": text }),
        StringMatch::Regex(text) => json!({ "regex": text }),
    }
}

fn request_match(m: &RequestMatch) -> Value {
    let mut out = Map::new();
    if let Some(method) = &m.method {
        out.insert("method".to_owned(), string_match(method));
    }
    if let Some(path) = &m.path {
        out.insert("uri".to_owned(), string_match(path));
    }
    if !m.headers.is_empty() {
        let headers = m
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), string_match(value)));
        out.insert("headers".to_owned(), Value::Object(headers.collect()));
    }
    Value::Object(out)
}

/// Operations turning the current managed routes into `wanted`.
///
/// When the right routes already sit at the top in the right order, changed ones are replaced in
/// place (a mirror route's weights follow every weight step). Otherwise every managed route is
/// removed and the wanted ones are inserted at the top: simpler than a minimal edit script, and
/// it also repairs routes a user moved. Must run after the weight operations, whose indices refer
/// to the list as read.
pub(crate) fn render(
    view: &VirtualServiceView,
    wanted: &[RenderedRoute],
    http: &Loc,
    out: &mut Guarded,
) {
    let in_place = view.managed.len() == wanted.len()
        && view
            .managed
            .iter()
            .zip(wanted)
            .enumerate()
            .all(|(k, (current, wanted))| current.index == k && current.name == wanted.name);
    if in_place {
        for (current, wanted) in view.managed.iter().zip(wanted) {
            if *current.value != wanted.value {
                out.needs_resource_version();
                out.push(json::replace(
                    &http.index(current.index),
                    wanted.value.clone(),
                ));
            }
        }
        return;
    }
    out.needs_resource_version();
    for current in view.managed.iter().rev() {
        out.push(json::remove(&http.index(current.index)));
    }
    for (k, wanted) in wanted.iter().enumerate() {
        out.push(json::add(&http.index(k), wanted.value.clone()));
    }
}
