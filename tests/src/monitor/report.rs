//! The monitor's report: every recorded version replayed in revision order, the invariants
//! checked after each, and Sluice's writes told apart from the other writers'.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

use super::world::{World, entries, label, route_name, selected_routes};
use super::{Change, Kind, bluegreen};
use crate::fixtures::HASH_LABEL;

/// Which invariant: one of DESIGN section 3's numbered ones, or a blue-green one (BG1, BG2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invariant {
    Design(u8),
    BlueGreen(u8),
}

impl std::fmt::Display for Invariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invariant::Design(n) => write!(f, "{n}"),
            Invariant::BlueGreen(n) => write!(f, "BG{n}"),
        }
    }
}

/// An invariant found broken at a revision.
#[derive(Clone, Debug)]
pub struct Violation {
    pub rv: u64,
    pub invariant: Invariant,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invariant {} at rv {}: {}",
            self.invariant, self.rv, self.message
        )
    }
}

/// API writes attributed to Sluice, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Writes {
    pub rollout_status: u32,
    pub virtual_service: u32,
    pub destination_rule: u32,
    pub replica_set: u32,
    pub service: u32,
    pub event: u32,
}

impl Writes {
    pub fn total(&self) -> u32 {
        self.rollout_status
            + self.virtual_service
            + self.destination_rule
            + self.replica_set
            + self.service
            + self.event
    }
}

impl std::fmt::Display for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} writes (Rollout status {}, VirtualService {}, DestinationRule {}, ReplicaSet {}, Service {}, Event {})",
            self.total(),
            self.rollout_status,
            self.virtual_service,
            self.destination_rule,
            self.replica_set,
            self.service,
            self.event
        )
    }
}
/// What the monitor saw and found.
#[derive(Clone, Debug)]
pub struct Report {
    /// Watch events received, by kind.
    pub observations: BTreeMap<Kind, u64>,
    /// Revisions at which the invariants were evaluated.
    pub evaluations: u64,
    pub violations: Vec<Violation>,
    /// Every recorded version, in revision order.
    pub changes: Vec<Change>,
    /// The canary weight of the first selected route, at each revision that changed it (`None`
    /// while no Rollout names the route or the route has no canary destination).
    pub weight_trace: Vec<(u64, Option<i64>)>,
    /// Versions Sluice wrote: (rv, kind, name).
    pub writes: Vec<(u64, Kind, String)>,
}

impl Report {
    pub(super) fn replay(
        mut changes: Vec<Change>,
        observations: BTreeMap<Kind, u64>,
        ns: &str,
    ) -> Report {
        changes.sort_by_key(|c| c.rv);
        let mut world = World::new(ns);
        let mut report = Report {
            observations,
            evaluations: 0,
            violations: Vec::new(),
            changes: Vec::new(),
            weight_trace: Vec::new(),
            writes: Vec::new(),
        };
        for change in &changes {
            let previous = world.get(change.kind, &change.name).cloned();
            report.check_blue_green(&world, previous.as_ref(), change);
            if change.kind == Kind::ReplicaSet {
                report.check_scale_down(&world, previous.as_ref(), change);
            }
            if is_sluice_write(previous.as_ref(), change) {
                report
                    .writes
                    .push((change.rv, change.kind, change.name.clone()));
            }
            world.apply(change);
            if change.kind != Kind::Event {
                report.evaluations += 1;
                report.check_routes(&world, change.rv);
            }
            // Every kind: the weight becomes known when the Rollout that names the route appears.
            let weight = world.canary_weight();
            if report.weight_trace.last().map(|(_, w)| *w) != Some(weight) {
                report.weight_trace.push((change.rv, weight));
            }
        }
        report.changes = changes;
        report
    }

    fn violation(&mut self, rv: u64, invariant: u8, message: String) {
        self.violations.push(Violation {
            rv,
            invariant: Invariant::Design(invariant),
            message,
        });
    }

    /// BG1 and BG2 for a Service or ReplicaSet change, against the world just before it.
    fn check_blue_green(&mut self, world: &World, previous: Option<&Value>, change: &Change) {
        let found = match change.kind {
            Kind::Service => bluegreen::check_switch(world, change).map(|m| (1, m)),
            Kind::ReplicaSet => {
                bluegreen::check_scale_down(world, previous, change).map(|m| (2, m))
            }
            _ => None,
        };
        if let Some((n, message)) = found {
            self.violations.push(Violation {
                rv: change.rv,
                invariant: Invariant::BlueGreen(n),
                message,
            });
        }
    }

