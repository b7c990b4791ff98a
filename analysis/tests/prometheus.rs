//! The Prometheus provider against real servers.
//!
//! - The local cluster's Prometheus (`$SLUICE_PROMETHEUS_URL`, which scrapes itself) for live
//!   data and for query errors.
//! - A throw-away Prometheus serving data backfilled with `promtool`, for exact values: a
//!   normal ratio, no data, NaN from `0/0`, several series, a scalar, a range.
//! - A throw-away Prometheus behind TLS (private CA) and basic auth.
//! - Raw local sockets for what no Prometheus does on demand: refusing connections, never
//!   answering, answering a proxy's 401, and echoing the request headers.
//!
//! Each case goes through `measure` too, to check the verdict and the message a user sees.

mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sluice_analysis::{
    Args, MetricProvider, MetricValue, PrometheusConfig, PrometheusProvider, ProviderError,
    ResolvedQuery, SecretValues, ValidatedMetric, ValueStatus, measure, render, resolve_query,
};
use sluice_crds::{AnalysisPhase, Metric};
use support::{
    TestPrometheus, canned_server, cluster_prometheus_url, free_port, http_response, silent_server,
};

/// A metric spec from JSON, validated.
fn metric(json: serde_json::Value) -> ValidatedMetric {
    let spec: Metric = serde_json::from_value(json).expect("metric spec");
    ValidatedMetric::new(&spec, false, 10).expect("valid metric")
}

fn success_rate(address: &str, query: &str) -> ValidatedMetric {
    metric(serde_json::json!({
        "name": "success-rate",
        "successCondition": "result[0] >= 0.95",
        "provider": {"prometheus": {"address": address, "query": query}}
    }))
}

fn instant(query: &str) -> ResolvedQuery {
    ResolvedQuery::instant(render(query, &Args::new()).expect("render"))
}

async fn fetch(
    provider: &PrometheusProvider,
    query: &str,
    at: DateTime<Utc>,
) -> Result<MetricValue, ProviderError> {
    provider.fetch(&instant(query), at).await
}

/// Fetches the metric's query at `at` and judges it: (phase, message).
async fn verdict(
    provider: &PrometheusProvider,
    m: &ValidatedMetric,
    at: DateTime<Utc>,
) -> (AnalysisPhase, String) {
    let query = resolve_query(m, &Args::new()).expect("query");
    let fetched = provider.fetch(&query, at).await;
    let measured = measure(m, &query, &fetched, at, at);
    (measured.phase, measured.message.unwrap_or_default())
}

/// The backfilled samples' last timestamp: an hour ago, on a whole minute.
fn data_time() -> DateTime<Utc> {
    (Utc::now() - TimeDelta::hours(1))
        .duration_trunc(TimeDelta::minutes(1))
        .expect("truncate")
}

/// Five minutes of samples, one a minute, ending at `end`.
fn openmetrics(end: DateTime<Utc>) -> String {
    let series = [
        ("sluice_test_success_ratio", "case=\"normal\"", "0.97"),
        ("sluice_test_success_ratio", "case=\"bad\"", "0.91"),
        ("sluice_test_requests", "case=\"idle\"", "0"),
        ("sluice_test_errors", "case=\"idle\"", "0"),
        ("sluice_test_latency_seconds", "pod=\"a\"", "0.12"),
        ("sluice_test_latency_seconds", "pod=\"b\"", "0.34"),
    ];
    let mut out = String::new();
    let mut family = "";
    for (name, labels, value) in series {
        if name != family {
            out.push_str(&format!("# TYPE {name} gauge\n"));
            family = name;
        }
        for minutes_back in (0..5).rev() {
            let ts = (end - TimeDelta::minutes(minutes_back)).timestamp();
            out.push_str(&format!("{name}{{{labels}}} {value} {ts}\n"));
        }
    }
    out.push_str("# EOF\n");
    out
}

