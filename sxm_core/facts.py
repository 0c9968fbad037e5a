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

"""What the planner needs to know about a VM and two pools, read once.

Plain frozen dataclasses built from XAPI records, so that ``plan`` stays a
set of pure functions that tests can feed by hand.
"""

import dataclasses

import XenAPI

from sxm_core import constants
from sxm_core import errors

NULL = constants.OPAQUE_NULL


@dataclasses.dataclass(frozen=True)
class Host:
    ref: str
    uuid: str
    name: str
    address: str
    enabled: bool = True


@dataclasses.dataclass(frozen=True)
class Network:
    ref: str
    uuid: str
    name: str
    bridge: str
    # ((host ref, IP, ip_configuration_mode), ...) of its PIFs
    pifs: tuple = ()

    def ip_on(self, host):
        for pif_host, ip, mode in self.pifs:
            if pif_host == host:
                return ip, mode
        return None, None


@dataclasses.dataclass(frozen=True)
class SR:
    ref: str
    uuid: str
    name: str
    type: str
    shared: bool
    content_type: str
    physical_size: int
    physical_utilisation: int
    virtual_allocation: int
    features: frozenset
    hosts: frozenset  # hosts with an attached PBD

    @property
    def thick(self):
        return self.type in constants.THICK_SR_TYPES

    @property
    def free(self):
        return max(0, self.physical_size - self.physical_utilisation)

    def label(self):
        return "SR '%s' (%s)" % (self.name, self.uuid)


@dataclasses.dataclass(frozen=True)
class Disk:
    vbd: str
    vdi: str
    uuid: str
    name: str
    userdevice: str
    mode: str
    virtual_size: int
    physical_utilisation: int
    sr: str
    cbt_enabled: bool
    sm_config: tuple = ()
    snapshot_of: str = NULL
    # What the VHD parents below this VDI hold (sm_config vhd-parent,
    # followed down the chain): a VDI's physical_utilisation counts only
    # its own leaf, a small one after a snapshot or a storage migration.
    parents_utilisation: int = 0

    @property
    def holds(self):
        """Upper bound of the data the whole chain holds."""
        return min(self.virtual_size,
                   self.physical_utilisation + self.parents_utilisation)

    def label(self):
        return "disk %s '%s' (%s)" % (self.userdevice, self.name, self.uuid)


@dataclasses.dataclass(frozen=True)
class Vif:
    ref: str
    device: str
    mac: str
    network: str
    other_config: tuple = ()

    def label(self):
        return 'VIF %s (%s)' % (self.device, self.mac)


@dataclasses.dataclass(frozen=True)
class VM:
    ref: str
    uuid: str
    name: str
    power_state: str
    resident_on: str
    disks: tuple
    vifs: tuple
    cd_drives: tuple            # userdevices of CD VBDs
    snapshots: tuple            # snapshot VM names
    snapshot_disks: tuple       # Disk of every snapshot VDI (copied)
    memory: int = 0             # memory_static_max: what XenMotion moves

    def label(self):
        return "VM '%s' (%s)" % (self.name, self.uuid)


@dataclasses.dataclass(frozen=True)
class Pool:
    url: str
    uuid: str
    name: str
    master: str
    default_sr: str
    hosts: tuple
    srs: tuple
    networks: tuple

    def host(self, ref):
        return _by_ref(self.hosts, ref)

    def sr(self, ref):
        return _by_ref(self.srs, ref)

    def network(self, ref):
        return _by_ref(self.networks, ref)

    def find(self, kind, key):
        """An SR, network or host by uuid, name label or bridge."""
        items = {'SR': self.srs, 'network': self.networks,
                 'host': self.hosts}[kind]
        for item in items:
            if key in (item.uuid, item.ref):
                return item
        named = [i for i in items if i.name == key
                 or getattr(i, 'bridge', None) == key]
        if not named:
            raise errors.NotFound(kind=kind, name=key, pool=self.name)
        if len(named) > 1:
            raise errors.Ambiguous(count=len(named), kind=kind, name=key,
                                   pool=self.name)
        return named[0]


def _by_ref(items, ref):
    for item in items:
        if item.ref == ref:
            return item
    return None


def read_pool(pool):
    """Facts about the pool behind a SessionPool."""
    with pool.session() as s:
        x = s.xenapi
        pool_rec = list(x.pool.get_all_records().values())[0]
        hosts = x.host.get_all_records()
        sms = x.SM.get_all_records()
        pbds = x.PBD.get_all_records()
        srs = x.SR.get_all_records()
        pifs = x.PIF.get_all_records()
        nets = x.network.get_all_records()
    features = {sm['type']: frozenset(sm['features']) for sm in sms.values()}
    sr_facts = []
    for ref, rec in srs.items():
        attached = frozenset(pbds[p]['host'] for p in rec['PBDs']
                             if p in pbds and pbds[p]['currently_attached'])
        sr_facts.append(SR(
            ref=ref, uuid=rec['uuid'], name=rec['name_label'],
            type=rec['type'], shared=rec['shared'],
            content_type=rec['content_type'],
            physical_size=int(rec['physical_size']),
            physical_utilisation=int(rec['physical_utilisation']),
            virtual_allocation=int(rec['virtual_allocation']),
            features=features.get(rec['type'], frozenset()),
            hosts=attached))
    net_facts = []
    for ref, rec in nets.items():
        net_pifs = tuple((pifs[p]['host'], pifs[p]['IP'],
                          pifs[p]['ip_configuration_mode'])
                         for p in rec['PIFs'] if p in pifs)
        net_facts.append(Network(ref=ref, uuid=rec['uuid'],
                                 name=rec['name_label'],
                                 bridge=rec['bridge'], pifs=net_pifs))
    host_facts = tuple(Host(ref=ref, uuid=rec['uuid'],
                            name=rec['name_label'], address=rec['address'],
                            enabled=rec['enabled'])
                       for ref, rec in hosts.items())
    return Pool(url=pool.url, uuid=pool_rec['uuid'],
                name=pool_rec['name_label'] or pool_rec['uuid'],
                master=pool_rec['master'], default_sr=pool_rec['default_SR'],
                hosts=host_facts, srs=tuple(sr_facts),
                networks=tuple(net_facts))


