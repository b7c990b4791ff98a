//! Getting the namespace ready for a run of the demo: the namespace exists, and what an earlier
//! run left is deleted and gone, so the manifests apply afresh: the Rollout with its
//! ReplicaSets and AnalysisRuns, and the VirtualService and Services whose weights and
//! selectors Sluice took over (re-applying those would conflict with the field manager
//! `sluice`).
//!
//! Guarantees: every wait watches for the deletion (bounded by a timeout); the Rollout is
//! deleted in the foreground, so its ReplicaSets and runs are gone before it is, and its
//! finalizer is left to the running controller (traffic back to stable first).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Resource, ResourceExt};
use serde_json::json;
use sluice_crds::Rollout;

use super::manifests::{FIELD_MANAGER, Target, brief};
use super::watch::virtual_service_resource;

/// Why the namespace could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{what}: {error}")]
    Api { what: String, error: String },
    #[error("{0}")]
    Stuck(String),
}

fn api_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> SetupError {
    let what = what.into();
    move |error| SetupError::Api {
        what,
        error: brief(&error),
    }
}

/// Creates `namespace` if it is missing (server-side apply).
pub async fn ensure_namespace(client: &kube::Client, namespace: &str) -> Result<(), SetupError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    api.patch(
        namespace,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Apply(&object),
    )
    .await
    .map_err(api_error(format!("creating namespace {namespace}")))?;
    Ok(())
}

/// Deletes what an earlier run left; returns whether there was anything.
pub async fn clear_previous_run(
    client: &kube::Client,
    namespace: &str,
    target: &Target,
    timeout: Duration,
) -> Result<bool, SetupError> {
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace);
    let vs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &virtual_service_resource());
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let mut found = delete_and_wait(&rollouts, &target.rollout, timeout).await?;
    found |= delete_and_wait(&vs, &target.virtual_service, timeout).await?;
    for service in [&target.stable_service, &target.canary_service] {
        found |= delete_and_wait(&services, service, timeout).await?;
    }
    Ok(found)
}

/// Deletes `name` in the foreground and waits until it is gone; `false` if it did not exist.
async fn delete_and_wait<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<bool, SetupError>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let what = format!("deleting {name}");
    let Some(existing) = api.get_opt(name).await.map_err(api_error(&what))? else {
        return Ok(false);
    };
    let uid = existing.uid().unwrap_or_default();
    match api.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(true),
        Err(e) => return Err(api_error(what)(e)),
    }
    let gone = await_condition(api.clone(), name, conditions::is_deleted(&uid));
    match tokio::time::timeout(timeout, gone).await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) => Err(SetupError::Stuck(format!("watching {name} go: {e}"))),
        Err(_) => Err(SetupError::Stuck(format!(
            "{name} was not gone {timeout:?} after its deletion (is the controller running? it \
             removes the Rollout's finalizer)"
        ))),
    }
}
