//! Builds the `reqwest` client behind a [`PrometheusProvider`](super::PrometheusProvider):
//! timeout, default headers (custom headers and credentials, marked sensitive), TLS trust.

use std::time::Duration;

use base64::Engine as _;
use reqwest::{
    Certificate,
    header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue},
};

use super::config::{Auth, ConfigError, PrometheusConfig, Tls};
use crate::args::MASK;

/// Connecting must not take the whole request budget: a dead address should fail fast and
/// name the connection as the problem.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `prometheus-http-query` client for `config`.
pub(super) fn build(
    config: &PrometheusConfig,
) -> Result<prometheus_http_query::Client, ConfigError> {
    let base = base_url(config)?;
    let builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(MAX_CONNECT_TIMEOUT))
        .default_headers(headers(config)?);
    let http = tls(builder, &config.tls)?
        .build()
        .map_err(|e| ConfigError::Client(config.redact(&e.to_string())))?;
    prometheus_http_query::Client::from(http, &base).map_err(|e| ConfigError::Address {
        address: config.address.display.clone(),
        reason: e.to_string(),
    })
}

/// The address, checked to be an absolute http(s) URL, without trailing slashes (the library
/// appends `/api/v1/...` to the path as is).
fn base_url(config: &PrometheusConfig) -> Result<String, ConfigError> {
    let invalid = |reason: String| ConfigError::Address {
        address: config.address.display.clone(),
        reason: config.redact(&reason),
    };
    let text = config.address.text.trim();
    let url = reqwest::Url::parse(text).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    Ok(text.trim_end_matches('/').to_string())
}

fn headers(config: &PrometheusConfig) -> Result<HeaderMap, ConfigError> {
    let mut map = HeaderMap::new();
    for (key, rendered) in &config.headers {
        let invalid = |reason: &str| ConfigError::Header {
            key: key.clone(),
            reason: reason.to_string(),
        };
        let name = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| invalid("not a valid header name"))?;
        let mut value = HeaderValue::from_str(&rendered.text)
            .map_err(|_| invalid("the value contains characters a header cannot carry"))?;
        // A header whose value hides a secret argument is kept out of HTTP/2 header tables.
        value.set_sensitive(rendered.text != rendered.display);
        map.append(name, value);
    }
    if let Some(auth) = &config.auth {
        map.insert(AUTHORIZATION, authorization(auth)?);
    }
    Ok(map)
}

fn authorization(auth: &Auth) -> Result<HeaderValue, ConfigError> {
    let text = match auth {
        Auth::Bearer { token } => format!("Bearer {token}"),
        Auth::Basic { username, password } => {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            format!("Basic {encoded}")
        }
    };
    let mut value = HeaderValue::from_str(&text).map_err(|_| ConfigError::Header {
        key: AUTHORIZATION.to_string(),
        reason: format!("the credential contains characters a header cannot carry ({MASK})"),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn tls(builder: reqwest::ClientBuilder, tls: &Tls) -> Result<reqwest::ClientBuilder, ConfigError> {
    let builder = builder.tls_danger_accept_invalid_certs(tls.insecure);
    let Some(pem) = &tls.ca_pem else {
        return Ok(builder);
    };
    let certs = Certificate::from_pem_bundle(pem)
        .map_err(|e| ConfigError::Tls(format!("the CA bundle is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::Tls(
            "the CA bundle holds no certificate".into(),
        ));
    }
    // Only the given CA: a private Prometheus is signed by its own CA, and also trusting every
    // public CA would accept any publicly valid certificate for that name.
    Ok(builder.tls_certs_only(certs))
}
