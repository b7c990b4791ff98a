//! A model of the cluster the planner drives: ReplicaSets made of pods that become available
//! after a start-up delay (or never, for a broken template) and can fail readiness for a while,
//! Service selectors, and a mesh that applies `SetTraffic` faithfully.
//!
//! `apply` executes one intent and checks the safety invariants that must hold after *every*
//! intent (the apply stage may stop after any of them): no intent sends traffic to a version
//! with no available pod, no ReplicaSet that still receives traffic is scaled to zero, and,
//! without a mesh, no scale-down costs serving capacity.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::super::{Intent, Plan, plan};
use super::fixtures::{Routing, persist, routing_of, rs_name};
use crate::rollout::model::{
    Observed, Persisted, ReplicaSetView, RunPhase, RunStatus, ValidatedRollout,
};
use crate::traffic::{DesiredTraffic, HeaderRoute, MirrorRoute, ObservedTraffic, SubsetHashes};

/// What a model cluster offers the planner loop, for both strategies' models.
pub trait Driven {
    fn plan(&self) -> Plan;
    /// Applies the first `count` intents (checking each) and, when `write_status`, the status.
    fn apply_plan(&mut self, p: &Plan, count: usize, write_status: bool);
    fn dump(&self) -> String;
}

impl Driven for Model {
    fn plan(&self) -> Plan {
        Model::plan(self)
    }

    fn apply_plan(&mut self, p: &Plan, count: usize, write_status: bool) {
        Model::apply_plan(self, p, count, write_status);
    }

    fn dump(&self) -> String {
        Model::dump(self)
    }
}

/// The planner loop over any model cluster.
pub mod drive {
    use super::{Driven, Plan};

    /// One reconcile: plan, apply every intent (checking each), write the status.
    pub fn reconcile(m: &mut impl Driven) -> Plan {
        let p = m.plan();
        m.apply_plan(&p, p.intents.len(), true);
        p
    }

    /// Reconciles until a plan has no intents (time does not move). Returns that plan.
    pub fn converge(m: &mut impl Driven) -> Plan {
        for _ in 0..50 {
            let p = reconcile(m);
            // A plan without writes may still ask for an immediate look: a step completed in
            // that pass is persisted before the next step raises traffic.
            let again = p
                .requeue_after
                .is_some_and(|d| d <= std::time::Duration::from_millis(10));
            if p.intents.is_empty() && !again {
                return p;
            }
        }
        panic!("no convergence in 50 reconciles\n{}", m.dump());
    }
}

#[derive(Clone, Debug)]
pub struct Pod {
    /// `None`: never ready (a broken template).
    pub ready_at: Option<DateTime<Utc>>,
    pub failing_until: Option<DateTime<Utc>>,
    /// Created by the plan last applied: pods take time to start, so the invariant checks do not
    /// count it as serving before the next plan, even with a zero start-up delay.
    pub fresh: bool,
}

impl Pod {
    fn available(&self, now: DateTime<Utc>) -> bool {
        self.ready_at.is_some_and(|t| t <= now) && self.failing_until.is_none_or(|t| t <= now)
    }
}

#[derive(Clone, Debug)]
pub struct ModelRs {
    pub hash: String,
    pub revision: i64,
    pub scale_down_at: Option<DateTime<Utc>>,
    pub pods: Vec<Pod>,
}

impl ModelRs {
    pub fn available(&self, now: DateTime<Utc>) -> i32 {
        let n = self.pods.iter().filter(|p| p.available(now)).count();
        i32::try_from(n).unwrap_or(i32::MAX)
    }

    /// Available pods that existed before the plan being applied.
    pub fn serving(&self, now: DateTime<Utc>) -> i32 {
        let n = self
            .pods
            .iter()
            .filter(|p| p.available(now) && !p.fresh)
            .count();
        i32::try_from(n).unwrap_or(i32::MAX)
    }

    pub fn replicas(&self) -> i32 {
        i32::try_from(self.pods.len()).unwrap_or(i32::MAX)
    }
}

/// The mesh as it routes requests.
#[derive(Clone, Debug, Default)]
pub struct Mesh {
    pub weight: u8,
    pub header_routes: Vec<HeaderRoute>,
    pub mirror_routes: Vec<MirrorRoute>,
    pub subsets: Option<SubsetHashes>,
}

