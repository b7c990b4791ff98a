//! Property tests of the six safety invariants of DESIGN section 3, each on one plan over a
//! random world: random rollouts (steps, routing, delays, spec.paused) and random observations
//! (ReplicaSets in any state, any weight, routes, subsets and Service selectors, any persisted
//! status including user requests). The plan's intents are applied one by one to the model
//! cluster, which checks after each that no traffic went to a version without available pods and
//! no ReplicaSet still receiving traffic lost its pods.

use chrono::Duration as ChronoDuration;
use proptest::prelude::*;

use super::super::{Intent, Plan, Transition, plan};
use super::fixtures::*;
use super::model::Model;
use super::simulation::{cases, rollout_strategy, step_weight};
use crate::rollout::model::{
    Condition, ConditionKind, Observed, PauseCondition, PauseReason, Persisted, ReplicaSetView,
    Step, ValidatedRollout,
};
use crate::traffic::{ObservedTraffic, SubsetHashes};

const HASHES: [&str; 4] = ["v1", "v2", "v3", "v4"];

fn hash() -> impl Strategy<Value = String> {
    (0usize..HASHES.len()).prop_map(|i| HASHES[i].to_owned())
}

/// One ReplicaSet per hash, each present or not, in any state.
fn replica_sets() -> impl Strategy<Value = Vec<ReplicaSetView>> {
    let one = (
        prop::bool::weighted(0.7),
        0i32..6,
        0i32..6,
        prop::option::weighted(0.2, -60i64..60),
    );
    prop::collection::vec(one, HASHES.len()).prop_map(|sets| {
        sets.into_iter()
            .zip(HASHES)
            .zip(1i64..)
            .filter(|(((present, ..), _), _)| *present)
            .map(|(((_, replicas, available, deadline), hash), revision)| {
                let available = available.min(replicas);
                ReplicaSetView {
                    name: rs_name(hash),
                    hash: hash.to_owned(),
                    revision,
                    replicas,
                    ready: available,
                    available,
                    scale_down_at: deadline.map(|s| t0() + secs(s)),
                }
            })
            .collect()
    })
}

fn condition() -> impl Strategy<Value = Condition> {
    (any::<bool>(), 0usize..3, -700i64..0).prop_map(|(exceeded, message, ago)| {
        let messages = [
            "waiting for ReplicaSet v2: 0/4 available; canary weight 0 of 20",
            "canary at weight 20 verified",
            "Rollout aborted: traffic returned to stable",
        ];
        Condition {
            kind: ConditionKind::Progressing,
            status: !exceeded,
            reason: if exceeded {
                "ProgressDeadlineExceeded"
            } else {
                "ReplicaSetUpdated"
            }
            .into(),
            message: messages[message].into(),
            last_update_time: t0() + secs(ago),
            last_transition_time: t0() + secs(ago),
        }
    })
}

fn persisted(steps: usize) -> impl Strategy<Value = Persisted> {
    (
        (
            prop::option::weighted(0.9, hash()),
            prop::option::weighted(0.9, hash()),
            prop::option::weighted(0.9, 0..steps + 2),
        ),
        (
            prop::option::weighted(0.4, (0usize..2, -200i64..0)),
            any::<bool>(),
        ),
        (
            prop::bool::weighted(0.2),
            prop::option::weighted(0.5, -200i64..0),
            prop::bool::weighted(0.1),
        ),
        prop::option::weighted(0.5, condition()),
        prop::option::of(0u8..=100),
    )
        .prop_map(
            |((stable, current, index), (pause, controller_pause), (abort, at, full), c, w)| {
                Persisted {
                    stable_hash: stable,
                    current_hash: current,
                    current_step_index: index,
                    pause_conditions: pause
                        .map(|(reason, ago)| PauseCondition {
                            reason: [PauseReason::CanaryPauseStep, PauseReason::AnalysisStep]
                                [reason],
                            start_time: t0() + secs(ago),
                        })
                        .into_iter()
                        .collect(),
                    controller_pause,
                    abort,
                    aborted_at: at.map(|s| t0() + secs(s)),
                    promote_full: full,
                    conditions: c.into_iter().collect(),
                    observed_generation: Some(1),
                    verified_weight: w,
                    step_run: None,
                    background_run: None,
                    promoting: false,
                    active_selector: None,
                }
            },
        )
}

fn traffic() -> impl Strategy<Value = ObservedTraffic> {
    (
        prop_oneof![3 => Just(0u8), 4 => 0u8..=100, 1 => Just(100u8)],
        prop::sample::subsequence(vec!["h1", "m1"], 0..=2),
        prop::option::weighted(0.8, (hash(), hash())),
    )
        .prop_map(|(weight, routes, subsets)| ObservedTraffic {
            canary_weight: Some(weight),
            managed_routes: routes.into_iter().map(str::to_owned).collect(),
            subsets: subsets.map(|(stable, canary)| SubsetHashes { stable, canary }),
        })
}

