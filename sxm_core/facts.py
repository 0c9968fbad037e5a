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
set of pure functions that tests can feed by hand. The one entry point a
migration calls::

    vm, source, dest = gather(source_pool, dest_pool, vm_key, choices)

``vm_key`` a VM's ref, uuid or name label in ``source_pool``; ``choices``
build_plan's keyword arguments. It scans the thin SRs of the VM's disks
and reads the VM's own records, then in each pool only the hosts, SRs,
networks and PIFs the VM and ``choices`` can name (by ref or with
``get_all_records_where``), never whole tables of a pool.
"""

import dataclasses

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
    hosts: frozenset  # hosts with an attached PBD (see gather)
    # The VDIs it held when read: what a failed migration's report
    # compares with to tell the VDIs that appeared since.
    vdis: frozenset = frozenset()

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


# -- reading -------------------------------------------------------------
#
# A migration reads the VM's own records and, in each pool, only the
# hosts, SRs, networks and PIFs its plan can name: by ref, or with
# ``get_all_records_where`` (xapi's filter language). A pool of 64 hosts
# and thousands of VDIs costs what a pool of one does.

HOST_KEYS = ('uuid', 'name__label')
SR_KEYS = ('uuid', 'name__label')
NETWORK_KEYS = ('uuid', 'name__label', 'bridge')


def _eq(column, value):
    return 'field "%s" = "%s"' % (column, value)


def quotable(value):
    # xapi's filter strings have no escape for a double quote.
    return '"' not in value


class _Wanted(object):
    """Objects of one class to read: by ref, filter term or name label."""

    def __init__(self):
        self.refs = set()
        self.terms = set()
        self.names = set()

    def key(self, key, columns):
        """What ``Pool.find`` would match: a ref, or ``columns`` = key."""
        if not key:
            return
        key = str(key)
        if key.startswith('OpaqueRef:'):
            self.refs.add(key)
        elif quotable(key):
            self.terms.update(_eq(c, key) for c in columns)
        else:
            self.names.add(key)


class _Reader(object):
    """The reads of one pool, on its SessionPool's typed calls."""

    def __init__(self, pool):
        self.pool = pool
        self.api = pool.api

    def where(self, cls, terms):
        """{ref: record} of ``cls`` matching any of ``terms``."""
        terms = sorted(set(terms))
        if not terms:
            return {}
        return getattr(self.api, cls).get_all_records_where(
            ' or '.join(terms))

    def by_ref(self, cls, refs):
        out = {}
        for ref in sorted(set(refs) - {NULL}):
            try:
                out[ref] = getattr(self.api, cls).get_record(ref)
            except errors.HandleInvalid:
                pass  # destroyed meanwhile: as if never there
        return out

    def read(self, cls, wanted):
        found = self.where(cls, wanted.terms)
        found.update(self.by_ref(cls, wanted.refs - set(found)))
        for name in sorted(wanted.names):
            refs = getattr(self.api, cls).get_by_name_label(name)
            found.update(self.by_ref(cls, set(refs) - set(found)))
        return found

    def pool_record(self):
        # A pool has one pool object: its whole table is one small row.
        return list(self.api.pool.get_all_records().values())[0]


def _special(rec):
    return (rec['is_a_template'] or rec['is_a_snapshot']
            or rec['is_control_domain'])


def _lookup_vm(reader, key):
    """(ref, record) of VM ``key``: a ref, uuid or name label.

    By uuid or name, templates, snapshots and dom0 are never found.
    """
    where = reader.pool.url
    key = str(key)
    if key.startswith('OpaqueRef:'):
        try:
            return key, reader.api.VM.get_record(key)
        except errors.HandleInvalid:
            raise errors.NotFound(kind='VM', name=key, pool=where) from None
    wanted = _Wanted()
    wanted.key(key, ('uuid', 'name__label'))
    found = reader.read('VM', wanted)
    by_uuid = {r: rec for r, rec in found.items() if rec['uuid'] == key}
    found = [(r, rec) for r, rec in (by_uuid or found).items()
             if not _special(rec)]
    if not found:
        raise errors.NotFound(kind='VM', name=key, pool=where)
    if len(found) > 1:
        raise errors.Ambiguous(count=len(found), kind='VM', name=key,
                               pool=where)
    return found[0]


def find_vm(pool, key):
    """A VM ref by uuid or name label (not a template, snapshot or dom0)."""
    return _lookup_vm(_Reader(pool), key)[0]


