#!/usr/bin/env bash
# Start and stop a real Apache Kafka (KRaft, combined broker+controller) on loopback from Maven Central jars.
# One script for `make kafka-up`, the test suite and CI, so all three run the very same broker.
#
#   kafka.sh fetch                 download the broker jars into the cache (idempotent)
#   kafka.sh up | down | status    one node on 127.0.0.1:$KAFKA_PORT
#   kafka.sh cluster-up | cluster-down | cluster-status
#                                  three nodes on 127.0.0.1:$KAFKA_PORT, +10, +20 (fault tests)
#   kafka.sh stop-node N | start-node N   stop/start one node of the three-node layout
#
# Settings (environment): KAFKA_PORT (9092), KAFKA_RUN_DIR (<repo>/.run/kafka), KAFKA_HEAP (512m),
# DISTILLGUARD_CACHE (~/.cache/distillguard). Processes are stopped by their pid file, never by name.
# KAFKA_SECURE=1 adds a SASL_SSL listener on port + 2: a self-signed CA and server certificate for
# 127.0.0.1 (openssl, in $KAFKA_RUN_DIR/tls, CA at tls/ca.pem), SCRAM-SHA-512 and PLAIN for the user
# KAFKA_SASL_USER (distillguard) / KAFKA_SASL_PASSWORD (dev-password). For tests of production settings.
# KAFKA_SASL_USERS="name:password ..." adds more SCRAM users (one per principal: gateway, worker, triage).
# KAFKA_ACLS=1 (with KAFKA_SECURE=1) turns the authorizer on: SASL principals may do only what an ACL
# grants them (stream/acls.py); the loopback PLAINTEXT listener stays a super user, for set-up.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
cache=${DISTILLGUARD_CACHE:-$HOME/.cache/distillguard}
lib="$cache/kafka-$KAFKA_VERSION/lib"
port=${KAFKA_PORT:-9092}
run_dir=${KAFKA_RUN_DIR:-$repo/.run/kafka}
heap=${KAFKA_HEAP:-512m}
secure=${KAFKA_SECURE:-0}
acls=${KAFKA_ACLS:-0}
sasl_users=${KAFKA_SASL_USERS:-}
sasl_user=${KAFKA_SASL_USER:-distillguard}
sasl_password=${KAFKA_SASL_PASSWORD:-dev-password}
start_timeout=${KAFKA_START_TIMEOUT:-90}

log() { echo "kafka.sh: $*" >&2; }

fetch() {
  if [ -f "$lib/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { log "mvn not found: install Maven (apt-get install maven)"; exit 1; }
  command -v java >/dev/null || { log "java not found: install a JDK >= 17"; exit 1; }
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $lib"
  rm -rf "$lib"; mkdir -p "$lib"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib"
  touch "$lib/.complete"
}

# node_dir N -> folder of node N
node_dir() { echo "$run_dir/node$1"; }
node_port() { echo $((port + ($1 - 1) * 10)); }
node_cport() { echo $(( $(node_port "$1") + 1 )); }
node_sport() { echo $(( $(node_port "$1") + 2 )); }

make_tls() {  # a throwaway CA and a server certificate for 127.0.0.1, PEM (Kafka reads PEM keystores)
  local t="$run_dir/tls"
  [ -f "$t/server.pem" ] && return 0
  command -v openssl >/dev/null || { log "openssl not found (apt-get install openssl)"; exit 1; }
  mkdir -p "$t"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=distillguard test CA" \
    -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$t/san.ext"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial -days 30 \
    -extfile "$t/san.ext" -out "$t/server.crt" 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in "$t/server.key" -out "$t/server.p8"
  cat "$t/server.p8" "$t/server.crt" > "$t/server.pem"
}

write_props() {  # write_props N NODES
  local n=$1 nodes=$2 voters="" rf=1 isr=1 i
  for i in $(seq 1 "$nodes"); do voters+="${voters:+,}$i@127.0.0.1:$(node_cport "$i")"; done
  if [ "$nodes" -ge 3 ]; then rf=3; isr=2; fi
  local d; d=$(node_dir "$n"); mkdir -p "$d/data"
  cat > "$d/node.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(node_port "$n"),CONTROLLER://127.0.0.1:$(node_cport "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$d/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
# The application creates its own topics with explicit partitions and configs.
auto.create.topics.enable=false
log.segment.bytes=67108864
PROPS
  if [ "$secure" = 1 ]; then
    make_tls
    local sp; sp=$(node_sport "$n")
    sed -i "s|^listeners=.*|listeners=PLAINTEXT://127.0.0.1:$(node_port "$n"),CONTROLLER://127.0.0.1:$(node_cport "$n"),SASL_SSL://127.0.0.1:$sp|; s|^advertised.listeners=.*|advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$n"),SASL_SSL://127.0.0.1:$sp|; s|^listener.security.protocol.map=.*|listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL|" "$d/node.properties"
    cat >> "$d/node.properties" <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$sasl_user="$sasl_password";
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$run_dir/tls/server.pem
PROPS
    if [ "$acls" = 1 ]; then
      cat >> "$d/node.properties" <<PROPS
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=false
PROPS
    fi
  fi
}

