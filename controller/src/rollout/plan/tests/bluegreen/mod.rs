//! Tests of the blue-green planner: one table test per stage and user action, and a random
//! simulation with crashes. The model checks BG1, BG2 and the abort delay after every intent.

mod model;
mod simulation;

use chrono::Duration;

use super::super::{Intent, Phase, RunKind, Transition};
use super::fixtures::t0;
use crate::rollout::model::{PauseReason, RunPhase};
use model::{ACTIVE, BgModel, PREVIEW, bg_rollout};

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

fn releasing(f: impl FnOnce(&mut crate::rollout::model::BlueGreen)) -> BgModel {
    let mut m = BgModel::deployed(bg_rollout(f), t0());
    m.set_template("v2");
    m
}

fn pointed(p: &super::super::Plan, service: &str) -> Option<String> {
    p.intents.iter().find_map(|i| match i {
        Intent::PointService { service: s, hash } if s == service => Some(hash.clone()),
        _ => None,
    })
}

fn pause_reasons(m: &BgModel) -> Vec<PauseReason> {
    m.persisted
        .pause_conditions
        .iter()
        .map(|p| p.reason)
        .collect()
}

#[test]
fn a_first_deploy_points_both_services_at_the_full_replicaset_and_is_healthy() {
    let m = BgModel::deployed(bg_rollout(|_| {}), t0());
    assert_eq!(m.active.as_deref(), Some("v1"));
    assert_eq!(m.preview.as_deref(), Some("v1"));
    assert_eq!(m.replicas("v1"), 4);
    let p = m.plan();
    assert_eq!(p.status.phase, Phase::Healthy);
    assert!(
        p.intents.is_empty() && p.requeue_after.is_none(),
        "idle: {p:?}"
    );
    let bg = p.status.blue_green.expect("blue-green status");
    assert_eq!(
        (bg.active.as_deref(), bg.preview.as_deref()),
        (Some("v1"), Some("v1"))
    );
}

#[test]
fn the_preview_gets_the_new_replicaset_at_once_and_the_switch_waits_for_every_pod() {
    let mut m = releasing(|b| b.preview_replicas = 2);
    m.startup.insert("v2".into(), Some(secs(10)));
    let p = m.reconcile();
    assert!(p.intents.contains(&Intent::CreateReplicaSet {
        hash: "v2".into(),
        replicas: 2,
        revision: 2
    }));
    assert_eq!(pointed(&p, PREVIEW).as_deref(), Some("v2"));
    assert_eq!(pointed(&p, ACTIVE), None);
    m.converge();
    assert_eq!(
        m.active.as_deref(),
        Some("v1"),
        "no switch before the preview is up"
    );
    m.advance(secs(10));
    let p = m.converge();
    assert_eq!(m.replicas("v2"), 4, "scaled to full size for the switch");
    assert_eq!(
        m.active.as_deref(),
        Some("v1"),
        "the new pods are not available yet"
    );
    assert_eq!(
        p.status.blue_green.as_ref().map(|b| b.promoting),
        Some(true)
    );
    m.advance(secs(10));
    let p = m.converge();
    assert_eq!(m.active.as_deref(), Some("v2"));
    assert_eq!(p.status.stable_hash.as_deref(), Some("v2"));
    assert_eq!(p.status.phase, Phase::Healthy);
}

#[test]
fn a_promotion_emits_the_switch_and_the_promotion_and_the_old_version_goes_after_its_delay() {
    let mut m = releasing(|_| {});
    let mut events = Vec::new();
    for _ in 0..10 {
        let p = m.reconcile();
        events.extend(p.transitions.clone());
        if p.intents.is_empty() && p.requeue_after.is_none_or(|d| d.as_millis() > 10) {
            break;
        }
    }
    assert!(events.contains(&Transition::ActiveServiceSwitched {
        service: ACTIVE.into(),
        hash: "v2".into()
    }));
    assert!(events.contains(&Transition::RolloutPromoted { hash: "v2".into() }));
    assert_eq!(m.replicas("v1"), 4, "kept for scaleDownDelaySeconds");
    assert!(m.rss["v1"].scale_down_at.is_some());
    m.advance(secs(29));
    m.converge();
    assert_eq!(m.replicas("v1"), 4);
    m.advance(secs(1));
    m.converge();
    assert_eq!(m.replicas("v1"), 0);
}

