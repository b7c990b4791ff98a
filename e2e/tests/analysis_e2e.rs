//! Metric analysis end to end: the Sluice controller and the mesh simulator in-process, the real
//! local control plane and the real Prometheus scraping the simulator every second, the demo's
//! manifests (success rate and p95 latency of the canary Service) as the starting point.
//!
//! Each scenario runs in its own namespace with its own controller and simulator, so they run
//! in parallel; every wait follows watch events. Needs `KUBECONFIG`, `SLUICE_PROMETHEUS_URL`
//! and `SLUICE_PROMETHEUS_TARGETS_DIR` (`source .cache/run/cluster.env` after
//! `e2e/cluster up`); without them every scenario fails, none is skipped. On failure the
//! progress, the Rollout, the AnalysisRuns with their measurements, the VirtualService and the
//! monitor's timeline are printed.

#[path = "analysis_e2e/harness.rs"]
mod harness;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::json;
use sluice_crds::{AnalysisPhase, AnalysisRun, PauseReason, RolloutPhase};
use sluice_e2e::demo::release::{failure, rolled_back};
use sluice_e2e::demo::world::{ChangeKind, WatchedRollout, World, metric_results, run_phase};

use harness::{add_template, demo_metric, set_canary, step_analysis_only, version};

/// Healthy: what the demo's stable version says.
const GOOD_ERROR_RATE: f64 = 0.001;
const LATENCY_MS: f64 = 40.0;

fn measurements(run: &AnalysisRun, metric: &str) -> Vec<(AnalysisPhase, Option<String>)> {
    metric_results(run)
        .iter()
        .filter(|r| r.name == metric)
        .flat_map(|r| r.measurements.iter().map(|m| (m.phase, m.value.clone())))
        .collect()
}

