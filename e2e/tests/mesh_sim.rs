//! The mesh simulator against the real local cluster and the real Prometheus: weighted splits,
//! per-version errors and latency, 503s for a destination without pods, header and mirror
//! routes, Services called directly by their selectors (blue-green), and Prometheus scraping the
//! simulator's registration.
//!
//! Each test runs in its own namespace (kwok pods become Ready at once) and starts the simulator
//! in-process on a free port, watching only that namespace. Needs `KUBECONFIG`,
//! `SLUICE_PROMETHEUS_URL` and `SLUICE_PROMETHEUS_TARGETS_DIR`
//! (`source .cache/run/cluster.env` after `e2e/cluster up`); without them the tests fail, they
//! never skip.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sluice_e2e::demo::prometheus;
use sluice_e2e::demo::watch::virtual_service_resource;
use sluice_e2e::mesh::{Config, Handle, run};
use sluice_tests::{eventually, wait_for_object};

const HOW_TO_START: &str =
    "start the local cluster first: `e2e/cluster up && source .cache/run/cluster.env`";
const READY_TIMEOUT: Duration = Duration::from_secs(90);
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------------
// Environment and namespaces.

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set; {HOW_TO_START}"))
}

/// Runs `body` in a fresh namespace `mesh-sim-<random>` and deletes it afterwards, pass or fail.
async fn with_namespace<F, Fut>(body: F) -> Result<()>
where
    F: FnOnce(kube::Client, String) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    // Checked up front so a missing variable fails every test the same clear way.
    env("SLUICE_PROMETHEUS_URL")?;
    env("SLUICE_PROMETHEUS_TARGETS_DIR")?;
    let client = sluice_tests::client().await?;
    let namespaces = client.clone();
    sluice_tests::with_namespace(&namespaces, "mesh-sim-", |ns| body(client, ns)).await
}

// ---------------------------------------------------------------------------------------------
// Fixtures: a version is a Deployment whose pods carry `app=web, track=<track>` and the
// simulator's behaviour annotations; a Service selects one track.

async fn create<K>(client: &kube::Client, ns: &str, object: Value) -> Result<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let object: K = serde_json::from_value(object)?;
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &object)
        .await?;
    Ok(())
}

/// Deployment `web-<track>` and Service `web-<track>` selecting its pods.
async fn version(
    client: &kube::Client,
    ns: &str,
    track: &str,
    replicas: i32,
    annotations: Value,
) -> Result<()> {
    let name = format!("web-{track}");
    let labels = json!({ "app": "web", "track": track });
    create::<Deployment>(
        client,
        ns,
        json!({
            "metadata": { "name": name },
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": labels },
                "template": {
                    "metadata": { "labels": labels, "annotations": annotations },
                    // kwok only pretends to run the image.
                    "spec": { "containers": [{ "name": "web", "image": "example.com/web:1" }] },
                },
            },
        }),
    )
    .await?;
    create::<Service>(
        client,
        ns,
        json!({
            "metadata": { "name": name },
            "spec": { "selector": labels, "ports": [{ "port": 8080 }] },
        }),
    )
    .await
}

async fn virtual_service(
    client: &kube::Client,
    ns: &str,
    annotations: Value,
    http: Value,
) -> Result<()> {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": { "name": "web", "annotations": annotations },
        "spec": { "hosts": ["web"], "http": http },
    }))?;
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &virtual_service_resource())
        .create(&PostParams::default(), &object)
        .await?;
    Ok(())
}

/// Service `name` selecting the pods of `track`, called directly at `rps` (no VirtualService).
async fn called_service(
    client: &kube::Client,
    ns: &str,
    name: &str,
    track: &str,
    rps: &str,
) -> Result<()> {
    create::<Service>(
        client,
        ns,
        json!({
            "metadata": { "name": name, "annotations": { "sim.sluice.dev/rps": rps } },
            "spec": { "selector": { "app": "web", "track": track }, "ports": [{ "port": 8080 }] },
        }),
    )
    .await
}

fn weighted(stable: u32, canary: u32) -> Value {
    json!([
        { "destination": { "host": "web-stable" }, "weight": stable },
        { "destination": { "host": "web-canary" }, "weight": canary },
    ])
}

fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Waits (watching Deployment `web-<track>`) until its `count` pods are all Ready; returns their
/// pod-template hash.
async fn ready_pods(client: &kube::Client, ns: &str, track: &str, count: i32) -> Result<String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let all_ready = move |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
            s.ready_replicas.unwrap_or(0) == count && s.updated_replicas.unwrap_or(0) == count
        })
    };
    let what = format!("{count} ready pods of track {track}");
    let name = format!("web-{track}");
    wait_for_object(deployments, &name, READY_TIMEOUT, &what, all_ready).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = ListParams::default().labels(&format!("app=web,track={track}"));
    let list = pods.list(&selector).await?.items;
    let ready: Vec<&Pod> = list.iter().filter(|p| is_ready(p)).collect();
    ensure!(
        ready.len() == usize::try_from(count)?,
        "{what}: the Deployment says so, the pods do not: {list:#?}"
    );
    let labels = ready.first().and_then(|p| p.metadata.labels.as_ref());
    let hash = labels.and_then(|l| l.get("pod-template-hash")).cloned();
    Ok(hash.unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Running the simulator and reading its metrics.

fn config(ns: &str, rps: f64) -> Config {
    Config {
        namespace: Some(ns.to_owned()),
        rps,
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        seed: 7,
        ..Config::default()
    }
}

/// Runs the simulator for `seconds` and returns its final `/metrics`.
async fn simulate(ns: &str, rps: f64, seconds: u64) -> Result<Metrics> {
    let config = Config {
        duration: Some(Duration::from_secs(seconds)),
        ..config(ns, rps)
    };
    let mut handle = run(config).await?;
    tokio::time::timeout(RUN_TIMEOUT, handle.traffic_done())
        .await
        .context("the bounded run did not finish")?;
    let metrics = scrape(&handle).await;
    handle.shutdown().await?;
    metrics
}

async fn scrape(handle: &Handle) -> Result<Metrics> {
    let text = reqwest::get(handle.metrics_url())
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(Metrics::parse(&text))
}

/// One sample of the exposition: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug)]
struct Metrics(Vec<Sample>);

impl Metrics {
    fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(parse_sample)
                .collect(),
        )
    }

    /// Sum of `name` over the samples whose labels include every pair of `filter`.
    fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                filter
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .map(|s| s.value)
            .sum()
    }

    fn requests(&self, filter: &[(&str, &str)]) -> f64 {
        self.sum("istio_requests_total", filter)
    }

    /// Share of requests matching `filter` that took at most `le` milliseconds.
    fn share_within(&self, le: &str, filter: &[(&str, &str)]) -> f64 {
        let mut bucket = filter.to_vec();
        bucket.push(("le", le));
        let within = self.sum("istio_request_duration_milliseconds_bucket", &bucket);
        within / self.sum("istio_request_duration_milliseconds_count", filter)
    }

    /// The request series, one per line, for failure messages.
    fn summary(&self) -> String {
        let series = self.0.iter().filter(|s| s.name == "istio_requests_total");
        series
            .map(|s| format!("{:?} {}\n", s.labels, s.value))
            .collect()
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, labels)) = series.split_once('{') else {
        return Some(Sample {
            name: series.to_owned(),
            labels: BTreeMap::new(),
            value,
        });
    };
    Some(Sample {
        name: name.to_owned(),
        labels: parse_labels(labels.strip_suffix('}')?),
        value,
    })
}

/// `k="v",k2="v2"` with backslash escapes in values.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| if c == 'n' { '\n' } else { c })),
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = &after[end..];
    }
    labels
}

