//! End-to-end support: the mesh simulator, the release demo and scenario helpers.

pub mod demo;
pub mod mesh;
pub mod watch;
