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
    ops = db.get('VDI', vdi)['current_operations']
    if ops:
        raise generic.other_operation_in_progress('VDI', vdi, ops)
    for vbd in db.get('VDI', vdi)['VBDs']:
        generic.assert_idle(db, db.get('VBD', vbd)['VM'])


def assert_sr_plugged(db, sr, host=None):
    """SR_HAS_NO_PBDS [sr] unless a PBD of the SR is plugged (on host).

    What xapi says before any SM call on an SR nobody has attached
    (message_forwarding, Sm.assert_pbd_is_plugged).
    """
    for pbd in db.get('SR', sr)['PBDs']:
        rec = db.get('PBD', pbd)
        if rec['currently_attached'] and host in (None, rec['host']):
            return
    raise errors.XapiError('SR_HAS_NO_PBDS', sr)


def vdis_in_use(vdis):
    """VDI_IN_USE with one parameter per VDI, as PBD.unplug raises it.

    Its arity varies (xapi_pbd.unplug: the active VDIs of the SR); the
    table's (vdi, operation) is what VDI operations raise.
    """
    exc = errors.XapiError('VDI_IN_USE', vdis[0], '')
    exc.params = [str(v) for v in vdis]
    exc.args = ('VDI_IN_USE',) + tuple(exc.params)
    return exc


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
        assert_sr_plugged(db, sr)
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
        if attached_vbds(db, vdi) or vdi in ctx.pool.base_copies:
            # A base copy goes only when SM's GC coalesces it away.
            raise errors.XapiError('VDI_IN_USE', vdi, 'destroy')
        assert_sr_plugged(db, rec['SR'])
        for vbd in list(rec['VBDs']):
            db.remove('VBD', vbd)
    ctx.pool.remove_vdi(vdi)


def _derive(ctx, vdi, writable, snapshot):
    db = ctx.db
    with db.lock:
        rec = db.snapshot('VDI', vdi)
        assert_sr_plugged(db, rec['SR'])
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
    with ctx.db.lock:
        # xapi_vdi.check_operation_error: a sharable VDI cannot be
        # snapshotted (clone and copy may go on).
        if ctx.db.get('VDI', vdi)['sharable']:
            raise errors.XapiError('VDI_IS_SHARABLE', vdi)
    return _derive(ctx, vdi, writable=False, snapshot=True)


@method('VDI.clone', ['vdi', 'driver_params'], optional=1)
def vdi_clone(ctx, vdi, driver_params=None):
    return _derive(ctx, vdi, writable=True, snapshot=False)


@method('VDI.copy', ['vdi', 'sr', 'base_vdi', 'into_vdi'], optional=2)
def vdi_copy(ctx, vdi, sr, base_vdi=NULL, into_vdi=NULL):
    db = ctx.db
    with db.lock:
        rec = db.snapshot('VDI', vdi)
        assert_sr_plugged(db, rec['SR'])
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


@method('VDI.set_sharable', ['self', 'value'])
def vdi_set_sharable(ctx, vdi, value):
    """Xapi_vdi.set_sharable: sets the field, nothing else (since George)."""
    value = wire.from_wire(schema.BOOL, value, 'value')
    ctx.db.update('VDI', vdi, sharable=value)


@method('VDI.resize', ['vdi', 'size'])
def vdi_resize(ctx, vdi, size):
    _resize(ctx, vdi, size, 'resize')


@method('VDI.resize_online', ['vdi', 'size'])
def vdi_resize_online(ctx, vdi, size):
    """The storage path of VDI.resize, allowed on a plugged VDI.

    Only where the SR's SM offers VDI_RESIZE_ONLINE: no stock SM driver
    does (ext, nfs, file, LVHD refuse with SR_OPERATION_NOT_SUPPORTED);
    the guest sees the new size through blkback.
    """
    _resize(ctx, vdi, size, 'resize_online')


