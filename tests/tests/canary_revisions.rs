//! A template change in the middle of a release: back to the stable template is a fast-tracked
//! rollback (no steps), and a third template supersedes the canary in flight, which first loses
//! its traffic.

use anyhow::{Context, Result, ensure};
use sluice_tests::fixtures::{CANARY_SERVICE, Split, pause, rollout, set_weight};
use sluice_tests::history::{scaled_to_zero, selected, weight_shown};
use sluice_tests::scenario::{self, step};

fn four_steps() -> sluice_tests::fixtures::RolloutBuilder {
    rollout().steps([set_weight(30), pause(), set_weight(60), pause()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_canary_at_weight_30_when_the_template_goes_back_to_stable_then_the_rollback_skips_the_steps_and_the_canary_loses_traffic_before_its_pods()
-> Result<()> {
    let spec = four_steps();
    scenario::run("it-canary-rollback-", Split::Host, async |s| {
        let stable = s.deploy(&spec).await?;
        let canary = s.set_version("v2").await?;
        s.wait_paused_at(1, 30).await?;

        let (back, rollback_rv) = s
            .patch_spec(sluice_tests::fixtures::version_patch("v1"))
            .await?;
        ensure!(back == stable, "the old template has the stable hash again");
        let released = s.wait_released(&stable).await?;
        ensure!(step(&released) == Some(4), "no step left to run");
        s.wait_replica_set(&canary, 0).await?;
        ensure!(s.route_weights().await? == (100, 0));

        let report = s.report().await?;
        ensure!(
            report.weights_after(rollback_rv) == [0],
            "the rollback only took the canary's weight away: {:?}",
            report.weights_after(rollback_rv)
        );
        let indices: Vec<i64> = report
            .rollout_statuses()
            .filter(|(rv, _)| *rv > rollback_rv)
            .filter_map(|(_, st)| st.get("currentStepIndex")?.as_i64())
            .collect();
        ensure!(
            indices.iter().all(|i| *i == 4),
            "no step was run after the rollback: {indices:?}"
        );
        let zero = weight_shown(&report, 0, rollback_rv).context("weight 0 after the rollback")?;
        let scaled = scaled_to_zero(&report, &canary, rollback_rv)
            .context("the canary scaled down after the rollback")?;
        ensure!(
            zero.rv < scaled.rv,
            "weight 0 (rv {}) before the canary's scale-down (rv {})",
            zero.rv,
            scaled.rv
        );
        ensure!(
            s.events("RolloutPaused")
                .await?
                .iter()
                .map(|e| e.count)
                .sum::<i32>()
                == 1,
            "only the pause before the rollback was entered"
        );
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_canary_at_weight_30_when_a_third_template_arrives_then_the_old_canary_loses_its_traffic_before_the_canary_service_moves()
-> Result<()> {
    let spec = four_steps();
    scenario::run("it-canary-supersede-", Split::Host, async |s| {
        let first = s.deploy(&spec).await?;
        let second = s.set_version("v2").await?;
        s.wait_paused_at(1, 30).await?;

        let (third, change_rv) = s
            .patch_spec(sluice_tests::fixtures::version_patch("v3"))
            .await?;
        ensure!(third != second && third != first, "v3 is a new template");
        let paused = s.wait_paused_at(1, 30).await?;
        ensure!(
            paused
                .status
                .as_ref()
                .and_then(|st| st.current_pod_hash.as_deref())
                == Some(third.as_str()),
            "the paused release is v3's"
        );
        ensure!(s.service_hash(CANARY_SERVICE).await?.as_deref() == Some(third.as_str()));
        s.wait_replica_set(&second, 0).await?;

        let report = s.report().await?;
        ensure!(
            report.weights_after(change_rv) == [0, 30],
            "v2's weight went to 0, then v3 got its first step's: {:?}",
            report.weights_after(change_rv)
        );
        let zero =
            weight_shown(&report, 0, change_rv).context("weight 0 after the new template")?;
        let moved = selected(&report, CANARY_SERVICE, &third, change_rv)
            .context("the canary Service moved to v3")?;
        ensure!(
            zero.rv < moved.rv,
            "v2 lost its traffic (rv {}) before the canary Service moved to v3 (rv {})",
            zero.rv,
            moved.rv
        );

        s.promote().await?;
        s.wait_paused_at(3, 60).await?;
        s.promote().await?;
        s.wait_released(&third).await?;
        s.wait_replica_set(&first, 0).await?;
        Ok(())
    })
    .await?;
    Ok(())
}
