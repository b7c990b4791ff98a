use sluice_crds::{DryRun, MeasurementRetention, Metric};

use super::*;
use crate::fixtures::metric;

fn dry(names: &[&str]) -> Vec<DryRun> {
    names
        .iter()
        .map(|n| DryRun {
            metric_name: n.to_string(),
        })
        .collect()
}

fn problems(metrics: &[Metric], dry_run: &[DryRun]) -> Vec<String> {
    ValidatedAnalysis::new(metrics, dry_run, &[])
        .unwrap_err()
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn argo_defaults_apply() {
    let m = metric("m").validated();
    assert_eq!(m.failure_limit().get(), 0);
    assert_eq!(m.inconclusive_limit().get(), 0);
    assert_eq!(m.consecutive_error_limit().get(), 4);
    assert_eq!(m.count(), Some(1), "no interval, no count: measured once");
    assert_eq!(m.min_samples(), 1);
    assert_eq!(m.retention(), 10);
    assert_eq!(m.initial_delay(), TimeDelta::zero());
    assert!(!m.dry_run());
    let background = metric("m").interval(60).validated();
    assert_eq!(
        background.count(),
        None,
        "interval without count: until terminated"
    );
    assert_eq!(
        metric("m").interval(60).count(0).validated().count(),
        None,
        "count 0 means unset"
    );
}

#[test]
fn conditions_are_compiled_once_and_errors_name_metric_and_field() {
    let found = problems(
        &[metric("error-rate").success(Some("result[0] >=")).build()],
        &[],
    );
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("metrics[\"error-rate\"].successCondition: 'result[0] >=' is not a valid expression: line 1"),
        "{}",
        found[0]
    );
    let found = problems(&[metric("m").failure(Some("results[0] > 1")).build()], &[]);
    assert!(found[0].contains(
        "failureCondition: 'results[0] > 1' cannot be used as a condition: unknown name 'results'"
    ));
}

