//! The AnalysisRun controller against the real API server and the real local Prometheus:
//! verdicts with their reasons, no-data policies, unreachable servers, secret arguments masked,
//! a restart in the middle of a run, termination, and an invalid spec.
//!
//! The local Prometheus scrapes itself every second, so `up{job="prometheus"}` is 1. Each test
//! runs in its own namespace with its own in-process controller.

use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::json;
use sluice_crds::{AnalysisPhase, AnalysisRun};
use sluice_tests::analysis::{
    self, AnalysisScenario, analysis_run, measurements, message, metric, phase, resolved_query,
    result, secret, with,
};

const UP: &str = "up{job=\"prometheus\"}";
const IS_UP: &str = "result[0] == 1";
/// A series no one exports: the query answers with no data.
const NOTHING: &str = "sluice_test_series_that_does_not_exist{job=\"nope\"}";

fn up_metric(s: &AnalysisScenario, name: &str, extra: serde_json::Value) -> serde_json::Value {
    with(metric(name, &s.prometheus, UP, IS_UP), extra)
}

fn from_api(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> i64 {
    t.map_or(0, |t| t.0.as_second())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_healthy_metric_when_measured_three_times_then_the_run_succeeds_with_every_measurement_recorded()
-> Result<()> {
    analysis::run("it-analysis-ok-", async |s| {
        let m = up_metric(s, "up", json!({"count": 3, "interval": "1s"}));
        s.create(&analysis_run("ok", vec![m], vec![])?).await?;
        let run = s.wait_completed("ok").await?;
        ensure!(
            phase(&run) == Some(AnalysisPhase::Successful),
            "{}",
            message(&run)
        );
        let taken = measurements(&run, "up");
        ensure!(taken.len() == 3, "three measurements: {taken:#?}");
        for m in taken {
            ensure!(m.phase == AnalysisPhase::Successful, "{m:?}");
            ensure!(
                resolved_query(m) == Some(UP),
                "resolved query recorded: {m:?}"
            );
            ensure!(m.value.as_deref() == Some("[1]"), "value recorded: {m:?}");
            let said = m.message.as_deref().unwrap_or("");
            ensure!(
                said.contains(IS_UP),
                "the message quotes the condition: {said}"
            );
        }
        let r = result(&run, "up").map(|r| (r.count, r.successful));
        ensure!(r == Some((3, 3)), "counters: {r:?}");
        ensure!(
            run.status
                .as_ref()
                .and_then(|s| s.completed_at.as_ref())
                .is_some(),
            "completedAt set"
        );
        s.wait_event("ok", "AnalysisRunSuccessful").await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_condition_that_does_not_hold_when_measured_then_the_run_fails_naming_the_metric_value_and_condition()
-> Result<()> {
    analysis::run("it-analysis-fail-", async |s| {
        let m = with(
            metric("up-is-two", &s.prometheus, UP, "result[0] == 2"),
            json!({"count": 3, "interval": "1s", "failureLimit": 0}),
        );
        s.create(&analysis_run("fail", vec![m], vec![])?).await?;
        let run = s.wait_completed("fail").await?;
        ensure!(phase(&run) == Some(AnalysisPhase::Failed), "{run:#?}");
        let said = message(&run);
        for part in ["up-is-two", "result[0]=1", "result[0] == 2"] {
            ensure!(said.contains(part), "run message names {part:?}: {said}");
        }
        ensure!(
            measurements(&run, "up-is-two").len() == 1,
            "failureLimit 0: the first failure decides"
        );
        let event = s.wait_event("fail", "AnalysisRunFailed").await?;
        ensure!(event.type_.as_deref() == Some("Warning"), "{event:?}");
        let note = event.note.unwrap_or_default();
        for part in ["up-is-two", "result[0]=1", "result[0] == 2"] {
            ensure!(note.contains(part), "event note names {part:?}: {note}");
        }
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_query_without_data_then_on_empty_decides_fail_by_default_pass_or_inconclusive_when_asked()
-> Result<()> {
    analysis::run("it-analysis-empty-", async |s| {
        let empty = |policy: Option<&str>| {
            let m = metric("nothing", &s.prometheus, NOTHING, "result[0] == 1");
            match policy {
                Some(p) => with(m, json!({"onEmpty": p})),
                None => m,
            }
        };
        let cases = [
            ("default", None, AnalysisPhase::Failed),
            ("pass", Some("pass"), AnalysisPhase::Successful),
            (
                "inconclusive",
                Some("inconclusive"),
                AnalysisPhase::Inconclusive,
            ),
        ];
        for (name, policy, _) in &cases {
            s.create(&analysis_run(name, vec![empty(*policy)], vec![])?)
                .await?;
        }
        for (name, policy, expected) in cases {
            let run = s.wait_completed(name).await?;
            ensure!(phase(&run) == Some(expected), "{name}: {run:#?}");
            let m = measurements(&run, "nothing");
            let said = m.first().and_then(|m| m.message.as_deref()).unwrap_or("");
            let policy = policy.unwrap_or("fail");
            ensure!(
                said.contains("no data") && said.contains(&format!("onEmpty is {policy}")),
                "{name}: the measurement says why: {said}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_unreachable_prometheus_then_the_run_errors_after_consecutive_error_limit_plus_one_errors()
-> Result<()> {
    analysis::run("it-analysis-unreachable-", async |s| {
        let m = with(
            metric("up", "http://127.0.0.1:1", UP, IS_UP),
            json!({"count": 3, "interval": "1s", "consecutiveErrorLimit": 1}),
        );
        s.create(&analysis_run("unreachable", vec![m], vec![])?)
            .await?;
        let run = s.wait_completed("unreachable").await?;
        ensure!(phase(&run) == Some(AnalysisPhase::Error), "{run:#?}");
        let taken = measurements(&run, "up");
        ensure!(taken.len() == 2, "limit 1: two errors end it: {taken:#?}");
        for m in taken {
            let said = m.message.as_deref().unwrap_or("");
            ensure!(
                m.phase == AnalysisPhase::Error && said.contains("cannot reach"),
                "{m:?}"
            );
        }
        let gap = from_api(taken[1].started_at.as_ref()) - from_api(taken[0].finished_at.as_ref());
        ensure!(gap >= 1, "errors are retried at the interval: {gap}s");
        ensure!(
            message(&run).contains("consecutiveErrorLimit"),
            "{}",
            message(&run)
        );
        let event = s.wait_event("unreachable", "AnalysisRunError").await?;
        ensure!(event.type_.as_deref() == Some("Warning"), "{event:?}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_secret_argument_then_it_is_used_in_the_query_and_header_but_shown_masked_everywhere()
-> Result<()> {
    // A label value Prometheus really has (its own query handler), found in no other field of
    // the run: if the query were sent with the mask instead of the value, it would select
    // nothing and fail by onEmpty.
    const VALUE: &str = "/api/v1/query";
    const QUERY: &str = "sum(prometheus_http_requests_total{handler=\"{{args.handler}}\"})";
    analysis::run("it-analysis-secret-", async |s| {
        s.create_secret(&secret("handler", "path", VALUE)?).await?;
        let mut m = with(
            metric("requests", &s.prometheus, QUERY, "result[0] >= 0"),
            json!({"count": 2, "interval": "1s"}),
        );
        m["provider"]["prometheus"]["headers"] =
            json!([{"key": "X-Scope-OrgID", "value": "{{args.handler}}"}]);
        let args = |secret: &str| {
            vec![json!({"name": "handler", "valueFrom": {"secretKeyRef": {"name": secret, "key": "path"}}})]
        };
        s.create(&analysis_run("masked", vec![m.clone()], args("handler"))?)
            .await?;
        // The same argument from a Secret that does not exist: an Error naming the Secret.
        let missing = with(m, json!({"consecutiveErrorLimit": 0}));
        s.create(&analysis_run("missing", vec![missing], args("nope"))?)
            .await?;

        let run = s.wait_completed("masked").await?;
        ensure!(
            phase(&run) == Some(AnalysisPhase::Successful),
            "{}",
            message(&run)
        );
        let taken = measurements(&run, "requests");
        ensure!(taken.len() == 2, "{taken:#?}");
        for m in taken {
            let q = resolved_query(m).unwrap_or("");
            ensure!(q.contains("handler=\"*****\""), "masked in resolvedQuery: {q}");
        }
        let missing = s.wait_completed("missing").await?;
        ensure!(phase(&missing) == Some(AnalysisPhase::Error), "{missing:#?}");
        ensure!(
            message(&missing).contains("Secret \"nope\" does not exist"),
            "{}",
            message(&missing)
        );
        s.wait_event("masked", "AnalysisRunSuccessful").await?;
        for run in [&run, &missing] {
            let text = serde_json::to_string(run)?;
            ensure!(!text.contains(VALUE), "no secret in the run: {text}");
        }
        let events = s.events_text().await?;
        ensure!(!events.contains(VALUE), "no secret in events: {events}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_run_in_flight_when_the_controller_restarts_then_no_measurement_is_lost_or_repeated()
-> Result<()> {
    analysis::run("it-analysis-restart-", async |s| {
        let m = up_metric(s, "up", json!({"count": 5, "interval": "1s"}));
        s.create(&analysis_run("restart", vec![m], vec![])?).await?;
        s.wait("restart", "two measurements", |r| {
            measurements(r, "up").len() >= 2
        })
        .await?;
        s.controller.stop().await?;
        // Named sleep, not a stand-in for a condition: the next measurement falls due while no
        // controller is alive, so the new one can only learn the schedule from the status.
        tokio::time::sleep(Duration::from_secs(2)).await;
        s.controller.resume();
        let run = s.wait_completed("restart").await?;
        ensure!(
            phase(&run) == Some(AnalysisPhase::Successful),
            "{}",
            message(&run)
        );
        check_spacing(&run, "up", 5, 1)?;
        ensure!(s.controller.starts() == 2, "two controllers ran");
        Ok(())
    })
    .await
}

/// Exactly `count` measurements, each started at least `interval` seconds after the previous
/// one finished.
fn check_spacing(run: &AnalysisRun, metric: &str, count: usize, interval: i64) -> Result<()> {
    let taken = measurements(run, metric);
    ensure!(taken.len() == count, "{count} measurements: {taken:#?}");
    let r = result(run, metric).map(|r| r.count);
    ensure!(r == Some(i32::try_from(count)?), "count {r:?}");
    for pair in taken.windows(2) {
        let gap = from_api(pair[1].started_at.as_ref()) - from_api(pair[0].finished_at.as_ref());
        ensure!(
            gap >= interval,
            "measurements {gap}s apart, less than the interval: {taken:#?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_background_run_without_count_when_terminated_then_it_ends_successful() -> Result<()>
{
    analysis::run("it-analysis-terminate-", async |s| {
        let m = up_metric(s, "up", json!({"interval": "1s"}));
        s.create(&analysis_run("background", vec![m], vec![])?)
            .await?;
        s.wait("background", "two measurements", |r| {
            measurements(r, "up").len() >= 2 && phase(r) == Some(AnalysisPhase::Running)
        })
        .await?;
        s.terminate("background").await?;
        let run = s.wait_completed("background").await?;
        ensure!(
            phase(&run) == Some(AnalysisPhase::Successful),
            "{}",
            message(&run)
        );
        let said = result(&run, "up")
            .and_then(|r| r.message.clone())
            .unwrap_or_default();
        ensure!(said.contains("run terminated"), "{said}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_invalid_spec_then_the_run_errors_naming_every_problem_and_is_never_measured()
-> Result<()> {
    analysis::run("it-analysis-invalid-", async |s| {
        let bad = metric("bad", &s.prometheus, UP, "result[0] ==");
        let mut run = analysis_run("invalid", vec![bad], vec![])?;
        run.spec.dry_run = vec![sluice_crds::DryRun {
            metric_name: "no-such-metric".into(),
        }];
        s.create(&run).await?;
        let run = s.wait_completed("invalid").await?;
        ensure!(phase(&run) == Some(AnalysisPhase::Error), "{run:#?}");
        let said = message(&run);
        ensure!(
            said.contains("successCondition") && said.contains("no-such-metric"),
            "every problem named: {said}"
        );
        ensure!(measurements(&run, "bad").is_empty(), "never measured");
        s.wait_event("invalid", "InvalidSpec").await?;
        Ok(())
    })
    .await
}

/// An SLO judge metric over constant counts: `total` is 1000 requests in every window (the
/// `{{args.window}}` substitution is exercised on a series Prometheus always has), `errors`
/// is 0 or 500. With a 99% objective, 0 errors burn 0x (pass) and 500 burn 50x, above 14.4x on
/// both windows (fail): the verdicts do not depend on timing or traffic.
fn slo_metric(s: &AnalysisScenario, name: &str, errors: u32) -> serde_json::Value {
    json!({
        "name": name,
        "count": 1,
        "failureLimit": 0,
        "judge": {"slo": {
            "objective": 99,
            "canary": {
                "errorsQuery": format!("vector({errors})"),
                "totalQuery": "sum(count_over_time(up{job=\"prometheus\"}[{{args.window}}])) * 0 + 1000",
            },
            "windows": [{"long": "1h", "short": "5m", "burnRate": 14.4}],
        }},
        "provider": {"prometheus": {"address": s.prometheus}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_judge_metric_when_measured_then_the_measurement_carries_the_judges_verdict_value_and_message()
-> Result<()> {
    analysis::run("it-analysis-judge-", async |s| {
        let metrics = vec![
            slo_metric(s, "slo-ok", 0),
            slo_metric(s, "slo-burning", 500),
        ];
        s.create(&analysis_run("judge", metrics, vec![])?).await?;
        let run = s.wait_completed("judge").await?;
        ensure!(phase(&run) == Some(AnalysisPhase::Failed), "{run:#?}");
        ensure!(message(&run).contains("slo-burning"), "{}", message(&run));
        let cases = [
            (
                "slo-ok",
                AnalysisPhase::Successful,
                "0",
                "pass",
                "no window pair burning too fast",
            ),
            (
                "slo-burning",
                AnalysisPhase::Failed,
                "3.472",
                "fail",
                "50x/50x vs 14.4x FIRING",
            ),
        ];
        for (name, expected, value, decision, said) in cases {
            let taken = measurements(&run, name);
            ensure!(taken.len() == 1, "{name}: one measurement: {taken:#?}");
            let m = &taken[0];
            ensure!(m.phase == expected, "{name}: {m:#?}");
            ensure!(m.value.as_deref() == Some(value), "{name}: value: {m:#?}");
            let text = m.message.as_deref().unwrap_or("");
            ensure!(
                text.contains(said) && !text.contains("not implemented"),
                "{name}: the judge's message: {text}"
            );
            let meta = |k: &str| m.metadata.get(k).map(String::as_str);
            ensure!(meta("judge") == Some("slo"), "{name}: {m:#?}");
            ensure!(meta("judgeDecision") == Some(decision), "{name}: {m:#?}");
            let queries = resolved_query(m).unwrap_or("");
            for window in ["[3600s]", "[300s]"] {
                ensure!(
                    queries.contains(window),
                    "{name}: window substituted: {queries}"
                );
            }
        }
        Ok(())
    })
    .await
}
