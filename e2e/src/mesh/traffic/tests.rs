//! Generator tests over hand-built worlds: split, header and mirror routes, failures, balancing
//! and pacing, and Services called directly by their selectors.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::mesh::behaviour::Behaviour;
use crate::mesh::load::Load;
use crate::mesh::routes::parse_http_routes;
use crate::mesh::world::{ServiceLoad, VirtualServiceInfo};

#[derive(Default)]
struct Recorded {
    reports: Vec<Report>,
    unrouted: usize,
}

impl Sink for Recorded {
    fn record(&mut self, report: &Report) {
        self.reports.push(report.clone());
    }
    fn unrouted(&mut self) {
        self.unrouted += 1;
    }
}

impl Recorded {
    fn count(&self, predicate: impl Fn(&Report) -> bool) -> usize {
        self.reports.iter().filter(|r| predicate(r)).count()
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn pod(name: &str, app: &str, error_rate: f64) -> PodInfo {
    PodInfo {
        name: name.to_owned(),
        labels: labels(&[("app", app)]),
        workload: app.into(),
        version: format!("{app}-hash").into(),
        behaviour: Behaviour {
            error_rate,
            ..Behaviour::default()
        },
    }
}

fn split(stable: u32, canary: u32) -> Value {
    json!([
        {"destination": {"host": "stable"}, "weight": stable},
        {"destination": {"host": "canary"}, "weight": canary},
    ])
}

/// Services `stable` (pods s1, s2) and `canary` (pod c1, half errors), `empty` (no pods), and
/// one VirtualService with `http` routes and `load`.
fn world(http: Value, load: Load) -> World {
    let mut world = World::default();
    for app in ["stable", "canary", "empty"] {
        let key = ("shop".to_owned(), app.to_owned());
        world.services.insert(key, labels(&[("app", app)]));
    }
    let pods = vec![
        pod("s1", "stable", 0.0),
        pod("s2", "stable", 0.0),
        pod("c1", "canary", 0.5),
    ];
    world.pods.insert("shop".to_owned(), pods);
    world.virtual_services.push(VirtualServiceInfo {
        namespace: "shop".into(),
        name: "web".into(),
        hosts: vec!["web".into()],
        routes: parse_http_routes(&json!({ "http": http })),
        load,
    });
    world
}

fn load(rps: f64) -> Load {
    Load {
        rps,
        headers: vec![],
    }
}

/// Runs `ticks` ticks of 100 ms with seed 42.
fn run(world: &World, ticks: usize) -> Recorded {
    let mut generator = Generator::new(42, Duration::from_millis(100));
    let mut recorded = Recorded::default();
    for _ in 0..ticks {
        generator.tick(world, &mut recorded);
    }
    recorded
}

#[test]
fn weights_split_the_requests() {
    let world = world(json!([{ "route": split(80, 20) }]), load(1000.0));
    let recorded = run(&world, 50);
    assert_eq!(recorded.reports.len(), 5000);
    let canary = recorded.count(|r| &*r.service.name == "canary");
    assert!((900..1100).contains(&canary), "canary got {canary} of 5000");
    let canary_errors = recorded.count(|r| &*r.workload == "canary" && r.code == 500);
    assert!(canary_errors * 10 > canary * 4 && canary_errors * 10 < canary * 6);
    assert_eq!(
        recorded.count(|r| &*r.workload == "stable" && r.code != 200),
        0
    );
}

#[test]
fn zero_weight_gets_nothing() {
    let world = world(json!([{ "route": split(100, 0) }]), load(1000.0));
    assert_eq!(run(&world, 10).count(|r| &*r.service.name == "canary"), 0);
}

#[test]
fn header_route_takes_requests_with_the_header() {
    let header = HeaderShare {
        name: "x-canary".into(),
        value: "true".into(),
        share: 0.1,
    };
    let http = json!([
        {"match": [{"headers": {"x-canary": {"exact": "true"}}}],
         "route": [{"destination": {"host": "canary"}}]},
        {"route": split(100, 0)},
    ]);
    let world = world(
        http,
        Load {
            rps: 1000.0,
            headers: vec![header],
        },
    );
    let recorded = run(&world, 50);
    let canary = recorded.count(|r| &*r.service.name == "canary");
    assert!(
        (400..600).contains(&canary),
        "canary got {canary} of 5000 at a 10% header share"
    );
}

#[test]
fn mirror_copies_are_recorded_at_the_mirror() {
    let http = json!([{
        "route": split(100, 0),
        "mirror": {"host": "canary"},
        "mirrorPercentage": {"value": 50.0},
    }]);
    let recorded = run(&world(http, load(1000.0)), 20);
    let primary = recorded.count(|r| !r.mirrored);
    let copies = recorded.count(|r| r.mirrored);
    assert_eq!(primary, 2000);
    assert!(
        (900..1100).contains(&copies),
        "{copies} copies of 2000 at 50%"
    );
    assert_eq!(
        recorded.count(|r| r.mirrored && &*r.service.name != "canary"),
        0
    );
}

#[test]
fn a_mirror_without_pods_records_nothing() {
    let http = json!([{ "route": split(100, 0), "mirror": {"host": "empty"} }]);
    let recorded = run(&world(http, load(100.0)), 10);
    assert_eq!(recorded.count(|r| r.mirrored), 0);
    assert_eq!(recorded.reports.len(), 100);
}

#[test]
fn no_ready_pods_answer_503_uh_and_unknown_hosts_503_nc() {
    let http = json!([{ "route": [
        {"destination": {"host": "empty"}, "weight": 50},
        {"destination": {"host": "nowhere"}, "weight": 50},
    ]}]);
    let recorded = run(&world(http, load(100.0)), 10);
    assert_eq!(recorded.count(|r| r.code == 503), 100);
    let uh = recorded.count(|r| r.flags == ResponseFlags::NoHealthyUpstream);
    let nc = recorded.count(|r| r.flags == ResponseFlags::NoCluster);
    assert_eq!(uh + nc, 100);
    assert!(uh > 20 && nc > 20, "uh {uh} nc {nc}");
    assert_eq!(recorded.count(|r| &*r.workload != UNKNOWN), 0);
}

#[test]
fn pods_take_turns() {
    let mut world = world(json!([{ "route": split(100, 0) }]), load(40.0));
    // Name each pod's workload after the pod, to see which pod answered.
    for pod in world.pods.get_mut("shop").into_iter().flatten() {
        pod.workload = pod.name.clone().into();
    }
    let recorded = run(&world, 1);
    let order: Vec<&str> = recorded.reports.iter().map(|r| &*r.workload).collect();
    assert_eq!(order, ["s1", "s2", "s1", "s2"]);
}

#[test]
fn unmatched_requests_are_unrouted() {
    let http = json!([{"match": [{"uri": {"exact": "/admin"}}], "route": split(100, 0)}]);
    let recorded = run(&world(http, load(100.0)), 10);
    assert_eq!((recorded.reports.len(), recorded.unrouted), (0, 100));
}

#[test]
fn fractional_rates_are_paced_over_ticks() {
    let recorded = run(&world(json!([{ "route": split(100, 0) }]), load(5.0)), 20);
    assert_eq!(recorded.reports.len(), 10, "5 rps for 2 s");
}

#[test]
fn the_same_seed_gives_the_same_requests() {
    let world = world(json!([{ "route": split(50, 50) }]), load(500.0));
    assert_eq!(run(&world, 5).reports, run(&world, 5).reports);
}

// ---------------------------------------------------------------------------------------------
// Services called directly (blue-green's active and preview Services).

const HASH: &str = "rollouts-pod-template-hash";

fn version_pod(name: &str, hash: &str, error_rate: f64) -> PodInfo {
    PodInfo {
        name: name.to_owned(),
        labels: labels(&[("app", "web"), (HASH, hash)]),
        workload: "web".into(),
        version: hash.into(),
        behaviour: Behaviour {
            error_rate,
            ..Behaviour::default()
        },
    }
}

fn service_load(name: &str, rps: f64) -> ServiceLoad {
    ServiceLoad {
        namespace: "shop".into(),
        destination: Destination {
            host: name.into(),
            subset: None,
        },
        rps,
    }
}

/// Versions `blue` (2 pods, healthy) and `green` (1 pod, half errors); `web-active` selects
/// `active`, `web-preview` selects `preview`, called at 100 and 10 rps. No VirtualService.
fn blue_green(active: &str, preview: &str) -> World {
    let mut world = World::default();
    for (service, hash) in [("web-active", active), ("web-preview", preview)] {
        let key = ("shop".to_owned(), service.to_owned());
        world
            .services
            .insert(key, labels(&[("app", "web"), (HASH, hash)]));
    }
    let pods = vec![
        version_pod("web-blue-1", "blue", 0.0),
        version_pod("web-blue-2", "blue", 0.0),
        version_pod("web-green-1", "green", 0.5),
    ];
    world.pods.insert("shop".to_owned(), pods);
    world.service_loads = vec![
        service_load("web-active", 100.0),
        service_load("web-preview", 10.0),
    ];
    world
}

fn requests(recorded: &Recorded, service: &str, version: &str) -> usize {
    recorded.count(|r| &*r.service.name == service && &*r.version == version)
}

#[test]
fn each_called_service_gets_its_rate_at_the_version_its_selector_picks() {
    let recorded = run(&blue_green("blue", "green"), 20);
    assert_eq!(recorded.reports.len(), 220, "100 + 10 rps for 2 s");
    assert_eq!(requests(&recorded, "web-active", "blue"), 200);
    assert_eq!(requests(&recorded, "web-preview", "green"), 20);
    assert_eq!(recorded.unrouted, 0);
    let active_errors = recorded.count(|r| &*r.service.name == "web-active" && r.code != 200);
    assert_eq!(active_errors, 0, "blue is healthy");
    let fqdn = &recorded.reports[0].service.fqdn;
    assert_eq!(&**fqdn, "web-active.shop.svc.cluster.local");
}

#[test]
fn a_selector_change_applies_from_the_next_tick() {
    let mut generator = Generator::new(42, Duration::from_millis(100));
    let mut recorded = Recorded::default();
    generator.tick(&blue_green("blue", "green"), &mut recorded);
    let switched = blue_green("green", "green");
    generator.tick(&switched, &mut recorded);
    let active: Vec<&str> = recorded
        .reports
        .iter()
        .filter(|r| &*r.service.name == "web-active")
        .map(|r| &*r.version)
        .collect();
    assert_eq!(active.len(), 20);
    assert!(active[..10].iter().all(|v| *v == "blue"), "{active:?}");
    assert!(active[10..].iter().all(|v| *v == "green"), "{active:?}");
}

#[test]
fn a_called_service_without_ready_pods_answers_503_uh_with_its_selected_version() {
    let recorded = run(&blue_green("blue", "gone"), 10);
    let preview: Vec<&Report> = recorded
        .reports
        .iter()
        .filter(|r| &*r.service.name == "web-preview")
        .collect();
    assert_eq!(preview.len(), 10);
    assert!(
        preview.iter().all(|r| r.code == 503
            && r.flags == ResponseFlags::NoHealthyUpstream
            && &*r.version == "gone"
            && &*r.workload == UNKNOWN),
        "{preview:?}"
    );
}

#[test]
fn called_services_and_virtual_services_are_paced_independently() {
    let mut world = world(json!([{ "route": split(100, 0) }]), load(5.0));
    world.service_loads = vec![service_load("canary", 5.0)];
    let recorded = run(&world, 20);
    assert_eq!(recorded.reports.len(), 20, "5 rps each for 2 s");
    assert_eq!(recorded.count(|r| &*r.service.name == "canary"), 10);
}
