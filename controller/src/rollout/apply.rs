//! The apply stage: runs the planner's intents in order against the API server.
//!
//! Guarantees:
//! - Intents run in the order the planner gave and the stage stops at the first failure, so a
//!   scale-down never runs when the traffic move before it failed.
//! - Every write is idempotent: re-running a plan after a crash converges to the same state
//!   (creating an existing ReplicaSet is not an error; patches set absolute values).
//! - Writes use the field manager `sluice`.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::analysis::{AnalysisError, RunRequest};
use super::plan::{Intent, RunKind};
use crate::FIELD_MANAGER;
use crate::replicaset::{self, HASH_LABEL, Owner, REVISION_ANNOTATION, SCALE_DOWN_ANNOTATION};
use crate::traffic::{TrafficError, TrafficRouter};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// What the apply stage writes against: the Rollout's identity and its pod template.
pub struct Target<'a> {
    pub client: kube::Client,
    /// The Rollout as read (analysis templates and args are taken from its spec).
    pub rollout: &'a sluice_crds::Rollout,
    /// The stable hash the plan decided on (for `podTemplateHashValue: Stable`).
    pub stable_hash: Option<&'a str>,
    pub owner: &'a Owner,
    pub selector: &'a LabelSelector,
    pub template: &'a PodTemplateSpec,
    pub min_ready_seconds: i32,
}

/// Why an intent failed. `category()` is bounded, for metric labels and event reasons.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{action} failed: {source}")]
    Kube { action: String, source: kube::Error },
    #[error("traffic update failed: {0}")]
    Traffic(#[from] TrafficError),
    #[error("the plan moves traffic but the Rollout has no traffic router")]
    NoRouter,
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
}

impl ApplyError {
    pub fn category(&self) -> &'static str {
        match self {
            ApplyError::Kube { .. } => "ApiError",
            ApplyError::Traffic(e) => e.category(),
            ApplyError::NoRouter => "NoRouter",
            ApplyError::Analysis(AnalysisError::Invalid(_)) => "InvalidReference",
            ApplyError::Analysis(AnalysisError::Api { .. }) => "ApiError",
        }
    }
}

/// Runs `intents` in order; returns how many ran before the first failure, or the failure.
pub async fn apply<R: TrafficRouter>(
    target: &Target<'_>,
    router: Option<&R>,
    intents: &[Intent],
) -> Result<usize, ApplyError> {
    for intent in intents {
        run(target, router, intent).await?;
    }
    Ok(intents.len())
}

