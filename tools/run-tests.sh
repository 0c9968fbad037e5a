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

# name, test path; each run keeps its stestr repository in
# .stestr-runs/<name>.
runs=("core ./tests" "nova ./nova_sxm/tests")
[ -d cinder_sxm/tests ] && runs+=("cinder ./cinder_sxm/tests")

status=0
for run in "${runs[@]}"; do
    read -r name path <<<"$run"
    echo "== $name tests ($path)"
    mkdir -p ".stestr-runs/$name"
    stestr=("$VENV/bin/stestr" --repo-url ".stestr-runs/$name"
            --test-path "$path" --top-dir ./)
    [ -d ".stestr-runs/$name/.stestr" ] || "${stestr[@]}" init >/dev/null
    # A filter given on the command line may select nothing in this run.
    if [ $# -gt 0 ] && [ -z "$("${stestr[@]}" list "$@" 2>/dev/null)" ]; then
        echo "(no test of this run matches $*)"
        continue
    fi
    "${stestr[@]}" run "$@" || status=1
done

# One plain closing line for whoever reads the log, over every run.
for run in "${runs[@]}"; do
    read -r name path <<<"$run"
    "$VENV/bin/stestr" --repo-url ".stestr-runs/$name" last 2>&1 || true
done | awk '
    /Passed:/ {p+=$NF} /Failed:/ {f+=$NF} /Skipped:/ {s+=$NF}
    END {printf "tests: %d passed, %d failed, %d skipped\n", p, f, s}'
exit $status
