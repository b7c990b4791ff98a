//! Rendering of `get rollout`: pure functions from a [`Snapshot`] to lines of text.
//!
//! The layout follows `kubectl argo rollouts get rollout`: a summary (status, strategy, step
//! list, traffic weights, images, replica counts), then a tree of revisions with their
//! ReplicaSets and AnalysisRuns, then each AnalysisRun's metrics and the Rollout's
//! conditions. [`compact`] is the one-line form used by `--watch` when stdout is not a
//! terminal, so a CI log gets one readable line per change.
//!
//! Nothing here reads the clock or the terminal: the caller chooses the [`Style`].

mod compact;
mod details;
#[cfg(test)]
pub(crate) mod fixtures;
mod steps;
mod tree;

use std::collections::BTreeMap;

use kube::ResourceExt;
use sluice_crds::{Strategy, TrafficWeights};

pub use compact::compact;

use super::snapshot::{Snapshot, hash_of};
use super::style::{self, Style, Tone};

/// Width of the label column of the summary (`Namespace:` plus padding).
const LABEL: usize = 15;

/// The whole `get rollout` view.
pub fn render(s: &Snapshot, style: Style) -> Vec<String> {
    let mut lines = summary(s, style);
    lines.push(String::new());
    lines.extend(tree::render(s, style));
    lines.extend(details::analysis(s, style));
    lines.extend(details::conditions(s, style));
    lines
}

/// What a ReplicaSet is to its Rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Stable,
    Canary,
    Active,
    Preview,
}

impl Role {
    fn word(self) -> &'static str {
        match self {
            Role::Stable => "stable",
            Role::Canary => "canary",
            Role::Active => "active",
            Role::Preview => "preview",
        }
    }
}

/// The roles of the ReplicaSet with pod-template `hash` (empty for an old revision).
pub(crate) fn roles(s: &Snapshot, hash: &str) -> Vec<Role> {
    let Some(status) = &s.rollout.status else {
        return Vec::new();
    };
    let stable = status.stable_rs.as_deref();
    let mut roles = Vec::new();
    if stable == Some(hash) {
        roles.push(Role::Stable);
    }
    if status.current_pod_hash.as_deref() == Some(hash) && stable != Some(hash) {
        roles.push(match s.rollout.spec.strategy {
            Strategy::Canary(_) => Role::Canary,
            Strategy::BlueGreen(_) => Role::Preview,
        });
    }
    if let Some(bg) = &status.blue_green
        && bg.active_selector.as_deref() == Some(hash)
    {
        roles.push(Role::Active);
    }
    roles
}

/// The roles as text: `stable`, `canary`, `stable, active`, or `old`.
pub(crate) fn role_words(roles: &[Role]) -> String {
    if roles.is_empty() {
        return "old".to_owned();
    }
    roles
        .iter()
        .map(|r| r.word())
        .collect::<Vec<_>>()
        .join(", ")
}

fn label(name: &str, value: impl std::fmt::Display) -> String {
    format!("{:<LABEL$}{value}", format!("{name}:"))
}

fn summary(s: &Snapshot, style: Style) -> Vec<String> {
    let r = &s.rollout;
    let status = r.status.clone().unwrap_or_default();
    let (icon, tone) = style::rollout_phase(status.phase);
    let phase = status
        .phase
        .map_or("Unknown".to_owned(), |p| format!("{p:?}"));
    let mut lines = vec![
        label("Name", style.bold(&r.name_any())),
        label("Namespace", r.namespace().unwrap_or_default()),
        label("Status", style.paint(tone, &format!("{icon} {phase}"))),
    ];
    if let Some(message) = status.message.as_deref().filter(|m| !m.is_empty()) {
        lines.push(label("Message", message));
    }
    if status.observed_generation < r.metadata.generation {
        lines.push(label(
            "Observed",
            style.paint(
                Tone::Busy,
                "the controller has not seen the latest spec change yet",
            ),
        ));
    }
    if r.spec.paused {
        lines.push(label(
            "Paused",
            "spec.paused (resume with `kubectl sluice resume`)",
        ));
    }
    lines.extend(strategy(s, style));
    lines.extend(images(s));
    lines.extend(replicas(s));
    lines
}

fn strategy(s: &Snapshot, style: Style) -> Vec<String> {
    let r = &s.rollout;
    let status = r.status.as_ref();
    match &r.spec.strategy {
        Strategy::Canary(c) => {
            let mut lines = vec![label("Strategy", "Canary")];
            let current = status.and_then(|s| s.current_step_index);
            lines.extend(steps::render(&c.steps, current, style));
            let weights = status
                .and_then(|s| s.canary.as_ref())
                .and_then(|c| c.weights.as_ref());
            if c.traffic_routing.is_some() {
                lines.push(label("  Weights", weights_text(weights, style)));
            }
            lines
        }
        Strategy::BlueGreen(_) => {
            let bg = status.and_then(|s| s.blue_green.as_ref());
            let selector = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".into());
            vec![
                label("Strategy", "BlueGreen"),
                label(
                    "  Active",
                    selector(bg.and_then(|b| b.active_selector.as_ref())),
                ),
                label(
                    "  Preview",
                    selector(bg.and_then(|b| b.preview_selector.as_ref())),
                ),
            ]
        }
    }
}

/// `canary 20 · stable 80 · verified` (or `not verified yet`).
pub(crate) fn weights_text(weights: Option<&TrafficWeights>, style: Style) -> String {
    let Some(w) = weights else {
        return style.paint(Tone::Dim, "not set yet");
    };
    let verified = if w.verified == Some(true) {
        style.paint(Tone::Good, "verified")
    } else {
        style.paint(Tone::Busy, "not verified yet")
    };
    format!(
        "canary {} · stable {} · {verified}",
        w.canary.weight.get(),
        w.stable.weight.get()
    )
}

fn images(s: &Snapshot) -> Vec<String> {
    let mut by_image: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    let mut order = Vec::new();
    for rs in &s.replica_sets {
        let Some(hash) = hash_of(&rs.metadata) else {
            continue;
        };
        let roles = roles(s, hash);
        if roles.is_empty() {
            continue;
        }
        let template = rs.spec.as_ref().and_then(|spec| spec.template.as_ref());
        for image in template_images(template) {
            let entry = by_image.entry(image.clone()).or_insert_with(|| {
                order.push(image);
                Vec::new()
            });
            entry.extend(roles.iter().map(|r| r.word()));
        }
    }
    if order.is_empty() {
        order = template_images(Some(&s.rollout.spec.template));
    }
    order
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let roles = by_image
                .get(image)
                .map(|r| r.join(", "))
                .unwrap_or_default();
            let text = if roles.is_empty() {
                image.clone()
            } else {
                format!("{image} ({roles})")
            };
            if i == 0 {
                label("Images", text)
            } else {
                format!("{:LABEL$}{text}", "")
            }
        })
        .collect()
}

fn template_images(template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>) -> Vec<String> {
    template
        .and_then(|t| t.spec.as_ref())
        .map(|spec| {
            spec.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn replicas(s: &Snapshot) -> Vec<String> {
    let status = s.rollout.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    vec![
        "Replicas:".to_owned(),
        label("  Desired", s.rollout.spec.desired_replicas()),
        label("  Current", n(status.replicas)),
        label("  Updated", n(status.updated_replicas)),
        label("  Ready", n(status.ready_replicas)),
        label("  Available", n(status.available_replicas)),
    ]
}

#[cfg(test)]
mod tests;
