//! [`PrometheusConfig`]: a metric's `provider.prometheus` settings with arguments substituted
//! and credentials filled in, ready to build a client.
//!
//! The controller owns Kubernetes access: it asks [`secret_refs`] which Secret keys a provider
//! needs, reads them (by name, in the run's namespace), and passes the bytes in as
//! [`SecretValues`]. This module never sees a Secret object, and every secret it holds
//! (credentials, secret arguments in the address or headers) is kept for masking error
//! messages and is never printed by `Debug`.

use std::{collections::BTreeMap, fmt, time::Duration};

use sluice_crds::{
    SecretKeyRef,
    provider::{PrometheusAuth, PrometheusMetric},
};

use crate::args::{Args, ArgsError, MASK, Rendered, redact_with, render};

/// Request timeout when the metric sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything needed to talk to one Prometheus server.
#[derive(Clone)]
pub struct PrometheusConfig {
    /// Base URL (arguments substituted; `display` masks secret arguments).
    pub address: Rendered,
    /// Timeout of a whole request, also sent to Prometheus as the query timeout.
    pub timeout: Duration,
    /// Extra headers, values rendered.
    pub headers: Vec<(String, Rendered)>,
    /// Credentials.
    pub auth: Option<Auth>,
    /// Trust settings.
    pub tls: Tls,
    /// Secret argument values (credentials are in `auth`), for masking error messages.
    secrets: Vec<String>,
}

/// Credentials, already read from their Secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// HTTP basic authentication.
    Basic {
        /// User name (not secret).
        username: String,
        /// Password.
        password: String,
    },
}

/// TLS trust for an `https://` address.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// PEM CA bundle to trust instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any certificate (tests only; exclusive with `ca_pem` in the API).
    pub insecure: bool,
}

/// Secret values read by the controller, by Secret name and key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(BTreeMap<(String, String), Vec<u8>>);

impl SecretValues {
    /// None.
    pub fn new() -> Self {
        SecretValues::default()
    }

    /// Records the value of `key` in Secret `name`.
    pub fn insert(&mut self, name: impl Into<String>, key: impl Into<String>, value: Vec<u8>) {
        self.0.insert((name.into(), key.into()), value);
    }

    /// Builder form of [`SecretValues::insert`].
    pub fn with(
        mut self,
        name: impl Into<String>,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
    ) -> Self {
        self.insert(name, key, value.into());
        self
    }

    fn bytes(&self, r: &SecretKeyRef) -> Result<&[u8], ConfigError> {
        self.0
            .get(&(r.name.clone(), r.key.clone()))
            .map(Vec::as_slice)
            .ok_or_else(|| ConfigError::MissingSecret {
                name: r.name.clone(),
                key: r.key.clone(),
            })
    }

    fn text(&self, r: &SecretKeyRef) -> Result<String, ConfigError> {
        let bytes = self.bytes(r)?;
        let text = std::str::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
            name: r.name.clone(),
            key: r.key.clone(),
        })?;
        // Secrets created with `echo` end in a newline that is not part of the credential.
        Ok(text.trim_end_matches(['\r', '\n']).to_string())
    }
}

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.keys().map(|(n, k)| format!("{n}/{k}")))
            .finish()
    }
}

/// The Secret keys a provider needs (credentials and CA bundle), for the controller to read.
pub fn secret_refs(spec: &PrometheusMetric) -> Vec<&SecretKeyRef> {
    let auth = spec.authentication.as_ref().map(|a| match a {
        PrometheusAuth::Bearer(b) => &b.token_secret_key_ref,
        PrometheusAuth::Basic(b) => &b.password_secret_key_ref,
    });
    let ca = spec.tls.as_ref().map(|t| &t.ca_secret_key_ref);
    auth.into_iter().chain(ca).collect()
}

