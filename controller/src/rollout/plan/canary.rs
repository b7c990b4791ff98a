//! Canary planning: first deploy, steps, promotion, abort and fast rollback.
//!
//! The state machine is derived from `status` (stable hash, step index, pause conditions, abort)
//! and the observed ReplicaSets and traffic; nothing else is remembered. Each step is a target
//! (replica counts, weights, routes); a step completes when the cluster shows its target, and the
//! next step is planned in the same pass so no reconcile is wasted between steps.

use chrono::{DateTime, Utc};

use super::analysis::{self, Gate, RunKind};
use super::cleanup::{self, Serving};
use super::deadline::{abort_stuck, check_deadline, keep_deadline};
use super::pause::{Pause, pause_done, step_complete};
use super::replicas::{ensure_scale, healthy_or_waiting, point_service, progressing, waiting_for};
use super::target::Target;
use super::{Draft, Intent, Outcome};
use crate::rollout::model::{
    Canary, Observed, PauseReason, ReplicaSetView, Step, ValidatedRollout,
};
use crate::traffic::{DesiredTraffic, SubsetHashes};

pub(crate) fn plan(r: &ValidatedRollout, c: &Canary, o: &Observed, d: &mut Draft) -> Outcome {
    let stable = stable_in_world(c, o)
        .or(o.persisted.stable_hash.as_deref())
        .and_then(|h| o.replica_set(h));
    match stable {
        None => first_deploy(r, c, o, d),
        Some(stable) if stable.hash == r.template_hash => settle(r, c, o, d, stable),
        Some(stable) => {
            let outcome = progress(r, c, o, d, stable);
            if outcome.deadline_exceeded && r.progress_deadline_abort && !outcome.abort {
                return abort_stuck(d, &outcome, |d| abort(r, c, o, d, stable, Some(d.now)));
            }
            outcome
        }
    }
}

/// The version the stable Service (or subset) selects. It differs from the status only after a
/// promotion was applied by a reconcile whose status write was lost: the world wins over the
/// stale status, or the steps would run again against pods that already take stable traffic.
fn stable_in_world<'a>(c: &Canary, o: &'a Observed) -> Option<&'a str> {
    let selected = if c.stable_service.is_some() {
        o.stable_service_hash.as_deref()
    } else if c.subset_split {
        o.traffic
            .as_ref()
            .and_then(|t| t.subsets.as_ref())
            .map(|s| s.stable.as_str())
    } else {
        None
    };
    selected.filter(|h| o.replica_set(h).is_some())
}

/// No stable version yet: the first template goes straight to full scale, no steps.
fn first_deploy(r: &ValidatedRollout, c: &Canary, o: &Observed, d: &mut Draft) -> Outcome {
    let hash = &r.template_hash;
    ensure_scale(r, o, d, hash, r.replicas);
    let mut out = Outcome::carry(o, None);
    out.current_step_index = Some(c.steps.len());
    out.start_fresh();
    let ready = o
        .replica_set(hash)
        .is_some_and(|rs| rs.available >= r.replicas);
    if !ready {
        out.progress = progressing("ReplicaSetUpdated", waiting_for(o, hash, r.replicas));
        // Nothing to go back to: a stuck first version is reported, never aborted.
        check_deadline(r, o, d, &mut out);
        return out;
    }
    point_services(c, o, d, hash, hash);
    out.desired_traffic = c.traffic_routing.then(|| stable_only(c, hash));
    if let Some(t) = &out.desired_traffic {
        set_traffic(c, o, d, t);
    }
    if d.intents.is_empty() {
        out.stable_hash = Some(hash.clone());
        out.completed = true;
    }
    out.progress = progressing("NewReplicaSetAvailable", "Rollout is healthy".into());
    out
}

