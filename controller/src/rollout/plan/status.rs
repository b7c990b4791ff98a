//! The next status of a Rollout, and the transitions between the last one and it.
//!
//! The status is computed whole (DESIGN section 3: one write) from the planner's outcome and the
//! observed ReplicaSets. Conditions keep their `lastTransitionTime` unless their status flips,
//! and their `lastUpdateTime` unless their message changes, so an idle Rollout computes exactly
//! the status it already has and the write is skipped.

use chrono::{DateTime, Utc};

use super::Outcome;
use super::deadline::{DEADLINE_PREFIX, DEADLINE_REASON};
use crate::rollout::model::{
    Condition, ConditionKind, Observed, PauseCondition, Persisted, Strategy, ValidatedRollout,
};

/// `status.phase`, as in Argo Rollouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Healthy,
    Progressing,
    Paused,
    Degraded,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Healthy => "Healthy",
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Degraded => "Degraded",
        }
    }
}

/// Canary and stable weights: what was asked and whether the read-back shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Weights {
    pub canary: u8,
    pub canary_hash: String,
    pub stable_hash: String,
    pub verified: bool,
}

/// The complete status the apply stage writes (skipped when equal to the current one).
#[derive(Clone, Debug, PartialEq)]
pub struct NextStatus {
    pub phase: Phase,
    pub message: String,
    pub observed_generation: i64,
    pub current_hash: String,
    pub stable_hash: Option<String>,
    pub current_step_index: Option<usize>,
    pub replicas: i32,
    pub updated_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    pub weights: Option<Weights>,
    pub abort: bool,
    pub aborted_at: Option<DateTime<Utc>>,
    pub promote_full: bool,
    pub pause_conditions: Vec<PauseCondition>,
    pub controller_pause: bool,
    pub conditions: Vec<Condition>,
    /// The AnalysisRun of the current step and the background one.
    pub step_run: Option<crate::rollout::model::RunStatus>,
    pub background_run: Option<crate::rollout::model::RunStatus>,
    /// Blue-green: the Services' selectors and the switch checkpoint.
    pub blue_green: Option<super::BlueGreenState>,
}

/// Something that happened in this reconcile, worth an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    RolloutUpdated {
        hash: String,
    },
    StepCompleted {
        index: usize,
        total: usize,
    },
    TrafficWeightUpdated {
        canary: u8,
    },
    RolloutPaused {
        reason: String,
    },
    RolloutResumed,
    RolloutPromoted {
        hash: String,
    },
    RolloutAborted {
        message: String,
    },
    RolloutRetried,
    ProgressDeadlineExceeded {
        message: String,
    },
    /// Blue-green: the active Service now selects `hash`.
    ActiveServiceSwitched {
        service: String,
        hash: String,
    },
}

pub(crate) fn next_status(
    r: &ValidatedRollout,
    o: &Observed,
    out: &Outcome,
    now: DateTime<Utc>,
) -> NextStatus {
    let current = o.replica_set(&r.template_hash);
    let phase = phase(r, out);
    let message = phase_message(phase, out);
    NextStatus {
        phase,
        observed_generation: r.generation,
        current_hash: r.template_hash.clone(),
        stable_hash: out.stable_hash.clone(),
        current_step_index: out.current_step_index,
        replicas: o.replica_sets.iter().map(|rs| rs.replicas).sum(),
        updated_replicas: current.map_or(0, |rs| rs.replicas),
        ready_replicas: o.replica_sets.iter().map(|rs| rs.ready).sum(),
        available_replicas: o.replica_sets.iter().map(|rs| rs.available).sum(),
        weights: weights(r, o, out),
        abort: out.abort,
        aborted_at: out.aborted_at.filter(|_| out.abort),
        promote_full: out.promote_full,
        pause_conditions: out.pause_conditions.clone(),
        controller_pause: out.controller_pause,
        conditions: conditions(r, o, out, phase, now),
        message,
        step_run: out.step_run.clone(),
        background_run: out.background_run.clone(),
        blue_green: out.blue_green.clone(),
    }
}

