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

"""VM lifecycle, VBD and VIF plug/unplug, network create/destroy."""

import random

from xapi_sim.api import generic
from xapi_sim.api import method
from xapi_sim import errors

NULL = generic.NULL
_DEVICE_NAMES = 'abcdefghijklmnop'


def bad_power_state(vm, expected, actual):
    # xapi reports power states lower-cased in this error; ``expected``
    # is every state the operation allows, joined by ", ".
    if isinstance(expected, str):
        expected = (expected,)
    return errors.XapiError('VM_BAD_POWER_STATE', vm,
                            ', '.join(s.lower() for s in expected),
                            actual.lower())


def assert_idle(db, vm):
    """OTHER_OPERATION_IN_PROGRESS while the VM migrates.

    xapi's with_vm_operation refuses conflicting operations the same way.
    """
    if db.get('VM', vm)['current_operations']:
        raise errors.XapiError('OTHER_OPERATION_IN_PROGRESS', 'VM', vm)


def require_power(db, vm, *allowed):
    """``allowed`` in the order of xapi_vm_lifecycle.allowed_power_states."""
    assert_idle(db, vm)
    rec = db.get('VM', vm)
    if rec['power_state'] not in allowed:
        raise bad_power_state(vm, allowed, rec['power_state'])
    return rec


def random_mac():
    octets = [random.randrange(256) for _ in range(5)]
    # Locally administered, unicast: what xapi autogenerates.
    return ':'.join('%02x' % o for o in [0x02] + octets)


# -- VM ---------------------------------------------------------------------

@method('VM.create', ['args'])
def vm_create(ctx, record):
    return generic.create_record(ctx, 'VM', record,
                                 extra={'power_state': 'Halted'})


@method('VM.destroy', ['self'])
def vm_destroy(ctx, vm):
    db = ctx.db
    with db.lock:
        rec = require_power(db, vm, 'Halted', 'Suspended')
        if rec['is_control_domain']:
            raise errors.XapiError('OPERATION_NOT_ALLOWED',
                                   'cannot destroy a control domain')
        for vbd in list(rec['VBDs']):
            db.remove('VBD', vbd)
        for vif in list(rec['VIFs']):
            db.remove('VIF', vif)
        db.remove('VM', vm)
    ctx.pool.sim.forget_domain(rec['uuid'])


def _host_for(ctx, rec):
    if rec['affinity'] != NULL and ctx.db.exists('host', rec['affinity']):
        return rec['affinity']
    return ctx.pool.master


def check_disks_reachable(ctx, vm, host):
    db = ctx.db
    for vbd in db.get('VM', vm)['VBDs']:
        vrec = db.get('VBD', vbd)
        if vrec['empty'] or vrec['VDI'] == NULL:
            continue
        sr = db.get('VDI', vrec['VDI'])['SR']
        attached = [p for p in db.get('SR', sr)['PBDs']
                    if db.get('PBD', p)['host'] == host
                    and db.get('PBD', p)['currently_attached']]
        if not attached:
            # xapi's assert_can_see_SRs: VM_REQUIRES_SR [vm; sr].
            raise errors.XapiError('VM_REQUIRES_SR', vm, sr)


def boot(ctx, vm, host, paused=False):
    """Make a halted VM run on ``host``: plug its devices, start its guest."""
    db = ctx.db
    with db.lock:
        rec = db.get('VM', vm)
        check_disks_reachable(ctx, vm, host)
        for vbd in rec['VBDs']:
            vrec = db.get('VBD', vbd)
            db.update('VBD', vbd, currently_attached=not vrec['empty'] or
                      vrec['type'] == 'CD',
                      device=_device_name(vrec['userdevice']))
        for vif in rec['VIFs']:
            db.update('VIF', vif, currently_attached=True)
        ctx.pool.next_domid += 1
        db.update('VM', vm, power_state='Paused' if paused else 'Running',
                  resident_on=host, domid=ctx.pool.next_domid)
        uuid = rec['uuid']
    dom = ctx.pool.sim.domain(uuid)
    dom.boot()
    if paused:
        dom.pause()


def _device_name(userdevice):
    try:
        return 'xvd' + _DEVICE_NAMES[int(userdevice)]
    except (ValueError, IndexError):
        return ''


