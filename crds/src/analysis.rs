//! `AnalysisTemplate`, `ClusterAnalysisTemplate` and the [`Metric`] they are made of.
//!
//! A template is a reusable list of metric checks with arguments; a Rollout references
//! templates by name and the controller instantiates them into an [`AnalysisRun`]
//! (see [`crate::analysis_run`]). Field names follow Argo Rollouts. Sluice adds typed
//! no-data handling (`onEmpty`, `onNaN`, `minSamples`) so a missing or NaN result is never a
//! silent pass, the reserved statistical [`Judge`]s, and a Kayenta-style [`Score`] over
//! weighted and `critical` metrics.
//!
//! `ClusterAnalysisTemplate` has exactly the same spec type as `AnalysisTemplate`, so code that
//! evaluates templates handles both through [`AnalysisTemplateSpec`]; it is defined in
//! [`crate::cluster_template`] because kube's derive generates one kind per spec struct.
//!
//! [`AnalysisRun`]: crate::AnalysisRun

use kube::CustomResource;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use crate::{
    args::{Argument, DryRun, MeasurementRetention},
    duration::Duration,
    judge::Judge,
    provider::MetricProvider,
    schema::{MAX_NAME, add_rules, rule},
    units::{Limit, MetricWeight, Percent},
};

/// Metric checks and their arguments. Shared by `AnalysisTemplate` and
/// `ClusterAnalysisTemplate`.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    namespaced,
    shortname = "sat",
    category = "sluice",
    derive = "PartialEq",
    doc = "Reusable metric checks with arguments, referenced by Rollouts in the same namespace.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// The checks. Names are unique.
    #[schemars(length(min = 1, max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metrics: Vec<Metric>,
    /// Arguments the queries use as `{{args.<name>}}`. Names are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub args: Vec<Argument>,
    /// Metrics measured in dry-run mode (reported, never failing the run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["metricName"]))]
    pub dry_run: Vec<DryRun>,
    /// How many measurements each metric keeps in the run's status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["metricName"]))]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// Score the metrics together instead of failing on any one of them (Kayenta-style
    /// canary scoring): once every metric completed, the run scores `100 * (weight of the
    /// successful metrics) / (weight of all measured metrics)`, dry-run metrics left out, and
    /// is Successful at or above `pass`, Inconclusive from `marginal`, else Failed. A
    /// `critical` metric that fails or is inconclusive, and any metric that errors, still ends
    /// the run at once. Every template of a run must set the same score, or none. Unset: every
    /// metric's failure fails the run, as in Argo Rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
}

/// Thresholds of a weighted score over a run's metrics (Kayenta's `scoreThresholds`).
///
/// With a score, a metric that is not `critical` no longer fails the run on its own: once every
/// metric has completed, the run scores `100 * (weight of the successful metrics) / (weight of
/// all metrics)`, dry-run metrics left out. It is `Successful` at or above `pass`,
/// `Inconclusive` from `marginal` up to `pass`, and `Failed` below `marginal`. A critical
/// metric that fails (or is inconclusive) still decides the run at once, and a metric that
/// errors always does: an error means it could not be measured, which says nothing about the
/// canary either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = score_rules)]
pub struct Score {
    /// Lowest score, in percent, at which the run succeeds.
    pub pass: Percent,
    /// Lowest score, in percent, at which the run is inconclusive rather than failed (the
    /// Rollout pauses for a human). Equal to `pass` for no inconclusive band.
    pub marginal: Percent,
}

fn score_rules(schema: &mut Schema) {
    add_rules(
        schema,
        // Above `pass` a marginal band would be empty and every score below `pass` would fail
        // without the user noticing that `marginal` has no effect.
        [rule(
            "self.marginal <= self.pass",
            "score.marginal must not be greater than score.pass",
        )],
    );
}

