# shellcheck shell=bash
# Shared by every e2e/lib script: paths, versions, progress and error messages, the lock, and
# the small process helpers. Sourced by e2e/cluster; defines functions and variables only.

SLUICE_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../versions.env
source "$SLUICE_REPO/e2e/versions.env"

# Everything we build, download or run lives under one gitignored directory, so `rm -rf` of it is
# a full reset and nothing leaks into ~/.kube, ~/.kwok or system directories.
SLUICE_CACHE=${SLUICE_CACHE:-$SLUICE_REPO/.cache}
mkdir -p "$SLUICE_CACHE"
SLUICE_CACHE=$(cd "$SLUICE_CACHE" && pwd) # absolute: paths end up in config files and pid checks
BIN_DIR=$SLUICE_CACHE/bin
LOG_DIR=$SLUICE_CACHE/logs
RUN_DIR=$SLUICE_CACHE/run
CLUSTER_NAME=${SLUICE_CLUSTER_NAME:-sluice}
PROMETHEUS_PORT=${SLUICE_PROMETHEUS_PORT:-19090}
KUBECONFIG_FILE=$RUN_DIR/kubeconfig
mkdir -p "$LOG_DIR" "$RUN_DIR"
CLUSTER_ENV=$RUN_DIR/cluster.env

# Binaries, one directory per component and version; see build.sh.
KUBE_DIR=$BIN_DIR/kube-$KUBE_VERSION
ETCD_DIR=$BIN_DIR/etcd-$ETCD_VERSION
KWOK_DIR=$BIN_DIR/kwok-$KWOK_VERSION
HELM_DIR=$BIN_DIR/helm-$HELM_VERSION
KUBECTL=$KUBE_DIR/kubectl
KWOKCTL=$KWOK_DIR/kwokctl

# Progress goes to stderr with a timestamp: stdout is reserved for results (the kubeconfig path).
step() { printf '%s [cluster] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '%s [cluster] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# die WHAT [WHAT-TO-DO...]: print what failed and one hint per extra argument, then exit 1.
die() {
  printf '%s [cluster] ERROR: %s\n' "$(date +%H:%M:%S)" "$1" >&2
  shift
  local hint
  for hint in "$@"; do printf '    -> %s\n' "$hint" >&2; done
  exit 1
}

# show_log_tail FILE: the end of a log, so a failure explains itself without opening files.
show_log_tail() {
  [[ -s $1 ]] || return 0
  printf -- '----- last 40 lines of %s -----\n' "$1" >&2
  tail -n 40 "$1" >&2
  printf -- '----- end of %s -----\n' "$1" >&2
}

require_cmd() { # require_cmd CMD HINT
  command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed" "$2"
}

# take_lock: one up/down/build at a time per cache. Engineers share the machine and the work
# tree, and two concurrent builds or two `kwokctl create` of one cluster would corrupt each other.
# The lock is fd 9: every long-lived process we start gets `9>&-`, or it would inherit the lock
# and hold it for as long as it runs.
take_lock() {
  exec 9>"$SLUICE_CACHE/.lock"
  if ! flock -n 9; then
    step "another e2e/cluster command holds $SLUICE_CACHE/.lock; waiting for it (up to 60 min)"
    flock -w 3600 9 || die "timed out waiting for $SLUICE_CACHE/.lock" \
      "check for a stuck e2e/cluster process: fuser -v $SLUICE_CACHE/.lock"
  fi
}

# port_in_use PORT: true when something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_matches PIDFILE NEEDLE: true when the process in PIDFILE is alive and its command line
# contains NEEDLE. Guards against killing an unrelated process that reused a stale pid.
pid_matches() {
  local pid cmdline
  [[ -r $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ $cmdline == *"$2"* ]]
}

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# wait_until SECONDS WHAT CMD...: poll CMD every second until it succeeds; fail after SECONDS.
wait_until() {
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
  step "$what"
}

# run_logged LOG LABEL CMD...: run CMD with its output appended to LOG. Long Go builds print
# nothing for many minutes, so a heartbeat line goes to stderr every minute; an interrupt kills
# the whole command (its own session, so the go tool's compiler children die too).
run_logged() {
  local log=$1 label=$2 pid rc=0 started=$SECONDS next
  shift 2
  mkdir -p "$(dirname "$log")"
  printf '\n=== %s: %s\n' "$(date -Is)" "$*" >>"$log"
  setsid "$@" >>"$log" 2>&1 </dev/null 9>&- &
  pid=$!
  # shellcheck disable=SC2064 # expand pid now: the trap must kill this very command
  trap "kill -TERM -- -$pid 2>/dev/null; exit 130" INT TERM
  next=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= next)); then
      step "$label: still running, $(((SECONDS - started) / 60)) min so far (log: $log)"
      next=$((SECONDS + 60))
    fi
    sleep 1
  done
  wait "$pid" || rc=$?
  trap 'exit 130' INT TERM # back to the entry point's handling: exit, which runs the EXIT trap
  if ((rc != 0)); then show_log_tail "$log"; fi
  return "$rc"
}

# install_dir TMP DEST: put a fully built directory in place with one rename, so an interrupted
# build never leaves a half-written binary that a later run would take as cached.
install_dir() {
  local tmp=$1 dest=$2
  rm -rf "$dest.old"
  if [[ -e $dest ]]; then mv "$dest" "$dest.old"; fi
  mv "$tmp" "$dest"
  rm -rf "$dest.old"
}

# new_tmp_dir NAME: an empty scratch directory next to the final one (same filesystem, so
# install_dir's rename is atomic). Leftovers of interrupted builds are removed first.
new_tmp_dir() {
  mkdir -p "$BIN_DIR"
  rm -rf "$BIN_DIR/.tmp-$1".*
  local dir
  dir=$(mktemp -d "$BIN_DIR/.tmp-$1.XXXXXX")
  chmod 755 "$dir" # mktemp makes it private; the cache is meant to be shared
  printf '%s\n' "$dir"
}

# kubectl_ ARGS: our kubectl on our cluster; its discovery cache too stays out of ~/.kube.
kubectl_() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --cache-dir "$SLUICE_CACHE/kubectl-cache" "$@"; }

# kwokctl_ ARGS: kwokctl with its state under the cache (never ~/.kwok) and our cluster name.
kwokctl_() { KWOK_WORKDIR=$SLUICE_CACHE/kwok "$KWOKCTL" --name "$CLUSTER_NAME" "$@"; }
