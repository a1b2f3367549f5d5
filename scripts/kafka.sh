#!/usr/bin/env bash
# A single-node Apache Kafka 4.x (KRaft, broker+controller in one JVM) for
# tests, CI and local development. No Docker, no tarball: the broker jars come
# from Maven Central through `mvn dependency:copy-dependencies` on
# scripts/kafka/pom.xml and are cached under .kafka/libs (git-ignored).
#
# Usage: scripts/kafka.sh COMMAND [--name NAME] [--keep] [--owner-pid PID]
#
#   fetch          Download the broker jars into .kafka/libs (no-op when cached).
#   start          Start the broker and print its bootstrap address
#                  (127.0.0.1:PORT) on stdout once it answers Kafka requests.
#                  Already running: prints the address. Stopped with --keep:
#                  restarts the SAME broker (same port, same data) — this is
#                  how tests simulate an outage. Otherwise: fresh state dir,
#                  free ports, `kafka.tools.StorageTool format --standalone`.
#   stop           Stop the broker (SIGTERM, wait, then SIGKILL) and delete
#                  its data, so the next start is a fresh broker. The broker
#                  log is kept as .kafka/NAME.last.log for post-mortems.
#   stop --keep    Stop the broker but keep its data dir and port for a later
#                  `start` (simulated outage).
#   status         Print "running ADDR", "stopped ADDR (kept)" or "absent".
#                  Exit 0 when running, 3 otherwise.
#   address        Print the address of the running broker (exit 3 if none).
#   log [N]        Print the last N (default 50) lines of the broker log.
#
#   --owner-pid P  (start) Stop and delete the instance once process P exits.
#   --name NAME    Manage the instance NAME (default "default"). Each instance
#                  has its own state dir .kafka/NAME, ports and data; the jars
#                  are shared. Tests that stop a broker use their own instance
#                  so that test files running in parallel are not disturbed.
#
# Environment:
#   PERPASS_KAFKA_DIR      cache/state root (default: <repo>/.kafka)
#   KAFKA_VERSION          another Kafka 4.x release than the pom's (jars in
#                          .kafka/libs-VERSION); a restarted instance must
#                          use the version it was formatted with
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to serve (default 90)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_HEAP_OPTS        JVM heap flags (default "-Xms128m -Xmx512m")
#   KAFKA_JVM_OPTS         other JVM flags (default "-XX:+UseSerialGC
#                          -XX:TieredStopAtLevel=1 -Xss1m")
#
# Layout of .kafka/: libs/ (jars + the pom hash they were fetched for),
# NAME/server.properties, NAME/data/ (KRaft metadata + log segments),
# NAME/broker.log (log4j2, scripts/kafka/log4j2.xml), NAME/jvm.out (JVM
# stdout/stderr), NAME/pid, NAME/address (the bootstrap address).
#
# Readiness: the broker is considered up when its log says "Kafka Server
# started" (BrokerServer.startup has returned: metadata caught up, broker
# unfenced, listeners accepting) AND an ApiVersions request sent from bash
# over /dev/tcp gets a well-formed answer with error code 0.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kafka_dir="${PERPASS_KAFKA_DIR:-$root/.kafka}"
# KAFKA_VERSION overrides the pom's kafka.version (jars cached per version).
kafka_version="${KAFKA_VERSION:-}"
if [ -n "$kafka_version" ]; then
  [[ "$kafka_version" =~ ^[0-9][0-9A-Za-z.-]*$ ]] || { echo "kafka.sh: invalid KAFKA_VERSION: $kafka_version" >&2; exit 1; }
  libs="$kafka_dir/libs-$kafka_version"
else
  libs="$kafka_dir/libs"
fi
pom="$root/scripts/kafka/pom.xml"
log4j="$root/scripts/kafka/log4j2.xml"
start_timeout="${KAFKA_START_TIMEOUT:-90}"
stop_timeout="${KAFKA_STOP_TIMEOUT:-30}"
heap_opts="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
# SerialGC + C1 only: a test broker on 2 cores starts ~1 s faster and leaves
# the CPU to the tests (C2 compiler threads compete with them).
jvm_opts="${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss1m}"

