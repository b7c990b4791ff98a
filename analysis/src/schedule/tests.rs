use chrono::TimeDelta;
use sluice_crds::{AnalysisPhase::*, Metric};

use super::*;
use crate::{
    assess::{assess, record_in},
    fixtures::{at, measurement, metric, t0},
    time::to_api,
};

fn analysis(metrics: Vec<Metric>) -> ValidatedAnalysis {
    ValidatedAnalysis::new(&metrics, &[], &[]).unwrap()
}

fn started() -> AnalysisRunStatus {
    AnalysisRunStatus {
        started_at: Some(to_api(t0())),
        ..AnalysisRunStatus::default()
    }
}

fn names(metrics: &[&ValidatedMetric]) -> Vec<String> {
    metrics.iter().map(|m| m.name().to_string()).collect()
}

#[test]
fn first_measurement_waits_for_initial_delay() {
    let m = metric("m").initial_delay(60).validated();
    assert_eq!(next_measurement_at(&m, None, t0()), Some(at(60)));
    let plain = metric("m").validated();
    assert_eq!(next_measurement_at(&plain, None, t0()), Some(t0()));

    let a = analysis(vec![
        metric("late").initial_delay(60).build(),
        metric("now").build(),
    ]);
    assert_eq!(names(&due_metrics(&a, &started(), false, at(59))), ["now"]);
    assert_eq!(
        names(&due_metrics(&a, &started(), false, at(60))),
        ["late", "now"]
    );
}

#[test]
fn later_measurements_follow_the_interval_from_the_last_finish() {
    let m = metric("m").interval(30).count(3).validated();
    let mut status = started();
    record_in(&mut status, &m, measurement(Successful, 0)); // finishes at 1s
    let result = status.metric_results.first();
    assert_eq!(next_measurement_at(&m, result, t0()), Some(at(31)));
}

#[test]
fn errors_retry_after_ten_seconds_without_interval_and_after_the_interval_with_one() {
    let once = metric("m").validated();
    let mut status = started();
    record_in(&mut status, &once, measurement(Error, 0));
    assert_eq!(
        next_measurement_at(&once, status.metric_results.first(), t0()),
        Some(at(11))
    );

    let periodic = metric("p").interval(60).validated();
    let mut status = started();
    record_in(&mut status, &periodic, measurement(Error, 0));
    assert_eq!(
        next_measurement_at(&periodic, status.metric_results.first(), t0()),
        Some(at(61))
    );
}

#[test]
fn nothing_is_due_after_count_or_completion() {
    let m = metric("m").interval(10).count(2).validated();
    let mut status = started();
    record_in(&mut status, &m, measurement(Successful, 0));
    record_in(&mut status, &m, measurement(Successful, 10));
    assert_eq!(
        next_measurement_at(&m, status.metric_results.first(), t0()),
        None
    );

    let once = metric("o").validated();
    let mut status = started();
    record_in(&mut status, &once, measurement(Failed, 0));
    assert_eq!(
        next_measurement_at(&once, status.metric_results.first(), t0()),
        None
    );
}

#[test]
fn a_terminating_run_measures_nothing() {
    let a = analysis(vec![
        metric("a").interval(10).count(5).build(),
        metric("b").interval(10).build(),
    ]);
    let mut status = started();
    record_in(&mut status, a.metric("a").unwrap(), measurement(Failed, 0));
    assert!(is_terminating(&a, &status, false));
    assert!(due_metrics(&a, &status, false, at(100)).is_empty());
    assert_eq!(next_reconcile_at(&a, &status, false, at(100)), None);

    let fresh = started();
    assert!(due_metrics(&a, &fresh, true, at(100)).is_empty());
    assert_eq!(names(&due_metrics(&a, &fresh, false, at(0))), ["a", "b"]);
}

#[test]
fn dry_run_failures_do_not_stop_measuring() {
    let rules = [sluice_crds::DryRun {
        metric_name: "shadow".into(),
    }];
    let a = ValidatedAnalysis::new(
        &[
            metric("a").interval(10).count(5).build(),
            metric("shadow").build(),
        ],
        &rules,
        &[],
    )
    .unwrap();
    let mut status = started();
    record_in(
        &mut status,
        a.metric("shadow").unwrap(),
        measurement(Failed, 0),
    );
    assert!(!is_terminating(&a, &status, false));
    assert_eq!(names(&due_metrics(&a, &status, false, at(0))), ["a"]);
}

