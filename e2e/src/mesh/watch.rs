//! Reflector caches of the four kinds the simulator reads (VirtualServices, DestinationRules,
//! Services, Pods), namespace-scoped or cluster-wide, and the wait for their first list.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use super::snapshot::Objects;
use super::world::World;

const ISTIO_GROUP: &str = "networking.istio.io";
const ISTIO_VERSION: &str = "v1";

/// The last watch error of one kind, kept so a sync timeout can say why.
type LastError = Arc<Mutex<Option<String>>>;

/// One watched kind: its cache, its reflector task, and the last error it hit.
struct Watched<K: Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    kind: &'static str,
    store: Store<K>,
    last_error: LastError,
}

/// The caches, kept current by background tasks until the value is dropped.
pub struct Caches {
    virtual_services: Watched<DynamicObject>,
    destination_rules: Watched<DynamicObject>,
    services: Watched<Service>,
    pods: Watched<Pod>,
    tasks: Vec<JoinHandle<()>>,
}

/// A kind that did not list within the sync timeout.
#[derive(Debug)]
pub struct NotSynced {
    pub kind: &'static str,
    pub last_error: Option<String>,
}

impl Caches {
    /// Starts watching `namespace` (or all namespaces).
    pub fn start(client: &Client, namespace: Option<&str>) -> Self {
        let mut tasks = Vec::new();
        let vs = istio_resource("VirtualService", "virtualservices");
        let dr = istio_resource("DestinationRule", "destinationrules");
        let virtual_services = watch(
            "VirtualServices",
            dynamic_api(client, namespace, &vs),
            reflector::store::Writer::new(vs),
            |_| {},
            &mut tasks,
        );
        let destination_rules = watch(
            "DestinationRules",
            dynamic_api(client, namespace, &dr),
            reflector::store::Writer::new(dr),
            |_| {},
            &mut tasks,
        );
        let services = watch(
            "Services",
            api(client, namespace),
            Default::default(),
            |_| {},
            &mut tasks,
        );
        // Only metadata and status of pods are read; dropping the rest keeps a large cluster's
        // pod cache small.
        let pods = watch(
            "Pods",
            api(client, namespace),
            Default::default(),
            slim_pod,
            &mut tasks,
        );
        Self {
            virtual_services,
            destination_rules,
            services,
            pods,
            tasks,
        }
    }

    /// Waits until every kind has been listed once.
    ///
    /// Fails with the first kind still missing after `timeout` and its last watch error (a
    /// missing Istio CRD or a forbidden list shows up here, by name).
    pub async fn wait_synced(&self, timeout: Duration) -> Result<(), NotSynced> {
        let deadline = tokio::time::Instant::now() + timeout;
        synced(&self.virtual_services, deadline).await?;
        synced(&self.destination_rules, deadline).await?;
        synced(&self.services, deadline).await?;
        synced(&self.pods, deadline).await
    }

    /// The world as the caches see it now.
    pub fn world(&self, default_rps: f64) -> World {
        Objects {
            virtual_services: &self.virtual_services.store.state(),
            destination_rules: &self.destination_rules.store.state(),
            services: &self.services.store.state(),
            pods: &self.pods.store.state(),
        }
        .world(default_rps)
    }
}

impl Drop for Caches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn istio_resource(kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk(ISTIO_GROUP, ISTIO_VERSION, kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

fn dynamic_api(
    client: &Client,
    namespace: Option<&str>,
    resource: &ApiResource,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn slim_pod(pod: &mut Pod) {
    pod.spec = None;
    pod.metadata.managed_fields = None;
}

/// Spawns a reflector for `api` into `writer`; watch errors are retried with the default
/// backoff (they are normal during API server restarts) and remembered for diagnostics.
fn watch<K>(
    kind: &'static str,
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    modify: impl FnMut(&mut K) + Send + 'static,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Watched<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    let store = writer.as_reader();
    let last_error = LastError::default();
    let errors = last_error.clone();
    // The default list semantic is a consistent read (not the API server's possibly lagging
    // watch cache), so whoever saw a pod ready before `run` returned sees it in the first tick.
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(modify)
        .reflect(writer);
    tasks.push(tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(error) = event {
                tracing::warn!(kind, %error, "watch failed; retrying");
                *errors.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
            }
        }
    }));
    Watched {
        kind,
        store,
        last_error,
    }
}

async fn synced<K>(watched: &Watched<K>, deadline: tokio::time::Instant) -> Result<(), NotSynced>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let ready = tokio::time::timeout_at(deadline, watched.store.wait_until_ready()).await;
    match ready {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(NotSynced {
            kind: watched.kind,
            last_error: watched
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }),
    }
}