#[tokio::test]
async fn backfilled_data_comes_back_typed_and_judged() {
    let t = data_time();
    let prom = TestPrometheus::backfilled(&openmetrics(t)).await;
    let provider =
        PrometheusProvider::new(PrometheusConfig::for_address(&prom.url)).expect("provider");

    // A normal value.
    let v = fetch(&provider, "sluice_test_success_ratio{case=\"normal\"}", t)
        .await
        .expect("normal");
    assert_eq!((v.values(), v.status()), (&[0.97][..], ValueStatus::Ok));
    let m = success_rate(&prom.url, "sluice_test_success_ratio{case=\"normal\"}");
    assert_eq!(
        verdict(&provider, &m, t).await,
        (
            AnalysisPhase::Successful,
            "result[0]=0.97 satisfied successCondition 'result[0] >= 0.95'".into()
        )
    );
    let m = success_rate(&prom.url, "sluice_test_success_ratio{case=\"bad\"}");
    assert_eq!(
        verdict(&provider, &m, t).await,
        (
            AnalysisPhase::Failed,
            "result[0]=0.91 did not satisfy successCondition 'result[0] >= 0.95'".into()
        )
    );

    // An empty result: no series match.
    let v = fetch(&provider, "sluice_test_success_ratio{case=\"missing\"}", t)
        .await
        .expect("empty");
    assert_eq!((v.sample_count(), v.status()), (0, ValueStatus::Empty));
    let m = success_rate(&prom.url, "sluice_test_success_ratio{case=\"missing\"}");
    assert_eq!(
        verdict(&provider, &m, t).await,
        (
            AnalysisPhase::Failed,
            "the query returned no data; onEmpty is fail".into()
        )
    );

    // NaN: zero errors over zero requests.
    let idle = "sluice_test_errors{case=\"idle\"} / sluice_test_requests{case=\"idle\"}";
    let v = fetch(&provider, idle, t).await.expect("nan");
    assert_eq!(v.status(), ValueStatus::NaN);
    let m = metric(serde_json::json!({
        "name": "error-rate",
        "failureCondition": "result[0] > 0.01",
        "onNaN": "inconclusive",
        "provider": {"prometheus": {"address": prom.url, "query": idle}}
    }));
    assert_eq!(
        verdict(&provider, &m, t).await,
        (
            AnalysisPhase::Inconclusive,
            "the query returned NaN (result[0]=NaN); onNaN is inconclusive".into()
        )
    );

    // Several series, a scalar, and a range.
    let mut v = fetch(&provider, "sluice_test_latency_seconds", t)
        .await
        .expect("vector")
        .values()
        .to_vec();
    v.sort_by(f64::total_cmp);
    assert_eq!(v, [0.12, 0.34]);
    let v = fetch(
        &provider,
        "scalar(sluice_test_success_ratio{case=\"normal\"})",
        t,
    )
    .await
    .expect("scalar");
    assert_eq!(v.values(), [0.97]);
    let range = ResolvedQuery::range(
        render("sluice_test_success_ratio{case=\"normal\"}", &Args::new()).expect("render"),
        Duration::from_secs(240),
        Duration::from_secs(60),
    );
    let v = provider.fetch(&range, t).await.expect("range");
    assert_eq!(v.values(), [0.97; 5]);

    // A range selector in an instant query has no single value per series.
    let err = fetch(&provider, "sluice_test_success_ratio[5m]", t)
        .await
        .unwrap_err();
    assert_eq!(err.category(), "invalid_response", "{err}");
    assert!(err.to_string().contains("returned a range vector"), "{err}");
}

