#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft: broker and controller in one JVM) for tests and local runs.
#
#   scripts/kafka.sh start | stop [--clean] | restart | status | classpath
#
# start      fetch the jars if needed, format storage once, start the broker and return only once
#            it answers a metadata request. Idempotent: a running broker with the same
#            configuration is left alone; one with a different configuration is restarted.
# stop       SIGTERM (controlled shutdown), SIGKILL after 30 s. Keeps the data unless --clean.
# restart    stop (keeping data), then start: tests use it to lose the broker mid-stream.
# status     exit 0 when running and answering, 1 when running but not answering, 3 when stopped.
# classpath  print the java classpath of the Kafka jars (for the broker's own CLI classes).
#
# Jars come from Maven Central through a generated pom and are cached outside the repository
# under $TRIBUTARY_CACHE (default ~/.cache/tributary, Maven's local repository included);
# data, pid file and log live under $TRIBUTARY_RUN (default ~/.cache/tributary/run)/kafka.
#
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT + 1), KAFKA_VERSION (3.9.2,
# the newest 3.9.x on Maven Central when this was written), KAFKA_START_TIMEOUT_S (120).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-3.9.2}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
START_TIMEOUT_S="${KAFKA_START_TIMEOUT_S:-120}"
STOP_TIMEOUT_S=30
CACHE="${TRIBUTARY_CACHE:-$HOME/.cache/tributary}"
RUN="${TRIBUTARY_RUN:-$HOME/.cache/tributary/run}"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

DIST="$CACHE/kafka-$KAFKA_VERSION"
CLASSPATH_GLOB="$DIST/libs/*"
STATE="$RUN/kafka"
PID_FILE="$STATE/kafka.pid"
LOG="$STATE/kafka.log"
# Put on the broker's command line so that a recycled pid is never mistaken for our broker.
MARK="-Dtributary.service=kafka"
# The broker's own CLI classes (StorageTool, TopicCommand) only need to start fast and fail fast.
CLI_JAVA=(java -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j.configuration="file:$STATE/log4j-cli.properties"
  -cp "$CLASSPATH_GLOB")

SERVICE=kafka
IDENTITY="$MARK"
# shellcheck source=lib/service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"
ready_now() { ready; }

require_java() {
  local version
  command -v java >/dev/null ||
    die "java not found: Kafka needs a JDK >= 11 (Debian: apt-get install openjdk-17-jre-headless)"
  version="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  ((${version%%.*} >= 11)) || die "java $version found: Kafka $KAFKA_VERSION needs Java >= 11"
}

ensure_kcat() {
  command -v kcat >/dev/null && return 0
  apt_install kcat && command -v kcat >/dev/null && return 0
  say "kcat unavailable: readiness checks use the Kafka CLI classes instead (a JVM per check)"
}

install_kafka() {
  [[ -f "$DIST/.complete" ]] && return 0
  command -v mvn >/dev/null ||
    die "mvn not found: Maven is needed to fetch Kafka from Maven Central (Debian: apt-get install maven)"
  local tmp="$DIST.tmp.$$"
  # Leftovers of an interrupted fetch: the caller holds the service lock, so none is in use.
  rm -rf "$DIST.tmp."*
  mkdir -p "$tmp"
  cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.tributary.rig</groupId>
  <artifactId>kafka-dist</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- TopicCommand and ConsoleConsumer, used when kcat is missing; Connect is not needed. -->
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version>
      <exclusions><exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion></exclusions>
    </dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId><version>1.2.25</version></dependency>
  </dependencies>
</project>
EOF
  say "fetching Kafka $KAFKA_VERSION jars from Maven Central into $DIST (first run only)"
  # Maven's local repository is not safe for concurrent writers: s3.sh takes the same lock.
  if ! (
    flock -w 900 9 || exit 1
    mvn -B -q -Dmaven.repo.local="$CACHE/m2" -f "$tmp/pom.xml" \
      "$DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime -DoutputDirectory="$tmp/libs"
  ) >"$tmp/mvn.log" 2>&1 9>"$CACHE/m2.lock"; then
    sed 's/\x1b\[[0-9;]*m//g' "$tmp/mvn.log" | tail -n 30 >&2
    rm -rf "$tmp"
    die "mvn could not fetch Kafka $KAFKA_VERSION from Maven Central (messages above)"
  fi
  touch "$tmp/.complete"
  rm -rf "$DIST"
  mv "$tmp" "$DIST"
}

write_config() {
  local dir="$1"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$STATE/data
num.partitions=1
auto.create.topics.enable=true
# One node: internal topics cannot have more replicas than brokers.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# Tests join consumer groups constantly; the default 3 s delay would slow every one of them.
group.initial.rebalance.delay.ms=0
EOF
  cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
}

# Ready means the broker answers a metadata request, not merely that its port accepts connections.
ready() {
  if command -v kcat >/dev/null; then
    timeout 10 kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 3 >/dev/null 2>&1
  else
    timeout 30 "${CLI_JAVA[@]}" org.apache.kafka.tools.TopicCommand --list \
      --bootstrap-server "127.0.0.1:$KAFKA_PORT" --command-config "$STATE/cli.properties" \
      >/dev/null 2>&1
  fi
}

write_cli_config() {
  cat >"$STATE/log4j-cli.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=%p %m%n
EOF
  # Without these, an AdminClient call against a broker that is down waits 60 s.
  printf 'request.timeout.ms=3000\ndefault.api.timeout.ms=5000\n' >"$STATE/cli.properties"
}

start_broker() {
  local pid cluster_id
  require_java
  mkdir -p "$CACHE" "$STATE"
  install_kafka
  ensure_kcat
  write_cli_config

  local staged
  staged="$(mktemp -d "$STATE/config.XXXXXX")"
  write_config "$staged"
  if pid="$(running_pid)"; then
    if cmp -s "$staged/server.properties" "$STATE/server.properties"; then
      rm -rf "$staged"
      wait_ready "$pid" "the broker"
      say "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    say "configuration changed: restarting"
    stop_service
  fi
  mv "$staged/server.properties" "$staged/log4j.properties" "$STATE/"
  rm -rf "$staged"

  local port
  for port in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    if port_open "$port"; then
      die "127.0.0.1:$port is already in use by another process; stop it or set KAFKA_PORT"
    fi
  done

  if [[ ! -f "$STATE/data/meta.properties" ]]; then
    cluster_id="$("${CLI_JAVA[@]}" kafka.tools.StorageTool random-uuid)" || die "StorageTool random-uuid failed"
    "${CLI_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$STATE/server.properties" -g >/dev/null ||
      die "could not format $STATE/data"
    say "formatted storage in $STATE/data (cluster id $cluster_id)"
  fi

  if [[ -f "$LOG" ]]; then mv -f "$LOG" "$LOG.1"; fi
  # setsid: the broker outlives the caller and ignores its terminal's Ctrl-C.
  # 9>&- : the broker must not inherit the lock descriptor of the caller's flock.
  setsid nohup java -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true "$MARK" \
    -Dlog4j.configuration="file:$STATE/log4j.properties" -cp "$CLASSPATH_GLOB" \
    kafka.Kafka "$STATE/server.properties" </dev/null >>"$LOG" 2>&1 9>&- &
  pid=$!
  printf '%s\n' "$pid" >"$PID_FILE"
  say "starting Kafka $KAFKA_VERSION (pid $pid), log $LOG"

  wait_ready "$pid" "the broker"
  say "ready on 127.0.0.1:$KAFKA_PORT (controller 127.0.0.1:$CONTROLLER_PORT)"
}

restart_broker() {
  stop_service
  start_broker
}

clean_stop_service() {
  stop_service
  rm -rf "$STATE/data"
  say "removed $STATE/data"
}

status_broker() {
  local pid port
  if ! pid="$(running_pid)"; then
    say "stopped"
    return 3
  fi
  # Report on the port the running broker was configured with, whatever this shell's KAFKA_PORT.
  port="$(sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:||p' "$STATE/server.properties")"
  if KAFKA_PORT="$port" ready; then
    say "running (pid $pid) on 127.0.0.1:$port"
    return 0
  fi
  say "running (pid $pid) but not answering on 127.0.0.1:$port"
  return 1
}

usage() {
  echo "usage: $0 start | stop [--clean] | restart | status | classpath" >&2
  exit 2
}

case "${1:-}" in
start) with_lock start_broker ;;
stop)
  case "${2:-}" in
  "") with_lock stop_service ;;
  --clean) with_lock clean_stop_service ;;
  *) usage ;;
  esac
  ;;
restart) with_lock restart_broker ;;
status) status_broker ;;
classpath)
  [[ -f "$DIST/.complete" ]] || die "Kafka $KAFKA_VERSION is not installed yet: run $0 start"
  printf '%s\n' "$CLASSPATH_GLOB"
  ;;
*) usage ;;
esac
