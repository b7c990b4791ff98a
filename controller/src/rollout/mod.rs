//! The Rollout controller: observe -> validate -> plan -> apply -> status.

pub mod analysis;
pub mod apply;
pub mod events;
pub mod finalizer;
pub mod model;
pub mod observe;
pub mod plan;
pub mod reconcile;
pub mod status;
pub mod validate;
