#!/usr/bin/env bash
# The unit and functional tests: one stestr run per side, each with its own
# stestr repository under .stestr-runs/<prefix><name>. Nova and Cinder
# register overlapping options in oslo.config's global CONF, so their tests
# cannot share a process with each other. Arguments are stestr run's (a
# filter, --serial, ...). Runs the stestr found on PATH (tools/run-tests.sh
# puts its venv first; tox its env), under $PYTHON if set (tox -e cover).
# SXM_RUN_PREFIX keeps the repositories of several interpreters apart.
set -uo pipefail
cd "$(dirname "$0")/.."
prefix=${SXM_RUN_PREFIX:-}
runs=("core ./tests" "nova ./nova_sxm/tests" "cinder ./cinder_sxm/tests")
# --names: the runs' names, for a caller that reads their repositories.
if [ "${1:-}" = --names ]; then
    for run in "${runs[@]}"; do
        echo "${run%% *}"
    done
    exit 0
fi
status=0
for run in "${runs[@]}"; do
    read -r name path <<<"$run"
    repo=.stestr-runs/$prefix$name
    echo "== $name tests ($path)"
    mkdir -p "$repo"
    stestr=(stestr --repo-url "$repo" --test-path "$path" --top-dir ./)
    [ -d "$repo/.stestr" ] || "${stestr[@]}" init >/dev/null
    # A filter given on the command line may select nothing in this run.
    selected=all
    [ $# -eq 0 ] || [ "${1#-}" != "$1" ] ||
        selected=$("${stestr[@]}" list "$@" 2>/dev/null)
    if [ -z "$selected" ]; then
        echo "(no test of this run matches $*)"
        continue
    fi
    "${stestr[@]}" run "$@" || status=1
done
exit $status
