//! Harness for the AnalysisRun scenarios: runs written in Argo's JSON shape, a namespace with
//! its own in-process controller, waits on a run's status by watching it, and the runs and
//! events printed when a scenario fails.
//!
//! Guarantees: every wait watches (no polling for a condition); a failing scenario prints the
//! state of its namespace before its namespace is deleted.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use sluice_crds::{AnalysisPhase, AnalysisRun, Measurement, MetricResult};

use crate::controller::InProcessController;
use crate::{client, prometheus_url, with_namespace};

/// Long enough for a few 1 s measurements on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(60);

/// One scenario: a namespace, its controller, and the runs in it.
pub struct AnalysisScenario {
    pub client: kube::Client,
    pub ns: String,
    pub controller: InProcessController,
    pub runs: Api<AnalysisRun>,
    /// The local Prometheus, e.g. `http://127.0.0.1:19090`.
    pub prometheus: String,
}

/// Runs `body` in a fresh namespace `<prefix>*` with an AnalysisRun controller for it.
pub async fn run(
    prefix: &str,
    body: impl AsyncFnOnce(&mut AnalysisScenario) -> Result<()>,
) -> Result<()> {
    let client = client().await?;
    let prometheus = prometheus_url()?;
    let namespaces = client.clone();
    with_namespace(&namespaces, prefix, move |ns| async move {
        let mut s = AnalysisScenario {
            controller: InProcessController::start(&client, &ns),
            runs: Api::namespaced(client.clone(), &ns),
            client: client.clone(),
            ns: ns.clone(),
            prometheus,
        };
        let outcome = body(&mut s).await;
        let stopped = s.controller.stop().await;
        if outcome.is_err() || stopped.is_err() {
            eprintln!("{}", s.dump().await);
        }
        outcome.and(stopped)
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Manifests.

/// A Prometheus metric in Argo's shape; add or override fields with [`with`].
pub fn metric(name: &str, address: &str, query: &str, success_condition: &str) -> Value {
    json!({
        "name": name,
        "successCondition": success_condition,
        "provider": {"prometheus": {"address": address, "query": query}},
    })
}

/// `base` with the top-level fields of `extra` set (shallow merge).
pub fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// An AnalysisRun named `name` with `metrics` and `args`.
pub fn analysis_run(name: &str, metrics: Vec<Value>, args: Vec<Value>) -> Result<AnalysisRun> {
    serde_json::from_value(json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {"metrics": metrics, "args": args},
    }))
    .context("the AnalysisRun fixture does not decode")
}

/// A Secret with one key.
pub fn secret(name: &str, key: &str, value: &str) -> Result<Secret> {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {key: value},
    }))
    .context("the Secret fixture does not decode")
}

// ---------------------------------------------------------------------------------------------
// Actions and waits.

impl AnalysisScenario {
    pub async fn create(&self, run: &AnalysisRun) -> Result<AnalysisRun> {
        self.runs
            .create(&PostParams::default(), run)
            .await
            .with_context(|| format!("creating AnalysisRun {:?}", run.metadata.name))
    }

    pub async fn create_secret(&self, secret: &Secret) -> Result<()> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        api.create(&PostParams::default(), secret).await?;
        Ok(())
    }

    /// Sets `spec.terminate: true`, as the Rollout does when it no longer needs the result.
    pub async fn terminate(&self, name: &str) -> Result<()> {
        let patch = json!({"spec": {"terminate": true}});
        self.runs
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Waits (watching) until the run `name` satisfies `cond`.
    pub async fn wait(
        &self,
        name: &str,
        what: &str,
        cond: impl Fn(&AnalysisRun) -> bool,
    ) -> Result<AnalysisRun> {
        let condition = move |o: Option<&AnalysisRun>| o.is_some_and(&cond);
        crate::wait_for_object(self.runs.clone(), name, WAIT, what, condition).await
    }

    /// Waits until the run `name` reached a final phase.
    pub async fn wait_completed(&self, name: &str) -> Result<AnalysisRun> {
        self.wait(name, "run completed", |r| {
            phase(r).is_some_and(AnalysisPhase::is_completed)
        })
        .await
    }

    /// Waits (watching) for an event with `reason` about the run `name`.
    pub async fn wait_event(&self, name: &str, reason: &str) -> Result<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let config = watcher::Config::default().fields(&format!("reason={reason}"));
        let about = |e: &Event| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name);
        let what = format!("a {reason} event about {name}");
        crate::wait_for_event(api, config, WAIT, &what, about).await
    }

    /// Every event in the namespace, as JSON text (to check nothing leaks into them).
    pub async fn events_text(&self) -> Result<String> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let list = api.list(&ListParams::default()).await?;
        Ok(serde_json::to_string(&list.items)?)
    }

    /// The runs (as YAML-ish JSON) and the namespace's state, for a failed scenario.
    pub async fn dump(&self) -> String {
        let mut out = format!("===== AnalysisRuns in {} =====\n", self.ns);
        match self.runs.list(&ListParams::default()).await {
            Ok(list) => {
                for run in list.items {
                    out.push_str(&serde_json::to_string_pretty(&run).unwrap_or_default());
                    out.push('\n');
                }
            }
            Err(e) => out.push_str(&format!("cannot list AnalysisRuns: {e}\n")),
        }
        out.push_str(&crate::dump::namespace(&self.client, &self.ns).await);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a run.

pub fn phase(run: &AnalysisRun) -> Option<AnalysisPhase> {
    run.status.as_ref().and_then(|s| s.phase)
}

pub fn message(run: &AnalysisRun) -> &str {
    run.status
        .as_ref()
        .and_then(|s| s.message.as_deref())
        .unwrap_or("")
}

pub fn result<'a>(run: &'a AnalysisRun, metric: &str) -> Option<&'a MetricResult> {
    run.status
        .as_ref()?
        .metric_results
        .iter()
        .find(|r| r.name == metric)
}

pub fn measurements<'a>(run: &'a AnalysisRun, metric: &str) -> &'a [Measurement] {
    result(run, metric).map_or(&[], |r| r.measurements.as_slice())
}

pub fn resolved_query(m: &Measurement) -> Option<&str> {
    m.metadata.get("resolvedQuery").map(String::as_str)
}
