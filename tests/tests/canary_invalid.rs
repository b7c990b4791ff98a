//! A Rollout that names something missing (a VirtualService, a route, a Service, a subset) says
//! so in an `InvalidSpec` condition and a Warning event naming it, and changes nothing: no new
//! ReplicaSet, no traffic move. Fixing the reference lets the release go on.

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use sluice_crds::{ConditionStatus, ConditionType, RolloutPhase};
use sluice_tests::fixtures::{Split, pause, rollout, set_weight, template};
use sluice_tests::scenario::{self, Scenario, condition, phase};

/// Deploys, then changes the template together with a broken reference (`broken`, a merge
/// patch of `spec.strategy.canary`), and checks the Rollout says `missing` is missing and that
/// nothing moved. Returns the stable hash.
async fn breaks_without_moving(
    s: &Scenario,
    split: Split,
    broken: Value,
    missing: &str,
) -> Result<String> {
    let spec = rollout().split(split).steps([set_weight(20), pause()]);
    let stable = s.deploy(&spec).await?;
    let weights_before = s.route_weights().await?;
    let patch = json!({ "spec": {
        "template": template("v2"),
        "strategy": { "canary": broken },
    } });
    s.patch_spec(patch).await?;
    let missing_owned = missing.to_owned();
    let invalid = s
        .wait(&format!("InvalidSpec naming {missing}"), move |r| {
            condition(r, ConditionType::InvalidSpec).is_some_and(|c| {
                c.status == ConditionStatus::True && c.message.contains(&missing_owned)
            })
        })
        .await?;
    ensure!(
        phase(&invalid) == Some(RolloutPhase::Degraded),
        "an invalid Rollout is Degraded"
    );
    s.wait_event("InvalidSpec", |e| e.warning && e.note.contains(missing))
        .await?;
    let sets = s.replica_sets().await?;
    ensure!(
        sets.keys().collect::<Vec<_>>() == [&stable],
        "no ReplicaSet for the new template: {sets:?}"
    );
    ensure!(
        s.route_weights().await? == weights_before,
        "the weights did not move"
    );
    let report = s.report().await?;
    ensure!(
        report.weights().iter().all(|w| *w == 0),
        "no traffic moved: {:?}",
        report.weights()
    );
    Ok(stable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_missing_virtual_service_when_a_release_starts_then_the_rollout_says_invalid_spec_and_nothing_moves_until_it_is_fixed()
-> Result<()> {
    scenario::run("it-canary-invalid-vs-", Split::Host, async |s| {
        let broken = json!({ "trafficRouting": { "istio": { "virtualService": { "name": "no-such-vs" } } } });
        breaks_without_moving(s, Split::Host, broken, "no-such-vs").await?;

        let fixed = json!({ "spec": { "strategy": { "canary": {
            "trafficRouting": { "istio": { "virtualService": { "name": "web" } } },
        } } } });
        s.patch_spec(fixed).await?;
        let resumed = s.wait_paused_at(1, 20).await?;
        ensure!(
            condition(&resumed, ConditionType::InvalidSpec).is_none(),
            "the InvalidSpec condition is gone once the reference is fixed"
        );
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_missing_route_name_when_a_release_starts_then_the_rollout_says_invalid_spec_and_nothing_moves()
-> Result<()> {
    scenario::run("it-canary-invalid-route-", Split::Host, async |s| {
        let broken = json!({ "trafficRouting": { "istio": { "virtualService": { "routes": ["no-such-route"] } } } });
        breaks_without_moving(s, Split::Host, broken, "no-such-route").await?;
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_missing_canary_service_when_a_release_starts_then_the_rollout_says_invalid_spec_and_nothing_moves()
-> Result<()> {
    scenario::run("it-canary-invalid-svc-", Split::Host, async |s| {
        let broken = json!({ "canaryService": "no-such-service" });
        breaks_without_moving(s, Split::Host, broken, "no-such-service").await?;
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_missing_destination_rule_subset_when_a_release_starts_then_the_rollout_says_invalid_spec_and_nothing_moves()
-> Result<()> {
    scenario::run("it-canary-invalid-subset-", Split::Subset, async |s| {
        let broken = json!({ "trafficRouting": { "istio": { "destinationRule": { "canarySubsetName": "no-such-subset" } } } });
        let stable = breaks_without_moving(s, Split::Subset, broken, "no-such-subset").await?;
        let subsets = s.subset_hashes().await?;
        ensure!(
            subsets == (Some(stable.clone()), Some(stable)),
            "the subsets did not move: {subsets:?}"
        );
        Ok(())
    })
    .await?;
    Ok(())
}
