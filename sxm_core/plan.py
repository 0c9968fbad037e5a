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

"""Migration plans and preflight checks: pure functions over facts.

``build_plan`` decides where every disk and VIF goes (or, in copy mode,
where a halted VM's copy goes: the source VM stays); ``preflight`` lists
every reason the plan cannot run, all at once (the remote
``VM.assert_can_migrate`` is added by ``sxm_core.migrate``). Nothing here
talks to XAPI.
"""

import dataclasses

from sxm_core import constants
from sxm_core import errors

NULL = constants.OPAQUE_NULL
# Share of a migrate_send task's progress that is storage; the rest is the
# memory migration and the switch-over.
STORAGE_SHARE = 0.9
TIERS = ('thin', 'thick', 'same')


@dataclasses.dataclass(frozen=True)
class Problem:
    code: str
    message: str
    blocking: bool = True


@dataclasses.dataclass(frozen=True)
class DiskStep:
    disk: object            # facts.Disk
    dest_sr: object         # facts.SR or None when it could not be chosen
    transfer: bool          # False: the disk stays where it is
    kind: str               # 'mirror', 'copy' or 'stay'
    bytes_needed: int       # space taken on the destination SR
    bytes_to_copy: int = 0  # at most this much data travels
    problem: str = ''       # why no destination could be chosen


@dataclasses.dataclass(frozen=True)
class VifStep:
    vif: object             # facts.Vif
    dest_network: object    # facts.Network or None


@dataclasses.dataclass(frozen=True)
class MigrationPlan:
    vm: object              # facts.VM
    source: object          # facts.Pool
    dest: object            # facts.Pool
    dest_host: object       # facts.Host
    network: object         # facts.Network carrying the migration
    cross_pool: bool
    live: bool
    disks: tuple            # DiskStep of the VM's disks, in xapi's order
    snapshot_disks: tuple   # DiskStep of snapshot disks (copied)
    vifs: tuple             # VifStep; empty in-pool
    problems: tuple         # Problems found while building
    copy: bool = False      # copy the halted VM, leave the source as it is

    @property
    def options(self):
        """migrate_send's options: xapi's copy mode, or none."""
        return {'copy': 'true'} if self.copy else {}

    @property
    def vdi_map(self):
        return {s.disk.vdi: s.dest_sr.ref for s in self.disks
                if s.dest_sr is not None}

    @property
    def vif_map(self):
        return {s.vif.ref: s.dest_network.ref for s in self.vifs
                if s.dest_network is not None}

    @property
    def nothing_to_move(self):
        """In-pool, every disk already is on its destination SR.

        Across pools the VM itself always moves.
        """
        return not self.cross_pool and not any(
            s.transfer for s in self.disks + self.snapshot_disks)

    @property
    def bytes_to_move(self):
        return sum(s.bytes_to_copy for s in self.disks + self.snapshot_disks
                   if s.transfer)

    def phase(self, fraction):
        """(phase, disk step or None) for a task progress fraction."""
        total = sum(s.disk.virtual_size for s in self.disks
                    + self.snapshot_disks) or 1
        steps = sorted(self.disks + self.snapshot_disks,
                       key=lambda s: s.disk.virtual_size)
        done = 0.0
        for step in steps:
            done += STORAGE_SHARE * step.disk.virtual_size / total
            if fraction < done:
                return step.kind, step
        return 'memory', None


def _needed(disk, src_sr, dest_sr, mirrored):
    """Space a disk takes on ``dest_sr``, as that SR type accounts it.

    A mirrored disk lands in a leaf over a separately copied base; on a
    thick SR both are inflated until the migration ends.
    """
    if dest_sr.thick:
        return disk.virtual_size * (2 if mirrored else 1)
    return _held(disk, src_sr)


def _held(disk, src_sr):
    """Upper bound of the data a disk holds (what a copy may send)."""
    if src_sr is not None and src_sr.thick:
        # A thick disk reports its full size: the worst case.
        return disk.virtual_size
    return disk.holds


