//! What the demo knows about one release at a moment: the Rollout, its AnalysisRuns, the route
//! weights read back from the VirtualService, and the ReplicaSets' sizes. Built only from
//! watch events ([`Update`]), read through small pure accessors.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::DynamicObject;
use serde_json::Value;
use sluice_crds::{AnalysisPhase, AnalysisRun, Measurement, MetricResult, Rollout, RolloutPhase};

use crate::watch::Deletable;
pub use crate::watch::{HASH_LABEL, ROLLOUT_LABEL, WatchedRollout};

use super::manifests::Target;

/// One watch event, already decoded.
#[derive(Clone, Debug)]
pub enum Update {
    Rollout(Box<Rollout>),
    Run(Box<AnalysisRun>),
    VirtualService(Box<DynamicObject>),
    ReplicaSet(Box<ReplicaSet>),
    /// The object in it was deleted.
    Deleted(Box<Update>),
}

/// Which kind of object an event was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Rollout,
    Run,
    VirtualService,
    ReplicaSet,
}

/// The object the last event was about. Resource versions of one API server are etcd
/// revisions, so they order writes across kinds (the end-to-end tests rely on it to check
/// that traffic moved before pods did).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub name: String,
    pub resource_version: Option<u64>,
}

impl Deletable for Update {
    fn deleted(self) -> Self {
        Update::Deleted(Box::new(self))
    }
}

impl Update {
    fn change(&self) -> Change {
        let (kind, meta) = match self {
            Update::Rollout(o) => (ChangeKind::Rollout, &o.metadata),
            Update::Run(o) => (ChangeKind::Run, &o.metadata),
            Update::VirtualService(o) => (ChangeKind::VirtualService, &o.metadata),
            Update::ReplicaSet(o) => (ChangeKind::ReplicaSet, &o.metadata),
            Update::Deleted(inner) => return inner.change(),
        };
        Change {
            kind,
            name: meta.name.clone().unwrap_or_default(),
            resource_version: meta.resource_version.as_ref().and_then(|v| v.parse().ok()),
        }
    }
}

/// Route weights read back from the VirtualService.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeshWeights {
    pub stable: i64,
    pub canary: i64,
}

/// A ReplicaSet's size: wanted and available pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replicas {
    pub spec: i32,
    pub available: i32,
}

impl Replicas {
    /// The size of `rs`: wanted pods as in its spec (Kubernetes' default of 1 when unset),
    /// available pods as in its status (0 when unset).
    pub fn of(rs: &ReplicaSet) -> Self {
        Self {
            spec: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            available: rs
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0),
        }
    }
}

/// Which gate a run belongs to, as named in the Rollout status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunRole {
    Step,
    Background,
}

impl RunRole {
    pub fn label(self) -> &'static str {
        match self {
            RunRole::Step => "step analysis",
            RunRole::Background => "background analysis",
        }
    }
}

/// Everything watched, as last seen.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub target: Option<Target>,
    pub rollout: Option<Rollout>,
    pub runs: BTreeMap<String, AnalysisRun>,
    pub mesh: Option<MeshWeights>,
    /// By pod-template hash; only the followed Rollout's ReplicaSets.
    pub replica_sets: BTreeMap<String, Replicas>,
    /// What the last event was about.
    pub last: Option<Change>,
}

impl WatchedRollout for World {
    fn watched_rollout(&self) -> Option<&Rollout> {
        self.rollout.as_ref()
    }
}

impl World {
    pub fn new(target: Target) -> Self {
        Self {
            target: Some(target),
            ..Self::default()
        }
    }

    /// Records one event.
    pub fn apply(&mut self, update: Update) {
        self.last = Some(update.change());
        match update {
            Update::Rollout(r) => self.rollout = Some(*r),
            Update::Run(run) => {
                let name = run.metadata.name.clone().unwrap_or_default();
                self.runs.insert(name, *run);
            }
            Update::VirtualService(vs) => {
                if let Some(target) = &self.target {
                    self.mesh = route_weights(&vs.data, target);
                }
            }
            Update::ReplicaSet(rs) => self.record_replica_set(&rs),
            Update::Deleted(inner) => self.forget(*inner),
        }
    }

