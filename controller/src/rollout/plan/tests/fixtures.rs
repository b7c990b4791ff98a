//! Fixture builders for planner tests: a [`ValidatedRollout`] and an [`Observed`] world, built
//! in the words of a scenario (`rollout().steps([set_weight(20), pause(None)])`,
//! `world(&r).stable("v1").canary("v2", 1, 1).weight(20).at_step(1)`), and helpers that read a
//! [`Plan`] by meaning (the weight it sets, the replicas it asks for) rather than by its exact
//! intent list.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::super::{Intent, NextStatus, Plan, Transition};
use crate::rollout::model::{
    Canary, CanaryScale, Observed, PauseCondition, PauseReason, Persisted, ReplicaSetView, Step,
    Strategy, ValidatedRollout,
};
use crate::traffic::{
    DesiredTraffic, HeaderMatch, HeaderRoute, MirrorRoute, ObservedTraffic, RequestMatch,
    StringMatch, SubsetHashes,
};

pub const ROLLOUT: &str = "app";
pub const STABLE_SVC: &str = "app-stable";
pub const CANARY_SVC: &str = "app-canary";

/// A fixed instant, so tests read as "t0 + 30 s".
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap()
}

pub fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// Name of the ReplicaSet of a pod-template hash.
pub fn rs_name(hash: &str) -> String {
    format!("{ROLLOUT}-{hash}")
}

/// How traffic is split between the versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// Istio with canary and stable Services (host-level split).
    Host,
    /// Istio with DestinationRule subsets, no Services to point.
    Subset,
    /// No mesh: the weight is the share of pods.
    None,
}

// ----------------------------------------------------------------------------------------------
// Steps
// ----------------------------------------------------------------------------------------------

pub fn set_weight(w: u8) -> Step {
    Step::SetWeight(w)
}

/// `pause: {}` with `None`, `pause: {duration: Ns}` with `Some(N)`.
pub fn pause(secs: Option<u64>) -> Step {
    Step::Pause(secs.map(Duration::from_secs))
}

pub fn analysis() -> Step {
    Step::Analysis
}

pub fn canary_replicas(n: i32) -> Step {
    Step::SetCanaryScale(CanaryScale::Replicas(n))
}

pub fn canary_scale_weight(w: u8) -> Step {
    Step::SetCanaryScale(CanaryScale::Weight(w))
}

pub fn match_traffic_weight() -> Step {
    Step::SetCanaryScale(CanaryScale::MatchTrafficWeight)
}

pub fn header_route(name: &str, header: &str, value: &str) -> Step {
    Step::SetHeaderRoute(HeaderRoute {
        name: name.into(),
        matches: vec![HeaderMatch {
            header_name: header.into(),
            value: StringMatch::Exact(value.into()),
        }],
    })
}

pub fn remove_header_route(name: &str) -> Step {
    Step::SetHeaderRoute(HeaderRoute {
        name: name.into(),
        matches: Vec::new(),
    })
}

pub fn mirror_route(name: &str, percentage: u8) -> Step {
    Step::SetMirrorRoute(MirrorRoute {
        name: name.into(),
        percentage,
        matches: vec![RequestMatch {
            method: Some(StringMatch::Exact("GET".into())),
            ..RequestMatch::default()
        }],
    })
}

pub fn remove_mirror_route(name: &str) -> Step {
    Step::SetMirrorRoute(MirrorRoute {
        name: name.into(),
        percentage: 0,
        matches: Vec::new(),
    })
}

// ----------------------------------------------------------------------------------------------
// Rollout
// ----------------------------------------------------------------------------------------------

/// Builds a [`ValidatedRollout`]: 4 replicas, template `v2`, Istio host-level split, no steps,
/// 30 s scale-down delays, 600 s progress deadline.
#[derive(Clone, Debug)]
pub struct RolloutBuilder(ValidatedRollout);

impl ValidatedRollout {
    pub fn test() -> RolloutBuilder {
        RolloutBuilder(ValidatedRollout {
            name: "web".into(),
            replicas: 4,
            template_hash: "v2".into(),
            min_ready_seconds: 0,
            revision_history_limit: 10,
            progress_deadline: Duration::from_secs(600),
            progress_deadline_abort: false,
            paused: false,
            generation: 1,
            strategy: Strategy::Canary(Canary {
                steps: Vec::new(),
                traffic_routing: true,
                subset_split: false,
                canary_service: Some(CANARY_SVC.into()),
                stable_service: Some(STABLE_SVC.into()),
                scale_down_delay: Duration::from_secs(30),
                abort_scale_down_delay: Some(Duration::from_secs(30)),
                background_analysis: None,
            }),
        })
    }
}