impl Mesh {
    pub fn canary_live(&self) -> bool {
        self.weight > 0 || !self.header_routes.is_empty() || !self.mirror_routes.is_empty()
    }

    pub fn stable_live(&self) -> bool {
        self.weight < 100
    }
}

/// The model cluster of one Rollout.
#[derive(Clone, Debug)]
pub struct Model {
    pub rollout: ValidatedRollout,
    pub rss: Vec<ModelRs>,
    pub mesh: Option<Mesh>,
    pub stable_service: Option<String>,
    pub canary_service: Option<String>,
    pub persisted: Persisted,
    pub now: DateTime<Utc>,
    /// Pod start-up time per template hash; `None` means the template is broken. Default 0.
    pub startup: BTreeMap<String, Option<chrono::Duration>>,
    /// Since when the mesh sends the canary nothing (abort delay check).
    pub canary_quiet_since: Option<DateTime<Utc>>,
    /// Since when the planner has decided the current release is aborted.
    pub aborted_since: Option<DateTime<Utc>>,
    pub trace: Vec<String>,
    /// AnalysisRuns the planner created.
    pub runs: Vec<RunStatus>,
    /// The phase a new AnalysisRun reaches at once. Inconclusive by default: the run pauses
    /// the Rollout until a promote, so scenarios decide analysis steps by user actions.
    pub run_verdict: RunPhase,
}

impl Model {
    /// An empty cluster for `rollout` (nothing deployed yet), at `now`.
    pub fn new(rollout: ValidatedRollout, now: DateTime<Utc>) -> Self {
        let mesh = (routing_of(&rollout) != Routing::None).then(Mesh::default);
        Self {
            rollout,
            rss: Vec::new(),
            mesh,
            stable_service: None,
            canary_service: None,
            persisted: Persisted::default(),
            now,
            startup: BTreeMap::new(),
            canary_quiet_since: None,
            aborted_since: None,
            trace: Vec::new(),
            runs: Vec::new(),
            run_verdict: RunPhase::Inconclusive,
        }
    }

    /// A cluster where `rollout`'s template has been deployed and is healthy.
    pub fn deployed(rollout: ValidatedRollout, now: DateTime<Utc>) -> Self {
        let mut m = Self::new(rollout, now);
        m.converge();
        assert_eq!(
            m.persisted.stable_hash.as_deref(),
            Some(m.rollout.template_hash.as_str()),
            "first deploy did not converge:\n{}",
            m.dump()
        );
        m
    }

    /// A model of an arbitrary observed world: available pods are up, the others never start;
    /// the canary traffic counts as quiet for long already. The mesh must have a single weight.
    pub fn from_observed(rollout: ValidatedRollout, o: &Observed, now: DateTime<Utc>) -> Self {
        let mut m = Self::new(rollout, now);
        m.rss = o
            .replica_sets
            .iter()
            .map(|rs| ModelRs {
                hash: rs.hash.clone(),
                revision: rs.revision,
                scale_down_at: rs.scale_down_at,
                pods: (0..rs.replicas.max(0))
                    .map(|i| Pod {
                        ready_at: (i < rs.available).then(|| now - chrono::Duration::seconds(1)),
                        failing_until: None,
                        fresh: false,
                    })
                    .collect(),
            })
            .collect();
        for rs in &o.replica_sets {
            m.startup.insert(rs.hash.clone(), None);
        }
        m.startup.insert(m.rollout.template_hash.clone(), None);
        if let (Some(mesh), Some(t)) = (m.mesh.as_mut(), o.traffic.as_ref()) {
            mesh.weight = t.canary_weight.expect("a single weight");
            mesh.subsets = t.subsets.clone();
            for name in &t.managed_routes {
                if name.starts_with('m') {
                    mesh.mirror_routes.push(MirrorRoute {
                        name: name.clone(),
                        percentage: 10,
                        matches: Vec::new(),
                    });
                } else {
                    mesh.header_routes.push(HeaderRoute {
                        name: name.clone(),
                        matches: Vec::new(),
                    });
                }
            }
        }
        m.stable_service = o.stable_service_hash.clone();
        m.canary_service = o.canary_service_hash.clone();
        m.persisted = o.persisted.clone();
        m.canary_quiet_since = Some(now - chrono::Duration::days(1));
        m
    }

