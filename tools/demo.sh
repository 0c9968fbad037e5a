#!/usr/bin/env bash
# Set up ./.venv from the repo's files, then run the demo on the embedded
# XAPI simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/venv.sh
exec "$VENV/bin/xapi-sim" demo "$@"
