//! More blue-green releases end to end against the local cluster, the ones `bluegreen.rs` does
//! not cover: an Inconclusive pre-promotion analysis pauses until `kubectl sluice promote`;
//! `spec.paused` set before a template change holds the release before its preview exists;
//! `promote --full` skips a pre-promotion analysis that is still running; a second template
//! while the first is previewed replaces it as the preview; and `kubectl sluice get rollout`
//! shows a live blue-green release. Each test runs in its own namespace with its own in-process
//! controller, under the invariant monitor's BG1 and BG2.
//!
//! User requests go through the plugin's own code (`sluice_controller::cli::run`, in-process),
//! so the writes are exactly the ones `kubectl sluice` makes.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use sluice_crds::{AnalysisPhase, PauseReason, RolloutPhase};
use sluice_tests::bluegreen::{
    self, ACTIVE_SERVICE, FAILING_LATE, Gate, HOLD, INCONCLUSIVE, PREVIEW_SERVICE, Release,
    active_selector, analysis_run, blue_green, check_held, check_run_name, deploy, paused_preview,
    pre_promotion_run, preview_selector, release_v2, wait_available, wait_paused, wait_run,
    wait_service,
};
use sluice_tests::fixtures::{ROLLOUT, version_patch};
use sluice_tests::history::{
    check_deadline_persisted, check_kept_pods, replica_set_history, scaled_down_after_delay,
    selected, selector_history, selectors_from_start, stable_throughout,
};
use sluice_tests::kubectl::sluice_ok as sluice;
use sluice_tests::monitor::{Kind, Report};
use sluice_tests::scenario::{current_hash, phase, stable};

const N: i32 = 4;

/// The first recorded Rollout version after `after` for which `pred` holds; its revision.
fn rollout_rv(report: &Report, after: u64, pred: impl Fn(&Value) -> bool) -> Option<u64> {
    report.first(Kind::Rollout, after, pred).map(|c| c.rv)
}

fn pause_reason(o: &Value) -> Option<&str> {
    o.pointer("/status/pauseConditions/0/reason")
        .and_then(Value::as_str)
}

/// The status's record of the pre-promotion run at a recorded Rollout version.
fn pre_run_phase(status: &Value) -> Option<&str> {
    status
        .pointer("/blueGreen/prePromotionAnalysisRunStatus/status")
        .and_then(Value::as_str)
}

/// The distinct pre-promotion run names the status recorded after `after`, in order.
fn pre_run_names(report: &Report, after: u64) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for (_, st) in report.rollout_statuses().filter(|(rv, _)| *rv > after) {
        let name = st
            .pointer("/blueGreen/prePromotionAnalysisRunStatus/name")
            .and_then(Value::as_str);
        if let Some(name) = name
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    names
}