die() { echo "kafka.sh: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*" >&2; }

cmd="${1:-}"
[ $# -gt 0 ] && shift
name=default
keep=false
owner_pid=""
tail_lines=50
while [ $# -gt 0 ]; do
  case "$1" in
    --name) [ $# -ge 2 ] || die "--name needs a value"; name="$2"; shift 2 ;;
    --name=*) name="${1#--name=}"; shift ;;
    --keep) keep=true; shift ;;
    --owner-pid) [ $# -ge 2 ] || die "--owner-pid needs a value"; owner_pid="$2"; shift 2 ;;
    [0-9]*) tail_lines="$1"; shift ;;
    *) die "unknown argument: $1 (see the header of $0)" ;;
  esac
done
[[ "$name" =~ ^[A-Za-z0-9._-]+$ && "$name" != libs* ]] || die "invalid instance name: $name"
[ -z "$owner_pid" ] || [[ "$owner_pid" =~ ^[0-9]+$ ]] || die "invalid --owner-pid: $owner_pid"
state="$kafka_dir/$name"

# --- helpers -----------------------------------------------------------------

require_java() {
  command -v java >/dev/null 2>&1 \
    || die "Java 17+ is required to run the Kafka broker, but 'java' is not on PATH (Debian: apt-get install openjdk-17-jre-headless)"
  local v
  v="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [ -n "$v" ] || die "could not determine the Java version of $(command -v java)"
  [ "${v%%.*}" -ge 17 ] 2>/dev/null \
    || die "Kafka 4 needs Java 17 or newer; $(command -v java) is Java $v"
}

pom_hash() { { cat "$pom"; echo "kafka.version=$kafka_version"; } | sha256sum | cut -d' ' -f1; }

fetch() {
  if [ -f "$libs/.pom.sha256" ] && [ "$(cat "$libs/.pom.sha256")" = "$(pom_hash)" ] \
     && compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 \
    || die "the Kafka broker jars are not cached in $libs and Maven ('mvn') is not on PATH to fetch them (Debian: apt-get install maven)"
  say "fetching the Kafka broker jars from Maven Central into $libs"
  mkdir -p "$kafka_dir"
  local tmp="$kafka_dir/libs.tmp.$$"
  rm -rf "$tmp"
  local version_flag=()
  [ -n "$kafka_version" ] && version_flag=("-Dkafka.version=$kafka_version")
  if ! mvn -q -B -f "$pom" dependency:copy-dependencies "${version_flag[@]}" \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$kafka_dir/mvn.log" 2>&1; then
    tail -n 30 "$kafka_dir/mvn.log" >&2
    rm -rf "$tmp"
    die "mvn could not fetch the Kafka jars (full output: $kafka_dir/mvn.log)"
  fi
  pom_hash >"$tmp/.pom.sha256"
  rm -rf "$libs"
  mv "$tmp" "$libs"
}

# PID of the running broker of this instance, or nothing. Guards against PID
# reuse by checking that the process's command line names our config file.
running_pid() {
  [ -f "$state/pid" ] || return 0
  local pid
  pid="$(cat "$state/pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$state/server.properties"; then
    echo "$pid"
  fi
}

# Is something listening on 127.0.0.1:$1?
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Picked below the kernel's ephemeral range (ip_local_port_range), where no
# outgoing connection or port-0 listener of another process can take the
# port between this check and the broker's bind (a test suite opens
# thousands); a bind lost anyway is retried by do_start.
free_port() {
  local p i low
  low="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)"
  [[ "$low" =~ ^[0-9]+$ ]] && [ "$low" -gt 12000 ] || low=60000
  for i in $(seq 1 200); do
    p=$(( 10000 + (RANDOM * 32768 + RANDOM) % (low - 10000) ))
    if ! port_in_use "$p"; then echo "$p"; return 0; fi
  done
  die "found no free TCP port on 127.0.0.1"
}

