//! The `sequential` judge end to end: the Sluice controller and the mesh simulator in-process,
//! the real local control plane and the real Prometheus scraping the simulator, as in
//! `analysis_e2e.rs` (same harness). The judge compares the canary's errors with the stable
//! version's, both counted by Prometheus from the simulator's `istio_requests_total` since the
//! analysis started.
//!
//! Each scenario has its own namespace, controller and simulator; every wait follows watch
//! events. The Rollout goes to 50 % and then runs one step analysis with a single sequential
//! metric (`count` 30 at a 2 s interval, so about a minute if it ran to its count), with
//! `promoteEarly` on in both scenarios: a regression must still fail at once, and a good
//! canary must move on as soon as the judge has excluded the margin.
//!
//! Needs `KUBECONFIG`, `SLUICE_PROMETHEUS_URL` and `SLUICE_PROMETHEUS_TARGETS_DIR`
//! (`source .cache/run/cluster.env` after `e2e/cluster up`); without them both fail.

// The harness is shared with `analysis_e2e.rs`; not every helper is used here.
#[allow(dead_code)]
#[path = "analysis_e2e/harness.rs"]
mod harness;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use sluice_crds::{AnalysisPhase, AnalysisRun, Measurement, MetricResult};
use sluice_e2e::demo::Manifests;
use sluice_e2e::demo::release::{failure, rolled_back};
use sluice_e2e::demo::world::{metric_results, run_phase};

use harness::{add_template, step_analysis_only, version};

/// The judged metric's name.
const METRIC: &str = "canary-errors";
/// Measurements the metric would take without an early decision.
const COUNT: i64 = 30;
/// Seconds between measurements.
const INTERVAL_S: i64 = 2;
const LATENCY_MS: f64 = 40.0;
/// The run label of the analysis step (`setWeight 50` is step 0).
const STEP: &str = "step-1";

/// The judge's settings for one scenario.
struct Judge {
    alpha: f64,
    margin: f64,
}

/// Errors of a version as the simulator reports them (`or vector(0)`: before a version's
/// first 500 Prometheus has no such series, and no errors is a count, not missing data).
fn counts(service: &str) -> Value {
    let selector = format!(
        "reporter=\"destination\",destination_service_namespace=\"{{{{args.namespace}}}}\",destination_service_name=\"{service}\""
    );
    json!({
        "errorsQuery": format!(
            "sum(increase(istio_requests_total{{{selector},response_code=~\"5..\"}}[{{{{args.window}}}}])) or vector(0)"
        ),
        "totalQuery": format!(
            "sum(increase(istio_requests_total{{{selector}}}[{{{{args.window}}}}]))"
        ),
    })
}

/// The sequential metric comparing the Rollout's canary Service with its stable Service.
fn sequential_metric(m: &Manifests, judge: &Judge) -> Value {
    let canary = &m.rollout()["spec"]["strategy"]["canary"];
    let service = |field: &str| canary[field].as_str().unwrap_or_default().to_owned();
    json!({
        "name": METRIC,
        // Prometheus scrapes every second; the first look waits for a few scrapes of the
        // canary's traffic, as the demo's metrics do.
        "initialDelay": "4s",
        "interval": format!("{INTERVAL_S}s"),
        "count": COUNT,
        "provider": {"prometheus": {"address": "{{args.prometheus}}"}},
        "judge": {"sequential": {
            "canary": counts(&service("canaryService")),
            "baseline": counts(&service("stableService")),
            "alpha": judge.alpha,
            "margin": judge.margin,
            "promoteEarly": true,
        }},
    })
}

/// `stable_error_rate` for the running version, and the steps `setWeight 50`, the sequential
/// analysis, a short pause; no background analysis, so the judge alone decides.
fn fixture(judge: Judge, stable_error_rate: f64) -> impl FnOnce(&mut Manifests) -> Result<()> {
    move |m| {
        let stable = version("example/shop:1.0", stable_error_rate, LATENCY_MS);
        m.set_rollout(stable.apply_to(m.rollout()));
        let metric = sequential_metric(m, &judge);
        add_template(m, "sequential", vec![metric]);
        step_analysis_only(
            m,
            "sequential",
            |step| json!([{"setWeight": 50}, step, {"pause": {"duration": "2s"}}]),
        );
        Ok(())
    }
}

fn result(run: &AnalysisRun) -> Result<&MetricResult> {
    metric_results(run)
        .iter()
        .find(|r| r.name == METRIC)
        .with_context(|| format!("no {METRIC} result: {:?}", run.status))
}

fn meta<'a>(m: &'a Measurement, key: &str) -> Option<&'a str> {
    m.metadata.get(key).map(String::as_str)
}

