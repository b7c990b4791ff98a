//! The demo's objects: `e2e/manifests/demo.yaml` read into JSON documents, the Prometheus
//! placeholder filled in, versions of the Rollout's pod template, and server-side apply under
//! the field manager `sluice-demo`.
//!
//! Sluice kinds are decoded into their typed structs once (parse, don't validate), so a broken
//! manifest is reported before anything is applied; everything is applied as a
//! [`DynamicObject`] so the JSON sent is exactly the YAML's, without defaults filled in.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};
use sluice_crds::{AnalysisTemplate, Rollout, Strategy};

/// The demo manifests, compiled in so the driver runs from any directory.
pub const DEMO_YAML: &str = include_str!("../../manifests/demo.yaml");
/// The string in the manifests that stands for the Prometheus address.
pub const PROMETHEUS_PLACEHOLDER: &str = "PROMETHEUS_URL";
/// Field manager of everything the demo applies.
pub const FIELD_MANAGER: &str = "sluice-demo";

/// Why the manifests cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifests are not valid YAML: {0}")]
    Yaml(#[from] sluice_crds::yaml::YamlError),
    #[error("{what} does not decode: {source}")]
    Shape {
        what: String,
        source: serde_json::Error,
    },
    #[error("the manifests {0}")]
    Missing(String),
    #[error("applying {what}: {error}")]
    Apply { what: String, error: String },
}

/// The names a release is followed by, read from the Rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub rollout: String,
    pub virtual_service: String,
    /// The route whose weights Sluice shifts (`None`: the VirtualService's only route).
    pub route: Option<String>,
    pub canary_service: String,
    pub stable_service: String,
    pub steps: usize,
}

/// A version of the service: what the pod template says about image and behaviour.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub image: String,
    /// `sim.sluice.dev/error-rate`.
    pub error_rate: f64,
    /// `sim.sluice.dev/latency-ms`.
    pub latency_ms: f64,
}

impl Version {
    pub fn new(image: &str, error_rate: f64, latency_ms: f64) -> Self {
        Self {
            image: image.to_owned(),
            error_rate,
            latency_ms,
        }
    }

    /// `rollout` with its pod template turned into this version.
    pub fn apply_to(&self, rollout: &Value) -> Value {
        let mut rollout = rollout.clone();
        let template = &mut rollout["spec"]["template"];
        template["metadata"]["annotations"]["sim.sluice.dev/error-rate"] =
            json!(self.error_rate.to_string());
        template["metadata"]["annotations"]["sim.sluice.dev/latency-ms"] =
            json!(self.latency_ms.to_string());
        if let Some(container) = template.pointer_mut("/spec/containers/0") {
            container["image"] = json!(self.image);
        }
        rollout
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (error-rate {}, latency {} ms)",
            self.image, self.error_rate, self.latency_ms
        )
    }
}

/// The demo's documents, checked and with the Prometheus address filled in.
#[derive(Clone, Debug)]
pub struct Manifests {
    /// Every document, in file order (templates and Services before the Rollout).
    pub objects: Vec<Value>,
    /// Index of the Rollout in `objects`.
    rollout: usize,
}

impl Manifests {
    /// Parses `yaml`, replaces every string value equal to [`PROMETHEUS_PLACEHOLDER`] with
    /// `prometheus_url`, and decodes the Sluice kinds.
    ///
    /// Guarantees: exactly one Rollout, with a canary strategy routed by an Istio
    /// VirtualService (what the demo follows); every Sluice object decodes.
    pub fn parse(yaml: &str, prometheus_url: &str) -> Result<Self, ManifestError> {
        let mut objects = sluice_crds::yaml::documents(yaml)?;
        for object in &mut objects {
            replace_strings(object, PROMETHEUS_PLACEHOLDER, prometheus_url);
            check_sluice_kind(object)?;
        }
        let rollouts: Vec<usize> = (0..objects.len())
            .filter(|&i| kind(&objects[i]) == "Rollout")
            .collect();
        let [rollout] = rollouts[..] else {
            return Err(ManifestError::Missing(format!(
                "hold {} Rollouts; the demo follows exactly one",
                rollouts.len()
            )));
        };
        let manifests = Self { objects, rollout };
        manifests.target()?;
        Ok(manifests)
    }

