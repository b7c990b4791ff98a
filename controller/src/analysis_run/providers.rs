//! A bounded cache of Prometheus providers, so measurements reuse connection pools instead of
//! building an HTTP client each time.
//!
//! The key is a digest of the resolved configuration: address and header values as sent,
//! timeout, TLS settings, the user name of basic authentication, the resource versions of the
//! Secrets holding credentials and CA (a rotated Secret gets a new client), and the secret
//! argument values (a provider masks them in its error messages, so a changed value needs a
//! provider that knows it). Only the digest is kept as the key; the providers themselves hold
//! the credentials, as they must to send them.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use sluice_analysis::{Args, ConfigError, PrometheusConfig, PrometheusProvider};

/// Distinct provider configurations kept; the least recently used is dropped beyond this.
/// Runs of one controller usually share a handful of Prometheus servers.
const CAPACITY: usize = 64;

type Key = [u8; 32];

/// Providers by configuration digest, least recently used dropped first.
#[derive(Default)]
pub struct ProviderCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    providers: HashMap<Key, (PrometheusProvider, u64)>,
    tick: u64,
}

impl ProviderCache {
    /// The provider for `config`, built on first use.
    ///
    /// `secret_versions` names the Secret keys (and their resource versions) the configuration
    /// was resolved from; `args` holds the secret argument values it masks.
    pub fn get_or_build(
        &self,
        config: PrometheusConfig,
        secret_versions: &[String],
        args: &Args,
    ) -> Result<PrometheusProvider, ConfigError> {
        let key = key(&config, secret_versions, args);
        if let Some(found) = self.lock().get(&key) {
            return Ok(found);
        }
        // Built outside the lock: building a client must not stall other runs' lookups.
        let provider = PrometheusProvider::new(config)?;
        self.lock().insert(key, provider.clone());
        Ok(provider)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().providers.len()
    }
}

impl Entries {
    fn get(&mut self, key: &Key) -> Option<PrometheusProvider> {
        self.tick += 1;
        let tick = self.tick;
        self.providers.get_mut(key).map(|(provider, used)| {
            *used = tick;
            provider.clone()
        })
    }

    fn insert(&mut self, key: Key, provider: PrometheusProvider) {
        self.tick += 1;
        self.providers.insert(key, (provider, self.tick));
        while self.providers.len() > CAPACITY {
            let oldest = self
                .providers
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => self.providers.remove(&k),
                None => break,
            };
        }
    }
}

fn key(config: &PrometheusConfig, secret_versions: &[String], args: &Args) -> Key {
    let mut h = Sha256::new();
    // Each part is length-prefixed so that no two different configurations hash the same input.
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(config.address.text.as_bytes());
    part(&config.timeout.as_nanos().to_le_bytes());
    for (name, value) in &config.headers {
        part(name.as_bytes());
        part(value.text.as_bytes());
    }
    // `Debug` of the auth shows its kind and user name with the credential masked; the
    // credential itself is covered by its Secret's resource version.
    part(format!("{:?}", config.auth).as_bytes());
    part(&[u8::from(config.tls.insecure)]);
    for version in secret_versions {
        part(version.as_bytes());
    }
    for secret in args.secret_values() {
        part(secret.as_bytes());
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(address: &str) -> PrometheusConfig {
        PrometheusConfig::for_address(address)
    }

    #[test]
    fn one_provider_per_configuration() {
        let cache = ProviderCache::default();
        let none = Args::new();
        cache
            .get_or_build(config("http://a:9090"), &[], &none)
            .expect("built");
        cache
            .get_or_build(config("http://a:9090"), &[], &none)
            .expect("reused");
        assert_eq!(cache.len(), 1);
        cache
            .get_or_build(config("http://b:9090"), &[], &none)
            .expect("built");
        cache
            .get_or_build(config("http://a:9090"), &["auth/token@2".into()], &none)
            .expect("rotated secret");
        let secret = Args::new().with_secret("t", "x");
        cache
            .get_or_build(config("http://a:9090"), &[], &secret)
            .expect("other secret args");
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_recently_used_providers() {
        let cache = ProviderCache::default();
        let none = Args::new();
        let first = config("http://first:9090");
        cache
            .get_or_build(first.clone(), &[], &none)
            .expect("built");
        for i in 0..CAPACITY + 10 {
            cache
                .get_or_build(config(&format!("http://h{i}:9090")), &[], &none)
                .expect("built");
            // Keep using the first one: it must survive the evictions.
            cache.get_or_build(first.clone(), &[], &none).expect("used");
        }
        assert_eq!(cache.len(), CAPACITY);
        let k = key(&first, &[], &none);
        assert!(cache.lock().providers.contains_key(&k));
    }

    #[test]
    fn an_unusable_configuration_is_an_error_not_a_cache_entry() {
        let cache = ProviderCache::default();
        let err = cache
            .get_or_build(config("not a url"), &[], &Args::new())
            .expect_err("invalid");
        assert_eq!(err.category(), "address");
        assert_eq!(cache.len(), 0);
    }
}