@method('VM.start', ['vm', 'start_paused', 'force'])
def vm_start(ctx, vm, start_paused, force):
    with ctx.db.lock:
        rec = ctx.db.get('VM', vm)
        if rec['is_a_template']:
            raise errors.XapiError('VM_IS_TEMPLATE', vm, 'start')
        require_power(ctx.db, vm, 'Halted')
        host = _host_for(ctx, rec)
    boot(ctx, vm, host, paused=bool(start_paused))


@method('VM.start_on', ['vm', 'host', 'start_paused', 'force'])
def vm_start_on(ctx, vm, host, start_paused, force):
    with ctx.db.lock:
        rec = ctx.db.get('VM', vm)
        ctx.db.get('host', host)
        if rec['is_a_template']:
            raise errors.XapiError('VM_IS_TEMPLATE', vm, 'start')
        require_power(ctx.db, vm, 'Halted')
    boot(ctx, vm, host, paused=bool(start_paused))


def halt(ctx, vm):
    db = ctx.db
    with db.lock:
        rec = db.get('VM', vm)
        uuid = rec['uuid']
    ctx.pool.sim.domain(uuid).halt()
    with db.lock:
        for vbd in rec['VBDs']:
            db.update('VBD', vbd, currently_attached=False)
        for vif in rec['VIFs']:
            db.update('VIF', vif, currently_attached=False)
        db.update('VM', vm, power_state='Halted', resident_on=NULL,
                  domid=-1)


@method('VM.clean_shutdown', ['vm'])
def vm_clean_shutdown(ctx, vm):
    with ctx.db.lock:
        require_power(ctx.db, vm, 'Running')
    halt(ctx, vm)


@method('VM.hard_shutdown', ['vm'])
def vm_hard_shutdown(ctx, vm):
    with ctx.db.lock:
        require_power(ctx.db, vm, 'Paused', 'Suspended', 'Running')
    halt(ctx, vm)


@method('VM.shutdown', ['vm'])
def vm_shutdown(ctx, vm):
    vm_hard_shutdown(ctx, vm)


def _reboot(ctx, vm, *allowed):
    with ctx.db.lock:
        require_power(ctx.db, vm, *allowed)
        host = ctx.db.get('VM', vm)['resident_on']
    halt(ctx, vm)
    boot(ctx, vm, host)


@method('VM.clean_reboot', ['vm'])
def vm_clean_reboot(ctx, vm):
    _reboot(ctx, vm, 'Running')


@method('VM.hard_reboot', ['vm'])
def vm_hard_reboot(ctx, vm):
    _reboot(ctx, vm, 'Paused', 'Running')


@method('VM.pause', ['vm'])
def vm_pause(ctx, vm):
    with ctx.db.lock:
        rec = require_power(ctx.db, vm, 'Running')
        ctx.db.update('VM', vm, power_state='Paused')
    ctx.pool.sim.domain(rec['uuid']).pause()


@method('VM.unpause', ['vm'])
def vm_unpause(ctx, vm):
    with ctx.db.lock:
        rec = require_power(ctx.db, vm, 'Paused')
        ctx.db.update('VM', vm, power_state='Running')
    ctx.pool.sim.domain(rec['uuid']).unpause()


# -- VBD --------------------------------------------------------------------

@method('VBD.create', ['args'])
def vbd_create(ctx, record):
    db = ctx.db
    with db.lock:
        if isinstance(record, dict):
            vm = record.get('VM', NULL)
            db.get('VM', vm)
            empty = record.get('empty', False)
            vdi = record.get('VDI', NULL)
            if not (empty is True and vdi == NULL):
                db.get('VDI', vdi)
            if record.get('userdevice') == 'autodetect':
                used = {db.get('VBD', v)['userdevice']
                        for v in db.get('VM', vm)['VBDs']}
                record = dict(record, userdevice=str(min(
                    i for i in range(64) if str(i) not in used)))
            _assert_free_device(db, vm, 'VBD', 'userdevice', record)
        return generic.create_record(ctx, 'VBD', record)


