//! Blue-green releases end to end against the local cluster: the preview Service selects the new
//! version first, the active Service switches only to a fully available ReplicaSet, pauses wait
//! for a promote (or for `autoPromotionSeconds`), abort and retry, a controller restart during the
//! scale-down delay, fast rollback, and pre- and post-promotion analysis against the real
//! Prometheus. Each test runs in its own namespace with its own in-process controller, under the
//! invariant monitor's BG1 and BG2.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kube::ResourceExt;
use sluice_crds::{AnalysisPhase, AnalysisRun, RolloutPhase};
use sluice_tests::bluegreen::{
    self, ACTIVE_SERVICE, FAILING, FAILING_SLOWLY, Gate, PASSING, PREVIEW_SERVICE, Release,
    WallClock, active_selector, analysis_run, blue_green, check_held, check_run_name, deploy,
    paused_preview, post_promotion_run, pre_promotion_run, preview_selector, release_v2,
    rfc3339_millis, wait_available, wait_deadline, wait_run, wait_service,
};
use sluice_tests::fixtures::{ROLLOUT, version_patch};
use sluice_tests::history::{
    between, check_deadline_persisted, check_kept_pods, replica_set_history,
    scaled_down_after_delay, scaled_to_zero, selected, selector_history, selectors_from_start,
    stable_throughout,
};
use sluice_tests::monitor::{Kind, Report};
use sluice_tests::scenario::{Scenario, aborted, phase, stable};

const N: i32 = 4;

/// The active Service never left `old` (it selected nothing else after its first release).
fn check_active_stayed(report: &Report, old: &str) -> Result<()> {
    let active = selector_history(report, ACTIVE_SERVICE);
    ensure!(
        active == selectors_from_start(&[old]),
        "the active Service never left the old version: {active:?}"
    );
    Ok(())
}

/// Waits until the Rollout is aborted and Degraded.
async fn wait_degraded(s: &Scenario) -> Result<()> {
    s.wait("aborted: Degraded", |r| {
        aborted(r) && phase(r) == Some(RolloutPhase::Degraded)
    })
    .await?;
    Ok(())
}

/// Waits until the aborted version `new` has no pods and a Warning `RolloutAborted` event was
/// published.
async fn wait_aborted_scaled_down(s: &Scenario, new: &str) -> Result<()> {
    s.wait_replica_set(new, 0).await?;
    s.wait_event("RolloutAborted", |e| e.warning).await?;
    Ok(())
}

