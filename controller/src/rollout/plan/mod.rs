//! The pure planner: `plan(&ValidatedRollout, &Observed, now) -> Plan`.
//!
//! The planner takes no client and performs no I/O. It returns ordered intents for the apply
//! stage, the complete next status, the transitions that happened (for events) and when to look
//! again. All weight and replica arithmetic of Sluice lives here, so every invariant of DESIGN
//! section 3 can be checked on this function alone.
//!
//! Guarantees:
//! - Intents come in the safe order; the apply stage runs them in sequence and stops at the
//!   first failure, so a later intent never runs without the earlier ones.
//! - A ReplicaSet is scaled down (or loses traffic-carrying selectors) only after the traffic read
//!   back shows it receives none (invariant 3).
//! - Traffic goes to the canary only when it has available pods, and never above the current
//!   step's weight (invariants 1 and 2).
//! - A settled world yields no intents and no requeue (invariant 6).

mod analysis;
mod bluegreen;
mod canary;
mod cleanup;
mod deadline;
mod pause;
mod replicas;
mod status;
mod target;

#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use analysis::RunKind;
pub(crate) use status::condition;
pub use status::{NextStatus, Phase, Transition, Weights};

use super::model::{Observed, Strategy, ValidatedRollout};
use crate::traffic::DesiredTraffic;

/// A change the apply stage makes, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Intent {
    /// Create the ReplicaSet of the current pod template.
    CreateReplicaSet {
        hash: String,
        replicas: i32,
        revision: i64,
    },
    /// Set `spec.replicas` of an owned ReplicaSet.
    ScaleReplicaSet { name: String, replicas: i32 },
    /// Give an existing ReplicaSet a new revision (a rollback re-uses an old template).
    SetRevision { name: String, revision: i64 },
    /// Persist (or clear) when a ReplicaSet may be scaled to zero.
    SetScaleDownDeadline {
        name: String,
        at: Option<DateTime<Utc>>,
    },
    /// Point a Service's `rollouts-pod-template-hash` selector at a version.
    PointService { service: String, hash: String },
    /// Make the mesh show these weights, managed routes and subsets.
    SetTraffic(DesiredTraffic),
    /// Delete a ReplicaSet beyond `revisionHistoryLimit`.
    DeleteReplicaSet { name: String },
    /// Create the AnalysisRun `name` for a step or the background analysis (its name is
    /// already in the persisted status).
    CreateAnalysisRun { name: String, kind: RunKind },
    /// Stop an AnalysisRun that gates nothing any more (`spec.terminate`).
    TerminateAnalysisRun { name: String },
}

/// Everything one reconcile decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub intents: Vec<Intent>,
    pub status: NextStatus,
    pub transitions: Vec<Transition>,
    /// When a timer (pause expiry, scale-down delay, progress deadline) needs a new look.
    pub requeue_after: Option<Duration>,
}

/// Decides the next moves of one Rollout. See the module docs for the guarantees.
pub fn plan(rollout: &ValidatedRollout, observed: &Observed, now: DateTime<Utc>) -> Plan {
    let mut draft = Draft::new(now);
    let outcome = match &rollout.strategy {
        Strategy::Canary(canary) => canary::plan(rollout, canary, observed, &mut draft),
        Strategy::BlueGreen(bg) => bluegreen::plan(rollout, bg, observed, &mut draft),
    };
    draft.finish(rollout, observed, outcome)
}

/// What the strategy planner found, for the status.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Outcome {
    pub stable_hash: Option<String>,
    pub current_step_index: Option<usize>,
    pub desired_traffic: Option<DesiredTraffic>,
    pub abort: bool,
    pub aborted_at: Option<DateTime<Utc>>,
    pub promote_full: bool,
    pub pause_conditions: Vec<super::model::PauseCondition>,
    pub controller_pause: bool,
    /// `Progressing` reason and message: a change of the message counts as progress.
    pub progress: (String, String),
    pub deadline_exceeded: bool,
    pub completed: bool,
    pub step_run: Option<super::model::RunStatus>,
    pub background_run: Option<super::model::RunStatus>,
    /// Blue-green: the switch has begun (`scaleUpPreviewCheckPoint`); always false for canary.
    pub promoting: bool,
    /// Blue-green only: what the Services select once this plan is applied.
    pub blue_green: Option<BlueGreenState>,
}

