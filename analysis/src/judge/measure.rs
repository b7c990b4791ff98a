//! The measurement path for a metric with a judge: which queries to send, and how their
//! answers become a [`Measurement`].
//!
//! | Judge | Queries | Kind |
//! |---|---|---|
//! | `mannWhitney` | canary, baseline | range over `window` (default 5m) at `step` (default 15s); every point is a sample |
//! | `sequential` | canary errors and total, baseline errors and total | instant; `{{args.window}}` = the run's age |
//! | `slo` | canary errors and total per distinct window | instant; `{{args.window}}` = that window |
//!
//! A count query's series are summed (one `sum(...)` series is the usual shape). Windows are
//! substituted as whole seconds (`300s`), which every Prometheus version parses. The
//! substituted `window` replaces an argument of that name, if the run has one.
//!
//! The decisions follow [`measure()`](crate::measure()): a failed fetch is an `Error`
//! measurement; no data or NaN is decided by `onEmpty` / `onNaN` (see
//! [`Verdict::measurement_phase`]); otherwise the judge decides. The measurement's `value` is
//! the judge's statistic and its metadata carries the resolved queries (secrets masked), the
//! sample count and the judge's bounds.

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use sluice_crds::{
    AnalysisPhase, Measurement,
    analysis_run::measurement_metadata,
    judge::{CountQueries, Judge, MannWhitneyJudge, SequentialJudge, SloJudge},
};

use super::{
    ConfigError, MannWhitneyConfig, NoData, SequentialConfig, SloConfig, Verdict, WindowCounts,
    mann_whitney, num, sequential, sequential::Counts, slo,
};
use crate::{
    args::{Args, ArgsError, render},
    metric::ValidatedMetric,
    provider::{ProviderError, ResolvedQuery},
    value::{MetricValue, ValueStatus},
};

/// Mann-Whitney window when the judge does not set one.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// Mann-Whitney step when the judge does not set one.
pub const DEFAULT_STEP: Duration = Duration::from_secs(15);
/// The argument the count queries use for their window.
pub const WINDOW_ARG: &str = "window";

/// Judge-specific keys of [`Measurement::metadata`].
pub mod judge_metadata {
    /// Which judge: `mannWhitney`, `sequential` or `slo`.
    pub const JUDGE: &str = "judge";
    /// The judge's own decision: `pass`, `fail`, `continue`, `no data`, `invalid`.
    pub const DECISION: &str = "judgeDecision";
    /// Lower confidence bound of the judged quantity.
    pub const LOWER_BOUND: &str = "lowerBound";
    /// Upper confidence bound.
    pub const UPPER_BOUND: &str = "upperBound";
    /// Coverage of the bounds.
    pub const CONFIDENCE: &str = "confidence";
}

/// What a query is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryRole {
    /// Mann-Whitney canary samples.
    CanarySamples,
    /// Mann-Whitney baseline samples.
    BaselineSamples,
    /// Sequential: canary errors since the run started.
    CanaryErrors,
    /// Sequential: canary requests since the run started.
    CanaryTotal,
    /// Sequential: baseline errors since the run started.
    BaselineErrors,
    /// Sequential: baseline requests since the run started.
    BaselineTotal,
    /// SLO: canary errors over a window.
    WindowErrors(Duration),
    /// SLO: canary requests over a window.
    WindowTotal(Duration),
}

impl fmt::Display for QueryRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryRole::CanarySamples => f.write_str("canary"),
            QueryRole::BaselineSamples => f.write_str("baseline"),
            QueryRole::CanaryErrors => f.write_str("canary errors"),
            QueryRole::CanaryTotal => f.write_str("canary total"),
            QueryRole::BaselineErrors => f.write_str("baseline errors"),
            QueryRole::BaselineTotal => f.write_str("baseline total"),
            QueryRole::WindowErrors(d) => write!(f, "errors over {}", prometheus_window(*d)),
            QueryRole::WindowTotal(d) => write!(f, "total over {}", prometheus_window(*d)),
        }
    }
}

/// One query of a judge metric.
#[derive(Clone, Debug, PartialEq)]
pub struct JudgeQuery {
    /// What it is for.
    pub role: QueryRole,
    /// Ready to fetch.
    pub query: ResolvedQuery,
}