/// The template is the stable one: steady state, or a fast-tracked rollback (no steps).
fn settle(
    r: &ValidatedRollout,
    c: &Canary,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
) -> Outcome {
    let hash = &stable.hash;
    let mut out = Outcome::carry(o, Some(hash));
    out.step_run = None;
    out.background_run = None;
    analysis::terminate_others(o, d, &out);
    out.current_step_index = Some(c.steps.len());
    out.start_fresh();
    ensure_scale(r, o, d, hash, r.replicas);
    if stable.available > 0 {
        // Stable pods serve: pointing both Services (and subsets) at them is safe at any weight.
        point_services(c, o, d, hash, hash);
        let traffic = stable_only(c, hash);
        set_traffic(c, o, d, &traffic);
        out.desired_traffic = c.traffic_routing.then_some(traffic);
    }
    // Old versions waiting for their scale-down delay do not make a released version unhealthy
    // (the promotion that just finished said Healthy; saying Progressing now would flap).
    out.completed = d.intents.is_empty() && stable.available >= r.replicas;
    let protected = [hash.as_str()];
    cleanup::scale_down_others(
        r,
        Serving::Canary(c),
        o,
        d,
        &protected,
        Some(c.scale_down_delay),
    );
    out.progress = healthy_or_waiting(o, hash, r.replicas, out.completed);
    // A rollback that cannot get its pods back is stuck like any release (nothing to abort to).
    check_deadline(r, o, d, &mut out);
    out
}

/// A new template is being released against a stable one.
fn progress(
    r: &ValidatedRollout,
    c: &Canary,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
) -> Outcome {
    let mut out = Outcome::carry(o, Some(&stable.hash));
    if out.begin_attempt(o, &r.template_hash) {
        // A new revision (first canary, or one superseding a canary in flight): from step 1.
        out.current_step_index = Some(0);
    }
    if out.abort {
        let mut aborted = abort(r, c, o, d, stable, out.aborted_at);
        keep_deadline(o, &mut aborted);
        return aborted;
    }
    if c.traffic_routing {
        // Without a mesh the stable size is the other half of the weight: the steps set it.
        ensure_scale(r, o, d, &stable.hash, r.replicas);
    }
    if let Some(service) = c.stable_service.as_ref().filter(|_| stable.available > 0) {
        // The stable Service must select the stable pods before any weight moves back to it
        // (a selector reverted by someone else is put back; serving pods take traffic safely).
        point_service(o.stable_service_hash.as_deref(), d, service, &stable.hash);
    }
    let protected = [stable.hash.as_str(), r.template_hash.as_str()];
    cleanup::scale_down_others(
        r,
        Serving::Canary(c),
        o,
        d,
        &protected,
        Some(std::time::Duration::ZERO),
    );
    // A retried canary drops the scale-down deadline of its abort at once, whether or not a
    // step scales it now (held, or shrinking only later): a later abort waits its full delay.
    if let Some(rs) = o
        .replica_set(&r.template_hash)
        .filter(|rs| rs.scale_down_at.is_some())
    {
        d.push(Intent::SetScaleDownDeadline {
            name: rs.name.clone(),
            at: None,
        });
    }
    if r.paused {
        out.progress = (
            "RolloutPaused".into(),
            "Rollout is paused by spec.paused".into(),
        );
        let index = out.current_step_index.unwrap_or(0);
        hold_traffic(r, c, o, d, &mut out, (index, stable));
        return out;
    }
    let mut out = run_steps(r, c, o, d, stable, out);
    if !out.abort {
        analysis::terminate_others(o, d, &out);
        check_deadline(r, o, d, &mut out);
    }
    out
}

/// Walks the steps from the current index, completing every step the cluster already shows.
fn run_steps(
    r: &ValidatedRollout,
    c: &Canary,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
    out: Outcome,
) -> Outcome {
    // The background run's writes (creating or terminating it) come after the steps' own, so
    // they never make a step look unfinished; an abort drops them with everything else.
    let mut background_writes = Vec::new();
    let out = walk_steps(r, c, o, d, stable, out, &mut background_writes);
    if !out.abort {
        for intent in background_writes {
            if !d.intents.contains(&intent) {
                d.push(intent);
            }
        }
    }
    out
}