def _parents_utilisation(uuid, sm_config, by_uuid):
    """Bytes held by the VHD parents of a VDI (SM's hidden base copies).

    SM names a VHD's parent in ``sm_config['vhd-parent']`` (a VDI uuid);
    the parents are VDIs with ``managed`` false, listed by XAPI but not
    attachable. A parent missing from ``by_uuid`` was coalesced away
    meanwhile: the child now holds its data.
    """
    total, seen = 0, {uuid}
    parent = sm_config.get('vhd-parent')
    while parent and parent not in seen and parent in by_uuid:
        seen.add(parent)
        rec = by_uuid[parent]
        total += int(rec['physical_utilisation'])
        parent = rec['sm_config'].get('vhd-parent')
    return total


def _read_parents(reader, vdis):
    """{uuid: record} of ``vdis`` and of every VHD parent below them.

    One filtered read per level of the chains, for all disks at once.
    """
    by_uuid = {rec['uuid']: rec for rec in vdis.values()}
    want = {rec['sm_config'].get('vhd-parent') for rec in vdis.values()}
    while True:
        want = {u for u in want if u and u not in by_uuid and quotable(u)}
        if not want:
            return by_uuid
        found = reader.where('VDI', [_eq('uuid', u) for u in want])
        for rec in found.values():
            by_uuid[rec['uuid']] = rec
        want = {rec['sm_config'].get('vhd-parent')
                for rec in found.values()}


def _disk(vbd, vbd_rec, vdi, vdi_rec, by_uuid):
    return Disk(vbd=vbd, vdi=vdi, uuid=vdi_rec['uuid'],
                name=vdi_rec['name_label'],
                userdevice=vbd_rec['userdevice'] if vbd_rec else '',
                mode=vbd_rec['mode'] if vbd_rec else 'RO',
                virtual_size=int(vdi_rec['virtual_size']),
                physical_utilisation=int(vdi_rec['physical_utilisation']),
                sr=vdi_rec['SR'], cbt_enabled=vdi_rec['cbt_enabled'],
                sm_config=tuple(sorted(vdi_rec['sm_config'].items())),
                snapshot_of=vdi_rec['snapshot_of'],
                parents_utilisation=_parents_utilisation(
                    vdi_rec['uuid'], vdi_rec['sm_config'], by_uuid))


def _scan(reader, vdis, sr_recs):
    """SR.scan the thin SRs of ``vdis``; their VDIs' records, re-read.

    VDI utilisation is only as fresh as the last scan of its SR, and
    matters only on thin SRs: a disk on a thick SR counts its full size
    (``plan._held``) whatever its SR last measured. ``sr_recs`` gets the
    records of the disks' SRs, read before the scan: the scan changes a
    source SR's utilisation only by what its disks grew since.
    """
    sr_recs.update(reader.by_ref('SR', {v['SR'] for v in vdis.values()}))
    thin = sorted(sr for sr, rec in sr_recs.items()
                  if rec['type'] not in constants.THICK_SR_TYPES)
    for sr in thin:
        try:
            reader.api.SR.scan(sr)
        except errors.XapiFailure:
            pass  # a busy SR: its figures are merely older
    stale = [v['uuid'] for v in vdis.values() if v['SR'] in thin]
    fresh = reader.where('VDI', [_eq('uuid', u) for u in stale])
    # A VDI the scan found gone is gone.
    out = {r: v for r, v in vdis.items() if v['SR'] not in thin}
    out.update((r, v) for r, v in fresh.items() if r in vdis)
    return out


