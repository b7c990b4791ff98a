//! Blue-green planning: preview, pre-promotion analysis, the switch of the active Service,
//! post-promotion analysis, abort and rollback.
//!
//! A release moves through stages derived from the status and the world, never from memory:
//! the preview ReplicaSet scales to `previewReplicaCount` behind the preview Service; its
//! pre-promotion analysis and the pause before the switch gate `scaleUpPreviewCheckPoint`;
//! once that is set the preview scales to full size, and the active Service moves to it only
//! when every pod is available. The old version stays stable, at full size and with no
//! scale-down deadline, until the post-promotion analysis passed: a failure moves the active
//! Service back to pods that never stopped running.
//!
//! Guarantees (DESIGN section 3, blue-green form):
//! - The active Service is only pointed at a ReplicaSet with `replicas` available pods.
//! - The stable ReplicaSet keeps `replicas` pods while any other version is active or being
//!   judged; others lose their pods only when the active Service does not select them, and
//!   only after their delay (persisted, so a restart neither shortens nor repeats it).
//! - A Failed or Error run aborts; an abort returns the active Service to stable before the
//!   new version loses a pod.

use super::analysis::{self, RunKind};
use super::cleanup::{self, Serving};
use super::deadline::{abort_stuck, check_deadline, keep_deadline};
use super::pause::{Pause, pause_done};
use super::replicas::{ensure_scale, healthy_or_waiting, point_service, progressing, waiting_for};
use super::{BlueGreenState, Draft, Intent, Outcome};
use crate::rollout::model::{BlueGreen, Observed, PauseReason, ReplicaSetView, ValidatedRollout};

pub(crate) fn plan(r: &ValidatedRollout, b: &BlueGreen, o: &Observed, d: &mut Draft) -> Outcome {
    let stable = o
        .persisted
        .stable_hash
        .as_deref()
        .and_then(|h| o.replica_set(h));
    let mut out = match stable {
        None => first_deploy(r, b, o, d),
        Some(stable) if stable.hash == r.template_hash => settle(r, b, o, d, stable),
        Some(stable) => release(r, b, o, d, stable),
    };
    out.blue_green = Some(selectors(b, o, d, out.promoting));
    out
}

/// The active Service's selector now (`None`: it selects no version yet).
fn active(o: &Observed) -> Option<&str> {
    o.stable_service_hash.as_deref()
}

/// What the Services select once the plan is applied, and the checkpoint.
fn selectors(b: &BlueGreen, o: &Observed, d: &Draft, promoting: bool) -> BlueGreenState {
    let pointed = |service: &str, now: Option<&str>| {
        d.intents
            .iter()
            .rev()
            .find_map(|i| match i {
                Intent::PointService { service: s, hash } if s == service => Some(hash.clone()),
                _ => None,
            })
            .or_else(|| now.map(str::to_owned))
    };
    BlueGreenState {
        active: pointed(&b.active_service, active(o)),
        preview: b
            .preview_service
            .as_deref()
            .and_then(|s| pointed(s, o.canary_service_hash.as_deref())),
        promoting,
    }
}

/// No stable version yet: the first template at full size, then both Services onto it.
fn first_deploy(r: &ValidatedRollout, b: &BlueGreen, o: &Observed, d: &mut Draft) -> Outcome {
    let mut out = Outcome::carry(o, None);
    if rest(r, b, o, d, &r.template_hash, &mut out) {
        out.stable_hash = Some(r.template_hash.clone());
    }
    out
}

/// The template is the stable one: steady state, or a rollback to it (no analysis, no pause).
fn settle(
    r: &ValidatedRollout,
    b: &BlueGreen,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
) -> Outcome {
    let mut out = Outcome::carry(o, Some(&stable.hash));
    out.step_run = None;
    out.background_run = None;
    analysis::terminate_others(o, d, &out);
    rest(r, b, o, d, &stable.hash, &mut out);
    out
}

/// No release in flight: `hash` at full size behind both Services, every other version scaled
/// down after its delay (a template replaced before it was ever stable too). True once done.
fn rest(
    r: &ValidatedRollout,
    b: &BlueGreen,
    o: &Observed,
    d: &mut Draft,
    hash: &str,
    out: &mut Outcome,
) -> bool {
    out.current_step_index = None;
    out.start_fresh();
    let served = serve(r, b, o, d, hash);
    out.completed = served && d.intents.is_empty();
    cleanup::scale_down_others(
        r,
        Serving::BlueGreen,
        o,
        d,
        &[hash],
        Some(b.scale_down_delay),
    );
    out.progress = healthy_or_waiting(o, hash, r.replicas, out.completed);
    // Pods that never come are reported; with nothing to go back to, never aborted.
    check_deadline(r, o, d, out);
    out.completed
}

