//! Builders for the objects a scenario needs: the two Services, the user's VirtualService (and
//! DestinationRule), the AnalysisTemplates its analysis steps name, and the Rollout itself: one
//! [`RolloutBuilder`] for both strategies, with the canary part here and the blue-green part in
//! [`crate::bluegreen`].
//!
//! Every scenario uses the same names ([`ROLLOUT`], [`STABLE_SERVICE`], ...) inside its own
//! namespace, so tests read like the manifests a team would write. Manifests are plain JSON in
//! Argo Rollouts' shape; the Rollout is decoded into the typed [`Rollout`] before it is sent, so a
//! fixture the API types would refuse fails here, not in the API server.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use sluice_controller::traffic::istio::{destination_rule_resource, virtual_service_resource};
use sluice_crds::{AnalysisTemplate, Rollout};

/// Name of the Rollout in every scenario.
pub const ROLLOUT: &str = "web";
/// The `app` label shared by the Rollout's pods and both Services' selectors.
pub const APP: &str = "web";
pub const STABLE_SERVICE: &str = "web-stable";
pub const CANARY_SERVICE: &str = "web-canary";
/// The VirtualService (and DestinationRule) name.
pub const VIRTUAL_SERVICE: &str = "web";
/// The named http route carrying the split.
pub const ROUTE: &str = "primary";
pub const DESTINATION_RULE: &str = "web";
pub const STABLE_SUBSET: &str = "stable";
pub const CANARY_SUBSET: &str = "canary";
/// Pod-template annotation whose value names the version; changing it changes the template hash.
pub const VERSION_ANNOTATION: &str = "sluice.test/version";
/// The label every Sluice ReplicaSet, pod, Service selector and subset carries.
pub const HASH_LABEL: &str = "rollouts-pod-template-hash";

// ---------------------------------------------------------------------------------------------
// Steps, in Argo's YAML shape.

pub fn set_weight(weight: u8) -> Value {
    json!({ "setWeight": weight })
}

/// A timed pause.
pub fn pause_for(seconds: u64) -> Value {
    json!({ "pause": { "duration": format!("{seconds}s") } })
}

/// A pause that waits for a promote.
pub fn pause() -> Value {
    json!({ "pause": {} })
}

/// Runs `replicas` canary pods whatever the weight (so managed routes have pods to reach).
pub fn set_canary_scale(replicas: i32) -> Value {
    json!({ "setCanaryScale": { "replicas": replicas } })
}

/// Requests whose `header` is exactly `value` go to the canary (a managed route).
pub fn set_header_route(name: &str, header: &str, value: &str) -> Value {
    json!({ "setHeaderRoute": {
        "name": name,
        "match": [{ "headerName": header, "headerValue": { "exact": value } }],
    } })
}

/// A copy of `percentage` % of requests under `path_prefix` goes to the canary.
pub fn set_mirror_route(name: &str, percentage: u8, path_prefix: &str) -> Value {
    json!({ "setMirrorRoute": {
        "name": name,
        "percentage": percentage,
        "match": [{ "path": { "prefix": path_prefix } }],
    } })
}

/// Removes the header route `name`.
pub fn remove_header_route(name: &str) -> Value {
    json!({ "setHeaderRoute": { "name": name } })
}

/// Removes the mirror route `name`.
pub fn remove_mirror_route(name: &str) -> Value {
    json!({ "setMirrorRoute": { "name": name } })
}

// ---------------------------------------------------------------------------------------------
// Mesh objects.

/// A Service selecting every pod of the app; Sluice adds the hash to its selector.
pub fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name, "labels": { "app": APP } },
        "spec": {
            "selector": { "app": APP },
            "ports": [{ "name": "http", "port": 80, "targetPort": 8080 }],
        },
    }))
    .expect("a valid Service")
}

/// The user's VirtualService with a host-level split: all traffic on the stable Service.
pub fn host_split_virtual_service() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": { "name": VIRTUAL_SERVICE },
        "spec": {
            "hosts": ["web"],
            "http": [{
                "name": ROUTE,
                "route": [
                    { "destination": { "host": STABLE_SERVICE }, "weight": 100 },
                    { "destination": { "host": CANARY_SERVICE }, "weight": 0 },
                ],
            }],
        },
    })
}

