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

"""Building VMs through the XenAPI, as a client of a pool does.

Everything here takes a ``session.xenapi`` proxy: it works against any
pool over the network (``xapi-sim create-vm``, the tests). Only the
record builders also serve inside the simulator's process, for
``Simulator.add_vms``.
"""

import re

import XenAPI


MiB = 1 << 20
_UNITS = {'': 1, 'B': 1, 'KIB': 1 << 10, 'MIB': 1 << 20, 'GIB': 1 << 30,
          'TIB': 1 << 40, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30,
          'T': 1 << 40}


def size_of(value):
    """Bytes from an int or '8GiB', '256M', '4096' (ValueError if not)."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r'\s*(\d+)\s*([A-Za-z]*)\s*', str(value))
    if not match or match.group(2).upper() not in _UNITS:
        raise ValueError('bad size %r (try "8GiB")' % (value,))
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


NULL = 'OpaqueRef:NULL'
PATTERNS = ('sequential', 'uniform', 'hotspot')


class BuildError(Exception):
    """Bad input, or a pool that cannot take the VM (the message says)."""


def parse_size(text):
    """Bytes from '256MiB', '1G', '4096'; a positive size or ValueError."""
    size = size_of(text)
    if size <= 0:
        raise ValueError('bad size %r: it must be more than 0' % (text,))
    return size


def parse_workload(text):
    """'PATTERN[:RATE[/s]]' -> (pattern, bytes per second; 0: flat out)."""
    pattern, _, rate = text.partition(':')
    if pattern not in PATTERNS:
        raise ValueError('bad workload %r: the pattern must be one of %s'
                         % (text, ', '.join(PATTERNS)))
    rate = rate[:-2] if rate.endswith('/s') else rate
    try:
        rate = size_of(rate) if rate else MiB
    except ValueError:
        raise ValueError('bad workload %r: the rate must be a size per '
                         'second, such as 8MiB/s' % (text,))
    return pattern, rate


# -- records (the fields xapi requires at create) ---------------------------

def vm_record(name, memory=256 * MiB):
    return {'name_label': name, 'name_description': '',
            'memory_static_max': str(memory),
            'memory_dynamic_max': str(memory),
            'memory_dynamic_min': str(memory),
            'memory_static_min': str(memory),
            'VCPUs_max': '1', 'VCPUs_at_startup': '1',
            'is_a_template': False, 'other_config': {}}


def vdi_record(sr, size, name='disk'):
    return {'name_label': name, 'name_description': '', 'SR': sr,
            'virtual_size': str(size), 'type': 'user', 'sharable': False,
            'read_only': False, 'other_config': {}, 'xenstore_data': {},
            'sm_config': {}, 'tags': []}


def vbd_record(vm, vdi, userdevice='0', **extra):
    record = {'VM': vm, 'VDI': vdi, 'userdevice': userdevice,
              'bootable': userdevice == '0', 'mode': 'RW',
              'type': 'Disk', 'empty': False, 'other_config': {},
              'qos_algorithm_type': '', 'qos_algorithm_params': {}}
    record.update(extra)
    return record


def vif_record(vm, network, device='0', other_config=None):
    return {'VM': vm, 'network': network, 'device': device, 'MAC': '',
            'MTU': '1500', 'other_config': other_config or {},
            'qos_algorithm_type': '', 'qos_algorithm_params': {}}


# -- lookups -------------------------------------------------------------

def _sr_list(srs):
    return ', '.join("'%s' (%s)" % (r['name_label'], r['type'])
                     for r in sorted(srs.values(),
                                     key=lambda r: r['name_label']))


def find_sr(api, key=None):
    """An SR ref by uuid, name or type; None: the pool's default SR."""
    srs = {ref: rec for ref, rec in api.SR.get_all_records().items()
           if rec['content_type'] != 'iso'}
    if key is None:
        default = api.pool.get_default_SR(api.pool.get_all()[0])
        if default == NULL:
            raise BuildError('the pool has no default SR: name one '
                             '(SRs: %s)' % _sr_list(srs))
        return default
    for match in (lambda r: r['uuid'] == key,
                  lambda r: r['name_label'] == key,
                  lambda r: r['type'] == key):
        found = [ref for ref, rec in srs.items() if match(rec)]
        if len(found) == 1:
            return found[0]
        if found:
            raise BuildError('%d SRs match %r: give a uuid (SRs: %s)'
                             % (len(found), key, _sr_list(srs)))
    raise BuildError('unknown SR %r (SRs: %s)' % (key, _sr_list(srs)))


def management_network(api):
    """The network of the master's management PIF (the first one else)."""
    for rec in api.PIF.get_all_records().values():
        if rec['management']:
            return rec['network']
    networks = api.network.get_all()
    if not networks:
        raise BuildError('the pool has no network')
    return networks[0]


# -- the VM --------------------------------------------------------------

def create_vm(api, name, disks=(), memory=256 * MiB, network=None,
              start=True):
    """A VM with a disk per (size, SR ref) of ``disks`` and one VIF.

    Userdevices 0, 1, ... in the order given; ``network`` a network ref,
    or the management network; ``network=False`` for no VIF. Returns (VM
    ref, [VDI ref, ...]). On any failure nothing it created is left.
    """
    created_vdis = []
    vm = api.VM.create(vm_record(name, memory))
    try:
        for n, (size, sr) in enumerate(disks):
            vdi = create_vdi(api, sr, size, '%s disk %d' % (name, n))
            created_vdis.append(vdi)
            api.VBD.create(vbd_record(vm, vdi, str(n)))
        if network is not False:
            api.VIF.create(vif_record(vm, network or management_network(
                api)))
        if start:
            api.VM.start(vm, False, False)
    except BaseException:
        undo(api, vm, created_vdis)
        raise
    return vm, created_vdis


def create_vdi(api, sr, size, name):
    try:
        return api.VDI.create(vdi_record(sr, size, name))
    except XenAPI.Failure as exc:
        if exc.details[0] == 'SR_BACKEND_FAILURE_44':
            rec = api.SR.get_record(sr)
            free = int(rec['physical_size']) - int(
                rec['physical_utilisation'])
            raise BuildError(
                "SR '%s' is full: %s needs %d MiB, %d MiB free (%s)"
                % (rec['name_label'], name, size // MiB, free // MiB,
                   exc.details[0])) from None
        raise


def undo(api, vm, vdis):
    """Remove a half-built VM; errors here must not hide the first one."""
    try:
        if api.VM.get_power_state(vm) == 'Running':
            api.VM.hard_shutdown(vm)
        api.VM.destroy(vm)
    except Exception:  # the pool is gone or the VM already went
        pass
    for vdi in vdis:
        try:
            api.VDI.destroy(vdi)
        except Exception:
            pass
