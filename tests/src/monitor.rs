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

use crate::fixtures::HASH_LABEL;

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

/// An invariant found broken at a revision.
#[derive(Clone, Debug)]
pub struct Violation {
    pub rv: u64,
    pub invariant: u8,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invariant {} at rv {}: {}",
            self.invariant, self.rv, self.message
        )
    }
}

/// API writes attributed to Sluice, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Writes {
    pub rollout_status: u32,
    pub virtual_service: u32,
    pub destination_rule: u32,
    pub replica_set: u32,
    pub service: u32,
    pub event: u32,
}

impl Writes {
    pub fn total(&self) -> u32 {
        self.rollout_status
            + self.virtual_service
            + self.destination_rule
            + self.replica_set
            + self.service
            + self.event
    }
}

impl std::fmt::Display for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} writes (Rollout status {}, VirtualService {}, DestinationRule {}, ReplicaSet {}, Service {}, Event {})",
            self.total(),
            self.rollout_status,
            self.virtual_service,
            self.destination_rule,
            self.replica_set,
            self.service,
            self.event
        )
    }
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

// ---------------------------------------------------------------------------------------------
// The report: replay in revision order.

/// What the monitor saw and found.
#[derive(Clone, Debug)]
pub struct Report {
    /// Watch events received for VirtualServices and ReplicaSets.
    pub vs_observations: u64,
    pub rs_observations: u64,
    pub observations: BTreeMap<Kind, u64>,
    /// Revisions at which the invariants were evaluated.
    pub evaluations: u64,
    pub violations: Vec<Violation>,
    /// Every recorded version, in revision order.
    pub changes: Vec<Change>,
    /// The canary weight of the first selected route, at each revision that changed it (`None`
    /// while no Rollout names the route or the route has no canary destination).
    pub weight_trace: Vec<(u64, Option<i64>)>,
    /// Versions Sluice wrote: (rv, kind, name).
    pub writes: Vec<(u64, Kind, String)>,
}

impl Report {
    fn replay(mut changes: Vec<Change>, observations: BTreeMap<Kind, u64>, ns: &str) -> Report {
        changes.sort_by_key(|c| c.rv);
        let mut world = World::new(ns);
        let mut report = Report {
            vs_observations: observations
                .get(&Kind::VirtualService)
                .copied()
                .unwrap_or(0),
            rs_observations: observations.get(&Kind::ReplicaSet).copied().unwrap_or(0),
            observations,
            evaluations: 0,
            violations: Vec::new(),
            changes: Vec::new(),
            weight_trace: Vec::new(),
            writes: Vec::new(),
        };
        for change in &changes {
            let previous = world.get(change.kind, &change.name).cloned();
            if change.kind == Kind::ReplicaSet {
                report.check_scale_down(&world, previous.as_ref(), change);
            }
            if is_sluice_write(previous.as_ref(), change) {
                report
                    .writes
                    .push((change.rv, change.kind, change.name.clone()));
            }
            world.apply(change);
            if change.kind != Kind::Event {
                report.evaluations += 1;
                report.check_routes(&world, change.rv);
            }
            // Every kind: the weight becomes known when the Rollout that names the route appears.
            let weight = world.canary_weight();
            if report.weight_trace.last().map(|(_, w)| *w) != Some(weight) {
                report.weight_trace.push((change.rv, weight));
            }
        }
        report.changes = changes;
        report
    }

    fn violation(&mut self, rv: u64, invariant: u8, message: String) {
        self.violations.push(Violation {
            rv,
            invariant,
            message,
        });
    }

    /// Invariants 1 and 2 on the snapshot at `rv`.
    fn check_routes(&mut self, world: &World, rv: u64) {
        let Some(routing) = world.routing() else {
            return;
        };
        let bound = world.step_weight_bound();
        for (vs_name, route_names) in &routing.virtual_services {
            let Some(vs) = world.get(Kind::VirtualService, vs_name) else {
                continue;
            };
            for route in selected_routes(vs, route_names, &routing.managed_routes) {
                let label = format!("{vs_name}/{}", route_name(route));
                let entries = entries(route);
                let weights: Vec<i64> = entries.iter().map(|(_, w)| *w).collect();
                if weights.iter().any(|w| !(0..=100).contains(w))
                    || weights.iter().sum::<i64>() != 100
                {
                    self.violation(rv, 1, format!("route {label} has weights {weights:?}"));
                }
                let canary: i64 = entries
                    .iter()
                    .filter(|(d, _)| routing.is_canary(d))
                    .map(|(_, w)| w)
                    .sum();
                if let Some((index, bound)) = bound.filter(|(_, b)| canary > *b) {
                    self.violation(
                        rv,
                        1,
                        format!("route {label} gives the canary {canary} at step {index} whose setWeight is {bound}"),
                    );
                }
            }
            for (what, hash) in world.traffic_destinations(vs, &routing) {
                let available = world.available(&hash);
                if available == 0 {
                    self.violation(
                        rv,
                        2,
                        format!("{vs_name}: {what} goes to pod-template hash {hash}, which has no available pod"),
                    );
                }
            }
        }
    }

