#!/usr/bin/env bash
# A real OpenStack cloud on this machine, driving the XAPI simulator:
#
#   tools/cloud/cloud.sh up       start whatever is not running, then print
#                                 "cloud: up in Ns, M MiB RSS"
#   tools/cloud/cloud.sh down     stop every process it started
#   tools/cloud/cloud.sh status   exit 0 only when every service answers
#   tools/cloud/cloud.sh start NAME...    start only these services (of
#                                 "status"'s names) if they are not running
#   tools/cloud/cloud.sh restart NAME...  stop these services, then start
#                                 them again with configs written anew; the
#                                 others are left as they are
#
# Separate processes: MariaDB, RabbitMQ (Debian packages, installed when
# missing; started without systemd), xapi-sim serve (two pools), Keystone,
# Placement, Glance, Neutron (API only), Nova API, conductor, scheduler and
# one nova-compute per pool, Cinder API, scheduler and volume. The HTTP
# services run under gunicorn. Everything lives in .cloud/ at the top of the
# repository: etc/<service>/ (configs), logs/<service>.log, run/ (pidfiles,
# one process group each), state/ (data), clouds.yaml (sxm-admin, sxm-demo).
set -euo pipefail
cd "$(dirname "$0")/../.."
TOP=$PWD
CLOUD=${SXM_CLOUD_DIR:-$TOP/.cloud}
ETC=$CLOUD/etc
LOGS=$CLOUD/logs
RUN=$CLOUD/run
STATE=$CLOUD/state
NEUTRON_VENV=$CLOUD/venv
export ETC LOGS RUN STATE

# Ports, all on 127.0.0.1; off the defaults so that a system service of
# the same kind does not collide.
export DB_PORT=${SXM_CLOUD_DB_PORT:-13306}
export RABBIT_PORT=${SXM_CLOUD_RABBIT_PORT:-15673}
export EPMD_PORT=${SXM_CLOUD_EPMD_PORT:-14369}
export KEYSTONE_PORT=5000 PLACEMENT_PORT=8778 GLANCE_PORT=9292
export NOVA_PORT=8774 CINDER_PORT=8776 NEUTRON_PORT=9696
export SIM_PORT_A=8480 SIM_PORT_B=8481
export POOL_A_URL=http://127.0.0.1:$SIM_PORT_A/
export POOL_B_URL=http://127.0.0.1:$SIM_PORT_B/

say() { echo "cloud: $*"; }
fail() {
    echo "cloud: $*" >&2
    exit 1
}

ctl() { "$VENV/bin/python" "$TOP/tools/cloud/cloudctl.py" "$@"; }

# -- prerequisites -------------------------------------------------------------

# The Debian packages of bindep.txt's "cloud" profile, and the command
# that shows each is there.
PACKAGES=$(awk '/^[a-z]/ && /[[ ]cloud[] ]/ {print $1}' bindep.txt)
PACKAGE_COMMANDS=(mariadbd /usr/lib/rabbitmq/bin/rabbitmq-server sudo
    qemu-img genisoimage)

ensure_packages() {
    local cmd missing=
    for cmd in "${PACKAGE_COMMANDS[@]}"; do
        command -v "$cmd" >/dev/null || missing=1
    done
    [ -n "$missing" ] || return 0
    # shellcheck disable=SC2086
    if [ "$(id -u)" != 0 ]; then
        fail "packages are missing and only root can install them:" \
            "apt-get install" $PACKAGES
    fi
    say "installing" $PACKAGES "(apt-get)"
    # No service may start from the packages' scripts: ours run from .cloud.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.sxm
    local had_policy=
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ -n "$had_policy" ] || { cp /usr/sbin/policy-rc.d.sxm \
        /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    # shellcheck disable=SC2086
    apt-get update -q >"$LOGS/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends $PACKAGES >>"$LOGS/apt.log" 2>&1 || {
        [ -n "$had_policy" ] || rm -f /usr/sbin/policy-rc.d
        rm -f /usr/sbin/policy-rc.d.sxm
        fail "apt-get could not install" $PACKAGES": see $LOGS/apt.log"
    }
    [ -n "$had_policy" ] || rm -f /usr/sbin/policy-rc.d
    rm -f /usr/sbin/policy-rc.d.sxm
}

