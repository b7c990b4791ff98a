//! The monitor must catch what it claims to catch, and only that: synthetic histories with
//! one known fault each.

use serde_json::json;

use super::*;
use crate::fixtures::HASH_LABEL;

mod bluegreen;

const NS: &str = "ns";

fn rollout(step: i64) -> Value {
    json!({
        "metadata": { "name": "web", "generation": 2 },
        "spec": { "strategy": { "canary": {
            "canaryService": "web-canary",
            "stableService": "web-stable",
            "steps": [{ "setWeight": 20 }, { "pause": {} }, { "setWeight": 50 }],
            "trafficRouting": { "istio": { "virtualService": { "name": "web", "routes": ["primary"] } } },
        } } },
        "status": { "currentStepIndex": step },
    })
}

fn virtual_service(stable: i64, canary: i64) -> Value {
    json!({
        "metadata": { "name": "web" },
        "spec": { "http": [{ "name": "primary", "route": [
            { "destination": { "host": "web-stable" }, "weight": stable },
            { "destination": { "host": "web-canary.ns.svc.cluster.local" }, "weight": canary },
        ] }] },
    })
}

fn service(name: &str, hash: &str) -> Value {
    json!({ "metadata": { "name": name }, "spec": { "selector": { "app": "web", HASH_LABEL: hash } } })
}

fn replica_set(hash: &str, replicas: i64, available: i64) -> Value {
    // The API server bumps the generation on every spec change; here the spec is only the
    // replica count.
    json!({
        "metadata": {
            "name": format!("web-{hash}"),
            "labels": { HASH_LABEL: hash },
            "generation": replicas + 1,
        },
        "spec": { "replicas": replicas },
        "status": { "availableReplicas": available },
    })
}

/// Versions as `(rv, kind, object)`; names come from the objects.
fn replay(versions: Vec<(u64, Kind, Value)>) -> Report {
    let changes = versions
        .into_iter()
        .map(|(rv, kind, object)| Change {
            rv,
            at: Instant::now(),
            kind,
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            object: Some(object),
        })
        .collect();
    Report::replay(changes, BTreeMap::new(), NS)
}

/// A canary at step 0 (weight 20) with both versions serving.
fn at_twenty() -> Vec<(u64, Kind, Value)> {
    vec![
        (1, Kind::Service, service("web-stable", "old")),
        (2, Kind::Service, service("web-canary", "new")),
        (3, Kind::ReplicaSet, replica_set("old", 5, 5)),
        (4, Kind::ReplicaSet, replica_set("new", 1, 1)),
        (5, Kind::Rollout, rollout(0)),
        (6, Kind::VirtualService, virtual_service(80, 20)),
    ]
}

/// The violated invariants, as named in reports (`1`, `BG2`, ...).
fn invariants(report: &Report) -> Vec<String> {
    report
        .violations
        .iter()
        .map(|v| v.invariant.to_string())
        .collect()
}

#[test]
fn a_healthy_history_has_no_violation_and_a_weight_trace() {
    let report = replay(at_twenty());
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.weights(), [20]);
}

#[test]
fn a_weight_above_the_current_step_or_not_summing_to_100_breaks_invariant_1() {
    let mut history = at_twenty();
    history.push((7, Kind::VirtualService, virtual_service(50, 50)));
    assert_eq!(invariants(&replay(history)), ["1"]);
    let mut history = at_twenty();
    history.push((7, Kind::VirtualService, virtual_service(70, 20)));
    assert_eq!(invariants(&replay(history)), ["1"]);
}

#[test]
fn traffic_to_a_version_without_available_pods_breaks_invariant_2() {
    let mut history = at_twenty();
    history.push((7, Kind::ReplicaSet, replica_set("new", 1, 0)));
    assert_eq!(invariants(&replay(history)), ["2"]);
}

#[test]
fn scaling_a_version_to_zero_while_it_has_weight_breaks_invariant_3() {
    let mut history = at_twenty();
    history.push((7, Kind::ReplicaSet, replica_set("new", 0, 1)));
    assert_eq!(invariants(&replay(history)), ["3"]);
}

#[test]
fn judging_by_revision_not_by_delivery_order_accepts_a_scale_down_after_the_weight_left() {
    // The weight went to 0 (rv 7) before the scale-down (rv 8), but the ReplicaSet watch
    // delivered first.
    let mut history = at_twenty();
    history.push((8, Kind::ReplicaSet, replica_set("new", 0, 1)));
    history.push((7, Kind::VirtualService, virtual_service(100, 0)));
    assert!(replay(history).violations.is_empty());
}

#[test]
fn writes_count_spec_and_metadata_changes_of_replica_sets_but_not_their_status() {
    let mut history = at_twenty();
    history.push((7, Kind::ReplicaSet, replica_set("new", 1, 0)));
    history.push((8, Kind::ReplicaSet, replica_set("new", 2, 0)));
    history.push((9, Kind::VirtualService, virtual_service(100, 0)));
    let report = replay(history);
    let writes = report.writes_between(6, 9);
    assert_eq!((writes.replica_set, writes.virtual_service), (1, 1));
}

#[test]
fn the_change_that_showed_a_weight_is_found_by_revision() {
    let mut history = at_twenty();
    history.push((7, Kind::VirtualService, virtual_service(100, 0)));
    history.push((8, Kind::ReplicaSet, replica_set("new", 0, 1)));
    let report = replay(history);
    let zero = crate::history::weight_shown(&report, 0, 6).map(|c| (c.rv, c.kind));
    assert_eq!(zero, Some((7, Kind::VirtualService)));
    assert!(crate::history::weight_shown(&report, 0, 7).is_none());
    assert!(crate::history::weight_shown(&report, 50, 0).is_none());
}
