#!/usr/bin/env bash
# All local Recflow services without Docker: PostgreSQL, Redis, Kafka (KRaft),
# the Spark Kafka connector jars, a Spark standalone cluster (scripts/spark.sh) and
# OpenBLAS (Spark's ALS uses the native BLAS when libblas.so.3 is there).
#
#   scripts/services.sh up       install what is missing, start everything, resolve jars
#   scripts/services.sh down     stop everything
#   scripts/services.sh status   status of each service (exit 3 if one is down)
#   scripts/services.sh env      print `export RECFLOW_...=...` lines; use: eval "$(scripts/services.sh env)"
#
# State and logs: ${RECFLOW_SERVICES_DIR:-<repo>/var/services}; downloads are
# cached in ${RECFLOW_CACHE_DIR:-~/.cache/recflow}.
set -euo pipefail
SERVICE_NAME=services
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

cmd_up() {
  local t0=$SECONDS
  "$SCRIPTS_DIR/postgres.sh" start
  "$SCRIPTS_DIR/redis.sh" start
  "$SCRIPTS_DIR/kafka.sh" start
  if ! ldconfig -p 2>/dev/null | grep -q 'libblas\.so\.3 '; then
    apt_install libopenblas0-pthread
  fi
  if [[ -x "$VENV_PY" ]] && "$VENV_PY" -c 'import pyspark' >/dev/null 2>&1; then
    "$SCRIPTS_DIR/spark-kafka-jars.sh" >/dev/null
    "$SCRIPTS_DIR/spark.sh" up
  else
    log "pyspark not importable with $VENV_PY: skipping the Spark Kafka jars"
  fi
  log "all services up in $((SECONDS - t0))s"
}

cmd_down() {
  local rc=0
  "$SCRIPTS_DIR/spark.sh" down || rc=1
  "$SCRIPTS_DIR/kafka.sh" stop || rc=1
  "$SCRIPTS_DIR/redis.sh" stop || rc=1
  "$SCRIPTS_DIR/postgres.sh" stop || rc=1
  return $rc
}

cmd_status() {
  local rc=0
  "$SCRIPTS_DIR/postgres.sh" status || rc=3
  "$SCRIPTS_DIR/redis.sh" status || rc=3
  "$SCRIPTS_DIR/kafka.sh" status || rc=3
  "$SCRIPTS_DIR/spark.sh" status || rc=3
  return $rc
}

cmd_env() {
  local redis jars_dir=""
  redis="$("$SCRIPTS_DIR/redis.sh" url "")"
  redis="${redis%/*}"
  if [[ -x "$VENV_PY" ]] && "$VENV_PY" -c 'import pyspark' >/dev/null 2>&1; then
    # resolves the jars on first use (slow once), cached afterwards
    jars_dir="$("$SCRIPTS_DIR/spark-kafka-jars.sh")"
  fi
  cat <<EOF
export RECFLOW_DATABASE_URL=$("$SCRIPTS_DIR/postgres.sh" url recflow)
export RECFLOW_TEST_DATABASE_URL=$("$SCRIPTS_DIR/postgres.sh" url recflow_test)
export RECFLOW_BROKER_URL=$redis/0
export RECFLOW_RESULT_BACKEND=$redis/1
export RECFLOW_REDIS_URL=$redis/2
export RECFLOW_KAFKA_BOOTSTRAP_SERVERS=$("$SCRIPTS_DIR/kafka.sh" bootstrap)
export RECFLOW_SPARK_MASTER=$("$SCRIPTS_DIR/spark.sh" url)
EOF
  if [[ -n "$jars_dir" ]]; then
    echo "export RECFLOW_SPARK_JARS_DIR=$jars_dir"
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 up|down|status|env" >&2
    exit 2
    ;;
esac