/// The deciding metric of the failed run, with its value.
fn failing_metric(world: &World) -> Result<(String, f64, String)> {
    let f = failure(world).context("the Rollout names a run that did not pass")?;
    let metric = f.metric.context("a deciding metric")?;
    let value = f
        .value
        .as_deref()
        .map(|v| v.trim_matches(['[', ']']))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    Ok((metric, value, f.rollout_message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_healthy_new_version_when_released_then_the_background_analysis_passes_and_it_is_promoted()
-> Result<()> {
    harness::run(
        "e2e-analysis-good-",
        |_| Ok(()),
        async |s| {
            let (hash, _) = s
                .release(&version("example/shop:1.1", GOOD_ERROR_RATE, LATENCY_MS))
                .await?;
            s.wait_promoted(&hash).await?;
            let run = s.run_of(&hash, "background")?;
            ensure!(
                run_phase(&run) == Some(AnalysisPhase::Successful),
                "background run: {:?}",
                run.status
            );
            for metric in ["success-rate", "p95-latency-ms"] {
                let taken = measurements(&run, metric);
                ensure!(!taken.is_empty(), "{metric} was never measured");
                ensure!(
                    taken.iter().all(|(p, _)| *p == AnalysisPhase::Successful),
                    "{metric}: {taken:?}"
                );
            }
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_release_with_a_high_error_rate_then_it_is_aborted_and_traffic_returns_to_stable_before_the_canary_scales_down()
-> Result<()> {
    let fixture = |m: &mut sluice_e2e::demo::Manifests| {
        // 0 would keep the aborted canary (Argo's meaning): the shortest delay that scales it down.
        set_canary(m, "abortScaleDownDelaySeconds", json!(1));
        Ok(())
    };
    harness::run("e2e-analysis-bad-", fixture, async |s| {
        let stable = s.stable()?;
        let (hash, _) = s
            .release(&version("example/shop:1.2", 0.3, LATENCY_MS))
            .await?;
        let mut order = Ordering::from(&s.watch.world, &hash);
        s.wait("the bad release is rolled back", |w| {
            order.observe(w, &hash);
            rolled_back(w, &hash) || w.stable_hash() == Some(hash.as_str())
        })
        .await?;
        ensure!(s.stable()? == stable, "the bad version became stable");
        let (metric, value, message) = failing_metric(&s.watch.world)?;
        ensure!(
            metric == "success-rate" && value < 0.95,
            "{metric} = {value}"
        );
        ensure!(
            message.contains("success-rate"),
            "the Rollout says why: {message}"
        );
        order.check()
    })
    .await
}

/// Resource versions (etcd revisions, one order across kinds) of the moments of an abort.
#[derive(Debug, Default)]
struct Ordering {
    traffic: Option<u64>,
    weight_zero: Option<u64>,
    scale_down: Option<u64>,
    last_spec: Option<i32>,
}

impl Ordering {
    /// Starts from the canary's size as last seen.
    fn from(w: &World, hash: &str) -> Self {
        Self {
            last_spec: w.replicas(hash).map(|r| r.spec),
            ..Self::default()
        }
    }

    fn observe(&mut self, w: &World, hash: &str) {
        let Some(change) = &w.last else { return };
        let rv = change.resource_version;
        let canary = w.mesh.map(|m| m.canary);
        match change.kind {
            ChangeKind::VirtualService if canary > Some(0) => {
                self.traffic = self.traffic.or(rv);
            }
            ChangeKind::VirtualService if self.traffic.is_some() && canary == Some(0) => {
                self.weight_zero = self.weight_zero.or(rv);
            }
            ChangeKind::ReplicaSet if change.name.ends_with(hash) => {
                let spec = w.replicas(hash).map(|r| r.spec);
                if spec < self.last_spec && self.traffic.is_some() {
                    self.scale_down = self.scale_down.or(rv);
                }
                self.last_spec = spec;
            }
            _ => {}
        }
    }

    /// Traffic reached the canary, then its weight was 0, and only then did it lose pods.
    fn check(&self) -> Result<()> {
        let traffic = self.traffic.context("the canary never got traffic")?;
        let zero = self
            .weight_zero
            .context("the canary weight never went back to 0")?;
        let scaled = self
            .scale_down
            .context("the canary was never scaled down")?;
        ensure!(
            traffic < zero && zero < scaled,
            "expected traffic (rv {traffic}) < weight 0 (rv {zero}) < canary scale-down (rv {scaled})"
        );
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_slow_release_then_the_latency_metric_fails_and_it_is_aborted() -> Result<()> {
    harness::run(
        "e2e-analysis-slow-",
        |_| Ok(()),
        async |s| {
            let stable = s.stable()?;
            let (hash, _) = s
                .release(&version("example/shop:1.3", GOOD_ERROR_RATE, 400.0))
                .await?;
            s.wait_rolled_back(&hash).await?;
            ensure!(s.stable()? == stable);
            let (metric, value, _) = failing_metric(&s.watch.world)?;
            ensure!(
                metric == "p95-latency-ms" && value >= 150.0,
                "{metric} = {value}"
            );
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_analysis_of_a_canary_without_traffic_then_no_data_fails_it_and_it_is_never_promoted()
-> Result<()> {
    // The analysis comes first, at weight 0: the canary has no request to measure, so its
    // queries match nothing (onEmpty defaults to fail).
    let fixture = |m: &mut sluice_e2e::demo::Manifests| {
        step_analysis_only(
            m,
            "canary-health",
            |step| json!([step, {"setWeight": 50}, {"pause": {"duration": "2s"}}]),
        );
        Ok(())
    };
    harness::run("e2e-analysis-zero-", fixture, async |s| {
        let stable = s.stable()?;
        let (hash, _) = s
            .release(&version("example/shop:1.4", GOOD_ERROR_RATE, LATENCY_MS))
            .await?;
        let mut traffic = false;
        s.wait("the release is rolled back", |w| {
            traffic |= w.mesh.is_some_and(|m| m.canary > 0);
            rolled_back(w, &hash) || w.stable_hash() == Some(hash.as_str())
        })
        .await?;
        ensure!(s.stable()? == stable, "promoted without data");
        ensure!(
            !traffic,
            "the canary got traffic before its analysis passed"
        );
        let run = s.run_of(&hash, "step-0")?;
        ensure!(
            run_phase(&run) == Some(AnalysisPhase::Failed),
            "{:?}",
            run.status
        );
        let message = run
            .status
            .as_ref()
            .and_then(|s| s.message.clone())
            .unwrap_or_default();
        ensure!(
            message.contains("no data") && message.contains("onEmpty"),
            "{message}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_prometheus_is_unreachable_then_the_run_errors_after_the_consecutive_error_limit_and_never_promotes()
-> Result<()> {
    let fixture = |m: &mut sluice_e2e::demo::Manifests| {
        let mut metric = demo_metric(m, "success-rate")?;
        metric["provider"]["prometheus"]["address"] = json!("http://127.0.0.1:1");
        metric["interval"] = json!("1s");
        metric["initialDelay"] = json!("0s");
        metric["consecutiveErrorLimit"] = json!(2);
        add_template(m, "unreachable", vec![metric]);
        step_analysis_only(
            m,
            "unreachable",
            |step| json!([{"setWeight": 20}, step, {"setWeight": 50}]),
        );
        Ok(())
    };
    harness::run("e2e-analysis-unreachable-", fixture, async |s| {
        let stable = s.stable()?;
        let (hash, _) = s
            .release(&version("example/shop:1.5", GOOD_ERROR_RATE, LATENCY_MS))
            .await?;
        s.wait_rolled_back(&hash).await?;
        ensure!(s.stable()? == stable);
        let run = s.run_of(&hash, "step-1")?;
        ensure!(
            run_phase(&run) == Some(AnalysisPhase::Error),
            "{:?}",
            run.status
        );
        let result = metric_results(&run).first().context("a metric result")?;
        ensure!(
            result.error == 3 && result.consecutive_error == 3 && result.count == 0,
            "consecutiveErrorLimit 2 trips at the third error in a row: {result:?}"
        );
        ensure!(
            result
                .measurements
                .iter()
                .all(|m| m.phase == AnalysisPhase::Error)
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_canary_that_degrades_mid_rollout_then_the_background_analysis_aborts_it_at_its_current_step()
-> Result<()> {
    // An indefinite pause at 50 % holds the release mid-way while the background analysis
    // keeps measuring.
    let fixture = |m: &mut sluice_e2e::demo::Manifests| {
        set_canary(
            m,
            "steps",
            json!([{"setWeight": 20}, {"pause": {"duration": "2s"}}, {"setWeight": 50}, {"pause": {}}]),
        );
        Ok(())
    };
    harness::run("e2e-analysis-midway-", fixture, async |s| {
        let stable = s.stable()?;
        let (hash, _) = s
            .release(&version("example/shop:1.6", GOOD_ERROR_RATE, LATENCY_MS))
            .await?;
        let passing = |w: &World| {
            w.current_runs()
                .iter()
                .filter_map(|(_, name)| w.run(name))
                .any(|run| {
                    metric_results(run)
                        .iter()
                        .any(|r| r.name == "success-rate" && r.successful >= 2)
                })
        };
        s.wait("paused at 50 % with the background analysis passing", |w| {
            w.step() == Some((3, 4)) && w.status_weight() == Some((50, true)) && passing(w)
        })
        .await?;
        // The new version starts failing one request in two, without a new template.
        let pods = s
            .annotate_pods(&hash, json!({"sim.sluice.dev/error-rate": "0.5"}))
            .await?;
        ensure!(pods > 0, "no canary pod to degrade");
        s.wait_rolled_back(&hash).await?;
        ensure!(s.stable()? == stable);
        let run = s.run_of(&hash, "background")?;
        let taken = measurements(&run, "success-rate");
        ensure!(
            run_phase(&run) == Some(AnalysisPhase::Failed),
            "{:?}",
            run.status
        );
        ensure!(
            taken.len() >= 3 && taken.last().map(|m| m.0) == Some(AnalysisPhase::Failed),
            "passing measurements, then a failing one: {taken:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_inconclusive_analysis_step_then_the_rollout_pauses_and_a_promote_continues_it()
-> Result<()> {
    // Neither condition holds for a success rate near 0.95: inconclusive.
    let fixture = |m: &mut sluice_e2e::demo::Manifests| {
        let mut metric = demo_metric(m, "success-rate")?;
        metric["successCondition"] = json!("result[0] >= 0.999");
        metric["failureCondition"] = json!("result[0] < 0.8");
        metric["count"] = json!(1);
        add_template(m, "undecided", vec![metric]);
        step_analysis_only(
            m,
            "undecided",
            |step| json!([{"setWeight": 50}, step, {"pause": {"duration": "2s"}}]),
        );
        Ok(())
    };
    harness::run("e2e-analysis-inconclusive-", fixture, async |s| {
        let (hash, _) = s
            .release(&version("example/shop:1.7", 0.05, LATENCY_MS))
            .await?;
        let inconclusive = |w: &World| {
            w.status().is_some_and(|st| {
                st.pause_conditions
                    .iter()
                    .any(|p| p.reason == PauseReason::InconclusiveAnalysisRun)
            })
        };
        s.wait("paused on the inconclusive analysis", |w| {
            inconclusive(w) && w.phase() == Some(RolloutPhase::Paused)
        })
        .await?;
        let world = &s.watch.world;
        ensure!(!world.aborted() && world.status_weight() == Some((50, true)));
        let run = s.run_of(&hash, "step-1")?;
        ensure!(
            run_phase(&run) == Some(AnalysisPhase::Inconclusive),
            "{:?}",
            run.status
        );
        s.promote().await?;
        s.wait("the promoted release completes", |w| w.released(&hash))
            .await?;
        ensure!(
            s.runs_of(&hash, "step-1").len() == 1,
            "the promote must not re-run the analysis"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_controller_restarts_during_an_analysis_then_it_resumes_without_losing_or_repeating_measurements()
-> Result<()> {
    const COUNT: usize = 4;
    let fixture = |m: &mut sluice_e2e::demo::Manifests| {
        let mut metric = demo_metric(m, "success-rate")?;
        metric["count"] = json!(COUNT);
        add_template(m, "counted", vec![metric]);
        step_analysis_only(
            m,
            "counted",
            |step| json!([{"setWeight": 20}, step, {"setWeight": 50}]),
        );
        Ok(())
    };
    harness::run("e2e-analysis-restart-", fixture, async |s| {
        let (hash, _) = s
            .release(&version("example/shop:1.8", GOOD_ERROR_RATE, LATENCY_MS))
            .await?;
        let taken_two = |w: &World| {
            w.current_runs()
                .iter()
                .filter_map(|(_, name)| w.run(name))
                .any(|run| measurements(run, "success-rate").len() >= 2)
        };
        s.wait("two measurements taken", taken_two).await?;
        s.controller.stop().await?;
        let name = s.run_of(&hash, "step-1")?.metadata.name.unwrap_or_default();
        let before = s.get_run(&name).await?;
        // The outage itself is the scenario: longer than the 2 s interval, so a measurement
        // falls due while no controller runs.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let stopped = s.get_run(&name).await?;
        ensure!(
            measurements(&stopped, "success-rate") == measurements(&before, "success-rate"),
            "measured while no controller ran"
        );
        s.controller.resume();
        s.wait("the release completes after the restart", |w| {
            w.released(&hash)
        })
        .await?;
        let after = s.get_run(&name).await?;
        ensure!(
            after.metadata.uid == before.metadata.uid,
            "the run was created again"
        );
        ensure!(
            s.runs_of(&hash, "step-1").len() == 1,
            "a second run for the step"
        );
        check_resumed(&before, &after, COUNT)
    })
    .await
}

/// The run after the restart kept every measurement from before and took exactly the missing
/// ones, each at its own time.
fn check_resumed(before: &AnalysisRun, after: &AnalysisRun, count: usize) -> Result<()> {
    ensure!(
        run_phase(after) == Some(AnalysisPhase::Successful),
        "{:?}",
        after.status
    );
    let result = |run: &AnalysisRun| {
        metric_results(run)
            .iter()
            .find(|r| r.name == "success-rate")
            .cloned()
            .context("a success-rate result")
    };
    let (old, new) = (result(before)?, result(after)?);
    ensure!(
        new.count == i32::try_from(count)?,
        "count {} of {count}",
        new.count
    );
    ensure!(new.measurements.len() == count, "{:?}", new.measurements);
    ensure!(
        new.measurements[..old.measurements.len()] == old.measurements[..],
        "measurements from before the restart changed"
    );
    let starts: Vec<_> = new
        .measurements
        .iter()
        .map(|m| m.started_at.clone())
        .collect();
    ensure!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "measurements must be taken at distinct, increasing times: {starts:?}"
    );
    Ok(())
}
