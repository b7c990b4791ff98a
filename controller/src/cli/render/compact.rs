//! One line per state, for `get rollout --watch` into a pipe or a CI log:
//!
//! `web Paused: CanaryPauseStep | step 1/4 | canary 50 · stable 50 · verified | rs abc canary
//! 1/1/1, def stable 3/3/3 | analysis step 1 Running`
//!
//! Replica counts are desired/ready/available. Old ReplicaSets scaled to zero are left out.

use kube::ResourceExt;
use sluice_crds::{AnalysisPhase, Strategy};

use super::{role_words, roles, weights_text};
use crate::cli::snapshot::{Snapshot, hash_of};
use crate::cli::style::Style;

/// The line (no colour, no clock).
pub fn compact(s: &Snapshot) -> String {
    let r = &s.rollout;
    let status = r.status.clone().unwrap_or_default();
    let phase = status.phase.map_or("Unknown".into(), |p| format!("{p:?}"));
    let mut head = format!("{} {phase}", r.name_any());
    if let Some(message) = status.message.as_deref().filter(|m| !m.is_empty()) {
        head.push_str(&format!(": {message}"));
    }
    let mut parts = vec![head];
    if let Strategy::Canary(c) = &r.spec.strategy {
        let done = status.current_step_index.unwrap_or(0);
        parts.push(format!("step {done}/{}", c.steps.len()));
        if c.traffic_routing.is_some() {
            let weights = status.canary.as_ref().and_then(|c| c.weights.as_ref());
            parts.push(weights_text(weights, Style::default()));
        }
    }
    let sets = replica_sets(s);
    if !sets.is_empty() {
        parts.push(format!("rs {}", sets.join(", ")));
    }
    let runs = runs(s);
    if !runs.is_empty() {
        parts.push(format!("analysis {}", runs.join(", ")));
    }
    parts.join(" | ")
}

fn replica_sets(s: &Snapshot) -> Vec<String> {
    s.replica_sets
        .iter()
        .filter_map(|rs| {
            let hash = hash_of(&rs.metadata)?;
            let roles = roles(s, hash);
            let desired = rs.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1);
            if roles.is_empty() && desired == 0 {
                return None;
            }
            let st = rs.status.as_ref();
            let ready = st.and_then(|st| st.ready_replicas).unwrap_or(0);
            let available = st.and_then(|st| st.available_replicas).unwrap_or(0);
            Some(format!(
                "{hash} {} {desired}/{ready}/{available}",
                role_words(&roles)
            ))
        })
        .collect()
}

fn runs(s: &Snapshot) -> Vec<String> {
    s.runs
        .iter()
        .map(|run| {
            let phase = run
                .status
                .as_ref()
                .and_then(|st| st.phase)
                .unwrap_or(AnalysisPhase::Pending);
            format!("{} {phase:?}", super::tree::gate(run))
        })
        .collect()
}
