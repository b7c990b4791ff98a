use std::time::Duration;

use sluice_crds::{
    AnalysisPhase::{Error, Failed, Inconclusive, Successful},
    Duration as ApiDuration, Measurement, NoDataPolicy,
    judge::{
        BurnRateWindow, CountQueries, Direction, Judge, MannWhitneyJudge, SequentialJudge, SloJudge,
    },
};

use crate::{
    Args, ValidatedMetric,
    fixtures::{at, metric},
    judge::{JudgeQuery, QueryRole, judge_measurement, judge_queries, measure::judge_metadata},
    provider::{ProviderError, QueryKind},
    value::MetricValue,
};

fn counts(what: &str) -> CountQueries {
    CountQueries {
        errors_query: format!("sum(increase(errors{{{what}}}[{{{{args.window}}}}]))"),
        total_query: format!("sum(increase(requests{{{what}}}[{{{{args.window}}}}]))"),
    }
}

fn sequential_judge() -> Judge {
    Judge::Sequential(SequentialJudge {
        canary: counts("canary"),
        baseline: counts("stable"),
        alpha: Some(0.01),
        margin: None,
        promote_early: false,
    })
}

fn validated(judge: &Judge, on_empty: NoDataPolicy, min_samples: i32) -> ValidatedMetric {
    let mut m = metric("judged")
        .success(None)
        .on_empty(on_empty)
        .min_samples(min_samples)
        .build();
    m.judge = Some(judge.clone());
    ValidatedMetric::new(&m, false, 10).unwrap()
}

fn measure_with(
    judge: &Judge,
    metric: &ValidatedMetric,
    answers: Vec<Result<MetricValue, ProviderError>>,
) -> (Measurement, Vec<JudgeQuery>) {
    let queries = judge_queries(judge, &Args::new(), Duration::from_secs(300)).unwrap();
    (
        judge_measurement(metric, judge, &queries, &answers, at(0), at(1)),
        queries,
    )
}

fn values(v: &[f64]) -> Result<MetricValue, ProviderError> {
    Ok(MetricValue::new(v.to_vec()))
}

#[test]
fn sequential_queries_cover_the_run_so_far() {
    let queries =
        judge_queries(&sequential_judge(), &Args::new(), Duration::from_secs(300)).unwrap();
    let roles: Vec<QueryRole> = queries.iter().map(|q| q.role).collect();
    assert_eq!(
        roles,
        [
            QueryRole::CanaryErrors,
            QueryRole::CanaryTotal,
            QueryRole::BaselineErrors,
            QueryRole::BaselineTotal
        ]
    );
    assert_eq!(queries[0].query.text, "sum(increase(errors{canary}[300s]))");
    assert_eq!(
        queries[3].query.text,
        "sum(increase(requests{stable}[300s]))"
    );
    assert!(queries.iter().all(|q| q.query.kind == QueryKind::Instant));
}

#[test]
fn slo_queries_once_per_distinct_window() {
    let window = |long, short| BurnRateWindow {
        long: ApiDuration::from_secs(long),
        short: ApiDuration::from_secs(short),
        burn_rate: 14.4,
    };
    let judge = Judge::Slo(SloJudge {
        objective: 99.5,
        canary: counts("canary"),
        windows: vec![window(3600, 300), window(21_600, 3600)],
    });
    let queries = judge_queries(&judge, &Args::new(), Duration::ZERO).unwrap();
    let texts: Vec<&str> = queries.iter().map(|q| q.query.text.as_str()).collect();
    assert_eq!(texts.len(), 6, "1h, 5m and 6h: {texts:?}");
    assert!(texts.contains(&"sum(increase(errors{canary}[21600s]))"));
}

#[test]
fn mann_whitney_uses_range_queries() {
    let judge = Judge::MannWhitney(MannWhitneyJudge {
        canary_query: "latency{v=\"{{args.hash}}\"}".into(),
        baseline_query: "latency{v=\"stable\"}".into(),
        direction: Direction::Increase,
        alpha: None,
        margin: None,
        window: Some(ApiDuration::from_secs(600)),
        step: None,
    });
    let queries = judge_queries(&judge, &Args::new().with("hash", "abc"), Duration::ZERO).unwrap();
    assert_eq!(queries[0].query.text, "latency{v=\"abc\"}");
    assert_eq!(
        queries[0].query.kind,
        QueryKind::Range {
            window: Duration::from_secs(600),
            step: Duration::from_secs(15)
        }
    );
    assert!(
        judge_queries(&judge, &Args::new(), Duration::ZERO).is_err(),
        "missing argument"
    );
    // A clear shift fails, with the bounds in the metadata.
    let m = validated(&judge, NoDataPolicy::Fail, 5);
    let baseline: Vec<f64> = (0..20).map(|i| 100.0 + f64::from(i)).collect();
    let canary: Vec<f64> = baseline.iter().map(|v| v * 1.5).collect();
    let measured = judge_measurement(
        &m,
        &judge,
        &queries,
        &[values(&canary), values(&baseline)],
        at(0),
        at(1),
    );
    assert_eq!(measured.phase, Failed, "{:?}", measured.message);
    assert_eq!(measured.metadata["judge"], "mannWhitney");
    assert_eq!(measured.metadata["sampleCount"], "40");
    assert!(measured.metadata.contains_key(judge_metadata::LOWER_BOUND));
}

