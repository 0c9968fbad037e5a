#!/usr/bin/env bash
# Set up ./.venv from the repo's files, then run the whole test suite:
# flake8 (with hacking), one stestr run per side (tools/test-runs.sh), the
# documentation and release notes builds (tools/build-docs.sh), then the
# end-to-end tier on the one-machine cloud where it can run.
set -euo pipefail
cd "$(dirname "$0")/.."
# Commands the tests run (bindep.txt's "test" profile): Nova builds config
# drives with genisoimage.
if ! command -v genisoimage >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing genisoimage (apt-get) ..." >&2
        apt-get update -q >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                --no-install-recommends genisoimage >/dev/null
    else
        echo "genisoimage is missing and only root can install it: the" \
            "config drive tests will fail (apt-get install genisoimage)" >&2
    fi
fi
. tools/venv.sh
# .cloud/ (tools/cloud/cloud.sh) holds a running cloud's state, virtualenvs
# included: not this project's source.
"$VENV/bin/flake8" --extend-exclude .cloud

# The unit and functional tests (the same runs as tox -e py3).
status=0
PATH="$VENV/bin:$PATH" tools/test-runs.sh "$@" || status=1
mapfile -t runs < <(tools/test-runs.sh --names)

# The documentation and the release notes, warnings as errors (the same
# builds as tox -e docs and tox -e releasenotes).
if [ $# -eq 0 ]; then
    echo "== docs and release notes"
    PATH="$VENV/bin:$PATH" tools/build-docs.sh || status=1
fi

# The end-to-end tier (tests/integration/): the operator's openstack
# commands against a real one-machine cloud (tools/cloud/cloud.sh), which
# needs root to install and start MariaDB and RabbitMQ. A cloud already
# running is used and left running; one started here is stopped after.
integration_skip() {
    echo "== integration tests skipped: $1; to run them: sudo" \
        "tools/cloud/cloud.sh up && $VENV/bin/stestr --repo-url" \
        ".stestr-runs/integration --test-path ./tests/integration" \
        "--top-dir ./tests/integration run --serial"
}
if [ -n "${SXM_SKIP_INTEGRATION:-}" ]; then
    integration_skip "SXM_SKIP_INTEGRATION is set"
elif [ "$(id -u)" != 0 ] && \
        ! tools/cloud/cloud.sh status >/dev/null 2>&1; then
    integration_skip "the cloud needs root (Debian packages, services)"
elif ! command -v apt-get >/dev/null && \
        ! command -v mariadbd >/dev/null; then
    integration_skip "no apt-get to install MariaDB and RabbitMQ"
else
    echo "== integration tests (./tests/integration)"
    mkdir -p .stestr-runs/integration
    stestr=("$VENV/bin/stestr" --repo-url .stestr-runs/integration
            --test-path ./tests/integration --top-dir ./tests/integration)
    [ -d .stestr-runs/integration/.stestr ] || "${stestr[@]}" init >/dev/null
    if [ $# -gt 0 ] && \
            [ -z "$("${stestr[@]}" list "$@" 2>/dev/null)" ]; then
        echo "(no test of this run matches $*)"
    else
        started=
        tools/cloud/cloud.sh status >/dev/null 2>&1 || started=1
        if tools/cloud/cloud.sh up; then
            runs+=(integration)
            "${stestr[@]}" run --serial "$@" || status=1
        else
            echo "== integration tests: the cloud did not come up" \
                "(logs: .cloud/logs/)"
            status=1
        fi
        [ -z "$started" ] || tools/cloud/cloud.sh down || status=1
    fi
fi

# One plain closing line for whoever reads the log, over every run.
for name in "${runs[@]}"; do
    "$VENV/bin/stestr" --repo-url ".stestr-runs/$name" last 2>&1 || true
done | awk '
    /Passed:/ {p+=$NF} /Failed:/ {f+=$NF} /Skipped:/ {s+=$NF}
    END {printf "tests: %d passed, %d failed, %d skipped\n", p, f, s}'
exit $status
