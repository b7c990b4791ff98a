//! `Rollout.status`: what the controller observed and decided, in Argo Rollouts' shape.
//!
//! The planner computes the whole status and the controller writes it with one server-side
//! apply under the field manager `sluice`. To make that clean every field is optional or
//! defaulted and omitted when unset (`skip_serializing_if`): a field the controller stops
//! computing disappears from the object instead of lingering with a stale value, and fields
//! written by others (e.g. `abort` set by `kubectl sluice abort`) are not claimed by the
//! controller unless it sets them. Lists are `x-kubernetes-list-type: map` so conditions merge
//! by `type` and pause conditions by `reason`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{analysis_run::AnalysisPhase, units::Weight};

/// Observed state of a Rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Summary phase. Meaningful only when `observedGeneration` equals `metadata.generation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RolloutPhase>,
    /// Why the Rollout is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pod-template hash of the current (desired) template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_pod_hash: Option<String>,
    /// Hash of the current step list; a change restarts the steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_hash: Option<String>,
    /// Pod-template hash of the stable (last fully promoted) ReplicaSet.
    #[serde(rename = "stableRS", default, skip_serializing_if = "Option::is_none")]
    pub stable_rs: Option<String>,
    /// Index of the current canary step; equal to the number of steps when all are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// Non-terminated pods selected by the Rollout (the scale subresource reads this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods of the current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Ready pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Pods ready for at least `minReadySeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// Bumped on a pod-template hash collision to derive a fresh ReplicaSet name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// Canary progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
    /// Blue-green progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStatus>,
    /// Abort requested (by a failed analysis, or by a user through `kubectl sluice abort`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abort: bool,
    /// When the controller carried out the abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_at: Option<Time>,
    /// Skip remaining steps, pauses and analysis and promote (`kubectl sluice promote --full`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promote_full: bool,
    /// Why the controller paused the Rollout; a user resumes by clearing this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["reason"]))]
    pub pause_conditions: Vec<PauseCondition>,
    /// The controller paused the Rollout. Still true with no pause conditions means a user
    /// resumed it and the controller has not yet moved on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub controller_pause: bool,
    /// Conditions, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Label selector of the Rollout's pods, serialized, for the scale subresource (HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// Summary phase of a Rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RolloutPhase {
    /// Fully promoted and available.
    Healthy,
    /// Moving towards the desired state.
    Progressing,
    /// Waiting for a pause to end or a human to promote.
    Paused,
    /// Aborted, invalid, or past its progress deadline.
    Degraded,
}

/// Canary-specific status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// Weights last applied to the traffic router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<TrafficWeights>,
    /// The run of the current analysis step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// The background analysis run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_background_analysis_run_status: Option<RolloutAnalysisRunStatus>,
}

/// The traffic split as applied to the router.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficWeights {
    /// Share sent to the canary.
    pub canary: WeightDestination,
    /// Share sent to stable.
    pub stable: WeightDestination,
    /// Whether the weights were read back from the router and matched. Sluice sets this after
    /// every change and never scales down before it is true (safety invariant 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

/// One side of the split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightDestination {
    /// Percentage of traffic.
    pub weight: Weight,
    /// Service receiving it (host-level split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Pod-template hash of the ReplicaSet behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash: Option<String>,
}

/// Name and phase of an AnalysisRun the Rollout is waiting on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysisRunStatus {
    /// AnalysisRun name.
    pub name: String,
    /// Its phase.
    pub status: AnalysisPhase,
    /// Its message (e.g. which metric failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Blue-green-specific status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStatus {
    /// Pod-template hash the active Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_selector: Option<String>,
    /// Pod-template hash the preview Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_selector: Option<String>,
    /// The preview ReplicaSet may be scaled to full size (promotion has begun).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scale_up_preview_check_point: bool,
    /// Pre-promotion analysis run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// Post-promotion analysis run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis_run_status: Option<RolloutAnalysisRunStatus>,
}

/// Why the controller paused, and since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseCondition {
    /// Reason.
    pub reason: PauseReason,
    /// When the pause began (a timed pause ends at `startTime + duration`).
    pub start_time: Time,
}

/// Reasons for a controller pause (Argo Rollouts' values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PauseReason {
    /// A canary `pause` step.
    CanaryPauseStep,
    /// Blue-green waiting for promotion.
    BlueGreenPause,
    /// An analysis run was inconclusive.
    InconclusiveAnalysisRun,
    /// A canary `analysis` step waiting for its run (Sluice addition). Not set by the current
    /// controller, whose analysis steps wait on their AnalysisRun without pausing; kept so a
    /// status written by an earlier version still reads.
    AnalysisStep,
}

/// A Rollout condition (Argo Rollouts' shape, with `lastUpdateTime`).
///
/// `lastTransitionTime` changes only when `status` changes; `lastUpdateTime` whenever the
/// reason or message does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// PascalCase reason for the last transition.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// Last time reason or message changed.
    pub last_update_time: Time,
    /// Last time status changed.
    pub last_transition_time: Time,
}

/// Condition types (Argo Rollouts' values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionType {
    /// The spec is invalid; the Rollout waits for a change.
    InvalidSpec,
    /// The active/stable Service points at enough available pods.
    Available,
    /// A new version is rolling out (or the progress deadline was exceeded).
    Progressing,
    /// Creating or deleting pods failed.
    ReplicaFailure,
    /// The Rollout is paused.
    Paused,
    /// The desired version is fully promoted.
    Completed,
    /// Completed and all pods available.
    Healthy,
}

/// Status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known.
    Unknown,
}
