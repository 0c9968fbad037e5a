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

"""Destination clean-up: what a failed or aborted migration left behind.

xapi removes what a failed migrate_send created; this is for what a crash,
a lost connection or a killed owner left: a halted VM record with the
source VM's uuid (across pools) and the VDIs made for it, and VDIs still
marked as mirror targets of the VM's disks. Used by the Migrator's
callers after a failure, by a custodian whose owner died and by Nova's
rollback at the destination.
"""

from sxm_core import constants
from sxm_core import errors
from sxm_core import redact
from sxm_core import sessions

LOG = redact.get_logger(__name__)
NULL = constants.OPAQUE_NULL
STORAGE_OPERATION = 'migrate_send'


def cleanup_destination(dest_pool, vm_uuid, source_vdis=(), cross_pool=True,
                        source_pool=None):
    """Remove what a failed or aborted migration of ``vm_uuid`` left.

    In the destination pool: across pools, a halted VM record with the
    source VM's uuid (and its snapshots) and the VDIs of its disks; in
    either case, VDIs still marked as mirror targets (``sm_config
    base_mirror``) of the VM's disks ``source_vdis`` (uuids). A VDI with
    one of those uuids is never removed: a shared SR's VDI keeps its uuid
    in both pools.

    Raises ``errors.MigrationCompleted`` when the VM runs in the
    destination pool, or is gone from ``source_pool`` (when given): the
    migration finished and nothing may be removed; and
    ``errors.MigrationRunning`` while its migrate_send still runs there.
    Safe to call twice: the second call finds nothing. Returns
    [description of each removed object]; a step that fails does not stop
    the others (``errors.CleanupFailed`` at the end).
    """
    keep = set(source_vdis)
    removed = []
    undo = errors.ErrorCollector()
    pool_name = sessions.safe_url(dest_pool.url)
    if source_pool is not None:
        _still_at_source(source_pool, vm_uuid, cross_pool, pool_name)
    with dest_pool.session() as x:
        vdis = []   # refs of VDIs created for the VM
        if cross_pool:
            vdis.extend(_remove_vm(x, vm_uuid, keep, pool_name, undo,
                                   removed))
        marks = {'/' + uuid for uuid in keep}
        for ref, rec in x.VDI.get_all_records().items():
            mark = (rec.get('sm_config') or {}).get('base_mirror', '')
            if rec['uuid'] not in keep and any(
                    mark.endswith(m) for m in marks) and ref not in vdis:
                vdis.append(ref)
        for vdi in vdis:
            with undo.context('removing VDI %s', vdi):
                try:
                    uuid = x.VDI.get_uuid(vdi)
                    x.VDI.destroy(vdi)
                except errors.HandleInvalid:
                    continue  # gone already: cleaned twice
                removed.append('VDI %s' % uuid)
    if removed:
        LOG.info('Removed what the migration of VM %s left in the pool at '
                 '%s: %s', vm_uuid, pool_name, ', '.join(removed))
    undo.raise_if_any()
    return removed


def _still_at_source(source_pool, vm_uuid, cross_pool, pool_name):
    """Raise unless the source VM exists and no migrate_send of it runs."""
    try:
        ref = source_pool.call('VM.get_by_uuid', vm_uuid)
        ops = source_pool.call('VM.get_current_operations', ref)
    except errors.XapiFailure as exc:
        if not errors.missing(exc) or not cross_pool:
            raise
        raise errors.MigrationCompleted(
            vm_uuid=vm_uuid, pool=pool_name,
            why='the source VM is gone') from None
    if STORAGE_OPERATION in ops.values():
        raise errors.MigrationRunning(vm_uuid=vm_uuid)


def _remove_vm(x, vm_uuid, keep, pool_name, undo, removed):
    """Destroy the halted VM ``vm_uuid`` and its snapshots in session ``x``.

    Returns the refs of their disks' VDIs (not those in ``keep``), for
    the caller to destroy.
    """
    try:
        vm = x.VM.get_by_uuid(vm_uuid)
    except errors.UuidInvalid:
        return []
    rec = x.VM.get_record(vm)
    if rec['power_state'] != constants.HALTED:
        raise errors.MigrationCompleted(
            vm_uuid=vm_uuid, pool=pool_name,
            why='the VM is %s there' % rec['power_state'])
    vdis = []
    owners = list(rec['snapshots']) + [vm]
    for owner in owners:
        for vbd in x.VM.get_VBDs(owner):
            vbd_rec = x.VBD.get_record(vbd)
            if vbd_rec['type'] == 'CD' or vbd_rec['VDI'] == NULL:
                continue
            if x.VDI.get_uuid(vbd_rec['VDI']) not in keep:
                vdis.append(vbd_rec['VDI'])
    for owner in owners:
        with undo.context('removing VM %s', owner):
            x.VM.destroy(owner)
            removed.append('VM %s' % (vm_uuid if owner == vm else owner))
    return vdis