fn bound(m: &Measurement, key: &str) -> Result<f64> {
    meta(m, key)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("measurement without a numeric {key}: {m:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_canary_with_ten_times_the_stable_error_rate_then_the_sequential_judge_fails_it_and_it_is_rolled_back()
-> Result<()> {
    let judge = Judge {
        alpha: 0.01,
        margin: 0.01,
    };
    let margin = judge.margin;
    harness::run("e2e-judge-bad-", fixture(judge, 0.005), async |s| {
        let stable = s.stable()?;
        let (hash, _) = s
            .release(&version("example/shop:2.0", 0.05, LATENCY_MS))
            .await?;
        let mut traffic = false;
        s.wait("the canary gets half the traffic", |w| {
            traffic |= w.mesh.is_some_and(|m| m.canary == 50);
            traffic || rolled_back(w, &hash)
        })
        .await?;
        s.wait_rolled_back(&hash).await?;
        ensure!(traffic, "the canary never got its 50 %");
        ensure!(s.stable()? == stable, "the bad version became stable");
        let f = failure(&s.watch.world).context("the Rollout names a run that did not pass")?;
        ensure!(
            f.metric.as_deref() == Some(METRIC),
            "deciding metric: {f:?}"
        );
        ensure!(
            f.rollout_message.contains(METRIC),
            "the Rollout says why: {}",
            f.rollout_message
        );
        let run = s.run_of(&hash, STEP)?;
        ensure!(
            run_phase(&run) == Some(AnalysisPhase::Failed),
            "{:?}",
            run.status
        );
        check_failed_by_the_judge(result(&run)?, margin)
    })
    .await
}

/// The deciding measurement is the sequential judge's fail, its confidence sequence entirely
/// above the margin, taken before `count` ran out.
fn check_failed_by_the_judge(r: &MetricResult, margin: f64) -> Result<()> {
    let last = r.measurements.last().context("no measurement")?;
    ensure!(last.phase == AnalysisPhase::Failed, "{last:?}");
    ensure!(meta(last, "judge") == Some("sequential"), "{last:?}");
    ensure!(meta(last, "judgeDecision") == Some("fail"), "{last:?}");
    let message = last.message.as_deref().unwrap_or_default();
    ensure!(
        message.contains("canary worse than the baseline by more than the margin")
            && message.contains("confidence sequence"),
        "the measurement says why: {message}"
    );
    let (lower, upper) = (bound(last, "lowerBound")?, bound(last, "upperBound")?);
    ensure!(
        margin < lower && lower <= upper,
        "the bounds [{lower}, {upper}] must lie above the margin {margin}"
    );
    ensure!(
        i64::from(r.count) < COUNT,
        "the judge must decide before count: {} measurements",
        r.count
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_good_canary_with_promote_early_then_the_sequential_judge_passes_it_well_before_count_and_it_is_promoted()
-> Result<()> {
    let judge = Judge {
        alpha: 0.01,
        margin: 0.02,
    };
    let margin = judge.margin;
    harness::run("e2e-judge-early-", fixture(judge, 0.001), async |s| {
        let (hash, _) = s
            .release(&version("example/shop:2.1", 0.001, LATENCY_MS))
            .await?;
        s.wait_promoted(&hash).await?;
        let run = s.run_of(&hash, STEP)?;
        ensure!(
            run_phase(&run) == Some(AnalysisPhase::Successful),
            "{:?}",
            run.status
        );
        check_promoted_early(&run, margin)
    })
    .await
}

/// The run ended on the judge's pass, with fewer measurements than `count` and in well under
/// the time `count` would have taken.
fn check_promoted_early(run: &AnalysisRun, margin: f64) -> Result<()> {
    let r = result(run)?;
    ensure!(r.phase == AnalysisPhase::Successful, "{r:?}");
    ensure!(
        i64::from(r.count) < COUNT && r.measurements.len() < usize::try_from(COUNT)?,
        "promoting early must stop before count: {} measurements of {COUNT}",
        r.count
    );
    let message = r.message.as_deref().unwrap_or_default();
    ensure!(message.starts_with("promoted early"), "{message}");
    let last = r.measurements.last().context("no measurement")?;
    ensure!(meta(last, "judgeDecision") == Some("pass"), "{last:?}");
    let upper = bound(last, "upperBound")?;
    ensure!(
        upper < margin,
        "the upper bound {upper} must be below the margin {margin}"
    );
    let undecided = &r.measurements[..r.measurements.len() - 1];
    ensure!(
        undecided
            .iter()
            .all(|m| meta(m, "judgeDecision") == Some("continue")),
        "no pass before the last measurement: {undecided:?}"
    );
    let status = run.status.as_ref().context("a status")?;
    let started = status.started_at.as_ref().context("startedAt")?.0;
    let completed = status.completed_at.as_ref().context("completedAt")?.0;
    let took = completed.as_second() - started.as_second();
    ensure!(
        took < COUNT * INTERVAL_S / 2,
        "the run took {took} s; by count it would take about {} s",
        COUNT * INTERVAL_S
    );
    Ok(())
}
