//! What the invariant monitor recorded, read back for a scenario's assertions, whatever the
//! strategy: the hashes a Service selected, each version of a ReplicaSet (size, availability,
//! scale-down deadline), the canary weight the VirtualService showed, and the delays between
//! them.
//!
//! Everything here reads a [`Report`], so an assertion judges the whole history of a release
//! (every version, in revision order), not only the state at its end.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use sluice_controller::replicaset::SCALE_DOWN_ANNOTATION;

use crate::fixtures::{HASH_LABEL, ROLLOUT};
use crate::monitor::{Change, Kind, Report};

/// The hashes the Service `name` selected, in order, consecutive repeats removed (`None` before
/// Sluice set one).
pub fn selector_history(report: &Report, name: &str) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = Vec::new();
    for c in report
        .changes
        .iter()
        .filter(|c| c.kind == Kind::Service && c.name == name)
    {
        let hash = c
            .object
            .as_ref()
            .and_then(|o| o.pointer("/spec/selector")?.get(HASH_LABEL)?.as_str())
            .map(str::to_owned);
        if out.last() != Some(&hash) {
            out.push(hash);
        }
    }
    out
}

/// The first version (after `rv`) in which the Service `name` selects `hash`.
pub fn selected<'r>(report: &'r Report, name: &str, hash: &str, after: u64) -> Option<&'r Change> {
    report.first(Kind::Service, after, |o| {
        o.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
            && o.pointer("/spec/selector")
                .and_then(|s| s.get(HASH_LABEL))
                .and_then(Value::as_str)
                == Some(hash)
    })
}

/// One recorded version of a ReplicaSet, reduced to what the scenarios assert on.
#[derive(Clone, Debug)]
pub struct RsVersion {
    pub rv: u64,
    pub at: Instant,
    pub replicas: i64,
    pub available: i64,
    pub deadline: Option<String>,
}

/// Every recorded version of the ReplicaSet of `hash`, in revision order.
pub fn replica_set_history(report: &Report, hash: &str) -> Vec<RsVersion> {
    let name = format!("{ROLLOUT}-{hash}");
    report
        .changes
        .iter()
        .filter(|c| c.kind == Kind::ReplicaSet && c.name == name)
        .filter_map(|c| {
            let o = c.object.as_ref()?;
            let int = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
            Some(RsVersion {
                rv: c.rv,
                at: c.at,
                replicas: int("/spec/replicas"),
                available: int("/status/availableReplicas"),
                deadline: o
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(SCALE_DOWN_ANNOTATION))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .collect()
}

/// The first recorded version of `hash`'s ReplicaSet at `spec.replicas == 0` after `rv`.
pub fn scaled_to_zero(report: &Report, hash: &str, after: u64) -> Option<RsVersion> {
    replica_set_history(report, hash)
        .into_iter()
        .find(|v| v.rv > after && v.replicas == 0)
}

/// The user's Services start without a hash; every later selector is Sluice's: what a
/// [`selector_history`] of a Service that selected `hashes` in turn looks like.
pub fn selectors_from_start(hashes: &[&str]) -> Vec<Option<String>> {
    std::iter::once(None)
        .chain(hashes.iter().map(|h| Some((*h).to_owned())))
        .collect()
}

/// Every recorded status between `after` and `until` (exclusive) names `hash` as stable.
pub fn stable_throughout(report: &Report, hash: &str, after: u64, until: u64) -> bool {
    report
        .rollout_statuses()
        .filter(|(rv, _)| *rv > after && *rv < until)
        .all(|(_, st)| st.get("stableRS").and_then(Value::as_str) == Some(hash))
}

/// The shortest wait that shows a scale-down delay of 2 s was kept: deadlines are stored with
/// second precision.
pub const KEPT_FOR_DELAY: Duration = Duration::from_millis(1000);

/// The first scale to 0 of the ReplicaSet of `hash` after `after`, which came no sooner than
/// [`KEPT_FOR_DELAY`] after the recorded change `cause` (kind and revision) that started the
/// delay was delivered. `what` names the ReplicaSet in failures.
pub fn scaled_down_after_delay(
    report: &Report,
    hash: &str,
    after: u64,
    (kind, rv): (Kind, u64),
    what: &str,
) -> Result<RsVersion> {
    let scaled =
        scaled_to_zero(report, hash, after).with_context(|| format!("{what} scaled down"))?;
    let started = report
        .delivered_at(kind, rv)
        .with_context(|| format!("the change that started the delay of {what} was delivered"))?;
    let waited = between(started, scaled.at);
    ensure!(
        waited >= KEPT_FOR_DELAY,
        "{what} kept its pods for the scale-down delay; it waited {waited:?}"
    );
    Ok(scaled)
}

/// The ReplicaSet of `hash` carried a scale-down deadline at a version between `after` and the
/// scale-down `scaled`: the deadline was persisted, not only kept in memory.
pub fn check_deadline_persisted(
    report: &Report,
    hash: &str,
    after: u64,
    scaled: &RsVersion,
) -> Result<()> {
    let history = replica_set_history(report, hash);
    ensure!(
        history
            .iter()
            .any(|v| v.rv > after && v.rv < scaled.rv && v.deadline.is_some()),
        "the deadline was persisted before the scale-down: {history:?}"
    );
    Ok(())
}

/// Every recorded version of the ReplicaSet of `hash` before `until` had `replicas` pods and no
/// scale-down deadline; `what` says so in the failure.
pub fn check_kept_pods(
    report: &Report,
    hash: &str,
    replicas: i32,
    until: u64,
    what: &str,
) -> Result<()> {
    let history = replica_set_history(report, hash);
    ensure!(
        history
            .iter()
            .filter(|v| v.rv < until)
            .all(|v| v.replicas == i64::from(replicas) && v.deadline.is_none()),
        "{what}: {history:?}"
    );
    Ok(())
}

/// The first recorded change (after `after`) at which the canary weight of the first selected
/// route became `weight` (see [`Report::weights`]).
pub fn weight_shown(report: &Report, weight: i64, after: u64) -> Option<&Change> {
    let (rv, _) = report
        .weight_trace
        .iter()
        .find(|(rv, w)| *rv > after && *w == Some(weight))?;
    report.changes.iter().find(|c| c.rv == *rv)
}

/// `later - earlier`, for two delivery times the monitor recorded (zero if out of order).
pub fn between(earlier: Instant, later: Instant) -> Duration {
    later.saturating_duration_since(earlier)
}