    /// `rollout`'s template `v1` deployed and healthy, then the rollout's template applied
    /// (a release starts; nothing reconciled yet).
    pub fn releasing(rollout: ValidatedRollout, now: DateTime<Utc>) -> Self {
        let target = rollout.template_hash.clone();
        let mut first = rollout;
        first.template_hash = "v1".into();
        let mut m = Self::deployed(first, now);
        m.set_template(&target);
        m
    }

    /// `kubectl sluice promote`: the pause conditions removed.
    pub fn promote(&mut self) {
        self.log("user: promote".into());
        self.persisted.pause_conditions.clear();
    }

    pub fn promote_full(&mut self) {
        self.log("user: promote --full".into());
        self.persisted.promote_full = true;
    }

    pub fn abort(&mut self) {
        self.log("user: abort".into());
        self.persisted.abort = true;
    }

    pub fn retry(&mut self) {
        self.log("user: retry".into());
        self.persisted.abort = false;
    }

    pub fn rs(&self, hash: &str) -> Option<&ModelRs> {
        self.rss.iter().find(|rs| rs.hash == hash)
    }

    pub fn available(&self, hash: &str) -> i32 {
        self.rs(hash).map_or(0, |rs| rs.available(self.now))
    }

    pub fn replicas(&self, hash: &str) -> i32 {
        self.rs(hash).map_or(0, ModelRs::replicas)
    }

    pub fn weight(&self) -> Option<u8> {
        self.mesh.as_ref().map(|m| m.weight)
    }

    pub fn set_template(&mut self, hash: &str) {
        self.rollout.template_hash = hash.into();
        self.rollout.generation += 1;
        self.log(format!("user: template -> {hash}"));
    }

    pub fn log(&mut self, line: String) {
        self.trace
            .push(format!("[{}] {line}", self.now.format("%H:%M:%S")));
    }

    /// The hash the canary destination (Service or subset) selects.
    pub fn canary_destination(&self) -> Option<&str> {
        match routing_of(&self.rollout) {
            Routing::Host => self.canary_service.as_deref(),
            Routing::Subset => self
                .mesh
                .as_ref()?
                .subsets
                .as_ref()
                .map(|s| s.canary.as_str()),
            Routing::None => None,
        }
    }

    pub fn stable_destination(&self) -> Option<&str> {
        match routing_of(&self.rollout) {
            Routing::Host => self.stable_service.as_deref(),
            Routing::Subset => self
                .mesh
                .as_ref()?
                .subsets
                .as_ref()
                .map(|s| s.stable.as_str()),
            Routing::None => None,
        }
    }

    /// The hashes that receive live traffic through the mesh right now.
    pub fn live_destinations(&self) -> Vec<Option<String>> {
        let Some(mesh) = &self.mesh else {
            return Vec::new();
        };
        let mut live = Vec::new();
        if mesh.canary_live() {
            live.push(self.canary_destination().map(str::to_owned));
        }
        if mesh.stable_live() {
            live.push(self.stable_destination().map(str::to_owned));
        }
        live
    }

    /// Available pods of `hash` that the last applied plan did not just create.
    pub fn serving(&self, hash: &str) -> i32 {
        self.rs(hash).map_or(0, |rs| rs.serving(self.now))
    }

    /// Live destinations that select no serving pod, as a description.
    pub fn dead_destinations(&self) -> Vec<String> {
        let mut dead = Vec::new();
        if let Some(mesh) = &self.mesh {
            if mesh.canary_live() {
                match self.canary_destination() {
                    Some(h) if self.serving(h) > 0 => {}
                    other => dead.push(format!("canary -> {other:?}")),
                }
            }
            if mesh.stable_live() {
                match self.stable_destination() {
                    Some(h) if self.serving(h) > 0 => {}
                    other => dead.push(format!("stable -> {other:?}")),
                }
            }
        }
        dead
    }

    fn total_serving(&self) -> i32 {
        self.rss.iter().map(|rs| rs.serving(self.now)).sum()
    }

