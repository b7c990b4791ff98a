//! One merged watch on everything a release touches: the Rollout, its AnalysisRuns, the
//! VirtualService and the ReplicaSets, feeding a [`World`]. Waiting means waiting for the next
//! event (never sleeping and looking again), bounded by a deadline.
//!
//! Guarantees: every event (deletions included) is applied to the world before [`Watch::next`]
//! returns, with the instant it arrived; watch errors are retried with kube's default backoff and logged, never
//! ending the stream.

use std::time::Duration;

use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use sluice_crds::{AnalysisRun, Rollout};
use tokio::time::Instant;

use super::manifests::Target;
use super::world::{HASH_LABEL, ROLLOUT_LABEL, Update, World};

/// Why a wait ended without an event.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("nothing changed before the deadline")]
    Timeout,
    #[error("the watch streams ended")]
    Ended,
}

/// The merged watch and the world it keeps.
pub struct Watch {
    updates: SelectAll<BoxStream<'static, Result<Update, watcher::Error>>>,
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
        let mut updates = SelectAll::new();
        updates.push(stream(rollouts, by_name(&target.rollout), |r| {
            Update::Rollout(Box::new(r))
        }));
        updates.push(stream(
            runs,
            watcher::Config::default().labels(&run_labels),
            |r| Update::Run(Box::new(r)),
        ));
        updates.push(stream(vs, by_name(&target.virtual_service), |v| {
            Update::VirtualService(Box::new(v))
        }));
        updates.push(stream(
            replica_sets,
            watcher::Config::default().labels(HASH_LABEL),
            |rs| Update::ReplicaSet(Box::new(rs)),
        ));
        Self {
            updates,
            world: World::new(target.clone()),
        }
    }

    /// Waits for the next event, applies it, and returns when it arrived.
    pub async fn next(&mut self, deadline: Instant) -> Result<Instant, WaitError> {
        loop {
            let next = tokio::time::timeout_at(deadline, self.updates.next());
            match next.await {
                Err(_) => return Err(WaitError::Timeout),
                Ok(None) => return Err(WaitError::Ended),
                Ok(Some(Ok(update))) => {
                    self.world.apply(update);
                    return Ok(Instant::now());
                }
                Ok(Some(Err(error))) => {
                    tracing::warn!(%error, "watch error (retrying)");
                }
            }
        }
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

fn stream<K>(
    api: Api<K>,
    config: watcher::Config,
    wrap: fn(K) -> Update,
) -> BoxStream<'static, Result<Update, watcher::Error>>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher(api, config)
        .default_backoff()
        .try_filter_map(move |event| {
            let update = match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => Some(wrap(o)),
                watcher::Event::Delete(o) => Some(Update::Deleted(Box::new(wrap(o)))),
                watcher::Event::Init | watcher::Event::InitDone => None,
            };
            std::future::ready(Ok(update))
        })
        .boxed()
}
