//! Metric providers: where a metric's values come from. Prometheus is the only one.
//!
//! Shapes follow Argo Rollouts (`provider.prometheus {address, query, timeout, headers,
//! insecure}`). Authentication is Sluice's own: credentials always come from a Secret key in the
//! template's namespace, read by name at measurement time, so RBAC never needs to list Secrets
//! and no credential is ever copied into an object.

use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use crate::{
    args::SecretKeyRef,
    duration::Duration,
    schema::{MAX_TEXT, add_rules, exactly_one, rule},
};

/// Where to fetch a metric. Exactly one provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = provider_rules)]
pub enum MetricProvider {
    /// A Prometheus-compatible HTTP API (`/api/v1/query`).
    Prometheus(PrometheusMetric),
}

fn provider_rules(schema: &mut Schema) {
    exactly_one(
        schema,
        "metrics[].provider must set exactly one provider: prometheus",
    );
}

impl MetricProvider {
    /// The Prometheus settings (the only provider today).
    pub fn prometheus(&self) -> &PrometheusMetric {
        match self {
            MetricProvider::Prometheus(p) => p,
        }
    }
}

/// A PromQL query against one Prometheus server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = prometheus_rules)]
pub struct PrometheusMetric {
    /// Base URL, e.g. `http://prometheus.monitoring:9090`. May use `{{args.*}}`.
    #[schemars(length(min = 1, max = 2048))]
    pub address: String,
    /// PromQL instant query; `{{args.<name>}}` is substituted first. Required unless the
    /// metric uses a judge, which brings its own queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_TEXT))]
    pub query: Option<String>,
    /// Request timeout (default 30s as integer seconds or a duration string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Extra HTTP headers sent with every query (e.g. a tenant header).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HttpHeader>,
    /// Credentials for the Prometheus API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<PrometheusAuth>,
    /// Skip TLS certificate verification. For tests only; mutually exclusive with `tls`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// TLS settings for an `https://` address with a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PrometheusTls>,
}

fn prometheus_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [
            rule(
                "self.address.startsWith('http://') || self.address.startsWith('https://') || self.address.startsWith('{{')",
                "provider.prometheus.address must be an http:// or https:// URL",
            ),
            rule(
                "!(has(self.insecure) && self.insecure && has(self.tls))",
                "provider.prometheus.insecure and provider.prometheus.tls are mutually exclusive",
            ),
        ],
    );
}

/// One HTTP header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    /// Header name.
    #[schemars(length(min = 1, max = 256))]
    pub key: String,
    /// Header value. Put secrets in `authentication`, not here: headers are visible to anyone
    /// who can read the template.
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// How Sluice authenticates to Prometheus. Exactly one method.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = auth_rules)]
pub enum PrometheusAuth {
    /// `Authorization: Bearer <token>`.
    Bearer(BearerAuth),
    /// HTTP basic authentication.
    Basic(BasicAuth),
}

fn auth_rules(schema: &mut Schema) {
    exactly_one(
        schema,
        "provider.prometheus.authentication must set exactly one of bearer or basic",
    );
}

/// Bearer-token authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BearerAuth {
    /// Secret key holding the token.
    pub token_secret_key_ref: SecretKeyRef,
}

/// Basic authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// User name (not secret).
    #[schemars(length(min = 1, max = 256))]
    pub username: String,
    /// Secret key holding the password.
    pub password_secret_key_ref: SecretKeyRef,
}

/// TLS trust for the Prometheus endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusTls {
    /// Secret key holding the PEM-encoded CA bundle that signed the server certificate.
    pub ca_secret_key_ref: SecretKeyRef,
}
