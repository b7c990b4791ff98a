//! The AnalysisRun state machine: a pure function of the validated spec and the persisted
//! status.
//!
//! Everything the assessment needs is in `AnalysisRun.status` (counters, the retained
//! measurements, each metric's phase), so a controller that restarts and reads the status
//! back computes exactly what it would have computed without the restart. Semantics follow
//! Argo Rollouts:
//!
//! - A metric fails when `failed > failureLimit` (default 0), is inconclusive when
//!   `inconclusive > inconclusiveLimit` (default 0), errors when
//!   `consecutiveErrors > consecutiveErrorLimit` (default 4); a limit of -1 never trips. The
//!   checks run in that order after every measurement.
//! - It succeeds when `count` measurements (errors excluded) were taken without tripping a
//!   limit. Without `count` and with an `interval` it measures until the run is terminated.
//! - Sluice's addition: a `sequential` judge metric with `promoteEarly` succeeds at once when
//!   its latest measurement is the judge's pass (`metadata.judgeDecision: pass`: the canary is
//!   proven within the margin), however few measurements were taken. The limits are checked
//!   first, so a regression still fails it.
//! - A completed metric never changes phase again.
//! - The run is `Failed` as soon as any metric failed, else `Error` if any errored, else
//!   `Inconclusive` if any was inconclusive (each of these also stops all measuring), else
//!   `Successful` once every metric completed, else `Running`. Dry-run metrics are measured
//!   and reported (`dryRunSummary`, the run message) but never decide the phase.
//! - Sluice's addition, Kayenta's canary scoring: with `spec.score`, only a **critical** metric
//!   (or one that errored) ends the run as above. Any other metric that fails or is
//!   inconclusive stops being measured and waits; once every metric completed, the run is
//!   scored by weight ([`mod@crate::judge::score`]) and its phase is the score's. Metrics the run
//!   was terminated before measuring, and dry-run metrics, are not scored. The score and every
//!   scored metric's phase and weight are in the status.
//! - `terminate` stops measuring: metrics still running end `Successful`, as in Argo.
//!
//! Each phase comes with a message saying why, quoting the deciding measurement.

use chrono::{DateTime, Utc};
use sluice_crds::{AnalysisPhase, AnalysisRunStatus, Measurement, MetricResult, RunSummary};

use crate::{
    judge::{MetricOutcome, Phase, ScoreThresholds, measure::judge_metadata, score},
    metric::{ValidatedAnalysis, ValidatedMetric},
    time::to_api,
};

/// A metric's phase and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricAssessment {
    /// Phase.
    pub phase: AnalysisPhase,
    /// Reason, quoting the deciding measurement where there is one.
    pub message: String,
}

/// Adds a finished measurement to a metric's result: counters as Argo keeps them, the newest
/// measurements retained, phase and message reassessed.
///
/// # Assumptions
/// The measurement is complete (as [`measure()`](crate::measure()) produces). `previous` is the metric's
/// result from the persisted status, if any.
pub fn record(
    metric: &ValidatedMetric,
    previous: Option<&MetricResult>,
    measurement: Measurement,
) -> MetricResult {
    let mut result = previous.cloned().unwrap_or_else(|| MetricResult {
        name: metric.name().to_string(),
        phase: AnalysisPhase::Running,
        ..MetricResult::default()
    });
    result.dry_run = metric.dry_run();
    count(&mut result, measurement.phase);
    result.measurements.push(measurement);
    let excess = result.measurements.len().saturating_sub(metric.retention());
    result.measurements.drain(..excess);
    let assessment = assess_metric(metric, &result, false);
    result.phase = assessment.phase;
    result.message = Some(assessment.message);
    result
}

/// Argo's counters: errors are not part of `count` and reset nothing but themselves.
fn count(result: &mut MetricResult, phase: AnalysisPhase) {
    match phase {
        AnalysisPhase::Successful => result.successful += 1,
        AnalysisPhase::Failed => result.failed += 1,
        AnalysisPhase::Inconclusive => result.inconclusive += 1,
        AnalysisPhase::Error => {
            result.error += 1;
            result.consecutive_error += 1;
            return;
        }
        AnalysisPhase::Pending | AnalysisPhase::Running => return,
    }
    result.count += 1;
    result.consecutive_error = 0;
}

