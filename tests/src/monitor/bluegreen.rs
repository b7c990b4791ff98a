//! The blue-green invariants, checked on every Service and ReplicaSet version in revision order.
//!
//! A blue-green release has no weights: the active Service's selector is the traffic switch. So
//! the two things that can hurt users are moving the switch onto pods that are not all there, and
//! taking pods away from the version that serves (or that a rollback would return to):
//!
//! - **BG1.** When the active Service's pod-template hash changes to H, the ReplicaSet H has
//!   `spec.replicas >= N` and `status.availableReplicas >= N` (N = the Rollout's
//!   `spec.replicas`).
//! - **BG2.** A ReplicaSet is not scaled below N while the active Service selects it; the stable
//!   ReplicaSet (`status.stableRS`) is not scaled below N while the active Service selects
//!   another version or a post-promotion analysis runs; and while a post-promotion analysis
//!   runs, neither is the version the active Service selected before its last switch (the one a
//!   failed analysis switches back to, whatever `stableRS` says by then).
//!
//! Every rule reads N, the active Service's name and the stable version from the Rollout as it
//! was at that revision, so a scenario configures nothing.

use serde_json::Value;

use super::Change;
use super::world::{World, label, selector_hash};
use crate::fixtures::HASH_LABEL;

/// BG1 for a Service change, against the world just before it. Returns what went wrong.
pub(super) fn check_switch(world: &World, change: &Change) -> Option<String> {
    let bg = world.blue_green()?;
    if change.name != bg.active_service {
        return None;
    }
    let to = change.object.as_ref().and_then(selector_hash)?;
    if world.service_hash(&change.name) == Some(to) {
        return None;
    }
    let n = bg.replicas;
    let Some(rs) = world.replica_set(to) else {
        return Some(format!(
            "active Service {} switched to {to}, which has no ReplicaSet",
            change.name
        ));
    };
    let spec = int(rs, "/spec/replicas");
    let available = int(rs, "/status/availableReplicas");
    (spec < n || available < n).then(|| {
        format!(
            "active Service {} switched to {to} with spec.replicas {spec} and {available} available of {n}",
            change.name
        )
    })
}

/// BG2 for a ReplicaSet change, against the world just before it. Returns what went wrong.
pub(super) fn check_scale_down(
    world: &World,
    previous: Option<&Value>,
    change: &Change,
) -> Option<String> {
    let bg = world.blue_green()?;
    let n = bg.replicas;
    let before = previous.map_or(0, |o| int(o, "/spec/replicas"));
    // A deletion takes every pod away.
    let after = change
        .object
        .as_ref()
        .map_or(0, |o| int(o, "/spec/replicas"));
    if after >= before || after >= n {
        return None;
    }
    let hash = previous
        .or(change.object.as_ref())
        .and_then(|o| label(o, HASH_LABEL))?;
    let active = world.service_hash(&bg.active_service);
    let scaled = format!(
        "ReplicaSet {} scaled from {before} to {after} (N = {n})",
        change.name
    );
    if active == Some(hash) {
        return Some(format!(
            "{scaled} while the active Service {} selects it",
            bg.active_service
        ));
    }
    if bg.stable.as_deref() == Some(hash) {
        return Some(format!(
            "{scaled}: it is stableRS and the active Service selects {active:?}{}",
            if bg.post_promotion_running {
                " during a post-promotion analysis"
            } else {
                ""
            }
        ));
    }
    (bg.post_promotion_running && world.prior_hash(&bg.active_service) == Some(hash)).then(|| {
        format!(
            "{scaled} during a post-promotion analysis: the active Service selected it before its last switch, so a rollback needs it"
        )
    })
}

fn int(object: &Value, path: &str) -> i64 {
    object.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}