/// What a measurement is when the query returns no data, or NaN.
///
/// Sluice never treats missing data as success by accident: the default is `fail`, which
/// counts against `failureLimit` like any failed measurement. `pass` exists for metrics where
/// "no errors recorded" legitimately returns nothing, and must be chosen explicitly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NoDataPolicy {
    /// The measurement failed.
    #[default]
    Fail,
    /// The measurement is inconclusive (counts against `inconclusiveLimit`).
    Inconclusive,
    /// The measurement passed.
    Pass,
}

/// One metric check: a query, how often to run it, and how to judge each result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = metric_rules)]
pub struct Metric {
    /// Name, unique in the template (and across templates combined into one run).
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub name: String,
    /// Time between measurements. Without it the metric is measured once; `count > 1` needs
    /// an interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Wait before the first measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<Duration>,
    /// Number of measurements. Unset: once without `interval`, until the run is terminated
    /// with one. `0` means unset, as in Argo Rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub count: Option<i32>,
    /// CEL expression over `result` that marks a measurement successful, e.g.
    /// `result[0] >= 0.95`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub success_condition: Option<String>,
    /// CEL expression over `result` that marks a measurement failed. When both conditions are
    /// given and neither holds, the measurement is inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub failure_condition: Option<String>,
    /// Failed measurements tolerated before the metric fails (default 0; -1 = no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<Limit>,
    /// Inconclusive measurements tolerated before the metric is inconclusive (default 0;
    /// -1 = no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<Limit>,
    /// Consecutive measurement errors tolerated before the metric errors (default 4;
    /// -1 = no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_error_limit: Option<Limit>,
    /// Where the values come from.
    pub provider: MetricProvider,
    /// Verdict for a measurement whose query returned no series (default `fail`).
    #[serde(default)]
    pub on_empty: NoDataPolicy,
    /// Verdict for a measurement whose value is NaN, e.g. a ratio over zero requests
    /// (default `fail`).
    #[serde(default, rename = "onNaN")]
    pub on_nan: NoDataPolicy,
    /// Fewest samples (series for an instant query) a measurement needs; fewer is handled by
    /// `onEmpty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_samples: Option<i32>,
    /// Statistical judge replacing the conditions. Reserved: see [`crate::judge`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<Judge>,
    /// Weight of this metric in the run's `score`, 1 to 100 (default 1). Ignored without a
    /// `score`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<MetricWeight>,
    /// With a `score`: a failed or inconclusive result of this metric decides the run at once,
    /// whatever the score (Kayenta's critical metrics). Without a `score` every metric behaves
    /// this way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
}

fn metric_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [
            // Argo Rollouts' rule: several measurements without an interval would all be taken
            // at once and prove nothing more than one.
            rule(
                "!has(self.count) || self.count <= 1 || has(self.interval)",
                "metrics[].count greater than 1 requires metrics[].interval",
            ),
            // A metric with neither condition nor judge would pass every measurement.
            rule(
                "has(self.successCondition) || has(self.failureCondition) || has(self.judge)",
                "metrics[] must set successCondition or failureCondition (or a judge); without one every measurement would pass",
            ),
            rule(
                "!has(self.judge) || (!has(self.successCondition) && !has(self.failureCondition))",
                "metrics[].judge replaces successCondition and failureCondition; set one or the other",
            ),
            rule(
                "has(self.judge) || (has(self.provider.prometheus) && has(self.provider.prometheus.query))",
                "metrics[].provider.prometheus.query is required unless the metric has a judge",
            ),
        ],
    );
}

impl Metric {
    /// How many measurements the metric takes: `Some(n)` for a fixed count, `None` when it
    /// runs until the run is terminated (interval without count). Argo Rollouts' rule.
    pub fn effective_count(&self) -> Option<i32> {
        match (self.count.filter(|c| *c > 0), &self.interval) {
            (Some(c), _) => Some(c),
            (None, None) => Some(1),
            (None, Some(_)) => None,
        }
    }
}
