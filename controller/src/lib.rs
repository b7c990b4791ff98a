//! The Sluice controller: observe -> validate -> plan -> apply -> status for Rollouts.

pub mod http;
pub mod leader;
pub mod replicaset;
pub mod rollout;
pub mod time;
pub mod traffic;
