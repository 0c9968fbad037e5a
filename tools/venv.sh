# Sourced by the other tools: makes ./.venv (or $VENV) from the repo's own
# files, pinned by upper-constraints.txt, and reuses it while they are
# unchanged.
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
stamp=$(cat requirements.txt test-requirements.txt upper-constraints.txt \
    setup.cfg | sha256sum | cut -c1-16)
if [ ! -x "$VENV/bin/python" ] || \
        [ "$(cat "$VENV/.sxm-stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "Setting up $VENV with $PYTHON ..." >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q -c upper-constraints.txt setuptools wheel
    "$VENV/bin/pip" install -q -c upper-constraints.txt \
        -r requirements.txt -r test-requirements.txt
    "$VENV/bin/pip" install -q -c upper-constraints.txt --no-build-isolation \
        -e .
    echo "$stamp" > "$VENV/.sxm-stamp"
fi
