//! The [`MetricProvider`] trait: fetch values, never judge them.
//!
//! A provider receives a [`ResolvedQuery`] (arguments already substituted) and answers with a
//! typed [`MetricValue`] or a typed [`ProviderError`]. It does not know about conditions,
//! limits or no-data policies; [`mod@crate::measure`] turns its answer into a verdict. Keeping the
//! two apart lets the assessment be tested without a server and lets a new provider be added
//! without touching the judging.
//!
//! The trait is object safe (`Box<dyn MetricProvider>` works) and its futures are `Send`, so a
//! controller can hold providers of different kinds and fetch from a multi-threaded runtime.

pub mod prometheus;

use std::{fmt, future::Future, pin::Pin, time::Duration};

use chrono::{DateTime, Utc};

use crate::{args::Rendered, value::MetricValue};

/// The future returned by [`MetricProvider::fetch`].
pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<MetricValue, ProviderError>> + Send + 'a>>;

/// A source of metric values.
pub trait MetricProvider: Send + Sync {
    /// Runs `query` as of `now` (the evaluation time of an instant query, the end of a range).
    ///
    /// # Contract
    /// - Returns `Ok` only with what the server answered: an empty answer is
    ///   `Ok(MetricValue::empty())`, never an error and never a zero.
    /// - Returns within the provider's configured timeout.
    /// - Error messages contain no secret value the provider was configured with.
    fn fetch<'a>(&'a self, query: &'a ResolvedQuery, now: DateTime<Utc>) -> FetchFuture<'a>;
}

/// A query ready to send: the text with arguments substituted, the masked text for display,
/// and whether it is an instant or a range query.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedQuery {
    /// What is sent; may contain secret argument values.
    pub text: String,
    /// Secrets masked; this is what status (`resolvedQuery`), messages and logs show.
    pub display: String,
    /// Instant or range.
    pub kind: QueryKind,
}

/// Instant or range query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryKind {
    /// One value per series, evaluated at `now`.
    Instant,
    /// Every point of every series in `(now - window, now]`, one each `step`.
    Range {
        /// How far back.
        window: Duration,
        /// Resolution.
        step: Duration,
    },
}

impl ResolvedQuery {
    /// An instant query from a rendered template.
    pub fn instant(rendered: Rendered) -> Self {
        ResolvedQuery {
            text: rendered.text,
            display: rendered.display,
            kind: QueryKind::Instant,
        }
    }

    /// A range query from a rendered template.
    pub fn range(rendered: Rendered, window: Duration, step: Duration) -> Self {
        ResolvedQuery {
            text: rendered.text,
            display: rendered.display,
            kind: QueryKind::Range { window, step },
        }
    }
}

impl fmt::Debug for ResolvedQuery {
    /// Shows only the display text, so a query can be logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedQuery")
            .field("display", &self.display)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a provider could not fetch. Messages name the (masked) address and never contain
/// secrets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider settings are unusable (bad URL, header, CA bundle).
    #[error("invalid provider configuration: {0}")]
    Config(String),
    /// No connection could be made (refused, DNS failure, TLS handshake failure).
    #[error("cannot reach {address}: {reason}")]
    Unreachable {
        /// Server address, secrets masked.
        address: String,
        /// The transport's explanation.
        reason: String,
    },
    /// No complete answer within the timeout.
    #[error("no answer from {address} within {}", format_timeout(*.timeout))]
    Timeout {
        /// Server address, secrets masked.
        address: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// An HTTP error that is not a Prometheus API error (a proxy's 401, a wrong path's 404).
    #[error("{address} answered HTTP {status}: {body}")]
    Http {
        /// Server address, secrets masked.
        address: String,
        /// HTTP status code.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// The server rejected or failed the query (bad PromQL, query timeout, overload).
    #[error("query failed ({kind}): {message}")]
    Query {
        /// The server's error type, e.g. `bad_data`.
        kind: String,
        /// The server's message.
        message: String,
    },
    /// The answer could not be understood (not the API, unexpected result type).
    #[error("unexpected answer from {address}: {reason}")]
    InvalidResponse {
        /// Server address, secrets masked.
        address: String,
        /// What was wrong.
        reason: String,
    },
}

impl ProviderError {
    /// Bounded category for metrics labels and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            ProviderError::Config(_) => "config",
            ProviderError::Unreachable { .. } => "unreachable",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::Http { .. } => "http",
            ProviderError::Query { .. } => "query",
            ProviderError::InvalidResponse { .. } => "invalid_response",
        }
    }
}

fn format_timeout(d: Duration) -> String {
    sluice_crds::Duration::from(d).to_string()
}
