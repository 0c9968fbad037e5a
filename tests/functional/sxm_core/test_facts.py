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

"""facts: what the planner is told about pools and VMs, read over XAPI."""

from sxm_core import errors
from sxm_core import facts
from sxm_core import plan
from tests.functional.sxm_core import base

MiB = base.MiB


class TestFacts(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        self.source = self.pool('pool-a')

    def test_pool_facts(self):
        self.make_vm()
        _vm, pool, dest = facts.gather(self.source, self.source, 'web',
                                       {'tier': 'thick'})
        self.assertIs(pool, dest)
        self.assertEqual('pool-a', pool.name)
        self.assertEqual(self.url('pool-a'), pool.url)
        self.assertEqual([self.host_a], [h.ref for h in pool.hosts])
        self.assertEqual(self.host_a, pool.master)
        ext = pool.find('SR', base.EXT)
        lvm = pool.find('SR', base.LVM)
        self.assertEqual(ext.ref, pool.default_sr)
        self.assertEqual((False, True), (ext.thick, lvm.thick))
        self.assertEqual(64 << 30, ext.physical_size)
        self.assertEqual(frozenset([self.host_a]), lvm.hosts)
        for sr in (ext, lvm):
            self.assertTrue({'VDI_MIRROR', 'VDI_SNAPSHOT', 'VDI_MIRROR_IN'}
                            <= sr.features, sr.features)
        (net,) = pool.networks
        self.assertEqual('xenbr0', net.bridge)
        ip, mode = net.ip_on(self.host_a)
        self.assertEqual(('127.0.0.1', 'Static'), (ip, mode))
        self.assertIs(net, pool.find('network', 'xenbr0'))

    def test_read_vm(self):
        vm, vdis = self.make_vm()
        got = facts.read_vm(self.source, vm, scan=True)
        self.assertEqual(('web', 'Running', self.host_a),
                         (got.name, got.power_state, got.resident_on))
        system, data = got.disks
        self.assertEqual(('0', 'web-system', vdis['0'], 32 * MiB, 32 * MiB),
                         (system.userdevice, system.name, system.vdi,
                          system.virtual_size, system.physical_utilisation))
        self.assertEqual(('1', 16 * MiB, 4 * MiB),
                         (data.userdevice, data.virtual_size,
                          data.physical_utilisation))
        self.assertEqual(1, len(got.vifs))
        self.assertEqual((), got.snapshots)

    def test_only_thin_srs_are_scanned(self):
        # A disk on a thick SR counts its full size whatever the last
        # scan measured: scanning its SR would change nothing planned.
        vm, _ = self.make_vm()  # one disk on LVM, one on EXT
        log = self.sim.pools['pool-a'].call_log
        log.reset()
        got = facts.read_vm(self.source, vm, scan=True)
        self.assertEqual(['SR.scan'], [m for m, _o, _s in log.entries()
                                       if m == 'SR.scan'])
        # The thin disk's figures are the scan's.
        self.assertEqual(4 * MiB, got.disks[1].physical_utilisation)

    def test_read_vm_memory_is_memory_static_max(self):
        vm, _ = self.make_vm(disks=(), start=False, vif=False)
        self.assertEqual(256 * MiB, facts.read_vm(self.source, vm).memory)
        self.api.VM.set_memory_static_max(vm, str(512 * MiB))
        self.assertEqual(512 * MiB, facts.read_vm(self.source, vm).memory)

    def test_find_vm_by_name_and_uuid(self):
        vm, _ = self.make_vm(disks=(), start=False, vif=False)
        uuid = self.api.VM.get_uuid(vm)
        self.assertEqual(vm, facts.find_vm(self.source, 'web'))
        self.assertEqual(vm, facts.find_vm(self.source, uuid))
        # A snapshot and a template of the same name are not candidates.
        self.api.VM.snapshot(vm, 'web')
        template, _ = self.make_vm(name='web', disks=(), start=False,
                                   vif=False)
        self.api.VM.set_is_a_template(template, True)
        self.assertEqual(vm, facts.find_vm(self.source, 'web'))

    def test_find_vm_not_found_and_ambiguous(self):
        exc = self.assertRaises(errors.NotFound, facts.find_vm, self.source,
                                'nosuch')
        self.assertIn("No VM 'nosuch'", str(exc))
        for _ in range(2):
            self.make_vm(name='twin', disks=(), start=False, vif=False)
        exc = self.assertRaises(errors.Ambiguous, facts.find_vm,
                                self.source, 'twin')
        self.assertIn("2 VMs are named 'twin'", str(exc))
        self.assertIn('give a uuid', str(exc))

    def test_find_vm_never_gives_a_snapshot_template_or_dom0(self):
        # The docstring's promise holds for uuids as well as names.
        vm, _ = self.make_vm(disks=(), start=False, vif=False)
        snap = self.api.VM.snapshot(vm, 'nightly')
        dom0 = [r for r, rec in self.api.VM.get_all_records().items()
                if rec['is_control_domain']][0]
        for ref in (snap, dom0):
            uuid = self.api.VM.get_uuid(ref)
            self.assertRaises(errors.NotFound, facts.find_vm, self.source,
                              uuid)

    def test_read_vm_counts_the_vhd_parents_of_a_disk(self):
        # SM names a VHD's parent (a hidden "base copy" VDI) in the child's
        # sm_config vhd-parent; the child's physical_utilisation counts
        # only its own leaf.
        ext = self.sr_named(base.EXT)
        grand = self.create_vdi(ext, 32 * MiB, 'base copy')
        self.fill(grand, 8 * MiB, seed=1)
        parent = self.create_vdi(ext, 32 * MiB, 'base copy')
        self.fill(parent, 4 * MiB, seed=2)
        leaf = self.create_vdi(ext, 32 * MiB, 'web-data')
        self.fill(leaf, 1 * MiB, seed=3)
        self.api.VDI.add_to_sm_config(leaf, 'vhd-parent',
                                      self.api.VDI.get_uuid(parent))
        self.api.VDI.add_to_sm_config(parent, 'vhd-parent',
                                      self.api.VDI.get_uuid(grand))
        vm = self.create_vm('web')
        self.create_vbd(vm, leaf, '0')
        (disk,) = facts.read_vm(self.source, vm, scan=True).disks
        self.assertEqual((1 * MiB, 12 * MiB, 13 * MiB),
                         (disk.physical_utilisation,
                          disk.parents_utilisation, disk.holds))

    def test_read_vm_stops_at_a_parent_that_is_gone(self):
        # SM's garbage collector coalesced it into the child meanwhile.
        ext = self.sr_named(base.EXT)
        leaf = self.create_vdi(ext, 32 * MiB, 'web-data')
        self.fill(leaf, 2 * MiB, seed=3)
        self.api.VDI.add_to_sm_config(
            leaf, 'vhd-parent', '3f1c1a4e-0000-4000-8000-000000000000')
        vm = self.create_vm('web')
        self.create_vbd(vm, leaf, '0')
        (disk,) = facts.read_vm(self.source, vm).disks
        self.assertEqual((2 * MiB, 2 * MiB),
                         (disk.physical_utilisation, disk.holds))


def whole_pool(pool):
    """facts.Pool of every host, SR, PBD, PIF and network.

    The reference: what gather reads for a plan must plan as well.
    """
    api = pool.api
    return facts._pool_facts(
        pool.url, list(api.pool.get_all_records().values())[0],
        api.host.get_all_records(), api.SR.get_all_records(),
        api.SM.get_all_records(), api.PBD.get_all_records(),
        api.PIF.get_all_records(), api.network.get_all_records())


def _summary(the_plan):
    """What a plan decides, comparable between two ways of reading."""
    return {
        'cross_pool': the_plan.cross_pool,
        'host': the_plan.dest_host and the_plan.dest_host.ref,
        'network': the_plan.network and the_plan.network.ref,
        'disks': [(s.disk, s.dest_sr and s.dest_sr.ref, s.kind,
                   s.bytes_needed, s.bytes_to_copy, s.problem)
                  for s in the_plan.disks + the_plan.snapshot_disks],
        'vifs': the_plan.vif_map,
        'problems': sorted((p.code, p.message)
                           for p in plan.preflight(the_plan)),
    }


class TestGather(base.CoreTestCase):
    """gather reads less than whole pools, and plans exactly as well."""

    def setUp(self):
        super().setUp()
        self.source = self.pool('pool-a')
        self.dest = self.pool('pool-b')

    def assertSamePlan(self, dest, vm_key, **choices):
        vm, source, got_dest = facts.gather(self.source, dest, vm_key,
                                            choices)
        whole_source = whole_pool(self.source)
        whole_dest = (whole_source if dest is self.source
                      else whole_pool(dest))
        want = plan.build_plan(facts.read_vm(self.source, vm.ref),
                               whole_source, whole_dest, **choices)
        got = plan.build_plan(vm, source, got_dest, **choices)
        self.assertEqual(_summary(want), _summary(got))
        return got

    def test_across_pools_as_with_whole_pools(self):
        self.make_vm('web')
        for choices in ({}, {'sr': base.LVM}, {'tier': 'thick'},
                        {'tier': 'same'},
                        {'sr_map': {'0': base.EXT, 'data': base.LVM}},
                        {'sr': 'no such SR'}, {'dest_host': 'nowhere'},
                        {'migration_network': 'xenbr0'},
                        {'network_map': {'xenbr0': 'xenbr0'}}):
            got = self.assertSamePlan(self.dest, 'web', **choices)
            self.assertTrue(got.cross_pool)

    def test_in_pool_as_with_whole_pools(self):
        vm, _ = self.make_vm('web')
        uuid = self.api.VM.get_uuid(vm)
        host_name = self.api.host.get_name_label(self.host_a)
        for key in ('web', uuid, vm):
            for choices in ({'sr': base.EXT}, {'dest_host': host_name},
                            {'tier': 'thin'}, {}):
                got = self.assertSamePlan(self.source, key, **choices)
                self.assertFalse(got.cross_pool)

    def test_a_snapshot_and_its_disks(self):
        vm, _ = self.make_vm('web', start=False)
        self.api.VM.snapshot(vm, 'nightly')
        got = self.assertSamePlan(self.dest, 'web')
        self.assertEqual(('nightly',), got.vm.snapshots)
        self.assertEqual(2, len(got.snapshot_disks))

    def test_the_vm_key_is_checked_as_find_vm_does(self):
        self.make_vm('web', start=False, vif=False)
        self.assertRaises(errors.NotFound, facts.gather, self.source,
                          self.dest, 'db')
        self.assertRaises(errors.NotFound, facts.gather, self.source,
                          self.dest, 'OpaqueRef:no-such-vm')
