//! The progress deadline: a canary whose pods never become available (no node accepts them, so
//! they stay Pending) gets no traffic, the Rollout says `Progressing=False /
//! ProgressDeadlineExceeded`, and with `progressDeadlineAbort` it aborts.

use anyhow::{Context, Result, ensure};
use sluice_crds::{ConditionType, RolloutPhase};
use sluice_tests::fixtures::{Split, pause, rollout, set_weight, unschedulable_version_patch};
use sluice_tests::scenario::{self, aborted, condition, not_progressing_because, phase};

const DEADLINE: &str = "ProgressDeadlineExceeded";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_progress_deadline_abort_when_the_canary_never_becomes_available_then_the_rollout_aborts_without_ever_sending_it_traffic()
-> Result<()> {
    let spec = rollout()
        .progress_deadline(10, true)
        .steps([set_weight(20), pause()]);
    scenario::run("it-canary-deadline-abort-", Split::Host, async |s| {
        let stable = s.deploy(&spec).await?;
        let (stuck, _) = s.patch_spec(unschedulable_version_patch("v2")).await?;
        let degraded = s
            .wait("aborted after the progress deadline", |r| {
                aborted(r)
                    && phase(r) == Some(RolloutPhase::Degraded)
                    && not_progressing_because(r, DEADLINE)
            })
            .await?;
        let message = condition(&degraded, ConditionType::Progressing)
            .map(|c| c.message.clone())
            .context("a Progressing condition")?;
        ensure!(
            message.contains(&stuck),
            "the condition names the stuck version: {message}"
        );
        s.wait_replica_set(&stuck, 0).await?;
        let sets = s.replica_sets().await?;
        ensure!(
            sets.get(&stable) == Some(&(5, 5)),
            "the stable version kept all its pods: {sets:?}"
        );
        ensure!(s.route_weights().await? == (100, 0));

        let report = s.report().await?;
        ensure!(
            report.weights() == [0],
            "the stuck canary never got traffic: {:?}",
            report.weights()
        );
        let stuck_version = stuck.clone();
        s.wait_event(DEADLINE, move |e| {
            e.warning && e.note.contains(&stuck_version)
        })
        .await?;
        s.wait_event("RolloutAborted", |e| e.warning).await?;
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_progress_deadline_without_abort_when_the_canary_never_becomes_available_then_the_rollout_is_degraded_until_a_new_template_progresses()
-> Result<()> {
    let spec = rollout()
        .progress_deadline(10, false)
        .steps([set_weight(20), pause()]);
    scenario::run("it-canary-deadline-", Split::Host, async |s| {
        s.deploy(&spec).await?;
        s.patch_spec(unschedulable_version_patch("v2")).await?;
        let stuck = s
            .wait("Degraded after the progress deadline", |r| {
                phase(r) == Some(RolloutPhase::Degraded) && not_progressing_because(r, DEADLINE)
            })
            .await?;
        ensure!(!aborted(&stuck), "no abort without progressDeadlineAbort");

        // A fixed template (schedulable again) makes progress: the deadline no longer holds.
        let fixed = s
            .patch_spec(serde_json::json!({
                "spec": { "template": {
                    "metadata": { "annotations": { "sluice.test/version": "v3" } },
                    "spec": { "nodeSelector": null },
                } }
            }))
            .await?
            .0;
        s.wait_paused_at(1, 20).await?;
        s.promote().await?;
        s.wait_released(&fixed).await?;

        let report = s.report().await?;
        ensure!(
            report.weights() == [0, 20, 0],
            "only the fixed version got traffic: {:?}",
            report.weights()
        );
        Ok(())
    })
    .await?;
    Ok(())
}
