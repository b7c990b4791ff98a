use sluice_crds::{
    AnalysisPhase::{Error, Failed, Successful},
    Measurement,
    NoDataPolicy::{Fail, Pass},
    judge::Judge,
};

use super::*;
use crate::fixtures::{at, metric};

fn query() -> ResolvedQuery {
    resolve_query(&metric("m").validated(), &Args::new()).unwrap()
}

fn run(m: &ValidatedMetric, fetched: Result<MetricValue, ProviderError>) -> Measurement {
    measure(m, &query(), &fetched, at(0), at(1))
}

fn verdict_of(m: &ValidatedMetric, values: Vec<f64>) -> (AnalysisPhase, String) {
    let measured = run(m, Ok(MetricValue::new(values)));
    (measured.phase, measured.message.unwrap())
}

#[test]
fn success_condition_alone() {
    let m = metric("m").validated();
    assert_eq!(
        verdict_of(&m, vec![0.97]),
        (
            Successful,
            "result[0]=0.97 satisfied successCondition 'result[0] >= 0.95'".into()
        )
    );
    assert_eq!(
        verdict_of(&m, vec![0.91]),
        (
            Failed,
            "result[0]=0.91 did not satisfy successCondition 'result[0] >= 0.95'".into()
        )
    );
}

#[test]
fn failure_condition_alone() {
    let m = metric("m")
        .success(None)
        .failure(Some("result[0] > 0.05"))
        .validated();
    assert_eq!(
        verdict_of(&m, vec![0.2]),
        (
            Failed,
            "result[0]=0.2 met failureCondition 'result[0] > 0.05'".into()
        )
    );
    assert_eq!(
        verdict_of(&m, vec![0.01]),
        (
            Successful,
            "result[0]=0.01 did not meet failureCondition 'result[0] > 0.05'".into()
        )
    );
}

#[test]
fn both_conditions_follow_argo() {
    let m = metric("m")
        .success(Some("result[0] < 0.01"))
        .failure(Some("result[0] > 0.05"))
        .validated();
    assert_eq!(verdict_of(&m, vec![0.001]).0, Successful);
    assert_eq!(verdict_of(&m, vec![0.5]).0, Failed);
    let (phase, message) = verdict_of(&m, vec![0.02]);
    assert_eq!(phase, AnalysisPhase::Inconclusive);
    assert_eq!(
        message,
        "result[0]=0.02 met neither successCondition 'result[0] < 0.01' nor failureCondition 'result[0] > 0.05'"
    );
    // Failure wins when both hold.
    let both = metric("m")
        .success(Some("result[0] >= 0.0"))
        .failure(Some("result[0] > 0.05"))
        .validated();
    assert_eq!(verdict_of(&both, vec![0.5]).0, Failed);
}

#[test]
fn empty_results_follow_on_empty_and_never_pass_by_default() {
    let cases = [
        (Fail, Failed, "the query returned no data; onEmpty is fail"),
        (
            NoDataPolicy::Inconclusive,
            AnalysisPhase::Inconclusive,
            "the query returned no data; onEmpty is inconclusive",
        ),
        (
            Pass,
            Successful,
            "the query returned no data; onEmpty is pass",
        ),
    ];
    for (policy, phase, message) in cases {
        let m = metric("m").on_empty(policy).validated();
        let measured = run(&m, Ok(MetricValue::empty()));
        assert_eq!(measured.phase, phase);
        assert_eq!(measured.message.as_deref(), Some(message));
        assert_eq!(measured.value.as_deref(), Some("[]"));
        assert_eq!(measured.metadata["sampleCount"], "0");
    }
    // A condition that would accept an empty result does not override the policy.
    let lenient = metric("m")
        .success(Some("len(result) == 0 || result[0] < 0.01"))
        .validated();
    assert_eq!(verdict_of(&lenient, vec![]).0, Failed);
}

#[test]
fn too_few_samples_count_as_empty() {
    let m = metric("m")
        .success(Some("result.all(x, x < 1.0)"))
        .min_samples(3)
        .on_empty(NoDataPolicy::Inconclusive)
        .validated();
    assert_eq!(
        verdict_of(&m, vec![0.1, 0.2]),
        (
            AnalysisPhase::Inconclusive,
            "the query returned 2 sample(s), fewer than minSamples 3; onEmpty is inconclusive"
                .into()
        )
    );
    assert_eq!(verdict_of(&m, vec![0.1, 0.2, 0.3]).0, Successful);
}

