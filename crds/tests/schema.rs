//! Properties of the generated CRD schemas that the API server (or a user) relies on.

use kube::CustomResourceExt;
use serde_json::Value;
use sluice_crds::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, Rollout, generate};

fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// Calls `f` on every schema node below `v` with its JSON-pointer-ish path.
fn walk(v: &Value, path: &str, f: &mut impl FnMut(&str, &Value)) {
    f(path, v);
    if let Some(props) = v.get("properties").and_then(Value::as_object) {
        for (k, child) in props {
            walk(child, &format!("{path}.{k}"), f);
        }
    }
    if let Some(items) = v.get("items") {
        walk(items, &format!("{path}[]"), f);
    }
    if let Some(extra) = v.get("additionalProperties").filter(|a| a.is_object()) {
        walk(extra, &format!("{path}{{}}"), f);
    }
}

#[test]
fn every_cel_rule_has_a_message() {
    for crd in sluice_crds::generate::crds() {
        walk(&schema_of(&crd), "", &mut |path, node| {
            for rule in node
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let msg = rule
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                assert!(!msg.is_empty(), "rule at {path} has no message: {rule}");
            }
        });
    }
}

#[test]
fn no_oneof_left_for_the_api_server() {
    // Externally tagged enums are rewritten into CEL "exactly one" rules; a leftover oneOf
    // would give users an error message that names no field.
    for crd in sluice_crds::generate::crds() {
        let text = serde_json::to_string(&schema_of(&crd)).unwrap();
        assert!(
            !text.contains("\"oneOf\""),
            "{} still has oneOf",
            crd.metadata.name.unwrap()
        );
    }
}

#[test]
fn rollout_crd_has_scale_status_and_columns() {
    let crd = Rollout::crd();
    let version = &crd.spec.versions[0];
    let sub = version.subresources.as_ref().unwrap();
    let scale = sub.scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    assert!(sub.status.is_some());
    let columns: Vec<_> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Desired",
            "Current",
            "Up-to-date",
            "Available",
            "Phase",
            "Weight",
            "Step",
            "Age"
        ]
    );
    assert_eq!(crd.spec.names.short_names, Some(vec!["sro".to_string()]));
    assert_eq!(crd.spec.scope, "Namespaced");
}

#[test]
fn kinds_scopes_and_names() {
    let crds = [
        Rollout::crd(),
        AnalysisTemplate::crd(),
        ClusterAnalysisTemplate::crd(),
        AnalysisRun::crd(),
    ];
    let got: Vec<_> = crds
        .iter()
        .map(|c| {
            (
                c.spec.names.kind.as_str(),
                c.spec.scope.as_str(),
                c.spec.group.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Rollout", "Namespaced", "sluice.dev"),
            ("AnalysisTemplate", "Namespaced", "sluice.dev"),
            ("ClusterAnalysisTemplate", "Cluster", "sluice.dev"),
            ("AnalysisRun", "Namespaced", "sluice.dev"),
        ]
    );
    // The cluster-scoped template shares the namespaced one's schema, description aside.
    let mut at = schema_of(&AnalysisTemplate::crd());
    let mut cat = schema_of(&ClusterAnalysisTemplate::crd());
    at.as_object_mut().unwrap().remove("description");
    cat.as_object_mut().unwrap().remove("description");
    assert_eq!(at, cat);
    assert!(
        AnalysisRun::crd().spec.versions[0]
            .subresources
            .as_ref()
            .unwrap()
            .status
            .is_some()
    );
    let files: Vec<_> = generate().into_iter().map(|f| f.file_name).collect();
    assert_eq!(
        files,
        [
            "rollouts.sluice.dev.yaml",
            "analysistemplates.sluice.dev.yaml",
            "clusteranalysistemplates.sluice.dev.yaml",
            "analysisruns.sluice.dev.yaml"
        ]
    );
}

#[test]
fn template_keeps_pod_spec_typed_without_upstream_docs() {
    let schema = schema_of(&Rollout::crd());
    let template = &schema["properties"]["spec"]["properties"]["template"];
    let containers = &template["properties"]["spec"]["properties"]["containers"];
    assert_eq!(containers["type"], "array");
    assert!(containers["items"]["properties"]["image"].is_object());
    assert!(containers["items"].get("description").is_none());
    assert_eq!(
        template["properties"]["metadata"]["properties"]["labels"]["maxProperties"],
        64
    );
}
