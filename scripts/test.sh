#!/usr/bin/env bash
# Runs every test, with a private PostgreSQL server started for them and stopped after.
# pytest's exit code 5 ("no tests collected") is a failure here, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/test-postgres.sh
pg_start || exit 1
trap pg_stop EXIT
.venv/bin/python -m pytest -ra --durations=15 "$@"
rc=$?
[ $rc -eq 5 ] && { echo "no tests were collected: that is a failure"; exit 1; }
exit $rc
