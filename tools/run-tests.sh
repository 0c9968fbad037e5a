#!/usr/bin/env bash
# Set up ./.venv from the repo's files, then run the whole test suite:
# flake8 (with hacking), then one stestr run per side. Nova and Cinder
# register overlapping options in oslo.config's global CONF, so their
# tests cannot share a process with each other: each side has its own run
# (and its own stestr repository).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/venv.sh
"$VENV/bin/flake8"

# name, stestr repository, test path
runs=(
    "core .stestr ./tests"
    "nova .stestr-nova ./nova_sxm/tests"
)
[ -d cinder_sxm/tests ] && runs+=("cinder .stestr-cinder ./cinder_sxm/tests")

status=0
for run in "${runs[@]}"; do
    read -r name repo path <<<"$run"
    echo "== $name tests ($path)"
    "$VENV/bin/stestr" --repo-url "$repo" --test-path "$path" --top-dir ./ \
        run "$@" || status=1
done

# One plain closing line for whoever reads the log, over every run.
for run in "${runs[@]}"; do
    read -r name repo path <<<"$run"
    "$VENV/bin/stestr" --repo-url "$repo" last 2>&1 || true
done | awk '
    /Passed:/ {p+=$NF} /Failed:/ {f+=$NF} /Skipped:/ {s+=$NF}
    END {printf "tests: %d passed, %d failed, %d skipped\n", p, f, s}'
exit $status