def copy_space(disk, src_sr, dest_sr):
    """(bytes the disk holds, bytes a plain copy needs on ``dest_sr``)."""
    return _held(disk, src_sr), _needed(disk, src_sr, dest_sr,
                                        mirrored=False)


def _choose_sr(disk, source, dest, sr_map, sr, tier, cross_pool):
    """The destination SR of one disk, or a Problem."""
    for key in (disk.uuid, disk.userdevice, disk.name):
        if key in sr_map:
            return dest.find('SR', sr_map[key])
    if sr is not None:
        return dest.find('SR', sr)
    if tier is not None:
        src_sr = source.sr(disk.sr)
        want_thick = {'thin': False, 'thick': True,
                      'same': src_sr.thick if src_sr else False}[tier]
        candidates = [s for s in dest.srs if s.thick == want_thick
                      and s.content_type != constants.ISO_CONTENT
                      and (cross_pool or s.ref != disk.sr)]
        if not candidates:
            raise errors.NotFound(kind='%s SR' % tier, name='(any)',
                                  pool=dest.name)
        return max(candidates, key=lambda s: s.free)
    if dest.default_sr != NULL:
        return dest.sr(dest.default_sr)
    raise errors.NotFound(kind='default SR', name='(pool default)',
                          pool=dest.name)


def _choose_network(vif, source, dest, network_map):
    src_net = source.network(vif.network)
    other = dict(vif.other_config)
    keys = [vif.ref, vif.mac, other.get('neutron-port-id')]
    if src_net is not None:
        keys += [src_net.uuid, src_net.name, src_net.bridge]
    for key in keys:
        if key and key in network_map:
            return dest.find('network', network_map[key])
    # By name, then by bridge, when the pools name them alike.
    if src_net is not None:
        for match in (lambda n: n.name == src_net.name,
                      lambda n: n.bridge == src_net.bridge):
            found = [n for n in dest.networks if match(n)]
            if len(found) == 1:
                return found[0]
    return None


