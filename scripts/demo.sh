#!/usr/bin/env bash
# Run the dashboard on this machine against a local ZooKeeper fed by the
# simulator; `make demo` runs it after scripts/bootstrap.sh.
#
#   scripts/demo.sh             stay in the foreground; Ctrl-C stops it all
#   scripts/demo.sh --detach    leave it running; `make stop` stops it
#
# Environment: PORT (dashboard, default 8000 if free, else a free port),
# ZK_PORT (ZooKeeper, default 2181 if free, else a free port),
# STORMUI_STORE=memory (skip ZooKeeper: the server simulates in-process),
# STORMUI_ZK_ROOT, and every other setting in .env.example.
#
# Nothing here prints an http:// address before the dashboard's: scripts
# and people take the first one as the place to go.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

detach=false
case "${1:-}" in
  "") ;;
  --detach) detach=true ;;
  *)
    say "usage: $0 [--detach]" >&2
    exit 2
    ;;
esac

mkdir -p var
LOG=var/demo.log
: >"$LOG"

# run DESCRIPTION COMMAND...: run quietly, logging to var/demo.log; on
# failure show the log's tail and stop.
run() {
  local what=$1
  shift
  if ! "$@" >>"$LOG" 2>&1; then
    say "ERROR: $what failed; the end of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
  fi
}

# An earlier `make demo-detached` may still run: restart the dashboard and
# the simulator, keep its ZooKeeper.
bash scripts/stop.sh --keep-zookeeper

# A failure, Ctrl-C or the end of a foreground demo stops everything; a
# detached demo disarms this once the dashboard serves.
cleanup() {
  trap - EXIT INT TERM HUP
  say "Stopping..."
  bash scripts/stop.sh
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- ZooKeeper --------------------------------------------------------------

export STORMUI_STORE=${STORMUI_STORE:-zookeeper}
export STORMUI_ZK_ROOT=${STORMUI_ZK_ROOT:-/storm}
store_note=
simulator_pid=

if [[ $STORMUI_STORE == zookeeper ]]; then
  zk=(-m clusterstate.zkserver)
  zk_args=(--data-dir var/zookeeper --pidfile "$ZK_PIDFILE")
  running_zk=$("$PY" "${zk[@]}" status --pidfile "$ZK_PIDFILE" 2>/dev/null) || running_zk=
  if [[ -n ${ZK_PORT:-} ]]; then
    # Asked for a port: a server running elsewhere from an earlier demo
    # must make way.
    if [[ -n $running_zk && $running_zk != "127.0.0.1:$ZK_PORT" ]]; then
      stop_zookeeper
    fi
    zk_args+=(--port "$ZK_PORT")
  elif [[ -z $running_zk ]] && port_free 2181; then
    zk_args+=(--port 2181)
  fi # else: the running one, or a port zkserver picks
  say "Starting ZooKeeper (data in var/zookeeper)..."
  if zk_address=$("$PY" "${zk[@]}" start "${zk_args[@]}" 2>>"$LOG"); then
    export STORMUI_ZK_SERVERS=$zk_address
    store_note="ZooKeeper at $zk_address, root $STORMUI_ZK_ROOT"
  else
    rc=$?
    if ((rc == 3)); then
      warn "ZooKeeper is not installed (apt-get install zookeeper):" \
        "falling back to the in-memory store."
    else
      warn "ZooKeeper did not start (see $LOG and var/zookeeper/zookeeper.log):" \
        "falling back to the in-memory store."
    fi
    STORMUI_STORE=memory
  fi
fi
if [[ $STORMUI_STORE == memory ]]; then
  store_note="the in-memory store, simulated inside the server"
fi

# --- database, simulator, server, admin user ---------------------------------

say "Migrating the database..."
run "manage.py migrate" "$PY" manage.py migrate --noinput

# Each runs in a session of its own, so that a detached demo outlives the
# terminal and stop.sh can stop each with all its children.
if [[ $STORMUI_STORE == zookeeper ]]; then
  setsid "$PY" manage.py simulate </dev/null >var/simulator.log 2>&1 &
  simulator_pid=$!
  echo "$simulator_pid" >var/simulator.pid
fi

if [[ -z ${PORT:-} ]]; then
  if port_free 8000; then PORT=8000; else PORT=$(free_port); fi
fi
# sockets whose browser stopped reading are closed after about 20 s rather than 50
setsid .venv/bin/daphne -b 127.0.0.1 -p "$PORT" --ping-interval 10 --ping-timeout 10 stormui.asgi:application \
  </dev/null >var/daphne.log 2>&1 &
daphne_pid=$!
echo "$daphne_pid" >var/daphne.pid

# The admin user, while the server starts.
PASSWORD_FILE=var/admin-password
new_password=false
if [[ ! -s $PASSWORD_FILE ]]; then
  (umask 077 && "$PY" -c 'import secrets; print(secrets.token_urlsafe(12))' >"$PASSWORD_FILE")
  new_password=true
fi
admin_password=$(<"$PASSWORD_FILE")
if ! out=$(DJANGO_SUPERUSER_USERNAME=admin DJANGO_SUPERUSER_PASSWORD=$admin_password \
  DJANGO_SUPERUSER_EMAIL=admin@localhost "$PY" manage.py createsuperuser --noinput 2>&1); then
  if [[ $out != *"already taken"* && $out != *"already exists"* ]]; then
    printf '%s\n' "$out" >&2
    exit 1
  fi
  if $new_password; then
    # The user is left from a var/ since removed, with its password: make
    # the one printed below the right one.
    run "setting the admin password" env DEMO_ADMIN_PASSWORD="$admin_password" \
      "$PY" manage.py shell -c '
import os
from django.contrib.auth import get_user_model
user = get_user_model().objects.get(username="admin")
user.set_password(os.environ["DEMO_ADMIN_PASSWORD"])
user.save()
'
  fi
fi

say "Waiting for the dashboard on 127.0.0.1:$PORT..."
deadline=$((SECONDS + 120))
until http_answers "$PORT"; do
  if ! running "$daphne_pid" || ((SECONDS > deadline)); then
    say "ERROR: the dashboard did not start; the end of var/daphne.log:" >&2
    tail -n 30 var/daphne.log >&2
    exit 1
  fi
  sleep 0.2
done

if [[ -n $simulator_pid ]] && ! running "$simulator_pid"; then
  warn "the simulator stopped; see var/simulator.log."
fi

url="http://127.0.0.1:$PORT/"
say ""
say "stormui is running: $url"
say "  admin login: admin / $admin_password  (at ${url}accounts/login/)"
say "  data:        $store_note"
say "  logs:        var/daphne.log${simulator_pid:+, var/simulator.log}"
if $detach; then
  trap - EXIT INT TERM HUP
  say "  stop it:     make stop"
  exit 0
fi
say "  stop it:     Ctrl-C (or make stop from another terminal)"

# Stay until daphne exits or Ctrl-C; then stop everything, ZooKeeper too.
wait "$daphne_pid" || true
say "The dashboard exited; see var/daphne.log."
