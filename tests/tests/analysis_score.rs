//! Scored AnalysisRuns (`spec.score`, `metrics[].weight`, `metrics[].critical`) against the
//! real API server and the real local Prometheus: a light non-critical metric that fails does
//! not fail a run that scores above `pass`, the thresholds classify the score, and a critical
//! metric's failure still ends the run at once.
//!
//! The queries are constants (`vector(1)`, `vector(0)`), so each metric's verdict is known in
//! advance and only the scoring is under test. Each test runs in its own namespace with its own
//! in-process controller.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use sluice_crds::{AnalysisPhase, AnalysisRun};
use sluice_tests::analysis::{
    self, AnalysisScenario, analysis_run, measurements, message, metric, phase, result, with,
};

/// Always 1: `result[0] == 1` holds.
const ONE: &str = "vector(1)";
/// Always 0: `result[0] == 1` fails.
const ZERO: &str = "vector(0)";
const IS_ONE: &str = "result[0] == 1";
/// Measurements the healthy metric takes when nothing stops it.
const HEALTHY_COUNT: usize = 4;

/// Weight 9, measured `HEALTHY_COUNT` times a second apart: always successful.
fn healthy(s: &AnalysisScenario) -> Value {
    let count = i32::try_from(HEALTHY_COUNT).expect("small count");
    with(
        metric("healthy", &s.prometheus, ONE, IS_ONE),
        json!({"weight": 9, "count": count, "interval": "1s"}),
    )
}

/// Weight 1, measured once: fails on its first measurement.
fn failing(s: &AnalysisScenario, critical: bool) -> Value {
    with(
        metric("failing", &s.prometheus, ZERO, IS_ONE),
        json!({"weight": 1, "critical": critical}),
    )
}

/// A run of `metrics` scored with `pass` and `marginal`.
fn scored_run(name: &str, metrics: Vec<Value>, pass: i32, marginal: i32) -> Result<AnalysisRun> {
    let mut run = analysis_run(name, metrics, vec![])?;
    run.spec.score = Some(
        serde_json::from_value(json!({"pass": pass, "marginal": marginal}))
            .context("the score fixture does not decode")?,
    );
    Ok(run)
}

fn score(run: &AnalysisRun) -> Option<f64> {
    run.status.as_ref().and_then(|s| s.score)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_score_when_a_light_non_critical_metric_fails_then_the_others_finish_and_the_score_decides()
-> Result<()> {
    analysis::run("it-analysis-score-", async |s| {
        // 9 of 10 weight units succeed: a score of 90, Successful with pass 90, Inconclusive
        // with pass 95 and marginal 85.
        let metrics = || vec![healthy(s), failing(s, false)];
        s.create(&scored_run("passes", metrics(), 90, 50)?).await?;
        s.create(&scored_run("marginal", metrics(), 95, 85)?)
            .await?;
        for (name, expected) in [
            ("passes", AnalysisPhase::Successful),
            ("marginal", AnalysisPhase::Inconclusive),
        ] {
            let run = s.wait_completed(name).await?;
            ensure!(phase(&run) == Some(expected), "{name}: {}", message(&run));
            ensure!(score(&run) == Some(90.0), "{name}: score {:?}", score(&run));
            let failed = result(&run, "failing").map(|r| r.phase);
            ensure!(
                failed == Some(AnalysisPhase::Failed),
                "{name}: the failing metric itself failed: {failed:?}"
            );
            let taken = measurements(&run, "healthy").len();
            ensure!(
                taken == HEALTHY_COUNT,
                "{name}: the failure did not stop the healthy metric ({taken} measurements)"
            );
            let said = message(&run);
            for part in [
                "score 90 ",
                "\"healthy\" Successful (weight 9)",
                "\"failing\" Failed (weight 1)",
            ] {
                ensure!(
                    said.contains(part),
                    "{name}: the message says {part:?}: {said}"
                );
            }
        }
        s.wait_event("passes", "AnalysisRunSuccessful").await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_score_when_a_critical_metric_fails_then_the_run_fails_at_once_whatever_the_score()
-> Result<()> {
    analysis::run("it-analysis-score-critical-", async |s| {
        // The same metrics that score 90 and pass above, with the failing one critical.
        let metrics = vec![healthy(s), failing(s, true)];
        s.create(&scored_run("critical", metrics, 90, 50)?).await?;
        let run = s.wait_completed("critical").await?;
        ensure!(
            phase(&run) == Some(AnalysisPhase::Failed),
            "{}",
            message(&run)
        );
        ensure!(score(&run).is_none(), "not scored: {:?}", score(&run));
        let said = message(&run);
        ensure!(
            said.starts_with("metric \"failing\" failed") && said.contains("result[0]=0"),
            "the message names the critical metric and its value: {said}"
        );
        let taken = measurements(&run, "healthy").len();
        ensure!(
            taken < HEALTHY_COUNT,
            "the critical failure stopped the healthy metric ({taken} measurements)"
        );
        let event = s.wait_event("critical", "AnalysisRunFailed").await?;
        ensure!(event.type_.as_deref() == Some("Warning"), "{event:?}");
        Ok(())
    })
    .await
}