// ---------------------------------------------------------------------------------------------
// 1. An Inconclusive pre-promotion analysis pauses; a promote continues to the switch.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_pre_promotion_analysis_that_is_inconclusive_when_the_preview_is_ready_then_the_rollout_pauses_with_the_old_version_active_until_promoted_with_the_plugin()
-> Result<()> {
    let spec = blue_green().pre_promotion(INCONCLUSIVE);
    bluegreen::run("it-bgm-unsure-", async |s| {
        let Release { old, new, patch_rv } = release_v2(s, &spec).await?;
        let paused = wait_paused(s, &new, PauseReason::InconclusiveAnalysisRun).await?;
        ensure!(active_selector(&paused).as_deref() == Some(old.as_str()));
        ensure!(stable(&paused).as_deref() == Some(old.as_str()));
        let run = pre_promotion_run(&paused).context("status names the pre-promotion run")?;
        check_run_name(&run.name, &new, Gate::Pre)?;
        ensure!(run.status == AnalysisPhase::Inconclusive, "{run:?}");
        let run_name = run.name.clone();
        let stored = analysis_run(s, &run_name).await?;
        ensure!(
            stored.status.as_ref().and_then(|st| st.phase) == Some(AnalysisPhase::Inconclusive),
            "the run itself is Inconclusive: {:?}",
            stored.status
        );
        wait_service(s, PREVIEW_SERVICE, &new).await?;
        s.wait_event("RolloutPaused", |e| e.note.contains("Inconclusive"))
            .await?;

        check_held(s, &old, "an Inconclusive verdict never switches by itself").await?;
        let said = sluice(&s.ns, &["promote", ROLLOUT]).await?;
        ensure!(
            said.contains("promoted") && said.contains("Inconclusive"),
            "promote names the pause it continued: {said}"
        );
        s.wait_released(&new).await?;
        wait_service(s, ACTIVE_SERVICE, &new).await?;
        s.wait_replica_set(&old, 0).await?;

        let report = s.report().await?;
        check_switched_only_after_promote(&report, &old, &new, patch_rv)?;
        let names = pre_run_names(&report, patch_rv);
        ensure!(
            names == [run_name.as_str()],
            "the promote continued past the verdict; it started no other run: {names:?}"
        );
        Ok(())
    })
    .await
}

/// The Rollout paused for the Inconclusive run with the old version active and stable, the
/// promote (the write that removed the pause condition) came next, and only then the switch.
fn check_switched_only_after_promote(
    report: &Report,
    old: &str,
    new: &str,
    patch_rv: u64,
) -> Result<()> {
    let paused_rv = rollout_rv(report, patch_rv, |o| {
        pause_reason(o) == Some("InconclusiveAnalysisRun")
            && o.pointer("/status/phase").and_then(Value::as_str) == Some("Paused")
    })
    .context("the Inconclusive pause was recorded")?;
    let promote_rv = rollout_rv(report, paused_rv, |o| pause_reason(o).is_none())
        .context("the promote removed the pause condition")?;
    let switch = selected(report, ACTIVE_SERVICE, new, patch_rv).context("the switch")?;
    ensure!(
        switch.rv > promote_rv,
        "the active Service switched (rv {}) only after the promote (rv {promote_rv})",
        switch.rv
    );
    check_one_switch(report, [old, new], patch_rv, promote_rv, "while paused")
}

