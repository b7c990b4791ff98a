//! The Istio router against the real API server and the real Istio CRDs: weights move, managed
//! routes come and go, subsets are labelled, the user's other fields survive exactly, a stale
//! patch is refused, and missing objects are named. Each test runs in its own namespace.

use anyhow::{Context, Result, bail, ensure};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sluice_controller::traffic::istio::{
    DestinationRuleRef, FIELD_MANAGER, IstioConfig, IstioRouter, ObjectHandle, TlsRouteRef,
    VirtualServiceRef, destination_rule_resource, virtual_service, virtual_service_resource,
};
use sluice_controller::traffic::{
    DesiredTraffic, HeaderMatch, HeaderRoute, MirrorRoute, RequestMatch, StringMatch, SubsetHashes,
    TrafficError, TrafficRouter,
};
use sluice_tests::{client, with_namespace};

const CANARY: &str = "web-canary";
const STABLE: &str = "web-stable";

// ---------------------------------------------------------------------------------------------
// Fixtures.

fn virtual_services(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &virtual_service_resource())
}

fn destination_rules(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &destination_rule_resource())
}

fn entry(host: &str, subset: Option<&str>, weight: u64) -> Value {
    let mut entry =
        json!({ "destination": { "host": host, "port": { "number": 8080 } }, "weight": weight });
    if let Some(subset) = subset {
        entry["destination"]["subset"] = json!(subset);
    }
    entry
}

/// A VirtualService the way a team writes it: annotations, gateways, a split route with retries
/// and timeouts, and a second route Sluice has nothing to do with.
fn user_virtual_service(name: &str, split: Vec<Value>) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": name,
            "labels": { "app": "web" },
            "annotations": { "team": "payments", "argocd.argoproj.io/sync-options": "Prune=false" },
        },
        "spec": {
            "hosts": ["web.example.com", "web"],
            "gateways": ["mesh"],
            "http": [
                {
                    "name": "primary",
                    "match": [{ "uri": { "prefix": "/" } }],
                    "route": split,
                    "retries": { "attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,reset" },
                    "timeout": "10s",
                    "headers": { "request": { "set": { "x-env": "prod" } } },
                },
                {
                    "name": "admin",
                    "match": [{ "uri": { "prefix": "/admin" } }],
                    "route": [{ "destination": { "host": "admin" } }],
                    "timeout": "30s",
                },
            ],
        },
    })
}

fn host_split() -> Vec<Value> {
    vec![entry(STABLE, None, 100), entry(CANARY, None, 0)]
}

fn host_config(ns: &str) -> IstioConfig {
    IstioConfig {
        namespace: ns.to_owned(),
        canary_service: CANARY.to_owned(),
        stable_service: STABLE.to_owned(),
        virtual_services: vec![VirtualServiceRef {
            name: "web".to_owned(),
            http_routes: vec!["primary".to_owned()],
            ..Default::default()
        }],
        destination_rule: None,
        managed_routes: vec!["header-1".to_owned(), "mirror-1".to_owned()],
    }
}

fn subset_config(ns: &str) -> IstioConfig {
    IstioConfig {
        canary_service: "web".to_owned(),
        stable_service: "web".to_owned(),
        destination_rule: Some(DestinationRuleRef {
            name: "web".to_owned(),
            canary_subset: "canary".to_owned(),
            stable_subset: "stable".to_owned(),
        }),
        ..host_config(ns)
    }
}

fn user_destination_rule() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": { "name": "web", "annotations": { "team": "payments" } },
        "spec": {
            "host": "web",
            "trafficPolicy": { "connectionPool": { "tcp": { "maxConnections": 100 } } },
            "subsets": [
                { "name": "stable", "labels": { "app": "web" }, "trafficPolicy": { "loadBalancer": { "simple": "LEAST_REQUEST" } } },
                { "name": "canary", "labels": { "app": "web" } },
                { "name": "legacy", "labels": { "version": "v0" } },
            ],
        },
    })
}

async fn create(api: &Api<DynamicObject>, object: Value) -> Result<Value> {
    let object: DynamicObject = serde_json::from_value(object)?;
    let created = api
        .create(&PostParams::default(), &object)
        .await
        .context("create")?;
    Ok(serde_json::to_value(created)?)
}

async fn read(api: &Api<DynamicObject>, name: &str) -> Result<Value> {
    Ok(serde_json::to_value(
        api.get(name).await.with_context(|| format!("get {name}"))?,
    )?)
}

fn desired(canary_weight: u8) -> DesiredTraffic {
    DesiredTraffic {
        canary_weight,
        ..DesiredTraffic::all_stable()
    }
}

fn header_route() -> HeaderRoute {
    HeaderRoute {
        name: "header-1".to_owned(),
        matches: vec![HeaderMatch {
            header_name: "x-canary".to_owned(),
            value: StringMatch::Exact("yes".to_owned()),
        }],
    }
}

