//! The invariant monitor: watches a scenario's namespace while it runs and checks DESIGN section 3's
//! traffic invariants at every change of every object that carries or receives traffic.
//!
//! What is watched: the Rollout, the VirtualServices, the DestinationRules, the ReplicaSets, the
//! Services and the Events of the namespace. Every version of every object is recorded with its
//! `resourceVersion`.
//!
//! How it evaluates: the versions are replayed in `resourceVersion` order and the invariants are
//! checked on the snapshot after each one. Separate watches deliver in no particular order
//! relative to each other (a ReplicaSet event may arrive before the VirtualService event that
//! preceded it), so judging each event against "the latest state seen so far" would report
//! orderings that never happened. Replaying by revision judges each change against the cluster as
//! it was at that revision.
//!
//! Assumptions: one etcd serves every kind in the namespace (true for the local cluster), so
//! resourceVersions of different kinds are comparable revisions of one store. The watches do not
//! fall behind far enough to be relisted in a test's lifetime (a relist would skip versions; the
//! monitor then reports a watch error).
//!
//! The invariants checked at every revision:
//! 1. every selected route's weights are within 0..=100 and sum to 100, and the canary weight is
//!    not above the `setWeight` in force at the Rollout's `status.currentStepIndex`;
//! 2. every destination with weight > 0 (and every mirror) of a selected or managed route resolves
//!    to a ReplicaSet with available pods (through the Service selector's or the subset's
//!    pod-template hash);
//! 3. a ReplicaSet's `spec.replicas` is never lowered to 0 while such a destination resolves to it.
//!
//! For a blue-green Rollout (no weights; the active Service's selector is the switch) it checks
//! BG1 and BG2 instead (see the docs of `monitor/bluegreen.rs`).

mod bluegreen;
mod report;
mod world;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use sluice_controller::traffic::istio::{destination_rule_resource, virtual_service_resource};
use tokio::task::JoinHandle;

pub use report::{Invariant, Report, Violation, Writes};

/// The kinds the monitor watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Rollout,
    VirtualService,
    DestinationRule,
    ReplicaSet,
    Service,
    Event,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Rollout,
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::ReplicaSet,
        Kind::Service,
        Kind::Event,
    ];

    fn resource(self) -> ApiResource {
        match self {
            Kind::Rollout => ApiResource::erase::<sluice_crds::Rollout>(&()),
            Kind::VirtualService => virtual_service_resource(),
            Kind::DestinationRule => destination_rule_resource(),
            Kind::ReplicaSet => ApiResource::erase::<ReplicaSet>(&()),
            Kind::Service => ApiResource::erase::<Service>(&()),
            Kind::Event => ApiResource::erase::<k8s_openapi::api::events::v1::Event>(&()),
        }
    }
}

/// One recorded version of one object.
#[derive(Clone, Debug)]
pub struct Change {
    /// `metadata.resourceVersion`, as a revision number.
    pub rv: u64,
    /// When the watch delivered it.
    pub at: Instant,
    pub kind: Kind,
    pub name: String,
    /// The object (without managedFields); `None` when this change deleted it.
    pub object: Option<Value>,
}

#[derive(Default)]
struct Recording {
    changes: Vec<Change>,
    seen: HashSet<(Kind, String, u64)>,
    observations: BTreeMap<Kind, u64>,
    errors: Vec<String>,
    ready: HashSet<Kind>,
}

/// A running monitor. See the module docs.
pub struct Monitor {
    client: kube::Client,
    namespace: String,
    recording: Arc<Mutex<Recording>>,
    tasks: Vec<JoinHandle<()>>,
}

fn lock(recording: &Mutex<Recording>) -> std::sync::MutexGuard<'_, Recording> {
    recording
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Monitor {
    /// Starts watching `namespace`; returns once every watch has listed what already exists.
    pub async fn start(client: &kube::Client, namespace: &str) -> Result<Monitor> {
        let recording = Arc::new(Mutex::new(Recording::default()));
        let tasks = Kind::ALL
            .into_iter()
            .map(|kind| {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), namespace, &kind.resource());
                tokio::spawn(watch(kind, api, recording.clone()))
            })
            .collect();
        let monitor = Monitor {
            client: client.clone(),
            namespace: namespace.to_owned(),
            recording,
            tasks,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while lock(&monitor.recording).ready.len() < Kind::ALL.len() {
            if Instant::now() > deadline {
                bail!("the monitor's watches did not start within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(monitor)
    }

    /// The report so far, once every object's current version has been delivered.
    pub async fn report(&self) -> Result<Report> {
        self.drain().await?;
        let recording = lock(&self.recording);
        if !recording.errors.is_empty() {
            bail!("the monitor's watches failed: {:?}", recording.errors);
        }
        Ok(Report::replay(
            recording.changes.clone(),
            recording.observations.clone(),
            &self.namespace,
        ))
    }

    /// Stops watching and returns the final report.
    pub async fn finish(self) -> Result<Report> {
        let report = self.report().await;
        for task in &self.tasks {
            task.abort();
        }
        report
    }

    /// Waits until the recording holds the current version of every object in the namespace:
    /// the watches may lag the API server by a few milliseconds.
    async fn drain(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        for kind in Kind::ALL {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &self.namespace, &kind.resource());
            let current = api
                .list_metadata(&ListParams::default())
                .await
                .with_context(|| format!("listing {kind:?} to drain the monitor"))?;
            for object in current.items {
                let name = object.metadata.name.clone().unwrap_or_default();
                let rv = parse_rv(object.metadata.resource_version.as_deref())?;
                while !lock(&self.recording)
                    .seen
                    .contains(&(kind, name.clone(), rv))
                {
                    if Instant::now() > deadline {
                        bail!("the monitor never saw {kind:?} {name} at rv {rv}");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Ok(())
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn watch(kind: Kind, api: Api<DynamicObject>, recording: Arc<Mutex<Recording>>) {
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        let (object, deleted) = match event {
            Ok(Event::Apply(o) | Event::InitApply(o)) => (o, false),
            Ok(Event::Delete(o)) => (o, true),
            Ok(Event::InitDone) => {
                lock(&recording).ready.insert(kind);
                continue;
            }
            Ok(Event::Init) => continue,
            Err(e) => {
                lock(&recording).errors.push(format!("{kind:?}: {e}"));
                continue;
            }
        };
        record(kind, object, deleted, &recording);
    }
}

fn record(kind: Kind, mut object: DynamicObject, deleted: bool, recording: &Mutex<Recording>) {
    object.metadata.managed_fields = None;
    let name = object.metadata.name.clone().unwrap_or_default();
    let mut r = lock(recording);
    *r.observations.entry(kind).or_default() += 1;
    let rv = match parse_rv(object.metadata.resource_version.as_deref()) {
        Ok(rv) => rv,
        Err(e) => {
            r.errors.push(format!("{kind:?} {name}: {e}"));
            return;
        }
    };
    // A relist delivers versions already recorded; a deletion shares no rv with an update.
    if !r.seen.insert((kind, name.clone(), rv)) && !deleted {
        return;
    }
    let object = match serde_json::to_value(&object) {
        Ok(value) => value,
        Err(e) => {
            r.errors.push(format!("{kind:?} {name}: {e}"));
            return;
        }
    };
    r.changes.push(Change {
        rv,
        at: Instant::now(),
        kind,
        name,
        object: (!deleted).then_some(object),
    });
}

fn parse_rv(rv: Option<&str>) -> Result<u64> {
    let rv = rv.context("an object without resourceVersion")?;
    rv.parse()
        .with_context(|| format!("resourceVersion {rv} is not a revision number"))
}
