//! `promoteEarly`: a sequential judge's pass, as `judge_measurement` records it, completes the
//! metric through the assessment and schedule, and a regression still fails it at once.

use std::time::Duration;

use sluice_crds::{
    AnalysisPhase::{self, Failed, Running, Successful},
    AnalysisRunStatus, Measurement, Metric,
    judge::{CountQueries, Judge, MannWhitneyJudge, SequentialJudge},
};

use crate::{
    Args, ValidatedAnalysis, ValidatedMetric, assess, assess_metric,
    fixtures::{at, metric},
    judge::{judge_measurement, judge_queries, measure::judge_metadata},
    next_measurement_at, record, record_in,
    value::MetricValue,
};

/// Measurements `count` allows; every scenario decides well before it.
const COUNT: i32 = 20;

fn counts(version: &str) -> CountQueries {
    CountQueries {
        errors_query: format!("sum(increase(errors{{v=\"{version}\"}}[{{{{args.window}}}}]))"),
        total_query: format!("sum(increase(requests{{v=\"{version}\"}}[{{{{args.window}}}}]))"),
    }
}

fn sequential(promote_early: bool) -> Judge {
    Judge::Sequential(SequentialJudge {
        canary: counts("canary"),
        baseline: counts("stable"),
        alpha: Some(0.01),
        margin: Some(0.005),
        promote_early,
    })
}

fn judged(name: &str, judge: Judge) -> Metric {
    let mut m = metric(name).success(None).interval(10).count(COUNT).build();
    m.judge = Some(judge);
    m
}

fn validated(judge: Judge) -> ValidatedMetric {
    ValidatedMetric::new(&judged("errors", judge), false, 10).unwrap()
}

/// The sequential judge's measurement for cumulative counts (canary errors of requests,
/// baseline errors of requests), taken at `secs`.
fn measured(m: &ValidatedMetric, counts: [f64; 4], secs: i64) -> Measurement {
    let judge = match m.check() {
        crate::Check::Judge(j) => j.clone(),
        crate::Check::Conditions { .. } => unreachable!("a judge metric"),
    };
    let queries = judge_queries(&judge, &Args::new(), Duration::from_secs(60)).unwrap();
    let answers: Vec<_> = counts
        .iter()
        .map(|c| Ok(MetricValue::new(vec![*c])))
        .collect();
    judge_measurement(m, &judge, &queries, &answers, at(secs), at(secs + 1))
}

/// No errors in a few requests: too little to decide.
const UNDECIDED: [f64; 4] = [0.0, 100.0, 0.0, 400.0];
/// No errors in thousands of requests: an increase of half a point is excluded.
const WITHIN: [f64; 4] = [0.0, 6000.0, 2.0, 24000.0];
/// 10 % canary errors against 0.1 %.
const WORSE: [f64; 4] = [600.0, 6000.0, 24.0, 24000.0];

fn decision(m: &Measurement) -> Option<&str> {
    m.metadata.get(judge_metadata::DECISION).map(String::as_str)
}

/// Records the counts of successive measurements, ten seconds apart.
fn replay(m: &ValidatedMetric, history: &[[f64; 4]]) -> sluice_crds::MetricResult {
    let mut result = None;
    for (i, counts) in history.iter().enumerate() {
        let secs = i64::try_from(i).unwrap() * 10;
        result = Some(record(m, result.as_ref(), measured(m, *counts, secs)));
    }
    result.unwrap()
}

#[test]
fn the_fixture_counts_give_the_decisions_they_are_named_for() {
    let m = validated(sequential(true));
    let decisions: Vec<_> = [UNDECIDED, WITHIN, WORSE]
        .iter()
        .map(|c| measured(&m, *c, 0))
        .map(|x| (x.phase, decision(&x).map(str::to_owned)))
        .collect();
    assert_eq!(
        decisions,
        [
            (Successful, Some("continue".into())),
            (Successful, Some("pass".into())),
            (Failed, Some("fail".into())),
        ]
    );
}

