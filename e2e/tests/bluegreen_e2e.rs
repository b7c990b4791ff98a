//! Blue-green releases judged by metrics, end to end: the Sluice controller and the mesh
//! simulator in-process, the real local control plane and the real Prometheus scraping the
//! simulator every second. The simulator calls the active Service at a production rate and the
//! preview Service at a test rate, by their selectors (no VirtualService), so an analysis can
//! judge the new version through either Service.
//!
//! Each scenario runs in its own namespace with its own controller and simulator; every wait
//! follows watch events. Needs `KUBECONFIG`, `SLUICE_PROMETHEUS_URL` and
//! `SLUICE_PROMETHEUS_TARGETS_DIR` (`source .cache/run/cluster.env` after `e2e/cluster up`);
//! without them every scenario fails, none is skipped. On failure the progress, every version
//! of the active Service, the AnalysisRuns with their measurements, the namespace's state and the
//! invariant monitor's timeline are printed.

#[path = "bluegreen_e2e/harness.rs"]
mod harness;
#[path = "bluegreen_e2e/watch.rs"]
mod watch;

use anyhow::{Context, Result, ensure};
use sluice_crds::{AnalysisPhase, AnalysisRun, RolloutPhase};

use harness::{ACTIVE, Fixture, GOOD_ERROR_RATE, INTERVAL, PREVIEW, REPLICAS, Scenario, version};
use watch::{Gate, WatchedRollout, World};

/// Checks that no observed version of the active Service selected `hash`.
fn never_active(w: &World, hash: &str) -> Result<()> {
    ensure!(
        !w.active_history.is_empty(),
        "the watch saw no version of {ACTIVE}"
    );
    let selected: Vec<u64> = w
        .active_history
        .iter()
        .filter(|s| s.hash.as_deref() == Some(hash))
        .map(|s| s.resource_version)
        .collect();
    ensure!(
        selected.is_empty(),
        "{ACTIVE} selected {hash} at resourceVersions {selected:?}"
    );
    Ok(())
}

/// The resourceVersion at which the active Service first selected `hash`.
fn first_switch_to(w: &World, hash: &str) -> Option<u64> {
    w.active_history
        .iter()
        .find(|s| s.hash.as_deref() == Some(hash))
        .map(|s| s.resource_version)
}

/// The success-rate measurements of `run`: phase, value and when each finished.
fn measurements(run: &AnalysisRun) -> Vec<&sluice_crds::Measurement> {
    let results = run.status.iter().flat_map(|s| s.metric_results.iter());
    results
        .filter(|r| r.name == "success-rate")
        .flat_map(|r| r.measurements.iter())
        .collect()
}

/// A measured success rate (`0.8` or `[0.8]`).
fn success_rate(value: &Option<String>) -> Option<f64> {
    value.as_deref()?.trim_matches(['[', ']']).parse().ok()
}