/// Full size for `hash`, then (with every pod available) the active and preview Services onto
/// it. True once both select it.
fn serve(r: &ValidatedRollout, b: &BlueGreen, o: &Observed, d: &mut Draft, hash: &str) -> bool {
    ensure_scale(r, o, d, hash, r.replicas);
    if !fully_available(r, o, hash) {
        return false;
    }
    point_service(active(o), d, &b.active_service, hash);
    if let Some(preview) = &b.preview_service {
        point_service(o.canary_service_hash.as_deref(), d, preview, hash);
    }
    true
}

fn fully_available(r: &ValidatedRollout, o: &Observed, hash: &str) -> bool {
    o.replica_set(hash)
        .is_some_and(|rs| rs.available >= r.replicas && rs.replicas >= r.replicas)
}

/// The persisted status already tracks this template: its pause and runs are this release's.
fn same_release(r: &ValidatedRollout, o: &Observed) -> bool {
    o.persisted.current_hash.as_deref() == Some(r.template_hash.as_str())
}

/// A new template is being released against the stable one.
fn release(
    r: &ValidatedRollout,
    b: &BlueGreen,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
) -> Outcome {
    let mut out = Outcome::carry(o, Some(&stable.hash));
    out.current_step_index = None;
    out.begin_attempt(o, &r.template_hash);
    if out.abort {
        let mut aborted = abort(r, b, o, d, stable, out.aborted_at);
        keep_deadline(o, &mut aborted);
        return aborted;
    }
    // The version to return to keeps its full size until another one is stable.
    ensure_scale(r, o, d, &stable.hash, r.replicas);
    if r.paused {
        out.progress = (
            "RolloutPaused".into(),
            "Rollout is paused by spec.paused".into(),
        );
        return out;
    }
    let mut out = stages(r, b, o, d, stable, out);
    if out.abort {
        return out;
    }
    analysis::terminate_others(o, d, &out);
    check_deadline(r, o, d, &mut out);
    if out.deadline_exceeded && r.progress_deadline_abort {
        return abort_stuck(d, &out, |d| abort(r, b, o, d, stable, Some(d.now)));
    }
    out
}

/// Preview, pre-promotion gate, switch, post-promotion gate, in that order.
fn stages(
    r: &ValidatedRollout,
    b: &BlueGreen,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
    mut out: Outcome,
) -> Outcome {
    let new = r.template_hash.as_str();
    let switched = active(o) == Some(new) && fully_available(r, o, new);
    if switched {
        // The switch happened (its status write may have been lost): it had begun.
        out.promoting = true;
    }
    let superseded = active(o).is_some_and(|a| a != new && a != stable.hash);
    if superseded && fully_available(r, o, &stable.hash) {
        // A version that was switched to but never confirmed is not kept in production while
        // another one is previewed: back to stable first.
        point_service(active(o), d, &b.active_service, &stable.hash);
    }
    let keep = [stable.hash.as_str(), new];
    cleanup::scale_down_others(r, Serving::BlueGreen, o, d, &keep, Some(b.scale_down_delay));
    let wanted = if out.promoting {
        r.replicas
    } else {
        b.preview_replicas
    };
    // The preview never shrinks before the switch: pods scaled up for a switch that a lost (or
    // not yet cached) status write forgot would be deleted only to be made again.
    let scale = o
        .replica_set(new)
        .map_or(wanted, |rs| wanted.max(rs.replicas.min(r.replicas)));
    ensure_scale(r, o, d, new, scale);
    if let Some(preview) = &b.preview_service {
        point_service(o.canary_service_hash.as_deref(), d, preview, new);
    }
    let available = o.replica_set(new).map_or(0, |rs| rs.available);
    if available < wanted || o.replica_set(new).is_none_or(|rs| rs.replicas < wanted) {
        out.progress = progressing("ReplicaSetUpdated", waiting_for(o, new, wanted));
        return out;
    }
    if !out.promoting {
        match before_switch(r, b, o, d, &mut out) {
            Ok(true) => {
                out.promoting = true;
                out.unpause();
                // Scale up at once rather than a reconcile later.
                if b.preview_replicas < r.replicas {
                    ensure_scale(r, o, d, new, r.replicas);
                    out.progress = progressing("RolloutPromoting", waiting_for(o, new, r.replicas));
                    return out;
                }
            }
            Ok(false) => return out,
            Err(failure) => return abort_for(r, b, o, d, stable, out, failure),
        }
    }
    if !switched {
        if !superseded {
            point_service(active(o), d, &b.active_service, new);
        }
        out.progress = progressing(
            "RolloutPromoting",
            format!("switching Service {} to {new}", b.active_service),
        );
        return out;
    }
    match after_switch(r, b, o, d, &mut out) {
        Ok(true) => promoted(r, out),
        Ok(false) => out,
        Err(failure) => abort_for(r, b, o, d, stable, out, failure),
    }
}