def build_plan(vm, source, dest, dest_host=None, sr_map=None, sr=None,
               tier=None, network_map=None, migration_network=None,
               copy=False):
    """Where each disk and VIF of ``vm`` goes.

    SR choice, first match wins: ``sr_map`` (keyed by disk uuid,
    userdevice or name; values an SR name or uuid), ``sr`` for every disk,
    ``tier`` ('thin', 'thick' or 'same': the SR of that kind with the most
    free space), then the destination pool's default SR. Across pools a
    disk on an SR present in both pools (same uuid) stays on it unless
    ``sr_map`` names that disk. Networks:
    ``network_map`` (keyed by VIF ref, MAC, neutron port id, or the source
    network's uuid, name or bridge), then a destination network of the same
    name, then of the same bridge. Problems found on the way are kept in
    the plan, so that preflight reports them all at once. ``copy``: xapi's
    copy mode (a halted VM, to another pool; the source VM and its disks
    stay, its snapshots are not sent).
    """
    sr_map = dict(sr_map or {})
    network_map = dict(network_map or {})
    problems = []
    if tier is not None and tier not in TIERS:
        raise ValueError('tier must be one of %s' % ', '.join(TIERS))
    cross_pool = source.uuid != dest.uuid
    host = None
    try:
        if dest_host is not None:
            host = dest.find('host', dest_host)
        elif not cross_pool and vm.resident_on != NULL:
            host = dest.host(vm.resident_on)
        else:
            host = dest.host(dest.master)
    except errors.SxmError as exc:
        problems.append(Problem('host', str(exc)))
    network = None
    try:
        if migration_network is not None:
            network = dest.find('network', migration_network)
        elif host is not None:
            mgmt = [n for n in dest.networks
                    if any(h == host.ref and ip for h, ip, _ in n.pifs)]
            network = mgmt[0] if mgmt else None
            if network is None:
                problems.append(Problem(
                    'network', 'Host %s has no network with an IP address '
                    'to receive the migration on: configure one, or name '
                    'it with --migration-network.' % host.name))
    except errors.SxmError as exc:
        problems.append(Problem('network', str(exc)))
    live = vm.power_state == constants.RUNNING

    def step(disk, snapshot):
        src_sr = source.sr(disk.sr)
        explicit = any(k in sr_map for k in (disk.uuid, disk.userdevice,
                                             disk.name))
        # A copy never shares a disk with its source.
        shared = [s for s in dest.srs if cross_pool and src_sr and not
                  explicit and not copy and s.uuid == src_sr.uuid]
        if shared:
            # The same SR introduced in both pools (a Cinder volume's SR):
            # the disk is already there, nothing travels.
            return DiskStep(disk, shared[0], False, 'stay', 0, 0)
        try:
            if snapshot:
                dest_sr = _snapshot_sr(disk, steps_by_vdi, dest)
            else:
                dest_sr = _choose_sr(disk, source, dest, sr_map, sr, tier,
                                     cross_pool)
        except errors.SxmError as exc:
            problems.append(Problem('sr', '%s: %s' % (disk.label(), exc)))
            return DiskStep(disk, None, True, 'copy', 0,
                            _held(disk, src_sr), problem=_short(exc))
        stays = not cross_pool and dest_sr.ref == disk.sr
        if stays:
            kind = 'stay'
        elif live and not snapshot and disk.mode == 'RW':
            kind = 'mirror'
        else:
            kind = 'copy'
        if stays:
            return DiskStep(disk, dest_sr, False, kind, 0, 0)
        return DiskStep(disk, dest_sr, True, kind,
                        _needed(disk, src_sr, dest_sr, kind == 'mirror'),
                        _held(disk, src_sr))

    steps_by_vdi = {}
    disks = []
    for disk in vm.disks:
        s = step(disk, snapshot=False)
        steps_by_vdi[disk.vdi] = s
        disks.append(s)
    # xapi sends no snapshots in copy mode (send_snapshots = not copy).
    snaps = () if copy else tuple(step(d, snapshot=True)
                                  for d in vm.snapshot_disks)
    vifs = ()
    if cross_pool:
        vifs = tuple(VifStep(v, _choose_network(v, source, dest,
                                                network_map))
                     for v in vm.vifs)
    order = sorted(disks, key=lambda s: s.disk.virtual_size)
    return MigrationPlan(vm=vm, source=source, dest=dest, dest_host=host,
                         network=network, cross_pool=cross_pool, live=live,
                         disks=tuple(order), snapshot_disks=snaps,
                         vifs=vifs, problems=tuple(problems), copy=copy)


def _short(exc):
    """What the plan table says on the row of a disk with no destination."""
    if isinstance(exc, errors.NotFound):
        if exc.kwargs['name'].startswith('('):  # no tier or default SR
            return 'no %s' % exc.kwargs['kind']
        return 'unknown %s %r' % (exc.kwargs['kind'], exc.kwargs['name'])
    if isinstance(exc, errors.Ambiguous):
        return 'ambiguous %s %r' % (exc.kwargs['kind'], exc.kwargs['name'])
    return 'no SR'


def _snapshot_sr(disk, steps_by_vdi, dest):
    """xapi's rule: a snapshot disk follows the disk it was taken of."""
    parent = steps_by_vdi.get(disk.snapshot_of)
    if parent is not None and parent.dest_sr is not None:
        return parent.dest_sr
    if dest.default_sr != NULL:
        return dest.sr(dest.default_sr)
    raise errors.NotFound(kind='default SR', name='(pool default)',
                          pool=dest.name)


