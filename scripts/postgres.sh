#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests (CI runs them against SQLite and PostgreSQL).
#   bash scripts/postgres.sh start   # installs PostgreSQL with apt if missing, starts it, prints its SQLAlchemy URL
#   bash scripts/postgres.sh stop
# The server listens on 127.0.0.1 only, trusts local connections, and lives in $PGHOME (default /tmp/transferlab-pg).
set -euo pipefail
PGHOME=${PGHOME:-/tmp/transferlab-pg}
PORT=${PGPORT:-54329}

as_owner() {  # initdb and postgres refuse to run as root: run them as the postgres system user then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

case "${1:-start}" in
  start)
    BIN=$(find_bin)
    if [ -z "$BIN" ]; then
      SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
      $SUDO apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
      BIN=$(find_bin)
    fi
    if [ -f "$PGHOME/data/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$PGHOME/data" status >/dev/null 2>&1; then
      echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"; exit 0
    fi
    rm -rf "$PGHOME"; mkdir -p "$PGHOME"
    [ "$(id -u)" = 0 ] && chown postgres "$PGHOME"
    as_owner "$BIN/initdb" -D "$PGHOME/data" -A trust -U postgres -E UTF8 >/dev/null
    as_owner "$BIN/pg_ctl" -D "$PGHOME/data" -l "$PGHOME/server.log" -w \
      -o "-p $PORT -k $PGHOME -c listen_addresses=127.0.0.1" start >/dev/null
    echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
    ;;
  stop)
    BIN=$(find_bin)
    [ -n "$BIN" ] && [ -d "$PGHOME/data" ] && as_owner "$BIN/pg_ctl" -D "$PGHOME/data" -m fast stop >/dev/null || true
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
