//! Every way a spec or a mesh object can be wrong gives an `InvalidReference` whose message names
//! the object and the route or JSON path to fix; nothing panics.

use serde_json::{Value, json};

use super::fixtures::*;
use crate::traffic::istio::IstioConfig;
use crate::traffic::istio::config::{TcpRouteRef, TlsRouteRef};
use crate::traffic::{DesiredTraffic, HeaderRoute, RequestMatch};

fn named(routes: &[&str]) -> IstioConfig {
    IstioConfig {
        virtual_services: vec![vs_ref("web", routes)],
        ..config()
    }
}

fn vs(http: Value) -> Value {
    virtual_service(json!({ "http": http }))
}

#[test]
fn invalid_references_are_named_precisely() {
    let two_routes = vs(json!([
        split_route(Some("a"), 0, 100),
        split_route(Some("b"), 0, 100)
    ]));
    let no_canary = vs(json!([http_route(
        Some("primary"),
        vec![dest(STABLE, None, Some(100))]
    )]));
    let no_stable_subset = vs(json!([http_route(
        None,
        vec![dest("web", Some("canary"), Some(0))]
    )]));
    let two_canaries = vs(json!([http_route(
        None,
        vec![
            dest(CANARY, None, Some(0)),
            dest("web-canary.shop", None, Some(0)),
            dest(STABLE, None, Some(100)),
        ]
    )]));
    let mut tls = config();
    tls.virtual_services[0].tls_routes = vec![TlsRouteRef {
        port: Some(443),
        sni_hosts: vec!["a".into()],
    }];
    let mut tcp = config();
    tcp.virtual_services[0].tcp_routes = vec![TcpRouteRef { port: Some(5432) }];
    let tcp_object =
        virtual_service(json!({ "tcp": [{ "match": [{ "port": 3306 }], "route": [] }] }));
    let cases: Vec<(IstioConfig, Value, &str)> = vec![
        (
            named(&["missing"]),
            two_routes.clone(),
            "VirtualService shop/web has no http route named \"missing\"",
        ),
        (
            config(),
            two_routes,
            "VirtualService shop/web has 2 http routes; name the ones to split in the Rollout's virtualService",
        ),
        (
            named(&["primary"]),
            no_canary,
            "VirtualService shop/web http route \"primary\" has no destination for canary service \"web-canary\"",
        ),
        (
            subset_config(),
            no_stable_subset,
            "VirtualService shop/web http route #0 has no destination for stable subset \"stable\"",
        ),
        (
            config(),
            two_canaries,
            "VirtualService shop/web http route #0 has 2 destinations for canary service \"web-canary\"; exactly one is needed",
        ),
        (
            tls,
            vs(json!([])),
            "VirtualService shop/web has no tls route matching port 443 and sniHosts [\"a\"]",
        ),
        (
            tcp,
            tcp_object,
            "VirtualService shop/web has no tcp route matching port 5432",
        ),
        (
            config(),
            virtual_service(json!({})),
            "VirtualService shop/web has no http, tls or tcp route to split",
        ),
        (
            named(&["header-1"]),
            vs(json!([])),
            "route \"header-1\" is listed both as a weighted route and in managedRoutes",
        ),
    ];
    for (config, object, expected) in cases {
        assert_eq!(render_error(&config, &object, &weights(10)), expected);
    }
}

