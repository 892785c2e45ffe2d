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
# path /metrics), PROM_PORT (9090), PROM_START_TIMEOUT_S (30), TRIBUTARY_TOKEN (when set, /metrics
# needs it: it is written to $STATE/token, mode 600, and the scrape config sends it with
#   authorization: { type: Bearer, credentials_file: $STATE/token }
# Prometheus reads that file on every scrape, so a new token needs no restart).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

PROM_TARGETS="${PROM_TARGETS:-127.0.0.1:8787}"
PROM_PORT="${PROM_PORT:-9090}"
START_TIMEOUT_S="${PROM_START_TIMEOUT_S:-30}"
STOP_TIMEOUT_S=15
RUN="${TRIBUTARY_RUN:-$HOME/.cache/tributary/run}"

STATE="$RUN/prometheus"
TARGETS=()
PID_FILE="$STATE/prometheus.pid"
TOKEN_FILE="$STATE/token"
LOG="$STATE/prometheus.log"
CONFIG="$STATE/prometheus.yml"

SERVICE=prometheus
IDENTITY="--config.file=$CONFIG"
# shellcheck source=lib/service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"
ready_now() { ready "$PROM_PORT"; }

ready() { [[ "$(http_status "$1" /-/ready)" == 200 ]]; }

ensure_prometheus() {
  command -v prometheus >/dev/null && return 0
  apt_install prometheus || die "apt-get could not install prometheus (log: $RUN/apt.log); install it by hand"
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
EOF
  if [[ -n "${TRIBUTARY_TOKEN:-}" ]]; then
    printf '    authorization:\n      type: Bearer\n      credentials_file: "%s"\n' "$TOKEN_FILE"
  fi
  cat <<'EOF'
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

# The token for /metrics, readable by us only; removed when TRIBUTARY_TOKEN is unset.
write_token() {
  local staged
  if [[ -z "${TRIBUTARY_TOKEN:-}" ]]; then
    rm -f "$TOKEN_FILE"
    return 0
  fi
  staged="$(umask 077 && mktemp "$STATE/token.XXXXXX")"
  printf '%s' "$TRIBUTARY_TOKEN" >"$staged"
  mv -f "$staged" "$TOKEN_FILE"
}

start_server() {
  local pid staged
  mkdir -p "$STATE/data"
  ensure_prometheus

  parse_targets
  write_token
  staged="$(mktemp "$STATE/prometheus.yml.XXXXXX")"
  write_config >"$staged"
  if pid="$(running_pid)"; then
    if cmp -s "$staged" "$CONFIG"; then
      rm -f "$staged"
      wait_ready "$pid" "prometheus"
      say "already running (pid $pid) on http://127.0.0.1:$PROM_PORT, scraping $PROM_TARGETS"
      return 0
    fi
    say "configuration changed: restarting"
    stop_service
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
  wait_ready "$pid" "prometheus"
  say "ready on http://127.0.0.1:$PROM_PORT, scraping $PROM_TARGETS every 1s"
}

restart_server() {
  stop_service
  start_server
}

clean_stop_service() {
  stop_service
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

usage() {
  echo "usage: $0 start | stop [--clean] | restart | status" >&2
  exit 2
}

case "${1:-}" in
start) with_lock start_server ;;
stop)
  case "${2:-}" in
  "") with_lock stop_service ;;
  --clean) with_lock clean_stop_service ;;
  *) usage ;;
  esac
  ;;
restart) with_lock restart_server ;;
status) status_server ;;
*) usage ;;
esac
