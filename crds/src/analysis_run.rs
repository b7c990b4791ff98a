//! `AnalysisRun`: one execution of a Rollout's analysis templates, and its measurements.
//!
//! The controller creates a run (owned by the Rollout) with the templates' metrics merged and
//! the arguments resolved, then records every measurement in `status`. The status is the
//! run's whole memory: the assessment is a pure function of the metric specs and the persisted
//! measurements, so a controller restart loses nothing. Field names follow Argo Rollouts.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    analysis::{Metric, Score},
    args::{Argument, DryRun, MeasurementRetention},
};

/// What to measure and with which arguments.
// Each `printcolumn(...)` repeats the same keys (`name`, `type_`); that is kube's syntax, not a
// mistake, so clippy's duplicated-attribute lint does not apply.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "AnalysisRun",
    namespaced,
    status = "AnalysisRunStatus",
    shortname = "sar",
    category = "sluice",
    derive = "PartialEq",
    doc = "One execution of analysis templates with resolved arguments; its status holds every measurement.",
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Score", type_ = "number", json_path = ".status.score"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    /// Metrics of all referenced templates, merged. Names are unique.
    #[schemars(length(min = 1, max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metrics: Vec<Metric>,
    /// Arguments with literal values resolved; `valueFrom.secretKeyRef` stays a reference and
    /// is read at measurement time so the secret never lands in this object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub args: Vec<Argument>,
    /// Stop measuring: set when the Rollout no longer needs the result (promotion, abort).
    /// A terminated run that has not failed ends `Successful`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminate: bool,
    /// Metrics measured in dry-run mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["metricName"]))]
    pub dry_run: Vec<DryRun>,
    /// Measurement retention per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["metricName"]))]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// Score thresholds, from the templates (which must agree). Unset: any metric's failure
    /// fails the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
}

/// Phase of a run, a metric, or one measurement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AnalysisPhase {
    /// Not started (e.g. waiting for `initialDelay`).
    #[default]
    Pending,
    /// Measuring.
    Running,
    /// Passed.
    Successful,
    /// Failed: the Rollout aborts.
    Failed,
    /// Too many consecutive errors fetching the metric: treated like `Failed` by the Rollout.
    Error,
    /// Neither passed nor failed: the Rollout pauses for a human.
    Inconclusive,
}

impl AnalysisPhase {
    /// Whether the phase is final.
    pub fn is_completed(self) -> bool {
        !matches!(self, AnalysisPhase::Pending | AnalysisPhase::Running)
    }
}

/// Observed state of a run. Every field is optional or defaulted so the controller can
/// server-side apply exactly what it computed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    /// Overall phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AnalysisPhase>,
    /// Why the run is in its phase (e.g. which metric failed and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the run started measuring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the run reached a final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Per-metric results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metric_results: Vec<MetricResult>,
    /// Counts of metrics by outcome (dry-run metrics excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_summary: Option<RunSummary>,
    /// Counts of dry-run metrics by outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_summary: Option<RunSummary>,
    /// The run's score in percent (0 to 100, truncated to two decimals), once every metric
    /// completed and `spec.score` is set; the message names each metric's result and weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// Counts of metrics by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Metrics in the run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub count: i32,
    /// Metrics that passed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub successful: i32,
    /// Metrics that failed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: i32,
    /// Metrics that were inconclusive.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inconclusive: i32,
    /// Metrics that errored.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub error: i32,
}

/// Result of one metric: its phase, counters over all measurements, and the most recent
/// measurements.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// Metric name.
    pub name: String,
    /// Aggregate phase.
    pub phase: AnalysisPhase,
    /// Most recent measurements, oldest first (bounded by `measurementRetention`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    /// Why the metric is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Measurements taken without error (`successful + failed + inconclusive`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub count: i32,
    /// Successful measurements.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub successful: i32,
    /// Failed measurements.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: i32,
    /// Inconclusive measurements.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inconclusive: i32,
    /// Measurements that errored.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub error: i32,
    /// Errors in a row; reset by any measurement without error.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_error: i32,
    /// The metric runs in dry-run mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Provider details about the metric as a whole.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// One measurement: when it ran, what it saw, and the verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// Verdict.
    pub phase: AnalysisPhase,
    /// Why (the condition that held, the no-data policy applied, or the error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the query was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the result arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// The measured value as text (e.g. `[0.97]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Provider details, e.g. `resolvedQuery` (with secrets masked) and `sampleCount`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// When to take the next measurement (for a provider that answers asynchronously).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_at: Option<Time>,
}

/// Well-known keys of [`Measurement::metadata`].
pub mod measurement_metadata {
    /// The query as sent, after argument substitution, with secret values masked.
    pub const RESOLVED_QUERY: &str = "resolvedQuery";
    /// Number of samples (series) the result had.
    pub const SAMPLE_COUNT: &str = "sampleCount";
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}