    /// Invariant 3 for a ReplicaSet change, against the world just before it.
    fn check_scale_down(&mut self, world: &World, previous: Option<&Value>, change: &Change) {
        let replicas = |o: Option<&Value>| o.and_then(|o| o.pointer("/spec/replicas")?.as_i64());
        let lowered_to_zero = replicas(previous).is_some_and(|r| r > 0)
            && replicas(change.object.as_ref()) == Some(0);
        if !lowered_to_zero {
            return;
        }
        let Some(hash) = change
            .object
            .as_ref()
            .and_then(|o| label(o, HASH_LABEL))
            .map(str::to_owned)
        else {
            return;
        };
        let Some(routing) = world.routing() else {
            return;
        };
        for (vs_name, _) in &routing.virtual_services {
            let Some(vs) = world.get(Kind::VirtualService, vs_name) else {
                continue;
            };
            for (what, to) in world.traffic_destinations(vs, &routing) {
                if to == hash {
                    self.violation(
                        change.rv,
                        3,
                        format!(
                            "ReplicaSet {} scaled to 0 while {vs_name}: {what} goes to it",
                            change.name
                        ),
                    );
                }
            }
        }
    }

    /// Sluice's writes with a revision in `(after, until]`.
    pub fn writes_between(&self, after: u64, until: u64) -> Writes {
        let mut writes = Writes::default();
        for (rv, kind, _) in &self.writes {
            if *rv <= after || *rv > until {
                continue;
            }
            let counter = match kind {
                Kind::Rollout => &mut writes.rollout_status,
                Kind::VirtualService => &mut writes.virtual_service,
                Kind::DestinationRule => &mut writes.destination_rule,
                Kind::ReplicaSet => &mut writes.replica_set,
                Kind::Service => &mut writes.service,
                Kind::Event => &mut writes.event,
            };
            *counter += 1;
        }
        writes
    }

    /// When the watch delivered the last write by Sluice.
    pub fn last_write_at(&self) -> Option<Instant> {
        let (rv, kind, name) = self.writes.last()?;
        self.changes
            .iter()
            .find(|c| c.rv == *rv && c.kind == *kind && &c.name == name)
            .map(|c| c.at)
    }

    /// When the watch delivered the version of `kind` with resourceVersion `rv`.
    pub fn delivered_at(&self, kind: Kind, rv: u64) -> Option<Instant> {
        self.changes
            .iter()
            .find(|c| c.kind == kind && c.rv == rv)
            .map(|c| c.at)
    }

    /// The canary weights the VirtualService showed, in order, consecutive repeats removed.
    pub fn weights(&self) -> Vec<i64> {
        self.weight_trace.iter().filter_map(|(_, w)| *w).collect()
    }

    /// The weights shown at revisions after `rv`.
    pub fn weights_after(&self, rv: u64) -> Vec<i64> {
        self.weight_trace
            .iter()
            .filter(|(at, _)| *at > rv)
            .filter_map(|(_, w)| *w)
            .collect()
    }

    /// The first version of a `kind` object (after `rv`) for which `pred` holds.
    pub fn first(&self, kind: Kind, after: u64, pred: impl Fn(&Value) -> bool) -> Option<&Change> {
        self.changes
            .iter()
            .find(|c| c.kind == kind && c.rv > after && c.object.as_ref().is_some_and(&pred))
    }

    /// Every recorded version of the Rollout's status, in order.
    pub fn rollout_statuses(&self) -> impl Iterator<Item = (u64, &Value)> {
        self.changes
            .iter()
            .filter(|c| c.kind == Kind::Rollout)
            .filter_map(|c| Some((c.rv, c.object.as_ref()?.get("status")?)))
    }