/// Blue-green status: the Services' selectors (as they are once the plan is applied) and
/// whether the switch has begun.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlueGreenState {
    pub active: Option<String>,
    pub preview: Option<String>,
    /// `scaleUpPreviewCheckPoint`: the preview is being scaled up for the switch.
    pub promoting: bool,
}

impl Outcome {
    /// The persisted values carried over, with `stable` as the stable version; callers change
    /// what moved.
    pub fn carry(o: &Observed, stable: Option<&str>) -> Self {
        let p = &o.persisted;
        Outcome {
            stable_hash: stable.map(str::to_owned),
            current_step_index: p.current_step_index,
            desired_traffic: None,
            abort: p.abort,
            aborted_at: p.aborted_at,
            promote_full: p.promote_full,
            pause_conditions: p.pause_conditions.clone(),
            controller_pause: p.controller_pause,
            progress: (String::new(), String::new()),
            deadline_exceeded: false,
            completed: false,
            step_run: p.step_run.clone(),
            background_run: p.background_run.clone(),
            promoting: p.promoting,
            blue_green: None,
        }
    }

    /// No pause in force: a step moved on, or the release ended.
    pub fn unpause(&mut self) {
        self.pause_conditions.clear();
        self.controller_pause = false;
    }

    /// A new template starts the release over; a retry (the user cleared `abort`) drops the
    /// failed attempt's runs and checkpoint, so an old verdict never decides a new attempt.
    /// Returns whether the template is new.
    pub fn begin_attempt(&mut self, o: &Observed, template: &str) -> bool {
        let new = o.persisted.current_hash.as_deref() != Some(template);
        if new {
            self.start_fresh();
        }
        let retried = !self.abort && o.persisted.aborted_at.is_some();
        if new || retried {
            self.step_run = None;
            self.background_run = None;
            self.promoting = false;
        }
        new
    }

    /// A release starts afresh: no pause, abort or full promotion is carried over.
    pub fn start_fresh(&mut self) {
        self.unpause();
        self.abort = false;
        self.aborted_at = None;
        self.promote_full = false;
    }
}

/// The plan under construction: intents in order and the earliest timer.
pub(crate) struct Draft {
    pub now: DateTime<Utc>,
    pub intents: Vec<Intent>,
    pub wake_at: Option<DateTime<Utc>>,
}

impl Draft {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            now,
            intents: Vec::new(),
            wake_at: None,
        }
    }

    /// Adds an intent; one already planned is not repeated (writes are idempotent).
    pub fn push(&mut self, intent: Intent) {
        if !self.intents.contains(&intent) {
            self.intents.push(intent);
        }
    }

    /// Drops everything planned so far (an abort replaces the stage's moves).
    pub fn restart(&mut self) {
        self.intents.clear();
        self.wake_at = None;
    }

    /// Asks for a new look at `at` (the earliest request wins; past times mean "now").
    pub fn wake(&mut self, at: DateTime<Utc>) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    fn finish(mut self, rollout: &ValidatedRollout, observed: &Observed, outcome: Outcome) -> Plan {
        let status = status::next_status(rollout, observed, &outcome, self.now);
        if status.stable_hash != observed.persisted.stable_hash && self.intents.is_empty() {
            // The old stable version is cleaned up once the status no longer names it: look
            // again at once rather than count on the status write to trigger a reconcile.
            self.wake(self.now);
        }
        let transitions = status::transitions(rollout, &observed.persisted, &status, &outcome);
        let requeue_after = self.wake_at.map(|at| {
            (at - self.now)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_millis(10))
        });
        Plan {
            intents: self.intents,
            status,
            transitions,
            requeue_after,
        }
    }
}