/// The phase of one metric from its result. `terminating` means no further measurement will
/// be taken (the run was terminated, or another metric already decided it).
pub fn assess_metric(
    metric: &ValidatedMetric,
    result: &MetricResult,
    terminating: bool,
) -> MetricAssessment {
    let done = |phase, message: String| MetricAssessment { phase, message };
    if result.phase.is_completed() {
        let message = result.message.clone().unwrap_or_default();
        return done(result.phase, message);
    }
    let Some(last) = result.measurements.last() else {
        return if terminating {
            done(
                AnalysisPhase::Successful,
                "run terminated before the first measurement".into(),
            )
        } else {
            done(
                AnalysisPhase::Pending,
                "waiting for the first measurement".into(),
            )
        };
    };
    if !last.phase.is_completed() {
        return done(AnalysisPhase::Running, "measurement in progress".into());
    }
    if let Some(tripped) = tripped_limit(metric, result) {
        return tripped;
    }
    let summary = tally(result);
    if promoted_early(metric, last) {
        return done(
            AnalysisPhase::Successful,
            format!(
                "promoted early after {} measurement(s) ({summary}): {}",
                result.count,
                said(last)
            ),
        );
    }
    if metric.count().is_some_and(|c| result.count >= c) {
        return done(
            AnalysisPhase::Successful,
            format!("count ({}) reached: {summary}", result.count),
        );
    }
    if terminating {
        return done(
            AnalysisPhase::Successful,
            format!("run terminated: {summary}"),
        );
    }
    let progress = match metric.count() {
        Some(c) => format!("{} of {c} measurements", result.count),
        None => format!("{} measurements, until terminated", result.count),
    };
    done(
        AnalysisPhase::Running,
        format!("{progress} ({summary}); last: {}", said(last)),
    )
}

/// Whether `last` ends the metric early: it promotes early and the judge passed. Read from the
/// persisted measurement, so a restarted controller reaches the same verdict.
fn promoted_early(metric: &ValidatedMetric, last: &Measurement) -> bool {
    metric.promotes_early()
        && last.phase == AnalysisPhase::Successful
        && last
            .metadata
            .get(judge_metadata::DECISION)
            .is_some_and(|decision| *decision == Phase::Pass.to_string())
}

/// Failed, Inconclusive or Error when a limit is exceeded, checked in Argo's order.
fn tripped_limit(metric: &ValidatedMetric, result: &MetricResult) -> Option<MetricAssessment> {
    let checks = [
        (
            AnalysisPhase::Failed,
            "failed",
            result.failed,
            metric.failure_limit(),
            "failureLimit",
        ),
        (
            AnalysisPhase::Inconclusive,
            "inconclusive",
            result.inconclusive,
            metric.inconclusive_limit(),
            "inconclusiveLimit",
        ),
        (
            AnalysisPhase::Error,
            "consecutive errors",
            result.consecutive_error,
            metric.consecutive_error_limit(),
            "consecutiveErrorLimit",
        ),
    ];
    let (phase, what, n, limit, field) = checks
        .into_iter()
        .find(|(_, _, n, limit, _)| limit.exceeded_by(*n))?;
    let last = result.measurements.iter().rev().find(|m| m.phase == phase);
    let because = last
        .map(|m| format!("; last: {}", said(m)))
        .unwrap_or_default();
    Some(MetricAssessment {
        phase,
        message: format!("{what} ({n}) > {field} ({limit}){because}"),
    })
}

fn tally(r: &MetricResult) -> String {
    format!(
        "{} successful, {} failed, {} inconclusive, {} errors",
        r.successful, r.failed, r.inconclusive, r.error
    )
}

fn said(m: &Measurement) -> String {
    m.message
        .clone()
        .unwrap_or_else(|| format!("{:?}", m.phase))
}

/// The run's verdict with every metric's result reassessed.
#[derive(Clone, Debug, PartialEq)]
pub struct RunAssessment {
    /// Run phase.
    pub phase: AnalysisPhase,
    /// Why: the deciding metrics and their reasons, and any dry-run failures.
    pub message: String,
    /// One result per metric, in spec order (metrics never measured appear as `Pending`).
    pub metric_results: Vec<MetricResult>,
    /// Counts of non-dry-run metrics by phase.
    pub run_summary: RunSummary,
    /// Counts of dry-run metrics by phase.
    pub dry_run_summary: RunSummary,
    /// The score (0 to 100), when the run is scored and every metric completed without one
    /// ending the run first.
    pub score: Option<f64>,
}