    /// What `observe` would hand the planner.
    pub fn observe(&self) -> Observed {
        let replica_sets = self
            .rss
            .iter()
            .map(|rs| {
                let available = rs.available(self.now);
                ReplicaSetView {
                    name: rs_name(&rs.hash),
                    hash: rs.hash.clone(),
                    revision: rs.revision,
                    replicas: rs.replicas(),
                    ready: available,
                    available,
                    scale_down_at: rs.scale_down_at,
                }
            })
            .collect();
        let traffic = self.mesh.as_ref().map(|m| ObservedTraffic {
            canary_weight: Some(m.weight),
            managed_routes: m
                .header_routes
                .iter()
                .map(|r| r.name.clone())
                .chain(m.mirror_routes.iter().map(|r| r.name.clone()))
                .collect(),
            subsets: m.subsets.clone(),
        });
        Observed {
            replica_sets,
            traffic,
            canary_service_hash: self.canary_service.clone(),
            stable_service_hash: self.stable_service.clone(),
            persisted: self.persisted.clone(),
            analysis_runs: self.runs.clone(),
        }
    }

    pub fn plan(&self) -> Plan {
        plan(&self.rollout, &self.observe(), self.now)
    }

    /// One reconcile: plan, apply every intent (checking each), write the status.
    pub fn reconcile(&mut self) -> Plan {
        drive::reconcile(self)
    }

    /// Applies the first `count` intents and, when `write_status`, the status. Panics with the
    /// trace when an intent breaks a safety invariant.
    pub fn apply_plan(&mut self, p: &Plan, count: usize, write_status: bool) {
        let line = self.describe_plan(p);
        self.log(line);
        for pod in self.rss.iter_mut().flat_map(|rs| rs.pods.iter_mut()) {
            pod.fresh = false;
        }
        self.note_canary_traffic();
        if !p.status.abort {
            self.aborted_since = None;
        } else if self.aborted_since.is_none() {
            self.aborted_since = Some(self.now);
        }
        for intent in p.intents.iter().take(count) {
            if let Err(violation) = self.apply(intent) {
                panic!("{violation}\nintent: {intent:?}\n{}", self.dump());
            }
        }
        if write_status {
            self.persisted = persist(&self.persisted, &p.status);
        }
    }

    fn describe_plan(&self, p: &Plan) -> String {
        let mut s = format!(
            "plan: phase={} step={:?} stable={:?} requeue={:?} msg={:?}",
            p.status.phase.as_str(),
            p.status.current_step_index,
            p.status.stable_hash,
            p.requeue_after,
            p.status.message
        );
        for i in &p.intents {
            let _ = write!(s, "\n    {i:?}");
        }
        for t in &p.transitions {
            let _ = write!(s, "\n    event {t:?}");
        }
        s
    }

    /// Reconciles until a plan has no intents (time does not move). Returns that plan.
    pub fn converge(&mut self) -> Plan {
        drive::converge(self)
    }

    pub fn advance(&mut self, d: chrono::Duration) {
        self.now += d;
    }

    /// Executes one intent, then checks what must hold after every intent.
    pub fn apply(&mut self, intent: &Intent) -> Result<(), String> {
        let dead_before = self.dead_destinations();
        // When nothing that takes traffic serves, moving it between dead versions changes nothing.
        let nothing_served = dead_before.len() == self.live_destinations().len();
        let capacity_before = self.total_serving();
        self.check_scale_down_allowed(intent)?;
        self.execute(intent);
        let dead_after = self.dead_destinations();
        // Which side (canary or stable) lost its last serving pod: moving a side that served
        // nothing before from one dead version to another changes nothing.
        let side = |d: &String| d.split(' ').next().unwrap_or_default().to_owned();
        let sides_before: Vec<String> = dead_before.iter().map(side).collect();
        if let Some(dead) = dead_after
            .iter()
            .find(|d| !sides_before.contains(&side(d)) && !nothing_served)
        {
            return Err(format!(
                "invariant 2: this intent sent traffic to a version with no available pod ({dead})"
            ));
        }
        if let Some(mesh) = &self.mesh
            && mesh.weight > 100
        {
            return Err(format!("invariant 1: weight {} above 100", mesh.weight));
        }
        let shrinks = matches!(
            intent,
            Intent::ScaleReplicaSet { .. } | Intent::DeleteReplicaSet { .. }
        );
        if self.mesh.is_none() && shrinks {
            let wanted = self.rollout.replicas.min(capacity_before);
            if self.total_serving() < wanted {
                return Err(format!(
                    "basic canary: scale-down dropped available pods from {capacity_before} to {}",
                    self.total_serving()
                ));
            }
        }
        Ok(())
    }