    /// The sequence of `status.currentStepIndex` values, consecutive repeats removed.
    pub fn step_indices(&self) -> Vec<i64> {
        let mut indices: Vec<i64> = Vec::new();
        for (_, status) in self.rollout_statuses() {
            if let Some(i) = status.get("currentStepIndex").and_then(Value::as_i64)
                && indices.last() != Some(&i)
            {
                indices.push(i);
            }
        }
        indices
    }

    /// Every recorded version, one line each, in revision order (for failure output).
    pub fn timeline(&self) -> String {
        let start = self.changes.first().map(|c| c.at);
        let mut out = String::new();
        for c in &self.changes {
            let ms = start.map_or(0, |s| c.at.duration_since(s).as_millis());
            let what = c
                .object
                .as_ref()
                .map_or_else(|| "deleted".to_owned(), |o| describe(c.kind, o));
            out.push_str(&format!(
                "{:>8} {:>6}ms {:?} {} {what}\n",
                c.rv, ms, c.kind, c.name
            ));
        }
        out
    }

    /// One line for the test output.
    pub fn summary(&self) -> String {
        format!(
            "monitor: {} VirtualService observations, {} ReplicaSet observations, {} revisions evaluated, {} violations",
            self.vs_observations,
            self.rs_observations,
            self.evaluations,
            self.violations.len()
        )
    }
}

/// Writes by Sluice, told apart from the other writers in a scenario's namespace: the
/// ReplicaSet controller writes only ReplicaSet status; the scenario writes the Rollout's spec and
/// its own status requests (which tests exclude by counting from after them); Sluice writes the
/// rest.
fn is_sluice_write(previous: Option<&Value>, change: &Change) -> bool {
    let field = |o: Option<&Value>, path: &str| o.and_then(|o| o.pointer(path)).cloned();
    match (change.kind, previous, change.object.as_ref()) {
        (Kind::Event, _, now) => {
            field(now, "/reportingController") == Some(Value::from("sluice"))
                || field(previous, "/reportingController") == Some(Value::from("sluice"))
        }
        (Kind::Rollout, Some(before), Some(now)) => {
            field(Some(before), "/metadata/generation") == field(Some(now), "/metadata/generation")
                && before.get("status") != now.get("status")
        }
        (Kind::Rollout, _, _) => false,
        (Kind::ReplicaSet, Some(before), Some(now)) => [
            "/metadata/generation",
            "/metadata/annotations",
            "/metadata/labels",
        ]
        .iter()
        .any(|p| field(Some(before), p) != field(Some(now), p)),
        // Creations and deletions of ReplicaSets are Sluice's; mesh objects and Services exist
        // before the monitor starts, so every later version is a write by Sluice.
        (Kind::ReplicaSet, _, _) => true,
        (_, None, _) => false,
        (_, Some(_), _) => true,
    }
}

/// The fields of a version that matter to the invariants, on one line.
fn describe(kind: Kind, o: &Value) -> String {
    let at = |p: &str| o.pointer(p).cloned().unwrap_or(Value::Null);
    match kind {
        Kind::Rollout => format!(
            "gen={} step={} phase={} pause={} abort={} weights={}",
            at("/metadata/generation"),
            at("/status/currentStepIndex"),
            at("/status/phase"),
            at("/status/pauseConditions"),
            at("/status/abort"),
            at("/status/canary/weights"),
        ),
        Kind::VirtualService => {
            let http = o.pointer("/spec/http").and_then(Value::as_array);
            let routes: Vec<String> = http
                .into_iter()
                .flatten()
                .map(|r| {
                    let entries: Vec<String> = entries(r)
                        .iter()
                        .map(|(d, w)| {
                            format!(
                                "{}={w}",
                                d.get("subset").or(d.get("host")).unwrap_or(&Value::Null)
                            )
                        })
                        .collect();
                    format!("{}[{}]", route_name(r), entries.join(","))
                })
                .collect();
            routes.join(" ")
        }
        Kind::ReplicaSet => format!(
            "spec={} available={} annotations={}",
            at("/spec/replicas"),
            at("/status/availableReplicas"),
            at("/metadata/annotations"),
        ),
        Kind::Service => format!("selector={}", at("/spec/selector")),
        Kind::DestinationRule => format!("subsets={}", at("/spec/subsets")),
        Kind::Event => format!("{} {} x{}", at("/reason"), at("/note"), at("/series/count")),
    }
}

// ---------------------------------------------------------------------------------------------
// The world at one revision.