    /// Invariants 1 and 2 on the snapshot at `rv`.
    fn check_routes(&mut self, world: &World, rv: u64) {
        let Some(routing) = world.routing() else {
            return;
        };
        let bound = world.step_weight_bound();
        for (vs_name, route_names) in &routing.virtual_services {
            let Some(vs) = world.get(Kind::VirtualService, vs_name) else {
                continue;
            };
            for route in selected_routes(vs, route_names, &routing.managed_routes) {
                let label = format!("{vs_name}/{}", route_name(route));
                let entries = entries(route);
                let weights: Vec<i64> = entries.iter().map(|(_, w)| *w).collect();
                if weights.iter().any(|w| !(0..=100).contains(w))
                    || weights.iter().sum::<i64>() != 100
                {
                    self.violation(rv, 1, format!("route {label} has weights {weights:?}"));
                }
                let canary: i64 = entries
                    .iter()
                    .filter(|(d, _)| routing.is_canary(d))
                    .map(|(_, w)| w)
                    .sum();
                if let Some((index, bound)) = bound.filter(|(_, b)| canary > *b) {
                    self.violation(
                        rv,
                        1,
                        format!("route {label} gives the canary {canary} at step {index} whose setWeight is {bound}"),
                    );
                }
            }
            for (what, hash) in world.traffic_destinations(vs, &routing) {
                let available = world.available(&hash);
                if available == 0 {
                    self.violation(
                        rv,
                        2,
                        format!("{vs_name}: {what} goes to pod-template hash {hash}, which has no available pod"),
                    );
                }
            }
        }
    }

    /// Invariant 3 for a ReplicaSet change, against the world just before it.
    fn check_scale_down(&mut self, world: &World, previous: Option<&Value>, change: &Change) {
        let replicas = |o: Option<&Value>| o.and_then(|o| o.pointer("/spec/replicas")?.as_i64());
        let lowered_to_zero = replicas(previous).is_some_and(|r| r > 0)
            && replicas(change.object.as_ref()) == Some(0);
        if !lowered_to_zero {
            return;
        }
        let Some(hash) = change
            .object
            .as_ref()
            .and_then(|o| label(o, HASH_LABEL))
            .map(str::to_owned)
        else {
            return;
        };
        let Some(routing) = world.routing() else {
            return;
        };
        for (vs_name, _) in &routing.virtual_services {
            let Some(vs) = world.get(Kind::VirtualService, vs_name) else {
                continue;
            };
            for (what, to) in world.traffic_destinations(vs, &routing) {
                if to == hash {
                    self.violation(
                        change.rv,
                        3,
                        format!(
                            "ReplicaSet {} scaled to 0 while {vs_name}: {what} goes to it",
                            change.name
                        ),
                    );
                }
            }
        }
    }

    /// Sluice's writes with a revision in `(after, until]`.
    pub fn writes_between(&self, after: u64, until: u64) -> Writes {
        let mut writes = Writes::default();
        for (rv, kind, _) in &self.writes {
            if *rv <= after || *rv > until {
                continue;
            }
            let counter = match kind {
                Kind::Rollout => &mut writes.rollout_status,
                Kind::VirtualService => &mut writes.virtual_service,
                Kind::DestinationRule => &mut writes.destination_rule,
                Kind::ReplicaSet => &mut writes.replica_set,
                Kind::Service => &mut writes.service,
                Kind::Event => &mut writes.event,
            };
            *counter += 1;
        }
        writes
    }

    /// When the watch delivered the last write by Sluice.
    pub fn last_write_at(&self) -> Option<Instant> {
        let (rv, kind, name) = self.writes.last()?;
        self.changes
            .iter()
            .find(|c| c.rv == *rv && c.kind == *kind && &c.name == name)
            .map(|c| c.at)
    }

    /// When the watch delivered the version of `kind` with resourceVersion `rv`.
    pub fn delivered_at(&self, kind: Kind, rv: u64) -> Option<Instant> {
        self.changes
            .iter()
            .find(|c| c.kind == kind && c.rv == rv)
            .map(|c| c.at)
    }

    /// The canary weights the VirtualService showed, in order, consecutive repeats removed.
    pub fn weights(&self) -> Vec<i64> {
        self.weight_trace.iter().filter_map(|(_, w)| *w).collect()
    }

    /// The weights shown at revisions after `rv`.
    pub fn weights_after(&self, rv: u64) -> Vec<i64> {
        self.weight_trace
            .iter()
            .filter(|(at, _)| *at > rv)
            .filter_map(|(_, w)| *w)
            .collect()
    }

    /// The first version of a `kind` object (after `rv`) for which `pred` holds.
    pub fn first(&self, kind: Kind, after: u64, pred: impl Fn(&Value) -> bool) -> Option<&Change> {
        self.changes
            .iter()
            .find(|c| c.kind == kind && c.rv > after && c.object.as_ref().is_some_and(&pred))
    }

    /// Every recorded version of the Rollout's status, in order.
    pub fn rollout_statuses(&self) -> impl Iterator<Item = (u64, &Value)> {
        self.changes
            .iter()
            .filter(|c| c.kind == Kind::Rollout)
            .filter_map(|c| Some((c.rv, c.object.as_ref()?.get("status")?)))
    }

