use sluice_crds::{AnalysisPhase::*, DryRun};

use super::*;
use crate::fixtures::{measurement, metric, phases, t0};

/// Records `history` one measurement at a time, ten seconds apart.
fn replay(metric: &ValidatedMetric, history: &str) -> MetricResult {
    let mut result: Option<MetricResult> = None;
    for (i, phase) in phases(history).into_iter().enumerate() {
        let secs = i64::try_from(i).unwrap() * 10;
        result = Some(record(metric, result.as_ref(), measurement(phase, secs)));
    }
    result.unwrap_or_default()
}

struct Case {
    name: &'static str,
    metric: ValidatedMetric,
    history: &'static str,
    terminating: bool,
    phase: AnalysisPhase,
    message: &'static str,
}

fn case(
    name: &'static str,
    metric: ValidatedMetric,
    history: &'static str,
    phase: AnalysisPhase,
    message: &'static str,
) -> Case {
    Case {
        name,
        metric,
        history,
        terminating: false,
        phase,
        message,
    }
}

#[test]
fn metric_state_machine_against_histories() {
    let counted = |n| metric("m").interval(60).count(n);
    let cases = [
        case(
            "count reached",
            counted(3).validated(),
            "SSS",
            Successful,
            "count (3) reached: 3 successful",
        ),
        case(
            "count not reached",
            counted(3).validated(),
            "SS",
            Running,
            "2 of 3 measurements",
        ),
        case(
            "measured once",
            metric("m").validated(),
            "S",
            Successful,
            "count (1) reached",
        ),
        case(
            "failureLimit 0: first failure fails",
            counted(5).validated(),
            "SF",
            Failed,
            "failed (1) > failureLimit (0); last: Failed at 10s",
        ),
        case(
            "failureLimit 1 tolerates one",
            counted(3).failure_limit(1).validated(),
            "SFS",
            Successful,
            "count (3) reached: 2 successful, 1 failed",
        ),
        case(
            "failureLimit 1: second failure fails",
            counted(5).failure_limit(1).validated(),
            "FSF",
            Failed,
            "failed (2) > failureLimit (1)",
        ),
        case(
            "failureLimit -1 never fails",
            counted(4).failure_limit(-1).validated(),
            "FFFF",
            Successful,
            "4 failed",
        ),
        case(
            "inconclusiveLimit 0",
            counted(3).validated(),
            "I",
            Inconclusive,
            "inconclusive (1) > inconclusiveLimit (0)",
        ),
        case(
            "inconclusiveLimit 1 tolerates one",
            counted(3).inconclusive_limit(1).validated(),
            "ISS",
            Successful,
            "1 inconclusive",
        ),
        case(
            "inconclusiveLimit -1",
            counted(3).inconclusive_limit(-1).validated(),
            "III",
            Successful,
            "3 inconclusive",
        ),
        case(
            "the first tripped limit sticks",
            counted(5).failure_limit(0).validated(),
            "IF",
            Inconclusive,
            "inconclusive (1)",
        ),
        case(
            "four errors are tolerated",
            counted(3).validated(),
            "EEEE",
            Running,
            "0 of 3 measurements (0 successful, 0 failed, 0 inconclusive, 4 errors)",
        ),
        case(
            "five consecutive errors error",
            counted(3).validated(),
            "EEEEE",
            Error,
            "consecutive errors (5) > consecutiveErrorLimit (4); last: Error at 40s",
        ),
        case(
            "a success resets the streak",
            counted(9).validated(),
            "EEEESEEEE",
            Running,
            "1 of 9 measurements",
        ),
        case(
            "consecutiveErrorLimit 0",
            counted(3).consecutive_error_limit(0).validated(),
            "E",
            Error,
            "consecutive errors (1) > consecutiveErrorLimit (0)",
        ),
        case(
            "consecutiveErrorLimit -1",
            counted(3).consecutive_error_limit(-1).validated(),
            "EEEEEEEEEE",
            Running,
            "10 errors",
        ),
        case(
            "errors are not counted",
            counted(2).validated(),
            "ESES",
            Successful,
            "count (2) reached: 2 successful, 0 failed, 0 inconclusive, 2 errors",
        ),
        case(
            "errored once-metric retries",
            metric("m").validated(),
            "E",
            Running,
            "0 of 1 measurements",
        ),
        case(
            "background metric runs on",
            metric("m").interval(30).validated(),
            "SSSSSS",
            Running,
            "6 measurements, until terminated",
        ),
        case(
            "a completed metric never changes",
            counted(5).validated(),
            "FSSSS",
            Failed,
            "failed (1) > failureLimit (0)",
        ),
        Case {
            terminating: true,
            ..case(
                "a failed background metric stays failed",
                metric("m").interval(30).validated(),
                "SSF",
                Failed,
                "failed (1)",
            )
        },
    ];
    for c in cases {
        let result = replay(&c.metric, c.history);
        let a = assess_metric(&c.metric, &result, c.terminating);
        assert_eq!(a.phase, c.phase, "{}: {}", c.name, a.message);
        assert!(
            a.message.contains(c.message),
            "{}: {:?} lacks {:?}",
            c.name,
            a.message,
            c.message
        );
        assert_eq!(
            result.phase, a.phase,
            "{}: record stores the assessed phase",
            c.name
        );
    }
}

