//! The simulator's picture of the mesh at one tick: VirtualServices with their load, Services
//! with their selectors (and the load of those called directly), DestinationRule subsets and
//! ready pods, and the resolution Envoy does from a route destination to the pods that can
//! answer it.
//!
//! Pure data, built from the reflector caches by `snapshot` and read by `traffic`, so
//! resolution and request generation are tested without a cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::behaviour::Behaviour;
use super::load::Load;
use super::routes::{Destination, HttpRoute};

/// Label keys that name a version; Argo's first, then the Deployment controller's.
pub const VERSION_LABELS: [&str; 2] = ["rollouts-pod-template-hash", "pod-template-hash"];
/// The label value used when a version or workload cannot be known.
pub const UNKNOWN: &str = "unknown";

/// A ready pod and the metric labels it answers with.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The Deployment-style name of what owns the pod (`web` for ReplicaSet `web-6d4cf56db6`).
    pub workload: Arc<str>,
    /// The pod-template hash, so queries can select one version.
    pub version: Arc<str>,
    pub behaviour: Behaviour,
}

/// A VirtualService with the load the simulator sends to each of its hosts.
#[derive(Clone, Debug)]
pub struct VirtualServiceInfo {
    pub namespace: String,
    pub name: String,
    pub hosts: Vec<String>,
    pub routes: Vec<HttpRoute>,
    pub load: Load,
}

/// A Service called directly by its selector, without a VirtualService: a client sending to
/// `name.namespace.svc`, as blue-green's active and preview Services are called.
#[derive(Clone, Debug)]
pub struct ServiceLoad {
    pub namespace: String,
    /// The Service as a destination (host = its name, no subset), so it resolves exactly as a
    /// route to it would.
    pub destination: Destination,
    pub rps: f64,
}

/// The Service a destination host names, as metric labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServiceRef {
    pub name: Arc<str>,
    pub namespace: Arc<str>,
    /// `name.namespace.svc.cluster.local`, Istio's `destination_service`.
    pub fqdn: Arc<str>,
}

impl ServiceRef {
    fn new(name: &str, namespace: &str) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            fqdn: format!("{name}.{namespace}.svc.cluster.local").into(),
        }
    }
}

/// What a destination resolves to.
#[derive(Debug)]
pub enum Backends<'w> {
    /// Ready pods, sorted by name (never empty).
    Ready(Vec<&'w PodInfo>),
    /// The Service (and subset) exist but no pod is ready: Envoy's `UH`. The version comes from
    /// the selector when it pins a pod-template hash, as Argo's canary Service does.
    NoHealthyUpstream { version: Option<String> },
    /// The host is not a known Service or the subset is not defined: Envoy's `NC`.
    NoCluster,
}

/// A resolved destination.
#[derive(Debug)]
pub struct Target<'w> {
    pub service: ServiceRef,
    pub backends: Backends<'w>,
}

/// Everything one tick needs. Maps are ordered so iteration, hence the random stream, is
/// reproducible for a given cluster state and seed.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub virtual_services: Vec<VirtualServiceInfo>,
    /// Services that get requests of their own, sorted by namespace and name.
    pub service_loads: Vec<ServiceLoad>,
    /// `(namespace, name)` -> selector, for Services that have one.
    pub services: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// `(namespace, service, subset)` -> the subset's labels.
    pub subsets: BTreeMap<(String, String, String), BTreeMap<String, String>>,
    /// Ready pods by namespace, sorted by name.
    pub pods: BTreeMap<String, Vec<PodInfo>>,
    /// Annotation problems found while building, for the log.
    pub problems: Vec<String>,
}

impl World {
    /// Resolves a route destination the way Istio does: the host names a Service (a short name
    /// is relative to the VirtualService's namespace), its selector plus the subset's labels pick
    /// the pods, and only ready pods answer.
    pub fn resolve(&self, destination: &Destination, vs_namespace: &str) -> Target<'_> {
        let (name, namespace) = service_key(&destination.host, vs_namespace);
        let service = ServiceRef::new(name, namespace);
        let backends = self.backends(name, namespace, destination.subset.as_deref());
        Target { service, backends }
    }

    fn backends(&self, name: &str, namespace: &str, subset: Option<&str>) -> Backends<'_> {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(selector) = self.services.get(&key) else {
            return Backends::NoCluster;
        };
        let mut wanted = selector.clone();
        if let Some(subset) = subset {
            let key = (namespace.to_owned(), name.to_owned(), subset.to_owned());
            let Some(labels) = self.subsets.get(&key) else {
                return Backends::NoCluster;
            };
            wanted.extend(labels.clone());
        }
        let pods: Vec<&PodInfo> = self
            .pods
            .get(namespace)
            .into_iter()
            .flatten()
            .filter(|pod| selects(&wanted, &pod.labels))
            .collect();
        if pods.is_empty() {
            Backends::NoHealthyUpstream {
                version: version_of(&wanted).map(str::to_owned),
            }
        } else {
            Backends::Ready(pods)
        }
    }
}

