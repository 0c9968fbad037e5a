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

"""VM.clone and VM.copy: a new VM on clones or full copies of the disks.

As xen-api ``xapi_vm_clone.ml`` (``clone``, ``copy_vm_record``,
``safe_clone_disks``) and ``xapi_vm.ml`` (``copy``): the disks first, one
after the other (VDI.clone in place, or VDI.copy into the chosen SR), then
the VM record, its VBDs and VIFs; a failure deletes what was made.
"""

import random
import uuid as uuidlib

from xapi_sim.api import generic
from xapi_sim.api import method
from xapi_sim.api import migrate as migrate_api
from xapi_sim.api import storage as storage_api
from xapi_sim.api import vm as vm_api
from xapi_sim import errors
from xapi_sim import migration

NULL = generic.NULL
# xapi_globs: other_config keys a clone drops, and the pool's switch that
# lets a suspended VM be cloned.
_DROPPED_KEYS = ('default_template', 'xensource_internal')
_ALLOW_SUSPENDED = 'allow_clone_suspended_vm'


def _check(db, vm, op, pool_ref):
    """xapi_vm_lifecycle.check_operation_error for clone and copy."""
    rec = db.get('VM', vm)
    blocked = rec['blocked_operations'].get(op)
    if blocked is not None:
        raise errors.XapiError('OPERATION_BLOCKED', vm, blocked)
    allowed = ('Halted',)
    if rec['is_a_snapshot'] or db.get('pool', pool_ref)['other_config'].get(
            _ALLOW_SUSPENDED) == 'true':
        allowed += ('Suspended',)
    if rec['power_state'] not in allowed:
        raise vm_api.bad_power_state(vm, allowed, rec['power_state'])
    generic.assert_idle(db, vm)
    if rec['is_control_domain']:
        raise errors.XapiError('OPERATION_NOT_ALLOWED',
                               'This operation is not allowed on a control '
                               'domain')
    return rec


def _fresh_genid(current):
    # Xapi_vm_helpers.fresh_genid: "" means the guest has none.
    if current == '':
        return current
    return '%d:%d' % (random.getrandbits(63), random.getrandbits(63))


class _Share(object):
    """A handler context reporting one disk's part of the task's progress."""

    def __init__(self, ctx, start, end):
        self._ctx = ctx
        self._start = start
        self._end = end

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def progress(self, fraction):
        self._ctx.progress(self._start
                           + (self._end - self._start) * fraction)


def _clone_disk(ctx, vdi, sr):
    """One disk: VDI.clone when ``sr`` is None, else VDI.copy into it."""
    if sr is None:
        ctx.check_cancel()
        return storage_api.vdi_clone(ctx, vdi)
    return storage_api.vdi_copy(ctx, vdi, sr)


def _clone_disks(ctx, vbds, sr_of):
    """safe_clone_disks: {source VDI: new VDI}; on failure none is left."""
    wanted = [(v['VDI'], v['virtual_size']) for v in vbds]
    total = float(sum(size for _, size in wanted)) or 1.0
    made = {}
    done = 0
    try:
        for vdi, size in wanted:
            ctx.check_cancel()
            share = _Share(ctx, 0.9 * done / total,
                           0.9 * (done + size) / total)
            made[vdi] = _clone_disk(share, vdi, sr_of(vdi))
            done += size
            share.progress(1.0)
    except BaseException:
        for new in made.values():
            migration.destroy_vdi(ctx.pool, new)
        raise
    return made


def _new_record(rec, new_name, power_state):
    """copy_vm_record: what the new VM keeps and what it gets afresh."""
    fields = migration.vm_fields(rec, {
        'name_label': new_name, 'power_state': power_state,
        'affinity': rec['affinity'], 'blocked_operations': {},
        'is_a_template': rec['is_a_template'],
        'generation_id': _fresh_genid(rec['generation_id'])})
    for name in ('uuid', 'snapshot_time'):
        fields.pop(name, None)
    other = {k: v for k, v in rec['other_config'].items()
             if k not in _DROPPED_KEYS}
    other['mac_seed'] = str(uuidlib.uuid4())
    if rec['is_a_template']:
        other.setdefault('base_template_name', rec['name_label'])
    fields['other_config'] = other
    return fields


