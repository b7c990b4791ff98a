//! Reading a VirtualService: which routes Sluice splits, where their canary and stable
//! destinations are, and which managed routes are present.
//!
//! This is the "parse" step of the pure core: [`VirtualServiceView::parse`] either returns a view
//! in which every selected route has exactly one canary and one stable destination, or an
//! [`TrafficError::InvalidReference`] that tells the user which route or field to fix. Rendering
//! and observing then work on the view and never look anything up again.

use std::collections::BTreeSet;

use serde_json::Value;

use super::config::{IstioConfig, TcpRouteRef, TlsRouteRef, VirtualServiceRef, canonical_host};
use super::json::{self, Loc};
use crate::traffic::TrafficError;

/// The three route lists of a VirtualService that carry weighted destinations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteKind {
    Http,
    Tls,
    Tcp,
}

impl RouteKind {
    pub(crate) const ALL: [RouteKind; 3] = [RouteKind::Http, RouteKind::Tls, RouteKind::Tcp];

    pub(crate) fn key(self) -> &'static str {
        match self {
            RouteKind::Http => "http",
            RouteKind::Tls => "tls",
            RouteKind::Tcp => "tcp",
        }
    }
}

/// One `route[j]` entry: a destination and its weight.
#[derive(Debug)]
pub(crate) struct Destination<'v> {
    /// Position in the route's `route` list.
    pub index: usize,
    pub loc: Loc<'v>,
    pub entry: &'v Value,
    pub weight: Option<u8>,
}

impl Destination<'_> {
    /// The weight traffic actually gets: an absent weight is 0 (proto3 default), as in Istio.
    pub(crate) fn effective_weight(&self) -> u8 {
        self.weight.unwrap_or(0)
    }
}

/// A route Sluice sets weights on, with its canary and stable destinations found.
#[derive(Debug)]
pub(crate) struct SplitRoute<'v> {
    pub kind: RouteKind,
    pub loc: Loc<'v>,
    pub name: Option<&'v str>,
    /// The whole `route` list, including destinations that are neither canary nor stable.
    pub entries: &'v [Value],
    pub canary: Destination<'v>,
    pub stable: Destination<'v>,
}

impl SplitRoute<'_> {
    /// The canary weight, when this route's weights are a proper split (canary + stable = 100).
    pub(crate) fn canary_weight(&self) -> Option<u8> {
        let (canary, stable) = (
            self.canary.effective_weight(),
            self.stable.effective_weight(),
        );
        (u16::from(canary) + u16::from(stable) == 100).then_some(canary)
    }
}

/// An http route whose name is in `managedRoutes`: Sluice's, to insert, replace or remove.
#[derive(Debug)]
pub(crate) struct ManagedRoute<'v> {
    pub index: usize,
    pub name: &'v str,
    pub value: &'v Value,
}

/// Everything Sluice needs from one VirtualService.
#[derive(Debug)]
pub(crate) struct VirtualServiceView<'v> {
    pub label: &'v str,
    pub split: Vec<SplitRoute<'v>>,
    /// In list order.
    pub managed: Vec<ManagedRoute<'v>>,
}

impl<'v> VirtualServiceView<'v> {
    /// Finds the selected routes and managed routes of `object`, named `label` in messages.
    pub(crate) fn parse(
        config: &IstioConfig,
        vs_ref: &VirtualServiceRef,
        object: &'v Value,
        label: &'v str,
    ) -> Result<Self, TrafficError> {
        let root = Loc::root(label);
        json::object(object, &root)?;
        let spec_loc = root.key("spec");
        let spec = object.get("spec").unwrap_or(&Value::Null);
        if !spec.is_null() {
            json::object(spec, &spec_loc)?;
        }
        let matcher = Matcher::new(config, object_namespace(object, vs_ref, config));
        let mut split = Vec::new();
        for kind in RouteKind::ALL {
            let routes = json::list(spec, kind.key(), &spec_loc)?;
            let list_loc = spec_loc.key(kind.key());
            for index in select(config, vs_ref, kind, routes, &list_loc)? {
                split.push(matcher.split_route(kind, index, &routes[index], &list_loc)?);
            }
        }
        if split.is_empty() {
            return Err(TrafficError::InvalidReference(format!(
                "{label} has no http, tls or tcp route to split"
            )));
        }
        let http = json::list(spec, "http", &spec_loc)?;
        let managed = managed_routes(config, http, &spec_loc.key("http"))?;
        Ok(Self {
            label,
            split,
            managed,
        })
    }