def _resize(ctx, vdi, size, op):
    """Message_forwarding's SR then VDI checks for ``op``, then SM resize.

    xapi_sr_operations (SR op vdi_resize), xapi_vdi.check_operation_error
    (only resize_online may touch a VDI with an attached VBD), then
    Xapi_vdi.resize (PBD plugged, VDI managed) and FileSR.resize.
    """
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise errors.XapiError('FIELD_TYPE_ERROR', 'size')
    db = ctx.db
    with db.lock:
        rec = db.get('VDI', vdi)
        sr = rec['SR']
        features = sm_features(db, sr)
        if 'VDI_RESIZE' not in features:
            raise errors.XapiError('SR_OPERATION_NOT_SUPPORTED', sr)
        assert_vdi_idle(db, vdi)
        if op == 'resize':
            assert_sr_plugged(db, sr)
            if attached_vbds(db, vdi):
                raise errors.XapiError('VDI_IN_USE', vdi, op)
        elif 'VDI_RESIZE_ONLINE' not in features:
            raise errors.XapiError('SR_OPERATION_NOT_SUPPORTED', sr)
        if rec['type'] == 'cbt_metadata':
            raise errors.XapiError('VDI_INCOMPATIBLE_TYPE', vdi,
                                   'cbt_metadata')
        assert_sr_plugged(db, sr)
        if not rec['managed']:
            # SM's hidden base copies: xapi stops before SM sees them.
            raise errors.XapiError('VDI_NOT_MANAGED', vdi)
    new_size = ctx.pool.disk(vdi).resize(size)
    with db.lock:
        db.update('VDI', vdi, virtual_size=new_size)
    ctx.pool.refresh_vdi(vdi)


def sm_features(db, sr):
    """The SM features of an SR's type (SM.features)."""
    sms = db.find('SM', type=db.get('SR', sr)['type'])
    return db.get('SM', sms[0])['features'] if sms else {}


@method('VDI.enable_cbt', ['self'])
def vdi_enable_cbt(ctx, vdi):
    ctx.db.update('VDI', vdi, cbt_enabled=True)


@method('VDI.disable_cbt', ['self'])
def vdi_disable_cbt(ctx, vdi):
    ctx.db.update('VDI', vdi, cbt_enabled=False)


@method('SR.scan', ['sr'])
def sr_scan(ctx, sr):
    with ctx.db.lock:
        assert_sr_plugged(ctx.db, sr)
    # SM's scan fails (e.g. while a VDI of the SR is being migrated).
    ctx.pool.sim.faults.check('sr_scan')
    _scan(ctx, sr)


def _scan(ctx, sr):
    pool, db = ctx.pool, ctx.db
    pool.introduce_from_store(sr)
    with db.lock:
        # As xapi's update_vdis: a VDI whose size did not change is not
        # written (no event), and the SR's totals are made once at the
        # end, not once per VDI (thousands of VDIs on a shared SR).
        for vdi in list(db.get('SR', sr)['VDIs']):
            disk = pool.disks.get(vdi)
            if disk is None:
                continue
            rec = db.get('VDI', vdi)
            # A VDI another pool resized on a shared SR: SM reports its
            # new size (update_vdis sets virtual_size too).
            changes = {k: v for k, v in (
                ('physical_utilisation', disk.physical()),
                ('virtual_size', disk.size)) if rec[k] != v}
            if changes:
                db.update('VDI', vdi, **changes)
    pool.refresh_sr(sr)


@method('SR.update', ['sr'])
def sr_update(ctx, sr):
    with ctx.db.lock:
        assert_sr_plugged(ctx.db, sr)
    _scan(ctx, sr)


def _sr_unavailable(sr_uuid):
    # What SMAPIv1 backends say when the storage is not there.
    return errors.XapiError('SR_BACKEND_FAILURE_47', '',
                            'The SR is not available [opterr=no such SR '
                            '%s]' % sr_uuid, '')


def _missing_config(sr_type, config):
    """The SM error for a device_config key an SR type's driver requires.

    In the order the drivers check (NFSSR.load, LVMoISCSISR.load); codes
    and descriptions from SM's XE_SR_ERRORCODES.xml.
    """
    if sr_type == 'nfs':
        if not config.get('serverpath'):
            return errors.XapiError(
                'SR_BACKEND_FAILURE_101', '',
                'The request is missing the serverpath parameter', '')
        if not config.get('server'):
            return errors.XapiError(
                'SR_BACKEND_FAILURE_102', '',
                'The request is missing the server parameter', '')
    elif sr_type == 'lvmoiscsi':
        if not config.get('target'):
            return errors.XapiError(
                'SR_BACKEND_FAILURE_95', '',
                'The request is missing the target parameter', '')
        if not config.get('targetIQN'):
            return errors.XapiError(
                'SR_BACKEND_FAILURE_96', '',
                'The request is missing or has an incorrect target IQN '
                'parameter', '')
        if not config.get('SCSIid'):
            return errors.XapiError(
                'SR_BACKEND_FAILURE_107', '',
                'The SCSIid parameter is missing or incorrect', '')
    return None


