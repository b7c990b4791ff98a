//! Runs with `spec.score`: non-critical metrics are scored by weight once all completed,
//! critical and errored metrics still end the run at once.

use sluice_crds::{AnalysisPhase::*, Metric};

use super::{analysis, status_with};
use crate::{
    assess::{assess, assess_run},
    fixtures::{metric, t0},
    judge::ScoreThresholds,
    metric::ValidatedAnalysis,
    schedule::{due_metrics, is_terminating},
};

/// `metrics` scored with `pass` and `marginal`, without dry-run rules.
fn scored(metrics: Vec<Metric>, pass: u32, marginal: u32) -> ValidatedAnalysis {
    analysis(metrics, &[]).scored(ScoreThresholds::new(pass, marginal).unwrap())
}

/// Three measurements ten seconds apart, weighted.
fn three(name: &str, weight: i32) -> Metric {
    metric(name).interval(10).count(3).weight(weight).build()
}

#[test]
fn a_failed_light_metric_does_not_fail_a_run_that_scores_above_pass() {
    // latency 5 + saturation 4 succeeded, errors (1) failed: 9 / 10 = 90 >= pass 90.
    let a = scored(
        vec![
            three("latency", 5),
            three("saturation", 4),
            three("errors", 1),
        ],
        90,
        50,
    );
    let histories = [("latency", "SSS"), ("saturation", "SSS"), ("errors", "F")];
    let run = assess_run(&a, &status_with(&a, &histories).metric_results, false);
    assert_eq!(run.phase, Successful, "{}", run.message);
    assert_eq!(run.score, Some(90.0));
    assert_eq!(
        run.message,
        "score 90 (pass 90, marginal 50): at or above pass; \"latency\" Successful (weight 5), \
         \"saturation\" Successful (weight 4), \"errors\" Failed (weight 1)"
    );
    assert_eq!(run.metric_results[2].phase, Failed);
    assert_eq!(run.run_summary.failed, 1, "the summary still counts it");
}

#[test]
fn the_score_classifies_the_run_as_inconclusive_or_failed() {
    // 2 of 3 units: 66.66.
    let metrics = || vec![three("a", 1), three("b", 1), three("c", 1)];
    let histories = [("a", "SSS"), ("b", "SSS"), ("c", "SI")];
    let results = |a: &ValidatedAnalysis| status_with(a, &histories).metric_results;
    let a = scored(metrics(), 90, 60);
    let run = assess_run(&a, &results(&a), false);
    assert_eq!((run.phase, run.score), (Inconclusive, Some(66.66)));
    assert!(
        run.message.contains("\"c\" Inconclusive (weight 1)"),
        "{}",
        run.message
    );
    let a = scored(metrics(), 90, 70);
    let run = assess_run(&a, &results(&a), false);
    assert_eq!((run.phase, run.score), (Failed, Some(66.66)));
    assert!(run.message.contains("below marginal"), "{}", run.message);
}

#[test]
fn a_failed_non_critical_metric_waits_for_the_others_to_be_scored() {
    let a = scored(vec![three("latency", 9), three("errors", 1)], 90, 50);
    let status = status_with(&a, &[("latency", "S"), ("errors", "F")]);
    let run = assess_run(&a, &status.metric_results, false);
    assert_eq!((run.phase, run.score), (Running, None), "{}", run.message);
    assert_eq!(run.metric_results[0].phase, Running, "latency keeps going");
    assert_eq!(run.metric_results[1].phase, Failed, "errors is done");
    let status = assess(&a, &status, false, t0());
    assert!(!is_terminating(&a, &status, false));
    let due = due_metrics(&a, &status, false, t0() + chrono::TimeDelta::hours(1));
    let names: Vec<&str> = due.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["latency"], "only the running metric is measured");
}

#[test]
fn a_critical_failure_ends_the_run_at_once_whatever_the_score() {
    // Without the critical flag this would score 99 / 100 and pass; with it the first failure
    // ends the run while latency has taken one of its three measurements.
    let errors = metric("errors")
        .interval(10)
        .count(3)
        .weight(1)
        .critical()
        .build();
    let a = scored(vec![three("latency", 99), errors], 90, 50);
    let status = status_with(&a, &[("latency", "S"), ("errors", "F")]);
    let run = assess_run(&a, &status.metric_results, false);
    assert_eq!((run.phase, run.score), (Failed, None), "{}", run.message);
    assert!(
        run.message
            .starts_with("metric \"errors\" failed: failed (1) > failureLimit (0)"),
        "{}",
        run.message
    );
    assert_eq!(
        run.metric_results[0].message.as_deref(),
        Some("run terminated: 1 successful, 0 failed, 0 inconclusive, 0 errors"),
        "latency was stopped"
    );
    assert!(is_terminating(&a, &assess(&a, &status, false, t0()), false));
}

#[test]
fn an_errored_metric_ends_a_scored_run_at_once() {
    let a = scored(vec![three("latency", 99), three("errors", 1)], 90, 50);
    let status = status_with(&a, &[("latency", "S"), ("errors", "EEEEE")]);
    let run = assess_run(&a, &status.metric_results, false);
    assert_eq!((run.phase, run.score), (Error, None), "{}", run.message);
    assert!(run.message.contains("metric \"errors\" errored"));
}

#[test]
fn metrics_never_measured_and_dry_run_metrics_are_not_scored() {
    // Terminated after a: b was never measured, shadow is dry-run; only a (1 of 1) counts.
    let metrics = vec![
        three("a", 1),
        metric("b").initial_delay(600).weight(5).build(),
        three("shadow", 5),
    ];
    let rules = [sluice_crds::DryRun {
        metric_name: "shadow".into(),
    }];
    let a = ValidatedAnalysis::new(&metrics, &rules, &[])
        .unwrap()
        .scored(ScoreThresholds::new(100, 100).unwrap());
    let status = status_with(&a, &[("a", "SS"), ("shadow", "F")]);
    let run = assess_run(&a, &status.metric_results, true);
    assert_eq!((run.phase, run.score), (Successful, Some(100.0)));
    assert!(
        run.message
            .starts_with("score 100 (pass 100, marginal 100): at or above pass; \"a\" Successful (weight 1); dry-run metric \"shadow\" failed"),
        "{}",
        run.message
    );
}

#[test]
fn without_a_score_weights_and_critical_change_nothing() {
    let a = analysis(vec![three("latency", 99), three("errors", 1)], &[]);
    let status = status_with(&a, &[("latency", "S"), ("errors", "F")]);
    let run = assess_run(&a, &status.metric_results, false);
    assert_eq!((run.phase, run.score), (Failed, None));
}

#[test]
fn the_score_is_kept_in_the_status_and_survives_a_restart() {
    let a = scored(vec![three("latency", 3), three("errors", 1)], 90, 60);
    let status = status_with(&a, &[("latency", "SSS"), ("errors", "F")]);
    let done = assess(&a, &status, false, t0());
    assert_eq!((done.phase, done.score), (Some(Inconclusive), Some(75.0)));
    let json = serde_json::to_string(&done).unwrap();
    let persisted: sluice_crds::AnalysisRunStatus = serde_json::from_str(&json).unwrap();
    assert_eq!(assess(&a, &persisted, false, t0()), done);
}
