# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""host messages beyond the generated ones: memory, the iSCSI IQN,
enable and disable; pool.designate_new_master."""

import threading
import time

from xapi_sim.api import method
from xapi_sim import errors
from xapi_sim import memory

# The handover starts once the answer to designate_new_master is out.
HANDOVER_DELAY = 0.1


@method('host.compute_free_memory', ['host'])
def host_compute_free_memory(ctx, host):
    with ctx.db.lock:
        ctx.db.get('host', host)
        return memory.host_compute_free_memory(ctx.db, host)


@method('host.compute_memory_overhead', ['host'])
def host_compute_memory_overhead(ctx, host):
    with ctx.db.lock:
        return int(ctx.db.get('host', host)['memory_overhead'])


@method('host.set_iscsi_iqn', ['host', 'value'])
def host_set_iscsi_iqn(ctx, host, value):
    # Xapi_host.set_iscsi_iqn: the field and other_config:iscsi_iqn move
    # together; an empty IQN is refused.
    if not isinstance(value, str):
        raise errors.XapiError('FIELD_TYPE_ERROR', 'value')
    if value == '':
        raise errors.XapiError('INVALID_VALUE', 'value', value)
    with ctx.db.lock:
        rec = ctx.db.get('host', host)
        other = dict(rec['other_config'], iscsi_iqn=value)
        ctx.db.update('host', host, iscsi_iqn=value, other_config=other)


def assert_host_live(ctx, host):
    """message_forwarding.check_live: a dead host cannot be asked.

    The master (where the call runs) is always live.
    """
    if host != ctx.pool.master and not ctx.pool.host_is_live(host):
        raise errors.XapiError('HOST_OFFLINE', host)


@method('host.enable', ['host'])
def host_enable(ctx, host):
    """Xapi_host.enable, forwarded to the host (HOST_OFFLINE if dead).

    Enabling an enabled host does nothing; otherwise the host forgets a
    persistent disable (auto_enable false) too.
    """
    with ctx.db.lock:
        rec = ctx.db.get('host', host)
        assert_host_live(ctx, host)
        if not rec['enabled']:
            ctx.pool.auto_enable[host] = True
            ctx.db.update('host', host, enabled=True)


@method('host.disable', ['host', 'auto_enable'], optional=1)
def host_disable(ctx, host, auto_enable=True):
    """Xapi_host.disable, forwarded to the host (HOST_OFFLINE if dead).

    No new VM may start on or move to the host; those running there go
    on. ``auto_enable`` (xapi 25.31, default true): whether the host's
    toolstack re-enables it when it restarts; false keeps it disabled
    until host.enable. Disabling a disabled host changes nothing, not even
    its auto_enable.
    """
    if not isinstance(auto_enable, bool):
        raise errors.XapiError('FIELD_TYPE_ERROR', 'auto_enable')
    with ctx.db.lock:
        rec = ctx.db.get('host', host)
        assert_host_live(ctx, host)
        if rec['enabled']:
            ctx.db.update('host', host, enabled=False)
            if not auto_enable:
                ctx.pool.auto_enable[host] = False


@method('pool.designate_new_master', ['host'])
def pool_designate_new_master(ctx, host):
    """An orderly handover of the master role (Xapi_pool).

    Designating the master is a no-op. Otherwise the call returns and the
    transition follows: both toolstacks restart, so the caller's session
    is gone; the old master answers HOST_IS_SLAVE (see
    ``Simulator.designate_new_master``).
    """
    pool = ctx.pool
    with ctx.db.lock:
        ctx.db.get('host', host)
        if host == pool.master:
            return
        assert_host_live(ctx, host)
    try:
        pool.sim.new_master_server(pool, host)
    except ValueError as exc:
        raise errors.XapiError('INTERNAL_ERROR', 'xapi-sim: %s' % exc)

    def handover():
        time.sleep(HANDOVER_DELAY)
        pool.sim.designate_new_master(pool.name, host)
    threading.Thread(target=handover, daemon=True,
                     name='designate-new-master').start()
