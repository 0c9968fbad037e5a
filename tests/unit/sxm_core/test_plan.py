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

"""plan.build_plan and plan.preflight over hand-made facts: pure, no XAPI.

And the plan as the ``sxm`` command shows it (``sxm_core.cli.formats``).
"""

import dataclasses

import testtools

from sxm_core.cli import formats
from sxm_core import constants
from sxm_core import plan as planmod
from tests.unit.sxm_core import factories as f

MiB = f.MiB
GiB = f.GiB


def codes(problems):
    return sorted(p.code for p in problems)


def by_device(the_plan):
    return {s.disk.userdevice: s for s in the_plan.disks}


class PlanTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.w = f.World()

    def plan(self, vm=None, source=None, dest=None, **choices):
        return planmod.build_plan(vm or self.w.vm, source or self.w.a,
                                  self.w.b if dest is None else dest,
                                  **choices)

    def problems(self, the_plan):
        return planmod.preflight(the_plan)


class TestChooseSR(PlanTestCase):

    def test_default_sr_of_the_destination_pool(self):
        the_plan = self.plan()
        self.assertEqual({'0': self.w.ext_b, '1': self.w.ext_b},
                         {d: s.dest_sr for d, s in by_device(
                             the_plan).items()})
        self.assertEqual([], codes(the_plan.problems))

    def test_no_default_sr_is_a_problem_for_each_disk(self):
        dest = dataclasses.replace(self.w.b, default_sr=f.NULL)
        the_plan = self.plan(dest=dest)
        self.assertEqual(['sr', 'sr'], codes(the_plan.problems))
        self.assertEqual({}, the_plan.vdi_map)
        for step in the_plan.disks:
            self.assertIsNone(step.dest_sr)
        self.assertIn("disk 0 'system'", the_plan.problems[0].message
                      + the_plan.problems[1].message)

    def test_sr_for_every_disk_by_name(self):
        the_plan = self.plan(sr='Local storage (lvm)')
        self.assertEqual({self.w.system.vdi: self.w.lvm_b.ref,
                          self.w.data.vdi: self.w.lvm_b.ref},
                         the_plan.vdi_map)

    def test_sr_for_every_disk_by_uuid(self):
        the_plan = self.plan(sr=self.w.lvm_b.uuid)
        self.assertEqual({self.w.lvm_b.ref},
                         set(the_plan.vdi_map.values()))

    def test_sr_map_by_userdevice_disk_name_and_vdi_uuid(self):
        third = f.disk('logs', '2', self.w.ext_a, name='logs')
        vm = dataclasses.replace(self.w.vm, disks=self.w.vm.disks + (third,))
        fast = f.sr('fastb', 'fast', 'ext', hosts=[self.w.host_b.ref])
        dest = self.w.with_srs(self.w.b, fast)
        the_plan = self.plan(vm=vm, dest=dest, sr_map={
            '0': 'Local storage (lvm)',         # userdevice -> SR name
            'data': fast.uuid,                  # disk name -> SR uuid
            third.uuid: 'fast'})                # VDI uuid -> SR name
        self.assertEqual({'0': self.w.lvm_b, '1': fast, '2': fast},
                         {d: s.dest_sr for d, s in by_device(
                             the_plan).items()})
        self.assertEqual([], codes(the_plan.problems))

    def test_sr_map_wins_over_sr_and_sr_over_tier(self):
        the_plan = self.plan(sr_map={'1': 'Local storage (ext)'},
                             sr='Local storage (lvm)', tier='thin')
        steps = by_device(the_plan)
        self.assertEqual(self.w.lvm_b, steps['0'].dest_sr)
        self.assertEqual(self.w.ext_b, steps['1'].dest_sr)

    def test_tier_thin_and_thick_pick_the_sr_with_most_free_space(self):
        big_thin = f.sr('bigext', 'big ext', 'nfs', size=512 * GiB,
                        shared=True)
        small_thick = f.sr('smalllvm', 'small lvm', 'lvmoiscsi',
                           size=8 * GiB, shared=True)
        iso = f.sr('iso', 'ISOs', 'iso', size=1024 * GiB,
                   content_type='iso', features=())
        dest = self.w.with_srs(self.w.b, big_thin, small_thick, iso)
        thin = self.plan(dest=dest, tier='thin')
        self.assertEqual({big_thin.ref}, set(thin.vdi_map.values()))
        thick = self.plan(dest=dest, tier='thick')
        self.assertEqual({self.w.lvm_b.ref}, set(thick.vdi_map.values()))

    def test_tier_same_keeps_each_disk_on_its_kind(self):
        the_plan = self.plan(tier='same')
        steps = by_device(the_plan)
        self.assertEqual(self.w.lvm_b, steps['0'].dest_sr)   # lvm -> lvm
        self.assertEqual(self.w.ext_b, steps['1'].dest_sr)   # ext -> ext

    def test_tier_in_pool_never_picks_the_disks_own_sr(self):
        other_thin = f.sr('ext2a', 'second ext', 'ext', size=GiB,
                          hosts=[self.w.host_a.ref])
        source = self.w.with_srs(self.w.a, other_thin)
        the_plan = self.plan(source=source, dest=source, tier='thin')
        steps = by_device(the_plan)
        # The data disk is on the (bigger) ext SR already: the other one.
        self.assertEqual(other_thin, steps['1'].dest_sr)
        self.assertEqual(self.w.ext_a, steps['0'].dest_sr)

    def test_tier_without_a_candidate_is_a_problem(self):
        dest = dataclasses.replace(self.w.b, srs=(self.w.ext_b,))
        the_plan = self.plan(dest=dest, tier='thick')
        self.assertEqual(['sr', 'sr'], codes(the_plan.problems))
        self.assertIn('thick SR', the_plan.problems[0].message)

    def test_unknown_sr_is_a_problem_not_an_exception(self):
        the_plan = self.plan(sr='nosuch')
        self.assertEqual(['sr', 'sr'], codes(the_plan.problems))
        for problem in the_plan.problems:
            self.assertIn("'nosuch'", problem.message)
            self.assertIn('pool-b', problem.message)
        self.assertEqual(['sr', 'sr'], codes(planmod.blocking(
            self.problems(the_plan))))

    def test_unknown_sr_in_sr_map_shows_on_the_disks_row(self):
        the_plan = self.plan(sr_map={'1': 'x'})
        problems = planmod.blocking(self.problems(the_plan))
        self.assertEqual(['sr'], codes(problems))
        self.assertIn("'x'", problems[0].message)
        self.assertIn(self.w.data.label(), problems[0].message)
        step = by_device(the_plan)['1']
        self.assertIsNone(step.dest_sr)
        row = [line for line in formats.format_plan(
            the_plan, problems).splitlines() if line.startswith('1 data')]
        self.assertEqual(1, len(row))
        self.assertIn("unknown SR 'x'", row[0])
        self.assertNotIn('copy', row[0])
        self.assertNotIn('0 B', row[0])
        # The other disk is planned as usual.
        self.assertEqual('mirror', by_device(the_plan)['0'].kind)

    def test_ambiguous_sr_name_is_a_problem(self):
        twin = f.sr('twinb', 'Local storage (ext)', 'ext',
                    hosts=[self.w.host_b.ref])
        the_plan = self.plan(dest=self.w.with_srs(self.w.b, twin),
                             sr='Local storage (ext)')
        self.assertEqual(['sr', 'sr'], codes(the_plan.problems))
        self.assertIn('give a uuid', the_plan.problems[0].message)

    def test_bad_tier_is_refused(self):
        self.assertRaises(ValueError, self.plan, tier='gold')