fn within(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

/// Given a good stable and a slow canary that fails half its requests behind an 80/20 split,
/// the simulator's metrics show the split, each version's error rate, and the slower canary.
#[tokio::test]
async fn split_errors_and_latency_follow_weights_and_annotations() -> Result<()> {
    with_namespace(|client, ns| async move {
        version(
            &client,
            &ns,
            "stable",
            2,
            json!({ "sim.sluice.dev/latency-ms": "20" }),
        )
        .await?;
        let slow_and_failing = json!({
            "sim.sluice.dev/error-rate": "0.5",
            "sim.sluice.dev/latency-ms": "200",
            "sim.sluice.dev/latency-p99-ms": "400",
        });
        version(&client, &ns, "canary", 1, slow_and_failing).await?;
        virtual_service(
            &client,
            &ns,
            json!({}),
            json!([{ "route": weighted(80, 20) }]),
        )
        .await?;
        let stable_hash = ready_pods(&client, &ns, "stable", 2).await?;
        let canary_hash = ready_pods(&client, &ns, "canary", 1).await?;

        // 1000 rps for 3 s at 10 ticks/s: exactly 3000 requests.
        let metrics = simulate(&ns, 1000.0, 3).await?;
        let all = metrics.requests(&[("reporter", "destination")]);
        let stable = [
            ("destination_workload", "web-stable"),
            ("destination_version", &*stable_hash),
        ];
        let canary = [
            ("destination_workload", "web-canary"),
            ("destination_version", &*canary_hash),
        ];
        let (n_stable, n_canary) = (metrics.requests(&stable), metrics.requests(&canary));
        let summary = metrics.summary();
        ensure!(
            all == 3000.0,
            "expected 3000 requests, got {all}:\n{summary}"
        );
        ensure!(
            n_stable + n_canary == all,
            "requests outside the two versions:\n{summary}"
        );
        ensure!(
            within(n_canary / all, 0.2, 0.05),
            "canary share {}:\n{summary}",
            n_canary / all
        );
        let stable_errors = metrics.requests(&[stable[0], ("response_code", "500")]);
        ensure!(
            stable_errors == 0.0,
            "the stable version failed {stable_errors}:\n{summary}"
        );
        let canary_errors = metrics.requests(&[canary[0], ("response_code", "500")]);
        let rate = canary_errors / n_canary;
        ensure!(
            within(rate, 0.5, 0.08),
            "canary error rate {rate}:\n{summary}"
        );
        let service = metrics.requests(&[("destination_service_name", "web-canary")]);
        ensure!(
            service == n_canary,
            "destination_service_name of the canary:\n{summary}"
        );

        let fast_stable = metrics.share_within("100.0", &stable);
        let fast_canary = metrics.share_within("100.0", &canary);
        ensure!(fast_stable > 0.95, "stable within 100 ms: {fast_stable}");
        ensure!(fast_canary < 0.05, "canary within 100 ms: {fast_canary}");
        Ok(())
    })
    .await
}

/// Given a canary scaled to zero behind a 50/50 split, its share of traffic fails with 503 UH.
#[tokio::test]
async fn a_destination_without_ready_pods_answers_503() -> Result<()> {
    with_namespace(|client, ns| async move {
        version(&client, &ns, "stable", 1, json!({})).await?;
        version(&client, &ns, "canary", 0, json!({})).await?;
        virtual_service(
            &client,
            &ns,
            json!({}),
            json!([{ "route": weighted(50, 50) }]),
        )
        .await?;
        ready_pods(&client, &ns, "stable", 1).await?;

        let metrics = simulate(&ns, 500.0, 2).await?;
        let summary = metrics.summary();
        let canary = metrics.requests(&[("destination_service_name", "web-canary")]);
        let unavailable = metrics.requests(&[
            ("destination_service_name", "web-canary"),
            ("response_code", "503"),
            ("response_flags", "UH"),
        ]);
        ensure!(canary > 300.0, "canary got {canary} of 1000:\n{summary}");
        ensure!(
            unavailable == canary,
            "every canary request must be a 503 UH:\n{summary}"
        );
        let stable_errors = metrics.requests(&[
            ("destination_service_name", "web-stable"),
            ("response_code", "503"),
        ]);
        ensure!(
            stable_errors == 0.0,
            "the stable version has pods:\n{summary}"
        );
        Ok(())
    })
    .await
}

/// Given a header route to the canary above a 100/0 split and 10 % of requests carrying the
/// header, the canary gets exactly the requests with the header.
#[tokio::test]
async fn header_route_sends_requests_with_the_header_to_its_destination() -> Result<()> {
    with_namespace(|client, ns| async move {
        version(&client, &ns, "stable", 1, json!({})).await?;
        version(&client, &ns, "canary", 1, json!({})).await?;
        let http = json!([
            { "name": "canary-header",
              "match": [{ "headers": { "x-canary": { "exact": "true" } } }],
              "route": [{ "destination": { "host": "web-canary" } }] },
            { "name": "primary", "route": weighted(100, 0) },
        ]);
        let share = json!({ "sim.sluice.dev/header-share": "x-canary=true:0.1" });
        virtual_service(&client, &ns, share, http).await?;
        ready_pods(&client, &ns, "stable", 1).await?;
        ready_pods(&client, &ns, "canary", 1).await?;

        let metrics = simulate(&ns, 1000.0, 3).await?;
        let summary = metrics.summary();
        let all = metrics.requests(&[]);
        let canary = metrics.requests(&[("destination_workload", "web-canary")]);
        ensure!(all == 3000.0, "expected 3000 requests:\n{summary}");
        ensure!(
            within(canary / all, 0.1, 0.03),
            "canary share {}:\n{summary}",
            canary / all
        );
        Ok(())
    })
    .await
}

/// Given a mirror of 50 % of the traffic to the canary, the canary reports the copies while the
/// stable version still answers every request.
#[tokio::test]
async fn mirror_copies_are_reported_by_the_mirror() -> Result<()> {
    with_namespace(|client, ns| async move {
        version(&client, &ns, "stable", 1, json!({})).await?;
        version(&client, &ns, "canary", 1, json!({})).await?;
        let http = json!([{
            "name": "primary",
            "route": weighted(100, 0),
            "mirror": { "host": "web-canary" },
            "mirrorPercentage": { "value": 50.0 },
        }]);
        virtual_service(&client, &ns, json!({}), http).await?;
        ready_pods(&client, &ns, "stable", 1).await?;
        ready_pods(&client, &ns, "canary", 1).await?;

        let metrics = simulate(&ns, 1000.0, 2).await?;
        let summary = metrics.summary();
        let stable = metrics.requests(&[("destination_workload", "web-stable")]);
        let copies = metrics.requests(&[("destination_workload", "web-canary")]);
        ensure!(stable == 2000.0, "stable answers every request:\n{summary}");
        ensure!(
            within(copies / stable, 0.5, 0.05),
            "mirrored share {}:\n{summary}",
            copies / stable
        );
        Ok(())
    })
    .await
}

/// Given an active Service on the blue version and a preview Service on the green one, each
/// called directly at its own rate with no VirtualService, each version's requests carry the
/// Service that sent them and the version that answered.
#[tokio::test]
async fn called_services_send_their_rate_to_the_version_their_selector_picks() -> Result<()> {
    with_namespace(|client, ns| async move {
        version(&client, &ns, "blue", 2, json!({})).await?;
        let failing = json!({ "sim.sluice.dev/error-rate": "0.5" });
        version(&client, &ns, "green", 1, failing).await?;
        called_service(&client, &ns, "web-active", "blue", "500").await?;
        called_service(&client, &ns, "web-preview", "green", "100").await?;
        let blue = ready_pods(&client, &ns, "blue", 2).await?;
        let green = ready_pods(&client, &ns, "green", 1).await?;

        // 2 s at 10 ticks/s: exactly 1000 active and 200 preview requests; the Services that
        // `version` made (web-blue, web-green) carry no rate and get nothing.
        let metrics = simulate(&ns, 1000.0, 2).await?;
        let summary = metrics.summary();
        let active = [("destination_service_name", "web-active")];
        let preview = [("destination_service_name", "web-preview")];
        ensure!(
            metrics.requests(&[]) == 1200.0,
            "expected 1200 requests:\n{summary}"
        );
        ensure!(
            metrics.requests(&[active[0], ("destination_version", &*blue)]) == 1000.0,
            "the active Service's requests go to blue:\n{summary}"
        );
        ensure!(
            metrics.requests(&[preview[0], ("destination_version", &*green)]) == 200.0,
            "the preview Service's requests go to green:\n{summary}"
        );
        ensure!(
            metrics.requests(&[active[0], ("response_code", "500")]) == 0.0,
            "blue is healthy:\n{summary}"
        );
        let rate = metrics.requests(&[preview[0], ("response_code", "500")]) / 200.0;
        ensure!(within(rate, 0.5, 0.12), "green fails half:\n{summary}");
        Ok(())
    })
    .await
}

/// Given a running simulator calling the active Service, when the Service's selector is changed
/// to the green version (what a blue-green switch does), the active Service's requests go to
/// green from then on and none to blue.
#[tokio::test]
async fn a_selector_change_moves_a_called_services_requests() -> Result<()> {
    with_namespace(|client, ns| async move {
        version(&client, &ns, "blue", 1, json!({})).await?;
        version(&client, &ns, "green", 1, json!({})).await?;
        called_service(&client, &ns, "web-active", "blue", "200").await?;
        let blue = ready_pods(&client, &ns, "blue", 1).await?;
        let green = ready_pods(&client, &ns, "green", 1).await?;
        let handle = run(config(&ns, 200.0)).await?;
        let switched = async {
            wait_for_requests(&handle, &active_on(&blue), Duration::from_secs(10)).await?;
            let services: Api<Service> = Api::namespaced(client.clone(), &ns);
            let selector = json!({ "spec": { "selector": { "track": "green" } } });
            services
                .patch(
                    "web-active",
                    &PatchParams::default(),
                    &Patch::Merge(&selector),
                )
                .await?;
            wait_for_requests(&handle, &active_on(&green), Duration::from_secs(10)).await?;
            let before = scrape(&handle).await?.requests(&active_on(&blue));
            wait_for_requests(&handle, &active_on(&green), Duration::from_secs(10)).await?;
            let after = scrape(&handle).await?;
            ensure!(
                after.requests(&active_on(&blue)) == before,
                "blue still got requests after the switch:\n{}",
                after.summary()
            );
            Ok(())
        }
        .await;
        handle.shutdown().await?;
        switched
    })
    .await
}

/// The filter of the active Service's requests answered by `version`.
fn active_on(version: &str) -> [(&'static str, &str); 2] {
    [
        ("destination_service_name", "web-active"),
        ("destination_version", version),
    ]
}

/// Polls the simulator's `/metrics` (it has no events to watch) until the requests matching
/// `filter` grow past what they were when called.
async fn wait_for_requests(
    handle: &Handle,
    filter: &[(&str, &str)],
    timeout: Duration,
) -> Result<()> {
    let start = scrape(handle).await?.requests(filter);
    let what = format!("new requests for {filter:?}");
    eventually(timeout, &what, || async move {
        let metrics = scrape(handle).await?;
        // Not yet: an error, so that the series seen last are in the failure message.
        ensure!(metrics.requests(filter) > start, "\n{}", metrics.summary());
        Ok(Some(()))
    })
    .await
}

/// Given a registered simulator, the local Prometheus discovers and scrapes it, and the target
/// file is gone after shutdown.
#[tokio::test]
async fn prometheus_scrapes_the_registered_simulator() -> Result<()> {
    with_namespace(|client, ns| async move {
        version(&client, &ns, "stable", 1, json!({})).await?;
        virtual_service(
            &client,
            &ns,
            json!({}),
            json!([{ "route": weighted(100, 0) }]),
        )
        .await?;
        ready_pods(&client, &ns, "stable", 1).await?;

        let dir = PathBuf::from(env("SLUICE_PROMETHEUS_TARGETS_DIR")?);
        let handle = run(Config {
            register_dir: Some(dir),
            ..config(&ns, 50.0)
        })
        .await?;
        let file = handle
            .registration_path()
            .context("no registration file")?
            .to_owned();
        ensure!(file.exists(), "{} was not written", file.display());
        let query = format!(
            "sum(istio_requests_total{{instance=\"{}\",destination_service_namespace=\"{ns}\"}})",
            handle.local_addr()
        );
        let scraped = wait_for_positive(&query, Duration::from_secs(60)).await;
        handle.shutdown().await?;
        ensure!(
            !file.exists(),
            "{} is still there after shutdown",
            file.display()
        );
        scraped
    })
    .await
}

/// Polls Prometheus (it has no events to watch) until `query` returns a positive value; fails
/// with the last answer.
async fn wait_for_positive(query: &str, timeout: Duration) -> Result<()> {
    let url = env("SLUICE_PROMETHEUS_URL")?;
    let what = format!("Prometheus: {query} is positive");
    eventually(timeout, &what, || async {
        let value = prometheus::query_value(&url, query).await?;
        ensure!(value.is_some_and(|v| v > 0.0), "last value {value:?}");
        Ok(Some(()))
    })
    .await
}