#[test]
fn without_auto_promotion_it_pauses_until_promoted() {
    let mut m = releasing(|b| b.auto_promotion = None);
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Paused);
    assert_eq!(pause_reasons(&m), vec![PauseReason::BlueGreenPause]);
    assert_eq!(m.active.as_deref(), Some("v1"));
    assert_eq!(m.preview.as_deref(), Some("v2"));
    assert!(
        p.requeue_after.is_none(),
        "an indefinite pause needs no timer"
    );
    m.advance(secs(3600));
    m.converge();
    assert_eq!(
        m.active.as_deref(),
        Some("v1"),
        "still waiting for the user"
    );
    m.promote();
    let p = m.converge();
    assert_eq!(m.active.as_deref(), Some("v2"));
    assert_eq!(p.status.phase, Phase::Healthy);
    assert!(m.persisted.pause_conditions.is_empty());
}

#[test]
fn auto_promotion_seconds_pauses_then_switches_on_its_own() {
    let mut m = releasing(|b| b.auto_promotion = Some(std::time::Duration::from_secs(20)));
    let p = m.converge();
    assert_eq!(pause_reasons(&m), vec![PauseReason::BlueGreenPause]);
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(20)));
    m.advance(secs(19));
    m.converge();
    assert_eq!(m.active.as_deref(), Some("v1"));
    m.advance(secs(1));
    m.converge();
    assert_eq!(m.active.as_deref(), Some("v2"));
}

#[test]
fn a_failed_pre_promotion_analysis_aborts_and_the_active_service_never_moves() {
    let mut m = releasing(|b| b.pre_promotion_analysis = true);
    m.pre_verdict = RunPhase::Failed;
    let p = m.converge();
    assert!(p.status.abort);
    assert_eq!(p.status.phase, Phase::Degraded);
    assert!(
        p.status.message.contains("-v2-pre-"),
        "{}",
        p.status.message
    );
    assert_eq!(m.active.as_deref(), Some("v1"));
    assert_eq!(m.replicas("v2"), 4, "kept for abortScaleDownDelaySeconds");
    m.advance(secs(30));
    m.converge();
    assert_eq!(m.replicas("v2"), 0);
    assert_eq!(m.persisted.stable_hash.as_deref(), Some("v1"));
}

#[test]
fn a_running_pre_promotion_analysis_holds_the_switch_and_a_pass_releases_it() {
    let mut m = releasing(|b| b.pre_promotion_analysis = true);
    m.pre_verdict = RunPhase::Running;
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Progressing);
    assert!(
        p.status.message.contains("pre-promotion"),
        "{}",
        p.status.message
    );
    assert_eq!(m.active.as_deref(), Some("v1"));
    m.decide(RunKind::PrePromotion, RunPhase::Successful);
    m.converge();
    assert_eq!(m.active.as_deref(), Some("v2"));
}

#[test]
fn an_inconclusive_pre_promotion_analysis_pauses_until_promoted() {
    let mut m = releasing(|b| b.pre_promotion_analysis = true);
    m.pre_verdict = RunPhase::Inconclusive;
    m.converge();
    assert_eq!(pause_reasons(&m), vec![PauseReason::InconclusiveAnalysis]);
    assert_eq!(m.active.as_deref(), Some("v1"));
    m.promote();
    m.converge();
    assert_eq!(m.active.as_deref(), Some("v2"));
    assert_eq!(m.persisted.stable_hash.as_deref(), Some("v2"));
}

#[test]
fn a_failed_post_promotion_analysis_switches_back_to_the_old_pods_in_one_reconcile() {
    let mut m = releasing(|b| b.post_promotion_analysis = true);
    m.post_verdict = RunPhase::Running;
    let p = m.converge();
    assert_eq!(m.active.as_deref(), Some("v2"));
    assert_eq!(
        p.status.stable_hash.as_deref(),
        Some("v1"),
        "not stable before judged"
    );
    assert_eq!((m.replicas("v1"), m.rss["v1"].scale_down_at), (4, None));
    m.advance(secs(600));
    m.converge();
    assert_eq!(
        m.replicas("v1"),
        4,
        "the rollback target outlives any delay"
    );

    m.decide(RunKind::PostPromotion, RunPhase::Failed);
    let p = m.reconcile();
    assert_eq!(
        p.intents.first(),
        Some(&Intent::PointService {
            service: ACTIVE.into(),
            hash: "v1".into()
        }),
        "the switch back comes first"
    );
    assert!(p.status.abort);
    let p = m.converge();
    assert_eq!(m.active.as_deref(), Some("v1"));
    assert_eq!(p.status.stable_hash.as_deref(), Some("v1"));
    assert_eq!(m.replicas("v2"), 4);
    m.advance(secs(30));
    m.converge();
    assert_eq!(m.replicas("v2"), 0);
}

