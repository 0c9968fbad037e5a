# Sourced by the other tools: makes ./.venv (or $VENV) from the repo's own
# files, pinned by upper-constraints.txt, and reuses it while they are
# unchanged.
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
stamp=$(cat requirements.txt test-requirements.txt doc/requirements.txt \
    upper-constraints.txt setup.cfg tools/venv.sh | sha256sum | cut -c1-16)
# Recent tox writes a file .venv naming its last environment: not ours.
[ ! -f "$VENV" ] || rm -f "$VENV"
if [ ! -x "$VENV/bin/python" ] || \
        [ "$(cat "$VENV/.sxm-stamp" 2>/dev/null)" != "$stamp" ]; then
    # A venv that runs is brought up to date, never made again: under
    # sudo, python3.11 may name another interpreter than the one that
    # made it (sudo's secure_path), and "venv" would re-point it there.
    if ! "$VENV/bin/python" -c 'import ensurepip' 2>/dev/null; then
        echo "Setting up $VENV with $PYTHON ..." >&2
        "$PYTHON" -c 'import ensurepip, subprocess' || {
            echo "$PYTHON cannot make a venv: install Python 3.11 with" \
                "its venv module (bindep.txt), or name it in PYTHON=" >&2
            false
        }
        "$PYTHON" -m venv "$VENV"
    else
        echo "Updating $VENV ..." >&2
    fi
    "$VENV/bin/pip" install -q -c upper-constraints.txt setuptools wheel
    "$VENV/bin/pip" install -q -c upper-constraints.txt \
        -r requirements.txt -r test-requirements.txt -r doc/requirements.txt
    "$VENV/bin/pip" install -q -c upper-constraints.txt --no-build-isolation \
        -e .
    # The product's wheel leaves out the simulator and the tests; a
    # development venv imports them from this checkout, and runs the
    # simulator as xapi-sim.
    top=$(pwd -P)
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$top" >"$site/openstack_sxm_checkout.pth"
    printf '#!/bin/sh\nexec "%s" -m xapi_sim.cli "$@"\n' \
        "$(cd "$VENV" && pwd -P)/bin/python" >"$VENV/bin/xapi-sim"
    chmod +x "$VENV/bin/xapi-sim"
    echo "$stamp" > "$VENV/.sxm-stamp"
fi
