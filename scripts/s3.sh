#!/usr/bin/env bash
# S3-compatible server for tests and local runs: S3Proxy with its filesystem backend, requiring
# AWS signatures (v2 or v4) from one fixed identity, so wrong-credential tests mean something.
#
#   scripts/s3.sh start | stop [--clean] | restart | status
#
# start    fetch the jars if needed, start S3Proxy and return only once it answers HTTP.
#          Idempotent: a running server with the same configuration is left alone; one with a
#          different configuration (port, credentials) is restarted.
# stop     SIGTERM, SIGKILL after 15 s. Keeps the buckets unless --clean.
# status   exit 0 when running and answering, 1 when running but not answering, 3 when stopped.
#
# Jars come from Maven Central (org.gaul:s3proxy and its dependencies, through a generated pom)
# and are cached outside the repository under $TRIBUTARY_CACHE (default ~/.cache/tributary);
# buckets, pid file and log live under $TRIBUTARY_RUN (default ~/.cache/tributary/run)/s3.
#
# Environment: S3_PORT (9000), S3_ACCESS_KEY (tributary), S3_SECRET_KEY (tributary-secret),
# S3_START_TIMEOUT_S (60). S3Proxy 4.1.0 was the newest release on Maven Central when this was written.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

# The BOM versions in install_s3proxy are the ones this release's pom imports: update them together.
S3PROXY_VERSION=4.1.0
S3_PORT="${S3_PORT:-9000}"
S3_ACCESS_KEY="${S3_ACCESS_KEY:-tributary}"
S3_SECRET_KEY="${S3_SECRET_KEY:-tributary-secret}"
START_TIMEOUT_S="${S3_START_TIMEOUT_S:-60}"
STOP_TIMEOUT_S=15
CACHE="${TRIBUTARY_CACHE:-$HOME/.cache/tributary}"
RUN="${TRIBUTARY_RUN:-$HOME/.cache/tributary/run}"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

DIST="$CACHE/s3proxy-$S3PROXY_VERSION"
STATE="$RUN/s3"
PID_FILE="$STATE/s3proxy.pid"
LOG="$STATE/s3proxy.log"
# Put on the server's command line so that a recycled pid is never mistaken for our server.
MARK="-Dtributary.service=s3"

SERVICE=s3
IDENTITY="$MARK"
# shellcheck source=lib/service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"
ready_now() { ready "$S3_PORT"; }

# Ready means the server answers an HTTP request, whatever the status (403 without credentials).
ready() { http_status "$1" / >/dev/null; }

require_java() {
  local version
  command -v java >/dev/null ||
    die "java not found: S3Proxy $S3PROXY_VERSION needs a JDK >= 17 (Debian: apt-get install openjdk-17-jre-headless)"
  version="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  ((${version%%.*} >= 17)) || die "java $version found: S3Proxy $S3PROXY_VERSION needs Java >= 17"
}

