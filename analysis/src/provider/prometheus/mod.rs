//! The Prometheus provider, on `prometheus-http-query` over a `reqwest` client built here.
//!
//! The client is built by Sluice (not by `prometheus-http-query`) because the library has no
//! settings for a private CA, `insecure`, credentials or a timeout; it accepts a prepared
//! `reqwest::Client` through `Client::from`. Everything Prometheus-specific (URL building, the
//! query API, the result types) is the library's.
//!
//! # Results
//! - Instant query: a vector gives one value per series, a scalar one value; a range vector
//!   (`up[5m]`) is an [`ProviderError::InvalidResponse`] because a condition needs one value
//!   per series.
//! - Range query: every point of every series, series after series.
//!
//! # Errors
//! Connection failures (refused, DNS, TLS) are [`ProviderError::Unreachable`], an exhausted
//! timeout [`ProviderError::Timeout`], a Prometheus API error (bad PromQL, query timeout)
//! [`ProviderError::Query`] with the server's error type and message, any other HTTP error
//! [`ProviderError::Http`] with the start of the body. Messages use the masked address and
//! are passed through [`PrometheusConfig::redact`], so no secret can leak through a URL that
//! an error quotes.

mod client;
mod config;

use chrono::{DateTime, Utc};
use prometheus_http_query::response::{Data, PromqlResult};
use serde::Deserialize;

pub use config::{
    Auth, ConfigError, DEFAULT_TIMEOUT, PrometheusConfig, SecretValues, Tls, secret_refs,
};

use super::{FetchFuture, MetricProvider, ProviderError, QueryKind, ResolvedQuery};
use crate::value::MetricValue;

/// How much of a non-API error body a message quotes.
const MAX_BODY: usize = 512;

/// Fetches from one Prometheus server.
///
/// Holds a connection pool: build one per distinct [`PrometheusConfig`] and reuse it.
#[derive(Clone)]
pub struct PrometheusProvider {
    client: prometheus_http_query::Client,
    config: PrometheusConfig,
}

impl PrometheusProvider {
    /// Builds the HTTP client (TLS trust, credentials, headers, timeout) for `config`.
    pub fn new(config: PrometheusConfig) -> Result<Self, ConfigError> {
        let client = client::build(&config)?;
        Ok(PrometheusProvider { client, config })
    }

    /// The configuration this provider was built from.
    pub fn config(&self) -> &PrometheusConfig {
        &self.config
    }

    async fn run(
        &self,
        query: &ResolvedQuery,
        now: DateTime<Utc>,
    ) -> Result<MetricValue, ProviderError> {
        // Prometheus stops evaluating at its own timeout; ask for the one the client enforces.
        let timeout_ms = i64::try_from(self.config.timeout.as_millis()).unwrap_or(i64::MAX);
        let sent = match query.kind {
            QueryKind::Instant => {
                self.client
                    .query(&query.text)
                    .at(now.timestamp())
                    .timeout(timeout_ms)
                    .get_raw()
                    .await
            }
            QueryKind::Range { window, step } => {
                let start = now.timestamp() - i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
                self.client
                    .query_range(&query.text, start, now.timestamp(), step.as_secs_f64())
                    .timeout(timeout_ms)
                    .get_raw()
                    .await
            }
        };
        let response = sent.map_err(|e| self.send_error(e))?;
        let result = self.decode(response).await?;
        self.values(result, query.kind)
    }

    /// Reads an answer: a Prometheus API envelope, or an HTTP error from something else.
    async fn decode(&self, response: reqwest::Response) -> Result<PromqlResult, ProviderError> {
        let status = response.status();
        if !is_json(&response) {
            let body = response.text().await.unwrap_or_default();
            return Err(if status.is_success() {
                self.invalid(format!(
                    "not a Prometheus API answer (HTTP {status}, not JSON)"
                ))
            } else {
                ProviderError::Http {
                    address: self.address(),
                    status: status.as_u16(),
                    body: truncate(body.trim(), MAX_BODY),
                }
            });
        }
        let envelope: Envelope = response
            .json()
            .await
            .map_err(|e| self.transport_error(&e))?;
        match (envelope.status.as_str(), envelope.data) {
            ("success", Some(data)) => Ok(data),
            ("error", _) => Err(ProviderError::Query {
                kind: envelope.error_type.unwrap_or_else(|| "unknown".into()),
                message: envelope.error.unwrap_or_default(),
            }),
            (other, _) => Err(self.invalid(format!("API status {other:?} without data"))),
        }
    }

