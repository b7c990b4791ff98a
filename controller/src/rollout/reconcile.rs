//! The Rollout reconcile: observe -> validate -> plan -> apply -> status, one line per stage.
//!
//! Rollouts arrive as `DynamicObject`s and are decoded here, one at a time, so an object that
//! does not decode (stored before a schema change, or edited around validation) gets its own
//! `InvalidSpec` condition instead of breaking the watch for every other Rollout.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use futures::FutureExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;
use sluice_crds::Rollout;

use super::apply::{self, ApplyError};
use super::observe::{self, ObserveError, ServiceNames};
use super::plan::{Plan, plan};
use super::validate::{Validated, validate};
use super::{events, finalizer, status};
use crate::FIELD_MANAGER;
use crate::context::Context;
use crate::traffic::TrafficError;
use crate::traffic::istio::IstioRouter;

/// How long an idle Rollout waits before a fresh look (drift of the VirtualService by others).
const RESYNC: Duration = Duration::from_secs(300);
/// After writes, look again soon: Service selectors and mesh weights are not watched.
const AFTER_WRITES: Duration = Duration::from_millis(500);
/// While the ReplicaSet cache is still listing (just after start), look again after this.
const CACHE_NOT_READY: Duration = Duration::from_millis(200);
/// While the Rollout cache has not yet seen this controller's last status write (the watch
/// event that follows it triggers a reconcile anyway; this is the fallback).
const CACHE_BEHIND_OWN_WRITE: Duration = Duration::from_millis(100);

/// Why a reconcile failed. `category()` feeds metric labels and event reasons.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
    #[error("adding the finalizer: {0}")]
    Finalizer(#[source] kube::Error),
    #[error(transparent)]
    Finalize(#[from] finalizer::FinalizeError),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Observe(e) => e.category(),
            Error::Apply(e) => e.category(),
            Error::Status(kube::Error::Api(e)) if e.code == 409 => "Conflict",
            // A failed `test` op of the finalizer patch answers 422: someone else changed the list.
            Error::Finalizer(kube::Error::Api(e)) if e.code == 409 || e.code == 422 => "Conflict",
            Error::Status(_) | Error::Finalizer(_) => "ApiError",
            Error::Finalize(finalizer::FinalizeError::Traffic(e)) => e.category(),
            Error::Finalize(finalizer::FinalizeError::Api(kube::Error::Api(e)))
                if e.code == 409 || e.code == 422 =>
            {
                "Conflict"
            }
            Error::Finalize(finalizer::FinalizeError::Api(_)) => "ApiError",
        }
    }
}

/// Reconciles one Rollout. See the module docs.
pub async fn reconcile(object: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let result = reconcile_object(&object, &ctx).await;
    if result.is_ok() {
        ctx.backoff.reset(&backoff_key(&object));
    }
    result
}

fn backoff_key(object: &DynamicObject) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

async fn reconcile_object(object: &DynamicObject, ctx: &Context) -> Result<Action, Error> {
    // Status times are stored with second precision; planning on whole seconds keeps an idle
    // Rollout's computed status identical to the stored one.
    let now = Utc::now().trunc_subsecs(0);
    let rollout = match decode(object) {
        Ok(r) => r,
        Err(e) => return undecodable(ctx, object, &e, now).await,
    };
    let api: Api<Rollout> =
        Api::namespaced(ctx.client.clone(), &rollout.namespace().unwrap_or_default());
    let key = backoff_key(object);
    if rollout.metadata.deletion_timestamp.is_some() {
        finalizer::finalize(&ctx.client, &api, &rollout).await?;
        ctx.superseded.forget(&key);
        return Ok(Action::await_change());
    }
    if ctx
        .superseded
        .is_stale(&key, &rollout.resource_version().unwrap_or_default())
    {
        return Ok(Action::requeue(CACHE_BEHIND_OWN_WRITE));
    }
    finalizer::ensure(&api, &rollout)
        .await
        .map_err(Error::Finalizer)?;
    let v = match validate(&rollout) {
        Ok(v) => v,
        Err(e) => return invalid_spec(ctx, &api, &rollout, &e.to_string(), now).await,
    };
    let router = v
        .istio
        .clone()
        .map(|c| IstioRouter::new(ctx.client.clone(), c));
    match pipeline(ctx, &api, &rollout, &v, router.as_ref(), now).await {
        Err(e) if is_invalid_reference(&e) => {
            invalid_spec(ctx, &api, &rollout, &e.to_string(), now).await
        }
        other => other,
    }
}

async fn pipeline(
    ctx: &Context,
    api: &Api<Rollout>,
    rollout: &Rollout,
    v: &Validated,
    router: Option<&IstioRouter>,
    now: DateTime<Utc>,
) -> Result<Action, Error> {
    // A controller that just started can see a Rollout before its ReplicaSet cache has listed
    // anything. Planning on that empty cache takes a release in flight for a first deploy and
    // skips its remaining steps; so nothing is planned until the cache is complete.
    if ctx.replica_sets.wait_until_ready().now_or_never().is_none() {
        return Ok(Action::requeue(CACHE_NOT_READY));
    }
    let observed = observe_rollout(ctx, rollout, v, router).await?;
    let plan = plan(&v.model, &observed, now);
    let target = apply_target(ctx, rollout, v, &plan);
    apply::apply(&target, router, &plan.intents).await?;
    let next = status::render(&plan.status, v);
    let written = status::write(api, rollout, next)
        .await
        .map_err(Error::Status)?;
    if written {
        // Until the cache shows the write, this version of the Rollout is out of date.
        ctx.superseded.record(
            &format!("{}/{}", v.owner.namespace, v.owner.name),
            &rollout.resource_version().unwrap_or_default(),
        );
    }
    publish(ctx, rollout, &plan).await;
    ctx.metrics.count_writes(plan.intents.len());
    Ok(next_action(&plan))
}

