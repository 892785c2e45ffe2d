# shellcheck shell=bash
# Shared by scripts/kafka.sh, s3.sh and prometheus.sh (sourced, not run). The sourcing script sets
#   SERVICE          name used in messages
#   RUN, STATE       run directory of all services / of this one
#   PID_FILE, LOG    pid file and log of the server process
#   IDENTITY         a fixed string on the server's command line, so a recycled pid is never ours
#   START_TIMEOUT_S, STOP_TIMEOUT_S
# and defines `ready_now` (no arguments): true once the server answers.

say() { printf '%s: %s\n' "$SERVICE" "$*"; }
die() {
  printf '%s: error: %s\n' "$SERVICE" "$*" >&2
  exit 1
}

# True while the process exists and is not a zombie.
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]]
}

# Prints the pid of our server if it is running.
running_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(<"$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$IDENTITY" || return 1
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

# Installs Debian packages non-interactively. Returns non-zero when apt is unusable here (no
# apt-get, not root and no password-less sudo, no network); the caller decides whether that is fatal.
apt_install() {
  local sudo=() apt_log="$RUN/apt.log"
  command -v apt-get >/dev/null || return 1
  if ((EUID != 0)); then
    if ! command -v sudo >/dev/null || ! sudo -n true 2>/dev/null; then return 1; fi
    sudo=(sudo -n)
  fi
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300)
  mkdir -p "$RUN"
  say "installing $* with apt-get (log: $apt_log)"
  # One apt at a time across our scripts: kafka.sh and prometheus.sh may install concurrently.
  # --no-install-recommends: recommended extras (e.g. Prometheus's node exporter) are more services.
  (
    flock -w 600 9 || exit 1
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
      "${apt[@]}" update >>"$apt_log" 2>&1 || exit 1
    fi
    "${apt[@]}" install --no-install-recommends "$@" >>"$apt_log" 2>&1 && exit 0
    "${apt[@]}" update >>"$apt_log" 2>&1 &&
      "${apt[@]}" install --no-install-recommends "$@" >>"$apt_log" 2>&1
  ) 9>"$RUN/apt.lock"
}

# SIGTERM, then SIGKILL after STOP_TIMEOUT_S.
stop_service() {
  local pid i
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  say "stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT_S * 2; i++)); do
    alive "$pid" || break
    sleep 0.5
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
  printf '%s: error: %s; last lines of %s:\n' "$SERVICE" "$reason" "$LOG" >&2
  tail -n 40 "$LOG" >&2 || true
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PID_FILE"
  exit 1
}

# Waits until ready_now answers; $2 names the server in failure messages.
wait_ready() {
  local pid="$1" what="$2" deadline=$((SECONDS + START_TIMEOUT_S))
  until ready_now; do
    alive "$pid" || fail_start "$pid" "$what exited during startup"
    ((SECONDS < deadline)) || fail_start "$pid" "$what did not answer within ${START_TIMEOUT_S}s"
    sleep 0.25
  done
}

# Serializes start/stop/restart: test files running in parallel may all ask for the server.
with_lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w $((START_TIMEOUT_S + 900)) 9 || die "timed out waiting for another $SERVICE script to finish"
  "$@"
}
