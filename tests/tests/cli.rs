//! `kubectl sluice` against the local cluster: `get rollout` shows the step, the weights and
//! the AnalysisRuns, `promote` continues a paused canary, `abort` degrades it, `retry` starts
//! it again, `undo` during a canary brings the stable revision back (its ReplicaSet reused),
//! `pause`/`resume` toggle `spec.paused`, `status` exits 0 when Healthy, 1 when Degraded and 3
//! on its timeout, and `get rollout --watch` prints a line per change into a pipe.
//!
//! Commands run in-process through `sluice_controller::cli::run` (output captured), except
//! where the exit code or the process is the point: those run the built `kubectl-sluice`
//! binary, which the first such test builds (`cargo build -p sluice-controller --bin
//! kubectl-sluice`; cargo makes that a no-op when it is current).

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result, bail, ensure};
use serde_json::json;
use sluice_controller::cli::Exit;
use sluice_crds::RolloutPhase;
use sluice_tests::fixtures::{
    ROLLOUT, Split, create_analysis_template, pause, rollout, set_weight,
};
use sluice_tests::kubectl::{sluice, sluice_ok};
use sluice_tests::scenario::{self, aborted, phase, verified_weight};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::OnceCell;

/// The built plugin binary (built once per test process).
async fn plugin() -> Result<&'static PathBuf> {
    static BINARY: OnceCell<PathBuf> = OnceCell::const_new();
    BINARY.get_or_try_init(build_plugin).await
}

async fn build_plugin() -> Result<PathBuf> {
    let root = sluice_tests::repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = tokio::process::Command::new(cargo)
        .args([
            "build",
            "-p",
            "sluice-controller",
            "--bin",
            "kubectl-sluice",
        ])
        .current_dir(&root)
        .stdout(Stdio::null())
        .status()
        .await
        .context("running cargo build for kubectl-sluice")?;
    ensure!(status.success(), "cargo build of kubectl-sluice failed");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("debug").join("kubectl-sluice"))
}

/// Runs the binary `kubectl-sluice -n NS ARGS...` and returns its exit code.
async fn plugin_exit(ns: &str, args: &[&str]) -> Result<i32> {
    let output = tokio::process::Command::new(plugin().await?)
        .args(["-n", ns])
        .args(args)
        .output()
        .await
        .context("running kubectl-sluice")?;
    output
        .status
        .code()
        .context("kubectl-sluice was killed by a signal")
}

