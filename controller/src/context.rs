//! What every reconcile shares: the client, the ReplicaSet cache, the event recorder, metrics,
//! and the per-object error backoff.

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
}