#[test]
fn nan_follows_on_nan_even_when_only_one_series_is_nan() {
    let m = metric("m")
        .success(None)
        .failure(Some("result[0] > 0.05"))
        .validated();
    // The flagger#1098 trap: a failure-only condition must not pass a NaN at zero traffic.
    assert_eq!(
        verdict_of(&m, vec![f64::NAN]),
        (
            Failed,
            "the query returned NaN (result[0]=NaN); onNaN is fail".into()
        )
    );
    assert_eq!(verdict_of(&m, vec![0.01, f64::NAN]).0, Failed);
    let passing = metric("m").on_nan(Pass).validated();
    assert_eq!(verdict_of(&passing, vec![f64::NAN]).0, Successful);
    let waiting = metric("m").on_nan(NoDataPolicy::Inconclusive).validated();
    assert_eq!(
        verdict_of(&waiting, vec![f64::NAN]).0,
        AnalysisPhase::Inconclusive
    );
    // Infinity is data, judged by the conditions.
    assert_eq!(
        verdict_of(&metric("m").validated(), vec![f64::INFINITY]).0,
        Successful
    );
}

#[test]
fn fetch_errors_are_error_measurements_with_the_reason() {
    let m = metric("m").validated();
    let measured = run(
        &m,
        Err(ProviderError::Unreachable {
            address: "http://prometheus:9090".into(),
            reason: "Connection refused".into(),
        }),
    );
    assert_eq!(measured.phase, Error);
    assert_eq!(
        measured.message.as_deref(),
        Some("cannot reach http://prometheus:9090: Connection refused")
    );
    assert_eq!(measured.value, None);
    assert!(!measured.metadata.contains_key("sampleCount"));
    assert_eq!(
        measured.metadata["resolvedQuery"],
        "sum(rate(ok[1m])) / sum(rate(all[1m]))"
    );
    assert_eq!(measured.finished_at, Some(crate::time::to_api(at(1))));
}

#[test]
fn condition_errors_are_error_measurements() {
    let m = metric("m").success(Some("result[1] > 0.5")).validated();
    let (phase, message) = verdict_of(&m, vec![0.9]);
    assert_eq!(phase, Error);
    assert!(
        message.starts_with("result[0]=0.9: 'result[1] > 0.5' could not be evaluated"),
        "{message}"
    );
}

#[test]
fn resolved_query_masks_secret_arguments() {
    let m = metric("m")
        .query("sum(x{tenant=\"{{args.tenant}}\",key=\"{{args.key}}\"})")
        .validated();
    let args = Args::new()
        .with("tenant", "shop")
        .with_secret("key", "hunter2");
    let q = resolve_query(&m, &args).unwrap();
    assert_eq!(q.text, "sum(x{tenant=\"shop\",key=\"hunter2\"})");
    let measured = measure(&m, &q, &Ok(MetricValue::new(vec![1.0])), at(0), at(1));
    assert_eq!(
        measured.metadata["resolvedQuery"],
        "sum(x{tenant=\"shop\",key=\"*****\"})"
    );
    assert!(!format!("{measured:?}").contains("hunter2"));
    assert!(matches!(
        resolve_query(&m, &Args::new().with("tenant", "shop")),
        Err(QueryError::Args(ArgsError::Unresolved { .. }))
    ));
}

#[test]
fn a_judge_has_no_single_query_and_is_never_passed_through_one() {
    let mut spec = metric("m").success(None).build();
    spec.judge = Some(
        serde_json::from_value::<Judge>(serde_json::json!({
            "slo": {"objective": 99.9, "canary": {"errorsQuery": "e", "totalQuery": "t"},
                    "windows": [{"long": "1h", "short": "5m", "burnRate": 14.4}]}
        }))
        .unwrap(),
    );
    let m = ValidatedMetric::new(&spec, false, 10).unwrap();
    let err = resolve_query(&m, &Args::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the slo judge measures through its own queries, not a single instant query"
    );
    let measured = error_measurement(err.to_string(), None, at(0), at(0));
    assert_eq!(measured.phase, Error);
    assert!(!measured.metadata.contains_key("resolvedQuery"));
}
