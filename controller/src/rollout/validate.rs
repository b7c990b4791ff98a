//! The validate stage: turns a `Rollout` into the planner's [`ValidatedRollout`] once.
//!
//! The API server already rejects most bad manifests (schema bounds and CEL rules in the CRD).
//! This stage catches what a schema cannot (or what was stored before a rule existed), resolves
//! defaults the way Argo Rollouts does, and converts the API shapes into the planner's. Nothing
//! after this stage reads `rollout.spec` again. An error lists every problem found, each naming
//! the field, so the user fixes them all at once.

use std::time::Duration;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use sluice_crds::{
    BlueGreenStrategy, CanaryStep, CanaryStrategy, Rollout, Strategy as ApiStrategy,
};

use super::model::{BlueGreen, Canary, CanaryScale, Step, Strategy, ValidatedRollout};
use crate::replicaset::{Owner, template_hash};
use crate::traffic::istio::{
    DestinationRuleRef, IstioConfig, TcpRouteRef, TlsRouteRef, VirtualServiceRef,
};
use crate::traffic::{self, HeaderMatch, HeaderRoute, MirrorRoute, RequestMatch};

/// Argo Rollouts' defaults.
const DEFAULT_REVISION_HISTORY: usize = 10;
const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
const DEFAULT_SCALE_DOWN_DELAY: Duration = Duration::from_secs(30);

/// A Rollout ready for the pipeline: the planner's model plus what the I/O stages need.
#[derive(Clone, Debug)]
pub struct Validated {
    pub model: ValidatedRollout,
    pub istio: Option<IstioConfig>,
    pub owner: Owner,
    pub selector: LabelSelector,
    /// `status.selector` for the scale subresource (`app=web,tier=front`).
    pub selector_string: String,
    pub template: PodTemplateSpec,
    pub canary_service: Option<String>,
    pub stable_service: Option<String>,
}

/// Every problem found in a spec, each naming its field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid spec: {}", .0.join("; "))]
pub struct InvalidSpec(pub Vec<String>);

/// Validates and converts. See the module docs.
pub fn validate(rollout: &Rollout) -> Result<Validated, InvalidSpec> {
    let spec = &rollout.spec;
    let mut problems = Vec::new();
    let replicas = spec.replicas.map_or(1, i32::from);
    let (strategy, istio) = match &spec.strategy {
        ApiStrategy::Canary(c) => canary(c, &mut problems)
            .map(|(c, istio)| (Strategy::Canary(c), istio))
            .unzip(),
        ApiStrategy::BlueGreen(b) => (Some(Strategy::BlueGreen(blue_green(b, replicas))), None),
    };
    let selector_string = selector_string(&spec.selector, &mut problems);
    let namespace = rollout.namespace().unwrap_or_default();
    let istio = istio.flatten().map(|mut i| {
        i.namespace.clone_from(&namespace);
        i
    });
    let Some(strategy) = strategy.filter(|_| problems.is_empty()) else {
        return Err(InvalidSpec(problems));
    };
    let (canary_service, stable_service) = services(&spec.strategy);
    Ok(Validated {
        model: ValidatedRollout {
            name: rollout.name_any(),
            replicas,
            template_hash: template_hash(&spec.template),
            min_ready_seconds: spec.min_ready_seconds.map_or(0, i32::from),
            revision_history_limit: spec
                .revision_history_limit
                .map_or(DEFAULT_REVISION_HISTORY, |n| {
                    usize::try_from(i32::from(n)).unwrap_or(0)
                }),
            progress_deadline: spec
                .progress_deadline_seconds
                .map_or(DEFAULT_PROGRESS_DEADLINE, |s| s.as_duration()),
            progress_deadline_abort: spec.progress_deadline_abort,
            paused: spec.paused,
            generation: rollout.metadata.generation.unwrap_or(0),
            strategy,
        },
        istio,
        owner: owner(rollout, namespace),
        selector: spec.selector.clone(),
        selector_string,
        template: spec.template.clone(),
        canary_service,
        stable_service,
    })
}

fn owner(rollout: &Rollout, namespace: String) -> Owner {
    Owner {
        api_version: sluice_crds::API_VERSION.into(),
        kind: "Rollout".into(),
        name: rollout.name_any(),
        namespace,
        uid: rollout.metadata.uid.clone().unwrap_or_default(),
    }
}

/// The Services whose selectors Sluice points at versions: canary and stable, or (blue-green)
/// preview and active in the same places.
fn services(strategy: &ApiStrategy) -> (Option<String>, Option<String>) {
    match strategy {
        ApiStrategy::Canary(c) => (c.canary_service.clone(), c.stable_service.clone()),
        ApiStrategy::BlueGreen(b) => (b.preview_service.clone(), Some(b.active_service.clone())),
    }
}

