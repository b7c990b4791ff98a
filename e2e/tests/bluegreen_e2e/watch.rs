//! What a blue-green scenario sees: one merged watch on the Rollout, its AnalysisRuns, its
//! ReplicaSets and the namespace's Services, feeding a [`World`] read through small pure
//! accessors. Every version of the active Service is kept, with the instant the watch delivered
//! it, so a scenario can check that the switch never touched a version it must not, and time
//! how fast it moved back.
//!
//! Guarantees: every event (deletions included) is applied before [`Watch::next`] returns;
//! watch errors are retried with kube's default backoff and logged, never ending the stream
//! (the merging is `sluice_e2e::watch::Merged`'s, as for the demo's watch).

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::watcher;
use sluice_crds::{AnalysisPhase, AnalysisRun, Rollout, RolloutPhase};
pub use sluice_e2e::demo::world::Replicas;
pub use sluice_e2e::watch::WatchedRollout;
use sluice_e2e::watch::{ANALYSIS_LABEL, Deletable, HASH_LABEL, Merged, ROLLOUT_LABEL};
use tokio::time::Instant;

/// Which gate a run belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    Pre,
    Post,
}

impl Gate {
    pub fn label(self) -> &'static str {
        match self {
            Gate::Pre => "pre-promotion",
            Gate::Post => "post-promotion",
        }
    }
}

/// When the watch delivered an event: the monotonic instant (for waits) and the wall clock (to
/// compare with timestamps the API server wrote).
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub at: Instant,
    /// Milliseconds since the Unix epoch.
    pub wall_ms: i64,
}

impl Seen {
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            at: Instant::now(),
            wall_ms: i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// One observed version of the active Service.
#[derive(Clone, Debug)]
pub struct Selection {
    pub resource_version: u64,
    /// The pod-template hash its selector pins (`None`: no version pinned yet).
    pub hash: Option<String>,
    pub seen: Seen,
}

/// What the watch learnt about one AnalysisRun: when it appeared, and its verdict.
#[derive(Clone, Copy, Debug)]
pub struct RunHistory {
    /// The resourceVersion it was first seen at (its creation: the watch starts before any run
    /// exists).
    pub first_rv: u64,
    /// Its first completed phase, at which resourceVersion, and when the watch delivered it.
    pub verdict: Option<(AnalysisPhase, u64, Seen)>,
}

/// One decoded watch event.
enum Update {
    Rollout(Box<Rollout>),
    Run(Box<AnalysisRun>),
    ReplicaSet(Box<ReplicaSet>),
    Service(Box<Service>),
    Deleted(Box<Update>),
}

impl Deletable for Update {
    fn deleted(self) -> Self {
        Update::Deleted(Box::new(self))
    }
}

/// Everything watched, as last seen.
#[derive(Clone, Debug)]
pub struct World {
    active_service: String,
    pub rollout: Option<Rollout>,
    pub runs: BTreeMap<String, AnalysisRun>,
    /// By pod-template hash.
    pub replica_sets: BTreeMap<String, Replicas>,
    /// Service name -> the pod-template hash its selector pins.
    pub selectors: BTreeMap<String, Option<String>>,
    /// Every version of the active Service the watch delivered, in delivery order.
    pub active_history: Vec<Selection>,
    /// By run name.
    pub run_history: BTreeMap<String, RunHistory>,
    /// The resourceVersion of the Rollout at which each version first became stable.
    pub stable_since: BTreeMap<String, u64>,
}

impl WatchedRollout for World {
    fn watched_rollout(&self) -> Option<&Rollout> {
        self.rollout.as_ref()
    }
}

impl World {
    fn new(active_service: &str) -> Self {
        Self {
            active_service: active_service.to_owned(),
            rollout: None,
            runs: BTreeMap::new(),
            replica_sets: BTreeMap::new(),
            selectors: BTreeMap::new(),
            active_history: Vec::new(),
            run_history: BTreeMap::new(),
            stable_since: BTreeMap::new(),
        }
    }

