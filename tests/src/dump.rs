//! The state of a scenario's namespace, printed when it fails: the Rollout, its ReplicaSets and
//! pods, the Services, the mesh objects and the events, so a failure can be read without
//! re-running it.
//!
//! Guarantees: never fails (a part that cannot be read says so in the text).

use std::fmt::Write;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;
use sluice_controller::traffic::istio::{destination_rule_resource, virtual_service_resource};
use sluice_crds::Rollout;

use crate::fixtures::HASH_LABEL;

/// Everything worth reading about `ns`, as text.
pub async fn namespace(client: &kube::Client, ns: &str) -> String {
    let mut out = format!("===== state of namespace {ns} =====\n");
    rollouts(client, ns, &mut out).await;
    replica_sets(client, ns, &mut out).await;
    pods(client, ns, &mut out).await;
    services(client, ns, &mut out).await;
    mesh(client, ns, &mut out).await;
    events(client, ns, &mut out).await;
    out.push_str("===== end of state =====\n");
    out
}

/// Prints [`namespace`] to stderr.
pub async fn print(client: &kube::Client, ns: &str) {
    eprintln!("{}", namespace(client, ns).await);
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "--- {title}");
}

async fn rollouts(client: &kube::Client, ns: &str, out: &mut String) {
    section(out, "Rollouts");
    let api: Api<Rollout> = Api::namespaced(client.clone(), ns);
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            for mut r in list.items {
                r.metadata.managed_fields = None;
                let text = sluice_crds::to_yaml(&r).unwrap_or_else(|e| format!("{e}"));
                let _ = writeln!(out, "{text}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "cannot list: {e}");
        }
    }
}

async fn replica_sets(client: &kube::Client, ns: &str, out: &mut String) {
    section(
        out,
        "ReplicaSets (name hash spec/ready/available annotations)",
    );
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            for rs in list.items {
                let labels = rs.metadata.labels.clone().unwrap_or_default();
                let status = rs.status.clone().unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{} hash={} spec={} ready={} available={} rv={} annotations={:?}",
                    rs.metadata.name.clone().unwrap_or_default(),
                    labels.get(HASH_LABEL).cloned().unwrap_or_default(),
                    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1),
                    status.ready_replicas.unwrap_or(0),
                    status.available_replicas.unwrap_or(0),
                    rs.metadata.resource_version.clone().unwrap_or_default(),
                    rs.metadata.annotations.unwrap_or_default(),
                );
            }
        }
        Err(e) => {
            let _ = writeln!(out, "cannot list: {e}");
        }
    }
}

async fn pods(client: &kube::Client, ns: &str, out: &mut String) {
    section(out, "Pods (name hash phase ready)");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            for pod in list.items {
                let labels = pod.metadata.labels.clone().unwrap_or_default();
                let status = pod.status.unwrap_or_default();
                let ready = status
                    .conditions
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                let _ = writeln!(
                    out,
                    "{} hash={} phase={} ready={ready}",
                    pod.metadata.name.unwrap_or_default(),
                    labels.get(HASH_LABEL).cloned().unwrap_or_default(),
                    status.phase.unwrap_or_default(),
                );
            }
        }
        Err(e) => {
            let _ = writeln!(out, "cannot list: {e}");
        }
    }
}

async fn services(client: &kube::Client, ns: &str, out: &mut String) {
    section(out, "Services (name selector)");
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            for s in list.items {
                let _ = writeln!(
                    out,
                    "{} selector={:?}",
                    s.metadata.name.unwrap_or_default(),
                    s.spec.and_then(|s| s.selector).unwrap_or_default()
                );
            }
        }
        Err(e) => {
            let _ = writeln!(out, "cannot list: {e}");
        }
    }
}

async fn mesh(client: &kube::Client, ns: &str, out: &mut String) {
    for (title, resource) in [
        ("VirtualServices", virtual_service_resource()),
        ("DestinationRules", destination_rule_resource()),
    ] {
        section(out, title);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                for o in list.items {
                    let spec = o.data.get("spec").cloned().unwrap_or(Value::Null);
                    let _ = writeln!(
                        out,
                        "{} (rv {}):\n{}",
                        o.metadata.name.unwrap_or_default(),
                        o.metadata.resource_version.unwrap_or_default(),
                        serde_yaml::to_string(&spec).unwrap_or_default()
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(out, "cannot list: {e}");
            }
        }
    }
}

async fn events(client: &kube::Client, ns: &str, out: &mut String) {
    section(out, "Events (oldest first: type reason object count note)");
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by_key(|e| {
                e.event_time
                    .as_ref()
                    .map(|t| t.0)
                    .or(e.deprecated_first_timestamp.as_ref().map(|t| t.0))
            });
            for e in items {
                let count = e.series.as_ref().map_or(1, |s| s.count);
                let _ = writeln!(
                    out,
                    "{} {} {}/{} x{count} {}",
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.regarding
                        .as_ref()
                        .and_then(|r| r.kind.clone())
                        .unwrap_or_default(),
                    e.regarding
                        .as_ref()
                        .and_then(|r| r.name.clone())
                        .unwrap_or_default(),
                    e.note.unwrap_or_default()
                );
            }
        }
        Err(e) => {
            let _ = writeln!(out, "cannot list: {e}");
        }
    }
}