/// What the Rollout says routes traffic (read from its spec at each revision).
struct Routing {
    canary_service: Option<String>,
    stable_service: Option<String>,
    virtual_services: Vec<(String, Vec<String>)>,
    /// DestinationRule name, canary subset, stable subset.
    destination_rule: Option<(String, String, String)>,
    managed_routes: Vec<String>,
}

impl Routing {
    fn is_canary(&self, destination: &Value) -> bool {
        match (&self.destination_rule, destination.get("subset")) {
            (Some((_, canary, _)), Some(subset)) => subset.as_str() == Some(canary.as_str()),
            _ => {
                destination
                    .get("host")
                    .and_then(Value::as_str)
                    .map(short_host)
                    == self.canary_service.as_deref()
            }
        }
    }
}

struct World {
    namespace: String,
    objects: BTreeMap<(Kind, String), Value>,
}

impl World {
    fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            objects: BTreeMap::new(),
        }
    }

    fn get(&self, kind: Kind, name: &str) -> Option<&Value> {
        self.objects.get(&(kind, name.to_owned()))
    }

    fn apply(&mut self, change: &Change) {
        let key = (change.kind, change.name.clone());
        match &change.object {
            Some(object) => self.objects.insert(key, object.clone()),
            None => self.objects.remove(&key),
        };
    }

    fn rollout(&self) -> Option<&Value> {
        self.objects
            .iter()
            .find(|((kind, _), _)| *kind == Kind::Rollout)
            .map(|(_, o)| o)
    }

    fn routing(&self) -> Option<Routing> {
        let canary = self.rollout()?.pointer("/spec/strategy/canary")?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let istio = canary.pointer("/trafficRouting/istio")?;
        let mut virtual_services = Vec::new();
        let listed = istio.get("virtualService").into_iter().chain(
            istio
                .get("virtualServices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
        for vs in listed {
            let routes = vs
                .get("routes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| text(Some(r)))
                .collect();
            virtual_services.push((text(vs.get("name"))?, routes));
        }
        let destination_rule = istio.get("destinationRule").and_then(|dr| {
            Some((
                text(dr.get("name"))?,
                text(dr.get("canarySubsetName"))?,
                text(dr.get("stableSubsetName"))?,
            ))
        });
        let managed_routes = canary
            .pointer("/trafficRouting/managedRoutes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| text(r.get("name")))
            .collect();
        Some(Routing {
            canary_service: text(canary.get("canaryService")),
            stable_service: text(canary.get("stableService")),
            virtual_services,
            destination_rule,
            managed_routes,
        })
    }

    /// `(currentStepIndex, the setWeight in force there)`, when the status names a step.
    fn step_weight_bound(&self) -> Option<(i64, i64)> {
        let rollout = self.rollout()?;
        let index = rollout.pointer("/status/currentStepIndex")?.as_i64()?;
        let steps = rollout.pointer("/spec/strategy/canary/steps")?.as_array()?;
        let upto = usize::try_from(index)
            .ok()?
            .min(steps.len().saturating_sub(1));
        let weight = steps
            .iter()
            .take(upto + 1)
            .filter_map(|s| s.get("setWeight")?.as_i64())
            .next_back()
            .unwrap_or(0);
        Some((index, weight))
    }

    /// The canary weight of the first VirtualService's first selected route.
    fn canary_weight(&self) -> Option<i64> {
        let routing = self.routing()?;
        let (name, routes) = routing.virtual_services.first()?;
        let vs = self.get(Kind::VirtualService, name)?;
        let route = *selected_routes(vs, routes, &routing.managed_routes).first()?;
        let entries = entries(route);
        let canary: Vec<i64> = entries
            .iter()
            .filter(|(d, _)| routing.is_canary(d))
            .map(|(_, w)| *w)
            .collect();
        (!canary.is_empty()).then(|| canary.iter().sum())
    }

    /// Every (description, pod-template hash) that receives traffic through `vs`: weighted
    /// destinations of the selected and managed routes, and their mirrors.
    fn traffic_destinations(&self, vs: &Value, routing: &Routing) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let http = vs
            .pointer("/spec/http")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut routes: Vec<&Value> =
            selected_routes(vs, &self.route_names(vs, routing), &routing.managed_routes);
        routes.extend(http.iter().filter(|r| {
            routing
                .managed_routes
                .iter()
                .any(|m| Some(m.as_str()) == r.get("name").and_then(Value::as_str))
        }));
        for route in routes {
            let name = route_name(route);
            for (destination, weight) in entries(route) {
                if weight <= 0 {
                    continue;
                }
                if let Some(hash) = self.resolve(&destination, routing) {
                    out.push((
                        format!("route {name} (weight {weight} to {destination})"),
                        hash,
                    ));
                }
            }
            if let Some(mirror) = route.get("mirror")
                && let Some(hash) = self.resolve(mirror, routing)
            {
                out.push((format!("the mirror of route {name} ({mirror})"), hash));
            }
        }
        out
    }

    fn route_names(&self, vs: &Value, routing: &Routing) -> Vec<String> {
        let name = vs.pointer("/metadata/name").and_then(Value::as_str);
        routing
            .virtual_services
            .iter()
            .find(|(n, _)| Some(n.as_str()) == name)
            .map(|(_, routes)| routes.clone())
            .unwrap_or_default()
    }

    /// The pod-template hash a destination reaches, when Sluice has pinned one.
    fn resolve(&self, destination: &Value, routing: &Routing) -> Option<String> {
        if let (Some((dr_name, _, _)), Some(subset)) = (
            &routing.destination_rule,
            destination.get("subset").and_then(Value::as_str),
        ) {
            let dr = self.get(Kind::DestinationRule, dr_name)?;
            let subsets = dr.pointer("/spec/subsets")?.as_array()?;
            let subset = subsets
                .iter()
                .find(|s| s.get("name").and_then(Value::as_str) == Some(subset))?;
            return Some(
                subset
                    .pointer("/labels")?
                    .get(HASH_LABEL)?
                    .as_str()?
                    .to_owned(),
            );
        }
        let host = short_host(destination.get("host")?.as_str()?);
        let ours = [&routing.canary_service, &routing.stable_service]
            .iter()
            .any(|s| s.as_deref() == Some(host));
        if !ours || !self.is_local(destination.get("host")?.as_str()?) {
            return None;
        }
        let service = self.get(Kind::Service, host)?;
        let hash = service
            .pointer("/spec/selector")?
            .get(HASH_LABEL)?
            .as_str()?;
        Some(hash.to_owned())
    }

    fn is_local(&self, host: &str) -> bool {
        let rest = host.split_once('.').map(|(_, rest)| rest);
        match rest {
            None => true,
            Some(rest) => [
                self.namespace.clone(),
                format!("{}.svc", self.namespace),
                format!("{}.svc.cluster.local", self.namespace),
            ]
            .contains(&rest.to_owned()),
        }
    }

    /// `status.availableReplicas` summed over the ReplicaSets of `hash` (0 when there is none).
    fn available(&self, hash: &str) -> i64 {
        self.objects
            .iter()
            .filter(|((kind, _), o)| {
                *kind == Kind::ReplicaSet && label(o, HASH_LABEL) == Some(hash)
            })
            .filter_map(|(_, o)| o.pointer("/status/availableReplicas")?.as_i64())
            .sum()
    }
}

fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/labels")?.get(key)?.as_str()
}

fn short_host(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

fn route_name(route: &Value) -> &str {
    route
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
}

/// The routes whose weights Sluice sets: the named ones, or with no names every http route that
/// is not a managed one (the VirtualService then must have exactly one).
fn selected_routes<'v>(vs: &'v Value, names: &[String], managed: &[String]) -> Vec<&'v Value> {
    let http = vs
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    http.iter()
        .filter(|r| {
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            if names.is_empty() {
                !managed.iter().any(|m| m == name)
            } else {
                names.iter().any(|n| n == name)
            }
        })
        .collect()
}