/// Assesses every metric and the run.
///
/// # Guarantees
/// Deterministic in its inputs. A metric already completed in `results` keeps its phase.
pub fn assess_run(
    analysis: &ValidatedAnalysis,
    results: &[MetricResult],
    terminate: bool,
) -> RunAssessment {
    let current = |m: &ValidatedMetric| {
        results
            .iter()
            .find(|r| r.name == m.name())
            .cloned()
            .unwrap_or_else(|| MetricResult {
                name: m.name().to_string(),
                dry_run: m.dry_run(),
                ..MetricResult::default()
            })
    };
    let reassess = |terminating: bool| -> Vec<Assessed<'_>> {
        analysis
            .metrics()
            .iter()
            .map(|m| {
                let mut r = current(m);
                let a = assess_metric(m, &r, terminating);
                (r.phase, r.message, r.dry_run) = (a.phase, Some(a.message), m.dry_run());
                (m, r)
            })
            .collect()
    };
    let mut assessed = reassess(terminate);
    // A decisive metric stops the others, as in Argo; reassess them as terminating.
    if !terminate && assessed.iter().any(|(m, r)| analysis.ends_run(m, r.phase)) {
        assessed = reassess(true);
    }
    let verdict = verdict(analysis, &assessed);
    RunAssessment {
        phase: verdict.phase,
        message: with_dry_runs(verdict.message, &assessed),
        score: verdict.score,
        run_summary: summary(
            assessed
                .iter()
                .filter(|(m, _)| !m.dry_run())
                .map(|(_, r)| r),
        ),
        dry_run_summary: summary(assessed.iter().filter(|(m, _)| m.dry_run()).map(|(_, r)| r)),
        metric_results: assessed.into_iter().map(|(_, r)| r).collect(),
    }
}

/// Whether a metric's phase ends the run.
pub(crate) fn is_decisive(phase: AnalysisPhase) -> bool {
    matches!(
        phase,
        AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
    )
}

/// A metric with its reassessed result.
type Assessed<'a> = (&'a ValidatedMetric, MetricResult);

/// The run's phase, why, and its score when it was scored.
struct Verdict {
    phase: AnalysisPhase,
    message: String,
    score: Option<f64>,
}

