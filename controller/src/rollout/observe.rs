//! The observe stage: gathers what the planner needs from the caches and the traffic router.
//!
//! ReplicaSets come from the reflector store (no API call); the two Services are read with a
//! GET each (Sluice watches no Services, so it needs no cluster-wide list permission on them);
//! the weights are read back from the mesh through the router.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::reflector::Store;

use super::model::{Observed, Persisted, ReplicaSetView, RunPhase, RunStatus};
use crate::replicaset::{self, HASH_LABEL};
use crate::traffic::{TrafficError, TrafficRouter};

/// Why observing failed. `category()` is bounded.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading Service {name}: {source}")]
    Service { name: String, source: kube::Error },
    #[error("Service {0} does not exist")]
    MissingService(String),
    #[error("reading traffic back: {0}")]
    Traffic(#[from] TrafficError),
}

impl ObserveError {
    pub fn category(&self) -> &'static str {
        match self {
            ObserveError::Service { .. } => "ApiError",
            ObserveError::MissingService(_) => "InvalidReference",
            ObserveError::Traffic(e) => e.category(),
        }
    }

    /// True when the user must fix something (a missing object), not a transient failure.
    pub fn is_invalid_reference(&self) -> bool {
        self.category() == "InvalidReference"
    }
}

/// The Services whose selectors Sluice manages for one Rollout.
pub struct ServiceNames<'a> {
    pub canary: Option<&'a str>,
    pub stable: Option<&'a str>,
}

/// ReplicaSets controlled by the Rollout with `uid`, from the cache.
pub fn owned_replica_sets(
    store: &Store<ReplicaSet>,
    namespace: &str,
    uid: &str,
) -> Vec<ReplicaSetView> {
    let mut views: Vec<ReplicaSetView> = store
        .state()
        .iter()
        .filter(|rs| rs.metadata.namespace.as_deref() == Some(namespace))
        .filter(|rs| replicaset::is_owned_by(rs, uid))
        .filter_map(|rs| replicaset::view(rs))
        .collect();
    views.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| a.name.cmp(&b.name))
    });
    views
}

/// Fills an [`Observed`] for one Rollout.
pub async fn observe<R: TrafficRouter>(
    client: &kube::Client,
    namespace: &str,
    replica_sets: Vec<ReplicaSetView>,
    services: ServiceNames<'_>,
    router: Option<&R>,
    persisted: Persisted,
    analysis_runs: Vec<RunStatus>,
) -> Result<Observed, ObserveError> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let canary_service_hash = selector_hash(&api, services.canary).await?;
    let stable_service_hash = selector_hash(&api, services.stable).await?;
    let traffic = match router {
        Some(router) => Some(router.observe().await?),
        None => None,
    };
    Ok(Observed {
        replica_sets,
        traffic,
        canary_service_hash,
        stable_service_hash,
        persisted,
        analysis_runs,
    })
}

async fn selector_hash(
    api: &Api<Service>,
    name: Option<&str>,
) -> Result<Option<String>, ObserveError> {
    let Some(name) = name else { return Ok(None) };
    let service = api
        .get_opt(name)
        .await
        .map_err(|source| ObserveError::Service {
            name: name.to_owned(),
            source,
        })?
        .ok_or_else(|| ObserveError::MissingService(name.to_owned()))?;
    Ok(service
        .spec
        .and_then(|s| s.selector)
        .and_then(|mut s| s.remove(HASH_LABEL)))
}

/// AnalysisRuns controlled by the Rollout with `uid`, from the cache (read as dynamic objects so
/// one undecodable run cannot hide the others).
pub fn owned_analysis_runs(
    store: &Store<kube::api::DynamicObject>,
    namespace: &str,
    uid: &str,
) -> Vec<RunStatus> {
    store
        .state()
        .iter()
        .filter(|o| o.metadata.namespace.as_deref() == Some(namespace))
        .filter(|o| {
            o.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == uid && r.controller == Some(true))
        })
        .filter_map(|o| {
            let status = o.data.get("status");
            let text = |field: &str| {
                status
                    .and_then(|s| s.get(field))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            Some(RunStatus {
                name: o.metadata.name.clone()?,
                phase: run_phase(&text("phase")),
                message: text("message"),
            })
        })
        .collect()
}

/// A run phase by its API name; anything unknown counts as still running.
pub fn run_phase(phase: &str) -> RunPhase {
    match phase {
        "Successful" => RunPhase::Successful,
        "Failed" => RunPhase::Failed,
        "Error" => RunPhase::Error,
        "Inconclusive" => RunPhase::Inconclusive,
        "Running" => RunPhase::Running,
        _ => RunPhase::Pending,
    }
}
