//! The status stage: reads what the last reconcile persisted, renders the planner's next status
//! into the API shape, and writes it once.
//!
//! Guarantees:
//! - One server-side apply of the whole status under the field manager `sluice`, skipped when
//!   the rendered status equals the stored one (an idle Rollout costs no write).
//! - The apply carries the resourceVersion the decision was made on: if the user changed the
//!   Rollout meanwhile (a promote or an abort written to `status`), the write fails with a
//!   conflict and the reconcile runs again on fresh data instead of overwriting the request.

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use sluice_analysis::time::{from_api, to_api};
use sluice_crds as api;
use sluice_crds::{Rollout, RolloutStatus};

use super::model::{
    Condition, ConditionKind, PauseCondition, PauseReason, Persisted, RunPhase, RunStatus,
};
use super::plan::{NextStatus, Phase};
use super::validate::Validated;
use crate::FIELD_MANAGER;

/// What the last reconcile (and the user) left in `status`.
pub fn persisted(status: Option<&RolloutStatus>) -> Persisted {
    let Some(s) = status else {
        return Persisted::default();
    };
    Persisted {
        stable_hash: s.stable_rs.clone(),
        current_hash: s.current_pod_hash.clone(),
        current_step_index: s.current_step_index.and_then(|i| usize::try_from(i).ok()),
        pause_conditions: s.pause_conditions.iter().map(pause_from_api).collect(),
        controller_pause: s.controller_pause,
        abort: s.abort,
        aborted_at: s.aborted_at.as_ref().map(from_api),
        promote_full: s.promote_full,
        conditions: s.conditions.iter().filter_map(condition_from_api).collect(),
        observed_generation: s.observed_generation,
        verified_weight: s
            .canary
            .as_ref()
            .and_then(|c| c.weights.as_ref())
            .filter(|w| w.verified == Some(true))
            .and_then(|w| u8::try_from(i32::from(w.canary.weight)).ok()),
        // A blue-green Rollout keeps its pre- and post-promotion runs where a canary keeps
        // its step and background runs (only one of the two status blocks is ever written).
        step_run: s
            .canary
            .as_ref()
            .and_then(|c| c.current_step_analysis_run_status.as_ref())
            .or_else(|| bg(s).and_then(|b| b.pre_promotion_analysis_run_status.as_ref()))
            .map(run_from_api),
        background_run: s
            .canary
            .as_ref()
            .and_then(|c| c.current_background_analysis_run_status.as_ref())
            .or_else(|| bg(s).and_then(|b| b.post_promotion_analysis_run_status.as_ref()))
            .map(run_from_api),
        promoting: bg(s).is_some_and(|b| b.scale_up_preview_check_point),
        active_selector: bg(s).and_then(|b| b.active_selector.clone()),
    }
}

fn bg(s: &RolloutStatus) -> Option<&api::BlueGreenStatus> {
    s.blue_green.as_ref()
}

fn run_from_api(r: &api::RolloutAnalysisRunStatus) -> RunStatus {
    RunStatus {
        name: r.name.clone(),
        phase: match r.status {
            api::AnalysisPhase::Pending => RunPhase::Pending,
            api::AnalysisPhase::Running => RunPhase::Running,
            api::AnalysisPhase::Successful => RunPhase::Successful,
            api::AnalysisPhase::Failed => RunPhase::Failed,
            api::AnalysisPhase::Error => RunPhase::Error,
            api::AnalysisPhase::Inconclusive => RunPhase::Inconclusive,
        },
        message: r.message.clone().unwrap_or_default(),
    }
}

fn run_to_api(r: &RunStatus) -> api::RolloutAnalysisRunStatus {
    let status = match r.phase {
        RunPhase::Pending => api::AnalysisPhase::Pending,
        RunPhase::Running => api::AnalysisPhase::Running,
        RunPhase::Successful => api::AnalysisPhase::Successful,
        RunPhase::Failed => api::AnalysisPhase::Failed,
        RunPhase::Error => api::AnalysisPhase::Error,
        RunPhase::Inconclusive => api::AnalysisPhase::Inconclusive,
    };
    api::RolloutAnalysisRunStatus {
        name: r.name.clone(),
        status,
        message: Some(r.message.clone()).filter(|m| !m.is_empty()),
    }
}

