//! Builds a [`World`] from Kubernetes objects: the translation from the API's shapes to the
//! simulator's, kept free of clients so it is tested with plain fixtures.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::Value;

use super::behaviour::Behaviour;
use super::load::{Load, service_rps};
use super::routes::{Destination, parse_http_routes};
use super::world::{
    PodInfo, ServiceLoad, UNKNOWN, VirtualServiceInfo, World, service_key, version_of,
};

/// The objects one tick reads, as the reflector stores hand them out.
pub struct Objects<'a> {
    pub virtual_services: &'a [Arc<DynamicObject>],
    pub destination_rules: &'a [Arc<DynamicObject>],
    pub services: &'a [Arc<Service>],
    pub pods: &'a [Arc<Pod>],
}

impl Objects<'_> {
    /// The world these objects describe. VirtualServices and directly called Services are
    /// sorted by namespace and name, pods by name, so the same cluster state and seed give the
    /// same requests.
    pub fn world(&self, default_rps: f64) -> World {
        let mut world = World::default();
        let mut virtual_services: Vec<VirtualServiceInfo> = self
            .virtual_services
            .iter()
            .map(|vs| virtual_service(vs, default_rps, &mut world.problems))
            .collect();
        virtual_services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        world.virtual_services = virtual_services;
        world.services = self.services.iter().filter_map(|s| service(s)).collect();
        let mut service_loads: Vec<ServiceLoad> = self
            .services
            .iter()
            .filter_map(|s| service_load(s, default_rps, &mut world.problems))
            .collect();
        service_loads.sort_by(|a, b| {
            (&a.namespace, &a.destination.host).cmp(&(&b.namespace, &b.destination.host))
        });
        world.service_loads = service_loads;
        for rule in self.destination_rules {
            add_subsets(&mut world.subsets, rule);
        }
        for pod in self.pods.iter().filter(|pod| is_ready(pod)) {
            let info = pod_info(pod, &mut world.problems);
            world
                .pods
                .entry(pod.namespace().unwrap_or_default())
                .or_default()
                .push(info);
        }
        for pods in world.pods.values_mut() {
            pods.sort_by(|a, b| a.name.cmp(&b.name));
        }
        world
    }
}