async fn observe_rollout(
    ctx: &Context,
    rollout: &Rollout,
    v: &Validated,
    router: Option<&IstioRouter>,
) -> Result<super::model::Observed, ObserveError> {
    let ns = &v.owner.namespace;
    let replica_sets = observe::owned_replica_sets(&ctx.replica_sets, ns, &v.owner.uid);
    // A subset-level split moves DestinationRule subsets, not Service selectors.
    let host_level = v
        .istio
        .as_ref()
        .is_none_or(|i| i.destination_rule.is_none());
    let services = ServiceNames {
        canary: v.canary_service.as_deref().filter(|_| host_level),
        stable: v.stable_service.as_deref().filter(|_| host_level),
    };
    let persisted = status::persisted(rollout.status.as_ref());
    let runs = observe::owned_analysis_runs(&ctx.analysis_runs, ns, &v.owner.uid);
    observe::observe(
        &ctx.client,
        ns,
        replica_sets,
        services,
        router,
        persisted,
        runs,
    )
    .await
}

fn apply_target<'a>(
    ctx: &Context,
    rollout: &'a Rollout,
    v: &'a Validated,
    plan: &'a Plan,
) -> apply::Target<'a> {
    apply::Target {
        client: ctx.client.clone(),
        rollout,
        stable_hash: plan.status.stable_hash.as_deref(),
        owner: &v.owner,
        selector: &v.selector,
        template: &v.template,
        min_ready_seconds: v.model.min_ready_seconds,
    }
}

fn next_action(plan: &Plan) -> Action {
    if !plan.intents.is_empty() {
        return Action::requeue(AFTER_WRITES);
    }
    Action::requeue(plan.requeue_after.unwrap_or(RESYNC).min(RESYNC))
}

fn is_invalid_reference(e: &Error) -> bool {
    match e {
        Error::Observe(o) => o.is_invalid_reference(),
        Error::Apply(ApplyError::Traffic(TrafficError::InvalidReference(_))) => true,
        _ => false,
    }
}

/// Events for the planner's transitions; a failed publish is logged, never fatal.
async fn publish(ctx: &Context, rollout: &Rollout, plan: &Plan) {
    let reference = rollout.object_ref(&());
    for t in &plan.transitions {
        if let Err(e) = ctx.recorder.publish(&events::event(t), &reference).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }
}

fn decode(object: &DynamicObject) -> Result<Rollout, serde_json::Error> {
    serde_json::to_value(object).and_then(serde_json::from_value)
}

/// Spec problems: condition `InvalidSpec`, a Warning event, and no change to traffic or pods.
/// The Rollout waits for its next change (no requeue).
async fn invalid_spec(
    ctx: &Context,
    api: &Api<Rollout>,
    rollout: &Rollout,
    message: &str,
    now: DateTime<Utc>,
) -> Result<Action, Error> {
    let next = status::invalid(
        rollout.status.as_ref(),
        message,
        rollout.metadata.generation,
        now,
    );
    let changed = status::write(api, rollout, next)
        .await
        .map_err(Error::Status)?;
    if changed {
        warn(ctx, &rollout.object_ref(&()), "InvalidSpec", message).await;
    }
    ctx.metrics.count_invalid();
    Ok(Action::requeue(RESYNC))
}

/// An object that does not decode as a Rollout: say so on the object itself, touch nothing else.
async fn undecodable(
    ctx: &Context,
    object: &DynamicObject,
    error: &serde_json::Error,
    now: DateTime<Utc>,
) -> Result<Action, Error> {
    let message = format!("the Rollout cannot be read: {error}");
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let patch = json!({
        "apiVersion": sluice_crds::API_VERSION, "kind": "Rollout",
        "metadata": {"name": object.name_any()},
        "status": {"phase": "Degraded", "message": message, "conditions": [{
            "type": "InvalidSpec", "status": "True", "reason": "InvalidSpec", "message": message,
            "lastUpdateTime": stamp, "lastTransitionTime": stamp,
        }]},
    });
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &object.namespace().unwrap_or_default(),
        &crate::context::rollout_resource(),
    );
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&object.name_any(), &pp, &Patch::Apply(&patch))
        .await
        .map_err(Error::Status)?;
    warn(
        ctx,
        &object.object_ref(&crate::context::rollout_resource()),
        "InvalidSpec",
        &message,
    )
    .await;
    ctx.metrics.count_invalid();
    Ok(Action::await_change())
}

async fn warn(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, reference).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

/// Transient failures back off per object (1 s doubling to 60 s); a conflict retries at once
/// on fresh data. Nothing here changes a decision: the next reconcile re-plans from scratch.
pub fn error_policy(object: Arc<DynamicObject>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = backoff_key(&object);
    ctx.metrics.count_error(error.category());
    if error.category() == "Conflict" {
        // Expected when the cache lags our own last write; not worth a warning.
        tracing::debug!(rollout = %key, error = %error, "conflict; retrying on fresh data");
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(rollout = %key, category = error.category(), error = %error, "reconcile failed");
    Action::requeue(ctx.backoff.next(&key))
}

/// Recorder for the controller's events.
pub fn recorder(client: kube::Client) -> Recorder {
    let reporter = kube::runtime::events::Reporter {
        controller: "sluice".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    Recorder::new(client, reporter)
}