# Sends an ApiVersions v0 request and checks the answer: 4-byte length,
# correlation id 0x70657270 ("perp"), error code 0.
probe() {
  local port="$1" hex
  hex="$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    # size=10 | api_key=18 (ApiVersions) | api_version=0 | correlation_id | client_id="" (int16 0)
    printf '\x00\x00\x00\x0a\x00\x12\x00\x00\x70\x65\x72\x70\x00\x00' >&3
    timeout 5 head -c 10 <&3 | od -An -v -tx1 | tr -d ' \n'
  )" || return 1
  [ "${hex:8:8}" = 70657270 ] && [ "${hex:16:4}" = 0000 ]
}

log_tail() {
  local n="${1:-40}"
  if [ -f "$state/broker.log" ]; then
    echo "--- last $n lines of $state/broker.log ---" >&2
    tail -n "$n" "$state/broker.log" >&2
  fi
  if [ -s "$state/jvm.out" ]; then
    echo "--- $state/jvm.out ---" >&2
    tail -n "$n" "$state/jvm.out" >&2
  fi
}

classpath() { echo "$libs/*"; }

write_config() {
  local port="$1" cport="$2"
  cat >"$state/server.properties" <<EOF
# Generated by scripts/kafka.sh: single-node KRaft broker+controller for tests.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$state/data
# Test-friendly settings: one replica everywhere, no topic auto-creation
# (tests and ensureTopics() create their topics explicitly, as production
# must), no initial rebalance delay, small internal topics.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
log.segment.bytes=16777216
log.retention.check.interval.ms=300000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
}

format_storage() {
  local id
  # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding (22 chars);
  # avoid a leading '-' that the CLI would read as an option.
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)"
    [ "${id:0:1}" != "-" ] && break
  done
  if ! java -cp "$(classpath)" -Dlog4j2.configurationFile="$log4j" -Dkafka.logs.dir="$state" \
        kafka.tools.StorageTool format --standalone -t "$id" -c "$state/server.properties" \
        </dev/null >"$state/format.out" 2>&1 9>&-; then
    cat "$state/format.out" >&2
    die "formatting the KRaft storage in $state/data failed"
  fi
}

# A new instance: fresh state dir, free ports, formatted storage.
new_instance() {
  local port cport
  rm -rf "$state"
  mkdir -p "$state"
  port="$(free_port)"
  cport="$(free_port)"
  while [ "$cport" = "$port" ]; do cport="$(free_port)"; done
  write_config "$port" "$cport"
  echo "$cport" >"$state/controller.port"
  format_storage
  echo "127.0.0.1:$port" >"$state/address"
}

# Starts the broker of $state in the background; sets pid.
launch() {
  # The readiness check greps the log: start it anew (keep the previous one).
  [ -f "$state/broker.log" ] && mv -f "$state/broker.log" "$state/broker.prev.log"
  # setsid: the broker must outlive this script and not get the caller's
  # terminal signals (vitest, CI step). stdin from /dev/null (CI has none);
  # fd 9 (the instance lock) closed, or the broker would hold the lock.
  # shellcheck disable=SC2086
  setsid java $heap_opts $jvm_opts \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$log4j" -Dkafka.logs.dir="$state" \
    -cp "$(classpath)" kafka.Kafka "$state/server.properties" \
    </dev/null >"$state/jvm.out" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$state/pid"
}

