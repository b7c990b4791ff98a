//! The Sluice controller: observe -> validate -> plan -> apply -> status for Rollouts.

pub mod traffic;
