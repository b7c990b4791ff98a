//! What the Istio router needs to know about a Rollout, as plain data.
//!
//! The controller maps a validated Rollout's `trafficRouting.istio` onto [`IstioConfig`]; nothing
//! in this module reads the CRD types, so the router can be built and tested on its own. Field
//! names follow Argo Rollouts (`routes`, `tlsRoutes`, `tcpRoutes`, `destinationRule`).

/// The pod-template-hash label Sluice sets on DestinationRule subsets (Argo's label key, so
/// ReplicaSets labelled by either controller are selected the same way).
pub const POD_TEMPLATE_HASH_LABEL: &str = "rollouts-pod-template-hash";

/// Everything the Istio router is configured with, for one Rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IstioConfig {
    /// The Rollout's namespace: the default namespace of VirtualServices, the namespace of the
    /// DestinationRule, and the namespace short service names are resolved in.
    pub namespace: String,
    /// Host of the canary destination (host-level split); for a subset-level split, the
    /// Service host the subsets belong to.
    pub canary_service: String,
    /// Host of the stable destination (host-level split).
    pub stable_service: String,
    /// The VirtualServices whose weights Sluice moves (`virtualService` or `virtualServices`).
    pub virtual_services: Vec<VirtualServiceRef>,
    /// Present for a subset-level split: destinations are then recognised by subset name.
    pub destination_rule: Option<DestinationRuleRef>,
    /// Names from `trafficRouting.managedRoutes`, in order: the only http routes Sluice ever
    /// inserts or removes, and the order they take at the top of the route list.
    pub managed_routes: Vec<String>,
}

/// One VirtualService and the routes in it whose weights Sluice sets.
///
/// With no routes listed at all, the VirtualService must have exactly one route of each kind it
/// uses (managed routes aside), and those are the selected ones (Argo's rule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirtualServiceRef {
    /// `name` (in the Rollout's namespace) or `namespace/name`.
    pub name: String,
    /// Names of `spec.http[]` routes.
    pub http_routes: Vec<String>,
    pub tls_routes: Vec<TlsRouteRef>,
    pub tcp_routes: Vec<TcpRouteRef>,
}

/// Selects the `spec.tls[]` routes whose matches name exactly this port and these SNI hosts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsRouteRef {
    /// `None` selects routes whose matches give no port.
    pub port: Option<u32>,
    /// Compared as a set with the union of `sniHosts` over the route's matches.
    pub sni_hosts: Vec<String>,
}

/// Selects the `spec.tcp[]` routes whose matches name exactly this port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpRouteRef {
    /// `None` selects routes whose matches give no port.
    pub port: Option<u32>,
}

/// The DestinationRule of a subset-level split (always in the Rollout's namespace, as in Argo).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationRuleRef {
    pub name: String,
    pub canary_subset: String,
    pub stable_subset: String,
}

impl VirtualServiceRef {
    /// The VirtualService's namespace and name; `default_namespace` when the name has no
    /// `namespace/` prefix.
    pub fn namespace_and_name<'a>(&'a self, default_namespace: &'a str) -> (&'a str, &'a str) {
        match self.name.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() => (namespace, name),
            Some((_, name)) => (default_namespace, name),
            None => (default_namespace, self.name.as_str()),
        }
    }

    /// True when no route is named, so the single route of each kind is selected implicitly.
    pub fn selects_implicitly(&self) -> bool {
        self.http_routes.is_empty() && self.tls_routes.is_empty() && self.tcp_routes.is_empty()
    }
}

impl IstioConfig {
    /// True when `name` is one of `trafficRouting.managedRoutes`.
    pub fn is_managed(&self, name: &str) -> bool {
        self.managed_routes.iter().any(|managed| managed == name)
    }
}

/// Canonical form of a Kubernetes service host, so that `svc`, `svc.ns`, `svc.ns.svc` and
/// `svc.ns.svc.cluster.local` compare equal. Short names are resolved in `namespace`, which is
/// how Istio reads hosts in a VirtualService (relative to the VirtualService's namespace) and how
/// Argo reads `canaryService`/`stableService` (relative to the Rollout's). Other hosts (external
/// names, other cluster domains) are compared as written, case-insensitively.
pub fn canonical_host(host: &str, namespace: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [service] => format!(
            "{service}.{}.svc.cluster.local",
            namespace.to_ascii_lowercase()
        ),
        [service, ns] | [service, ns, "svc"] => format!("{service}.{ns}.svc.cluster.local"),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_service_hosts_are_equal() {
        let full = "reviews.shop.svc.cluster.local";
        for host in [
            "reviews",
            "reviews.shop",
            "reviews.shop.svc",
            full,
            "Reviews.shop.svc.cluster.local.",
        ] {
            assert_eq!(canonical_host(host, "shop"), full, "{host}");
        }
        assert_ne!(canonical_host("reviews", "other"), full);
        assert_eq!(canonical_host("api.example.com", "shop"), "api.example.com");
    }

    #[test]
    fn virtual_service_name_may_carry_a_namespace() {
        let vs = |name: &str| VirtualServiceRef {
            name: name.into(),
            ..Default::default()
        };
        assert_eq!(vs("mesh/web").namespace_and_name("shop"), ("mesh", "web"));
        assert_eq!(vs("web").namespace_and_name("shop"), ("shop", "web"));
        assert_eq!(vs("/web").namespace_and_name("shop"), ("shop", "web"));
    }
}
