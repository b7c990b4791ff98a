//! Pure core for one VirtualService: render the guarded JSON patch that makes it show a
//! [`DesiredTraffic`], and read the traffic split back from it.
//!
//! Guarantees:
//! - The patch only touches `weight` of the canary and stable destinations of the selected
//!   `http`/`tls`/`tcp` routes, and the managed routes at the top of `spec.http`. Everything else
//!   the user (or their GitOps tool) wrote survives byte for byte; no list is ever replaced whole.
//! - Every write is preceded by `test` operations on what was read (route name, destination
//!   host or subset, old weight) or on `metadata.resourceVersion`, so applying the patch to an
//!   object someone changed in between fails instead of overwriting their edit.
//! - Rendering against an object that already matches returns an empty patch.
//! - Malformed objects give [`TrafficError::InvalidReference`] naming the object and JSON path.

use serde_json::Value;

use super::config::{IstioConfig, VirtualServiceRef};
use super::json::{self, Guarded};
use super::managed_routes;
use super::routes::{Destination, SplitRoute, VirtualServiceView};
use crate::traffic::{DesiredTraffic, TrafficError};

/// What one VirtualService shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServiceObservation {
    /// The canary weight when every selected route agrees on it (canary `w`, stable `100 - w`).
    pub canary_weight: Option<u8>,
    /// Managed routes present, in list order.
    pub managed_routes: Vec<String>,
}

/// `VirtualService namespace/name`: how the object is named in errors and events.
pub fn label(config: &IstioConfig, vs_ref: &VirtualServiceRef) -> String {
    let (namespace, name) = vs_ref.namespace_and_name(&config.namespace);
    format!("VirtualService {namespace}/{name}")
}

/// The JSON patch that makes `object` show `desired`; empty when it already does.
pub fn render(
    config: &IstioConfig,
    vs_ref: &VirtualServiceRef,
    object: &Value,
    desired: &DesiredTraffic,
) -> Result<json_patch::Patch, TrafficError> {
    let name = label(config, vs_ref);
    if desired.canary_weight > 100 {
        return Err(TrafficError::InvalidReference(format!(
            "desired canary weight {} for {name} is above 100",
            desired.canary_weight
        )));
    }
    let view = VirtualServiceView::parse(config, vs_ref, object, &name)?;
    let wanted_routes = managed_routes::desired_routes(config, &view, desired)?;
    let mut out = Guarded::default();
    for route in &view.split {
        set_weights(route, desired.canary_weight, &mut out);
    }
    let http = json::Loc::root(&name).key("spec").key("http");
    managed_routes::render(&view, &wanted_routes, &http, &mut out);
    Ok(out.finish(object))
}

/// Reads the split and the managed routes back from `object`.
pub fn observe(
    config: &IstioConfig,
    vs_ref: &VirtualServiceRef,
    object: &Value,
) -> Result<VirtualServiceObservation, TrafficError> {
    let name = label(config, vs_ref);
    let view = VirtualServiceView::parse(config, vs_ref, object, &name)?;
    let weights: Vec<Option<u8>> = view.split.iter().map(SplitRoute::canary_weight).collect();
    Ok(VirtualServiceObservation {
        canary_weight: agreed(&weights),
        managed_routes: view
            .managed
            .iter()
            .map(|route| route.name.to_owned())
            .collect(),
    })
}

/// Combines several VirtualServices: a weight only when all agree; managed routes when all
/// agree. When their managed routes differ (a partial write), the union is reported and the
/// weight is withheld, so the caller sees an unverified state and applies again.
pub fn combine(observations: &[VirtualServiceObservation]) -> VirtualServiceObservation {
    let weights: Vec<Option<u8>> = observations.iter().map(|o| o.canary_weight).collect();
    let mut managed_routes: Vec<String> = Vec::new();
    for name in observations.iter().flat_map(|o| &o.managed_routes) {
        if !managed_routes.contains(name) {
            managed_routes.push(name.clone());
        }
    }
    let routes_agree = observations
        .iter()
        .all(|o| o.managed_routes == managed_routes);
    VirtualServiceObservation {
        canary_weight: agreed(&weights).filter(|_| routes_agree),
        managed_routes,
    }
}

fn agreed(weights: &[Option<u8>]) -> Option<u8> {
    let first = (*weights.first()?)?;
    weights.iter().all(|w| *w == Some(first)).then_some(first)
}

fn set_weights(route: &SplitRoute, canary_weight: u8, out: &mut Guarded) {
    let changes = [
        (&route.canary, canary_weight),
        (&route.stable, 100 - canary_weight),
    ];
    let changes: Vec<_> = changes
        .into_iter()
        .filter(|(destination, wanted)| destination.effective_weight() != *wanted)
        .collect();
    if changes.is_empty() {
        return;
    }
    // Pin the route: if someone reordered the list, index i is no longer this route.
    if let Some(name) = route.name {
        out.push(json::test(&route.loc.key("name"), Value::from(name)));
    }
    for (destination, wanted) in changes {
        pin_destination(destination, out);
        let weight = destination.loc.key("weight");
        out.set_scalar(
            &weight,
            destination.entry.get("weight"),
            Some(Value::from(wanted)),
        );
    }
}

/// Tests the destination's host and subset: if entry j now points elsewhere, the write fails.
fn pin_destination(destination: &Destination, out: &mut Guarded) {
    let loc = destination.loc.key("destination");
    for key in ["host", "subset"] {
        if let Some(value) = destination.entry.pointer(&format!("/destination/{key}")) {
            out.push(json::test(&loc.key(key), value.clone()));
        }
    }
}
