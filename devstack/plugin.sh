#!/bin/bash
#
# plugin.sh - devstack plugin of openstack-sxm: the Nova compute driver and
# the Cinder volume driver for XenServer / XCP-ng with Storage XenMotion.
#
# Sourced by stack.sh, unstack.sh and clean.sh as
#   source plugin.sh <stack|unstack|clean> [phase]
# with the variables of ./settings already set.

SXM_COMPUTE_DRIVER=sxm.driver.SxmDriver
SXM_VOLUME_DRIVER=cinder_sxm.driver.SxmVolumeDriver

function sxm_runs_nova_compute {
    is_service_enabled n-cpu && [[ "$VIRT_DRIVER" == "sxm" ]]
}

# An empty SXM_CINDER_BACKEND leaves Cinder alone.
function sxm_runs_cinder_volume {
    is_service_enabled c-vol && [[ -n "$SXM_CINDER_BACKEND" ]]
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

function sxm_check_xenapi {
    if [[ -z "$XENAPI_CONNECTION_URL" ]]; then
        die $LINENO "XENAPI_CONNECTION_URL is not set: name the XAPI pool" \
            "master in local.conf, e.g. https://xenserver1.example.org/"
    fi
    # ":+" so that a trace of this test never shows the password.
    if [[ -z "${XENAPI_PASSWORD:+set}" ]]; then
        die $LINENO "XENAPI_PASSWORD is not set: give the password of" \
            "$XENAPI_USER on the pool at $XENAPI_CONNECTION_URL in local.conf"
    fi
}

function configure_sxm_nova {
    sxm_check_xenapi
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

# The backend section, as devstack's lib/cinder_backends/* write theirs, and
# its name added to [DEFAULT] enabled_backends, which configure_cinder has
# already written from CINDER_ENABLED_BACKENDS.
function configure_sxm_cinder {
    local be=$SXM_CINDER_BACKEND
    sxm_check_xenapi
    mkdir -p "$SXM_LOCK_PATH"

    iniset "$CINDER_CONF" "$be" volume_driver "$SXM_VOLUME_DRIVER"
    iniset "$CINDER_CONF" "$be" volume_backend_name "$be"
    iniset "$CINDER_CONF" "$be" sxm_connection_url "$XENAPI_CONNECTION_URL"
    iniset "$CINDER_CONF" "$be" sxm_connection_username "$XENAPI_USER"
    sxm_iniset_secret "$CINDER_CONF" "$be" sxm_connection_password \
        XENAPI_PASSWORD
    iniset "$CINDER_CONF" "$be" sxm_srs "$SXM_CINDER_SRS"
    iniset "$CINDER_CONF" "$be" sxm_lock_path "$SXM_LOCK_PATH"

    local enabled
    enabled=$(iniget "$CINDER_CONF" DEFAULT enabled_backends)
    if [[ ",$enabled," != *",$be,"* ]]; then
        iniset "$CINDER_CONF" DEFAULT enabled_backends \
            "${enabled:+$enabled,}$be"
    fi
}

# One volume type per NAME[:POOL] of SXM_CINDER_VOLUME_TYPES, bound to the
# backend and that pool (an SR's name label; default: NAME). A type that
# exists is left as it is.
function create_sxm_volume_types {
    local oscli=(openstack --os-cloud devstack-admin
        --os-region-name "$REGION_NAME")
    local entries entry name pool
    IFS=, read -r -a entries <<< "$SXM_CINDER_VOLUME_TYPES"
    for entry in "${entries[@]}"; do
        name=${entry%%:*}
        pool=${entry#*:}
        if [[ -z "$name" ]]; then
            continue
        fi
        if "${oscli[@]}" volume type show "$name" > /dev/null 2>&1; then
            echo "Volume type $name exists: left as it is"
            continue
        fi
        "${oscli[@]}" volume type create \
            --property volume_backend_name="$SXM_CINDER_BACKEND" \
            --property pool_name="$pool" "$name"
    done
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
        if sxm_runs_cinder_volume; then
            echo_summary "Configuring cinder-volume backend" \
                "$SXM_CINDER_BACKEND (SXM)"
            configure_sxm_cinder
        fi
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        if is_service_enabled c-api && [[ -n "$SXM_CINDER_BACKEND" ]]; then
            echo_summary "Creating the volume types of backend" \
                "$SXM_CINDER_BACKEND (SXM)"
            create_sxm_volume_types
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