fn walk_steps(
    r: &ValidatedRollout,
    c: &Canary,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
    mut out: Outcome,
    background_writes: &mut Vec<Intent>,
) -> Outcome {
    let mut index = out.current_step_index.unwrap_or(0).min(c.steps.len());
    let entry = index;
    let mut background_checked = false;
    loop {
        // The background run is checked once per pass, at the first step it covers.
        if !background_checked && c.background_analysis.is_some_and(|start| index >= start) {
            background_checked = true;
            let mut scratch = Draft::new(d.now);
            let failure = background(r, c, o, &mut scratch, &mut out, index);
            if let Some(failure) = failure {
                return abort_for(r, c, o, d, stable, out, failure);
            }
            background_writes.extend(scratch.intents);
            if let Some(at) = scratch.wake_at {
                d.wake(at);
            }
        }
        if out.promote_full || index >= c.steps.len() {
            out.current_step_index = Some(c.steps.len());
            return promote(r, c, o, d, stable, out);
        }
        let target = Target::at(r, c, index);
        let before = d.intents.len();
        let shown = reach_target(r, c, o, d, stable, &target, &mut out);
        // The persisted pause belongs to this step only if the status already stood here.
        let resumed = o.persisted.current_hash.as_deref() == Some(r.template_hash.as_str())
            && o.persisted.current_step_index == Some(index);
        let step_done = match (&c.steps[index], shown) {
            (_, false) => false,
            (Step::Analysis, true) => match analysis_step(r, o, d, &mut out, index, resumed) {
                Ok(done) => done,
                Err(failure) => return abort_for(r, c, o, d, stable, out, failure),
            },
            (step, true) => step_complete(step, resumed, o, d, &mut out),
        };
        if !step_done || d.intents.len() > before {
            if index > entry && d.intents.len() > before && raises_traffic(o, &out) {
                // More canary traffic waits until the status names its step: the mesh would
                // otherwise show a weight above the persisted step's (invariant 1), and a
                // restart in between would resume at the completed step and undo, then redo,
                // the raise (invariant 5).
                d.intents.truncate(before);
                d.wake(d.now);
            }
            out.current_step_index = Some(index);
            return out;
        }
        index += 1;
        out.unpause();
        out.current_step_index = Some(index);
    }
}

/// The background analysis from its starting step: a failure aborts (`Some(reason)`), an
/// inconclusive run pauses until a promote, which starts a fresh run.
fn background(
    r: &ValidatedRollout,
    c: &Canary,
    o: &Observed,
    d: &mut Draft,
    out: &mut Outcome,
    index: usize,
) -> Option<String> {
    let start = c.background_analysis?;
    if index < start || out.promote_full {
        return None;
    }
    match analysis::gate(r, o, d, &mut out.background_run, RunKind::Background) {
        Gate::Failed(reason) => Some(reason),
        Gate::Inconclusive => {
            let pause = Pause {
                reason: PauseReason::InconclusiveAnalysis,
                duration: None,
                resumed: true,
            };
            if pause_done(o, d, out, pause) {
                out.background_run = None;
                out.unpause();
            }
            None
        }
        Gate::Passed | Gate::Wait => None,
    }
}

/// An `analysis` step: `Ok(true)` once its run passed (or an inconclusive run was promoted),
/// `Err(reason)` when it failed.
fn analysis_step(
    r: &ValidatedRollout,
    o: &Observed,
    d: &mut Draft,
    out: &mut Outcome,
    index: usize,
    resumed: bool,
) -> Result<bool, String> {
    let waiting = format!("step {}: waiting for AnalysisRun", index + 1);
    analysis::gate_or_pause((r, o, d), out, RunKind::Step(index), resumed, &waiting)
}

/// Aborts because an analysis failed.
fn abort_for(
    r: &ValidatedRollout,
    c: &Canary,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
    out: Outcome,
    reason: String,
) -> Outcome {
    analysis::abort_for(d, out, &reason, |d| abort(r, c, o, d, stable, Some(d.now)))
}

/// True when the planned traffic gives the canary more than the mesh shows: a higher weight, or
/// a managed route that is not there yet.
fn raises_traffic(o: &Observed, out: &Outcome) -> bool {
    let Some(desired) = &out.desired_traffic else {
        return false;
    };
    let shown = o.traffic.as_ref();
    let weight = shown.and_then(|t| t.canary_weight).unwrap_or(0);
    let present = |name: &String| shown.is_some_and(|t| t.managed_routes.contains(name));
    let mut routes = desired
        .header_routes
        .iter()
        .map(|r| &r.name)
        .chain(desired.mirror_routes.iter().map(|r| &r.name));
    desired.canary_weight > weight || routes.any(|name| !present(name))
}

