//! `spec.strategy.canary.trafficRouting`: which Istio objects Sluice edits, and the match
//! rules of header and mirror routes.
//!
//! Field names and shapes are Argo Rollouts' (`istio.virtualService` / `virtualServices`,
//! `destinationRule`, `managedRoutes`). Istio is the only router, so `istio` is required: a
//! migrated manifest that still names another router (`nginx`, `alb`, ...) is rejected instead
//! of silently running without traffic routing.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use crate::schema::{MAX_LABEL, MAX_NAME, add_rules, exactly_one, rule};

/// How traffic is split between the stable and canary versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRouting {
    /// Istio VirtualService (and optional DestinationRule) to edit.
    pub istio: IstioTrafficRouting,
    /// Routes Sluice adds to (and removes from) the top of each VirtualService's `http` list
    /// for `setHeaderRoute` and `setMirrorRoute` steps. Order is precedence. Every step's
    /// route name must be listed here, so Sluice never touches a route it does not own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub managed_routes: Vec<ManagedRoute>,
}

/// A route owned by Sluice (see [`TrafficRouting::managed_routes`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRoute {
    /// Route name, unique within the list.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub name: String,
}

/// Istio objects to edit. Exactly one of `virtualService` or `virtualServices`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = istio_rules)]
pub struct IstioTrafficRouting {
    /// The single VirtualService whose route weights Sluice sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service: Option<IstioVirtualService>,
    /// Several VirtualServices, all set to the same weights (e.g. a mesh and a gateway one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub virtual_services: Vec<IstioVirtualService>,
    /// Subset-level split: Sluice labels the DestinationRule's two subsets with the stable and
    /// canary pod-template hashes, and the VirtualService routes to the subsets instead of to
    /// two Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_rule: Option<IstioDestinationRule>,
}

fn istio_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [rule(
            "has(self.virtualService) != (has(self.virtualServices) && size(self.virtualServices) > 0)",
            "spec.strategy.canary.trafficRouting.istio must set exactly one of virtualService or virtualServices",
        )],
    );
}

impl IstioTrafficRouting {
    /// Every VirtualService to edit, whichever of the two fields names them.
    pub fn all_virtual_services(&self) -> impl Iterator<Item = &IstioVirtualService> {
        self.virtual_service
            .iter()
            .chain(self.virtual_services.iter())
    }

    /// Host-level split (two Services) unless a DestinationRule is named (subset-level split).
    pub fn is_subset_level(&self) -> bool {
        self.destination_rule.is_some()
    }
}

/// A VirtualService in the Rollout's namespace and the routes in it that carry the split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioVirtualService {
    /// VirtualService name.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub name: String,
    /// Named `http` routes to edit. May be omitted when the VirtualService has exactly one
    /// `http` route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = MAX_NAME)))]
    pub routes: Vec<String>,
    /// `tls` routes to edit, identified by port and SNI hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub tls_routes: Vec<TlsRoute>,
    /// `tcp` routes to edit, identified by port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub tcp_routes: Vec<TcpRoute>,
}

/// Identifies a `tls` route by its match: port and/or SNI hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tls_route_rules)]
pub struct TlsRoute {
    /// Port of the route's match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// SNI hosts of the route's match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = MAX_NAME)))]
    pub sni_hosts: Vec<String>,
}

fn tls_route_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [rule(
            "has(self.port) || (has(self.sniHosts) && size(self.sniHosts) > 0)",
            "trafficRouting.istio tlsRoutes[] must set port or sniHosts to identify the route",
        )],
    );
}

/// Identifies a `tcp` route by its match port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    /// Port of the route's match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
}

/// The DestinationRule whose subsets Sluice points at the stable and canary versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = destination_rule_rules)]
pub struct IstioDestinationRule {
    /// DestinationRule name.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub name: String,
    /// Subset that selects the canary pod-template hash.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub canary_subset_name: String,
    /// Subset that selects the stable pod-template hash.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub stable_subset_name: String,
}

fn destination_rule_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [rule(
            "self.canarySubsetName != self.stableSubsetName",
            "trafficRouting.istio.destinationRule.canarySubsetName must differ from stableSubsetName",
        )],
    );
}

/// How a string (header value, path, method) is matched. Exactly one form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = string_match_rules)]
pub enum StringMatch {
    /// The whole string equals this value.
    Exact(#[schemars(length(max = 1024))] String),
    /// The string starts with this value.
    Prefix(#[schemars(length(max = 1024))] String),
    /// The string matches this RE2 regular expression.
    Regex(#[schemars(length(max = 1024))] String),
}

fn string_match_rules(schema: &mut Schema) {
    exactly_one(
        schema,
        "a string match must set exactly one of exact, prefix or regex",
    );
}

/// One header condition of a `setHeaderRoute` step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRoutingMatch {
    /// Request header name.
    #[schemars(length(min = 1, max = 256))]
    pub header_name: String,
    /// How its value is matched.
    pub header_value: StringMatch,
}

/// One request condition of a `setMirrorRoute` step; all given parts must match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = route_match_rules)]
pub struct RouteMatch {
    /// HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// URL path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    /// Request headers, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub headers: BTreeMap<String, StringMatch>,
}

fn route_match_rules(schema: &mut Schema) {
    // An empty match matches every request: mirroring "everything" by accident is the mistake
    // this catches. `path: {prefix: /}` says it on purpose.
    add_rules(
        schema,
        [rule(
            "has(self.method) || has(self.path) || (has(self.headers) && size(self.headers) > 0)",
            "setMirrorRoute.match[] entries must set at least one of method, path or headers",
        )],
    );
}

/// Longest Service name accepted for `canaryService`, `stableService` and the blue-green
/// services (a DNS-1123 label).
pub(crate) const MAX_SERVICE_NAME: u32 = MAX_LABEL;