#[test]
fn a_passed_post_promotion_analysis_makes_the_new_version_stable() {
    let mut m = releasing(|b| b.post_promotion_analysis = true);
    m.post_verdict = RunPhase::Running;
    m.converge();
    m.decide(RunKind::PostPromotion, RunPhase::Successful);
    let p = m.converge();
    assert_eq!(p.status.stable_hash.as_deref(), Some("v2"));
    assert_eq!(p.status.phase, Phase::Healthy);
    assert_eq!(m.run_names(RunKind::PostPromotion).len(), 1);
}

#[test]
fn abort_before_the_switch_then_retry_starts_again_with_fresh_runs() {
    let mut m = releasing(|b| {
        b.pre_promotion_analysis = true;
        b.auto_promotion = None;
    });
    m.converge();
    assert_eq!(pause_reasons(&m), vec![PauseReason::BlueGreenPause]);
    m.abort();
    let p = m.converge();
    assert!(p.status.abort && m.persisted.pause_conditions.is_empty());
    assert_eq!(m.active.as_deref(), Some("v1"));
    m.advance(secs(30));
    m.converge();
    assert_eq!(m.replicas("v2"), 0);
    let first = m.run_names(RunKind::PrePromotion);

    m.advance(secs(5));
    m.retry();
    let p = m.reconcile();
    assert!(p.transitions.contains(&Transition::RolloutRetried));
    m.converge();
    assert_eq!(m.replicas("v2"), 4);
    let runs = m.run_names(RunKind::PrePromotion);
    assert_eq!(
        runs.len(),
        2,
        "a fresh run for the retry: {runs:?} after {first:?}"
    );
    assert_eq!(pause_reasons(&m), vec![PauseReason::BlueGreenPause]);
    m.promote();
    m.converge();
    assert_eq!(m.active.as_deref(), Some("v2"));
}

#[test]
fn abort_after_the_switch_returns_the_active_service_before_any_scale_down() {
    let mut m = releasing(|b| b.post_promotion_analysis = true);
    m.post_verdict = RunPhase::Running;
    m.converge();
    assert_eq!(m.active.as_deref(), Some("v2"));
    m.abort();
    let p = m.reconcile();
    assert_eq!(pointed(&p, ACTIVE).as_deref(), Some("v1"));
    assert!(
        p.intents
            .iter()
            .any(|i| matches!(i, Intent::TerminateAnalysisRun { .. })),
        "the post-promotion run stops"
    );
    m.converge();
    assert_eq!(m.replicas("v2"), 4);
    m.advance(secs(30));
    m.converge();
    assert_eq!(m.replicas("v2"), 0);
}

#[test]
fn an_abort_scale_down_delay_of_zero_keeps_the_preview() {
    let mut m = releasing(|b| {
        b.auto_promotion = None;
        b.abort_scale_down_delay = None;
    });
    m.converge();
    m.abort();
    m.converge();
    m.advance(secs(3600));
    m.converge();
    assert_eq!(m.replicas("v2"), 4);
    assert_eq!(m.active.as_deref(), Some("v1"));
}

#[test]
fn a_fast_rollback_to_the_stable_template_drops_the_preview() {
    let mut m = releasing(|b| b.auto_promotion = None);
    m.converge();
    m.set_template("v1");
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Healthy);
    assert!(m.persisted.pause_conditions.is_empty());
    assert_eq!(
        (m.active.as_deref(), m.preview.as_deref()),
        (Some("v1"), Some("v1"))
    );
    m.advance(secs(30));
    m.converge();
    assert_eq!(m.replicas("v2"), 0);
}

#[test]
fn a_rollback_during_post_promotion_analysis_switches_back_to_the_kept_pods() {
    let mut m = releasing(|b| b.post_promotion_analysis = true);
    m.post_verdict = RunPhase::Running;
    m.converge();
    m.set_template("v1");
    let p = m.reconcile();
    assert_eq!(pointed(&p, ACTIVE).as_deref(), Some("v1"));
    m.converge();
    assert_eq!(m.active.as_deref(), Some("v1"));
    assert!(
        m.runs.iter().all(|r| r.phase.is_completed()),
        "the run was stopped"
    );
}

