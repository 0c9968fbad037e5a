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
import re

from xapi_sim.api import generic
from xapi_sim.api import method
from xapi_sim.api import storage as storage_api
from xapi_sim import errors
from xapi_sim import memory
from xapi_sim import schema
from xapi_sim import wire

NULL = generic.NULL


def bad_power_state(vm, expected, actual):
    # xapi reports power states lower-cased in this error; ``expected``
    # is every state the operation allows, joined by ", ".
    if isinstance(expected, str):
        expected = (expected,)
    return errors.XapiError('VM_BAD_POWER_STATE', vm,
                            ', '.join(s.lower() for s in expected),
                            actual.lower())


def require_power(db, vm, *allowed):
    """``allowed`` in the order of xapi_vm_lifecycle.allowed_power_states."""
    generic.assert_idle(db, vm)
    rec = db.get('VM', vm)
    if rec['power_state'] not in allowed:
        raise bad_power_state(vm, allowed, rec['power_state'])
    return rec


def random_mac():
    octets = [random.randrange(256) for _ in range(5)]
    # Locally administered, unicast: what xapi autogenerates.
    return ':'.join('%02x' % o for o in [0x02] + octets)


# -- which operation a VM allows ---------------------------------------------

# xapi_vm_lifecycle.allowed_power_states, in xapi's order.
ALLOWED_POWER_STATES = {
    'start': ('Halted',), 'start_on': ('Halted',),
    'unpause': ('Paused',),
    'resume': ('Suspended',), 'resume_on': ('Suspended',),
    'clean_reboot': ('Running',), 'clean_shutdown': ('Running',),
    'pause': ('Running',), 'suspend': ('Running',),
    'pool_migrate': ('Running',),
    'changing_dynamic_range': ('Halted', 'Running'),
    'destroy': ('Halted', 'Suspended'),
    'hard_reboot': ('Paused', 'Running'),
    'shutdown': ('Paused', 'Suspended', 'Running'),
    'hard_shutdown': ('Paused', 'Suspended', 'Running'),
    'migrate_send': ('Halted', 'Suspended', 'Running'),
    'snapshot': ('Halted', 'Paused', 'Suspended', 'Running'),
    'changing_VCPUs': ('Halted',), 'changing_static_range': ('Halted',),
    'changing_memory_limits': ('Halted',),
}
# What a template (not a snapshot) still allows (check_template).
_TEMPLATE_OPS = ('changing_dynamic_range', 'changing_static_range',
                 'changing_memory_limits', 'changing_VCPUs', 'clone', 'copy',
                 'export', 'metadata_export', 'provision')
# What a snapshot still allows (check_snapshot).
_SNAPSHOT_OPS = ('revert', 'clone', 'copy', 'export', 'destroy',
                 'hard_shutdown', 'metadata_export')
# What a control domain allows besides its memory and VCPU settings.
_CONTROL_DOMAIN_OPS = ('changing_dynamic_range', 'changing_memory_limits',
                       'changing_static_range', 'start', 'start_on',
                       'changing_VCPUs', 'destroy')


