//! Taking the due measurements of one run: arguments and Secrets resolved, queries rendered,
//! providers fetched from, answers judged.
//!
//! Every metric that is due gets exactly one finished measurement, whatever goes wrong for it
//! (an argument without a value, a missing Secret, an unreachable server): that is an `Error`
//! measurement with the reason, which the metric's `consecutiveErrorLimit` then weighs. Only
//! an API error reading a Secret fails the whole step, so the reconcile backs off and measures
//! later instead of recording an error that is not the metric's.
//!
//! A metric with a judge sends the judge's queries instead of its own (`judge_queries`; the
//! sequential judge's window is the run's age, from `status.startedAt`), all through the same
//! cached provider, and records `judge_measurement` of the answers.
//!
//! # Times
//! The API keeps whole seconds, so measurement times are rounded down to the second before
//! they are recorded: the status written is then exactly the status the next reconcile (or the
//! next controller) reads back, and the schedule computed from it is the same. The next
//! measurement is due `interval` after the recorded `finishedAt`; a fetch that ended late in a
//! second is followed up to a second early by the wall clock, as in Argo Rollouts. (Rounding
//! `finishedAt` up instead would add a second to every interval.)

use std::collections::BTreeSet;

use chrono::{DateTime, SubsecRound, Utc};
use futures::future::join_all;
use sluice_analysis::{
    Check, ConfigError, MetricProvider, PrometheusConfig, PrometheusProvider, QueryError,
    ValidatedMetric, error_measurement, judge_measurement, judge_queries, measure, resolve_query,
    secret_refs, time::from_api,
};
use sluice_crds::{AnalysisRun, Measurement, judge::Judge};

use super::Context;
use super::secrets::{self, ResolvedArgs, Secrets};

/// One measurement for each metric of `due`, in the same order.
pub async fn measure_due(
    ctx: &Context,
    namespace: &str,
    run: &AnalysisRun,
    due: &[&ValidatedMetric],
    now: DateTime<Utc>,
) -> Result<Vec<Measurement>, kube::Error> {
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let secrets = secrets::read(&ctx.client, namespace, secret_names(run, due)).await?;
    let args = secrets::resolve_args(&run.spec.args, &secrets);
    let started = round_down(now);
    let run_age = run_age(run, now);
    let measurements = due
        .iter()
        .map(|metric| measure_one(ctx, metric, &args, &secrets, started, run_age));
    Ok(join_all(measurements).await)
}

/// Every Secret this step may need: the run's secret arguments and the due metrics'
/// credentials and CA bundles.
fn secret_names(run: &AnalysisRun, due: &[&ValidatedMetric]) -> BTreeSet<String> {
    let providers = due
        .iter()
        .flat_map(|m| secret_refs(m.provider().prometheus()))
        .map(|r| r.name.as_str());
    secrets::argument_secret_names(&run.spec.args)
        .chain(providers)
        .map(str::to_owned)
        .collect()
}

async fn measure_one(
    ctx: &Context,
    metric: &ValidatedMetric,
    args: &ResolvedArgs,
    secrets: &Secrets,
    started: DateTime<Utc>,
    run_age: std::time::Duration,
) -> Measurement {
    if let Check::Judge(judge) = metric.check() {
        return measure_judge(ctx, metric, judge, args, secrets, started, run_age).await;
    }
    let query = match resolve_query(metric, &args.args) {
        Ok(query) => query,
        Err(e) => {
            let message = args.explain(e.to_string(), query_args_error(&e));
            return mask(error_measurement(message, None, started, finished()), args);
        }
    };
    let measurement = match provider(ctx, metric, args, secrets) {
        Err(message) => error_measurement(message, Some(&query.display), started, finished()),
        Ok(provider) => {
            let fetched = provider.fetch(&query, Utc::now()).await;
            measure(metric, &query, &fetched, started, finished())
        }
    };
    mask(measurement, args)
}

/// A judge metric: its queries fetched with the metric's (cached) provider, the answers judged.
async fn measure_judge(
    ctx: &Context,
    metric: &ValidatedMetric,
    judge: &Judge,
    args: &ResolvedArgs,
    secrets: &Secrets,
    started: DateTime<Utc>,
    run_age: std::time::Duration,
) -> Measurement {
    let queries = match judge_queries(judge, &args.args, run_age) {
        Ok(queries) => queries,
        Err(e) => {
            let message = args.explain(format!("judge: {e}"), Some(&e));
            return mask(error_measurement(message, None, started, finished()), args);
        }
    };
    let measurement = match provider(ctx, metric, args, secrets) {
        Err(message) => {
            let shown: Vec<&str> = queries.iter().map(|q| q.query.display.as_str()).collect();
            error_measurement(message, Some(&shown.join("\n")), started, finished())
        }
        Ok(provider) => {
            let now = Utc::now();
            let answers = join_all(queries.iter().map(|q| provider.fetch(&q.query, now))).await;
            judge_measurement(metric, judge, &queries, &answers, started, finished())
        }
    };
    mask(measurement, args)
}

