use std::time::Duration;

use super::*;
use crate::value::ValueStatus;

fn provider() -> PrometheusProvider {
    PrometheusProvider::new(PrometheusConfig::for_address("http://127.0.0.1:9")).unwrap()
}

fn answer(data: serde_json::Value) -> PromqlResult {
    serde_json::from_value(data).unwrap()
}

const RANGE: QueryKind = QueryKind::Range {
    window: Duration::from_secs(60),
    step: Duration::from_secs(15),
};

#[test]
fn instant_vectors_give_one_value_per_series() {
    let data = answer(serde_json::json!({"resultType": "vector", "result": [
        {"metric": {"pod": "a"}, "value": [1.0, "0.5"]},
        {"metric": {"pod": "b"}, "value": [1.0, "NaN"]},
        {"metric": {"pod": "c"}, "value": [1.0, "+Inf"]}
    ]}));
    let v = provider().values(data, QueryKind::Instant).unwrap();
    assert_eq!(v.sample_count(), 3);
    assert_eq!(v.values()[0], 0.5);
    assert!(v.values()[1].is_nan());
    assert_eq!(v.values()[2], f64::INFINITY);
    assert_eq!(v.status(), ValueStatus::NaN);
}

#[test]
fn scalars_and_empty_vectors() {
    let scalar = answer(serde_json::json!({"resultType": "scalar", "result": [1.0, "0.25"]}));
    assert_eq!(
        provider()
            .values(scalar, QueryKind::Instant)
            .unwrap()
            .values(),
        [0.25]
    );
    let empty = answer(serde_json::json!({"resultType": "vector", "result": []}));
    assert_eq!(
        provider().values(empty, QueryKind::Instant).unwrap(),
        MetricValue::empty()
    );
}

#[test]
fn range_vectors_flatten_for_range_queries_only() {
    let matrix = || {
        answer(serde_json::json!({"resultType": "matrix", "result": [
            {"metric": {}, "values": [[1.0, "1"], [2.0, "2"]]},
            {"metric": {}, "values": [[1.0, "3"]]}
        ]}))
    };
    assert_eq!(
        provider().values(matrix(), RANGE).unwrap().values(),
        [1.0, 2.0, 3.0]
    );
    let err = provider().values(matrix(), QueryKind::Instant).unwrap_err();
    assert!(
        err.to_string()
            .contains("the instant query returned a range vector"),
        "{err}"
    );
    let scalar = answer(serde_json::json!({"resultType": "scalar", "result": [1.0, "1"]}));
    assert_eq!(
        provider().values(scalar, RANGE).unwrap_err().category(),
        "invalid_response"
    );
}

#[test]
fn errors_are_redacted_field_by_field() {
    let p = PrometheusProvider::new(
        PrometheusConfig::for_address("http://127.0.0.1:9").with_secrets(["s3cret".to_string()]),
    )
    .unwrap();
    let e = p.redact(ProviderError::Http {
        address: "http://x/?k=s3cret".into(),
        status: 401,
        body: "token s3cret rejected".into(),
    });
    assert_eq!(
        e.to_string(),
        "http://x/?k=***** answered HTTP 401: token ***** rejected"
    );
}

#[test]
fn long_bodies_are_cut_on_character_boundaries() {
    assert_eq!(truncate("héllo", 2), "hé...");
    assert_eq!(truncate("short", 10), "short");
}
