//! Validated metric specs: [`ValidatedAnalysis`] and [`ValidatedMetric`].
//!
//! Parse, don't validate: a template's or run's metrics, `dryRun` rules,
//! `measurementRetention` rules and `score` thresholds are checked and compiled once
//! (conditions compiled, patterns compiled, defaults applied) and nothing after this module
//! reads the raw [`Metric`] again. Every problem is reported at once, each naming the metric
//! and the field, so the controller can put one clear message on an `InvalidSpec` condition.
//!
//! Defaults follow Argo Rollouts: `failureLimit` 0, `inconclusiveLimit` 0,
//! `consecutiveErrorLimit` 4, ten measurements retained per metric; Sluice's `weight` defaults
//! to 1 and `critical` to false. `dryRun` and `measurementRetention` patterns are regular
//! expressions matched against the **whole** metric name (Argo matches substrings; a whole
//! match keeps `error` from silently turning `error-rate` into a dry run), and a `dryRun` rule
//! matching no metric is an error, as in Argo.

use chrono::TimeDelta;
use regex::Regex;
use sluice_crds::{
    AnalysisPhase, AnalysisRunSpec, AnalysisTemplateSpec, DryRun, MeasurementRetention, Metric,
    MetricWeight, NoDataPolicy, Score, judge::Judge, provider::MetricProvider, units::Limit,
};

use crate::{
    assess::is_decisive,
    condition::{Condition, ConditionError},
    judge::ScoreThresholds,
    time::delta,
};

/// Measurements kept per metric when no `measurementRetention` rule matches (Argo's default).
pub const DEFAULT_RETENTION: usize = 10;
/// `consecutiveErrorLimit` when unset (Argo's default).
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;
/// Wait before retrying after an errored measurement of a metric without `interval` (Argo's).
pub const ERROR_RETRY_INTERVAL: TimeDelta = TimeDelta::seconds(10);

const DEFAULT_FAILURE_LIMIT: Limit = limit(0);
const DEFAULT_INCONCLUSIVE_LIMIT: Limit = limit(0);
const DEFAULT_ERROR_LIMIT: Limit = limit(DEFAULT_CONSECUTIVE_ERROR_LIMIT);

/// A limit known at compile time (an out-of-range constant fails the build, not a run).
const fn limit(n: i32) -> Limit {
    match Limit::new(n) {
        Some(l) => l,
        None => panic!("limit constant out of range"),
    }
}

/// How a metric's measurements are judged.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// Argo-style conditions; at least one is set.
    Conditions {
        /// Holds for a successful measurement.
        success: Option<Condition>,
        /// Holds for a failed measurement.
        failure: Option<Condition>,
    },
    /// A statistical judge (see [`crate::judge`]); measured through `judge_queries` and
    /// `judge_measurement`, never through `resolve_query`.
    Judge(Judge),
}

/// One metric, checked and compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedMetric {
    name: String,
    interval: Option<TimeDelta>,
    initial_delay: TimeDelta,
    count: Option<i32>,
    check: Check,
    failure_limit: Limit,
    inconclusive_limit: Limit,
    consecutive_error_limit: Limit,
    on_empty: NoDataPolicy,
    on_nan: NoDataPolicy,
    min_samples: usize,
    dry_run: bool,
    retention: usize,
    provider: MetricProvider,
    promote_early: bool,
    weight: u32,
    critical: bool,
}

