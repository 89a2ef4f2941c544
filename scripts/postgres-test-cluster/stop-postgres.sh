#!/usr/bin/env bash
# stop-postgres.sh - stop the cluster start-postgres.sh started, and remove its directory.
# Only that cluster is stopped (pg_ctl on its data directory); nothing is killed by name.
set -uo pipefail
BASE_FILE=${PG_TEST_BASE_FILE:-/tmp/reflow-pg-test.base}
[ -s "$BASE_FILE" ] || { echo "[stop-postgres] no cluster recorded in $BASE_FILE"; exit 0; }
BASE=$(cat "$BASE_FILE")
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if [ -d "$BASE/data" ]; then
    runuser -u postgres -- "$BIN/pg_ctl" -D "$BASE/data" -m fast -w stop > /dev/null 2>&1 || true
fi
case "$BASE" in /tmp/reflow-pg-test.*) rm -rf "$BASE" ;; esac
rm -f "$BASE_FILE"
echo "[stop-postgres] stopped $BASE"
