# shellcheck shell=bash
# The control plane itself: `kwokctl --runtime binary` runs etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok (the fake kubelet) as local processes, from our
# cached binaries, on 127.0.0.1 only.

KWOK_CONFIG=$RUN_DIR/kwokctl.yaml
KWOK_CLUSTER_DIR=$SLUICE_CACHE/kwok/clusters/$CLUSTER_NAME
KWOK_LOG=$RUN_DIR/logs/kwokctl.log
KWOK_STAGES=$SLUICE_CACHE/kwok-stages-$KWOK_VERSION.yaml
NODE_COUNT=3

# fetch_kwok_stages: kwok's default Stages (nodes become Ready, pods become Ready, complete and
# go away), once per version. With Stage served as a CRD, which the tests need to add their own
# Stages, kwokctl no longer loads these defaults itself: without them no node is ever Ready. They
# are the kustomization kwok ships for exactly this case (kustomize/stage/fast).
fetch_kwok_stages() {
  local dir
  [[ -s $KWOK_STAGES ]] && return 0
  go_env
  step "extracting kwok's default Stages from sigs.k8s.io/kwok $KWOK_VERSION"
  dir=$(module_json "sigs.k8s.io/kwok@$KWOK_VERSION" Dir)/kustomize/stage/fast
  "$KUBECTL" kustomize "$dir" >"$KWOK_STAGES.tmp" 2>>"$BUILD_LOG" ||
    die "kubectl kustomize $dir failed" "see $BUILD_LOG"
  mv "$KWOK_STAGES.tmp" "$KWOK_STAGES"
}

# apply_kwok_stages: (re)apply the default Stages; server-side apply also resets one a test edited.
apply_kwok_stages() {
  local out
  kubectl_ wait --for=condition=Established --timeout=60s crd/stages.kwok.x-k8s.io >/dev/null ||
    die "kwok's Stage CRD is not Established" "component logs: $KWOK_CLUSTER_DIR/logs"
  out=$(kubectl_ apply --server-side --force-conflicts --field-manager=sluice-e2e -f "$KWOK_STAGES" 2>&1) ||
    die "applying kwok's default Stages failed: $out" "file: $KWOK_STAGES"
}

