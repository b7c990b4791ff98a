//! The cluster as it was at one revision, and what the Rollout's spec says carries traffic in it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Change, Kind};
use crate::fixtures::HASH_LABEL;

/// What the Rollout says routes traffic (read from its spec at each revision).
pub(super) struct Routing {
    pub(super) canary_service: Option<String>,
    pub(super) stable_service: Option<String>,
    pub(super) virtual_services: Vec<(String, Vec<String>)>,
    /// DestinationRule name, canary subset, stable subset.
    pub(super) destination_rule: Option<(String, String, String)>,
    pub(super) managed_routes: Vec<String>,
}

impl Routing {
    pub(super) fn is_canary(&self, destination: &Value) -> bool {
        match (&self.destination_rule, destination.get("subset")) {
            (Some((_, canary, _)), Some(subset)) => subset.as_str() == Some(canary.as_str()),
            _ => {
                destination
                    .get("host")
                    .and_then(Value::as_str)
                    .map(short_host)
                    == self.canary_service.as_deref()
            }
        }
    }
}

/// What a blue-green Rollout says about its Services, read from its spec and status at each
/// revision (the monitor is told nothing up front, so a scenario cannot misconfigure it).
pub(super) struct BlueGreen {
    pub(super) active_service: String,
    /// `spec.replicas`: what "fully available" means.
    pub(super) replicas: i64,
    /// `status.stableRS`.
    pub(super) stable: Option<String>,
    /// A post-promotion analysis run is Pending or Running.
    pub(super) post_promotion_running: bool,
}

pub(super) struct World {
    namespace: String,
    objects: BTreeMap<(Kind, String), Value>,
    /// For each Service, the pod-template hash its selector named before its latest change of
    /// hash: where a rollback of the active Service would go.
    prior_hashes: BTreeMap<String, String>,
}

