//! Sluice API types (group `sluice.dev`, version `v1alpha1`).