/// The host-level VirtualService the way a team writes it: labels, annotations, gateways, a
/// split route with retries, a timeout and header rules, and a second route Sluice has nothing to
/// do with. Everything but the two weights must survive a release unchanged.
pub fn users_own_virtual_service() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": VIRTUAL_SERVICE,
            "labels": { "app": APP, "team": "payments" },
            "annotations": { "argocd.argoproj.io/sync-options": "Prune=false", "owner": "payments" },
        },
        "spec": {
            "hosts": ["web", "web.example.com"],
            "gateways": ["mesh", "istio-system/public"],
            "http": [
                {
                    "name": "admin",
                    "match": [{ "uri": { "prefix": "/admin" } }],
                    "route": [{ "destination": { "host": "admin", "port": { "number": 8081 } } }],
                    "timeout": "30s",
                },
                {
                    "name": ROUTE,
                    "match": [{ "uri": { "prefix": "/" } }],
                    "route": [
                        { "destination": { "host": STABLE_SERVICE, "port": { "number": 80 } }, "weight": 100,
                          "headers": { "response": { "set": { "x-version": "stable" } } } },
                        { "destination": { "host": CANARY_SERVICE, "port": { "number": 80 } }, "weight": 0 },
                    ],
                    "retries": { "attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,reset" },
                    "timeout": "10s",
                    "headers": { "request": { "set": { "x-env": "prod" } } },
                    "corsPolicy": { "allowOrigins": [{ "exact": "https://example.com" }] },
                },
            ],
        },
    })
}

/// A second host-level VirtualService, for the ingress gateway: same split, another host.
pub fn gateway_virtual_service(name: &str) -> Value {
    let mut vs = host_split_virtual_service();
    vs["metadata"]["name"] = json!(name);
    vs["spec"]["hosts"] = json!(["web.example.com"]);
    vs["spec"]["gateways"] = json!(["istio-system/public"]);
    vs
}

/// The user's VirtualService with a subset-level split on one Service (`web`).
pub fn subset_split_virtual_service() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": { "name": VIRTUAL_SERVICE },
        "spec": {
            "hosts": ["web"],
            "http": [{
                "name": ROUTE,
                "route": [
                    { "destination": { "host": APP, "subset": STABLE_SUBSET }, "weight": 100 },
                    { "destination": { "host": APP, "subset": CANARY_SUBSET }, "weight": 0 },
                ],
            }],
        },
    })
}

/// The user's DestinationRule with the two subsets Sluice labels with hashes.
pub fn destination_rule() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": { "name": DESTINATION_RULE },
        "spec": {
            "host": APP,
            "subsets": [
                { "name": STABLE_SUBSET, "labels": { "app": APP } },
                { "name": CANARY_SUBSET, "labels": { "app": APP } },
            ],
        },
    })
}

/// How the Rollout splits traffic, and so which mesh objects a scenario creates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Split {
    /// `web-stable` and `web-canary` Services, one VirtualService route between them.
    #[default]
    Host,
    /// One `web` Service, a DestinationRule with `stable` and `canary` subsets.
    Subset,
}

/// Creates the Services and mesh objects of `split` in `ns`.
pub async fn create_mesh(client: &kube::Client, ns: &str, split: Split) -> Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let names: &[&str] = match split {
        Split::Host => &[STABLE_SERVICE, CANARY_SERVICE],
        Split::Subset => &[APP],
    };
    for name in names {
        services
            .create(&PostParams::default(), &service(name))
            .await
            .with_context(|| format!("creating Service {name}"))?;
    }
    let vs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &virtual_service_resource());
    let manifest = match split {
        Split::Host => host_split_virtual_service(),
        Split::Subset => subset_split_virtual_service(),
    };
    vs.create(&PostParams::default(), &serde_json::from_value(manifest)?)
        .await
        .context("creating the VirtualService")?;
    if split == Split::Subset {
        let dr: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &destination_rule_resource());
        dr.create(
            &PostParams::default(),
            &serde_json::from_value(destination_rule())?,
        )
        .await
        .context("creating the DestinationRule")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Analysis templates.