#[test]
fn a_template_superseding_an_unconfirmed_switch_goes_back_to_stable_first() {
    let mut m = releasing(|b| b.post_promotion_analysis = true);
    m.post_verdict = RunPhase::Running;
    m.converge();
    assert_eq!(m.active.as_deref(), Some("v2"));
    m.set_template("v3");
    m.startup.insert("v3".into(), Some(secs(10)));
    let p = m.reconcile();
    assert_eq!(pointed(&p, ACTIVE).as_deref(), Some("v1"));
    assert_eq!(pointed(&p, PREVIEW).as_deref(), Some("v3"));
    m.converge();
    m.advance(secs(10));
    m.converge();
    assert_eq!(m.active.as_deref(), Some("v3"));
    assert_eq!(
        m.persisted.stable_hash.as_deref(),
        Some("v1"),
        "v3 is judged first"
    );
}

#[test]
fn promote_full_skips_analysis_and_the_pause() {
    let mut m = releasing(|b| {
        b.pre_promotion_analysis = true;
        b.post_promotion_analysis = true;
        b.auto_promotion = None;
    });
    m.pre_verdict = RunPhase::Running;
    m.converge();
    m.promote_full();
    let p = m.converge();
    assert_eq!(m.active.as_deref(), Some("v2"));
    assert_eq!(p.status.stable_hash.as_deref(), Some("v2"));
    assert!(!p.status.promote_full, "the request is cleared");
}

#[test]
fn spec_paused_holds_the_preview_where_it_is() {
    let mut m = releasing(|_| {});
    m.rollout.paused = true;
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Paused);
    assert_eq!(m.replicas("v2"), 0);
    assert_eq!(m.active.as_deref(), Some("v1"));
    m.rollout.paused = false;
    m.converge();
    assert_eq!(m.active.as_deref(), Some("v2"));
}

#[test]
fn a_lost_status_write_after_the_switch_does_not_repeat_the_preview_stage() {
    let mut m = releasing(|b| {
        b.pre_promotion_analysis = true;
        b.post_promotion_analysis = true;
    });
    m.post_verdict = RunPhase::Running;
    loop {
        let p = m.plan();
        let switches = pointed(&p, ACTIVE).is_some_and(|h| h == "v2");
        m.apply_plan(&p, p.intents.len(), !switches);
        if switches {
            break;
        }
    }
    assert_eq!(m.active.as_deref(), Some("v2"));
    let p = m.converge();
    assert_eq!(
        m.active.as_deref(),
        Some("v2"),
        "no switch back for a lost write"
    );
    assert_eq!(m.run_names(RunKind::PrePromotion).len(), 1);
    assert_eq!(p.status.blue_green.map(|b| b.promoting), Some(true));
}

#[test]
fn a_progress_deadline_with_abort_aborts_a_preview_that_never_becomes_ready() {
    let mut r = bg_rollout(|_| {});
    r.progress_deadline = std::time::Duration::from_secs(60);
    r.progress_deadline_abort = true;
    let mut m = BgModel::deployed(r, t0());
    m.set_template("v2");
    m.startup.insert("v2".into(), None);
    m.converge();
    m.advance(secs(60));
    let p = m.converge();
    assert!(p.status.abort);
    assert_eq!(m.active.as_deref(), Some("v1"));
    assert!(
        p.status.message.contains("waiting for ReplicaSet v2"),
        "{}",
        p.status.message
    );
}

#[test]
fn a_forgotten_checkpoint_never_shrinks_the_preview_scaled_up_for_the_switch() {
    let mut m = releasing(|b| b.preview_replicas = 2);
    m.startup.insert("v2".into(), Some(secs(10)));
    m.converge();
    m.advance(secs(10));
    // The reconcile that scales up for the switch has its status write lost.
    let p = m.plan();
    assert_eq!(
        p.status.blue_green.as_ref().map(|b| b.promoting),
        Some(true)
    );
    m.apply_plan(&p, p.intents.len(), false);
    assert_eq!(m.replicas("v2"), 4);
    let p = m.reconcile();
    assert!(
        !p.intents.iter().any(|i| matches!(
            i,
            Intent::ScaleReplicaSet { replicas, .. } if *replicas < 4
        )),
        "{:?}",
        p.intents
    );
    m.advance(secs(10));
    m.converge();
    assert_eq!(m.active.as_deref(), Some("v2"));
}

#[test]
fn a_first_blue_green_deploy_that_never_gets_its_pods_exceeds_the_deadline() {
    let mut r = bg_rollout(|_| {});
    r.progress_deadline = std::time::Duration::from_secs(60);
    let mut m = BgModel::empty(r, t0());
    m.startup.insert("v1".into(), None);
    m.converge();
    m.advance(secs(60));
    let p = m.converge();
    assert_eq!(p.status.phase, Phase::Degraded);
    assert!(
        p.status.message.contains("progress deadline exceeded"),
        "{}",
        p.status.message
    );
    assert_eq!(m.active, None, "no Service selects pods that never came");
}
