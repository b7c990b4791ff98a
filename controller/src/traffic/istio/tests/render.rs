//! Weight rendering: which destinations get which weight, in which routes, and what survives.

use serde_json::{Value, json};

use super::fixtures::*;
use crate::traffic::istio::config::{TcpRouteRef, TlsRouteRef, VirtualServiceRef};
use crate::traffic::istio::virtual_service::{self, VirtualServiceObservation};

/// The weights of every listed (route, entry) pair after rendering `canary` against `object`.
struct Case {
    name: &'static str,
    config: crate::traffic::istio::IstioConfig,
    object: Value,
    canary: u8,
    /// (list, route index, entry index, expected weight)
    expect: Vec<(&'static str, usize, usize, Option<u64>)>,
    selected_http: Vec<&'static str>,
}

fn cases() -> Vec<Case> {
    let mut named = config();
    named.virtual_services = vec![vs_ref("web", &["primary", "secondary"])];
    let mut tls = config();
    tls.virtual_services[0].tls_routes = vec![TlsRouteRef {
        port: Some(443),
        sni_hosts: vec!["b.example.com".into(), "a.example.com".into()],
    }];
    let mut tcp = config();
    tcp.virtual_services[0].tcp_routes = vec![TcpRouteRef { port: Some(3306) }];
    vec![
        Case {
            name: "host-level, single unnamed route",
            config: config(),
            object: virtual_service(json!({ "http": [split_route(None, 0, 100)] })),
            canary: 10,
            expect: vec![("http", 0, 0, Some(10)), ("http", 0, 1, Some(90))],
            selected_http: vec![""],
        },
        Case {
            name: "hosts written as FQDN and ns-qualified match the short service names",
            config: config(),
            object: virtual_service(json!({ "http": [http_route(Some("r"), vec![
                dest("web-stable.shop", None, Some(100)),
                dest("web-canary.shop.svc.cluster.local", None, Some(0)),
            ])] })),
            canary: 25,
            expect: vec![("http", 0, 0, Some(75)), ("http", 0, 1, Some(25))],
            selected_http: vec!["r"],
        },
        Case {
            name: "subset-level split on one host",
            config: subset_config(),
            object: virtual_service(json!({ "http": [http_route(None, vec![
                dest("web", Some("stable"), Some(100)),
                dest("web", Some("canary"), Some(0)),
            ])] })),
            canary: 50,
            expect: vec![("http", 0, 0, Some(50)), ("http", 0, 1, Some(50))],
            selected_http: vec![""],
        },
        Case {
            name: "named http routes; unrelated routes and third destinations untouched",
            config: named,
            object: virtual_service(json!({ "http": [
                http_route(Some("other"), vec![dest("reviews", None, Some(100))]),
                split_route(Some("secondary"), 5, 95),
                http_route(Some("primary"), vec![
                    dest(CANARY, None, Some(0)), dest(STABLE, None, Some(90)), dest("legacy", None, Some(10)),
                ]),
            ] })),
            canary: 30,
            expect: vec![
                ("http", 0, 0, Some(100)),
                ("http", 1, 0, Some(30)),
                ("http", 1, 1, Some(70)),
                ("http", 2, 0, Some(30)),
                ("http", 2, 1, Some(70)),
                ("http", 2, 2, Some(10)),
            ],
            selected_http: vec!["primary", "secondary"],
        },
        Case {
            name: "tls routes matched by port and SNI hosts (as a set)",
            config: tls,
            object: virtual_service(json!({ "tls": [
                { "match": [{ "port": 443, "sniHosts": ["a.example.com"] }, { "port": 443, "sniHosts": ["b.example.com"] }],
                  "route": [dest(CANARY, None, Some(0)), dest(STABLE, None, Some(100))] },
                { "match": [{ "port": 8443, "sniHosts": ["a.example.com", "b.example.com"] }],
                  "route": [dest(CANARY, None, Some(0)), dest(STABLE, None, Some(100))] },
            ] })),
            canary: 20,
            expect: vec![
                ("tls", 0, 0, Some(20)),
                ("tls", 0, 1, Some(80)),
                ("tls", 1, 0, Some(0)),
                ("tls", 1, 1, Some(100)),
            ],
            selected_http: vec![],
        },
        Case {
            name: "tcp routes matched by port",
            config: tcp,
            object: virtual_service(json!({ "tcp": [
                { "match": [{ "port": 5432 }], "route": [dest(CANARY, None, Some(0)), dest(STABLE, None, Some(100))] },
                { "match": [{ "port": 3306 }], "route": [dest(STABLE, None, Some(100)), dest(CANARY, None, Some(0))] },
            ] })),
            canary: 100,
            expect: vec![
                ("tcp", 0, 0, Some(0)),
                ("tcp", 0, 1, Some(100)),
                ("tcp", 1, 0, Some(0)),
                ("tcp", 1, 1, Some(100)),
            ],
            selected_http: vec![],
        },
        Case {
            name: "a missing weight is added",
            config: config(),
            object: virtual_service(
                json!({ "http": [http_route(None, vec![dest(CANARY, None, None), dest(STABLE, None, Some(100))])] }),
            ),
            canary: 5,
            expect: vec![("http", 0, 0, Some(5)), ("http", 0, 1, Some(95))],
            selected_http: vec![""],
        },
    ]
}

#[test]
fn weights_go_to_the_right_destinations_and_nothing_else_changes() {
    for case in cases() {
        let after = apply_first(&case.config, &case.object, &weights(case.canary));
        for (kind, i, j, expected) in &case.expect {
            assert_eq!(
                weight_at(&after, kind, *i, *j),
                *expected,
                "{}: {kind}[{i}].route[{j}]",
                case.name
            );
        }
        assert_eq!(
            stripped(&after, &[], &case.selected_http),
            stripped(&case.object, &[], &case.selected_http),
            "{}: only weights changed",
            case.name
        );
        assert_eq!(
            observe_first(&case.config, &after).canary_weight,
            Some(case.canary),
            "{}",
            case.name
        );
        assert!(
            render_first(&case.config, &after, &weights(case.canary))
                .0
                .is_empty(),
            "{}: idempotent",
            case.name
        );
    }
}

#[test]
fn tcp_route_selection_flips_the_weights_of_the_matching_route_only() {
    let case = cases()
        .into_iter()
        .find(|c| c.name.starts_with("tcp"))
        .expect("tcp case");
    let after = apply_first(&case.config, &case.object, &weights(40));
    assert_eq!(
        weight_at(&after, "tcp", 0, 0),
        Some(0),
        "port 5432 untouched"
    );
    assert_eq!(
        (
            weight_at(&after, "tcp", 1, 0),
            weight_at(&after, "tcp", 1, 1)
        ),
        (Some(60), Some(40))
    );
}

#[test]
fn an_object_that_already_matches_renders_an_empty_patch() {
    let object = virtual_service(json!({ "http": [split_route(None, 20, 80)] }));
    assert!(render_first(&config(), &object, &weights(20)).0.is_empty());
    // An absent canary weight is 0 to Istio: nothing to write to reach 0.
    let absent = virtual_service(
        json!({ "http": [http_route(None, vec![dest(CANARY, None, None), dest(STABLE, None, Some(100))])] }),
    );
    assert!(render_first(&config(), &absent, &weights(0)).0.is_empty());
    assert_eq!(observe_first(&config(), &absent).canary_weight, Some(0));
}

#[test]
fn implicit_selection_ignores_managed_routes() {
    let mut header = split_route(Some("header-1"), 0, 100);
    header["route"] = json!([dest(CANARY, None, Some(100))]);
    let object = virtual_service(json!({ "http": [header, split_route(None, 0, 100)] }));
    let after = apply_first(&config(), &object, &weights(10));
    assert_eq!(
        http_names(&after),
        vec![""],
        "header route removed (not desired)"
    );
    assert_eq!(
        (
            weight_at(&after, "http", 0, 0),
            weight_at(&after, "http", 0, 1)
        ),
        (Some(10), Some(90))
    );
}

#[test]
fn several_virtual_services_are_rendered_and_observed_together() {
    let mut config = config();
    config.virtual_services = vec![vs_ref("web", &[]), vs_ref("mesh/web-internal", &["main"])];
    let public = virtual_service(json!({ "http": [split_route(None, 0, 100)] }));
    let mut internal = virtual_service(json!({ "http": [http_route(Some("main"), vec![
        dest("web-canary.shop.svc.cluster.local", None, Some(0)),
        dest("web-stable.shop.svc.cluster.local", None, Some(100)),
    ])] }));
    internal["metadata"]["namespace"] = json!("mesh");
    let desired = weights(35);
    let public = applied(&config, &config.virtual_services[0], &public, &desired);
    let internal_after = applied(&config, &config.virtual_services[1], &internal, &desired);
    let observe = |vs: &VirtualServiceRef, object: &Value| {
        virtual_service::observe(&config, vs, object).expect("observe")
    };
    let both = [
        observe(&config.virtual_services[0], &public),
        observe(&config.virtual_services[1], &internal_after),
    ];
    assert_eq!(virtual_service::combine(&both).canary_weight, Some(35));
    let partial = [
        both[0].clone(),
        observe(&config.virtual_services[1], &internal),
    ];
    assert_eq!(
        virtual_service::combine(&partial).canary_weight,
        None,
        "one VirtualService still at 0"
    );
}

#[test]
fn short_hosts_resolve_in_the_virtual_service_namespace() {
    // In namespace `mesh`, `web-canary` means web-canary.mesh: not the Rollout's service.
    let mut config = config();
    config.virtual_services = vec![vs_ref("mesh/web", &[])];
    let mut object = virtual_service(json!({ "http": [split_route(None, 0, 100)] }));
    object["metadata"]["namespace"] = json!("mesh");
    let message = render_error(&config, &object, &weights(10));
    assert_eq!(
        message,
        "VirtualService mesh/web http route #0 has no destination for canary service \"web-canary\""
    );
}

#[test]
fn combine_requires_agreement_on_weights_and_managed_routes() {
    let obs = |w: Option<u8>, routes: &[&str]| VirtualServiceObservation {
        canary_weight: w,
        managed_routes: routes.iter().map(|r| r.to_string()).collect(),
    };
    let combined = virtual_service::combine(&[obs(Some(10), &["a"]), obs(Some(10), &["a"])]);
    assert_eq!(
        (combined.canary_weight, combined.managed_routes),
        (Some(10), vec!["a".to_owned()])
    );
    let combined = virtual_service::combine(&[obs(Some(10), &["a"]), obs(Some(10), &[])]);
    assert_eq!(
        (combined.canary_weight, combined.managed_routes),
        (None, vec!["a".to_owned()])
    );
    assert_eq!(
        virtual_service::combine(&[obs(Some(10), &[]), obs(Some(20), &[])]).canary_weight,
        None
    );
    assert_eq!(virtual_service::combine(&[]).canary_weight, None);
}

#[test]
fn weights_disagreeing_inside_one_route_observe_as_unknown() {
    let object = virtual_service(json!({ "http": [split_route(None, 30, 30)] }));
    assert_eq!(observe_first(&config(), &object).canary_weight, None);
    let after = apply_first(&config(), &object, &weights(30));
    assert_eq!(observe_first(&config(), &after).canary_weight, Some(30));
}