    fn values(&self, result: PromqlResult, kind: QueryKind) -> Result<MetricValue, ProviderError> {
        let values = match (result.into_inner().0, kind) {
            (Data::Scalar(sample), QueryKind::Instant) => vec![sample.value()],
            (Data::Vector(series), QueryKind::Instant) => {
                series.iter().map(|s| s.sample().value()).collect()
            }
            (Data::Matrix(series), QueryKind::Range { .. }) => series
                .iter()
                .flat_map(|s| s.samples().iter().map(|p| p.value()))
                .collect(),
            (Data::Matrix(_), QueryKind::Instant) => {
                return Err(self.invalid(
                    "the instant query returned a range vector; a condition needs one value per \
                     series (apply a function such as rate() or avg_over_time() to the range)"
                        .into(),
                ));
            }
            (_, QueryKind::Range { .. }) => {
                return Err(self.invalid("the range query did not return a range vector".into()));
            }
        };
        Ok(MetricValue::new(values))
    }

    fn send_error(&self, error: prometheus_http_query::Error) -> ProviderError {
        match &error {
            prometheus_http_query::Error::Client(c) => match c.inner() {
                Some(e) => self.transport_error(e),
                None => self.invalid(error.to_string()),
            },
            prometheus_http_query::Error::Prometheus(e) => ProviderError::Query {
                kind: e.error_type().to_string(),
                message: e.message().to_string(),
            },
            _ => ProviderError::Config(error.to_string()),
        }
    }

    fn transport_error(&self, error: &reqwest::Error) -> ProviderError {
        if error.is_timeout() {
            ProviderError::Timeout {
                address: self.address(),
                timeout: self.config.timeout,
            }
        } else if error.is_decode() || error.is_body() {
            self.invalid(causes(error))
        } else {
            ProviderError::Unreachable {
                address: self.address(),
                reason: causes(error),
            }
        }
    }

    fn invalid(&self, reason: String) -> ProviderError {
        ProviderError::InvalidResponse {
            address: self.address(),
            reason,
        }
    }

    fn address(&self) -> String {
        self.config.address.display.clone()
    }

    /// Masks secrets in every text field of an error.
    fn redact(&self, error: ProviderError) -> ProviderError {
        let r = |s: String| self.config.redact(&s);
        match error {
            ProviderError::Config(m) => ProviderError::Config(r(m)),
            ProviderError::Unreachable { address, reason } => ProviderError::Unreachable {
                address: r(address),
                reason: r(reason),
            },
            ProviderError::Timeout { address, timeout } => ProviderError::Timeout {
                address: r(address),
                timeout,
            },
            ProviderError::Http {
                address,
                status,
                body,
            } => ProviderError::Http {
                address: r(address),
                status,
                body: r(body),
            },
            ProviderError::Query { kind, message } => ProviderError::Query {
                kind: r(kind),
                message: r(message),
            },
            ProviderError::InvalidResponse { address, reason } => ProviderError::InvalidResponse {
                address: r(address),
                reason: r(reason),
            },
        }
    }
}

impl std::fmt::Debug for PrometheusProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MetricProvider for PrometheusProvider {
    fn fetch<'a>(&'a self, query: &'a ResolvedQuery, now: DateTime<Utc>) -> FetchFuture<'a> {
        Box::pin(async move { self.run(query, now).await.map_err(|e| self.redact(e)) })
    }
}

/// The Prometheus API envelope; `data` is parsed by `prometheus-http-query`'s own types.
#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<PromqlResult>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

fn is_json(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"))
}

/// The error's causes without its top line, which only repeats the URL ("error sending
/// request for url (...)"): "client error (Connect): tcp connect error: Connection refused".
fn causes(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests;
