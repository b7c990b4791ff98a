//! Wiring of `sluice controller`: caches, the Rollout and AnalysisRun controllers, HTTP
//! endpoints and leader election.
//!
//! Memory: the ReplicaSet cache holds only ReplicaSets carrying the pod-template-hash label, with
//! their pod templates and managed fields stripped (the controller builds ReplicaSets from the
//! Rollout's template and reads back only counts and annotations).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use prometheus_client::registry::Registry;

use crate::analysis_run::{self, AnalysisMetrics, analysis_run_resource};
use crate::context::{Backoff, Context, Superseded, rollout_resource};
use crate::http::{self, Endpoints};
use crate::leader::{Elector, Timing};
use crate::metrics::{Metrics, RolloutCollector};
use crate::replicaset::HASH_LABEL;
use crate::rollout::reconcile::{error_policy, reconcile, recorder};

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Watch only this namespace (tests, or a namespaced install); all namespaces when `None`.
    pub namespace: Option<String>,
    /// Serve `/metrics`, `/healthz`, `/readyz` here.
    pub http_addr: Option<SocketAddr>,
    /// Lease namespace and identity; `None` runs without leader election.
    pub leader: Option<LeaderConfig>,
    /// Rollouts reconciled at once.
    pub concurrency: u16,
}

#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub timing: Timing,
}

/// Runs until the process is told to stop, or until leadership is lost (then returns an error
/// so the process exits and no stale leader keeps writing).
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let analysis_metrics = AnalysisMetrics::register(&mut registry);
    let elector = config.leader.as_ref().map(|l| {
        Elector::new(
            client.clone(),
            &l.namespace,
            &l.lease_name,
            l.identity.clone(),
            l.timing.clone(),
        )
    });
    let resource = rollout_resource();
    let rollouts_api: Api<DynamicObject> = match config.namespace.as_deref() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let rollout_writer = reflector::store::Writer::new(resource.clone());
    let rollout_store = rollout_writer.as_reader();
    let rollout_stream = watcher(rollouts_api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|o: &mut DynamicObject| o.metadata.managed_fields = None)
        .reflect(rollout_writer)
        .applied_objects();
    registry.register_collector(Box::new(RolloutCollector {
        rollouts: rollout_store.clone(),
    }));
    let endpoints = Arc::new(Endpoints {
        registry,
        ready: false.into(),
    });
    if let Some(addr) = config.http_addr {
        let state = endpoints.clone();
        tokio::spawn(async move {
            if let Err(e) = http::serve(addr, state).await {
                tracing::error!(error = %e, %addr, "HTTP endpoints stopped");
            }
        });
    }
    if let Some(elector) = &elector {
        tracing::info!("waiting to acquire the leader Lease");
        elector.acquire().await;
        tracing::info!("acquired the leader Lease");
    }
    let (rs_store, rs_stream) = replica_set_cache(&client, config.namespace.as_deref());
    let (run_store, run_stream) = analysis_run_cache(&client, config.namespace.as_deref());
    let ctx = Arc::new(Context {
        client: client.clone(),
        replica_sets: rs_store,
        analysis_runs: run_store,
        recorder: recorder(client.clone()),
        metrics,
        backoff: Backoff::default(),
        superseded: Superseded::default(),
    });
    // In the same task as the Rollout controller (not spawned), so that stopping one stops both.
    let analysis_runs = analysis_run::controller(
        analysis_run::Context::new(client.clone(), ctx.recorder.clone(), analysis_metrics),
        config.namespace.as_deref(),
        config.concurrency,
    );
    // Ready once every cache has listed (a reconcile before that would plan on part of the
    // world; `pipeline` waits for the ReplicaSets for the same reason).
    let caches_listed = {
        let (rollouts, replica_sets, runs) = (
            rollout_store.clone(),
            ctx.replica_sets.clone(),
            ctx.analysis_runs.clone(),
        );
        let endpoints = endpoints.clone();
        async move {
            let listed = futures::future::try_join3(
                rollouts.wait_until_ready(),
                replica_sets.wait_until_ready(),
                runs.wait_until_ready(),
            )
            .await;
            // A dropped writer means the controller is stopping: never ready then.
            if listed.is_ok() {
                endpoints.ready.store(true, Ordering::Relaxed);
            }
        }
    };
    let controller = Controller::for_stream_with(rollout_stream, rollout_store, resource)
        .owns_stream(rs_stream)
        .owns_stream_with(run_stream, analysis_run_resource())
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        });
    let controller =
        futures::future::join3(controller, analysis_runs, caches_listed).map(|((), (), ())| ());
    match &elector {
        None => controller.await,
        Some(elector) => {
            tokio::select! {
                () = controller => elector.release().await,
                () = elector.run() => {
                    endpoints.ready.store(false, Ordering::Relaxed);
                    anyhow::bail!("lost the leader Lease; exiting so that only the new leader writes");
                }
            }
        }
    }
    Ok(())
}

/// The ReplicaSet cache and the stream that triggers reconciles of their owners.
fn replica_set_cache(
    client: &kube::Client,
    namespace: Option<&str>,
) -> (
    Store<ReplicaSet>,
    impl futures::Stream<Item = Result<ReplicaSet, watcher::Error>> + Send + 'static,
) {
    let api: Api<ReplicaSet> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    let stream = watcher(
        api,
        watcher::Config::default().labels(HASH_LABEL).any_semantic(),
    )
    .default_backoff()
    .modify(strip_replica_set)
    .reflect(writer)
    .applied_objects();
    (store, stream)
}

fn strip_replica_set(rs: &mut ReplicaSet) {
    rs.metadata.managed_fields = None;
    if let Some(spec) = rs.spec.as_mut() {
        spec.template = None;
    }
}

/// The AnalysisRuns of Rollouts (by label), as dynamic objects with measurements stripped:
/// the Rollout controller reads only owner, phase and message, and a phase change triggers
/// the owner's reconcile.
fn analysis_run_cache(
    client: &kube::Client,
    namespace: Option<&str>,
) -> (
    Store<DynamicObject>,
    impl futures::Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static,
) {
    let resource = analysis_run_resource();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let writer = reflector::store::Writer::new(resource);
    let store = writer.as_reader();
    let config = watcher::Config::default()
        .labels(crate::rollout::analysis::ROLLOUT_LABEL)
        .any_semantic();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(strip_run)
        .reflect(writer)
        .applied_objects();
    (store, stream)
}

fn strip_run(run: &mut DynamicObject) {
    run.metadata.managed_fields = None;
    if let Some(status) = run.data.get_mut("status").and_then(|s| s.as_object_mut()) {
        status.retain(|k, _| k == "phase" || k == "message");
    }
    if let Some(spec) = run.data.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.clear();
    }
}