#[test]
fn every_problem_is_reported_at_once() {
    let found = problems(
        &[
            metric("a").count(3).build(),
            metric("a").build(),
            metric("none").success(None).build(),
            metric("noquery").query("x").build(),
            metric("few").min_samples(0).build(),
        ],
        &dry(&["typo"]),
    );
    let expected = [
        "metric name \"a\" is used more than once",
        "dryRun[0].metricName \"typo\" matches no metric name",
        "metrics[\"a\"]: count greater than 1 requires an interval",
        "metrics[\"none\"]: set successCondition or failureCondition (or a judge); without one every measurement would pass",
        "metrics[\"few\"].minSamples must be at least 1",
    ];
    assert_eq!(found, expected);
    let err =
        ValidatedAnalysis::new(&[metric("none").success(None).build()], &[], &[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid analysis spec: metrics[\"none\"]")
    );
}

#[test]
fn a_missing_query_is_reported() {
    let mut spec = metric("m").build();
    let sluice_crds::provider::MetricProvider::Prometheus(p) = &mut spec.provider;
    p.query = None;
    assert_eq!(
        problems(&[spec], &[]),
        ["metrics[\"m\"].provider.prometheus.query is required unless the metric has a judge"]
    );
}

#[test]
fn dry_run_patterns_match_whole_names() {
    let metrics = [
        metric("error").build(),
        metric("error-rate").build(),
        metric("latency").build(),
    ];
    let a = ValidatedAnalysis::new(&metrics, &dry(&["error"]), &[]).unwrap();
    let flags: Vec<bool> = a.metrics().iter().map(ValidatedMetric::dry_run).collect();
    assert_eq!(
        flags,
        [true, false, false],
        "\"error\" must not make error-rate a dry run"
    );
    let a = ValidatedAnalysis::new(&metrics, &dry(&["error.*"]), &[]).unwrap();
    let flags: Vec<bool> = a.metrics().iter().map(ValidatedMetric::dry_run).collect();
    assert_eq!(flags, [true, true, false]);
    let a = ValidatedAnalysis::new(&metrics, &dry(&[".*"]), &[]).unwrap();
    assert!(a.metrics().iter().all(ValidatedMetric::dry_run));
    let found = problems(&metrics, &dry(&["(unclosed"]));
    assert!(
        found[0]
            .starts_with("dryRun[0].metricName \"(unclosed\" is not a valid regular expression")
    );
}

#[test]
fn retention_rules_apply_by_pattern() {
    let rules = [
        MeasurementRetention {
            metric_name: "lat.*".into(),
            limit: 3,
        },
        MeasurementRetention {
            metric_name: ".*".into(),
            limit: 50,
        },
    ];
    let a = ValidatedAnalysis::new(
        &[metric("latency").build(), metric("errors").build()],
        &[],
        &rules,
    )
    .unwrap();
    assert_eq!(
        a.metric("latency").unwrap().retention(),
        3,
        "first matching rule wins"
    );
    assert_eq!(a.metric("errors").unwrap().retention(), 50);
}

#[test]
fn validates_run_and_template_specs() {
    let spec: sluice_crds::AnalysisRunSpec = serde_json::from_value(serde_json::json!({
        "metrics": [{
            "name": "success-rate",
            "interval": "1m",
            "count": 5,
            "successCondition": "result[0] >= 0.95",
            "failureLimit": 2,
            "onEmpty": "inconclusive",
            "onNaN": "pass",
            "minSamples": 2,
            "provider": {"prometheus": {"address": "http://p:9090", "query": "up"}}
        }],
        "dryRun": [{"metricName": "success-rate"}]
    }))
    .unwrap();
    let a = ValidatedAnalysis::from_run(&spec).unwrap();
    let m = a.metric("success-rate").unwrap();
    assert_eq!(m.interval(), Some(TimeDelta::minutes(1)));
    assert_eq!(m.count(), Some(5));
    assert_eq!(m.failure_limit().get(), 2);
    assert_eq!(
        (m.on_empty(), m.on_nan(), m.min_samples()),
        (NoDataPolicy::Inconclusive, NoDataPolicy::Pass, 2)
    );
    assert!(m.dry_run());
    assert!(matches!(
        m.check(),
        Check::Conditions {
            success: Some(_),
            failure: None
        }
    ));
    let template = AnalysisTemplateSpec {
        metrics: spec.metrics.clone(),
        args: Vec::new(),
        dry_run: Vec::new(),
        measurement_retention: Vec::new(),
        score: None,
    };
    assert!(
        !ValidatedAnalysis::from_template(&template)
            .unwrap()
            .metrics()[0]
            .dry_run()
    );
}

#[test]
fn score_weights_and_critical_are_read_with_their_defaults() {
    let spec: sluice_crds::AnalysisRunSpec = serde_json::from_value(serde_json::json!({
        "score": {"pass": 90, "marginal": 75},
        "metrics": [
            {"name": "latency", "weight": 3, "successCondition": "result[0] < 1",
             "provider": {"prometheus": {"address": "http://p:9090", "query": "up"}}},
            {"name": "errors", "critical": true, "successCondition": "result[0] < 1",
             "provider": {"prometheus": {"address": "http://p:9090", "query": "up"}}}
        ]
    }))
    .unwrap();
    let a = ValidatedAnalysis::from_run(&spec).unwrap();
    let t = a.score().expect("scored");
    assert_eq!((t.pass(), t.marginal()), (90, 75));
    let latency = a.metric("latency").unwrap();
    let errors = a.metric("errors").unwrap();
    assert_eq!((latency.weight(), latency.critical()), (3, false));
    assert_eq!((errors.weight(), errors.critical()), (1, true));
    assert!(!a.ends_run(latency, AnalysisPhase::Failed));
    assert!(a.ends_run(errors, AnalysisPhase::Failed));
    assert!(a.ends_run(latency, AnalysisPhase::Error));
    let template: AnalysisTemplateSpec = serde_json::from_value(serde_json::json!({
        "metrics": spec.metrics,
    }))
    .unwrap();
    let unscored = ValidatedAnalysis::from_template(&template).unwrap();
    assert_eq!(unscored.score(), None);
    assert!(unscored.ends_run(unscored.metric("latency").unwrap(), AnalysisPhase::Failed));
}

#[test]
fn score_thresholds_out_of_order_are_reported_with_the_other_problems() {
    let spec: sluice_crds::AnalysisRunSpec = serde_json::from_value(serde_json::json!({
        "score": {"pass": 60, "marginal": 80},
        "metrics": [{"name": "m", "provider": {"prometheus": {"address": "http://p:9090", "query": "up"}}}]
    }))
    .unwrap();
    let problems: Vec<String> = ValidatedAnalysis::from_run(&spec)
        .unwrap_err()
        .problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("successCondition"), "{problems:?}");
    assert_eq!(
        problems[1],
        "score: score thresholds must satisfy 0 <= marginal <= pass <= 100, got pass 60, marginal 80"
    );
}