/// Finishes a release: full-size canary, stable Service and subset onto it, weight back to 0.
fn promote(
    r: &ValidatedRollout,
    c: &Canary,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
    mut out: Outcome,
) -> Outcome {
    let new = &r.template_hash;
    out.unpause();
    ensure_scale(r, o, d, new, r.replicas);
    let available = o.replica_set(new).map_or(0, |rs| rs.available);
    if available < r.replicas {
        out.progress = progressing("ReplicaSetUpdated", waiting_for(o, new, r.replicas));
        hold_traffic(r, c, o, d, &mut out, (c.steps.len(), stable));
        return out;
    }
    // The new pods are fully available, so every selector may point at them at any weight.
    point_services(c, o, d, new, new);
    let traffic = stable_only(c, new);
    set_traffic(c, o, d, &traffic);
    out.desired_traffic = c.traffic_routing.then_some(traffic);
    // From this apply on, the new pods take the stable traffic: the status must say they are
    // stable, or a template change in between would treat them as a canary (and shrink them).
    out.stable_hash = Some(new.clone());
    out.promote_full = false;
    if d.intents.is_empty() {
        out.completed = true;
        out.progress = progressing("NewReplicaSetAvailable", "Rollout is healthy".into());
        // The old stable version starts its scale-down delay in this same pass: a plan with no
        // intents and no timer might be the last reconcile for a long while.
        cleanup::scale_down_others(
            r,
            Serving::Canary(c),
            o,
            d,
            &[new.as_str()],
            Some(c.scale_down_delay),
        );
    } else {
        let msg = format!("promoting {new}: moving stable traffic off {}", stable.hash);
        out.progress = progressing("RolloutPromoting", msg);
    }
    out
}

/// Aborts: all traffic to stable, read back, and only then the canary scales down.
fn abort(
    r: &ValidatedRollout,
    c: &Canary,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
    aborted_at: Option<DateTime<Utc>>,
) -> Outcome {
    let mut out = Outcome::carry(o, Some(&stable.hash));
    out.abort = true;
    out.aborted_at = Some(aborted_at.unwrap_or(d.now));
    out.current_step_index = Some(0);
    out.unpause();
    out.promote_full = false;
    ensure_scale(r, o, d, &stable.hash, r.replicas);
    let canary_hash = o
        .canary_service_hash
        .clone()
        .unwrap_or_else(|| r.template_hash.clone());
    let traffic = DesiredTraffic {
        subsets: c.subset_split.then(|| SubsetHashes {
            stable: stable.hash.clone(),
            canary: current_subsets(o).map_or(canary_hash, |s| s.canary),
        }),
        ..DesiredTraffic::all_stable()
    };
    if stable.available > 0 {
        // The stable Service selects the stable pods before the weight moves back to it.
        if let Some(service) = &c.stable_service {
            point_service(o.stable_service_hash.as_deref(), d, service, &stable.hash);
        }
        set_traffic(c, o, d, &traffic);
    }
    out.desired_traffic = c.traffic_routing.then_some(traffic);
    // Say "returned" only once the read-back shows it.
    let verified = d.intents.is_empty();
    if verified {
        let protected = [stable.hash.as_str()];
        cleanup::scale_down_others(
            r,
            Serving::Canary(c),
            o,
            d,
            &protected,
            c.abort_scale_down_delay,
        );
    }
    analysis::terminate_all(o, d);
    let done = if verified {
        "Rollout aborted: traffic returned to stable"
    } else {
        "Rollout aborted: returning traffic to stable"
    };
    out.progress = ("RolloutAborted".into(), analysis::abort_message(&out, done));
    out
}

