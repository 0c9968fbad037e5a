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

"""Records xapi derives from a VM's life, kept in step by a DB watcher.

Whatever makes a VM run (VM.start, resume, a migration landing in this
pool) or stop, the watcher sees the change of ``power_state`` and
``resident_on`` and does what xapi and its guest agent do:

* every VM has a ``VM_metrics`` (created with the VM, as Xapi_vm.create
  does): ``memory_actual``, ``VCPUs_number``, ``start_time``, ``state``;
* a running VM gets consoles (``rfb``, and ``vt100`` for PV guests) at
  ``https://<host address>/console?uuid=<console uuid>``, destroyed when it
  halts or suspends (xapi_xenops' console update);
* a booting VM loses its old ``VM_guest_metrics`` (Xapi_vm.start) and its
  guest agent reports new ones (OS, PV drivers, one IP per VIF);
  ``live`` is false while the VM does not run;
* ``VM.memory_overhead`` follows the memory model, and every host's
  ``host_metrics.memory_free`` follows the domains running on it.
"""

import time
import uuid as uuidlib

from xapi_sim import memory

NULL = 'OpaqueRef:NULL'
RUNNING = memory.RUNNING
CONSOLE_PATH = '/console'
_MEMORY_FIELDS = ('memory_static_max', 'memory_static_min',
                  'memory_dynamic_max', 'memory_dynamic_min', 'VCPUs_max',
                  'HVM_shadow_multiplier', 'domain_type', 'HVM_boot_policy')
_PLACEMENT = ('power_state', 'resident_on', 'scheduled_to_be_resident_on')


def watcher(db, operation, cls, ref, rec, old):
    if cls == 'host' and operation == 'mod' and 'other_config' in old:
        # xapi's other-config watcher: other_config:iscsi_iqn and the
        # iscsi_iqn field stay equal.
        iqn = rec['other_config'].get('iscsi_iqn')
        if iqn and iqn != rec['iscsi_iqn']:
            db.update('host', ref, iscsi_iqn=iqn)
    if cls != 'VM':
        return
    if operation == 'add':
        _new_vm(db, ref, rec)
    elif operation == 'del':
        _forget_vm(db, rec)
        refresh_hosts(db, {rec['resident_on']})
    else:
        if any(f in old for f in _MEMORY_FIELDS):
            overhead = memory.vm_overhead(rec)
            if overhead != rec['memory_overhead']:
                db.update('VM', ref, memory_overhead=overhead)
        if 'power_state' in old or 'resident_on' in old:
            _sync(db, ref, rec, old)
        if any(f in old for f in _PLACEMENT + _MEMORY_FIELDS):
            # Only the hosts the VM ran on before and runs on now.
            refresh_hosts(db, {rec['resident_on'],
                               old.get('resident_on', rec['resident_on'])})


def prepare(db, cls, rec):
    """A new VM comes with its VM_metrics (Xapi_vm.create) and overhead."""
    if cls != 'VM':
        return
    rec['memory_overhead'] = memory.vm_overhead(rec)
    if not db.exists('VM_metrics', rec.get('metrics', NULL)):
        rec['metrics'] = db.add('VM_metrics', {
            'VCPUs_utilisation': {0: 0.0}, 'start_time': 0,
            'install_time': time.time(), 'last_updated': 0})


def _new_vm(db, ref, rec):
    if rec['power_state'] in RUNNING:
        _sync(db, ref, rec, {'power_state': 'Halted'})
        refresh_hosts(db, {rec['resident_on']})


def _forget_vm(db, rec):
    for field in ('metrics', 'guest_metrics'):
        cls = 'VM_metrics' if field == 'metrics' else 'VM_guest_metrics'
        if db.exists(cls, rec.get(field, NULL)):
            db.remove(cls, rec[field])
    for console in list(rec.get('consoles', [])):
        if db.exists('console', console):
            db.remove('console', console)


