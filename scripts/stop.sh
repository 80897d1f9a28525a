#!/usr/bin/env bash
# Stop what `make demo` / `make demo-detached` started: the dashboard
# (daphne), the simulator and the local ZooKeeper.
#
#   scripts/stop.sh [--keep-zookeeper]
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

stop_pidfile daphne var/daphne.pid daphne
stop_pidfile simulator var/simulator.pid simulate
[[ ${1:-} == --keep-zookeeper ]] || stop_zookeeper