fn values(run: &AnalysisRun) -> Vec<(AnalysisPhase, Option<String>)> {
    measurements(run)
        .into_iter()
        .map(|m| (m.phase, m.value.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_version_failing_its_pre_promotion_analysis_then_it_is_aborted_and_the_active_service_never_selects_it()
-> Result<()> {
    harness::run(
        "e2e-bg-pre-",
        |_| Ok(()),
        async |s| {
            let stable = s.stable()?;
            let hash = s.release(&version("example/web:1.1", 0.5)).await?;
            let mut previewed = false;
            s.wait("the release is aborted and scaled down", |w| {
                previewed |= w.selects(PREVIEW) == Some(hash.as_str());
                w.aborted() && w.active() == Some(stable.as_str()) && w.replicas(&hash).spec == 0
            })
            .await?;
            let w = &s.watch.world;
            never_active(w, &hash)?;
            ensure!(previewed, "{PREVIEW} never selected {hash}");
            ensure!(w.stable_hash() == Some(stable.as_str()), "stable moved");
            ensure!(w.phase() == Some(RolloutPhase::Degraded), "{}", w.summary(PREVIEW));
            ensure!(
                w.replicas(&stable).spec == REPLICAS && w.replicas(&stable).available == REPLICAS,
                "the stable version lost pods: {}",
                w.summary(PREVIEW)
            );
            let run = w.run_of(&hash, Gate::Pre).context("a pre-promotion run")?;
            ensure!(
                w.run_phase(&hash, Gate::Pre) == Some(AnalysisPhase::Failed),
                "pre-promotion run: {:?}",
                run.status
            );
            let taken = values(run);
            ensure!(
                taken.last().map(|m| m.0) == Some(AnalysisPhase::Failed),
                "the run failed on a measurement: {taken:?}"
            );
            let measured = taken.last().and_then(|(_, v)| success_rate(v));
            ensure!(
                measured.is_some_and(|v| (0.3..0.7).contains(&v)),
                "the preview's success rate should be the new version's (half its requests fail): {taken:?}"
            );
            ensure!(
                w.runs_of(&hash, Gate::Post).is_empty(),
                "a post-promotion run for a version never switched to"
            );
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_healthy_version_then_it_passes_both_analyses_and_is_promoted() -> Result<()> {
    harness::run(
        "e2e-bg-good-",
        |_| Ok(()),
        async |s| {
            let old = s.stable()?;
            let hash = s
                .release(&version("example/web:1.2", GOOD_ERROR_RATE))
                .await?;
            let mut aborted = false;
            s.wait("the new version is promoted", |w| {
                aborted |= w.aborted();
                w.healthy_on(&hash, PREVIEW)
            })
            .await?;
            ensure!(!aborted, "the healthy release was aborted on the way");
            check_promotion_order(&s.watch.world, &hash)?;
            s.wait("the old version is scaled down after its delay", |w| {
                w.replicas(&old).spec == 0
            })
            .await?;
            ensure!(
                s.watch.world.active() == Some(hash.as_str()),
                "{}",
                s.watch.world.summary(PREVIEW)
            );
            Ok(())
        },
    )
    .await
}

/// Both runs passed on every measurement, and in revision order: the pre-promotion run passed,
/// then the active Service switched, then the post-promotion run began and passed, and only
/// then did the new version become stable.
fn check_promotion_order(w: &World, hash: &str) -> Result<()> {
    let mut verdicts = Vec::new();
    for gate in [Gate::Pre, Gate::Post] {
        let run = w.run_of(hash, gate).context("a run for each gate")?;
        let taken = values(run);
        ensure!(
            !taken.is_empty() && taken.iter().all(|m| m.0 == AnalysisPhase::Successful),
            "{gate:?}: {taken:?}"
        );
        let history = w.history_of(hash, gate).context("a run history")?;
        let (phase, rv, _) = history.verdict.context("a verdict")?;
        ensure!(phase == AnalysisPhase::Successful, "{gate:?} {phase:?}");
        verdicts.push((history.first_rv, rv));
    }
    let [(_, pre_passed), (post_created, post_passed)] = verdicts[..] else {
        unreachable!("two gates")
    };
    let switched = first_switch_to(w, hash).context("the active Service never switched")?;
    let stable = *w.stable_since.get(hash).context("never stable")?;
    ensure!(
        pre_passed < switched && switched < post_created && post_passed < stable,
        "expected pre passed (rv {pre_passed}) < switch (rv {switched}) < post created \
         (rv {post_created}), post passed (rv {post_passed}) < stable (rv {stable})"
    );
    Ok(())
}

/// How many bad-in-production releases the rollback latency is measured over.
const ROLLBACKS: usize = 3;

/// The error rate of a version that a smoke test at the preview's load accepts but the
/// production success-rate objective (95 %) does not.
const BAD_IN_PRODUCTION: f64 = 0.2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_version_bad_only_in_production_then_the_post_promotion_analysis_switches_the_active_service_back_within_one_interval()
-> Result<()> {
    // Before the switch a permissive smoke test (at least half the preview's requests succeed);
    // after it the production objective, on the active Service.
    let fixture = |f: &mut Fixture| {
        f.add_template("smoke", 0.5, 2);
        let smoke = f.analysis("smoke", PREVIEW);
        f.set_blue_green("prePromotionAnalysis", smoke);
        Ok(())
    };
    harness::run("e2e-bg-post-", fixture, async |s| {
        let mut latencies = Vec::new();
        for attempt in 0..ROLLBACKS {
            let image = format!("example/web:2.{attempt}");
            latencies.push(rolled_back_in_production(s, &image).await?);
        }
        latencies.sort_unstable();
        println!(
            "bluegreen_post_rollback_latency_ms min={} median={} max={} over {ROLLBACKS} rollbacks (interval {} ms)",
            latencies[0],
            latencies[ROLLBACKS / 2],
            latencies[ROLLBACKS - 1],
            INTERVAL.as_millis()
        );
        Ok(())
    })
    .await
}

/// Releases `image` (bad in production), waits until the post-promotion analysis failed, the
/// active Service is back on the old version and the new one is scaled down; returns the time
/// from the failed measurement to the switch back, in milliseconds.
async fn rolled_back_in_production(s: &mut Scenario, image: &str) -> Result<i64> {
    let old = s.stable()?;
    let hash = s.release(&version(image, BAD_IN_PRODUCTION)).await?;
    s.wait("the release is rolled back and scaled down", |w| {
        let post = w.run_phase(&hash, Gate::Post);
        w.aborted()
            && post.is_some_and(AnalysisPhase::is_completed)
            && w.active() == Some(old.as_str())
            && w.replicas(&hash).spec == 0
    })
    .await?;
    let w = &s.watch.world;
    ensure!(
        w.run_phase(&hash, Gate::Pre) == Some(AnalysisPhase::Successful),
        "the smoke test must pass: the version is bad only in production"
    );
    // The preview's measurements are the new version's own: its errors show, yet pass the
    // smoke test's bar.
    let smoke = values(w.run_of(&hash, Gate::Pre).context("a pre-promotion run")?);
    ensure!(
        smoke
            .iter()
            .all(|(_, v)| success_rate(v).is_some_and(|v| (0.5..0.95).contains(&v))),
        "the preview's success rate should show the new version's 20 % errors: {smoke:?}"
    );
    ensure!(
        w.run_phase(&hash, Gate::Post) == Some(AnalysisPhase::Failed),
        "{}",
        w.summary(PREVIEW)
    );
    ensure!(w.stable_hash() == Some(old.as_str()), "stable moved");
    ensure!(
        w.replicas(&old).available == REPLICAS,
        "{}",
        w.summary(PREVIEW)
    );
    let latency = rollback_latency(s, &hash, &old).await?;
    println!(
        "bluegreen_post_rollback_latency_ms={}",
        latency.from_finished
    );
    println!(
        "bluegreen_post_rollback_latency_from_watch_ms={}",
        latency.from_watch
    );
    ensure!(
        latency.from_finished < i64::try_from(INTERVAL.as_millis())?,
        "the active Service went back {} ms after the failed measurement finished; the interval is {INTERVAL:?}",
        latency.from_finished
    );
    Ok(latency.from_finished)
}

/// The time from a failed post-promotion measurement to the active Service back on the old
/// version, measured two ways.
struct Latency {
    /// From the measurement's `finishedAt` to the watch delivering the switch back. The API
    /// stores `finishedAt` in whole seconds (truncated), so this overstates by up to 1 s.
    from_finished: i64,
    /// From the watch delivering the run as Failed to it delivering the switch back (the two
    /// arrive on separate watches, so this can even be slightly negative).
    from_watch: i64,
}

async fn rollback_latency(s: &Scenario, hash: &str, old: &str) -> Result<Latency> {
    let w = &s.watch.world;
    let switched = first_switch_to(w, hash).context("never switched to the new version")?;
    let back = w
        .active_history
        .iter()
        .find(|sel| sel.resource_version > switched && sel.hash.as_deref() == Some(old))
        .context("the watch never saw the active Service back on the old version")?;
    let history = w
        .history_of(hash, Gate::Post)
        .context("a post-promotion run")?;
    let (_, _, failed_seen) = history.verdict.context("a verdict")?;
    let name = w
        .run_of(hash, Gate::Post)
        .and_then(|r| r.metadata.name.clone())
        .context("a run name")?;
    // The stored run, in case the watch's last version predates the final status write.
    let run = s.get_run(&name).await?;
    let failed = measurements(&run)
        .into_iter()
        .rfind(|m| m.phase == AnalysisPhase::Failed)
        .context("a failed measurement")?;
    let finished = failed.finished_at.as_ref().context("finishedAt")?;
    let from_watch = back.seen.at.duration_since(failed_seen.at).as_millis();
    let before = failed_seen.at.duration_since(back.seen.at).as_millis();
    Ok(Latency {
        from_finished: back.seen.wall_ms - finished.0.as_millisecond(),
        from_watch: i64::try_from(from_watch)? - i64::try_from(before)?,
    })
}
