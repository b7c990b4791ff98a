//! What every reconcile shares: the client, the ReplicaSet cache, the event recorder, metrics,
//! the per-object error backoff, and the versions this controller's own status writes replaced.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use crate::metrics::Metrics;

/// Shared state of the Rollout controller.
pub struct Context {
    pub client: kube::Client,
    pub replica_sets: Store<ReplicaSet>,
    /// AnalysisRuns, as dynamic objects (only their owner, phase and message are read).
    pub analysis_runs: Store<kube::api::DynamicObject>,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub backoff: Backoff,
    pub superseded: Superseded,
}

/// The resourceVersion each Rollout had when this controller last wrote its status. A cached
/// object still at that version predates the write: planning on it would act on a status the
/// controller itself already replaced (and undo what the write recorded, such as blue-green's
/// checkpoint), so the reconcile waits for the cache instead. Exact: a status write always
/// changes the resourceVersion, and no ordering of versions is assumed.
#[derive(Default)]
pub struct Superseded {
    versions: Mutex<HashMap<String, String>>,
}

impl Superseded {
    /// Records that the status of `key` at `version` was just replaced by a write.
    pub fn record(&self, key: &str, version: &str) {
        self.lock().insert(key.to_owned(), version.to_owned());
    }

    /// True when `version` of `key` is one this controller's own write replaced.
    pub fn is_stale(&self, key: &str, version: &str) -> bool {
        self.lock().get(key).is_some_and(|v| v == version)
    }

    /// Forgets `key` (a Rollout that is gone).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The Rollout kind as a dynamic resource (see `rollout::reconcile` for why it is dynamic).
pub fn rollout_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(sluice_crds::GROUP, sluice_crds::VERSION, "Rollout");
    ApiResource::from_gvk_with_plural(&gvk, "rollouts")
}

/// Per-object exponential backoff for transient failures: 1 s, 2 s, 4 s ... capped at 60 s,
/// reset by the next success. One failing Rollout never slows the others.
#[derive(Default)]
pub struct Backoff {
    attempts: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    const CAP: Duration = Duration::from_secs(60);

    /// The delay before the next try of `key`, counting this failure.
    pub fn next(&self, key: &str) -> Duration {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = attempts.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(1u64 << (*n - 1).min(6)).min(Self::CAP)
    }

    pub fn reset(&self, key: &str) {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        attempts.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_object_caps_and_resets() {
        let b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| b.next("a").as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.next("b").as_secs(), 1, "another object is not slowed");
        b.reset("a");
        assert_eq!(b.next("a").as_secs(), 1);
    }

    #[test]
    fn only_the_version_a_write_replaced_is_stale() {
        let s = Superseded::default();
        assert!(!s.is_stale("ns/a", "10"));
        s.record("ns/a", "10");
        assert!(s.is_stale("ns/a", "10"));
        assert!(!s.is_stale("ns/a", "11"), "the written version is current");
        assert!(!s.is_stale("ns/b", "10"), "per object");
        s.forget("ns/a");
        assert!(!s.is_stale("ns/a", "10"));
    }
}
