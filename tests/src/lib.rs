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

const HOW_TO_START: &str =
    "start the local cluster first: `e2e/cluster up && source .cache/run/cluster.env` (or run e2e/test-all)";

/// A client for the local cluster named by `KUBECONFIG`.
pub async fn client() -> Result<kube::Client> {
    let path = std::env::var("KUBECONFIG").with_context(|| format!("KUBECONFIG is not set; {HOW_TO_START}"))?;
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
