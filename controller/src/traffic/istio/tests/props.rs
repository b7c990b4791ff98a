//! Property tests: on random VirtualServices the rendered patch reaches the desired state, changes
//! nothing else, and is idempotent; on random JSON nothing panics.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::fixtures::*;
use crate::traffic::istio::destination_rule;
use crate::traffic::istio::virtual_service;
use crate::traffic::{DesiredTraffic, SubsetHashes};

fn weight() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), (0u64..=100).prop_map(Some)]
}

/// The canary or stable host written in any of the equivalent forms.
fn host(service: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(service.to_owned()),
        Just(format!("{service}.{NS}")),
        Just(format!("{service}.{NS}.svc")),
        Just(format!("{service}.{NS}.svc.cluster.local")),
    ]
}

/// User fields that must survive: a random subset of timeout, retries, fault, headers, match.
fn user_fields() -> impl Strategy<Value = Map<String, Value>> {
    (any::<bool>(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(
        |(timeout, retries, fault, matches)| {
            let mut fields = Map::new();
            if timeout {
                fields.insert("timeout".into(), json!("3s"));
            }
            if retries {
                fields.insert(
                    "retries".into(),
                    json!({ "attempts": 2, "retryOn": "gateway-error" }),
                );
            }
            if fault {
                fields.insert(
                    "fault".into(),
                    json!({ "delay": { "fixedDelay": "1s", "percentage": { "value": 0.5 } } }),
                );
            }
            let entries: Vec<Value> = (0..matches)
                .map(|i| json!({ "uri": { "prefix": format!("/v{i}") } }))
                .collect();
            if !entries.is_empty() {
                fields.insert("match".into(), Value::Array(entries));
            }
            fields
        },
    )
}

fn route(name: Option<String>, entries: Vec<Value>, fields: Map<String, Value>) -> Value {
    let mut route = fields;
    route.insert("route".into(), Value::Array(entries));
    if let Some(name) = name {
        route.insert("name".into(), Value::String(name));
    }
    Value::Object(route)
}

fn unrelated_route(index: usize) -> impl Strategy<Value = Value> {
    (any::<bool>(), weight(), user_fields()).prop_map(move |(named, w, fields)| {
        let name = named.then(|| format!("user-{index}"));
        route(
            name,
            vec![
                dest("reviews", None, w),
                dest("ratings", None, w.map(|w| 100 - w)),
            ],
            fields,
        )
    })
}

/// The selected route `primary`: canary and stable in either order, optional third destination.
fn primary(subsets: bool) -> impl Strategy<Value = Value> {
    (
        host(CANARY),
        host(STABLE),
        weight(),
        weight(),
        any::<bool>(),
        any::<bool>(),
        user_fields(),
    )
        .prop_map(move |(canary, stable, cw, sw, swap, legacy, fields)| {
            let mut entries = if subsets {
                // Subset-level: one host, told apart by subset only.
                vec![
                    dest(&canary, Some("canary"), cw),
                    dest(&canary, Some("stable"), sw),
                ]
            } else {
                vec![dest(&canary, None, cw), dest(&stable, None, sw)]
            };
            if swap {
                entries.swap(0, 1);
            }
            if legacy {
                entries.insert(1, dest("legacy", None, Some(0)));
            }
            route(Some("primary".into()), entries, fields)
        })
}

/// A stale managed route from an earlier step, somewhere in the list.
fn stale_managed() -> impl Strategy<Value = Option<(usize, Value)>> {
    prop::option::of((0usize..4, prop_oneof![Just("header-1"), Just("mirror-1")])).prop_map(
        |stale| {
            stale.map(|(at, name)| {
                (
                    at,
                    json!({ "name": name, "route": [dest(CANARY, None, Some(100))] }),
                )
            })
        },
    )
}

/// `(subset-level?, VirtualService)`.
fn virtual_service_strategy() -> impl Strategy<Value = (bool, Value)> {
    any::<bool>().prop_flat_map(|subsets| (Just(subsets), virtual_service_with(subsets)))
}

fn virtual_service_with(subsets: bool) -> impl Strategy<Value = Value> {
    let before = prop::collection::vec(0usize..1, 0..3);
    let after = prop::collection::vec(0usize..1, 0..3);
    (before, after, primary(subsets), stale_managed(), any::<bool>())
        .prop_flat_map(|(before, after, primary, stale, tls)| {
            let count = before.len() + after.len();
            let routes = (0..count).map(unrelated_route).collect::<Vec<_>>();
            (routes, Just(before.len()), Just(primary), Just(stale), Just(tls))
        })
        .prop_map(|(mut routes, split_at, primary, stale, tls)| {
            routes.insert(split_at, primary);
            if let Some((at, managed)) = stale {
                routes.insert(at.min(routes.len()), managed);
            }
            let mut spec = json!({ "http": routes });
            if tls {
                spec["tls"] = json!([{ "match": [{ "port": 443, "sniHosts": ["x"] }], "route": [dest(CANARY, None, Some(0))] }]);
            }
            virtual_service(spec)
        })
}

fn desired_strategy() -> impl Strategy<Value = DesiredTraffic> {
    (0u8..=100, any::<bool>(), prop::option::of(0u8..=100)).prop_map(|(canary, header, mirror)| {
        DesiredTraffic {
            canary_weight: canary,
            header_routes: if header {
                vec![header_route("header-1")]
            } else {
                vec![]
            },
            mirror_routes: mirror
                .map(|p| vec![mirror_route("mirror-1", p)])
                .unwrap_or_default(),
            subsets: None,
        }
    })
}

fn wanted_names(desired: &DesiredTraffic) -> Vec<String> {
    let mut names = Vec::new();
    if !desired.header_routes.is_empty() {
        names.push("header-1".to_owned());
    }
    if !desired.mirror_routes.is_empty() {
        names.push("mirror-1".to_owned());
    }
    names
}

proptest! {
    #[test]
    fn rendered_patch_reaches_desired_state_and_changes_nothing_else(
        (subsets, object) in virtual_service_strategy(),
        desired in desired_strategy(),
    ) {
        let mut config = if subsets { subset_config() } else { config() };
        config.virtual_services = vec![vs_ref("web", &["primary"])];
        let after = apply_first(&config, &object, &desired);
        let observed = observe_first(&config, &after);
        prop_assert_eq!(observed.canary_weight, Some(desired.canary_weight));
        prop_assert_eq!(observed.managed_routes, wanted_names(&desired));
        let managed = config.managed_routes.clone();
        prop_assert_eq!(stripped(&after, &managed, &["primary"]), stripped(&object, &managed, &["primary"]));
        prop_assert!(render_first(&config, &after, &desired).0.is_empty());
    }

    #[test]
    fn arbitrary_json_never_panics(object in arbitrary_object(), canary in 0u8..=120) {
        let desired = DesiredTraffic { header_routes: vec![header_route("header-1")], ..weights(canary) };
        let hashes = SubsetHashes { stable: "a".into(), canary: "b".into() };
        for config in [config(), subset_config()] {
            for vs_ref in [vs_ref("web", &[]), vs_ref("web", &["primary"])] {
                let _ = virtual_service::render(&config, &vs_ref, &object, &desired);
                let _ = virtual_service::observe(&config, &vs_ref, &object);
            }
        }
        let _ = destination_rule::render(&subset_config(), &object, &hashes);
        let _ = destination_rule::observe(&subset_config(), &object);
    }
}

/// JSON built from the keys the router reads, so random objects reach deep into the parser.
fn arbitrary_object() -> impl Strategy<Value = Value> {
    let keys = prop_oneof![
        Just("spec"),
        Just("http"),
        Just("tls"),
        Just("tcp"),
        Just("route"),
        Just("destination"),
        Just("host"),
        Just("subset"),
        Just("weight"),
        Just("name"),
        Just("match"),
        Just("port"),
        Just("sniHosts"),
        Just("subsets"),
        Just("labels"),
        Just("metadata"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-5i64..200).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("web-canary"),
            Just("web-stable"),
            Just("primary"),
            Just("canary"),
            Just("stable"),
            Just("header-1")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|map| Value::Object(
                map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}
