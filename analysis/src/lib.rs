//! Metric analysis for Sluice: providers fetch, judges decide. Nothing here talks to
//! Kubernetes.
//!
//! This crate turns an `AnalysisRun`'s spec and persisted status into measurements and
//! verdicts. It is split so that only the fetch does I/O:
//!
//! | Step | Module | Pure? |
//! |---|---|---|
//! | Validate the metrics once (compile conditions, apply defaults) | [`metric`] | yes |
//! | Decide which metrics are due | [`schedule`] | yes |
//! | Substitute `{{args.*}}`, masking secrets | [`args`] | yes |
//! | Fetch values | [`provider`] ([`MetricProvider`], [`PrometheusProvider`]) | **I/O** |
//! | Judge one fetch (no-data policy, CEL conditions) | [`mod@measure`], [`condition`] | yes |
//! | Count, retain, assess metrics and the run | [`mod@assess`] | yes |
//! | Judge canary against baseline or SLO (`metrics[].judge`) | [`judge`] | yes |
//!
//! # Wiring it into a controller
//!
//! Validation happens once per run (or template): an invalid spec is reported with every
//! problem named and never measured.
//!
//! ```text
//! let analysis = ValidatedAnalysis::from_run(&run.spec)?;          // SpecError -> InvalidSpec
//! ```
//!
//! Each reconcile of a run that is not yet complete, with `now` read once:
//!
//! ```text
//! let mut status = assess(&analysis, &run.status, run.spec.terminate, now);   // startedAt, phases
//! for metric in due_metrics(&analysis, &status, run.spec.terminate, now) {
//!     let measurement = match resolve_query(metric, &args) {                   // Args from the run
//!         Err(e) => error_measurement(e.to_string(), None, now, now),
//!         Ok(query) => {
//!             let prometheus = metric.provider().prometheus();
//!             // Read the Secret keys in secret_refs(prometheus), then:
//!             match PrometheusConfig::resolve(prometheus, &args, &secrets)
//!                 .and_then(PrometheusProvider::new)                           // cache per config
//!             {
//!                 Err(e) => error_measurement(e.to_string(), Some(&query.display), now, now),
//!                 Ok(provider) => {
//!                     let fetched = provider.fetch(&query, now).await;
//!                     measure(metric, &query, &fetched, now, clock.now())
//!                 }
//!             }
//!         }
//!     };
//!     record_in(&mut status, metric, measurement);
//! }
//! let status = assess(&analysis, &status, run.spec.terminate, now);          // write this status
//! let requeue = next_reconcile_at(&analysis, &status, run.spec.terminate, now);
//! ```
//!
//! `Args` holds every resolved argument; values read from Secrets go in with
//! [`Args::insert_secret`] and only ever appear as `*****` in `resolvedQuery`, messages and
//! `Debug` output. A provider holds a connection pool: keep one per distinct configuration
//! (e.g. keyed by metric and the Secrets' resource versions) rather than one per measurement.
//!
//! # Guarantees the controller can rely on
//! - Missing data never passes silently: an empty or NaN result fails unless the metric says
//!   `onEmpty: pass` / `onNaN: pass` (see [`mod@measure`]).
//! - Every measurement, metric and run phase carries a message with the value, the condition
//!   and the reason.
//! - The assessment reads only the spec and the persisted status: a restart between any two
//!   steps resumes with the same decisions and the same schedule.
//! - Nothing here panics on user input (conditions, queries, answers); errors are typed and
//!   have a bounded `category()` for metrics labels.

pub mod args;
pub mod assess;
pub mod condition;
pub mod judge;
pub mod measure;
pub mod metric;
pub mod provider;
pub mod schedule;
pub mod time;
pub mod value;

#[cfg(test)]
mod fixtures;

pub use args::{Args, ArgsError, MASK, Rendered, render};
pub use assess::{
    MetricAssessment, RunAssessment, assess, assess_metric, assess_run, record, record_in,
};
pub use condition::{Condition, ConditionError};
pub use judge::{JudgeQuery, Verdict, judge_measurement, judge_queries};
pub use measure::{QueryError, error_measurement, measure, resolve_query};
pub use metric::{Check, SpecError, SpecProblem, ValidatedAnalysis, ValidatedMetric};
pub use provider::{
    FetchFuture, MetricProvider, ProviderError, QueryKind, ResolvedQuery,
    prometheus::{
        Auth, ConfigError, PrometheusConfig, PrometheusProvider, SecretValues, Tls, secret_refs,
    },
};
pub use schedule::{due_metrics, is_terminating, next_measurement_at, next_reconcile_at};
pub use value::{MetricValue, ValueStatus};
