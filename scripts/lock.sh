#!/usr/bin/env bash
# Refresh requirements/constraints.txt, the tested set of every package the
# project and its test tools install: `make lock`. It resolves pyproject.toml's
# ranges afresh in a throwaway virtualenv, so a lock is never edited by hand.
# scripts/bootstrap.sh installs with `-c requirements/constraints.txt`, so a
# fresh machine gets exactly what the suite passed with.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

PYTHON=${PYTHON:-python3}
OUT=requirements/constraints.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say "Resolving the project's dependencies afresh in $work"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check '.[test]'

mkdir -p requirements
{
  printf '# The tested set: made by `make lock` (scripts/lock.sh) with %s.\n' \
    "$("$work/venv/bin/python" --version 2>&1)"
  printf '# scripts/bootstrap.sh installs with -c this file; do not edit by hand.\n'
  "$work/venv/bin/python" -m pip freeze --disable-pip-version-check --exclude-editable |
    grep -v -i '^stormui[=@ ]' | LC_ALL=C sort -f
} >"$OUT.new"
mv "$OUT.new" "$OUT"
say "Wrote $OUT ($(grep -vc '^#' "$OUT") packages)."
