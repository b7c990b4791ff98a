//! The Rollout controller: observe -> validate -> plan -> apply -> status.

pub mod model;
pub mod plan;
