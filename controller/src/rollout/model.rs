//! The planner's view of the world: a validated Rollout and what was observed about it.
//!
//! Everything here is plain data. `validate` builds a [`ValidatedRollout`] from the API object
//! once; `observe` fills an [`Observed`] from the caches and the traffic router. Nothing after
//! validation reads `rollout.spec` again (parse, don't validate).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::traffic::{HeaderRoute, MirrorRoute, ObservedTraffic};

/// A Rollout whose spec has been checked and turned into the shapes the planner works with.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedRollout {
    /// The Rollout's name (AnalysisRun names start with it).
    pub name: String,
    pub replicas: i32,
    /// Hash of the current pod template (the `rollouts-pod-template-hash` label value).
    pub template_hash: String,
    pub min_ready_seconds: i32,
    pub revision_history_limit: usize,
    pub progress_deadline: Duration,
    pub progress_deadline_abort: bool,
    /// `spec.paused`: the user holds the Rollout where it is.
    pub paused: bool,
    pub generation: i64,
    pub strategy: Strategy,
}

/// The release strategy, with everything the planner needs resolved.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    Canary(Canary),
    BlueGreen(BlueGreen),
}

/// A blue-green release: the new version runs beside the active one behind the preview Service
/// and takes production traffic in one move of the active Service's selector.
#[derive(Clone, Debug, PartialEq)]
pub struct BlueGreen {
    pub active_service: String,
    pub preview_service: Option<String>,
    /// Pods of the new version before the switch (`previewReplicaCount`, default `replicas`).
    pub preview_replicas: i32,
    /// `None`: wait for a promote. `Some(d)`: switch `d` after the preview is ready and its
    /// pre-promotion analysis passed (`autoPromotionSeconds`, zero when unset).
    pub auto_promotion: Option<Duration>,
    pub pre_promotion_analysis: bool,
    pub post_promotion_analysis: bool,
    pub scale_down_delay: Duration,
    /// `None`: an aborted version keeps its pods (`abortScaleDownDelaySeconds: 0`).
    pub abort_scale_down_delay: Option<Duration>,
}

/// A canary release.
#[derive(Clone, Debug, PartialEq)]
pub struct Canary {
    pub steps: Vec<Step>,
    /// `true` when a traffic router (Istio) shifts the weights; otherwise the weight is the share
    /// of replicas (a basic, mesh-less canary).
    pub traffic_routing: bool,
    /// Whether the DestinationRule subsets must follow the pod-template hashes.
    pub subset_split: bool,
    /// Services whose selectors Sluice points at the canary and stable pods (host-level split).
    pub canary_service: Option<String>,
    pub stable_service: Option<String>,
    pub scale_down_delay: Duration,
    /// `None`: an aborted version keeps its pods (`abortScaleDownDelaySeconds: 0`).
    pub abort_scale_down_delay: Option<Duration>,
    /// Background analysis, started at this step index (`analysis.startingStep`, default 0).
    pub background_analysis: Option<usize>,
}

/// One canary step (Argo Rollouts' step kinds).
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    SetWeight(u8),
    /// `None` waits for a promote.
    Pause(Option<Duration>),
    /// Runs an AnalysisRun (templates and args are read from the spec when it is created) and
    /// waits for it: Successful continues, Failed or Error aborts, Inconclusive pauses until a
    /// promote.
    Analysis,
    SetCanaryScale(CanaryScale),
    /// A route with no matches removes the route.
    SetHeaderRoute(HeaderRoute),
    /// A route with no matches removes the route.
    SetMirrorRoute(MirrorRoute),
}

/// How many canary pods run, overriding the share implied by the traffic weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanaryScale {
    Replicas(i32),
    /// Percentage of `spec.replicas`.
    Weight(u8),
    /// Back to following the traffic weight.
    MatchTrafficWeight,
}

/// An owned ReplicaSet, as seen in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSetView {
    pub name: String,
    pub hash: String,
    pub revision: i64,
    /// `spec.replicas`.
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    /// When this ReplicaSet may be scaled to zero (persisted as an annotation so a restart
    /// keeps the delay).
    pub scale_down_at: Option<DateTime<Utc>>,
}

/// Why the Rollout is paused (Argo's `pauseConditions[].reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PauseReason {
    CanaryPauseStep,
    BlueGreenPause,
    AnalysisStep,
    InconclusiveAnalysis,
}