def preflight(plan):
    """Every reason ``plan`` cannot run (and warnings), at once."""
    problems = list(plan.problems)
    vm = plan.vm
    if plan.dest_host is not None and not plan.dest_host.enabled:
        problems.append(Problem(
            'host_disabled', 'Host %s is disabled: enable it or choose '
            'another host.' % plan.dest_host.name))
    if plan.copy and not plan.cross_pool:
        # xapi_vm_migrate.migrate_send refuses copy mode within a pool.
        problems.append(Problem(
            'copy', 'Copy mode cannot be used within a pool (%s): xapi '
            'says to use VM.copy or VM.clone.' % plan.source.name))
    if plan.copy and vm.power_state != constants.HALTED:
        # assert_can_migrate: "The copy mode is only allow on stopped VM".
        problems.append(Problem(
            'copy', '%s is %s: only a halted VM can be copied to another '
            'pool.' % (vm.label(), vm.power_state)))
    if vm.power_state not in constants.MIGRATABLE_STATES:
        problems.append(Problem(
            'power_state', '%s is %s; it must be running, halted or '
            'suspended.' % (vm.label(), vm.power_state)))
    need = {}
    for step in plan.disks + plan.snapshot_disks:
        disk, dest_sr = step.disk, step.dest_sr
        if disk.cbt_enabled and step.transfer:
            problems.append(Problem(
                'cbt', '%s has changed block tracking enabled: disable '
                'CBT on it before migrating.' % disk.label()))
        if dest_sr is None or not step.transfer:
            continue
        src_sr = plan.source.sr(disk.sr)
        for sr, wanted in ((src_sr, constants.SOURCE_SR_FEATURES),
                           (dest_sr, constants.DEST_SR_FEATURES)):
            if sr is None:
                continue
            missing = [f for f in wanted if f not in sr.features]
            if sr.content_type == constants.ISO_CONTENT or missing:
                problems.append(Problem(
                    'sr_capability', '%s (%s) cannot take part in a '
                    'storage migration of %s: its SM lacks %s.' % (
                        sr.label(), sr.type, disk.label(),
                        ', '.join(missing) or 'VDI support')))
        if (plan.dest_host is not None and not dest_sr.shared
                and plan.dest_host.ref not in dest_sr.hosts):
            problems.append(Problem(
                'sr_host', '%s is not attached to host %s.'
                % (dest_sr.label(), plan.dest_host.name)))
        need[dest_sr.ref] = need.get(dest_sr.ref, 0) + step.bytes_needed
    for sr_ref, nbytes in sorted(need.items()):
        sr = plan.dest.sr(sr_ref)
        if nbytes > sr.free:
            problems.append(Problem(
                'space', '%s has %s free; the disks moving there need %s.'
                % (sr.label(), human_bytes(sr.free), human_bytes(nbytes))))
    for step in plan.vifs:
        if step.dest_network is None:
            problems.append(Problem(
                'network_map', '%s of %s has no destination network: map '
                'it (by network name, bridge, MAC or port id).'
                % (step.vif.label(), vm.label())))
    if plan.network is not None and plan.dest_host is not None:
        ip, mode = plan.network.ip_on(plan.dest_host.ref)
        if not ip:
            problems.append(Problem(
                'migration_network', "Network '%s' has no IP address on "
                'host %s (mode %s): the destination cannot receive the '
                'migration.' % (plan.network.name, plan.dest_host.name,
                                mode)))
    if vm.snapshots and not plan.copy:
        problems.append(Problem(
            'snapshots', '%d snapshot(s) of %s will be copied, not '
            'mirrored: %s.' % (len(vm.snapshots), vm.label(),
                               ', '.join(vm.snapshots)), blocking=False))
    if vm.cd_drives and plan.cross_pool:
        problems.append(Problem(
            'cd', 'CD drive(s) %s of %s do not move with it: xapi ejects '
            'a CD whose ISO is not reachable from the destination.'
            % (', '.join(vm.cd_drives), vm.label()), blocking=False))
    return problems


def blocking(problems):
    return [p for p in problems if p.blocking]


def human_bytes(n):
    """'1.5 KiB': sizes in messages (preflight's, the CLI's)."""
    n = float(n)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(n) < 1024 or unit == 'TiB':
            return ('%d %s' % (n, unit)) if unit == 'B' else \
                '%.1f %s' % (n, unit)
        n /= 1024
    return '%d B' % n
