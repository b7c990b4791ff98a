//! A model cluster for blue-green: ReplicaSets of pods with start-up delays, the active and
//! preview Services, and AnalysisRuns that reach the verdict the scenario chose.
//!
//! `apply` executes one intent and checks what must hold after *every* intent (the apply
//! stage may stop after any of them):
//! - BG1: the active Service is only pointed at a ReplicaSet whose pods (from before this plan)
//!   are all available;
//! - BG2: the ReplicaSet the active Service selects never loses pods below `replicas`, and the
//!   stable one keeps them while another version is active or a post-promotion run judges it;
//! - an aborted version loses its pods only once the active Service is back on stable and
//!   `abortScaleDownDelaySeconds` passed (never with a delay of 0).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};

use super::super::super::{Intent, Plan, RunKind, plan};
use super::super::fixtures::{persist, rs_name};
use super::super::model::{Driven, drive};
use crate::rollout::model::{
    BlueGreen, Observed, Persisted, ReplicaSetView, RunPhase, RunStatus, Strategy, ValidatedRollout,
};

pub const ACTIVE: &str = "active";
pub const PREVIEW: &str = "preview";

#[derive(Clone, Debug)]
pub struct Pod {
    /// `None`: never ready (a broken template).
    ready_at: Option<DateTime<Utc>>,
    /// Created by the plan being applied: not counted as serving before the next plan.
    fresh: bool,
}

#[derive(Clone, Debug)]
pub struct Rs {
    pub revision: i64,
    pub pods: Vec<Pod>,
    pub scale_down_at: Option<DateTime<Utc>>,
}

impl Rs {
    fn available(&self, now: DateTime<Utc>) -> i32 {
        count(
            self.pods
                .iter()
                .filter(|p| p.ready_at.is_some_and(|t| t <= now)),
        )
    }

    fn serving(&self, now: DateTime<Utc>) -> i32 {
        count(
            self.pods
                .iter()
                .filter(|p| !p.fresh && p.ready_at.is_some_and(|t| t <= now)),
        )
    }

    pub fn replicas(&self) -> i32 {
        count(self.pods.iter())
    }

    /// Replaces pods that would never become ready by pods ready at `now`.
    pub fn restart_broken(&mut self, now: DateTime<Utc>) {
        for pod in self.pods.iter_mut().filter(|p| p.ready_at.is_none()) {
            pod.ready_at = Some(now);
        }
    }
}

fn count<T>(it: impl Iterator<Item = T>) -> i32 {
    i32::try_from(it.count()).unwrap_or(i32::MAX)
}

/// The model cluster of one blue-green Rollout.
#[derive(Clone, Debug)]
pub struct BgModel {
    pub rollout: ValidatedRollout,
    pub rss: BTreeMap<String, Rs>,
    pub active: Option<String>,
    pub preview: Option<String>,
    pub persisted: Persisted,
    pub now: DateTime<Utc>,
    /// Pod start-up per hash; `None` never becomes ready. Default 0.
    pub startup: BTreeMap<String, Option<Duration>>,
    pub runs: Vec<RunStatus>,
    /// The phase new pre- and post-promotion runs take at once.
    pub pre_verdict: RunPhase,
    pub post_verdict: RunPhase,
    /// Since when the active Service selects stable during the current abort.
    returned_at: Option<DateTime<Utc>>,
    /// Versions that were ever promoted while a failed run judged them (must stay empty).
    pub trace: Vec<String>,
}

/// A blue-green Rollout: 4 replicas, template `v1`, both Services, immediate auto-promotion,
/// no analysis, 30 s delays.
pub fn bg_rollout(f: impl FnOnce(&mut BlueGreen)) -> ValidatedRollout {
    let mut r = super::super::fixtures::rollout().build();
    r.template_hash = "v1".into();
    let mut b = BlueGreen {
        active_service: ACTIVE.into(),
        preview_service: Some(PREVIEW.into()),
        preview_replicas: 4,
        auto_promotion: Some(std::time::Duration::ZERO),
        pre_promotion_analysis: false,
        post_promotion_analysis: false,
        scale_down_delay: std::time::Duration::from_secs(30),
        abort_scale_down_delay: Some(std::time::Duration::from_secs(30)),
    };
    f(&mut b);
    r.strategy = Strategy::BlueGreen(b);
    r
}