    /// The Rollout document.
    pub fn rollout(&self) -> &Value {
        &self.objects[self.rollout]
    }

    /// Replaces the Rollout document (a test changing steps or analysis).
    pub fn set_rollout(&mut self, rollout: Value) {
        self.objects[self.rollout] = rollout;
    }

    /// The Rollout as first written, as a version.
    pub fn initial_version(&self) -> Version {
        let template = &self.rollout()["spec"]["template"];
        let annotation = |key: &str| {
            template["metadata"]["annotations"][key]
                .as_str()
                .and_then(|v| v.parse().ok())
        };
        Version {
            image: template
                .pointer("/spec/containers/0/image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            error_rate: annotation("sim.sluice.dev/error-rate").unwrap_or(0.0),
            latency_ms: annotation("sim.sluice.dev/latency-ms").unwrap_or(20.0),
        }
    }

    /// The names the demo follows.
    pub fn target(&self) -> Result<Target, ManifestError> {
        let rollout: Rollout = decode(self.rollout(), "the Rollout")?;
        target_of(&rollout)
    }

    /// The analysis intervals of every AnalysisTemplate, in seconds, without duplicates.
    pub fn analysis_intervals(&self) -> Vec<f64> {
        let mut out: Vec<f64> = Vec::new();
        let templates = self
            .objects
            .iter()
            .filter(|o| kind(o) == "AnalysisTemplate");
        for template in templates {
            let Ok(template) = serde_json::from_value::<AnalysisTemplate>(template.clone()) else {
                continue;
            };
            for interval in template.spec.metrics.iter().filter_map(|m| m.interval) {
                let seconds = interval.get().as_secs_f64();
                if !out.contains(&seconds) {
                    out.push(seconds);
                }
            }
        }
        out
    }
}

fn target_of(rollout: &Rollout) -> Result<Target, ManifestError> {
    let missing = |what: &str| ManifestError::Missing(format!("lack {what} on the Rollout"));
    let Strategy::Canary(canary) = &rollout.spec.strategy else {
        return Err(missing("a canary strategy"));
    };
    let istio = &canary
        .traffic_routing
        .as_ref()
        .ok_or_else(|| missing("trafficRouting.istio"))?
        .istio;
    let vs = istio
        .virtual_service
        .as_ref()
        .ok_or_else(|| missing("trafficRouting.istio.virtualService"))?;
    Ok(Target {
        rollout: rollout.metadata.name.clone().unwrap_or_default(),
        virtual_service: vs.name.clone(),
        route: vs.routes.first().cloned(),
        canary_service: canary
            .canary_service
            .clone()
            .ok_or_else(|| missing("canaryService"))?,
        stable_service: canary
            .stable_service
            .clone()
            .ok_or_else(|| missing("stableService"))?,
        steps: canary.steps.len(),
    })
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// `Kind/name`, for messages.
pub fn describe(object: &Value) -> String {
    format!("{}/{}", kind(object), name(object))
}

fn decode<T: serde::de::DeserializeOwned>(object: &Value, what: &str) -> Result<T, ManifestError> {
    serde_json::from_value(object.clone()).map_err(|source| ManifestError::Shape {
        what: what.to_owned(),
        source,
    })
}

/// Decodes an object of a Sluice kind into its type, to fail early on a broken manifest.
fn check_sluice_kind(object: &Value) -> Result<(), ManifestError> {
    if object["apiVersion"].as_str() != Some(sluice_crds::API_VERSION) {
        return Ok(());
    }
    let what = describe(object);
    match kind(object) {
        "Rollout" => decode::<Rollout>(object, &what).map(drop),
        "AnalysisTemplate" => decode::<AnalysisTemplate>(object, &what).map(drop),
        "AnalysisRun" => decode::<sluice_crds::AnalysisRun>(object, &what).map(drop),
        "ClusterAnalysisTemplate" => {
            decode::<sluice_crds::ClusterAnalysisTemplate>(object, &what).map(drop)
        }
        other => Err(ManifestError::Missing(format!(
            "hold an unknown Sluice kind {other:?}"
        ))),
    }
}

/// Replaces every string value equal to `from` (not substrings: comments and queries that
/// mention the word are left alone).
fn replace_strings(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s == from => *s = to.to_owned(),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_strings(v, from, to)),
        _ => {}
    }
}

