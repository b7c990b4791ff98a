//! Test fixtures: watch events for a [`World`](super::world::World) written as the JSON the API
//! server would send.

use serde_json::{Value, json};

use super::manifests::Target;
use super::world::{HASH_LABEL, Update, World};

pub fn target() -> Target {
    Target {
        rollout: "shop".into(),
        virtual_service: "shop".into(),
        route: Some("primary".into()),
        canary_service: "shop-canary".into(),
        stable_service: "shop-stable".into(),
        steps: 4,
    }
}

/// A world that has seen `updates`.
pub fn world(updates: impl IntoIterator<Item = Update>) -> World {
    let mut world = World::new(target());
    for update in updates {
        world.apply(update);
    }
    world
}

/// The Rollout at generation 2 with `status` (observed).
pub fn rollout(status: Value) -> Update {
    let mut status = status;
    status["observedGeneration"] = json!(2);
    let rollout = serde_json::from_value(json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "shop", "generation": 2, "resourceVersion": "10"},
        "spec": {"selector": {"matchLabels": {"app": "shop"}},
                 "template": {"metadata": {"labels": {"app": "shop"}}},
                 "strategy": {"canary": {}}},
        "status": status,
    }))
    .expect("a valid Rollout fixture");
    Update::Rollout(Box::new(rollout))
}

/// The status of an aborted canary `new` against stable `old` with canary weight `weight`.
pub fn aborted(old: &str, new: &str, weight: i32, verified: bool, bg_run: &str) -> Value {
    json!({
        "phase": "Degraded", "abort": true, "currentPodHash": new, "stableRS": old,
        "currentStepIndex": 0, "message": "AnalysisRun failed; Rollout aborted",
        "canary": {
            "weights": {"canary": {"weight": weight}, "stable": {"weight": 100 - weight},
                        "verified": verified},
            "currentBackgroundAnalysisRunStatus": {"name": bg_run, "status": "Failed"},
        },
    })
}

/// A run with one metric result `metric` whose last measurement is `value` / `phase`.
pub fn run(name: &str, phase: &str, metric: &str, value: &str, metric_phase: &str) -> Update {
    let run = serde_json::from_value(json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {"metrics": [{"name": metric, "successCondition": "result[0] >= 0.95",
                 "provider": {"prometheus": {"address": "http://p", "query": "q"}}}]},
        "status": {"phase": phase, "message": "run message", "metricResults": [{
            "name": metric, "phase": metric_phase, "message": "metric message",
            "count": 1, "successful": 0, "failed": 1,
            "measurements": [{"phase": metric_phase, "value": value}],
        }]},
    }))
    .expect("a valid AnalysisRun fixture");
    Update::Run(Box::new(run))
}

/// The VirtualService with the given split of route `primary`.
pub fn vs(stable: i64, canary: i64) -> Update {
    let vs = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "shop", "resourceVersion": "11"},
        "spec": {"http": [{"name": "primary", "route": [
            {"destination": {"host": "shop-stable"}, "weight": stable},
            {"destination": {"host": "shop-canary"}, "weight": canary},
        ]}]},
    }))
    .expect("a valid VirtualService fixture");
    Update::VirtualService(Box::new(vs))
}

/// The ReplicaSet of `hash`, owned by the Rollout, with `replicas`.
pub fn rs(hash: &str, replicas: i32) -> Update {
    let rs = serde_json::from_value(json!({
        "metadata": {"name": format!("shop-{hash}"), "labels": {HASH_LABEL: hash},
            "resourceVersion": "12",
            "ownerReferences": [{"apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
                "name": "shop", "uid": "u"}]},
        "spec": {"replicas": replicas, "selector": {}},
    }))
    .expect("a valid ReplicaSet fixture");
    Update::ReplicaSet(Box::new(rs))
}