ensure_python() {
    # shellcheck source=tools/venv.sh
    . "$TOP/tools/venv.sh"
    local stamp
    stamp=$(cat tools/cloud/requirements.txt upper-constraints.txt |
        sha256sum | cut -c1-16)
    if [ "$(cat "$VENV/.sxm-cloud-stamp" 2>/dev/null)" != "$stamp" ]; then
        say "installing the cloud's Python packages into $VENV"
        "$VENV/bin/pip" install -q -c upper-constraints.txt \
            -r tools/cloud/requirements.txt
        echo "$stamp" >"$VENV/.sxm-cloud-stamp"
    fi
    # Neutron in a virtualenv of its own: neutron-lib registers flake8
    # checks that would change the project's lint in $VENV.
    stamp=$(cat tools/cloud/neutron-requirements.txt upper-constraints.txt |
        sha256sum | cut -c1-16)
    if [ "$(cat "$NEUTRON_VENV/.sxm-stamp" 2>/dev/null)" != "$stamp" ]; then
        say "setting up $NEUTRON_VENV (neutron)"
        # The interpreter of $VENV: under sudo, python3.11 may name
        # another one (sudo's secure_path).
        [ -x "$NEUTRON_VENV/bin/python" ] ||
            "$("$VENV/bin/python" -c 'import sys; print(sys._base_executable)')" \
                -m venv "$NEUTRON_VENV"
        "$NEUTRON_VENV/bin/pip" install -q -c upper-constraints.txt \
            setuptools wheel
        "$NEUTRON_VENV/bin/pip" install -q -c upper-constraints.txt \
            -r tools/cloud/neutron-requirements.txt
        echo "$stamp" >"$NEUTRON_VENV/.sxm-stamp"
    fi
}

# Passwords of this cloud, made once, readable by root only (as is all of
# .cloud: configs and clouds.yaml hold them too).
ensure_secrets() {
    if [ ! -s "$CLOUD/secrets.env" ]; then
        local name tmp=$CLOUD/secrets.env.new
        # The redirection opens the file in this shell: umask here, too.
        (
            umask 077
            {
                for name in ADMIN_PASSWORD DEMO_PASSWORD SERVICE_PASSWORD \
                    DB_PASSWORD XAPI_PASSWORD; do
                    echo "$name=$(head -c 18 /dev/urandom | base64 |
                        tr '+/' 'xy')"
                done
                echo "SILVER_SR_UUID=$(cat /proc/sys/kernel/random/uuid)"
            } >"$tmp"
        )
        mv -f "$tmp" "$CLOUD/secrets.env"
    fi
    # A cloud made before these modes held: tighten it.
    chmod 600 "$CLOUD/secrets.env"
    set -a
    # shellcheck disable=SC1091
    . "$CLOUD/secrets.env"
    set +a
}

# -- processes -----------------------------------------------------------------

pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }

running() {
    local pid
    pid=$(pid_of "$1")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# The services "start"/"restart" name; empty: all of them.
ONLY=
selected() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }

# start NAME CMD...: in a process group of its own (killed as one by down),
# output to logs/NAME.log.
start() {
    local name=$1
    shift
    selected "$name" || return 0
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
}

# wait_for NAME KIND TARGET [TIMEOUT]
wait_for() {
    selected "$1" || return 0
    ctl wait "$1" "$2" "$3" --pidfile "$RUN/$1.pid" --timeout "${4:-120}" ||
        fail "$1 failed to start: see its log $LOGS/$1.log"
}

# Stop in reverse start order; every group gets TERM, then KILL.
ORDER=(epmd mysql rabbitmq xapi-sim keystone placement glance-api
    neutron-api nova-api nova-conductor nova-scheduler nova-compute-a
    nova-compute-b cinder-api cinder-scheduler cinder-volume)

stop_all() {
    local i name pid left
    for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do
        name=${ORDER[$i]}
        pid=$(pid_of "$name")
        [ -n "$pid" ] || continue
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for _ in $(seq 1 60); do
        left=
        for name in "${ORDER[@]}"; do
            pid=$(pid_of "$name")
            [ -n "$pid" ] || continue
            if pgrep -g "$pid" >/dev/null 2>&1; then
                left="$left $name"
            fi
        done
        [ -n "$left" ] || break
        sleep 0.5
    done
    for name in "${ORDER[@]}"; do
        pid=$(pid_of "$name")
        [ -n "$pid" ] || continue
        if pgrep -g "$pid" >/dev/null 2>&1; then
            say "$name did not stop on TERM: killed"
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
        rm -f "$RUN/$name.pid"
    done
    sleep 0.5
    for name in "${ORDER[@]}"; do
        pid=$(pid_of "$name")
        if [ -n "$pid" ] && pgrep -g "$pid" >/dev/null 2>&1; then
            fail "$name (process group $pid) is still running"
        fi
    done
}

