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

"""One simulated pool: its database, its SR stores and its sessions."""

import hmac
import logging
import os
import time
import uuid as uuidlib

from xapi_sim import api
from xapi_sim import calllog
from xapi_sim import db as dbmod
from xapi_sim import errors
from xapi_sim import runtime
from xapi_sim import schema
from xapi_sim import storage

NULL = dbmod.NULL

THIN_TYPES = ('ext', 'file', 'nfs')
THICK_TYPES = ('lvm', 'lvmoiscsi', 'lvmohba')
ISO_TYPES = ('iso', 'udev')

_COMMON_FEATURES = ('SR_PROBE', 'SR_UPDATE', 'VDI_CREATE', 'VDI_DELETE',
                    'VDI_ATTACH', 'VDI_DETACH', 'VDI_UPDATE', 'VDI_CLONE',
                    'VDI_SNAPSHOT', 'VDI_RESIZE', 'VDI_MIRROR',
                    'VDI_MIRROR_IN', 'VDI_GENERATE_CONFIG', 'ATOMIC_PAUSE',
                    'VDI_CONFIG_CBT', 'VDI_ACTIVATE', 'VDI_DEACTIVATE')
SM_FEATURES = {
    'ext': _COMMON_FEATURES + ('THIN_PROVISIONING',
                               'SR_SUPPORTS_LOCAL_CACHING'),
    'file': _COMMON_FEATURES + ('THIN_PROVISIONING',),
    'nfs': _COMMON_FEATURES + ('THIN_PROVISIONING', 'SR_CACHING'),
    'lvm': _COMMON_FEATURES + ('SR_TRIM',),
    'lvmoiscsi': _COMMON_FEATURES + ('SR_TRIM', 'SR_METADATA'),
    'lvmohba': _COMMON_FEATURES + ('SR_TRIM', 'SR_METADATA'),
    'iso': ('SR_SCAN', 'VDI_INTRODUCE', 'VDI_ATTACH', 'VDI_DETACH'),
    'udev': ('SR_SCAN', 'VDI_ATTACH', 'VDI_DETACH'),
}
SM_NAMES = {
    'ext': 'Local EXT3 VHD', 'file': 'Local Path VHD', 'nfs': 'NFS VHD',
    'lvm': 'Local LVM', 'lvmoiscsi': 'LVM over iSCSI',
    'lvmohba': 'LVM over FC', 'iso': 'ISO', 'udev': 'Local Device',
}


GiB = 1 << 30
DEFAULT_HOST_MEMORY = 64 * GiB
DEFAULT_HOST_CPUS = 8
DOM0_MEMORY = 4 * GiB
# What xapi keeps aside for Xen and the host itself (host.memory_overhead).
HOST_MEMORY_OVERHEAD = 1 << 29
# As xapi's Create_misc reports them (create_host_cpu, software_version).
CPU_INFO = {
    'vendor': 'GenuineIntel', 'speed': '2400.000',
    'modelname': 'Intel(R) Xeon(R) Silver 4214R CPU @ 2.40GHz',
    'family': '6', 'model': '85', 'stepping': '7',
    'flags': ('fpu de tsc msr pae mce cx8 apic sep mca cmov pat clflush '
              'acpi mmx fxsr sse sse2 ht syscall nx lm constant_tsc '
              'rep_good nopl nonstop_tsc cpuid pni pclmulqdq monitor '
              'ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx '
              'f16c rdrand hypervisor lahf_lm abm 3dnowprefetch avx2 bmi1 '
              'bmi2 erms avx512f avx512dq avx512cd avx512bw avx512vl'),
    'features': ('1fcbfbff-f7fa3223-2d93fbff-00000423-0000000f-d19ffffb-'
                 '00000008-00000000-00001000-9c000400-00000000-00000000'),
    'features_pv': ('1fc9cbf5-f6f83203-2991cbf5-00000003-0000000f-'
                    'd19ffffb-00000008-00000000-00001000-8c000400'),
    'features_hvm': ('1fcbfbff-f7fa3223-2d93fbff-00000403-0000000f-'
                     'd19ffffb-00000008-00000000-00001000-9c000400'),
    'features_pv_host': ('1fc9cbf5-f6f83203-2991cbf5-00000003-0000000f-'
                         'd19ffffb-00000008-00000000-00001000-8c000400'),
    'features_hvm_host': ('1fcbfbff-f7fa3223-2d93fbff-00000403-0000000f-'
                          'd19ffffb-00000008-00000000-00001000-9c000400'),
    'threads_per_core': '1', 'nr_nodes': '1',
}
SOFTWARE_VERSION = {
    'product_version': '8.3.0', 'product_version_text': '8.3',
    'product_version_text_short': '8.3', 'platform_name': 'XCP',
    'platform_version': '3.4.0', 'product_brand': 'XCP-ng',
    'build_number': 'cloud', 'git_id': '0', 'date': '2024-10-02',
    'xapi': '25.6', 'xapi_build': '25.6.0', 'xen': '4.17.5-3',
    'linux': '4.19.0+1', 'xencenter_min': '2.21', 'xencenter_max': '2.21',
    'network_backend': 'openvswitch', 'db_schema': '5.786',
}

