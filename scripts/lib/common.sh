# Shared helpers for the scripts/*.sh service scripts. Source it, don't run it.
# shellcheck shell=bash disable=SC2034  # variables are used by the sourcing scripts

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SCRIPTS_DIR="$REPO/scripts"
SERVICES_DIR="${RECFLOW_SERVICES_DIR:-$REPO/var/services}"
CACHE_DIR="${RECFLOW_CACHE_DIR:-$HOME/.cache/recflow}"
VENV_PY="${RECFLOW_PYTHON:-$REPO/.venv/bin/python}"
# seconds to wait for a service to answer
WAIT_TIMEOUT="${RECFLOW_WAIT_TIMEOUT:-60}"
SERVICE_NAME="${SERVICE_NAME:-service}"

log() { printf '[%s] %s\n' "$SERVICE_NAME" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "$SERVICE_NAME" "$*" >&2
  exit 1
}

# Print the last lines of a log file to stderr (if it exists).
show_log_tail() {
  local file="$1" lines="${2:-40}"
  if [[ -f "$file" ]]; then
    printf -- '----- last %s lines of %s -----\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" >&2 || true
    printf -- '----- end of log -----\n' >&2
  else
    printf '(no log file at %s)\n' "$file" >&2
  fi
}

# Run a command as root (directly, or through sudo when not root).
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run: $*"
  fi
}

# Install Debian packages; runs `apt-get update` first when the package lists
# are empty, and once more if the install fails (stale lists).
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"
  log "installing Debian packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  # `apt-get update` once before the first install of a run (a stamp younger than an hour).
  local stamp="${TMPDIR:-/tmp}/recflow-apt-updated"
  if [ -z "$(find "$stamp" -mmin -60 2>/dev/null)" ]; then
    as_root apt-get update -q >&2
    touch "$stamp"
  fi
  as_root apt-get install -y -q --no-install-recommends "$@" >&2
}

# True when something accepts TCP connections on host:port.
port_open() {
  local host="$1" port="$2"
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" >/dev/null 2>&1
}

# True when process PID exists and is not a zombie (an exited daemon whose
# parent has not reaped it yet still answers kill -0).
proc_alive() {
  local pid="$1" state
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/stat" ]]; then
    state="$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ "$state" != Z && "$state" != X ]] || return 1
  fi
  return 0
}

# True when the process in the pidfile is alive.
pid_alive() {
  local pidfile="$1" pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(head -n1 "$pidfile" 2>/dev/null | tr -dc '0-9')"
  [[ -n "$pid" ]] && proc_alive "$pid"
}

# wait_until DESCRIPTION LOGFILE COMMAND...: retry COMMAND (every 0.5 s) until
# it succeeds or WAIT_TIMEOUT seconds pass; on timeout show the log and fail.
wait_until() {
  local what="$1" logfile="$2"
  shift 2
  local deadline=$((SECONDS + WAIT_TIMEOUT))
  while ! "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      printf '[%s] ERROR: %s did not happen within %ss\n' "$SERVICE_NAME" "$what" "$WAIT_TIMEOUT" >&2
      show_log_tail "$logfile"
      exit 1
    fi
    sleep 0.5
  done
}

# Stop the process in PIDFILE: SIGTERM, wait up to TIMEOUT s, then SIGKILL.
stop_pidfile() {
  local pidfile="$1" timeout="${2:-30}" pid
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(head -n1 "$pidfile" | tr -dc '0-9')"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + timeout))
  while proc_alive "$pid"; do
    if ((SECONDS >= deadline)); then
      log "pid $pid still running after ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.3
  done
  rm -f "$pidfile"
}
