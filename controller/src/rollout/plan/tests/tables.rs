//! Table tests of the canary planner, one per scenario: every step kind, every user action and
//! every transition. Single decisions are checked on hand-built worlds (`world(&r)...`); stories
//! that span reconciles run on the model cluster, which also checks the safety invariants after
//! every intent.

use std::time::Duration;

use super::super::{Intent, Phase, Plan, Transition, plan};
use super::fixtures::*;
use super::model::Model;
use crate::rollout::model::{ConditionKind, PauseReason, RunPhase, ValidatedRollout};

fn plan_now(r: &ValidatedRollout, w: WorldBuilder) -> Plan {
    plan(r, &w.build(), t0())
}

fn at(r: &ValidatedRollout, w: WorldBuilder, time: chrono::DateTime<chrono::Utc>) -> Plan {
    plan(r, &w.build(), time)
}

/// A world where the release of `v2` stands at `step` with the canary fully available, routed,
/// and the mesh showing `weight`.
fn canary_world(r: &ValidatedRollout, replicas: i32, weight: u8, step: usize) -> WorldBuilder {
    world(r)
        .stable("v1")
        .canary(replicas, replicas)
        .canary_routed()
        .weight(weight)
        .at_step(step)
}

fn events(m: &Model) -> Vec<&str> {
    m.trace
        .iter()
        .flat_map(|l| l.lines())
        .filter_map(|l| l.trim().strip_prefix("event "))
        .collect()
}

fn count_events(m: &Model, prefix: &str) -> usize {
    events(m).iter().filter(|e| e.starts_with(prefix)).count()
}

// ----------------------------------------------------------------------------------------------
// First deploy
// ----------------------------------------------------------------------------------------------

#[test]
fn first_deploy_creates_the_template_at_full_size_and_skips_the_steps() {
    let r = rollout()
        .template("v1")
        .steps([set_weight(20), pause(None)])
        .build();
    let p = plan_now(&r, world(&r));
    assert_eq!(p.replicas_of("v1"), Some(4));
    assert_eq!(
        p.status.current_step_index,
        Some(2),
        "no steps on first deploy"
    );
    assert_eq!(
        p.status.stable_hash, None,
        "not stable before its pods are available"
    );
    assert_eq!(p.status.phase, Phase::Progressing);
}

#[test]
fn first_deploy_becomes_stable_and_healthy_with_every_routing() {
    for routing in [Routing::Host, Routing::Subset, Routing::None] {
        let r = rollout()
            .template("v1")
            .steps([set_weight(20), pause(None)])
            .routing(routing)
            .build();
        let mut m = Model::deployed(r, t0());
        let p = m.converge();
        assert_eq!(p.status.phase, Phase::Healthy, "{routing:?}");
        assert_eq!(
            m.persisted.stable_hash.as_deref(),
            Some("v1"),
            "{routing:?}"
        );
        assert_eq!(m.available("v1"), 4, "{routing:?}");
        assert_eq!(m.weight().unwrap_or(0), 0, "{routing:?}");
        if routing != Routing::None {
            assert_eq!(m.stable_destination(), Some("v1"), "{routing:?}");
            assert_eq!(m.canary_destination(), Some("v1"), "{routing:?}");
        }
        assert!(
            p.requeue_after.is_none(),
            "{routing:?}: an idle rollout asks for no timer"
        );
    }
}

#[test]
fn an_idle_healthy_rollout_plans_nothing_and_its_status_is_a_fixpoint() {
    for routing in [Routing::Host, Routing::Subset, Routing::None] {
        let r = rollout().template("v1").routing(routing).build();
        let m = Model::deployed(r, t0());
        let p = m.plan();
        assert!(p.intents.is_empty(), "{routing:?}: {:?}", p.intents);
        assert!(p.transitions.is_empty(), "{routing:?}: {:?}", p.transitions);
        assert!(p.requeue_after.is_none(), "{routing:?}");
        assert_eq!(
            super::fixtures::persist(&m.persisted, &p.status),
            m.persisted,
            "{routing:?}: the status write would change nothing"
        );
    }
}

// ----------------------------------------------------------------------------------------------
// setWeight
// ----------------------------------------------------------------------------------------------

#[test]
fn canary_replicas_are_the_weight_share_rounded_up() {
    let cases = [
        (4, 20, 1),
        (10, 15, 2),
        (3, 50, 2),
        (5, 1, 1),
        (4, 100, 4),
        (10, 33, 4),
        (4, 0, 0),
    ];
    for (replicas, weight, canary) in cases {
        let r = rollout()
            .replicas(replicas)
            .steps([set_weight(weight), pause(None)])
            .build();
        let p = plan_now(&r, world(&r).stable("v1"));
        assert_eq!(
            p.replicas_of("v2"),
            Some(canary),
            "{weight}% of {replicas} replicas"
        );
    }
}

#[test]
fn weight_shifts_only_once_the_canary_is_fully_available() {
    let r = rollout().steps([set_weight(50), pause(None)]).build();
    let scaling = world(&r).stable("v1").canary(2, 1).canary_routed();
    let p = plan_now(&r, scaling);
    assert!(
        p.weight_set().unwrap_or(0) == 0,
        "1 of 2 canary pods: no weight yet"
    );
    assert_eq!(p.status.current_step_index, Some(0));

    let ready = world(&r).stable("v1").canary(2, 2).canary_routed();
    let p = plan_now(&r, ready);
    assert_eq!(p.weight_set(), Some(50));
    assert_eq!(
        p.status.current_step_index,
        Some(0),
        "the step waits for the read-back"
    );
}

