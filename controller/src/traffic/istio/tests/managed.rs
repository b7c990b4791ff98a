//! Header and mirror routes: inserted at the top in managedRoutes order, kept in step with the
//! weights, removed when no longer desired, never touching the user's routes.

use serde_json::{Value, json};

use super::fixtures::*;
use crate::traffic::DesiredTraffic;

fn user_routes() -> Value {
    virtual_service(json!({ "http": [
        split_route(Some("primary"), 0, 100),
        http_route(Some("admin"), vec![dest("admin", None, None)]),
    ] }))
}

fn named_config() -> crate::traffic::istio::IstioConfig {
    let mut config = config();
    config.virtual_services = vec![vs_ref("web", &["primary"])];
    config
}

fn managed() -> Vec<String> {
    config().managed_routes
}

#[test]
fn header_route_is_inserted_at_the_top_and_sends_matches_to_canary() {
    let config = named_config();
    let desired = DesiredTraffic {
        header_routes: vec![header_route("header-1")],
        ..weights(10)
    };
    let after = apply_first(&config, &user_routes(), &desired);
    assert_eq!(http_names(&after), ["header-1", "primary", "admin"]);
    assert_eq!(
        after["spec"]["http"][0],
        json!({
            "name": "header-1",
            // One entry per header: Istio ORs them, as in Argo Rollouts.
            "match": [
                { "headers": { "x-canary": { "exact": "always" } } },
                { "headers": { "user-agent": { "regex": ".*Firefox.*" } } },
            ],
            "route": [{ "destination": { "host": CANARY }, "weight": 100 }],
        })
    );
    assert_eq!(
        stripped(&after, &managed(), &["primary"]),
        stripped(&user_routes(), &managed(), &["primary"])
    );
    let observed = observe_first(&config, &after);
    assert_eq!(
        (observed.canary_weight, observed.managed_routes),
        (Some(10), vec!["header-1".to_owned()])
    );
    assert!(
        render_first(&config, &after, &desired).0.is_empty(),
        "idempotent"
    );
}

#[test]
fn header_route_in_a_subset_split_targets_the_canary_subset_and_port() {
    let mut config = subset_config();
    config.virtual_services = vec![vs_ref("web", &["primary"])];
    let mut canary = dest("web", Some("canary"), Some(0));
    canary["destination"]["port"] = json!({ "number": 8080 });
    let object = virtual_service(
        json!({ "http": [http_route(Some("primary"), vec![dest("web", Some("stable"), Some(100)), canary.clone()])] }),
    );
    let desired = DesiredTraffic {
        header_routes: vec![header_route("header-1")],
        ..weights(0)
    };
    let after = apply_first(&config, &object, &desired);
    assert_eq!(
        after["spec"]["http"][0]["route"],
        json!([{ "destination": canary["destination"], "weight": 100 }])
    );
}

#[test]
fn mirror_route_copies_the_split_and_mirrors_to_canary() {
    let config = named_config();
    let desired = DesiredTraffic {
        mirror_routes: vec![mirror_route("mirror-1", 35)],
        ..weights(20)
    };
    let after = apply_first(&config, &user_routes(), &desired);
    assert_eq!(http_names(&after), ["mirror-1", "primary", "admin"]);
    assert_eq!(
        after["spec"]["http"][0],
        json!({
            "name": "mirror-1",
            "match": [{ "method": { "exact": "GET" }, "uri": { "prefix": "/api" } }],
            "route": [
                { "destination": { "host": CANARY }, "weight": 20 },
                { "destination": { "host": STABLE }, "weight": 80 },
            ],
            "mirror": { "host": CANARY },
            "mirrorPercentage": { "value": 35 },
        })
    );
    // The next weight step updates the mirror route in place, as Argo's setWeight does.
    let next = DesiredTraffic {
        mirror_routes: vec![mirror_route("mirror-1", 35)],
        ..weights(50)
    };
    let patch = render_first(&config, &after, &next);
    assert!(
        patch
            .iter()
            .all(|op| !matches!(op, json_patch::PatchOperation::Add(_))),
        "no re-insert: {patch:?}"
    );
    let stepped = apply_first(&config, &after, &next);
    assert_eq!(stepped["spec"]["http"][0]["route"][0]["weight"], json!(50));
    assert_eq!(stepped["spec"]["http"][1]["route"][0]["weight"], json!(50));
}

#[test]
fn managed_routes_follow_managed_routes_order_and_are_removed_when_not_desired() {
    let mut config = named_config();
    config.managed_routes = vec!["mirror-1".into(), "header-1".into()];
    let both = DesiredTraffic {
        header_routes: vec![header_route("header-1")],
        mirror_routes: vec![mirror_route("mirror-1", 10)],
        ..weights(10)
    };
    let after = apply_first(&config, &user_routes(), &both);
    assert_eq!(
        http_names(&after),
        ["mirror-1", "header-1", "primary", "admin"]
    );
    assert_eq!(
        observe_first(&config, &after).managed_routes,
        ["mirror-1", "header-1"]
    );

    let header_only = DesiredTraffic {
        mirror_routes: vec![],
        ..both.clone()
    };
    let after = apply_first(&config, &after, &header_only);
    assert_eq!(http_names(&after), ["header-1", "primary", "admin"]);

    let reset = apply_first(&config, &after, &DesiredTraffic::all_stable());
    assert_eq!(http_names(&reset), ["primary", "admin"]);
    let original_at_zero = user_routes();
    assert_eq!(
        reset, original_at_zero,
        "back to exactly what the user wrote (weights were 0/100)"
    );
}

#[test]
fn a_managed_route_moved_by_someone_is_put_back_on_top() {
    let config = named_config();
    let desired = DesiredTraffic {
        header_routes: vec![header_route("header-1")],
        ..weights(10)
    };
    let mut after = apply_first(&config, &user_routes(), &desired);
    if let Some(http) = after
        .pointer_mut("/spec/http")
        .and_then(Value::as_array_mut)
    {
        http.rotate_left(1);
    }
    assert_eq!(http_names(&after), ["primary", "admin", "header-1"]);
    let repaired = apply_first(&config, &after, &desired);
    assert_eq!(http_names(&repaired), ["header-1", "primary", "admin"]);
}

#[test]
fn a_user_route_that_is_not_managed_is_never_removed() {
    let config = named_config();
    let mut object = user_routes();
    object["spec"]["http"][1]["name"] = json!("header-2");
    let after = apply_first(&config, &object, &DesiredTraffic::all_stable());
    assert_eq!(http_names(&after), ["primary", "header-2"]);
}

#[test]
fn mirror_route_copies_the_first_listed_route_like_argo() {
    let mut config = config();
    config.virtual_services = vec![vs_ref("web", &["b", "a"])];
    let b = http_route(
        Some("b"),
        vec![
            dest(STABLE, None, Some(90)),
            dest("legacy", None, Some(10)),
            dest(CANARY, None, Some(0)),
        ],
    );
    let object = virtual_service(json!({ "http": [split_route(Some("a"), 0, 100), b] }));
    let desired = DesiredTraffic {
        mirror_routes: vec![mirror_route("mirror-1", 5)],
        ..weights(10)
    };
    let after = apply_first(&config, &object, &desired);
    assert_eq!(http_names(&after), ["mirror-1", "a", "b"]);
    let copied: Vec<Option<u64>> = (0..3).map(|j| weight_at(&after, "http", 0, j)).collect();
    assert_eq!(
        copied,
        [Some(90), Some(10), Some(10)],
        "stable 100-10, legacy kept, canary 10"
    );
}