    /// The first selected http route (first listed, or the only one): the one header and mirror
    /// routes copy their destinations from.
    pub(crate) fn first_http(&self) -> Option<&SplitRoute<'v>> {
        self.split
            .iter()
            .find(|route| route.kind == RouteKind::Http)
    }
}

/// Short hosts in a VirtualService are relative to its own namespace (Istio's rule).
fn object_namespace<'a>(
    object: &'a Value,
    vs_ref: &'a VirtualServiceRef,
    config: &'a IstioConfig,
) -> &'a str {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_else(|| vs_ref.namespace_and_name(&config.namespace).0)
}

/// `http route "primary"`, or `tls route #1` for an unnamed one.
pub(crate) fn describe(kind: RouteKind, index: usize, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{} route \"{name}\"", kind.key()),
        None => format!("{} route #{index}", kind.key()),
    }
}

/// Indices of the routes of `kind` that Sluice splits.
fn select(
    config: &IstioConfig,
    vs_ref: &VirtualServiceRef,
    kind: RouteKind,
    routes: &[Value],
    loc: &Loc,
) -> Result<Vec<usize>, TrafficError> {
    if vs_ref.selects_implicitly() {
        return select_implicitly(config, kind, routes, loc);
    }
    match kind {
        RouteKind::Http => select_http_by_name(config, &vs_ref.http_routes, routes, loc),
        RouteKind::Tls => select_each(&vs_ref.tls_routes, routes, loc, tls_matches, describe_tls),
        RouteKind::Tcp => select_each(&vs_ref.tcp_routes, routes, loc, tcp_matches, describe_tcp),
    }
}

/// With no route named, a kind in use must have exactly one (unmanaged) route.
fn select_implicitly(
    config: &IstioConfig,
    kind: RouteKind,
    routes: &[Value],
    loc: &Loc,
) -> Result<Vec<usize>, TrafficError> {
    let mut candidates = Vec::new();
    for (index, route) in routes.iter().enumerate() {
        let name = json::string(route, "name", &loc.index(index))?;
        let managed = kind == RouteKind::Http && name.is_some_and(|name| config.is_managed(name));
        if !managed {
            candidates.push(index);
        }
    }
    if candidates.len() > 1 {
        return Err(TrafficError::InvalidReference(format!(
            "{} has {} {} routes; name the ones to split in the Rollout's virtualService",
            loc.object(),
            candidates.len(),
            kind.key()
        )));
    }
    Ok(candidates)
}

/// In the order the names are listed: the first one is the route managed routes copy from, as
/// in Argo.
fn select_http_by_name(
    config: &IstioConfig,
    names: &[String],
    routes: &[Value],
    loc: &Loc,
) -> Result<Vec<usize>, TrafficError> {
    let mut selected = Vec::new();
    for wanted in names {
        if config.is_managed(wanted) {
            return Err(TrafficError::InvalidReference(format!(
                "route \"{wanted}\" is listed both as a weighted route and in managedRoutes"
            )));
        }
        let index = find_http(wanted, routes, loc)?;
        if !selected.contains(&index) {
            selected.push(index);
        }
    }
    Ok(selected)
}

fn find_http(wanted: &str, routes: &[Value], loc: &Loc) -> Result<usize, TrafficError> {
    for (index, route) in routes.iter().enumerate() {
        if json::string(route, "name", &loc.index(index))? == Some(wanted) {
            return Ok(index);
        }
    }
    Err(TrafficError::InvalidReference(format!(
        "{} has no http route named \"{wanted}\"",
        loc.object()
    )))
}

