#!/usr/bin/env bash
# The suite's two database lanes, side by side (what `make test` runs after ruff):
#   - the whole suite on SQLite;
#   - every test that touches the database (marked `db` by tests/conftest.py) again on a
#     throwaway PostgreSQL, but for the browser and slow ones: their database use (a login's
#     session, an audit row) is what the other `db` tests run there already.
# Most of the suite waits on events (ZooKeeper, sockets, a browser), so on 2 cores the lanes
# side by side take little longer than the SQLite lane alone: `make test` stays within 15
# minutes. The PostgreSQL lane's output is shown after the SQLite lane's, whole.
# Usage: scripts/test.sh [pytest arguments for both lanes]
set -uo pipefail

cd "$(dirname "$0")/.."
pytest=.venv/bin/pytest

pg_log=$(mktemp -t stormui-postgres-lane.XXXXXX)
trap 'rm -f "$pg_log"' EXIT

STORMUI_TEST_DATABASE=postgres "$pytest" -p no:cacheprovider -m 'db and not browser and not slow' "$@" \
  >"$pg_log" 2>&1 &
pg_pid=$!

"$pytest" "$@"
sqlite_rc=$?

wait "$pg_pid"
pg_rc=$?
echo
echo "==================== PostgreSQL lane (STORMUI_TEST_DATABASE=postgres) ===================="
cat "$pg_log"

# pytest's status 5 means it collected no test: not a failure of the code
status=0
for rc in "$sqlite_rc" "$pg_rc"; do
  if [[ $rc != 0 && $rc != 5 ]]; then
    status=$rc
  fi
done
echo "SQLite lane: exit $sqlite_rc; PostgreSQL lane: exit $pg_rc"
exit "$status"
