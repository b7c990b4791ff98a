use std::path::{Path, PathBuf};

use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the controller crate is in the workspace")
        .to_path_buf()
}

fn errors(report: &Report) -> Vec<&str> {
    report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.message.as_str())
        .collect()
}

fn lint_file(relative: &str) -> Report {
    let text = std::fs::read_to_string(repo().join(relative)).expect(relative);
    lint(&text)
}

#[test]
fn every_example_passes() {
    let dir = repo().join("examples");
    let mut objects = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        let report = lint(&std::fs::read_to_string(&path).expect("readable"));
        assert_eq!(errors(&report), Vec::<&str>::new(), "{}", path.display());
        objects += report.objects;
    }
    assert!(
        objects >= 5,
        "examples hold Rollouts and templates: {objects}"
    );
}

#[test]
fn the_demo_manifests_pass() {
    let report = lint_file("e2e/manifests/demo.yaml");
    assert_eq!(errors(&report), Vec::<&str>::new());
    assert_eq!(report.objects, 2, "an AnalysisTemplate and a Rollout");
}

#[test]
fn decode_errors_name_the_field() {
    for (file, field) in [
        (
            "tests/invalid/rollout-weight-above-100.yaml",
            "spec.strategy.canary.steps[0].setWeight: weight 120",
        ),
        (
            "tests/invalid/rollout-pause-bad-duration.yaml",
            "spec.strategy.canary.steps[1].pause.duration",
        ),
        (
            "tests/invalid/rollout-missing-strategy.yaml",
            "spec: missing field `strategy`",
        ),
        (
            "tests/invalid/template-bad-on-empty.yaml",
            "spec.metrics[0].onEmpty",
        ),
    ] {
        let report = lint_file(file);
        assert!(
            errors(&report).iter().any(|e| e.contains(field)),
            "{file}: expected {field:?} in {:?}",
            report.findings
        );
    }
}

#[test]
fn controller_validation_problems_are_reported() {
    for (file, field) in [
        (
            "tests/invalid/rollout-same-canary-stable-service.yaml",
            "spec.strategy.canary.canaryService must differ",
        ),
        (
            "tests/invalid/rollout-header-route-not-managed.yaml",
            "spec.strategy.canary.steps[0].setHeaderRoute.name",
        ),
        (
            "tests/invalid/rollout-empty-selector.yaml",
            "spec.selector must not be empty",
        ),
        (
            "tests/invalid/template-no-condition.yaml",
            "spec.metrics[\"success-rate\"]",
        ),
        (
            "tests/invalid/template-duplicate-metric-names.yaml",
            "metric name \"success-rate\"",
        ),
    ] {
        let report = lint_file(file);
        assert!(
            errors(&report).iter().any(|e| e.contains(field)),
            "{file}: expected {field:?} in {:?}",
            report.findings
        );
    }
}

#[test]
fn every_problem_of_every_document_is_reported() {
    let text = r#"
apiVersion: v1
kind: Service
metadata: {name: skipped}
---
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: web:1}]}}
  strategy:
    canary:
      canaryService: web
      stableService: web
      trafficRouting: {istio: {virtualService: {name: web}}}
      steps: [{setHeaderRoute: {name: h, match: [{headerName: x, headerValue: {exact: "1"}}]}}]
---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  metrics:
  - name: m
    provider: {prometheus: {address: "http://p:9090", query: up}}
"#;
    let report = lint(text);
    assert_eq!(report.objects, 2, "the Service is skipped");
    let objects: Vec<&str> = report.findings.iter().map(|f| f.object.as_str()).collect();
    assert_eq!(
        objects,
        [
            "Rollout web (document 2)",
            "Rollout web (document 2)",
            "AnalysisTemplate t (document 3)"
        ],
        "{:#?}",
        report.findings
    );
}

#[test]
fn unknown_kinds_versions_and_names_are_problems() {
    let report = lint(
        "apiVersion: sluice.dev/v1beta1\nkind: Rollout\nmetadata: {name: a}\n---\n\
         apiVersion: sluice.dev/v1alpha1\nkind: Experiment\nmetadata: {name: b}\n---\n\
         apiVersion: sluice.dev/v1alpha1\nkind: AnalysisTemplate\nmetadata: {}\n\
         spec: {metrics: [{name: m, successCondition: 'true', provider: {prometheus: {address: 'http://p', query: up}}}]}\n",
    );
    let errors = errors(&report);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].contains("not served"));
    assert!(errors[1].contains("unknown kind"));
    assert!(errors[2].contains("metadata.name"));
}

#[test]
fn a_blue_green_rollout_is_only_a_warning_while_the_controller_lacks_it() {
    let report = lint_file("examples/bluegreen.yaml");
    assert_eq!(report.errors(), 0);
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.severity == Severity::Warning)
    );
}

#[test]
fn yaml_syntax_errors_fail() {
    let report = lint("a: [unclosed\n");
    assert_eq!(report.errors(), 1);
    assert!(report.findings[0].message.contains("invalid YAML"));
}

#[test]
fn exit_codes() {
    let mut out = Output::plain(Vec::new());
    let good = [repo().join("examples/canary-istio-host.yaml")];
    assert_eq!(run(&good, &mut out).unwrap(), Exit::Ok);
    let bad = [repo().join("tests/invalid/rollout-weight-above-100.yaml")];
    assert_eq!(run(&bad, &mut out).unwrap(), Exit::Failed);
    let missing = [repo().join("no/such/file.yaml")];
    assert_eq!(run(&missing, &mut out).unwrap_err().exit(), Exit::Usage);
    let text = String::from_utf8(out.out).unwrap();
    assert!(
        text.contains("1 Sluice object(s) in 1 file(s), 0 problem(s)"),
        "{text}"
    );
}