#[test]
fn a_pass_completes_a_promote_early_metric_before_its_count() {
    let m = validated(sequential(true));
    let result = replay(&m, &[UNDECIDED, UNDECIDED, WITHIN]);
    assert_eq!(result.phase, Successful);
    assert_eq!(result.count, 3);
    let message = result.message.as_deref().unwrap();
    assert!(
        message.starts_with("promoted early after 3 measurement(s)"),
        "{message}"
    );
    assert!(message.contains("confidence sequence"), "{message}");
    assert_eq!(next_measurement_at(&m, Some(&result), at(0)), None);
}

#[test]
fn without_promote_early_a_pass_keeps_measuring_until_count() {
    let m = validated(sequential(false));
    let result = replay(&m, &[UNDECIDED, WITHIN]);
    assert_eq!(result.phase, Running);
    assert!(
        result.message.as_deref().unwrap().starts_with("2 of 20"),
        "{:?}",
        result.message
    );
    assert!(next_measurement_at(&m, Some(&result), at(0)).is_some());
}

#[test]
fn undecided_measurements_do_not_promote() {
    let m = validated(sequential(true));
    let result = replay(&m, &[UNDECIDED, UNDECIDED]);
    assert_eq!(result.phase, Running);
}

#[test]
fn a_regression_still_fails_at_once() {
    let m = validated(sequential(true));
    let result = replay(&m, &[UNDECIDED, WORSE]);
    assert_eq!(result.phase, Failed);
    assert!(
        result
            .message
            .as_deref()
            .unwrap()
            .starts_with("failed (1) > failureLimit (0)"),
        "{:?}",
        result.message
    );
}

#[test]
fn only_the_sequential_judge_promotes_early() {
    let mann_whitney = Judge::MannWhitney(MannWhitneyJudge {
        canary_query: "latency{v=\"canary\"}".into(),
        baseline_query: "latency{v=\"stable\"}".into(),
        direction: Default::default(),
        alpha: None,
        margin: None,
        window: None,
        step: None,
    });
    assert!(!validated(mann_whitney).promotes_early());
    assert!(!validated(sequential(false)).promotes_early());
    assert!(validated(sequential(true)).promotes_early());
}

/// A run of the promoting metric and a counted condition metric.
fn run_of_two() -> ValidatedAnalysis {
    let other = metric("success-rate").interval(10).count(2).build();
    ValidatedAnalysis::new(&[judged("errors", sequential(true)), other], &[], &[]).unwrap()
}

fn condition_measurement(secs: i64) -> Measurement {
    crate::fixtures::measurement(Successful, secs)
}

#[test]
fn the_run_completes_once_its_other_metrics_have() {
    let a = run_of_two();
    let (errors, other) = (&a.metrics()[0], &a.metrics()[1]);
    let mut status = AnalysisRunStatus::default();
    record_in(&mut status, errors, measured(errors, WITHIN, 0));
    record_in(&mut status, other, condition_measurement(0));
    let now = at(5);
    let status = assess(&a, &status, false, now);
    assert_eq!(status.phase, Some(Running), "{:?}", status.message);
    assert_eq!(status.metric_results[0].phase, Successful);
    let mut status = status;
    record_in(&mut status, other, condition_measurement(10));
    let status = assess(&a, &status, false, at(15));
    assert_eq!(status.phase, Some(Successful), "{:?}", status.message);
    assert!(status.completed_at.is_some());
    assert_eq!(status.metric_results[0].count, 1);
}

#[test]
fn a_restarted_controller_reads_the_same_verdict_from_the_persisted_status() {
    let m = validated(sequential(true));
    let mut persisted = replay(&m, &[UNDECIDED, WITHIN]);
    // As if the phase had not been written before a restart: the measurement decides again.
    persisted.phase = Running;
    persisted.message = None;
    let a = assess_metric(&m, &persisted, false);
    assert_eq!(a.phase, AnalysisPhase::Successful);
    assert!(a.message.starts_with("promoted early"), "{}", a.message);
}
