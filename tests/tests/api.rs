//! The real API server accepts Sluice's API exactly as documented: the generated CRDs install
//! and become Established, every manifest in `examples/` is accepted, every manifest in
//! `tests/invalid/` is rejected with a message containing its `# expect:` line, and typed
//! Rollouts and AnalysisRuns (with complete statuses, the scale subresource and the immutable
//! selector) survive a round trip through the API server unchanged.
//!
//! Manifests are created with `dryRun=All`, so nothing is stored and no controller reacts; the
//! API server still runs defaulting, pruning, schema and CEL validation. Creation uses the
//! server's default field validation (unknown fields are pruned with a warning, not refused),
//! so each invalid manifest must be rejected by Sluice's schema itself, not by a strict client.
//!
//! Each test re-applies `crds/*.yaml` first (server-side apply, same field manager as
//! `e2e/cluster`), so a cluster started before the last `crdgen` still tests the current files.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
    discovery::{Scope, pinned_kind},
};
use serde_json::Value;
use sluice_crds::{AnalysisRun, AnalysisRunStatus, Rollout, RolloutStatus};

/// Field manager `e2e/cluster` applies the CRDs with; reusing it keeps ownership in one place.
const CRD_MANAGER: &str = "sluice-e2e";

#[tokio::test]
async fn sluice_crds_install_and_are_established() -> Result<()> {
    let client = sluice_tests::client().await?;
    let names = install_crds(&client).await?;
    ensure!(
        names.len() == 4,
        "expected 4 Sluice CRDs in crds/, found {names:?}"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    for name in &names {
        let crd = crds.get(name).await?;
        let condition = |kind: &str| {
            crd.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.type_ == kind)
                        .map(|c| c.status.clone())
                })
        };
        ensure!(
            condition("NamesAccepted").as_deref() == Some("True"),
            "{name}: names not accepted"
        );
        ensure!(
            condition("Established").as_deref() == Some("True"),
            "{name}: not Established"
        );
        let served: Vec<_> = crd
            .spec
            .versions
            .iter()
            .filter(|v| v.served)
            .map(|v| &v.name)
            .collect();
        ensure!(served == ["v1alpha1"], "{name}: serves {served:?}");
    }
    // The scale subresource is what lets an HPA target a Rollout.
    let rollouts = crds.get("rollouts.sluice.dev").await?;
    let sub = rollouts.spec.versions[0]
        .subresources
        .as_ref()
        .context("no subresources")?;
    ensure!(
        sub.scale.is_some() && sub.status.is_some(),
        "Rollout lacks scale/status: {sub:?}"
    );
    Ok(())
}

#[tokio::test]
async fn every_example_is_accepted() -> Result<()> {
    let client = sluice_tests::client().await?;
    install_crds(&client).await?;
    let files = yaml_files("examples")?;
    ensure!(
        files.len() >= 5,
        "expected at least 5 examples, found {}",
        files.len()
    );
    sluice_tests::with_namespace(&client, "it-api-examples-", |ns| {
        examples_accepted(client.clone(), ns, files)
    })
    .await
}