fn phase(r: &ValidatedRollout, out: &Outcome) -> Phase {
    if out.abort || out.deadline_exceeded {
        Phase::Degraded
    } else if r.paused || !out.pause_conditions.is_empty() {
        Phase::Paused
    } else if out.completed {
        Phase::Healthy
    } else {
        Phase::Progressing
    }
}

fn phase_message(phase: Phase, out: &Outcome) -> String {
    match phase {
        Phase::Healthy => String::new(),
        Phase::Degraded if out.deadline_exceeded => format!("{DEADLINE_PREFIX}{}", out.progress.1),
        _ => out.progress.1.clone(),
    }
}

fn weights(r: &ValidatedRollout, o: &Observed, out: &Outcome) -> Option<Weights> {
    let desired = out.desired_traffic.as_ref()?;
    let stable_hash = out
        .stable_hash
        .clone()
        .unwrap_or_else(|| r.template_hash.clone());
    let verified = o.traffic.as_ref().is_some_and(|t| t.matches(desired));
    Some(Weights {
        canary: desired.canary_weight,
        canary_hash: r.template_hash.clone(),
        stable_hash,
        verified,
    })
}

fn conditions(
    r: &ValidatedRollout,
    o: &Observed,
    out: &Outcome,
    phase: Phase,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let available: i32 = o.replica_sets.iter().map(|rs| rs.available).sum();
    let (reason, message) = progress_condition(out);
    let wanted = [
        (
            ConditionKind::Progressing,
            !(out.abort || out.deadline_exceeded),
            reason,
            message,
        ),
        (
            ConditionKind::Available,
            available >= r.replicas,
            if available >= r.replicas {
                "AvailableReason"
            } else {
                "NotAvailable"
            }
            .to_owned(),
            format!("{available}/{} pods available", r.replicas),
        ),
        (
            ConditionKind::Paused,
            phase == Phase::Paused,
            if phase == Phase::Paused {
                "RolloutPaused"
            } else {
                "RolloutResumed"
            }
            .to_owned(),
            String::new(),
        ),
        (
            ConditionKind::Healthy,
            phase == Phase::Healthy,
            if phase == Phase::Healthy {
                "RolloutHealthy"
            } else {
                "RolloutNotHealthy"
            }
            .to_owned(),
            String::new(),
        ),
    ];
    wanted
        .into_iter()
        .map(|(kind, status, reason, message)| {
            let previous = o.persisted.conditions.iter().find(|c| c.kind == kind);
            condition(previous, kind, status, reason, message, now)
        })
        .collect()
}

fn progress_condition(out: &Outcome) -> (String, String) {
    if out.deadline_exceeded && !out.abort {
        return (
            DEADLINE_REASON.to_owned(),
            format!("{DEADLINE_PREFIX}{}", out.progress.1),
        );
    }
    if out.deadline_exceeded {
        return (DEADLINE_REASON.to_owned(), out.progress.1.clone());
    }
    out.progress.clone()
}

/// Builds a condition, keeping the previous timestamps where nothing they track changed.
pub(crate) fn condition(
    previous: Option<&Condition>,
    kind: ConditionKind,
    status: bool,
    reason: String,
    message: String,
    now: DateTime<Utc>,
) -> Condition {
    let last_transition_time = previous
        .filter(|p| p.status == status)
        .map_or(now, |p| p.last_transition_time);
    let last_update_time = previous
        .filter(|p| p.status == status && p.reason == reason && p.message == message)
        .map_or(now, |p| p.last_update_time);
    Condition {
        kind,
        status,
        reason,
        message,
        last_update_time,
        last_transition_time,
    }
}

