//! One scenario (canary, or blue-green through [`run_with`]): a fresh namespace with the mesh
//! objects or Services, the invariant monitor and an in-process controller, the user's actions
//! (change the template, promote, abort, retry), and waits on the Rollout's status through
//! watches.
//!
//! Guarantees of [`run`]:
//! - the monitor watches from before the Rollout exists until the scenario's body ends, and the
//!   scenario fails if it found any violation; its counts are printed either way;
//! - on any failure the namespace's state is printed before the namespace is deleted;
//! - the controller is stopped before the namespace goes, so it never reconciles a dying one.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use sluice_controller::traffic::istio::{destination_rule_resource, virtual_service_resource};
use sluice_crds::{
    Condition, ConditionStatus, ConditionType, Rollout, RolloutPhase, RolloutStatus,
};

use crate::controller::InProcessController;
use crate::fixtures::{self, HASH_LABEL, ROLLOUT, RolloutBuilder, Split, StrategyFixture};
use crate::monitor::{Monitor, Report};
use crate::{client, dump, wait_for_event, wait_for_object, with_namespace};

/// How long one wait on the Rollout may take.
pub const WAIT: Duration = Duration::from_secs(90);

/// A running scenario. See the module docs.
pub struct Scenario {
    pub client: kube::Client,
    pub ns: String,
    pub controller: InProcessController,
    monitor: Option<Monitor>,
    pub rollouts: Api<Rollout>,
}

/// Runs `body` as a scenario in a fresh namespace `<prefix>*` with the mesh objects of `split`.
/// Returns the monitor's final report (already checked for violations).
pub async fn run(
    prefix: &str,
    split: Split,
    body: impl AsyncFnOnce(&mut Scenario) -> Result<()>,
) -> Result<Report> {
    let setup = async move |client: kube::Client, ns: String| {
        fixtures::create_mesh(&client, &ns, split).await
    };
    run_with(prefix, setup, body).await
}

/// Runs `body` as a scenario in a fresh namespace `<prefix>*` after `setup(client, namespace)`
/// has created what the Rollout needs (its Services, mesh objects), with the guarantees of
/// [`run`].
pub async fn run_with(
    prefix: &str,
    setup: impl AsyncFnOnce(kube::Client, String) -> Result<()>,
    body: impl AsyncFnOnce(&mut Scenario) -> Result<()>,
) -> Result<Report> {
    let client = client().await?;
    let prefix = prefix.to_owned();
    let namespaces = client.clone();
    with_namespace(&namespaces, &prefix.clone(), move |ns| async move {
        setup(client.clone(), ns.clone()).await?;
        let monitor = Monitor::start(&client, &ns).await?;
        let controller = InProcessController::start(&client, &ns);
        let mut s = Scenario {
            rollouts: Api::namespaced(client.clone(), &ns),
            client: client.clone(),
            ns: ns.clone(),
            controller,
            monitor: Some(monitor),
        };
        let outcome = body(&mut s).await;
        let report = match s.monitor.take() {
            Some(monitor) => monitor.finish().await,
            None => bail!("the monitor was already finished"),
        };
        if outcome.is_err() {
            dump::print(&client, &ns).await;
        }
        let torn_down = s.tear_down().await;
        let checked = check(&prefix, &ns, outcome, torn_down, report);
        if checked.is_err() {
            dump::print(&client, &ns).await;
        }
        checked
    })
    .await
}

fn check(
    prefix: &str,
    ns: &str,
    outcome: Result<()>,
    torn_down: Result<()>,
    report: Result<Report>,
) -> Result<Report> {
    if let Ok(report) = &report {
        let failed = outcome.is_err() || torn_down.is_err() || !report.violations.is_empty();
        if failed || std::env::var_os("SLUICE_TEST_TIMELINE").is_some() {
            eprintln!("[{prefix}] {ns}: timeline\n{}", report.timeline());
        }
        eprintln!("[{prefix}] {ns}: {}", report.summary());
        for v in &report.violations {
            eprintln!("[{prefix}] {ns}: VIOLATION {v}");
        }
    }
    outcome?;
    torn_down.context("tearing the scenario down")?;
    let report = report?;
    if !report.violations.is_empty() {
        let list: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
        bail!(
            "the invariant monitor found {} violations:\n{}",
            list.len(),
            list.join("\n")
        );
    }
    Ok(report)
}