class TestChooseNetwork(PlanTestCase):

    def dest_with(self, *networks):
        return self.w.with_networks(self.w.b, *networks)

    def test_same_name(self):
        other = f.network('b2', 'Pool-wide network', 'xenbr7')
        the_plan = self.plan(dest=self.dest_with(other))
        self.assertEqual({self.w.vif.ref: other.ref}, the_plan.vif_map)

    def test_same_bridge_when_names_differ(self):
        other = f.network('b2', 'Other name', 'xenbr0',
                          [(self.w.host_b.ref, '10.0.1.1', 'Static')])
        the_plan = self.plan(dest=self.dest_with(other))
        self.assertEqual({self.w.vif.ref: other.ref}, the_plan.vif_map)

    def test_same_bridge_when_two_networks_share_the_name(self):
        one = f.network('b1', 'Pool-wide network', 'xenbr1')
        two = f.network('b2', 'Pool-wide network', 'xenbr0')
        the_plan = self.plan(dest=self.dest_with(one, two))
        self.assertEqual({self.w.vif.ref: two.ref}, the_plan.vif_map)

    def test_network_map_keys(self):
        target = f.network('bt', 'storage', 'xenbr9',
                           [(self.w.host_b.ref, '10.0.9.1', 'Static')])
        dest = self.dest_with(self.w.net_b, target)
        for key in (self.w.vif.ref, self.w.vif.mac, 'port-1',
                    self.w.net_a.uuid, self.w.net_a.name,
                    self.w.net_a.bridge):
            the_plan = self.plan(dest=dest, network_map={key: 'storage'})
            self.assertEqual({self.w.vif.ref: target.ref}, the_plan.vif_map,
                             'network_map keyed by %r' % key)
            the_plan = self.plan(dest=dest,
                                 network_map={key: target.uuid})
            self.assertEqual({self.w.vif.ref: target.ref}, the_plan.vif_map)

    def test_no_match_leaves_the_vif_unmapped(self):
        other = f.network('b2', 'Other', 'xenbr5',
                          [(self.w.host_b.ref, '10.0.1.1', 'Static')])
        the_plan = self.plan(dest=self.dest_with(other))
        self.assertEqual({}, the_plan.vif_map)
        self.assertIsNone(the_plan.vifs[0].dest_network)


