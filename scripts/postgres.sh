#!/usr/bin/env bash
# Local PostgreSQL for Recflow (no Docker): own cluster under the services dir.
#
#   scripts/postgres.sh start    install (Debian `postgresql`) if needed, init, start, create role/dbs
#   scripts/postgres.sh stop     stop the cluster
#   scripts/postgres.sh status   exit 0 when it answers, 3 otherwise
#   scripts/postgres.sh url [DB] print the SQLAlchemy URL (default DB: recflow)
#
# Env: RECFLOW_PG_PORT (54320), RECFLOW_SERVICES_DIR, PG_BIN (dir with initdb/pg_ctl).
# Role `recflow` / password `recflow`, databases `recflow` and `recflow_test`.
set -euo pipefail
SERVICE_NAME=postgres
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

PG_PORT="${RECFLOW_PG_PORT:-54320}"
PG_HOST=127.0.0.1
PG_USER=recflow
PG_PASSWORD=recflow
PG_DATABASES=(recflow recflow_test)

# Postgres state lives in $SERVICES_DIR/postgres. When running as root and the
# `postgres` user cannot reach that path (e.g. a checkout under /root), the
# cluster goes to /var/tmp/recflow-postgres-<hash> and $SERVICES_DIR/postgres
# becomes a symlink to it.
set_pg_paths() {
  PG_ROOT="$SERVICES_DIR/postgres"
  if [[ -L "$PG_ROOT" ]]; then
    PG_ROOT="$(readlink -f "$PG_ROOT")"
  fi
  PG_DATA="$PG_ROOT/data"
  PG_RUN="$PG_ROOT/run"
  PG_LOG="$PG_ROOT/postgres.log"
}
set_pg_paths

# Directory holding initdb/pg_ctl: $PG_BIN, else the newest
# /usr/lib/postgresql/<ver>/bin, else wherever initdb is on PATH.
find_pg_bin() {
  if [[ -n "${PG_BIN:-}" && -x "$PG_BIN/pg_ctl" ]]; then
    echo "$PG_BIN"
    return 0
  fi
  local d
  d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
    echo "$d"
    return 0
  fi
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  return 1
}

ensure_installed() {
  if ! PG_BIN="$(find_pg_bin)"; then
    apt_install postgresql
    PG_BIN="$(find_pg_bin)" || die "postgresql installed but initdb/pg_ctl not found"
  fi
  export PG_BIN
}

# Postgres refuses to run as root: when root, run its tools as the `postgres` user.
if [[ $EUID -eq 0 ]]; then
  PG_OS_USER=postgres
else
  PG_OS_USER="$(id -un)"
fi

as_pg() {
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    (cd / && "$@")
  fi
}

psql_admin() {
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -U postgres -d postgres "$@"
}

is_ready() {
  "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" -t 2
}

server_running() {
  [[ -f "$PG_DATA/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

init_cluster() {
  if [[ $EUID -eq 0 ]]; then
    id -u "$PG_OS_USER" >/dev/null 2>&1 || die "OS user '$PG_OS_USER' missing (normally created by the postgresql package)"
  fi
  mkdir -p "$SERVICES_DIR"
  if [[ $EUID -eq 0 && ! -e "$SERVICES_DIR/postgres" ]] && ! as_pg test -x "$SERVICES_DIR"; then
    local alt
    alt="/var/tmp/recflow-postgres-$(printf '%s' "$SERVICES_DIR" | md5sum | cut -c1-12)"
    log "user '$PG_OS_USER' cannot reach $SERVICES_DIR; keeping the cluster in $alt (symlinked)"
    mkdir -p "$alt"
    ln -sfn "$alt" "$SERVICES_DIR/postgres"
    set_pg_paths
  fi
  mkdir -p "$PG_ROOT"
  if [[ $EUID -eq 0 ]]; then
    chown "$PG_OS_USER:" "$PG_ROOT"
  fi
  chmod 700 "$PG_ROOT"
  as_pg test -w "$PG_ROOT" ||
    die "user '$PG_OS_USER' cannot write $PG_ROOT (a parent directory is not traversable?); set RECFLOW_SERVICES_DIR elsewhere"
  as_pg mkdir -p "$PG_RUN"
  if [[ -f "$PG_DATA/PG_VERSION" ]]; then
    local have want
    have="$(cat "$PG_DATA/PG_VERSION")"
    want="$("$PG_BIN/pg_ctl" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')"
    [[ "$have" == "$want" ]] ||
      die "cluster in $PG_DATA is PostgreSQL $have but binaries are $want; remove $PG_DATA to re-create it"
    return 0
  fi
  log "initialising cluster in $PG_DATA (binaries: $PG_BIN)"
  rm -rf "$PG_DATA"
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >"$PG_ROOT/initdb.log" 2>&1 || {
    show_log_tail "$PG_ROOT/initdb.log"
    die "initdb failed"
  }
  as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null <<'EOF'

# --- recflow local dev/test settings ---
max_connections = 200
shared_buffers = 128MB
synchronous_commit = off
password_encryption = scram-sha-256
log_line_prefix = '%m [%p] %q%u@%d '
EOF
}

ensure_role_and_dbs() {
  psql_admin <<EOF
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD' CREATEDB;
  ELSE
    ALTER ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD' CREATEDB;
  END IF;
END
\$\$;
EOF
  local db
  for db in "${PG_DATABASES[@]}"; do
    if [[ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]]; then
      log "creating database $db"
      psql_admin -c "CREATE DATABASE $db OWNER $PG_USER"
    fi
  done
}

cmd_start() {
  ensure_installed
  init_cluster
  if server_running; then
    if is_ready; then
      ensure_role_and_dbs
      log "already running on $PG_HOST:$PG_PORT"
      return 0
    fi
  else
    if port_open "$PG_HOST" "$PG_PORT"; then
      die "port $PG_PORT is taken by another process; set RECFLOW_PG_PORT"
    fi
    log "starting on $PG_HOST:$PG_PORT (log: $PG_LOG)"
    # pg_ctl -l writes as the postgres user: the log lives in its own dir.
    as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -s \
      -o "-p $PG_PORT -k $PG_RUN -c listen_addresses=$PG_HOST" >/dev/null 2>&1 || {
      show_log_tail "$PG_LOG"
      die "pg_ctl start failed"
    }
  fi
  wait_until "postgres answering on $PG_HOST:$PG_PORT" "$PG_LOG" is_ready
  ensure_role_and_dbs
  log "ready: $(cmd_url)"
}

cmd_stop() {
  PG_BIN="$(find_pg_bin)" || {
    log "postgresql not installed; nothing to stop"
    return 0
  }
  if server_running; then
    log "stopping"
    as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 -s ||
      die "pg_ctl stop failed"
  else
    log "not running"
  fi
}

cmd_status() {
  PG_BIN="$(find_pg_bin)" || {
    echo "postgres: not installed"
    return 3
  }
  if server_running && is_ready; then
    echo "postgres: running on $PG_HOST:$PG_PORT (data: $PG_DATA)"
  else
    echo "postgres: stopped"
    return 3
  fi
}

cmd_url() {
  echo "postgresql+psycopg://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/${1:-recflow}"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop && cmd_start ;;
  status) cmd_status ;;
  url) cmd_url "${2:-}" ;;
  *)
    echo "usage: $0 start|stop|restart|status|url [DB]" >&2
    exit 2
    ;;
esac