impl BgModel {
    /// `rollout` deployed and healthy.
    pub fn deployed(rollout: ValidatedRollout, now: DateTime<Utc>) -> Self {
        let mut m = Self::empty(rollout, now);
        m.converge();
        assert_eq!(
            m.persisted.stable_hash.as_deref(),
            Some("v1"),
            "{}",
            m.dump()
        );
        m
    }

    /// Nothing deployed yet.
    pub fn empty(rollout: ValidatedRollout, now: DateTime<Utc>) -> Self {
        Self {
            rollout,
            rss: BTreeMap::new(),
            active: None,
            preview: None,
            persisted: Persisted::default(),
            now,
            startup: BTreeMap::new(),
            runs: Vec::new(),
            pre_verdict: RunPhase::Successful,
            post_verdict: RunPhase::Successful,
            returned_at: None,
            trace: Vec::new(),
        }
    }

    pub fn blue_green(&self) -> &BlueGreen {
        match &self.rollout.strategy {
            Strategy::BlueGreen(b) => b,
            Strategy::Canary(_) => unreachable!("a blue-green model"),
        }
    }

    pub fn set_template(&mut self, hash: &str) {
        self.rollout.template_hash = hash.into();
        self.rollout.generation += 1;
        self.log(format!("user: template -> {hash}"));
    }

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

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    pub fn replicas(&self, hash: &str) -> i32 {
        self.rss.get(hash).map_or(0, Rs::replicas)
    }

    pub fn available(&self, hash: &str) -> i32 {
        self.rss.get(hash).map_or(0, |rs| rs.available(self.now))
    }

    /// Sets the phase of every still running pre- or post-promotion run (a finished run keeps
    /// its verdict).
    pub fn decide(&mut self, kind: RunKind, phase: RunPhase) {
        let tag = tag(kind);
        let open = |r: &&mut RunStatus| r.name.contains(tag) && !r.phase.is_completed();
        for run in self.runs.iter_mut().filter(open) {
            run.phase = phase;
            run.message = format!("metric error-rate: {}", phase.as_str());
        }
    }

    pub fn run_names(&self, kind: RunKind) -> Vec<String> {
        let tag = tag(kind);
        self.runs
            .iter()
            .filter(|r| r.name.contains(tag))
            .map(|r| r.name.clone())
            .collect()
    }

    pub fn observe(&self) -> Observed {
        let replica_sets = self
            .rss
            .iter()
            .map(|(hash, rs)| {
                let available = rs.available(self.now);
                ReplicaSetView {
                    name: rs_name(hash),
                    hash: hash.clone(),
                    revision: rs.revision,
                    replicas: rs.replicas(),
                    ready: available,
                    available,
                    scale_down_at: rs.scale_down_at,
                }
            })
            .collect();
        Observed {
            replica_sets,
            traffic: None,
            canary_service_hash: self.preview.clone(),
            stable_service_hash: self.active.clone(),
            persisted: self.persisted.clone(),
            analysis_runs: self.runs.clone(),
        }
    }

    pub fn plan(&self) -> Plan {
        plan(&self.rollout, &self.observe(), self.now)
    }

    /// Plan, apply every intent (checking each), write the status.
    pub fn reconcile(&mut self) -> Plan {
        drive::reconcile(self)
    }

    /// Applies the first `count` intents and, when `write_status`, the status (a crash loses
    /// the rest). Panics with the trace when an intent breaks an invariant.
    pub fn apply_plan(&mut self, p: &Plan, count: usize, write_status: bool) {
        let line = describe(p);
        self.log(line);
        if !p.status.abort {
            self.returned_at = None;
        } else if self.active == self.persisted.stable_hash {
            self.returned_at.get_or_insert(self.now);
        }
        for pod in self.rss.values_mut().flat_map(|rs| rs.pods.iter_mut()) {
            pod.fresh = false;
        }
        for intent in p.intents.iter().take(count) {
            if let Err(violation) = self.apply(intent, p) {
                panic!("{violation}\nintent: {intent:?}\n{}", self.dump());
            }
        }
        if let Err(violation) = self.check_plan(p) {
            panic!("{violation}\n{}", self.dump());
        }
        if write_status {
            self.persisted = persist(&self.persisted, &p.status);
        }
    }

