#!/usr/bin/env bash
# A private PostgreSQL server for the tests: initdb into a temporary folder, a free loopback port,
# trust authentication, no fsync (test data only). Sourced by scripts/test.sh:
#   pg_start  -> exports MLW_TEST_POSTGRES=postgresql://postgres@127.0.0.1:PORT
#   pg_stop   -> stops the server and removes its folder
# Debian's `postgresql` package provides the binaries (scripts/system-deps.sh installs it). The
# server never runs as root: as root it runs as Debian's `postgres` account.

pg_bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

pg_start() {
  local bindir port as=()
  bindir=$(pg_bindir)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "PostgreSQL is not installed (Debian package postgresql): run 'make system-deps' as root" >&2
    return 1
  fi
  PG_TEST_DIR=$(mktemp -d /tmp/mlw-test-pg.XXXXXX)
  chmod 755 "$PG_TEST_DIR"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$PG_TEST_DIR"
    as=(runuser -u postgres --)
  fi
  port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if ! "${as[@]}" "$bindir/initdb" -D "$PG_TEST_DIR/data" -U postgres -A trust -E UTF8 --no-sync \
      >"$PG_TEST_DIR/initdb.log" 2>&1; then
    echo "initdb failed for the tests' PostgreSQL:" >&2; cat "$PG_TEST_DIR/initdb.log" >&2
    return 1
  fi
  if ! "${as[@]}" "$bindir/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_TEST_DIR -c fsync=off -c max_connections=200" \
      start >/dev/null; then
    echo "the tests' PostgreSQL did not start:" >&2; cat "$PG_TEST_DIR/server.log" >&2
    return 1
  fi
  export MLW_TEST_POSTGRES="postgresql://postgres@127.0.0.1:$port"
  echo "PostgreSQL for the tests: $MLW_TEST_POSTGRES ($PG_TEST_DIR)"
}

pg_stale_cleanup() {
  # A run killed with SIGKILL (no EXIT trap) leaves its folder: remove those whose server is gone.
  local dir pid
  for dir in /tmp/mlw-test-pg.*; do
    [ -d "$dir" ] || continue
    pid=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then continue; fi
    rm -rf "$dir"
  done
}

pg_stop() {
  [ -n "${PG_TEST_DIR:-}" ] && [ -d "$PG_TEST_DIR/data" ] || return 0
  local as=()
  [ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
  "${as[@]}" "$(pg_bindir)/pg_ctl" -D "$PG_TEST_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_TEST_DIR"
}
