//! The Sluice controller: observe -> validate -> plan -> apply -> status for Rollouts, and the
//! AnalysisRun controller that measures their analysis.

/// Field manager of every write the controller makes, so GitOps tools can ignore exactly these
/// fields (the kubectl plugin writes as `kubectl-sluice`).
pub const FIELD_MANAGER: &str = "sluice";

pub mod analysis_run;
pub mod cli;
pub mod context;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod replicaset;
pub mod rollout;
pub mod run;
pub mod traffic;
