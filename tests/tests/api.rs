//! The real API server accepts Sluice's API exactly as documented: the generated CRDs install
//! and become Established, every manifest in `examples/` is accepted, and every manifest in
//! `tests/invalid/` is rejected with a message containing its `# expect:` line.
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