/// The pre-promotion analysis and the pause before the switch: `Ok(true)` when the switch may
/// begin, `Err` when the analysis failed.
fn before_switch(
    r: &ValidatedRollout,
    b: &BlueGreen,
    o: &Observed,
    d: &mut Draft,
    out: &mut Outcome,
) -> Result<bool, String> {
    if out.promote_full {
        return Ok(true);
    }
    let resumed = same_release(r, o);
    if b.pre_promotion_analysis {
        let passed = gate(r, o, d, out, RunKind::PrePromotion, resumed)?;
        if !passed {
            return Ok(false);
        }
    }
    let Some(after) = b.auto_promotion else {
        return Ok(pause_done(o, d, out, blue_green_pause(None, resumed)));
    };
    if after.is_zero() {
        return Ok(true);
    }
    Ok(pause_done(
        o,
        d,
        out,
        blue_green_pause(Some(after), resumed),
    ))
}

fn blue_green_pause(duration: Option<std::time::Duration>, resumed: bool) -> Pause {
    Pause {
        reason: PauseReason::BlueGreenPause,
        duration,
        resumed,
    }
}

/// The post-promotion analysis: `Ok(true)` once the new version may become stable.
fn after_switch(
    r: &ValidatedRollout,
    b: &BlueGreen,
    o: &Observed,
    d: &mut Draft,
    out: &mut Outcome,
) -> Result<bool, String> {
    if !b.post_promotion_analysis || out.promote_full {
        return Ok(true);
    }
    gate(r, o, d, out, RunKind::PostPromotion, same_release(r, o))
}

/// One analysis gate: `Ok(true)` once its run passed (or an inconclusive one was promoted),
/// `Err(reason)` when it failed.
fn gate(
    r: &ValidatedRollout,
    o: &Observed,
    d: &mut Draft,
    out: &mut Outcome,
    kind: RunKind,
    resumed: bool,
) -> Result<bool, String> {
    let waiting = match kind {
        RunKind::PostPromotion => "waiting for post-promotion AnalysisRun",
        _ => "waiting for pre-promotion AnalysisRun",
    };
    analysis::gate_or_pause((r, o, d), out, kind, resumed, waiting)
}

/// The new version is stable. The old one starts its scale-down delay in the next pass, once
/// the status names the new one: until then a lost status write would still call the old one
/// stable, and it must have its pods for that.
fn promoted(r: &ValidatedRollout, mut out: Outcome) -> Outcome {
    out.unpause();
    out.promote_full = false;
    out.stable_hash = Some(r.template_hash.clone());
    out.promoting = false;
    out.completed = true;
    out.progress = progressing("NewReplicaSetAvailable", "Rollout is healthy".into());
    out
}

/// Aborts because an analysis failed.
fn abort_for(
    r: &ValidatedRollout,
    b: &BlueGreen,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
    out: Outcome,
    reason: String,
) -> Outcome {
    analysis::abort_for(d, out, &reason, |d| abort(r, b, o, d, stable, Some(d.now)))
}

/// Aborts: the active Service back on the (fully available) stable pods, read back, and only
/// then the new version scales down after `abortScaleDownDelaySeconds`.
fn abort(
    r: &ValidatedRollout,
    b: &BlueGreen,
    o: &Observed,
    d: &mut Draft,
    stable: &ReplicaSetView,
    aborted_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Outcome {
    let mut out = Outcome::carry(o, Some(&stable.hash));
    out.abort = true;
    out.aborted_at = Some(aborted_at.unwrap_or(d.now));
    out.current_step_index = None;
    out.unpause();
    out.promote_full = false;
    out.promoting = false;
    ensure_scale(r, o, d, &stable.hash, r.replicas);
    let returned = active(o) == Some(stable.hash.as_str());
    if !returned && fully_available(r, o, &stable.hash) {
        point_service(active(o), d, &b.active_service, &stable.hash);
    }
    if returned {
        cleanup::scale_down_others(
            r,
            Serving::BlueGreen,
            o,
            d,
            &[stable.hash.as_str()],
            b.abort_scale_down_delay,
        );
    }
    analysis::terminate_all(o, d);
    let done = if returned {
        format!(
            "Rollout aborted: Service {} is back on stable",
            b.active_service
        )
    } else {
        format!(
            "Rollout aborted: returning Service {} to stable",
            b.active_service
        )
    };
    out.progress = (
        "RolloutAborted".into(),
        analysis::abort_message(&out, &done),
    );
    out
}
