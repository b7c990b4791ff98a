//! The simulation loop: `plan -> apply intents to the model -> advance time -> plan`, over random
//! step lists, random pod start-up and readiness failures, and random user actions (abort, retry,
//! promote, promote --full, a new template, rollback, spec.paused, scaling) and controller
//! crashes (status write lost, apply stopped half-way). Safety is checked after every intent by
//! the model, and the rest of DESIGN section 3 after every reconcile; after the user stops
//! acting, every run must reach a terminal state (Healthy, Degraded, or Paused waiting for the
//! user) within a bounded number of reconciles.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use super::super::{Phase, Plan};
use super::fixtures::*;
use super::model::Model;
use crate::rollout::model::{CanaryScale, PauseReason, Persisted, Step, ValidatedRollout};

/// Something the user, the cluster or the controller does between two reconciles.
#[derive(Clone, Debug)]
pub enum Action {
    Abort,
    /// Clears `status.abort`.
    Retry,
    /// Removes the pause conditions (`kubectl sluice promote`).
    Promote,
    PromoteFull,
    /// A new pod template; `startup` `None` is a template whose pods never become ready.
    NewTemplate {
        startup: Option<i64>,
    },
    /// Back to a template used before (`0` is the stable one).
    OldTemplate(usize),
    SetPaused(bool),
    Scale(i32),
    /// Some available pods of the stable (`false`) or the current (`true`) version fail readiness.
    FailPods {
        current: bool,
        count: usize,
        secs: i64,
    },
    /// The controller dies after applying `applied` intents, before writing the status.
    Crash {
        applied: usize,
    },
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub rollout: ValidatedRollout,
    pub first_startup: i64,
    /// Per tick: seconds to advance after the reconcile, and the actions before it.
    pub ticks: Vec<(i64, Vec<Action>)>,
}

pub fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..=100).prop_map(set_weight),
        1 => Just(pause(None)),
        2 => (0u64..90).prop_map(|s| pause(Some(s))),
        1 => Just(analysis()),
        1 => (0i32..5).prop_map(canary_replicas),
        1 => (0u8..=100).prop_map(canary_scale_weight),
        1 => Just(match_traffic_weight()),
        1 => prop_oneof![Just("h1"), Just("h2")].prop_map(|n| header_route(n, "x-canary", "yes")),
        1 => prop_oneof![Just("h1"), Just("h2")].prop_map(remove_header_route),
        1 => (0u8..=100).prop_map(|p| mirror_route("m1", p)),
        1 => Just(remove_mirror_route("m1")),
    ]
}

pub fn routing_strategy() -> impl Strategy<Value = Routing> {
    prop_oneof![
        Just(Routing::Host),
        Just(Routing::Subset),
        Just(Routing::None)
    ]
}

pub fn rollout_strategy() -> impl Strategy<Value = ValidatedRollout> {
    (
        prop::collection::vec(step_strategy(), 0..7),
        1i32..7,
        routing_strategy(),
        (0u64..60, 0u64..60, 30u64..400, any::<bool>(), 0usize..3),
    )
        .prop_map(
            |(steps, replicas, routing, (sdd, asdd, deadline, dabort, history))| {
                let mut b = rollout()
                    .template("v1")
                    .replicas(replicas)
                    .steps(steps)
                    .routing(routing)
                    .scale_down_delay(sdd)
                    .abort_scale_down_delay(asdd)
                    .progress_deadline(deadline)
                    .history(history);
                if dabort {
                    b = b.progress_deadline_abort();
                }
                b.build()
            },
        )
}

fn action_strategy() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => Just(Action::Abort),
        2 => Just(Action::Retry),
        4 => Just(Action::Promote),
        1 => Just(Action::PromoteFull),
        2 => prop_oneof![4 => (0i64..40).prop_map(Some), 1 => Just(None)]
            .prop_map(|startup| Action::NewTemplate { startup }),
        1 => (0usize..3).prop_map(Action::OldTemplate),
        1 => prop::bool::weighted(0.3).prop_map(Action::SetPaused),
        1 => (1i32..7).prop_map(Action::Scale),
        3 => (any::<bool>(), 1usize..4, 1i64..60)
            .prop_map(|(current, count, secs)| Action::FailPods { current, count, secs }),
        2 => (0usize..6).prop_map(|applied| Action::Crash { applied }),
    ]
}

