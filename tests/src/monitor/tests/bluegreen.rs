//! BG1 and BG2 on synthetic blue-green histories, one known fault each, and the healthy switch
//! they must accept.

use super::*;

const N: i64 = 4;

/// A blue-green Rollout with `N` replicas; `post` is the phase of its post-promotion run.
fn rollout(stable: &str, post: Option<&str>) -> Value {
    let mut r = json!({
        "metadata": { "name": "web", "generation": 2 },
        "spec": {
            "replicas": N,
            "strategy": { "blueGreen": { "activeService": "web-active", "previewService": "web-preview" } },
        },
        "status": { "stableRS": stable },
    });
    if let Some(phase) = post {
        r["status"]["blueGreen"] = json!({ "postPromotionAnalysisRunStatus": { "name": "web-new-post-1", "status": phase } });
    }
    r
}

/// The old version active at full size, the new one previewed with 2 pods.
fn previewing() -> Vec<(u64, Kind, Value)> {
    vec![
        (1, Kind::Service, service("web-active", "old")),
        (2, Kind::Service, service("web-preview", "new")),
        (3, Kind::ReplicaSet, replica_set("old", N, N)),
        (4, Kind::ReplicaSet, replica_set("new", 2, 2)),
        (5, Kind::Rollout, rollout("old", None)),
    ]
}

/// `previewing`, then the new version at full size and the active Service on it.
fn switched() -> Vec<(u64, Kind, Value)> {
    let mut history = previewing();
    history.push((6, Kind::ReplicaSet, replica_set("new", N, 2)));
    history.push((7, Kind::ReplicaSet, replica_set("new", N, N)));
    history.push((8, Kind::Service, service("web-active", "new")));
    history
}

#[test]
fn a_switch_to_a_full_version_then_promotion_then_scale_down_has_no_violation() {
    let mut history = switched();
    history.push((9, Kind::Rollout, rollout("new", None)));
    history.push((10, Kind::ReplicaSet, replica_set("old", 0, N)));
    let report = replay(history);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

#[test]
fn switching_the_active_service_to_a_version_not_fully_available_breaks_bg1() {
    // Scaled up but one pod short.
    let mut history = previewing();
    history.push((6, Kind::ReplicaSet, replica_set("new", N, N - 1)));
    history.push((7, Kind::Service, service("web-active", "new")));
    assert_eq!(invariants(&replay(history)), ["BG1"]);
    // Every preview pod available, but the preview was never scaled to N.
    let mut history = previewing();
    history.push((6, Kind::Service, service("web-active", "new")));
    assert_eq!(invariants(&replay(history)), ["BG1"]);
}

#[test]
fn the_preview_service_may_select_a_version_that_is_not_available() {
    let mut history = previewing();
    history.push((6, Kind::ReplicaSet, replica_set("newer", 2, 0)));
    history.push((7, Kind::Service, service("web-preview", "newer")));
    assert!(replay(history).violations.is_empty());
}

#[test]
fn scaling_the_version_the_active_service_selects_below_n_breaks_bg2() {
    let mut history = previewing();
    history.push((6, Kind::ReplicaSet, replica_set("old", N - 1, N)));
    assert_eq!(invariants(&replay(history)), ["BG2"]);
}

#[test]
fn scaling_the_stable_version_down_while_another_is_active_breaks_bg2() {
    // Switched, but not yet promoted: stableRS still names the old version.
    let mut history = switched();
    history.push((9, Kind::ReplicaSet, replica_set("old", 0, N)));
    assert_eq!(invariants(&replay(history)), ["BG2"]);
}

#[test]
fn scaling_the_previous_active_version_down_during_post_promotion_analysis_breaks_bg2() {
    // A planner that names the new version stable at the switch, with its post-promotion run
    // still going: the rollback target must keep its pods.
    let mut history = switched();
    history.push((9, Kind::Rollout, rollout("new", Some("Running"))));
    history.push((10, Kind::ReplicaSet, replica_set("old", 0, N)));
    assert_eq!(invariants(&replay(history)), ["BG2"]);
    // Once the run is over the old version may go.
    let mut history = switched();
    history.push((9, Kind::Rollout, rollout("new", Some("Successful"))));
    history.push((10, Kind::ReplicaSet, replica_set("old", 0, N)));
    assert!(replay(history).violations.is_empty());
}

#[test]
fn scaling_down_the_aborted_preview_after_the_active_service_went_back_is_accepted() {
    let mut history = switched();
    history.push((9, Kind::Service, service("web-active", "old")));
    history.push((10, Kind::ReplicaSet, replica_set("new", 0, N)));
    assert!(replay(history).violations.is_empty());
}

#[test]
fn judging_by_revision_accepts_a_scale_down_delivered_before_the_promotion_it_followed() {
    let mut history = switched();
    history.push((10, Kind::ReplicaSet, replica_set("old", 0, N)));
    history.push((9, Kind::Rollout, rollout("new", None)));
    assert!(replay(history).violations.is_empty());
}
