//! The two questions the demo asks Prometheus before and after releasing: does it already see
//! the simulator's traffic for the namespace (an analysis over no data would fail a good
//! release), and how often does it scrape the simulator (printed with the latency figures).
//!
//! Prometheus cannot be watched, so [`wait_for_traffic`] asks every half second, within a
//! bound.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::mesh::JOB;
use crate::mesh::config::parse_duration;

/// Time between two questions while waiting.
const ASK_EVERY: Duration = Duration::from_millis(500);
/// Bound of one HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("asking Prometheus at {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("Prometheus at {url} answered {answer}")]
    Answer { url: String, answer: String },
    #[error(
        "Prometheus saw no simulated requests in namespace {namespace} within {timeout:?}; last answer: {last}"
    )]
    NoTraffic {
        namespace: String,
        timeout: Duration,
        last: String,
    },
}

fn http() -> Result<reqwest::Client, PrometheusError> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|source| PrometheusError::Http {
            url: String::new(),
            source,
        })
}

async fn get(url: &str, query: &[(&str, &str)]) -> Result<Value, PrometheusError> {
    let fail = |source| PrometheusError::Http {
        url: url.to_owned(),
        source,
    };
    let response = http()?.get(url).query(query).send().await.map_err(fail)?;
    let body: Value = response.json().await.map_err(fail)?;
    if body["status"] != "success" {
        return Err(PrometheusError::Answer {
            url: url.to_owned(),
            answer: body.to_string(),
        });
    }
    Ok(body)
}

fn query_url(base: &str) -> String {
    format!("{}/api/v1/query", base.trim_end_matches('/'))
}

/// The value of the first series an instant `query` returns, if any.
pub async fn query_value(base: &str, query: &str) -> Result<Option<f64>, PrometheusError> {
    let body = get(&query_url(base), &[("query", query)]).await?;
    Ok(body
        .pointer("/data/result/0/value/1")
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok()))
}

/// The request rate Prometheus sees for services in `namespace`, if any.
pub async fn request_rate(base: &str, namespace: &str) -> Result<Option<f64>, PrometheusError> {
    let query = format!(
        "sum(rate(istio_requests_total{{reporter=\"destination\",destination_service_namespace=\"{namespace}\"}}[5s]))"
    );
    query_value(base, &query).await
}

/// Waits until Prometheus sees requests in `namespace` (rate above 0); returns the rate.
pub async fn wait_for_traffic(
    base: &str,
    namespace: &str,
    timeout: Duration,
) -> Result<f64, PrometheusError> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match request_rate(base, namespace).await {
            Ok(Some(rate)) if rate > 0.0 => return Ok(rate),
            Ok(rate) => format!("rate {rate:?}"),
            Err(error) => error.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(PrometheusError::NoTraffic {
                namespace: namespace.to_owned(),
                timeout,
                last,
            });
        }
        tokio::time::sleep(ASK_EVERY).await;
    }
}

/// Whether Prometheus scraped the simulator at `instance` (`127.0.0.1:PORT`) successfully.
pub async fn scrapes(base: &str, instance: &str) -> Result<bool, PrometheusError> {
    let query = format!("up{{job=\"{JOB}\",instance=\"{instance}\"}} == 1");
    let body = get(&query_url(base), &[("query", &query)]).await?;
    Ok(body
        .pointer("/data/result")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty()))
}

/// The scrape interval of the simulator's targets, from Prometheus' active targets.
pub async fn scrape_interval(base: &str) -> Result<Option<Duration>, PrometheusError> {
    let url = format!("{}/api/v1/targets", base.trim_end_matches('/'));
    let body = get(&url, &[("state", "active")]).await?;
    Ok(interval_of_job(&body, JOB))
}

fn interval_of_job(targets: &Value, job: &str) -> Option<Duration> {
    targets
        .pointer("/data/activeTargets")?
        .as_array()?
        .iter()
        .find(|t| t.pointer("/labels/job").and_then(Value::as_str) == Some(job))?
        .get("scrapeInterval")?
        .as_str()
        .and_then(|s| parse_duration(s).ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_simulators_scrape_interval_is_read_from_its_target() {
        let targets = json!({"status": "success", "data": {"activeTargets": [
            {"labels": {"job": "prometheus"}, "scrapeInterval": "15s"},
            {"labels": {"job": JOB}, "scrapeInterval": "1s"},
        ]}});
        assert_eq!(interval_of_job(&targets, JOB), Some(Duration::from_secs(1)));
        assert_eq!(interval_of_job(&targets, "other"), None);
    }
}