pub fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    let tick = (
        1i64..25,
        prop_oneof![3 => Just(Vec::new()), 2 => prop::collection::vec(action_strategy(), 1..3)],
    );
    (
        rollout_strategy(),
        0i64..30,
        prop::collection::vec(tick, 0..40),
    )
        .prop_map(|(rollout, first_startup, ticks)| Scenario {
            rollout,
            first_startup,
            ticks,
        })
}

/// What the simulation remembers to check "never skipped" and "never promoted on no data".
#[derive(Default)]
struct Oracle {
    /// Steps `(template, index)` the user promoted while Sluice paused there.
    released: BTreeSet<(String, usize)>,
    /// When the simulation first saw the status at a pause step: `(template, index, time)`.
    pause_entered: Option<(String, usize, DateTime<Utc>)>,
    versions: Vec<String>,
}

pub struct Sim {
    pub m: Model,
    oracle: Oracle,
}

impl Sim {
    pub fn new(rollout: ValidatedRollout, first_startup: i64) -> Self {
        let mut m = Model::new(rollout, t0());
        m.startup.insert("v1".into(), Some(secs(first_startup)));
        let mut sim = Sim {
            m,
            oracle: Oracle {
                versions: vec!["v1".into()],
                ..Oracle::default()
            },
        };
        // The first deploy, then the first release starts.
        for _ in 0..20 {
            sim.tick(None);
            if sim.m.persisted.stable_hash.is_some() {
                break;
            }
            sim.wait_for_world();
        }
        assert!(
            sim.m.persisted.stable_hash.is_some(),
            "first deploy\n{}",
            sim.m.dump()
        );
        sim.act(&Action::NewTemplate { startup: Some(5) });
        sim
    }

    fn steps(&self) -> &[Step] {
        &canary_of(&self.m.rollout).steps
    }

    pub fn act(&mut self, action: &Action) {
        let m = &mut self.m;
        m.log(format!("action: {action:?}"));
        let template = m.rollout.template_hash.clone();
        match action {
            Action::Abort => m.persisted.abort = true,
            Action::Retry => m.persisted.abort = false,
            Action::Promote => {
                let waiting = !m.persisted.pause_conditions.is_empty();
                if let (Some(i), true) = (m.persisted.current_step_index, waiting) {
                    self.oracle.released.insert((template, i));
                }
                m.persisted.pause_conditions.clear();
            }
            Action::PromoteFull => m.persisted.promote_full = true,
            Action::NewTemplate { startup } => {
                let hash = format!("v{}", self.oracle.versions.len() + 1);
                m.startup.insert(hash.clone(), startup.map(secs));
                m.set_template(&hash);
                self.oracle.versions.push(hash);
            }
            Action::OldTemplate(i) => {
                let hash = if *i == 0 {
                    m.persisted.stable_hash.clone()
                } else {
                    self.oracle.versions.iter().rev().nth(*i).cloned()
                };
                if let Some(hash) = hash {
                    m.set_template(&hash);
                }
            }
            Action::SetPaused(p) => m.rollout.paused = *p,
            Action::Scale(n) => m.rollout.replicas = *n,
            Action::FailPods {
                current,
                count,
                secs: s,
            } => {
                let hash = if *current {
                    Some(template)
                } else {
                    m.persisted.stable_hash.clone()
                };
                if let Some(hash) = hash {
                    m.fail_pods(&hash, *count, secs(*s));
                }
            }
            Action::Crash { .. } => {}
        }
    }

