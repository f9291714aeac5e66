#!/usr/bin/env bash
# Runs every test, with a private PostgreSQL server started for them and stopped after, also when
# the run fails or is interrupted (Ctrl-C, kill). pytest's exit code 5 ("no tests collected") is a
# failure here, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
# Lint and format first: seconds, and a finding fails the run before half an hour of tests.
.venv/bin/ruff check . || { echo "ruff found problems: 'make lint' fixes what is safe"; exit 1; }
.venv/bin/ruff format --check . || { echo "files not formatted: run 'make lint'"; exit 1; }
source scripts/test-postgres.sh
pg_stale_cleanup
pg_start || exit 1
trap pg_stop EXIT
# pytest runs in the background so that a signal reaches these traps at once (bash runs a trap
# only after a foreground child has exited); each passes the signal on and stops PostgreSQL.
# With job control on (set -m) the background pytest keeps SIGINT as it is: without it bash starts
# background jobs with SIGINT ignored, and every process the tests start would inherit that (a
# test's Ctrl-C to `mlworkshop logs --follow` was ignored).
set -m
.venv/bin/python -m pytest -ra --durations=15 "$@" &
pytest_pid=$!
set +m
trap 'kill -INT $pytest_pid 2>/dev/null; wait $pytest_pid; exit 130' INT
trap 'kill -TERM $pytest_pid 2>/dev/null; wait $pytest_pid; exit 143' TERM
wait $pytest_pid
rc=$?
[ $rc -eq 5 ] && { echo "no tests were collected: that is a failure"; exit 1; }
exit $rc
