//! Helpers for the provider's integration tests: the local cluster's Prometheus, throw-away
//! Prometheus processes (backfilled with `promtool`, or serving TLS), and tiny raw HTTP servers
//! for answers no Prometheus gives on demand (silence, a proxy's 401).
//!
//! Missing prerequisites fail the test with what to do; nothing is skipped.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::{
    net::TcpListener as StdListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::mpsc,
};

/// The workspace root (this crate lives in `<root>/analysis`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `$SLUICE_PROMETHEUS_URL`, the local cluster's Prometheus.
pub fn cluster_prometheus_url() -> String {
    let url = std::env::var("SLUICE_PROMETHEUS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    url.unwrap_or_else(|| {
        panic!(
            "SLUICE_PROMETHEUS_URL is not set. Start the local cluster and load its environment: \
             `e2e/cluster up && source .cache/run/cluster.env` (e2e/test-all does both)"
        )
    })
}

/// The `prometheus` and `promtool` binaries unpacked by `e2e/cluster up` into the cache
/// (`$SLUICE_CACHE`, default `<workspace>/.cache`), newest version first.
pub struct Binaries {
    pub prometheus: PathBuf,
    pub promtool: PathBuf,
}

pub fn binaries() -> Binaries {
    let cache = std::env::var_os("SLUICE_CACHE")
        .map_or_else(|| workspace_root().join(".cache"), PathBuf::from);
    let bin = cache.join("bin");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&bin)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("prometheus-"))
        })
        .collect();
    dirs.sort();
    let dir = dirs.pop().map(|d| d.join("usr/bin")).filter(|d| d.join("promtool").is_file()).unwrap_or_else(|| {
        panic!(
            "no Prometheus binaries under {}/prometheus-*/usr/bin: `e2e/cluster up` downloads them \
             (Debian's prometheus package), or set SLUICE_CACHE to the cache that holds them",
            bin.display()
        )
    });
    Binaries {
        prometheus: dir.join("prometheus"),
        promtool: dir.join("promtool"),
    }
}

/// A fresh directory under the system temp dir, removed by [`TestPrometheus`]'s drop.
pub fn temp_dir(label: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sluice-analysis-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// A port nobody listens on right now (bound and released).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A Prometheus process of our own on 127.0.0.1, killed (and its directory removed) on drop.
pub struct TestPrometheus {
    child: Child,
    dir: PathBuf,
    log: PathBuf,
    /// Base URL.
    pub url: String,
}

impl TestPrometheus {
    /// Backfills `openmetrics` with `promtool tsdb create-blocks-from openmetrics`, then serves
    /// it over plain HTTP.
    pub async fn backfilled(openmetrics: &str) -> TestPrometheus {
        let bins = binaries();
        let dir = temp_dir("backfilled");
        let input = dir.join("data.om");
        std::fs::write(&input, openmetrics).expect("write the OpenMetrics input");
        let out = Command::new(&bins.promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(dir.join("data"))
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool failed to backfill: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let prom = TestPrometheus::spawn(&bins, dir, None, "http");
        prom.wait_ready(&reqwest::Client::new()).await;
        prom
    }

    /// Serves an empty database with a `--web.config.file` (TLS, basic auth); `ready` is the
    /// client used to poll `/-/ready`, which needs the same credentials and trust.
    pub async fn with_web_config(web_config: &str, ready: &reqwest::Client) -> TestPrometheus {
        let bins = binaries();
        let dir = temp_dir("web");
        let web = dir.join("web.yml");
        std::fs::write(&web, web_config).expect("write the web config");
        let scheme = if web_config.contains("tls_server_config") {
            "https"
        } else {
            "http"
        };
        let prom = TestPrometheus::spawn(&bins, dir, Some(web), scheme);
        prom.wait_ready(ready).await;
        prom
    }

    fn spawn(bins: &Binaries, dir: PathBuf, web: Option<PathBuf>, scheme: &str) -> TestPrometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        // Nothing to scrape: the data is the backfilled blocks (or nothing at all).
        std::fs::write(&config, "global: {}\nscrape_configs: []\n").expect("write prometheus.yml");
        let log = dir.join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("create the log file");
        let mut cmd = Command::new(&bins.prometheus);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            // Retention counts back from the newest block; keep the backfilled ones whatever
            // their age.
            .arg("--storage.tsdb.retention.time=3650d")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log_file);
        if let Some(web) = &web {
            cmd.arg(format!("--web.config.file={}", web.display()));
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bins.prometheus.display()));
        TestPrometheus {
            child,
            dir,
            log,
            url: format!("{scheme}://127.0.0.1:{port}"),
        }
    }

    /// Polls `/-/ready` for up to 30 s (a busy machine starts Prometheus slowly).
    async fn wait_ready(&self, client: &reqwest::Client) {
        let url = format!("{}/-/ready", self.url);
        let mut last = String::new();
        for _ in 0..120 {
            match client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => last = format!("HTTP {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "test Prometheus at {} not ready after 30s (last: {last}); its log:\n{}",
            self.url,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Serves `response` (raw HTTP, `Connection: close`) to every connection on 127.0.0.1 and
/// reports each request's head (request line and headers, lowercased) on the channel.
pub async fn canned_server(response: String) -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&head).to_lowercase());
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (url, rx)
}

/// A raw HTTP response.
pub fn http_response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Accepts connections and never answers (holding them open), to exercise timeouts.
pub async fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}