class TestPools(PlanTestCase):

    def test_cross_pool(self):
        the_plan = self.plan()
        self.assertTrue(the_plan.cross_pool)
        self.assertTrue(the_plan.live)
        self.assertEqual(self.w.host_b, the_plan.dest_host)
        self.assertEqual(self.w.net_b, the_plan.network)
        self.assertEqual({self.w.vif.ref: self.w.net_b.ref},
                         the_plan.vif_map)
        for step in the_plan.disks:
            self.assertTrue(step.transfer)
            self.assertEqual('mirror', step.kind)
        self.assertEqual([], self.problems(the_plan))

    def test_in_pool(self):
        the_plan = self.plan(dest=self.w.a, sr_map={
            '0': 'Local storage (ext)', '1': 'Local storage (ext)'})
        self.assertFalse(the_plan.cross_pool)
        self.assertEqual(self.w.host_a, the_plan.dest_host)
        self.assertEqual((), the_plan.vifs)
        self.assertEqual({}, the_plan.vif_map)
        steps = by_device(the_plan)
        self.assertEqual(('mirror', True), (steps['0'].kind,
                                            steps['0'].transfer))
        # The data disk is on that SR already: it stays, but xapi still
        # needs it in the VDI map.
        self.assertEqual(('stay', False, 0), (steps['1'].kind,
                                              steps['1'].transfer,
                                              steps['1'].bytes_needed))
        self.assertEqual(self.w.ext_a.ref,
                         the_plan.vdi_map[self.w.data.vdi])
        self.assertEqual(32 * MiB, the_plan.bytes_to_move)
        self.assertEqual([], self.problems(the_plan))

    def test_in_pool_halted_vm_goes_to_the_master(self):
        vm = dataclasses.replace(self.w.vm, power_state=constants.HALTED,
                                 resident_on=f.NULL)
        the_plan = self.plan(vm=vm, dest=self.w.a)
        self.assertEqual(self.w.host_a, the_plan.dest_host)
        self.assertFalse(the_plan.live)
        self.assertEqual({'copy', 'stay'},
                         {s.kind for s in the_plan.disks})

    def test_halted_vm_and_read_only_disks_are_copied(self):
        ro = f.disk('cfg', '2', self.w.ext_a, mode='RO', name='config')
        vm = dataclasses.replace(self.w.vm, disks=self.w.vm.disks + (ro,))
        steps = by_device(self.plan(vm=vm))
        self.assertEqual('copy', steps['2'].kind)
        self.assertEqual('mirror', steps['0'].kind)
        halted = dataclasses.replace(vm, power_state=constants.HALTED,
                                     resident_on=f.NULL)
        the_plan = self.plan(vm=halted)
        self.assertFalse(the_plan.live)
        self.assertEqual({'copy'}, {s.kind for s in the_plan.disks})

    def test_disks_in_xapi_order_smallest_first(self):
        the_plan = self.plan()
        self.assertEqual(['1', '0'],
                         [s.disk.userdevice for s in the_plan.disks])

    def test_dest_host_by_name_and_unknown_host(self):
        the_plan = self.plan(dest_host='pool-b-host1')
        self.assertEqual(self.w.host_b, the_plan.dest_host)
        the_plan = self.plan(dest_host='nosuch')
        self.assertIsNone(the_plan.dest_host)
        self.assertIn('host', codes(the_plan.problems))
        self.assertIn("'nosuch'", the_plan.problems[0].message)

    def test_snapshot_disks_follow_the_disk_they_were_taken_of(self):
        snap = f.disk('snap', '', self.w.lvm_a, 32 * MiB, 2 * MiB,
                      name='system', snapshot_of=self.w.system.vdi)
        vm = dataclasses.replace(self.w.vm, snapshots=('before upgrade',),
                                 snapshot_disks=(snap,))
        the_plan = self.plan(vm=vm, sr_map={'0': 'Local storage (lvm)'})
        (step,) = the_plan.snapshot_disks
        self.assertEqual(self.w.lvm_b, step.dest_sr)
        self.assertEqual('copy', step.kind)
        # The snapshot goes to a thick SR: its full size.
        self.assertEqual((32 + 32 + 4) * MiB, the_plan.bytes_to_move)
        self.assertNotIn(snap.vdi, the_plan.vdi_map)

    def test_migration_network_is_one_with_an_ip_on_the_host(self):
        no_ip = f.network('b0', 'internal', 'xenbr1',
                          [(self.w.host_b.ref, '', 'None')])
        dest = self.w.with_networks(self.w.b, no_ip, self.w.net_b)
        self.assertEqual(self.w.net_b, self.plan(dest=dest).network)

    def test_no_network_with_an_ip_is_a_problem(self):
        no_ip = f.network('b0', 'Pool-wide network', 'xenbr0',
                          [(self.w.host_b.ref, '', 'DHCP')])
        dest = self.w.with_networks(self.w.b, no_ip)
        the_plan = self.plan(dest=dest)
        self.assertIsNone(the_plan.network)
        self.assertEqual(['network'], codes(the_plan.problems))
        self.assertIn('pool-b-host1', the_plan.problems[0].message)

    def test_named_migration_network(self):
        storage = f.network('bs', 'storage', 'xenbr4',
                            [(self.w.host_b.ref, '10.0.4.1', 'Static')])
        dest = self.w.with_networks(self.w.b, self.w.net_b, storage)
        the_plan = self.plan(dest=dest, migration_network='storage')
        self.assertEqual(storage, the_plan.network)
        the_plan = self.plan(dest=dest, migration_network='nosuch')
        self.assertEqual(['network'], codes(the_plan.problems))