fn mirror_route() -> MirrorRoute {
    MirrorRoute {
        name: "mirror-1".to_owned(),
        percentage: 25,
        matches: vec![RequestMatch {
            method: Some(StringMatch::Exact("GET".to_owned())),
            ..Default::default()
        }],
    }
}

// ---------------------------------------------------------------------------------------------
// Assertions.

/// `(canary, stable)` weights of http route `index`, found by host or subset.
fn weights_of(vs: &Value, index: usize, canary: &str, stable: &str) -> Result<(u64, u64)> {
    let entries = vs["spec"]["http"][index]["route"]
        .as_array()
        .context("route list")?;
    let find = |wanted: &str| {
        entries
            .iter()
            .find(|e| e["destination"]["host"] == wanted || e["destination"]["subset"] == wanted)
            .and_then(|e| e["weight"].as_u64())
            .with_context(|| format!("no weight for {wanted} in {vs:#}"))
    };
    Ok((find(canary)?, find(stable)?))
}

fn http_names(vs: &Value) -> Vec<String> {
    let routes = vs["spec"]["http"].as_array().cloned().unwrap_or_default();
    routes
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The user's part of a VirtualService: spec without managed routes and split weights, plus the
/// labels and annotations.
fn users_part(vs: &Value) -> Value {
    let mut spec = vs["spec"].clone();
    if let Some(http) = spec["http"].as_array_mut() {
        http.retain(|route| {
            !["header-1", "mirror-1"].contains(&route["name"].as_str().unwrap_or(""))
        });
        for entry in http
            .iter_mut()
            .flat_map(|r| r["route"].as_array_mut().into_iter().flatten())
        {
            if let Some(entry) = entry.as_object_mut() {
                entry.remove("weight");
            }
        }
    }
    json!({ "spec": spec, "labels": vs["metadata"]["labels"], "annotations": vs["metadata"]["annotations"] })
}

async fn expect_weight(
    router: &IstioRouter,
    api: &Api<DynamicObject>,
    weight: u8,
) -> Result<Value> {
    router
        .apply(&desired(weight))
        .await
        .with_context(|| format!("apply weight {weight}"))?;
    let observed = router.observe().await?;
    let vs = read(api, "web").await?;
    ensure!(
        observed.canary_weight == Some(weight),
        "observed {observed:?} after {weight}; {vs:#}"
    );
    let expected = (u64::from(weight), 100 - u64::from(weight));
    ensure!(
        weights_of(&vs, 0, CANARY, STABLE)? == expected,
        "weights after {weight}: {vs:#}"
    );
    Ok(vs)
}

fn invalid_reference(
    result: Result<impl std::fmt::Debug, TrafficError>,
    expected: &str,
) -> Result<()> {
    match result {
        Err(TrafficError::InvalidReference(message)) if message.contains(expected) => Ok(()),
        other => bail!("expected InvalidReference containing {expected:?}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

/// Runs `body` with a client in a fresh namespace that is deleted afterwards.
async fn in_namespace<F, Fut>(prefix: &str, body: F) -> Result<()>
where
    F: FnOnce(kube::Client, String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let client = client().await?;
    let inner = client.clone();
    with_namespace(&client, prefix, move |ns| body(inner, ns)).await
}

#[tokio::test]
async fn weights_move_10_50_0_and_the_users_fields_survive() -> Result<()> {
    in_namespace("istio-weights-", |client, ns| async move {
        let api = virtual_services(&client, &ns);
        let original = create(&api, user_virtual_service("web", host_split())).await?;
        let router = IstioRouter::new(client.clone(), host_config(&ns));

        for weight in [10, 50, 0] {
            let vs = expect_weight(&router, &api, weight).await?;
            ensure!(
                users_part(&vs) == users_part(&original),
                "user fields changed at {weight}: {vs:#}"
            );
        }
        let settled = read(&api, "web").await?;
        router.apply(&desired(0)).await?;
        let again = read(&api, "web").await?;
        ensure!(
            again["metadata"]["resourceVersion"] == settled["metadata"]["resourceVersion"],
            "an apply that changes nothing must not write"
        );
        ensure!(
            again["spec"] == original["spec"],
            "back at 0 the spec is exactly the user's: {again:#}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn header_and_mirror_routes_are_added_on_top_and_removed() -> Result<()> {
    in_namespace("istio-managed-", |client, ns| async move {
        let api = virtual_services(&client, &ns);
        let original = create(&api, user_virtual_service("web", host_split())).await?;
        let router = IstioRouter::new(client.clone(), host_config(&ns));
        let both = DesiredTraffic {
            header_routes: vec![header_route()],
            mirror_routes: vec![mirror_route()],
            ..desired(20)
        };
        router.apply(&both).await?;
        let observed = router.observe().await?;
        let vs = read(&api, "web").await?;
        ensure!(observed.matches(&both), "observed {observed:?}; {vs:#}");
        ensure!(
            http_names(&vs) == ["header-1", "mirror-1", "primary", "admin"],
            "order: {vs:#}"
        );
        ensure!(
            vs["spec"]["http"][0]["route"][0]["destination"]["host"] == CANARY,
            "{vs:#}"
        );
        ensure!(vs["spec"]["http"][1]["mirror"]["host"] == CANARY, "{vs:#}");
        ensure!(
            vs["spec"]["http"][1]["mirrorPercentage"]["value"] == 25,
            "{vs:#}"
        );
        ensure!(
            weights_of(&vs, 1, CANARY, STABLE)? == (20, 80),
            "mirror route keeps the split: {vs:#}"
        );
        ensure!(
            users_part(&vs) == users_part(&original),
            "user fields changed: {vs:#}"
        );

        router.reset().await?;
        let vs = read(&api, "web").await?;
        ensure!(
            vs["spec"] == original["spec"],
            "reset restores the user's spec exactly: {vs:#}"
        );
        ensure!(
            router
                .observe()
                .await?
                .matches(&DesiredTraffic::all_stable())
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn subsets_are_labelled_and_the_subset_split_moves() -> Result<()> {
    in_namespace("istio-subsets-", |client, ns| async move {
        let vs_api = virtual_services(&client, &ns);
        let dr_api = destination_rules(&client, &ns);
        let split = vec![
            entry("web", Some("stable"), 100),
            entry("web", Some("canary"), 0),
        ];
        create(&vs_api, user_virtual_service("web", split)).await?;
        let original_rule = create(&dr_api, user_destination_rule()).await?;
        let router = IstioRouter::new(client.clone(), subset_config(&ns));
        let hashes = SubsetHashes {
            stable: "6f7d8c".to_owned(),
            canary: "9b8a7c".to_owned(),
        };
        let wanted = DesiredTraffic {
            subsets: Some(hashes.clone()),
            ..desired(30)
        };
        router.apply(&wanted).await?;

        let observed = router.observe().await?;
        ensure!(
            observed.matches(&wanted) && observed.subsets == Some(hashes),
            "observed {observed:?}"
        );
        let vs = read(&vs_api, "web").await?;
        ensure!(
            weights_of(&vs, 0, "canary", "stable")? == (30, 70),
            "{vs:#}"
        );
        let rule = read(&dr_api, "web").await?;
        let mut expected = original_rule["spec"].clone();
        expected["subsets"][0]["labels"]["rollouts-pod-template-hash"] = json!("6f7d8c");
        expected["subsets"][1]["labels"]["rollouts-pod-template-hash"] = json!("9b8a7c");
        ensure!(
            rule["spec"] == expected,
            "only the two hash labels change: {rule:#}"
        );
        ensure!(rule["metadata"]["annotations"] == original_rule["metadata"]["annotations"]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn several_virtual_services_and_a_tls_route_move_together() -> Result<()> {
    in_namespace("istio-multi-", |client, ns| async move {
    let api = virtual_services(&client, &ns);
    create(&api, user_virtual_service("web", host_split())).await?;
    let mut tls = user_virtual_service("web-tls", host_split());
    tls["spec"]["tls"] = json!([
        { "match": [{ "port": 443, "sniHosts": ["web.example.com"] }], "route": [entry(CANARY, None, 0), entry(STABLE, None, 100)] },
        { "match": [{ "port": 8443, "sniHosts": ["other.example.com"] }], "route": [entry("other", None, 100)] },
    ]);
    create(&api, tls).await?;
    let mut config = host_config(&ns);
    config.virtual_services.push(VirtualServiceRef {
        name: format!("{ns}/web-tls"),
        tls_routes: vec![TlsRouteRef { port: Some(443), sni_hosts: vec!["web.example.com".to_owned()] }],
        ..Default::default()
    });
    let router = IstioRouter::new(client.clone(), config);
    router.apply(&desired(40)).await?;
    ensure!(router.observe().await?.canary_weight == Some(40));
    let tls = read(&api, "web-tls").await?;
    ensure!(tls["spec"]["tls"][0]["route"][0]["weight"] == 40 && tls["spec"]["tls"][0]["route"][1]["weight"] == 60, "{tls:#}");
    ensure!(tls["spec"]["tls"][1]["route"][0]["weight"] == 100, "unselected tls route untouched: {tls:#}");
    ensure!(weights_of(&tls, 0, CANARY, STABLE)? == (0, 100), "http routes of web-tls not selected: {tls:#}");
    Ok(())
    })
    .await
}

#[tokio::test]
async fn a_stale_patch_is_refused_and_the_other_writer_is_not_overwritten() -> Result<()> {
    in_namespace("istio-conflict-", |client, ns| async move {
        let api = virtual_services(&client, &ns);
        create(&api, user_virtual_service("web", host_split())).await?;
        let config = host_config(&ns);
        let vs_ref = &config.virtual_services[0];
        let handle = ObjectHandle {
            api: api.clone(),
            name: "web".to_owned(),
            label: format!("VirtualService {ns}/web"),
        };

        // Sluice reads and renders...
        let old = handle.get().await?;
        let stale = virtual_service::render(&config, vs_ref, &old, &desired(30))?;
        // ...then a person edits the weights and a timeout with kubectl...
        let mut edited = old["spec"]["http"].clone();
        edited[0]["route"] = json!([entry(STABLE, None, 95), entry(CANARY, None, 5)]);
        edited[1]["timeout"] = json!("45s");
        let merge = Patch::Merge(json!({ "spec": { "http": edited } }));
        api.patch("web", &PatchParams::default(), &merge).await?;
        // ...and Sluice's write, rendered from the old copy, must fail rather than overwrite.
        match handle.patch(&stale).await {
            Err(TrafficError::Conflict(object)) => ensure!(object.contains("web"), "{object}"),
            other => bail!("expected a Conflict, got {other:?}"),
        }
        let vs = read(&api, "web").await?;
        ensure!(
            weights_of(&vs, 0, CANARY, STABLE)? == (5, 95),
            "their weights stand: {vs:#}"
        );

        // A real apply re-reads and succeeds, keeping their unrelated edit.
        let router = IstioRouter::new(client.clone(), config.clone());
        router.apply(&desired(30)).await?;
        let vs = read(&api, "web").await?;
        ensure!(weights_of(&vs, 0, CANARY, STABLE)? == (30, 70), "{vs:#}");
        ensure!(vs["spec"]["http"][1]["timeout"] == "45s", "{vs:#}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn missing_objects_routes_and_subsets_are_invalid_references() -> Result<()> {
    in_namespace("istio-missing-", |client, ns| async move {
        let router = IstioRouter::new(client.clone(), subset_config(&ns));
        invalid_reference(
            router.observe().await,
            &format!("DestinationRule {ns}/web not found"),
        )?;
        let host_router = IstioRouter::new(client.clone(), host_config(&ns));
        invalid_reference(
            host_router.apply(&desired(10)).await,
            &format!("VirtualService {ns}/web not found"),
        )?;

        create(
            &virtual_services(&client, &ns),
            user_virtual_service("web", host_split()),
        )
        .await?;
        let mut wrong_route = host_config(&ns);
        wrong_route.virtual_services[0].http_routes = vec!["missing".to_owned()];
        let wrong_route = IstioRouter::new(client.clone(), wrong_route);
        invalid_reference(
            wrong_route.apply(&desired(10)).await,
            &format!("VirtualService {ns}/web has no http route named \"missing\""),
        )?;

        let mut rule = user_destination_rule();
        rule["spec"]["subsets"] = json!([{ "name": "stable" }]);
        create(&destination_rules(&client, &ns), rule).await?;
        let hashes = SubsetHashes {
            stable: "a".to_owned(),
            canary: "b".to_owned(),
        };
        let wanted = DesiredTraffic {
            subsets: Some(hashes),
            ..desired(0)
        };
        invalid_reference(
            router.apply(&wanted).await,
            &format!("DestinationRule {ns}/web has no subset named \"canary\""),
        )?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn managed_fields_show_sluice_owning_what_it_wrote() -> Result<()> {
    in_namespace("istio-fields-", |client, ns| async move {
        let api = virtual_services(&client, &ns);
        create(&api, user_virtual_service("web", host_split())).await?;
        let router = IstioRouter::new(client.clone(), host_config(&ns));
        router.apply(&desired(10)).await?;
        let vs = read(&api, "web").await?;
        let entries = vs["metadata"]["managedFields"]
            .as_array()
            .context("managedFields")?;
        let sluice = entries
            .iter()
            .find(|e| e["manager"] == FIELD_MANAGER && e["operation"] == "Update")
            .with_context(|| format!("no managedFields entry for {FIELD_MANAGER}: {entries:#?}"))?;
        // Istio's `http` and `route` lists have no list-type keys, so the API server tracks them
        // as atomic: the finest field it can attribute to Sluice is `spec.http`.
        let owned = &sluice["fieldsV1"]["f:spec"];
        ensure!(
            owned.get("f:http").is_some(),
            "sluice owns spec.http (holding the weights): {sluice:#}"
        );
        ensure!(
            owned.get("f:hosts").is_none() && owned.get("f:gateways").is_none(),
            "{sluice:#}"
        );
        Ok(())
    })
    .await
}