pub fn rollout() -> RolloutBuilder {
    ValidatedRollout::test()
}

impl RolloutBuilder {
    fn canary(&mut self) -> &mut Canary {
        let Strategy::Canary(c) = &mut self.0.strategy else {
            panic!("not a canary Rollout");
        };
        c
    }

    pub fn replicas(mut self, n: i32) -> Self {
        self.0.replicas = n;
        self
    }

    pub fn steps(mut self, steps: impl IntoIterator<Item = Step>) -> Self {
        self.canary().steps = steps.into_iter().collect();
        self
    }

    /// The current pod template's hash.
    pub fn template(mut self, hash: &str) -> Self {
        self.0.template_hash = hash.into();
        self
    }

    pub fn routing(mut self, routing: Routing) -> Self {
        let c = self.canary();
        c.traffic_routing = routing != Routing::None;
        c.subset_split = routing == Routing::Subset;
        let services = routing == Routing::Host;
        c.canary_service = services.then(|| CANARY_SVC.into());
        c.stable_service = services.then(|| STABLE_SVC.into());
        self
    }

    pub fn paused(mut self, paused: bool) -> Self {
        self.0.paused = paused;
        self
    }

    pub fn progress_deadline(mut self, secs: u64) -> Self {
        self.0.progress_deadline = Duration::from_secs(secs);
        self
    }

    pub fn progress_deadline_abort(mut self) -> Self {
        self.0.progress_deadline_abort = true;
        self
    }

    pub fn scale_down_delay(mut self, secs: u64) -> Self {
        self.canary().scale_down_delay = Duration::from_secs(secs);
        self
    }

    pub fn abort_scale_down_delay(mut self, secs: u64) -> Self {
        // 0 keeps the aborted canary, as `abortScaleDownDelaySeconds: 0` does.
        self.canary().abort_scale_down_delay = (secs > 0).then(|| Duration::from_secs(secs));
        self
    }

    pub fn history(mut self, limit: usize) -> Self {
        self.0.revision_history_limit = limit;
        self
    }

    pub fn build(self) -> ValidatedRollout {
        self.0
    }
}

pub fn canary_of(r: &ValidatedRollout) -> &Canary {
    let Strategy::Canary(c) = &r.strategy else {
        panic!("not a canary Rollout");
    };
    c
}

pub fn routing_of(r: &ValidatedRollout) -> Routing {
    let c = canary_of(r);
    match (c.traffic_routing, c.subset_split) {
        (false, _) => Routing::None,
        (true, true) => Routing::Subset,
        (true, false) => Routing::Host,
    }
}

// ----------------------------------------------------------------------------------------------
// World
// ----------------------------------------------------------------------------------------------

/// Builds an [`Observed`] consistent with the rollout's routing: the mesh is read back only with
/// traffic routing, Services only when the rollout names them, subsets only with a subset split.
#[derive(Clone, Debug)]
pub struct WorldBuilder {
    rollout: ValidatedRollout,
    observed: Observed,
}

pub fn world(r: &ValidatedRollout) -> WorldBuilder {
    let routing = routing_of(r);
    let observed = Observed {
        traffic: (routing != Routing::None).then(|| ObservedTraffic {
            canary_weight: Some(0),
            managed_routes: Vec::new(),
            subsets: None,
        }),
        ..Observed::default()
    };
    WorldBuilder {
        rollout: r.clone(),
        observed,
    }
}

impl WorldBuilder {
    fn routing(&self) -> Routing {
        routing_of(&self.rollout)
    }

    fn upsert_rs(&mut self, hash: &str, replicas: i32, available: i32) {
        let revision = self.observed.next_revision();
        let rss = &mut self.observed.replica_sets;
        match rss.iter_mut().find(|rs| rs.hash == hash) {
            Some(rs) => {
                rs.replicas = replicas;
                rs.ready = available;
                rs.available = available;
            }
            None => rss.push(ReplicaSetView {
                name: rs_name(hash),
                hash: hash.into(),
                revision,
                replicas,
                ready: available,
                available,
                scale_down_at: None,
            }),
        }
    }