is_running() {  # is_running N
  local pidf; pidf="$(node_dir "$1")/kafka.pid"
  [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null
}

start_node() {  # start_node N NODES
  local n=$1 nodes=$2 d; d=$(node_dir "$n")
  if is_running "$n"; then log "node $n already running (pid $(cat "$d/kafka.pid"))"; return 0; fi
  [ -f "$d/node.properties" ] || write_props "$n" "$nodes"
  if [ ! -f "$d/data/meta.properties" ]; then
    local cluster_id_file="$run_dir/cluster.id"
    [ -f "$cluster_id_file" ] || java -cp "$lib/*" kafka.tools.StorageTool random-uuid > "$cluster_id_file"
    local scram=()
    if [ "$secure" = 1 ]; then
      local user
      for user in "$sasl_user:$sasl_password" $sasl_users; do
        scram+=(--add-scram "SCRAM-SHA-512=[name=${user%%:*},password=${user#*:}]")
      done
    fi
    java -Dlog4j2.configurationFile="$here/log4j2.yaml" -cp "$lib/*" kafka.tools.StorageTool format \
      -t "$(cat "$cluster_id_file")" -c "$d/node.properties" "${scram[@]}" > "$d/format.log" 2>&1 \
      || { cat "$d/format.log" >&2; exit 1; }
  fi
  nohup java "-Xms$heap" "-Xmx$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/log4j2.yaml" -cp "$lib/*" kafka.Kafka "$d/node.properties" \
    > "$d/server.log" 2>&1 < /dev/null &
  echo $! > "$d/kafka.pid"
}

wait_ready() {  # wait_ready N: the node answers on its port and logged that it started
  local n=$1 d; d=$(node_dir "$n")
  local deadline=$((SECONDS + start_timeout))
  while [ $SECONDS -lt $deadline ]; do
    if ! is_running "$n"; then log "node $n died; last log lines:"; tail -30 "$d/server.log" >&2; return 1; fi
    if grep -q "Kafka Server started" "$d/server.log" 2>/dev/null \
       && (exec 3<>"/dev/tcp/127.0.0.1/$(node_port "$n")") 2>/dev/null; then
      log "node $n ready on 127.0.0.1:$(node_port "$n") (pid $(cat "$d/kafka.pid"), Kafka $KAFKA_VERSION)"
      return 0
    fi
    sleep 0.5
  done
  log "node $n not ready after ${start_timeout}s; last log lines:"; tail -30 "$d/server.log" >&2; return 1
}

stop_node() {  # stop_node N: SIGTERM by pid, SIGKILL after 30 s
  local n=$1 d pid; d=$(node_dir "$n")
  [ -f "$d/kafka.pid" ] || return 0
  pid=$(cat "$d/kafka.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { log "node $n ignored SIGTERM; killing"; kill -9 "$pid"; }
  fi
  rm -f "$d/kafka.pid"
  log "node $n stopped"
}

status_nodes() {  # status_nodes NODES
  local rc=0 i
  for i in $(seq 1 "$1"); do
    if is_running "$i"; then echo "node $i: running pid $(cat "$(node_dir "$i")/kafka.pid") port $(node_port "$i")"
    else echo "node $i: stopped"; rc=1; fi
  done
  return $rc
}

cmd=${1:-}
case "$cmd" in
  fetch) fetch ;;
  up) fetch; mkdir -p "$run_dir"; start_node 1 1; wait_ready 1 ;;
  down) stop_node 1 ;;
  status) status_nodes 1 ;;
  cluster-up) fetch; mkdir -p "$run_dir"; for i in 1 2 3; do start_node "$i" 3; done
              for i in 1 2 3; do wait_ready "$i"; done ;;
  cluster-down) for i in 1 2 3; do stop_node "$i"; done ;;
  cluster-status) status_nodes 3 ;;
  stop-node) stop_node "${2:?node number}" ;;
  start-node) start_node "${2:?node number}" 3; wait_ready "$2" ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