def _read_vm(reader, ref, rec, scan, sr_recs=None):
    """facts.VM of ``ref`` whose record is ``rec``.

    ``scan``: SR.scan the thin SRs of its disks first (see ``_scan``);
    ``sr_recs`` (a dict) then gets the records of the disks' SRs.
    """
    owners = [ref] + list(rec['snapshots'])
    vbds = reader.where('VBD', [_eq('VM', o) for o in owners])
    snaps = (reader.where('VM', [_eq('snapshot_of', ref)])
             if rec['snapshots'] else {})
    vdi_refs = {v['VDI'] for v in vbds.values()
                if v['type'] != 'CD' and not v['empty']}
    vdis = reader.by_ref('VDI', vdi_refs)
    if scan and vdis:
        vdis = _scan(reader, vdis, {} if sr_recs is None else sr_recs)
    by_uuid = _read_parents(reader, vdis)
    disks, cds = [], []
    for vbd in rec['VBDs']:
        vbd_rec = vbds.get(vbd)
        if vbd_rec is None:
            continue
        if vbd_rec['type'] == 'CD':
            cds.append(vbd_rec['userdevice'])
            continue
        if vbd_rec['empty'] or vbd_rec['VDI'] not in vdis:
            continue
        disks.append(_disk(vbd, vbd_rec, vbd_rec['VDI'],
                           vdis[vbd_rec['VDI']], by_uuid))
    vif_recs = (reader.where('VIF', [_eq('VM', ref)])
                if rec['VIFs'] else {})
    vifs = [Vif(ref=vif, device=vif_recs[vif]['device'],
                mac=vif_recs[vif]['MAC'], network=vif_recs[vif]['network'],
                other_config=tuple(sorted(
                    vif_recs[vif]['other_config'].items())))
            for vif in rec['VIFs'] if vif in vif_recs]
    snap_names, snap_disks, seen = [], [], set()
    for snap in rec['snapshots']:
        if snap not in snaps:
            continue
        snap_names.append(snaps[snap]['name_label'])
        for vbd in snaps[snap]['VBDs']:
            vbd_rec = vbds.get(vbd)
            if vbd_rec is None:
                continue
            vdi = vbd_rec['VDI']
            if vbd_rec['type'] == 'CD' or vdi not in vdis or vdi in seen:
                continue
            seen.add(vdi)
            snap_disks.append(_disk(vbd, vbd_rec, vdi, vdis[vdi], by_uuid))
    return VM(ref=ref, uuid=rec['uuid'], name=rec['name_label'],
              power_state=rec['power_state'], resident_on=rec['resident_on'],
              disks=tuple(sorted(disks, key=lambda d: d.userdevice)),
              vifs=tuple(vifs), cd_drives=tuple(cds),
              snapshots=tuple(snap_names), snapshot_disks=tuple(snap_disks),
              memory=int(rec['memory_static_max']))


def read_vm(pool, vm, scan=False):
    """Facts about one VM, its disks, VIFs, CD drives and snapshots."""
    reader = _Reader(pool)
    try:
        rec = reader.api.VM.get_record(vm)
    except errors.HandleInvalid:
        raise errors.NotFound(kind='VM', name=vm, pool=pool.url) from None
    return _read_vm(reader, vm, rec, scan)


def _pool_facts(url, pool_rec, hosts, srs, sms, pbds, pifs, nets):
    """facts.Pool from records as XAPI returns them ({ref: record})."""
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
            hosts=attached, vdis=frozenset(rec['VDIs'])))
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
    return Pool(url=url, uuid=pool_rec['uuid'],
                name=pool_rec['name_label'] or pool_rec['uuid'],
                master=pool_rec['master'], default_sr=pool_rec['default_SR'],
                hosts=host_facts, srs=tuple(sr_facts),
                networks=tuple(net_facts))


def pool_record(pool):
    """The pool record of ``pool`` (a SessionPool)."""
    return _Reader(pool).pool_record()


def sr_facts(pool, pool_rec, sr, attachments=True):
    """facts.SR of ``sr`` (a ref) in ``pool``, read as a plan reads it."""
    needs = _PoolNeeds()
    needs.srs.refs.add(sr)
    return _read_pool(_Reader(pool), pool_rec, needs,
                      attachments=attachments).sr(sr)


def detached_disk(pool, vdi, vdi_rec):
    """(fresh record, Disk) of a VDI no VBD names, its SR scanned first.

    The record is None when the scan found the VDI gone.
    """
    reader = _Reader(pool)
    fresh = _scan(reader, {vdi: vdi_rec}, {})
    if vdi not in fresh:
        return None, None
    rec = fresh[vdi]
    by_uuid = _read_parents(reader, {vdi: rec})
    return rec, _disk(NULL, None, vdi, rec, by_uuid)


class _PoolNeeds(object):
    """What of one pool a plan can name."""

    def __init__(self):
        self.hosts = _Wanted()
        self.srs = _Wanted()
        self.networks = _Wanted()
        self.dest_host_key = None
        self.dest_host_ref = None