impl PauseReason {
    /// The API name (`status.pauseConditions[].reason`), used in events and messages too.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::CanaryPauseStep => "CanaryPauseStep",
            PauseReason::BlueGreenPause => "BlueGreenPause",
            PauseReason::AnalysisStep => "AnalysisStep",
            PauseReason::InconclusiveAnalysis => "InconclusiveAnalysisRun",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PauseCondition {
    pub reason: PauseReason,
    pub start_time: DateTime<Utc>,
}

/// A status condition as the planner keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub kind: ConditionKind,
    pub status: bool,
    pub reason: String,
    pub message: String,
    pub last_update_time: DateTime<Utc>,
    pub last_transition_time: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionKind {
    Progressing,
    Available,
    Paused,
    Healthy,
    InvalidSpec,
}

impl ConditionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionKind::Progressing => "Progressing",
            ConditionKind::Available => "Available",
            ConditionKind::Paused => "Paused",
            ConditionKind::Healthy => "Healthy",
            ConditionKind::InvalidSpec => "InvalidSpec",
        }
    }
}

/// What the previous reconcile persisted in `status`, plus the user's requests written there.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Persisted {
    pub stable_hash: Option<String>,
    pub current_hash: Option<String>,
    pub current_step_index: Option<usize>,
    pub pause_conditions: Vec<PauseCondition>,
    /// Set by Sluice when it paused at a step; a pause condition removed by the user while this
    /// is set means "promote this step".
    pub controller_pause: bool,
    pub abort: bool,
    pub aborted_at: Option<DateTime<Utc>>,
    pub promote_full: bool,
    pub conditions: Vec<Condition>,
    pub observed_generation: Option<i64>,
    /// The canary weight last recorded as verified, to tell when it moved.
    pub verified_weight: Option<u8>,
    /// The AnalysisRun gating the current step, as recorded in status (blue-green: the
    /// pre-promotion run).
    pub step_run: Option<RunStatus>,
    /// The background AnalysisRun of the current release, as recorded in status (blue-green:
    /// the post-promotion run).
    pub background_run: Option<RunStatus>,
    /// Blue-green: the switch has begun (`scaleUpPreviewCheckPoint`).
    pub promoting: bool,
    /// Blue-green: the active Service's selector as the last status recorded it.
    pub active_selector: Option<String>,
}

/// Phase of an AnalysisRun (Argo's values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunPhase {
    #[default]
    Pending,
    Running,
    Successful,
    Failed,
    Error,
    Inconclusive,
}

impl RunPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Pending => "Pending",
            RunPhase::Running => "Running",
            RunPhase::Successful => "Successful",
            RunPhase::Failed => "Failed",
            RunPhase::Error => "Error",
            RunPhase::Inconclusive => "Inconclusive",
        }
    }

    pub fn is_completed(self) -> bool {
        !matches!(self, RunPhase::Pending | RunPhase::Running)
    }
}

/// An AnalysisRun as the planner sees it (status record or observed object).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStatus {
    pub name: String,
    pub phase: RunPhase,
    /// Why, with the metric, its value and the condition (from the run's status).
    pub message: String,
}

/// Everything the planner needs to know about the cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub replica_sets: Vec<ReplicaSetView>,
    /// Read back from the router; `None` without traffic routing.
    pub traffic: Option<ObservedTraffic>,
    /// Current selector hash of the canary and stable Services (host-level split). For
    /// blue-green these are the preview and the active Service.
    pub canary_service_hash: Option<String>,
    pub stable_service_hash: Option<String>,
    pub persisted: Persisted,
    /// AnalysisRuns owned by the Rollout, from the cache.
    pub analysis_runs: Vec<RunStatus>,
}

impl Observed {
    pub fn analysis_run(&self, name: &str) -> Option<&RunStatus> {
        self.analysis_runs.iter().find(|r| r.name == name)
    }

    pub fn replica_set(&self, hash: &str) -> Option<&ReplicaSetView> {
        self.replica_sets.iter().find(|rs| rs.hash == hash)
    }

    /// The revision a ReplicaSet made (or re-used) now gets: one above every owned one.
    pub fn next_revision(&self) -> i64 {
        self.replica_sets
            .iter()
            .map(|rs| rs.revision)
            .max()
            .unwrap_or(0)
            + 1
    }
}