    /// A healthy stable version: full size, all available, both Services and subsets on it,
    /// no canary weight, and a status that says it is done.
    pub fn stable(mut self, hash: &str) -> Self {
        let n = self.rollout.replicas;
        self.upsert_rs(hash, n, n);
        let steps = canary_of(&self.rollout).steps.len();
        let p = &mut self.observed.persisted;
        p.stable_hash = Some(hash.into());
        p.current_hash = Some(hash.into());
        p.current_step_index = Some(steps);
        p.verified_weight = Some(0);
        self.point_everything_at(hash)
    }

    fn point_everything_at(mut self, hash: &str) -> Self {
        let routing = self.routing();
        if routing == Routing::Host {
            self.observed.stable_service_hash = Some(hash.into());
            self.observed.canary_service_hash = Some(hash.into());
        }
        if routing == Routing::Subset {
            self = self.subsets(hash, hash);
        }
        self
    }

    /// The canary ReplicaSet of the rollout's template, with `replicas` and `available` pods,
    /// and a status that says the release of it has started at step 0.
    pub fn canary(mut self, replicas: i32, available: i32) -> Self {
        let hash = self.rollout.template_hash.clone();
        self.upsert_rs(&hash, replicas, available);
        let p = &mut self.observed.persisted;
        if p.current_hash.as_deref() != Some(hash.as_str()) {
            p.current_hash = Some(hash.clone());
            p.current_step_index = Some(0);
        }
        self
    }

    /// Points the canary Service or subset at the template's ReplicaSet.
    pub fn canary_routed(mut self) -> Self {
        let hash = self.rollout.template_hash.clone();
        match self.routing() {
            Routing::Host => self.observed.canary_service_hash = Some(hash),
            Routing::Subset => {
                let stable = self
                    .observed
                    .persisted
                    .stable_hash
                    .clone()
                    .unwrap_or_default();
                self = self.subsets(&stable, &hash);
            }
            Routing::None => {}
        }
        self
    }

    /// Any other ReplicaSet (an old revision, a superseded canary).
    pub fn rs(mut self, hash: &str, replicas: i32, available: i32) -> Self {
        self.upsert_rs(hash, replicas, available);
        self
    }

    pub fn scale_down_at(mut self, hash: &str, at: DateTime<Utc>) -> Self {
        self.rs_mut(hash).scale_down_at = Some(at);
        self
    }

    fn rs_mut(&mut self, hash: &str) -> &mut ReplicaSetView {
        self.observed
            .replica_sets
            .iter_mut()
            .find(|rs| rs.hash == hash)
            .expect("no such ReplicaSet in the fixture")
    }

    /// The canary weight read back from the mesh.
    pub fn weight(mut self, w: u8) -> Self {
        self.traffic_mut().canary_weight = Some(w);
        self
    }

    /// The mesh objects disagree (a partial write): no single weight.
    pub fn weight_unknown(mut self) -> Self {
        self.traffic_mut().canary_weight = None;
        self
    }

