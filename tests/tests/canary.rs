//! Canary releases end to end against the local cluster: weights move step by step, pauses wait
//! for a promote, a full promote skips the rest, and a promoted version takes the stable Service
//! before the old one scales down. Each test runs in its own namespace with its own in-process
//! controller, under the invariant monitor.

use anyhow::{Context, Result, ensure};
use sluice_crds::RolloutPhase;
use sluice_tests::fixtures::{
    CANARY_SERVICE, STABLE_SERVICE, Split, pause, pause_for, rollout, set_weight,
};
use sluice_tests::history::{scaled_down_after_delay, selected};
use sluice_tests::monitor::Kind;
use sluice_tests::scenario::{self, phase, step};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_three_weight_steps_when_the_template_changes_then_the_virtual_service_shows_each_weight_in_order_and_the_new_version_becomes_stable()
-> Result<()> {
    let spec = rollout().steps([
        set_weight(20),
        pause_for(1),
        set_weight(50),
        pause_for(1),
        set_weight(80),
    ]);
    let report = scenario::run("it-canary-steps-", Split::Host, async |s| {
        let old = s.deploy(&spec).await?;
        let new = s.set_version("v2").await?;
        let released = s.wait_released(&new).await?;

        ensure!(step(&released) == Some(5), "all five steps done");
        ensure!(
            s.service_hash(STABLE_SERVICE).await?.as_deref() == Some(new.as_str()),
            "the stable Service selects the new version"
        );
        ensure!(
            s.service_hash(CANARY_SERVICE).await?.as_deref() == Some(new.as_str()),
            "the canary Service selects the new version"
        );
        ensure!(
            s.route_weights().await? == (100, 0),
            "all traffic on the stable destination"
        );
        s.wait_replica_set(&old, 0).await?;

        let report = s.report().await?;
        ensure!(
            report.weights() == [0, 20, 50, 80, 0],
            "the canary weights shown, in order: {:?}",
            report.weights()
        );
        let verified = verified_weights(&report);
        ensure!(
            verified == [0, 20, 50, 80, 0],
            "the weights the status verified, in order: {verified:?}"
        );
        // Promotion order: the stable Service moved onto the new pods, and only after the
        // scale-down delay (2 s) did the old ReplicaSet lose its pods.
        let moved = selected(&report, STABLE_SERVICE, &new, 0)
            .context("the stable Service moved to the new version")?;
        let scaled = scaled_down_after_delay(
            &report,
            &old,
            0,
            (Kind::Service, moved.rv),
            "the old version",
        )?;
        ensure!(
            moved.rv < scaled.rv,
            "stable Service moved before the scale-down"
        );
        ensure!(phase(&released) == Some(RolloutPhase::Healthy));
        Ok(())
    })
    .await?;
    eprintln!("canary weights shown: {:?}", report.weights());
    Ok(())
}

/// The verified canary weights in status order, consecutive repeats removed.
fn verified_weights(report: &sluice_tests::monitor::Report) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    for (_, status) in report.rollout_statuses() {
        let weights = status.pointer("/canary/weights");
        let verified = weights
            .and_then(|w| w.get("verified"))
            .and_then(|v| v.as_bool())
            == Some(true);
        let weight = weights
            .and_then(|w| w.pointer("/canary/weight"))
            .and_then(|w| w.as_i64());
        if let (true, Some(weight)) = (verified, weight)
            && out.last() != Some(&weight)
        {
            out.push(weight);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_indefinite_pause_when_promoted_then_the_next_step_runs_and_the_rollout_waits_again()
-> Result<()> {
    let spec = rollout().steps([set_weight(20), pause(), set_weight(60), pause()]);
    scenario::run("it-canary-pause-", Split::Host, async |s| {
        s.deploy(&spec).await?;
        let new = s.set_version("v2").await?;
        let held = s.wait_paused_at(1, 20).await?;
        ensure!(phase(&held) == Some(RolloutPhase::Paused));

        s.promote().await?;
        s.wait_paused_at(3, 60).await?;
        s.promote().await?;
        s.wait_released(&new).await?;

        let report = s.report().await?;
        ensure!(
            report.weights() == [0, 20, 60, 0],
            "weights shown: {:?}",
            report.weights()
        );
        s.wait_event("StepCompleted", |e| e.note == "completed step 4/4")
            .await?;
        let completed = s.events("StepCompleted").await?;
        let notes: Vec<(&str, i32)> = completed
            .iter()
            .map(|e| (e.note.as_str(), e.count))
            .collect();
        ensure!(
            notes
                == [
                    ("completed step 1/4", 1),
                    ("completed step 2/4", 1),
                    ("completed step 3/4", 1),
                    ("completed step 4/4", 1)
                ],
            "each step completed once, in order: {completed:?}"
        );
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_paused_canary_when_fully_promoted_then_the_remaining_steps_are_skipped_for_that_release_only()
-> Result<()> {
    let spec = rollout().steps([
        set_weight(20),
        pause(),
        set_weight(40),
        pause(),
        set_weight(60),
        pause(),
    ]);
    scenario::run("it-canary-full-", Split::Host, async |s| {
        let old = s.deploy(&spec).await?;
        let new = s.set_version("v2").await?;
        s.wait_paused_at(1, 20).await?;

        s.promote_full().await?;
        let released = s.wait_released(&new).await?;
        s.wait_replica_set(&old, 0).await?;

        let report = s.report().await?;
        ensure!(
            report.weights() == [0, 20, 0],
            "no weight of a skipped step was ever shown: {:?}",
            report.weights()
        );
        let indices = report.step_indices();
        ensure!(
            !indices.contains(&3) && !indices.contains(&5),
            "no skipped pause was entered: {indices:?}"
        );
        ensure!(
            released.status.as_ref().is_some_and(|s| !s.promote_full),
            "promoteFull is cleared once done"
        );

        // The request was for that release only: the next one runs its steps again.
        s.set_version("v3").await?;
        s.wait_paused_at(1, 20).await?;
        Ok(())
    })
    .await?;
    Ok(())
}