async fn examples_accepted(client: Client, ns: String, files: Vec<PathBuf>) -> Result<()> {
    let mut failures = Vec::new();
    for file in &files {
        for doc in documents(file)? {
            let kind = doc["kind"].as_str().unwrap_or("?").to_owned();
            let what = format!("{kind} {}", doc["metadata"]["name"]);
            if let Err(error) = dry_run_create(&client, &ns, doc).await {
                failures.push(format!("{}: {what}: {error:#}", file.display()));
            }
        }
    }
    ensure!(
        failures.is_empty(),
        "examples rejected by the API server:\n{}",
        failures.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn every_invalid_manifest_is_rejected_with_its_message() -> Result<()> {
    let client = sluice_tests::client().await?;
    install_crds(&client).await?;
    let files = yaml_files("tests/invalid")?;
    ensure!(
        files.len() >= 25,
        "the invalid corpus should have at least 25 files, found {}",
        files.len()
    );
    sluice_tests::with_namespace(&client, "it-api-invalid-", |ns| {
        invalid_rejected(client.clone(), ns, files)
    })
    .await
}

async fn invalid_rejected(client: Client, ns: String, files: Vec<PathBuf>) -> Result<()> {
    let mut mismatches = Vec::new();
    for file in &files {
        if let Err(problem) = check_rejected(&client, &ns, file).await {
            mismatches.push(format!("{}: {problem:#}", file.display()));
        }
    }
    ensure!(
        mismatches.is_empty(),
        "{} of {} invalid manifests were not rejected as expected:\n{}",
        mismatches.len(),
        files.len(),
        mismatches.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn a_rollout_keeps_its_status_and_scales_through_the_api_server() -> Result<()> {
    let client = sluice_tests::client().await?;
    install_crds(&client).await?;
    sluice_tests::with_namespace(&client, "it-api-rollout-", |ns| {
        rollout_status_and_scale(client.clone(), ns)
    })
    .await
}

/// A typed Rollout is stored as written; a complete status applied the way the controller does
/// (server-side apply on the status subresource, manager `sluice`) is stored without losing a
/// field; the scale subresource reads and writes `spec.replicas`; the selector cannot change.
async fn rollout_status_and_scale(client: Client, ns: String) -> Result<()> {
    let rollouts: Api<Rollout> = Api::namespaced(client, &ns);
    let rollout: Rollout = sluice_crds::from_yaml(ROLLOUT)?;
    let created = rollouts.create(&PostParams::default(), &rollout).await?;
    ensure!(
        created.spec == rollout.spec,
        "stored spec differs:\n{:#?}",
        created.spec
    );

    let status: RolloutStatus = sluice_crds::from_yaml(STATUS)?;
    let apply = serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "status": status,
    });
    let stored = rollouts
        .patch_status(
            "web",
            &PatchParams::apply("sluice").force(),
            &Patch::Apply(&apply),
        )
        .await
        .context("server-side apply of a full status")?;
    ensure!(
        stored.status.as_ref() == Some(&status),
        "stored status differs: {:#?}",
        stored.status
    );

    let scale = rollouts.get_scale("web").await?;
    ensure!(
        scale.spec.and_then(|s| s.replicas) == Some(2),
        "scale reads spec.replicas"
    );
    ensure!(
        scale.status.map(|s| s.replicas) == Some(2),
        "scale reads status.replicas"
    );
    let patch = serde_json::json!({"spec": {"replicas": 5}});
    rollouts
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let scaled = rollouts.get("web").await?;
    ensure!(
        scaled.spec.desired_replicas() == 5,
        "scale writes spec.replicas"
    );

    let move_selector = serde_json::json!({"spec": {
        "selector": {"matchLabels": {"app": "web-v2"}},
        "template": {"metadata": {"labels": {"app": "web-v2"}}},
    }});
    match rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&move_selector),
        )
        .await
    {
        Ok(_) => bail!("changing spec.selector was accepted"),
        Err(kube::Error::Api(status)) if status.message.contains("spec.selector is immutable") => {
            Ok(())
        }
        Err(other) => Err(other).context("changing spec.selector failed for the wrong reason"),
    }
}

const ROLLOUT: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: web:1
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      trafficRouting:
        istio:
          virtualService: {name: web, routes: [primary]}
      steps:
      - setWeight: 20
      - pause: {duration: 90}
      - analysis:
          templates: [{templateName: success-rate}]
          args:
          - name: hash
            valueFrom: {podTemplateHashValue: Latest}
"#;

const STATUS: &str = r#"
phase: Paused
message: waiting at step 1
observedGeneration: 1
currentPodHash: 6d4f8b7c9
currentStepHash: 5b8f9c
stableRS: 7c9d5f6b8
currentStepIndex: 1
replicas: 2
updatedReplicas: 1
readyReplicas: 2
availableReplicas: 2
canary:
  weights:
    canary: {weight: 20, serviceName: web-canary, podTemplateHash: 6d4f8b7c9}
    stable: {weight: 80, serviceName: web-stable, podTemplateHash: 7c9d5f6b8}
    verified: true
  currentStepAnalysisRunStatus: {name: web-6d4f8b7c9-2, status: Running, message: measuring}
controllerPause: true
pauseConditions:
- reason: CanaryPauseStep
  startTime: "2026-01-02T03:04:05Z"
conditions:
- type: Progressing
  status: "True"
  reason: RolloutPaused
  message: Rollout is paused
  lastUpdateTime: "2026-01-02T03:04:05Z"
  lastTransitionTime: "2026-01-02T03:00:00Z"
- type: Available
  status: "True"
  reason: AvailableReason
  message: Rollout has minimum availability
  lastUpdateTime: "2026-01-02T03:00:00Z"
  lastTransitionTime: "2026-01-02T03:00:00Z"
selector: app=web
"#;

#[tokio::test]
async fn an_analysis_run_keeps_its_measurements() -> Result<()> {
    let client = sluice_tests::client().await?;
    install_crds(&client).await?;
    sluice_tests::with_namespace(&client, "it-api-run-", |ns| run_status(client.clone(), ns)).await
}