install_s3proxy() {
  [[ -f "$DIST/.complete" ]] && return 0
  command -v mvn >/dev/null ||
    die "mvn not found: Maven is needed to fetch S3Proxy from Maven Central (Debian: apt-get install maven)"
  local tmp="$DIST.tmp.$$"
  # Leftovers of an interrupted fetch: the caller holds the service lock, so none is in use.
  rm -rf "$DIST.tmp."*
  mkdir -p "$tmp"
  # The jar on Maven Central is not self-contained: copy-dependencies completes the classpath.
  cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.tributary.rig</groupId>
  <artifactId>s3proxy-dist</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <!-- S3Proxy's own dependencyManagement (BOM imports) does not reach its consumers: repeat it, or
       Maven's nearest-wins picks jackson-annotations 2.18 where jackson-databind 3 needs 2.20+. -->
  <dependencyManagement>
    <dependencies>
      <dependency><groupId>tools.jackson</groupId><artifactId>jackson-bom</artifactId><version>3.2.2</version><type>pom</type><scope>import</scope></dependency>
      <dependency><groupId>io.opentelemetry</groupId><artifactId>opentelemetry-bom</artifactId><version>1.65.0</version><type>pom</type><scope>import</scope></dependency>
      <dependency><groupId>software.amazon.awssdk</groupId><artifactId>bom</artifactId><version>2.54.2</version><type>pom</type><scope>import</scope></dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency><groupId>org.gaul</groupId><artifactId>s3proxy</artifactId><version>$S3PROXY_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  say "fetching S3Proxy $S3PROXY_VERSION jars from Maven Central into $DIST (first run only)"
  # Maven's local repository is not safe for concurrent writers: kafka.sh takes the same lock.
  if ! (
    flock -w 900 9 || exit 1
    mvn -B -q -Dmaven.repo.local="$CACHE/m2" -f "$tmp/pom.xml" \
      "$DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime -DoutputDirectory="$tmp/libs"
  ) >"$tmp/mvn.log" 2>&1 9>"$CACHE/m2.lock"; then
    sed 's/\x1b\[[0-9;]*m//g' "$tmp/mvn.log" | tail -n 30 >&2
    rm -rf "$tmp"
    die "mvn could not fetch S3Proxy $S3PROXY_VERSION from Maven Central (messages above)"
  fi
  touch "$tmp/.complete"
  rm -rf "$DIST"
  mv "$tmp" "$DIST"
}

write_logging_config() {
  cat >"$STATE/logback.xml" <<'EOF'
<configuration>
  <appender name="stdout" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="stdout"/></root>
</configuration>
EOF
}

write_config() {
  cat >"$1" <<EOF
s3proxy.endpoint=http://127.0.0.1:$S3_PORT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$S3_ACCESS_KEY
s3proxy.credential=$S3_SECRET_KEY
jclouds.provider=filesystem
jclouds.filesystem.basedir=$STATE/data
EOF
}

print_endpoint() {
  say "endpoint http://127.0.0.1:$S3_PORT  access key $S3_ACCESS_KEY  secret key $S3_SECRET_KEY" \
    "(path-style, any region)"
}

start_server() {
  local pid staged
  require_java
  mkdir -p "$CACHE" "$STATE/data"
  install_s3proxy

  staged="$(mktemp "$STATE/s3proxy.conf.XXXXXX")"
  write_config "$staged"
  if pid="$(running_pid)"; then
    if cmp -s "$staged" "$STATE/s3proxy.conf"; then
      rm -f "$staged"
      wait_ready "$pid" "S3Proxy"
      say "already running (pid $pid)"
      print_endpoint
      return 0
    fi
    say "configuration changed: restarting"
    stop_service
  fi
  mv "$staged" "$STATE/s3proxy.conf"

  if port_open "$S3_PORT"; then
    die "127.0.0.1:$S3_PORT is already in use by another process; stop it or set S3_PORT"
  fi

  if [[ -f "$LOG" ]]; then mv -f "$LOG" "$LOG.1"; fi
  # setsid: the server outlives the caller and ignores its terminal's Ctrl-C.
  # 9>&- : the server must not inherit the lock descriptor of the caller's flock.
  write_logging_config
  setsid nohup java -Xmx256m "$MARK" -Dlogback.configurationFile="$STATE/logback.xml" -cp "$DIST/libs/*" org.gaul.s3proxy.Main \
    --properties "$STATE/s3proxy.conf" </dev/null >>"$LOG" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"
  say "starting S3Proxy $S3PROXY_VERSION (pid $pid), log $LOG"
  wait_ready "$pid" "S3Proxy"
  say "ready"
  print_endpoint
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
  # Report on the port the running server was configured with, whatever this shell's S3_PORT.
  port="$(sed -n 's|^s3proxy.endpoint=http://127.0.0.1:||p' "$STATE/s3proxy.conf")"
  if ready "$port"; then
    say "running (pid $pid) on http://127.0.0.1:$port"
    return 0
  fi
  say "running (pid $pid) but not answering on http://127.0.0.1:$port"
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