    /// Reconciles until a plan has no intents and asks for no immediate look.
    pub fn converge(&mut self) -> Plan {
        drive::converge(self)
    }

    fn apply(&mut self, intent: &Intent, p: &Plan) -> Result<(), String> {
        self.check_intent(intent, p)?;
        self.execute(intent);
        if p.status.abort && self.active == self.persisted.stable_hash {
            self.returned_at.get_or_insert(self.now);
        }
        Ok(())
    }

    /// BG1, BG2 and the abort delay, before `intent` runs.
    fn check_intent(&self, intent: &Intent, p: &Plan) -> Result<(), String> {
        let n = self.rollout.replicas;
        match intent {
            Intent::PointService { service, hash } if service == ACTIVE => {
                let rs = self.rss.get(hash);
                let serving = rs.map_or(0, |rs| rs.serving(self.now));
                if serving < n || rs.is_none_or(|rs| rs.replicas() < n) {
                    return Err(format!(
                        "BG1: active Service pointed at {hash} with {serving}/{n} available"
                    ));
                }
            }
            Intent::ScaleReplicaSet { name, replicas } => {
                self.check_shrink(&hash_of(name), *replicas, p)?;
            }
            Intent::DeleteReplicaSet { name } => {
                let hash = hash_of(name);
                if self.replicas(&hash) > 0 {
                    return Err(format!("deleted {name} while it has pods"));
                }
                self.check_shrink(&hash, 0, p)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn check_shrink(&self, hash: &str, replicas: i32, p: &Plan) -> Result<(), String> {
        let n = self.rollout.replicas;
        if replicas >= n.min(self.replicas(hash)) {
            return Ok(());
        }
        if self.active.as_deref() == Some(hash) {
            return Err(format!(
                "BG2: scaled the active ReplicaSet {hash} to {replicas}"
            ));
        }
        let stable = self.persisted.stable_hash.as_deref();
        let judging = self
            .runs
            .iter()
            .any(|r| r.name.contains(tag(RunKind::PostPromotion)) && !r.phase.is_completed());
        if stable == Some(hash) && (self.active.as_deref() != stable || judging) {
            return Err(format!(
                "BG2: scaled stable {hash} to {replicas} while a rollback may need it"
            ));
        }
        let aborted = p.status.abort && hash == self.rollout.template_hash && replicas == 0;
        if aborted {
            let Some(delay) = self.blue_green().abort_scale_down_delay else {
                return Err("aborted version scaled down with abortScaleDownDelaySeconds 0".into());
            };
            let delay = Duration::from_std(delay).unwrap_or(Duration::MAX);
            if self.returned_at.is_none_or(|t| self.now < t + delay) {
                return Err(format!(
                    "aborted {hash} scaled down before the active Service was back on stable for \
                     abortScaleDownDelaySeconds"
                ));
            }
        }
        Ok(())
    }

    /// What must hold of a whole plan: a version becomes stable only while the active Service
    /// selects it, and never with a failed run judging it.
    fn check_plan(&self, p: &Plan) -> Result<(), String> {
        let Some(stable) = &p.status.stable_hash else {
            return Ok(());
        };
        if p.status.stable_hash == self.persisted.stable_hash {
            return Ok(());
        }
        if self.active.as_deref() != Some(stable.as_str()) {
            return Err(format!(
                "promoted {stable} while the active Service selects {:?}",
                self.active
            ));
        }
        // The runs that judged this attempt (an earlier, aborted attempt's runs do not count).
        let gating = [&p.status.step_run, &p.status.background_run];
        let failed = gating.into_iter().flatten().any(|g| {
            self.runs
                .iter()
                .any(|r| r.name == g.name && matches!(r.phase, RunPhase::Failed | RunPhase::Error))
        });
        if failed {
            return Err(format!(
                "invariant 4: promoted {stable} although a run failed"
            ));
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
                let mut rs = Rs {
                    revision: *revision,
                    pods: Vec::new(),
                    scale_down_at: None,
                };
                self.resize(&mut rs, hash, *replicas, now);
                self.rss.insert(hash.clone(), rs);
            }
            Intent::ScaleReplicaSet { name, replicas } => {
                let hash = hash_of(name);
                if let Some(mut rs) = self.rss.remove(&hash) {
                    self.resize(&mut rs, &hash, *replicas, now);
                    self.rss.insert(hash, rs);
                }
            }
            Intent::SetRevision { name, revision } => {
                if let Some(rs) = self.rss.get_mut(&hash_of(name)) {
                    rs.revision = *revision;
                }
            }
            Intent::SetScaleDownDeadline { name, at } => {
                if let Some(rs) = self.rss.get_mut(&hash_of(name)) {
                    rs.scale_down_at = *at;
                }
            }
            Intent::PointService { service, hash } => {
                let slot = if service == ACTIVE {
                    &mut self.active
                } else {
                    &mut self.preview
                };
                *slot = Some(hash.clone());
            }
            Intent::DeleteReplicaSet { name } => {
                self.rss.remove(&hash_of(name));
            }
            Intent::CreateAnalysisRun { name, kind } => {
                if !self.runs.iter().any(|r| &r.name == name) {
                    let phase = match kind {
                        RunKind::PostPromotion => self.post_verdict,
                        _ => self.pre_verdict,
                    };
                    self.runs.push(RunStatus {
                        name: name.clone(),
                        phase,
                        message: format!("metric error-rate: {}", phase.as_str()),
                    });
                }
            }
            Intent::TerminateAnalysisRun { name } => {
                // Argo's terminated runs end Successful; they gate nothing any more.
                if let Some(r) = self.runs.iter_mut().find(|r| &r.name == name) {
                    r.phase = RunPhase::Successful;
                }
            }
            Intent::SetTraffic(_) => panic!("blue-green never sets mesh traffic"),
        }
    }

    fn resize(&self, rs: &mut Rs, hash: &str, replicas: i32, now: DateTime<Utc>) {
        let startup = self
            .startup
            .get(hash)
            .copied()
            .unwrap_or(Some(Duration::zero()));
        let wanted = usize::try_from(replicas).unwrap_or(0);
        if rs.pods.len() > wanted {
            rs.pods.truncate(wanted);
        }
        while rs.pods.len() < wanted {
            rs.pods.push(Pod {
                ready_at: startup.map(|d| now + d),
                fresh: true,
            });
        }
    }

    pub fn log(&mut self, line: String) {
        self.trace
            .push(format!("[{}] {line}", self.now.format("%H:%M:%S")));
    }

    pub fn dump(&self) -> String {
        let mut s = String::from("trace:\n");
        for line in &self.trace {
            let _ = writeln!(s, "  {line}");
        }
        let _ = writeln!(
            s,
            "active={:?} preview={:?} stable={:?}",
            self.active, self.preview, self.persisted.stable_hash
        );
        for (hash, rs) in &self.rss {
            let _ = writeln!(
                s,
                "  rs {hash}: {}/{} available, deadline {:?}",
                rs.available(self.now),
                rs.replicas(),
                rs.scale_down_at
            );
        }
        s
    }
}

impl Driven for BgModel {
    fn plan(&self) -> Plan {
        BgModel::plan(self)
    }

    fn apply_plan(&mut self, p: &Plan, count: usize, write_status: bool) {
        BgModel::apply_plan(self, p, count, write_status);
    }

    fn dump(&self) -> String {
        BgModel::dump(self)
    }
}

fn tag(kind: RunKind) -> &'static str {
    match kind {
        RunKind::PostPromotion => "-post-",
        _ => "-pre-",
    }
}

fn hash_of(name: &str) -> String {
    name.rsplit('-').next().unwrap_or_default().to_owned()
}

fn describe(p: &Plan) -> String {
    let mut s = format!(
        "plan: phase={} stable={:?} requeue={:?} msg={:?} bg={:?}",
        p.status.phase.as_str(),
        p.status.stable_hash,
        p.requeue_after,
        p.status.message,
        p.status.blue_green
    );
    for i in &p.intents {
        let _ = write!(s, "\n    {i:?}");
    }
    for t in &p.transitions {
        let _ = write!(s, "\n    event {t:?}");
    }
    s
}
