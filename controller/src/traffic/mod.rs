//! Traffic routers: move live traffic between the stable and the canary version.
//!
//! A router edits only what Sluice owns in the user's mesh objects (the weights of the routes it
//! was told about, and the routes it manages) and reads the result back, so the planner can
//! tell a *requested* weight from a *verified* one (DESIGN section 3, invariant 3).
//!
//! Guarantees every implementation gives:
//! - `apply` is idempotent: applying the same [`DesiredTraffic`] twice writes nothing the second
//!   time.
//! - Writes are guarded (JSON-patch `test` ops or resourceVersion preconditions): a concurrent
//!   edit by another writer is detected and reported as [`TrafficError::Conflict`], never
//!   silently overwritten.
//! - `reset` sends all traffic to stable and removes every managed route.

pub mod istio;

use std::future::Future;

/// A header-based route Sluice manages (`setHeaderRoute` step): requests matching go to canary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderRoute {
    /// Route name; also the name of the `http` route Sluice inserts at the top of the list.
    pub name: String,
    /// Every match must hold (AND).
    pub matches: Vec<HeaderMatch>,
}

/// One header condition of a [`HeaderRoute`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatch {
    pub header_name: String,
    pub value: StringMatch,
}

/// How a header, path or method is matched (Istio `StringMatch`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

/// A mirror route Sluice manages (`setMirrorRoute` step): matching requests are served by stable
/// and a copy of `percentage` % of them goes to canary; the response of the copy is discarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorRoute {
    pub name: String,
    /// 0..=100.
    pub percentage: u8,
    /// Any match may hold (OR between entries, AND inside one entry), as in Istio.
    pub matches: Vec<RequestMatch>,
}

/// One request condition of a [`MirrorRoute`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMatch {
    pub method: Option<StringMatch>,
    pub path: Option<StringMatch>,
    pub headers: Vec<(String, StringMatch)>,
}

/// What the planner wants the mesh to do. The stable weight is always `100 - canary_weight`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredTraffic {
    /// 0..=100.
    pub canary_weight: u8,
    /// Managed routes, in the order of `trafficRouting.managedRoutes`; the routes not listed
    /// here are removed.
    pub header_routes: Vec<HeaderRoute>,
    pub mirror_routes: Vec<MirrorRoute>,
    /// Pod-template hashes the DestinationRule subsets must select (subset-level split only;
    /// `None` leaves the subsets as they are). Applied *before* the weights: the planner only
    /// moves a subset whose weight is 0, or moves the stable subset onto pods that already serve.
    pub subsets: Option<SubsetHashes>,
}

/// The `rollouts-pod-template-hash` label value of each DestinationRule subset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubsetHashes {
    pub stable: String,
    pub canary: String,
}

impl DesiredTraffic {
    /// All traffic to stable, no managed routes: what abort, promotion and deletion converge to.
    pub fn all_stable() -> Self {
        Self {
            canary_weight: 0,
            header_routes: Vec::new(),
            mirror_routes: Vec::new(),
            subsets: None,
        }
    }
}

/// What the router read back from the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedTraffic {
    /// The canary weight, when every selected route of every mesh object agrees on it; `None`
    /// when they disagree (a partial write, or an edit by someone else).
    pub canary_weight: Option<u8>,
    /// Names of the managed routes currently present, in list order.
    pub managed_routes: Vec<String>,
    /// The subsets' hash labels as read back (`None` without a DestinationRule).
    pub subsets: Option<SubsetHashes>,
}

impl ObservedTraffic {
    /// True when the cluster already shows exactly `desired` (weights and managed routes).
    pub fn matches(&self, desired: &DesiredTraffic) -> bool {
        let wanted: Vec<&str> = desired
            .header_routes
            .iter()
            .map(|r| r.name.as_str())
            .chain(desired.mirror_routes.iter().map(|r| r.name.as_str()))
            .collect();
        let present: Vec<&str> = self.managed_routes.iter().map(String::as_str).collect();
        let subsets_ok = desired.subsets.is_none() || desired.subsets == self.subsets;
        self.canary_weight == Some(desired.canary_weight)
            && sorted(wanted) == sorted(present)
            && subsets_ok
    }
}

fn sorted(mut names: Vec<&str>) -> Vec<&str> {
    names.sort_unstable();
    names
}

/// Why a router could not observe or apply. `category()` is bounded, for metric labels and
/// event reasons.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// A referenced object or route does not exist, or does not have the canary and stable
    /// destinations. The user must fix the spec or the mesh object; retrying will not help.
    #[error("{0}")]
    InvalidReference(String),
    /// Someone else changed the object between our read and our write; retry after a re-read.
    #[error("concurrent edit of {0}; will re-read and retry")]
    Conflict(String),
    /// The API server failed; transient.
    #[error("kubernetes API error: {0}")]
    Api(#[from] kube::Error),
}

impl TrafficError {
    pub fn category(&self) -> &'static str {
        match self {
            TrafficError::InvalidReference(_) => "InvalidReference",
            TrafficError::Conflict(_) => "Conflict",
            TrafficError::Api(_) => "ApiError",
        }
    }
}

/// A mesh integration. See the module docs for the guarantees.
pub trait TrafficRouter: Send + Sync {
    /// Reads the current state back from the cluster.
    fn observe(&self) -> impl Future<Output = Result<ObservedTraffic, TrafficError>> + Send;
    /// Makes the cluster show `desired`; writes nothing when it already does.
    fn apply(
        &self,
        desired: &DesiredTraffic,
    ) -> impl Future<Output = Result<(), TrafficError>> + Send;
    /// All traffic to stable and managed routes removed.
    fn reset(&self) -> impl Future<Output = Result<(), TrafficError>> + Send {
        async move { self.apply(&DesiredTraffic::all_stable()).await }
    }
}
