#!/usr/bin/env bash
# Runs every test. pytest's exit code 5 ("no tests collected") is a failure here, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -ra --durations=15 "$@"
rc=$?
[ $rc -eq 5 ] && { echo "no tests were collected: that is a failure"; exit 1; }
exit $rc
