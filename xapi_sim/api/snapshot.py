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

"""VM.snapshot: a halted template of a VM on snapshots of its disks."""

import time

from xapi_sim.api import method
from xapi_sim.api import storage as storage_api
from xapi_sim.api import vm as vm_api
from xapi_sim import migration

NULL = 'OpaqueRef:NULL'


@method('VM.snapshot', ['vm', 'new_name', 'ignore_vdis'], optional=1)
def vm_snapshot(ctx, vm, new_name, ignore_vdis=()):
    db = ctx.db
    with db.lock:
        # VM_IS_SNAPSHOT for a snapshot, VM_IS_TEMPLATE for a template,
        # OPERATION_NOT_ALLOWED for a control domain.
        vm_api.check_operation(db, vm, 'snapshot')
        rec = db.snapshot('VM', vm)
        vbds = [db.snapshot('VBD', v) for v in rec['VBDs']]
        vifs = [db.snapshot('VIF', v) for v in rec['VIFs']]
    snap_vdis = {}
    try:
        for vbd in vbds:
            vdi = vbd['VDI']
            if (vbd['empty'] or vbd['type'] == 'CD' or vdi == NULL
                    or vdi in ignore_vdis):
                continue
            # VDI_IS_SHARABLE [vdi] for a sharable disk, as each VDI.snapshot
            # of Xapi_vm_clone.safe_clone_disks says.
            snap_vdis[vdi] = storage_api.vdi_snapshot(ctx, vdi)
    except BaseException:
        # safe_clone_disks deletes the disks made so far.
        for made in snap_vdis.values():
            ctx.pool.remove_vdi(made)
        raise
    now = time.time()
    fields = migration.vm_fields(rec, {
        'name_label': new_name, 'is_a_snapshot': True, 'snapshot_of': vm,
        # xapi makes every snapshot a template: it cannot start.
        'is_a_template': True,
        'snapshot_time': now, 'power_state': 'Halted'})
    fields.pop('uuid')
    with db.lock:
        snap = db.add('VM', fields)
        for vbd in vbds:
            vdi = snap_vdis.get(vbd['VDI'])
            if vdi is None and vbd['type'] != 'CD':
                continue
            db.add('VBD', migration.device_fields(vbd, {
                'VM': snap, 'VDI': vdi or vbd['VDI']}))
        for vif in vifs:
            db.add('VIF', migration.device_fields(vif, {
                'VM': snap, 'network': vif['network']}))
    return snap