    pub fn routes(mut self, names: &[&str]) -> Self {
        self.traffic_mut().managed_routes = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    pub fn subsets(mut self, stable: &str, canary: &str) -> Self {
        self.traffic_mut().subsets = Some(SubsetHashes {
            stable: stable.into(),
            canary: canary.into(),
        });
        self
    }

    pub fn no_traffic_read_back(mut self) -> Self {
        self.observed.traffic = None;
        self
    }

    pub fn canary_service(mut self, hash: &str) -> Self {
        self.observed.canary_service_hash = Some(hash.into());
        self
    }

    pub fn stable_service(mut self, hash: &str) -> Self {
        self.observed.stable_service_hash = Some(hash.into());
        self
    }

    fn traffic_mut(&mut self) -> &mut ObservedTraffic {
        self.observed
            .traffic
            .as_mut()
            .expect("this rollout has no traffic routing")
    }

    pub fn at_step(mut self, index: usize) -> Self {
        self.observed.persisted.current_step_index = Some(index);
        self
    }

    /// Sluice paused here at `since` (a pause or analysis step).
    pub fn paused_since(mut self, reason: PauseReason, since: DateTime<Utc>) -> Self {
        let p = &mut self.observed.persisted;
        p.pause_conditions = vec![PauseCondition {
            reason,
            start_time: since,
        }];
        p.controller_pause = true;
        self
    }

    /// The user's `promote`: the pause condition removed, `controllerPause` left set.
    pub fn promoted(mut self) -> Self {
        self.observed.persisted.pause_conditions.clear();
        self
    }

    pub fn promote_full(mut self) -> Self {
        self.observed.persisted.promote_full = true;
        self
    }

    /// The user's `abort` (status.abort written, no `abortedAt` yet).
    pub fn abort(mut self) -> Self {
        self.observed.persisted.abort = true;
        self
    }

    pub fn aborted_at(mut self, at: DateTime<Utc>) -> Self {
        let p = &mut self.observed.persisted;
        p.abort = true;
        p.aborted_at = Some(at);
        p.current_step_index = Some(0);
        self
    }

    pub fn persisted(mut self, f: impl FnOnce(&mut Persisted)) -> Self {
        f(&mut self.observed.persisted);
        self
    }

    pub fn build(self) -> Observed {
        self.observed
    }
}

/// What the status stage writes, read back as the next reconcile's `Persisted`.
pub fn persist(previous: &Persisted, next: &NextStatus) -> Persisted {
    let verified_weight = next
        .weights
        .as_ref()
        .filter(|w| w.verified)
        .map(|w| w.canary)
        .or(previous.verified_weight);
    Persisted {
        stable_hash: next.stable_hash.clone(),
        current_hash: Some(next.current_hash.clone()),
        current_step_index: next.current_step_index,
        pause_conditions: next.pause_conditions.clone(),
        controller_pause: next.controller_pause,
        abort: next.abort,
        aborted_at: next.aborted_at,
        promote_full: next.promote_full,
        conditions: next.conditions.clone(),
        observed_generation: Some(next.observed_generation),
        verified_weight,
        step_run: next.step_run.clone(),
        background_run: next.background_run.clone(),
        promoting: next.blue_green.as_ref().is_some_and(|b| b.promoting),
        active_selector: next.blue_green.as_ref().and_then(|b| b.active.clone()),
    }
}

// ----------------------------------------------------------------------------------------------
// Reading a plan
// ----------------------------------------------------------------------------------------------

/// Reads a [`Plan`] by meaning.
pub trait PlanExt {
    /// The traffic the plan asks the mesh for, if it asks for any.
    fn traffic(&self) -> Option<&DesiredTraffic>;
    /// The canary weight the plan sets, if it sets one.
    fn weight_set(&self) -> Option<u8> {
        self.traffic().map(|t| t.canary_weight)
    }
    /// The replicas the plan gives the ReplicaSet of `hash` (creation or scale), last one wins.
    fn replicas_of(&self, hash: &str) -> Option<i32>;
    /// The hash the plan points `service` at.
    fn points(&self, service: &str) -> Option<&str>;
    /// Position of the first intent matching `f`.
    fn position(&self, f: impl Fn(&Intent) -> bool) -> Option<usize>;
    fn deletes(&self, hash: &str) -> bool;
    /// The scale-down deadline the plan persists on `hash` (`Some(None)` clears it).
    fn deadline_of(&self, hash: &str) -> Option<Option<DateTime<Utc>>>;
    fn has(&self, f: impl Fn(&Transition) -> bool) -> bool;
}

impl PlanExt for Plan {
    fn traffic(&self) -> Option<&DesiredTraffic> {
        self.intents.iter().rev().find_map(|i| match i {
            Intent::SetTraffic(t) => Some(t),
            _ => None,
        })
    }

    fn replicas_of(&self, hash: &str) -> Option<i32> {
        let name = rs_name(hash);
        self.intents.iter().rev().find_map(|i| match i {
            Intent::CreateReplicaSet {
                hash: h, replicas, ..
            } if h == hash => Some(*replicas),
            Intent::ScaleReplicaSet { name: n, replicas } if *n == name => Some(*replicas),
            _ => None,
        })
    }

    fn points(&self, service: &str) -> Option<&str> {
        self.intents.iter().rev().find_map(|i| match i {
            Intent::PointService { service: s, hash } if s == service => Some(hash.as_str()),
            _ => None,
        })
    }

    fn position(&self, f: impl Fn(&Intent) -> bool) -> Option<usize> {
        self.intents.iter().position(f)
    }

    fn deletes(&self, hash: &str) -> bool {
        let name = rs_name(hash);
        self.intents
            .iter()
            .any(|i| matches!(i, Intent::DeleteReplicaSet { name: n } if *n == name))
    }

    fn deadline_of(&self, hash: &str) -> Option<Option<DateTime<Utc>>> {
        let name = rs_name(hash);
        self.intents.iter().rev().find_map(|i| match i {
            Intent::SetScaleDownDeadline { name: n, at } if *n == name => Some(*at),
            _ => None,
        })
    }

    fn has(&self, f: impl Fn(&Transition) -> bool) -> bool {
        self.transitions.iter().any(f)
    }
}