fn four_steps() -> sluice_tests::fixtures::RolloutBuilder {
    rollout().abort_scale_down_delay_seconds(1).steps([
        set_weight(50),
        pause(),
        set_weight(80),
        pause(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_paused_canary_when_promoted_with_the_plugin_then_it_continues_and_status_exits_0_once_healthy()
-> Result<()> {
    let spec = four_steps();
    scenario::run("it-cli-promote-", Split::Host, async |s| {
        s.deploy(&spec).await?;
        let mut watch = Watch::start(&s.ns).await?;
        let new = s.set_version("v2").await?;
        s.wait_paused_at(1, 50).await?;

        let view = sluice_ok(&s.ns, &["get", "rollout", ROLLOUT]).await?;
        for expected in [
            "Status:        ॥ Paused",
            "  Step:        1/4",
            "▶ 1: pause (until promoted)",
            "  Weights:     canary 50 · stable 50 · verified",
            &format!("⧉ {ROLLOUT}-{new}"),
        ] {
            ensure!(
                view.contains(expected),
                "get rollout shows {expected:?}:\n{view}"
            );
        }
        watch
            .until("the watch prints the pause at step 1", |l| {
                l.contains("Paused") && l.contains("step 1/4") && l.contains("canary 50")
            })
            .await?;

        let now = sluice_ok(&s.ns, &["status", ROLLOUT, "--watch=false"]).await?;
        ensure!(now.starts_with("Paused"), "status --watch=false: {now}");
        let code = plugin_exit(&s.ns, &["status", ROLLOUT, "--timeout", "2s"]).await?;
        ensure!(
            code == 3,
            "status times out on a paused Rollout with 3, got {code}"
        );

        let said = sluice_ok(&s.ns, &["promote", ROLLOUT]).await?;
        ensure!(said.contains("promoted"), "promote confirms: {said}");
        s.wait_paused_at(3, 80).await?;
        watch
            .until("the watch prints the pause at step 3", |l| {
                l.contains("step 3/4") && l.contains("canary 80")
            })
            .await?;

        let status = tokio::spawn(plugin_exit_owned(s.ns.clone(), "60s"));
        sluice_ok(&s.ns, &["promote", ROLLOUT]).await?;
        let code = status.await??;
        ensure!(
            code == 0,
            "status exits 0 once the release is Healthy, got {code}"
        );
        s.wait_released(&new).await?;

        let (refused, text) = sluice(&s.ns, &["promote", ROLLOUT]).await?;
        let exit = refused.unwrap_or_else(|e| e.exit());
        ensure!(
            exit == Exit::Failed,
            "promote of a Healthy Rollout fails: {exit:?} {text}"
        );
        watch.stop().await
    })
    .await?;
    Ok(())
}

async fn plugin_exit_owned(ns: String, timeout: &'static str) -> Result<i32> {
    plugin_exit(&ns, &["status", ROLLOUT, "--timeout", timeout]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_canary_at_weight_50_when_aborted_with_the_plugin_then_it_is_degraded_and_retry_starts_it_again()
-> Result<()> {
    let spec = four_steps();
    scenario::run("it-cli-abort-", Split::Host, async |s| {
        s.deploy(&spec).await?;
        let new = s.set_version("v2").await?;
        s.wait_paused_at(1, 50).await?;

        let said = sluice_ok(&s.ns, &["abort", ROLLOUT]).await?;
        ensure!(said.contains("aborted"), "abort confirms: {said}");
        s.wait("aborted: Degraded with all traffic on stable", |r| {
            aborted(r) && phase(r) == Some(RolloutPhase::Degraded) && verified_weight(r) == Some(0)
        })
        .await?;
        let (outcome, _) = sluice(&s.ns, &["status", ROLLOUT, "--timeout", "30s"]).await?;
        let exit = outcome.unwrap_or_else(|e| e.exit());
        ensure!(
            exit == Exit::Failed,
            "status of an aborted Rollout: {exit:?}"
        );
        let code = plugin_exit(&s.ns, &["status", ROLLOUT, "--timeout", "30s"]).await?;
        ensure!(code == 1, "the binary exits 1 on Degraded, got {code}");
        let view = sluice_ok(&s.ns, &["get", "rollout", ROLLOUT]).await?;
        ensure!(
            view.contains("✖ Degraded"),
            "get rollout shows Degraded:\n{view}"
        );

        let said = sluice_ok(&s.ns, &["retry", ROLLOUT]).await?;
        ensure!(said.contains("retried"), "retry confirms: {said}");
        s.wait_paused_at(1, 50).await?;
        sluice_ok(&s.ns, &["promote", ROLLOUT, "--full"]).await?;
        let released = s.wait_released(&new).await?;
        ensure!(!aborted(&released), "the abort is cleared");
        let done = sluice_ok(&s.ns, &["status", ROLLOUT, "--timeout", "30s"]).await?;
        ensure!(
            done.trim_end().ends_with("Healthy"),
            "status ends Healthy: {done}"
        );
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_canary_past_its_analysis_step_when_undone_with_the_plugin_then_get_shows_the_run_and_the_stable_revision_is_back_without_a_new_replica_set()
-> Result<()> {
    let spec = rollout().steps([
        set_weight(50),
        json!({ "analysis": { "templates": [{ "templateName": "always-ok" }] } }),
        pause(),
    ]);
    scenario::run("it-cli-undo-", Split::Host, async |s| {
        // Passes at once: Prometheus' `vector(1)` >= 1.
        let passing = json!({ "query": "vector(1)" });
        create_analysis_template(&s.client, &s.ns, "always-ok", passing).await?;
        let stable = s.deploy(&spec).await?;
        let new = s.set_version("v2").await?;
        s.wait_paused_at(2, 50).await?;

        let view = sluice_ok(&s.ns, &["get", "rollout", ROLLOUT]).await?;
        for expected in [
            "AnalysisRun  ✔ Successful",
            "step 1 · ✔ 1 ✖ 0 ⚠ 0",
            "✔ one  [1]  1 measured",
        ] {
            ensure!(
                view.contains(expected),
                "get rollout shows {expected:?}:\n{view}"
            );
        }

        sluice_ok(&s.ns, &["pause", ROLLOUT]).await?;
        s.wait("spec.paused is shown as Paused", |r| r.spec.paused)
            .await?;
        sluice_ok(&s.ns, &["resume", ROLLOUT]).await?;
        s.wait("resumed", |r| !r.spec.paused).await?;

        let said = sluice_ok(&s.ns, &["undo", ROLLOUT]).await?;
        ensure!(
            said.contains("rolled back to revision 1"),
            "undo confirms: {said}"
        );
        ensure!(
            !said.contains("note:"),
            "the stable template was rebuilt exactly: {said}"
        );
        s.wait_released(&stable).await?;
        let sets = s.replica_sets().await?;
        ensure!(
            sets.len() == 2 && sets.contains_key(&stable) && sets.contains_key(&new),
            "the stable ReplicaSet was reused, not a third one made: {sets:?}"
        );
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn exit_codes_of_the_binary_for_usage_not_found_and_lint() -> Result<()> {
    let root = sluice_tests::repo_root();
    let example = root.join("examples/canary-istio-host.yaml");
    let invalid = root.join("tests/invalid/rollout-weight-above-100.yaml");
    let path = |p: &PathBuf| p.to_string_lossy().into_owned();
    let cases: [(&[&str], i32); 5] = [
        (&["lint", &path(&example)], 0),
        (&["lint", &path(&example), &path(&invalid)], 1),
        (&["lint", "/no/such/file.yaml"], 2),
        (&["promote"], 2),
        (&["get", "rollout", "no-such-rollout"], 2),
    ];
    for (args, expected) in cases {
        let code = plugin_exit("default", args).await?;
        ensure!(
            code == expected,
            "kubectl-sluice {args:?}: exit {code}, expected {expected}"
        );
    }
    Ok(())
}

/// `get rollout --watch` of the binary into a pipe: one line per change.
struct Watch {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: Vec<String>,
}

impl Watch {
    async fn start(ns: &str) -> Result<Self> {
        let mut child = tokio::process::Command::new(plugin().await?)
            .args(["-n", ns, "get", "rollout", ROLLOUT, "--watch"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting kubectl-sluice get rollout --watch")?;
        let stdout = child.stdout.take().context("the watch's stdout")?;
        Ok(Watch {
            child,
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        })
    }

    /// Reads lines until one satisfies `found`.
    async fn until(&mut self, what: &str, found: impl Fn(&str) -> bool) -> Result<()> {
        let deadline = tokio::time::Instant::now() + scenario::WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.lines.next_line()).await;
            match next {
                Ok(Ok(Some(line))) => {
                    let hit = found(&line);
                    self.seen.push(line);
                    if hit {
                        return Ok(());
                    }
                }
                Ok(Ok(None)) => bail!("{what}: the watch ended; it printed {:#?}", self.seen),
                Ok(Err(e)) => return Err(e).context("reading the watch's output"),
                Err(_) => bail!(
                    "{what}: not printed in time; the watch printed {:#?}",
                    self.seen
                ),
            }
        }
    }

    async fn stop(mut self) -> Result<()> {
        self.child.kill().await.context("stopping the watch")?;
        ensure!(
            self.seen.iter().all(|l| !l.contains('\x1b')),
            "no colour codes into a pipe"
        );
        Ok(())
    }
}
