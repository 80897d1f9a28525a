# Helpers shared by the scripts here; source it from the repo root.
# shellcheck shell=bash

PY=.venv/bin/python
ZK_PIDFILE=var/zookeeper.pid

say() { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }

# pidfile_pid FILE PATTERN: the pid in FILE if that process is alive and its
# command line contains PATTERN (so a recycled pid is never taken for ours).
pidfile_pid() {
  local pid
  pid=$(head -n 1 "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
  printf '%s\n' "$pid"
}

# running PID: true while PID runs (a zombie, whose command line is empty,
# has stopped).
running() {
  [[ -n $(tr -d '\0' 2>/dev/null <"/proc/$1/cmdline") ]]
}

# stop_pidfile NAME FILE PATTERN: stop the process (and its process group:
# demo.sh starts each one in a session of its own) named in FILE, SIGTERM
# first, SIGKILL after ten seconds; then remove FILE.
stop_pidfile() {
  local name=$1 file=$2 pattern=$3 pid i
  if pid=$(pidfile_pid "$file" "$pattern"); then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      running "$pid" || break
      sleep 0.1
    done
    if running "$pid"; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    say "Stopped $name (pid $pid)."
  fi
  rm -f "$file"
}

stop_zookeeper() {
  stop_pidfile ZooKeeper "$ZK_PIDFILE" org.apache.zookeeper.server.ZooKeeperServerMain
}

# port_free PORT: true if nothing listens on 127.0.0.1:PORT.
port_free() {
  "$PY" - "$1" <<'EOF'
import socket, sys
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
    except OSError:
        sys.exit(1)
EOF
}

# free_port: a port free on 127.0.0.1 right now.
free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_answers PORT: true if something on 127.0.0.1:PORT answers HTTP at
# all (any status: the page itself is not the scripts' business).
http_answers() {
  local status=
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  read -r -t 10 status <&3 || true
  exec 3<&-
  [[ $status == HTTP/* ]]
}