/// A random rollout (template among the hashes) and a random world consistent with its routing.
fn rollout_and_world() -> impl Strategy<Value = (ValidatedRollout, Observed)> {
    (rollout_strategy(), hash(), any::<bool>()).prop_flat_map(|(mut r, template, paused)| {
        r.template_hash = template;
        r.paused = paused && r.generation % 2 == 1;
        let steps = canary_of(&r).steps.len();
        let routing = routing_of(&r);
        (
            Just(r),
            replica_sets(),
            persisted(steps),
            traffic(),
            prop::option::weighted(0.9, hash()),
            prop::option::weighted(0.9, hash()),
            any::<bool>(),
        )
            .prop_map(move |(r, rss, p, t, stable_svc, canary_svc, spec_paused)| {
                let mut r = r;
                r.paused = spec_paused && r.paused;
                let host = routing == Routing::Host;
                let observed = Observed {
                    replica_sets: rss,
                    traffic: (routing != Routing::None).then(|| ObservedTraffic {
                        subsets: t.subsets.clone().filter(|_| routing == Routing::Subset),
                        ..t
                    }),
                    canary_service_hash: canary_svc.filter(|_| host),
                    stable_service_hash: stable_svc.filter(|_| host),
                    persisted: p,
                    analysis_runs: Vec::new(),
                };
                (r, observed)
            })
    })
}

fn available(o: &Observed, hash: Option<&str>) -> i32 {
    hash.and_then(|h| o.replica_set(h))
        .map_or(0, |rs| rs.available)
}