_SCAN_FIELDS = ('name_label', 'name_description', 'virtual_size', 'type',
                'sharable', 'read_only', 'other_config', 'sm_config')


def host_times(previous=None, boot=False):
    """host.other_config's boot_time and agent_start_time.

    Dbsync_slave.refresh_localhost_info writes both at every toolstack
    start, as OCaml's string_of_float prints whole seconds ("1733490000.").
    boot_time only moves when the host boots (``boot``). ``previous`` is
    the host's other_config so far: a restart takes xapi longer than a
    second, so neither time ever repeats or goes back.
    """
    previous = previous or {}

    def after(key, floor):
        try:
            return max(floor, int(float(previous[key])) + 1)
        except (KeyError, TypeError, ValueError):
            return floor
    now = int(time.time())
    times = {}
    if boot:
        now = times['boot_time'] = after('boot_time', now)
    times['agent_start_time'] = after('agent_start_time', now)
    return {k: '%d.' % v for k, v in times.items()}


# What the simulated guest reports unless told otherwise: a Linux guest
# with PV drivers and its agent (see runtime._guest_boots).
DEFAULT_GUEST_AGENT = {'pv_drivers': True, 'can_use_hotplug_vif': 'yes',
                       'can_use_hotplug_vbd': 'yes'}


def guest_agent_profile(current=None, **changes):
    """A guest agent profile: ``current`` (or the default) with changes."""
    unknown = set(changes) - set(DEFAULT_GUEST_AGENT)
    if unknown:
        raise ValueError('unknown guest agent settings: %s (known: %s)' % (
            ', '.join(sorted(unknown)),
            ', '.join(sorted(DEFAULT_GUEST_AGENT))))
    profile = dict(current or DEFAULT_GUEST_AGENT)
    for key, value in changes.items():
        if key == 'pv_drivers':
            if not isinstance(value, bool):
                raise ValueError('pv_drivers must be true or false')
        elif value not in schema.HOTPLUG:
            raise ValueError('%s must be one of %s'
                             % (key, ', '.join(schema.HOTPLUG)))
        profile[key] = value
    return profile


def apply_guest_agent(db, vm, rec, profile):
    """Make a running VM's guest metrics say what ``profile`` says."""
    gm = rec['guest_metrics']
    if not profile['pv_drivers']:
        db.update('VM', vm, guest_metrics=NULL)
        db.remove('VM_guest_metrics', gm)
        return
    db.update('VM_guest_metrics', gm, **{
        k: profile[k] for k in ('can_use_hotplug_vif',
                                'can_use_hotplug_vbd')})