#[test]
fn sequential_measurement_decides_and_reports() {
    let judge = sequential_judge();
    let m = validated(&judge, NoDataPolicy::Fail, 100);
    let (measured, _) = measure_with(
        &judge,
        &m,
        vec![
            values(&[30.0, 20.0]),
            values(&[1000.0]),
            values(&[45.0]),
            values(&[9000.0]),
        ],
    );
    assert_eq!(measured.phase, Failed);
    assert_eq!(measured.metadata[judge_metadata::DECISION], "fail");
    assert!(
        measured
            .message
            .as_deref()
            .unwrap()
            .contains("canary 50 of 1000"),
        "series are summed"
    );
    assert!(
        measured.metadata["resolvedQuery"]
            .starts_with("canary errors: sum(increase(errors{canary}[300s]))\n")
    );
    // Not decided yet: a successful measurement that says so.
    let (measured, _) = measure_with(
        &judge,
        &m,
        vec![
            values(&[1.0]),
            values(&[200.0]),
            values(&[9.0]),
            values(&[1800.0]),
        ],
    );
    assert_eq!(measured.phase, Successful);
    assert!(
        measured
            .message
            .as_deref()
            .unwrap()
            .starts_with("continue: no decision yet")
    );
}

#[test]
fn missing_data_follows_the_metric_policy() {
    let judge = sequential_judge();
    let answers = || {
        vec![
            values(&[]),
            values(&[1000.0]),
            values(&[45.0]),
            values(&[9000.0]),
        ]
    };
    let (failed, _) = measure_with(&judge, &validated(&judge, NoDataPolicy::Fail, 1), answers());
    assert_eq!(failed.phase, Failed);
    assert_eq!(
        failed.message.as_deref(),
        Some("the canary errors query returned no data; onEmpty is fail")
    );
    let (passed, _) = measure_with(&judge, &validated(&judge, NoDataPolicy::Pass, 1), answers());
    assert_eq!(passed.phase, Successful);
    // Too few requests is onEmpty too; NaN is onNaN (default fail).
    let few = vec![
        values(&[0.0]),
        values(&[20.0]),
        values(&[1.0]),
        values(&[180.0]),
    ];
    let (few, _) = measure_with(
        &judge,
        &validated(&judge, NoDataPolicy::Inconclusive, 100),
        few,
    );
    assert_eq!(few.phase, Inconclusive);
    let nan = vec![
        values(&[f64::NAN]),
        values(&[20.0]),
        values(&[1.0]),
        values(&[180.0]),
    ];
    let (nan, _) = measure_with(&judge, &validated(&judge, NoDataPolicy::Pass, 1), nan);
    assert_eq!(nan.phase, Failed);
}

#[test]
fn fetch_errors_and_bad_settings_are_errors() {
    let judge = sequential_judge();
    let m = validated(&judge, NoDataPolicy::Pass, 1);
    let timeout = Err(ProviderError::Query {
        kind: "timeout".into(),
        message: "too slow".into(),
    });
    let (measured, _) = measure_with(
        &judge,
        &m,
        vec![values(&[1.0]), timeout, values(&[1.0]), values(&[9.0])],
    );
    assert_eq!(measured.phase, Error);
    assert_eq!(
        measured.message.as_deref(),
        Some("canary total: query failed (timeout): too slow")
    );
    let (short, _) = measure_with(&judge, &m, vec![values(&[1.0])]);
    assert_eq!(short.phase, Error);
    let bad = Judge::Sequential(SequentialJudge {
        alpha: Some(0.7),
        ..match sequential_judge() {
            Judge::Sequential(j) => j,
            _ => unreachable!(),
        }
    });
    let (measured, _) = measure_with(
        &bad,
        &validated(&bad, NoDataPolicy::Fail, 1),
        vec![
            values(&[1.0]),
            values(&[10.0]),
            values(&[1.0]),
            values(&[10.0]),
        ],
    );
    assert_eq!(measured.phase, Error);
    assert!(measured.message.as_deref().unwrap().contains("alpha"));
}