#[test]
fn requeue_at_the_earliest_due_time() {
    let a = analysis(vec![
        metric("slow").interval(300).build(),
        metric("fast").interval(30).build(),
        metric("late").initial_delay(600).build(),
    ]);
    let mut status = started();
    record_in(
        &mut status,
        a.metric("slow").unwrap(),
        measurement(Successful, 0),
    );
    record_in(
        &mut status,
        a.metric("fast").unwrap(),
        measurement(Successful, 0),
    );
    assert_eq!(next_reconcile_at(&a, &status, false, at(2)), Some(at(31)));
    // Without startedAt (first reconcile) the clock stands in for it.
    assert_eq!(
        next_reconcile_at(&a, &AnalysisRunStatus::default(), false, at(5)),
        Some(at(5))
    );
}

/// A simulated controller: every tick it assesses, measures what is due with values from
/// `value_at`, and assesses again. With `restart`, the status goes through JSON between every
/// step, as if the controller restarted and read it back.
fn simulate(
    a: &ValidatedAnalysis,
    ticks: i64,
    value_at: impl Fn(i64) -> AnalysisPhase,
    restart: bool,
) -> (AnalysisRunStatus, Vec<(String, i64)>) {
    let mut status = AnalysisRunStatus::default();
    let mut taken = Vec::new();
    for tick in 0..ticks {
        let now = at(tick);
        if restart {
            status = serde_json::from_str(&serde_json::to_string(&status).unwrap()).unwrap();
        }
        status = assess(a, &status, false, now);
        if status.phase.is_some_and(AnalysisPhase::is_completed) {
            break;
        }
        for m in due_metrics(a, &status, false, now) {
            taken.push((m.name().to_string(), tick));
            let mut sample = measurement(value_at(tick), tick);
            sample.finished_at = Some(to_api(now));
            record_in(&mut status, m, sample);
        }
        status = assess(a, &status, false, now);
    }
    (status, taken)
}

#[test]
fn simulated_run_keeps_schedule_and_verdict_across_restarts() {
    let a = analysis(vec![
        metric("rate")
            .interval(10)
            .count(4)
            .initial_delay(5)
            .failure_limit(1)
            .build(),
        metric("bg").interval(7).build(),
    ]);
    // `rate` fails once at t=15 (tolerated by failureLimit 1); everything else passes.
    let value = |t: i64| if t == 15 { Failed } else { Successful };
    let (status, taken) = simulate(&a, 100, value, false);
    let (restarted_status, restarted_taken) = simulate(&a, 100, value, true);
    assert_eq!(taken, restarted_taken);
    assert_eq!(status, restarted_status);

    let rate: Vec<i64> = taken
        .iter()
        .filter(|(n, _)| n == "rate")
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(rate, [5, 15, 25, 35]);
    let bg: Vec<i64> = taken
        .iter()
        .filter(|(n, _)| n == "bg")
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(&bg[..4], [0, 7, 14, 21]);
    // `bg` runs until terminated, so the run stays Running with `rate` done.
    assert_eq!(status.phase, Some(Running));
    assert_eq!(status.metric_results[0].phase, Successful);
    assert_eq!(
        next_reconcile_at(&a, &status, false, at(100)).map(|t| t > at(98)),
        Some(true)
    );
    assert_eq!(
        TimeDelta::seconds(7),
        a.metric("bg").unwrap().interval().unwrap()
    );
}

#[test]
fn simulated_run_fails_fast_and_stops_measuring() {
    let a = analysis(vec![
        metric("rate").interval(10).count(10).build(),
        metric("bg").interval(10).build(),
    ]);
    let (status, taken) = simulate(&a, 200, |t| if t >= 20 { Failed } else { Successful }, true);
    assert_eq!(status.phase, Some(Failed));
    assert!(
        status
            .message
            .as_deref()
            .unwrap()
            .starts_with("metric \"rate\" failed")
    );
    assert_eq!(
        taken.iter().map(|(_, t)| *t).max(),
        Some(20),
        "no measurement after the failure"
    );
    assert_eq!(status.completed_at, Some(to_api(at(20))));
}

#[test]
fn a_delay_too_long_for_the_calendar_never_panics() {
    // 10^10 hours passes the CRD's duration pattern but is past the last date chrono can hold.
    let huge: sluice_crds::Duration = "9999999999h".parse().unwrap();
    let mut spec = metric("m").interval(30).count(2).build();
    spec.initial_delay = Some(huge);
    let m = ValidatedMetric::new(&spec, false, 10).unwrap();
    assert!(next_measurement_at(&m, None, t0()).is_some_and(|t| t > at(0)));
    spec.initial_delay = None;
    spec.interval = Some(huge);
    let m = ValidatedMetric::new(&spec, false, 10).unwrap();
    let mut status = started();
    record_in(&mut status, &m, measurement(Successful, 0));
    let next = next_measurement_at(&m, status.metric_results.first(), t0());
    assert!(next.is_some_and(|t| t > at(1)));
}
