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

"""Migration messages: host.migrate_receive and the VM and VDI migrations.

VM.assert_can_migrate, VM.migrate_send, VM.pool_migrate, VDI.pool_migrate:
the checks and their order follow xen-api ``xapi_vm_migrate.ml``
(``assert_can_migrate``, ``migrate_send'``, ``vdi_pool_migrate``) and
``xapi_host.ml`` (``migrate_receive``); the engine is
``xapi_sim.migration``. The ``copy`` option (cross-pool, halted VM unless
``force``) imports a new VM and leaves the source as it was.
"""

import contextlib
import urllib.parse
import uuid as uuidlib

from xapi_sim.api import generic
from xapi_sim.api import method
from xapi_sim.api import storage as storage_api
from xapi_sim.api import vm as vm_api
from xapi_sim import errors
from xapi_sim import memory
from xapi_sim import migration

NULL = generic.NULL
MIGRATE_SEND_STATES = ('Halted', 'Suspended', 'Running')
# What SM must offer (assert_sr_support_operations): snapshot and mirror
# out of the source SR, mirror into the destination SR.
SOURCE_SR_FEATURES = ('VDI_SNAPSHOT', 'VDI_MIRROR')
DEST_SR_FEATURES = ('VDI_MIRROR_IN',)


def _url(address, port, path=''):
    return 'http://%s:%d/%s' % (address, port, path)


@method('host.migrate_receive', ['host', 'network', 'options'])
def migrate_receive(ctx, host, network, options):
    db = ctx.db
    with db.lock:
        db.get('host', host)
        db.get('network', network)
        pifs = [p for p in db.get('network', network)['PIFs']
                if db.get('PIF', p)['host'] == host]
        if not pifs:
            raise errors.XapiError('HOST_CANNOT_ATTACH_NETWORK', host,
                                   network)
        pif = db.get('PIF', pifs[0])
        if not pif['IP']:
            mode = pif['ip_configuration_mode']
            if mode == 'None':
                raise errors.XapiError('PIF_HAS_NO_NETWORK_CONFIGURATION',
                                       pifs[0])
            if mode == 'DHCP':
                raise errors.XapiError('INTERFACE_HAS_NO_IP', pifs[0])
            raise errors.XapiError('INTERNAL_ERROR', 'No IP address on PIF')
        caller = db.get('session', ctx.session)
        session = ctx.pool.new_session(caller, host, parent=ctx.session)
    port = ctx.pool.port
    query = 'session_id=%s' % session
    return {
        'SM': _url(pif['IP'], port, 'services/SM?' + query),
        'host': host,
        'xenops': _url(pif['IP'], port, 'services/xenops?' + query),
        'session_id': session,
        'master': _url(ctx.pool.address, port),
    }


class _Dest(object):
    """Where a migration goes: a pool, a host, and whether it is remote."""

    def __init__(self, ctx, dest):
        if not isinstance(dest, dict) or 'host' not in dest:
            raise errors.XapiError('FIELD_TYPE_ERROR', 'dest')
        self.host = dest['host']
        if ctx.db.exists('host', self.host):
            self.pool = ctx.pool
            self.cross_pool = False
            return
        master = dest.get('master', '')
        pool = ctx.pool.sim.pool_by_url(master)
        if pool is None:
            netloc = urllib.parse.urlsplit(master).netloc or master
            raise errors.XapiError('CANNOT_CONTACT_HOST', netloc)
        pool.check_session(dest.get('session_id'))
        with pool.db.lock:
            pool.db.get('host', self.host)
        self.pool = pool
        self.cross_pool = True


def _features(pool, sr):
    with pool.db.lock:
        return storage_api.sm_features(pool.db, sr)


def _assert_sr_support(src_pool, src_sr, dst_pool, dst_sr):
    for pool, sr, wanted in ((src_pool, src_sr, SOURCE_SR_FEATURES),
                             (dst_pool, dst_sr, DEST_SR_FEATURES)):
        feats = _features(pool, sr)
        if not all(f in feats for f in wanted):
            raise errors.XapiError('SR_DOES_NOT_SUPPORT_MIGRATION', sr)


def _disk_vbds(db, vm):
    """(vbd, vdi) of a VM's non-empty, non-CD VBDs: what must move."""
    out = []
    for vbd in db.get('VM', vm)['VBDs']:
        rec = db.get('VBD', vbd)
        if rec['empty'] or rec['type'] == 'CD' or rec['VDI'] == NULL:
            continue
        out.append((vbd, rec['VDI']))
    return out