def _read_pool(reader, pool_rec, needs, in_pool_host=NULL,
               attachments=True, known_srs=None):
    """facts.Pool holding what ``needs`` names.

    ``known_srs``: SR records read already ({ref: record}), not read again.

    ``attachments``: read the SRs' PBDs for ``SR.hosts``; the source SRs
    of a cross-pool migration need none (no check asks where they are
    attached), and are left with no hosts.

    Networks' ``pifs`` hold the PIFs of the host a migration would arrive
    on only: the one host build_plan and preflight ask about.
    """
    hosts = reader.read('host', needs.hosts)
    target = None
    if needs.dest_host_key is not None:
        key = str(needs.dest_host_key)
        matches = [r for r, rec in hosts.items()
                   if key in (r, rec['uuid'])]
        matches = matches or [r for r, rec in hosts.items()
                              if rec['name_label'] == key]
        target = matches[0] if len(matches) == 1 else None
    elif in_pool_host != NULL:
        target = in_pool_host
    elif needs.dest_host_ref is not None:
        target = needs.dest_host_ref
    pifs = {}
    if target is not None and target in hosts:
        pifs = reader.where('PIF', [_eq('host', target)])
        needs.networks.refs.update(
            p['network'] for p in pifs.values() if p['IP'])
    nets = reader.read('network', needs.networks)
    known = dict(known_srs or {})
    needs.srs.refs.difference_update(known)
    srs = reader.read('SR', needs.srs)
    for ref, rec in known.items():
        srs.setdefault(ref, rec)
    sms = reader.where('SM', [_eq('type', rec['type'])
                              for rec in srs.values()
                              if quotable(rec['type'])])
    pbds = (reader.where('PBD', [_eq('SR', r) for r in srs])
            if attachments else {})
    return _pool_facts(reader.pool.url, pool_rec, hosts, srs, sms, pbds,
                       pifs, nets)


def _dest_needs(needs, pool_rec, choices):
    """Add to ``needs`` what build_plan's ``choices`` can name."""
    needs.srs.refs.add(pool_rec['default_SR'])
    for key in dict(choices.get('sr_map') or {}).values():
        needs.srs.key(key, SR_KEYS)
    needs.srs.key(choices.get('sr'), SR_KEYS)
    if choices.get('tier') is not None:
        # The tier's candidates: every SR but ISO libraries.
        needs.srs.terms.add('not %s' % _eq('content_type',
                                           constants.ISO_CONTENT))
    if choices.get('dest_host') is not None:
        needs.dest_host_key = choices['dest_host']
        needs.hosts.key(choices['dest_host'], HOST_KEYS)
    else:
        needs.hosts.refs.add(pool_rec['master'])
        needs.dest_host_ref = pool_rec['master']
    needs.networks.key(choices.get('migration_network'), NETWORK_KEYS)
    for key in dict(choices.get('network_map') or {}).values():
        needs.networks.key(key, NETWORK_KEYS)


def gather(source_pool, dest_pool, vm_key, choices=None):
    """(vm, source, dest) facts for ``plan.build_plan``, read once.

    ``vm_key`` is a VM's ref, uuid or name label in ``source_pool``;
    ``choices`` are build_plan's keyword arguments (dest_host, sr_map,
    sr, tier, network_map, migration_network): the pools' facts hold
    what they and the VM can name, not whole pools. The thin SRs of the
    VM's disks are scanned first. When both are one pool, ``dest`` is
    ``source``.
    """
    choices = dict(choices or {})
    src = _Reader(source_pool)
    ref, rec = _lookup_vm(src, vm_key)
    sr_recs = {}
    vm = _read_vm(src, ref, rec, scan=True, sr_recs=sr_recs)
    src_rec = src.pool_record()
    dst, dst_rec = src, src_rec
    if dest_pool is not source_pool:
        dst = _Reader(dest_pool)
        dst_rec = dst.pool_record()
    in_pool = dst_rec['uuid'] == src_rec['uuid']
    needs = _PoolNeeds()
    needs.srs.refs.update(d.sr for d in vm.disks + vm.snapshot_disks)
    needs.networks.refs.update(v.network for v in vm.vifs)
    if in_pool:
        # Across pools no check asks about the source hosts: the plan
        # names them by ref (slots, the VM's resident_on).
        needs.hosts.refs.update((vm.resident_on, src_rec['master']))
        _dest_needs(needs, src_rec, choices)
        source = _read_pool(src, src_rec, needs, in_pool_host=(
            vm.resident_on if choices.get('dest_host') is None else NULL),
            known_srs=sr_recs)
        return vm, source, source
    source = _read_pool(src, src_rec, needs, attachments=False,
                        known_srs=sr_recs)
    dneeds = _PoolNeeds()
    _dest_needs(dneeds, dst_rec, choices)
    for sr in source.srs:
        # The same SR introduced in both pools keeps its disks; only a
        # shared SR is (sxm_core.attach refuses to introduce the others).
        if sr.shared:
            dneeds.srs.key(sr.uuid, ('uuid',))
    for net in source.networks:
        # Pools naming their networks alike map VIFs by name or bridge.
        dneeds.networks.key(net.name, ('name__label',))
        dneeds.networks.key(net.bridge, ('bridge',))
    return vm, source, _read_pool(dst, dst_rec, dneeds)