#[test]
fn host_split_points_the_canary_service_at_the_canary_before_any_weight() {
    let r = rollout().steps([set_weight(20), pause(None)]).build();
    let w = world(&r).stable("v1").canary(1, 1);
    let p = plan_now(&r, w);
    assert_eq!(p.points(CANARY_SVC), Some("v2"));
    assert_eq!(
        p.weight_set().unwrap_or(0),
        0,
        "weight waits for the Service read-back"
    );

    let w = world(&r).stable("v1").canary(1, 1).canary_routed();
    assert_eq!(plan_now(&r, w).weight_set(), Some(20));
}

#[test]
fn subset_split_moves_the_canary_subset_and_the_weight_together_once_pods_serve() {
    let r = rollout()
        .routing(Routing::Subset)
        .steps([set_weight(20), pause(None)])
        .build();
    let p = plan_now(&r, world(&r).stable("v1").canary(1, 1));
    let t = p.traffic().expect("SetTraffic");
    assert_eq!(t.canary_weight, 20);
    let subsets = t.subsets.as_ref().expect("subsets");
    assert_eq!(
        (subsets.stable.as_str(), subsets.canary.as_str()),
        ("v1", "v2")
    );
}

#[test]
fn a_set_weight_step_completes_when_the_mesh_shows_its_weight() {
    let r = rollout().steps([set_weight(20), pause(None)]).build();

    let p = plan_now(&r, canary_world(&r, 1, 0, 0));
    assert_eq!(p.status.current_step_index, Some(0));

    let p = plan_now(&r, canary_world(&r, 1, 20, 0));
    assert_eq!(p.status.current_step_index, Some(1));
    assert_eq!(p.status.phase, Phase::Paused);
    assert!(p.has(|t| *t == Transition::StepCompleted { index: 0, total: 2 }));
    assert!(
        p.has(|t| matches!(t, Transition::RolloutPaused { reason } if reason == "CanaryPauseStep"))
    );
    assert!(p.has(|t| *t == Transition::TrafficWeightUpdated { canary: 20 }));
}

#[test]
fn lowering_the_weight_moves_traffic_before_the_canary_shrinks() {
    let r = rollout()
        .steps([set_weight(50), set_weight(20), pause(None)])
        .build();
    let p = plan_now(&r, canary_world(&r, 2, 50, 1));
    assert_eq!(p.weight_set(), Some(20));
    assert_eq!(
        p.replicas_of("v2"),
        None,
        "2 pods keep serving until the mesh shows 20%"
    );

    let p = plan_now(&r, canary_world(&r, 2, 20, 1));
    assert_eq!(p.replicas_of("v2"), Some(1));
}

#[test]
fn a_basic_canary_trades_pods_between_versions_and_completes() {
    let r = rollout()
        .routing(Routing::None)
        .steps([set_weight(50), pause(None), set_weight(75)])
        .build();
    let mut m = Model::releasing(r, t0());
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Paused);
    assert_eq!((m.replicas("v1"), m.replicas("v2")), (2, 2));

    m.promote();
    let p = m.converge();
    assert_eq!(
        p.status.phase,
        Phase::Healthy,
        "a basic canary completes (no mesh to wait for)"
    );
    assert_eq!((m.replicas("v1"), m.replicas("v2")), (0, 4));
    assert!(m.converge().intents.is_empty());
}

#[test]
fn a_basic_canary_never_gives_up_pods_before_the_other_version_has_them() {
    // Scale-downs are checked by the model: available pods never drop below spec.replicas.
    let r = rollout()
        .routing(Routing::None)
        .steps([set_weight(100), pause(None), set_weight(25), pause(None)])
        .build();
    let mut m = Model::releasing(r, t0());
    m.startup.insert("v1".into(), Some(secs(10)));
    m.startup.insert("v2".into(), Some(secs(10)));
    for _ in 0..10 {
        m.converge();
        m.advance(secs(10));
    }
    assert_eq!((m.replicas("v1"), m.replicas("v2")), (0, 4));
    m.promote();
    for _ in 0..10 {
        m.converge();
        m.advance(secs(10));
    }
    assert_eq!(m.persisted.current_step_index, Some(3));
    assert_eq!((m.replicas("v1"), m.replicas("v2")), (3, 1));
    // Rolling back from here brings v1 to full size before v2 goes.
    m.set_template("v1");
    for _ in 0..10 {
        m.converge();
        m.advance(secs(10));
    }
    assert_eq!((m.replicas("v1"), m.replicas("v2")), (4, 0));
}

// ----------------------------------------------------------------------------------------------
// pause
// ----------------------------------------------------------------------------------------------

#[test]
fn a_timed_pause_requeues_at_its_expiry_and_completes_exactly_then() {
    let r = rollout()
        .steps([set_weight(20), pause(Some(60)), set_weight(50)])
        .build();
    let mut m = Model::releasing(r, t0());
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Paused);
    assert_eq!(p.status.current_step_index, Some(1));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(60)));

    m.advance(secs(59));
    let p = m.reconcile();
    assert_eq!(p.status.current_step_index, Some(1), "still paused at 59 s");
    assert_eq!(p.requeue_after, Some(Duration::from_secs(1)));

    m.advance(secs(1));
    let p = m.reconcile();
    assert_eq!(p.status.current_step_index, Some(2), "done at 60 s");
    assert!(p.has(|t| *t == Transition::StepCompleted { index: 1, total: 3 }));
    assert!(p.has(|t| *t == Transition::RolloutResumed));
}

#[test]
fn consecutive_timed_pauses_each_last_their_own_duration() {
    let r = rollout()
        .steps([pause(Some(10)), pause(Some(20)), set_weight(50)])
        .build();
    let mut m = Model::releasing(r, t0());
    m.converge();
    assert_eq!(m.persisted.current_step_index, Some(0));
    m.advance(secs(10));
    m.converge();
    assert_eq!(m.persisted.current_step_index, Some(1));
    assert_eq!(
        m.persisted.pause_conditions[0].start_time,
        t0() + secs(10),
        "the second pause starts when the first ends"
    );
    m.advance(secs(19));
    m.converge();
    assert_eq!(
        m.persisted.current_step_index,
        Some(1),
        "29 s in: second pause still running"
    );
    m.advance(secs(1));
    let p = m.reconcile();
    assert_eq!(p.status.current_step_index, Some(2), "done at 30 s");
}