class TestSameSRInBothPools(PlanTestCase):
    """An SR introduced in both pools (same uuid): its disks stay put."""

    def setUp(self):
        super().setUp()
        # Full, shared, and without the features of a storage migration:
        # any transfer to or from it would be a problem.
        self.vol_a = f.sr('vola', 'volume SR', 'lvmoiscsi', size=GiB,
                          used=GiB, shared=True, features=())
        self.vol_b = dataclasses.replace(self.vol_a, ref='OpaqueRef:sr-volb',
                                         name='volume SR in b')
        self.volume = f.disk('vol', '2', self.vol_a, 8 * GiB, 8 * GiB,
                             name='volume')
        self.vm = dataclasses.replace(self.w.vm, disks=(
            self.w.system, self.w.data, self.volume))
        self.source = self.w.with_srs(self.w.a, self.vol_a)
        self.dest = self.w.with_srs(self.w.b, self.vol_b)

    def test_the_disk_stays_and_is_mapped_to_that_sr(self):
        the_plan = self.plan(vm=self.vm, source=self.source, dest=self.dest)
        self.assertTrue(the_plan.cross_pool)
        step = by_device(the_plan)['2']
        self.assertEqual((self.vol_b, False, 'stay', 0, 0),
                         (step.dest_sr, step.transfer, step.kind,
                          step.bytes_needed, step.bytes_to_copy))
        self.assertEqual(self.vol_b.ref, the_plan.vdi_map[self.volume.vdi])
        # Only the other two disks travel, to the default SR.
        self.assertEqual(self.w.ext_b.ref, the_plan.vdi_map[self.w.data.vdi])
        self.assertEqual(32 * MiB + 4 * MiB, the_plan.bytes_to_move)
        # No capability, space or attachment problem for the one that stays.
        self.assertEqual([], codes(the_plan.problems))
        self.assertEqual([], codes(self.problems(the_plan)))

    def test_an_sr_of_the_same_name_but_another_uuid_is_no_match(self):
        other = dataclasses.replace(self.vol_b, uuid='another-uuid',
                                    name='volume SR')
        the_plan = self.plan(vm=self.vm, source=self.source,
                             dest=self.w.with_srs(self.w.b, other))
        step = by_device(the_plan)['2']
        self.assertEqual((self.w.ext_b, True), (step.dest_sr, step.transfer))