/// The API status for `next`.
pub fn render(next: &NextStatus, v: &Validated) -> RolloutStatus {
    RolloutStatus {
        phase: Some(phase(next.phase)),
        message: Some(next.message.clone()).filter(|m| !m.is_empty()),
        observed_generation: Some(next.observed_generation),
        current_pod_hash: Some(next.current_hash.clone()),
        current_step_hash: None,
        stable_rs: next.stable_hash.clone(),
        current_step_index: next.current_step_index.and_then(|i| i32::try_from(i).ok()),
        replicas: Some(next.replicas),
        updated_replicas: Some(next.updated_replicas),
        ready_replicas: Some(next.ready_replicas),
        available_replicas: Some(next.available_replicas),
        collision_count: None,
        canary: next.blue_green.is_none().then(|| api::CanaryStatus {
            weights: next.weights.as_ref().map(|w| weights(w, v)),
            current_step_analysis_run_status: next.step_run.as_ref().map(run_to_api),
            current_background_analysis_run_status: next.background_run.as_ref().map(run_to_api),
        }),
        blue_green: next.blue_green.as_ref().map(|b| api::BlueGreenStatus {
            active_selector: b.active.clone(),
            preview_selector: b.preview.clone(),
            scale_up_preview_check_point: b.promoting,
            pre_promotion_analysis_run_status: next.step_run.as_ref().map(run_to_api),
            post_promotion_analysis_run_status: next.background_run.as_ref().map(run_to_api),
        }),
        abort: next.abort,
        aborted_at: next.aborted_at.map(to_api),
        promote_full: next.promote_full,
        pause_conditions: next.pause_conditions.iter().map(pause_to_api).collect(),
        controller_pause: next.controller_pause,
        conditions: next.conditions.iter().map(condition_to_api).collect(),
        selector: Some(v.selector_string.clone()),
    }
}

/// The status of a Rollout whose spec is invalid: everything else kept, phase `Degraded`,
/// condition `InvalidSpec` with the problems.
pub fn invalid(
    previous: Option<&RolloutStatus>,
    message: &str,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> RolloutStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let old = status
        .conditions
        .iter()
        .filter_map(condition_from_api)
        .find(|c| c.kind == ConditionKind::InvalidSpec);
    let condition = super::plan::condition(
        old.as_ref(),
        ConditionKind::InvalidSpec,
        true,
        "InvalidSpec".into(),
        message.into(),
        now,
    );
    status
        .conditions
        .retain(|c| c.type_ != api::ConditionType::InvalidSpec);
    status.conditions.push(condition_to_api(&condition));
    status.phase = Some(api::RolloutPhase::Degraded);
    status.message = Some(message.to_owned());
    status.observed_generation = generation;
    status
}