def check_operation(db, vm, op):
    """xapi_vm_lifecycle.check_operation_error; returns the VM's record.

    In xapi's order: OPERATION_BLOCKED [vm; code], VM_BAD_POWER_STATE, a
    conflicting operation, VM_IS_TEMPLATE / VM_IS_SNAPSHOT [vm; op], then
    what a control domain may not do.
    """
    rec = db.get('VM', vm)
    blocked = rec['blocked_operations'].get(op)
    if blocked is not None:
        raise errors.XapiError('OPERATION_BLOCKED', vm, blocked)
    allowed = ALLOWED_POWER_STATES[op]
    if rec['is_control_domain'] and op in ('changing_VCPUs',
                                           'changing_static_range',
                                           'changing_memory_limits'):
        allowed = allowed + ('Running',)
    if rec['power_state'] not in allowed:
        raise bad_power_state(vm, allowed, rec['power_state'])
    generic.assert_idle(db, vm)
    if rec['is_a_template'] and not rec['is_a_snapshot']:
        default = (rec['is_default_template'] or
                   rec['other_config'].get('default_template') == 'true')
        if op not in _TEMPLATE_OPS and not (
                op in ('destroy', 'migrate_send') and not default):
            raise errors.XapiError('VM_IS_TEMPLATE', vm, op)
    if rec['is_a_snapshot'] and op not in _SNAPSHOT_OPS:
        raise errors.XapiError('VM_IS_SNAPSHOT', vm, op)
    if rec['is_control_domain'] and op not in _CONTROL_DOMAIN_OPS:
        raise errors.XapiError('OPERATION_NOT_ALLOWED',
                               'This operation is not allowed on a control '
                               'domain')
    return rec


# -- VM ---------------------------------------------------------------------

def derive_domain_type(record):
    """xapi derives an unspecified domain type from the HVM boot policy."""
    policy = record.get('HVM_boot_policy', 'BIOS order')
    return 'hvm' if policy else 'pv'


@method('VM.create', ['args'])
def vm_create(ctx, record):
    extra = {'power_state': 'Halted'}
    if isinstance(record, dict) and str(record.get(
            'domain_type', 'unspecified')).lower() == 'unspecified':
        extra['domain_type'] = derive_domain_type(record)
    return generic.create_record(ctx, 'VM', record, extra=extra)


@method('VM.destroy', ['self'])
def vm_destroy(ctx, vm):
    db = ctx.db
    with db.lock:
        rec = require_power(db, vm, 'Halted', 'Suspended')
        if rec['is_control_domain']:
            raise errors.XapiError('OPERATION_NOT_ALLOWED',
                                   'This operation is not allowed on dom0')
        check_operation(db, vm, 'destroy')
        suspend_vdi = rec['suspend_VDI']
        for vbd in list(rec['VBDs']):
            db.remove('VBD', vbd)
        for vif in list(rec['VIFs']):
            db.remove('VIF', vif)
        db.remove('VM', vm)
    _destroy_suspend_vdi(ctx, suspend_vdi)
    ctx.pool.sim.forget_domain(rec['uuid'])


def check_disks_reachable(ctx, vm, host):
    db = ctx.db
    for vbd in db.get('VM', vm)['VBDs']:
        vrec = db.get('VBD', vbd)
        if vrec['empty'] or vrec['VDI'] == NULL:
            continue
        sr = db.get('VDI', vrec['VDI'])['SR']
        if not sr_attached_on(db, sr, host):
            # xapi's assert_can_see_SRs: VM_REQUIRES_SR [vm; sr].
            raise errors.XapiError('VM_REQUIRES_SR', vm, sr)


def sr_attached_on(db, sr, host):
    return any(db.get('PBD', p)['host'] == host
               and db.get('PBD', p)['currently_attached']
               for p in db.get('SR', sr)['PBDs'])


def validate_basic_parameters(vm, rec):
    """xapi_vm_helpers.validate_basic_parameters: VCPUs, then memory."""
    vcpus_max, at_startup = int(rec['VCPUs_max']), int(rec['VCPUs_at_startup'])
    if vcpus_max < 1:
        raise errors.XapiError('INVALID_VALUE', 'VCPUs_max', vcpus_max)
    if at_startup < 1:
        raise errors.XapiError('INVALID_VALUE', 'VCPUs-at-startup',
                               at_startup)
    if at_startup > vcpus_max:
        raise errors.XapiError('VALUE_NOT_SUPPORTED', 'VCPUs-at-startup',
                               at_startup, 'value greater than VCPUs-max')
    # The dynamic range is coerced into the static one; only ranges that
    # cannot be coerced fail (Vm_memory_constraints.transform).
    if not memory.constraints_coercible(rec):
        raise errors.XapiError('MEMORY_CONSTRAINT_VIOLATION')
    if float(rec['HVM_shadow_multiplier']) < 1.0:
        raise errors.XapiError('INVALID_VALUE', 'HVM_shadow_multiplier',
                               rec['HVM_shadow_multiplier'])