impl ValidatedMetric {
    /// Checks one metric. `dry_run` and `retention` come from the run's rules (see
    /// [`ValidatedAnalysis`]).
    pub fn new(metric: &Metric, dry_run: bool, retention: usize) -> Result<Self, Vec<SpecProblem>> {
        let mut problems = Vec::new();
        let check = check(metric, &mut problems);
        if metric.count.unwrap_or(0) > 1 && metric.interval.is_none() {
            problems.push(SpecProblem::CountWithoutInterval {
                metric: metric.name.clone(),
            });
        }
        let min_samples = usize::try_from(metric.min_samples.unwrap_or(1)).unwrap_or(0);
        if min_samples == 0 {
            problems.push(SpecProblem::MinSamples {
                metric: metric.name.clone(),
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ValidatedMetric {
            name: metric.name.clone(),
            interval: metric
                .interval
                .map(delta)
                .filter(|d| *d > TimeDelta::zero()),
            initial_delay: metric.initial_delay.map(delta).unwrap_or_default(),
            count: metric.effective_count(),
            check,
            failure_limit: metric.failure_limit.unwrap_or(DEFAULT_FAILURE_LIMIT),
            inconclusive_limit: metric
                .inconclusive_limit
                .unwrap_or(DEFAULT_INCONCLUSIVE_LIMIT),
            consecutive_error_limit: metric
                .consecutive_error_limit
                .unwrap_or(DEFAULT_ERROR_LIMIT),
            on_empty: metric.on_empty,
            on_nan: metric.on_nan,
            min_samples,
            dry_run,
            retention: retention.max(1),
            provider: metric.provider.clone(),
            promote_early: promotes_early(metric.judge.as_ref()),
            weight: weight(metric.weight),
            critical: metric.critical,
        })
    }

    /// Name, unique in the run.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Time between measurements; `None` when the metric is measured once.
    pub fn interval(&self) -> Option<TimeDelta> {
        self.interval
    }
    /// Wait after the run starts before the first measurement (zero when unset).
    pub fn initial_delay(&self) -> TimeDelta {
        self.initial_delay
    }
    /// Measurements to take (errors excluded); `None` = until the run is terminated.
    pub fn count(&self) -> Option<i32> {
        self.count
    }
    /// How measurements are judged.
    pub fn check(&self) -> &Check {
        &self.check
    }
    /// Failed measurements tolerated.
    pub fn failure_limit(&self) -> Limit {
        self.failure_limit
    }
    /// Inconclusive measurements tolerated.
    pub fn inconclusive_limit(&self) -> Limit {
        self.inconclusive_limit
    }
    /// Consecutive errors tolerated.
    pub fn consecutive_error_limit(&self) -> Limit {
        self.consecutive_error_limit
    }
    /// Verdict for an empty result (or fewer samples than [`Self::min_samples`]).
    pub fn on_empty(&self) -> NoDataPolicy {
        self.on_empty
    }
    /// Verdict for a NaN result.
    pub fn on_nan(&self) -> NoDataPolicy {
        self.on_nan
    }
    /// Fewest samples a result needs to count as data (at least 1).
    pub fn min_samples(&self) -> usize {
        self.min_samples
    }
    /// Measured and reported, but never affecting the run's phase.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }
    /// Measurements kept in status (at least 1; the counters cover all of them).
    pub fn retention(&self) -> usize {
        self.retention
    }
    /// Where the values come from, with `{{args.*}}` placeholders still in place.
    pub fn provider(&self) -> &MetricProvider {
        &self.provider
    }
    /// Whether a pass of the judge completes the metric before `count` (a `sequential` judge
    /// with `promoteEarly`; see [`mod@crate::assess`]).
    pub fn promotes_early(&self) -> bool {
        self.promote_early
    }
    /// Weight in the run's score (at least 1; 1 when unset).
    pub fn weight(&self) -> u32 {
        self.weight
    }
    /// With a score, whether a failed or inconclusive result decides the run at once.
    pub fn critical(&self) -> bool {
        self.critical
    }
}

fn weight(weight: Option<MetricWeight>) -> u32 {
    let w = weight.unwrap_or(MetricWeight::DEFAULT).get();
    // `MetricWeight` is at least 1, so the conversion cannot fail.
    u32::try_from(w).unwrap_or(1)
}

/// Only the sequential judge may stop early on a pass: its decision holds at every look
/// (anytime-valid), where a fixed-sample test's pass at one look proves nothing about the next.
fn promotes_early(judge: Option<&Judge>) -> bool {
    matches!(judge, Some(Judge::Sequential(j)) if j.promote_early)
}

fn check(metric: &Metric, problems: &mut Vec<SpecProblem>) -> Check {
    let name = &metric.name;
    let compile = |field: &'static str, source: &Option<String>, problems: &mut Vec<_>| {
        let expr = source.as_deref()?;
        Condition::compile(expr)
            .map_err(|source| {
                problems.push(SpecProblem::Condition {
                    metric: name.clone(),
                    field,
                    source,
                })
            })
            .ok()
    };
    let success = compile("successCondition", &metric.success_condition, problems);
    let failure = compile("failureCondition", &metric.failure_condition, problems);
    let has_conditions = metric.success_condition.is_some() || metric.failure_condition.is_some();
    match (&metric.judge, has_conditions) {
        (Some(_), true) => problems.push(SpecProblem::JudgeWithConditions {
            metric: name.clone(),
        }),
        (None, false) => problems.push(SpecProblem::NoCheck {
            metric: name.clone(),
        }),
        (None, true) if metric.provider.prometheus().query.is_none() => {
            problems.push(SpecProblem::MissingQuery {
                metric: name.clone(),
            })
        }
        _ => {}
    }
    match &metric.judge {
        Some(judge) => Check::Judge(judge.clone()),
        None => Check::Conditions { success, failure },
    }
}

/// A run's (or template's) metrics, validated together.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedAnalysis {
    metrics: Vec<ValidatedMetric>,
    score: Option<ScoreThresholds>,
}