    /// The sequence of `status.currentStepIndex` values, consecutive repeats removed.
    pub fn step_indices(&self) -> Vec<i64> {
        let mut indices: Vec<i64> = Vec::new();
        for (_, status) in self.rollout_statuses() {
            if let Some(i) = status.get("currentStepIndex").and_then(Value::as_i64)
                && indices.last() != Some(&i)
            {
                indices.push(i);
            }
        }
        indices
    }

    /// Every recorded version, one line each, in revision order (for failure output).
    pub fn timeline(&self) -> String {
        let start = self.changes.first().map(|c| c.at);
        let mut out = String::new();
        for c in &self.changes {
            let ms = start.map_or(0, |s| c.at.duration_since(s).as_millis());
            let what = c
                .object
                .as_ref()
                .map_or_else(|| "deleted".to_owned(), |o| describe(c.kind, o));
            out.push_str(&format!(
                "{:>8} {:>6}ms {:?} {} {what}\n",
                c.rv, ms, c.kind, c.name
            ));
        }
        out
    }

    /// One line for the test output: what the monitor observed, by kind, and what it found.
    pub fn summary(&self) -> String {
        let total: u64 = self.observations.values().sum();
        let by_kind: Vec<String> = self
            .observations
            .iter()
            .map(|(kind, n)| format!("{n} {kind:?}"))
            .collect();
        format!(
            "monitor: {total} observations ({}), {} revisions evaluated, {} violations",
            by_kind.join(", "),
            self.evaluations,
            self.violations.len()
        )
    }
}

/// Writes by Sluice, told apart from the other writers in a scenario's namespace: the
/// ReplicaSet controller writes only ReplicaSet status; the scenario writes the Rollout's spec and
/// its own status requests (which tests exclude by counting from after them); Sluice writes the
/// rest.
fn is_sluice_write(previous: Option<&Value>, change: &Change) -> bool {
    let field = |o: Option<&Value>, path: &str| o.and_then(|o| o.pointer(path)).cloned();
    match (change.kind, previous, change.object.as_ref()) {
        (Kind::Event, _, now) => {
            field(now, "/reportingController") == Some(Value::from("sluice"))
                || field(previous, "/reportingController") == Some(Value::from("sluice"))
        }
        (Kind::Rollout, Some(before), Some(now)) => {
            field(Some(before), "/metadata/generation") == field(Some(now), "/metadata/generation")
                && before.get("status") != now.get("status")
        }
        (Kind::Rollout, _, _) => false,
        (Kind::ReplicaSet, Some(before), Some(now)) => [
            "/metadata/generation",
            "/metadata/annotations",
            "/metadata/labels",
        ]
        .iter()
        .any(|p| field(Some(before), p) != field(Some(now), p)),
        // Creations and deletions of ReplicaSets are Sluice's; mesh objects and Services exist
        // before the monitor starts, so every later version is a write by Sluice.
        (Kind::ReplicaSet, _, _) => true,
        (_, None, _) => false,
        (_, Some(_), _) => true,
    }
}

/// The fields of a version that matter to the invariants, on one line.
fn describe(kind: Kind, o: &Value) -> String {
    let at = |p: &str| o.pointer(p).cloned().unwrap_or(Value::Null);
    match kind {
        Kind::Rollout => format!(
            "gen={} step={} phase={} pause={} abort={} weights={} stable={} blueGreen={}",
            at("/metadata/generation"),
            at("/status/currentStepIndex"),
            at("/status/phase"),
            at("/status/pauseConditions"),
            at("/status/abort"),
            at("/status/canary/weights"),
            at("/status/stableRS"),
            at("/status/blueGreen"),
        ),
        Kind::VirtualService => {
            let http = o.pointer("/spec/http").and_then(Value::as_array);
            let routes: Vec<String> = http
                .into_iter()
                .flatten()
                .map(|r| {
                    let entries: Vec<String> = entries(r)
                        .iter()
                        .map(|(d, w)| {
                            format!(
                                "{}={w}",
                                d.get("subset").or(d.get("host")).unwrap_or(&Value::Null)
                            )
                        })
                        .collect();
                    format!("{}[{}]", route_name(r), entries.join(","))
                })
                .collect();
            routes.join(" ")
        }
        Kind::ReplicaSet => format!(
            "spec={} available={} annotations={}",
            at("/spec/replicas"),
            at("/status/availableReplicas"),
            at("/metadata/annotations"),
        ),
        Kind::Service => format!("selector={}", at("/spec/selector")),
        Kind::DestinationRule => format!("subsets={}", at("/spec/subsets")),
        Kind::Event => format!("{} {} x{}", at("/reason"), at("/note"), at("/series/count")),
    }
}
