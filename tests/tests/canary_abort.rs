//! Aborting a canary: all traffic goes back to stable, read back, before the canary loses its
//! pods; the Rollout says Degraded with a Warning event; a retry starts the release again from
//! the first step and can complete it.

use anyhow::{Context, Result, ensure};
use sluice_crds::{ConditionStatus, ConditionType, RolloutPhase};
use sluice_tests::fixtures::{Split, pause, rollout, set_weight};
use sluice_tests::history::{scaled_down_after_delay, weight_shown};
use sluice_tests::monitor::Kind;
use sluice_tests::scenario::{self, aborted, condition, phase, verified_weight};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_canary_at_weight_50_when_aborted_then_traffic_returns_to_stable_before_the_canary_scales_down_and_a_retry_completes_from_step_one()
-> Result<()> {
    let spec = rollout().abort_scale_down_delay_seconds(2).steps([
        set_weight(50),
        pause(),
        set_weight(80),
        pause(),
    ]);
    scenario::run("it-canary-abort-", Split::Host, async |s| {
        s.deploy(&spec).await?;
        let new = s.set_version("v2").await?;
        s.wait_paused_at(1, 50).await?;

        let abort_rv = s.abort().await?;
        let degraded = s
            .wait(
                "aborted: Degraded with all traffic on stable, verified",
                |r| {
                    aborted(r)
                        && phase(r) == Some(RolloutPhase::Degraded)
                        && verified_weight(r) == Some(0)
                },
            )
            .await?;
        let progressing =
            condition(&degraded, ConditionType::Progressing).context("a Progressing condition")?;
        ensure!(
            progressing.status == ConditionStatus::False && progressing.reason == "RolloutAborted",
            "Progressing=False/RolloutAborted, got {progressing:?}"
        );
        s.wait_replica_set(&new, 0).await?;
        ensure!(s.route_weights().await? == (100, 0));

        s.wait_event("RolloutAborted", |e| e.warning).await?;

        // Invariant 3 for this abort, spelled out: the canary's scale-down came after the weight
        // read back 0, and no sooner than abortScaleDownDelaySeconds later.
        let report = s.report().await?;
        let zero = weight_shown(&report, 0, abort_rv)
            .context("the VirtualService shows weight 0 after the abort")?;
        let from_zero = (Kind::VirtualService, zero.rv);
        let scaled = scaled_down_after_delay(&report, &new, abort_rv, from_zero, "the canary")?;
        ensure!(
            zero.rv < scaled.rv,
            "weight 0 (rv {}) before the scale-down (rv {})",
            zero.rv,
            scaled.rv
        );
        ensure!(
            report.weights_after(abort_rv) == [0],
            "after the abort only weight 0 was shown: {:?}",
            report.weights_after(abort_rv)
        );

        // Retry: the same version from step 1 again.
        let retry_rv = s.retry().await?;
        s.wait_paused_at(1, 50).await?;
        s.promote().await?;
        s.wait_paused_at(3, 80).await?;
        s.promote().await?;
        let released = s.wait_released(&new).await?;
        ensure!(!aborted(&released), "the abort is cleared");

        let report = s.report().await?;
        ensure!(
            report.weights_after(retry_rv) == [50, 80, 0],
            "after the retry the weights of every step were shown again: {:?}",
            report.weights_after(retry_rv)
        );
        s.wait_event("StepCompleted", |e| e.note == "completed step 4/4")
            .await?;
        ensure!(
            s.occurrences("StepCompleted", "completed step 1/4").await? == 2,
            "step 1 completed once before the abort and once after the retry"
        );
        ensure!(
            s.occurrences("RolloutRetried", "abort cleared: retrying from step 1")
                .await?
                == 1,
            "one RolloutRetried event"
        );
        Ok(())
    })
    .await?;
    Ok(())
}