def _infer_vif_map(db, vm, vif_map):
    """A network for every VIF of the VM and of its snapshots.

    A VIF that shares a MAC with a mapped one inherits its network.
    """
    vifs = list(db.get('VM', vm)['VIFs'])
    for snap in db.get('VM', vm)['snapshots']:
        vifs.extend(db.get('VM', snap)['VIFs'])
    by_mac = {}
    for vif, net in vif_map.items():
        if db.exists('VIF', vif):
            by_mac[db.get('VIF', vif)['MAC']] = net
    out = {}
    for vif in vifs:
        net = vif_map.get(vif) or by_mac.get(db.get('VIF', vif)['MAC'])
        if net is None:
            raise errors.XapiError('VIF_NOT_IN_MAP', vif)
        out[vif] = net
    return out


def prepare(ctx, vm, dest, live, vdi_map, vif_map, options):
    """Every check of assert_can_migrate; returns a ready Migration.

    The two pools' locks are never held together: two migrations crossing
    in opposite directions must not deadlock.
    """
    db = ctx.db
    for name, value in (('vdi_map', vdi_map), ('vif_map', vif_map),
                        ('options', options)):
        if not isinstance(value, dict):
            raise errors.XapiError('FIELD_TYPE_ERROR', name)
    copy_mode = bool_option(options, 'copy')
    force = bool_option(options, 'force')
    with db.lock:
        rec = db.get('VM', vm)
        blocked = rec['blocked_operations'].get('migrate_send')
        if blocked is not None:
            # xapi_vm_lifecycle.check_operation_error, before anything else.
            raise errors.XapiError('OPERATION_BLOCKED', vm, blocked)
        if rec['is_control_domain']:
            raise errors.XapiError('OPERATION_NOT_ALLOWED',
                                   'cannot migrate a control domain')
        if rec['is_a_template'] and (
                rec['is_default_template']
                or rec['other_config'].get('default_template') == 'true'):
            # xapi_vm_lifecycle: default templates cannot move.
            raise errors.XapiError('VM_IS_TEMPLATE', vm, 'migrate_send')
        if rec['power_state'] not in MIGRATE_SEND_STATES:
            raise vm_api.bad_power_state(vm, MIGRATE_SEND_STATES,
                                         rec['power_state'])
        # message_forwarding: migrate_send runs on the VM's host.
        vm_api.assert_resident_live(ctx, vm)
    target = _Dest(ctx, dest)
    dst = target.pool
    with db.lock:
        rec = db.snapshot('VM', vm)
        disks = _disk_vbds(db, vm)
        for _, vdi in disks:
            if vdi not in vdi_map:
                raise errors.XapiError('VDI_NOT_IN_MAP', vdi)
        for _, vdi in disks:
            if db.get('VDI', vdi)['cbt_enabled']:
                raise errors.XapiError('VDI_CBT_ENABLED', vdi)
        if not target.cross_pool:
            # assert_can_migrate, intra-pool: assert_can_boot_here on the
            # destination (do_sr_check:false: the disks are moving).
            vm_api.assert_can_boot_here(ctx, vm, target.host,
                                        do_sr_check=False)
        if not target.cross_pool and vif_map:
            raise errors.XapiError(
                'OPERATION_NOT_ALLOWED',
                'VIF mapping is not allowed for intra-pool migration')
        source_srs = {vdi: (db.get('VDI', vdi)['SR'],
                            db.get('SR', db.get('VDI', vdi)['SR'])['uuid'])
                      for vdi in vdi_map}
    with dst.db.lock:
        dest_sr_uuids = {sr: dst.db.get('SR', sr)['uuid']
                         for sr in vdi_map.values()}
        default_sr = dst.db.get('pool', dst.pool_ref)['default_SR']
    relax = ctx.pool.sim.settings['relax_xsm_sr_check']
    for vdi, sr in vdi_map.items():
        src_sr, src_uuid = source_srs[vdi]
        same = (sr == src_sr if not target.cross_pool
                else relax and dest_sr_uuids[sr] == src_uuid)
        if not same:
            _assert_sr_support(ctx.pool, src_sr, dst, sr)
    if (target.cross_pool and copy_mode and not force
            and rec['power_state'] != 'Halted'):
        # assert_can_migrate: "The copy mode is only allow on stopped VM".
        raise vm_api.bad_power_state(vm, 'Halted', rec['power_state'])
    if target.cross_pool:
        with dst.db.lock:
            # assert_can_migrate: "the remote host is enabled and not in
            # maintenance mode".
            if not dst.db.get('host', target.host)['enabled']:
                raise errors.XapiError('HOST_DISABLED', target.host)
    full_vif_map = {}
    if target.cross_pool:
        with db.lock:
            full_vif_map = _infer_vif_map(db, vm, vif_map)
        with dst.db.lock:
            for net in full_vif_map.values():
                dst.db.get('network', net)
            if rec['power_state'] in memory.RUNNING and not copy_mode:
                # The dry-run import of a live VM checks the destination
                # host's free memory against the source's record.
                memory.assert_enough_memory(dst.db, target.host, rec)
    with db.lock:
        # A copy (even a forced one of a running VM) is a plain copy of
        # each disk: the new VM is imported halted, the source goes on.
        guest = rec['power_state'] == 'Running'
        running = guest and not copy_mode
        jobs = []
        for vbd, vdi in disks:
            vrec = db.snapshot('VDI', vdi)
            mode = db.get('VBD', vbd)['mode']
            kind = 'mirror' if running and mode == 'RW' else 'copy'
            job = migration.Job(vbd, vdi, vrec, ctx.pool.disk(vdi),
                                vdi_map[vdi], kind)
            job.freeze = copy_mode and guest and mode == 'RW'
            jobs.append(job)
        seen = {vdi for _, vdi in disks}
        # Copy mode does not send the snapshots, nor a suspend image (the
        # import makes a halted VM).
        for snap in ([] if copy_mode else rec['snapshots']):
            for _, vdi in _disk_vbds(db, snap):
                if vdi in seen:
                    continue
                seen.add(vdi)
                vrec = db.snapshot('VDI', vdi)
                sr = (vdi_map.get(vdi) or vdi_map.get(vrec['snapshot_of'])
                      or (default_sr if default_sr != NULL else None))
                if sr is None:
                    raise errors.XapiError('VDI_NOT_IN_MAP', vdi)
                jobs.append(migration.Job(None, vdi, vrec,
                                          ctx.pool.disk(vdi), sr, 'copy'))
        if not copy_mode:
            jobs.extend(_suspend_jobs(ctx, db, rec, target, vdi_map, seen))
    return migration.Migration(
        ctx, vm, jobs, dst, target.host, live=running,
        vif_map=full_vif_map, cross_pool=target.cross_pool,
        copy_mac=vm_api.random_mac if copy_mode else None)