/// Time since the run started (its `status.startedAt`; zero on the first measurement), which
/// the sequential judge's counts cover.
fn run_age(run: &AnalysisRun, now: DateTime<Utc>) -> std::time::Duration {
    run.status
        .as_ref()
        .and_then(|s| s.started_at.as_ref())
        .and_then(|t| (now - from_api(t)).to_std().ok())
        .unwrap_or_default()
}

/// The metric's provider (from the cache), or why there is none.
fn provider(
    ctx: &Context,
    metric: &ValidatedMetric,
    args: &ResolvedArgs,
    secrets: &Secrets,
) -> Result<PrometheusProvider, String> {
    let spec = metric.provider().prometheus();
    let (values, versions) = secrets.values(&secret_refs(spec))?;
    let config = PrometheusConfig::resolve(spec, &args.args, &values)
        .map_err(|e| args.explain(e.to_string(), config_args_error(&e)))?;
    ctx.providers
        .get_or_build(config, &versions, &args.args)
        .map_err(|e| e.to_string())
}

fn query_args_error(e: &QueryError) -> Option<&sluice_analysis::ArgsError> {
    match e {
        QueryError::Args(a) => Some(a),
        QueryError::JudgeMeasuresItself(_) => None,
    }
}

fn config_args_error(e: &ConfigError) -> Option<&sluice_analysis::ArgsError> {
    match e {
        ConfigError::Args { source, .. } => Some(source),
        _ => None,
    }
}

/// Masks secret argument values in every text of a measurement. The analysis crate already
/// shows only masked forms; this is the last line before the status, so that text quoted
/// from elsewhere (a server's error message echoing the query) cannot carry a secret either.
fn mask(mut m: Measurement, args: &ResolvedArgs) -> Measurement {
    m.message = m.message.map(|text| args.args.redact(&text));
    m.value = m.value.map(|text| args.args.redact(&text));
    for text in m.metadata.values_mut() {
        *text = args.args.redact(text);
    }
    m
}

/// `finishedAt` of a measurement that just ended (see the module docs).
fn finished() -> DateTime<Utc> {
    round_down(Utc::now())
}

/// `t` rounded down to a whole second, as the API stores times.
pub fn round_down(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_analysis::Args;
    use sluice_crds::AnalysisPhase;

    #[test]
    fn rounding_keeps_whole_seconds() {
        let t = DateTime::from_timestamp(1_790_000_000, 750_000_000).expect("time");
        let whole = DateTime::from_timestamp(1_790_000_000, 0).expect("time");
        assert_eq!(round_down(t), whole);
        assert_eq!(round_down(whole), whole);
    }

    #[test]
    fn the_run_age_counts_from_the_runs_start_and_is_zero_before_it() {
        let now = DateTime::from_timestamp(1_790_000_100, 0).expect("time");
        let mut run: AnalysisRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": "r"},
            "spec": {"metrics": []},
        }))
        .expect("run");
        assert_eq!(run_age(&run, now), std::time::Duration::ZERO);
        run.status = Some(sluice_crds::AnalysisRunStatus {
            started_at: Some(sluice_analysis::time::to_api(
                DateTime::from_timestamp(1_790_000_000, 0).expect("time"),
            )),
            ..Default::default()
        });
        assert_eq!(run_age(&run, now), std::time::Duration::from_secs(100));
        // A start in the future (clock skew between controllers) is no age, not a panic.
        assert_eq!(
            run_age(
                &run,
                DateTime::from_timestamp(1_789_999_000, 0).expect("time")
            ),
            std::time::Duration::ZERO
        );
    }

    #[test]
    fn secret_values_are_masked_in_every_text() {
        let args = ResolvedArgs {
            args: Args::new().with_secret("tenant", "acme-secret"),
            ..ResolvedArgs::default()
        };
        let now = Utc::now();
        let mut m = error_measurement(
            "query failed: bad label acme-secret",
            Some("up{t=\"acme-secret\"}"),
            now,
            now,
        );
        m.value = Some("[acme-secret]".into());
        let m = mask(m, &args);
        let text = serde_json::to_string(&m).expect("json");
        assert!(!text.contains("acme-secret"), "{text}");
        assert_eq!(m.phase, AnalysisPhase::Error);
    }
}