/// `(service name, namespace)` for a destination host: `web`, `web.ns`, `web.ns.svc` and
/// `web.ns.svc.cluster.local` name Services; anything else is kept whole, so it matches no
/// Service (Service names cannot contain dots) and resolves to `NoCluster`.
pub fn service_key<'h>(host: &'h str, default_namespace: &'h str) -> (&'h str, &'h str) {
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        [name] => (name, default_namespace),
        [name, namespace] => (name, namespace),
        [name, namespace, "svc", ..] => (name, namespace),
        _ => (host, default_namespace),
    }
}

/// A selector selects labels when every pair is present. An empty selector selects nothing: a
/// Service without a selector has manually managed endpoints, which the simulator cannot see.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pod-template hash among `labels`, if any.
pub fn version_of(labels: &BTreeMap<String, String>) -> Option<&str> {
    VERSION_LABELS
        .iter()
        .find_map(|key| labels.get(*key).map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn pod(name: &str, hash: &str) -> PodInfo {
        PodInfo {
            name: name.to_owned(),
            labels: labels(&[("app", "web"), ("rollouts-pod-template-hash", hash)]),
            workload: "web".into(),
            version: hash.into(),
            behaviour: Behaviour::default(),
        }
    }

    fn world() -> World {
        let mut world = World::default();
        let svc = |name: &str| ("shop".to_owned(), name.to_owned());
        world.services.insert(svc("web"), labels(&[("app", "web")]));
        world.services.insert(
            svc("web-canary"),
            labels(&[("app", "web"), ("rollouts-pod-template-hash", "bbb")]),
        );
        world.subsets.insert(
            ("shop".into(), "web".into(), "stable".into()),
            labels(&[("rollouts-pod-template-hash", "aaa")]),
        );
        world.pods.insert(
            "shop".into(),
            vec![pod("web-aaa-1", "aaa"), pod("web-aaa-2", "aaa")],
        );
        world
    }

    fn destination(host: &str, subset: Option<&str>) -> Destination {
        Destination {
            host: host.to_owned(),
            subset: subset.map(str::to_owned),
        }
    }

    fn ready_names(target: &Target) -> Vec<String> {
        match &target.backends {
            Backends::Ready(pods) => pods.iter().map(|p| p.name.clone()).collect(),
            other => panic!("expected ready pods, got {other:?}"),
        }
    }

    #[test]
    fn host_forms_name_a_service() {
        assert_eq!(service_key("web", "shop"), ("web", "shop"));
        assert_eq!(service_key("web.other", "shop"), ("web", "other"));
        assert_eq!(
            service_key("web.other.svc.cluster.local", "shop"),
            ("web", "other")
        );
        assert_eq!(
            service_key("web.example.com", "shop"),
            ("web.example.com", "shop")
        );
    }

    #[test]
    fn a_service_resolves_to_its_ready_pods() {
        let world = world();
        let target = world.resolve(&destination("web", None), "shop");
        assert_eq!(&*target.service.fqdn, "web.shop.svc.cluster.local");
        assert_eq!(ready_names(&target), ["web-aaa-1", "web-aaa-2"]);
        let fqdn = world.resolve(
            &destination("web.shop.svc.cluster.local", None),
            "elsewhere",
        );
        assert_eq!(ready_names(&fqdn).len(), 2);
    }

    #[test]
    fn a_subset_narrows_by_its_labels() {
        let world = world();
        let target = world.resolve(&destination("web", Some("stable")), "shop");
        assert_eq!(ready_names(&target).len(), 2);
        let unknown = world.resolve(&destination("web", Some("canary")), "shop");
        assert!(matches!(unknown.backends, Backends::NoCluster));
    }

    #[test]
    fn no_ready_pods_is_no_healthy_upstream_with_the_selected_version() {
        let world = world();
        let target = world.resolve(&destination("web-canary", None), "shop");
        assert_eq!(&*target.service.name, "web-canary");
        match target.backends {
            Backends::NoHealthyUpstream { version } => assert_eq!(version.as_deref(), Some("bbb")),
            other => panic!("expected UH, got {other:?}"),
        }
    }

    #[test]
    fn unknown_hosts_have_no_cluster() {
        let world = world();
        assert!(matches!(
            world.resolve(&destination("api", None), "shop").backends,
            Backends::NoCluster
        ));
        assert!(matches!(
            world.resolve(&destination("web", None), "other").backends,
            Backends::NoCluster
        ));
    }

    #[test]
    fn empty_selector_selects_nothing() {
        assert!(!selects(&BTreeMap::new(), &labels(&[("app", "web")])));
        assert!(selects(
            &labels(&[("app", "web")]),
            &labels(&[("app", "web"), ("x", "y")])
        ));
    }
}