/// What happened between the persisted status and the next one.
pub(crate) fn transitions(
    r: &ValidatedRollout,
    prev: &Persisted,
    next: &NextStatus,
    out: &Outcome,
) -> Vec<Transition> {
    let mut t = Vec::new();
    let same_revision = prev.current_hash.as_deref() == Some(next.current_hash.as_str());
    if !same_revision && prev.current_hash.is_some() {
        t.push(Transition::RolloutUpdated {
            hash: next.current_hash.clone(),
        });
    }
    match &r.strategy {
        Strategy::Canary(c) => step_transitions(prev, next, same_revision, c.steps.len(), &mut t),
        Strategy::BlueGreen(b) => switch_transitions(b, prev, next, &mut t),
    }
    if let Some(w) = next.weights.as_ref().filter(|w| w.verified)
        && prev.verified_weight != Some(w.canary)
        && prev.current_hash.is_some()
    {
        t.push(Transition::TrafficWeightUpdated { canary: w.canary });
    }
    pause_transitions(prev, next, &mut t);
    abort_transitions(prev, next, out, same_revision, &mut t);
    if let Some(hash) = &next.stable_hash
        && next.stable_hash != prev.stable_hash
        && prev.stable_hash.is_some()
    {
        t.push(Transition::RolloutPromoted { hash: hash.clone() });
    }
    t
}

/// The active Service moved to another version (a switch, or a switch back).
fn switch_transitions(
    b: &crate::rollout::model::BlueGreen,
    prev: &Persisted,
    next: &NextStatus,
    t: &mut Vec<Transition>,
) {
    let active = next.blue_green.as_ref().and_then(|s| s.active.as_ref());
    if let (Some(before), Some(after)) = (&prev.active_selector, active)
        && before != after
    {
        t.push(Transition::ActiveServiceSwitched {
            service: b.active_service.clone(),
            hash: after.clone(),
        });
    }
}

/// Steps passed in this reconcile, counted against all the steps; none for the steps that
/// `promote --full` skipped.
fn step_transitions(
    prev: &Persisted,
    next: &NextStatus,
    same_revision: bool,
    total: usize,
    t: &mut Vec<Transition>,
) {
    let (Some(from), Some(to)) = (prev.current_step_index, next.current_step_index) else {
        return;
    };
    if same_revision && to > from && !next.abort && !prev.promote_full {
        for index in from..to.min(total) {
            t.push(Transition::StepCompleted { index, total });
        }
    }
}

fn pause_transitions(prev: &Persisted, next: &NextStatus, t: &mut Vec<Transition>) {
    match (prev.pause_conditions.first(), next.pause_conditions.first()) {
        (None, Some(p)) => t.push(Transition::RolloutPaused {
            reason: p.reason.as_str().into(),
        }),
        (Some(a), Some(b)) if a.reason != b.reason || a.start_time != b.start_time => {
            t.push(Transition::RolloutPaused {
                reason: b.reason.as_str().into(),
            });
        }
        (Some(_), None) if !next.abort => t.push(Transition::RolloutResumed),
        // A promote removes the condition itself; `controllerPause` still tells it was paused.
        (None, None) if prev.controller_pause && !next.controller_pause && !next.abort => {
            t.push(Transition::RolloutResumed);
        }
        _ => {}
    }
}

fn abort_transitions(
    prev: &Persisted,
    next: &NextStatus,
    out: &Outcome,
    same_revision: bool,
    t: &mut Vec<Transition>,
) {
    let deadline_was = prev
        .conditions
        .iter()
        .any(|c| c.kind == ConditionKind::Progressing && c.reason == DEADLINE_REASON);
    if out.deadline_exceeded && !deadline_was {
        t.push(Transition::ProgressDeadlineExceeded {
            message: out.progress.1.clone(),
        });
    }
    // The user's abort and retry write `status.abort` themselves: `abortedAt` (set by Sluice
    // when it acts on an abort) tells a new abort from one already handled, and a retry from
    // nothing.
    if next.abort && (!prev.abort || prev.aborted_at.is_none()) {
        t.push(Transition::RolloutAborted {
            message: next.message.clone(),
        });
    }
    if !prev.abort && prev.aborted_at.is_some() && !next.abort && same_revision {
        t.push(Transition::RolloutRetried);
    }
}
