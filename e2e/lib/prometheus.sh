# shellcheck shell=bash
# Prometheus 2.42 from Debian's package, unpacked into the cache and run as our own process on
# 127.0.0.1 (never the system service, never a system-wide install).

PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT
PROMETHEUS_PID=$RUN_DIR/prometheus.pid
PROMETHEUS_DATA=$RUN_DIR/prometheus-data
PROMETHEUS_TARGETS=$RUN_DIR/prometheus-targets
PROMETHEUS_LOG=$RUN_DIR/logs/prometheus.log

# prometheus_bin: path of the newest cached binary of the pinned series, or nothing.
prometheus_bin() {
  local bin
  for bin in "$BIN_DIR/prometheus-$PROMETHEUS_DEB_SERIES"*/usr/bin/prometheus; do
    if [[ -x $bin ]]; then printf '%s\n' "$bin"; fi
  done | sort -V | tail -n 1
}

# apt_candidate: the version of `prometheus` apt would download, or nothing.
apt_candidate() {
  apt-cache policy prometheus 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}

# fetch_prometheus: download and unpack the .deb, once per package version.
fetch_prometheus() {
  local bin version tmp log=$LOG_DIR/prometheus-fetch.log
  bin=$(prometheus_bin)
  if [[ -n $bin ]] && "$bin" --version >/dev/null 2>&1; then return 0; fi
  require_cmd apt-get "Prometheus comes from Debian's 'prometheus' package; this needs a Debian-based machine"
  version=$(apt_candidate)
  if [[ $version != "$PROMETHEUS_DEB_SERIES"* ]]; then
    # The package lists are missing or stale (fresh machines ship without them).
    step "apt-get update (package lists do not offer prometheus $PROMETHEUS_DEB_SERIES)"
    run_logged "$log" "apt-get update" apt-get update ||
      die "apt-get update failed" "see $log; it needs root and access to the Debian mirror"
    version=$(apt_candidate)
  fi
  [[ $version == "$PROMETHEUS_DEB_SERIES"* ]] ||
    die "apt offers prometheus '${version:-none}', not the pinned series $PROMETHEUS_DEB_SERIES" \
      "check apt-cache policy prometheus, or change PROMETHEUS_DEB_SERIES in e2e/versions.env"
  step "downloading Debian package prometheus $version"
  tmp=$(new_tmp_dir "prometheus-$version")
  (cd "$tmp" && run_logged "$log" "apt-get download" apt-get download "prometheus=$version") ||
    die "apt-get download prometheus=$version failed" "see $log; try apt-get update, check the Debian mirror"
  dpkg -x "$tmp"/prometheus_*.deb "$tmp/root" || die "unpacking the prometheus package failed" "see $log"
  "$tmp/root/usr/bin/prometheus" --version >>"$log" 2>&1 ||
    die "the unpacked prometheus binary does not run" "see $log"
  install_dir "$tmp/root" "$BIN_DIR/prometheus-$version"
  rm -rf "$tmp"
}

prometheus_running() { pid_matches "$PROMETHEUS_PID" "--storage.tsdb.path=$PROMETHEUS_DATA"; }
prometheus_ready() { curl -fsS --max-time 2 "$PROMETHEUS_URL/-/ready" >/dev/null 2>&1; }

# render_prometheus_config: the template with this run's port and targets directory.
render_prometheus_config() {
  mkdir -p "$PROMETHEUS_TARGETS"
  sed -e "s|@PORT@|$PROMETHEUS_PORT|g" -e "s|@TARGETS_DIR@|$PROMETHEUS_TARGETS|g" \
    "$SLUICE_REPO/e2e/prometheus/prometheus.yml.tmpl" >"$RUN_DIR/prometheus.yml.new"
  mv "$RUN_DIR/prometheus.yml.new" "$RUN_DIR/prometheus.yml"
}

# check_prometheus_port: fail before starting anything when another process holds the port.
check_prometheus_port() {
  if port_in_use "$PROMETHEUS_PORT" && ! prometheus_running; then
    die "port $PROMETHEUS_PORT on 127.0.0.1 is in use by another process, so Prometheus cannot start" \
      "see who holds it: ss -ltnp 'sport = :$PROMETHEUS_PORT'" \
      "or pick another port: SLUICE_PROMETHEUS_PORT=19091 e2e/cluster up"
  fi
}

start_prometheus() {
  render_prometheus_config
  if prometheus_running; then
    pid_matches "$PROMETHEUS_PID" "--web.listen-address=127.0.0.1:$PROMETHEUS_PORT" ||
      die "our Prometheus already runs, but not on port $PROMETHEUS_PORT" \
        "run e2e/cluster down first to change SLUICE_PROMETHEUS_PORT"
    # Already ours: pick up a changed template without losing the scraped data.
    curl -fsS -X POST "$PROMETHEUS_URL/-/reload" >/dev/null ||
      die "Prometheus (pid $(<"$PROMETHEUS_PID")) is running but did not reload its config" "see $PROMETHEUS_LOG"
    step "Prometheus already running at $PROMETHEUS_URL (config reloaded)"
    return 0
  fi
  check_prometheus_port
  mkdir -p "$PROMETHEUS_DATA" "$(dirname "$PROMETHEUS_LOG")"
  # setsid: its own session, so it outlives this script and is not hit by the terminal's Ctrl-C.
  setsid "$(prometheus_bin)" \
    --config.file="$RUN_DIR/prometheus.yml" \
    --storage.tsdb.path="$PROMETHEUS_DATA" \
    --storage.tsdb.retention.time=1d \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    --web.enable-lifecycle \
    >>"$PROMETHEUS_LOG" 2>&1 </dev/null 9>&- &
  echo $! >"$PROMETHEUS_PID"
  STARTED_PROMETHEUS=1
  wait_until 60 "Prometheus ready at $PROMETHEUS_URL" prometheus_ready || {
    show_log_tail "$PROMETHEUS_LOG"
    die "Prometheus did not become ready within 60 s" "see $PROMETHEUS_LOG"
  }
}

stop_prometheus() {
  local pid
  if ! prometheus_running; then
    rm -f "$PROMETHEUS_PID"
    return 0
  fi
  pid=$(<"$PROMETHEUS_PID")
  kill -TERM "$pid"
  # Prometheus flushes its head block on TERM; give it a moment before insisting.
  if ! wait_until 30 "Prometheus stopped (pid $pid)" pid_gone "$pid"; then
    warn "Prometheus (pid $pid) ignored TERM for 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PROMETHEUS_PID"
}
