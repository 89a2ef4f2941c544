#!/usr/bin/env bash
# start-postgres.sh - start a private PostgreSQL cluster for reflow's tests; print its URL.
# As root: installs Debian's `postgresql` if it is missing, then runs initdb and pg_ctl as
# the unprivileged `postgres` user into $PG_TEST_BASE (a temporary directory by default),
# listening on 127.0.0.1 only, on a free port. A role `reflow` with password `reflow`
# (so that a wrong password can be tested) owns a database `reflow`. The last line
# printed is the URL, postgresql://reflow:reflow@127.0.0.1:PORT/reflow; the directory
# is written to $PG_TEST_BASE_FILE (default /tmp/reflow-pg-test.base) for stop-postgres.sh.
set -euo pipefail

say() { echo "[start-postgres] $*" >&2; }
[ "$(id -u)" -eq 0 ] || { say "must run as root (it runs the server as the postgres user)"; exit 1; }

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    say "installing Debian's postgresql"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } >&2
    BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
id postgres > /dev/null 2>&1 || { say "no 'postgres' user (the package makes it)"; exit 1; }

BASE_FILE=${PG_TEST_BASE_FILE:-/tmp/reflow-pg-test.base}
if [ -s "$BASE_FILE" ] && [ -f "$(cat "$BASE_FILE")/url" ] \
    && runuser -u postgres -- "$BIN/pg_ctl" -D "$(cat "$BASE_FILE")/data" status > /dev/null 2>&1; then
    say "already running"
    cat "$(cat "$BASE_FILE")/url"
    exit 0
fi

BASE=${PG_TEST_BASE:-$(mktemp -d /tmp/reflow-pg-test.XXXXXX)}
mkdir -p "$BASE"
chown postgres: "$BASE"
chmod 700 "$BASE"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

printf 'reflow\n' > "$BASE/pw"
chown postgres: "$BASE/pw"
runuser -u postgres -- "$BIN/initdb" -D "$BASE/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 --no-sync -E UTF8 --locale=C > "$BASE/initdb.log" 2>&1 \
    || { cat "$BASE/initdb.log" >&2; exit 1; }
cat >> "$BASE/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$BASE'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
runuser -u postgres -- "$BIN/pg_ctl" -D "$BASE/data" -l "$BASE/server.log" -w -t 60 start > /dev/null \
    || { cat "$BASE/server.log" >&2; exit 1; }
runuser -u postgres -- "$BIN/psql" -h "$BASE" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -q <<SQL
CREATE ROLE reflow LOGIN PASSWORD 'reflow' CREATEDB;
CREATE DATABASE reflow OWNER reflow;
SQL
URL="postgresql://reflow:reflow@127.0.0.1:$PORT/reflow"
echo "$URL" > "$BASE/url"
echo "$BASE" > "$BASE_FILE"
say "PostgreSQL is up in $BASE (binaries $BIN)"
echo "$URL"
