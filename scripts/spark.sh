#!/usr/bin/env bash
# A local Spark standalone cluster for Recflow (no Docker, nothing downloaded): one master and
# two workers started from the bundled pyspark's own bin/spark-class.
#
#   scripts/spark.sh up       start the master and the workers (idempotent)
#   scripts/spark.sh down     stop them
#   scripts/spark.sh status   exit 0 when the master answers with every worker alive, 3 otherwise
#   scripts/spark.sh url      print the master URL (spark://127.0.0.1:7077)
#
# Point Recflow at it with RECFLOW_SPARK_MASTER=$(scripts/spark.sh url). Driver and executors
# run on this machine, so the lake under the data dir is a path both see.
#
# Env: RECFLOW_SPARK_PORT (7077), RECFLOW_SPARK_UI_PORT (18090; workers use the next ports),
# RECFLOW_SPARK_WORKERS (2), RECFLOW_SPARK_WORKER_CORES (1), RECFLOW_SPARK_WORKER_MEMORY
# (default: a quarter of the machine's memory each, at least 1g), RECFLOW_SERVICES_DIR.
set -euo pipefail
SERVICE_NAME=spark
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

SPARK_HOST=127.0.0.1
SPARK_PORT="${RECFLOW_SPARK_PORT:-7077}"
UI_PORT="${RECFLOW_SPARK_UI_PORT:-18090}"
N_WORKERS="${RECFLOW_SPARK_WORKERS:-2}"
WORKER_CORES="${RECFLOW_SPARK_WORKER_CORES:-1}"
SPARK_ROOT="$SERVICES_DIR/spark"
MASTER_PID="$SPARK_ROOT/master.pid"
MASTER_LOG="$SPARK_ROOT/master.log"
MASTER_URL="spark://$SPARK_HOST:$SPARK_PORT"

default_worker_memory() {
  local kb
  kb="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)"
  local gb=$((kb / 1024 / 1024 / 4))
  ((gb >= 1)) || gb=1
  echo "${gb}g"
}
WORKER_MEMORY="${RECFLOW_SPARK_WORKER_MEMORY:-$(default_worker_memory)}"

spark_class() {
  local cls
  cls="$("$VENV_PY" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-class"))' 2>/dev/null)" ||
    die "pyspark is not importable with $VENV_PY; run make install"
  [[ -x "$cls" ]] || die "$cls is missing or not executable"
  echo "$cls"
}

# The number of workers the master lists as ALIVE (its UI's JSON), or nothing when it is down.
alive_workers() {
  curl -fsS --max-time 2 "http://$SPARK_HOST:$UI_PORT/json/" 2>/dev/null |
    "$VENV_PY" -c 'import json, sys; print(sum(w["state"] == "ALIVE" for w in json.load(sys.stdin)["workers"]))'
}

all_workers_alive() {
  [[ "$(alive_workers)" == "$N_WORKERS" ]]
}

# start_daemon NAME PIDFILE LOGFILE ARGS...: spark-class execs the JVM, so $! is its pid.
start_daemon() {
  local name="$1" pidfile="$2" logfile="$3"
  shift 3
  if pid_alive "$pidfile"; then
    log "$name already running (pid $(cat "$pidfile"))"
    return 0
  fi
  log "starting $name (log: $logfile)"
  SPARK_LOCAL_DIRS="$SPARK_ROOT/tmp" SPARK_NO_DAEMONIZE=1 \
    nohup "$(spark_class)" "$@" >"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

cmd_up() {
  command -v java >/dev/null 2>&1 || [[ -n "${JAVA_HOME:-}" ]] || die "Java 17+ is needed (java -version)"
  mkdir -p "$SPARK_ROOT/tmp"
  if ! pid_alive "$MASTER_PID" && port_open "$SPARK_HOST" "$SPARK_PORT"; then
    die "port $SPARK_PORT is taken by another process; set RECFLOW_SPARK_PORT"
  fi
  if ! pid_alive "$MASTER_PID" && port_open "$SPARK_HOST" "$UI_PORT"; then
    die "port $UI_PORT is taken by another process; set RECFLOW_SPARK_UI_PORT"
  fi
  start_daemon master "$MASTER_PID" "$MASTER_LOG" org.apache.spark.deploy.master.Master \
    --host "$SPARK_HOST" --port "$SPARK_PORT" --webui-port "$UI_PORT"
  wait_until "the master on $MASTER_URL" "$MASTER_LOG" port_open "$SPARK_HOST" "$SPARK_PORT"
  local n
  for ((n = 1; n <= N_WORKERS; n++)); do
    mkdir -p "$SPARK_ROOT/worker-$n"
    start_daemon "worker $n" "$SPARK_ROOT/worker-$n.pid" "$SPARK_ROOT/worker-$n.log" \
      org.apache.spark.deploy.worker.Worker "$MASTER_URL" --host "$SPARK_HOST" \
      --cores "$WORKER_CORES" --memory "$WORKER_MEMORY" --webui-port "$((UI_PORT + n))" \
      --work-dir "$SPARK_ROOT/worker-$n"
  done
  wait_until "$N_WORKERS workers registered with the master" "$SPARK_ROOT/worker-1.log" \
    all_workers_alive
  log "ready: $MASTER_URL ($N_WORKERS workers x $WORKER_CORES core, $WORKER_MEMORY; UI http://$SPARK_HOST:$UI_PORT)"
}

cmd_down() {
  local n pidfile
  for pidfile in "$SPARK_ROOT"/worker-*.pid; do
    [[ -e "$pidfile" ]] || continue
    stop_pidfile "$pidfile" 20
  done
  if pid_alive "$MASTER_PID"; then
    log "stopping the master"
  fi
  stop_pidfile "$MASTER_PID" 20
  for ((n = 1; n <= N_WORKERS; n++)); do
    rm -rf "$SPARK_ROOT/worker-$n"/app-* 2>/dev/null || true
  done
  log "stopped"
}

cmd_status() {
  if pid_alive "$MASTER_PID" && all_workers_alive; then
    echo "spark: running at $MASTER_URL with $N_WORKERS workers (master pid $(cat "$MASTER_PID"))"
  else
    echo "spark: stopped (or not every worker is alive)"
    return 3
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  url) echo "$MASTER_URL" ;;
  *)
    echo "usage: $0 up|down|status|url" >&2
    exit 2
    ;;
esac
