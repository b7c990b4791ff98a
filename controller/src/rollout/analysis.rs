//! Creating the AnalysisRuns of a Rollout: templates merged into one run, arguments resolved.
//!
//! A run is created from the templates a step (or the background analysis) names: their
//! metrics, dry-run and retention rules are concatenated, their `score` (which they must all
//! set alike, or not at all) is carried over, and their arguments are filled from
//! the Rollout (`value`, `valueFrom.fieldRef` read from the Rollout, `podTemplateHashValue`
//! resolved to a hash). `secretKeyRef` arguments stay references: the AnalysisRun controller
//! reads the one Secret when it measures, so no secret value is ever copied into an object.
//!
//! Guarantees: creation is idempotent (the name is chosen by the planner and persisted before
//! the create, so a retry after a crash finds the run instead of making a second one); a
//! missing template or argument is an [`AnalysisError`] naming it, never a partial run.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use sluice_crds::{
    AnalysisRun, AnalysisRunArgument, AnalysisRunSpec, AnalysisTemplate, AnalysisTemplateSpec,
    Argument, ClusterAnalysisTemplate, PodTemplateHashValue, Rollout, RolloutAnalysis, Score,
    ValueFrom,
};

use super::plan::RunKind;
use crate::FIELD_MANAGER;
use crate::replicaset::{HASH_LABEL, Owner};

/// Label naming the Rollout an AnalysisRun belongs to.
pub const ROLLOUT_LABEL: &str = "sluice.dev/rollout";
/// Label saying what the run gates: `step-<index>`, `background`, `pre-promotion` or
/// `post-promotion`.
pub const KIND_LABEL: &str = "sluice.dev/analysis";

/// Why a run could not be created. `InvalidReference`-like problems are the user's to fix.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("{0}")]
    Invalid(String),
    #[error("creating AnalysisRun {name}: {source}")]
    Api { name: String, source: kube::Error },
}

fn kind_label(kind: RunKind) -> String {
    match kind {
        RunKind::Step(i) => format!("step-{i}"),
        RunKind::Background => "background".into(),
        RunKind::PrePromotion => "pre-promotion".into(),
        RunKind::PostPromotion => "post-promotion".into(),
    }
}

/// Everything needed to create one run.
pub struct RunRequest<'a> {
    pub name: &'a str,
    pub kind: RunKind,
    pub analysis: &'a RolloutAnalysis,
    pub rollout: &'a Rollout,
    pub owner: &'a Owner,
    pub stable_hash: Option<&'a str>,
    pub latest_hash: &'a str,
}

/// Creates the run (an existing run of that name counts as created).
pub async fn create_run(client: &kube::Client, req: &RunRequest<'_>) -> Result<(), AnalysisError> {
    let ns = &req.owner.namespace;
    let templates = fetch_templates(client, ns, req.analysis).await?;
    let spec = merge(&templates, req)?;
    let run = AnalysisRun {
        metadata: metadata(req),
        spec,
        status: None,
    };
    let api: Api<AnalysisRun> = Api::namespaced(client.clone(), ns);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&pp, &run).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 422 => Err(AnalysisError::Invalid(format!(
            "AnalysisRun {} for {} was rejected: {}",
            req.name,
            kind_label(req.kind),
            e.message
        ))),
        Err(source) => Err(AnalysisError::Api {
            name: req.name.to_owned(),
            source,
        }),
    }
}

