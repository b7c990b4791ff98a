//! Traffic shapes beyond one weighted route: header and mirror routes Sluice manages at the top of
//! the VirtualService, a subset-level split through a DestinationRule, two VirtualServices moved
//! together, and a VirtualService full of the user's own settings that must come out of a
//! release exactly as it went in.

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use sluice_tests::fixtures::{
    CANARY_SERVICE, ROUTE, Split, VIRTUAL_SERVICE, gateway_virtual_service, pause,
    remove_header_route, remove_mirror_route, rollout, set_canary_scale, set_header_route,
    set_mirror_route, set_weight, users_own_virtual_service,
};
use sluice_tests::scenario;

const HEADER: &str = "canary-by-header";
const MIRROR: &str = "canary-mirror";

fn route_names(vs: &Value) -> Vec<String> {
    vs.pointer("/spec/http")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| Some(r.get("name")?.as_str()?.to_owned()))
        .collect()
}

fn route<'v>(vs: &'v Value, name: &str) -> Option<&'v Value> {
    vs.pointer("/spec/http")?
        .as_array()?
        .iter()
        .find(|r| r.get("name").and_then(Value::as_str) == Some(name))
}

fn host(destination: Option<&Value>) -> Option<&str> {
    destination?.get("host")?.as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_header_and_mirror_steps_when_the_release_runs_then_the_managed_routes_sit_on_top_while_their_steps_hold_and_are_gone_after()
-> Result<()> {
    let spec = rollout().managed_routes([HEADER, MIRROR]).steps([
        set_canary_scale(1),
        set_header_route(HEADER, "x-canary", "yes"),
        set_mirror_route(MIRROR, 50, "/api"),
        pause(),
        remove_header_route(HEADER),
        remove_mirror_route(MIRROR),
        set_weight(40),
        pause(),
    ]);
    scenario::run("it-canary-managed-", Split::Host, async |s| {
        s.deploy(&spec).await?;
        let new = s.set_version("v2").await?;
        s.wait_paused_at(3, 0).await?;

        let vs = s.virtual_service().await?;
        ensure!(
            route_names(&vs) == [HEADER, MIRROR, ROUTE],
            "managed routes on top, in managedRoutes order: {:?}",
            route_names(&vs)
        );
        let header = route(&vs, HEADER).context("the header route")?;
        ensure!(
            header
                .pointer("/match/0/headers/x-canary/exact")
                .and_then(Value::as_str)
                == Some("yes"),
            "the header route matches x-canary: yes: {header}"
        );
        let targets: Vec<Option<&str>> = header
            .get("route")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|e| host(e.get("destination")))
            .collect();
        ensure!(
            targets == [Some(CANARY_SERVICE)],
            "the header route goes to the canary only: {header}"
        );
        let mirror = route(&vs, MIRROR).context("the mirror route")?;
        ensure!(
            host(mirror.get("mirror")) == Some(CANARY_SERVICE)
                && mirror
                    .pointer("/mirrorPercentage/value")
                    .and_then(Value::as_f64)
                    == Some(50.0),
            "50% of /api mirrored to the canary: {mirror}"
        );
        ensure!(
            s.route_weights().await? == (100, 0),
            "no weighted traffic yet"
        );
        let sets = s.replica_sets().await?;
        ensure!(
            sets.get(&new).is_some_and(|(_, available)| *available >= 1),
            "the routes reach an available canary pod: {sets:?}"
        );

        s.promote().await?;
        s.wait_paused_at(7, 40).await?;
        let vs = s.virtual_service().await?;
        ensure!(
            route_names(&vs) == [ROUTE],
            "both managed routes removed by their steps: {:?}",
            route_names(&vs)
        );

        s.promote().await?;
        s.wait_released(&new).await?;
        ensure!(route_names(&s.virtual_service().await?) == [ROUTE]);
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_subset_level_split_when_a_release_runs_then_the_destination_rule_subsets_follow_the_versions()
-> Result<()> {
    let spec = rollout()
        .split(Split::Subset)
        .steps([set_weight(25), pause()]);
    scenario::run("it-canary-subsets-", Split::Subset, async |s| {
        let old = s.deploy(&spec).await?;
        ensure!(
            s.subset_hashes().await? == (Some(old.clone()), Some(old.clone())),
            "after the first release both subsets select it"
        );
        let new = s.set_version("v2").await?;
        s.wait_paused_at(1, 25).await?;
        ensure!(
            s.subset_hashes().await? == (Some(old.clone()), Some(new.clone())),
            "stable subset on the old version, canary subset on the new"
        );
        ensure!(s.route_weights().await? == (75, 25));

        s.promote().await?;
        s.wait_released(&new).await?;
        ensure!(
            s.subset_hashes().await? == (Some(new.clone()), Some(new.clone())),
            "after promotion both subsets select the new version"
        );
        ensure!(s.route_weights().await? == (100, 0));
        s.wait_replica_set(&old, 0).await?;
        let report = s.report().await?;
        ensure!(
            report.weights() == [0, 25, 0],
            "weights shown: {:?}",
            report.weights()
        );
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_virtual_service_with_the_users_own_settings_when_a_release_runs_then_everything_but_the_weights_is_left_exactly_as_written()
-> Result<()> {
    let spec = rollout().steps([set_weight(30), pause()]);
    scenario::run("it-canary-userfields-", Split::Host, async |s| {
        s.replace_virtual_service(users_own_virtual_service())
            .await?;
        let before = s.virtual_service().await?;
        s.deploy(&spec).await?;
        let new = s.set_version("v2").await?;
        s.wait_paused_at(1, 30).await?;

        let during = s.virtual_service().await?;
        ensure!(s.route_weights().await? == (70, 30));
        ensure!(
            without_weights(&during) == without_weights(&before),
            "mid-release only the weights differ:\nbefore {}\nduring {}",
            before["spec"],
            during["spec"]
        );

        s.promote().await?;
        s.wait_released(&new).await?;
        let after = s.virtual_service().await?;
        ensure!(
            after["spec"] == before["spec"],
            "after the release the spec is exactly the user's:\nbefore {}\nafter  {}",
            before["spec"],
            after["spec"]
        );
        ensure!(
            after["metadata"]["labels"] == before["metadata"]["labels"]
                && after["metadata"]["annotations"] == before["metadata"]["annotations"],
            "labels and annotations untouched"
        );
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_two_virtual_services_when_a_release_runs_then_both_show_every_weight() -> Result<()>
{
    const GATEWAY: &str = "web-gateway";
    let spec = rollout()
        .more_virtual_services([GATEWAY])
        .steps([set_weight(30), pause()]);
    scenario::run("it-canary-two-vs-", Split::Host, async |s| {
        s.create_virtual_service(gateway_virtual_service(GATEWAY))
            .await?;
        s.deploy(&spec).await?;
        let new = s.set_version("v2").await?;
        s.wait_paused_at(1, 30).await?;
        for name in [VIRTUAL_SERVICE, GATEWAY] {
            ensure!(
                s.route_weights_in(name).await? == (70, 30),
                "{name} shows the step's weight"
            );
        }
        s.promote().await?;
        s.wait_released(&new).await?;
        for name in [VIRTUAL_SERVICE, GATEWAY] {
            ensure!(
                s.route_weights_in(name).await? == (100, 0),
                "{name} is back on stable"
            );
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// The spec and the user's metadata with every route weight removed.
fn without_weights(vs: &Value) -> Value {
    let mut spec = vs["spec"].clone();
    if let Some(http) = spec.get_mut("http").and_then(Value::as_array_mut) {
        for route in http {
            if let Some(entries) = route.get_mut("route").and_then(Value::as_array_mut) {
                for entry in entries {
                    if let Some(entry) = entry.as_object_mut() {
                        entry.remove("weight");
                    }
                }
            }
        }
    }
    serde_json::json!({
        "spec": spec,
        "labels": vs["metadata"]["labels"],
        "annotations": vs["metadata"]["annotations"],
    })
}