/// Applies every intent of `p` to a model of `o`, checking the per-intent safety invariants.
fn apply_checked(r: &ValidatedRollout, o: &Observed, p: &Plan) -> Result<Model, String> {
    let mut m = Model::from_observed(r.clone(), o, t0());
    for intent in &p.intents {
        m.apply(intent)
            .map_err(|e| format!("{e}\nintent: {intent:?}\nplan: {:?}", p.intents))?;
    }
    Ok(m)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Invariants 1-3 on every intent: weights within 0..=100 and never above the step's (unless
    /// stable has no pod to take the traffic back), no traffic to a version without available
    /// pods, no ReplicaSet that still receives traffic scaled to zero.
    #[test]
    fn no_intent_moves_traffic_unsafely((r, o) in rollout_and_world()) {
        let p = plan(&r, &o, t0());
        if let Err(e) = apply_checked(&r, &o, &p) {
            prop_assert!(false, "{e}");
        }
        let steps = &canary_of(&r).steps;
        let bound = step_weight(steps, p.status.current_step_index.unwrap_or(0));
        let stable = p.status.stable_hash.as_deref();
        let observed = o.traffic.as_ref().and_then(|t| t.canary_weight).unwrap_or(0);
        for intent in &p.intents {
            if let Intent::SetTraffic(t) = intent {
                prop_assert!(t.canary_weight <= 100);
                let held = available(&o, stable) == 0 && t.canary_weight <= observed;
                prop_assert!(
                    t.canary_weight <= bound || held,
                    "weight {} above the step's {bound}", t.canary_weight
                );
            }
        }
        prop_assert!(p.status.weights.as_ref().is_none_or(|w| w.canary <= 100));
    }

    /// Invariant 3: an aborted release's canary is never scaled down while the read-back shows
    /// it traffic, nor before its abort delay has been persisted as a deadline and passed.
    #[test]
    fn an_abort_scales_the_canary_down_only_after_verified_traffic_and_delay(
        (r, o) in rollout_and_world()
    ) {
        let p = plan(&r, &o, t0());
        if !p.status.abort || routing_of(&r) == Routing::None {
            return Ok(());
        }
        let canary = rs_name(&r.template_hash);
        let scaled_down = p.intents.iter().any(|i| {
            matches!(i, Intent::ScaleReplicaSet { name, replicas: 0 } if *name == canary)
        });
        if scaled_down {
            let t = o.traffic.as_ref().unwrap();
            prop_assert!(t.canary_weight == Some(0) || !canary_selected(&r, &o));
            prop_assert!(t.managed_routes.is_empty() || !canary_selected(&r, &o));
            let delay = canary_of(&r).abort_scale_down_delay;
            let deadline = o.replica_set(&r.template_hash).and_then(|rs| rs.scale_down_at);
            prop_assert!(
                delay.is_some_and(|delay| delay.is_zero() || deadline.is_some_and(|d| d <= t0())),
                "scaled down without a passed deadline (or with abortScaleDownDelaySeconds 0)"
            );
        }
    }

    /// Invariant 4: an analysis step is never passed (nor the release promoted past it) unless
    /// the user promoted it or asked for `promote --full`.
    #[test]
    fn missing_metrics_never_promote((r, o) in rollout_and_world()) {
        let p = plan(&r, &o, t0());
        let prev = &o.persisted;
        let same_release = prev.current_hash.as_deref() == Some(r.template_hash.as_str())
            && prev.stable_hash.as_deref() != Some(r.template_hash.as_str())
            && !prev.abort
            && !p.status.abort
            && !prev.promote_full;
        let stable_in_world = o.stable_service_hash.as_deref() == Some(r.template_hash.as_str())
            || o.traffic.as_ref().and_then(|t| t.subsets.as_ref())
                .is_some_and(|s| s.stable == r.template_hash);
        let (Some(from), Some(to)) = (prev.current_step_index, p.status.current_step_index) else {
            return Ok(());
        };
        if !same_release || stable_in_world || o.replica_set(prev.stable_hash.as_deref().unwrap_or("")).is_none() {
            return Ok(());
        }
        let steps = &canary_of(&r).steps;
        let passed = steps.iter().enumerate().take(to).skip(from);
        for (k, step) in passed {
            if *step == Step::Analysis {
                let promoted_here = k == from && prev.controller_pause
                    && !prev.pause_conditions.iter().any(|c| c.reason == PauseReason::AnalysisStep);
                prop_assert!(promoted_here, "analysis step {k} passed without a promote");
            }
        }
    }

    /// Invariant 5: the plan is a function of status and world; after a crash at any point of
    /// the apply (status not written), or after a full apply and status write, the next plan
    /// neither goes back to an earlier step nor reports a completed step again.
    #[test]
    fn a_restart_resumes_from_status((r, o) in rollout_and_world(), cut in 0usize..8) {
        let p = plan(&r, &o, t0());
        prop_assert_eq!(&p, &plan(&r, &o, t0()), "a plan depends on status and world only");
        let mut m = Model::from_observed(r.clone(), &o, t0());
        for intent in p.intents.iter().take(cut) {
            if m.apply(intent).is_err() {
                return Ok(()); // reported by `no_intent_moves_traffic_unsafely`
            }
        }
        no_step_back(&r, &o.persisted, &m.plan())?;
        for intent in p.intents.iter().skip(cut) {
            if m.apply(intent).is_err() {
                return Ok(());
            }
        }
        m.persisted = persist(&o.persisted, &p.status);
        no_step_back(&r, &m.persisted, &m.plan())?;
    }

    /// Invariant 6: reconciling a world that does not change on its own comes to rest in a few
    /// passes (no hot loop), and the resting plan is a fixpoint: no intents, no events, the same
    /// status again.
    #[test]
    fn a_settled_world_plans_nothing((r, o) in rollout_and_world()) {
        let Ok(mut m) = apply_checked(&r, &o, &Plan { intents: Vec::new(), ..plan(&r, &o, t0()) }) else {
            return Ok(());
        };
        let mut rest = None;
        for _ in 0..25 {
            let p = m.plan();
            let asks_again = p.requeue_after.is_some_and(|d| d <= std::time::Duration::from_millis(10));
            for intent in &p.intents {
                if let Err(e) = m.apply(intent) {
                    prop_assert!(false, "{e}\nintent: {intent:?}");
                }
            }
            m.persisted = persist(&m.persisted, &p.status);
            if p.intents.is_empty() && !asks_again {
                rest = Some(p);
                break;
            }
            m.advance(ChronoDuration::milliseconds(10));
        }
        let Some(rest) = rest else {
            prop_assert!(false, "no rest after 25 reconciles:\n{}", m.dump());
            unreachable!();
        };
        let again = m.plan();
        prop_assert!(again.intents.is_empty(), "{:?}", again.intents);
        prop_assert!(again.transitions.is_empty(), "{:?}", again.transitions);
        prop_assert_eq!(&again.status, &rest.status);
    }
}

/// Within one release (same template, same stable, no abort), `next` starts from the step the
/// status `prev` stood at or later, and reports no step before it as completed.
fn no_step_back(r: &ValidatedRollout, prev: &Persisted, next: &Plan) -> Result<(), TestCaseError> {
    let same_release = prev.current_hash.as_deref() == Some(r.template_hash.as_str())
        && prev.stable_hash == next.status.stable_hash
        && !prev.abort
        && !next.status.abort;
    let (Some(from), Some(to)) = (prev.current_step_index, next.status.current_step_index) else {
        return Ok(());
    };
    if !same_release {
        return Ok(());
    }
    let from = from.min(canary_of(r).steps.len());
    prop_assert!(to >= from, "went back from step {from} to {to}");
    for t in &next.transitions {
        if let Transition::StepCompleted { index, .. } = t {
            prop_assert!(*index >= from, "step {index} reported completed again");
        }
    }
    Ok(())
}

/// Whether the canary destination (Service or subset) selects the template's pods.
fn canary_selected(r: &ValidatedRollout, o: &Observed) -> bool {
    let t = r.template_hash.as_str();
    o.canary_service_hash.as_deref() == Some(t)
        || o.traffic
            .as_ref()
            .and_then(|x| x.subsets.as_ref())
            .is_some_and(|s| s.canary == t)
}