/// Every route matching any reference; each reference must match at least one route.
fn select_each<R>(
    refs: &[R],
    routes: &[Value],
    loc: &Loc,
    matches: fn(&R, &Value, &Loc) -> Result<bool, TrafficError>,
    describe_ref: fn(&R) -> String,
) -> Result<Vec<usize>, TrafficError> {
    let mut selected = BTreeSet::new();
    for wanted in refs {
        let mut matched = false;
        for (index, route) in routes.iter().enumerate() {
            if matches(wanted, route, &loc.index(index))? {
                selected.insert(index);
                matched = true;
            }
        }
        if !matched {
            return Err(TrafficError::InvalidReference(format!(
                "{} has no {}",
                loc.object(),
                describe_ref(wanted)
            )));
        }
    }
    Ok(selected.into_iter().collect())
}

fn describe_tls(wanted: &TlsRouteRef) -> String {
    format!(
        "tls route matching port {} and sniHosts {:?}",
        port_text(wanted.port),
        wanted.sni_hosts
    )
}

fn describe_tcp(wanted: &TcpRouteRef) -> String {
    format!("tcp route matching port {}", port_text(wanted.port))
}

fn port_text(port: Option<u32>) -> String {
    port.map_or_else(|| "(none)".to_owned(), |port| port.to_string())
}

/// Argo's rule: all of the route's matches name the same single port (or none), and the union of
/// their SNI hosts is exactly the referenced set.
fn tls_matches(wanted: &TlsRouteRef, route: &Value, loc: &Loc) -> Result<bool, TrafficError> {
    let Some(port) = single_port(route, loc)? else {
        return Ok(false);
    };
    let mut sni_hosts = BTreeSet::new();
    for (index, entry) in json::list(route, "match", loc)?.iter().enumerate() {
        let entry_loc = loc.key("match").index(index);
        for (i, host) in json::list(entry, "sniHosts", &entry_loc)?
            .iter()
            .enumerate()
        {
            let host = host.as_str().ok_or_else(|| {
                entry_loc
                    .key("sniHosts")
                    .index(i)
                    .invalid("must be a string")
            })?;
            sni_hosts.insert(host);
        }
    }
    let wanted_hosts: BTreeSet<&str> = wanted.sni_hosts.iter().map(String::as_str).collect();
    Ok(port == wanted.port.map(u64::from) && sni_hosts == wanted_hosts)
}

fn tcp_matches(wanted: &TcpRouteRef, route: &Value, loc: &Loc) -> Result<bool, TrafficError> {
    Ok(single_port(route, loc)? == Some(wanted.port.map(u64::from)))
}

/// `Some(port)` when the route's matches agree on one port (or none gives one); `None` when they
/// name several, as such a route can never match a single referenced port.
fn single_port(route: &Value, loc: &Loc) -> Result<Option<Option<u64>>, TrafficError> {
    let mut ports = BTreeSet::new();
    for (index, entry) in json::list(route, "match", loc)?.iter().enumerate() {
        ports.insert(json::unsigned(
            entry,
            "port",
            &loc.key("match").index(index),
        )?);
    }
    Ok(match ports.len() {
        0 => Some(None),
        1 => ports.into_iter().next(),
        _ => None,
    })
}

fn managed_routes<'v>(
    config: &IstioConfig,
    http: &'v [Value],
    loc: &Loc,
) -> Result<Vec<ManagedRoute<'v>>, TrafficError> {
    let mut managed = Vec::new();
    for (index, value) in http.iter().enumerate() {
        let name = json::string(value, "name", &loc.index(index))?;
        if let Some(name) = name.filter(|name| config.is_managed(name)) {
            managed.push(ManagedRoute { index, name, value });
        }
    }
    Ok(managed)
}

/// Which destination is the canary and which the stable one.
#[derive(Debug)]
enum Matcher<'c> {
    /// Host-level split: canonical service hosts, and the namespace short hosts resolve in.
    Host {
        canary: String,
        stable: String,
        config: &'c IstioConfig,
        namespace: &'c str,
    },
    /// Subset-level split: subset names.
    Subset { canary: &'c str, stable: &'c str },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Canary,
    Stable,
}

