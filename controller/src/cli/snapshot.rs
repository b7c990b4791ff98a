//! What `get rollout` shows: a Rollout with the ReplicaSets and AnalysisRuns it owns, and a
//! small cache that keeps such a view up to date from watch events.
//!
//! Ownership is decided from `ownerReferences` (kind `Rollout` and the Rollout's name), so a
//! ReplicaSet that merely matches the labels, or one adopted by something else, is not shown.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::runtime::watcher::Event;
use sluice_crds::{AnalysisRun, Rollout};

use crate::replicaset::{HASH_LABEL, REVISION_ANNOTATION};
use crate::rollout::analysis::ROLLOUT_LABEL;

/// A Rollout and what it owns, newest revision first.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub rollout: Rollout,
    pub replica_sets: Vec<ReplicaSet>,
    pub runs: Vec<AnalysisRun>,
}

impl Snapshot {
    /// Keeps only the objects the Rollout owns; sorts ReplicaSets by revision (newest first)
    /// and runs by creation (newest first).
    pub fn new(
        rollout: Rollout,
        replica_sets: impl IntoIterator<Item = ReplicaSet>,
        runs: impl IntoIterator<Item = AnalysisRun>,
    ) -> Self {
        let name = rollout.name_any();
        let mut replica_sets: Vec<ReplicaSet> = replica_sets
            .into_iter()
            .filter(|rs| owned_by(&rs.metadata, &name))
            .collect();
        replica_sets.sort_by_key(|rs| std::cmp::Reverse((revision(rs), rs.name_any())));
        let mut runs: Vec<AnalysisRun> = runs
            .into_iter()
            .filter(|run| owned_by(&run.metadata, &name))
            .collect();
        runs.sort_by_key(|run| {
            std::cmp::Reverse((run.metadata.creation_timestamp.clone(), run.name_any()))
        });
        Snapshot {
            rollout,
            replica_sets,
            runs,
        }
    }
}

/// Whether the object's owner references name the Rollout `rollout`.
pub fn owned_by(meta: &ObjectMeta, rollout: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Rollout" && o.name == rollout)
}

/// The `sluice.dev/revision` of a ReplicaSet (0 when missing).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The pod-template hash of a ReplicaSet or AnalysisRun.
pub fn hash_of(meta: &ObjectMeta) -> Option<&str> {
    meta.labels.as_ref()?.get(HASH_LABEL).map(String::as_str)
}

/// Label selector for the Rollout's ReplicaSets: its `matchLabels` plus the hash label, so
/// the API server sends little besides them.
pub fn replica_set_selector(rollout: &Rollout) -> String {
    let mut parts: Vec<String> = rollout
        .spec
        .selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parts.push(HASH_LABEL.to_owned());
    parts.join(",")
}

/// Label selector for the Rollout's AnalysisRuns.
pub fn run_selector(rollout: &str) -> String {
    format!("{ROLLOUT_LABEL}={rollout}")
}

/// Objects of one kind by name, kept current from watcher events.
///
/// Guarantees: after a (re)list, the contents are exactly the listed objects (buffered
/// between `Init` and `InitDone`, then swapped), and [`Cache::ready`] is true from the first
/// complete list on.
#[derive(Clone, Debug)]
pub struct Cache<K> {
    objects: BTreeMap<String, K>,
    buffer: BTreeMap<String, K>,
    ready: bool,
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Cache {
            objects: BTreeMap::new(),
            buffer: BTreeMap::new(),
            ready: false,
        }
    }
}

impl<K: kube::Resource + Clone> Cache<K> {
    /// Applies one event.
    pub fn apply(&mut self, event: Event<K>) {
        match event {
            Event::Apply(k) => {
                self.objects.insert(k.name_any(), k);
            }
            Event::Delete(k) => {
                self.objects.remove(&k.name_any());
            }
            Event::Init => self.buffer.clear(),
            Event::InitApply(k) => {
                self.buffer.insert(k.name_any(), k);
            }
            Event::InitDone => {
                self.objects = std::mem::take(&mut self.buffer);
                self.ready = true;
            }
        }
    }

    /// A complete list has been seen.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// The objects, by name.
    pub fn values(&self) -> impl Iterator<Item = &K> {
        self.objects.values()
    }

    /// The object called `name`.
    pub fn get(&self, name: &str) -> Option<&K> {
        self.objects.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::render::fixtures::{replica_set, rollout, run};

    #[test]
    fn keeps_only_owned_objects_newest_first() {
        let mut foreign = replica_set("other-abc", "abc", 5, 3);
        foreign.metadata.owner_references = None;
        let snapshot = Snapshot::new(
            rollout(),
            [
                replica_set("web-old", "old", 1, 0),
                foreign,
                replica_set("web-new", "new", 2, 1),
            ],
            [run("web-new-step-1", "new", "step-1")],
        );
        let names: Vec<String> = snapshot.replica_sets.iter().map(|r| r.name_any()).collect();
        assert_eq!(names, ["web-new", "web-old"]);
        assert_eq!(snapshot.runs.len(), 1);
    }

    #[test]
    fn selectors_name_the_rollout() {
        assert_eq!(
            replica_set_selector(&rollout()),
            "app=web,rollouts-pod-template-hash"
        );
        assert_eq!(run_selector("web"), "sluice.dev/rollout=web");
    }

    #[test]
    fn the_cache_swaps_in_a_relist_and_applies_changes() {
        let mut cache = Cache::default();
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(replica_set("web-a", "a", 1, 1)));
        assert!(!cache.ready());
        cache.apply(Event::InitDone);
        assert!(cache.ready() && cache.get("web-a").is_some());
        cache.apply(Event::Apply(replica_set("web-b", "b", 2, 1)));
        cache.apply(Event::Delete(replica_set("web-a", "a", 1, 1)));
        let names: Vec<String> = cache.values().map(|r| r.name_any()).collect();
        assert_eq!(names, ["web-b"]);
        cache.apply(Event::Init);
        cache.apply(Event::InitDone);
        assert_eq!(cache.values().count(), 0);
    }
}