    /// One reconcile with every check. `crash` stops the apply after that many intents and
    /// loses the status write.
    pub fn tick(&mut self, crash: Option<usize>) -> Plan {
        let before = self.m.observe();
        let promoted_before =
            self.m.stable_destination() == Some(self.m.rollout.template_hash.as_str());
        let p = self.m.plan();
        match crash {
            Some(applied) => {
                self.m
                    .log(format!("crash after {applied} intents, status not written"));
                self.m.apply_plan(&p, applied, false);
            }
            None => {
                if p.status.abort {
                    // An abort written to the status restarts the release: promotes are spent.
                    let template = &self.m.rollout.template_hash;
                    self.oracle.released.retain(|(h, _)| h != template);
                }
                self.m.apply_plan(&p, p.intents.len(), true);
                let shown = before.traffic.as_ref().and_then(|t| t.canary_weight);
                // A promotion applied by a reconcile whose status was lost: nothing to re-check.
                let promoted = self.m.stable_destination()
                    == Some(self.m.rollout.template_hash.as_str())
                    && before.persisted.stable_hash.as_deref()
                        != Some(&self.m.rollout.template_hash)
                    && promoted_before;
                self.check_after(&before.persisted, shown.filter(|_| !promoted), promoted, &p);
            }
        }
        p
    }

    fn fail(&self, what: &str) -> ! {
        panic!("{what}\n{}", self.m.dump());
    }

    fn check_after(&mut self, prev: &Persisted, shown: Option<u8>, promoted: bool, p: &Plan) {
        self.check_weight_bounds(p);
        self.check_canary_serves();
        if !promoted {
            self.check_steps_passed(prev, shown, p);
        }
        self.note_pause_entered(p);
        if p.intents.is_empty() {
            self.check_settled(p);
        }
    }

    /// Invariant 1: the weight never exceeds the current step's; aborts go to 0.
    fn check_weight_bounds(&self, p: &Plan) {
        let Some(w) = self.m.weight() else { return };
        let s = &p.status;
        let index = s.current_step_index.unwrap_or(0);
        let bound = step_weight(self.steps(), index);
        let stable_serves = self
            .m
            .stable_destination()
            .is_some_and(|h| self.m.serving(h) > 0);
        // With no stable pod to take it, traffic stays where pods serve (invariant 2 first).
        if w > bound && stable_serves {
            self.fail(&format!(
                "invariant 1: weight {w} above the step's {bound} at index {index}"
            ));
        }
        if s.abort && stable_serves && self.m.mesh.as_ref().is_some_and(|m| m.canary_live()) {
            self.fail("aborted, stable serves, and the canary still has traffic after the plan");
        }
    }

    /// Invariant 2: after a reconcile, no canary traffic goes to a version with no available pod
    /// while stable pods could take it.
    fn check_canary_serves(&self) {
        let dead = self.m.dead_destinations();
        let stable_serves = self
            .m
            .stable_destination()
            .is_some_and(|h| self.m.serving(h) > 0);
        if let Some(d) = dead
            .iter()
            .find(|d| d.starts_with("canary") && stable_serves)
        {
            self.fail(&format!(
                "invariant 2: after the plan, traffic goes to {d} with no available pod"
            ));
        }
    }

    /// Invariants 4 and 5: steps are passed only when done — a timed pause after its duration,
    /// an indefinite pause or analysis only on a promote, a weight once the mesh shows it — and
    /// the step index never goes back within a release.
    fn check_steps_passed(&self, prev: &Persisted, shown: Option<u8>, p: &Plan) {
        let template = &self.m.rollout.template_hash;
        let same_release = prev.current_hash.as_deref() == Some(template.as_str())
            && !prev.abort
            && !p.status.abort
            && prev.stable_hash.as_deref() != Some(template.as_str());
        let (Some(from), Some(to)) = (prev.current_step_index, p.status.current_step_index) else {
            return;
        };
        if !same_release {
            return;
        }
        if to < from {
            self.fail(&format!(
                "invariant 5: step index went back from {from} to {to}"
            ));
        }
        if prev.promote_full {
            return;
        }
        for k in from..to.min(self.steps().len()) {
            self.check_step_passed(k, shown);
        }
    }