def clone_vm(ctx, vm, new_name, op, sr=None):
    """VM.clone (``sr`` None: copy-on-write clones in place) or VM.copy.

    VM.copy with ``sr`` None copies each disk within its own SR.
    """
    db = ctx.db
    with db.lock:
        rec = _check(db, vm, op, ctx.pool.pool_ref)
        vbds = []
        for vbd in rec['VBDs']:
            vrec = db.snapshot('VBD', vbd)
            vrec['virtual_size'] = 0
            if not vrec['empty'] and vrec['type'] != 'CD':
                vrec['virtual_size'] = db.get('VDI',
                                              vrec['VDI'])['virtual_size']
            vbds.append(vrec)
        vifs = [db.snapshot('VIF', v) for v in rec['VIFs']]
        suspend = rec['suspend_VDI']
    # A snapshot's copy is halted (xapi hard-shuts it down after).
    suspended = rec['power_state'] == 'Suspended' and not rec['is_a_snapshot']
    if op == 'clone':
        def sr_of(vdi):
            return None
    else:
        def sr_of(vdi):
            if sr is not None:
                return sr
            with db.lock:
                return db.get('VDI', vdi)['SR']
    disks = [v for v in vbds if not v['empty'] and v['type'] != 'CD']
    with migrate_api.vm_operation(ctx, vm, op):
        made = _clone_disks(ctx, disks, sr_of)
        try:
            new_suspend = NULL
            if suspended and suspend != NULL:
                new_suspend = _clone_disk(ctx, suspend, sr_of(suspend))
                made[suspend] = new_suspend
            ctx.check_cancel()
            power = 'Suspended' if suspended else 'Halted'
            fields = _new_record(rec, new_name, power)
            fields['suspend_VDI'] = new_suspend
            with db.lock:
                new_vm = db.add('VM', fields)
                for vbd in vbds:
                    vdi = made.get(vbd['VDI'], vbd['VDI'])
                    extra = {'VM': new_vm, 'VDI': vdi}
                    if suspended:
                        extra['currently_attached'] = vbd[
                            'currently_attached']
                    if vbd['type'] == 'Disk':
                        # CA-58405: the new VM owns its new disks.
                        other = dict(vbd['other_config'])
                        other.setdefault('owner', '')
                        extra['other_config'] = other
                    device = dict(vbd)
                    device.pop('virtual_size')
                    db.add('VBD', migration.device_fields(device, extra))
                for vif in vifs:
                    extra = {'VM': new_vm, 'network': vif['network'],
                             'MAC': vm_api.random_mac(),
                             'MAC_autogenerated': True}
                    if suspended:
                        extra['currently_attached'] = vif[
                            'currently_attached']
                    db.add('VIF', migration.device_fields(vif, extra))
        except BaseException:
            for new in made.values():
                migration.destroy_vdi(ctx.pool, new)
            raise
    ctx.progress(1.0)
    return new_vm


@method('VM.clone', ['vm', 'new_name'])
def vm_clone(ctx, vm, new_name):
    return clone_vm(ctx, vm, new_name, 'clone')


@method('VM.copy', ['vm', 'new_name', 'sr'])
def vm_copy(ctx, vm, new_name, sr):
    with ctx.db.lock:
        ctx.db.get('VM', vm)
        # An SR that does not exist is no error: each disk stays in its own.
        target = sr if ctx.db.exists('SR', sr) else None
        if (target is not None
                and ctx.db.get('SR', sr)['content_type'] == 'iso'):
            raise errors.XapiError('OPERATION_NOT_ALLOWED',
                                   "Cannot copy a VM's disks to an ISO SR")
    return clone_vm(ctx, vm, new_name, 'copy', target)
