//! Istio traffic router: moves traffic by editing `VirtualService` route weights (host-level or
//! subset-level split) and labelling `DestinationRule` subsets with the pod-template hash.
//!
//! The mesh objects belong to the user and their GitOps tool, so the router is surgical: it
//! renders RFC 6902 JSON patches that touch only the canary and stable `weight`s of the selected
//! routes, the managed header and mirror routes at the top of `spec.http`, and the
//! `rollouts-pod-template-hash` label of the two subsets, each write guarded by `test`
//! operations, under field manager `sluice`. Semantics follow Argo Rollouts' Istio integration.
//!
//! Layout: a pure core ([`virtual_service`], [`destination_rule`], over the private `routes`,
//! `managed_routes` and `json` helpers) takes `&serde_json::Value` and returns patches or
//! observations; [`IstioRouter`] (in `client`) is the thin I/O shell implementing
//! [`TrafficRouter`](crate::traffic::TrafficRouter).

mod client;
pub mod config;
pub mod destination_rule;
mod json;
mod managed_routes;
mod routes;
pub mod virtual_service;

#[cfg(test)]
mod tests;

pub use client::{
    FIELD_MANAGER, IstioRouter, ObjectHandle, READS, destination_rule_resource, kube_json_patch,
    virtual_service_resource,
};
pub use config::{
    DestinationRuleRef, IstioConfig, POD_TEMPLATE_HASH_LABEL, TcpRouteRef, TlsRouteRef,
    VirtualServiceRef,
};