#[test]
fn limits_are_checked_failed_then_inconclusive_then_error() {
    // Counters as a restarted controller might read them, every limit exceeded at once.
    let m = metric("m").interval(10).count(9).validated();
    let mut r = replay(&m, "E");
    r.phase = Running;
    (r.failed, r.inconclusive, r.consecutive_error) = (1, 1, 5);
    assert_eq!(assess_metric(&m, &r, false).phase, Failed);
    r.failed = 0;
    assert_eq!(assess_metric(&m, &r, false).phase, Inconclusive);
    r.inconclusive = 0;
    assert_eq!(assess_metric(&m, &r, false).phase, Error);
}

#[test]
fn termination_completes_running_and_pending_metrics() {
    let background = metric("m").interval(30).validated();
    let running = replay(&background, "SS");
    let a = assess_metric(&background, &running, true);
    assert_eq!(
        (a.phase, a.message.as_str()),
        (
            Successful,
            "run terminated: 2 successful, 0 failed, 0 inconclusive, 0 errors"
        )
    );
    let a = assess_metric(&background, &MetricResult::default(), true);
    assert_eq!(
        (a.phase, a.message.as_str()),
        (Successful, "run terminated before the first measurement")
    );
    let a = assess_metric(&background, &MetricResult::default(), false);
    assert_eq!(a.phase, Pending);
}

#[test]
fn counters_follow_argo() {
    let m = metric("m")
        .interval(10)
        .count(10)
        .failure_limit(-1)
        .inconclusive_limit(-1)
        .validated();
    let r = replay(&m, "SFIEES");
    assert_eq!(
        (
            r.count,
            r.successful,
            r.failed,
            r.inconclusive,
            r.error,
            r.consecutive_error
        ),
        (4, 2, 1, 1, 2, 0)
    );
    let r = replay(&m, "SEE");
    assert_eq!(r.consecutive_error, 2);
    assert!(!r.dry_run);
}

#[test]
fn retention_keeps_the_newest_and_counters_keep_everything() {
    let m = metric("m").interval(10).failure_limit(-1).validated();
    let r = replay(&m, "SSSSSSSSSSSSF");
    assert_eq!(r.measurements.len(), 10);
    assert_eq!(r.measurements.last().unwrap().phase, Failed);
    assert_eq!(
        r.measurements[0].message.as_deref(),
        Some("Successful at 30s")
    );
    assert_eq!(r.count, 13);
    let keep_two = ValidatedMetric::new(&metric("m").interval(10).build(), false, 2).unwrap();
    assert_eq!(replay(&keep_two, "SSSS").measurements.len(), 2);
}

fn analysis(metrics: Vec<sluice_crds::Metric>, dry_run: &[&str]) -> ValidatedAnalysis {
    let rules: Vec<DryRun> = dry_run
        .iter()
        .map(|n| DryRun {
            metric_name: n.to_string(),
        })
        .collect();
    ValidatedAnalysis::new(&metrics, &rules, &[]).unwrap()
}

