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

"""host messages beyond the generated ones: memory and the iSCSI IQN;
pool.designate_new_master."""

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


@method('host.enable', ['host'])
def host_enable(ctx, host):
    with ctx.db.lock:
        ctx.db.get('host', host)
        ctx.db.update('host', host, enabled=True)


@method('host.disable', ['host', 'auto_enable'], optional=1)
def host_disable(ctx, host, auto_enable=True):
    with ctx.db.lock:
        ctx.db.get('host', host)
        ctx.db.update('host', host, enabled=False)


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
    try:
        pool.sim.new_master_server(pool, host)
    except ValueError as exc:
        raise errors.XapiError('INTERNAL_ERROR', 'xapi-sim: %s' % exc)

    def handover():
        time.sleep(HANDOVER_DELAY)
        pool.sim.designate_new_master(pool.name, host)
    threading.Thread(target=handover, daemon=True,
                     name='designate-new-master').start()
