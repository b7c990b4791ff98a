//! The local control plane that `e2e/cluster up` starts is real and complete enough for Sluice:
//! Deployments get Ready pods (controller-manager, scheduler and kwok all work), Prometheus
//! scrapes and answers queries, and the Istio routing CRDs that Sluice edits are served.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::runtime::wait::conditions;
use kube::{Api, Client};
use serde_json::Value;

const REPLICAS: i32 = 3;

#[tokio::test]
async fn a_deployment_gets_all_its_pods_ready_on_kwok_nodes() -> Result<()> {
    let client = sluice_tests::client().await?;
    sluice_tests::with_namespace(&client, "it-cluster-", |ns| {
        deployment_becomes_ready(client.clone(), ns)
    })
    .await
}

async fn deployment_becomes_ready(client: Client, ns: String) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &web_deployment())
        .await?;

    let ready = |d: Option<&Deployment>| {
        let Some(d) = d else { return false };
        let status = d.status.as_ref();
        status.and_then(|s| s.observed_generation) >= d.metadata.generation
            && status.and_then(|s| s.ready_replicas) == Some(REPLICAS)
            && status.and_then(|s| s.updated_replicas) == Some(REPLICAS)
    };
    sluice_tests::wait_for_object(
        deployments,
        "web",
        Duration::from_secs(60),
        "web has 3 ready replicas",
        ready,
    )
    .await?;

    // The Deployment's own count could only be wrong by a controller bug; the pods prove that
    // the scheduler placed each one and kwok (as the kubelet) marked it Ready.
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let pods = pods
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items;
    ensure!(
        pods.len() == REPLICAS as usize,
        "expected {REPLICAS} pods, found {}",
        pods.len()
    );
    for pod in &pods {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        ensure!(
            node.is_some_and(|n| !n.is_empty()),
            "pod {name} was never scheduled"
        );
        let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
        let is_ready = conditions
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ensure!(
            is_ready,
            "pod {name} on {node:?} is not Ready: {:#?}",
            pod.status
        );
    }
    Ok(())
}

/// A three-replica Deployment whose image is never pulled: kwok only pretends to run it.
fn web_deployment() -> Deployment {
    let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(REPLICAS),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "web".into(),
                        image: Some("registry.invalid/web:1".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn prometheus_answers_a_query_for_up() -> Result<()> {
    let url = format!("{}/api/v1/query", sluice_tests::prometheus_url()?);
    let http = reqwest::Client::new();
    // Prometheus scrapes itself every second; right after `up` the first scrape may not be in.
    let series = sluice_tests::eventually(
        Duration::from_secs(30),
        "`up` has a series equal to 1",
        || async {
            let body: Value = http
                .get(&url)
                .query(&[("query", "up")])
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            ensure!(body["status"] == "success", "query failed: {body}");
            let result = body["data"]["result"]
                .as_array()
                .context("no data.result in the answer")?;
            let up: Vec<Value> = result
                .iter()
                .filter(|s| s["value"][1] == "1")
                .cloned()
                .collect();
            Ok((!up.is_empty()).then_some(up))
        },
    )
    .await?;
    ensure!(
        series.iter().any(|s| s["metric"]["job"] == "prometheus"),
        "Prometheus does not scrape itself: {series:?}"
    );
    Ok(())
}

#[tokio::test]
async fn istio_virtualservice_and_destinationrule_crds_are_established() -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(sluice_tests::client().await?);
    for name in [
        "virtualservices.networking.istio.io",
        "destinationrules.networking.istio.io",
    ] {
        let crd = sluice_tests::wait_for_object(
            crds.clone(),
            name,
            Duration::from_secs(30),
            "CRD is Established",
            conditions::is_crd_established(),
        )
        .await?;
        // Sluice writes the v1 API; the CRD must serve it, not only the older beta versions.
        let serves_v1 = crd.spec.versions.iter().any(|v| v.name == "v1" && v.served);
        ensure!(serves_v1, "{name} does not serve networking.istio.io/v1");
    }
    Ok(())
}