impl Scenario {
    /// Deletes the Rollout while a controller runs, so its finalizer (traffic back to stable)
    /// completes and the namespace can go; then stops the controller. If the finalizer is not
    /// removed in time, removes it by hand (so the namespace still goes) and fails.
    async fn tear_down(&mut self) -> Result<()> {
        self.controller.resume();
        let deleted = self.delete_rollout().await;
        let stopped = self.controller.stop().await;
        if deleted.is_err() {
            let patch = json!({ "metadata": { "finalizers": null } });
            let _ = self
                .rollouts
                .patch(ROLLOUT, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        }
        deleted.and(stopped)
    }

    async fn delete_rollout(&self) -> Result<()> {
        let Some(existing) = self.rollouts.get_opt(ROLLOUT).await? else {
            return Ok(());
        };
        let uid = existing.uid().unwrap_or_default();
        self.rollouts
            .delete(ROLLOUT, &Default::default())
            .await
            .context("deleting the Rollout")?;
        let gone = kube::runtime::wait::await_condition(
            self.rollouts.clone(),
            ROLLOUT,
            kube::runtime::wait::conditions::is_deleted(&uid),
        );
        match tokio::time::timeout(Duration::from_secs(30), gone).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e).context("watching the Rollout's deletion"),
            Err(_) => bail!("the controller did not finalize the deleted Rollout within 30 s"),
        }
    }

    /// The monitor's report so far (the monitor keeps running).
    pub async fn report(&self) -> Result<Report> {
        match &self.monitor {
            Some(m) => m.report().await,
            None => bail!("the monitor was already finished"),
        }
    }

    /// Creates the Rollout and waits until its first version is released (Healthy, stable).
    /// Returns the stable pod-template hash.
    pub async fn deploy<S: StrategyFixture>(&self, rollout: &RolloutBuilder<S>) -> Result<String> {
        self.deploy_until(rollout, |_| true).await
    }

    /// Like [`Scenario::deploy`], for a strategy whose first release also needs `done` to hold
    /// (blue-green: the active Service is on it).
    pub async fn deploy_until<S: StrategyFixture>(
        &self,
        rollout: &RolloutBuilder<S>,
        done: impl Fn(&Rollout) -> bool + Send + 'static,
    ) -> Result<String> {
        rollout.create(&self.client, &self.ns).await?;
        let r = self
            .wait("the first version is released", move |r| {
                observed(r)
                    && phase(r) == Some(RolloutPhase::Healthy)
                    && stable(r).is_some()
                    && done(r)
            })
            .await?;
        stable(&r).context("a released Rollout names its stable version")
    }

    /// Changes the template to `version`; returns the new pod-template hash once the controller
    /// has seen the change.
    pub async fn set_version(&self, version: &str) -> Result<String> {
        Ok(self.patch_spec(fixtures::version_patch(version)).await?.0)
    }

    /// Merge-patches the Rollout's spec; returns the new hash once the controller saw it, and
    /// the resourceVersion of the patch (to look at what happened after it).
    pub async fn patch_spec(&self, patch: Value) -> Result<(String, u64)> {
        let patched = self
            .rollouts
            .patch(ROLLOUT, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .context("patching the Rollout spec")?;
        let rv = rv_of(&patched)?;
        let generation = patched.metadata.generation;
        let r = self
            .wait("the controller sees the new template", move |r| {
                r.status.as_ref().and_then(|s| s.observed_generation) >= generation
            })
            .await?;
        let hash = current_hash(&r).context("the status names the current template")?;
        Ok((hash, rv))
    }

    /// Writes the user's request into `status` (what `kubectl sluice promote/abort/retry` do).
    /// Returns the resourceVersion of the write, to count what happens after it.
    pub async fn patch_status(&self, patch: Value) -> Result<u64> {
        let patched = self
            .rollouts
            .patch_status(
                ROLLOUT,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": patch })),
            )
            .await
            .context("patching the Rollout status")?;
        rv_of(&patched)
    }

    /// Promotes one step: removes the pause conditions while `controllerPause` is set.
    pub async fn promote(&self) -> Result<u64> {
        self.patch_status(json!({ "pauseConditions": null })).await
    }

    /// Skips the remaining steps.
    pub async fn promote_full(&self) -> Result<u64> {
        self.patch_status(json!({ "promoteFull": true })).await
    }

    pub async fn abort(&self) -> Result<u64> {
        self.patch_status(json!({ "abort": true })).await
    }

    /// Clears an abort: the release starts again from the first step.
    pub async fn retry(&self) -> Result<u64> {
        self.patch_status(json!({ "abort": false })).await
    }

    /// Waits (by watching) until `cond` holds for the Rollout.
    pub async fn wait(
        &self,
        what: &str,
        cond: impl Fn(&Rollout) -> bool + Send + 'static,
    ) -> Result<Rollout> {
        self.wait_for(ROLLOUT, what, cond).await
    }

    /// Waits (by watching) until `cond` holds for the object `name` of this namespace.
    pub async fn wait_for<K>(
        &self,
        name: &str,
        what: &str,
        cond: impl Fn(&K) -> bool + Send + 'static,
    ) -> Result<K>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + std::fmt::Debug + Send + 'static,
        K: serde::de::DeserializeOwned,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.ns);
        let cond = move |o: Option<&K>| o.is_some_and(&cond);
        // On the heap: a watch's future is large, and scenario helpers nest waits several
        // levels deep; inline, their futures overflow a test thread's stack in debug builds.
        Box::pin(wait_for_object(api, name, WAIT, what, cond)).await
    }

    /// Waits until the Rollout is paused at step `index` with the canary weight `weight`
    /// verified.
    pub async fn wait_paused_at(&self, index: i32, weight: i32) -> Result<Rollout> {
        let what = format!("paused at step {index} with canary weight {weight} verified");
        self.wait(&what, move |r| {
            step(r) == Some(index) && paused(r) && verified_weight(r) == Some(weight)
        })
        .await
    }

    /// Waits until `hash` is released: Healthy, stable and current.
    pub async fn wait_released(&self, hash: &str) -> Result<Rollout> {
        let hash = hash.to_owned();
        let what = format!("{hash} is released (Healthy, stableRS)");
        self.wait(&what, move |r| {
            observed(r)
                && phase(r) == Some(RolloutPhase::Healthy)
                && stable(r).as_deref() == Some(hash.as_str())
                && current_hash(r).as_deref() == Some(hash.as_str())
        })
        .await
    }

    /// Waits until the ReplicaSet of `hash` has `spec.replicas == replicas`.
    pub async fn wait_replica_set(&self, hash: &str, replicas: i32) -> Result<ReplicaSet> {
        let what = format!("ReplicaSet of {hash} has spec.replicas {replicas}");
        self.wait_replica_set_where(hash, &what, move |rs| {
            rs.spec.as_ref().and_then(|s| s.replicas) == Some(replicas)
        })
        .await
    }

    /// Waits until `cond` holds for the ReplicaSet of `hash`.
    pub async fn wait_replica_set_where(
        &self,
        hash: &str,
        what: &str,
        cond: impl Fn(&ReplicaSet) -> bool + Send + 'static,
    ) -> Result<ReplicaSet> {
        self.wait_for(&format!("{ROLLOUT}-{hash}"), what, cond)
            .await
    }

    /// `spec.replicas` and `status.availableReplicas` of each ReplicaSet, by hash.
    pub async fn replica_sets(&self) -> Result<BTreeMap<String, (i32, i32)>> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &self.ns);
        let list = api.list(&ListParams::default().labels(HASH_LABEL)).await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|rs| {
                let hash = rs.labels().get(HASH_LABEL)?.clone();
                let replicas = rs.spec.as_ref()?.replicas.unwrap_or(1);
                let available = rs.status.as_ref()?.available_replicas.unwrap_or(0);
                Some((hash, (replicas, available)))
            })
            .collect())
    }

    /// The pod-template hash in a Service's selector.
    pub async fn service_hash(&self, name: &str) -> Result<Option<String>> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &self.ns);
        let service = api.get(name).await?;
        Ok(service
            .spec
            .and_then(|s| s.selector)
            .and_then(|mut s| s.remove(HASH_LABEL)))
    }

    /// The VirtualService as stored.
    pub async fn virtual_service(&self) -> Result<Value> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.ns, &virtual_service_resource());
        let vs = api.get(fixtures::VIRTUAL_SERVICE).await?;
        Ok(serde_json::to_value(vs)?)
    }

    /// The pod-template hashes the DestinationRule's `(stable, canary)` subsets select.
    pub async fn subset_hashes(&self) -> Result<(Option<String>, Option<String>)> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.ns, &destination_rule_resource());
        let dr = api.get(fixtures::DESTINATION_RULE).await?;
        let subsets = dr.data.pointer("/spec/subsets").and_then(Value::as_array);
        let hash = |name: &str| {
            subsets
                .into_iter()
                .flatten()
                .find(|s| s.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|s| s.pointer("/labels")?.get(HASH_LABEL)?.as_str())
                .map(str::to_owned)
        };
        Ok((hash(fixtures::STABLE_SUBSET), hash(fixtures::CANARY_SUBSET)))
    }

    /// Creates another VirtualService (a scenario with several).
    pub async fn create_virtual_service(&self, manifest: Value) -> Result<()> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.ns, &virtual_service_resource());
        let object: DynamicObject = serde_json::from_value(manifest)?;
        api.create(&Default::default(), &object)
            .await
            .context("creating a VirtualService")?;
        Ok(())
    }

    /// Replaces the VirtualService with `manifest` (the user edits their own object).
    pub async fn replace_virtual_service(&self, mut manifest: Value) -> Result<()> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.ns, &virtual_service_resource());
        let current = api.get(fixtures::VIRTUAL_SERVICE).await?;
        manifest["metadata"]["resourceVersion"] = json!(current.metadata.resource_version);
        let object: DynamicObject = serde_json::from_value(manifest)?;
        api.replace(fixtures::VIRTUAL_SERVICE, &Default::default(), &object)
            .await
            .context("replacing the VirtualService")?;
        Ok(())
    }

    /// `(stable, canary)` weights of the split route, read from the VirtualService.
    pub async fn route_weights(&self) -> Result<(i64, i64)> {
        self.route_weights_in(fixtures::VIRTUAL_SERVICE).await
    }

    /// `(stable, canary)` weights of the split route of the VirtualService `name`.
    pub async fn route_weights_in(&self, name: &str) -> Result<(i64, i64)> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.ns, &virtual_service_resource());
        let vs = api.get(name).await?;
        let http = vs.data.pointer("/spec/http").and_then(Value::as_array);
        let route = http
            .into_iter()
            .flatten()
            .find(|r| r.get("name").and_then(Value::as_str) == Some(fixtures::ROUTE))
            .and_then(|r| r.get("route"))
            .cloned();
        let weight = |i: usize| {
            route
                .as_ref()
                .and_then(|r| r.get(i)?.get("weight")?.as_i64())
                .unwrap_or(0)
        };
        Ok((weight(0), weight(1)))
    }

    /// Events about the Rollout with `reason`, oldest first.
    pub async fn events(&self, reason: &str) -> Result<Vec<RolloutEvent>> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let list = api.list(&ListParams::default()).await?;
        let mut events: Vec<_> = list
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Rollout"))
            .collect();
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        Ok(events.iter().map(|e| rollout_event(e).1).collect())
    }

    /// Waits (by watching) for an event about the Rollout with `reason` that `pred` accepts.
    /// Events are published after the status write they describe, so a test that saw the status
    /// waits for its event rather than listing at once.
    pub async fn wait_event(
        &self,
        reason: &str,
        pred: impl Fn(&RolloutEvent) -> bool,
    ) -> Result<RolloutEvent> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let config = watcher::Config::default().fields(&format!("reason={reason}"));
        let found = |e: &Event| {
            let (r, event) = rollout_event(e);
            r == reason && pred(&event)
        };
        let what = format!("a matching {reason} event");
        match wait_for_event(api, config, WAIT, &what, found).await {
            Ok(event) => Ok(rollout_event(&event).1),
            Err(e) => bail!("{e:#}; seen: {:?}", self.events(reason).await?),
        }
    }

    /// How many times an event with `reason` and exactly `note` happened.
    pub async fn occurrences(&self, reason: &str, note: &str) -> Result<i32> {
        let events = self.events(reason).await?;
        Ok(events
            .iter()
            .filter(|e| e.note == note)
            .map(|e| e.count)
            .sum())
    }
}