/// Scales toward a step's target; true when the cluster shows it (pods and verified traffic).
fn reach_target(
    r: &ValidatedRollout,
    c: &Canary,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
    t: &Target,
    out: &mut Outcome,
) -> bool {
    let new = r.template_hash.as_str();
    let canary = o.replica_set(new);
    let available = canary.map_or(0, |rs| rs.available);
    if !c.traffic_routing {
        // The weight is the share of pods: the canary gives pods back only as fast as stable
        // has them available, as stable does below.
        let floor = (r.replicas - stable.available).max(0);
        let replicas = canary.map_or(t.canary_replicas, |rs| {
            t.canary_replicas.max(floor.min(rs.replicas))
        });
        ensure_scale(r, o, d, new, replicas);
        scale_stable_for_basic_canary(r, o, d, stable, t, available);
        out.progress = progressing("ReplicaSetUpdated", waiting_for(o, new, t.canary_replicas));
        return available >= t.canary_replicas && d.intents.is_empty();
    }
    let traffic = canary_traffic(c, o, stable, new, available, t);
    // A smaller canary must first lose the traffic it can no longer carry: it shrinks only
    // once the mesh shows the step's (lower) weight.
    let shrinking = canary.is_some_and(|rs| t.canary_replicas < rs.replicas);
    let shown = traffic.canary_weight == t.weight
        && o.traffic.as_ref().is_some_and(|x| x.matches(&traffic));
    if !shrinking || shown {
        ensure_scale(r, o, d, new, t.canary_replicas);
    }
    // The canary Service moves onto the new pods only once the read-back shows it carries no
    // traffic: a superseded canary first loses its weight, whether or not the new pods serve.
    if let Some(service) = c.canary_service.as_ref().filter(|_| traffic_is_zero(o)) {
        point_service(o.canary_service_hash.as_deref(), d, service, new);
    }
    set_traffic(c, o, d, &traffic);
    let reached = available >= t.canary_replicas && traffic.canary_weight == t.weight;
    out.desired_traffic = Some(traffic);
    out.progress = progressing("ReplicaSetUpdated", step_message(o, new, t, reached));
    reached && d.intents.is_empty()
}

/// Without a mesh the weight is the share of pods: stable gives up pods only once canary pods
/// are available to take the load.
fn scale_stable_for_basic_canary(
    r: &ValidatedRollout,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
    t: &Target,
    canary_available: i32,
) {
    let wanted = (r.replicas - t.canary_replicas).max(0);
    let floor = (r.replicas - canary_available).max(0);
    ensure_scale(r, o, d, &stable.hash, wanted.max(floor));
}

/// The traffic a step may have now: its weight only once the canary is fully scaled for it,
/// never more than it, and nothing at all while the canary has no available pod.
fn canary_traffic(
    c: &Canary,
    o: &Observed,
    stable: &ReplicaSetView,
    new: &str,
    available: i32,
    t: &Target,
) -> DesiredTraffic {
    let observed = o
        .traffic
        .as_ref()
        .and_then(|tr| tr.canary_weight)
        .unwrap_or(0);
    let current = current_subsets(o);
    // Like the canary Service, the canary subset moves only while it carries no traffic.
    let subsets_safe = traffic_is_zero(o) || current.as_ref().is_some_and(|s| s.canary == new);
    let subsets = if c.subset_split {
        let canary = if subsets_safe {
            new.to_owned()
        } else {
            current
                .as_ref()
                .map_or_else(|| stable.hash.clone(), |s| s.canary.clone())
        };
        Some(SubsetHashes {
            stable: stable.hash.clone(),
            canary,
        })
    } else {
        None
    };
    let pointed = !c.subset_split || subsets_safe;
    let service_ok = c.canary_service.is_none() || o.canary_service_hash.as_deref() == Some(new);
    let serving = available > 0 && pointed && (service_ok || c.subset_split);
    let weight = if !serving {
        0
    } else if available >= t.canary_replicas {
        t.weight
    } else {
        observed.min(t.weight)
    };
    // Lowering the weight moves traffic to stable: not while stable has no pod to take it
    // (whichever version the canary destination selects keeps it meanwhile).
    let weight = if stable.available == 0 {
        weight.max(observed)
    } else {
        weight
    };
    let routes_ok = serving;
    DesiredTraffic {
        canary_weight: weight,
        header_routes: if routes_ok {
            t.header_routes.clone()
        } else {
            Vec::new()
        },
        mirror_routes: if routes_ok {
            t.mirror_routes.clone()
        } else {
            Vec::new()
        },
        subsets,
    }
}