#[test]
fn an_indefinite_pause_waits_without_a_timer_until_promoted() {
    let r = rollout()
        .steps([set_weight(20), pause(None), set_weight(50), pause(None)])
        .build();
    let mut m = Model::releasing(r, t0());
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Paused);
    assert!(p.requeue_after.is_none());
    assert!(m.persisted.controller_pause);

    m.advance(secs(86_400));
    let p = m.reconcile();
    assert!(p.intents.is_empty());
    assert_eq!(
        p.status.current_step_index,
        Some(1),
        "a day later: still paused"
    );

    m.promote();
    let p = m.reconcile();
    assert_eq!(p.status.current_step_index, Some(2));
    assert!(p.has(|t| *t == Transition::RolloutResumed));
    assert!(p.has(|t| *t == Transition::StepCompleted { index: 1, total: 4 }));
    m.converge();
    assert_eq!(m.weight(), Some(50));
}

#[test]
fn spec_paused_holds_the_release_where_it_is() {
    let r = rollout()
        .steps([set_weight(20), pause(Some(30)), set_weight(50)])
        .build();
    let mut m = Model::releasing(r, t0());
    m.reconcile(); // canary created
    m.rollout.paused = true;
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Paused);
    assert_eq!(p.status.current_step_index, Some(0));
    assert!(
        p.requeue_after.is_none(),
        "no deadline or timer while paused by the user"
    );
    assert_eq!(m.weight(), Some(0));

    m.rollout.paused = false;
    m.converge();
    assert_eq!(m.weight(), Some(20));
    assert_eq!(m.persisted.current_step_index, Some(1));
}

// ----------------------------------------------------------------------------------------------
// promote --full
// ----------------------------------------------------------------------------------------------

#[test]
fn promote_full_skips_the_remaining_steps_and_makes_the_canary_stable() {
    let r = rollout()
        .steps([set_weight(20), pause(None), set_weight(50), pause(None)])
        .build();
    let mut m = Model::releasing(r, t0());
    m.converge();
    m.promote_full();
    let before = m.trace.len();
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Healthy);
    assert_eq!(m.persisted.stable_hash.as_deref(), Some("v2"));
    assert!(!m.persisted.promote_full, "the request is consumed");
    assert_eq!((m.stable_destination(), m.weight()), (Some("v2"), Some(0)));
    let later: Vec<_> = m.trace[before..]
        .join("\n")
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        !later.iter().any(|l| l.contains("StepCompleted")),
        "skipped steps are not reported as completed: {later:#?}"
    );
    assert_eq!(
        later
            .iter()
            .filter(|l| l.contains("RolloutPromoted"))
            .count(),
        1
    );
}

// ----------------------------------------------------------------------------------------------
// setCanaryScale
// ----------------------------------------------------------------------------------------------

#[test]
fn set_canary_scale_sizes_the_canary_independently_of_the_weight() {
    let cases = [
        (vec![canary_replicas(3), set_weight(10)], 0, 3),
        (vec![canary_scale_weight(50), set_weight(10)], 0, 5),
        (vec![canary_replicas(3), set_weight(10)], 1, 3),
    ];
    for (steps, step, canary) in cases {
        let r = rollout()
            .replicas(10)
            .steps(steps.clone().into_iter().chain([pause(None)]))
            .build();
        let w = world(&r).stable("v1").at_step(step);
        assert_eq!(
            plan_now(&r, w).replicas_of("v2"),
            Some(canary),
            "{steps:?} at {step}"
        );
    }
}

#[test]
fn match_traffic_weight_returns_the_canary_to_the_weight_share() {
    let r = rollout()
        .replicas(10)
        .steps([
            canary_replicas(3),
            set_weight(10),
            match_traffic_weight(),
            pause(None),
        ])
        .build();
    let p = plan_now(&r, canary_world(&r, 3, 10, 2));
    assert_eq!(p.replicas_of("v2"), Some(1));
}

#[test]
fn a_canary_scaled_to_zero_gets_no_traffic_whatever_the_weight() {
    let r = rollout()
        .steps([set_weight(20), canary_replicas(0), pause(None)])
        .build();
    let mut m = Model::releasing(r, t0());
    let p = m.converge();
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(m.replicas("v2"), 0);
    assert_eq!(m.weight(), Some(0));
}

// ----------------------------------------------------------------------------------------------
// setHeaderRoute / setMirrorRoute
// ----------------------------------------------------------------------------------------------

fn route_names(m: &Model) -> (Vec<String>, Vec<String>) {
    let mesh = m.mesh.as_ref().unwrap();
    (
        mesh.header_routes.iter().map(|r| r.name.clone()).collect(),
        mesh.mirror_routes.iter().map(|r| r.name.clone()).collect(),
    )
}

#[test]
fn header_and_mirror_routes_are_added_and_removed_by_their_steps() {
    for routing in [Routing::Host, Routing::Subset] {
        let r = rollout()
            .routing(routing)
            .steps([
                canary_replicas(1),
                header_route("h1", "x-canary", "yes"),
                mirror_route("m1", 50),
                pause(None),
                remove_header_route("h1"),
                pause(None),
                remove_mirror_route("m1"),
                pause(None),
            ])
            .build();
        let mut m = Model::releasing(r, t0());
        m.converge();
        assert_eq!(m.persisted.current_step_index, Some(3), "{routing:?}");
        assert_eq!(route_names(&m), (vec!["h1".into()], vec!["m1".into()]));
        assert_eq!(m.weight(), Some(0), "routes do not move the weight");
        m.promote();
        m.converge();
        assert_eq!(route_names(&m), (vec![], vec!["m1".into()]));
        m.promote();
        m.converge();
        assert_eq!(route_names(&m), (vec![], vec![]));
    }
}

