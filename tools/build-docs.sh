#!/usr/bin/env bash
# Build the documentation and the release notes with warnings as errors:
# what tox -e docs and tox -e releasenotes run. Arguments choose the
# builds: docs, releasenotes (default both). Runs the sphinx-build found
# on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
builds=("$@")
[ $# -gt 0 ] || builds=(docs releasenotes)
for build in "${builds[@]}"; do
    case $build in
    docs)
        rm -rf doc/build
        sphinx-build -W --keep-going -b html -d doc/build/doctrees \
            doc/source doc/build/html ;;
    releasenotes)
        # reno reads the notes from git: committed or staged ones only (a
        # note git does not know yet is left out without a warning).
        reno lint
        rm -rf releasenotes/build
        sphinx-build -a -E -W --keep-going -b html \
            -d releasenotes/build/doctrees releasenotes/source \
            releasenotes/build/html ;;
    *)
        echo "usage: $0 [docs] [releasenotes]" >&2; exit 2 ;;
    esac
done