    fn check_scale_down_allowed(&self, intent: &Intent) -> Result<(), String> {
        let (name, to_zero) = match intent {
            Intent::ScaleReplicaSet { name, replicas } => (name, *replicas == 0),
            Intent::DeleteReplicaSet { name } => (name, true),
            _ => return Ok(()),
        };
        let Some(rs) = self.rss.iter().find(|rs| rs_name(&rs.hash) == *name) else {
            return Err(format!("intent names an unknown ReplicaSet {name}"));
        };
        if matches!(intent, Intent::DeleteReplicaSet { .. }) && rs.replicas() > 0 {
            return Err(format!("deleted {name} while it still has pods"));
        }
        let live = self.live_destinations();
        if to_zero && rs.replicas() > 0 && live.contains(&Some(rs.hash.clone())) {
            return Err(format!(
                "invariant 3: scaled {name} to zero while the mesh still sends it traffic"
            ));
        }
        let aborted = self.aborted_since.is_some()
            && rs.hash == self.rollout.template_hash
            && self.canary_destination() == Some(rs.hash.as_str());
        if to_zero && aborted && self.mesh.is_some() && rs.replicas() > 0 {
            let Some(delay) = super::fixtures::canary_of(&self.rollout).abort_scale_down_delay
            else {
                return Err("aborted canary scaled down with abortScaleDownDelaySeconds 0".into());
            };
            let delay = super::super::pause::chrono_duration(delay);
            let Some(quiet) = self.canary_quiet_since else {
                return Err(
                    "invariant 3: aborted canary scaled down before traffic showed 0".into(),
                );
            };
            if self.now < quiet + delay {
                return Err(format!(
                    "invariant 3: aborted canary scaled down {}s after its traffic stopped, \
                     before abortScaleDownDelay",
                    (self.now - quiet).num_seconds()
                ));
            }
        }
        Ok(())
    }

    fn execute(&mut self, intent: &Intent) {
        let now = self.now;
        match intent {
            Intent::CreateReplicaSet {
                hash,
                replicas,
                revision,
            } => {
                assert!(self.rs(hash).is_none(), "created {hash} twice");
                let mut rs = ModelRs {
                    hash: hash.clone(),
                    revision: *revision,
                    scale_down_at: None,
                    pods: Vec::new(),
                };
                self.scale(&mut rs, *replicas, now);
                self.rss.push(rs);
            }
            Intent::ScaleReplicaSet { name, replicas } => {
                let mut rs = self.take(name);
                self.scale(&mut rs, *replicas, now);
                self.rss.push(rs);
            }
            Intent::SetRevision { name, revision } => self.rs_mut(name).revision = *revision,
            Intent::SetScaleDownDeadline { name, at } => self.rs_mut(name).scale_down_at = *at,
            Intent::PointService { service, hash } => {
                let c = super::fixtures::canary_of(&self.rollout);
                if c.stable_service.as_deref() == Some(service) {
                    self.stable_service = Some(hash.clone());
                } else if c.canary_service.as_deref() == Some(service) {
                    self.canary_service = Some(hash.clone());
                } else {
                    panic!("pointed unknown Service {service}");
                }
            }
            Intent::SetTraffic(t) => self.set_traffic(t),
            Intent::DeleteReplicaSet { name } => {
                self.take(name);
            }
            Intent::CreateAnalysisRun { name, .. } => {
                if !self.runs.iter().any(|r| &r.name == name) {
                    let phase = self.run_verdict;
                    self.runs.push(RunStatus {
                        name: name.clone(),
                        phase,
                        message: String::new(),
                    });
                }
            }
            Intent::TerminateAnalysisRun { name } => {
                for run in self.runs.iter_mut().filter(|r| &r.name == name) {
                    if !run.phase.is_completed() {
                        run.phase = RunPhase::Successful;
                    }
                }
            }
        }
        self.rss.sort_by_key(|rs| rs.revision);
        self.note_canary_traffic();
    }