    fn apply(&mut self, update: Update, seen: Seen) {
        match update {
            Update::Rollout(r) => self.record_rollout(*r),
            Update::Run(run) => self.record_run(*run, seen),
            Update::ReplicaSet(rs) => {
                if let Some(hash) = hash_label(&rs) {
                    self.replica_sets.insert(hash, Replicas::of(&rs));
                }
            }
            Update::Service(service) => self.record_service(&service, seen),
            Update::Deleted(inner) => self.forget(*inner),
        }
    }

    fn record_rollout(&mut self, rollout: Rollout) {
        let rv = resource_version(&rollout.metadata);
        let stable = rollout.status.as_ref().and_then(|s| s.stable_rs.clone());
        if let Some(stable) = stable {
            self.stable_since.entry(stable).or_insert(rv);
        }
        self.rollout = Some(rollout);
    }

    fn record_run(&mut self, run: AnalysisRun, seen: Seen) {
        let rv = resource_version(&run.metadata);
        let history = self
            .run_history
            .entry(name(&run.metadata))
            .or_insert(RunHistory {
                first_rv: rv,
                verdict: None,
            });
        let phase = run.status.as_ref().and_then(|s| s.phase);
        if let Some(phase) = phase.filter(|p| p.is_completed())
            && history.verdict.is_none()
        {
            history.verdict = Some((phase, rv, seen));
        }
        self.runs.insert(name(&run.metadata), run);
    }

    fn record_service(&mut self, service: &Service, seen: Seen) {
        let name = name(&service.metadata);
        let hash = service
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(HASH_LABEL).cloned());
        if name == self.active_service {
            self.active_history.push(Selection {
                resource_version: resource_version(&service.metadata),
                hash: hash.clone(),
                seen,
            });
        }
        self.selectors.insert(name, hash);
    }

    fn forget(&mut self, deleted: Update) {
        match deleted {
            Update::Rollout(_) => self.rollout = None,
            Update::Run(run) => {
                self.runs.remove(&name(&run.metadata));
            }
            Update::ReplicaSet(rs) => {
                if let Some(hash) = hash_label(&rs) {
                    self.replica_sets.remove(&hash);
                }
            }
            Update::Service(service) => {
                self.selectors.remove(&name(&service.metadata));
            }
            Update::Deleted(inner) => self.forget(*inner),
        }
    }

    /// The hash the active Service selects now.
    pub fn active(&self) -> Option<&str> {
        self.selectors.get(&self.active_service)?.as_deref()
    }

    /// The hash Service `name` selects now.
    pub fn selects(&self, name: &str) -> Option<&str> {
        self.selectors.get(name)?.as_deref()
    }

    pub fn replicas(&self, hash: &str) -> Replicas {
        self.replica_sets.get(hash).copied().unwrap_or_default()
    }

    /// The runs of version `hash` for `gate`, oldest name first.
    pub fn runs_of(&self, hash: &str, gate: Gate) -> Vec<&AnalysisRun> {
        self.runs
            .values()
            .filter(|run| {
                let labels = run.metadata.labels.as_ref();
                let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
                label(HASH_LABEL) == Some(hash) && label(ANALYSIS_LABEL) == Some(gate.label())
            })
            .collect()
    }

    /// The latest run of `hash` for `gate`.
    pub fn run_of(&self, hash: &str, gate: Gate) -> Option<&AnalysisRun> {
        self.runs_of(hash, gate).pop()
    }

    /// The phase of the latest run of `hash` for `gate`.
    pub fn run_phase(&self, hash: &str, gate: Gate) -> Option<AnalysisPhase> {
        self.run_of(hash, gate)?.status.as_ref()?.phase
    }

    /// What the watch learnt about the latest run of `hash` for `gate`.
    pub fn history_of(&self, hash: &str, gate: Gate) -> Option<RunHistory> {
        let run = self.run_of(hash, gate)?;
        self.run_history.get(&name(&run.metadata)).copied()
    }

