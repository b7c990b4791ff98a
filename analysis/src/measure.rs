//! One measurement: from a provider's answer to a [`Measurement`] with a verdict and its reason.
//!
//! The order of decisions is fixed, and each step says why in the measurement's message:
//!
//! 1. A fetch error is an `Error` measurement (it counts toward `consecutiveErrorLimit`, never
//!    toward a verdict).
//! 2. Fewer samples than `minSamples` (default 1, so an empty result) is decided by `onEmpty`.
//! 3. A NaN anywhere in the result is decided by `onNaN`.
//! 4. Otherwise the conditions decide, with Argo Rollouts' rules: with only a
//!    `successCondition`, not meeting it fails; with only a `failureCondition`, not meeting it
//!    succeeds; with both, `failureCondition` wins, and meeting neither is inconclusive. A
//!    condition that cannot be evaluated is an `Error` measurement.
//!
//! No-data policies default to `fail`, so missing data is never a silent pass: a measurement
//! passes on no data only when the metric says `pass` explicitly.
//!
//! The controller's side of a measurement is three calls:
//! [`resolve_query`] (arguments substituted), [`MetricProvider::fetch`](crate::MetricProvider)
//! and [`measure`]. Anything that goes wrong before the fetch (a missing argument, a missing
//! Secret, a judge that is not implemented) becomes an `Error` measurement through
//! [`error_measurement`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sluice_crds::{AnalysisPhase, Measurement, NoDataPolicy, analysis_run::measurement_metadata};

use crate::{
    args::{Args, ArgsError, render},
    condition::Condition,
    judge::measure::judge_name,
    metric::{Check, ValidatedMetric},
    provider::{ProviderError, ResolvedQuery},
    time::to_api,
    value::{MetricValue, ValueStatus, describe_result, format_values},
};

