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
fn every_invalid_manifest_fails_with_the_api_servers_message() {
    let dir = repo().join("tests/invalid");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/invalid/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("an `# expect:` first line");
        let report = lint(&text);
        assert!(
            errors(&report).iter().any(|e| e.contains(expect)),
            "{}: expected {expect:?} in {:#?}",
            path.display(),
            report.findings
        );
        files += 1;
    }
    assert!(files >= 25, "the corpus is there: {files}");
}

#[test]
fn decode_errors_name_the_field() {
    let text = std::fs::read_to_string(repo().join("tests/invalid/rollout-weight-above-100.yaml"))
        .expect("readable");
    let doc = &sluice_crds::yaml::documents(&text).expect("YAML")[0];
    let problems = decode::<Rollout>(doc).expect_err("a weight of 120 does not decode");
    assert_eq!(
        problems,
        [(
            Severity::Error,
            "spec.strategy.canary.steps[0].setWeight: weight 120 must be between 0 and 100".into()
        )]
    );
}

#[test]
fn the_controllers_own_validation_comes_after_the_schema() {
    let report = lint(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}, matchExpressions: [{key: tier, operator: Near}]}
  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: web:1}]}}
  strategy: {canary: {steps: [{setWeight: 20}]}}
---
apiVersion: sluice.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  metrics:
  - name: m
    successCondition: "result[0] >="
    provider: {prometheus: {address: "http://p:9090", query: up}}
"#,
    );
    let errors = errors(&report);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains("spec.selector.matchExpressions: unknown operator \"Near\""));
    assert!(errors[1].starts_with("spec.metrics[\"m\"].successCondition"));
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
fn the_blue_green_example_is_clean() {
    let report = lint_file("examples/bluegreen.yaml");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
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
