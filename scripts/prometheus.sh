#!/usr/bin/env bash
# Prometheus for tests and local runs: Debian's `prometheus` binary run with our own config (not
# the system service), scraping Tributary's /metrics every second.
#
#   scripts/prometheus.sh start | stop [--clean] | restart | status
#
# start    install Debian's prometheus if the binary is missing, start it and return only once
#          /-/ready answers 200. Idempotent: a running server with the same configuration is left
#          alone; called with other PROM_TARGETS or PROM_PORT, it restarts with the new config.
# stop     SIGTERM, SIGKILL after 15 s. Keeps the TSDB unless --clean.
# status   exit 0 when running and ready, 1 when running but not ready, 3 when stopped.
#
# TSDB, config, pid file and log live under $TRIBUTARY_RUN (default ~/.cache/tributary/run)/prometheus.
#
# Environment: PROM_TARGETS (127.0.0.1:8787; comma-separated host:port list, job `tributary`,
# path /metrics), PROM_PORT (9090), PROM_START_TIMEOUT_S (30).
set -euo pipefail

PROM_TARGETS="${PROM_TARGETS:-127.0.0.1:8787}"
PROM_PORT="${PROM_PORT:-9090}"
START_TIMEOUT_S="${PROM_START_TIMEOUT_S:-30}"
STOP_TIMEOUT_S=15
RUN="${TRIBUTARY_RUN:-$HOME/.cache/tributary/run}"

STATE="$RUN/prometheus"
TARGETS=()
PID_FILE="$STATE/prometheus.pid"
LOG="$STATE/prometheus.log"
CONFIG="$STATE/prometheus.yml"

say() { printf 'prometheus: %s\n' "$*"; }
die() {
  printf 'prometheus: error: %s\n' "$*" >&2
  exit 1
}

# True while the process exists and is not a zombie.
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}

