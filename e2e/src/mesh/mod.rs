//! The mesh simulator: a stand-in for Istio's data plane in a cluster without Envoy.
//!
//! It watches VirtualServices, DestinationRules, Services and Pods, sends simulated requests
//! through the routes exactly as written (header matches, weights, mirrors) and straight to the
//! Services annotated with a rate (`sim.sluice.dev/rps`: blue-green's active and preview
//! Services, which select a version by their selector alone), lets each version answer as its
//! pod annotations say (`sim.sluice.dev/error-rate`, `latency-ms`,
//! `latency-p99-ms`), and exports Istio's `istio_requests_total` and
//! `istio_request_duration_milliseconds` for Prometheus. A bad release is then simply a pod
//! template whose annotations say it is bad.
//!
//! Layout: pure parts (`routes`, `matching`, `behaviour`, `load`, `world`, `snapshot`,
//! `traffic`, `metrics`) and the I/O edges (`watch`, `server`, `register`, `run`).

pub mod behaviour;
pub mod config;
pub mod load;
pub mod matching;
pub mod metrics;
mod register;
pub mod routes;
mod run;
mod server;
pub mod snapshot;
pub mod traffic;
mod watch;
pub mod world;

pub use config::{Args, Config, ConfigError};
pub use register::JOB;
pub use run::{Handle, StartError, run};