class TestDisabledHost(PlanTestCase):

    def test_a_disabled_destination_host_blocks(self):
        off = dataclasses.replace(self.w.host_b, enabled=False)
        dest = dataclasses.replace(self.w.b, hosts=(off,))
        problems = self.problems(self.plan(dest=dest))
        self.assertEqual(['host_disabled'], codes(problems))
        self.assertEqual(problems, planmod.blocking(problems))
        self.assertIn('pool-b-host1', problems[0].message)
        self.assertIn('disabled', problems[0].message)

    def test_a_disabled_host_named_in_pool(self):
        off = dataclasses.replace(f.host('c', 'pool-a-host2'), enabled=False)
        dest = dataclasses.replace(self.w.a, hosts=(self.w.host_a, off))
        the_plan = self.plan(dest=dest, dest_host='pool-a-host2',
                             sr='Local storage (ext)')
        self.assertIn('host_disabled', codes(self.problems(the_plan)))
        # Its enabled neighbour is fine.
        the_plan = self.plan(dest=dest, sr='Local storage (ext)')
        self.assertEqual(self.w.host_a, the_plan.dest_host)
        self.assertNotIn('host_disabled', codes(self.problems(the_plan)))


class TestPreflight(PlanTestCase):

    def test_a_good_plan_has_no_problem(self):
        self.assertEqual([], self.problems(self.plan(tier='same')))

    def test_power_state(self):
        for state in (constants.PAUSED, 'Crashed'):
            vm = dataclasses.replace(self.w.vm, power_state=state)
            problems = self.problems(self.plan(vm=vm))
            self.assertEqual(['power_state'], codes(problems))
            self.assertIn(state, problems[0].message)
            self.assertIn(self.w.vm.uuid, problems[0].message)
        for state in constants.MIGRATABLE_STATES:
            vm = dataclasses.replace(self.w.vm, power_state=state)
            self.assertEqual([], self.problems(self.plan(vm=vm)))

    def test_cbt(self):
        data = dataclasses.replace(self.w.data, cbt_enabled=True)
        vm = dataclasses.replace(self.w.vm, disks=(self.w.system, data))
        problems = self.problems(self.plan(vm=vm))
        self.assertEqual(['cbt'], codes(problems))
        self.assertIn(data.uuid, problems[0].message)
        self.assertIn("'data'", problems[0].message)
        self.assertIn('changed block tracking', problems[0].message)

    def test_cbt_on_a_disk_that_stays_is_fine(self):
        data = dataclasses.replace(self.w.data, cbt_enabled=True)
        vm = dataclasses.replace(self.w.vm, disks=(self.w.system, data))
        the_plan = self.plan(vm=vm, dest=self.w.a,
                             sr='Local storage (ext)')
        self.assertEqual([], self.problems(the_plan))

    def test_destination_sr_without_mirror_support(self):
        bare = dataclasses.replace(self.w.ext_b, features=frozenset(
            ['VDI_CREATE', 'VDI_SNAPSHOT']))
        dest = self.w.with_srs(self.w.b, bare)
        problems = self.problems(self.plan(dest=dest))
        self.assertEqual(['sr_capability', 'sr_capability'],
                         codes(problems))
        self.assertIn('VDI_MIRROR', problems[0].message)
        self.assertIn(bare.uuid, problems[0].message)

    def test_source_sr_without_snapshot_support(self):
        bare = dataclasses.replace(self.w.lvm_a, features=frozenset(
            ['VDI_CREATE', 'VDI_MIRROR', 'VDI_MIRROR_IN']))
        source = self.w.with_srs(self.w.a, bare)
        problems = self.problems(self.plan(source=source))
        self.assertEqual(['sr_capability'], codes(problems))
        self.assertIn('VDI_SNAPSHOT', problems[0].message)
        self.assertIn("disk 0 'system'", problems[0].message)

    def test_destination_sr_without_mirror_in(self):
        # xapi checks VDI_MIRROR_IN on the receiving SR (DESIGN.md 3).
        no_in = dataclasses.replace(self.w.ext_b, features=(
            self.w.ext_b.features - {'VDI_MIRROR_IN'}))
        problems = self.problems(self.plan(dest=self.w.with_srs(
            self.w.b, no_in)))
        self.assertIn('sr_capability', codes(problems))
        self.assertIn('VDI_MIRROR_IN', ' '.join(p.message
                                                for p in problems))

    def test_iso_sr_cannot_receive(self):
        iso = f.sr('isob', 'ISOs', 'iso', content_type='iso',
                   features=('VDI_ATTACH',), shared=True)
        problems = self.problems(self.plan(
            dest=self.w.with_srs(self.w.b, iso), sr='ISOs'))
        self.assertEqual(['sr_capability', 'sr_capability'],
                         codes(problems))

    def test_sr_not_attached_to_the_destination_host(self):
        elsewhere = dataclasses.replace(self.w.lvm_b, hosts=frozenset(
            ['OpaqueRef:host-other']))
        problems = self.problems(self.plan(
            dest=self.w.with_srs(self.w.b, elsewhere),
            sr='Local storage (lvm)'))
        self.assertEqual(['sr_host', 'sr_host'], codes(problems))
        self.assertIn('pool-b-host1', problems[0].message)
        self.assertIn(elsewhere.uuid, problems[0].message)

    def test_shared_sr_needs_no_pbd_check(self):
        shared = f.sr('nfsb', 'nfs', 'nfs', shared=True)
        problems = self.problems(self.plan(
            dest=self.w.with_srs(self.w.b, shared), sr='nfs'))
        self.assertEqual([], problems)

    def _space(self, disk, dest_sr, free):
        dest_sr = dataclasses.replace(
            dest_sr, physical_size=GiB, physical_utilisation=GiB - free)
        vm = dataclasses.replace(self.w.vm, disks=(disk,))
        return self.problems(self.plan(
            vm=vm, dest=self.w.with_srs(self.w.b, dest_sr),
            sr=dest_sr.uuid))

    def test_space_thin_to_thin_counts_what_the_disk_holds(self):
        data = self.w.data          # 16 MiB, 4 MiB used, on ext
        self.assertEqual([], self._space(data, self.w.ext_b, 4 * MiB))
        problems = self._space(data, self.w.ext_b, 4 * MiB - 1)
        self.assertEqual(['space'], codes(problems))
        self.assertIn('4.0 MiB', problems[0].message)
        self.assertIn(self.w.ext_b.uuid, problems[0].message)

    def test_space_counts_the_vhd_parents_of_a_thin_disk(self):
        # After a snapshot or a storage migration the leaf holds nearly
        # nothing: what the disk holds is in its parents.
        data = f.disk('data', '1', self.w.ext_a, 32 * MiB, used=0,
                      parents=32 * MiB, name='data')
        vm = dataclasses.replace(self.w.vm, disks=(data,))
        step = by_device(self.plan(vm=vm))['1']
        self.assertEqual((32 * MiB, 32 * MiB),
                         (step.bytes_to_copy, step.bytes_needed))
        self.assertEqual([], self._space(data, self.w.ext_b, 32 * MiB))
        problems = self._space(data, self.w.ext_b, 32 * MiB - 1)
        self.assertEqual(['space'], codes(problems))
        self.assertIn('32.0 MiB', problems[0].message)

    def test_a_chain_never_holds_more_than_the_disk_size(self):
        data = f.disk('data', '1', self.w.ext_a, 16 * MiB, used=12 * MiB,
                      parents=16 * MiB, name='data')
        self.assertEqual(16 * MiB, data.holds)

    def test_space_thick_destination_counts_twice_a_mirrored_disk(self):
        # Mirror leaf and copied base are both inflated until the end.
        data = self.w.data
        self.assertEqual([], self._space(data, self.w.lvm_b, 32 * MiB))
        self.assertEqual(['space'], codes(self._space(
            data, self.w.lvm_b, 32 * MiB - 1)))

    def test_space_thick_destination_counts_a_copied_disk_once(self):
        data = dataclasses.replace(self.w.data, mode='RO')
        self.assertEqual([], self._space(data, self.w.lvm_b, 16 * MiB))
        self.assertEqual(['space'], codes(self._space(
            data, self.w.lvm_b, 16 * MiB - 1)))

    def test_space_thick_source_counts_the_virtual_size(self):
        system = dataclasses.replace(self.w.system, physical_utilisation=0)
        self.assertEqual([], self._space(system, self.w.ext_b, 32 * MiB))
        self.assertEqual(['space'], codes(self._space(
            system, self.w.ext_b, 32 * MiB - 1)))

    def test_space_adds_up_the_disks_going_to_one_sr(self):
        ext_b = dataclasses.replace(self.w.ext_b, physical_size=GiB,
                                    physical_utilisation=GiB - 35 * MiB)
        dest = self.w.with_srs(self.w.b, ext_b)
        # 32 MiB (thick source) + 4 MiB: each fits, both do not.
        problems = self.problems(self.plan(dest=dest))
        self.assertEqual(['space'], codes(problems))
        self.assertIn('36.0 MiB', problems[0].message)

    def test_unmapped_vif(self):
        other = f.network('b2', 'Other', 'xenbr5',
                          [(self.w.host_b.ref, '10.0.1.1', 'Static')])
        problems = self.problems(self.plan(
            dest=self.w.with_networks(self.w.b, other)))
        self.assertEqual(['network_map'], codes(problems))
        self.assertIn(self.w.vif.mac, problems[0].message)

    def test_migration_network_without_ip(self):
        no_ip = f.network('b0', 'storage', 'xenbr4',
                          [(self.w.host_b.ref, '', 'DHCP')])
        dest = self.w.with_networks(self.w.b, self.w.net_b, no_ip)
        problems = self.problems(self.plan(dest=dest,
                                           migration_network='storage'))
        self.assertEqual(['migration_network'], codes(problems))
        self.assertIn("'storage'", problems[0].message)
        self.assertIn('DHCP', problems[0].message)

    def test_snapshots_and_cd_drives_are_notes(self):
        snap = f.disk('snap', '', self.w.ext_a, 16 * MiB, MiB,
                      name='data', snapshot_of=self.w.data.vdi)
        vm = dataclasses.replace(self.w.vm, snapshots=('nightly',),
                                 snapshot_disks=(snap,), cd_drives=('3',))
        problems = self.problems(self.plan(vm=vm))
        self.assertEqual(['cd', 'snapshots'], codes(problems))
        self.assertEqual([], planmod.blocking(problems))
        self.assertIn('nightly', ' '.join(p.message for p in problems))
        # In-pool a CD drive stays reachable: no note.
        problems = self.problems(self.plan(vm=vm, dest=self.w.a,
                                           sr='Local storage (lvm)'))
        self.assertEqual(['snapshots'], codes(problems))

    def test_every_problem_at_once(self):
        data = dataclasses.replace(self.w.data, cbt_enabled=True)
        vm = dataclasses.replace(
            self.w.vm, power_state=constants.PAUSED,
            disks=(self.w.system, data), snapshots=('s1',), cd_drives=('3',))
        small = dataclasses.replace(self.w.ext_b, physical_size=MiB,
                                    physical_utilisation=0)
        elsewhere = dataclasses.replace(
            self.w.lvm_b, hosts=frozenset(), features=frozenset())
        no_ip = f.network('b0', 'Other', 'xenbr5',
                          [(self.w.host_b.ref, '', 'None')])
        dest = dataclasses.replace(self.w.b, srs=(small, elsewhere),
                                   networks=(no_ip,))
        the_plan = self.plan(vm=vm, dest=dest, migration_network='Other',
                             sr_map={'0': 'Local storage (lvm)',
                                     '1': 'Local storage (ext)'})
        problems = self.problems(the_plan)
        self.assertEqual(
            ['cbt', 'cd', 'migration_network', 'network_map', 'power_state',
             'snapshots', 'space', 'sr_capability', 'sr_host'],
            sorted(set(codes(problems))))
        self.assertEqual(
            ['cbt', 'migration_network', 'network_map', 'power_state',
             'space', 'sr_capability', 'sr_host'],
            sorted(set(codes(planmod.blocking(problems)))))