    fn set_traffic(&mut self, t: &DesiredTraffic) {
        let mesh = self.mesh.as_mut().expect("SetTraffic without a mesh");
        if let Some(s) = &t.subsets {
            mesh.subsets = Some(s.clone());
        }
        mesh.weight = t.canary_weight;
        mesh.header_routes = t.header_routes.clone();
        mesh.mirror_routes = t.mirror_routes.clone();
    }

    fn note_canary_traffic(&mut self) {
        let quiet = self.mesh.as_ref().is_some_and(|m| !m.canary_live());
        if !quiet {
            self.canary_quiet_since = None;
        } else if self.canary_quiet_since.is_none() {
            self.canary_quiet_since = Some(self.now);
        }
    }

    /// Scale-down removes pods that are not available first, then the newest.
    fn scale(&self, rs: &mut ModelRs, replicas: i32, now: DateTime<Utc>) {
        let replicas = usize::try_from(replicas.max(0)).unwrap_or(0);
        if replicas < rs.pods.len() {
            rs.pods.sort_by_key(|p| !p.available(now));
            rs.pods.truncate(replicas);
        }
        let startup = self
            .startup
            .get(&rs.hash)
            .copied()
            .unwrap_or(Some(chrono::Duration::zero()));
        while rs.pods.len() < replicas {
            rs.pods.push(Pod {
                ready_at: startup.map(|d| now + d),
                failing_until: None,
                fresh: true,
            });
        }
    }

    fn take(&mut self, name: &str) -> ModelRs {
        let i = self
            .rss
            .iter()
            .position(|rs| rs_name(&rs.hash) == name)
            .unwrap_or_else(|| panic!("no ReplicaSet {name}"));
        self.rss.remove(i)
    }

    fn rs_mut(&mut self, name: &str) -> &mut ModelRs {
        self.rss
            .iter_mut()
            .find(|rs| rs_name(&rs.hash) == name)
            .unwrap_or_else(|| panic!("no ReplicaSet {name}"))
    }

    /// Makes `count` available pods of `hash` fail readiness for `duration`.
    pub fn fail_pods(&mut self, hash: &str, count: usize, duration: chrono::Duration) {
        let now = self.now;
        if let Some(rs) = self.rss.iter_mut().find(|rs| rs.hash == hash) {
            for pod in rs.pods.iter_mut().filter(|p| p.available(now)).take(count) {
                pod.failing_until = Some(now + duration);
            }
        }
        self.log(format!(
            "world: {count} pods of {hash} fail for {}s",
            duration.num_seconds()
        ));
    }

    /// The next moment a pod changes readiness on its own, if any.
    pub fn next_pod_change(&self) -> Option<DateTime<Utc>> {
        self.rss
            .iter()
            .flat_map(|rs| rs.pods.iter())
            .flat_map(|p| [p.ready_at, p.failing_until])
            .flatten()
            .filter(|t| *t > self.now)
            .min()
    }

    /// The world and the trace, for a failure message.
    pub fn dump(&self) -> String {
        let mut s = String::from("--- trace (last 60) ---\n");
        let skip = self.trace.len().saturating_sub(60);
        for line in &self.trace[skip..] {
            s.push_str(line);
            s.push('\n');
        }
        let _ = writeln!(s, "--- world at {} ---", self.now.format("%H:%M:%S"));
        let _ = writeln!(s, "rollout: {:?}", self.rollout);
        for rs in &self.rss {
            let _ = writeln!(
                s,
                "rs {} rev {} replicas {} available {} scale_down_at {:?}",
                rs.hash,
                rs.revision,
                rs.replicas(),
                rs.available(self.now),
                rs.scale_down_at
            );
        }
        let _ = writeln!(
            s,
            "mesh: {:?}\nservices: stable={:?} canary={:?}\npersisted: {:?}",
            self.mesh, self.stable_service, self.canary_service, self.persisted
        );
        s
    }
}
