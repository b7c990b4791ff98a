//! The plugin's I/O with the API server: building the client from the kubeconfig, reading a
//! Rollout with what it owns, and writing the user's requests.
//!
//! Writes use the field manager `kubectl-sluice` (so `managedFields` shows who promoted) and
//! carry the resourceVersion they were decided on: a request decided on a stale Rollout fails
//! with a conflict instead of, say, promoting past a pause the controller reached meanwhile.

use std::ffi::OsString;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};
use sluice_crds::{AnalysisRun, Rollout};

use super::CliError;
use super::snapshot::{Snapshot, replica_set_selector, run_selector};

/// Field manager of every write the plugin makes.
pub const FIELD_MANAGER: &str = "kubectl-sluice";

/// A client and the namespace commands act in.
#[derive(Clone)]
pub struct Target {
    pub client: Client,
    pub namespace: String,
}

/// Builds the client from `kubeconfig` (`:`-separated files, merged as kubectl does) or, without
/// it, from the default kubeconfig or the in-cluster config.
pub async fn connect(
    kubeconfig: Option<OsString>,
    namespace: Option<String>,
) -> Result<Target, CliError> {
    let config = match kubeconfig.filter(|k| !k.is_empty()) {
        Some(paths) => from_files(&paths).await?,
        None => Config::infer()
            .await
            .map_err(|e| CliError::Connect(e.to_string()))?,
    };
    let namespace = namespace.unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| CliError::Connect(e.to_string()))?;
    Ok(Target { client, namespace })
}

async fn from_files(paths: &OsString) -> Result<Config, CliError> {
    let connect = |e: &dyn std::fmt::Display| CliError::Connect(e.to_string());
    let mut merged: Option<Kubeconfig> = None;
    for path in std::env::split_paths(paths) {
        let next = Kubeconfig::read_from(&path)
            .map_err(|e| connect(&format!("{}: {e}", path.display())))?;
        merged = Some(match merged {
            Some(kc) => kc.merge(next).map_err(|e| connect(&e))?,
            None => next,
        });
    }
    let kubeconfig = merged.ok_or_else(|| connect(&"no kubeconfig file given"))?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| connect(&e))
}

impl Target {
    pub fn rollouts(&self) -> Api<Rollout> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn replica_sets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn runs(&self) -> Api<AnalysisRun> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The message for a Rollout that does not exist.
    pub fn not_found(&self, name: &str) -> CliError {
        CliError::NotFound(format!(
            "rollout {name} not found in namespace {}",
            self.namespace
        ))
    }

    /// Reads the Rollout; a missing one is [`CliError::NotFound`].
    pub async fn rollout(&self, name: &str) -> Result<Rollout, CliError> {
        self.rollouts()
            .get_opt(name)
            .await
            .map_err(|e| CliError::kube(format!("reading rollout {name}"), e))?
            .ok_or_else(|| self.not_found(name))
    }

    /// The Rollout with the ReplicaSets and AnalysisRuns it owns.
    pub async fn snapshot(&self, name: &str) -> Result<Snapshot, CliError> {
        let rollout = self.rollout(name).await?;
        let sets = self
            .replica_sets()
            .list(&ListParams::default().labels(&replica_set_selector(&rollout)))
            .await
            .map_err(|e| CliError::kube("listing ReplicaSets", e))?;
        let runs = self
            .runs()
            .list(&ListParams::default().labels(&run_selector(name)))
            .await
            .map_err(|e| CliError::kube("listing AnalysisRuns", e))?;
        Ok(Snapshot::new(rollout, sets.items, runs.items))
    }

    /// Merge-patches the Rollout's `spec` (`status: false`) or `status` subresource, only if
    /// it is still at `resource_version`. Returns the patched Rollout.
    pub async fn patch(
        &self,
        name: &str,
        resource_version: Option<&str>,
        part: Part,
        value: &Value,
    ) -> Result<Rollout, kube::Error> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let body = match part {
            Part::Spec => {
                json!({ "metadata": { "resourceVersion": resource_version }, "spec": value })
            }
            Part::Status => {
                json!({ "metadata": { "resourceVersion": resource_version }, "status": value })
            }
        };
        let api = self.rollouts();
        match part {
            Part::Spec => api.patch(name, &params, &Patch::Merge(&body)).await,
            Part::Status => api.patch_status(name, &params, &Patch::Merge(&body)).await,
        }
    }

    /// Replaces `spec.template` (a JSON patch: a merge patch would keep labels and annotations
    /// the old template does not have), only if the Rollout is still at `resource_version`.
    pub async fn replace_template(
        &self,
        name: &str,
        resource_version: &str,
        template: &Value,
    ) -> Result<Rollout, kube::Error> {
        let ops = json!([
            { "op": "replace", "path": "/metadata/resourceVersion", "value": resource_version },
            { "op": "replace", "path": "/spec/template", "value": template },
        ]);
        // Decoded straight into the json-patch version kube's `Patch::Json` holds.
        let patch =
            Patch::Json::<()>(serde_json::from_value(ops).map_err(kube::Error::SerdeError)?);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        self.rollouts().patch(name, &params, &patch).await
    }
}

/// Which part of the Rollout a patch writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Spec,
    Status,
}

/// A write decided on an outdated Rollout (409 Conflict).
pub fn is_stale(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