#[test]
fn malformed_objects_name_the_json_path() {
    let bad_weight = vs(json!([http_route(
        None,
        vec![
            dest(CANARY, None, None),
            json!({ "destination": { "host": STABLE }, "weight": "ninety" })
        ]
    )]));
    let cases: Vec<(Value, &str)> = vec![
        (json!(null), "VirtualService shop/web must be an object"),
        (
            json!({ "spec": [] }),
            "VirtualService shop/web: spec must be an object",
        ),
        (
            virtual_service(json!({ "http": { "route": [] } })),
            "VirtualService shop/web: spec.http must be a list",
        ),
        (
            vs(json!(["route"])),
            "VirtualService shop/web: spec.http[0] must be an object",
        ),
        (
            vs(json!([{ "name": 7 }])),
            "VirtualService shop/web: spec.http[0].name must be a string",
        ),
        (
            vs(json!([{ "route": {} }])),
            "VirtualService shop/web: spec.http[0].route must be a list",
        ),
        (
            vs(json!([{ "route": [7] }])),
            "VirtualService shop/web: spec.http[0].route[0] must be an object",
        ),
        (
            vs(json!([{ "route": [{ "destination": "web" }] }])),
            "VirtualService shop/web: spec.http[0].route[0].destination must be an object",
        ),
        (
            vs(json!([{ "route": [{ "destination": { "host": 1 } }] }])),
            "VirtualService shop/web: spec.http[0].route[0].destination.host must be a string",
        ),
        (
            bad_weight,
            "VirtualService shop/web: spec.http[0].route[1].weight must be an integer between 0 and 100",
        ),
    ];
    for (object, expected) in cases {
        assert_eq!(render_error(&config(), &object, &weights(10)), expected);
    }
}

#[test]
fn tls_and_tcp_match_fields_are_checked() {
    let mut tls = config();
    tls.virtual_services[0].tls_routes = vec![TlsRouteRef {
        port: Some(443),
        sni_hosts: vec![],
    }];
    let object = virtual_service(json!({ "tls": [{ "match": [{ "port": "443" }] }] }));
    assert_eq!(
        render_error(&tls, &object, &weights(0)),
        "VirtualService shop/web: spec.tls[0].match[0].port must be a non-negative integer"
    );
    let object = virtual_service(json!({ "tls": [{ "match": [{ "sniHosts": [1] }] }] }));
    assert_eq!(
        render_error(&tls, &object, &weights(0)),
        "VirtualService shop/web: spec.tls[0].match[0].sniHosts[0] must be a string"
    );
}

#[test]
fn managed_route_requests_that_cannot_be_honoured_are_refused() {
    let object = vs(json!([split_route(None, 0, 100)]));
    let unlisted = DesiredTraffic {
        header_routes: vec![header_route("rogue")],
        ..weights(0)
    };
    let no_match = DesiredTraffic {
        header_routes: vec![HeaderRoute {
            name: "header-1".into(),
            matches: vec![],
        }],
        ..weights(0)
    };
    let mut catch_all = mirror_route("mirror-1", 10);
    catch_all.matches.push(RequestMatch::default());
    let catch_all = DesiredTraffic {
        mirror_routes: vec![catch_all],
        ..weights(0)
    };
    let twice = DesiredTraffic {
        header_routes: vec![header_route("header-1")],
        mirror_routes: vec![mirror_route("header-1", 5)],
        ..weights(0)
    };
    let too_much = DesiredTraffic {
        mirror_routes: vec![mirror_route("mirror-1", 101)],
        ..weights(0)
    };
    let cases = [
        (
            unlisted,
            "route \"rogue\" is not listed in trafficRouting.managedRoutes",
        ),
        (
            no_match,
            "managed route \"header-1\" has no match condition; it would catch all traffic",
        ),
        (
            catch_all,
            "managed route \"mirror-1\" has no match condition; it would catch all traffic",
        ),
        (
            twice,
            "route \"header-1\" is requested twice (as header and mirror route)",
        ),
        (
            too_much,
            "mirror route \"mirror-1\" percentage 101 is above 100",
        ),
        (
            weights(101),
            "desired canary weight 101 for VirtualService shop/web is above 100",
        ),
    ];
    for (desired, expected) in cases {
        assert_eq!(render_error(&config(), &object, &desired), expected);
    }
}

#[test]
fn header_routes_need_an_http_route() {
    let mut tcp = config();
    tcp.virtual_services[0].tcp_routes = vec![TcpRouteRef { port: None }];
    let object = virtual_service(
        json!({ "tcp": [{ "route": [dest(CANARY, None, Some(0)), dest(STABLE, None, Some(100))] }] }),
    );
    let desired = DesiredTraffic {
        header_routes: vec![header_route("header-1")],
        ..weights(0)
    };
    assert_eq!(
        render_error(&tcp, &object, &desired),
        "VirtualService shop/web has no selected http route, so managed route \"header-1\" cannot be placed"
    );
}