/// Writes `status` unless the stored one is equal. Returns whether a write happened.
pub async fn write(
    api: &Api<Rollout>,
    rollout: &Rollout,
    status: RolloutStatus,
) -> Result<bool, kube::Error> {
    if rollout.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let mut body = json!(status);
    // `abort` and `promoteFull` are also written by users (`kubectl sluice abort`, `promote
    // --full`) under their own field manager: leaving a cleared request out of the apply would
    // only drop Sluice's ownership and keep the user's `true` (and the next release would be
    // aborted or fully promoted at once). A cleared request is written as an explicit `false`.
    if let Some(previous) = rollout.status.as_ref() {
        if previous.abort && !status.abort {
            body["abort"] = json!(false);
        }
        if previous.promote_full && !status.promote_full {
            body["promoteFull"] = json!(false);
        }
    }
    let patch = json!({
        "apiVersion": api::API_VERSION,
        "kind": "Rollout",
        "metadata": {"name": rollout.name_any(), "resourceVersion": rollout.resource_version()},
        "status": body,
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&rollout.name_any(), &pp, &Patch::Apply(&patch))
        .await?;
    Ok(true)
}

fn weights(w: &super::plan::Weights, v: &Validated) -> api::TrafficWeights {
    let weight = |n: u8| api::Weight::new(i32::from(n)).unwrap_or(api::Weight::ZERO);
    api::TrafficWeights {
        canary: api::WeightDestination {
            weight: weight(w.canary),
            service_name: v.canary_service.clone(),
            pod_template_hash: Some(w.canary_hash.clone()),
        },
        stable: api::WeightDestination {
            weight: weight(100 - w.canary.min(100)),
            service_name: v.stable_service.clone(),
            pod_template_hash: Some(w.stable_hash.clone()),
        },
        verified: Some(w.verified),
    }
}

fn phase(p: Phase) -> api::RolloutPhase {
    match p {
        Phase::Healthy => api::RolloutPhase::Healthy,
        Phase::Progressing => api::RolloutPhase::Progressing,
        Phase::Paused => api::RolloutPhase::Paused,
        Phase::Degraded => api::RolloutPhase::Degraded,
    }
}

fn pause_from_api(p: &api::PauseCondition) -> PauseCondition {
    let reason = match p.reason {
        api::PauseReason::CanaryPauseStep => PauseReason::CanaryPauseStep,
        api::PauseReason::BlueGreenPause => PauseReason::BlueGreenPause,
        api::PauseReason::InconclusiveAnalysisRun => PauseReason::InconclusiveAnalysis,
        api::PauseReason::AnalysisStep => PauseReason::AnalysisStep,
    };
    PauseCondition {
        reason,
        start_time: from_api(&p.start_time),
    }
}

fn pause_to_api(p: &PauseCondition) -> api::PauseCondition {
    let reason = match p.reason {
        PauseReason::CanaryPauseStep => api::PauseReason::CanaryPauseStep,
        PauseReason::BlueGreenPause => api::PauseReason::BlueGreenPause,
        PauseReason::AnalysisStep => api::PauseReason::AnalysisStep,
        PauseReason::InconclusiveAnalysis => api::PauseReason::InconclusiveAnalysisRun,
    };
    api::PauseCondition {
        reason,
        start_time: to_api(p.start_time),
    }
}

fn kind_from_api(t: api::ConditionType) -> Option<ConditionKind> {
    Some(match t {
        api::ConditionType::Progressing => ConditionKind::Progressing,
        api::ConditionType::Available => ConditionKind::Available,
        api::ConditionType::Paused => ConditionKind::Paused,
        api::ConditionType::Healthy => ConditionKind::Healthy,
        api::ConditionType::InvalidSpec => ConditionKind::InvalidSpec,
        api::ConditionType::ReplicaFailure | api::ConditionType::Completed => return None,
    })
}

fn kind_to_api(k: ConditionKind) -> api::ConditionType {
    match k {
        ConditionKind::Progressing => api::ConditionType::Progressing,
        ConditionKind::Available => api::ConditionType::Available,
        ConditionKind::Paused => api::ConditionType::Paused,
        ConditionKind::Healthy => api::ConditionType::Healthy,
        ConditionKind::InvalidSpec => api::ConditionType::InvalidSpec,
    }
}

fn condition_from_api(c: &api::Condition) -> Option<Condition> {
    Some(Condition {
        kind: kind_from_api(c.type_)?,
        status: c.status == api::ConditionStatus::True,
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_update_time: from_api(&c.last_update_time),
        last_transition_time: from_api(&c.last_transition_time),
    })
}

fn condition_to_api(c: &Condition) -> api::Condition {
    api::Condition {
        type_: kind_to_api(c.kind),
        status: if c.status {
            api::ConditionStatus::True
        } else {
            api::ConditionStatus::False
        },
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_update_time: to_api(c.last_update_time),
        last_transition_time: to_api(c.last_transition_time),
    }
}
