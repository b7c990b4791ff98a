//! One merged watch on everything a release touches: the Rollout, its AnalysisRuns, the
//! VirtualService and the ReplicaSets, feeding a [`World`]. Waiting means waiting for the next
//! event (never sleeping and looking again), bounded by a deadline.
//!
//! Guarantees: every event (deletions included) is applied to the world before [`Watch::next`]
//! returns, with the instant it arrived; watch errors are retried with kube's default backoff
//! and logged, never ending the stream (the merging is [`crate::watch::Merged`]'s).

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use sluice_crds::{AnalysisRun, Rollout};
use tokio::time::Instant;

pub use crate::watch::WaitError;
use crate::watch::{HASH_LABEL, Merged, ROLLOUT_LABEL};

use super::manifests::Target;
use super::world::{Update, World};

/// The merged watch and the world it keeps.
pub struct Watch {
    updates: Merged<Update>,
    pub world: World,
}

/// The VirtualService API resource (networking.istio.io/v1).
pub fn virtual_service_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
    ApiResource::from_gvk_with_plural(&gvk, "virtualservices")
}

impl Watch {
    /// Starts watching `target`'s objects in `namespace`. The first events are the current
    /// state of each (an initial list).
    pub fn start(client: &kube::Client, namespace: &str, target: &Target) -> Self {
        let by_name =
            |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
        let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace);
        let runs: Api<AnalysisRun> = Api::namespaced(client.clone(), namespace);
        let vs: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &virtual_service_resource());
        let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
        let run_labels = format!("{ROLLOUT_LABEL}={}", target.rollout);
        let mut updates = Merged::default();
        updates.watch(rollouts, by_name(&target.rollout), |r| {
            Update::Rollout(Box::new(r))
        });
        updates.watch(runs, watcher::Config::default().labels(&run_labels), |r| {
            Update::Run(Box::new(r))
        });
        updates.watch(vs, by_name(&target.virtual_service), |v| {
            Update::VirtualService(Box::new(v))
        });
        updates.watch(
            replica_sets,
            watcher::Config::default().labels(HASH_LABEL),
            |rs| Update::ReplicaSet(Box::new(rs)),
        );
        Self {
            updates,
            world: World::new(target.clone()),
        }
    }

    /// Waits for the next event, applies it, and returns when it arrived.
    pub async fn next(&mut self, deadline: Instant) -> Result<Instant, WaitError> {
        let update = self.updates.next(deadline).await?;
        self.world.apply(update);
        Ok(Instant::now())
    }

    /// Waits until `done` returns a value for the world, calling `seen` after every event.
    /// `done` is asked first about the world as it is.
    pub async fn until<T>(
        &mut self,
        timeout: Duration,
        mut seen: impl FnMut(&World, Instant),
        mut done: impl FnMut(&World) -> Option<T>,
    ) -> Result<T, WaitError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = done(&self.world) {
                return Ok(value);
            }
            let at = self.next(deadline).await?;
            seen(&self.world, at);
        }
    }
}
