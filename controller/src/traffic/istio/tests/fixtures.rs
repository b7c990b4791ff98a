//! Builders for configs, VirtualServices and DestinationRules, and helpers that apply a rendered
//! patch the way the API server would, so tests assert on meaning (weights, routes, what
//! survived) rather than on the exact operations.

use serde_json::{Value, json};

use crate::traffic::istio::config::{DestinationRuleRef, IstioConfig, VirtualServiceRef};
use crate::traffic::istio::virtual_service::{self, VirtualServiceObservation};
use crate::traffic::{
    DesiredTraffic, HeaderMatch, HeaderRoute, MirrorRoute, RequestMatch, StringMatch,
};

pub const NS: &str = "shop";
pub const CANARY: &str = "web-canary";
pub const STABLE: &str = "web-stable";

/// Host-level split over VirtualService `web`, routes selected implicitly.
pub fn config() -> IstioConfig {
    IstioConfig {
        namespace: NS.into(),
        canary_service: CANARY.into(),
        stable_service: STABLE.into(),
        virtual_services: vec![vs_ref("web", &[])],
        destination_rule: None,
        managed_routes: vec!["header-1".into(), "mirror-1".into()],
    }
}

/// Subset-level split: destinations `web` subset `canary` / `stable`, DestinationRule `web`.
pub fn subset_config() -> IstioConfig {
    IstioConfig {
        canary_service: "web".into(),
        stable_service: "web".into(),
        destination_rule: Some(DestinationRuleRef {
            name: "web".into(),
            canary_subset: "canary".into(),
            stable_subset: "stable".into(),
        }),
        ..config()
    }
}

pub fn vs_ref(name: &str, http_routes: &[&str]) -> VirtualServiceRef {
    VirtualServiceRef {
        name: name.into(),
        http_routes: http_routes.iter().map(|route| route.to_string()).collect(),
        ..Default::default()
    }
}

/// A VirtualService named `web` with user fields around `spec` (hosts, gateways, annotations).
pub fn virtual_service(spec_routes: Value) -> Value {
    let mut spec = json!({ "hosts": ["web.example.com"], "gateways": ["mesh", "shop/public"] });
    if let (Some(spec), Some(routes)) = (spec.as_object_mut(), spec_routes.as_object()) {
        spec.extend(routes.clone());
    }
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": "web",
            "namespace": NS,
            "resourceVersion": "41",
            "annotations": { "argocd.argoproj.io/tracking-id": "shop:networking.istio.io/VirtualService:shop/web" },
        },
        "spec": spec,
    })
}

/// A route entry `{destination: {host, subset?}, weight?}`.
pub fn dest(host: &str, subset: Option<&str>, weight: Option<u64>) -> Value {
    let mut entry = json!({ "destination": { "host": host } });
    if let Some(subset) = subset {
        entry["destination"]["subset"] = json!(subset);
    }
    if let Some(weight) = weight {
        entry["weight"] = json!(weight);
    }
    entry
}

/// An http route with user fields (retries, timeout) that must survive every patch.
pub fn http_route(name: Option<&str>, entries: Vec<Value>) -> Value {
    let mut route = json!({
        "route": entries,
        "timeout": "7s",
        "retries": { "attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,reset" },
    });
    if let Some(name) = name {
        route["name"] = json!(name);
    }
    route
}

/// The usual host-level route: canary `c`, stable `s`.
pub fn split_route(name: Option<&str>, canary: u64, stable: u64) -> Value {
    http_route(
        name,
        vec![
            dest(CANARY, None, Some(canary)),
            dest(STABLE, None, Some(stable)),
        ],
    )
}

pub fn weights(canary_weight: u8) -> DesiredTraffic {
    DesiredTraffic {
        canary_weight,
        ..DesiredTraffic::all_stable()
    }
}

pub fn header_route(name: &str) -> HeaderRoute {
    HeaderRoute {
        name: name.into(),
        matches: vec![
            HeaderMatch {
                header_name: "x-canary".into(),
                value: StringMatch::Exact("always".into()),
            },
            HeaderMatch {
                header_name: "user-agent".into(),
                value: StringMatch::Regex(".*Firefox.*".into()),
            },
        ],
    }
}

