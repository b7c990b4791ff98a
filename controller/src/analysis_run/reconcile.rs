//! The AnalysisRun reconcile: decode -> validate -> assess -> measure what is due -> assess ->
//! write the status once -> requeue when the next measurement is due.
//!
//! Everything is derived from the run's spec and persisted status (the analysis crate's
//! guarantee), so a reconcile is idempotent: a completed run is never measured again, and a
//! run whose next measurement is not due yet costs no request and no write. The clock is read
//! once per stage; the pure functions receive it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use sluice_analysis::{ValidatedAnalysis, assess, due_metrics, next_reconcile_at, record_in};
use sluice_crds::{AnalysisPhase, AnalysisRun, Measurement};

use super::events::{self, Transition};
use super::measure::{self, round_down};
use super::{Context, analysis_run_resource, status};

/// After a conflict, try again on fresh data soon (our own write usually just landed).
const CONFLICT_RETRY: Duration = Duration::from_millis(200);

/// Why a reconcile failed. `category()` feeds metric labels.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading a Secret: {0}")]
    Secret(#[source] kube::Error),
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Status(kube::Error::Api(e)) if e.code == 409 => "Conflict",
            Error::Secret(_) => "SecretReadError",
            Error::Status(_) => "ApiError",
        }
    }
}

/// Reconciles one AnalysisRun. See the module docs.
pub async fn reconcile(object: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let result = reconcile_object(&object, &ctx).await;
    if result.is_ok() {
        ctx.backoff.reset(&key(&object));
    }
    result
}

async fn reconcile_object(object: &DynamicObject, ctx: &Context) -> Result<Action, Error> {
    let run: AnalysisRun = match decode(object) {
        Ok(run) => run,
        Err(e) => return undecodable(ctx, object, &e).await,
    };
    let completed = run
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(AnalysisPhase::is_completed);
    if completed || run.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    match ValidatedAnalysis::from_run(&run.spec) {
        Ok(analysis) => measure_run(ctx, &run, &analysis).await,
        Err(e) => invalid_spec(ctx, &run, &e.to_string()).await,
    }
}

/// One round of a valid run that is not complete.
async fn measure_run(
    ctx: &Context,
    run: &AnalysisRun,
    analysis: &ValidatedAnalysis,
) -> Result<Action, Error> {
    let terminate = run.spec.terminate;
    let namespace = run.namespace().unwrap_or_default();
    let before = run.status.clone().unwrap_or_default();
    // Due-ness is decided on the real clock; what is stored is rounded to whole seconds,
    // as the API keeps them (see `measure`).
    let now = Utc::now();
    let mut next = assess(analysis, &before, terminate, round_down(now));
    let due = due_metrics(analysis, &next, terminate, now);
    let measurements = measure::measure_due(ctx, &namespace, run, &due, now)
        .await
        .map_err(Error::Secret)?;
    for (metric, m) in due.iter().zip(&measurements) {
        log_measurement(run, metric.name(), m);
        record_in(&mut next, metric, m.clone());
    }
    let next = assess(analysis, &next, terminate, round_down(Utc::now()));
    let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &namespace);
    if status::write(&api, run, &next)
        .await
        .map_err(Error::Status)?
    {
        measurements
            .iter()
            .for_each(|m| ctx.metrics.count_measurement(m.phase));
        publish(ctx, run, &events::transitions(&before, &next)).await;
    }
    let now = Utc::now();
    Ok(requeue(
        next_reconcile_at(analysis, &next, terminate, now),
        now,
    ))
}

/// Wakes the run exactly when its next measurement is due; a run with nothing left to measure
/// waits for a change (such as `terminate`).
fn requeue(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Action {
    match at {
        None => Action::await_change(),
        Some(at) => Action::requeue((at - now).to_std().unwrap_or(Duration::ZERO)),
    }
}

fn log_measurement(run: &AnalysisRun, metric: &str, m: &Measurement) {
    // Only status text is logged: it is masked (see `measure::mask`).
    tracing::debug!(
        run = %key_of(run),
        metric,
        phase = ?m.phase,
        value = m.value.as_deref().unwrap_or(""),
        message = m.message.as_deref().unwrap_or(""),
        "measured"
    );
}

/// A spec that cannot be measured: the run ends `Error` with every problem named.
async fn invalid_spec(ctx: &Context, run: &AnalysisRun, message: &str) -> Result<Action, Error> {
    let before = run.status.clone().unwrap_or_default();
    let next = status::invalid(&before, message, round_down(Utc::now()));
    let namespace = run.namespace().unwrap_or_default();
    let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &namespace);
    if status::write(&api, run, &next)
        .await
        .map_err(Error::Status)?
    {
        let invalid = Transition::InvalidSpec {
            message: message.to_owned(),
        };
        publish(ctx, run, &[invalid]).await;
    }
    Ok(Action::await_change())
}

/// An object that does not decode as an AnalysisRun: say so on the object itself.
async fn undecodable(
    ctx: &Context,
    object: &DynamicObject,
    error: &serde_json::Error,
) -> Result<Action, Error> {
    let message = format!("the AnalysisRun cannot be read: {error}");
    let resource = analysis_run_resource();
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &resource);
    if status::write_undecodable(&api, object, &message)
        .await
        .map_err(Error::Status)?
    {
        let event = events::event(&Transition::InvalidSpec { message });
        let reference = object.object_ref(&resource);
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }
    Ok(Action::await_change())
}

/// Events for what changed; a failed publish is logged, never fatal.
async fn publish(ctx: &Context, run: &AnalysisRun, transitions: &[Transition]) {
    let reference = run.object_ref(&());
    for t in transitions {
        if let Err(e) = ctx.recorder.publish(&events::event(t), &reference).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }
}

fn decode(object: &DynamicObject) -> Result<AnalysisRun, serde_json::Error> {
    serde_json::to_value(object).and_then(serde_json::from_value)
}

fn key(object: &DynamicObject) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

fn key_of(run: &AnalysisRun) -> String {
    format!("{}/{}", run.namespace().unwrap_or_default(), run.name_any())
}

/// Transient failures back off per run (1 s doubling to 60 s); a conflict retries soon on
/// fresh data. Nothing is recorded for the failed round, so no decision changes.
pub fn error_policy(object: Arc<DynamicObject>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key(&object);
    ctx.metrics.count_error(error.category());
    if error.category() == "Conflict" {
        tracing::debug!(run = %key, error = %error, "conflict; retrying on fresh data");
        return Action::requeue(CONFLICT_RETRY);
    }
    tracing::warn!(run = %key, category = error.category(), error = %error, "analysis run reconcile failed");
    Action::requeue(ctx.backoff.next(&key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_with_a_bad_field_does_not_decode_and_says_why() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "r", "namespace": "n"},
            "spec": {"metrics": [{"name": "m", "failureLimit": -7,
                      "provider": {"prometheus": {"address": "http://p", "query": "up"}}}]},
        }))
        .expect("dynamic object");
        let err = decode(&object).expect_err("limit out of range");
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn requeue_is_at_the_due_time_and_never_negative() {
        let now = Utc::now();
        let later = now + chrono::TimeDelta::milliseconds(1500);
        let earlier = now - chrono::TimeDelta::seconds(5);
        assert_eq!(
            requeue(Some(later), now),
            Action::requeue(Duration::from_millis(1500))
        );
        assert_eq!(requeue(Some(earlier), now), Action::requeue(Duration::ZERO));
        assert_eq!(requeue(None, now), Action::await_change());
    }
}