#[tokio::test]
async fn the_cluster_prometheus_answers_up() {
    let url = cluster_prometheus_url();
    let provider = PrometheusProvider::new(PrometheusConfig::for_address(&url)).expect("provider");
    let m = metric(serde_json::json!({
        "name": "up",
        "successCondition": "result[0] == 1.0",
        "provider": {"prometheus": {"address": url, "query": "up{job=\"prometheus\"}"}}
    }));
    // Right after the cluster starts, the first self-scrape may not be in yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (phase, message) = verdict(&provider, &m, Utc::now()).await;
        if phase == AnalysisPhase::Successful {
            assert_eq!(
                message,
                "result[0]=1 satisfied successCondition 'result[0] == 1.0'"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no `up` from {url} after 30s: {phase:?} {message}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn bad_promql_is_a_typed_query_error() {
    let url = cluster_prometheus_url();
    let provider = PrometheusProvider::new(PrometheusConfig::for_address(&url)).expect("provider");
    let err = fetch(
        &provider,
        "sum(rate(prometheus_http_requests_total[1m]",
        Utc::now(),
    )
    .await
    .unwrap_err();
    let ProviderError::Query { kind, message } = &err else {
        panic!("expected a query error, got {err:?}");
    };
    assert_eq!(kind, "bad_data");
    assert!(message.contains("parse error"), "{message}");
    assert_eq!(err.category(), "query");
    let m = success_rate(&url, "sum(");
    let (phase, message) = verdict(&provider, &m, Utc::now()).await;
    assert_eq!(phase, AnalysisPhase::Error);
    assert!(
        message.starts_with("query failed (bad_data): "),
        "{message}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_unreachable() {
    let address = format!("http://127.0.0.1:{}", free_port());
    let provider =
        PrometheusProvider::new(PrometheusConfig::for_address(&address)).expect("provider");
    let err = fetch(&provider, "up", Utc::now()).await.unwrap_err();
    assert_eq!(err.category(), "unreachable", "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot reach {address}: ")),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let address = silent_server().await;
    let mut config = PrometheusConfig::for_address(&address);
    config.timeout = Duration::from_secs(1);
    let provider = PrometheusProvider::new(config).expect("provider");
    let started = Instant::now();
    let err = fetch(&provider, "up", Utc::now()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        err,
        ProviderError::Timeout {
            address: address.clone(),
            timeout: Duration::from_secs(1)
        }
    );
    assert_eq!(
        err.to_string(),
        format!("no answer from {address} within 1s")
    );
}

const VECTOR_ANSWER: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.99"]}]}}"#;

#[tokio::test]
async fn headers_and_bearer_token_reach_the_server() {
    let (url, mut requests) =
        canned_server(http_response("200 OK", "application/json", VECTOR_ANSWER)).await;
    let spec = serde_json::from_value(serde_json::json!({
        "address": url,
        "headers": [{"key": "X-Scope-OrgID", "value": "{{args.tenant}}"}],
        "authentication": {"bearer": {"tokenSecretKeyRef": {"name": "prom", "key": "token"}}}
    }))
    .expect("spec");
    let args = Args::new().with("tenant", "shop");
    let secrets = SecretValues::new().with("prom", "token", "t0ken");
    let provider =
        PrometheusProvider::new(PrometheusConfig::resolve(&spec, &args, &secrets).expect("config"))
            .expect("provider");
    let at = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
    let v = fetch(&provider, "sum(up)", at).await.expect("fetch");
    assert_eq!(v.values(), [0.99]);
    let head = requests.recv().await.expect("a request");
    assert!(head.starts_with("get /api/v1/query?"), "{head}");
    assert!(
        head.contains("query=sum%28up%29") && head.contains("time=1700000000"),
        "{head}"
    );
    assert!(head.contains("\r\nx-scope-orgid: shop\r\n"), "{head}");
    assert!(
        head.contains("\r\nauthorization: bearer t0ken\r\n"),
        "{head}"
    );
}

#[tokio::test]
async fn a_proxy_error_quotes_the_body_without_secrets() {
    let body = "token t0ken is not allowed here";
    let (url, _requests) =
        canned_server(http_response("401 Unauthorized", "text/plain", body)).await;
    let spec = serde_json::from_value(serde_json::json!({
        "address": format!("{url}/?tenant={{{{args.key}}}}"),
        "authentication": {"bearer": {"tokenSecretKeyRef": {"name": "prom", "key": "token"}}}
    }))
    .expect("spec");
    let args = Args::new().with_secret("key", "k3y");
    let secrets = SecretValues::new().with("prom", "token", "t0ken");
    let provider =
        PrometheusProvider::new(PrometheusConfig::resolve(&spec, &args, &secrets).expect("config"))
            .expect("provider");
    let err = fetch(&provider, "up", Utc::now()).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::Http {
            address: format!("{url}/?tenant=*****"),
            status: 401,
            body: "token ***** is not allowed here".into()
        }
    );
}

const CA: &str = include_str!("fixtures/tls/ca.crt");
const PASSWORD: &str = "sluice-test-password";
/// bcrypt (cost 4, so each request costs Prometheus little) of [`PASSWORD`].
const PASSWORD_HASH: &str = "$2b$04$PTvxQKH/VBhBHmsfJAaIMeVDDaM/iVj6W4jwFiG/xrq5t1hvpOhFC";

fn tls_provider(
    address: &str,
    ca: Option<&str>,
    insecure: bool,
    password: &str,
) -> PrometheusProvider {
    let mut spec = serde_json::json!({
        "address": address,
        "insecure": insecure,
        "authentication": {"basic": {"username": "sluice", "passwordSecretKeyRef": {"name": "prom", "key": "password"}}}
    });
    let mut secrets = SecretValues::new().with("prom", "password", password);
    if let Some(ca) = ca {
        spec["tls"] = serde_json::json!({"caSecretKeyRef": {"name": "prom-ca", "key": "ca.crt"}});
        secrets.insert("prom-ca", "ca.crt", ca.as_bytes().to_vec());
    }
    let spec = serde_json::from_value(spec).expect("spec");
    let config = PrometheusConfig::resolve(&spec, &Args::new(), &secrets).expect("config");
    PrometheusProvider::new(config).expect("provider")
}

#[tokio::test]
async fn tls_with_a_private_ca_and_basic_auth() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    let web = format!(
        "tls_server_config:\n  cert_file: {fixtures}/server.crt\n  key_file: {fixtures}/server.key\n\
         basic_auth_users:\n  sluice: {PASSWORD_HASH}\n"
    );
    let ready = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(CA.as_bytes()).expect("ca"))
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                "Basic c2x1aWNlOnNsdWljZS10ZXN0LXBhc3N3b3Jk"
                    .parse()
                    .expect("header"),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .expect("client");
    let prom = TestPrometheus::with_web_config(&web, &ready).await;
    let now = Utc::now();

    let trusted = tls_provider(&prom.url, Some(CA), false, PASSWORD);
    assert_eq!(
        fetch(&trusted, "vector(1)", now)
            .await
            .expect("trusted CA")
            .values(),
        [1.0]
    );

    let insecure = tls_provider(&prom.url, None, true, PASSWORD);
    assert_eq!(
        fetch(&insecure, "vector(1)", now)
            .await
            .expect("insecure")
            .values(),
        [1.0]
    );

    let untrusted = tls_provider(&prom.url, None, false, PASSWORD);
    let err = fetch(&untrusted, "vector(1)", now).await.unwrap_err();
    assert_eq!(err.category(), "unreachable", "{err}");
    assert!(
        err.to_string().contains("certificate verify failed"),
        "{err}"
    );

    let wrong = tls_provider(&prom.url, Some(CA), false, "not-the-password");
    let err = fetch(&wrong, "vector(1)", now).await.unwrap_err();
    let ProviderError::Http { status, .. } = &err else {
        panic!("expected HTTP 401, got {err:?}");
    };
    assert_eq!(*status, 401);
    assert!(!err.to_string().contains("not-the-password"));
}