# write_kwok_config: the KwokctlConfiguration. bindAddress has no flag and defaults to 0.0.0.0;
# every binary must be a local path (anything http(s):// would be downloaded); Stage is enabled as
# a CRD so tests can add kwok Stages (e.g. pods that never become Ready).
write_kwok_config() {
  cat >"$KWOK_CONFIG" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeVersion: $KUBE_VERSION
  etcdVersion: ${ETCD_VERSION#v}
  kwokVersion: $KWOK_VERSION
  enableCRDs: [Stage]
  kubeApiserverBinary: $KUBE_DIR/kube-apiserver
  kubeControllerManagerBinary: $KUBE_DIR/kube-controller-manager
  kubeSchedulerBinary: $KUBE_DIR/kube-scheduler
  kubectlBinary: $KUBECTL
  etcdBinary: $ETCD_DIR/etcd
  kwokControllerBinary: $KWOK_DIR/kwok
EOF
}

# check_no_downloads: a dry run lists every file kwokctl would fetch as "# Download <src> to ...".
# Nothing can be downloaded here, and a URL would mean a binary is not ours: fail before creating.
check_no_downloads() {
  local plan urls
  plan=$(kwokctl_ --config "$KWOK_CONFIG" --dry-run create cluster --kubeconfig "$KUBECONFIG_FILE" 2>&1) ||
    die "kwokctl --dry-run create cluster failed" "output: $plan"
  grep -q '^# Download ' <<<"$plan" ||
    die "kwokctl's dry run lists no '# Download' lines, so local binaries cannot be verified" \
      "kwokctl's output format changed? compare: $KWOKCTL --config $KWOK_CONFIG --dry-run create cluster"
  urls=$(grep -E '^# Download [a-zA-Z][a-zA-Z0-9+.-]*://' <<<"$plan" || true)
  [[ -z $urls ]] || die "kwokctl would download files instead of using the cached binaries:"$'\n'"$urls" \
    "fix the binary paths in write_kwok_config (e2e/lib/kwok.sh); nothing can be downloaded here"
}

cluster_exists() {
  local clusters
  [[ -x $KWOKCTL ]] && clusters=$(kwokctl_ get clusters 2>/dev/null) && grep -qxF "$CLUSTER_NAME" <<<"$clusters"
}
apiserver_ready() { [[ -f $KUBECONFIG_FILE ]] && kubectl_ get --raw /readyz >/dev/null 2>&1; }

# server_version: the apiserver's gitVersion, so a version bump in versions.env replaces the cluster.
server_version() {
  local json
  json=$(kubectl_ get --raw /version 2>/dev/null) || return 0
  sed -n 's/^ *"gitVersion": *"\([^"]*\)".*/\1/p' <<<"$json"
}

ready_node_count() {
  kubectl_ get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    grep -c '^True$' || true
}
nodes_ready() { (($(ready_node_count) >= NODE_COUNT)); }

# show_cluster_logs: the tails of kwokctl's and each component's log, for a failed start.
show_cluster_logs() {
  local log
  show_log_tail "$KWOK_LOG"
  for log in "$KWOK_CLUSTER_DIR"/logs/*.log; do show_log_tail "$log"; done
}

create_cluster() {
  write_kwok_config
  check_no_downloads
  step "creating cluster '$CLUSTER_NAME' (kwokctl --runtime binary, 127.0.0.1 only)"
  CREATED_CLUSTER=1
  run_logged "$KWOK_LOG" "kwokctl create cluster" \
    env KWOK_WORKDIR="$SLUICE_CACHE/kwok" "$KWOKCTL" --name "$CLUSTER_NAME" --config "$KWOK_CONFIG" \
    create cluster --kubeconfig "$KUBECONFIG_FILE" --wait 3m ||
    die "kwokctl create cluster failed" "logs above; component logs in $KWOK_CLUSTER_DIR/logs"
}

# start_cluster: reuse a healthy cluster, replace a broken one (e.g. its processes died with a
# machine restart: the state is throw-away), create one when there is none.
start_cluster() {
  if cluster_exists && apiserver_ready && [[ $(server_version) == "$KUBE_VERSION" ]]; then
    step "cluster '$CLUSTER_NAME' already running"
  else
    if cluster_exists; then
      warn "cluster '$CLUSTER_NAME' exists but is not ready or not $KUBE_VERSION; recreating it"
      delete_cluster
    fi
    create_cluster
  fi
  wait_until 120 "apiserver ready" apiserver_ready || {
    show_cluster_logs
    die "the apiserver did not become ready within 120 s" "component logs: $KWOK_CLUSTER_DIR/logs"
  }
  apply_kwok_stages
  # Idempotent: kwokctl scales to exactly this many fake nodes.
  kwokctl_ scale node --replicas "$NODE_COUNT" >>"$KWOK_LOG" 2>&1 ||
    die "kwokctl scale node failed" "see $KWOK_LOG"
  wait_until 120 "$NODE_COUNT kwok nodes Ready" nodes_ready || {
    show_cluster_logs
    die "only $(ready_node_count) of $NODE_COUNT nodes became Ready within 120 s" "kwok's log: $KWOK_CLUSTER_DIR/logs/kwok-controller.log"
  }
}

delete_cluster() {
  if ! cluster_exists; then return 0; fi
  step "deleting cluster '$CLUSTER_NAME'"
  kwokctl_ delete cluster --kubeconfig "$KUBECONFIG_FILE" >>"$KWOK_LOG" 2>&1 || {
    show_log_tail "$KWOK_LOG"
    die "kwokctl delete cluster failed" "see $KWOK_LOG; the component pids are in $KWOK_CLUSTER_DIR/pids"
  }
}

# save_cluster_logs: copy the component logs out of the cluster directory, which delete removes.
save_cluster_logs() {
  local dest
  [[ -d $KWOK_CLUSTER_DIR/logs ]] || return 0
  dest=$LOG_DIR/failed-up-$(date +%Y%m%d-%H%M%S)
  mkdir -p "$dest"
  cp -r "$KWOK_CLUSTER_DIR/logs/." "$dest/" 2>/dev/null || true
  step "component logs of the failed start saved in $dest"
}