/// `(destination, weight)` of each entry of an http route; a lone destination without a weight
/// takes all the traffic (Istio's rule).
fn entries(route: &Value) -> Vec<(Value, i64)> {
    let list = route
        .get("route")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    list.iter()
        .map(|entry| {
            let destination = entry.get("destination").cloned().unwrap_or(Value::Null);
            let weight = entry
                .get("weight")
                .and_then(Value::as_i64)
                .unwrap_or(if list.len() == 1 { 100 } else { 0 });
            (destination, weight)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The monitor must catch what it claims to catch, and only that: synthetic histories with
    //! one known fault each.

    use serde_json::json;

    use super::*;

    const NS: &str = "ns";

    fn rollout(step: i64) -> Value {
        json!({
            "metadata": { "name": "web", "generation": 2 },
            "spec": { "strategy": { "canary": {
                "canaryService": "web-canary",
                "stableService": "web-stable",
                "steps": [{ "setWeight": 20 }, { "pause": {} }, { "setWeight": 50 }],
                "trafficRouting": { "istio": { "virtualService": { "name": "web", "routes": ["primary"] } } },
            } } },
            "status": { "currentStepIndex": step },
        })
    }

    fn virtual_service(stable: i64, canary: i64) -> Value {
        json!({
            "metadata": { "name": "web" },
            "spec": { "http": [{ "name": "primary", "route": [
                { "destination": { "host": "web-stable" }, "weight": stable },
                { "destination": { "host": "web-canary.ns.svc.cluster.local" }, "weight": canary },
            ] }] },
        })
    }

    fn service(name: &str, hash: &str) -> Value {
        json!({ "metadata": { "name": name }, "spec": { "selector": { "app": "web", HASH_LABEL: hash } } })
    }

    fn replica_set(hash: &str, replicas: i64, available: i64) -> Value {
        // The API server bumps the generation on every spec change; here the spec is only the
        // replica count.
        json!({
            "metadata": {
                "name": format!("web-{hash}"),
                "labels": { HASH_LABEL: hash },
                "generation": replicas + 1,
            },
            "spec": { "replicas": replicas },
            "status": { "availableReplicas": available },
        })
    }

    /// Versions as `(rv, kind, object)`; names come from the objects.
    fn replay(versions: Vec<(u64, Kind, Value)>) -> Report {
        let changes = versions
            .into_iter()
            .map(|(rv, kind, object)| Change {
                rv,
                at: Instant::now(),
                kind,
                name: object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                object: Some(object),
            })
            .collect();
        Report::replay(changes, BTreeMap::new(), NS)
    }

    /// A canary at step 0 (weight 20) with both versions serving.
    fn at_twenty() -> Vec<(u64, Kind, Value)> {
        vec![
            (1, Kind::Service, service("web-stable", "old")),
            (2, Kind::Service, service("web-canary", "new")),
            (3, Kind::ReplicaSet, replica_set("old", 5, 5)),
            (4, Kind::ReplicaSet, replica_set("new", 1, 1)),
            (5, Kind::Rollout, rollout(0)),
            (6, Kind::VirtualService, virtual_service(80, 20)),
        ]
    }

    fn invariants(report: &Report) -> Vec<u8> {
        report.violations.iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn a_healthy_history_has_no_violation_and_a_weight_trace() {
        let report = replay(at_twenty());
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert_eq!(report.weights(), [20]);
    }

    #[test]
    fn a_weight_above_the_current_step_or_not_summing_to_100_breaks_invariant_1() {
        let mut history = at_twenty();
        history.push((7, Kind::VirtualService, virtual_service(50, 50)));
        assert_eq!(invariants(&replay(history)), [1]);
        let mut history = at_twenty();
        history.push((7, Kind::VirtualService, virtual_service(70, 20)));
        assert_eq!(invariants(&replay(history)), [1]);
    }

    #[test]
    fn traffic_to_a_version_without_available_pods_breaks_invariant_2() {
        let mut history = at_twenty();
        history.push((7, Kind::ReplicaSet, replica_set("new", 1, 0)));
        assert_eq!(invariants(&replay(history)), [2]);
    }

    #[test]
    fn scaling_a_version_to_zero_while_it_has_weight_breaks_invariant_3() {
        let mut history = at_twenty();
        history.push((7, Kind::ReplicaSet, replica_set("new", 0, 1)));
        assert_eq!(invariants(&replay(history)), [3]);
    }

    #[test]
    fn judging_by_revision_not_by_delivery_order_accepts_a_scale_down_after_the_weight_left() {
        // The weight went to 0 (rv 7) before the scale-down (rv 8), but the ReplicaSet watch
        // delivered first.
        let mut history = at_twenty();
        history.push((8, Kind::ReplicaSet, replica_set("new", 0, 1)));
        history.push((7, Kind::VirtualService, virtual_service(100, 0)));
        assert!(replay(history).violations.is_empty());
    }

    #[test]
    fn writes_count_spec_and_metadata_changes_of_replica_sets_but_not_their_status() {
        let mut history = at_twenty();
        history.push((7, Kind::ReplicaSet, replica_set("new", 1, 0)));
        history.push((8, Kind::ReplicaSet, replica_set("new", 2, 0)));
        history.push((9, Kind::VirtualService, virtual_service(100, 0)));
        let report = replay(history);
        let writes = report.writes_between(6, 9);
        assert_eq!((writes.replica_set, writes.virtual_service), (1, 1));
    }
}