impl ValidatedAnalysis {
    /// Validates an AnalysisRun's spec.
    pub fn from_run(spec: &AnalysisRunSpec) -> Result<Self, SpecError> {
        let metrics = Self::new(&spec.metrics, &spec.dry_run, &spec.measurement_retention);
        with_score(metrics, spec.score.as_ref())
    }

    /// Validates an AnalysisTemplate's (or ClusterAnalysisTemplate's) spec.
    pub fn from_template(spec: &AnalysisTemplateSpec) -> Result<Self, SpecError> {
        let metrics = Self::new(&spec.metrics, &spec.dry_run, &spec.measurement_retention);
        with_score(metrics, spec.score.as_ref())
    }

    /// Validates metrics with their dry-run and retention rules.
    ///
    /// # Guarantees
    /// On error, every problem found is listed (not just the first).
    pub fn new(
        metrics: &[Metric],
        dry_run: &[DryRun],
        retention: &[MeasurementRetention],
    ) -> Result<Self, SpecError> {
        let mut problems = duplicate_names(metrics);
        let dry_run = patterns(
            "dryRun",
            dry_run.iter().map(|d| &d.metric_name),
            &mut problems,
        );
        let kept = patterns(
            "measurementRetention",
            retention.iter().map(|r| &r.metric_name),
            &mut problems,
        );
        problems.extend(unmatched_dry_runs(&dry_run, metrics));
        let mut validated = Vec::with_capacity(metrics.len());
        for metric in metrics {
            let is_dry_run = dry_run.iter().any(|p| p.matches(&metric.name));
            let keep = kept
                .iter()
                .zip(retention)
                .find(|(p, _)| p.matches(&metric.name))
                .map_or(DEFAULT_RETENTION, |(_, r)| {
                    usize::try_from(r.limit).unwrap_or(1)
                });
            match ValidatedMetric::new(metric, is_dry_run, keep) {
                Ok(m) => validated.push(m),
                Err(p) => problems.extend(p),
            }
        }
        if problems.is_empty() {
            Ok(ValidatedAnalysis {
                metrics: validated,
                score: None,
            })
        } else {
            Err(SpecError { problems })
        }
    }

    /// The same metrics scored with `thresholds` (see [`mod@crate::judge::score`]).
    pub fn scored(self, thresholds: ScoreThresholds) -> Self {
        ValidatedAnalysis {
            score: Some(thresholds),
            ..self
        }
    }

    /// The metrics, in spec order.
    pub fn metrics(&self) -> &[ValidatedMetric] {
        &self.metrics
    }

    /// The score thresholds, when the run is scored.
    pub fn score(&self) -> Option<ScoreThresholds> {
        self.score
    }

    /// Whether `metric` in `phase` ends the run at once (stopping the other metrics).
    ///
    /// Without a score, any failed, errored or inconclusive metric does (Argo Rollouts). With
    /// one, only a critical metric does, or a metric that errored: an error says the metric
    /// could not be measured, not that the canary is bad, so it is never scored. Dry-run
    /// metrics never do.
    pub fn ends_run(&self, metric: &ValidatedMetric, phase: AnalysisPhase) -> bool {
        let by_itself = self.score.is_none() || metric.critical || phase == AnalysisPhase::Error;
        !metric.dry_run && by_itself && is_decisive(phase)
    }

