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

"""The simulator's control interface: what no real XAPI offers.

``POST /sim/<op>`` with a JSON object holding ``session_id`` (a session of
that pool) and the op's arguments; the answer is ``{"value": ...}`` or, with
HTTP 400, ``{"error": "..."}``. ``Control`` is the Python client.

Ops:

``workload_start`` ``{vm, userdevice, pattern, rate, block_size, seed,
hot_fraction, hot_share}``: start writing to one of a running VM's disks
(``pattern``: sequential | uniform | hotspot; ``rate`` in bytes/s, 0 for
as fast as the disk goes). ``workload_stop`` ``{vm}``: stop every writer of
the VM (journals are kept for ``guest_check``). ``guest_stats`` ``{vm}``:
heartbeat gaps, writes, write latency p50/p99. ``guest_check`` ``{vm}``:
compare each written disk with the image the writes imply.
``heartbeat_reset`` ``{vm}``: forget the largest gaps seen so far.
``vm_digests`` ``{vm}``: sha256 of every disk of the VM and of its
snapshots (keys: userdevice, or snapshot name/userdevice), for disks no
guest writes to.
``guest_agent`` ``{vm, pv_drivers, can_use_hotplug_vif,
can_use_hotplug_vbd}``: what the VM's guest agent reports in
VM_guest_metrics from now on, across reboots and migrations. The default
guest is a Linux guest with PV drivers whose agent claims VIF and VBD
hotplug (``yes``); ``pv_drivers: false`` is a guest without drivers or
agent (no VM_guest_metrics: an HVM guest then refuses VIF hotplug with
VM_MISSING_PV_DRIVERS); ``yes`` | ``no`` | ``unspecified`` for each
hotplug claim.
``vm`` is a VM ref or uuid of this pool.

Simulator-wide ops: ``fault_inject`` ``{point, percent, times, code,
params, method}`` arms a fault at a named point of the next migrations
(points: prepare, snapshot, mirror, copy, destination_full, metadata,
memory, cooperate, finalize; ``percent`` of a disk's copy for mirror, copy
and destination_full), on the next SR.scan (``sr_scan``), or on the
connection of a call (``connection_reset``, with an optional ``method``);
``action: toolstack_restart`` restarts the toolstack at a migration point
instead; see ``xapi_sim.faults``. ``fault_clear``; ``faults`` lists what
is armed.

Field events: ``host_live`` ``{host, live}`` marks a member host of the
pool dead (``live: false``: it lost power; its VMs stay Running in the
database, their guests stop; calls forwarded to it answer HOST_OFFLINE,
placement on it HOST_NOT_LIVE, VM.power_state_reset is allowed) or boots
it again (``live: true``: new boot_time, VMs not reset meanwhile halted);
``host`` is its name label, uuid or ref; answers ``{host, live, enabled,
other_config}`` (see ``Pool.host_live``).
``allow_multiple_vdi_attach`` ``{host, allow}`` creates (``allow:
true``) or removes the host's /etc/xensource/allow_multiple_vdi_attach,
absent on a fresh host: without it SM refuses to attach a VDI that another
host holds RW (SR_BACKEND_FAILURE_46, see ``api.vm.assert_host_may_attach``).
``toolstack_restart`` ``{pool, down}`` restarts the toolstack of the pool
(default: the pool asked): connections drop, new
ones are refused for ``down`` seconds, every session and task is gone,
calls in flight end unanswered, guests run on (``Simulator.
restart_toolstack``). ``designate_new_master`` ``{host, pool, down}``
moves the master role to another host of the pool (a ref, uuid or name),
with the same restart; the old master answers HOST_IS_SLAVE. Both answer
``{pool, epoch, url}`` (the master's URL) once the pool serves again; the
session the request carried is gone by then.
``configure`` ``{algorithm, bandwidth, mirror_latency, memory_seconds,
pause_seconds, downtime_target, max_passes, relax_xsm_sr_check,
leave_base_mirror}`` changes how storage migrations run (see
``xapi_sim.migration.DEFAULT_SETTINGS``) and returns all settings;
``migrations`` returns the log of finished storage migrations (time,
downtime, bytes copied and mirrored, passes, converged).
"""

import hashlib
import json
import urllib.error
import urllib.request

from xapi_sim import errors
from xapi_sim import faults
from xapi_sim import guest
from xapi_sim import pool as poolmod


class ControlError(ValueError):
    pass


def _vm_uuid(pool, request):
    vm = request.get('vm')
    if not isinstance(vm, str):
        raise ControlError('"vm" (a VM ref or uuid) is required')
    with pool.db.lock:
        try:
            if vm.startswith('OpaqueRef:'):
                return pool.db.get('VM', vm)['uuid']
            pool.db.by_uuid_ref('VM', vm)
            return vm
        except errors.XapiError as exc:
            raise ControlError('no such VM %s in pool %s (%s)'
                               % (vm, pool.name, exc.code))


_WORKLOAD_KEYS = ('pattern', 'rate', 'block_size', 'seed', 'hot_fraction',
                  'hot_share')