#[test]
fn managed_routes_wait_for_an_available_canary() {
    let r = rollout()
        .steps([
            canary_replicas(1),
            header_route("h1", "x-canary", "yes"),
            pause(None),
        ])
        .build();
    let w = world(&r)
        .stable("v1")
        .canary(1, 0)
        .canary_routed()
        .at_step(1);
    let p = plan_now(&r, w);
    assert!(
        p.traffic().is_none_or(|t| t.header_routes.is_empty()),
        "no route to a canary without pods"
    );
    assert_eq!(p.status.current_step_index, Some(1));
}

#[test]
fn managed_routes_are_removed_on_promotion_and_on_abort() {
    let r = rollout()
        .steps([
            canary_replicas(1),
            header_route("h1", "x-canary", "yes"),
            pause(None),
        ])
        .abort_scale_down_delay(0)
        .build();
    let mut promoted = Model::releasing(r.clone(), t0());
    promoted.converge();
    assert_eq!(route_names(&promoted).0, vec!["h1".to_owned()]);
    promoted.promote();
    promoted.converge();
    assert_eq!(route_names(&promoted), (vec![], vec![]));

    let mut aborted = Model::releasing(r, t0());
    aborted.converge();
    aborted.abort();
    let p = aborted.converge();
    assert_eq!(p.status.phase, Phase::Degraded);
    assert_eq!(route_names(&aborted), (vec![], vec![]));
    assert_eq!(
        aborted.replicas("v2"),
        1,
        "abortScaleDownDelaySeconds 0 keeps the aborted canary's pods (Argo's meaning)"
    );
}

// ----------------------------------------------------------------------------------------------
// analysis: step runs and the background run
// ----------------------------------------------------------------------------------------------

/// A release held at an analysis step whose run phase the test decides.
fn at_analysis(verdict: RunPhase) -> (Model, Plan) {
    let r = rollout()
        .steps([set_weight(20), analysis(), set_weight(50)])
        .build();
    let mut m = Model::releasing(r, t0());
    m.run_verdict = verdict;
    let p = m.converge();
    (m, p)
}

#[test]
fn an_analysis_step_names_its_run_before_creating_it_and_waits_while_it_runs() {
    let (mut m, p) = at_analysis(RunPhase::Running);
    assert_eq!(p.status.current_step_index, Some(1));
    assert_eq!(p.status.phase, Phase::Progressing);
    let run = p.status.step_run.clone().expect("the step run is recorded");
    assert!(run.name.starts_with("web-v2-1-"), "{}", run.name);
    assert_eq!(m.runs.len(), 1, "exactly one run created");
    assert_eq!(
        m.runs[0].name, run.name,
        "the run created is the one named in status"
    );
    for _ in 0..3 {
        m.advance(secs(3_600));
        let p = m.converge();
        assert_eq!(
            p.status.current_step_index,
            Some(1),
            "a running analysis never passes"
        );
        assert_eq!(
            p.status.phase,
            Phase::Progressing,
            "no deadline while analysing"
        );
        assert_eq!(m.runs.len(), 1, "no second run");
    }
    m.runs[0].phase = RunPhase::Successful;
    m.converge();
    assert_eq!(
        m.persisted.stable_hash.as_deref(),
        Some("v2"),
        "promoted after success"
    );
}

#[test]
fn a_failed_step_analysis_aborts_with_the_verdict_and_weight_zero() {
    let (mut m, _) = at_analysis(RunPhase::Running);
    m.runs[0].phase = RunPhase::Failed;
    m.runs[0].message = "metric error-rate: result[0]=0.3 did not satisfy result[0] < 0.01".into();
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Degraded);
    assert!(p.status.abort);
    assert_eq!(m.weight(), Some(0));
    assert!(
        p.status.message.contains("result[0]=0.3"),
        "{}",
        p.status.message
    );
    assert_eq!(
        m.persisted.stable_hash.as_deref(),
        Some("v1"),
        "never promoted"
    );
}

#[test]
fn an_errored_analysis_aborts_like_a_failed_one() {
    let (mut m, _) = at_analysis(RunPhase::Running);
    m.runs[0].phase = RunPhase::Error;
    let p = m.converge();
    assert!(p.status.abort);
    assert_eq!(m.weight(), Some(0));
}

#[test]
fn an_inconclusive_analysis_pauses_and_a_promote_continues() {
    let (mut m, p) = at_analysis(RunPhase::Inconclusive);
    assert_eq!(p.status.phase, Phase::Paused);
    assert_eq!(
        p.status.pause_conditions[0].reason,
        PauseReason::InconclusiveAnalysis
    );
    assert!(p.requeue_after.is_none());
    m.advance(secs(3_600));
    assert_eq!(m.reconcile().status.current_step_index, Some(1));
    m.promote();
    let p = m.reconcile();
    assert_eq!(p.status.current_step_index, Some(2));
    m.converge();
    assert_eq!(m.persisted.stable_hash.as_deref(), Some("v2"));
}