class Pool(object):
    """A pool: what one pool master serves at its URL."""

    def __init__(self, sim, name, root, username, password):
        self.sim = sim
        self.name = name
        self.root = root
        self.username = username
        self._password = password
        self.db = dbmod.Database()
        self.call_log = calllog.CallLog()
        self.db.watch(runtime.watcher, prepare=runtime.prepare)
        self.db.watch(self._guest_agent_watcher)
        # Xapi's Localdb host_auto_enable of each host (host ref -> bool):
        # whether its toolstack re-enables it when it starts.
        self.auto_enable = {}
        # host ref -> True where /etc/xensource/allow_multiple_vdi_attach
        # exists (SM's blktap2 ENABLE_MULTIPLE_ATTACH); absent by default.
        self.multiple_attach = {}
        self.stores = {}
        self.disks = {}
        # VDI ref -> Layer: the "base copy" records of hidden VHD parents.
        self.base_copies = {}
        # VDI ref -> the vhd-parent uuid sync_chains last wrote there.
        self._vhd_parents = {}
        self.running_tasks = {}  # task ref -> the thread running it
        # Counts toolstack restarts: a call started before one is over.
        self.epoch = 0
        self.next_domid = 0
        self.url = None
        self.address = None
        self.log = logging.getLogger('xapi_sim.%s' % name)
        with self.db.lock:
            self.pool_ref = self.db.add('pool', {'name_label': name})
            self.master = None

    # -- sessions --------------------------------------------------------

    def login(self, uname, pwd, originator=''):
        ok = (isinstance(uname, str) and isinstance(pwd, str)
              and hmac.compare_digest(uname.encode(), self.username.encode())
              and hmac.compare_digest(pwd.encode(),
                                      self._password.encode()))
        if not ok:
            raise errors.XapiError('SESSION_AUTHENTICATION_FAILED',
                                   uname, 'Authentication failure')
        return self.db.add('session', {
            'this_host': self.master, 'this_user': 'root',
            'last_active': time.time(), 'originator': originator or '',
            'auth_user_name': uname, 'is_local_superuser': True,
            'validation_time': time.time()})

    def logout(self, session):
        with self.db.lock:
            if self.db.exists('session', session):
                self.db.remove('session', session)

    def check_session(self, session):
        if not isinstance(session, str) or not self.db.exists('session',
                                                              session):
            raise errors.XapiError('SESSION_INVALID', session)

    def track_task(self, session, task):
        with self.db.lock:
            if self.db.exists('session', session):
                rec = self.db.get('session', session)
                rec['tasks'].append(task)

    def call(self, name, params):
        return api.dispatch(self, name, params)

    # -- storage ---------------------------------------------------------

    def store(self, sr):
        with self.db.lock:
            self.db.get('SR', sr)
        try:
            return self.stores[sr]
        except KeyError:
            raise errors.XapiError('SR_OPERATION_NOT_SUPPORTED', sr)

    def disk(self, vdi):
        with self.db.lock:
            self.db.get('VDI', vdi)
            disk = self.disks.get(vdi)
        if disk is None:
            raise errors.XapiError('VDI_IS_A_PHYSICAL_DEVICE', vdi)
        return disk

    def add_vdi(self, record, disk):
        with self.db.lock:
            record = dict(record)
            ref = dbmod.new_ref()
            self.disks[ref] = disk
            disk.ref = ref
            try:
                ref = self.db.add('VDI', record, ref=ref)
                rec = self.db.get('VDI', ref)
                rec['location'] = rec['uuid']
                rec['physical_utilisation'] = disk.physical()
                # What another pool sharing this SR learns by SR.scan.
                disk.store.vdis[rec['uuid']] = (disk, {
                    k: rec[k] for k in _SCAN_FIELDS})
            except Exception:
                self.disks.pop(ref, None)
                disk.destroy()
                raise
        self.refresh_sr(record['SR'])
        return ref

    def remove_vdi(self, vdi):
        with self.db.lock:
            sr = self.db.get('VDI', vdi)['SR']
            uuid = self.db.get('VDI', vdi)['uuid']
            self.db.remove('VDI', vdi)
            disk = self.disks.pop(vdi, None)
        if disk is not None:
            disk.store.vdis.pop(uuid, None)
            disk.destroy()
            self._collect_garbage(disk.store)
        self.refresh_sr(sr)

    def sync_chains(self, sr, store):
        """Expose an SR's VHD chains as SM's VHD-based SRs do.

        Every hidden parent layer is a VDI record named "base copy"
        (managed false, read-only, its own physical_utilisation), and
        every VDI names its parent's uuid in sm_config vhd-parent. Layers
        that coalesce away lose their record. The caller holds the lock.
        """
        db = self.db
        leaves = {}
        for ref, disk in self.disks.items():
            if (disk.store is store and disk.leaf is not None
                    and db.exists('VDI', ref)):
                leaves.setdefault(disk.leaf, ref)
        hidden = set()
        for layer in list(leaves):
            parent = layer.parent
            while parent is not None:
                if parent not in leaves:
                    hidden.add(parent)
                parent = parent.parent
        owned = {}
        for ref, layer in list(self.base_copies.items()):
            if layer.store is not store:
                continue
            if layer in hidden and db.exists('VDI', ref):
                owned[layer] = ref
                continue
            del self.base_copies[ref]
            if db.exists('VDI', ref):
                db.remove('VDI', ref)
        for layer in hidden:
            if layer in owned:
                if (db.get('VDI', owned[layer])['physical_utilisation']
                        != layer.physical()):
                    db.update('VDI', owned[layer],
                              physical_utilisation=layer.physical())
                continue
            if layer.uuid is None:
                layer.uuid = str(uuidlib.uuid4())
            ref = db.add('VDI', {
                'uuid': layer.uuid, 'name_label': 'base copy',
                'name_description': '', 'SR': sr, 'type': 'user',
                'virtual_size': layer.size, 'read_only': True,
                'managed': False, 'location': layer.uuid,
                'physical_utilisation': layer.physical(),
                'sm_config': {'vdi_type': 'vhd'}})
            self.base_copies[ref] = layer
            owned[layer] = ref
        for layer, ref in leaves.items():
            # A coalesce moved the parent's blocks into the leaf.
            if db.get('VDI', ref)['physical_utilisation'] != layer.physical():
                db.update('VDI', ref, physical_utilisation=layer.physical())
        uuid_of = {layer: db.get('VDI', ref)['uuid']
                   for layer, ref in list(leaves.items())
                   + list(owned.items())}
        for layer, ref in list(leaves.items()) + list(owned.items()):
            sm = db.get('VDI', ref)['sm_config']
            parent = uuid_of.get(layer.parent)
            mine = self._vhd_parents.get(ref)
            if parent is None:
                self._vhd_parents.pop(ref, None)
                # Only a key this pool wrote goes: one a client wrote with
                # add_to_sm_config names no layer the simulator knows.
                if mine is None or sm.get('vhd-parent') != mine:
                    continue
                sm = dict(sm)
                sm.pop('vhd-parent')
            else:
                self._vhd_parents[ref] = parent
                if sm.get('vhd-parent') == parent:
                    continue
                sm = dict(sm, **{'vhd-parent': parent})
            db.update('VDI', ref, sm_config=sm)

    def _collect_garbage(self, store):
        """Coalesce chains a removed snapshot no longer pins (SM's GC)."""
        with self.db.lock:
            disks = [d for d in self.disks.values() if d.store is store]
        for disk in disks:
            try:
                disk.coalesce()
            except errors.XapiError:
                pass  # the SR is full: leave the chain as it is

    def refresh_vdi(self, vdi):
        with self.db.lock:
            disk = self.disks.get(vdi)
            if disk is None or not self.db.exists('VDI', vdi):
                return
            self.db.update('VDI', vdi, physical_utilisation=disk.physical())
            sr = self.db.get('VDI', vdi)['SR']
        self.refresh_sr(sr)

    def refresh_sr(self, sr):
        """Make an SR's size fields true, as SR.scan does in xapi."""
        store = self.stores.get(sr)
        if store is None:
            return
        with self.db.lock:
            if not self.db.exists('SR', sr):
                return
            self.sync_chains(sr, store)
            vdis = [v for v in self.db.get('SR', sr)['VDIs']
                    if v not in self.base_copies]
            alloc = sum(self.db.get('VDI', v)['virtual_size'] for v in vdis)
            self.db.update('SR', sr, physical_utilisation=store.utilisation(),
                           virtual_allocation=alloc,
                           physical_size=store.physical_size)

    # -- topology --------------------------------------------------------

    def add_host(self, name, address, memory=DEFAULT_HOST_MEMORY,
                 cpus=DEFAULT_HOST_CPUS):
        """A host with its metrics, CPUs and control domain (dom0)."""
        memory, cpus = int(memory), int(cpus)
        with self.db.lock:
            metrics = self.db.add('host_metrics', {
                'memory_total': memory, 'memory_free': memory,
                'live': True, 'last_updated': time.time()})
            iqn = 'iqn.2026-01.org.xapi-sim:%s' % name
            host = self.db.add('host', {
                'name_label': name, 'hostname': name, 'address': address,
                'metrics': metrics, 'iscsi_iqn': iqn,
                'other_config': dict(host_times(boot=True),
                                     iscsi_iqn=iqn),
                'memory_overhead': HOST_MEMORY_OVERHEAD,
                'software_version': dict(SOFTWARE_VERSION, hostname=name),
                'cpu_info': dict(CPU_INFO, cpu_count=str(cpus),
                                 socket_count='1'),
                'capabilities': ['xen-3.0-x86_64', 'hvm-3.0-x86_32',
                                 'hvm-3.0-x86_32p', 'hvm-3.0-x86_64'],
                'license_params': {'sku_type': 'free'},
            })
            for number in range(cpus):
                self.db.add('host_cpu', {
                    'host': host, 'number': number,
                    'vendor': CPU_INFO['vendor'],
                    'speed': int(float(CPU_INFO['speed'])),
                    'modelname': CPU_INFO['modelname'],
                    'family': int(CPU_INFO['family']),
                    'model': int(CPU_INFO['model']),
                    'stepping': CPU_INFO['stepping'],
                    'flags': CPU_INFO['flags'],
                    'features': CPU_INFO['features']})
            if self.master is None:
                self.master = host
                self.db.update('pool', self.pool_ref, master=host)
                for s in self.db.all_refs('session'):
                    self.db.get('session', s)['this_host'] = host
            self.db.add('VM', {
                'name_label': 'Control domain on host: %s' % name,
                'is_control_domain': True, 'power_state': 'Running',
                'resident_on': host, 'affinity': host, 'domid': 0,
                'domain_type': 'pv', 'HVM_boot_policy': '',
                'memory_static_max': DOM0_MEMORY,
                'memory_dynamic_max': DOM0_MEMORY,
                'memory_dynamic_min': DOM0_MEMORY,
                'memory_static_min': DOM0_MEMORY,
                'VCPUs_max': cpus, 'VCPUs_at_startup': cpus,
            })
            for sr, store in self.stores.items():
                if self.db.get('SR', sr)['shared']:
                    self._add_pbd(host, sr)
            return host

    def add_network(self, name, bridge, device=None, ip=None,
                    netmask='255.255.255.0', management=False):
        with self.db.lock:
            net = self.db.add('network', {
                'name_label': name, 'bridge': bridge, 'MTU': 1500,
                'other_config': {}})
            if device is not None:
                for host in self.db.all_refs('host'):
                    if management and not ip:
                        # The management interface carries the host's
                        # address.
                        host_ip = self.db.get('host', host)['address']
                    else:
                        host_ip = ip
                    self.db.add('PIF', {
                        'device': device, 'network': net, 'host': host,
                        'MAC': api.vm.random_mac(), 'physical': True,
                        'currently_attached': True,
                        'ip_configuration_mode': ('Static' if host_ip
                                                  else 'None'),
                        'IP': host_ip or '',
                        'netmask': netmask if host_ip else '',
                        'management': management})
            return net

    def _sm(self, sr_type):
        found = self.db.find('SM', type=sr_type)
        if found:
            return found[0]
        return self.db.add('SM', {
            'name_label': SM_NAMES.get(sr_type, sr_type),
            'type': sr_type, 'vendor': 'xapi-sim',
            'features': {f: 1 for f in SM_FEATURES.get(sr_type, ())},
            'capabilities': list(SM_FEATURES.get(sr_type, ())),
            'driver_filename': '/opt/xensource/sm/%sSR' % sr_type.upper()})

    def _device_config(self, sr):
        """What an SR's PBDs carry, as an operator's sr-create gives it.

        A PBD of the SR already there (another host's, or the same SR's
        in another pool) gives it; else a value typical of the SR type.
        """
        rec = self.db.get('SR', sr)
        for pbd in rec['PBDs']:
            return dict(self.db.get('PBD', pbd)['device_config'])
        other = self.sim.find_pbd_config(rec['uuid'], exclude=self)
        if other is not None:
            return other
        uuid, address = rec['uuid'], getattr(self, 'address', '127.0.0.1')
        return {
            'nfs': {'server': address, 'serverpath': '/exports/sr-%s' % uuid},
            'lvmoiscsi': {'target': address, 'port': '3260',
                          'targetIQN': 'iqn.2026-01.org.xapi-sim:storage',
                          'SCSIid': '36001405%s' % uuid.replace('-', '')[:24]},
            'lvmohba': {'SCSIid': '3600a0980%s'
                        % uuid.replace('-', '')[:23]},
            'lvm': {'device': '/dev/sdb'},
            'ext': {'device': '/dev/sda3'},
            'file': {'location': '/var/run/sr-mount/%s' % uuid},
            'iso': {'location': '/opt/xensource/packages/iso',
                    'legacy_mode': 'true'},
            'udev': {'location': '/dev/xapi/cd'},
        }.get(rec['type'], {})

    def _add_pbd(self, host, sr, device_config=None):
        if device_config is None:
            device_config = self._device_config(sr)
        return self.db.add('PBD', {'host': host, 'SR': sr,
                                   'device_config': dict(device_config),
                                   'currently_attached': True})

    def add_sr(self, name, sr_type, physical_size, shared=False, uuid=None,
               default=False, host=None, device_config=None):
        if sr_type not in SM_FEATURES:
            raise ValueError('unknown SR type %r (one of %s)'
                             % (sr_type, ', '.join(sorted(SM_FEATURES))))
        thick = sr_type in THICK_TYPES
        with self.db.lock:
            self._sm(sr_type)
            fields = {
                'name_label': name, 'type': sr_type, 'shared': bool(shared),
                'physical_size': int(physical_size),
                'content_type': 'iso' if sr_type in ISO_TYPES else 'user',
                'sm_config': {'allocation': 'thick' if thick else 'dynamic'},
                'allowed_operations': ['scan', 'vdi_create', 'vdi_destroy',
                                       'vdi_snapshot', 'vdi_clone',
                                       'vdi_resize', 'vdi_mirror'],
            }
            if uuid:
                fields['uuid'] = uuid
            sr = self.db.add('SR', fields)
            hosts = (self.db.all_refs('host') if shared
                     else [host or self.master])
            if device_config is None:
                device_config = self._device_config(sr)
            for h in hosts:
                self._add_pbd(h, sr, device_config)
            shared_store = (self.sim.find_store(uuid)
                            if shared and uuid else None)
            if shared_store is not None:
                # The same SR introduced in two pools: the same bytes.
                self.stores[sr] = shared_store
            elif sr_type not in ISO_TYPES:
                self.stores[sr] = storage.SRStore(
                    os.path.join(self.root, self.db.get('SR', sr)['uuid']),
                    physical_size, thick)
            if default:
                self.db.update('pool', self.pool_ref, default_SR=sr)
        self.refresh_sr(sr)
        return sr

    # -- hosts in the field ------------------------------------------------

    def find_host(self, host):
        """A host of the pool by ref, uuid or name label (lock held)."""
        if not isinstance(host, str) or not host:
            raise ValueError('"host" (a host ref, uuid or name) is required')
        db = self.db
        if db.exists('host', host):
            return host
        found = db.by_uuid['host'].get(host) or next(
            (r for r, rec in db.tables['host'].items()
             if rec['name_label'] == host), None)
        if found is None:
            raise ValueError('no host %s in pool %s' % (host, self.name))
        return found

    def host_is_live(self, host):
        """Xapi_vm_helpers.is_host_live: host_metrics.live (lock held)."""
        metrics = self.db.get('host', host)['metrics']
        return (self.db.exists('host_metrics', metrics)
                and self.db.get('host_metrics', metrics)['live'])

    def host_live(self, host, live):
        """A member host loses power (``live`` false) or boots again.

        Dead: host_metrics.live goes false, as the master's heartbeat
        check marks it (Xapi_host_helpers.mark_host_as_dead); its VMs stay
        Running and resident on it in the database, their guests stop
        (no write in flight, journals kept for guest_check). Calls
        forwarded to it answer HOST_OFFLINE, placement on it HOST_NOT_LIVE.
        Back: the host rebooted: new boot_time and agent_start_time, the
        VMs still resident on it are reset to Halted (their domains died
        with the host: xapi's resync at start-up), a VM reset meanwhile
        stays as it is, and the host is enabled unless host.disable
        said auto_enable false (consider_enabling_host). The master
        cannot die here: its pool would answer nothing (use a toolstack
        restart with ``down``, or designate_new_master first).
        """
        live = bool(live)
        with self.db.lock:
            ref = self.find_host(host)
            if ref == self.master:
                raise ValueError(
                    'host %s is the master of %s: a dead master answers '
                    'nothing (designate another master first)'
                    % (host, self.name))
            rec = self.db.get('host', ref)
            was = self.host_is_live(ref)
            vms = [vm for vm in rec['resident_VMs']
                   if not self.db.get('VM', vm)['is_control_domain']]
            uuids = [self.db.get('VM', vm)['uuid'] for vm in vms]
            if live and not was:
                for vm in vms:
                    api.vm.force_state_reset(self, vm)
                self.db.update('host', ref, other_config=dict(
                    rec['other_config'],
                    **host_times(rec['other_config'], boot=True)),
                    enabled=self.auto_enable.get(ref, True))
            if live != was:
                self.db.update('host_metrics', rec['metrics'], live=live,
                               last_updated=time.time())
            address = rec['address']
            answer = {'host': rec['uuid'], 'live': live,
                      'enabled': self.db.get('host', ref)['enabled'],
                      'other_config': dict(
                          self.db.get('host', ref)['other_config'])}
        if live != was:
            self.sim.host_power(self, address, live)
            for uuid in uuids:
                dom = self.sim.domains.get(uuid)
                if dom is None:
                    continue
                if live:
                    dom.stop_workloads()
                else:
                    dom.pause()
        return answer

    def allow_multiple_vdi_attach(self, host, allow):
        """Create or remove the host's allow_multiple_vdi_attach file.

        /etc/xensource/allow_multiple_vdi_attach: with it, SM on that
        host attaches a VDI another host holds without trying to reset it
        (``api.vm.assert_host_may_attach``). ``host``: its name label,
        uuid or ref. Returns ``{host, allow}``.
        """
        with self.db.lock:
            ref = self.find_host(host)
            self.multiple_attach[ref] = bool(allow)
            return {'host': self.db.get('host', ref)['uuid'],
                    'allow': bool(allow)}

    def _guest_agent_watcher(self, db, operation, cls, ref, rec, old):
        """What a VM's guest agent reports, as the simulator was told.

        A guest declared without PV drivers (``Simulator.guest_agents``)
        runs no agent: xapi has no VM_guest_metrics for it. Otherwise its
        metrics say which hotplugs it supports.
        """
        if cls != 'VM' or operation != 'mod' or 'guest_metrics' not in old:
            return
        profile = self.sim.guest_agents.get(rec['uuid'])
        if profile is not None and db.exists('VM_guest_metrics',
                                             rec['guest_metrics']):
            apply_guest_agent(db, ref, rec, profile)

    # -- migration support -------------------------------------------------

    @property
    def port(self):
        return int(self.url.rsplit(':', 1)[1].strip('/'))

    def new_session(self, caller, host, parent='OpaqueRef:NULL'):
        """A session like ``caller``'s, on ``host`` (migrate_receive's)."""
        with self.db.lock:
            return self.db.add('session', {
                'parent': parent, 'validation_time': time.time(),
                'this_host': host, 'this_user': caller['this_user'],
                'last_active': time.time(), 'pool': caller['pool'],
                'originator': caller['originator'],
                'auth_user_name': caller['auth_user_name'],
                'auth_user_sid': caller['auth_user_sid'],
                'subject': caller['subject'],
                'rbac_permissions': list(caller['rbac_permissions']),
                'is_local_superuser': caller['is_local_superuser']})

    def register_sm(self, sr_type):
        """The SM record of an SR type (created on first use)."""
        with self.db.lock:
            return self._sm(sr_type)

    def introduce_from_store(self, sr, only=None):
        """SR.scan of a shared SR: know the VDIs another pool created.

        With ``only`` (a VDI uuid), VDI.introduce of that one VDI.
        """
        store = self.stores.get(sr)
        if store is None:
            return
        with self.db.lock:
            known = {self.db.get('VDI', v)['uuid']: v
                     for v in self.db.get('SR', sr)['VDIs']}
            for uuid, (disk, meta) in list(store.vdis.items()):
                if uuid in known or disk.leaf is None:
                    continue
                if only is not None and uuid != only:
                    continue
                ref = dbmod.new_ref()
                self.disks[ref] = disk
                self.db.add('VDI', dict(meta, uuid=uuid, SR=sr,
                                        location=uuid,
                                        physical_utilisation=disk.physical()),
                            ref=ref)
            for uuid, ref in known.items():
                if only is not None:
                    break
                if uuid not in store.vdis and ref in self.disks:
                    # Destroyed through another pool.
                    self.disks.pop(ref)
                    self.db.remove('VDI', ref)
        self.refresh_sr(sr)

    def cancel_tasks(self, timeout=30.0):
        """Cancel what still runs and wait for it, before shutting down."""
        running = dict(self.running_tasks)
        with self.db.lock:
            for task in running:
                if (self.db.exists('task', task) and 'cancel'
                        in self.db.get('task', task)['allowed_operations']):
                    self.db.update('task', task, status='cancelling',
                                   allowed_operations=[])
        deadline = time.monotonic() + timeout
        for thread in running.values():
            thread.join(max(0.0, deadline - time.monotonic()))

    def task_ended_since(self, when):
        """Whether a task of this pool ended at ``when`` or later."""
        with self.db.lock:
            return any(rec['status'] != 'pending' and rec['finished']
                       and rec['finished'] >= when
                       for rec in self.db.tables['task'].values())

    def restart_toolstack(self, timeout=30.0, hosts=None):
        """What xapi's restart does to the pool's state (not its servers).

        ``hosts``: the hosts whose toolstack restarts (default: the
        master's). Each gets a new agent_start_time (boot_time stays) and
        comes back enabled unless host.disable said auto_enable false:
        xapi's shutdown disables the host (Xapi_fuse) and its start-up
        re-enables it (consider_enabling_host), so a plain host.disable
        does not survive a toolstack restart.

        Every call in flight ends with the process: a migration that had
        not passed its point of no return is undone as xapi's start-up
        does (Storage_migrate.killall: mirrors stopped, copies and
        receiving VDIs destroyed). Sessions and tasks are not persisted
        (datamodel.ml, persist:PersistNothing): all of them are gone, and
        so are current_operations (Cancel_tasks: "long-running xapi
        managed tasks are going to float off into the ether over a master
        restart"; for a member's restart it destroys the member's
        incomplete tasks too). Guests keep running: xenopsd and the
        domains stay.
        """
        with self.db.lock:
            self.epoch += 1
            self.db.changed.notify_all()
        running = dict(self.running_tasks)
        deadline = time.monotonic() + timeout
        for thread in running.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        with self.db.lock:
            for cls in ('session', 'task'):
                for ref in self.db.all_refs(cls):
                    self.db.remove(cls, ref)
            for cls, table in self.db.tables.items():
                for ref, rec in list(table.items()):
                    if rec.get('current_operations'):
                        self.db.update(cls, ref, current_operations={})
            for host in hosts or [self.master]:
                if not self.host_is_live(host):
                    continue
                other = self.db.get('host', host)['other_config']
                self.db.update('host', host,
                               enabled=self.auto_enable.get(host, True),
                               other_config=dict(other,
                                                 **host_times(other)))

    def close(self):
        for vdi in list(self.disks):
            disk = self.disks.pop(vdi)
            disk.destroy()