class TestPhase(PlanTestCase):

    def test_phase_follows_the_disks_in_size_order(self):
        the_plan = self.plan()      # data 16 MiB, then system 32 MiB
        small, big = the_plan.disks
        share = planmod.STORAGE_SHARE
        self.assertEqual(('mirror', small), the_plan.phase(0.0))
        self.assertEqual(('mirror', small),
                         the_plan.phase(share / 3 - 0.001))
        self.assertEqual(('mirror', big), the_plan.phase(share / 3 + 0.001))
        self.assertEqual(('mirror', big), the_plan.phase(share - 0.001))
        self.assertEqual(('memory', None), the_plan.phase(share))
        self.assertEqual(('memory', None), the_plan.phase(1.0))

    def test_phase_of_copies_and_of_a_vm_without_disks(self):
        halted = dataclasses.replace(self.w.vm, power_state=constants.HALTED,
                                     resident_on=f.NULL)
        the_plan = self.plan(vm=halted)
        self.assertEqual('copy', the_plan.phase(0.1)[0])
        empty = dataclasses.replace(self.w.vm, disks=())
        self.assertEqual(('memory', None), self.plan(vm=empty).phase(0.5))


class TestFormat(PlanTestCase):

    def test_human_bytes(self):
        self.assertEqual('512 B', planmod.human_bytes(512))
        self.assertEqual('1.5 KiB', planmod.human_bytes(1536))
        self.assertEqual('16.0 MiB', planmod.human_bytes(16 * MiB))
        self.assertEqual('2048.0 TiB', planmod.human_bytes(2048 << 40))

    def test_format_plan_lists_disks_vifs_and_problems(self):
        the_plan = self.plan(tier='same')
        problems = [planmod.Problem('x', 'it is broken'),
                    planmod.Problem('y', 'fyi', blocking=False)]
        text = formats.format_plan(the_plan, problems)
        self.assertIn('Live cross-pool migration', text)
        self.assertIn(self.w.vm.uuid, text)
        self.assertIn('0 system', text)
        self.assertIn('Local storage (lvm)  ', text)
        self.assertNotIn('(lvm) (lvm)', text)
        self.assertNotIn('(ext) (ext)', text)
        self.assertIn(self.w.vif.mac, text)
        self.assertIn('To move: 36.0 MiB', text)
        self.assertIn('ERROR: it is broken', text)
        self.assertIn('note: fyi', text)

    def test_sr_names_show_the_type_once(self):
        gold = f.sr('goldb', 'gold', 'lvmoiscsi', hosts=[self.w.host_b.ref])
        the_plan = self.plan(dest=self.w.with_srs(self.w.b, gold),
                             sr='gold')
        text = formats.format_plan(the_plan)
        self.assertIn('gold (lvmoiscsi)', text)
        self.assertIn('Local storage (ext)  ', text)
        self.assertNotIn('(ext) (ext)', text)