#[test]
fn a_failing_background_analysis_aborts_mid_release_and_a_retry_starts_a_fresh_run() {
    let mut r = rollout()
        .steps([set_weight(20), pause(None), set_weight(50)])
        .build();
    let crate::rollout::model::Strategy::Canary(c) = &mut r.strategy else {
        panic!("not a canary Rollout");
    };
    c.background_analysis = Some(1);
    let mut m = Model::releasing(r, t0());
    m.run_verdict = RunPhase::Running;
    let p = m.converge();
    let bg = p
        .status
        .background_run
        .clone()
        .unwrap_or_else(|| panic!("no background run: {:?}\n{}", p.status, m.dump()));
    assert!(bg.name.starts_with("web-v2-bg-"), "{}", bg.name);
    assert_eq!(p.status.phase, Phase::Paused, "the pause step still holds");
    m.runs[0].phase = RunPhase::Failed;
    let p = m.converge();
    assert!(p.status.abort);
    assert_eq!(m.weight(), Some(0));
    m.advance(secs(60));
    m.retry();
    m.converge();
    assert_eq!(m.runs.len(), 2, "the retry measures again with a new run");
    assert_ne!(m.runs[1].name, m.runs[0].name);
}

#[test]
fn an_aborted_canary_scales_down_only_after_the_abort_scale_down_delay() {
    let r = rollout()
        .steps([set_weight(20), pause(None)])
        .abort_scale_down_delay(30)
        .build();
    let aborted = || canary_world(&r, 1, 0, 0).aborted_at(t0());

    let p = plan_now(&r, aborted());
    assert_eq!(p.deadline_of("v2"), Some(Some(t0() + secs(30))));
    assert_eq!(p.replicas_of("v2"), None);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(30)));

    let waiting = aborted().scale_down_at("v2", t0() + secs(30));
    let p = at(&r, waiting.clone(), t0() + secs(29));
    assert_eq!(p.replicas_of("v2"), None);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(1)));

    let p = at(&r, waiting, t0() + secs(30));
    assert_eq!(p.replicas_of("v2"), Some(0));
}

#[test]
fn abort_keeps_traffic_on_the_canary_while_stable_has_no_pod() {
    let r = rollout().steps([set_weight(20), pause(None)]).build();
    let w = canary_world(&r, 1, 20, 1).rs("v1", 4, 0).abort();
    let p = plan_now(&r, w);
    assert_eq!(
        p.weight_set(),
        None,
        "moving traffic to a dead stable helps no one"
    );
    assert_eq!(p.replicas_of("v2"), None);
}

#[test]
fn retry_restarts_the_release_from_the_first_step() {
    let r = rollout()
        .steps([set_weight(20), pause(None), set_weight(50)])
        .abort_scale_down_delay(1)
        .build();
    let mut m = Model::releasing(r, t0());
    m.converge();
    m.abort();
    m.converge();
    m.advance(secs(1));
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Degraded);
    assert_eq!((m.replicas("v2"), m.weight()), (0, Some(0)));

    m.retry();
    let p = m.reconcile();
    assert_eq!(p.status.current_step_index, Some(0));
    assert_eq!(p.replicas_of("v2"), Some(1));
    assert!(p.has(|t| *t == Transition::RolloutRetried));
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Paused);
    assert_eq!(m.weight(), Some(20));
}

// ----------------------------------------------------------------------------------------------
// rollback, new template mid-release
// ----------------------------------------------------------------------------------------------

#[test]
fn rolling_back_to_the_stable_template_skips_the_steps() {
    let r = rollout()
        .steps([set_weight(20), pause(None), set_weight(50), pause(None)])
        .build();
    let mut m = Model::releasing(r, t0());
    m.converge();
    assert_eq!(m.weight(), Some(20));
    m.set_template("v1");
    let before = m.trace.len();
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Healthy);
    assert_eq!(p.status.current_step_index, Some(4));
    assert_eq!(m.weight(), Some(0));
    assert_eq!(m.canary_destination(), Some("v1"));
    assert!(
        !m.trace[before..]
            .iter()
            .any(|l| l.contains("StepCompleted"))
    );
    m.advance(secs(30));
    m.converge();
    assert_eq!(m.replicas("v2"), 0, "old canary gone after scaleDownDelay");
}

#[test]
fn a_new_template_takes_the_weight_to_zero_before_the_canary_service_moves() {
    let r = rollout()
        .template("v3")
        .steps([set_weight(20), pause(None)])
        .build();
    // v2 at 50 % when v3 arrives; v3's pods happen to be up already (a re-used ReplicaSet).
    let superseded = || {
        world(&r)
            .stable("v1")
            .rs("v2", 2, 2)
            .rs("v3", 1, 1)
            .canary_service("v2")
            .weight(50)
            .persisted(|p| {
                p.current_hash = Some("v2".into());
                p.current_step_index = Some(1);
            })
    };
    let p = plan_now(&r, superseded());
    assert_eq!(p.weight_set(), Some(0));
    assert_eq!(
        p.points(CANARY_SVC),
        None,
        "the Service moves only once v2 has no traffic"
    );
    assert_eq!(p.replicas_of("v2"), None);

    let p = plan_now(&r, superseded().weight(0));
    assert_eq!(p.points(CANARY_SVC), Some("v3"));
    assert_eq!(
        p.replicas_of("v2"),
        Some(0),
        "superseded canary goes once unused"
    );
}

#[test]
fn a_new_template_takes_the_weight_to_zero_before_the_canary_subset_moves() {
    let r = rollout()
        .routing(Routing::Subset)
        .template("v3")
        .steps([set_weight(20), pause(None)])
        .build();
    let w = world(&r)
        .stable("v1")
        .rs("v2", 2, 2)
        .rs("v3", 1, 1)
        .subsets("v1", "v2")
        .weight(50)
        .persisted(|p| {
            p.current_hash = Some("v2".into());
            p.current_step_index = Some(1);
        });
    let t = plan_now(&r, w).traffic().cloned().expect("SetTraffic");
    assert_eq!(t.canary_weight, 0);
    assert_eq!(t.subsets.map(|s| s.canary), Some("v2".to_owned()));
}