/// The blue-green model. The schema already bounds every field and keeps the two Services
/// apart, so nothing here can be invalid.
fn blue_green(b: &BlueGreenStrategy, replicas: i32) -> BlueGreen {
    let seconds =
        |s: Option<sluice_crds::Seconds>| s.map_or(DEFAULT_SCALE_DOWN_DELAY, |s| s.as_duration());
    BlueGreen {
        active_service: b.active_service.clone(),
        preview_service: b.preview_service.clone(),
        preview_replicas: b.preview_replica_count.map_or(replicas, i32::from),
        // Argo ignores `autoPromotionSeconds` when auto-promotion is off.
        auto_promotion: b.auto_promotion_enabled.then(|| {
            b.auto_promotion_seconds
                .map_or(Duration::ZERO, |s| s.as_duration())
        }),
        pre_promotion_analysis: b.pre_promotion_analysis.is_some(),
        post_promotion_analysis: b.post_promotion_analysis.is_some(),
        scale_down_delay: seconds(b.scale_down_delay_seconds),
        abort_scale_down_delay: abort_delay(b.abort_scale_down_delay_seconds),
    }
}

fn canary(c: &CanaryStrategy, problems: &mut Vec<String>) -> Option<(Canary, Option<IstioConfig>)> {
    let routing = c.traffic_routing.as_ref();
    let managed: Vec<String> = routing
        .map(|r| r.managed_routes.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default();
    let steps = c
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| step(i, s, routing.is_some(), &managed, problems))
        .collect();
    check_services(c, problems);
    let istio = routing.map(|r| istio_config(c, r));
    let subset_split = routing.is_some_and(|r| r.istio.is_subset_level());
    if routing.is_some_and(|r| r.istio.all_virtual_services().next().is_none()) {
        problems.push("spec.strategy.canary.trafficRouting.istio must name a virtualService or virtualServices".into());
    }
    let background_analysis = c
        .analysis
        .as_ref()
        .map(|b| usize::try_from(b.starting_step.unwrap_or(0)).unwrap_or(0));
    let canary = Canary {
        background_analysis,
        steps,
        traffic_routing: routing.is_some(),
        subset_split,
        canary_service: c.canary_service.clone().filter(|_| !subset_split),
        stable_service: c.stable_service.clone().filter(|_| !subset_split),
        scale_down_delay: c
            .scale_down_delay_seconds
            .map_or(DEFAULT_SCALE_DOWN_DELAY, |s| s.as_duration()),
        abort_scale_down_delay: abort_delay(c.abort_scale_down_delay_seconds),
    };
    Some((canary, istio))
}

/// Argo Rollouts' meaning: unset waits 30 s, 0 never scales the aborted version down.
fn abort_delay(seconds: Option<sluice_crds::Seconds>) -> Option<Duration> {
    match seconds.map(|s| s.as_duration()) {
        None => Some(DEFAULT_SCALE_DOWN_DELAY),
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
    }
}

fn check_services(c: &CanaryStrategy, problems: &mut Vec<String>) {
    let Some(routing) = &c.traffic_routing else {
        return;
    };
    if c.canary_service.is_some() && c.canary_service == c.stable_service {
        problems.push("spec.strategy.canary.canaryService must differ from stableService".into());
    }
    let host_level = !routing.istio.is_subset_level();
    if host_level && (c.canary_service.is_none() || c.stable_service.is_none()) {
        problems.push(
            "spec.strategy.canary.canaryService and stableService are required for a host-level Istio split (or name a destinationRule for a subset-level split)"
                .into(),
        );
    }
}