def assert_can_boot_here(ctx, vm, host, check_memory=True,
                         do_sr_check=True):
    """xapi_vm_helpers.assert_can_boot_here.

    What VM.start_on, resume_on and an in-pool migration check on the
    destination host.
    """
    db = ctx.db
    rec = db.get('VM', vm)
    validate_basic_parameters(vm, rec)
    if not db.get('host', host)['enabled'] and not rec['is_control_domain']:
        raise errors.XapiError('HOST_DISABLED', host)
    if do_sr_check:
        check_disks_reachable(ctx, vm, host)
    if (do_sr_check and rec['power_state'] == 'Suspended'
            and rec['suspend_VDI'] != NULL):
        sr = db.get('VDI', rec['suspend_VDI'])['SR']
        if not sr_attached_on(db, sr, host):
            raise errors.XapiError('VM_REQUIRES_SR', vm, sr)
    if check_memory:
        memory.assert_enough_memory(db, host, rec, vm=vm)


@method('VM.assert_can_boot_here', ['self', 'host'])
def vm_assert_can_boot_here(ctx, vm, host):
    with ctx.db.lock:
        ctx.db.get('VM', vm)
        ctx.db.get('host', host)
        assert_can_boot_here(ctx, vm, host)


def choose_host(ctx, vm):
    """The host VM.start and VM.resume use.

    The VM's affinity when it can boot there, else the first host that
    can, else (as xapi retries without the memory check) one that only
    lacks memory, so that the start fails with HOST_NOT_ENOUGH_FREE_MEMORY.

    Where no host can run the VM at all xapi says NO_HOSTS_AVAILABLE; the
    simulator reports the first host's reason instead (VM_REQUIRES_SR,
    MEMORY_CONSTRAINT_VIOLATION), which is what a single-host pool's
    VM.start_on says.
    """
    db = ctx.db
    rec = db.get('VM', vm)
    hosts = [h for h in db.all_refs('host') if h != ctx.pool.master]
    hosts.insert(0, ctx.pool.master)
    if rec['affinity'] != NULL and db.exists('host', rec['affinity']):
        hosts.remove(rec['affinity'])
        hosts.insert(0, rec['affinity'])
    first_error = None
    for check_memory in (True, False):
        for host in hosts:
            try:
                assert_can_boot_here(ctx, vm, host, check_memory)
                return host
            except errors.XapiError as exc:
                first_error = first_error or exc
    raise first_error


def boot(ctx, vm, host, paused=False, check=True, guest=True):
    """Make a halted VM run on ``host``: plug its devices, start its guest.

    With ``check``, assert_can_boot_here runs under the same lock that
    marks the VM running, so two starts cannot both take the last free
    memory of a host. Without ``guest`` XAPI sees the VM run but no guest
    runs in this process (no heartbeat, no workloads): what
    ``Simulator.add_vms`` builds by the thousand for control-plane
    benchmarks.
    """
    db = ctx.db
    with db.lock:
        rec = db.get('VM', vm)
        if check:
            assert_can_boot_here(ctx, vm, host)
        for vbd in rec['VBDs']:
            vrec = db.get('VBD', vbd)
            db.update('VBD', vbd, currently_attached=not vrec['empty'] or
                      vrec['type'] == 'CD',
                      device=_device_name(vrec['userdevice']))
        for vif in rec['VIFs']:
            db.update('VIF', vif, currently_attached=True)
        ctx.pool.next_domid += 1
        db.update('VM', vm, power_state='Paused' if paused else 'Running',
                  resident_on=host, domid=ctx.pool.next_domid,
                  scheduled_to_be_resident_on=NULL)
        uuid = rec['uuid']
    if not guest:
        return
    dom = ctx.pool.sim.domain(uuid)
    dom.boot()
    if paused:
        dom.pause()


