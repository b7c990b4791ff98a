//! Deletion of a Rollout: traffic goes back to stable before the Rollout disappears.
//!
//! Sluice puts the finalizer `sluice.dev/traffic` on every Rollout it manages. When the Rollout
//! is deleted, the ReplicaSets are garbage-collected only after the Rollout itself is gone, so
//! while the finalizer runs the stable pods still serve: the router resets (weight 0 to canary,
//! managed routes removed) and only then is the finalizer removed.
//!
//! Caveat: a Rollout deleted while no controller runs stays `Terminating` until one runs (or the
//! finalizer is removed by hand); that is the price of never leaving a VirtualService pointing
//! at pods that are about to vanish.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use sluice_crds::Rollout;

use super::validate::validate;
use crate::FIELD_MANAGER;
use crate::traffic::istio::IstioRouter;
use crate::traffic::{TrafficError, TrafficRouter};

/// The finalizer Sluice owns on Rollouts.
pub const FINALIZER: &str = "sluice.dev/traffic";

/// Adds the finalizer unless present. The JSON patch tests the list it read, so a concurrent
/// change of `metadata.finalizers` by someone else is a conflict, never an overwrite.
pub async fn ensure(api: &Api<Rollout>, rollout: &Rollout) -> Result<(), kube::Error> {
    if rollout.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let patch = match &rollout.metadata.finalizers {
        None => json!([{"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}]),
        Some(list) => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": list},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ]),
    };
    patch_json(api, rollout, patch).await
}

/// Resets traffic, then removes the finalizer. With an invalid spec there is no router to
/// reset, and with a reference to a missing mesh object nothing to reset: the finalizer is
/// removed at once.
pub async fn finalize(
    client: &kube::Client,
    api: &Api<Rollout>,
    rollout: &Rollout,
) -> Result<(), FinalizeError> {
    let Some(index) = rollout.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    if let Some(istio) = validate(rollout).ok().and_then(|v| v.istio) {
        match IstioRouter::new(client.clone(), istio).reset().await {
            Ok(()) => {}
            // The spec names a VirtualService, route, Service or subset that does not exist:
            // there is nothing Sluice can find to reset, and no retry will find it. Keeping the
            // finalizer would leave the Rollout Terminating for ever.
            Err(TrafficError::InvalidReference(reason)) => {
                tracing::warn!(rollout = %rollout.name_any(), %reason, "deleting a Rollout whose traffic cannot be reset");
            }
            Err(e) => return Err(FinalizeError::Traffic(e)),
        }
    }
    let patch = json!([
        {"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": FINALIZER},
        {"op": "remove", "path": format!("/metadata/finalizers/{index}")},
    ]);
    patch_json(api, rollout, patch)
        .await
        .map_err(FinalizeError::Api)
}

async fn patch_json(
    api: &Api<Rollout>,
    rollout: &Rollout,
    patch: serde_json::Value,
) -> Result<(), kube::Error> {
    // Deserialised straight into the JSON-patch type kube expects (it may differ in version
    // from the workspace's json-patch).
    let patch = serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(&rollout.name_any(), &pp, &Patch::<()>::Json(patch))
        .await
        .map(drop)
}

/// Why finalization did not finish (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error("resetting traffic before deletion: {0}")]
    Traffic(crate::traffic::TrafficError),
    #[error("removing the finalizer: {0}")]
    Api(kube::Error),
}