# device_config keys that name the storage itself, per SR type.
_STORAGE_KEYS = {'nfs': ('server', 'serverpath'),
                 'lvmoiscsi': ('target', 'targetIQN', 'SCSIid')}


def _check_device_config(ctx, rec, config):
    """What SM says when plugging with a device_config that cannot work.

    A missing key is refused as the SR type's driver refuses it; keys that
    name the storage and differ from the PBDs of the same SR in another
    pool reach other storage: the SR is not there.
    """
    missing = _missing_config(rec['type'], config)
    if missing is not None:
        raise missing
    home = ctx.pool.sim.find_pbd_config(rec['uuid'], exclude=ctx.pool)
    for key in _STORAGE_KEYS.get(rec['type'], ()):
        if home and key in home and home[key] != config[key]:
            raise _sr_unavailable(rec['uuid'])


@method('PBD.plug', ['self'])
def pbd_plug(ctx, pbd):
    with ctx.db.lock:
        pbd_rec = ctx.db.get('PBD', pbd)
        sr = pbd_rec['SR']
        rec = ctx.db.get('SR', sr)
        config = dict(pbd_rec['device_config'])
        bound = sr in ctx.pool.stores
    _check_device_config(ctx, rec, config)
    if not bound and rec['type'] not in ('iso', 'udev'):
        # An introduced SR: attach the storage that carries its uuid.
        store = ctx.pool.sim.find_store(rec['uuid'])
        if store is None:
            raise _sr_unavailable(rec['uuid'])
        ctx.pool.stores[sr] = store
    ctx.db.update('PBD', pbd, currently_attached=True)
    if not bound:
        ctx.pool.refresh_sr(sr)


@method('PBD.unplug', ['self'])
def pbd_unplug(ctx, pbd):
    db = ctx.db
    with db.lock:
        rec = db.get('PBD', pbd)
        # xapi_pbd.unplug: not while a VM on this host has a VDI of the SR
        # attached (get_active_vdis_by_pbd).
        active = []
        for vm in db.find('VM', resident_on=rec['host']):
            for vbd in db.get('VM', vm)['VBDs']:
                vbd_rec = db.get('VBD', vbd)
                if (vbd_rec['currently_attached'] and not vbd_rec['empty']
                        and db.exists('VDI', vbd_rec['VDI'])
                        and db.get('VDI', vbd_rec['VDI'])['SR']
                        == rec['SR']
                        # Metadata VDIs (DR) do not hold an unplug back.
                        and db.get('VDI', vbd_rec['VDI'])['type']
                        != 'metadata'):
                    active.append(vbd_rec['VDI'])
        if active:
            raise vdis_in_use(active)
        db.update('PBD', pbd, currently_attached=False)


@method('PBD.create', ['args'])
def pbd_create(ctx, record):
    """Xapi_pbd.create_common: one PBD per (SR, host); no SRmaster key."""
    if isinstance(record, dict):
        config = record.get('device_config')
        if isinstance(config, dict) and 'SRmaster' in config:
            raise errors.XapiError('VALUE_NOT_SUPPORTED', 'SRmaster',
                                   config['SRmaster'],
                                   'This key is for internal use only')
        with ctx.db.lock:
            sr, host = record.get('SR'), record.get('host')
            if ctx.db.exists('SR', sr):
                for pbd in ctx.db.get('SR', sr)['PBDs']:
                    if ctx.db.get('PBD', pbd)['host'] == host:
                        raise errors.XapiError('PBD_EXISTS', sr, host, pbd)
            return generic.create_record(ctx, 'PBD', record,
                                         extra={'currently_attached': False})
    return generic.create_record(ctx, 'PBD', record,
                                 extra={'currently_attached': False})


@method('PBD.destroy', ['self'])
def pbd_destroy(ctx, pbd):
    with ctx.db.lock:
        if ctx.db.get('PBD', pbd)['currently_attached']:
            raise errors.XapiError('OPERATION_NOT_ALLOWED',
                                   'PBD is currently attached')
        ctx.db.remove('PBD', pbd)