/// The first Rollout version after `rv` whose status names `hash` as stable.
fn promoted_at(report: &Report, hash: &str, after: u64) -> Option<u64> {
    report
        .rollout_statuses()
        .find(|(rv, st)| *rv > after && st.get("stableRS").and_then(|h| h.as_str()) == Some(hash))
        .map(|(rv, _)| rv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_preview_of_two_of_four_replicas_when_the_template_changes_then_the_preview_service_selects_the_new_version_first_and_the_active_service_switches_only_once_it_is_full()
-> Result<()> {
    let spec = blue_green().replicas(N).preview_replica_count(2);
    bluegreen::run("it-bg-auto-", async |s| {
        let old = deploy(s, &spec).await?;
        ensure!(
            s.service_hash(PREVIEW_SERVICE).await?.as_deref() == Some(old.as_str()),
            "first deploy: the preview Service selects the first version too"
        );
        let (new, patch_rv) = s.patch_spec(version_patch("v2")).await?;
        let released = s.wait_released(&new).await?;
        ensure!(active_selector(&released).as_deref() == Some(new.as_str()));
        ensure!(preview_selector(&released).as_deref() == Some(new.as_str()));
        wait_service(s, ACTIVE_SERVICE, &new).await?;
        s.wait_replica_set(&old, 0).await?;

        let report = s.report().await?;
        let preview = selected(&report, PREVIEW_SERVICE, &new, patch_rv)
            .context("the preview Service selected the new version")?;
        let switch = selected(&report, ACTIVE_SERVICE, &new, patch_rv)
            .context("the active Service switched to the new version")?;
        ensure!(
            preview.rv < switch.rv,
            "preview (rv {}) before the switch (rv {})",
            preview.rv,
            switch.rv
        );
        let active = selector_history(&report, ACTIVE_SERVICE);
        ensure!(
            active == selectors_from_start(&[&old, &new]),
            "the active Service moved once per release: {active:?}"
        );
        check_preview_then_full(&report, &new, switch.rv)?;
        ensure!(
            report.rollout_statuses().any(|(rv, st)| rv < switch.rv
                && st.pointer("/blueGreen/scaleUpPreviewCheckPoint") == Some(&true.into())),
            "scaleUpPreviewCheckPoint was set before the switch"
        );
        ensure!(
            !report
                .rollout_statuses()
                .any(|(rv, st)| rv > patch_rv && st.get("pauseConditions").is_some()),
            "auto-promotion without autoPromotionSeconds never paused"
        );
        check_old_scaled_after_promotion(&report, &old, &new, switch.rv)?;
        s.wait_event("RolloutCompleted", |e| e.note.contains(new.as_str()))
            .await?;
        Ok(())
    })
    .await
}

/// The new ReplicaSet started at previewReplicaCount (2), was ready at that size before it was
/// scaled further, and had all N pods available when the active Service switched at `switch_rv`.
fn check_preview_then_full(report: &Report, new: &str, switch_rv: u64) -> Result<()> {
    let history = replica_set_history(report, new);
    let first = history.first().context("the new ReplicaSet was recorded")?;
    ensure!(
        first.replicas == 2,
        "created at previewReplicaCount: {first:?}"
    );
    let mut sizes: Vec<i64> = Vec::new();
    for v in history.iter().filter(|v| v.rv < switch_rv) {
        if sizes.last() != Some(&v.replicas) {
            sizes.push(v.replicas);
        }
    }
    // Scaling back to previewReplicaCount after the checkpoint would delete pods the switch is
    // waiting for (and repeat a step with side effects, DESIGN invariant 5).
    ensure!(
        sizes == [2, i64::from(N)],
        "the preview was scaled from previewReplicaCount to N once, never back, before the switch: {sizes:?}"
    );
    let grown = history
        .iter()
        .find(|v| v.replicas > 2)
        .context("the new ReplicaSet was scaled up for the switch")?;
    ensure!(grown.replicas == i64::from(N), "scaled to N: {grown:?}");
    ensure!(
        history.iter().any(|v| v.rv < grown.rv && v.available >= 2),
        "the preview was ready at previewReplicaCount before the switch began: {history:?}"
    );
    let at_switch = history
        .iter()
        .rfind(|v| v.rv < switch_rv)
        .context("the new ReplicaSet before the switch")?;
    ensure!(
        at_switch.replicas == i64::from(N) && at_switch.available == i64::from(N),
        "all {N} pods available when the active Service switched: {at_switch:?}"
    );
    Ok(())
}

/// The old ReplicaSet kept N pods until the new version was stable, got a deadline, and was
/// scaled to 0 no sooner than about scaleDownDelaySeconds (2) after the switch.
fn check_old_scaled_after_promotion(
    report: &Report,
    old: &str,
    new: &str,
    switch_rv: u64,
) -> Result<()> {
    let promoted =
        promoted_at(report, new, switch_rv).context("stableRS became the new version")?;
    let switch = (Kind::Service, switch_rv);
    let scaled = scaled_down_after_delay(report, old, 0, switch, "the old ReplicaSet")?;
    ensure!(
        promoted < scaled.rv,
        "promoted (rv {promoted}) before the scale-down (rv {})",
        scaled.rv
    );
    check_deadline_persisted(report, old, 0, &scaled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_auto_promotion_disabled_when_the_template_changes_then_the_rollout_pauses_with_the_preview_full_switches_only_after_a_promote_and_is_promoted_once_post_promotion_analysis_passed()
-> Result<()> {
    let spec = blue_green().manual_promotion().post_promotion(PASSING);
    bluegreen::run("it-bg-manual-", async |s| {
        let (Release { old, new, .. }, paused) = paused_preview(s, &spec).await?;
        ensure!(active_selector(&paused).as_deref() == Some(old.as_str()));
        ensure!(preview_selector(&paused).as_deref() == Some(new.as_str()));
        wait_service(s, PREVIEW_SERVICE, &new).await?;
        // previewReplicaCount defaults to N: the preview is the full new version.
        wait_available(s, &new, N).await?;
        s.wait_event("RolloutPaused", |e| e.note == "paused: BlueGreenPause")
            .await?;

        check_held(s, &old, "still on the old version without a promote").await?;
        let promote_rv = s.promote().await?;
        s.wait_released(&new).await?;
        wait_service(s, ACTIVE_SERVICE, &new).await?;
        s.wait_replica_set(&old, 0).await?;

        let report = s.report().await?;
        let switch = selected(&report, ACTIVE_SERVICE, &new, 0).context("the switch")?;
        ensure!(
            switch.rv > promote_rv,
            "the active Service switched (rv {}) only after the promote (rv {promote_rv})",
            switch.rv
        );
        check_old_scaled_after_promotion(&report, &old, &new, switch.rv)?;
        check_promoted_after_post_promotion(&report, &old, &new, switch.rv)?;
        s.wait_event("RolloutResumed", |_| true).await?;
        Ok(())
    })
    .await
}

/// The post-promotion run `web-<new>-post-*` started after the switch, and only then was the
/// new version named stable and the old one given a scale-down deadline.
fn check_promoted_after_post_promotion(
    report: &Report,
    old: &str,
    new: &str,
    switch_rv: u64,
) -> Result<()> {
    let prefix = Gate::Post.run_prefix(new);
    let run_rv = report
        .rollout_statuses()
        .find(|(_, st)| {
            st.pointer("/blueGreen/postPromotionAnalysisRunStatus/name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|(rv, _)| rv)
        .context("the post-promotion run was recorded in status")?;
    ensure!(
        run_rv > switch_rv,
        "the post-promotion run (rv {run_rv}) started after the switch (rv {switch_rv})"
    );
    let promoted = promoted_at(report, new, switch_rv).context("promoted")?;
    ensure!(
        promoted > run_rv,
        "promoted (rv {promoted}) after the run was recorded (rv {run_rv})"
    );
    let deadline = replica_set_history(report, old)
        .into_iter()
        .find(|v| v.deadline.is_some())
        .context("the old version got a deadline")?;
    ensure!(
        deadline.rv > promoted,
        "the old version's deadline (rv {}) came after the promotion (rv {promoted})",
        deadline.rv
    );
    Ok(())
}

const AUTO_PROMOTION_SECONDS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_auto_promotion_seconds_when_the_preview_is_ready_then_the_rollout_pauses_that_long_and_switches_without_a_promote()
-> Result<()> {
    let spec = blue_green().auto_promotion_seconds(AUTO_PROMOTION_SECONDS);
    bluegreen::run("it-bg-autosec-", async |s| {
        let (Release { old, new, patch_rv }, _) = paused_preview(s, &spec).await?;
        ensure!(s.service_hash(ACTIVE_SERVICE).await?.as_deref() == Some(old.as_str()));
        // No promote: the pause ends by itself.
        s.wait_released(&new).await?;
        wait_service(s, ACTIVE_SERVICE, &new).await?;

        let report = s.report().await?;
        let paused = report
            .changes
            .iter()
            .filter(|c| c.kind == Kind::Rollout && c.rv > patch_rv)
            .find(|c| {
                c.object
                    .as_ref()
                    .and_then(|o| o.pointer("/status/pauseConditions/0/reason"))
                    == Some(&"BlueGreenPause".into())
            })
            .context("the pause was recorded")?;
        let switch = selected(&report, ACTIVE_SERVICE, &new, patch_rv).context("the switch")?;
        let held = between(paused.at, switch.at);
        // Pause start times are stored with second precision.
        ensure!(
            held >= Duration::from_secs(u64::from(AUTO_PROMOTION_SECONDS - 1)),
            "paused for autoPromotionSeconds before the switch; held {held:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_paused_preview_when_aborted_then_the_active_service_never_moves_the_preview_scales_down_after_the_delay_and_a_retry_runs_fresh_analysis_and_completes()
-> Result<()> {
    let spec = blue_green().manual_promotion().pre_promotion(PASSING);
    bluegreen::run("it-bg-abort-", async |s| {
        let (Release { old, new, .. }, paused) = paused_preview(s, &spec).await?;
        let first_run = pre_run_passed(&paused, &new)?;

        let abort_rv = s.abort().await?;
        wait_degraded(s).await?;
        wait_aborted_scaled_down(s, &new).await?;

        let report = s.report().await?;
        check_active_stayed(&report, &old)?;
        // abortScaleDownDelaySeconds is 2.
        let abort = (Kind::Rollout, abort_rv);
        let scaled = scaled_down_after_delay(&report, &new, abort_rv, abort, "the preview")?;
        check_deadline_persisted(&report, &new, abort_rv, &scaled)?;

        s.retry().await?;
        let first = first_run.clone();
        let again = s
            .wait("paused again after a fresh pre-promotion run", move |r| {
                !aborted(r)
                    && phase(r) == Some(RolloutPhase::Paused)
                    && pre_promotion_run(r).is_some_and(|run| run.name != first)
            })
            .await?;
        let second_run = pre_run_passed(&again, &new)?;
        ensure!(second_run != first_run, "a retry runs a new analysis");
        wait_available(s, &new, N).await?;
        wait_service(s, PREVIEW_SERVICE, &new).await?;
        s.promote().await?;
        let released = s.wait_released(&new).await?;
        ensure!(!aborted(&released), "the abort is cleared");
        wait_service(s, ACTIVE_SERVICE, &new).await?;
        s.wait_replica_set(&old, 0).await?;
        s.wait_event("RolloutRetried", |_| true).await?;
        Ok(())
    })
    .await
}

/// The pre-promotion run recorded in `r` is `web-<hash>-pre-*` and Successful; returns its name.
fn pre_run_passed(r: &sluice_crds::Rollout, hash: &str) -> Result<String> {
    let run = pre_promotion_run(r).context("status names the pre-promotion run")?;
    check_run_name(&run.name, hash, Gate::Pre)?;
    ensure!(run.status == AnalysisPhase::Successful, "{run:?}");
    Ok(run.name.clone())
}

const SCALE_DOWN_DELAY: u32 = 10;
/// How long the controller stays down: a controller that restarted the delay instead of keeping
/// the persisted deadline would scale down at least this much later.
const DOWN_FOR: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_promoted_release_when_the_controller_restarts_during_the_scale_down_delay_then_the_old_replica_set_keeps_its_deadline_and_scales_down_at_it()
-> Result<()> {
    let spec = blue_green().scale_down_delay_seconds(SCALE_DOWN_DELAY);
    bluegreen::run("it-bg-restart-", async |s| {
        let Release { old, new, .. } = release_v2(s, &spec).await?;
        s.wait_released(&new).await?;
        let deadline = wait_deadline(s, &old).await?;
        let deadline_ms = rfc3339_millis(&deadline)?;
        let clock = WallClock::now();

        s.controller.stop().await?;
        // Named sleep, not a stand-in for a condition: the controller is down for part of the
        // delay, so the next one can only learn the deadline from the cluster.
        tokio::time::sleep(DOWN_FOR).await;
        s.controller.resume();
        let resumed = clock.millis(Instant::now());
        ensure!(
            resumed < deadline_ms - 1000,
            "the controller came back before the deadline ({resumed} vs {deadline_ms}); otherwise this proves nothing"
        );
        s.wait_replica_set(&old, 0).await?;

        let report = s.report().await?;
        let history = replica_set_history(&report, &old);
        let deadlines: BTreeSet<&str> = history.iter().filter_map(|v| v.deadline.as_deref()).collect();
        ensure!(
            deadlines == BTreeSet::from([deadline.as_str()]),
            "one deadline, never rewritten: {deadlines:?}"
        );
        let scaled = scaled_to_zero(&report, &old, 0).context("the old version scaled down")?;
        let at = clock.millis(scaled.at);
        ensure!(
            at >= deadline_ms,
            "not before the deadline: scaled {} ms early",
            deadline_ms - at
        );
        let late = Duration::from_millis(u64::try_from(at - deadline_ms).unwrap_or(0));
        ensure!(
            late < DOWN_FOR - Duration::from_secs(1),
            "at the persisted deadline, not a restarted delay: {late:?} after it"
        );
        ensure!(s.controller.starts() == 2, "two controllers ran");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_previewed_release_when_the_template_goes_back_to_the_stable_one_then_both_services_select_stable_and_the_preview_scales_down_after_the_delay()
-> Result<()> {
    let spec = blue_green().manual_promotion();
    bluegreen::run("it-bg-rollback-", async |s| {
        let (Release { old, new, .. }, _) = paused_preview(s, &spec).await?;
        wait_service(s, PREVIEW_SERVICE, &new).await?;

        let (back, back_rv) = s.patch_spec(version_patch("v1")).await?;
        ensure!(back == old, "the old template has the old hash");
        s.wait_released(&old).await?;
        wait_service(s, PREVIEW_SERVICE, &old).await?;
        s.wait_replica_set(&new, 0).await?;

        let report = s.report().await?;
        check_active_stayed(&report, &old)?;
        let preview = selector_history(&report, PREVIEW_SERVICE);
        ensure!(
            preview == selectors_from_start(&[&old, &new, &old]),
            "the preview Service followed the template: {preview:?}"
        );
        let stable_kept = "the stable version kept its pods and got no deadline";
        check_kept_pods(&report, &old, N, u64::MAX, stable_kept)?;
        let rollback = (Kind::Rollout, back_rv);
        scaled_down_after_delay(&report, &new, back_rv, rollback, "the preview")?;
        let sets = s.replica_sets().await?;
        ensure!(
            sets.len() == 2,
            "the stable ReplicaSet was reused, not a third one made: {sets:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_pre_promotion_analysis_that_fails_when_the_preview_is_ready_then_the_rollout_aborts_and_the_old_version_stays_active()
-> Result<()> {
    let spec = blue_green().pre_promotion(FAILING);
    bluegreen::run("it-bg-prefail-", async |s| {
        let Release { old, new, patch_rv } = release_v2(s, &spec).await?;
        let degraded = s
            .wait("aborted by the failed pre-promotion run", |r| {
                aborted(r)
                    && phase(r) == Some(RolloutPhase::Degraded)
                    && pre_promotion_run(r).is_some_and(|run| run.status == AnalysisPhase::Failed)
            })
            .await?;
        let run = pre_promotion_run(&degraded).context("the run")?;
        check_run_name(&run.name, &new, Gate::Pre)?;
        check_run_owned(s, &run.name, AnalysisPhase::Failed).await?;
        ensure!(stable(&degraded).as_deref() == Some(old.as_str()));
        wait_aborted_scaled_down(s, &new).await?;

        let report = s.report().await?;
        check_active_stayed(&report, &old)?;
        ensure!(
            selected(&report, PREVIEW_SERVICE, &new, patch_rv).is_some(),
            "the preview Service selected the new version"
        );
        // The analysis judged the preview at previewReplicaCount (N): it began only once the
        // preview was ready.
        let started = report
            .rollout_statuses()
            .find(|(rv, st)| {
                *rv > patch_rv
                    && st
                        .pointer("/blueGreen/prePromotionAnalysisRunStatus")
                        .is_some()
            })
            .map(|(rv, _)| rv)
            .context("the run was recorded in status")?;
        let before = replica_set_history(&report, &new)
            .into_iter()
            .rfind(|v| v.rv < started)
            .context("the preview before the run")?;
        ensure!(
            before.available == i64::from(N),
            "the run started with the preview ready: {before:?}"
        );
        Ok(())
    })
    .await
}

/// The AnalysisRun `name` exists in `phase`, owned by the Rollout and labelled with its name.
async fn check_run_owned(s: &Scenario, name: &str, phase: AnalysisPhase) -> Result<AnalysisRun> {
    let run = analysis_run(s, name).await?;
    ensure!(
        run.status.as_ref().and_then(|st| st.phase) == Some(phase),
        "run {name} is {phase:?}: {:?}",
        run.status
    );
    ensure!(
        run.owner_references()
            .iter()
            .any(|o| o.kind == "Rollout" && o.name == ROLLOUT),
        "owned by the Rollout: {:?}",
        run.owner_references()
    );
    ensure!(
        run.labels().get("sluice.dev/rollout").map(String::as_str) == Some(ROLLOUT),
        "labelled with the Rollout: {:?}",
        run.labels()
    );
    Ok(run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_post_promotion_analysis_that_fails_after_the_switch_then_the_active_service_goes_back_to_the_old_replica_set_which_never_lost_a_pod()
-> Result<()> {
    // A scale-down delay shorter than the run: a controller that started the old version's
    // delay at the switch would scale it down before the analysis fails.
    let spec = blue_green()
        .post_promotion(FAILING_SLOWLY)
        .scale_down_delay_seconds(1);
    bluegreen::run("it-bg-postfail-", async |s| {
        let Release { old, new, patch_rv } = release_v2(s, &spec).await?;
        wait_service(s, ACTIVE_SERVICE, &new).await?;
        let running = s
            .wait("the post-promotion run is recorded", |r| {
                post_promotion_run(r).is_some()
            })
            .await?;
        let run = post_promotion_run(&running).context("the run")?.clone();
        check_run_name(&run.name, &new, Gate::Post)?;
        ensure!(
            stable(&running).as_deref() == Some(old.as_str()),
            "not promoted while the post-promotion analysis runs"
        );
        // Both watches start now, well before the run can fail (about 2 s in): the gap between
        // their events is the time from the failed verdict to the switch back.
        let failed = async {
            wait_run(s, &run.name, "the post-promotion run failed", |r| {
                r.status.as_ref().and_then(|st| st.phase) == Some(AnalysisPhase::Failed)
            })
            .await?;
            Ok::<_, anyhow::Error>(Instant::now())
        };
        let back = async {
            wait_service(s, ACTIVE_SERVICE, &old).await?;
            Ok::<_, anyhow::Error>(Instant::now())
        };
        let (failed, back) = tokio::try_join!(failed, back)?;
        let latency = back.checked_duration_since(failed);
        eprintln!(
            "[it-bg-postfail-] failed post-promotion verdict to the active Service on the old ReplicaSet: {latency:?}"
        );
        let Some(latency) = latency else {
            bail!("the active Service went back before the run had failed");
        };
        ensure!(
            latency < Duration::from_secs(1),
            "switched back within one analysis interval (1 s): {latency:?}"
        );
        wait_degraded(s).await?;
        check_run_owned(s, &run.name, AnalysisPhase::Failed).await?;
        wait_aborted_scaled_down(s, &new).await?;

        let report = s.report().await?;
        let active = selector_history(&report, ACTIVE_SERVICE);
        ensure!(
            active == selectors_from_start(&[&old, &new, &old]),
            "switched to the new version and back: {active:?}"
        );
        let old_kept = "the old version kept all its pods and never got a deadline";
        check_kept_pods(&report, &old, N, u64::MAX, old_kept)?;
        ensure!(
            stable_throughout(&report, &old, patch_rv, u64::MAX),
            "stableRS never named the failed version"
        );
        Ok(())
    })
    .await
}
