#!/usr/bin/env bash
# Set up ./.venv from the repo's files, then run the whole test suite:
# flake8 (with hacking), then every stestr run.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/venv.sh
"$VENV/bin/flake8"
"$VENV/bin/stestr" run "$@"
# One plain closing line for whoever reads the log.
"$VENV/bin/stestr" last 2>&1 | awk '
    /Passed:/ {p=$NF} /Failed:/ {f=$NF} /Skipped:/ {s=$NF}
    END {printf "tests: %d passed, %d failed, %d skipped\n", p, f, s}'