    fn check_step_passed(&self, k: usize, shown: Option<u8>) {
        let template = &self.m.rollout.template_hash;
        if self.oracle.released.contains(&(template.clone(), k)) {
            return;
        }
        match &self.steps()[k] {
            Step::Analysis => {
                self.fail(&format!(
                    "invariant 4: analysis step {k} passed without a promote"
                ));
            }
            Step::Pause(None) => {
                self.fail(&format!(
                    "indefinite pause step {k} passed without a promote"
                ));
            }
            Step::SetWeight(_) if self.m.mesh.is_some() => {
                let expected = expected_weight(self.steps(), k, self.m.rollout.replicas);
                if shown != Some(expected) {
                    self.fail(&format!(
                        "invariant 5: step {k} passed while the mesh showed {shown:?}, not {expected}"
                    ));
                }
            }
            Step::Pause(Some(d)) if !d.is_zero() => {
                let entered = match &self.oracle.pause_entered {
                    Some((h, i, at)) if h == template && *i == k => *at,
                    _ => return, // promoted before the simulation saw it (a promote removes it)
                };
                let due = entered + chrono::Duration::from_std(*d).unwrap();
                if self.m.now < due {
                    self.fail(&format!(
                        "invariant 5: pause step {k} of {}s passed {}s after it began",
                        d.as_secs(),
                        (self.m.now - entered).num_seconds()
                    ));
                }
            }
            _ => {}
        }
    }

    fn note_pause_entered(&mut self, p: &Plan) {
        let template = self.m.rollout.template_hash.clone();
        let Some(i) = p.status.current_step_index else {
            return;
        };
        let paused = !p.status.pause_conditions.is_empty();
        let same =
            matches!(&self.oracle.pause_entered, Some((h, k, _)) if *h == template && *k == i);
        if paused && !same {
            self.oracle.pause_entered = Some((template, i, self.m.now));
        } else if !paused {
            self.oracle.pause_entered = None;
        }
    }

    /// Invariant 6: a world the plan left alone plans the same status again, with no events, and
    /// without a timer it stays so at any later time.
    fn check_settled(&self, p: &Plan) {
        if p.requeue_after
            .is_some_and(|d| d <= std::time::Duration::from_millis(10))
        {
            return; // asked to look again at once: not settled yet
        }
        let again = self.m.plan();
        if !again.intents.is_empty() || again.status != p.status || !again.transitions.is_empty() {
            self.fail(&format!(
                "invariant 6: an idle world planned again differently:\n  first: {:?}\n  again: {:?} {:?}\n  {:?}",
                p.status, again.intents, again.transitions, again.status
            ));
        }
        if p.requeue_after.is_none() && self.m.next_pod_change().is_none() {
            let later = super::super::plan(
                &self.m.rollout,
                &self.m.observe(),
                self.m.now + secs(86_400),
            );
            if !later.intents.is_empty()
                || later.requeue_after.is_some()
                || later.status.phase != p.status.phase
            {
                self.fail(&format!(
                    "invariant 6: no timer was asked for, yet a day later the plan is {:?} requeue {:?} phase {:?}",
                    later.intents, later.requeue_after, later.status.phase
                ));
            }
        }
    }

    /// Advances to the next timer or pod readiness change. False when nothing will change.
    fn wait_for_world(&mut self) -> bool {
        let p = self.m.plan();
        if !p.intents.is_empty() {
            // The world as persisted already calls for writes (e.g. creating a named run).
            return true;
        }
        let timer = p
            .requeue_after
            .map(|d| self.m.now + chrono::Duration::from_std(d).unwrap());
        let next = [timer, self.m.next_pod_change()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(at) => {
                self.m.now = at.max(self.m.now);
                true
            }
            None => false,
        }
    }

    /// Runs without user actions until the rollout rests. Panics on a livelock.
    pub fn run_to_rest(&mut self) -> Plan {
        for _ in 0..300 {
            let p = self.tick(None);
            if !p.intents.is_empty() {
                continue;
            }
            if !self.wait_for_world() {
                return p;
            }
        }
        self.fail("livelock: no rest after 300 reconciles without user actions");
    }

