use sluice_crds::provider::PrometheusMetric;

use super::*;
use crate::provider::prometheus::PrometheusProvider;

fn spec(json: serde_json::Value) -> PrometheusMetric {
    serde_json::from_value(json).unwrap()
}

fn secured() -> PrometheusMetric {
    spec(serde_json::json!({
        "address": "https://prom.{{args.ns}}:9090/?key={{args.key}}",
        "query": "up",
        "timeout": "5s",
        "headers": [{"key": "X-Scope-OrgID", "value": "{{args.tenant}}"}],
        "authentication": {"bearer": {"tokenSecretKeyRef": {"name": "prom", "key": "token"}}},
        "tls": {"caSecretKeyRef": {"name": "prom-ca", "key": "ca.crt"}}
    }))
}

fn args() -> Args {
    Args::new()
        .with("ns", "monitoring")
        .with("tenant", "shop")
        .with_secret("key", "k3y")
}

fn secrets() -> SecretValues {
    SecretValues::new().with("prom", "token", "t0ken\n").with(
        "prom-ca",
        "ca.crt",
        b"-----BEGIN CERTIFICATE-----".to_vec(),
    )
}

#[test]
fn resolves_arguments_and_credentials() {
    let c = PrometheusConfig::resolve(&secured(), &args(), &secrets()).unwrap();
    assert_eq!(c.address.text, "https://prom.monitoring:9090/?key=k3y");
    assert_eq!(c.address.display, "https://prom.monitoring:9090/?key=*****");
    assert_eq!(c.timeout, Duration::from_secs(5));
    assert_eq!(c.headers[0].0, "X-Scope-OrgID");
    assert_eq!(c.headers[0].1.text, "shop");
    // The trailing newline of `echo token > file` secrets is not part of the token.
    assert_eq!(
        c.auth,
        Some(Auth::Bearer {
            token: "t0ken".into()
        })
    );
    assert_eq!(
        c.tls.ca_pem.as_deref(),
        Some(&b"-----BEGIN CERTIFICATE-----"[..])
    );
    assert!(!c.tls.insecure);
}

#[test]
fn secrets_never_show_in_debug_or_redacted_text() {
    let c = PrometheusConfig::resolve(&secured(), &args(), &secrets()).unwrap();
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("t0ken") && !debug.contains("k3y"),
        "{debug}"
    );
    assert!(debug.contains("*****"));
    assert_eq!(
        c.redact("GET https://prom.monitoring:9090/?key=k3y with Bearer t0ken"),
        "GET https://prom.monitoring:9090/?key=***** with Bearer *****"
    );
    assert!(!format!("{:?}", secrets()).contains("t0ken"));
}

#[test]
fn basic_auth_and_defaults() {
    let s = spec(serde_json::json!({
        "address": "http://p:9090",
        "authentication": {"basic": {"username": "sluice", "passwordSecretKeyRef": {"name": "p", "key": "pw"}}}
    }));
    let c = PrometheusConfig::resolve(
        &s,
        &Args::new(),
        &SecretValues::new().with("p", "pw", "pa55"),
    )
    .unwrap();
    assert_eq!(
        c.auth,
        Some(Auth::Basic {
            username: "sluice".into(),
            password: "pa55".into()
        })
    );
    assert_eq!(c.timeout, DEFAULT_TIMEOUT);
    assert_eq!(c.redact("pa55"), "*****");
}

#[test]
fn lists_the_secret_keys_to_read() {
    let s = secured();
    let refs: Vec<(String, String)> = secret_refs(&s)
        .iter()
        .map(|r| (r.name.clone(), r.key.clone()))
        .collect();
    assert_eq!(
        refs,
        [
            ("prom".into(), "token".into()),
            ("prom-ca".into(), "ca.crt".into())
        ]
    );
    assert!(secret_refs(&spec(serde_json::json!({"address": "http://p"}))).is_empty());
}

#[test]
fn missing_pieces_are_clear_errors() {
    let err = PrometheusConfig::resolve(&secured(), &args(), &SecretValues::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Secret \"prom\" key \"token\" was not supplied"
    );
    assert_eq!(err.category(), "secret");
    let err = PrometheusConfig::resolve(&secured(), &Args::new(), &secrets()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "provider.prometheus.address: unresolved arguments {{args.key}}, {{args.ns}}: no value was supplied for them"
    );
    let binary = SecretValues::new().with("prom", "token", vec![0xff, 0xfe]);
    let err = PrometheusConfig::resolve(&secured(), &args(), &binary).unwrap_err();
    assert!(matches!(err, ConfigError::NotUtf8 { .. }));
}

#[test]
fn client_building_rejects_bad_settings() {
    let bad = |c: PrometheusConfig| PrometheusProvider::new(c).unwrap_err().to_string();
    assert!(
        bad(PrometheusConfig::for_address("ftp://p:21"))
            .contains("scheme \"ftp\" is not http or https")
    );
    assert!(
        bad(PrometheusConfig::for_address("not a url"))
            .contains("is not an http:// or https:// URL")
    );
    let mut c = PrometheusConfig::for_address("http://p:9090");
    c.headers.push((
        "bad header".into(),
        Rendered {
            text: "v".into(),
            display: "v".into(),
        },
    ));
    assert!(
        bad(c).starts_with("provider.prometheus.headers[\"bad header\"]: not a valid header name")
    );
    let mut c = PrometheusConfig::for_address("https://p:9090");
    c.tls.ca_pem = Some(b"not pem".to_vec());
    assert!(bad(c).starts_with("provider.prometheus.tls: the CA bundle"));
    assert!(
        PrometheusProvider::new(PrometheusConfig::for_address("http://p:9090/prefix/")).is_ok()
    );
}