fn verdict(analysis: &ValidatedAnalysis, assessed: &[Assessed<'_>]) -> Verdict {
    let plain = |phase, message| Verdict {
        phase,
        message,
        score: None,
    };
    if let Some(phase) = ending_phase(analysis, assessed) {
        return plain(phase, ending_message(analysis, phase, assessed));
    }
    if !assessed.iter().all(|(_, r)| r.phase.is_completed()) {
        return plain(
            AnalysisPhase::Running,
            overview(AnalysisPhase::Running, assessed),
        );
    }
    let outcomes = scored_outcomes(assessed);
    match analysis.score() {
        Some(thresholds) if !outcomes.is_empty() => scored(&outcomes, thresholds),
        _ => plain(
            AnalysisPhase::Successful,
            overview(AnalysisPhase::Successful, assessed),
        ),
    }
}

/// The phase of the metrics that end the run by themselves, worst first (Argo's order).
fn ending_phase(analysis: &ValidatedAnalysis, assessed: &[Assessed<'_>]) -> Option<AnalysisPhase> {
    [
        AnalysisPhase::Failed,
        AnalysisPhase::Error,
        AnalysisPhase::Inconclusive,
    ]
    .into_iter()
    .find(|phase| {
        assessed
            .iter()
            .any(|(m, r)| r.phase == *phase && analysis.ends_run(m, r.phase))
    })
}

fn ending_message(
    analysis: &ValidatedAnalysis,
    phase: AnalysisPhase,
    assessed: &[Assessed<'_>],
) -> String {
    assessed
        .iter()
        .filter(|(m, r)| r.phase == phase && analysis.ends_run(m, r.phase))
        .map(describe)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The metrics that count in the score: not dry-run, and measured at least once (a metric the
/// run was terminated before measuring has no verdict to score).
fn scored_outcomes(assessed: &[Assessed<'_>]) -> Vec<MetricOutcome> {
    assessed
        .iter()
        .filter(|(m, r)| !m.dry_run() && r.count > 0)
        .map(|(m, r)| MetricOutcome {
            name: r.name.clone(),
            weight: m.weight(),
            critical: m.critical(),
            phase: r.phase,
        })
        .collect()
}

fn scored(outcomes: &[MetricOutcome], thresholds: ScoreThresholds) -> Verdict {
    let report = score(outcomes, thresholds);
    Verdict {
        phase: report.phase,
        message: report.message,
        score: Some(report.score),
    }
}

fn describe((_, r): &Assessed<'_>) -> String {
    format!(
        "metric {:?} {}: {}",
        r.name,
        phase_word(r.phase),
        r.message.as_deref().unwrap_or("")
    )
}

/// The run's message followed by every dry-run metric that would have ended it.
fn with_dry_runs(message: String, assessed: &[Assessed<'_>]) -> String {
    let mut parts = vec![message];
    parts.extend(
        assessed
            .iter()
            .filter(|(m, r)| m.dry_run() && is_decisive(r.phase))
            .map(|x| format!("dry-run {}", describe(x))),
    );
    parts.join("; ")
}

fn overview(phase: AnalysisPhase, assessed: &[Assessed<'_>]) -> String {
    let total = assessed.len();
    let completed = assessed
        .iter()
        .filter(|(_, r)| r.phase.is_completed())
        .count();
    match phase {
        AnalysisPhase::Successful => format!("all {total} metrics completed successfully"),
        _ => format!("{completed} of {total} metrics completed"),
    }
}

/// How a phase reads in a sentence ("metric x succeeded"), for messages and events.
pub fn phase_word(phase: AnalysisPhase) -> &'static str {
    match phase {
        AnalysisPhase::Pending => "is pending",
        AnalysisPhase::Running => "is running",
        AnalysisPhase::Successful => "succeeded",
        AnalysisPhase::Failed => "failed",
        AnalysisPhase::Error => "errored",
        AnalysisPhase::Inconclusive => "was inconclusive",
    }
}

fn summary<'a>(results: impl Iterator<Item = &'a MetricResult>) -> RunSummary {
    let mut s = RunSummary::default();
    for r in results {
        s.count += 1;
        match r.phase {
            AnalysisPhase::Successful => s.successful += 1,
            AnalysisPhase::Failed => s.failed += 1,
            AnalysisPhase::Inconclusive => s.inconclusive += 1,
            AnalysisPhase::Error => s.error += 1,
            AnalysisPhase::Pending | AnalysisPhase::Running => {}
        }
    }
    s
}

/// The whole new status: every metric and the run reassessed, `startedAt` set on the first
/// call, `completedAt` when the run reaches a final phase.
///
/// # Guarantees
/// - A run already in a final phase is returned unchanged (its verdict never flips).
/// - Deterministic in its inputs: the same status, spec, `terminate` and `now` give the same
///   result, so a controller restart changes nothing.
pub fn assess(
    analysis: &ValidatedAnalysis,
    status: &AnalysisRunStatus,
    terminate: bool,
    now: DateTime<Utc>,
) -> AnalysisRunStatus {
    if status.phase.is_some_and(AnalysisPhase::is_completed) {
        return status.clone();
    }
    let run = assess_run(analysis, &status.metric_results, terminate);
    let completed = run.phase.is_completed();
    AnalysisRunStatus {
        phase: Some(run.phase),
        message: Some(run.message),
        started_at: status.started_at.clone().or_else(|| Some(to_api(now))),
        completed_at: completed.then(|| status.completed_at.clone().unwrap_or_else(|| to_api(now))),
        metric_results: run.metric_results,
        run_summary: Some(run.run_summary),
        dry_run_summary: Some(run.dry_run_summary).filter(|s| s.count > 0),
        score: run.score,
    }
}

/// Records `measurement` for `metric` in `status` (creating its result if needed) and returns
/// the metric's new result; the run phase is left to [`assess`].
pub fn record_in(
    status: &mut AnalysisRunStatus,
    metric: &ValidatedMetric,
    measurement: Measurement,
) -> MetricResult {
    let position = status
        .metric_results
        .iter()
        .position(|r| r.name == metric.name());
    let updated = record(
        metric,
        position.map(|i| &status.metric_results[i]),
        measurement,
    );
    match position {
        Some(i) => status.metric_results[i] = updated.clone(),
        None => status.metric_results.push(updated.clone()),
    }
    updated
}

#[cfg(test)]
mod tests;