/// Each metric's history, recorded into one status.
fn status_with(a: &ValidatedAnalysis, histories: &[(&str, &str)]) -> AnalysisRunStatus {
    let mut status = AnalysisRunStatus::default();
    for (name, history) in histories {
        let m = a.metric(name).unwrap();
        for (i, phase) in phases(history).into_iter().enumerate() {
            record_in(
                &mut status,
                m,
                measurement(phase, i64::try_from(i).unwrap() * 10),
            );
        }
    }
    status
}

/// Per metric name, its measurement history.
type Histories<'a> = &'a [(&'a str, &'a str)];

#[test]
fn run_phase_precedence() {
    let a = analysis(
        vec![
            metric("a").interval(10).count(3).build(),
            metric("b").interval(10).count(3).build(),
            metric("c").interval(10).count(3).build(),
        ],
        &[],
    );
    let cases: [(Histories, AnalysisPhase, &str); 7] = [
        (
            &[("a", "SSS"), ("b", "SSS"), ("c", "SSS")],
            Successful,
            "all 3 metrics completed successfully",
        ),
        (
            &[("a", "SSS"), ("b", "S")],
            Running,
            "1 of 3 metrics completed",
        ),
        (
            &[("a", "F"), ("b", "EEEEE"), ("c", "I")],
            Failed,
            "metric \"a\" failed: failed (1) > failureLimit (0)",
        ),
        (
            &[("b", "EEEEE"), ("c", "I")],
            Error,
            "metric \"b\" errored: consecutive errors (5)",
        ),
        (
            &[("a", "S"), ("c", "I")],
            Inconclusive,
            "metric \"c\" was inconclusive",
        ),
        (
            &[("a", "F"), ("b", "F")],
            Failed,
            "metric \"a\" failed: failed (1) > failureLimit (0); last: Failed at 0s; metric \"b\" failed",
        ),
        (&[], Running, "0 of 3 metrics completed"),
    ];
    for (histories, phase, message) in cases {
        let run = assess_run(&a, &status_with(&a, histories).metric_results, false);
        assert_eq!(run.phase, phase, "{histories:?}: {}", run.message);
        assert!(
            run.message.contains(message),
            "{histories:?}: {:?} lacks {message:?}",
            run.message
        );
    }
}

#[test]
fn a_decisive_metric_stops_the_others() {
    let a = analysis(
        vec![
            metric("a").interval(10).count(5).build(),
            metric("b").interval(10).build(),
        ],
        &[],
    );
    let run = assess_run(
        &a,
        &status_with(&a, &[("a", "SF"), ("b", "SS")]).metric_results,
        false,
    );
    assert_eq!(run.phase, Failed);
    let b = &run.metric_results[1];
    assert_eq!(
        (b.phase, b.message.as_deref()),
        (
            Successful,
            Some("run terminated: 2 successful, 0 failed, 0 inconclusive, 0 errors")
        )
    );
    assert_eq!(
        run.run_summary,
        RunSummary {
            count: 2,
            successful: 1,
            failed: 1,
            ..RunSummary::default()
        }
    );
}

#[test]
fn dry_run_metrics_are_reported_but_never_decide() {
    let a = analysis(
        vec![
            metric("a").count(1).build(),
            metric("shadow").count(1).build(),
        ],
        &["shadow"],
    );
    let run = assess_run(
        &a,
        &status_with(&a, &[("a", "S"), ("shadow", "F")]).metric_results,
        false,
    );
    assert_eq!(run.phase, Successful);
    assert!(
        run.message
            .starts_with("all 2 metrics completed successfully; dry-run metric \"shadow\" failed"),
        "{}",
        run.message
    );
    assert_eq!(
        run.run_summary,
        RunSummary {
            count: 1,
            successful: 1,
            ..RunSummary::default()
        }
    );
    assert_eq!(
        run.dry_run_summary,
        RunSummary {
            count: 1,
            failed: 1,
            ..RunSummary::default()
        }
    );
    assert!(run.metric_results[1].dry_run);

    // A failing dry-run metric does not stop the others either.
    let a = analysis(
        vec![
            metric("a").interval(10).count(3).build(),
            metric("shadow").count(1).build(),
        ],
        &[".*ado.*"],
    );
    let run = assess_run(
        &a,
        &status_with(&a, &[("a", "S"), ("shadow", "F")]).metric_results,
        false,
    );
    assert_eq!(run.phase, Running);
    assert_eq!(run.metric_results[0].phase, Running);

    // Only dry-run metrics: Successful once they complete, whatever they measured.
    let a = analysis(vec![metric("shadow").count(1).build()], &[".*"]);
    let run = assess_run(
        &a,
        &status_with(&a, &[("shadow", "F")]).metric_results,
        false,
    );
    assert_eq!(run.phase, Successful);
}