/// While holding (spec.paused, waiting for the promotion to scale up) the traffic stays as the
/// mesh shows it, except what the invariants forbid: canary traffic to a version that is not the
/// current one or has no available pod (2), or a weight above the current step's (1) — and
/// never onto a stable version with no available pod.
fn hold_traffic(
    r: &ValidatedRollout,
    c: &Canary,
    o: &Observed,
    d: &mut Draft,
    out: &mut Outcome,
    (index, stable): (usize, &ReplicaSetView),
) {
    let Some(t) = o.traffic.as_ref().filter(|_| c.traffic_routing) else {
        return;
    };
    if stable.available == 0 {
        return;
    }
    let new = r.template_hash.as_str();
    let destination = if c.subset_split {
        t.subsets.as_ref().map(|s| s.canary.as_str())
    } else {
        o.canary_service_hash.as_deref()
    };
    let serving = destination == Some(new) && o.replica_set(new).is_some_and(|rs| rs.available > 0);
    let target = Target::at(r, c, index);
    let held = DesiredTraffic {
        canary_weight: t
            .canary_weight
            .unwrap_or(0)
            .min(if serving { target.weight } else { 0 }),
        header_routes: if serving {
            target.header_routes
        } else {
            Vec::new()
        },
        mirror_routes: if serving {
            target.mirror_routes
        } else {
            Vec::new()
        },
        // The stable subset selects the stable pods (which serve) before any weight moves.
        subsets: t.subsets.clone().map(|s| SubsetHashes {
            stable: stable.hash.clone(),
            ..s
        }),
    };
    let too_high = t.canary_weight.is_none_or(|w| w > held.canary_weight);
    let moved = held.subsets.is_some() && held.subsets != t.subsets;
    if too_high || moved || (!serving && !t.managed_routes.is_empty()) {
        d.push(Intent::SetTraffic(held.clone()));
    }
    out.desired_traffic = Some(held);
}

fn stable_only(c: &Canary, hash: &str) -> DesiredTraffic {
    DesiredTraffic {
        subsets: c.subset_split.then(|| SubsetHashes {
            stable: hash.to_owned(),
            canary: hash.to_owned(),
        }),
        ..DesiredTraffic::all_stable()
    }
}

/// Emits `SetTraffic` unless there is no mesh (a basic canary) or the read-back already shows
/// `desired`.
fn set_traffic(c: &Canary, o: &Observed, d: &mut Draft, desired: &DesiredTraffic) {
    let shown = o.traffic.as_ref().is_some_and(|t| t.matches(desired));
    if c.traffic_routing && !shown {
        d.push(Intent::SetTraffic(desired.clone()));
    }
}

/// True when the read-back shows no canary traffic; an unknown read-back is not zero.
fn traffic_is_zero(o: &Observed) -> bool {
    o.traffic
        .as_ref()
        .is_some_and(|t| t.canary_weight == Some(0) && t.managed_routes.is_empty())
}

fn current_subsets(o: &Observed) -> Option<SubsetHashes> {
    o.traffic.as_ref().and_then(|t| t.subsets.clone())
}

fn point_services(c: &Canary, o: &Observed, d: &mut Draft, stable: &str, canary: &str) {
    if let Some(service) = &c.stable_service {
        point_service(o.stable_service_hash.as_deref(), d, service, stable);
    }
    if let Some(service) = &c.canary_service {
        point_service(o.canary_service_hash.as_deref(), d, service, canary);
    }
}

fn step_message(o: &Observed, new: &str, t: &Target, reached: bool) -> String {
    if reached {
        return format!("canary at weight {} verified", t.weight);
    }
    let observed = o.traffic.as_ref().and_then(|x| x.canary_weight);
    let observed = observed.map_or_else(|| "unknown".to_owned(), |w| w.to_string());
    format!(
        "{}; canary weight {observed} of {}",
        waiting_for(o, new, t.canary_replicas),
        t.weight
    )
}