/// Why a provider configuration could not be resolved or used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A placeholder in a field could not be substituted.
    #[error("provider.prometheus.{field}: {source}")]
    Args {
        /// `address`, `headers[<key>]`.
        field: String,
        /// Why.
        source: ArgsError,
    },
    /// The controller did not supply a Secret key the provider references.
    #[error("Secret {name:?} key {key:?} was not supplied")]
    MissingSecret {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
    /// A credential is not UTF-8 text.
    #[error("Secret {name:?} key {key:?} is not UTF-8 text")]
    NotUtf8 {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
    /// The address is not an absolute `http://` or `https://` URL.
    #[error("provider.prometheus.address {address:?} is not an http:// or https:// URL: {reason}")]
    Address {
        /// The address, secrets masked.
        address: String,
        /// Why.
        reason: String,
    },
    /// A header name or value cannot be sent.
    #[error("provider.prometheus.headers[{key:?}]: {reason}")]
    Header {
        /// Header name.
        key: String,
        /// Why.
        reason: String,
    },
    /// The CA bundle or TLS settings are unusable.
    #[error("provider.prometheus.tls: {0}")]
    Tls(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl ConfigError {
    /// Bounded category for metrics labels and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            ConfigError::Args { .. } => "args",
            ConfigError::MissingSecret { .. } | ConfigError::NotUtf8 { .. } => "secret",
            ConfigError::Address { .. } => "address",
            ConfigError::Header { .. } => "header",
            ConfigError::Tls(_) => "tls",
            ConfigError::Client(_) => "client",
        }
    }
}

impl PrometheusConfig {
    /// Substitutes arguments into the address and header values and fills in credentials.
    ///
    /// # Guarantees
    /// Errors name the field and never contain a secret value.
    pub fn resolve(
        spec: &PrometheusMetric,
        args: &Args,
        secrets: &SecretValues,
    ) -> Result<Self, ConfigError> {
        let address = render(&spec.address, args).map_err(|source| ConfigError::Args {
            field: "address".into(),
            source,
        })?;
        let headers = spec
            .headers
            .iter()
            .map(|h| {
                let value = render(&h.value, args).map_err(|source| ConfigError::Args {
                    field: format!("headers[{:?}]", h.key),
                    source,
                })?;
                Ok((h.key.clone(), value))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let auth = spec
            .authentication
            .as_ref()
            .map(|a| resolve_auth(a, secrets))
            .transpose()?;
        let tls = Tls {
            ca_pem: spec
                .tls
                .as_ref()
                .map(|t| secrets.bytes(&t.ca_secret_key_ref).map(<[u8]>::to_vec))
                .transpose()?,
            insecure: spec.insecure,
        };
        Ok(PrometheusConfig {
            address,
            timeout: spec.timeout.map_or(DEFAULT_TIMEOUT, |t| t.get()),
            headers,
            auth,
            tls,
            secrets: args.secret_values().map(str::to_string).collect(),
        })
    }

    /// A configuration for `address` with defaults and nothing secret (tests, tools).
    pub fn for_address(address: &str) -> Self {
        PrometheusConfig {
            address: Rendered {
                text: address.to_string(),
                display: address.to_string(),
            },
            timeout: DEFAULT_TIMEOUT,
            headers: Vec::new(),
            auth: None,
            tls: Tls::default(),
            secrets: Vec::new(),
        }
    }

    /// Adds secret values to mask in error messages (for configs built by hand).
    pub fn with_secrets(mut self, secrets: impl IntoIterator<Item = String>) -> Self {
        self.secrets.extend(secrets);
        self
    }

    /// `text` with every secret value of this configuration masked.
    pub fn redact(&self, text: &str) -> String {
        let auth = self.auth.iter().flat_map(Auth::secret_texts);
        let all: Vec<String> = self.secrets.iter().cloned().chain(auth).collect();
        redact_with(text, all.iter().map(String::as_str))
    }
}

fn resolve_auth(auth: &PrometheusAuth, secrets: &SecretValues) -> Result<Auth, ConfigError> {
    Ok(match auth {
        PrometheusAuth::Bearer(b) => Auth::Bearer {
            token: secrets.text(&b.token_secret_key_ref)?,
        },
        PrometheusAuth::Basic(b) => Auth::Basic {
            username: b.username.clone(),
            password: secrets.text(&b.password_secret_key_ref)?,
        },
    })
}

impl Auth {
    fn secret_texts(&self) -> Vec<String> {
        match self {
            Auth::Bearer { token } => vec![token.clone()],
            Auth::Basic { password, .. } => vec![password.clone()],
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer { .. } => f.debug_struct("Bearer").field("token", &MASK).finish(),
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &MASK)
                .finish(),
        }
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field(
                "ca_pem",
                &self.ca_pem.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl fmt::Debug for PrometheusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusConfig")
            .field("address", &self.address.display)
            .field("timeout", &self.timeout)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, v)| (k, &v.display))
                    .collect::<Vec<_>>(),
            )
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