impl World {
    pub(super) fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            objects: BTreeMap::new(),
            prior_hashes: BTreeMap::new(),
        }
    }

    pub(super) fn get(&self, kind: Kind, name: &str) -> Option<&Value> {
        self.objects.get(&(kind, name.to_owned()))
    }

    pub(super) fn apply(&mut self, change: &Change) {
        let key = (change.kind, change.name.clone());
        if change.kind == Kind::Service {
            let before = self.service_hash(&change.name).map(str::to_owned);
            let after = change.object.as_ref().and_then(selector_hash);
            if let Some(before) = before.filter(|b| after != Some(b.as_str())) {
                self.prior_hashes.insert(change.name.clone(), before);
            }
        }
        match &change.object {
            Some(object) => self.objects.insert(key, object.clone()),
            None => self.objects.remove(&key),
        };
    }

    pub(super) fn rollout(&self) -> Option<&Value> {
        self.objects
            .iter()
            .find(|((kind, _), _)| *kind == Kind::Rollout)
            .map(|(_, o)| o)
    }

    pub(super) fn routing(&self) -> Option<Routing> {
        let canary = self.rollout()?.pointer("/spec/strategy/canary")?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let istio = canary.pointer("/trafficRouting/istio")?;
        let mut virtual_services = Vec::new();
        let listed = istio.get("virtualService").into_iter().chain(
            istio
                .get("virtualServices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
        for vs in listed {
            let routes = vs
                .get("routes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| text(Some(r)))
                .collect();
            virtual_services.push((text(vs.get("name"))?, routes));
        }
        let destination_rule = istio.get("destinationRule").and_then(|dr| {
            Some((
                text(dr.get("name"))?,
                text(dr.get("canarySubsetName"))?,
                text(dr.get("stableSubsetName"))?,
            ))
        });
        let managed_routes = canary
            .pointer("/trafficRouting/managedRoutes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| text(r.get("name")))
            .collect();
        Some(Routing {
            canary_service: text(canary.get("canaryService")),
            stable_service: text(canary.get("stableService")),
            virtual_services,
            destination_rule,
            managed_routes,
        })
    }

    /// The blue-green strategy of the Rollout, when it has one.
    pub(super) fn blue_green(&self) -> Option<BlueGreen> {
        let rollout = self.rollout()?;
        let strategy = rollout.pointer("/spec/strategy/blueGreen")?;
        let post_phase = rollout
            .pointer("/status/blueGreen/postPromotionAnalysisRunStatus/status")
            .and_then(Value::as_str);
        Some(BlueGreen {
            active_service: strategy.get("activeService")?.as_str()?.to_owned(),
            // The API server defaults `replicas` to 1, as for a Deployment.
            replicas: rollout
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            stable: rollout
                .pointer("/status/stableRS")
                .and_then(Value::as_str)
                .map(str::to_owned),
            post_promotion_running: matches!(post_phase, Some("Pending" | "Running")),
        })
    }

    /// The pod-template hash in the selector of the Service `name`.
    pub(super) fn service_hash(&self, name: &str) -> Option<&str> {
        selector_hash(self.get(Kind::Service, name)?)
    }

    /// The hash the Service `name` selected before its latest change of hash.
    pub(super) fn prior_hash(&self, name: &str) -> Option<&str> {
        self.prior_hashes.get(name).map(String::as_str)
    }

    /// The ReplicaSet of pod-template hash `hash`, as last observed.
    pub(super) fn replica_set(&self, hash: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|((kind, _), o)| *kind == Kind::ReplicaSet && label(o, HASH_LABEL) == Some(hash))
            .map(|(_, o)| o)
    }

    /// `(currentStepIndex, the setWeight in force there)`, when the status names a step.
    pub(super) fn step_weight_bound(&self) -> Option<(i64, i64)> {
        let rollout = self.rollout()?;
        let index = rollout.pointer("/status/currentStepIndex")?.as_i64()?;
        let steps = rollout.pointer("/spec/strategy/canary/steps")?.as_array()?;
        let upto = usize::try_from(index)
            .ok()?
            .min(steps.len().saturating_sub(1));
        let weight = steps
            .iter()
            .take(upto + 1)
            .filter_map(|s| s.get("setWeight")?.as_i64())
            .next_back()
            .unwrap_or(0);
        Some((index, weight))
    }

    /// The canary weight of the first VirtualService's first selected route.
    pub(super) fn canary_weight(&self) -> Option<i64> {
        let routing = self.routing()?;
        let (name, routes) = routing.virtual_services.first()?;
        let vs = self.get(Kind::VirtualService, name)?;
        let route = *selected_routes(vs, routes, &routing.managed_routes).first()?;
        let entries = entries(route);
        let canary: Vec<i64> = entries
            .iter()
            .filter(|(d, _)| routing.is_canary(d))
            .map(|(_, w)| *w)
            .collect();
        (!canary.is_empty()).then(|| canary.iter().sum())
    }

    /// Every (description, pod-template hash) that receives traffic through `vs`: weighted
    /// destinations of the selected and managed routes, and their mirrors.
    pub(super) fn traffic_destinations(
        &self,
        vs: &Value,
        routing: &Routing,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let http = vs
            .pointer("/spec/http")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut routes: Vec<&Value> =
            selected_routes(vs, &self.route_names(vs, routing), &routing.managed_routes);
        routes.extend(http.iter().filter(|r| {
            routing
                .managed_routes
                .iter()
                .any(|m| Some(m.as_str()) == r.get("name").and_then(Value::as_str))
        }));
        for route in routes {
            let name = route_name(route);
            for (destination, weight) in entries(route) {
                if weight <= 0 {
                    continue;
                }
                if let Some(hash) = self.resolve(&destination, routing) {
                    out.push((
                        format!("route {name} (weight {weight} to {destination})"),
                        hash,
                    ));
                }
            }
            if let Some(mirror) = route.get("mirror")
                && let Some(hash) = self.resolve(mirror, routing)
            {
                out.push((format!("the mirror of route {name} ({mirror})"), hash));
            }
        }
        out
    }

    fn route_names(&self, vs: &Value, routing: &Routing) -> Vec<String> {
        let name = vs.pointer("/metadata/name").and_then(Value::as_str);
        routing
            .virtual_services
            .iter()
            .find(|(n, _)| Some(n.as_str()) == name)
            .map(|(_, routes)| routes.clone())
            .unwrap_or_default()
    }

    /// The pod-template hash a destination reaches, when Sluice has pinned one.
    fn resolve(&self, destination: &Value, routing: &Routing) -> Option<String> {
        if let (Some((dr_name, _, _)), Some(subset)) = (
            &routing.destination_rule,
            destination.get("subset").and_then(Value::as_str),
        ) {
            let dr = self.get(Kind::DestinationRule, dr_name)?;
            let subsets = dr.pointer("/spec/subsets")?.as_array()?;
            let subset = subsets
                .iter()
                .find(|s| s.get("name").and_then(Value::as_str) == Some(subset))?;
            return Some(
                subset
                    .pointer("/labels")?
                    .get(HASH_LABEL)?
                    .as_str()?
                    .to_owned(),
            );
        }
        let host = short_host(destination.get("host")?.as_str()?);
        let ours = [&routing.canary_service, &routing.stable_service]
            .iter()
            .any(|s| s.as_deref() == Some(host));
        if !ours || !self.is_local(destination.get("host")?.as_str()?) {
            return None;
        }
        let service = self.get(Kind::Service, host)?;
        let hash = service
            .pointer("/spec/selector")?
            .get(HASH_LABEL)?
            .as_str()?;
        Some(hash.to_owned())
    }

    fn is_local(&self, host: &str) -> bool {
        let rest = host.split_once('.').map(|(_, rest)| rest);
        match rest {
            None => true,
            Some(rest) => [
                self.namespace.clone(),
                format!("{}.svc", self.namespace),
                format!("{}.svc.cluster.local", self.namespace),
            ]
            .contains(&rest.to_owned()),
        }
    }

    /// `status.availableReplicas` summed over the ReplicaSets of `hash` (0 when there is none).
    pub(super) fn available(&self, hash: &str) -> i64 {
        self.objects
            .iter()
            .filter(|((kind, _), o)| {
                *kind == Kind::ReplicaSet && label(o, HASH_LABEL) == Some(hash)
            })
            .filter_map(|(_, o)| o.pointer("/status/availableReplicas")?.as_i64())
            .sum()
    }
}

/// The pod-template hash in a Service's selector.
pub(super) fn selector_hash(service: &Value) -> Option<&str> {
    service.pointer("/spec/selector")?.get(HASH_LABEL)?.as_str()
}

pub(super) fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/labels")?.get(key)?.as_str()
}

fn short_host(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

pub(super) fn route_name(route: &Value) -> &str {
    route
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
}

/// The routes whose weights Sluice sets: the named ones, or with no names every http route that
/// is not a managed one (the VirtualService then must have exactly one).
pub(super) fn selected_routes<'v>(
    vs: &'v Value,
    names: &[String],
    managed: &[String],
) -> Vec<&'v Value> {
    let http = vs
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    http.iter()
        .filter(|r| {
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            if names.is_empty() {
                !managed.iter().any(|m| m == name)
            } else {
                names.iter().any(|n| n == name)
            }
        })
        .collect()
}

/// `(destination, weight)` of each entry of an http route; a lone destination without a weight
/// takes all the traffic (Istio's rule).
pub(super) fn entries(route: &Value) -> Vec<(Value, i64)> {
    let list = route
        .get("route")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    list.iter()
        .map(|entry| {
            let destination = entry.get("destination").cloned().unwrap_or(Value::Null);
            let weight = entry
                .get("weight")
                .and_then(Value::as_i64)
                .unwrap_or(if list.len() == 1 { 100 } else { 0 });
            (destination, weight)
        })
        .collect()
}