def _sync(db, ref, rec, old):
    state = rec['power_state']
    was = old.get('power_state', state)
    now = time.time()
    metrics = rec['metrics']
    have_metrics = db.exists('VM_metrics', metrics)
    if state in RUNNING:
        target = int(rec['memory_dynamic_max'])
        db.update('VM', ref, memory_target=target)
        if have_metrics:
            changes = {
                'memory_actual': target,
                'VCPUs_number': int(rec['VCPUs_at_startup']),
                'VCPUs_utilisation': {i: 0.0 for i in
                                      range(int(rec['VCPUs_at_startup']))},
                'state': ['paused'] if state == 'Paused' else ['running'],
                'current_domain_type': memory.domain_type(rec),
                'hvm': memory.domain_type(rec) != 'pv',
                'last_updated': now}
            if was not in RUNNING or 'resident_on' in old:
                changes['start_time'] = now
            db.update('VM_metrics', metrics, **changes)
        if was not in RUNNING and not rec['is_control_domain']:
            _guest_boots(db, ref, rec, resumed=was == 'Suspended')
        if 'resident_on' in old:
            # Moved to another host: its consoles are served there now.
            for console in list(rec['consoles']):
                db.remove('console', console)
        if not rec['consoles'] and rec['resident_on'] != NULL:
            _add_consoles(db, ref, rec)
    else:
        db.update('VM', ref, memory_target=0)
        if have_metrics:
            db.update('VM_metrics', metrics, memory_actual=0,
                      VCPUs_number=0, VCPUs_utilisation={}, state=[],
                      last_updated=now)
        gm = rec['guest_metrics']
        if db.exists('VM_guest_metrics', gm):
            db.update('VM_guest_metrics', gm, live=False, last_updated=now)
        for console in list(rec['consoles']):
            db.remove('console', console)


def _guest_boots(db, ref, rec, resumed):
    """The guest agent reports once the guest runs.

    A fresh boot loses the old guest metrics first (Xapi_vm.start deletes
    them); a resumed guest reports again.
    """
    gm = rec['guest_metrics']
    if db.exists('VM_guest_metrics', gm):
        if resumed:
            db.update('VM_guest_metrics', gm, live=True,
                      last_updated=time.time())
            return
        db.update('VM', ref, guest_metrics=NULL)
        db.remove('VM_guest_metrics', gm)
    networks = {}
    for vif in rec['VIFs']:
        dev = db.get('VIF', vif)['device']
        address = _guest_ip(rec['uuid'], dev)
        networks['%s/ip' % dev] = address
        networks['%s/ipv4/0' % dev] = address
    gm = db.add('VM_guest_metrics', {
        'os_version': {'name': 'Debian GNU/Linux 12 (bookworm)',
                       'distro': 'debian', 'major': '12', 'minor': '8',
                       'uname': '6.1.0-28-amd64'},
        'PV_drivers_version': {'major': '8', 'minor': '3', 'micro': '0',
                               'build': '1'},
        'PV_drivers_up_to_date': True, 'PV_drivers_detected': True,
        'memory': {}, 'disks': {}, 'networks': networks,
        'other': {'feature-suspend': '1', 'feature-poweroff': '1',
                  'feature-reboot': '1', 'feature-vcpu-hotplug': '1',
                  'has-vendor-device': '0', 'platform-feature-multiprocessor-'
                  'suspend': '1'},
        'last_updated': time.time(), 'live': True,
        'can_use_hotplug_vbd': 'yes', 'can_use_hotplug_vif': 'yes'})
    db.update('VM', ref, guest_metrics=gm)


def _guest_ip(vm_uuid, device):
    # Stable per VM and device, in TEST-NET-2 so it reaches nothing.
    n = uuidlib.UUID(vm_uuid).int
    return '198.51.100.%d' % ((n + int(device or 0) * 7) % 250 + 2)


def _add_consoles(db, ref, rec):
    host = db.get('host', rec['resident_on'])
    protocols = ['rfb']
    if memory.domain_type(rec) == 'pv' or rec['is_control_domain']:
        protocols.insert(0, 'vt100')
    for protocol in protocols:
        uuid = str(uuidlib.uuid4())
        db.add('console', {
            'uuid': uuid, 'protocol': protocol, 'VM': ref,
            'location': 'https://%s%s?uuid=%s' % (host['address'],
                                                  CONSOLE_PATH, uuid),
            'port': (5900 + max(0, int(rec['domid']))
                     if protocol == 'rfb' else -1),
            'other_config': {}})


def refresh_hosts(db, hosts=None):
    """host_metrics.memory_free of ``hosts`` (all), from what runs there."""
    now = time.time()
    for host, hrec in db.tables['host'].items():
        if hosts is not None and host not in hosts:
            continue
        metrics = hrec.get('metrics', NULL)
        if not db.exists('host_metrics', metrics):
            continue
        free = memory.host_memory_free(db, host)
        if db.get('host_metrics', metrics)['memory_free'] != free:
            db.update('host_metrics', metrics, memory_free=free,
                      last_updated=now)