/// The AnalysisRun status is the run's whole memory (the assessment is recomputed from it after
/// a restart), so every field the controller writes must survive the API server's pruning.
async fn run_status(client: Client, ns: String) -> Result<()> {
    let runs: Api<AnalysisRun> = Api::namespaced(client, &ns);
    let run: AnalysisRun = sluice_crds::from_yaml(RUN)?;
    let created = runs.create(&PostParams::default(), &run).await?;
    ensure!(
        created.spec == run.spec,
        "stored spec differs:\n{:#?}",
        created.spec
    );
    let status: AnalysisRunStatus = sluice_crds::from_yaml(RUN_STATUS)?;
    let apply = serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisRun",
        "status": status,
    });
    let stored = runs
        .patch_status(
            "web-1",
            &PatchParams::apply("sluice").force(),
            &Patch::Apply(&apply),
        )
        .await
        .context("server-side apply of a run status")?;
    ensure!(
        stored.status.as_ref() == Some(&status),
        "stored status differs: {:#?}",
        stored.status
    );
    Ok(())
}

const RUN: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: AnalysisRun
metadata:
  name: web-1
spec:
  args:
  - name: service-name
    value: web-canary
  - name: token
    valueFrom: {secretKeyRef: {name: prom, key: token}}
  metrics:
  - name: success-rate
    interval: 1m
    count: 3
    successCondition: result[0] >= 0.95
    onNaN: inconclusive
    provider:
      prometheus:
        address: http://prometheus:9090
        query: sum(rate(x[1m]))
"#;

const RUN_STATUS: &str = r#"
phase: Running
message: measuring
startedAt: "2026-01-02T03:04:05Z"
runSummary: {count: 1}
metricResults:
- name: success-rate
  phase: Running
  count: 2
  successful: 1
  inconclusive: 1
  measurements:
  - phase: Successful
    value: "[0.98]"
    startedAt: "2026-01-02T03:04:05Z"
    finishedAt: "2026-01-02T03:04:06Z"
    metadata: {resolvedQuery: "sum(rate(x[1m]))", sampleCount: "1"}
  - phase: Inconclusive
    message: "result is NaN (onNaN: inconclusive)"
    value: "[NaN]"
    startedAt: "2026-01-02T03:05:05Z"
    finishedAt: "2026-01-02T03:05:06Z"
"#;

/// One corpus file: it must be rejected, and the API server's message must contain the text
/// after `# expect:` on its first line.
async fn check_rejected(client: &Client, ns: &str, file: &PathBuf) -> Result<()> {
    let text = std::fs::read_to_string(file)?;
    let expect = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect:"))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .context("first line must be `# expect: <part of the error message>`")?;
    let docs = documents(file)?;
    ensure!(
        docs.len() == 1,
        "must hold exactly one manifest, has {}",
        docs.len()
    );
    let doc = docs.into_iter().next().expect("one document");
    match dry_run_create(client, ns, doc).await {
        Ok(()) => bail!("accepted, expected rejection containing {expect:?}"),
        Err(error) => {
            let message = match error.downcast_ref::<kube::Error>() {
                Some(kube::Error::Api(status)) => status.message.clone(),
                _ => bail!("failed for another reason than validation: {error:#}"),
            };
            ensure!(
                message.contains(expect),
                "message {message:?} does not contain {expect:?}"
            );
            Ok(())
        }
    }
}

/// Creates `doc` with `dryRun=All`, in `ns` when the kind is namespaced.
async fn dry_run_create(client: &Client, ns: &str, doc: Value) -> Result<()> {
    let object: DynamicObject = serde_json::from_value(doc).context("not a Kubernetes object")?;
    let types = object
        .types
        .clone()
        .context("manifest lacks apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(&types)?;
    let (resource, caps) = pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("the API server does not serve {gvk:?}"))?;
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), ns, &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let params = PostParams {
        dry_run: true,
        field_manager: Some("sluice-tests".into()),
    };
    api.create(&params, &object).await?;
    Ok(())
}

/// Server-side applies every `crds/*.yaml` and waits until each is Established. Returns the
/// CRD names.
async fn install_crds(client: &Client) -> Result<Vec<String>> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(CRD_MANAGER).force();
    let mut names = Vec::new();
    for file in yaml_files("crds")? {
        for doc in documents(&file)? {
            let crd: CustomResourceDefinition = serde_json::from_value(doc)?;
            let name = crd.name_any();
            crds.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .with_context(|| format!("the API server refused {}", file.display()))?;
            names.push(name);
        }
    }
    for name in &names {
        sluice_tests::wait_for_object(
            crds.clone(),
            name,
            Duration::from_secs(30),
            "CRD is Established",
            kube::runtime::wait::conditions::is_crd_established(),
        )
        .await?;
    }
    Ok(names)
}

/// `*.yaml` files of a directory of the repository, sorted.
fn yaml_files(dir: &str) -> Result<Vec<PathBuf>> {
    let dir = sluice_tests::repo_root().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    Ok(files)
}

/// The documents of a YAML file, as JSON.
fn documents(file: &PathBuf) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(file)?;
    sluice_crds::yaml::documents(&text).with_context(|| format!("{} is not YAML", file.display()))
}