/// The queries `judge` needs, arguments substituted. `run_age` is the time since the
/// AnalysisRun started (the sequential judge's window; at least one second is used).
pub fn judge_queries(
    judge: &Judge,
    args: &Args,
    run_age: Duration,
) -> Result<Vec<JudgeQuery>, ArgsError> {
    match judge {
        Judge::MannWhitney(j) => mann_whitney_queries(j, args),
        Judge::Sequential(j) => {
            let args = with_window(args, run_age.max(Duration::from_secs(1)));
            let mut queries = count_queries(
                &j.canary,
                &args,
                QueryRole::CanaryErrors,
                QueryRole::CanaryTotal,
            )?;
            queries.extend(count_queries(
                &j.baseline,
                &args,
                QueryRole::BaselineErrors,
                QueryRole::BaselineTotal,
            )?);
            Ok(queries)
        }
        Judge::Slo(j) => {
            let mut queries = Vec::new();
            for window in slo_windows(j) {
                let args = with_window(args, window);
                queries.extend(count_queries(
                    &j.canary,
                    &args,
                    QueryRole::WindowErrors(window),
                    QueryRole::WindowTotal(window),
                )?);
            }
            Ok(queries)
        }
    }
}

fn mann_whitney_queries(j: &MannWhitneyJudge, args: &Args) -> Result<Vec<JudgeQuery>, ArgsError> {
    let window = j.window.map_or(DEFAULT_WINDOW, |d| d.get());
    let step = j.step.map_or(DEFAULT_STEP, |d| d.get());
    let range = |role, template: &str| {
        Ok(JudgeQuery {
            role,
            query: ResolvedQuery::range(render(template, args)?, window, step),
        })
    };
    Ok(vec![
        range(QueryRole::CanarySamples, &j.canary_query)?,
        range(QueryRole::BaselineSamples, &j.baseline_query)?,
    ])
}

fn count_queries(
    q: &CountQueries,
    args: &Args,
    errors: QueryRole,
    total: QueryRole,
) -> Result<Vec<JudgeQuery>, ArgsError> {
    let instant = |role, template: &str| {
        Ok(JudgeQuery {
            role,
            query: ResolvedQuery::instant(render(template, args)?),
        })
    };
    Ok(vec![
        instant(errors, &q.errors_query)?,
        instant(total, &q.total_query)?,
    ])
}

/// Each distinct window of the SLO judge, in order of appearance (long before short).
fn slo_windows(j: &SloJudge) -> Vec<Duration> {
    let mut windows = Vec::new();
    for w in &j.windows {
        for d in [w.long.get(), w.short.get()] {
            if !windows.contains(&d) {
                windows.push(d);
            }
        }
    }
    windows
}

fn with_window(args: &Args, window: Duration) -> Args {
    args.clone().with(WINDOW_ARG, prometheus_window(window))
}

