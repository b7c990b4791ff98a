//! The AnalysisRun controller: measures each running AnalysisRun's due metrics, records every
//! measurement in the run's status, and ends the run with a verdict.
//!
//! The judging is the `sluice-analysis` crate's (pure); this module is the I/O around it:
//! watching runs, reading the Secrets their arguments and providers name, fetching from
//! Prometheus, and writing the status.
//!
//! # What the Rollout controller can rely on
//! - Any AnalysisRun in the watched namespaces is measured; names, labels and owner references
//!   are not read (the Rollout side chooses them and finds its runs by them).
//! - `status.phase` moves `Running` -> one of `Successful | Failed | Error | Inconclusive`, and
//!   a final phase never changes again. `status.message` says why, naming the deciding metric,
//!   its value and its condition. `Error` also covers an invalid spec (every problem named) and
//!   an object that cannot be decoded.
//! - `spec.terminate: true` ends a run: metrics still running end `Successful`.
//! - Arguments are read as the Rollout left them: `value`s are used as is, `secretKeyRef`s are
//!   read at measurement time by one GET of that Secret in the run's namespace (Secrets are
//!   never listed or watched). A `fieldRef` or `podTemplateHashValue` still on a run is an
//!   error of any metric using that argument: the Rollout resolves those when it creates the
//!   run.
//! - Everything is kept in status, so a controller restart repeats and loses no measurement.
//!
//! # Failure
//! A Prometheus that cannot be reached, a missing Secret or argument: an `Error` measurement,
//! counted against the metric's `consecutiveErrorLimit` (the analysis semantics). API errors
//! (reading a Secret, writing status) back off per run and change no decision.

mod events;
mod measure;
pub mod metrics;
mod providers;
pub mod reconcile;
mod secrets;
mod status;

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Controller;
use kube::runtime::events::Recorder;
use kube::runtime::reflector;
use kube::runtime::{WatchStreamExt, watcher};

use crate::context::Backoff;
pub use metrics::AnalysisMetrics;
use providers::ProviderCache;

/// Shared state of the AnalysisRun controller.
pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub metrics: AnalysisMetrics,
    providers: ProviderCache,
    pub backoff: Backoff,
}

impl Context {
    pub fn new(client: kube::Client, recorder: Recorder, metrics: AnalysisMetrics) -> Self {
        Context {
            client,
            recorder,
            metrics,
            providers: ProviderCache::default(),
            backoff: Backoff::default(),
        }
    }
}

/// The AnalysisRun kind as a dynamic resource: runs are decoded one by one in the reconcile,
/// so one undecodable object gets its own error instead of breaking the watch.
pub fn analysis_run_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(sluice_crds::GROUP, sluice_crds::VERSION, "AnalysisRun");
    ApiResource::from_gvk_with_plural(&gvk, "analysisruns")
}

/// The controller as a future that runs until the process is told to stop. Watches
/// `namespace` only when given, else every namespace.
pub fn controller(
    ctx: Context,
    namespace: Option<&str>,
    concurrency: u16,
) -> impl Future<Output = ()> + Send + 'static {
    let resource = analysis_run_resource();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    let writer = reflector::store::Writer::new(resource.clone());
    let store = writer.as_reader();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|o: &mut DynamicObject| o.metadata.managed_fields = None)
        .reflect(writer)
        .applied_objects();
    Controller::for_stream_with(stream, store, resource)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, Arc::new(ctx))
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "analysis run controller event");
            }
        })
}