    fn check_terminal(&self, p: &Plan) {
        let s = &p.status;
        let m = &self.m;
        match s.phase {
            Phase::Healthy => {
                let stable = s.stable_hash.as_deref().unwrap_or_default();
                if stable != m.rollout.template_hash {
                    self.fail("Healthy with a stable version that is not the template");
                }
                let others = m
                    .rss
                    .iter()
                    .filter(|rs| rs.hash != stable)
                    .map(|rs| rs.replicas())
                    .sum::<i32>();
                if others != 0 || m.available(stable) < m.rollout.replicas {
                    self.fail("Healthy while other versions still run or stable is short");
                }
                if m.mesh.as_ref().is_some_and(|mesh| mesh.canary_live()) {
                    self.fail("Healthy with canary traffic left");
                }
                if m.stable_destination().is_some_and(|h| h != stable) {
                    self.fail("Healthy with the stable destination on another version");
                }
            }
            Phase::Degraded => {
                let deadline = s
                    .conditions
                    .iter()
                    .any(|c| c.reason == "ProgressDeadlineExceeded");
                if !s.abort && !deadline {
                    self.fail("Degraded at rest with neither abort nor deadline");
                }
                let keeps = canary_of(&m.rollout).abort_scale_down_delay.is_none();
                if s.abort && !keeps && m.replicas(&m.rollout.template_hash) != 0 {
                    self.fail("aborted at rest with the canary still scaled up");
                }
            }
            Phase::Paused => {
                let waits = m.rollout.paused
                    || s.pause_conditions.iter().any(|c| match c.reason {
                        PauseReason::AnalysisStep
                        | PauseReason::InconclusiveAnalysis
                        | PauseReason::BlueGreenPause => true,
                        PauseReason::CanaryPauseStep => s
                            .current_step_index
                            .and_then(|i| self.steps().get(i))
                            .is_some_and(|st| *st == Step::Pause(None)),
                    });
                if !waits {
                    self.fail("Paused at rest without waiting for the user");
                }
            }
            Phase::Progressing => self.fail("at rest while Progressing (stuck without a deadline)"),
        }
    }

    pub fn run(scenario: &Scenario) {
        let mut sim = Sim::new(scenario.rollout.clone(), scenario.first_startup);
        for (dt, actions) in &scenario.ticks {
            let mut crash = None;
            for a in actions {
                match a {
                    Action::Crash { applied } => crash = Some(*applied),
                    _ => sim.act(a),
                }
            }
            sim.tick(crash);
            sim.m.advance(secs(*dt));
        }
        // The user stops acting and failures stop; a crash cannot be the last word.
        let rest = sim.run_to_rest();
        sim.check_terminal(&rest);
    }
}

/// The weight in force at step `index` (the last `setWeight` at or before it); after the last
/// step, the last one's.
pub fn step_weight(steps: &[Step], index: usize) -> u8 {
    steps
        .iter()
        .take(index + 1)
        .rev()
        .find_map(|s| match s {
            Step::SetWeight(w) => Some(*w),
            _ => None,
        })
        .unwrap_or(0)
}

/// The weight the mesh must show for step `index` to be done: the step's weight, or 0 when its
/// canary scale leaves no pod to send it to.
pub fn expected_weight(steps: &[Step], index: usize, replicas: i32) -> u8 {
    let weight = step_weight(steps, index);
    let scale = steps
        .iter()
        .take(index + 1)
        .rev()
        .find_map(|s| match s {
            Step::SetCanaryScale(c) => Some(*c),
            _ => None,
        })
        .unwrap_or(CanaryScale::MatchTrafficWeight);
    let pods = match scale {
        CanaryScale::Replicas(n) => n,
        CanaryScale::Weight(w) => share(replicas, w),
        CanaryScale::MatchTrafficWeight => share(replicas, weight),
    };
    if pods > 0 { weight } else { 0 }
}

/// `ceil(replicas * percent / 100)`.
pub fn share(replicas: i32, percent: u8) -> i32 {
    (replicas.max(0) * i32::from(percent) + 99) / 100
}

/// `PROPTEST_CASES` overrides the default number of cases, for a deeper run on demand.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 256 cases (or `PROPTEST_CASES`), no regression files: the scenarios are printed whole.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_releases_keep_every_invariant_and_come_to_rest(scenario in scenario_strategy()) {
        Sim::run(&scenario);
    }
}