fn metadata(req: &RunRequest<'_>) -> ObjectMeta {
    let labels = BTreeMap::from([
        (HASH_LABEL.to_owned(), req.latest_hash.to_owned()),
        (ROLLOUT_LABEL.to_owned(), req.owner.name.clone()),
        (KIND_LABEL.to_owned(), kind_label(req.kind)),
    ]);
    ObjectMeta {
        name: Some(req.name.to_owned()),
        namespace: Some(req.owner.namespace.clone()),
        labels: Some(labels),
        owner_references: Some(vec![OwnerReference {
            api_version: req.owner.api_version.clone(),
            kind: req.owner.kind.clone(),
            name: req.owner.name.clone(),
            uid: req.owner.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..ObjectMeta::default()
    }
}

async fn fetch_templates(
    client: &kube::Client,
    ns: &str,
    analysis: &RolloutAnalysis,
) -> Result<Vec<(String, AnalysisTemplateSpec)>, AnalysisError> {
    let mut specs = Vec::new();
    for t in &analysis.templates {
        let found = if t.cluster_scope {
            let api: Api<ClusterAnalysisTemplate> = Api::all(client.clone());
            api.get_opt(&t.template_name)
                .await
                .map(|o| o.map(|t| t.spec))
        } else {
            let api: Api<AnalysisTemplate> = Api::namespaced(client.clone(), ns);
            api.get_opt(&t.template_name)
                .await
                .map(|o| o.map(|t| t.spec))
        };
        let kind = if t.cluster_scope {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        match found {
            Ok(Some(spec)) => specs.push((t.template_name.clone(), spec)),
            Ok(None) => {
                return Err(AnalysisError::Invalid(format!(
                    "{kind} {:?} does not exist",
                    t.template_name
                )));
            }
            Err(source) => {
                return Err(AnalysisError::Api {
                    name: t.template_name.clone(),
                    source,
                });
            }
        }
    }
    Ok(specs)
}

/// Concatenates the templates and fills their arguments from the Rollout.
fn merge(
    templates: &[(String, AnalysisTemplateSpec)],
    req: &RunRequest<'_>,
) -> Result<AnalysisRunSpec, AnalysisError> {
    let mut spec = AnalysisRunSpec {
        metrics: Vec::new(),
        args: Vec::new(),
        terminate: false,
        dry_run: Vec::new(),
        measurement_retention: Vec::new(),
        score: None,
    };
    let mut problems = Vec::new();
    match agreed_score(templates) {
        Ok(score) => spec.score = score,
        Err(p) => problems.push(p),
    }
    let mut template_args: Vec<Argument> = Vec::new();
    for (name, t) in templates {
        for m in &t.metrics {
            if spec.metrics.iter().any(|x| x.name == m.name) {
                problems.push(format!(
                    "metric {:?} of template {name:?} is defined by another template too",
                    m.name
                ));
            } else {
                spec.metrics.push(m.clone());
            }
        }
        for a in &t.args {
            if !template_args.iter().any(|x| x.name == a.name) {
                template_args.push(a.clone());
            }
        }
        spec.dry_run.extend(t.dry_run.iter().cloned());
        spec.measurement_retention
            .extend(t.measurement_retention.iter().cloned());
    }
    spec.dry_run.extend(req.analysis.dry_run.iter().cloned());
    spec.measurement_retention
        .extend(req.analysis.measurement_retention.iter().cloned());
    for arg in template_args {
        match resolve_arg(&arg, req) {
            Ok(a) => spec.args.push(a),
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(AnalysisError::Invalid(format!(
            "analysis for {}: {}",
            kind_label(req.kind),
            problems.join("; ")
        )))
    }
}

/// The score every template sets. A score changes what a failed metric means (only critical
/// ones fail the run by themselves), so a template written without one must not be scored by
/// another's, and two different thresholds have no single meaning: both are errors naming
/// every template's score.
fn agreed_score(templates: &[(String, AnalysisTemplateSpec)]) -> Result<Option<Score>, String> {
    let Some((_, first)) = templates.first() else {
        return Ok(None);
    };
    if templates.iter().all(|(_, t)| t.score == first.score) {
        return Ok(first.score);
    }
    let each: Vec<String> = templates
        .iter()
        .map(|(name, t)| match t.score {
            Some(s) => format!("{name:?} pass {}, marginal {}", s.pass, s.marginal),
            None => format!("{name:?} none"),
        })
        .collect();
    Err(format!(
        "templates set different scores ({}): set the same score on every template of a run, or none",
        each.join("; ")
    ))
}

/// The value of a template argument: the Rollout's override, else the template's default.
fn resolve_arg(arg: &Argument, req: &RunRequest<'_>) -> Result<Argument, String> {
    let given: Option<&AnalysisRunArgument> = req.analysis.args.iter().find(|a| a.name == arg.name);
    let (value, value_from) = match given {
        Some(a) => (a.value.clone(), a.value_from.clone()),
        None => (arg.value.clone(), arg.value_from.clone()),
    };
    let resolved = match (value, value_from) {
        (Some(v), _) => Argument {
            name: arg.name.clone(),
            value: Some(v),
            value_from: None,
        },
        (None, Some(ValueFrom::SecretKeyRef(r))) => Argument {
            name: arg.name.clone(),
            value: None,
            value_from: Some(ValueFrom::SecretKeyRef(r)),
        },
        (None, Some(ValueFrom::FieldRef(f))) => {
            let v = field_value(req.rollout, &f.field_path).ok_or_else(|| {
                format!(
                    "argument {:?}: field {:?} not found on the Rollout",
                    arg.name, f.field_path
                )
            })?;
            Argument {
                name: arg.name.clone(),
                value: Some(v),
                value_from: None,
            }
        }
        (None, Some(ValueFrom::PodTemplateHashValue(which))) => {
            let hash = match which {
                PodTemplateHashValue::Latest => Some(req.latest_hash),
                PodTemplateHashValue::Stable => req.stable_hash,
            };
            let v =
                hash.ok_or_else(|| format!("argument {:?}: no stable version yet", arg.name))?;
            Argument {
                name: arg.name.clone(),
                value: Some(v.to_owned()),
                value_from: None,
            }
        }
        (None, None) => {
            return Err(format!(
                "argument {:?} has no value: set it in the Rollout's analysis args",
                arg.name
            ));
        }
    };
    Ok(resolved)
}

/// A field of the Rollout by a simple path: `metadata.name`, `spec.replicas`,
/// `metadata.labels['app']` or `metadata.annotations['x/y']`.
pub fn field_value(rollout: &Rollout, path: &str) -> Option<String> {
    let mut value = serde_json::to_value(rollout).ok()?;
    for segment in split_path(path)? {
        value = value.get(&segment)?.clone();
    }
    match value {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The segments of `path`; `None` for a path of another form (`[0]`, `["x"]`, an empty
/// segment). Every step consumes input, so any text ends the loop.
fn split_path(path: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']")?;
            out.push(after[..end].to_owned());
            rest = &after[end + 2..];
        } else {
            let rest_trimmed = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_trimmed.find(['.', '[']).unwrap_or(rest_trimmed.len());
            if end == 0 {
                return None;
            }
            out.push(rest_trimmed[..end].to_owned());
            rest = &rest_trimmed[end..];
        }
    }
    Some(out)
}

/// Name of the Rollout a run belongs to, from its labels.
pub fn rollout_of(run: &AnalysisRun) -> Option<&str> {
    run.labels().get(ROLLOUT_LABEL).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(metric: &str, args: serde_json::Value) -> (String, AnalysisTemplateSpec) {
        let spec = serde_json::from_value(serde_json::json!({
            "args": args,
            "metrics": [{"name": metric, "successCondition": "result[0] > 0",
                         "provider": {"prometheus": {"address": "http://p:9090", "query": "up"}}}]
        }))
        .expect("template spec");
        (format!("t-{metric}"), spec)
    }

    fn request_parts() -> (Rollout, RolloutAnalysis, Owner) {
        let rollout: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}},
                     "strategy": {"canary": {}}}
        }))
        .expect("rollout");
        let analysis: RolloutAnalysis = serde_json::from_value(serde_json::json!({
            "templates": [{"templateName": "a"}, {"templateName": "b", "clusterScope": true}],
            "args": [
                {"name": "service", "value": "web-canary"},
                {"name": "ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "stable", "valueFrom": {"podTemplateHashValue": "Stable"}},
                {"name": "token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "t"}}}
            ]
        }))
        .expect("analysis");
        let owner = Owner {
            api_version: "sluice.dev/v1alpha1".into(),
            kind: "Rollout".into(),
            name: "web".into(),
            namespace: "shop".into(),
            uid: "u".into(),
        };
        (rollout, analysis, owner)
    }

    #[test]
    fn templates_merge_into_one_run_with_every_argument_resolved() {
        let (rollout, analysis, owner) = request_parts();
        let req = RunRequest {
            name: "web-abc-bg-1",
            kind: RunKind::Background,
            analysis: &analysis,
            rollout: &rollout,
            owner: &owner,
            stable_hash: Some("s1"),
            latest_hash: "abc",
        };
        let a = template(
            "success",
            serde_json::json!([{"name": "service"}, {"name": "ns"}]),
        );
        let b = template(
            "latency",
            serde_json::json!([{"name": "stable"}, {"name": "token"}, {"name": "window", "value": "1m"}]),
        );
        let spec = merge(&[a, b], &req).expect("merged");
        let names: Vec<&str> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["success", "latency"]);
        let value = |n: &str| {
            spec.args
                .iter()
                .find(|a| a.name == n)
                .and_then(|a| a.value.clone())
        };
        assert_eq!(value("service").as_deref(), Some("web-canary"));
        assert_eq!(
            value("ns").as_deref(),
            Some("shop"),
            "fieldRef read from the Rollout"
        );
        assert_eq!(
            value("stable").as_deref(),
            Some("s1"),
            "podTemplateHashValue resolved"
        );
        assert_eq!(
            value("window").as_deref(),
            Some("1m"),
            "template default kept"
        );
        let token = spec
            .args
            .iter()
            .find(|a| a.name == "token")
            .expect("token arg");
        assert!(
            token.value.is_none(),
            "a secret is never copied into the run"
        );
        assert!(matches!(token.value_from, Some(ValueFrom::SecretKeyRef(_))));
    }

    #[test]
    fn a_duplicate_metric_or_a_missing_argument_is_an_error_naming_it() {
        let (rollout, analysis, owner) = request_parts();
        let req = RunRequest {
            name: "web-abc-0-1",
            kind: RunKind::Step(0),
            analysis: &analysis,
            rollout: &rollout,
            owner: &owner,
            stable_hash: None,
            latest_hash: "abc",
        };
        let a = template(
            "success",
            serde_json::json!([{"name": "stable"}, {"name": "unset"}]),
        );
        let b = template("success", serde_json::json!([]));
        let err = merge(&[a, b], &req).expect_err("invalid").to_string();
        assert!(err.contains("metric \"success\""), "{err}");
        assert!(err.contains("argument \"unset\" has no value"), "{err}");
        assert!(
            err.contains("argument \"stable\": no stable version yet"),
            "{err}"
        );
        assert!(err.contains("step-0"), "{err}");
    }

    fn scored(metric: &str, score: Option<(i32, i32)>) -> (String, AnalysisTemplateSpec) {
        let (name, mut spec) = template(metric, serde_json::json!([]));
        spec.score = score.map(|(pass, marginal)| {
            serde_json::from_value(serde_json::json!({"pass": pass, "marginal": marginal}))
                .expect("score")
        });
        (name, spec)
    }

    #[test]
    fn the_templates_score_is_carried_over_only_when_they_all_agree() {
        let (rollout, analysis, owner) = request_parts();
        let req = RunRequest {
            name: "web-abc-0-1",
            kind: RunKind::Step(0),
            analysis: &analysis,
            rollout: &rollout,
            owner: &owner,
            stable_hash: Some("s1"),
            latest_hash: "abc",
        };
        let spec = merge(
            &[scored("a", Some((90, 70))), scored("b", Some((90, 70)))],
            &req,
        )
        .expect("merged");
        let score = spec.score.map(|s| (s.pass.get(), s.marginal.get()));
        assert_eq!(score, Some((90, 70)));
        let spec = merge(&[scored("a", None), scored("b", None)], &req).expect("merged");
        assert_eq!(spec.score, None);
        for (b, said) in [
            (Some((80, 70)), "\"t-b\" pass 80, marginal 70"),
            (None, "\"t-b\" none"),
        ] {
            let err = merge(&[scored("a", Some((90, 70))), scored("b", b)], &req)
                .expect_err("templates disagree")
                .to_string();
            assert!(
                err.contains("templates set different scores")
                    && err.contains("\"t-a\" pass 90, marginal 70")
                    && err.contains(said),
                "{err}"
            );
        }
    }

    #[test]
    fn field_paths_reach_names_labels_and_numbers() {
        let rollout: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "shop"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}},
                     "strategy": {"canary": {}}}
        }))
        .expect("rollout");
        assert_eq!(
            field_value(&rollout, "metadata.name").as_deref(),
            Some("web")
        );
        assert_eq!(
            field_value(&rollout, "metadata.labels['app.kubernetes.io/name']").as_deref(),
            Some("shop")
        );
        assert_eq!(field_value(&rollout, "spec.replicas").as_deref(), Some("3"));
        assert_eq!(field_value(&rollout, "metadata.labels['missing']"), None);
        assert_eq!(field_value(&rollout, "metadata.labels['unterminated"), None);
        // Forms the path syntax does not have are "not found", never a hang.
        for unsupported in [
            "spec.template.spec.containers[0].image",
            "metadata.labels[\"app\"]",
            "metadata..name",
            "metadata.",
            "[0]",
        ] {
            assert_eq!(field_value(&rollout, unsupported), None, "{unsupported}");
        }
    }
}