def _assert_free_device(db, vm, cls, field, record):
    for other in db.get('VM', vm)[cls + 's']:
        if db.get(cls, other)[field] == record.get(field):
            raise errors.XapiError('DEVICE_ALREADY_EXISTS', record[field])


@method('VBD.destroy', ['self'])
def vbd_destroy(ctx, vbd):
    with ctx.db.lock:
        rec = ctx.db.get('VBD', vbd)
        assert_idle(ctx.db, rec['VM'])
        if rec['currently_attached']:
            # xapi_vbd_helpers.destroy: "force the user to unplug first".
            vm_uuid = ctx.db.get('VM', rec['VM'])['uuid']
            raise errors.XapiError(
                'OPERATION_NOT_ALLOWED', "VBD '%s' still attached to '%s'"
                % (rec['uuid'], vm_uuid))
        ctx.db.remove('VBD', vbd)


def _plug(ctx, cls, ref, plug):
    """VBD/VIF plug (``plug``) or unplug, in xapi's order of checks."""
    db = ctx.db
    with db.lock:
        rec = db.get(cls, ref)
        assert_idle(db, rec['VM'])
        if not plug and cls == 'VBD' and not rec['unpluggable']:
            raise errors.XapiError('VBD_NOT_UNPLUGGABLE', ref)
        vm = db.get('VM', rec['VM'])
        if vm['power_state'] != 'Running':
            raise bad_power_state(rec['VM'], 'Running', vm['power_state'])
        if rec['currently_attached'] == plug:
            raise errors.XapiError('DEVICE_ALREADY_ATTACHED' if plug
                                   else 'DEVICE_ALREADY_DETACHED', ref)
        extra = {}
        if plug and cls == 'VBD':
            extra['device'] = _device_name(rec['userdevice'])
        db.update(cls, ref, currently_attached=plug, **extra)


@method('VBD.plug', ['self'])
def vbd_plug(ctx, vbd):
    _plug(ctx, 'VBD', vbd, True)


@method('VBD.unplug', ['self'])
def vbd_unplug(ctx, vbd):
    _plug(ctx, 'VBD', vbd, False)


@method('VBD.unplug_force', ['self'])
def vbd_unplug_force(ctx, vbd):
    _plug(ctx, 'VBD', vbd, False)


# -- VIF and network --------------------------------------------------------

@method('VIF.create', ['args'])
def vif_create(ctx, record):
    extra = {}
    if isinstance(record, dict) and not record.get('MAC'):
        extra = {'MAC': random_mac(), 'MAC_autogenerated': True}
    with ctx.db.lock:
        if isinstance(record, dict):
            vm = record.get('VM', NULL)
            ctx.db.get('VM', vm)
            _assert_free_device(ctx.db, vm, 'VIF', 'device', record)
        return generic.create_record(ctx, 'VIF', record, extra=extra)


@method('VIF.destroy', ['self'])
def vif_destroy(ctx, vif):
    with ctx.db.lock:
        rec = ctx.db.get('VIF', vif)
        vm = ctx.db.get('VM', rec['VM'])
        assert_idle(ctx.db, rec['VM'])
        if rec['currently_attached'] and vm['power_state'] in ('Running',
                                                               'Paused'):
            # xapi_vif_helpers.destroy
            raise errors.XapiError('OPERATION_NOT_ALLOWED',
                                   'VIF currently attached to a running VM')
        ctx.db.remove('VIF', vif)


@method('VIF.plug', ['self'])
def vif_plug(ctx, vif):
    _plug(ctx, 'VIF', vif, True)


@method('VIF.unplug', ['self'])
def vif_unplug(ctx, vif):
    _plug(ctx, 'VIF', vif, False)


@method('network.create', ['args'])
def network_create(ctx, record):
    return generic.create_record(ctx, 'network', record)


@method('network.destroy', ['self'])
def network_destroy(ctx, network):
    with ctx.db.lock:
        rec = ctx.db.get('network', network)
        if rec['VIFs']:
            raise errors.XapiError('NETWORK_CONTAINS_VIF', *rec['VIFs'])
        if rec['PIFs']:
            raise errors.XapiError('NETWORK_CONTAINS_PIF', *rec['PIFs'])
        ctx.db.remove('network', network)