def bool_option(options, key):
    """An option as xapi reads it (OCaml's bool_of_string, else false)."""
    return options.get(key) == 'true'


def _suspend_jobs(ctx, db, rec, target, vdi_map, seen):
    """Copies of the suspend images of the VM and its snapshots.

    As xapi_vm_migrate.migrate_send': a suspend image moves like a disk
    unless, in-pool, the destination host sees its SR already. Its SR is
    the vdi_map's entry, else the destination pool's suspend_image_SR,
    else the destination host's suspend_image_sr, else the default SR.
    """
    dst = target.pool
    jobs = []
    for vm_rec in [rec] + [db.get('VM', s) for s in rec['snapshots']]:
        vdi = vm_rec['suspend_VDI']
        if (vm_rec['power_state'] != 'Suspended' or vdi == NULL
                or vdi in seen or not db.exists('VDI', vdi)):
            continue
        sr = db.get('VDI', vdi)['SR']
        if not target.cross_pool and vm_api.sr_attached_on(db, sr,
                                                           target.host):
            continue
        seen.add(vdi)
        with dst.db.lock:
            pool_rec = dst.db.get('pool', dst.pool_ref)
            host_sr = dst.db.get('host', target.host)['suspend_image_sr']
            candidates = [vdi_map.get(vdi), pool_rec['suspend_image_SR'],
                          host_sr, pool_rec['default_SR']]
        dest_sr = next((c for c in candidates if c and c != NULL), None)
        if dest_sr is None:
            raise errors.XapiError('VDI_NOT_IN_MAP', vdi)
        jobs.append(migration.Job(None, vdi, db.snapshot('VDI', vdi),
                                  ctx.pool.disk(vdi), dest_sr, 'copy'))
    return jobs