fn virtual_service(
    vs: &DynamicObject,
    default_rps: f64,
    problems: &mut Vec<String>,
) -> VirtualServiceInfo {
    let namespace = vs.namespace().unwrap_or_default();
    let name = vs.name_any();
    let (load, load_problems) = Load::from_annotations(vs.annotations(), default_rps);
    let at = format!("VirtualService {namespace}/{name}");
    problems.extend(load_problems.into_iter().map(|p| format!("{at}: {p}")));
    let spec = vs.data.get("spec").cloned().unwrap_or(Value::Null);
    let hosts = spec
        .get("hosts")
        .and_then(Value::as_array)
        .map(|hosts| {
            hosts
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    VirtualServiceInfo {
        namespace,
        name,
        hosts,
        routes: parse_http_routes(&spec),
        load,
    }
}

fn service(service: &Service) -> Option<((String, String), BTreeMap<String, String>)> {
    let selector = service.spec.as_ref()?.selector.clone()?;
    let key = (service.namespace().unwrap_or_default(), service.name_any());
    Some((key, selector))
}

/// The load of a Service annotated to be called directly. A Service without a selector is left
/// out (with a problem): its endpoints are managed by hand, out of the simulator's sight.
fn service_load(
    service: &Service,
    default_rps: f64,
    problems: &mut Vec<String>,
) -> Option<ServiceLoad> {
    let (rps, rate_problems) = service_rps(service.annotations(), default_rps);
    let namespace = service.namespace().unwrap_or_default();
    let at = format!("Service {namespace}/{}", service.name_any());
    problems.extend(rate_problems.into_iter().map(|p| format!("{at}: {p}")));
    let rps = rps?;
    let has_selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty());
    if !has_selector {
        problems.push(format!(
            "{at}: has a request rate but no selector, so no pods to send to"
        ));
        return None;
    }
    Some(ServiceLoad {
        namespace,
        destination: Destination {
            host: service.name_any(),
            subset: None,
        },
        rps,
    })
}

/// Records each subset of a DestinationRule under the Service its host names (a short host is
/// relative to the rule's namespace). When two rules define the same subset, the first one in
/// the cache wins; Istio would reject or merge them, and the simulator need not pick a side.
fn add_subsets(
    subsets: &mut BTreeMap<(String, String, String), BTreeMap<String, String>>,
    rule: &DynamicObject,
) {
    let rule_namespace = rule.namespace().unwrap_or_default();
    let spec = rule.data.get("spec");
    let Some(host) = spec.and_then(|s| s.get("host")).and_then(Value::as_str) else {
        return;
    };
    let (service, namespace) = service_key(host, &rule_namespace);
    let list = spec
        .and_then(|s| s.get("subsets"))
        .and_then(Value::as_array);
    for subset in list.into_iter().flatten() {
        let Some(name) = subset.get("name").and_then(Value::as_str) else {
            continue;
        };
        let labels = string_map(subset.get("labels"));
        let key = (namespace.to_owned(), service.to_owned(), name.to_owned());
        subsets.entry(key).or_insert(labels);
    }
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    let Some(object) = value.and_then(Value::as_object) else {
        return BTreeMap::new();
    };
    object
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

/// Ready as an endpoint: the `Ready` condition is true and the pod is not being deleted, the
/// same rule EndpointSlices apply to decide which pods receive traffic.
pub fn is_ready(pod: &Pod) -> bool {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ready && pod.metadata.deletion_timestamp.is_none()
}

fn pod_info(pod: &Pod, problems: &mut Vec<String>) -> PodInfo {
    let (behaviour, pod_problems) = Behaviour::from_annotations(pod.annotations());
    let at = format!(
        "Pod {}/{}",
        pod.namespace().unwrap_or_default(),
        pod.name_any()
    );
    problems.extend(pod_problems.into_iter().map(|p| format!("{at}: {p}")));
    let labels = pod.labels().clone();
    let version = version_of(&labels).unwrap_or(UNKNOWN).into();
    PodInfo {
        name: pod.name_any(),
        workload: workload(pod, &labels),
        version,
        labels,
        behaviour,
    }
}

/// Istio's workload name: a ReplicaSet's owner by Deployment naming (`web-6d4cf56db6` -> `web`,
/// which is also the Rollout's name for Argo-style ReplicaSets), another controller's own name,
/// or the pod's name for a bare pod.
fn workload(pod: &Pod, labels: &BTreeMap<String, String>) -> Arc<str> {
    let owner = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| pod.owner_references().first());
    let Some(owner) = owner else {
        return pod.name_any().into();
    };
    let stripped = version_of(labels)
        .filter(|_| owner.kind == "ReplicaSet")
        .and_then(|hash| owner.name.strip_suffix(hash)?.strip_suffix('-'));
    stripped.unwrap_or(&owner.name).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::world::Backends;
    use serde_json::json;

    fn pod(name: &str, owner: Option<(&str, &str)>, ready: bool, annotations: Value) -> Arc<Pod> {
        let owners: Vec<Value> = owner
            .map(|(kind, name)| {
                json!({"apiVersion": "apps/v1", "kind": kind, "name": name,
                "uid": "u", "controller": true})
            })
            .into_iter()
            .collect();
        let status = if ready { "True" } else { "False" };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop", "ownerReferences": owners,
                    "annotations": annotations,
                    "labels": {"app": "web", "pod-template-hash": "6d4cf56db6"}},
                "status": {"conditions": [{"type": "Ready", "status": status}]},
            }))
            .unwrap(),
        )
    }

    fn dynamic(kind: &str, name: &str, annotations: Value, spec: Value) -> Arc<DynamicObject> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "networking.istio.io/v1", "kind": kind,
                "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
                "spec": spec,
            }))
            .unwrap(),
        )
    }

    fn service(name: &str) -> Arc<Service> {
        annotated_service(name, json!({}), json!({"app": "web"}))
    }

    fn annotated_service(name: &str, annotations: Value, selector: Value) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
                "spec": {"selector": selector},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn workload_names_follow_istio() {
        let rs = pod(
            "web-6d4cf56db6-x",
            Some(("ReplicaSet", "web-6d4cf56db6")),
            true,
            json!({}),
        );
        assert_eq!(&*pod_info(&rs, &mut vec![]).workload, "web");
        let sts = pod("db-0", Some(("StatefulSet", "db")), true, json!({}));
        assert_eq!(&*pod_info(&sts, &mut vec![]).workload, "db");
        let bare = pod("debug", None, true, json!({}));
        assert_eq!(&*pod_info(&bare, &mut vec![]).workload, "debug");
        assert_eq!(&*pod_info(&bare, &mut vec![]).version, "6d4cf56db6");
    }

    #[test]
    fn builds_a_world_of_ready_pods_subsets_and_load() {
        let vs = dynamic(
            "VirtualService",
            "web",
            json!({"sim.sluice.dev/rps": "oops"}),
            json!({"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web"}}]}]}),
        );
        let dr = dynamic(
            "DestinationRule",
            "web",
            json!({}),
            json!({"host": "web", "subsets": [{"name": "stable", "labels": {"app": "web"}}]}),
        );
        let pods = [
            pod("b", None, true, json!({"sim.sluice.dev/error-rate": "0.5"})),
            pod("a", None, true, json!({})),
            pod("c", None, false, json!({})),
        ];
        let objects = Objects {
            virtual_services: &[vs],
            destination_rules: &[dr],
            services: &[service("web")],
            pods: &pods,
        };
        let world = objects.world(200.0);
        assert_eq!(world.virtual_services[0].load.rps, 200.0);
        assert_eq!(world.virtual_services[0].hosts, ["web"]);
        assert_eq!(world.problems.len(), 1, "{:?}", world.problems);
        let names: Vec<&str> = world.pods["shop"].iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "sorted, not-ready pod left out");
        assert_eq!(world.pods["shop"][1].behaviour.error_rate, 0.5);
        let subset = crate::mesh::routes::Destination {
            host: "web".into(),
            subset: Some("stable".into()),
        };
        assert!(
            matches!(world.resolve(&subset, "shop").backends, Backends::Ready(ref p) if p.len() == 2)
        );
    }

    #[test]
    fn only_annotated_services_with_a_selector_are_called_directly() {
        let rps = |v: &str| json!({"sim.sluice.dev/rps": v});
        let services = [
            annotated_service("web-preview", rps("5"), json!({"app": "web"})),
            annotated_service("web-active", rps("50"), json!({"app": "web"})),
            service("web-plain"),
            annotated_service("external", rps("5"), json!(null)),
        ];
        let objects = Objects {
            virtual_services: &[],
            destination_rules: &[],
            services: &services,
            pods: &[],
        };
        let world = objects.world(200.0);
        let loads: Vec<(&str, f64)> = world
            .service_loads
            .iter()
            .map(|l| (l.destination.host.as_str(), l.rps))
            .collect();
        assert_eq!(loads, [("web-active", 50.0), ("web-preview", 5.0)]);
        assert_eq!(world.service_loads[0].namespace, "shop");
        assert_eq!(world.problems.len(), 1, "{:?}", world.problems);
        assert!(world.problems[0].contains("Service shop/external"));
    }
}
