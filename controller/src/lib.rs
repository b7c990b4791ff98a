//! The Sluice controller: observe -> validate -> plan -> apply -> status for Rollouts.

pub mod rollout;
pub mod traffic;