async fn run<R: TrafficRouter>(
    t: &Target<'_>,
    router: Option<&R>,
    intent: &Intent,
) -> Result<(), ApplyError> {
    let ns = &t.owner.namespace;
    let replica_sets: Api<ReplicaSet> = Api::namespaced(t.client.clone(), ns);
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let kube = |action: String| move |source| ApplyError::Kube { action, source };
    match intent {
        Intent::CreateReplicaSet {
            hash,
            replicas,
            revision,
        } => create_replica_set(t, &replica_sets, hash, *replicas, *revision).await,
        Intent::ScaleReplicaSet { name, replicas } => {
            let patch = json!({"spec": {"replicas": replicas}});
            let res = replica_sets.patch(name, &pp, &Patch::Merge(&patch)).await;
            res.map(drop)
                .map_err(kube(format!("scaling ReplicaSet {name} to {replicas}")))
        }
        Intent::SetRevision { name, revision } => {
            let patch =
                json!({"metadata": {"annotations": {REVISION_ANNOTATION: revision.to_string()}}});
            let res = replica_sets.patch(name, &pp, &Patch::Merge(&patch)).await;
            res.map(drop)
                .map_err(kube(format!("setting the revision of ReplicaSet {name}")))
        }
        Intent::SetScaleDownDeadline { name, at } => {
            let value = at.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            let patch = json!({"metadata": {"annotations": {SCALE_DOWN_ANNOTATION: value}}});
            let res = replica_sets.patch(name, &pp, &Patch::Merge(&patch)).await;
            res.map(drop)
                .map_err(kube(format!("annotating ReplicaSet {name}")))
        }
        Intent::PointService { service, hash } => {
            let services: Api<Service> = Api::namespaced(t.client.clone(), ns);
            // A merge patch of one selector key keeps every other key the user wrote.
            let patch = json!({"spec": {"selector": {HASH_LABEL: hash}}});
            let res = services.patch(service, &pp, &Patch::Merge(&patch)).await;
            res.map(drop)
                .map_err(kube(format!("pointing Service {service} at {hash}")))
        }
        Intent::SetTraffic(desired) => {
            let router = router.ok_or(ApplyError::NoRouter)?;
            router.apply(desired).await.map_err(ApplyError::from)
        }
        Intent::CreateAnalysisRun { name, kind } => create_analysis_run(t, name, *kind).await,
        Intent::TerminateAnalysisRun { name } => {
            let runs: Api<sluice_crds::AnalysisRun> = Api::namespaced(t.client.clone(), ns);
            let patch = json!({"spec": {"terminate": true}});
            match runs.patch(name, &pp, &Patch::Merge(&patch)).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(kube(format!("terminating AnalysisRun {name}"))(e)),
            }
        }
        Intent::DeleteReplicaSet { name } => {
            let res = replica_sets.delete(name, &DeleteParams::background()).await;
            match res {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(kube(format!("deleting ReplicaSet {name}"))(e)),
            }
        }
    }
}

async fn create_replica_set(
    t: &Target<'_>,
    api: &Api<ReplicaSet>,
    hash: &str,
    replicas: i32,
    revision: i64,
) -> Result<(), ApplyError> {
    let rs = replicaset::build(&replicaset::Revision {
        owner: t.owner,
        selector: t.selector,
        template: t.template,
        min_ready_seconds: t.min_ready_seconds,
        hash,
        replicas,
        revision,
    });
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&pp, &rs).await {
        Ok(_) => Ok(()),
        // Created by an earlier reconcile whose cache had not caught up: idempotent.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(source) => Err(ApplyError::Kube {
            action: format!("creating ReplicaSet for {hash}"),
            source,
        }),
    }
}

async fn create_analysis_run(t: &Target<'_>, name: &str, kind: RunKind) -> Result<(), ApplyError> {
    let analysis = analysis_spec(t.rollout, kind).ok_or_else(|| {
        AnalysisError::Invalid(format!("the Rollout has no analysis for {kind:?}"))
    })?;
    let request = RunRequest {
        name,
        kind,
        analysis,
        rollout: t.rollout,
        owner: t.owner,
        stable_hash: t.stable_hash,
        latest_hash: &crate::replicaset::template_hash(t.template),
    };
    super::analysis::create_run(&t.client, &request)
        .await
        .map_err(ApplyError::from)
}

/// The analysis a run of `kind` is made from, in the Rollout's spec.
fn analysis_spec(
    rollout: &sluice_crds::Rollout,
    kind: RunKind,
) -> Option<&sluice_crds::RolloutAnalysis> {
    match (&rollout.spec.strategy, kind) {
        (sluice_crds::Strategy::Canary(canary), RunKind::Step(i)) => match canary.steps.get(i)? {
            sluice_crds::CanaryStep::Analysis(a) => Some(a),
            _ => None,
        },
        (sluice_crds::Strategy::Canary(canary), RunKind::Background) => {
            canary.analysis.as_ref().map(|b| &b.analysis)
        }
        (sluice_crds::Strategy::BlueGreen(bg), RunKind::PrePromotion) => {
            bg.pre_promotion_analysis.as_ref()
        }
        (sluice_crds::Strategy::BlueGreen(bg), RunKind::PostPromotion) => {
            bg.post_promotion_analysis.as_ref()
        }
        _ => None,
    }
}