impl<'c> Matcher<'c> {
    fn new(config: &'c IstioConfig, namespace: &'c str) -> Self {
        match &config.destination_rule {
            Some(rule) => Matcher::Subset {
                canary: &rule.canary_subset,
                stable: &rule.stable_subset,
            },
            None => Matcher::Host {
                canary: canonical_host(&config.canary_service, &config.namespace),
                stable: canonical_host(&config.stable_service, &config.namespace),
                config,
                namespace,
            },
        }
    }

    fn role(&self, entry: &Value, loc: &Loc) -> Result<Option<Role>, TrafficError> {
        let destination_loc = loc.key("destination");
        let destination = entry.get("destination").unwrap_or(&Value::Null);
        if destination.is_null() {
            return Ok(None);
        }
        json::object(destination, &destination_loc)?;
        let (canary, stable, actual) = match self {
            Matcher::Host {
                canary,
                stable,
                namespace,
                ..
            } => {
                let host = json::string(destination, "host", &destination_loc)?;
                (
                    canary.as_str(),
                    stable.as_str(),
                    host.map(|host| canonical_host(host, namespace)),
                )
            }
            Matcher::Subset { canary, stable } => {
                let subset = json::string(destination, "subset", &destination_loc)?;
                (*canary, *stable, subset.map(str::to_owned))
            }
        };
        Ok(match actual.as_deref() {
            Some(actual) if actual == canary => Some(Role::Canary),
            Some(actual) if actual == stable => Some(Role::Stable),
            _ => None,
        })
    }

    fn what(&self, role: Role) -> String {
        match (self, role) {
            (Matcher::Host { config, .. }, Role::Canary) => {
                format!("canary service \"{}\"", config.canary_service)
            }
            (Matcher::Host { config, .. }, Role::Stable) => {
                format!("stable service \"{}\"", config.stable_service)
            }
            (Matcher::Subset { canary, .. }, Role::Canary) => format!("canary subset \"{canary}\""),
            (Matcher::Subset { stable, .. }, Role::Stable) => format!("stable subset \"{stable}\""),
        }
    }

    fn split_route<'v>(
        &self,
        kind: RouteKind,
        index: usize,
        route: &'v Value,
        list_loc: &Loc<'v>,
    ) -> Result<SplitRoute<'v>, TrafficError> {
        let loc = list_loc.index(index);
        json::object(route, &loc)?;
        let name = json::string(route, "name", &loc)?;
        let entries = json::list(route, "route", &loc)?;
        let mut found: [Vec<Destination<'v>>; 2] = [Vec::new(), Vec::new()];
        for (j, entry) in entries.iter().enumerate() {
            let entry_loc = loc.key("route").index(j);
            json::object(entry, &entry_loc)?;
            if let Some(role) = self.role(entry, &entry_loc)? {
                let weight = json::weight(entry, &entry_loc)?;
                found[role as usize].push(Destination {
                    index: j,
                    loc: entry_loc,
                    entry,
                    weight,
                });
            }
        }
        let [canaries, stables] = found;
        let describe_route = || format!("{} {}", loc.object(), describe(kind, index, name));
        let canary = self.exactly_one(canaries, Role::Canary, &describe_route)?;
        let stable = self.exactly_one(stables, Role::Stable, &describe_route)?;
        Ok(SplitRoute {
            kind,
            loc,
            name,
            entries,
            canary,
            stable,
        })
    }

    fn exactly_one<'v>(
        &self,
        mut found: Vec<Destination<'v>>,
        role: Role,
        describe_route: &dyn Fn() -> String,
    ) -> Result<Destination<'v>, TrafficError> {
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(TrafficError::InvalidReference(format!(
                "{} has no destination for {}",
                describe_route(),
                self.what(role)
            ))),
            n => Err(TrafficError::InvalidReference(format!(
                "{} has {n} destinations for {}; exactly one is needed",
                describe_route(),
                self.what(role)
            ))),
        }
    }
}