def find_vm(pool, key):
    """A VM ref by uuid or name label (not a template, snapshot or dom0)."""
    where = pool.url
    with pool.session() as s:
        try:
            refs = [s.xenapi.VM.get_by_uuid(key)]
        except XenAPI.Failure:  # not a uuid of this pool: try the name
            refs = s.xenapi.VM.get_by_name_label(key)
        refs = [r for r in refs if not _special(s.xenapi.VM.get_record(r))]
    if not refs:
        raise errors.NotFound(kind='VM', name=key, pool=where)
    if len(refs) > 1:
        raise errors.Ambiguous(count=len(refs), kind='VM', name=key,
                               pool=where)
    return refs[0]


def _special(rec):
    return (rec['is_a_template'] or rec['is_a_snapshot']
            or rec['is_control_domain'])


def _parents_utilisation(x, vdi_rec):
    """Bytes held by the VHD parents of a VDI (SM's hidden base copies).

    SM names a VHD's parent in ``sm_config['vhd-parent']`` (a VDI uuid);
    the parents are VDIs with ``managed`` false, listed by XAPI but not
    attachable.
    """
    total, seen = 0, {vdi_rec['uuid']}
    parent = vdi_rec['sm_config'].get('vhd-parent')
    while parent and parent not in seen:
        seen.add(parent)
        try:
            rec = x.VDI.get_record(x.VDI.get_by_uuid(parent))
        except XenAPI.Failure:
            break  # coalesced away meanwhile: the leaf now holds it
        total += int(rec['physical_utilisation'])
        parent = rec['sm_config'].get('vhd-parent')
    return total


def _disk(x, vbd, vbd_rec, vdi, vdi_rec):
    return Disk(vbd=vbd, vdi=vdi, uuid=vdi_rec['uuid'],
                name=vdi_rec['name_label'],
                userdevice=vbd_rec['userdevice'] if vbd_rec else '',
                mode=vbd_rec['mode'] if vbd_rec else 'RO',
                virtual_size=int(vdi_rec['virtual_size']),
                physical_utilisation=int(vdi_rec['physical_utilisation']),
                sr=vdi_rec['SR'], cbt_enabled=vdi_rec['cbt_enabled'],
                sm_config=tuple(sorted(vdi_rec['sm_config'].items())),
                snapshot_of=vdi_rec['snapshot_of'],
                parents_utilisation=_parents_utilisation(x, vdi_rec))


def read_vm(pool, vm):
    """Facts about one VM, its disks, VIFs, CD drives and snapshots."""
    with pool.session() as s:
        x = s.xenapi
        rec = x.VM.get_record(vm)
        disks, cds = [], []
        for vbd in rec['VBDs']:
            vbd_rec = x.VBD.get_record(vbd)
            if vbd_rec['type'] == 'CD':
                cds.append(vbd_rec['userdevice'])
                continue
            if vbd_rec['empty'] or vbd_rec['VDI'] == NULL:
                continue
            disks.append(_disk(x, vbd, vbd_rec, vbd_rec['VDI'],
                               x.VDI.get_record(vbd_rec['VDI'])))
        vifs = []
        for vif in rec['VIFs']:
            vif_rec = x.VIF.get_record(vif)
            vifs.append(Vif(ref=vif, device=vif_rec['device'],
                            mac=vif_rec['MAC'], network=vif_rec['network'],
                            other_config=tuple(sorted(
                                vif_rec['other_config'].items()))))
        snap_names, snap_disks, seen = [], [], set()
        for snap in rec['snapshots']:
            snap_rec = x.VM.get_record(snap)
            snap_names.append(snap_rec['name_label'])
            for vbd in snap_rec['VBDs']:
                vbd_rec = x.VBD.get_record(vbd)
                vdi = vbd_rec['VDI']
                if vbd_rec['type'] == 'CD' or vdi == NULL or vdi in seen:
                    continue
                seen.add(vdi)
                snap_disks.append(_disk(x, vbd, vbd_rec, vdi,
                                        x.VDI.get_record(vdi)))
    return VM(ref=vm, uuid=rec['uuid'], name=rec['name_label'],
              power_state=rec['power_state'], resident_on=rec['resident_on'],
              disks=tuple(sorted(disks, key=lambda d: d.userdevice)),
              vifs=tuple(vifs), cd_drives=tuple(cds),
              snapshots=tuple(snap_names), snapshot_disks=tuple(snap_disks),
              memory=int(rec['memory_static_max']))


def scan_srs(pool, vm):
    """SR.scan the SRs holding a VM's disks, so that sizes are current."""
    with pool.session() as s:
        x = s.xenapi
        srs = set()
        for vbd in x.VM.get_VBDs(vm):
            vdi = x.VBD.get_VDI(vbd)
            if vdi != NULL:
                srs.add(x.VDI.get_SR(vdi))
        for sr in srs:
            try:
                x.SR.scan(sr)
            except XenAPI.Failure:
                pass  # a busy SR: its figures are merely older