stop_one() {
    local name=$1 pid
    pid=$(pid_of "$name")
    [ -n "$pid" ] || return 0
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        pgrep -g "$pid" >/dev/null 2>&1 || break
        sleep 0.5
    done
    if pgrep -g "$pid" >/dev/null 2>&1; then
        say "$name did not stop on TERM: killed"
        kill -KILL -- "-$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$RUN/$name.pid"
}

# start_only [--restart] NAME...: up for these services only.
start_only() {
    local again= name
    if [ "${1:-}" = --restart ]; then
        again=1
        shift
    fi
    [ $# -gt 0 ] || fail "name the services: ${ORDER[*]}"
    for name in "$@"; do
        [[ " ${ORDER[*]} " == *" $name "* ]] ||
            fail "no service $name here (services: ${ORDER[*]})"
        # Its restart would start a new, empty cloud (see up).
        [ "$name" != xapi-sim ] || [ -z "$again" ] ||
            fail "the simulator keeps nothing across a restart:" \
                "$0 down, then $0 up"
    done
    running xapi-sim || fail "the simulator is not running: $0 up"
    if [ -n "$again" ]; then
        for name in "$@"; do
            stop_one "$name"
        done
    fi
    ONLY="$*"
    up
}

rss_mib() {
    local groups=() name pid
    for name in "${ORDER[@]}"; do
        pid=$(pid_of "$name")
        [ -n "$pid" ] && groups+=("$pid")
    done
    [ ${#groups[@]} -gt 0 ] || { echo 0; return; }
    ps -eo pgid=,rss= | awk -v g=" ${groups[*]} " '
        index(g, " " $1 " ") {s += $2} END {printf "%d\n", s / 1024}'
}

# -- services ------------------------------------------------------------------

render() { ctl render "$@"; }

mysql_cli() {
    mariadb --no-defaults --socket="$RUN/mysqld.sock" -uroot "$@"
}

start_epmd() {
    running epmd && return
    start epmd epmd -port "$EPMD_PORT" -address 127.0.0.1
    wait_for epmd tcp "$EPMD_PORT" 20
}

start_mysql() {
    running mysql && return
    local data=$STATE/mysql
    if [ ! -d "$data/mysql" ]; then
        mkdir -p "$data"
        mariadb-install-db --no-defaults --datadir="$data" --user=root \
            --auth-root-authentication-method=socket \
            >>"$LOGS/mysql.log" 2>&1 ||
            fail "mariadb-install-db failed: see $LOGS/mysql.log"
    fi
    start mysql mariadbd --no-defaults --datadir="$data" --user=root \
        --socket="$RUN/mysqld.sock" --port="$DB_PORT" \
        --bind-address=127.0.0.1 --pid-file="$RUN/mysqld.pid" \
        --skip-name-resolve --innodb-buffer-pool-size=128M \
        --max-connections=500 --log-error="$LOGS/mysql.log"
    wait_for mysql tcp "$DB_PORT" 60
    local db
    for db in keystone placement glance neutron nova_api nova nova_cell0 \
        cinder; do
        mysql_cli -e "CREATE DATABASE IF NOT EXISTS $db CHARACTER SET utf8mb4"
    done
    mysql_cli -e "CREATE USER IF NOT EXISTS 'sxm'@'127.0.0.1' IDENTIFIED BY
        '$DB_PASSWORD'; GRANT ALL ON *.* TO 'sxm'@'127.0.0.1';"
}

start_rabbitmq() {
    running rabbitmq && return
    mkdir -p "$STATE/rabbitmq"
    touch "$STATE/rabbitmq/rabbitmq.conf"
    echo '[].' >"$STATE/rabbitmq/enabled_plugins"
    # The Erlang cookie lives in $HOME: this cloud's own.
    start rabbitmq env HOME="$STATE/rabbitmq" ERL_EPMD_PORT="$EPMD_PORT" \
        RABBITMQ_NODENAME=sxm@localhost \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$RABBIT_PORT" \
        RABBITMQ_DIST_PORT=$((RABBIT_PORT + 20000)) \
        RABBITMQ_MNESIA_BASE="$STATE/rabbitmq/mnesia" \
        RABBITMQ_LOG_BASE="$LOGS" RABBITMQ_LOGS="$LOGS/rabbitmq.log" \
        RABBITMQ_PID_FILE="$RUN/rabbitmq-server.pid" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$STATE/rabbitmq/enabled_plugins" \
        RABBITMQ_CONFIG_FILE="$STATE/rabbitmq/rabbitmq" \
        /usr/lib/rabbitmq/bin/rabbitmq-server
    wait_for rabbitmq tcp "$RABBIT_PORT" 120
}

start_sim() {
    running xapi-sim && return
    render topology.json "$ETC/xapi-sim/topology.json"
    mkdir -p "$STATE/xapi-sim"
    start xapi-sim "$VENV/bin/xapi-sim" serve \
        --config "$ETC/xapi-sim/topology.json" --data-dir "$STATE/xapi-sim"
    wait_for xapi-sim http "$POOL_A_URL" 60
    wait_for xapi-sim http "$POOL_B_URL" 60
    local url
    for url in "$POOL_A_URL" "$POOL_B_URL"; do
        ctl install-srs "$url" >>"$LOGS/xapi-sim.log" 2>&1 ||
            fail "cannot set the suspend SRs of the pool at $url" \
                "(log: $LOGS/xapi-sim.log)"
    done
}

# gunicorn_start NAME APP PORT ENV ARGV URL [VENV]: ENV and ARGV as Python
# list items, URL the one to wait for.
gunicorn_start() {
    local name=$1 app=$2 port=$3 env=$4 argv=$5 url=$6 venv=${7:-$VENV}
    running "$name" && return
    render gunicorn.conf.in "$ETC/$name/gunicorn.conf" --set "NAME=$name" \
        --set "APP=$app" --set "PORT=$port" --set "RAW_ENV=$env" \
        --set "ARGV=$argv"
    start "$name" "$venv/bin/gunicorn" -c "$ETC/$name/gunicorn.conf"
    wait_for "$name" http "$url" 180
}

start_keystone() {
    mkdir -p "$ETC/keystone"
    render keystone.conf "$ETC/keystone/keystone.conf"
    local manage=("$VENV/bin/keystone-manage" --config-file
        "$ETC/keystone/keystone.conf")
    local url=http://127.0.0.1:$KEYSTONE_PORT/v3
    if [ ! -f "$STATE/keystone.done" ]; then
        say "keystone: database and bootstrap"
        {
            "${manage[@]}" db_sync &&
                "${manage[@]}" fernet_setup --keystone-user root \
                    --keystone-group root &&
                "${manage[@]}" credential_setup --keystone-user root \
                    --keystone-group root &&
                "${manage[@]}" bootstrap --bootstrap-password \
                    "$ADMIN_PASSWORD" --bootstrap-region-id RegionOne \
                    --bootstrap-public-url "$url" \
                    --bootstrap-admin-url "$url" \
                    --bootstrap-internal-url "$url"
        } >>"$LOGS/keystone-manage.log" 2>&1 ||
            fail "keystone-manage failed: see $LOGS/keystone-manage.log"
        touch "$STATE/keystone.done"
    fi
    gunicorn_start keystone keystone.wsgi.api:application "$KEYSTONE_PORT" \
        "'OS_KEYSTONE_CONFIG_DIR=$ETC/keystone'" "['keystone']" \
        "http://127.0.0.1:$KEYSTONE_PORT/v3"
    render clouds.yaml "$CLOUD/clouds.yaml"
    ctl keystone >>"$LOGS/keystone-setup.log" 2>&1 ||
        fail "creating the projects, users and catalog failed: see" \
            "$LOGS/keystone-setup.log"
}

# db_once NAME CMD...: a schema step, done once per cloud.
db_once() {
    local name=$1
    shift
    [ -f "$STATE/$name.done" ] && return
    say "$name"
    ("$@") >>"$LOGS/$name.log" 2>&1 || fail "$name failed: see $LOGS/$name.log"
    touch "$STATE/$name.done"
}

start_placement() {
    render placement.conf "$ETC/placement/placement.conf"
    db_once placement-db-sync "$VENV/bin/placement-manage" \
        --config-file "$ETC/placement/placement.conf" db sync
    gunicorn_start placement placement.wsgi.api:application \
        "$PLACEMENT_PORT" "'OS_PLACEMENT_CONFIG_DIR=$ETC/placement'" \
        "['placement-api']" "http://127.0.0.1:$PLACEMENT_PORT/"
}

start_glance() {
    mkdir -p "$STATE/glance/images" "$STATE/glance/staging" \
        "$STATE/glance/tasks" "$STATE/glance/locks"
    render glance-api.conf "$ETC/glance/glance-api.conf"
    cp "$VENV/etc/glance/glance-api-paste.ini" "$ETC/glance/"
    db_once glance-db-sync "$VENV/bin/glance-manage" \
        --config-file "$ETC/glance/glance-api.conf" db_sync
    gunicorn_start glance-api glance.wsgi.api:application "$GLANCE_PORT" \
        "'OS_GLANCE_CONFIG_DIR=$ETC/glance'" "['glance-api']" \
        "http://127.0.0.1:$GLANCE_PORT/"
}

start_neutron() {
    mkdir -p "$STATE/neutron/locks"
    render neutron.conf "$ETC/neutron/neutron.conf"
    cp "$NEUTRON_VENV/etc/neutron/api-paste.ini" "$ETC/neutron/" \
        2>/dev/null || true
    db_once neutron-db-manage "$NEUTRON_VENV/bin/neutron-db-manage" \
        --config-file "$ETC/neutron/neutron.conf" upgrade heads
    gunicorn_start neutron-api neutron.wsgi.api:application "$NEUTRON_PORT" \
        "'OS_NEUTRON_CONFIG_DIR=$ETC/neutron'" \
        "['neutron-api', '--config-file', '$ETC/neutron/neutron.conf']" \
        "http://127.0.0.1:$NEUTRON_PORT/" "$NEUTRON_VENV"
    ctl neutron-ready >>"$LOGS/neutron-ready.log" 2>&1 ||
        fail "neutron-api does not list ports: see $LOGS/neutron-api.log"
}

nova_db_setup() {
    local manage=("$VENV/bin/nova-manage" --config-file "$ETC/nova/nova.conf")
    # Chained: errexit does not hold in a function called before "||".
    "${manage[@]}" api_db sync &&
        "${manage[@]}" cell_v2 map_cell0 --database_connection \
            "mysql+pymysql://sxm:$DB_PASSWORD@127.0.0.1:$DB_PORT/nova_cell0" &&
        "${manage[@]}" db sync || return 1
    "${manage[@]}" cell_v2 list_cells | grep -qw cell1 ||
        "${manage[@]}" cell_v2 create_cell --name cell1
}

start_nova() {
    mkdir -p "$STATE/nova/locks" "$STATE/sxm-locks"
    render nova.conf "$ETC/nova/nova.conf"
    cp "$VENV/etc/nova/api-paste.ini" "$ETC/nova/"
    local conf=(--config-file "$ETC/nova/nova.conf")
    db_once nova-db-sync nova_db_setup
    local argv="['nova-api', '--config-file', '$ETC/nova/nova.conf',"
    argv+=" '--log-file', '$LOGS/nova-api.log']"
    gunicorn_start nova-api nova.wsgi.osapi_compute:application "$NOVA_PORT" \
        "'OS_NOVA_CONFIG_DIR=$ETC/nova'" "$argv" \
        "http://127.0.0.1:$NOVA_PORT/"
    local svc
    for svc in conductor scheduler; do
        running "nova-$svc" || start "nova-$svc" "$VENV/bin/nova-$svc" \
            "${conf[@]}" --log-file "$LOGS/nova-$svc.log"
    done
    local pool host url
    for pool in a b; do
        host=compute-$pool
        url=$POOL_A_URL
        [ $pool = b ] && url=$POOL_B_URL
        mkdir -p "$STATE/$host/instances" "$STATE/$host/locks"
        render nova-compute.conf "$ETC/nova/nova-compute-$pool.conf" \
            --set "POOL=pool-$pool" --set "COMPUTE_HOST=$host" \
            --set "POOL_URL=$url"
        running "nova-compute-$pool" || start "nova-compute-$pool" \
            "$VENV/bin/nova-compute" "${conf[@]}" \
            --config-file "$ETC/nova/nova-compute-$pool.conf" \
            --log-file "$LOGS/nova-compute-$pool.log"
    done
    wait_for nova-conductor compute nova-conductor@"$(hostname)" 180
    wait_for nova-scheduler compute nova-scheduler@"$(hostname)" 180
    wait_for nova-compute-a compute nova-compute@compute-a 180
    wait_for nova-compute-b compute nova-compute@compute-b 180
    "$VENV/bin/nova-manage" "${conf[@]}" cell_v2 discover_hosts \
        >>"$LOGS/nova-discover-hosts.log" 2>&1 ||
        fail "nova-manage cell_v2 discover_hosts failed: see" \
            "$LOGS/nova-discover-hosts.log"
}

# cinder-volume runs qemu-img (image conversion, "qemu-img info" of every
# image) and os-brick as root through "sudo cinder-rootwrap CONF" and
# privsep-helper, as devstack sets it up: cinder's rootwrap.conf and
# filters from the installed package, exec_dirs with the venv's bin (for
# privsep-helper) and cinder-rootwrap where sudo's secure_path finds it.
cinder_rootwrap() {
    local venv
    venv=$(realpath "$VENV")
    local conf=$ETC/cinder/rootwrap.conf src=$venv/etc/cinder
    [ -f "$src/rootwrap.conf" ] ||
        fail "no $src/rootwrap.conf: cinder's package data is missing"
    # A running cinder-volume reads them at every call: replaced whole.
    local new=$ETC/cinder/rootwrap.d.new
    rm -rf "$new"
    cp -r "$src/rootwrap.d" "$new"
    render cinder-rootwrap.filters "$new/sxm-cloud.filters"
    if diff -rq "$new" "$ETC/cinder/rootwrap.d" >/dev/null 2>&1; then
        rm -rf "$new"
    else
        rm -rf "$ETC/cinder/rootwrap.d"
        mv "$new" "$ETC/cinder/rootwrap.d"
    fi
    sed -e "s|^filters_path=.*|filters_path=$ETC/cinder/rootwrap.d|" \
        -e "s|^exec_dirs=|exec_dirs=$venv/bin,|" \
        "$src/rootwrap.conf" >"$conf.new"
    mv -f "$conf.new" "$conf"
    local bin=/usr/local/bin/cinder-rootwrap
    if [ "$(readlink "$bin" 2>/dev/null)" != "$venv/bin/cinder-rootwrap" ]
    then
        [ ! -e "$bin" ] || [ -L "$bin" ] ||
            fail "$bin exists and is not this cloud's: remove it"
        ln -sfn "$venv/bin/cinder-rootwrap" "$bin"
    fi
    sudo -n cinder-rootwrap "$conf" qemu-img --version \
        >>"$LOGS/cinder-rootwrap.log" 2>&1 ||
        fail "sudo cinder-rootwrap cannot run qemu-img: see" \
            "$LOGS/cinder-rootwrap.log"
}

start_cinder() {
    mkdir -p "$STATE/cinder/locks" "$STATE/sxm-locks"
    render cinder.conf "$ETC/cinder/cinder.conf"
    cinder_rootwrap
    cp "$VENV/etc/cinder/api-paste.ini" \
        "$VENV/etc/cinder/resource_filters.json" "$ETC/cinder/"
    local conf=(--config-file "$ETC/cinder/cinder.conf")
    db_once cinder-db-sync "$VENV/bin/cinder-manage" "${conf[@]}" db sync
    local argv="['cinder-api', '--config-file', '$ETC/cinder/cinder.conf',"
    argv+=" '--log-file', '$LOGS/cinder-api.log']"
    gunicorn_start cinder-api cinder.wsgi.api:application "$CINDER_PORT" \
        "" "$argv" \
        "http://127.0.0.1:$CINDER_PORT/"
    ctl volume-types >>"$LOGS/cinder-types.log" 2>&1 ||
        fail "creating the volume types failed: see $LOGS/cinder-types.log"
    local svc
    for svc in scheduler volume; do
        running "cinder-$svc" || start "cinder-$svc" "$VENV/bin/cinder-$svc" \
            "${conf[@]}" --log-file "$LOGS/cinder-$svc.log"
    done
    wait_for cinder-scheduler volume cinder-scheduler@cinder-a 120
    wait_for cinder-volume volume \
        cinder-volume@cinder-a@sxm,cinder-volume@cinder-a@sxm-b 120
    # Volumes can be scheduled once the scheduler knows the pools.
    wait_for cinder-volume pools \
        cinder-a@sxm#gold,cinder-a@sxm#silver,cinder-a@sxm-b#gold 180
}

# -- commands ------------------------------------------------------------------

up() {
    local t0=$SECONDS
    # Root's only: configs, keys, databases and secrets.env hold the
    # cloud's passwords (also a .cloud made before this held).
    mkdir -p -m 700 "$CLOUD"
    mkdir -p "$ETC" "$LOGS" "$RUN" "$STATE"
    for d in xapi-sim keystone placement glance neutron nova cinder; do
        mkdir -p "$ETC/$d"
    done
    chmod 700 "$CLOUD" "$ETC" "$RUN" "$STATE"
    chmod 600 "$CLOUD/clouds.yaml" 2>/dev/null || true
    chmod -R go-rwx "$ETC"
    ensure_packages
    ensure_python
    # What the services write from here on is theirs only.
    umask 077
    ensure_secrets
    export OS_CLIENT_CONFIG_FILE=$CLOUD/clouds.yaml
    # The simulator keeps nothing across restarts (new host uuids, no VMs):
    # a cloud whose simulator is not running starts anew, every database
    # and store with it.
    if ! running xapi-sim && [ -d "$STATE" ] && \
            [ -n "$(ls -A "$STATE")" ]; then
        say "the simulator is not running: starting a new cloud"
        stop_all
        rm -rf "$STATE"
        mkdir -p "$STATE"
    fi
    start_epmd
    start_mysql
    start_rabbitmq
    start_sim
    start_keystone
    start_placement
    start_glance
    start_neutron
    start_nova
    start_cinder
    say "up in $((SECONDS - t0))s, $(rss_mib) MiB RSS" \
        "(clouds.yaml: $CLOUD/clouds.yaml, logs: $LOGS)"
}

status() {
    [ -f "$CLOUD/clouds.yaml" ] || fail "no cloud here (run: $0 up)"
    VENV=${VENV:-$TOP/.venv}
    export OS_CLIENT_CONFIG_FILE=$CLOUD/clouds.yaml
    local name dead=0
    local nova="nova-conductor@$(hostname),nova-scheduler@$(hostname)"
    nova+=",nova-compute@compute-a,nova-compute@compute-b"
    local cinder=cinder-scheduler@cinder-a,cinder-volume@cinder-a@sxm
    cinder+=",cinder-volume@cinder-a@sxm-b"
    for name in "${ORDER[@]}"; do
        if ! running "$name"; then
            echo "cloud: $name is not running (log: $LOGS/$name.log)"
            dead=1
        fi
    done
    ctl check "mysql|tcp|$DB_PORT" "rabbitmq|tcp|$RABBIT_PORT" \
        "xapi-sim pool-a|http|$POOL_A_URL" "xapi-sim pool-b|http|$POOL_B_URL" \
        "keystone|http|http://127.0.0.1:$KEYSTONE_PORT/v3" \
        "placement|http|http://127.0.0.1:$PLACEMENT_PORT/" \
        "glance-api|http|http://127.0.0.1:$GLANCE_PORT/" \
        "neutron-api|http|http://127.0.0.1:$NEUTRON_PORT/" \
        "nova-api|http|http://127.0.0.1:$NOVA_PORT/" \
        "cinder-api|http|http://127.0.0.1:$CINDER_PORT/" \
        "nova services|compute|$nova" "cinder services|volume|$cinder" ||
        dead=1
    if [ $dead = 0 ]; then
        say "every service answers ($(rss_mib) MiB RSS)"
    fi
    return $dead
}

case "${1:-}" in
up) up ;;
down)
    mkdir -p "$RUN"
    stop_all
    say "down"
    ;;
status) status ;;
start)
    shift
    start_only "$@"
    ;;
restart)
    shift
    start_only --restart "$@"
    ;;
*)
    echo "usage: $0 up|down|status|start NAME...|restart NAME..." >&2
    exit 2
    ;;
esac