/// Server-side applies `object` in `namespace` under [`FIELD_MANAGER`], without forcing: a
/// conflict with a field another manager owns (Sluice owns the route weights) is an error, not
/// an overwrite.
pub async fn apply(
    client: &kube::Client,
    namespace: &str,
    object: &Value,
) -> Result<DynamicObject, ManifestError> {
    let what = describe(object);
    let fail = |error: kube::Error| ManifestError::Apply {
        what: what.clone(),
        error: brief(&error),
    };
    let gvk =
        gvk_of(object).ok_or_else(|| ManifestError::Missing(format!("{what}: no apiVersion")))?;
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(fail)?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    api.patch(
        name(object),
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Apply(object),
    )
    .await
    .map_err(fail)
}

/// Applies every object in order.
pub async fn apply_all(
    client: &kube::Client,
    namespace: &str,
    objects: &[Value],
) -> Result<(), ManifestError> {
    for object in objects {
        apply(client, namespace, object).await?;
    }
    Ok(())
}

/// A Kubernetes error in one sentence: the API server's message, without the status dump.
pub fn brief(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

fn gvk_of(object: &Value) -> Option<GroupVersionKind> {
    let api_version = object["apiVersion"].as_str()?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Some(GroupVersionKind::gvk(group, version, kind(object)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Manifests {
        Manifests::parse(DEMO_YAML, "http://127.0.0.1:19090").unwrap()
    }

    #[test]
    fn the_demo_manifests_parse_and_name_what_the_demo_follows() {
        let m = demo();
        let target = m.target().unwrap();
        assert_eq!(target.rollout, "shop");
        assert_eq!(target.virtual_service, "shop");
        assert_eq!(target.route.as_deref(), Some("primary"));
        assert_eq!(target.canary_service, "shop-canary");
        assert_eq!(target.steps, 4);
        assert_eq!(m.analysis_intervals(), [2.0]);
    }

    #[test]
    fn only_the_placeholder_value_is_replaced() {
        let m = demo();
        let text = serde_json::to_string(&m.objects).unwrap();
        assert!(!text.contains(&format!("\"{PROMETHEUS_PLACEHOLDER}\"")));
        assert!(text.contains("\"value\":\"http://127.0.0.1:19090\""));
        // The template's own argument reference is untouched.
        assert!(text.contains("{{args.prometheus}}"));
    }

    #[test]
    fn a_version_changes_image_and_behaviour_only() {
        let m = demo();
        let initial = m.initial_version();
        assert_eq!(initial, Version::new("example/shop:1.0", 0.001, 40.0));
        let bad = Version::new("example/shop:1.2", 0.3, 40.0).apply_to(m.rollout());
        let annotations = &bad["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["sim.sluice.dev/error-rate"], "0.3");
        assert_eq!(
            bad.pointer("/spec/template/spec/containers/0/image"),
            Some(&json!("example/shop:1.2"))
        );
        assert_eq!(bad["spec"]["strategy"], m.rollout()["spec"]["strategy"]);
    }

    #[test]
    fn a_broken_sluice_object_is_refused_before_anything_is_applied() {
        let yaml = "apiVersion: sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {name: x}\nspec: {replicas: -1}\n";
        let err = Manifests::parse(yaml, "http://p").unwrap_err();
        assert!(err.to_string().contains("Rollout/x"), "{err}");
    }

    #[test]
    fn core_api_versions_have_an_empty_group() {
        let gvk = gvk_of(&json!({"apiVersion": "v1", "kind": "Service"})).unwrap();
        assert_eq!((gvk.group.as_str(), gvk.version.as_str()), ("", "v1"));
        let gvk =
            gvk_of(&json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService"}))
                .unwrap();
        assert_eq!(gvk.group, "networking.istio.io");
    }
}