#[test]
fn a_superseded_release_runs_the_new_one_from_step_zero_on_the_model() {
    for routing in [Routing::Host, Routing::Subset] {
        let r = rollout()
            .routing(routing)
            .steps([set_weight(20), pause(None), set_weight(50), pause(None)])
            .build();
        let mut m = Model::releasing(r, t0());
        m.converge();
        m.promote();
        m.converge();
        assert_eq!(m.weight(), Some(50));
        m.set_template("v3");
        m.startup.insert("v3".into(), Some(secs(5)));
        let p = m.reconcile();
        assert_eq!(p.status.current_step_index, Some(0));
        assert_eq!(m.weight(), Some(0), "{routing:?}");
        m.advance(secs(5));
        m.converge();
        assert_eq!(
            (m.canary_destination(), m.weight()),
            (Some("v3"), Some(20)),
            "{routing:?}"
        );
        assert_eq!(m.replicas("v2"), 0, "{routing:?}");
    }
}

// ----------------------------------------------------------------------------------------------
// Progress deadline
// ----------------------------------------------------------------------------------------------

fn stuck(abort: bool) -> Model {
    let mut b = rollout()
        .steps([set_weight(20), pause(None)])
        .progress_deadline(60)
        .abort_scale_down_delay(1);
    if abort {
        b = b.progress_deadline_abort();
    }
    let mut m = Model::releasing(b.build(), t0());
    m.startup.insert("v2".into(), None);
    m
}

fn progressing_condition(p: &Plan) -> &crate::rollout::model::Condition {
    p.status
        .conditions
        .iter()
        .find(|c| c.kind == ConditionKind::Progressing)
        .expect("Progressing condition")
}

#[test]
fn a_stuck_release_exceeds_its_progress_deadline_and_stays_degraded() {
    let mut m = stuck(false);
    let p = m.converge();
    assert_eq!(p.requeue_after, Some(Duration::from_secs(60)));
    m.advance(secs(60));
    let p = m.reconcile();
    assert_eq!(p.status.phase, Phase::Degraded);
    let c = progressing_condition(&p);
    assert_eq!(
        (c.status, c.reason.as_str()),
        (false, "ProgressDeadlineExceeded")
    );
    assert!(p.has(|t| matches!(t, Transition::ProgressDeadlineExceeded { .. })));
    assert!(!p.status.abort);

    for _ in 0..3 {
        m.advance(secs(1));
        let p = m.reconcile();
        assert_eq!(
            p.status.phase,
            Phase::Degraded,
            "no flapping back to Progressing"
        );
        assert!(p.transitions.is_empty(), "{:?}", p.transitions);
        assert!(p.requeue_after.is_none());
    }
}

#[test]
fn a_pause_longer_than_any_date_waits_instead_of_panicking() {
    // Valid by the schema (`9999999999h`); beyond what a date can hold.
    let forever = 9_999_999_999 * 3600;
    let r = rollout()
        .steps([set_weight(20), pause(Some(forever))])
        .build();
    let mut m = Model::releasing(r, t0());
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Paused);
    assert!(
        p.requeue_after
            .is_some_and(|d| d > Duration::from_secs(100 * 365 * 86_400))
    );
}

#[test]
fn a_first_deploy_that_never_gets_its_pods_exceeds_the_deadline_without_an_abort() {
    let r = rollout()
        .progress_deadline(60)
        .progress_deadline_abort()
        .build();
    let mut m = Model::new(r, t0());
    m.startup.insert("v2".into(), Some(secs(600)));
    let p = m.converge();
    assert_eq!(p.requeue_after, Some(Duration::from_secs(60)));
    m.advance(secs(60));
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Degraded);
    assert_eq!(progressing_condition(&p).reason, "ProgressDeadlineExceeded");
    assert!(!p.status.abort, "there is no stable version to go back to");
    m.advance(secs(540));
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Healthy, "the pods came after all");
}

#[test]
fn progress_deadline_abort_aborts_and_keeps_the_reason() {
    let mut m = stuck(true);
    m.converge();
    m.advance(secs(60));
    let p = m.reconcile();
    assert!(p.status.abort);
    assert!(p.has(|t| matches!(t, Transition::RolloutAborted { .. })));
    m.converge();
    m.advance(secs(1));
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Degraded);
    assert_eq!(progressing_condition(&p).reason, "ProgressDeadlineExceeded");
    assert_eq!(m.replicas("v2"), 0);
    let again = m.plan();
    assert!(again.intents.is_empty() && again.transitions.is_empty());
    assert_eq!(again.status, p.status);
}

#[test]
fn time_paused_does_not_count_toward_the_progress_deadline() {
    let r = rollout()
        .steps([set_weight(20), pause(None), set_weight(50)])
        .progress_deadline(60)
        .build();
    let mut m = Model::releasing(r, t0());
    m.converge();
    m.advance(secs(86_400));
    m.promote();
    m.startup.insert("v2".into(), Some(secs(30)));
    let p = m.reconcile();
    assert_eq!(p.status.phase, Phase::Progressing);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(60)));
}

// ----------------------------------------------------------------------------------------------
// Scale-down of old versions, revision history
// ----------------------------------------------------------------------------------------------

#[test]
fn the_old_stable_scales_down_after_the_scale_down_delay_with_the_deadline_persisted() {
    let r = rollout()
        .steps([set_weight(50)])
        .scale_down_delay(30)
        .build();
    let mut m = Model::releasing(r, t0());
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Healthy);
    assert_eq!(
        m.stable_destination(),
        Some("v2"),
        "stable points at v2 first"
    );
    assert_eq!(m.rs("v1").unwrap().scale_down_at, Some(t0() + secs(30)));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(30)));
    assert_eq!(m.replicas("v1"), 4);

    m.advance(secs(29));
    let p = m.reconcile();
    assert_eq!(m.replicas("v1"), 4);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(1)));
    m.advance(secs(1));
    let p = m.converge();
    assert_eq!(m.replicas("v1"), 0);
    assert!(p.requeue_after.is_none());
}