#[test]
fn terminate_ends_the_run_successfully_unless_something_failed() {
    let a = analysis(
        vec![
            metric("bg").interval(10).build(),
            metric("later").initial_delay(600).build(),
        ],
        &[],
    );
    let run = assess_run(&a, &status_with(&a, &[("bg", "SSS")]).metric_results, true);
    assert_eq!(run.phase, Successful);
    assert_eq!(
        run.metric_results[1].message.as_deref(),
        Some("run terminated before the first measurement")
    );
    let run = assess_run(&a, &status_with(&a, &[("bg", "SF")]).metric_results, true);
    assert_eq!(run.phase, Failed);
}

#[test]
fn assess_fills_times_and_freezes_a_completed_run() {
    let a = analysis(vec![metric("a").count(1).build()], &[]);
    let first = assess(&a, &AnalysisRunStatus::default(), false, t0());
    assert_eq!(first.phase, Some(Running));
    assert_eq!(first.started_at, Some(to_api(t0())));
    assert_eq!(first.completed_at, None);
    assert_eq!(first.metric_results[0].phase, Pending);

    let mut status = first.clone();
    record_in(&mut status, &a.metrics()[0], measurement(Failed, 5));
    let later = t0() + chrono::TimeDelta::seconds(6);
    let done = assess(&a, &status, false, later);
    assert_eq!(done.phase, Some(Failed));
    assert_eq!(done.started_at, Some(to_api(t0())));
    assert_eq!(done.completed_at, Some(to_api(later)));
    assert_eq!(done.run_summary.as_ref().map(|s| s.failed), Some(1));
    assert_eq!(done.dry_run_summary, None);

    // Final: nothing changes any more, not even with terminate or new results.
    let mut tampered = done.clone();
    tampered.metric_results[0].phase = Successful;
    assert_eq!(
        assess(&a, &tampered, true, later + chrono::TimeDelta::hours(1)),
        tampered
    );
}

#[test]
fn restart_between_every_step_changes_nothing() {
    let a = analysis(
        vec![
            metric("a").interval(10).count(6).failure_limit(2).build(),
            metric("b").interval(10).build(),
        ],
        &["b"],
    );
    let history: Vec<(&str, AnalysisPhase)> = vec![
        ("a", Successful),
        ("b", Failed),
        ("a", Error),
        ("a", Failed),
        ("b", Successful),
        ("a", Successful),
        ("a", Failed),
        ("a", Error),
        ("a", Successful),
        ("a", Successful),
    ];
    let mut in_memory = AnalysisRunStatus::default();
    let mut restarted = AnalysisRunStatus::default();
    for (i, (name, phase)) in history.into_iter().enumerate() {
        let now = t0() + chrono::TimeDelta::seconds(i64::try_from(i).unwrap() * 10);
        let m = a.metric(name).unwrap();
        record_in(
            &mut in_memory,
            m,
            measurement(phase, i64::try_from(i).unwrap() * 10),
        );
        in_memory = assess(&a, &in_memory, false, now);

        // The restarted controller only has what was persisted.
        let json = serde_json::to_string(&restarted).unwrap();
        let mut persisted: AnalysisRunStatus = serde_json::from_str(&json).unwrap();
        record_in(
            &mut persisted,
            m,
            measurement(phase, i64::try_from(i).unwrap() * 10),
        );
        restarted = assess(&a, &persisted, false, now);
        assert_eq!(restarted, in_memory, "step {i}");
        assert_eq!(
            assess(&a, &restarted, false, now),
            restarted,
            "assess is idempotent at step {i}"
        );
    }
    assert_eq!(in_memory.phase, Some(Successful), "{:?}", in_memory.message);
    assert!(
        in_memory
            .message
            .as_deref()
            .unwrap()
            .contains("dry-run metric \"b\"")
    );
}

mod scored;