    fn forget(&mut self, deleted: Update) {
        match deleted {
            Update::Rollout(_) => self.rollout = None,
            Update::Run(run) => {
                self.runs
                    .remove(run.metadata.name.as_deref().unwrap_or_default());
            }
            Update::VirtualService(_) => self.mesh = None,
            Update::ReplicaSet(rs) => {
                if let Some(hash) = rs.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL)) {
                    self.replica_sets.remove(hash);
                }
            }
            Update::Deleted(inner) => self.forget(*inner),
        }
    }

    fn record_replica_set(&mut self, rs: &ReplicaSet) {
        let owner = self.target.as_ref().map(|t| t.rollout.as_str());
        let owned = rs
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Rollout" && Some(o.name.as_str()) == owner);
        let hash = rs.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL));
        if let (true, Some(hash)) = (owned, hash) {
            self.replica_sets.insert(hash.clone(), Replicas::of(rs));
        }
    }

    pub fn generation(&self) -> Option<i64> {
        self.rollout.as_ref()?.metadata.generation
    }

    /// Whether the controller has seen the Rollout's current spec.
    pub fn observed(&self) -> bool {
        let observed = self.status().and_then(|s| s.observed_generation);
        observed.is_some() && observed >= self.generation()
    }

    /// The canary weight in the status and whether it was verified by reading it back.
    pub fn status_weight(&self) -> Option<(i32, bool)> {
        let weights = self.status()?.canary.as_ref()?.weights.as_ref()?;
        Some((weights.canary.weight.get(), weights.verified == Some(true)))
    }

    /// `(index, step count)`.
    pub fn step(&self) -> Option<(i32, usize)> {
        let index = self.status()?.current_step_index?;
        Some((index, self.target.as_ref().map_or(0, |t| t.steps)))
    }

    /// Whether `hash` is released: Healthy, stable and current, without an abort.
    pub fn released(&self, hash: &str) -> bool {
        self.observed()
            && self.phase() == Some(RolloutPhase::Healthy)
            && self.stable_hash() == Some(hash)
            && self.current_hash() == Some(hash)
            && !self.aborted()
    }

    /// The runs named in the Rollout status, with their role.
    pub fn current_runs(&self) -> Vec<(RunRole, &str)> {
        let Some(canary) = self.status().and_then(|s| s.canary.as_ref()) else {
            return Vec::new();
        };
        let step = canary.current_step_analysis_run_status.as_ref();
        let background = canary.current_background_analysis_run_status.as_ref();
        [(RunRole::Step, step), (RunRole::Background, background)]
            .into_iter()
            .filter_map(|(role, s)| Some((role, s?.name.as_str())))
            .collect()
    }

    pub fn run(&self, name: &str) -> Option<&AnalysisRun> {
        self.runs.get(name)
    }

    pub fn replicas(&self, hash: &str) -> Option<Replicas> {
        self.replica_sets.get(hash).copied()
    }
}

/// A run's phase.
pub fn run_phase(run: &AnalysisRun) -> Option<AnalysisPhase> {
    run.status.as_ref()?.phase
}

/// A run's metric results.
pub fn metric_results(run: &AnalysisRun) -> &[MetricResult] {
    run.status
        .as_ref()
        .map_or(&[], |s| s.metric_results.as_slice())
}

/// The newest measurement of a metric result.
pub fn latest(result: &MetricResult) -> Option<&Measurement> {
    result.measurements.last()
}

/// The conditions of `metric` in the run's spec, as written.
pub fn conditions(run: &AnalysisRun, metric: &str) -> Vec<String> {
    let Some(m) = run.spec.metrics.iter().find(|m| m.name == metric) else {
        return Vec::new();
    };
    let success = m
        .success_condition
        .iter()
        .map(|c| format!("successCondition: {c}"));
    let failure = m
        .failure_condition
        .iter()
        .map(|c| format!("failureCondition: {c}"));
    success.chain(failure).collect()
}

