//! What every watch-driven observer in this crate shares (the demo's [`World`], the blue-green
//! scenarios' own world): several kube watchers merged into one stream of decoded updates that
//! a caller waits on up to a deadline, the labels Sluice puts on what it creates, and the read
//! accessors over the Rollout status such a world last saw.
//!
//! Guarantees of [`Merged::next`]: it returns the next decoded event (deletions included), or
//! the reason none came before the deadline; watch errors are retried with kube's default
//! backoff and logged, never ending a stream.
//!
//! [`World`]: crate::demo::world::World

use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use sluice_crds::{Rollout, RolloutPhase, RolloutStatus};
use tokio::time::Instant;

/// The label Sluice puts on a version's ReplicaSet, pods and runs (Argo's name), and adds to
/// the Services' selectors.
pub const HASH_LABEL: &str = "rollouts-pod-template-hash";
/// The label Sluice puts on a Rollout's AnalysisRuns.
pub const ROLLOUT_LABEL: &str = "sluice.dev/rollout";
/// The label saying which analysis a run is: `step-<index>` or `background` for a canary,
/// `pre-promotion` or `post-promotion` for blue-green.
pub const ANALYSIS_LABEL: &str = "sluice.dev/analysis";

/// Why a wait ended without an event.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("nothing changed before the deadline")]
    Timeout,
    #[error("the watch streams ended")]
    Ended,
}

/// A decoded watch event that can stand for the deletion of the object in it.
pub trait Deletable: Send + 'static {
    /// The same object, as deleted.
    fn deleted(self) -> Self;
}

/// Several watchers merged into one stream of `U`s.
pub struct Merged<U> {
    streams: SelectAll<BoxStream<'static, Result<U, watcher::Error>>>,
}

impl<U: Deletable> Default for Merged<U> {
    fn default() -> Self {
        Self {
            streams: SelectAll::new(),
        }
    }
}

impl<U: Deletable> Merged<U> {
    /// Adds a watcher on `api` with `config`, each object decoded by `wrap` (and marked
    /// [`Deletable::deleted`] when the event is a deletion). Its first events are the current
    /// state (an initial list).
    pub fn watch<K>(&mut self, api: Api<K>, config: watcher::Config, wrap: fn(K) -> U)
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    {
        self.streams.push(stream(api, config, wrap));
    }

    /// Waits for the next event until `deadline`.
    pub async fn next(&mut self, deadline: Instant) -> Result<U, WaitError> {
        loop {
            let next = tokio::time::timeout_at(deadline, self.streams.next());
            match next.await {
                Err(_) => return Err(WaitError::Timeout),
                Ok(None) => return Err(WaitError::Ended),
                Ok(Some(Ok(update))) => return Ok(update),
                Ok(Some(Err(error))) => tracing::warn!(%error, "watch error (retrying)"),
            }
        }
    }
}

/// One watcher's events, decoded by `wrap`; the list markers (`Init`, `InitDone`) are dropped.
pub fn stream<K, U>(
    api: Api<K>,
    config: watcher::Config,
    wrap: fn(K) -> U,
) -> BoxStream<'static, Result<U, watcher::Error>>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    U: Deletable,
{
    watcher(api, config)
        .default_backoff()
        .try_filter_map(move |event| {
            let update = match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => Some(wrap(o)),
                watcher::Event::Delete(o) => Some(wrap(o).deleted()),
                watcher::Event::Init | watcher::Event::InitDone => None,
            };
            std::future::ready(Ok(update))
        })
        .boxed()
}

/// Read accessors over the Rollout a watch last saw; `None` (or `false`, or `""`) while there
/// is none or it has no status yet.
pub trait WatchedRollout {
    /// The Rollout as last seen.
    fn watched_rollout(&self) -> Option<&Rollout>;

    fn status(&self) -> Option<&RolloutStatus> {
        self.watched_rollout()?.status.as_ref()
    }

    fn phase(&self) -> Option<RolloutPhase> {
        self.status()?.phase
    }

    /// The pod-template hash of the version being rolled out.
    fn current_hash(&self) -> Option<&str> {
        self.status()?.current_pod_hash.as_deref()
    }

    /// The pod-template hash of the stable version.
    fn stable_hash(&self) -> Option<&str> {
        self.status()?.stable_rs.as_deref()
    }

    fn aborted(&self) -> bool {
        self.status().is_some_and(|s| s.abort)
    }

    fn message(&self) -> &str {
        self.status()
            .and_then(|s| s.message.as_deref())
            .unwrap_or_default()
    }
}