/// Whole seconds, the one duration form every Prometheus version parses.
fn prometheus_window(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

/// Judges the answers to [`judge_queries`] (`answers[i]` for `queries[i]`).
///
/// # Guarantees
/// As [`measure()`](crate::measure()): the measurement is complete, its message says why,
/// `resolvedQuery` holds every query (role, then masked text, one per line), and it is
/// `Successful` on missing data only when the metric chose `pass` for it.
pub fn judge_measurement(
    metric: &ValidatedMetric,
    judge: &Judge,
    queries: &[JudgeQuery],
    answers: &[Result<MetricValue, ProviderError>],
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
) -> Measurement {
    let mut measurement = base(judge, queries, started_at, finished_at);
    if queries.len() != answers.len() {
        let message = format!("{} answers for {} queries", answers.len(), queries.len());
        return errored(measurement, message);
    }
    if let Some((q, e)) = queries
        .iter()
        .zip(answers)
        .find_map(|(q, a)| a.as_ref().err().map(|e| (q, e)))
    {
        return errored(measurement, format!("{}: {e}", q.role));
    }
    let values: Vec<(QueryRole, &MetricValue)> = queries
        .iter()
        .zip(answers)
        .filter_map(|(q, a)| a.as_ref().ok().map(|v| (q.role, v)))
        .collect();
    let samples: usize = values.iter().map(|(_, v)| v.sample_count()).sum();
    measurement.metadata.insert(
        measurement_metadata::SAMPLE_COUNT.into(),
        samples.to_string(),
    );
    let verdict = match evaluate(metric, judge, &values) {
        Ok(verdict) => verdict,
        Err(e) => return errored(measurement, format!("invalid judge settings: {e}")),
    };
    record_verdict(&mut measurement, &verdict);
    let (phase, message) = verdict.measurement_phase(metric.on_empty(), metric.on_nan());
    measurement.phase = phase;
    measurement.message = Some(message);
    measurement
}

fn evaluate(
    metric: &ValidatedMetric,
    judge: &Judge,
    values: &[(QueryRole, &MetricValue)],
) -> Result<Verdict, ConfigError> {
    let min_samples = metric.min_samples();
    Ok(match judge {
        Judge::MannWhitney(j) => {
            let config = MannWhitneyConfig::from_judge(j, min_samples)?;
            let canary = find(values, QueryRole::CanarySamples);
            let baseline = find(values, QueryRole::BaselineSamples);
            mann_whitney(&config, canary, baseline).verdict
        }
        Judge::Sequential(j) => sequential_verdict(j, min_samples, values)?,
        Judge::Slo(j) => {
            let config = SloConfig::from_judge(j, min_samples)?;
            match slo_counts(&config, values) {
                Ok(counts) => slo(&config, &counts).verdict,
                Err(verdict) => verdict,
            }
        }
    })
}

fn sequential_verdict(
    j: &SequentialJudge,
    min_samples: usize,
    values: &[(QueryRole, &MetricValue)],
) -> Result<Verdict, ConfigError> {
    let config = SequentialConfig::from_judge(j, min_samples)?;
    let counts = |errors, total| -> Result<Counts, Verdict> {
        Ok(Counts::new(count(values, errors)?, count(values, total)?))
    };
    let both = counts(QueryRole::CanaryErrors, QueryRole::CanaryTotal).and_then(|c| {
        Ok((
            c,
            counts(QueryRole::BaselineErrors, QueryRole::BaselineTotal)?,
        ))
    });
    Ok(match both {
        Ok((canary, baseline)) => sequential(&config, canary, baseline).verdict,
        Err(verdict) => verdict,
    })
}

fn slo_counts(
    config: &SloConfig,
    values: &[(QueryRole, &MetricValue)],
) -> Result<Vec<WindowCounts>, Verdict> {
    let over = |d: Duration| -> Result<Counts, Verdict> {
        Ok(Counts::new(
            count(values, QueryRole::WindowErrors(d))?,
            count(values, QueryRole::WindowTotal(d))?,
        ))
    };
    config
        .windows()
        .iter()
        .map(|w| {
            Ok(WindowCounts {
                long: over(w.long)?,
                short: over(w.short)?,
            })
        })
        .collect()
}

/// The samples of a role (empty when the role was not queried).
fn find<'a>(values: &[(QueryRole, &'a MetricValue)], role: QueryRole) -> &'a [f64] {
    values
        .iter()
        .find(|(r, _)| *r == role)
        .map_or(&[], |(_, v)| v.values())
}

/// A count query's value: the sum of its series; no series or NaN is no data.
fn count(values: &[(QueryRole, &MetricValue)], role: QueryRole) -> Result<f64, Verdict> {
    let value = values.iter().find(|(r, _)| *r == role).map(|(_, v)| *v);
    match value.map(MetricValue::status) {
        None | Some(ValueStatus::Empty) => Err(Verdict::no_data(
            NoData::Empty,
            format!("the {role} query returned no data"),
        )),
        Some(ValueStatus::NaN) => Err(Verdict::no_data(
            NoData::NaN,
            format!("the {role} query returned NaN"),
        )),
        Some(ValueStatus::Ok) => Ok(value.map_or(0.0, |v| v.values().iter().sum())),
    }
}

fn base(
    judge: &Judge,
    queries: &[JudgeQuery],
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
) -> Measurement {
    let resolved: Vec<String> = queries
        .iter()
        .map(|q| format!("{}: {}", q.role, q.query.display))
        .collect();
    let mut measurement = crate::measure::base(Some(&resolved.join("\n")), started_at, finished_at);
    measurement.metadata.insert(
        judge_metadata::JUDGE.to_string(),
        judge_name(judge).to_string(),
    );
    measurement
}

fn errored(mut measurement: Measurement, message: String) -> Measurement {
    measurement.phase = AnalysisPhase::Error;
    measurement.message = Some(message);
    measurement
}

fn record_verdict(measurement: &mut Measurement, verdict: &Verdict) {
    let metadata = &mut measurement.metadata;
    metadata.insert(judge_metadata::DECISION.into(), verdict.phase.to_string());
    if let Some(bounds) = verdict.bounds {
        metadata.insert(judge_metadata::LOWER_BOUND.into(), num(bounds.lower));
        metadata.insert(judge_metadata::UPPER_BOUND.into(), num(bounds.upper));
        metadata.insert(judge_metadata::CONFIDENCE.into(), num(bounds.confidence));
    }
    measurement.value = verdict.value.map(num);
}

/// The judge's name as written in manifests.
pub fn judge_name(judge: &Judge) -> &'static str {
    match judge {
        Judge::MannWhitney(_) => "mannWhitney",
        Judge::Sequential(_) => "sequential",
        Judge::Slo(_) => "slo",
    }
}