class TestNothingToMove(PlanTestCase):

    def test_in_pool_with_every_disk_on_its_sr(self):
        the_plan = self.plan(dest=self.w.a, sr_map={
            '0': 'Local storage (lvm)', '1': 'Local storage (ext)'})
        self.assertTrue(the_plan.nothing_to_move)
        self.assertEqual(0, the_plan.bytes_to_move)
        self.assertEqual([], self.problems(the_plan))
        text = formats.format_plan(the_plan, self.problems(the_plan))
        self.assertIn('Nothing to move: every disk of %s already is on '
                      'its destination SR.' % self.w.vm.label(), text)
        self.assertNotIn('space needed', text)
        self.assertNotIn('To move', text)

    def test_in_pool_vm_without_disks(self):
        vm = dataclasses.replace(self.w.vm, disks=())
        the_plan = self.plan(vm=vm, dest=self.w.a)
        self.assertTrue(the_plan.nothing_to_move)
        self.assertIn('Nothing to move: %s has no disk.' % vm.label(),
                      formats.format_plan(the_plan))

    def test_one_disk_moving_is_something(self):
        the_plan = self.plan(dest=self.w.a, sr_map={
            '0': 'Local storage (ext)', '1': 'Local storage (ext)'})
        self.assertFalse(the_plan.nothing_to_move)
        self.assertIn('To move: 32.0 MiB', formats.format_plan(the_plan))

    def test_cross_pool_always_moves_the_vm(self):
        vm = dataclasses.replace(self.w.vm, disks=())
        self.assertFalse(self.plan(vm=vm).nothing_to_move)