@contextlib.contextmanager
def vm_operation(ctx, vm, operation):
    """Mark ``operation`` in the VM's current_operations while it runs.

    Like xapi's with_vm_operation: one such operation at a time per VM,
    else OTHER_OPERATION_IN_PROGRESS.
    """
    key = ctx.task or 'OpaqueRef:%s' % uuidlib.uuid4()
    db = ctx.db
    with db.lock:
        db.get('VM', vm)
        generic.assert_idle(db, vm)
        db.update('VM', vm, current_operations={key: operation})
    try:
        yield
    finally:
        with db.lock:
            if db.exists('VM', vm):
                ops = dict(db.get('VM', vm)['current_operations'])
                ops.pop(key, None)
                db.update('VM', vm, current_operations=ops)


@method('VM.assert_can_migrate',
        ['vm', 'dest', 'live', 'vdi_map', 'vif_map', 'options', 'vgpu_map'],
        optional=1)
def vm_assert_can_migrate(ctx, vm, dest, live, vdi_map, vif_map, options,
                          vgpu_map=None):
    prepare(ctx, vm, dest, live, vdi_map, vif_map, options)


@method('VM.migrate_send',
        ['vm', 'dest', 'live', 'vdi_map', 'vif_map', 'options', 'vgpu_map',
         'vdi_format_map'], optional=2)
def vm_migrate_send(ctx, vm, dest, live, vdi_map, vif_map, options,
                    vgpu_map=None, vdi_format_map=None):
    with vm_operation(ctx, vm, 'migrate_send'):
        if (isinstance(options, dict) and bool_option(options, 'copy')
                and not _Dest(ctx, dest).cross_pool):
            # migrate_send' (not assert_can_migrate) refuses this.
            raise errors.XapiError(
                'OPERATION_NOT_ALLOWED',
                'Copy mode is disallowed on intra pool storage migration, '
                'try efficient alternatives, for example, VM.copy/clone.')
        job = prepare(ctx, vm, dest, live, vdi_map, vif_map, options)
        return job.run()


@method('VM.pool_migrate', ['vm', 'host', 'options'])
def vm_pool_migrate(ctx, vm, host, options):
    db = ctx.db
    with db.lock:
        db.get('VM', vm)
        db.get('host', host)
        vm_api.check_operation(db, vm, 'pool_migrate')
        vm_api.assert_resident_live(ctx, vm)
        vm_api.check_disks_reachable(ctx, vm, host)
        if host != db.get('VM', vm)['resident_on']:
            vm_api.assert_can_boot_here(ctx, vm, host)
            # Counted on the destination until it runs there, so that two
            # migrations cannot both take its last free memory.
            db.update('VM', vm, scheduled_to_be_resident_on=host)
    try:
        with vm_operation(ctx, vm, 'pool_migrate'):
            job = migration.Migration(ctx, vm, [], ctx.pool, host,
                                      live=True, storage=False)
            job.run()
    finally:
        with db.lock:
            if db.exists('VM', vm):
                db.update('VM', vm, scheduled_to_be_resident_on=NULL)


@method('VDI.pool_migrate', ['vdi', 'sr', 'options'])
def vdi_pool_migrate(ctx, vdi, sr, options):
    db = ctx.db
    with db.lock:
        rec = db.get('VDI', vdi)
        db.get('SR', sr)
        # Live only: a VBD plugged into a running VM (DESIGN.md 3; clients
        # copy the VDI instead when they get this error).
        live = [v for v in rec['VBDs']
                if db.get('VBD', v)['currently_attached']
                and db.get('VM', db.get('VBD', v)['VM'])['power_state']
                == 'Running']
        if not live:
            raise errors.XapiError('VDI_NEEDS_VM_FOR_MIGRATE', vdi)
        if rec['type'] == 'cbt_metadata':
            raise errors.XapiError('VDI_INCOMPATIBLE_TYPE', vdi,
                                   'cbt_metadata')
        if rec['cbt_enabled']:
            raise errors.XapiError('VDI_CBT_ENABLED', vdi)
        vbd = live[0]
        vm = db.get('VBD', vbd)['VM']
        vdi_map = {other: db.get('VDI', other)['SR']
                   for _, other in _disk_vbds(db, vm)}
        vdi_map[vdi] = sr
        host = db.get('VM', vm)['resident_on']
        if host == NULL:
            host = ctx.pool.master
    ctx.set_cancellable(True)
    with vm_operation(ctx, vm, 'migrate_send'):
        job = prepare(ctx, vm, {'host': host}, True, vdi_map, {}, {})
        job.run()
    with db.lock:
        return db.get('VBD', vbd)['VDI']
