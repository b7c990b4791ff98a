//! Random blue-green releases: new templates (and rollbacks), promotes, aborts, retries, run
//! verdicts, slow or broken pods, time passing, and reconciles that crash part-way (some
//! intents applied, the status not written). The model checks the invariants after every
//! intent; at the end, with the user promoting and runs passing, the Rollout must come to rest
//! with the template active, stable, at full size, and nothing else running.

use chrono::Duration;
use proptest::prelude::*;

use super::super::fixtures::t0;
use super::super::simulation::config;
use super::model::{BgModel, bg_rollout};
use crate::rollout::model::RunPhase;
use crate::rollout::plan::{Phase, RunKind};

#[derive(Clone, Debug)]
enum Action {
    Template(&'static str, Option<i64>),
    Promote,
    Abort,
    Retry,
    Verdict(RunKind, RunPhase),
    Advance(i64),
    Crash(usize),
}

fn action() -> impl Strategy<Value = Action> {
    let hash = prop::sample::select(vec!["v1", "v2", "v3", "v4"]);
    let startup = prop::option::weighted(0.9, 0i64..20);
    let kind = prop::sample::select(vec![RunKind::PrePromotion, RunKind::PostPromotion]);
    let phase = prop::sample::select(vec![
        RunPhase::Running,
        RunPhase::Successful,
        RunPhase::Failed,
        RunPhase::Inconclusive,
    ]);
    prop_oneof![
        2 => (hash, startup).prop_map(|(h, s)| Action::Template(h, s)),
        2 => Just(Action::Promote),
        1 => Just(Action::Abort),
        1 => Just(Action::Retry),
        2 => (kind, phase).prop_map(|(k, p)| Action::Verdict(k, p)),
        4 => (0i64..40).prop_map(Action::Advance),
        1 => (0usize..4).prop_map(Action::Crash),
    ]
}

#[derive(Clone, Debug)]
struct Scenario {
    preview_replicas: i32,
    auto: Option<u64>,
    pre: bool,
    post: bool,
    abort_delay: Option<u64>,
    delay: u64,
    actions: Vec<Action>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        1i32..=4,
        prop::option::weighted(0.6, prop::sample::select(vec![0u64, 5, 30])),
        any::<bool>(),
        any::<bool>(),
        prop::option::weighted(0.8, prop::sample::select(vec![1u64, 30])),
        prop::sample::select(vec![0u64, 1, 30]),
        prop::collection::vec(action(), 1..40),
    )
        .prop_map(
            |(preview_replicas, auto, pre, post, abort_delay, delay, actions)| Scenario {
                preview_replicas,
                auto,
                pre,
                post,
                abort_delay,
                delay,
                actions,
            },
        )
}

fn build(s: &Scenario) -> BgModel {
    let seconds = std::time::Duration::from_secs;
    let r = bg_rollout(|b| {
        b.preview_replicas = s.preview_replicas;
        b.auto_promotion = s.auto.map(seconds);
        b.pre_promotion_analysis = s.pre;
        b.post_promotion_analysis = s.post;
        b.abort_scale_down_delay = s.abort_delay.map(seconds);
        b.scale_down_delay = seconds(s.delay);
    });
    BgModel::deployed(r, t0())
}

fn act(m: &mut BgModel, a: &Action) {
    match a {
        Action::Template(hash, startup) => {
            m.startup
                .entry((*hash).to_owned())
                .or_insert(startup.map(Duration::seconds));
            m.set_template(hash);
        }
        Action::Promote => m.promote(),
        Action::Abort => m.abort(),
        Action::Retry => m.retry(),
        Action::Verdict(kind, phase) => {
            m.decide(*kind, *phase);
            m.pre_verdict = *phase;
        }
        Action::Advance(s) => m.advance(Duration::seconds(*s)),
        Action::Crash(count) => {
            let p = m.plan();
            let count = (*count).min(p.intents.len());
            m.apply_plan(&p, count, false);
        }
    }
    m.reconcile();
}

/// The user fixes everything: broken templates start, runs pass, pauses are promoted, an abort
/// is retried. Then the Rollout must rest as promised.
fn settle(m: &mut BgModel) {
    for startup in m.startup.values_mut() {
        *startup = Some(Duration::zero());
    }
    let template = m.rollout.template_hash.clone();
    m.set_template(&template);
    m.pre_verdict = RunPhase::Successful;
    m.post_verdict = RunPhase::Successful;
    for _ in 0..30 {
        m.decide(RunKind::PrePromotion, RunPhase::Successful);
        m.decide(RunKind::PostPromotion, RunPhase::Successful);
        m.retry();
        m.promote();
        // Pods created by now are ready after a restart of their start-up (none are broken).
        rebuild_broken_pods(m);
        m.converge();
        m.advance(Duration::seconds(31));
    }
    let p = m.converge();
    let t = m.rollout.template_hash.clone();
    assert_eq!(p.status.phase, Phase::Healthy, "{}", m.dump());
    assert_eq!(m.persisted.stable_hash.as_ref(), Some(&t), "{}", m.dump());
    assert_eq!(m.active.as_ref(), Some(&t), "{}", m.dump());
    assert_eq!(m.available(&t), m.rollout.replicas, "{}", m.dump());
    for (hash, rs) in &m.rss {
        assert!(
            hash == &t || rs.replicas() == 0,
            "{hash} still runs\n{}",
            m.dump()
        );
    }
    assert!(
        p.intents.is_empty() && p.requeue_after.is_none(),
        "{}",
        m.dump()
    );
}

/// Pods of a template that was broken earlier were created never-ready; the user's fix
/// replaces them (a new pod each, ready at once).
fn rebuild_broken_pods(m: &mut BgModel) {
    let now = m.now;
    for rs in m.rss.values_mut() {
        rs.restart_broken(now);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_blue_green_releases_keep_every_invariant_and_come_to_rest(s in scenario()) {
        let mut m = build(&s);
        for a in &s.actions {
            act(&mut m, a);
        }
        settle(&mut m);
    }
}
