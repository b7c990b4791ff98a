//! A controller restart in the middle of a release resumes from what the cluster says: no step
//! repeated, none skipped, no weight moving backwards, and a timed pause keeps its start time.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use sluice_tests::fixtures::{Split, pause_for, rollout, set_weight};
use sluice_tests::monitor::{Kind, Report};
use sluice_tests::scenario::{self, paused, step};

/// Long enough to hold the controller down past it, short enough to keep the test quick.
const PAUSE_SECONDS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_release_in_flight_when_the_controller_restarts_during_a_timed_pause_and_between_steps_then_it_resumes_without_repeating_or_skipping_a_step()
-> Result<()> {
    let spec = rollout().steps([
        set_weight(20),
        pause_for(PAUSE_SECONDS),
        set_weight(40),
        pause_for(PAUSE_SECONDS),
        set_weight(60),
        pause_for(PAUSE_SECONDS),
        set_weight(80),
    ]);
    scenario::run("it-canary-restart-", Split::Host, async |s| {
        s.deploy(&spec).await?;
        let new = s.set_version("v2").await?;

        // Restart 1: killed while paused at step 2, and kept down until the pause has expired.
        s.wait("paused at step 2", |r| step(r) == Some(1) && paused(r))
            .await?;
        s.controller.stop().await?;
        // Named sleep, not a stand-in for a condition: the pause must run out while no
        // controller is alive, so the next one can only learn it from the status.
        tokio::time::sleep(Duration::from_secs(PAUSE_SECONDS + 1)).await;
        s.controller.resume();

        // Restart 2: as soon as the status names step 5 (setWeight 60), before or while its
        // weight moves.
        s.wait("at step 5", |r| step(r) == Some(4)).await?;
        s.controller.restart().await?;
        s.wait_released(&new).await?;
        ensure!(s.controller.starts() == 3, "three controllers ran");

        let report = s.report().await?;
        ensure!(
            report.weights() == [0, 20, 40, 60, 80, 0],
            "every step's weight shown once, never backwards: {:?}",
            report.weights()
        );
        let indices: Vec<i64> = report
            .rollout_statuses()
            .filter(|(_, st)| st.get("currentPodHash").and_then(|h| h.as_str()) == Some(&new))
            .filter_map(|(_, st)| st.get("currentStepIndex")?.as_i64())
            .collect();
        ensure!(
            indices.windows(2).all(|w| w[0] <= w[1]),
            "the step index never went back: {indices:?}"
        );
        for index in [1, 3, 5] {
            check_pause(&report, &new, index)?;
        }
        // Events are published after the status write they describe: a controller killed in
        // between loses them (at most one reconcile's worth per kill), but none may repeat.
        s.wait_event("StepCompleted", |e| e.note == "completed step 7/7")
            .await?;
        let mut published = 0;
        for k in 1..=7 {
            let note = format!("completed step {k}/7");
            let n = s.occurrences("StepCompleted", &note).await?;
            ensure!(n <= 1, "{note:?} happened {n} times");
            published += n;
        }
        ensure!(
            published >= 7 - 2,
            "at most the two killed reconciles lost their StepCompleted events: {published} of 7"
        );
        Ok(())
    })
    .await?;
    Ok(())
}

/// The timed pause at `index` of the release `hash` was entered once (one start time) and lasted
/// its full duration before the release moved on.
fn check_pause(report: &Report, hash: &str, index: i64) -> Result<()> {
    let versions: Vec<_> = report
        .changes
        .iter()
        .filter(|c| c.kind == Kind::Rollout)
        .filter_map(|c| Some((c.at, c.object.as_ref()?.get("status")?)))
        .filter(|(_, st)| st.get("currentPodHash").and_then(|h| h.as_str()) == Some(hash))
        .collect();
    let at_index = |st: &serde_json::Value| st.get("currentStepIndex").and_then(|i| i.as_i64());
    let starts: BTreeSet<&str> = versions
        .iter()
        .filter(|(_, st)| at_index(st) == Some(index))
        .filter_map(|(_, st)| st.pointer("/pauseConditions/0/startTime")?.as_str())
        .collect();
    ensure!(
        starts.len() == 1,
        "the pause at step {} was entered once: start times {starts:?}",
        index + 1
    );
    let entered = versions
        .iter()
        .find(|(_, st)| at_index(st) == Some(index) && st.get("pauseConditions").is_some())
        .map(|(at, _)| *at)
        .context("the pause was entered")?;
    let left = versions
        .iter()
        .find(|(_, st)| at_index(st).is_some_and(|i| i > index))
        .map(|(at, _)| *at)
        .context("the pause was left")?;
    // Start times are stored with second precision, so a pause may end up to 1 s early.
    let held = left.duration_since(entered);
    ensure!(
        held >= Duration::from_secs(PAUSE_SECONDS - 1),
        "the pause at step {} lasted {held:?}",
        index + 1
    );
    Ok(())
}
