//! Shared harness for the integration tests in `tests/tests/`.
//!
//! The tests run against the real local control plane that `e2e/cluster up` starts (etcd,
//! kube-apiserver, controller-manager, scheduler, kwok, Prometheus). `e2e/test-all` starts it and
//! exports `KUBECONFIG` and `SLUICE_PROMETHEUS_URL`; running `cargo test` by hand needs the same
//! two variables (`source .cache/run/cluster.env` after `e2e/cluster up`).
//!
//! Guarantees: every helper fails loudly with a message that says how to start the cluster; no
//! test is ever skipped because the cluster is missing.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// Root of the repository (the workspace directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives one level below the workspace root")
        .to_path_buf()
}

const HOW_TO_START: &str = "start the local cluster first: `e2e/cluster up && source .cache/run/cluster.env` (or run e2e/test-all)";

/// A client for the local cluster named by `KUBECONFIG`.
pub async fn client() -> Result<kube::Client> {
    let path = std::env::var("KUBECONFIG")
        .with_context(|| format!("KUBECONFIG is not set; {HOW_TO_START}"))?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)
        .with_context(|| format!("cannot read kubeconfig {path}; {HOW_TO_START}"))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .with_context(|| format!("invalid kubeconfig {path}"))?;
    kube::Client::try_from(config).context("cannot build a Kubernetes client")
}

/// Base URL of the local Prometheus, e.g. `http://127.0.0.1:19090`.
pub fn prometheus_url() -> Result<String> {
    std::env::var("SLUICE_PROMETHEUS_URL")
        .with_context(|| format!("SLUICE_PROMETHEUS_URL is not set; {HOW_TO_START}"))
}

// ---------------------------------------------------------------------------------------------
// Waiting and per-test namespaces.

/// Waits until `cond` holds for the object `name`, by watching it (no polling).
///
/// Fails after `timeout` with `what` and the last state seen in the message, and when the object
/// is deleted while waiting.
pub async fn wait_for_object<K>(
    api: kube::Api<K>,
    name: &str,
    timeout: std::time::Duration,
    what: &str,
    cond: impl kube::runtime::wait::Condition<K>,
) -> Result<K>
where
    K: Clone + std::fmt::Debug + Send + serde::de::DeserializeOwned + kube::Resource + 'static,
{
    let watch = kube::runtime::wait::await_condition(api.clone(), name, cond);
    match tokio::time::timeout(timeout, watch).await {
        Ok(Ok(Some(object))) => Ok(object),
        Ok(Ok(None)) => anyhow::bail!("{what}: {name} was deleted while waiting"),
        Ok(Err(error)) => Err(error).with_context(|| format!("{what}: watching {name} failed")),
        Err(_) => {
            let last = api.get_opt(name).await.ok().flatten();
            anyhow::bail!("{what}: not true after {timeout:?}; last state of {name}: {last:#?}")
        }
    }
}

/// Waits (by watching the Events that `config` selects in `api`) for one that `found` accepts.
/// Fails after `timeout` with `what` in the message. An Event published before the watch began
/// counts: the watch lists what exists first.
pub async fn wait_for_event(
    api: kube::Api<k8s_openapi::api::events::v1::Event>,
    config: kube::runtime::watcher::Config,
    timeout: std::time::Duration,
    what: &str,
    found: impl Fn(&k8s_openapi::api::events::v1::Event) -> bool,
) -> Result<k8s_openapi::api::events::v1::Event> {
    use futures::TryStreamExt;
    use kube::runtime::WatchStreamExt;
    let events = kube::runtime::watcher(api, config)
        .applied_objects()
        .try_filter(|e| std::future::ready(found(e)));
    let mut events = Box::pin(events);
    match tokio::time::timeout(timeout, events.try_next()).await {
        Ok(Ok(Some(event))) => Ok(event),
        Ok(Ok(None)) => anyhow::bail!("{what}: the event watch ended"),
        Ok(Err(error)) => Err(error).with_context(|| format!("{what}: watching events failed")),
        Err(_) => anyhow::bail!("{what}: no such event after {timeout:?}"),
    }
}

/// Polls `probe` until it returns `Some`, for things that cannot be watched (HTTP endpoints).
///
/// A probe error does not end the wait (the endpoint may still be starting); the last error is
/// reported if `timeout` passes first.
pub async fn eventually<T, F, Fut>(
    timeout: std::time::Duration,
    what: &str,
    mut probe: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "condition not met".to_owned(),
            Err(error) => format!("{error:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{what}: not true after {timeout:?}; last attempt: {last}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Runs `body` in a fresh namespace `<prefix><random suffix>` and deletes the namespace afterwards,
/// whether `body` succeeded or not. The suffix comes from the apiserver (`generateName`), so
/// parallel tests and reruns never collide.
pub async fn with_namespace<T, F, Fut>(client: &kube::Client, prefix: &str, body: F) -> Result<T>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    use k8s_openapi::api::core::v1::Namespace;
    let namespaces: kube::Api<Namespace> = kube::Api::all(client.clone());
    let template = Namespace {
        metadata: kube::api::ObjectMeta {
            generate_name: Some(prefix.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = namespaces
        .create(&Default::default(), &template)
        .await
        .with_context(|| format!("cannot create a namespace {prefix}*"))?;
    let name = created
        .metadata
        .name
        .context("the apiserver returned a namespace without a name")?;
    let outcome = body(name.clone()).await;
    let deleted = namespaces.delete(&name, &Default::default()).await;
    let value = outcome.with_context(|| format!("in namespace {name}"))?;
    deleted.with_context(|| format!("cannot delete namespace {name}"))?;
    Ok(value)
}

pub mod analysis;
pub mod bluegreen;
pub mod controller;
pub mod dump;
pub mod fixtures;
pub mod history;
pub mod kubectl;
pub mod monitor;
pub mod scenario;
