#!/bin/bash
#
# Stand-ins for the devstack functions devstack/plugin.sh uses, for
# test_devstack.py. Calls are recorded, one per line, in $SXM_TEST_CALLS.
#
# Usage: devstack_functions.sh <plugin dir> <plugin.sh arguments...>
# It plays stack.sh's part: errexit and xtrace on, stackrc's VIRT_DRIVER
# default, then override-defaults, settings and plugin.sh, in that order.

set -o errexit
set -o xtrace

function _record {
    echo "$*" >> "$SXM_TEST_CALLS"
}

# iniset and ini_has_option: copied from devstack's inc/ini-config
# (openstack/devstack 493835a6, Apache-2.0), so that values go through the
# same "echo $value" and sed the plugin meets in a real stack.sh.
function ini_has_option {
    local xtrace
    xtrace=$(set +o | grep xtrace)
    set +o xtrace
    local sudo=""
    if [ $1 == "-sudo" ]; then
        sudo="sudo "
        shift
    fi
    local file=$1
    local section=$2
    local option=$3
    local line

    line=$($sudo sed -ne "/^\[$section\]/,/^\[.*\]/ { /^$option[ \t]*=/ p; }" "$file")
    $xtrace
    [ -n "$line" ]
}

function iniset {
    local xtrace
    xtrace=$(set +o | grep xtrace)
    set +o xtrace
    local sudo=""
    local sudo_option=""
    if [ $1 == "-sudo" ]; then
        sudo="sudo "
        sudo_option="-sudo "
        shift
    fi
    local file=$1
    local section=$2
    local option=$3
    local value=$4

    # Escape the ampersand (&) and backslash (\) characters for sed
    # Order of substitution matters: we escape backslashes first before
    # adding more backslashes to escape ampersands
    value=$(echo $value | sed -e 's/\\/\\\\/g' -e 's/&/\\&/g')

    if [[ -z $section || -z $option ]]; then
        $xtrace
        return
    fi

    if ! $sudo grep -q "^\[$section\]" "$file" 2>/dev/null; then
        # Add section at the end
        echo -e "\n[$section]" | $sudo tee --append "$file" > /dev/null
    fi
    if ! ini_has_option $sudo_option "$file" "$section" "$option"; then
        # Add it
        $sudo sed -i -e "/^\[$section\]/ a\\
$option = $value
" "$file"
    else
        local sep
        sep=$(echo -ne "\x01")
        # Replace it
        $sudo sed -i -e '/^\['${section}'\]/,/^\[.*\]/ s'${sep}'^\('"${option}"'[ \t]*=[ \t]*\).*$'${sep}'\1'"${value}"${sep} "$file"
    fi
    $xtrace
}

# iniget: copied from devstack's inc/ini-config (openstack/devstack
# 119e36c9, Apache-2.0).
function iniget {
    local xtrace
    xtrace=$(set +o | grep xtrace)
    set +o xtrace
    local file=$1
    local section=$2
    local option=$3
    local line

    line=$(sed -ne "/^\[$section\]/,/^\[.*\]/ { /^$option[ \t]*=/ p; }" "$file")
    echo ${line#*=}
    $xtrace
}

# The openstack client: records its argv shell-quoted (printf %q), one call
# a line. "volume type show NAME" succeeds for the names listed in
# $SXM_TEST_VOLUME_TYPES (comma separated), as if they existed.
function openstack {
    local quoted
    quoted=$(printf '%q ' openstack "$@")
    _record "${quoted% }"
    local args=" $* "
    if [[ "$args" == *" volume type show "* ]]; then
        local name=${!#}
        [[ ",$SXM_TEST_VOLUME_TYPES," == *",$name,"* ]]
    fi
}

# Recorders.
function setup_install {
    _record setup_install "$@"
}

function setup_develop {
    _record setup_develop "$@"
}

function pip_install {
    _record pip_install "$@"
}

function define_plugin {
    _record define_plugin "$@"
}

function plugin_requires {
    _record plugin_requires "$@"
}

function echo_summary {
    echo "$@"
}

# As devstack's: stop tracing, report, exit non-zero.
function die {
    set +o xtrace
    local line=$1
    shift
    _record die "$*"
    echo "[ERROR] line $line: $*" >&2
    exit 1
}

function is_service_enabled {
    local service
    for service in "$@"; do
        if [[ ",$ENABLED_SERVICES," == *",$service,"* ]]; then
            return 0
        fi
    done
    return 1
}

function enable_service {
    local service
    for service in "$@"; do
        if [[ ",$DISABLED_SERVICES," == *",$service,"* ]]; then
            continue
        fi
        if ! is_service_enabled "$service"; then
            ENABLED_SERVICES+=",$service"
        fi
    done
}

plugin_dir=$1
shift
# stackrc
VIRT_DRIVER=${VIRT_DRIVER:-libvirt}
source "$plugin_dir/override-defaults"
source "$plugin_dir/settings"
source "$plugin_dir/plugin.sh" "$@"