fn step(
    index: usize,
    s: &CanaryStep,
    routed: bool,
    managed: &[String],
    problems: &mut Vec<String>,
) -> Option<Step> {
    let field = |name: &str| format!("spec.strategy.canary.steps[{index}].{name}");
    let mut need_route = |name: &str, route: &str| {
        if !routed {
            problems.push(format!(
                "{} needs spec.strategy.canary.trafficRouting",
                field(name)
            ));
        } else if !managed.iter().any(|m| m == route) {
            problems.push(format!(
                "{}.name {route:?} must be listed in trafficRouting.managedRoutes",
                field(name)
            ));
        }
    };
    Some(match s {
        CanaryStep::SetWeight(w) => Step::SetWeight(u8::try_from(i32::from(*w)).unwrap_or(100)),
        CanaryStep::Pause(p) => Step::Pause(p.duration.map(Duration::from)),
        CanaryStep::Analysis(_) => Step::Analysis,
        CanaryStep::SetCanaryScale(scale) => Step::SetCanaryScale(canary_scale(scale)),
        CanaryStep::SetHeaderRoute(h) => {
            need_route("setHeaderRoute", &h.name);
            Step::SetHeaderRoute(HeaderRoute {
                name: h.name.clone(),
                matches: h
                    .matches
                    .iter()
                    .map(|m| HeaderMatch {
                        header_name: m.header_name.clone(),
                        value: string_match(&m.header_value),
                    })
                    .collect(),
            })
        }
        CanaryStep::SetMirrorRoute(m) => {
            need_route("setMirrorRoute", &m.name);
            Step::SetMirrorRoute(MirrorRoute {
                name: m.name.clone(),
                percentage: m
                    .percentage
                    .map_or(100, |p| u8::try_from(i32::from(p)).unwrap_or(100)),
                matches: m.matches.iter().map(request_match).collect(),
            })
        }
    })
}

fn canary_scale(s: &sluice_crds::SetCanaryScale) -> CanaryScale {
    match s {
        sluice_crds::SetCanaryScale::Replicas(n) => CanaryScale::Replicas(i32::from(*n)),
        sluice_crds::SetCanaryScale::Weight(w) => {
            CanaryScale::Weight(u8::try_from(i32::from(*w)).unwrap_or(100))
        }
        sluice_crds::SetCanaryScale::MatchTrafficWeight(_) => CanaryScale::MatchTrafficWeight,
    }
}

fn string_match(m: &sluice_crds::StringMatch) -> traffic::StringMatch {
    match m {
        sluice_crds::StringMatch::Exact(v) => traffic::StringMatch::Exact(v.clone()),
        sluice_crds::StringMatch::Prefix(v) => traffic::StringMatch::Prefix(v.clone()),
        sluice_crds::StringMatch::Regex(v) => traffic::StringMatch::Regex(v.clone()),
    }
}

fn request_match(m: &sluice_crds::RouteMatch) -> RequestMatch {
    RequestMatch {
        method: m.method.as_ref().map(string_match),
        path: m.path.as_ref().map(string_match),
        headers: m
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), string_match(v)))
            .collect(),
    }
}

fn istio_config(c: &CanaryStrategy, routing: &sluice_crds::TrafficRouting) -> IstioConfig {
    let istio = &routing.istio;
    let host = c
        .stable_service
        .clone()
        .or_else(|| c.canary_service.clone())
        .unwrap_or_default();
    IstioConfig {
        namespace: String::new(),
        canary_service: c.canary_service.clone().unwrap_or_else(|| host.clone()),
        stable_service: c.stable_service.clone().unwrap_or(host),
        virtual_services: istio
            .all_virtual_services()
            .map(|vs| VirtualServiceRef {
                name: vs.name.clone(),
                http_routes: vs.routes.clone(),
                tls_routes: vs
                    .tls_routes
                    .iter()
                    .map(|t| TlsRouteRef {
                        port: port(t.port),
                        sni_hosts: t.sni_hosts.clone(),
                    })
                    .collect(),
                tcp_routes: vs
                    .tcp_routes
                    .iter()
                    .map(|t| TcpRouteRef { port: port(t.port) })
                    .collect(),
            })
            .collect(),
        destination_rule: istio.destination_rule.as_ref().map(|d| DestinationRuleRef {
            name: d.name.clone(),
            canary_subset: d.canary_subset_name.clone(),
            stable_subset: d.stable_subset_name.clone(),
        }),
        managed_routes: routing
            .managed_routes
            .iter()
            .map(|m| m.name.clone())
            .collect(),
    }
}

fn port(p: Option<i64>) -> Option<u32> {
    p.and_then(|p| u32::try_from(p).ok())
}

/// `matchLabels` and simple `matchExpressions` as a label-selector string.
fn selector_string(selector: &LabelSelector, problems: &mut Vec<String>) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        match e.operator.as_str() {
            "In" => parts.push(format!("{} in ({values})", e.key)),
            "NotIn" => parts.push(format!("{} notin ({values})", e.key)),
            "Exists" => parts.push(e.key.clone()),
            "DoesNotExist" => parts.push(format!("!{}", e.key)),
            other => problems.push(format!(
                "spec.selector.matchExpressions: unknown operator {other:?}"
            )),
        }
    }
    if parts.is_empty() {
        problems.push("spec.selector must not be empty".into());
    }
    parts.join(",")
}
