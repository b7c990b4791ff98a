//! The Sluice controller: observe -> validate -> plan -> apply -> status for Rollouts, and the
//! AnalysisRun controller that measures their analysis.

pub mod analysis_run;
pub mod cli;
pub mod context;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod replicaset;
pub mod rollout;
pub mod run;
pub mod time;
pub mod traffic;