/// The `(stable, canary)` weights of the followed route: the route named in the Rollout, or
/// the only `http` route. Destinations are matched by the Service name (short or qualified
/// host); a destination without a weight counts 0 unless it is the only one.
pub fn route_weights(vs: &Value, target: &Target) -> Option<MeshWeights> {
    let routes = vs.pointer("/spec/http")?.as_array()?;
    let route = match &target.route {
        Some(name) => routes
            .iter()
            .find(|r| r["name"].as_str() == Some(name.as_str()))?,
        None => routes.first()?,
    };
    let destinations = route["route"].as_array()?;
    let weight_of = |service: &str| -> i64 {
        destinations
            .iter()
            .filter(|d| short_host(&d["destination"]["host"]) == Some(service))
            .map(|d| {
                d["weight"]
                    .as_i64()
                    .unwrap_or(i64::from(destinations.len() == 1) * 100)
            })
            .sum()
    };
    Some(MeshWeights {
        stable: weight_of(&target.stable_service),
        canary: weight_of(&target.canary_service),
    })
}

fn short_host(host: &Value) -> Option<&str> {
    host.as_str()?.split('.').next()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::demo::fixtures::{rollout, rs, target, vs, world};

    #[test]
    fn weights_come_from_the_named_route_by_service() {
        let vs = json!({"spec": {"http": [
            {"name": "header", "route": [{"destination": {"host": "shop-canary"}}]},
            {"name": "primary", "route": [
                {"destination": {"host": "shop-stable.ns.svc.cluster.local"}, "weight": 80},
                {"destination": {"host": "shop-canary"}, "weight": 20},
            ]},
        ]}});
        assert_eq!(
            route_weights(&vs, &target()),
            Some(MeshWeights {
                stable: 80,
                canary: 20
            })
        );
    }

    #[test]
    fn a_missing_route_is_unknown_and_a_missing_weight_is_zero() {
        let vs = json!({"spec": {"http": [{"name": "other", "route": []}]}});
        assert_eq!(route_weights(&vs, &target()), None);
        let vs = json!({"spec": {"http": [{"name": "primary", "route": [
            {"destination": {"host": "shop-stable"}, "weight": 100},
            {"destination": {"host": "shop-canary"}},
        ]}]}});
        assert_eq!(route_weights(&vs, &target()).map(|w| w.canary), Some(0));
    }

    #[test]
    fn deletions_are_forgotten() {
        let mut w = world([rollout(json!({"phase": "Healthy"})), vs(100, 0), rs("a", 2)]);
        assert_eq!(
            w.last.as_ref().map(|c| c.kind),
            Some(ChangeKind::ReplicaSet)
        );
        for update in [rollout(json!({})), vs(100, 0), rs("a", 2)] {
            w.apply(Update::Deleted(Box::new(update)));
        }
        assert!(w.rollout.is_none() && w.mesh.is_none() && w.replica_sets.is_empty());
    }

    #[test]
    fn only_the_followed_rollouts_replica_sets_count() {
        let mut world = World::new(target());
        let rs = |owner: &str, hash: &str, replicas: i32| {
            let rs: ReplicaSet = serde_json::from_value(json!({
                "metadata": {"name": format!("x-{hash}"), "labels": {HASH_LABEL: hash},
                    "ownerReferences": [{"apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
                        "name": owner, "uid": "u"}]},
                "spec": {"replicas": replicas, "selector": {}},
            }))
            .unwrap();
            Update::ReplicaSet(Box::new(rs))
        };
        world.apply(rs("shop", "a", 4));
        world.apply(rs("other", "b", 1));
        world.apply(rs("shop", "a", 0));
        assert_eq!(world.replicas("a").map(|r| r.spec), Some(0));
        assert_eq!(world.replicas("b"), None);
    }
}