    /// The metric called `name`.
    pub fn metric(&self, name: &str) -> Option<&ValidatedMetric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

/// Adds the thresholds of `spec.score` to validated metrics, reporting bad thresholds along
/// with any problem the metrics have.
fn with_score(
    metrics: Result<ValidatedAnalysis, SpecError>,
    score: Option<&Score>,
) -> Result<ValidatedAnalysis, SpecError> {
    let Some(spec) = score else {
        return metrics;
    };
    let thresholds = ScoreThresholds::from_spec(spec).map_err(|e| SpecProblem::Score {
        reason: e.to_string(),
    });
    match (metrics, thresholds) {
        (Ok(m), Ok(t)) => Ok(m.scored(t)),
        (Ok(_), Err(p)) => Err(SpecError { problems: vec![p] }),
        (Err(e), Ok(_)) => Err(e),
        (Err(mut e), Err(p)) => {
            e.problems.push(p);
            Err(e)
        }
    }
}

fn duplicate_names(metrics: &[Metric]) -> Vec<SpecProblem> {
    let mut seen = std::collections::BTreeSet::new();
    let mut reported = std::collections::BTreeSet::new();
    metrics
        .iter()
        .filter(|m| !seen.insert(m.name.as_str()) && reported.insert(m.name.as_str()))
        .map(|m| SpecProblem::DuplicateName {
            name: m.name.clone(),
        })
        .collect()
}

/// A `metricName` pattern as written and compiled (`None` when it does not compile; that is
/// reported as a problem and the pattern matches nothing).
struct NamePattern {
    source: String,
    regex: Option<Regex>,
}

impl NamePattern {
    fn matches(&self, name: &str) -> bool {
        self.regex.as_ref().is_some_and(|r| r.is_match(name))
    }
}

/// Compiles `metricName` patterns anchored to the whole name; every bad one is reported.
fn patterns<'a>(
    field: &'static str,
    sources: impl Iterator<Item = &'a String>,
    problems: &mut Vec<SpecProblem>,
) -> Vec<NamePattern> {
    let compile = |(index, source): (usize, &String)| {
        let regex = Regex::new(&format!("^(?:{source})$"))
            .map_err(|e| {
                problems.push(SpecProblem::Pattern {
                    field,
                    index,
                    pattern: source.clone(),
                    reason: e.to_string(),
                })
            })
            .ok();
        NamePattern {
            source: source.clone(),
            regex,
        }
    };
    sources.enumerate().map(compile).collect()
}

/// `dryRun` rules that compile but match no metric (as Argo reports them).
fn unmatched_dry_runs(rules: &[NamePattern], metrics: &[Metric]) -> Vec<SpecProblem> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, p)| p.regex.is_some() && !metrics.iter().any(|m| p.matches(&m.name)))
        .map(|(index, p)| SpecProblem::UnmatchedDryRun {
            index,
            pattern: p.source.clone(),
        })
        .collect()
}

/// One problem with an analysis spec.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SpecProblem {
    /// A condition does not compile.
    #[error("metrics[{metric:?}].{field}: {source}")]
    Condition {
        /// Metric name.
        metric: String,
        /// `successCondition` or `failureCondition`.
        field: &'static str,
        /// Why.
        source: ConditionError,
    },
    /// Neither a condition nor a judge.
    #[error(
        "metrics[{metric:?}]: set successCondition or failureCondition (or a judge); without one every measurement would pass"
    )]
    NoCheck {
        /// Metric name.
        metric: String,
    },
    /// Both a judge and conditions.
    #[error(
        "metrics[{metric:?}]: a judge replaces successCondition and failureCondition; set one or the other"
    )]
    JudgeWithConditions {
        /// Metric name.
        metric: String,
    },
    /// Conditions without a query.
    #[error(
        "metrics[{metric:?}].provider.prometheus.query is required unless the metric has a judge"
    )]
    MissingQuery {
        /// Metric name.
        metric: String,
    },
    /// `count > 1` without `interval`.
    #[error("metrics[{metric:?}]: count greater than 1 requires an interval")]
    CountWithoutInterval {
        /// Metric name.
        metric: String,
    },
    /// `minSamples` below 1.
    #[error("metrics[{metric:?}].minSamples must be at least 1")]
    MinSamples {
        /// Metric name.
        metric: String,
    },
    /// Two metrics share a name.
    #[error("metric name {name:?} is used more than once")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A `metricName` pattern is not a regular expression.
    #[error("{field}[{index}].metricName {pattern:?} is not a valid regular expression: {reason}")]
    Pattern {
        /// `dryRun` or `measurementRetention`.
        field: &'static str,
        /// Position in the list.
        index: usize,
        /// The pattern as written.
        pattern: String,
        /// The regex compiler's message.
        reason: String,
    },
    /// `score` thresholds out of order.
    #[error("score: {reason}")]
    Score {
        /// Why.
        reason: String,
    },
    /// A `dryRun` rule that matches no metric (usually a typo that would leave a metric
    /// enforcing when it was meant to be dry-run, or the reverse).
    #[error("dryRun[{index}].metricName {pattern:?} matches no metric name")]
    UnmatchedDryRun {
        /// Position in the list.
        index: usize,
        /// The pattern as written.
        pattern: String,
    },
}

/// Everything wrong with an analysis spec.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid analysis spec: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct SpecError {
    /// Each problem, in spec order.
    pub problems: Vec<SpecProblem>,
}

#[cfg(test)]
mod tests;
