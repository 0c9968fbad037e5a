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

"""SR, PBD and VDI messages over the block data plane."""

import time

from xapi_sim.api import generic
from xapi_sim.api import method
from xapi_sim import errors
from xapi_sim import schema
from xapi_sim import storage
from xapi_sim import wire

NULL = generic.NULL


def assert_vdi_idle(db, vdi):
    """Refuse to touch a VDI a migration is moving (or its VM's)."""
    if db.get('VDI', vdi)['current_operations']:
        raise errors.XapiError('OTHER_OPERATION_IN_PROGRESS', 'VDI', vdi)
    for vbd in db.get('VDI', vdi)['VBDs']:
        vm = db.get('VBD', vbd)['VM']
        if db.get('VM', vm)['current_operations']:
            raise errors.XapiError('OTHER_OPERATION_IN_PROGRESS', 'VM', vm)


def attached_vbds(db, vdi):
    return [v for v in db.get('VDI', vdi)['VBDs']
            if db.get('VBD', v)['currently_attached']]


def _user_sr(db, sr):
    rec = db.get('SR', sr)
    if rec['content_type'] == 'iso' or rec['type'] in ('iso', 'udev'):
        raise errors.XapiError('SR_OPERATION_NOT_SUPPORTED', sr)
    return rec


def new_vdi(ctx, sr, size, template, **fields):
    """Create a disk on ``sr`` and its VDI record; returns (ref, Disk)."""
    db = ctx.db
    with db.lock:
        _user_sr(db, sr)
    disk = storage.Disk.create(ctx.pool.store(sr), size)
    rec = {
        'name_label': template.get('name_label', ''),
        'name_description': template.get('name_description', ''),
        'SR': sr,
        'virtual_size': int(size),
        'type': template.get('type', 'user'),
        'sharable': template.get('sharable', False),
        'read_only': template.get('read_only', False),
        'other_config': dict(template.get('other_config', {})),
        'xenstore_data': dict(template.get('xenstore_data', {})),
        'sm_config': dict(template.get('sm_config', {}), vdi_type='vhd'),
        'tags': list(template.get('tags', [])),
    }
    rec.update(fields)
    return ctx.pool.add_vdi(rec, disk), disk


@method('VDI.create', ['args'])
def vdi_create(ctx, record):
    if not isinstance(record, dict):
        raise errors.XapiError('FIELD_TYPE_ERROR', 'args')
    # Validate types and refs as the generated code does, then allocate.
    db = ctx.db
    with db.lock:
        for field in ('SR', 'virtual_size', 'type'):
            if field not in record:
                raise errors.XapiError('FIELD_TYPE_ERROR', field)
        db.get('SR', record['SR'])
    try:
        size = int(record['virtual_size'])
    except (TypeError, ValueError):
        raise errors.XapiError('FIELD_TYPE_ERROR', 'virtual_size')
    if size <= 0:
        raise errors.XapiError('INVALID_VALUE', 'virtual_size', size)
    clean = {}
    for name in ('name_label', 'name_description', 'type', 'sharable',
                 'read_only', 'other_config', 'xenstore_data', 'sm_config',
                 'tags'):
        if name in record:
            clean[name] = wire.from_wire(schema.CLASSES['VDI'][name].type,
                                         record[name], name)
    ref, _ = new_vdi(ctx, record['SR'], size, clean)
    return ref


@method('VDI.destroy', ['self'])
def vdi_destroy(ctx, vdi):
    db = ctx.db
    with db.lock:
        rec = db.get('VDI', vdi)
        assert_vdi_idle(db, vdi)
        if attached_vbds(db, vdi):
            raise errors.XapiError('VDI_IN_USE', vdi, 'destroy')
        for vbd in list(rec['VBDs']):
            db.remove('VBD', vbd)
    ctx.pool.remove_vdi(vdi)


def _derive(ctx, vdi, writable, snapshot):
    db = ctx.db
    with db.lock:
        rec = db.snapshot('VDI', vdi)
    disk = ctx.pool.disk(vdi)
    child = disk.snapshot(writable=writable)
    fields = {}
    if snapshot:
        fields = {'is_a_snapshot': True, 'snapshot_of': vdi,
                  'snapshot_time': time.time()}
    record = {
        'name_label': rec['name_label'],
        'name_description': rec['name_description'],
        'SR': rec['SR'], 'virtual_size': rec['virtual_size'],
        'type': rec['type'], 'sharable': rec['sharable'],
        'read_only': rec['read_only'],
        'other_config': dict(rec['other_config']),
        'xenstore_data': dict(rec['xenstore_data']),
        'sm_config': dict(rec['sm_config']),
        'tags': list(rec['tags']),
    }
    record.update(fields)
    ref = ctx.pool.add_vdi(record, child)
    ctx.pool.refresh_vdi(vdi)
    return ref


