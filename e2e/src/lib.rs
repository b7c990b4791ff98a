//! End-to-end support: the mesh simulator and scenario helpers.

pub mod mesh;