/// The reason of an event (empty unless it is about the Rollout) and what a test reads of it.
fn rollout_event(e: &Event) -> (String, RolloutEvent) {
    let about_rollout = e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Rollout");
    let reason = e
        .reason
        .clone()
        .filter(|_| about_rollout)
        .unwrap_or_default();
    let event = RolloutEvent {
        warning: e.type_.as_deref() == Some("Warning"),
        count: e.series.as_ref().map_or(1, |s| s.count),
        note: e.note.clone().unwrap_or_default(),
    };
    (reason, event)
}

/// An event about the Rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutEvent {
    pub warning: bool,
    pub note: String,
    /// Occurrences (a series counts each repeat).
    pub count: i32,
}

// ---------------------------------------------------------------------------------------------
// Reading the Rollout's status.

/// The object's resourceVersion as a revision number (comparable with the monitor's).
pub fn rv_of(r: &Rollout) -> Result<u64> {
    let rv = r.resource_version().unwrap_or_default();
    rv.parse()
        .with_context(|| format!("resourceVersion {rv} is not a number"))
}

fn status(r: &Rollout) -> Option<&RolloutStatus> {
    r.status.as_ref()
}

/// The status was computed from the current spec.
pub fn observed(r: &Rollout) -> bool {
    status(r).and_then(|s| s.observed_generation) == r.metadata.generation
}

