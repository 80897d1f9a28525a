#!/usr/bin/env bash
# Set up a checkout: the virtualenv in .venv with the project and its test
# tools, and the Debian packages that the demo and the tests need.
#
#   scripts/bootstrap.sh [zookeeper] [graphviz] [chromium] [redis] [postgresql]
#
# With no argument only the virtualenv is made. Each step is skipped when it
# is already done, so a second run takes seconds: pip runs only when
# pyproject.toml or requirements/constraints.txt changed since the last
# successful install, apt only when a program is missing. pip installs the
# locked set (requirements/constraints.txt, refreshed by `make lock`), so
# every machine gets what the suite passed with.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

VENV=.venv
STAMP="$VENV/.installed"

# --- Debian packages -------------------------------------------------------

# Map what is wanted to the packages that are missing. The checks look for
# the files the demo and the tests use, not for the package names, so a
# ZooKeeper or Chromium installed some other way counts too.
missing=()
for want in "$@"; do
  case "$want" in
    zookeeper)
      command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
      test -f /usr/share/java/zookeeper.jar || missing+=(zookeeper)
      ;;
    graphviz)
      # the storm page's graph is laid out by dot (stormui/graph.py says why)
      command -v dot >/dev/null 2>&1 || missing+=(graphviz)
      ;;
    chromium)
      test -x /usr/bin/chromium || missing+=(chromium fonts-liberation)
      ;;
    redis)
      command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
      ;;
    postgresql)
      compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
      ;;
    *)
      say "usage: $0 [zookeeper] [graphviz] [chromium] [redis] [postgresql]" >&2
      exit 2
      ;;
  esac
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    warn "not root: cannot install ${missing[*]}; install them with apt-get" \
      "(the demo falls back to the in-memory store; tests that need them fail)."
  elif ! command -v apt-get >/dev/null 2>&1; then
    warn "apt-get not found: cannot install ${missing[*]}; install them by hand" \
      "(the demo falls back to the in-memory store; tests that need them fail)."
  else
    mkdir -p var
    say "Installing Debian packages: ${missing[*]} (log: var/apt.log)"
    # apt's output names its mirrors' addresses: keep it in the log, so
    # that the demo's first URL on the terminal is the dashboard's.
    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-q -y -o DPkg::Lock::Timeout=300)
    if apt-get "${apt_opts[@]}" update >var/apt.log 2>&1 &&
      apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}" \
        >>var/apt.log 2>&1; then
      say "Installed ${missing[*]}."
    else
      warn "apt-get failed to install ${missing[*]} (see var/apt.log)" \
        "(the demo falls back to the in-memory store; tests that need them fail)."
    fi
  fi
fi

# --- virtualenv ------------------------------------------------------------

PYTHON=${PYTHON:-python3}

# A venv whose interpreter is gone (made on another machine, or by a Python
# since removed) cannot be repaired: make it again.
if [[ -e $VENV ]] && ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
  say "Recreating $VENV: its Python no longer runs."
  rm -rf "$VENV"
fi

if [[ ! -e $VENV ]]; then
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    say "ERROR: stormui needs Python 3.11 or newer; '$PYTHON' is" \
      "$("$PYTHON" --version 2>&1 || echo missing). Set PYTHON=/path/to/python3.11." >&2
    exit 1
  fi
  say "Creating $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi

# The stamp holds the hash of pyproject.toml and the lock as of the last good
# install.
LOCK=requirements/constraints.txt
want_stamp=$(cat pyproject.toml "$LOCK" | sha256sum | cut -d' ' -f1)
if [[ ! -f $STAMP || $(<"$STAMP") != "$want_stamp" ]]; then
  say "Installing the project and its test tools into $VENV (pip install -c $LOCK -e '.[test]')"
  rm -f "$STAMP"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$LOCK" -e '.[test]'
  printf '%s\n' "$want_stamp" >"$STAMP"
fi