do_start() {
  local pid addr port cport fresh=0 rebinds=0
  pid="$(running_pid)"
  if [ -n "$pid" ] && [ -f "$state/address" ]; then
    addr="$(cat "$state/address")"
    if probe "${addr##*:}"; then echo "$addr"; return 0; fi
    # A process is there but does not serve (still starting, or hung): wait
    # for it below like a fresh start would.
  fi
  require_java
  fetch
  if [ -z "$pid" ]; then
    if [ -f "$state/address" ] && [ -f "$state/controller.port" ] && [ -f "$state/data/meta.properties" ]; then
      # Restart of a broker stopped with --keep: same ports, same data.
      port="$(cat "$state/address")"; port="${port##*:}"
      cport="$(cat "$state/controller.port")"
      for p in "$port" "$cport"; do
        port_in_use "$p" && die "cannot restart instance $name: port $p on 127.0.0.1 is taken by another process"
      done
      say "restarting instance $name on 127.0.0.1:$port with its kept data"
    else
      new_instance
      fresh=1
    fi
    launch
  fi
  addr="$(cat "$state/address")"
  port="${addr##*:}"
  watch_owner
  local deadline=$(( SECONDS + start_timeout ))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      # another process took a new instance's port before the broker bound it: new ports, up to 3 times
      if [ "$fresh" = 1 ] && [ "$rebinds" -lt 3 ] && grep -qs "Address already in use" "$state/broker.log" "$state/jvm.out"; then
        rebinds=$(( rebinds + 1 ))
        say "instance $name: a port was taken between its check and the broker's bind; starting again on new ports ($rebinds of 3)"
        new_instance
        launch
        watch_owner
        addr="$(cat "$state/address")"
        port="${addr##*:}"
        deadline=$(( SECONDS + start_timeout ))
        continue
      fi
      log_tail 60
      rm -f "$state/pid"
      die "the Kafka broker (instance $name) exited during start-up"
    fi
    if grep -qs "Kafka Server started" "$state/broker.log" && probe "$port"; then
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log_tail 60
      die "the Kafka broker (instance $name, pid $pid) did not serve on $addr within ${start_timeout}s (still running; stop it with: $0 stop --name $name)"
    fi
    sleep 0.2
  done
  echo "$addr"
}

# With --owner-pid: a detached watchdog stops (and deletes) this instance once
# that process is gone, so a test runner killed before its teardown leaves no
# broker behind. One watchdog per instance; it survives stop --keep/start.
watch_owner() {
  [ -n "$owner_pid" ] || return 0
  if [ -f "$state/watchdog.pid" ] && kill -0 "$(cat "$state/watchdog.pid")" 2>/dev/null; then return 0; fi
  kill -0 "$owner_pid" 2>/dev/null || die "--owner-pid $owner_pid is not running"
  setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -d "$4" ]; do sleep 2; done; [ -d "$4" ] && exec bash "$2" stop --name "$3"' \
    kafka-watchdog "$owner_pid" "$root/scripts/kafka.sh" "$name" "$state" </dev/null >/dev/null 2>&1 9>&- &
  echo $! >"$state/watchdog.pid"
}

do_stop() {
  local pid
  pid="$(running_pid)"
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$(( SECONDS + stop_timeout ))
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        say "broker (instance $name, pid $pid) did not stop within ${stop_timeout}s after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        break
      fi
      sleep 0.1
    done
  fi
  rm -f "$state/pid"
  if [ "$keep" = false ] && [ -d "$state" ]; then
    [ -f "$state/broker.log" ] && cp "$state/broker.log" "$kafka_dir/$name.last.log"
    rm -rf "$state"
  fi
}

do_status() {
  local pid
  pid="$(running_pid)"
  if [ -n "$pid" ] && [ -f "$state/address" ]; then
    echo "running $(cat "$state/address")"
    return 0
  elif [ -f "$state/address" ] && [ -f "$state/data/meta.properties" ]; then
    echo "stopped $(cat "$state/address") (kept)"
  else
    echo "absent"
  fi
  return 3
}

# Serialise commands on one instance (parallel test workers, CI steps).
with_lock() {
  mkdir -p "$kafka_dir"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$kafka_dir/.lock.$name"
    flock -w $(( start_timeout + stop_timeout + 600 )) 9 || die "timed out waiting for the lock on instance $name"
  fi
  "$@"
}

case "$cmd" in
  fetch) with_lock fetch ;;
  start) with_lock do_start ;;
  stop) with_lock do_stop ;;
  status) do_status ;;
  address)
    pid="$(running_pid)"
    [ -n "$pid" ] && [ -f "$state/address" ] || { echo "kafka.sh: instance $name is not running" >&2; exit 3; }
    cat "$state/address" ;;
  log) [ -f "$state/broker.log" ] && tail -n "$tail_lines" "$state/broker.log" ;;
  ""|-h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command: $cmd (commands: fetch start stop status address log)" ;;
esac