    /// Healthy on `hash`: stable, both Services on it, at full size.
    pub fn healthy_on(&self, hash: &str, preview_service: &str) -> bool {
        let full = self
            .rollout
            .as_ref()
            .and_then(|r| r.spec.replicas)
            .map_or(1, |c| c.get());
        let rs = self.replicas(hash);
        self.phase() == Some(RolloutPhase::Healthy)
            && self.stable_hash() == Some(hash)
            && self.active() == Some(hash)
            && self.selects(preview_service) == Some(hash)
            && rs.available >= full
    }

    /// One line saying where the release is, for the progress log: phase, the versions
    /// (stable, active, preview), every ReplicaSet's available/wanted pods, the current
    /// version's runs and the Rollout's message.
    pub fn summary(&self, preview_service: &str) -> String {
        let phase = self
            .phase()
            .map_or_else(|| "-".to_owned(), |p| format!("{p:?}"));
        let sizes: Vec<String> = self
            .replica_sets
            .iter()
            .map(|(hash, r)| format!("{hash} {}/{}", r.available, r.spec))
            .collect();
        let current = self.status().and_then(|s| s.current_pod_hash.as_deref());
        let gate = |gate| {
            let phase = current.and_then(|h| self.run_phase(h, gate));
            phase.map_or_else(|| "-".to_owned(), |p| format!("{p:?}"))
        };
        format!(
            "{phase}{} stable={} active={} preview={} rs=[{}] pre={} post={} | {}",
            if self.aborted() { " (aborted)" } else { "" },
            self.stable_hash().unwrap_or("-"),
            self.active().unwrap_or("-"),
            self.selects(preview_service).unwrap_or("-"),
            sizes.join(", "),
            gate(Gate::Pre),
            gate(Gate::Post),
            self.message()
        )
    }
}

fn name(meta: &kube::api::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// A resourceVersion as the etcd revision it is (one order across kinds on the local cluster);
/// 0 when it is not a number.
fn resource_version(meta: &kube::api::ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn hash_label(rs: &ReplicaSet) -> Option<String> {
    rs.metadata.labels.as_ref()?.get(HASH_LABEL).cloned()
}

/// The merged watch and the world it keeps.
pub struct Watch {
    updates: Merged<Update>,
    pub world: World,
}

impl Watch {
    /// Starts watching Rollout `rollout` (whose active Service is `active_service`) in
    /// `namespace`. The first events are the current state of each kind.
    pub fn start(
        client: &kube::Client,
        namespace: &str,
        rollout: &str,
        active_service: &str,
    ) -> Self {
        let by_name = watcher::Config::default().fields(&format!("metadata.name={rollout}"));
        let runs = watcher::Config::default().labels(&format!("{ROLLOUT_LABEL}={rollout}"));
        let mut updates = Merged::default();
        let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace);
        updates.watch(rollouts, by_name, |r| Update::Rollout(Box::new(r)));
        let analysis_runs: Api<AnalysisRun> = Api::namespaced(client.clone(), namespace);
        updates.watch(analysis_runs, runs, |r| Update::Run(Box::new(r)));
        let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
        let versions = watcher::Config::default().labels(HASH_LABEL);
        updates.watch(replica_sets, versions, |r| Update::ReplicaSet(Box::new(r)));
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        let all = watcher::Config::default();
        updates.watch(services, all, |s| Update::Service(Box::new(s)));
        Self {
            updates,
            world: World::new(active_service),
        }
    }

    /// Waits for the next event (until `deadline`), applies it, and returns when it arrived;
    /// `None` at the deadline.
    pub async fn next(&mut self, deadline: Instant) -> Option<Seen> {
        let update = self.updates.next(deadline).await.ok()?;
        let seen = Seen::now();
        self.world.apply(update, seen);
        Some(seen)
    }
}
