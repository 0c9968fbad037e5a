#!/usr/bin/env bash
#
# Tempest against the cloud of tools/cloud/cloud.sh.
#
#   tools/cloud/tempest.sh [run] [REGEX ...]  install, configure, run, summary
#   tools/cloud/tempest.sh install            Tempest's venv only
#   tools/cloud/tempest.sh configure          tempest.conf from the cloud
#   tools/cloud/tempest.sh list [REGEX ...]   the tests a run would run
#   tools/cloud/tempest.sh summary            the last run's results again
#
# Without REGEX the tests are those of tools/cloud/tempest-include.txt
# (compute live migration; the volume API, retype and types); with REGEX,
# the tests whose id matches one of them. Either way, never those of
# tools/cloud/tempest-exclude.txt (what XAPI cannot do), which the
# summary lists as EXCL with the reason.
#
# Tempest lives in a venv of its own, $SXM_CLOUD_DIR/tempest/venv
# (default .cloud/tempest/venv), pinned by tempest-requirements.txt and
# upper-constraints.txt; its workspace, tempest.conf, log and results are
# under $SXM_CLOUD_DIR/tempest/. tempest.conf is rewritten before every
# run from the cloud's clouds.yaml and what its APIs say (see
# tempest_cloud.py); it creates a small raw image and two flavors when the
# cloud has none of that name.
#
# Environment:
#   SXM_CLOUD_DIR            the cloud's state directory (.cloud)
#   SXM_TEMPEST_CLOUD        admin cloud of clouds.yaml (sxm-admin)
#   SXM_TEMPEST_CONCURRENCY  test workers (2)
#   SXM_TEMPEST_VOLUME_TYPE  type of the volumes Tempest creates (silver)
#   PYTHON                   interpreter of the venv (python3.11)
#
# Exit status: 0 when no selected test failed, 1 when one did, 2 when
# Tempest could not run (no cloud, no venv, bad configuration).

set -euo pipefail
cd "$(dirname "$0")/../.."

CLOUD_DIR=$(realpath -m "${SXM_CLOUD_DIR:-.cloud}")
TEMPEST_DIR=$CLOUD_DIR/tempest
VENV=$TEMPEST_DIR/venv
WORKSPACE=$TEMPEST_DIR/workspace
CONF=$WORKSPACE/etc/tempest.conf
CLOUDS_YAML=$CLOUD_DIR/clouds.yaml
ADMIN_CLOUD=${SXM_TEMPEST_CLOUD:-sxm-admin}
CONCURRENCY=${SXM_TEMPEST_CONCURRENCY:-2}
VOLUME_TYPE=${SXM_TEMPEST_VOLUME_TYPE:-silver}
PYTHON=${PYTHON:-python3.11}
HERE=tools/cloud
INCLUDE=$(pwd)/$HERE/tempest-include.txt
EXCLUDE=$(pwd)/$HERE/tempest-exclude.txt

die() {
    echo "tempest.sh: $*" >&2
    exit 2
}

install_tempest() {
    local stamp
    stamp=$(cat "$HERE/tempest-requirements.txt" upper-constraints.txt |
        sha256sum | cut -c1-16)
    if [ -x "$VENV/bin/tempest" ] && [ "$(cat "$VENV/.sxm-stamp" \
            2>/dev/null)" = "$stamp" ]; then
        return
    fi
    echo "Installing Tempest into $VENV ..."
    mkdir -p "$TEMPEST_DIR"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q -c upper-constraints.txt setuptools wheel
    "$VENV/bin/pip" install -q -c upper-constraints.txt \
        -r "$HERE/tempest-requirements.txt"
    echo "$stamp" > "$VENV/.sxm-stamp"
    echo "Installed $("$VENV/bin/tempest" --version 2>&1)"
}

# The workspace holds .stestr.conf (where Tempest's tests are) and etc/;
# its registry file stays here too, not in $HOME.
init_workspace() {
    if [ ! -f "$WORKSPACE/.stestr.conf" ]; then
        rm -rf "$WORKSPACE"
        "$VENV/bin/tempest" init --name sxm \
            --workspace-path "$TEMPEST_DIR/workspace.yaml" \
            "$WORKSPACE" >/dev/null
    fi
}