pub fn mirror_route(name: &str, percentage: u8) -> MirrorRoute {
    MirrorRoute {
        name: name.into(),
        percentage,
        matches: vec![RequestMatch {
            method: Some(StringMatch::Exact("GET".into())),
            path: Some(StringMatch::Prefix("/api".into())),
            headers: vec![],
        }],
    }
}

/// Renders against `object` and applies the patch like the API server; panics on any error.
pub fn applied(
    config: &IstioConfig,
    vs_ref: &VirtualServiceRef,
    object: &Value,
    desired: &DesiredTraffic,
) -> Value {
    let patch = virtual_service::render(config, vs_ref, object, desired).expect("render");
    let mut out = object.clone();
    json_patch::patch(&mut out, &patch)
        .expect("rendered patch applies to the object it was rendered from");
    out
}

/// `applied` for the first VirtualService of `config`.
pub fn apply_first(config: &IstioConfig, object: &Value, desired: &DesiredTraffic) -> Value {
    applied(config, &config.virtual_services[0], object, desired)
}

pub fn observe_first(config: &IstioConfig, object: &Value) -> VirtualServiceObservation {
    virtual_service::observe(config, &config.virtual_services[0], object).expect("observe")
}

pub fn render_first(
    config: &IstioConfig,
    object: &Value,
    desired: &DesiredTraffic,
) -> json_patch::Patch {
    virtual_service::render(config, &config.virtual_services[0], object, desired).expect("render")
}

/// The error message rendering gives.
pub fn render_error(config: &IstioConfig, object: &Value, desired: &DesiredTraffic) -> String {
    match virtual_service::render(config, &config.virtual_services[0], object, desired) {
        Ok(patch) => panic!("expected an error, got {patch:?}"),
        Err(err) => {
            assert_eq!(err.category(), "InvalidReference", "{err}");
            err.to_string()
        }
    }
}

/// The weight of entry `j` of route `i` of list `kind`.
pub fn weight_at(object: &Value, kind: &str, i: usize, j: usize) -> Option<u64> {
    object
        .pointer(&format!("/spec/{kind}/{i}/route/{j}/weight"))
        .and_then(Value::as_u64)
}

/// The http route names in order (`""` for unnamed).
pub fn http_names(object: &Value) -> Vec<String> {
    let routes = object
        .pointer("/spec/http")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    routes
        .iter()
        .map(|route| route["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// `object` with managed routes dropped and the canary/stable `weight`s of the selected http
/// routes (by name, `""` for unnamed) and of all tls/tcp routes removed: what must be identical
/// before and after any Sluice patch.
pub fn stripped(object: &Value, managed: &[String], selected_http: &[&str]) -> Value {
    let mut out = object.clone();
    if let Some(http) = out.pointer_mut("/spec/http").and_then(Value::as_array_mut) {
        http.retain(|route| {
            !route["name"]
                .as_str()
                .is_some_and(|name| managed.iter().any(|m| m == name))
        });
    }
    for kind in ["http", "tls", "tcp"] {
        let routes = out
            .pointer_mut(&format!("/spec/{kind}"))
            .and_then(Value::as_array_mut);
        for route in routes.into_iter().flatten() {
            let name = route["name"].as_str().unwrap_or("").to_owned();
            if kind == "http" && !selected_http.contains(&name.as_str()) {
                continue;
            }
            let entries = route.get_mut("route").and_then(Value::as_array_mut);
            for entry in entries
                .into_iter()
                .flatten()
                .filter(|entry| is_split_entry(entry))
            {
                if let Some(entry) = entry.as_object_mut() {
                    entry.remove("weight");
                }
            }
        }
    }
    out
}

fn is_split_entry(entry: &Value) -> bool {
    let host = entry
        .pointer("/destination/host")
        .and_then(Value::as_str)
        .unwrap_or("");
    let subset = entry
        .pointer("/destination/subset")
        .and_then(Value::as_str)
        .unwrap_or("");
    let short = host.split('.').next().unwrap_or("");
    [CANARY, STABLE].contains(&short) || ["canary", "stable"].contains(&subset)
}
