//! Statistical judges (`metrics[].judge`) — **reserved API, first draft**.
//!
//! A judge replaces a metric's `successCondition`/`failureCondition`: instead of testing one
//! query result against a threshold, it compares the canary against a baseline (or against an
//! SLO) over samples and returns Pass / Fail / Inconclusive with a reason.
//!
//! The judges are implemented in the `sluice-analysis` crate (`judge` module) and the
//! AnalysisRun controller measures a judge metric by fetching the judge's queries and recording
//! its verdict. Field names may still change before `v1beta1`.
//!
//! Queries use the metric's `provider.prometheus` address, headers and authentication, and
//! `{{args.*}}` substitution like any other query.

use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use crate::{
    duration::Duration,
    schema::{MAX_TEXT, add_rules, exactly_one, rule},
};

/// A statistical judge. Exactly one kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = judge_rules)]
pub enum Judge {
    /// Mann-Whitney U test of canary samples against baseline samples over a window (the
    /// Kayenta approach): Pass, or Fail when the canary is significantly worse in the
    /// regression `direction` by more than `margin`.
    MannWhitney(MannWhitneyJudge),
    /// Anytime-valid sequential test of canary vs baseline error rates, safe to check every
    /// interval and able to stop early in either direction.
    Sequential(SequentialJudge),
    /// Multi-window error-budget burn-rate guard of the canary against an SLO objective.
    Slo(SloJudge),
}

fn judge_rules(schema: &mut Schema) {
    exactly_one(
        schema,
        "metrics[].judge must set exactly one of mannWhitney, sequential or slo",
    );
}

/// Which change of the canary's values counts as a regression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Higher is worse (latency, error rate).
    #[default]
    Increase,
    /// Lower is worse (success rate, throughput).
    Decrease,
    /// Any significant difference is a regression.
    Either,
}

/// Inputs for the Mann-Whitney judge. Both queries are range queries over `window` at `step`
/// resolution; each returned point is one sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = mann_whitney_rules)]
pub struct MannWhitneyJudge {
    /// Samples from the canary version (e.g. selected by `{{args.canary-hash}}`).
    #[schemars(length(min = 1, max = MAX_TEXT))]
    pub canary_query: String,
    /// Samples from the baseline (stable) version.
    #[schemars(length(min = 1, max = MAX_TEXT))]
    pub baseline_query: String,
    /// Which change is a regression.
    #[serde(default)]
    pub direction: Direction,
    /// Significance level, `0 < alpha < 0.5` (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Smallest relative difference that matters (effect-size floor), `0 <= margin < 1`
    /// (default 0.05 = 5%). A significant but smaller difference passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// How far back the samples reach (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// Resolution of the range queries (default 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Duration>,
}

fn mann_whitney_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [
            alpha_rule("judge.mannWhitney"),
            margin_rule("judge.mannWhitney"),
        ],
    );
}

/// Error and total request counts of one version, as two instant queries (counters over the
/// run so far, e.g. `sum(increase(...[{{args.window}}]))`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CountQueries {
    /// Number of failed requests.
    #[schemars(length(min = 1, max = MAX_TEXT))]
    pub errors_query: String,
    /// Number of requests.
    #[schemars(length(min = 1, max = MAX_TEXT))]
    pub total_query: String,
}

/// Inputs for the sequential judge.
///
/// The events may be errors or slow requests: for a latency regression, count the requests
/// above a threshold from the histogram buckets, e.g. `errorsQuery:
/// sum(increase(x_bucket{le="+Inf"}[{{args.window}}])) - sum(increase(x_bucket{le="250"}[{{args.window}}]))`
/// and `totalQuery: sum(increase(x_bucket{le="+Inf"}[{{args.window}}]))`, with the threshold
/// chosen before the rollout (such as the baseline's p95 of the last day).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = sequential_rules)]
pub struct SequentialJudge {
    /// Canary error and request counts.
    pub canary: CountQueries,
    /// Baseline (stable) error and request counts.
    pub baseline: CountQueries,
    /// Probability of failing a canary that is not worse, `0 < alpha < 0.5` (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Tolerated absolute increase of the canary error rate over the baseline, `0 <= margin < 1`
    /// (default 0.005 = half a percentage point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// End the metric `Successful` as soon as the judge passes, that is as soon as it excludes
    /// an increase of `margin` or more with confidence `1 - alpha`, instead of measuring until
    /// `count`. The run then completes as soon as its other metrics have, so the Rollout's
    /// analysis step moves on early. A regression still fails at once either way
    /// (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promote_early: bool,
}

fn sequential_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [
            alpha_rule("judge.sequential"),
            margin_rule("judge.sequential"),
        ],
    );
}

/// Inputs for the SLO burn-rate judge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = slo_rules)]
pub struct SloJudge {
    /// Target share of good requests in percent, `0 < objective < 100` (e.g. 99.9).
    pub objective: f64,
    /// Canary error and request counts; `{{args.window}}` is replaced by each window length.
    pub canary: CountQueries,
    /// Burn-rate alert windows; the judge fails when any window pair burns too fast.
    #[schemars(length(min = 1, max = 4))]
    pub windows: Vec<BurnRateWindow>,
}

fn slo_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [rule(
            "self.objective > 0.0 && self.objective < 100.0",
            "judge.slo.objective must be a percentage between 0 and 100 (exclusive)",
        )],
    );
}

/// A multi-window burn-rate condition: fail when both the long and the short window burn the
/// error budget faster than `burnRate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = window_rules)]
pub struct BurnRateWindow {
    /// Long window, e.g. `1h`.
    pub long: Duration,
    /// Short window, e.g. `5m`; must be shorter than `long`.
    pub short: Duration,
    /// Budget consumption rate that fails the canary (e.g. 14.4 for a 2% budget burn in 1h of
    /// a 30-day SLO).
    pub burn_rate: f64,
}

fn window_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [rule(
            "self.burnRate > 0.0",
            "judge.slo.windows[].burnRate must be greater than 0",
        )],
    );
}

fn alpha_rule(path: &str) -> kube::core::Rule {
    rule(
        "!has(self.alpha) || (self.alpha > 0.0 && self.alpha < 0.5)",
        &format!("{path}.alpha must be greater than 0 and less than 0.5"),
    )
}

fn margin_rule(path: &str) -> kube::core::Rule {
    rule(
        "!has(self.margin) || (self.margin >= 0.0 && self.margin < 1.0)",
        &format!("{path}.margin must be at least 0 and less than 1"),
    )
}