pub fn phase(r: &Rollout) -> Option<RolloutPhase> {
    status(r)?.phase
}

pub fn stable(r: &Rollout) -> Option<String> {
    status(r)?.stable_rs.clone()
}

pub fn current_hash(r: &Rollout) -> Option<String> {
    status(r)?.current_pod_hash.clone()
}

pub fn step(r: &Rollout) -> Option<i32> {
    status(r)?.current_step_index
}

/// Paused by the controller at a step (a pause condition is set).
pub fn paused(r: &Rollout) -> bool {
    status(r).is_some_and(|s| s.controller_pause && !s.pause_conditions.is_empty())
}

pub fn aborted(r: &Rollout) -> bool {
    status(r).is_some_and(|s| s.abort)
}

/// The canary weight the status reports as read back from the mesh.
pub fn verified_weight(r: &Rollout) -> Option<i32> {
    let weights = status(r)?.canary.as_ref()?.weights.as_ref()?;
    (weights.verified == Some(true)).then(|| weights.canary.weight.get())
}

pub fn condition(r: &Rollout, kind: ConditionType) -> Option<&Condition> {
    status(r)?.conditions.iter().find(|c| c.type_ == kind)
}

/// `Progressing=False` with `reason`.
pub fn not_progressing_because(r: &Rollout, reason: &str) -> bool {
    condition(r, ConditionType::Progressing)
        .is_some_and(|c| c.status == ConditionStatus::False && c.reason == reason)
}