/// The old version stayed stable from the template change at `patch_rv` until `until` (`when`
/// says what that was), and the active Service moved once, from `old` to `new`.
fn check_one_switch(
    report: &Report,
    [old, new]: [&str; 2],
    patch_rv: u64,
    until: u64,
    when: &str,
) -> Result<()> {
    ensure!(
        stable_throughout(report, old, patch_rv, until),
        "the old version stayed stable {when}"
    );
    let active = selector_history(report, ACTIVE_SERVICE);
    ensure!(
        active == selectors_from_start(&[old, new]),
        "the active Service moved once: {active:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. spec.paused before a template change holds the release before its preview exists.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_spec_paused_when_the_template_changes_then_no_preview_replica_set_is_made_until_resumed_and_the_release_then_completes()
-> Result<()> {
    let spec = blue_green();
    bluegreen::run("it-bgm-specpause-", async |s| {
        let old = deploy(s, &spec).await?;
        s.patch_spec(json!({ "spec": { "paused": true } })).await?;
        let (new, patch_rv) = s.patch_spec(version_patch("v2")).await?;
        ensure!(new != old, "the new template has a new hash");
        let held = s
            .wait("paused by spec.paused with the new template seen", |r| {
                r.spec.paused && phase(r) == Some(RolloutPhase::Paused)
            })
            .await?;
        ensure!(current_hash(&held).as_deref() == Some(new.as_str()));
        ensure!(active_selector(&held).as_deref() == Some(old.as_str()));

        tokio::time::sleep(HOLD).await;
        let sets = s.replica_sets().await?;
        ensure!(
            !sets.contains_key(&new),
            "no preview ReplicaSet while spec.paused: {sets:?}"
        );
        ensure!(
            sets.get(&old) == Some(&(N, N)),
            "the stable version keeps all its pods: {sets:?}"
        );
        for service in [ACTIVE_SERVICE, PREVIEW_SERVICE] {
            ensure!(
                s.service_hash(service).await?.as_deref() == Some(old.as_str()),
                "Service {service} still selects the old version"
            );
        }

        let said = sluice(&s.ns, &["resume", ROLLOUT]).await?;
        ensure!(said.contains("resumed"), "resume confirms: {said}");
        s.wait_released(&new).await?;
        wait_service(s, ACTIVE_SERVICE, &new).await?;
        s.wait_replica_set(&old, 0).await?;

        let report = s.report().await?;
        check_nothing_moved_before_resume(&report, &old, &new, patch_rv)
    })
    .await
}

/// Nothing of the new version (its ReplicaSet, either Service onto it) appeared before the
/// resume; afterwards the preview came first, then the switch.
fn check_nothing_moved_before_resume(
    report: &Report,
    old: &str,
    new: &str,
    patch_rv: u64,
) -> Result<()> {
    let resume_rv = rollout_rv(report, patch_rv, |o| {
        o.pointer("/spec/paused").and_then(Value::as_bool) != Some(true)
    })
    .context("the resume was recorded")?;
    let first = replica_set_history(report, new)
        .into_iter()
        .next()
        .context("the new ReplicaSet was recorded")?;
    ensure!(
        first.rv > resume_rv,
        "the new ReplicaSet (rv {}) was made only after the resume (rv {resume_rv})",
        first.rv
    );
    let preview = selected(report, PREVIEW_SERVICE, new, patch_rv).context("the preview")?;
    let switch = selected(report, ACTIVE_SERVICE, new, patch_rv).context("the switch")?;
    ensure!(
        resume_rv < preview.rv && preview.rv < switch.rv,
        "resume (rv {resume_rv}), then preview (rv {}), then switch (rv {})",
        preview.rv,
        switch.rv
    );
    ensure!(
        stable_throughout(report, old, patch_rv, resume_rv),
        "the old version stayed stable while paused"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. promote --full skips a pre-promotion analysis that is still running.

/// A switch this soon after `promote --full` cannot have waited for the run (it fails at about
/// 50 s), nor come from any later verdict.
const FULL_PROMOTE_WITHIN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_pre_promotion_analysis_still_running_when_fully_promoted_with_the_plugin_then_the_run_is_skipped_and_terminated_and_the_active_service_switches()
-> Result<()> {
    let spec = blue_green().pre_promotion(FAILING_LATE);
    bluegreen::run("it-bgm-full-", async |s| {
        let Release { old, new, patch_rv } = release_v2(s, &spec).await?;
        let running = s
            .wait("the pre-promotion run is recorded", |r| {
                pre_promotion_run(r).is_some()
            })
            .await?;
        let run_name = pre_promotion_run(&running).context("the run")?.name.clone();
        check_run_name(&run_name, &new, Gate::Pre)?;
        // Promote once the run has measured (it is under way, not merely created).
        wait_run(s, &run_name, "the run has a failed measurement", |r| {
            r.status.as_ref().is_some_and(|st| {
                st.phase == Some(AnalysisPhase::Running)
                    && st.metric_results.iter().any(|m| m.failed > 0)
            })
        })
        .await?;
        ensure!(s.service_hash(ACTIVE_SERVICE).await?.as_deref() == Some(old.as_str()));

        let promoted_at = tokio::time::Instant::now();
        let said = sluice(&s.ns, &["promote", ROLLOUT, "--full"]).await?;
        ensure!(
            said.contains("fully promoted"),
            "promote --full confirms: {said}"
        );
        let released = s.wait_released(&new).await?;
        wait_service(s, ACTIVE_SERVICE, &new).await?;
        let took = promoted_at.elapsed();
        ensure!(
            took < FULL_PROMOTE_WITHIN,
            "switched and released {took:?} after promote --full"
        );
        ensure!(
            !released.status.as_ref().is_some_and(|st| st.promote_full),
            "promoteFull is cleared once the release is done"
        );
        let ended = wait_run(s, &run_name, "the skipped run is ended", |r| {
            r.spec.terminate
                && r.status
                    .as_ref()
                    .and_then(|st| st.phase)
                    .is_some_and(AnalysisPhase::is_completed)
        })
        .await?;
        // Terminated long before its failureLimit (about 50 s in): the run ends as a terminated
        // run does, Successful with what it had measured, never Failed by the skip.
        let status = ended.status.as_ref();
        ensure!(
            status.and_then(|st| st.phase) == Some(AnalysisPhase::Successful),
            "the skipped run ended Successful: {status:?}"
        );
        s.wait_replica_set(&old, 0).await?;

        let report = s.report().await?;
        check_switched_before_a_verdict(&report, &old, &new, patch_rv)
    })
    .await
}

/// Until the switch, the status recorded the pre-promotion run without a verdict, the
/// old version stable, and `promoteFull` was set before it.
fn check_switched_before_a_verdict(
    report: &Report,
    old: &str,
    new: &str,
    patch_rv: u64,
) -> Result<()> {
    let switch = selected(report, ACTIVE_SERVICE, new, patch_rv).context("the switch")?;
    let phases: Vec<&str> = report
        .rollout_statuses()
        .filter(|(rv, _)| *rv > patch_rv && *rv < switch.rv)
        .filter_map(|(_, st)| pre_run_phase(st))
        .collect();
    // The Rollout's record of a run may lag behind the run itself (Pending while it already
    // measures); what matters is that no verdict was recorded.
    ensure!(
        !phases.is_empty() && phases.iter().all(|p| matches!(*p, "Pending" | "Running")),
        "the run had no verdict before the switch: {phases:?}"
    );
    let full_rv = rollout_rv(report, patch_rv, |o| {
        o.pointer("/status/promoteFull") == Some(&Value::Bool(true))
    })
    .context("promoteFull was recorded")?;
    ensure!(
        full_rv < switch.rv,
        "promoteFull (rv {full_rv}) before the switch (rv {})",
        switch.rv
    );
    check_one_switch(report, [old, new], patch_rv, switch.rv, "until the switch")
}

// ---------------------------------------------------------------------------------------------
// 4. A second template while the first is previewed.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_paused_preview_when_a_second_template_arrives_then_the_preview_service_moves_to_it_the_first_preview_scales_down_after_the_delay_and_the_active_service_waits_for_the_promote()
-> Result<()> {
    let spec = blue_green().manual_promotion();
    bluegreen::run("it-bgm-supersede-", async |s| {
        let (
            Release {
                old, new: first, ..
            },
            _,
        ) = paused_preview(s, &spec).await?;
        wait_service(s, PREVIEW_SERVICE, &first).await?;
        wait_available(s, &first, N).await?;

        let (second, second_rv) = s.patch_spec(version_patch("v3")).await?;
        ensure!(second != first && second != old, "a third hash");
        let paused = wait_paused(s, &second, PauseReason::BlueGreenPause).await?;
        ensure!(active_selector(&paused).as_deref() == Some(old.as_str()));
        ensure!(preview_selector(&paused).as_deref() == Some(second.as_str()));
        wait_service(s, PREVIEW_SERVICE, &second).await?;
        wait_available(s, &second, N).await?;
        s.wait_replica_set(&first, 0).await?;

        check_held(s, &old, "still on the old version without a promote").await?;
        let said = sluice(&s.ns, &["promote", ROLLOUT]).await?;
        ensure!(said.contains("promoted"), "promote confirms: {said}");
        s.wait_released(&second).await?;
        wait_service(s, ACTIVE_SERVICE, &second).await?;
        s.wait_replica_set(&old, 0).await?;

        let report = s.report().await?;
        check_superseded(&report, [&old, &first, &second], second_rv)
    })
    .await
}

/// The active Service went from `old` straight to `second`; the preview Service followed every
/// template; `first` got a deadline after the second template and lost its pods no sooner than
/// about scaleDownDelaySeconds (2) later, before the promote; `old` kept its pods until then.
fn check_superseded(
    report: &Report,
    [old, first, second]: [&str; 3],
    second_rv: u64,
) -> Result<()> {
    let active = selector_history(report, ACTIVE_SERVICE);
    ensure!(
        active == selectors_from_start(&[old, second]),
        "the active Service never selected the superseded preview: {active:?}"
    );
    let preview = selector_history(report, PREVIEW_SERVICE);
    ensure!(
        preview == selectors_from_start(&[old, first, second]),
        "the preview Service followed the templates: {preview:?}"
    );
    let superseded = (Kind::Rollout, second_rv);
    let scaled =
        scaled_down_after_delay(report, first, second_rv, superseded, "the first preview")?;
    check_deadline_persisted(report, first, second_rv, &scaled)?;
    let switch = selected(report, ACTIVE_SERVICE, second, second_rv).context("the switch")?;
    ensure!(
        scaled.rv < switch.rv,
        "the first preview scaled down (rv {}) while previewing, before the switch (rv {})",
        scaled.rv,
        switch.rv
    );
    let stable_kept = "the stable version kept its pods and got no deadline before the switch";
    check_kept_pods(report, old, N, switch.rv, stable_kept)
}

// ---------------------------------------------------------------------------------------------
// 5. `kubectl sluice get rollout` on a live blue-green release.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_blue_green_release_paused_before_the_switch_when_shown_with_the_plugin_then_get_rollout_names_the_strategy_and_the_active_and_preview_versions()
-> Result<()> {
    let spec = blue_green().manual_promotion();
    bluegreen::run("it-bgm-cli-", async |s| {
        let (Release { old, new, .. }, _) = paused_preview(s, &spec).await?;
        wait_available(s, &new, N).await?;

        let view = sluice(&s.ns, &["get", "rollout", ROLLOUT]).await?;
        check_view(
            &view,
            &[
                "Status:        ॥ Paused",
                "Strategy:      BlueGreen",
                &format!("  Active:      {old}"),
                &format!("  Preview:     {new}"),
            ],
        )?;
        check_row(&view, &format!("⧉ {ROLLOUT}-{old}"), "stable, active")?;
        check_row(&view, &format!("⧉ {ROLLOUT}-{new}"), "preview")?;

        sluice(&s.ns, &["promote", ROLLOUT]).await?;
        let released = s.wait_released(&new).await?;
        ensure!(preview_selector(&released).as_deref() == Some(new.as_str()));
        let view = sluice(&s.ns, &["get", "rollout", ROLLOUT]).await?;
        check_view(
            &view,
            &[
                "✔ Healthy",
                &format!("  Active:      {new}"),
                &format!("  Preview:     {new}"),
            ],
        )?;
        check_row(&view, &format!("⧉ {ROLLOUT}-{new}"), "stable, active")
    })
    .await
}

/// Each of `expected` is somewhere in the view.
fn check_view(view: &str, expected: &[&str]) -> Result<()> {
    for e in expected {
        ensure!(view.contains(e), "get rollout shows {e:?}:\n{view}");
    }
    Ok(())
}

/// The tree row starting (after its branch) with `name` ends with the roles `info`.
fn check_row(view: &str, name: &str, info: &str) -> Result<()> {
    let row = view
        .lines()
        .find(|l| l.contains(name))
        .with_context(|| format!("a row for {name}:\n{view}"))?;
    ensure!(
        row.trim_end().ends_with(info),
        "{name} is shown as {info:?}: {row}"
    );
    Ok(())
}