#[test]
fn a_restart_keeps_the_scale_down_deadline_it_persisted() {
    let r = rollout().template("v2").scale_down_delay(30).build();
    let w = world(&r)
        .rs("v1", 4, 4)
        .stable("v2")
        .scale_down_at("v1", t0() + secs(30));
    let p = at(&r, w, t0() + secs(10));
    assert_eq!(p.deadline_of("v1"), None, "the deadline is not restarted");
    assert_eq!(p.replicas_of("v1"), None);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(20)));
    assert_eq!(p.status.phase, Phase::Healthy);
}

#[test]
fn old_revisions_are_pruned_to_the_revision_history_limit() {
    let r = rollout().template("v4").history(1).build();
    let w = world(&r)
        .rs("v1", 0, 0)
        .rs("v2", 0, 0)
        .rs("v3", 0, 0)
        .stable("v4");
    let p = plan_now(&r, w);
    assert!(p.deletes("v1") && p.deletes("v2"));
    assert!(!p.deletes("v3"), "the newest old revision is kept");
    assert!(!p.deletes("v4"));
}

// ----------------------------------------------------------------------------------------------
// Status, conditions, transitions
// ----------------------------------------------------------------------------------------------

#[test]
fn conditions_keep_their_last_transition_time_while_their_status_holds() {
    let r = rollout()
        .steps([set_weight(20), pause(Some(30)), set_weight(50)])
        .build();
    let mut m = Model::releasing(r, t0());
    m.converge();
    let progressing_since = |m: &Model| {
        m.persisted
            .conditions
            .iter()
            .find(|c| c.kind == ConditionKind::Progressing)
            .map(|c| c.last_transition_time)
    };
    let first = progressing_since(&m);
    m.advance(secs(30));
    m.converge();
    assert_eq!(
        progressing_since(&m),
        first,
        "Progressing stayed true throughout"
    );
    let paused = m
        .persisted
        .conditions
        .iter()
        .find(|c| c.kind == ConditionKind::Paused)
        .unwrap();
    assert!(!paused.status);
    assert_eq!(
        paused.last_transition_time,
        t0() + secs(30),
        "Paused flipped back at 30 s"
    );
}

#[test]
fn step_completed_events_count_against_all_the_steps() {
    let r = rollout()
        .steps([set_weight(20), set_weight(40), pause(None), set_weight(60)])
        .build();
    let mut m = Model::releasing(r, t0());
    m.converge();
    let completed: Vec<_> = events(&m)
        .into_iter()
        .filter(|e| e.starts_with("StepCompleted"))
        .collect();
    assert_eq!(
        completed,
        vec![
            "StepCompleted { index: 0, total: 4 }",
            "StepCompleted { index: 1, total: 4 }"
        ]
    );
}

#[test]
fn traffic_weight_updated_is_reported_once_per_verified_weight() {
    let r = rollout()
        .steps([set_weight(20), pause(Some(10)), set_weight(50), pause(None)])
        .build();
    let mut m = Model::releasing(r, t0());
    m.converge();
    m.advance(secs(10));
    m.converge();
    let weights: Vec<_> = events(&m)
        .into_iter()
        .filter(|e| e.starts_with("TrafficWeightUpdated"))
        .collect();
    assert!(
        weights.ends_with(&[
            "TrafficWeightUpdated { canary: 20 }",
            "TrafficWeightUpdated { canary: 50 }"
        ]),
        "{weights:?}"
    );
}

#[test]
fn user_abort_and_retry_are_reported_once_each() {
    let r = rollout()
        .steps([set_weight(20), pause(None)])
        .abort_scale_down_delay(0)
        .build();
    let mut m = Model::releasing(r, t0());
    m.converge();
    m.abort();
    m.converge();
    m.retry();
    m.converge();
    assert_eq!(count_events(&m, "RolloutAborted"), 1);
    assert_eq!(count_events(&m, "RolloutRetried"), 1);
}

// ----------------------------------------------------------------------------------------------
// Safety corners
// ----------------------------------------------------------------------------------------------

#[test]
fn an_unknown_read_back_never_moves_the_canary_service() {
    let r = rollout()
        .template("v3")
        .steps([set_weight(20), pause(None)])
        .build();
    let w = world(&r)
        .stable("v1")
        .rs("v2", 1, 1)
        .canary_service("v2")
        .no_traffic_read_back()
        .persisted(|p| p.current_hash = Some("v2".into()));
    let p = plan_now(&r, w);
    assert_eq!(p.points(CANARY_SVC), None, "v2 may still have traffic");
    assert_eq!(p.replicas_of("v2"), None);
}

#[test]
fn waiting_for_the_promotion_takes_traffic_off_a_canary_that_lost_its_pods() {
    let r = rollout().steps([set_weight(20)]).build();
    let w = world(&r)
        .stable("v1")
        .canary(4, 0)
        .canary_routed()
        .weight(20)
        .at_step(1);
    let p = plan_now(&r, w);
    assert_eq!(p.weight_set(), Some(0));
    assert_eq!(p.status.stable_hash.as_deref(), Some("v1"));
}

#[test]
fn a_promotion_whose_status_write_was_lost_is_not_run_again() {
    // The stable Service already selects v2 (applied), the status still says v1 at step 0.
    let r = rollout().steps([set_weight(20)]).build();
    let w = world(&r)
        .stable("v1")
        .canary(4, 4)
        .canary_routed()
        .stable_service("v2")
        .weight(0)
        .at_step(0);
    let p = plan_now(&r, w);
    assert_eq!(p.status.stable_hash.as_deref(), Some("v2"));
    assert!(p.weight_set().unwrap_or(0) == 0, "no canary weight again");
    assert!(
        !p.intents
            .iter()
            .any(|i| matches!(i, Intent::ScaleReplicaSet { replicas, .. } if *replicas < 4 && i != &Intent::ScaleReplicaSet { name: rs_name("v1"), replicas: 0 })),
        "{:?}",
        p.intents
    );
}