@method('VDI.snapshot', ['vdi', 'driver_params'], optional=1)
def vdi_snapshot(ctx, vdi, driver_params=None):
    return _derive(ctx, vdi, writable=False, snapshot=True)


@method('VDI.clone', ['vdi', 'driver_params'], optional=1)
def vdi_clone(ctx, vdi, driver_params=None):
    return _derive(ctx, vdi, writable=True, snapshot=False)


@method('VDI.copy', ['vdi', 'sr', 'base_vdi', 'into_vdi'], optional=2)
def vdi_copy(ctx, vdi, sr, base_vdi=NULL, into_vdi=NULL):
    db = ctx.db
    with db.lock:
        rec = db.snapshot('VDI', vdi)
        if base_vdi != NULL:
            db.get('VDI', base_vdi)
        if into_vdi != NULL:
            into = db.get('VDI', into_vdi)
            assert_vdi_idle(db, into_vdi)
            if attached_vbds(db, into_vdi):
                # A running guest owns it (and a mirror would miss the
                # copy's writes).
                raise errors.XapiError('VDI_IN_USE', into_vdi, 'copy')
            # xapi checks the destination before copying a byte; a
            # snapshot's disk is read-only too.
            if into['read_only'] or ctx.pool.disk(into_vdi).read_only:
                raise errors.XapiError('VDI_READONLY', into_vdi)
            if into['virtual_size'] < rec['virtual_size']:
                raise errors.XapiError('VDI_TOO_SMALL', into_vdi,
                                       rec['virtual_size'])
        else:
            db.get('SR', sr)
    src = ctx.pool.disk(vdi)
    base = ctx.pool.disk(base_vdi) if base_vdi != NULL else None
    created = into_vdi == NULL
    if created:
        template = {k: rec[k] for k in (
            'name_label', 'name_description', 'type', 'sharable',
            'read_only', 'other_config', 'xenstore_data', 'tags')}
        dest_ref, dest = new_vdi(ctx, sr, rec['virtual_size'], template)
    else:
        dest_ref, dest = into_vdi, ctx.pool.disk(into_vdi)

    def progress(done, total):
        ctx.check_cancel()
        ctx.progress(done / total if total else 1.0)

    try:
        src.copy_to(dest, base=base, progress=progress)
    except BaseException:
        if created:
            ctx.pool.remove_vdi(dest_ref)
        raise
    ctx.pool.refresh_vdi(dest_ref)
    return dest_ref


@method('VDI.resize', ['vdi', 'size'])
def vdi_resize(ctx, vdi, size):
    with ctx.db.lock:
        assert_vdi_idle(ctx.db, vdi)
        # xapi's VDI operation check: only resize_online may touch a VDI
        # with an attached VBD.
        if attached_vbds(ctx.db, vdi):
            raise errors.XapiError('VDI_IN_USE', vdi, 'resize')
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise errors.XapiError('FIELD_TYPE_ERROR', 'size')
    ctx.pool.disk(vdi).resize(size)
    ctx.db.update('VDI', vdi, virtual_size=size)
    ctx.pool.refresh_vdi(vdi)


@method('VDI.enable_cbt', ['self'])
def vdi_enable_cbt(ctx, vdi):
    ctx.db.update('VDI', vdi, cbt_enabled=True)


@method('VDI.disable_cbt', ['self'])
def vdi_disable_cbt(ctx, vdi):
    ctx.db.update('VDI', vdi, cbt_enabled=False)


@method('SR.scan', ['sr'])
def sr_scan(ctx, sr):
    ctx.pool.introduce_from_store(sr)
    with ctx.db.lock:
        rec = ctx.db.get('SR', sr)
        vdis = list(rec['VDIs'])
    for vdi in vdis:
        ctx.pool.refresh_vdi(vdi)
    ctx.pool.refresh_sr(sr)


@method('SR.update', ['sr'])
def sr_update(ctx, sr):
    sr_scan(ctx, sr)


@method('PBD.plug', ['self'])
def pbd_plug(ctx, pbd):
    ctx.db.update('PBD', pbd, currently_attached=True)


@method('PBD.unplug', ['self'])
def pbd_unplug(ctx, pbd):
    ctx.db.update('PBD', pbd, currently_attached=False)
