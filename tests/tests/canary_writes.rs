//! What one canary step costs in API writes, and that a paused Rollout costs none.
//!
//! The step measured: from a promote at the pause after `setWeight: 20` until the Rollout is
//! paused again after `setWeight: 50` with that weight verified. The count comes from the
//! invariant monitor, which attributes each new version of an object to its writer (see
//! `monitor::is_sluice_write`).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use sluice_tests::fixtures::{Split, pause, rollout, set_weight};
use sluice_tests::monitor::Kind;
use sluice_tests::scenario::{self, rv_of};

/// How long a paused Rollout is watched for writes that should not happen.
const IDLE_WINDOW: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_paused_canary_when_promoted_to_the_next_weight_then_the_step_costs_a_handful_of_writes_and_the_next_pause_costs_none()
-> Result<()> {
    let spec = rollout().steps([set_weight(20), pause(), set_weight(50), pause()]);
    scenario::run("it-canary-writes-", Split::Host, async |s| {
        s.deploy(&spec).await?;
        s.set_version("v2").await?;
        s.wait_paused_at(1, 20).await?;
        // The pause's own events come after its status write: let them land before the window
        // opens, so they are not counted as the next step's.
        s.wait_event("RolloutPaused", |_| true).await?;

        let promoted = s.promote().await?;
        let paused = s.wait_paused_at(3, 50).await?;
        let arrived = rv_of(&paused)?;
        // Named sleep: there is no event to wait for when the expectation is that nothing
        // happens; the window is long against a reconcile (milliseconds here).
        tokio::time::sleep(IDLE_WINDOW).await;

        let report = s.report().await?;
        // The step's writes include the events the last reconcile publishes after its status
        // write, so they are counted up to the end of the window; that nothing came later than
        // just after the arrival shows the paused Rollout cost nothing.
        let step = report.writes_between(promoted, u64::MAX);
        eprintln!("API writes for one setWeight step (20 -> 50, 5 replicas): {step}");
        let arrived_at = report
            .delivered_at(Kind::Rollout, arrived)
            .context("the monitor saw the arrival")?;
        let last = report.last_write_at().context("writes were seen")?;
        let quiet = IDLE_WINDOW.saturating_sub(last.saturating_duration_since(arrived_at));
        eprintln!("then no write for {quiet:?} while paused");
        ensure!(
            step.virtual_service == 1,
            "the weight moved in one VirtualService write: {step}"
        );
        ensure!(
            step.replica_set == 1,
            "the canary was scaled up in one ReplicaSet write: {step}"
        );
        ensure!(
            step.service == 0,
            "no Service changed within a release: {step}"
        );
        ensure!(
            last.saturating_duration_since(arrived_at) < Duration::from_secs(1),
            "a paused Rollout costs no write: the last came {:?} after the pause began",
            last.saturating_duration_since(arrived_at)
        );
        Ok(())
    })
    .await?;
    Ok(())
}