#[test]
fn a_rollout_scaled_to_zero_releases_without_traffic() {
    let r = rollout()
        .replicas(0)
        .steps([set_weight(20), pause(Some(10))])
        .build();
    let mut m = Model::releasing(r, t0());
    m.converge();
    m.advance(secs(10));
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Healthy);
    assert_eq!(m.persisted.stable_hash.as_deref(), Some("v2"));
    assert_eq!(m.weight(), Some(0));
}

#[test]
fn a_canary_retried_while_paused_drops_the_scale_down_deadline_of_its_abort() {
    let r = rollout()
        .steps([set_weight(20), pause(None)])
        .paused(true)
        .build();
    let w = canary_world(&r, 1, 0, 0).scale_down_at("v2", t0() + secs(30));
    let p = plan_now(&r, w);
    assert_eq!(p.deadline_of("v2"), Some(None));
    assert_eq!(p.status.phase, Phase::Paused);
}

#[test]
fn abort_points_a_reverted_stable_service_back_before_moving_the_weight() {
    // Someone (a GitOps sync) reset the stable Service's selector during the release.
    let r = rollout().steps([set_weight(20), pause(None)]).build();
    let w = canary_world(&r, 1, 20, 1).stable_service("v9").abort();
    let p = plan_now(&r, w);
    let pointed = p.position(|i| matches!(i, Intent::PointService { service, hash } if service == STABLE_SVC && hash == "v1"));
    let weighted = p.position(|i| matches!(i, Intent::SetTraffic(t) if t.canary_weight == 0));
    assert!(
        pointed.is_some() && pointed < weighted,
        "stable Service first: {:?}",
        p.intents
    );
}

#[test]
fn a_release_puts_a_reverted_stable_service_back_on_the_stable_pods() {
    let r = rollout().steps([set_weight(20), pause(None)]).build();
    let w = canary_world(&r, 1, 20, 1).stable_service("v9");
    assert_eq!(plan_now(&r, w).points(STABLE_SVC), Some("v1"));
}

#[test]
fn weight_never_moves_back_to_a_stable_without_available_pods() {
    let r = rollout()
        .steps([set_weight(50), set_weight(20), pause(None)])
        .build();
    let w = canary_world(&r, 2, 50, 1).rs("v1", 4, 0);
    let p = plan_now(&r, w);
    assert!(p.weight_set().is_none_or(|w| w == 50), "{:?}", p.intents);
    assert_eq!(
        p.status.current_step_index,
        Some(1),
        "the step waits for stable pods"
    );
}

// ----------------------------------------------------------------------------------------------
// Single decisions on hand-built worlds
// ----------------------------------------------------------------------------------------------

#[test]
fn an_indefinite_pause_continues_only_once_its_condition_is_removed() {
    let r = rollout()
        .steps([set_weight(20), pause(None), set_weight(50), pause(None)])
        .build();
    let paused =
        || canary_world(&r, 1, 20, 1).paused_since(PauseReason::CanaryPauseStep, t0() - secs(600));

    let p = plan_now(&r, paused());
    assert_eq!(p.status.current_step_index, Some(1));
    assert!(p.intents.is_empty() && p.requeue_after.is_none());
    assert_eq!(
        p.status.pause_conditions[0].start_time,
        t0() - secs(600),
        "start kept"
    );

    let p = plan_now(&r, paused().promoted());
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(p.replicas_of("v2"), Some(2), "the next step's canary size");
    assert!(p.has(|t| *t == Transition::StepCompleted { index: 1, total: 4 }));
    assert!(p.has(|t| *t == Transition::RolloutResumed));
}

#[test]
fn promote_full_scales_the_canary_to_full_size_without_passing_steps() {
    let r = rollout()
        .steps([set_weight(20), pause(None), set_weight(50), pause(None)])
        .build();
    let w = canary_world(&r, 1, 20, 1)
        .paused_since(PauseReason::CanaryPauseStep, t0())
        .promote_full();
    let p = plan_now(&r, w);
    assert_eq!(p.replicas_of("v2"), Some(4));
    assert_eq!(p.status.current_step_index, Some(4));
    assert!(p.status.pause_conditions.is_empty());
    assert!(!p.has(|t| matches!(t, Transition::StepCompleted { .. })));
    assert_eq!(
        p.weight_set(),
        None,
        "weight held until the canary is full size"
    );
}

#[test]
fn a_disagreeing_read_back_is_rewritten_and_never_counts_as_verified() {
    let r = rollout().steps([set_weight(20), pause(None)]).build();
    let w = canary_world(&r, 1, 20, 0).weight_unknown();
    let p = plan_now(&r, w);
    assert_eq!(p.weight_set(), Some(20));
    assert_eq!(
        p.status.current_step_index,
        Some(0),
        "not verified: the step waits"
    );
    assert!(p.status.weights.as_ref().is_some_and(|w| !w.verified));
}

#[test]
fn abort_removes_the_managed_routes_with_the_weight() {
    let r = rollout()
        .steps([
            canary_replicas(1),
            header_route("h1", "x-canary", "yes"),
            pause(None),
        ])
        .build();
    let w = canary_world(&r, 1, 0, 2).routes(&["h1"]).abort();
    let t = plan_now(&r, w).traffic().cloned().expect("SetTraffic");
    assert_eq!(t.canary_weight, 0);
    assert!(t.header_routes.is_empty() && t.mirror_routes.is_empty());
}