@method('SR.introduce', ['uuid', 'name_label', 'name_description', 'type',
                         'content_type', 'shared', 'sm_config'])
def sr_introduce(ctx, uuid, name_label, name_description, sr_type,
                 content_type, shared, sm_config):
    """Xapi_sr.introduce: a record only; PBD.plug attaches the storage."""
    shared = wire.from_wire(schema.BOOL, shared, 'shared')
    sm_config = wire.from_wire(schema.SSMAP, sm_config, 'sm_config')
    for name, value in (('uuid', uuid), ('name_label', name_label),
                        ('name_description', name_description),
                        ('type', sr_type), ('content_type', content_type)):
        if not isinstance(value, str):
            raise errors.XapiError('FIELD_TYPE_ERROR', name)
    sr_type = sr_type.lower()
    with ctx.db.lock:
        if uuid and uuid in ctx.db.by_uuid['SR']:
            raise errors.XapiError('SR_UUID_EXISTS', uuid)
        ctx.pool.register_sm(sr_type)
        fields = {'name_label': name_label,
                  'name_description': name_description, 'type': sr_type,
                  'content_type': content_type, 'shared': shared,
                  'sm_config': sm_config, 'physical_size': -1,
                  'physical_utilisation': -1}
        if uuid:
            fields['uuid'] = uuid
        return ctx.db.add('SR', fields)


@method('SR.forget', ['sr'])
def sr_forget(ctx, sr):
    """Forget an SR's records; its storage (and the bytes) stay."""
    db = ctx.db
    with db.lock:
        rec = db.get('SR', sr)
        if any(db.get('PBD', p)['currently_attached'] for p in rec['PBDs']):
            raise errors.XapiError('SR_HAS_PBD', sr)
        for vdi in list(rec['VDIs']):
            if attached_vbds(db, vdi):
                raise errors.XapiError('VDI_IN_USE', vdi, 'forget')
        for vdi in list(rec['VDIs']):
            for vbd in list(db.get('VDI', vdi)['VBDs']):
                db.remove('VBD', vbd)
            ctx.pool.disks.pop(vdi, None)
            db.remove('VDI', vdi)
        for pbd in list(rec['PBDs']):
            db.remove('PBD', pbd)
        for field in ('default_SR', 'suspend_image_SR', 'crash_dump_SR'):
            if db.get('pool', ctx.pool.pool_ref)[field] == sr:
                db.update('pool', ctx.pool.pool_ref, **{field: NULL})
        ctx.pool.stores.pop(sr, None)
        db.remove('SR', sr)


@method('VDI.introduce',
        ['uuid', 'name_label', 'name_description', 'SR', 'type', 'sharable',
         'read_only', 'other_config', 'location', 'xenstore_data',
         'sm_config', 'managed', 'virtual_size', 'physical_utilisation',
         'metadata_of_pool', 'is_a_snapshot', 'snapshot_time',
         'snapshot_of'], optional=7)
def vdi_introduce(ctx, uuid, name_label, name_description, sr, vdi_type,
                  sharable, read_only, other_config, location, xenstore_data,
                  sm_config, *later):
    """Make a VDI the SR's storage holds known, by uuid or location."""
    with ctx.db.lock:
        ctx.db.get('SR', sr)
        if uuid and uuid in ctx.db.by_uuid['VDI']:
            # The database's uniqueness check, as xapi reports it.
            raise errors.XapiError(
                'INTERNAL_ERROR', 'Db_exn.Uniqueness_constraint_violation'
                '("VDI", "uuid", "%s")' % uuid)
    store = ctx.pool.stores.get(sr)
    key = uuid or location
    if store is None or key not in store.vdis:
        raise errors.XapiError('VDI_LOCATION_MISSING', sr, location)
    ctx.pool.introduce_from_store(sr, only=key)
    with ctx.db.lock:
        ref = ctx.db.by_uuid_ref('VDI', key)
        changes = {'name_label': name_label,
                   'name_description': name_description,
                   'other_config': wire.from_wire(schema.SSMAP, other_config,
                                                  'other_config'),
                   'sm_config': wire.from_wire(schema.SSMAP, sm_config,
                                               'sm_config')}
        ctx.db.update('VDI', ref, **changes)
        return ref