def _simulator_op(sim, op, request):
    """Ops about the whole simulator, not one VM; None if ``op`` is not."""
    try:
        if op == 'fault_inject':
            args = {k: request[k] for k in ('point', 'percent', 'times',
                                            'code', 'params', 'method',
                                            'action')
                    if k in request}
            sim.faults.arm(**args)
            return sim.faults.armed()
        if op == 'fault_clear':
            sim.faults.clear()
            return []
        if op == 'faults':
            return sim.faults.armed()
        if op == 'configure':
            return sim.configure(**request)
        if op == 'migrations':
            return list(sim.migration_log)
    except (faults.FaultError, ValueError, TypeError) as exc:
        raise ControlError(str(exc))
    return None


def _field_op(pool, op, request, connection):
    """A toolstack restart or a master move; None if ``op`` is neither."""
    if op not in ('toolstack_restart', 'designate_new_master'):
        return None
    known = {'pool', 'down'} | ({'host'} if op != 'toolstack_restart'
                                else set())
    unknown = set(request) - known
    if unknown:
        raise ControlError('unknown %s parameters: %s'
                           % (op, ', '.join(sorted(unknown))))
    name = request.get('pool', pool.name)
    try:
        down = float(request.get('down') or 0)
        if op == 'toolstack_restart':
            return pool.sim.restart_toolstack(name, down=down,
                                              keep=connection)
        return pool.sim.designate_new_master(name, request.get('host'),
                                             down=down, keep=connection)
    except (ValueError, TypeError) as exc:
        raise ControlError(str(exc))


def handle(pool, op, request, connection=None):
    sim = pool.sim
    value = _field_op(pool, op, request, connection)
    if value is not None:
        return value
    value = _simulator_op(sim, op, request)
    if value is not None:
        return value
    if op == 'calls':
        return calls_of(pool, reset=bool(request.get('reset')))
    if op == 'host_live':
        return _host_live(pool, request)
    if op == 'allow_multiple_vdi_attach':
        return _allow_multiple_vdi_attach(pool, request)
    uuid = _vm_uuid(pool, request)
    if op == 'guest_agent':
        return _guest_agent(pool, uuid, request)
    if op == 'vm_digests':
        try:
            return _vm_digests(pool, uuid)
        except errors.XapiError as exc:
            raise ControlError('cannot read the disks of VM %s: %s'
                               % (uuid, exc))
    dom = sim.domains.get(uuid)
    if op == 'workload_start':
        if dom is None or not dom.running:
            raise ControlError('VM %s is not running' % uuid)
        unknown = set(request) - set(_WORKLOAD_KEYS) - {'vm', 'userdevice'}
        if unknown:
            raise ControlError('unknown workload parameters: %s'
                               % ', '.join(sorted(unknown)))
        params = {k: request[k] for k in _WORKLOAD_KEYS if k in request}
        try:
            dom.start_workload(request.get('userdevice'), **params)
        except (guest.WorkloadError, errors.XapiError, TypeError) as exc:
            raise ControlError(str(exc))
        return dom.stats()
    if dom is None:
        raise ControlError('VM %s has never run' % uuid)
    if op == 'workload_stop':
        dom.stop_workloads()
        return dom.stats()
    if op == 'guest_stats':
        return dom.stats()
    if op == 'guest_check':
        try:
            return dom.check()
        except errors.XapiError as exc:
            raise ControlError('cannot read the disks of VM %s: %s'
                               % (uuid, exc))
    if op == 'heartbeat_reset':
        dom.reset_heartbeat()
        return dom.stats()
    raise ControlError('unknown control op %r' % op)


def _host_live(pool, request):
    unknown = set(request) - {'host', 'live'}
    if unknown:
        raise ControlError('unknown host_live parameters: %s'
                           % ', '.join(sorted(unknown)))
    live = request.get('live')
    if not isinstance(live, bool):
        raise ControlError('"live" (true or false) is required')
    try:
        return pool.host_live(request.get('host'), live)
    except ValueError as exc:
        raise ControlError(str(exc))


def _allow_multiple_vdi_attach(pool, request):
    unknown = set(request) - {'host', 'allow'}
    if unknown:
        raise ControlError('unknown allow_multiple_vdi_attach parameters: '
                           '%s' % ', '.join(sorted(unknown)))
    allow = request.get('allow')
    if not isinstance(allow, bool):
        raise ControlError('"allow" (true or false) is required')
    try:
        return pool.allow_multiple_vdi_attach(request.get('host'), allow)
    except ValueError as exc:
        raise ControlError(str(exc))


