//! When to measure: Argo Rollouts' timing as pure functions of the spec and the status.
//!
//! - The first measurement is due `initialDelay` after the run started.
//! - The next one is due `interval` after the last one finished; after an errored measurement
//!   of a metric without `interval`, after 10 s (errors are retried; they are not part of
//!   `count`).
//! - Nothing is due once the metric completed or took `count` measurements, or once the run is
//!   terminating (terminated, or decided by a failed, errored or inconclusive metric; with a
//!   score, only a critical or errored one: see [`ValidatedAnalysis::ends_run`]).
//!
//! The controller measures the [`due_metrics`] and requeues at [`next_reconcile_at`]; both
//! read only the persisted status, so a restart resumes exactly on schedule.

use chrono::{DateTime, Utc};
use sluice_crds::{AnalysisPhase, AnalysisRunStatus, MetricResult};

use crate::{
    metric::{ERROR_RETRY_INTERVAL, ValidatedAnalysis, ValidatedMetric},
    time::from_api,
};

/// When `metric` should next be measured; `None` when it needs no further measurement.
/// A time at or before `now` means "measure now".
///
/// # Assumptions
/// `run_started_at` is the run's `status.startedAt` (or the current time on the first
/// reconcile). A measurement without `finishedAt` is treated as finished when it started.
pub fn next_measurement_at(
    metric: &ValidatedMetric,
    result: Option<&MetricResult>,
    run_started_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let first = run_started_at + metric.initial_delay();
    let Some(result) = result else {
        return Some(first);
    };
    if result.phase.is_completed() {
        return None;
    }
    let Some(last) = result.measurements.last() else {
        return Some(first);
    };
    if metric.count().is_some_and(|c| result.count >= c) {
        return None;
    }
    let wait = match (metric.interval(), last.phase) {
        (Some(interval), _) => interval,
        (None, AnalysisPhase::Error) => ERROR_RETRY_INTERVAL,
        // Measured once and done; the assessment marks it complete.
        (None, _) => return None,
    };
    let finished = last
        .finished_at
        .as_ref()
        .or(last.started_at.as_ref())
        .map(from_api);
    Some(finished.unwrap_or(run_started_at) + wait)
}

/// Whether the run takes no further measurements.
pub fn is_terminating(
    analysis: &ValidatedAnalysis,
    status: &AnalysisRunStatus,
    terminate: bool,
) -> bool {
    let decided = status.metric_results.iter().any(|r| {
        analysis
            .metric(&r.name)
            .is_some_and(|m| analysis.ends_run(m, r.phase))
    });
    terminate || decided || status.phase.is_some_and(AnalysisPhase::is_completed)
}

/// The metrics to measure now, in spec order.
pub fn due_metrics<'a>(
    analysis: &'a ValidatedAnalysis,
    status: &AnalysisRunStatus,
    terminate: bool,
    now: DateTime<Utc>,
) -> Vec<&'a ValidatedMetric> {
    if is_terminating(analysis, status, terminate) {
        return Vec::new();
    }
    let started = started_at(status, now);
    analysis
        .metrics()
        .iter()
        .filter(|m| next_measurement_at(m, result(status, m), started).is_some_and(|t| t <= now))
        .collect()
}

/// The earliest time a metric becomes due; `None` when nothing is left to measure. The
/// controller requeues the run at this time (immediately if it is in the past).
pub fn next_reconcile_at(
    analysis: &ValidatedAnalysis,
    status: &AnalysisRunStatus,
    terminate: bool,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if is_terminating(analysis, status, terminate) {
        return None;
    }
    let started = started_at(status, now);
    analysis
        .metrics()
        .iter()
        .filter_map(|m| next_measurement_at(m, result(status, m), started))
        .min()
}

fn started_at(status: &AnalysisRunStatus, now: DateTime<Utc>) -> DateTime<Utc> {
    status.started_at.as_ref().map_or(now, from_api)
}

fn result<'s>(status: &'s AnalysisRunStatus, metric: &ValidatedMetric) -> Option<&'s MetricResult> {
    status
        .metric_results
        .iter()
        .find(|r| r.name == metric.name())
}

#[cfg(test)]
mod tests;
