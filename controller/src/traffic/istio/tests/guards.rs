//! A patch rendered from one read must fail on an object someone changed in between, in the
//! places Sluice writes, and must still apply when only unrelated fields changed.

use serde_json::{Value, json};

use super::fixtures::*;
use crate::traffic::DesiredTraffic;

fn object() -> Value {
    virtual_service(json!({ "http": [
        split_route(Some("primary"), 10, 90),
        http_route(Some("admin"), vec![dest("admin", None, None)]),
    ] }))
}

fn named_config() -> crate::traffic::istio::IstioConfig {
    let mut config = config();
    config.virtual_services = vec![vs_ref("web", &["primary"])];
    config
}

/// Applies the patch rendered from `object()` to `object()` changed by `edit`.
fn apply_stale(desired: &DesiredTraffic, edit: impl Fn(&mut Value)) -> Result<Value, String> {
    let patch = render_first(&named_config(), &object(), desired);
    assert!(!patch.0.is_empty());
    let mut changed = object();
    edit(&mut changed);
    json_patch::patch(&mut changed, &patch)
        .map(|()| changed)
        .map_err(|err| err.to_string())
}

#[test]
fn a_concurrent_weight_change_fails_the_patch() {
    let result = apply_stale(&weights(50), |vs| {
        vs["spec"]["http"][0]["route"][1]["weight"] = json!(100)
    });
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn a_route_inserted_above_fails_the_patch() {
    let result = apply_stale(&weights(50), |vs| {
        if let Some(http) = vs.pointer_mut("/spec/http").and_then(Value::as_array_mut) {
            http.insert(0, split_route(Some("hotfix"), 10, 90));
        }
    });
    assert!(
        result.is_err(),
        "same destinations and weights, different route: {result:?}"
    );
}

#[test]
fn destinations_swapped_in_place_fail_the_patch() {
    let result = apply_stale(&weights(50), |vs| {
        if let Some(route) = vs
            .pointer_mut("/spec/http/0/route")
            .and_then(Value::as_array_mut)
        {
            route.swap(0, 1);
        }
    });
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn unrelated_edits_do_not_block_a_weight_change() {
    let result = apply_stale(&weights(50), |vs| {
        vs["spec"]["http"][1]["timeout"] = json!("30s");
        vs["metadata"]["annotations"]["team"] = json!("payments");
        vs["metadata"]["resourceVersion"] = json!("42");
    });
    let after = result.expect("scalar guards only");
    assert_eq!(after["spec"]["http"][1]["timeout"], json!("30s"));
    assert_eq!(weight_at(&after, "http", 0, 0), Some(50));
}

#[test]
fn structural_changes_are_guarded_by_the_resource_version() {
    let desired = DesiredTraffic {
        header_routes: vec![header_route("header-1")],
        ..weights(10)
    };
    let result = apply_stale(&desired, |vs| {
        vs["metadata"]["resourceVersion"] = json!("42")
    });
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn adding_a_missing_weight_is_guarded_by_the_resource_version() {
    let config = config();
    let object = virtual_service(
        json!({ "http": [http_route(None, vec![dest(CANARY, None, None), dest(STABLE, None, None)])] }),
    );
    let patch = render_first(&config, &object, &weights(10));
    let mut changed = object.clone();
    changed["metadata"]["resourceVersion"] = json!("42");
    assert!(json_patch::patch(&mut changed, &patch).is_err());
}