def _guest_agent(pool, uuid, request):
    """Set what the VM's guest agent reports; returns the whole profile.

    A running guest's metrics change at once (an agent that was not
    there starts with the next boot: installing PV drivers needs one).
    """
    changes = {k: v for k, v in request.items() if k != 'vm'}
    sim = pool.sim
    try:
        profile = poolmod.guest_agent_profile(sim.guest_agents.get(uuid),
                                              **changes)
    except ValueError as exc:
        raise ControlError(str(exc))
    sim.guest_agents[uuid] = profile
    with pool.db.lock:
        vm = pool.db.by_uuid_ref('VM', uuid)
        rec = pool.db.get('VM', vm)
        if (rec['power_state'] in ('Running', 'Paused') and pool.db.exists(
                'VM_guest_metrics', rec['guest_metrics'])):
            poolmod.apply_guest_agent(pool.db, vm, rec, profile)
    return dict(profile)


def calls_of(pool, reset=False, exclude=()):
    """The pool's call log summary (``reset``: start counting afresh).

    With ``sessions_open``: the sessions the pool holds now.
    """
    out = pool.call_log.summary(exclude=exclude)
    with pool.db.lock:
        out['sessions_open'] = len(pool.db.all_refs('session'))
    if reset:
        pool.call_log.reset()
    return out


def _vm_digests(pool, uuid):
    """sha256 of every disk of a VM and of its snapshots, by userdevice.

    For the disks no guest writes to (a halted VM, snapshots): record
    before a migration, compare after.
    """
    with pool.db.lock:
        vm = pool.db.by_uuid_ref('VM', uuid)
        owners = [('', vm)] + [(pool.db.get('VM', s)['name_label'], s)
                               for s in pool.db.get('VM', vm)['snapshots']]
        wanted = []
        for name, owner in owners:
            for vbd in pool.db.get('VM', owner)['VBDs']:
                rec = pool.db.get('VBD', vbd)
                if rec['VDI'] != 'OpaqueRef:NULL' and rec['type'] != 'CD':
                    wanted.append((name, rec['userdevice'], rec['VDI']))
    out = {}
    for name, userdevice, vdi in wanted:
        disk = pool.disk(vdi)
        digest = hashlib.sha256()
        for offset in range(0, disk.size, 1 << 20):
            digest.update(disk.read(offset, 1 << 20))
        key = userdevice if not name else '%s/%s' % (name, userdevice)
        out[key] = digest.hexdigest()
    return out


class Control(object):
    """Client of one pool's control interface."""

    def __init__(self, url, session_id, timeout=60):
        self.base = url.rstrip('/') + '/sim/'
        self._session_id = session_id
        self.timeout = timeout

    def call(self, op, **args):
        args['session_id'] = self._session_id
        req = urllib.request.Request(self.base + op,
                                     data=json.dumps(args).encode(),
                                     method='POST')
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())['value']
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())['error']
            except ValueError:
                message = exc.reason
            raise ControlError(message)

    def workload_start(self, vm, userdevice, **params):
        return self.call('workload_start', vm=vm, userdevice=userdevice,
                         **params)

    def workload_stop(self, vm):
        return self.call('workload_stop', vm=vm)

    def guest_stats(self, vm):
        return self.call('guest_stats', vm=vm)

    def guest_check(self, vm):
        return self.call('guest_check', vm=vm)

    def heartbeat_reset(self, vm):
        return self.call('heartbeat_reset', vm=vm)

    def vm_digests(self, vm):
        return self.call('vm_digests', vm=vm)

    def fault_inject(self, point, **args):
        return self.call('fault_inject', point=point, **args)

    def fault_clear(self):
        return self.call('fault_clear')

    def configure(self, **settings):
        return self.call('configure', **settings)

    def toolstack_restart(self, pool=None, down=0):
        args = {'down': down}
        if pool is not None:
            args['pool'] = pool
        return self.call('toolstack_restart', **args)

    def designate_new_master(self, host, pool=None, down=0):
        args = {'host': host, 'down': down}
        if pool is not None:
            args['pool'] = pool
        return self.call('designate_new_master', **args)

    def migrations(self):
        return self.call('migrations')

    def host_live(self, host, live):
        """Mark a member host dead (``live`` False) or booted again.

        ``host``: its name label, uuid or ref. See ``Pool.host_live``.
        """
        return self.call('host_live', host=host, live=bool(live))

    def allow_multiple_vdi_attach(self, host, allow):
        """Create or remove the host's allow_multiple_vdi_attach file.

        ``host``: its name label, uuid or ref. See
        ``Pool.allow_multiple_vdi_attach``.
        """
        return self.call('allow_multiple_vdi_attach', host=host,
                         allow=bool(allow))

    def guest_agent(self, vm, **settings):
        """What the VM's guest agent reports from now on.

        ``pv_drivers`` (False: no agent, no guest metrics),
        ``can_use_hotplug_vif``, ``can_use_hotplug_vbd`` (yes | no |
        unspecified). Returns the VM's whole profile.
        """
        return self.call('guest_agent', vm=vm, **settings)

    def calls(self, reset=False):
        """The pool's call log summary (see ``calls_of``).

        {'calls', 'bytes', 'logins', 'by_method', 'by_originator',
        'sessions_open'}; ``reset`` starts counting afresh.
        """
        return self.call('calls', reset=reset)