# Prints the pid of our server if it is running; its command line names our config file, so a
# recycled pid or the system service is never mistaken for it.
running_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(<"$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--config.file=$CONFIG" || return 1
  printf '%s\n' "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Prints the status code of `GET $2` on 127.0.0.1:$1; fails when nothing answers HTTP.
http_status() {
  # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
  timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n" "$2" "$1" >&3
    read -r proto code _ <&3 && [[ "$proto" == HTTP/* ]] && printf "%s\n" "$code"
  ' _ "$1" "$2" 2>/dev/null
}

ready() { [[ "$(http_status "$1" /-/ready)" == 200 ]]; }

# Installs Debian packages non-interactively; fails with a plain message when apt is unusable.
apt_install() {
  local sudo=() apt_log="$RUN/apt.log"
  command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
  if ((EUID != 0)); then
    if ! command -v sudo >/dev/null || ! sudo -n true 2>/dev/null; then
      die "not root and no password-less sudo: install $* by hand (apt-get install $*)"
    fi
    sudo=(sudo -n)
  fi
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300)
  say "installing $* with apt-get (log: $apt_log)"
  # One apt at a time across our scripts: kafka.sh and prometheus.sh may install concurrently.
  # --no-install-recommends: the recommended node exporter would be one more system service.
  if ! (
    flock -w 600 9 || exit 1
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
      "${apt[@]}" update >>"$apt_log" 2>&1 || exit 1
    fi
    "${apt[@]}" install --no-install-recommends "$@" >>"$apt_log" 2>&1 && exit 0
    "${apt[@]}" update >>"$apt_log" 2>&1 &&
      "${apt[@]}" install --no-install-recommends "$@" >>"$apt_log" 2>&1
  ) 9>"$RUN/apt.lock"; then
    tail -n 20 "$apt_log" >&2
    die "apt-get could not install $*"
  fi
}

ensure_prometheus() {
  command -v prometheus >/dev/null && return 0
  apt_install prometheus
  command -v prometheus >/dev/null || die "the prometheus package installed no prometheus binary on PATH"
}

# Splits PROM_TARGETS into TARGETS, refusing anything that is not host:port.
parse_targets() {
  local target raw=()
  IFS=',' read -r -a raw <<<"$PROM_TARGETS"
  TARGETS=()
  for target in "${raw[@]}"; do
    target="${target//[[:space:]]/}"
    [[ -n "$target" ]] || continue
    [[ "$target" =~ ^[^\"]+:[0-9]+$ ]] || die "PROM_TARGETS: '$target' is not host:port"
    TARGETS+=("$target")
  done
  ((${#TARGETS[@]} > 0)) || die "PROM_TARGETS names no target"
}

write_config() {
  local target
  cat <<'EOF'
# Written by scripts/prometheus.sh; regenerated on every start.
global:
  scrape_interval: 1s
  # Must not exceed the interval (the 10 s default would be rejected).
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tributary
    metrics_path: /metrics
    static_configs:
      - targets:
EOF
  for target in "${TARGETS[@]}"; do
    printf '          - "%s"\n' "$target"
  done
  # The listen address is a flag, not part of the file: recording it here makes a change of
  # PROM_PORT a change of configuration too.
  printf '# listen 127.0.0.1:%s\n' "$PROM_PORT"
}

stop_server() {
  local pid i
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  say "stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT_S * 4; i++)); do
    alive "$pid" || break
    sleep 0.25
  done
  if alive "$pid"; then
    say "still running after ${STOP_TIMEOUT_S}s: sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
      alive "$pid" || break
      sleep 0.5
    done
  fi
  rm -f "$PID_FILE"
  say "stopped"
}

fail_start() {
  local pid="$1" reason="$2"
  printf 'prometheus: error: %s; last lines of %s:\n' "$reason" "$LOG" >&2
  tail -n 40 "$LOG" >&2 || true
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PID_FILE"
  exit 1
}

wait_ready() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT_S))
  until ready "$PROM_PORT"; do
    alive "$pid" || fail_start "$pid" "prometheus exited during startup"
    ((SECONDS < deadline)) || fail_start "$pid" "prometheus was not ready within ${START_TIMEOUT_S}s"
    sleep 0.25
  done
}

start_server() {
  local pid staged
  mkdir -p "$STATE/data"
  ensure_prometheus

  parse_targets
  staged="$(mktemp "$STATE/prometheus.yml.XXXXXX")"
  write_config >"$staged"
  if pid="$(running_pid)"; then
    if cmp -s "$staged" "$CONFIG"; then
      rm -f "$staged"
      wait_ready "$pid"
      say "already running (pid $pid) on http://127.0.0.1:$PROM_PORT, scraping $PROM_TARGETS"
      return 0
    fi
    say "configuration changed: restarting"
    stop_server
  fi
  mv "$staged" "$CONFIG"

  if port_open "$PROM_PORT"; then
    die "127.0.0.1:$PROM_PORT is already in use by another process (the system prometheus service?); stop it or set PROM_PORT"
  fi

  if [[ -f "$LOG" ]]; then mv -f "$LOG" "$LOG.1"; fi
  # setsid: the server outlives the caller and ignores its terminal's Ctrl-C.
  # 9>&- : the server must not inherit the lock descriptor of the caller's flock.
  setsid nohup prometheus --config.file="$CONFIG" --storage.tsdb.path="$STATE/data" \
    --storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$PROM_PORT" \
    </dev/null >>"$LOG" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"
  say "starting $(prometheus --version 2>&1 | head -n 1 | cut -d' ' -f1-3) (pid $pid), log $LOG"
  wait_ready "$pid"
  say "ready on http://127.0.0.1:$PROM_PORT, scraping $PROM_TARGETS every 1s"
}

restart_server() {
  stop_server
  start_server
}

clean_stop_server() {
  stop_server
  rm -rf "$STATE/data"
  say "removed $STATE/data"
}

status_server() {
  local pid port
  if ! pid="$(running_pid)"; then
    say "stopped"
    return 3
  fi
  # Report on the port the running server was started with, whatever this shell's PROM_PORT.
  port="$(sed -n 's|^# listen 127.0.0.1:||p' "$CONFIG")"
  if ready "$port"; then
    say "running (pid $pid) on http://127.0.0.1:$port"
    return 0
  fi
  say "running (pid $pid) but not ready on http://127.0.0.1:$port"
  return 1
}

# Serializes start/stop/restart: test files running in parallel may all ask for the server.
with_lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w $((START_TIMEOUT_S + 900)) 9 || die "timed out waiting for another prometheus.sh to finish"
  "$@"
}

usage() {
  echo "usage: $0 start | stop [--clean] | restart | status" >&2
  exit 2
}

case "${1:-}" in
start) with_lock start_server ;;
stop)
  case "${2:-}" in
  "") with_lock stop_server ;;
  --clean) with_lock clean_stop_server ;;
  *) usage ;;
  esac
  ;;
restart) with_lock restart_server ;;
status) status_server ;;
*) usage ;;
esac
