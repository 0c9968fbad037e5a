#!/bin/bash
#
# plugin.sh - devstack plugin of openstack-sxm: the Nova compute driver for
# XenServer / XCP-ng with Storage XenMotion.
#
# Sourced by stack.sh, unstack.sh and clean.sh as
#   source plugin.sh <stack|unstack|clean> [phase]
# with the variables of ./settings already set.

SXM_COMPUTE_DRIVER=sxm.driver.SxmDriver

function sxm_runs_nova_compute {
    is_service_enabled n-cpu && [[ "$VIRT_DRIVER" == "sxm" ]]
}

# The interpreter nova-compute runs under (devstack's global venv or not).
function sxm_python {
    if [[ "$GLOBAL_VENV" == "True" ]]; then
        echo "$DEVSTACK_VENV/bin/python3"
    else
        echo "${PYTHON:-python3}"
    fi
}

# iniset of the secret held in the variable named $4. stack.sh traces every
# command, so the value is only expanded with xtrace off. Refuses what
# devstack's iniset would change on the way (it writes "echo $value": word
# splitting, globbing). Written so that oslo.config reads it back unchanged:
# it reads "$$" as "$" and drops one pair of quotes around a whole value.
function sxm_iniset_secret {
    local xtrace
    xtrace=$(set +o | grep xtrace)
    set +o xtrace
    local file=$1
    local section=$2
    local option=$3
    local name=$4
    local value=${!name}
    local noglob
    noglob=$(set +o | grep noglob)
    set -o noglob
    local echoed
    # shellcheck disable=SC2086
    echoed=$(echo $value)
    if [[ "$echoed" != "$value" ]]; then
        $noglob
        die $LINENO "$name has leading, trailing or repeated white space," \
            "a newline, or is an echo option: iniset cannot write it." \
            "Set [$section] $option in $file yourself."
    fi
    value=${value//\$/\$\$}
    local first=${value:0:1}
    if [[ ( "$first" == '"' || "$first" == "'" ) && \
        "$first" == "${value: -1}" ]]; then
        value="\"$value\""
    fi
    iniset "$file" "$section" "$option" "$value"
    $noglob
    $xtrace
}

function install_sxm {
    # Not an editable install (setup_develop): nova loads the driver as
    # nova.virt.sxm.driver, a module this package places inside nova's
    # namespace, which only a regular install puts on nova's path.
    setup_install "$SXM_DIR"
    if sxm_runs_nova_compute; then
        if ! "$(sxm_python)" -c \
            'import importlib.util, sys
sys.exit(importlib.util.find_spec("nova.virt.sxm.driver") is None)'; then
            die $LINENO "nova.virt.sxm.driver is not importable after" \
                "installing $SXM_DIR: nova-compute could not load" \
                "compute_driver = $SXM_COMPUTE_DRIVER."
        fi
    fi
}

function configure_sxm_nova {
    if [[ -z "$XENAPI_CONNECTION_URL" ]]; then
        die $LINENO "XENAPI_CONNECTION_URL is not set: name the XAPI pool" \
            "master in local.conf, e.g. https://xenserver1.example.org/"
    fi
    # ":+" so that a trace of this test never shows the password.
    if [[ -z "${XENAPI_PASSWORD:+set}" ]]; then
        die $LINENO "XENAPI_PASSWORD is not set: give the password of" \
            "$XENAPI_USER on the pool at $XENAPI_CONNECTION_URL in local.conf"
    fi
    mkdir -p "$SXM_LOCK_PATH"

    iniset "$NOVA_CONF" DEFAULT compute_driver "$SXM_COMPUTE_DRIVER"
    iniset "$NOVA_CONF" sxm connection_url "$XENAPI_CONNECTION_URL"
    iniset "$NOVA_CONF" sxm connection_username "$XENAPI_USER"
    sxm_iniset_secret "$NOVA_CONF" sxm connection_password XENAPI_PASSWORD
    # Unset means the pool master: write nothing rather than an empty name.
    if [[ -n "$SXM_HOST_NAME" ]]; then
        iniset "$NOVA_CONF" sxm host_name "$SXM_HOST_NAME"
    fi
    iniset "$NOVA_CONF" sxm sr_matching_filter "$SXM_SR_MATCHING_FILTER"
    iniset "$NOVA_CONF" sxm lock_path "$SXM_LOCK_PATH"
}

function configure_sxm_tempest {
    if [[ "$SXM_TEMPEST_LIVE_MIGRATION" == "True" ]]; then
        iniset "$TEMPEST_CONFIG" compute-feature-enabled live_migration True
        iniset "$TEMPEST_CONFIG" compute-feature-enabled \
            block_migration_for_live_migration True
    fi
}

function cleanup_sxm {
    rm -rf "$SXM_LOCK_PATH"
}

if is_service_enabled sxm; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing openstack-sxm"
        install_sxm
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        if sxm_runs_nova_compute; then
            echo_summary "Configuring nova-compute for XenServer (SXM)"
            configure_sxm_nova
        fi
    elif [[ "$1" == "stack" && "$2" == "test-config" ]]; then
        if sxm_runs_nova_compute && is_service_enabled tempest; then
            configure_sxm_tempest
        fi
    fi

    if [[ "$1" == "unstack" ]]; then
        # No service of its own: nova-compute is stopped by devstack.
        :
    fi

    if [[ "$1" == "clean" ]]; then
        cleanup_sxm
    fi
fi