/// Why a metric's query could not be prepared.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// An argument is missing or a placeholder is malformed.
    #[error("provider.prometheus.query: {0}")]
    Args(#[from] ArgsError),
    /// The metric uses a statistical judge, which measures through its own queries
    /// (`judge_queries`), never through the metric's single instant query.
    #[error("the {0} judge measures through its own queries, not a single instant query")]
    JudgeMeasuresItself(&'static str),
}

/// The metric's instant query with arguments substituted (secret values masked in `display`).
pub fn resolve_query(metric: &ValidatedMetric, args: &Args) -> Result<ResolvedQuery, QueryError> {
    if let Check::Judge(judge) = metric.check() {
        return Err(QueryError::JudgeMeasuresItself(judge_name(judge)));
    }
    // Validation guarantees a query for condition metrics; an empty one fails at the server
    // with a clear message rather than here.
    let template = metric
        .provider()
        .prometheus()
        .query
        .as_deref()
        .unwrap_or_default();
    Ok(ResolvedQuery::instant(render(template, args)?))
}

/// Judges one fetch.
///
/// # Guarantees
/// - The measurement is complete (`finishedAt` set, phase final) and its message says why.
/// - `metadata.resolvedQuery` is `query.display` (secrets masked); `metadata.sampleCount` is
///   set whenever the fetch returned.
/// - `Successful` only when the conditions hold on real data, or when the metric explicitly
///   chose `pass` for no data.
pub fn measure(
    metric: &ValidatedMetric,
    query: &ResolvedQuery,
    fetched: &Result<MetricValue, ProviderError>,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
) -> Measurement {
    let mut measurement = base(Some(&query.display), started_at, finished_at);
    let value = match fetched {
        Ok(value) => value,
        Err(e) => {
            measurement.phase = AnalysisPhase::Error;
            measurement.message = Some(e.to_string());
            return measurement;
        }
    };
    measurement.value = Some(format_values(value.values()));
    measurement.metadata.insert(
        measurement_metadata::SAMPLE_COUNT.to_string(),
        value.sample_count().to_string(),
    );
    let (phase, message) = verdict(metric, value);
    measurement.phase = phase;
    measurement.message = Some(message);
    measurement
}

/// A measurement that could not be taken (argument, Secret, provider setup or judge problem).
/// `query_display` is recorded as `resolvedQuery` when known.
pub fn error_measurement(
    message: impl Into<String>,
    query_display: Option<&str>,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
) -> Measurement {
    Measurement {
        phase: AnalysisPhase::Error,
        message: Some(message.into()),
        ..base(query_display, started_at, finished_at)
    }
}

/// A measurement not yet judged (`Running`), timed, with `resolvedQuery` when known.
pub(crate) fn base(
    query: Option<&str>,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
) -> Measurement {
    let mut metadata = BTreeMap::new();
    if let Some(q) = query {
        metadata.insert(
            measurement_metadata::RESOLVED_QUERY.to_string(),
            q.to_string(),
        );
    }
    Measurement {
        phase: AnalysisPhase::Running,
        message: None,
        started_at: Some(to_api(started_at)),
        finished_at: Some(to_api(finished_at)),
        value: None,
        metadata,
        resume_at: None,
    }
}

/// The phase and reason for a fetched value.
fn verdict(metric: &ValidatedMetric, value: &MetricValue) -> (AnalysisPhase, String) {
    let samples = value.sample_count();
    if samples < metric.min_samples() {
        let what = if samples == 0 {
            "the query returned no data".to_string()
        } else {
            format!(
                "the query returned {samples} sample(s), fewer than minSamples {}",
                metric.min_samples()
            )
        };
        return no_data(&what, "onEmpty", metric.on_empty());
    }
    if value.status() == ValueStatus::NaN {
        let what = format!(
            "the query returned NaN ({})",
            describe_result(value.values())
        );
        return no_data(&what, "onNaN", metric.on_nan());
    }
    match metric.check() {
        Check::Conditions { success, failure } => {
            conditions(success.as_ref(), failure.as_ref(), value.values())
        }
        Check::Judge(judge) => (
            AnalysisPhase::Error,
            QueryError::JudgeMeasuresItself(judge_name(judge)).to_string(),
        ),
    }
}

/// The verdict of a no-data policy, the message saying what happened and which field decided
/// (shared with the judges, so both paths word it alike).
pub(crate) fn no_data(what: &str, field: &str, policy: NoDataPolicy) -> (AnalysisPhase, String) {
    let (phase, name) = match policy {
        NoDataPolicy::Fail => (AnalysisPhase::Failed, "fail"),
        NoDataPolicy::Inconclusive => (AnalysisPhase::Inconclusive, "inconclusive"),
        NoDataPolicy::Pass => (AnalysisPhase::Successful, "pass"),
    };
    (phase, format!("{what}; {field} is {name}"))
}

/// Argo Rollouts' rules for combining the two conditions (see the module docs).
fn conditions(
    success: Option<&Condition>,
    failure: Option<&Condition>,
    values: &[f64],
) -> (AnalysisPhase, String) {
    let result = describe_result(values);
    let eval = |c: Option<&Condition>| c.map(|c| c.evaluate(values)).transpose();
    let (s, f) = match (eval(success), eval(failure)) {
        (Ok(s), Ok(f)) => (s, f),
        (Err(e), _) | (_, Err(e)) => {
            return (AnalysisPhase::Error, format!("{result}: {e}"));
        }
    };
    let quote = |c: Option<&Condition>| c.map(|c| format!("'{}'", c.source())).unwrap_or_default();
    let (sq, fq) = (quote(success), quote(failure));
    match (s, f) {
        (_, Some(true)) => (
            AnalysisPhase::Failed,
            format!("{result} met failureCondition {fq}"),
        ),
        (Some(true), _) => (
            AnalysisPhase::Successful,
            format!("{result} satisfied successCondition {sq}"),
        ),
        (Some(false), None) => (
            AnalysisPhase::Failed,
            format!("{result} did not satisfy successCondition {sq}"),
        ),
        (None, Some(false)) => (
            AnalysisPhase::Successful,
            format!("{result} did not meet failureCondition {fq}"),
        ),
        (Some(false), Some(false)) => (
            AnalysisPhase::Inconclusive,
            format!("{result} met neither successCondition {sq} nor failureCondition {fq}"),
        ),
        // Validation guarantees at least one condition.
        (None, None) => (
            AnalysisPhase::Error,
            "the metric has no condition to evaluate".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests;
