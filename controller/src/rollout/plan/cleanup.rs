//! Scale-down of ReplicaSets that are neither stable nor current, and revision-history pruning.
//!
//! A ReplicaSet loses its pods only when the traffic read back shows it receives none (no
//! Service selector or subset that carries weight points at it), and only after its delay,
//! persisted as a deadline so a restart neither shortens nor repeats it.

use std::time::Duration;

use super::pause::chrono_duration;
use super::replicas::ensure_scale_down;
use super::{Draft, Intent};
use crate::rollout::model::{Canary, Observed, ReplicaSetView, ValidatedRollout};

/// How a strategy sends traffic to its ReplicaSets.
#[derive(Clone, Copy)]
pub(crate) enum Serving<'a> {
    Canary(&'a Canary),
    /// Only the active Service carries production traffic; the preview is for tests.
    BlueGreen,
}

impl Serving<'_> {
    /// Whether pods can be kept for a delay: without a mesh a canary's weight is its share of
    /// pods, so extra pods would take traffic and must go at once.
    fn delays(self) -> bool {
        match self {
            Serving::Canary(c) => c.traffic_routing,
            Serving::BlueGreen => true,
        }
    }
}

/// Scales every unprotected ReplicaSet to zero once it carries no traffic and `delay` passed
/// (`None` keeps them running: `abortScaleDownDelaySeconds: 0`).
pub(crate) fn scale_down_others(
    r: &ValidatedRollout,
    c: Serving<'_>,
    o: &Observed,
    d: &mut Draft,
    protected: &[&str],
    delay: Option<Duration>,
) {
    let (kept, others): (Vec<&ReplicaSetView>, Vec<&ReplicaSetView>) = o
        .replica_sets
        .iter()
        .partition(|rs| protected.contains(&rs.hash.as_str()));
    // Without a mesh every pod behind the Service serves: the others give theirs up only once
    // the kept versions have the Rollout's replicas available.
    let covered = kept.iter().map(|rs| rs.available).sum::<i32>() >= r.replicas;
    for rs in others.into_iter().filter(|rs| rs.replicas > 0) {
        if receives_traffic(c, o, &rs.hash) || !(c.delays() || covered) {
            continue;
        }
        if let Some(delay) = delay {
            scale_down_after(c, d, rs, delay);
        }
    }
    prune_history(r, c, o, d, protected);
}

fn scale_down_after(c: Serving<'_>, d: &mut Draft, rs: &ReplicaSetView, delay: Duration) {
    if !c.delays() || delay.is_zero() {
        ensure_scale_down(d, rs);
        return;
    }
    match rs.scale_down_at {
        None => {
            let at = d.now + chrono_duration(delay);
            d.push(Intent::SetScaleDownDeadline {
                name: rs.name.clone(),
                at: Some(at),
            });
            d.wake(at);
        }
        Some(at) if d.now >= at => ensure_scale_down(d, rs),
        Some(at) => d.wake(at),
    }
}

/// True when a Service selector or a DestinationRule subset that may carry traffic selects
/// `hash`. The stable selectors always carry traffic; the canary ones only while the weight
/// read back is not 0 or a managed route exists. Blue-green: the active Service's.
pub(crate) fn receives_traffic(c: Serving<'_>, o: &Observed, hash: &str) -> bool {
    let c = match c {
        Serving::Canary(c) => c,
        Serving::BlueGreen => return o.stable_service_hash.as_deref() == Some(hash),
    };
    if !c.traffic_routing {
        return false;
    }
    let canary_live = o
        .traffic
        .as_ref()
        .is_none_or(|t| t.canary_weight != Some(0) || !t.managed_routes.is_empty());
    let subsets = o.traffic.as_ref().and_then(|t| t.subsets.as_ref());
    let stable_selects =
        o.stable_service_hash.as_deref() == Some(hash) || subsets.is_some_and(|s| s.stable == hash);
    let canary_selects =
        o.canary_service_hash.as_deref() == Some(hash) || subsets.is_some_and(|s| s.canary == hash);
    stable_selects || (canary_live && canary_selects)
}

/// Deletes scaled-down ReplicaSets beyond `revisionHistoryLimit`, oldest revisions first.
fn prune_history(
    r: &ValidatedRollout,
    c: Serving<'_>,
    o: &Observed,
    d: &mut Draft,
    protected: &[&str],
) {
    // The version the persisted status calls stable stays until a status write names another:
    // if this reconcile's write is lost, the next one must still find it.
    let persisted_stable = o.persisted.stable_hash.as_deref();
    let mut idle: Vec<&ReplicaSetView> = o
        .replica_sets
        .iter()
        .filter(|rs| !protected.contains(&rs.hash.as_str()))
        .filter(|rs| persisted_stable != Some(rs.hash.as_str()))
        .filter(|rs| rs.replicas == 0 && !receives_traffic(c, o, &rs.hash))
        .collect();
    idle.sort_by_key(|rs| std::cmp::Reverse(rs.revision));
    for rs in idle.into_iter().skip(r.revision_history_limit) {
        d.push(Intent::DeleteReplicaSet {
            name: rs.name.clone(),
        });
    }
}