/// Creates the AnalysisTemplate `name` in `ns`: one metric `one` on the local Prometheus with
/// `successCondition: result[0] >= 1`. `metric` gives the query and may add `interval`,
/// `count`, `failureLimit`, `failureCondition`.
pub async fn create_analysis_template(
    client: &kube::Client,
    ns: &str,
    name: &str,
    metric: Value,
) -> Result<()> {
    let prometheus = crate::prometheus_url()?;
    let mut m = json!({
        "name": "one",
        "successCondition": "result[0] >= 1",
        "provider": { "prometheus": { "address": prometheus, "query": metric["query"] } },
    });
    for key in ["interval", "count", "failureLimit", "failureCondition"] {
        if let Some(value) = metric.get(key) {
            m[key] = value.clone();
        }
    }
    let template: AnalysisTemplate = serde_json::from_value(json!({
        "apiVersion": sluice_crds::API_VERSION,
        "kind": "AnalysisTemplate",
        "metadata": { "name": name },
        "spec": { "metrics": [m] },
    }))?;
    Api::<AnalysisTemplate>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &template)
        .await
        .with_context(|| format!("creating the AnalysisTemplate {name}"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The Rollout.

/// The part of a Rollout fixture that differs by strategy: [`Canary`] here, and
/// [`crate::bluegreen::BlueGreen`].
pub trait StrategyFixture: Clone + std::fmt::Debug {
    /// The key under `spec.strategy`: `canary` or `blueGreen`.
    const KEY: &'static str;

    /// Adds this strategy's fields to `strategy`, which already holds the scale-down delays
    /// both strategies share.
    fn write(&self, strategy: &mut Value);
}

/// A Rollout of either strategy: what both share is here, what differs is `S`. Defaults: version
/// `v1`, scale-down delays of 2 s (short, so scenarios see them pass), no progress deadline;
/// [`rollout`] and [`crate::bluegreen::blue_green`] choose the replicas and the strategy.
#[derive(Clone, Debug)]
pub struct RolloutBuilder<S = Canary> {
    replicas: i32,
    version: String,
    scale_down_delay_seconds: u32,
    abort_scale_down_delay_seconds: u32,
    progress_deadline: Option<(u32, bool)>,
    strategy: S,
}

impl<S: StrategyFixture> RolloutBuilder<S> {
    /// `replicas` pods released with `strategy`, and the defaults above.
    pub fn new(replicas: i32, strategy: S) -> Self {
        Self {
            replicas,
            version: "v1".to_owned(),
            scale_down_delay_seconds: 2,
            abort_scale_down_delay_seconds: 2,
            progress_deadline: None,
            strategy,
        }
    }

    /// Changes the strategy part (what the strategy's own setters do).
    pub fn with_strategy(mut self, change: impl FnOnce(&mut S)) -> Self {
        change(&mut self.strategy);
        self
    }

    pub fn replicas(mut self, replicas: i32) -> Self {
        self.replicas = replicas;
        self
    }

    pub fn scale_down_delay_seconds(mut self, seconds: u32) -> Self {
        self.scale_down_delay_seconds = seconds;
        self
    }

    pub fn abort_scale_down_delay_seconds(mut self, seconds: u32) -> Self {
        self.abort_scale_down_delay_seconds = seconds;
        self
    }

    /// `progressDeadlineSeconds` and `progressDeadlineAbort`.
    pub fn progress_deadline(mut self, seconds: u32, abort: bool) -> Self {
        self.progress_deadline = Some((seconds, abort));
        self
    }

    /// The manifest, as a user would write it.
    pub fn manifest(&self) -> Value {
        let mut strategy = json!({
            "scaleDownDelaySeconds": self.scale_down_delay_seconds,
            "abortScaleDownDelaySeconds": self.abort_scale_down_delay_seconds,
        });
        self.strategy.write(&mut strategy);
        let mut manifest = json!({
            "apiVersion": sluice_crds::API_VERSION,
            "kind": "Rollout",
            "metadata": { "name": ROLLOUT },
            "spec": {
                "replicas": self.replicas,
                "revisionHistoryLimit": 3,
                "selector": { "matchLabels": { "app": APP } },
                "template": template(&self.version),
                "strategy": { S::KEY: strategy },
            },
        });
        if let Some((seconds, abort)) = self.progress_deadline {
            manifest["spec"]["progressDeadlineSeconds"] = json!(seconds);
            manifest["spec"]["progressDeadlineAbort"] = json!(abort);
        }
        manifest
    }

    /// The typed Rollout (fails if the API types refuse the manifest).
    pub fn build(&self) -> Result<Rollout> {
        serde_json::from_value(self.manifest()).context("the fixture is not a valid Rollout")
    }

    /// Creates the Rollout in `ns`.
    pub async fn create(&self, client: &kube::Client, ns: &str) -> Result<Rollout> {
        let api: Api<Rollout> = Api::namespaced(client.clone(), ns);
        api.create(&PostParams::default(), &self.build()?)
            .await
            .context("creating the Rollout")
    }
}

/// The canary part of a Rollout over the mesh objects above. Defaults: no steps, host-level
/// split, no managed routes, one VirtualService.
#[derive(Clone, Debug, Default)]
pub struct Canary {
    steps: Vec<Value>,
    split: Split,
    managed_routes: Vec<String>,
    /// Extra VirtualServices (same route name) set to the same weights.
    more_virtual_services: Vec<String>,
}

/// A canary Rollout of 5 replicas with the defaults of [`RolloutBuilder`] and [`Canary`].
pub fn rollout() -> RolloutBuilder {
    RolloutBuilder::new(5, Canary::default())
}

impl RolloutBuilder<Canary> {
    pub fn steps(self, steps: impl IntoIterator<Item = Value>) -> Self {
        self.with_strategy(|c| c.steps = steps.into_iter().collect())
    }

    pub fn split(self, split: Split) -> Self {
        self.with_strategy(|c| c.split = split)
    }

    pub fn managed_routes(self, names: impl IntoIterator<Item = &'static str>) -> Self {
        self.with_strategy(|c| c.managed_routes = names.into_iter().map(str::to_owned).collect())
    }

    /// Also sets the weights of these VirtualServices (`virtualServices:` instead of
    /// `virtualService:`); each must have the route [`ROUTE`].
    pub fn more_virtual_services(self, names: impl IntoIterator<Item = &'static str>) -> Self {
        self.with_strategy(|c| {
            c.more_virtual_services = names.into_iter().map(str::to_owned).collect();
        })
    }
}

impl StrategyFixture for Canary {
    const KEY: &'static str = "canary";

    fn write(&self, canary: &mut Value) {
        let mut istio = if self.more_virtual_services.is_empty() {
            json!({ "virtualService": { "name": VIRTUAL_SERVICE, "routes": [ROUTE] } })
        } else {
            let all: Vec<Value> = std::iter::once(VIRTUAL_SERVICE)
                .chain(self.more_virtual_services.iter().map(String::as_str))
                .map(|name| json!({ "name": name, "routes": [ROUTE] }))
                .collect();
            json!({ "virtualServices": all })
        };
        canary["steps"] = json!(self.steps);
        match self.split {
            Split::Host => {
                canary["canaryService"] = json!(CANARY_SERVICE);
                canary["stableService"] = json!(STABLE_SERVICE);
            }
            Split::Subset => {
                istio["destinationRule"] = json!({
                    "name": DESTINATION_RULE,
                    "canarySubsetName": CANARY_SUBSET,
                    "stableSubsetName": STABLE_SUBSET,
                });
            }
        }
        canary["trafficRouting"] = json!({ "istio": istio });
        if !self.managed_routes.is_empty() {
            let routes: Vec<Value> = self
                .managed_routes
                .iter()
                .map(|name| json!({ "name": name }))
                .collect();
            canary["trafficRouting"]["managedRoutes"] = json!(routes);
        }
    }
}

/// The pod template of `version`: the version is an annotation, so each version has its own hash.
pub fn template(version: &str) -> Value {
    json!({
        "metadata": {
            "labels": { "app": APP },
            "annotations": { VERSION_ANNOTATION: version },
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "example.com/web:1",
                "ports": [{ "name": "http", "containerPort": 8080 }],
            }],
        },
    })
}

/// A merge patch moving the Rollout to `version` (a new template, or back to an old one).
pub fn version_patch(version: &str) -> Value {
    json!({ "spec": { "template": { "metadata": { "annotations": { VERSION_ANNOTATION: version } } } } })
}

/// A merge patch moving the Rollout to `version` with pods that no node accepts: they stay
/// Pending forever, so the version never becomes available.
pub fn unschedulable_version_patch(version: &str) -> Value {
    let mut patch = version_patch(version);
    patch["spec"]["template"]["spec"] =
        json!({ "nodeSelector": { "sluice.test/no-such-node": "true" } });
    patch
}