def _device_name(userdevice):
    try:
        index = int(userdevice)
    except (TypeError, ValueError):
        return ''
    if not 0 <= index < 26 * 27:
        return ''
    letters = _ALPHABET[index] if index < 26 else (
        _ALPHABET[index // 26 - 1] + _ALPHABET[index % 26])
    return 'xvd' + letters


_ALPHABET = 'abcdefghijklmnopqrstuvwxyz'


def _start(ctx, vm, host, start_paused, op):
    db = ctx.db
    with db.lock:
        if host is not None:
            db.get('host', host)
        rec = check_operation(db, vm, op)
        if host is None:
            host = choose_host(ctx, vm)
        elif rec['is_control_domain'] and rec['affinity'] not in (NULL,
                                                                  host):
            raise errors.XapiError(
                'OPERATION_NOT_ALLOWED', 'Cannot boot a control domain on '
                'a host different from its affinity')
        boot(ctx, vm, host, paused=bool(start_paused))


@method('VM.start', ['vm', 'start_paused', 'force'])
def vm_start(ctx, vm, start_paused, force):
    _start(ctx, vm, None, start_paused, 'start')


@method('VM.start_on', ['vm', 'host', 'start_paused', 'force'])
def vm_start_on(ctx, vm, host, start_paused, force):
    _start(ctx, vm, host, start_paused, 'start_on')


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
                  domid=-1, scheduled_to_be_resident_on=NULL)


@method('VM.clean_shutdown', ['vm'])
def vm_clean_shutdown(ctx, vm):
    with ctx.db.lock:
        check_operation(ctx.db, vm, 'clean_shutdown')
    halt(ctx, vm)


def _hard_shutdown(ctx, vm, op):
    with ctx.db.lock:
        rec = check_operation(ctx.db, vm, op)
        suspended = rec['power_state'] == 'Suspended'
        suspend_vdi = rec['suspend_VDI']
        if suspended:
            # Xapi_vm.hard_shutdown: the suspend image goes, whether or not
            # destroying it works.
            ctx.db.update('VM', vm, suspend_VDI=NULL)
    if suspended:
        _destroy_suspend_vdi(ctx, suspend_vdi)
    halt(ctx, vm)


@method('VM.hard_shutdown', ['vm'])
def vm_hard_shutdown(ctx, vm):
    _hard_shutdown(ctx, vm, 'hard_shutdown')


@method('VM.shutdown', ['vm'])
def vm_shutdown(ctx, vm):
    _hard_shutdown(ctx, vm, 'shutdown')


def _reboot(ctx, vm, op):
    with ctx.db.lock:
        check_operation(ctx.db, vm, op)
        host = ctx.db.get('VM', vm)['resident_on']
    halt(ctx, vm)
    # The domain's memory is handed straight to the new one.
    boot(ctx, vm, host, check=False)


@method('VM.clean_reboot', ['vm'])
def vm_clean_reboot(ctx, vm):
    _reboot(ctx, vm, 'clean_reboot')


@method('VM.hard_reboot', ['vm'])
def vm_hard_reboot(ctx, vm):
    _reboot(ctx, vm, 'hard_reboot')


@method('VM.pause', ['vm'])
def vm_pause(ctx, vm):
    with ctx.db.lock:
        rec = check_operation(ctx.db, vm, 'pause')
        ctx.db.update('VM', vm, power_state='Paused')
    ctx.pool.sim.domain(rec['uuid']).pause()


@method('VM.unpause', ['vm'])
def vm_unpause(ctx, vm):
    with ctx.db.lock:
        rec = check_operation(ctx.db, vm, 'unpause')
        ctx.db.update('VM', vm, power_state='Running')
    ctx.pool.sim.domain(rec['uuid']).unpause()


# -- suspend and resume -------------------------------------------------------

SUSPEND_IMAGE_MAGIC = b'XAPI-SIM SUSPEND IMAGE\n'


def suspend_image_size(rec):
    """What Xapi_xenops.suspend allocates: static_max * 1.26 + 100 MiB."""
    return int(float(rec['memory_static_max']) * 1.2 * 1.05) + 104857600


def choose_suspend_sr(db, vm):
    """Helpers.choose_suspend_sr.

    The VM's suspend_SR, else the pool's suspend_image_SR, else the host's
    suspend_image_sr, whichever is plugged on the VM's host; else
    VM_NO_SUSPEND_SR [vm].
    """
    rec = db.get('VM', vm)
    host = rec['resident_on']
    pool = db.all_refs('pool')[0]
    candidates = [rec['suspend_SR'],
                  db.get('pool', pool)['suspend_image_SR']]
    if db.exists('host', host):
        candidates.append(db.get('host', host)['suspend_image_sr'])
    for sr in candidates:
        if db.exists('SR', sr) and sr_attached_on(db, sr, host):
            return sr
    raise errors.XapiError('VM_NO_SUSPEND_SR', vm)


@method('VM.suspend', ['vm'])
def vm_suspend(ctx, vm):
    db = ctx.db
    with db.lock:
        rec = check_operation(db, vm, 'suspend')
        sr = choose_suspend_sr(db, vm)
        size = suspend_image_size(rec)
        uuid = rec['uuid']
        db.update('VM', vm, current_operations={
            ctx.task or 'OpaqueRef:%s' % uuid: 'suspend'})
    try:
        try:
            vdi, disk = storage_api.new_vdi(ctx, sr, size, {
                'name_label': 'Suspend image',
                'name_description': 'Suspend image', 'type': 'suspend',
                'sm_config': {'vm_hint': uuid,
                              'initial_allocation': str(size)}})
        except errors.XapiError as exc:
            if exc.code == 'SR_BACKEND_FAILURE_44':
                raise errors.XapiError('SR_SUSPEND_SPACE_INSUFFICIENT', sr)
            raise
        dom = ctx.pool.sim.domain(uuid)
        # The vCPUs stop: no guest write is in flight from here on.
        dom.pause()
        disk.write(0, SUSPEND_IMAGE_MAGIC + uuid.encode())
        ctx.pool.refresh_vdi(vdi)
    finally:
        with db.lock:
            db.update('VM', vm, current_operations={})
    with db.lock:
        db.update('VM', vm, power_state='Suspended', resident_on=NULL,
                  domid=-1, suspend_VDI=vdi)


def _resume(ctx, vm, host, start_paused, op):
    db = ctx.db
    with db.lock:
        if host is not None:
            db.get('host', host)
        rec = check_operation(db, vm, op)
        if rec['suspend_VDI'] == NULL or not db.exists('VDI',
                                                       rec['suspend_VDI']):
            # Xapi_xenops.resume resets the VM and says why.
            for vbd in rec['VBDs']:
                db.update('VBD', vbd, currently_attached=False)
            for vif in rec['VIFs']:
                db.update('VIF', vif, currently_attached=False)
            db.update('VM', vm, power_state='Halted', suspend_VDI=NULL)
            ctx.pool.sim.forget_domain(rec['uuid'])
            raise errors.XapiError('VM_HAS_NO_SUSPEND_VDI', vm)
        if host is None:
            host = choose_host(ctx, vm)
        assert_can_boot_here(ctx, vm, host)
        suspend_vdi = rec['suspend_VDI']
        ctx.pool.next_domid += 1
        db.update('VM', vm, power_state='Paused' if start_paused
                  else 'Running', resident_on=host,
                  domid=ctx.pool.next_domid, suspend_VDI=NULL)
        uuid = rec['uuid']
    dom = ctx.pool.sim.domain(uuid)
    if not start_paused:
        dom.unpause()
    _destroy_suspend_vdi(ctx, suspend_vdi)


def _destroy_suspend_vdi(ctx, vdi):
    with ctx.db.lock:
        if vdi == NULL or not ctx.db.exists('VDI', vdi):
            return
        for vbd in list(ctx.db.get('VDI', vdi)['VBDs']):
            ctx.db.remove('VBD', vbd)
    ctx.pool.remove_vdi(vdi)


@method('VM.resume', ['vm', 'start_paused', 'force'])
def vm_resume(ctx, vm, start_paused, force):
    _resume(ctx, vm, None, start_paused, 'resume')


@method('VM.resume_on', ['vm', 'host', 'start_paused', 'force'])
def vm_resume_on(ctx, vm, host, start_paused, force):
    _resume(ctx, vm, host, start_paused, 'resume_on')


# -- memory and VCPU settings -------------------------------------------------

def _int(value, field):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.XapiError('FIELD_TYPE_ERROR', field)


def _set_memory(ctx, vm, op, **values):
    db = ctx.db
    with db.lock:
        rec = check_operation(db, vm, op)
        limits = {k: int(rec['memory_' + k]) for k in (
            'static_min', 'dynamic_min', 'dynamic_max', 'static_max')}
        limits.update(values)
        if not memory.constraints_valid(limits['static_min'],
                                        limits['dynamic_min'],
                                        limits['dynamic_max'],
                                        limits['static_max']):
            raise errors.XapiError('MEMORY_CONSTRAINT_VIOLATION_ORDER')
        changes = {'memory_' + k: v for k, v in values.items()}
        if rec['power_state'] != 'Halted' and 'dynamic_max' in values:
            changes['memory_target'] = values['dynamic_max']
        db.update('VM', vm, **changes)


@method('VM.set_memory_limits', ['self', 'static_min', 'static_max',
                                 'dynamic_min', 'dynamic_max'])
def vm_set_memory_limits(ctx, vm, static_min, static_max, dynamic_min,
                         dynamic_max):
    _set_memory(ctx, vm, 'changing_memory_limits',
                static_min=_int(static_min, 'static_min'),
                static_max=_int(static_max, 'static_max'),
                dynamic_min=_int(dynamic_min, 'dynamic_min'),
                dynamic_max=_int(dynamic_max, 'dynamic_max'))


@method('VM.set_memory_static_range', ['self', 'min', 'max'])
def vm_set_memory_static_range(ctx, vm, low, high):
    _set_memory(ctx, vm, 'changing_static_range',
                static_min=_int(low, 'min'), static_max=_int(high, 'max'))


@method('VM.set_memory_dynamic_range', ['self', 'min', 'max'])
def vm_set_memory_dynamic_range(ctx, vm, low, high):
    _set_memory(ctx, vm, 'changing_dynamic_range',
                dynamic_min=_int(low, 'min'), dynamic_max=_int(high, 'max'))


@method('VM.set_memory', ['self', 'value'])
def vm_set_memory(ctx, vm, value):
    value = _int(value, 'value')
    _set_memory(ctx, vm, 'changing_memory_limits', static_max=value,
                dynamic_min=value, dynamic_max=value)


_VCPU_RULE = 'VCPU values must satisfy: 0 < VCPUs_at_startup \u2264 VCPUs_max'


@method('VM.set_VCPUs_max', ['self', 'value'])
def vm_set_vcpus_max(ctx, vm, value):
    value = _int(value, 'value')
    db = ctx.db
    with db.lock:
        rec = db.get('VM', vm)
        if rec['is_control_domain'] and rec['domid'] == 0:
            raise errors.XapiError('INTERNAL_ERROR',
                                   'set_VCPUs_max is not allowed on dom0')
        check_operation(db, vm, 'changing_VCPUs')
        if value < 1 or value < int(rec['VCPUs_at_startup']):
            raise errors.XapiError('INVALID_VALUE', _VCPU_RULE, value)
        db.update('VM', vm, VCPUs_max=value)


@method('VM.set_VCPUs_at_startup', ['self', 'value'])
def vm_set_vcpus_at_startup(ctx, vm, value):
    value = _int(value, 'value')
    db = ctx.db
    with db.lock:
        rec = db.get('VM', vm)
        if rec['is_control_domain'] and rec['domid'] == 0:
            raise errors.XapiError('OPERATION_NOT_ALLOWED',
                                   'set_VCPUs_at_startup is not allowed on '
                                   'dom0')
        if value < 1 or value > int(rec['VCPUs_max']):
            raise errors.XapiError('INVALID_VALUE', _VCPU_RULE, value)
        db.update('VM', vm, VCPUs_at_startup=value)


@method('VM.compute_memory_overhead', ['vm'])
def vm_compute_memory_overhead(ctx, vm):
    with ctx.db.lock:
        return memory.vm_overhead(ctx.db.get('VM', vm))


# -- devices a VM can still use ----------------------------------------------

def _disk_number(device):
    """The disk number a userdevice or device name means, or None."""
    if device.isdigit():
        return int(device)
    for prefix in ('xvd', 'hd', 'sd'):
        if device.startswith(prefix) and device[len(prefix):].isalpha():
            letters = device[len(prefix):]
            if len(letters) == 1:
                return _ALPHABET.index(letters)
            if len(letters) == 2:
                return ((_ALPHABET.index(letters[0]) + 1) * 26
                        + _ALPHABET.index(letters[1]))
    return None


@method('VM.get_allowed_VBD_devices', ['vm'], has_async=False)
def vm_get_allowed_vbd_devices(ctx, vm):
    db = ctx.db
    with db.lock:
        rec = db.get('VM', vm)
        used = set()
        for vbd in rec['VBDs']:
            vrec = db.get('VBD', vbd)
            for name in (vrec['userdevice'], vrec['device']):
                number = _disk_number(name)
                if number is not None:
                    used.add(number)
        last = 255 if rec['is_control_domain'] else 254
        return [str(i) for i in range(last + 1) if i not in used]


@method('VM.get_allowed_VIF_devices', ['vm'], has_async=False)
def vm_get_allowed_vif_devices(ctx, vm):
    db = ctx.db
    with db.lock:
        used = {db.get('VIF', v)['device'] for v in db.get('VM', vm)['VIFs']}
        return [str(i) for i in range(16) if str(i) not in used]


# -- VBD --------------------------------------------------------------------

# What a VBD may point at (Xapi_vbd.create).
_VBD_VDI_TYPES = ('system', 'user', 'ephemeral', 'suspend', 'crashdump',
                  'metadata', 'rrd', 'pvs_cache')


def _field(cls, record, name, default):
    value = record.get(name, default)
    return wire.from_wire(schema.CLASSES[cls][name].type, value, name)


@method('VBD.create', ['args'])
def vbd_create(ctx, record):
    """Xapi_vbd.create's checks, in its order."""
    db = ctx.db
    if not isinstance(record, dict):
        raise errors.XapiError('FIELD_TYPE_ERROR', 'args')
    with db.lock:
        vm = record.get('VM', NULL)
        db.get('VM', vm)
        empty = _field('VBD', record, 'empty', False)
        vbd_type = _field('VBD', record, 'type', 'Disk')
        mode = _field('VBD', record, 'mode', 'RW')
        vdi = record.get('VDI', NULL)
        if not (empty and vdi == NULL):
            vdi_rec = db.get('VDI', vdi)
        if not empty and vdi_rec['type'] not in _VBD_VDI_TYPES:
            raise errors.XapiError('VDI_INCOMPATIBLE_TYPE', vdi,
                                   vdi_rec['type'])
        if vbd_type == 'CD' and mode != 'RO':
            raise errors.XapiError('VBD_CDS_MUST_BE_READONLY')
        if vbd_type != 'CD' and empty:
            raise errors.XapiError('VBD_NOT_REMOVABLE_MEDIA',
                                   'in constructor')
        if mode == 'RW' and vdi != NULL and vdi_rec['read_only']:
            raise errors.XapiError('VDI_READONLY', vdi)
        generic.assert_idle(db, vm)
        userdevice = record.get('userdevice')
        if not isinstance(userdevice, str):
            raise errors.XapiError('FIELD_TYPE_ERROR', 'userdevice')
        if userdevice != 'autodetect' and _disk_number(userdevice) is None:
            raise errors.XapiError('INVALID_DEVICE', userdevice)
        if userdevice == 'autodetect':
            free = vm_get_allowed_vbd_devices(ctx, vm)
            if not free:
                raise errors.XapiError('INVALID_DEVICE', userdevice)
            userdevice = free[0]
        number = _disk_number(userdevice)
        for other in db.get('VM', vm)['VBDs']:
            orec = db.get('VBD', other)
            if number in (_disk_number(orec['userdevice']),
                          _disk_number(orec['device'])):
                raise errors.XapiError('DEVICE_ALREADY_EXISTS', userdevice)
        record = dict(record, userdevice=userdevice)
        return generic.create_record(ctx, 'VBD', record)


@method('VBD.destroy', ['self'])
def vbd_destroy(ctx, vbd):
    with ctx.db.lock:
        rec = ctx.db.get('VBD', vbd)
        generic.assert_idle(ctx.db, rec['VM'])
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
        generic.assert_idle(db, rec['VM'])
        if not plug and cls == 'VBD' and not rec['unpluggable']:
            raise errors.XapiError('VBD_NOT_UNPLUGGABLE', ref)
        vm = db.get('VM', rec['VM'])
        if vm['power_state'] != 'Running':
            raise bad_power_state(rec['VM'], 'Running', vm['power_state'])
        if rec['currently_attached'] == plug:
            raise errors.XapiError('DEVICE_ALREADY_ATTACHED' if plug
                                   else 'DEVICE_ALREADY_DETACHED', ref)
        if (plug and cls == 'VBD' and not rec['empty']
                and db.exists('VDI', rec['VDI'])):
            storage_api.assert_sr_plugged(
                db, db.get('VDI', rec['VDI'])['SR'], vm['resident_on'])
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

_MAC = re.compile(r'^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$')


@method('VIF.create', ['args'])
def vif_create(ctx, record):
    """Xapi_vif_helpers.create's checks.

    A numeric device, a valid MAC (an empty one is generated), a device
    the VM does not use yet.
    """
    if not isinstance(record, dict):
        raise errors.XapiError('FIELD_TYPE_ERROR', 'args')
    extra = {}
    with ctx.db.lock:
        vm = record.get('VM', NULL)
        ctx.db.get('VM', vm)
        device = record.get('device')
        if not isinstance(device, str):
            raise errors.XapiError('FIELD_TYPE_ERROR', 'device')
        if not device.isdigit():
            raise errors.XapiError('INVALID_DEVICE', device)
        mac = record.get('MAC') or ''
        if not mac:
            extra = {'MAC': random_mac(), 'MAC_autogenerated': True}
        elif not isinstance(mac, str) or not _MAC.match(mac):
            raise errors.XapiError('MAC_INVALID', mac)
        for other in ctx.db.get('VM', vm)['VIFs']:
            if int(ctx.db.get('VIF', other)['device']) == int(device):
                raise errors.XapiError('DEVICE_ALREADY_EXISTS', device)
        return generic.create_record(ctx, 'VIF', record, extra=extra)


@method('VIF.destroy', ['self'])
def vif_destroy(ctx, vif):
    with ctx.db.lock:
        rec = ctx.db.get('VIF', vif)
        vm = ctx.db.get('VM', rec['VM'])
        generic.assert_idle(ctx.db, rec['VM'])
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