cloud_is_up() {
    [ -x "$HERE/cloud.sh" ] ||
        die "$HERE/cloud.sh is missing: there is no cloud to test"
    if ! "$HERE/cloud.sh" status >/dev/null 2>&1; then
        die "the cloud is not up (\"$HERE/cloud.sh status\" fails):" \
            "start it with \"$HERE/cloud.sh up\""
    fi
    [ -f "$CLOUDS_YAML" ] || die "no $CLOUDS_YAML: the cloud wrote none"
}

configure() {
    cloud_is_up
    init_workspace
    "$VENV/bin/python" "$HERE/tempest_cloud.py" configure \
        --clouds-yaml "$CLOUDS_YAML" --cloud "$ADMIN_CLOUD" \
        --out "$CONF" --workdir "$WORKSPACE" \
        --volume-type "$VOLUME_TYPE" || exit 2
}

# tempest run's selection: the REGEXes given, else the include list.
selection() {
    if [ $# -gt 0 ]; then
        local IFS='|'
        echo --regex "($*)"
    else
        echo --include-list "$INCLUDE"
    fi
}

# The tests a run selects; "--all" first: before the exclude list.
list_tests() {
    local exclude=(--exclude-list "$EXCLUDE")
    if [ "${1:-}" = --all ]; then
        exclude=()
        shift
    fi
    init_workspace
    # shellcheck disable=SC2046
    (cd "$WORKSPACE" && "$VENV/bin/tempest" run --list-tests \
        $(selection "$@") "${exclude[@]}") | grep '^tempest\.' |
        sed 's/\[.*//' | sort
}

summary() {
    [ -d "$WORKSPACE/.stestr" ] || die "no Tempest run yet"
    (cd "$WORKSPACE" && "$VENV/bin/stestr" last --subunit) |
        "$VENV/bin/python" "$HERE/tempest_cloud.py" summary \
            --selected "$TEMPEST_DIR/selected.txt" --exclude-list "$EXCLUDE"
}

run_tempest() {
    local start end status=0
    configure
    list_tests --all "$@" > "$TEMPEST_DIR/selected.txt"
    echo "Tempest: $(list_tests "$@" | wc -l) tests to run" \
        "($(wc -l < "$TEMPEST_DIR/selected.txt") selected, the rest" \
        "excluded by $HERE/tempest-exclude.txt), $CONCURRENCY workers;" \
        "log: $WORKSPACE/tempest.log"
    start=$(date +%s)
    # shellcheck disable=SC2046
    (cd "$WORKSPACE" && "$VENV/bin/tempest" run \
        --config-file etc/tempest.conf --concurrency "$CONCURRENCY" \
        $(selection "$@") --exclude-list "$EXCLUDE") \
        > "$TEMPEST_DIR/run.out" 2>&1 || status=$?
    end=$(date +%s)
    if [ ! -d "$WORKSPACE/.stestr" ]; then
        cat "$TEMPEST_DIR/run.out" >&2
        die "tempest run produced no results (output above)"
    fi
    summary | tee "$TEMPEST_DIR/summary.txt" || true
    echo "tempest: took $((end - start)) s;" \
        "output: $TEMPEST_DIR/run.out, results: $TEMPEST_DIR/summary.txt"
    [ "$status" -eq 0 ] || return 1
}

command=${1:-run}
case "$command" in
    install) install_tempest ;;
    configure) install_tempest; configure ;;
    list) shift; install_tempest; list_tests "$@" ;;
    summary) summary ;;
    run) [ $# -eq 0 ] || shift; install_tempest; run_tempest "$@" ;;
    -h|--help) sed -n '3,33p' "$0" | sed 's/^# \{0,1\}//' ;;
    -*) die "unknown option $command (see $0 --help)" ;;
    # A bare REGEX: "tempest.sh test_volume_retype" runs those tests.
    *) install_tempest; run_tempest "$@" ;;
esac
