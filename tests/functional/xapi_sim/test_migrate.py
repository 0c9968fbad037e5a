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

"""Storage XenMotion that succeeds: VM.migrate_send across pools and in a
pool, VDI.pool_migrate, task progress, VM snapshots travelling with their
VM, and the copy-dirty baseline; always under a writing guest whose disks
must end up holding exactly what it wrote."""

import time

from tests.functional.xapi_sim import base
from tests.functional.xapi_sim import migrate_base

MiB = migrate_base.MiB
BLOCK = migrate_base.BLOCK
NULL = migrate_base.NULL


class TestCrossPool(migrate_base.MigrateTestCase):

    def test_running_vm_moves_to_the_other_pool(self):
        lvm, ext = self.lvm(), self.ext()
        # Two disks of different sizes, one thick, one thin, pre-filled.
        prefill = 16
        vm, (thick, thin), vif = self.make_vm(
            [(lvm, 32 * MiB, prefill), (ext, 8 * MiB, prefill)])
        rec = self.api.VM.get_record(vm)
        uuid = rec['uuid']
        vif_rec = self.api.VIF.get_record(vif)
        src_uuids = {self.api.VDI.get_uuid(v) for v in (thick, thin)}
        src_names = {'0': self.api.VDI.get_name_label(thick),
                     '1': self.api.VDI.get_name_label(thin)}
        # The lvm disk is thick at home.
        self.api.SR.scan(lvm)
        self.assertEqual(str(32 * MiB),
                         self.api.VDI.get_physical_utilisation(thick))
        self.write(vm, ['0', '1'])
        self.wait_writes(vm)

        ext_b = self.ext(self.api_b)
        new_vm = self.migrate(vm, self.dest_b(),
                              {thick: ext_b, thin: ext_b},
                              {vif: self.net_b})

        # pool-b runs a VM with the same uuid...
        self.assertEqual(new_vm, self.api_b.VM.get_by_uuid(uuid))
        new = self.api_b.VM.get_record(new_vm)
        self.assertEqual('Running', new['power_state'])
        self.assertEqual(self.host_b, new['resident_on'])
        self.assertIn(new_vm, self.api_b.host.get_resident_VMs(self.host_b))
        self.assertEqual(rec['name_label'], new['name_label'])
        self.assertEqual(rec['memory_static_max'], new['memory_static_max'])
        # ...on new VDIs of the mapped SR...
        vbds = {}
        for vbd in new['VBDs']:
            vbd_rec = self.api_b.VBD.get_record(vbd)
            vbds[vbd_rec['userdevice']] = vbd_rec
        self.assertEqual(['0', '1'], sorted(vbds))
        for dev, size in (('0', 32 * MiB), ('1', 8 * MiB)):
            vdi = self.api_b.VDI.get_record(vbds[dev]['VDI'])
            self.assertEqual(ext_b, vdi['SR'])
            self.assertEqual(str(size), vdi['virtual_size'])
            self.assertNotIn(vdi['uuid'], src_uuids)
            self.assertEqual(src_names[dev], vdi['name_label'])
            self.assertFalse(vdi['is_a_snapshot'])
            # xapi drops the mirror's key once the mirror is set up.
            self.assertNotIn('base_mirror', vdi['sm_config'])
            self.assertTrue(vbds[dev]['currently_attached'])
            self.assertEqual('RW', vbds[dev]['mode'])
        # ...with its VIF on the mapped network, same MAC, same config.
        self.assertEqual(1, len(new['VIFs']))
        new_vif = self.api_b.VIF.get_record(new['VIFs'][0])
        self.assertEqual(self.net_b, new_vif['network'])
        for field in ('MAC', 'other_config', 'device', 'MTU'):
            self.assertEqual(vif_rec[field], new_vif[field], field)
        self.assertTrue(new_vif['currently_attached'])

        # The source VM and every VDI of pool-a are gone.
        self.assertIsNone(self.vm_in(uuid, self.api))
        self.assertEqual(set(), self.vdi_set())
        for vdi in (thick, thin):
            self.assertXapiError(['HANDLE_INVALID', 'VDI', vdi],
                                 self.api.VDI.get_record, vdi)

        # The guest goes on writing on the destination, then its disks
        # there hold exactly what it wrote.
        self.wait_writes(uuid, ctl=self.ctl_b)
        report = self.stop_and_check(uuid, ctl=self.ctl_b,
                                     devices=['0', '1'])

        # The disk that was thick on lvm is thin on pool-b's ext SR.
        self.api_b.SR.scan(ext_b)
        new_thick = vbds['0']['VDI']
        phys = int(self.api_b.VDI.get_physical_utilisation(new_thick))
        self.assertLess(phys, 32 * MiB // 2)
        self.assertLessEqual(phys, report[0]['distinct_offsets'] * BLOCK)
        # The whole SR holds no more than the blocks ever written: each
        # 4 KiB write dirties one 64 KiB block of the base (before the
        # snapshot) or of the mirror leaf (after it).
        written = sum(prefill + 2 * r['distinct_offsets'] for r in report)
        self.assertLessEqual(
            int(self.api_b.SR.get_physical_utilisation(ext_b)),
            written * BLOCK)

    def test_halted_vm_moves_without_a_guest(self):
        # A halted VM's disks are copied, not mirrored.
        ext = self.ext()
        vm, (vdi,), vif = self.make_vm([(ext, 8 * MiB, 8)], start=False)
        uuid = self.api.VM.get_uuid(vm)
        before = self.checksum(vdi)
        ext_b = self.ext(self.api_b)
        new_vm = self.migrate(vm, self.dest_b(), {vdi: ext_b},
                              {vif: self.net_b})
        self.assertEqual('Halted', self.api_b.VM.get_power_state(new_vm))
        self.assertEqual(NULL, self.api_b.VM.get_resident_on(new_vm))
        (vbd,) = self.api_b.VM.get_VBDs(new_vm)
        new_vdi = self.api_b.VBD.get_VDI(vbd)
        self.assertEqual(before, self.checksum(new_vdi, 'pool-b',
                                               self.session_b))
        self.assertIsNone(self.vm_in(uuid, self.api))
        self.assertEqual(set(), self.vdi_set())
        # It starts in its new pool.
        self.api_b.VM.start(new_vm, False, False)
        self.assertEqual('Running', self.api_b.VM.get_power_state(new_vm))

    def test_vm_snapshot_travels_with_its_vm(self):
        ext = self.ext()
        vm, (vdi0, vdi1), vif = self.make_vm(
            [(ext, 8 * MiB, 8), (self.lvm(), 16 * MiB, 8)])
        uuid = self.api.VM.get_uuid(vm)
        self.write(vm, ['0', '1'])
        self.wait_writes(vm)
        snap = self.api.VM.snapshot(vm, 'before-sxm')
        snap_uuid = self.api.VM.get_uuid(snap)
        snap_vdis = {}
        for vbd in self.api.VM.get_VBDs(snap):
            dev = self.api.VBD.get_userdevice(vbd)
            snap_vdis[dev] = self.api.VBD.get_VDI(vbd)
        self.assertEqual(['0', '1'], sorted(snap_vdis))
        sums = {dev: self.checksum(v) for dev, v in snap_vdis.items()}
        (snap_vif,) = self.api.VM.get_VIFs(snap)
        mac = self.api.VIF.get_MAC(vif)
        self.assertEqual(mac, self.api.VIF.get_MAC(snap_vif))
        # The guest keeps writing after the snapshot.
        self.wait_writes(vm)

        ext_b = self.ext(self.api_b)
        # Only the VM's disks and VIF are mapped: the snapshot's disks
        # follow the disk they were taken of, its VIF goes by MAC.
        new_vm = self.migrate(vm, self.dest_b(), {vdi0: ext_b, vdi1: ext_b},
                              {vif: self.net_b})

        snaps = self.api_b.VM.get_snapshots(new_vm)
        self.assertEqual(1, len(snaps))
        new_snap = self.api_b.VM.get_record(snaps[0])
        self.assertTrue(new_snap['is_a_snapshot'])
        self.assertEqual(new_vm, new_snap['snapshot_of'])
        self.assertEqual('before-sxm', new_snap['name_label'])
        self.assertEqual('Halted', new_snap['power_state'])
        live_vdis = {}
        for vbd in self.api_b.VM.get_VBDs(new_vm):
            live_vdis[self.api_b.VBD.get_userdevice(vbd)] = \
                self.api_b.VBD.get_VDI(vbd)
        for vbd in new_snap['VBDs']:
            dev = self.api_b.VBD.get_userdevice(vbd)
            new_vdi = self.api_b.VBD.get_VDI(vbd)
            vdi_rec = self.api_b.VDI.get_record(new_vdi)
            self.assertEqual(ext_b, vdi_rec['SR'])
            self.assertTrue(vdi_rec['is_a_snapshot'])
            self.assertEqual(live_vdis[dev], vdi_rec['snapshot_of'])
            self.assertNotEqual(live_vdis[dev], new_vdi)
            self.assertEqual(sums[dev], self.checksum(new_vdi, 'pool-b',
                                                      self.session_b),
                             'snapshot of disk %s changed' % dev)
        (new_snap_vif,) = new_snap['VIFs']
        self.assertEqual(self.net_b, self.api_b.VIF.get_network(new_snap_vif))
        self.assertEqual(mac, self.api_b.VIF.get_MAC(new_snap_vif))
        # Nothing of the VM or its snapshot stays in pool-a.
        self.assertIsNone(self.vm_in(uuid, self.api))
        self.assertIsNone(self.vm_in(snap_uuid, self.api))
        self.assertEqual(set(), self.vdi_set())
        self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0', '1'])

    def test_read_only_disk_is_copied(self):
        ext = self.ext()
        vm, (rw,), vif = self.make_vm([(ext, 8 * MiB, 8)], start=False)
        ro = self.create_vdi(ext, 8 * MiB, name='ro')
        self.prefill(ro, 8, seed='ro')
        self.create_vbd(vm, ro, '1', mode='RO')
        ro_sum = self.checksum(ro)
        uuid = self.api.VM.get_uuid(vm)
        rw_uuid = self.api.VDI.get_uuid(rw)
        ro_uuid = self.api.VDI.get_uuid(ro)
        self.api.VM.start(vm, False, False)
        self.write(vm, ['0'])
        self.wait_writes(vm)
        ext_b = self.ext(self.api_b)
        new_vm = self.migrate(vm, self.dest_b(), {rw: ext_b, ro: ext_b},
                              {vif: self.net_b})
        vbds = {self.api_b.VBD.get_userdevice(v): v
                for v in self.api_b.VM.get_VBDs(new_vm)}
        self.assertEqual('RO', self.api_b.VBD.get_mode(vbds['1']))
        self.assertEqual(ro_sum, self.checksum(
            self.api_b.VBD.get_VDI(vbds['1']), 'pool-b', self.session_b))
        (entry,) = self.ctl.migrations()
        kinds = {d['vdi']: d['kind'] for d in entry['disks']}
        self.assertEqual({rw_uuid: 'mirror', ro_uuid: 'copy'}, kinds)
        self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0'])

    def test_round_trip(self):
        vm, vdis, vif = self.make_vm(
            [(self.ext(), 8 * MiB, 8), (self.lvm(), 16 * MiB, 8)])
        uuid = self.api.VM.get_uuid(vm)
        self.write(vm, ['0', '1'])
        self.wait_writes(vm)
        ext_b = self.ext(self.api_b)
        there = self.migrate(vm, self.dest_b(), {v: ext_b for v in vdis},
                             {vif: self.net_b})
        self.wait_writes(uuid, ctl=self.ctl_b)
        # And back, from pool-b to pool-a's lvm SR.
        vdis_b = [self.api_b.VBD.get_VDI(v)
                  for v in self.api_b.VM.get_VBDs(there)]
        (vif_b,) = self.api_b.VM.get_VIFs(there)
        lvm = self.lvm()
        task = self.api_b.Async.VM.migrate_send(
            there, self.dest_a(), True, {v: lvm for v in vdis_b},
            {vif_b: self.net_a}, {})
        rec = self.wait_task(task, api=self.api_b)
        self.assertEqual('success', rec['status'], rec['error_info'])
        back = migrate_base.decode_result(rec['result'])
        self.assertEqual(back, self.api.VM.get_by_uuid(uuid))
        self.assertEqual('Running', self.api.VM.get_power_state(back))
        self.assertIsNone(self.vm_in(uuid, self.api_b))
        self.assertEqual(set(), self.vdi_set(self.api_b))
        for vbd in self.api.VM.get_VBDs(back):
            self.assertEqual(lvm, self.api.VDI.get_SR(
                self.api.VBD.get_VDI(vbd)))
        self.wait_writes(uuid)
        self.stop_and_check(uuid, devices=['0', '1'])

    def test_synchronous_migrate_send_returns_the_new_vm(self):
        vm, (vdi,), vif = self.make_vm([(self.ext(), 8 * MiB, 4)])
        uuid = self.api.VM.get_uuid(vm)
        new_vm = self.api.VM.migrate_send(vm, self.dest_b(), True,
                                          {vdi: self.ext(self.api_b)},
                                          {vif: self.net_b}, {})
        self.assertEqual(new_vm, self.api_b.VM.get_by_uuid(uuid))
        self.assertEqual('Running', self.api_b.VM.get_power_state(new_vm))

    def test_older_xapi_leaves_base_mirror_on_the_new_vdis(self):
        self.ctl.configure(leave_base_mirror=True)
        ext = self.ext()
        vm, (vdi,), vif = self.make_vm([(ext, 8 * MiB, 4)])
        mirror_id = '%s/%s' % (self.api.SR.get_uuid(ext),
                               self.api.VDI.get_uuid(vdi))
        new_vm = self.migrate(vm, self.dest_b(), {vdi: self.ext(self.api_b)},
                              {vif: self.net_b})
        new_vdi = self.api_b.VBD.get_VDI(self.api_b.VM.get_VBDs(new_vm)[0])
        self.assertEqual(mirror_id, self.api_b.VDI.get_sm_config(
            new_vdi).get('base_mirror'))

    def test_unplugged_devices_stay_unplugged(self):
        ext = self.ext()
        vm, (vdi0,), vif = self.make_vm([(ext, 8 * MiB, 4)], start=False)
        vdi1 = self.create_vdi(ext, 8 * MiB, name='spare')
        vbd1 = self.create_vbd(vm, vdi1, '1', unpluggable=True)
        self.api.VM.start(vm, False, False)
        self.api.VBD.unplug(vbd1)
        self.api.VIF.unplug(vif)
        ext_b = self.ext(self.api_b)
        new_vm = self.migrate(vm, self.dest_b(), {vdi0: ext_b, vdi1: ext_b},
                              {vif: self.net_b})
        attached = {self.api_b.VBD.get_userdevice(v):
                    self.api_b.VBD.get_currently_attached(v)
                    for v in self.api_b.VM.get_VBDs(new_vm)}
        self.assertEqual({'0': True, '1': False}, attached)
        (new_vif,) = self.api_b.VM.get_VIFs(new_vm)
        self.assertFalse(self.api_b.VIF.get_currently_attached(new_vif))


class TestInPool(migrate_base.MigrateTestCase):

    def test_disks_move_to_the_other_sr(self):
        lvm, ext = self.lvm(), self.ext()
        vm, (thick, thin), vif = self.make_vm(
            [(lvm, 16 * MiB, 16), (ext, 8 * MiB, 16)])
        rec = self.api.VM.get_record(vm)
        self.write(vm, ['0', '1'])
        self.wait_writes(vm)
        vdis_b = self.vdi_set(self.api_b)

        # Each disk to the other SR of the pool; no VIF map in-pool.
        result = self.migrate(vm, self.dest_a(), {thick: ext, thin: lvm})

        self.assertEqual(vm, result)
        after = self.api.VM.get_record(vm)
        self.assertEqual('Running', after['power_state'])
        self.assertEqual(self.host_a, after['resident_on'])
        self.assertEqual(sorted(rec['VBDs']), sorted(after['VBDs']))
        self.assertEqual([vif], after['VIFs'])
        self.assertEqual(self.net_a, self.api.VIF.get_network(vif))
        targets = {'0': (ext, 16 * MiB), '1': (lvm, 8 * MiB)}
        new_vdis = set()
        for vbd in after['VBDs']:
            vbd_rec = self.api.VBD.get_record(vbd)
            sr, size = targets[vbd_rec['userdevice']]
            vdi = vbd_rec['VDI']
            self.assertNotIn(vdi, (thick, thin))
            self.assertEqual(sr, self.api.VDI.get_SR(vdi))
            self.assertEqual(str(size), self.api.VDI.get_virtual_size(vdi))
            self.assertTrue(vbd_rec['currently_attached'])
            new_vdis.add(vdi)
        for vdi in (thick, thin):
            self.assertXapiError(['HANDLE_INVALID', 'VDI', vdi],
                                 self.api.VDI.get_record, vdi)
        # No mirror snapshot or copy is left over anywhere.
        self.assertEqual(new_vdis, self.vdi_set())
        self.assertEqual(vdis_b, self.vdi_set(self.api_b))
        self.assertIsNone(self.vm_in(rec['uuid'], self.api_b))
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=['0', '1'])
        # The disk that moved to lvm is thick there.
        self.api.SR.scan(lvm)
        moved = [v for v in new_vdis if self.api.VDI.get_SR(v) == lvm]
        self.assertEqual(str(8 * MiB),
                         self.api.VDI.get_physical_utilisation(moved[0]))

    def test_snapshot_disks_move_with_the_vm(self):
        ext, lvm = self.ext(), self.lvm()
        vm, (vdi,), _ = self.make_vm([(ext, 8 * MiB, 16)], vif=False)
        self.write(vm, ['0'])
        self.wait_writes(vm)
        snap = self.api.VM.snapshot(vm, 'snap')
        (snap_vbd,) = self.api.VM.get_VBDs(snap)
        snap_vdi = self.api.VBD.get_VDI(snap_vbd)
        before = self.checksum(snap_vdi)
        self.wait_writes(vm)

        self.migrate(vm, self.dest_a(), {vdi: lvm})

        new_vdi = self.api.VBD.get_VDI(self.api.VM.get_VBDs(vm)[0])
        self.assertEqual(lvm, self.api.VDI.get_SR(new_vdi))
        # The snapshot VM now points at a copy on the target SR.
        new_snap_vdi = self.api.VBD.get_VDI(snap_vbd)
        self.assertNotEqual(snap_vdi, new_snap_vdi)
        self.assertEqual(lvm, self.api.VDI.get_SR(new_snap_vdi))
        self.assertTrue(self.api.VDI.get_is_a_snapshot(new_snap_vdi))
        self.assertEqual(new_vdi, self.api.VDI.get_snapshot_of(new_snap_vdi))
        self.assertEqual(before, self.checksum(new_snap_vdi))
        self.assertEqual({new_vdi, new_snap_vdi}, self.vdi_set())
        self.stop_and_check(vm, devices=['0'])

    def test_disk_mapped_to_its_own_sr_stays(self):
        ext, lvm = self.ext(), self.lvm()
        vm, (stay, move), _ = self.make_vm(
            [(ext, 8 * MiB, 8), (ext, 8 * MiB, 8)], vif=False)
        self.write(vm, ['0', '1'])
        self.wait_writes(vm)
        self.migrate(vm, self.dest_a(), {stay: ext, move: lvm})
        vbds = {self.api.VBD.get_userdevice(v): self.api.VBD.get_VDI(v)
                for v in self.api.VM.get_VBDs(vm)}
        self.assertEqual(stay, vbds['0'])
        self.assertNotEqual(move, vbds['1'])
        self.assertEqual(lvm, self.api.VDI.get_SR(vbds['1']))
        self.assertEqual({stay, vbds['1']}, self.vdi_set())
        self.stop_and_check(vm, devices=['0', '1'])

    def test_vdi_pool_migrate_under_writes(self):
        ext, lvm = self.ext(), self.lvm()
        vm, (vdi0, vdi1), _ = self.make_vm(
            [(ext, 8 * MiB, 16), (ext, 8 * MiB, 8)], vif=False)
        uuid0 = self.api.VDI.get_uuid(vdi0)
        vbd0 = self.api.VDI.get_VBDs(vdi0)[0]
        vbd1 = self.api.VDI.get_VBDs(vdi1)[0]
        self.write(vm, ['0', '1'])
        self.wait_writes(vm)

        task = self.api.Async.VDI.pool_migrate(vdi0, lvm, {})
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        new = migrate_base.decode_result(rec['result'])

        self.assertNotEqual(vdi0, new)
        self.assertNotEqual(uuid0, self.api.VDI.get_uuid(new))
        self.assertEqual(lvm, self.api.VDI.get_SR(new))
        self.assertEqual(str(8 * MiB), self.api.VDI.get_virtual_size(new))
        self.assertEqual(new, self.api.VBD.get_VDI(vbd0))
        self.assertTrue(self.api.VBD.get_currently_attached(vbd0))
        # The other disk did not move.
        self.assertEqual(vdi1, self.api.VBD.get_VDI(vbd1))
        self.assertEqual(ext, self.api.VDI.get_SR(vdi1))
        self.assertXapiError(['HANDLE_INVALID', 'VDI', vdi0],
                             self.api.VDI.get_record, vdi0)
        self.assertEqual({new, vdi1}, self.vdi_set())
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=['0', '1'])

    def test_vdi_pool_migrate_needs_a_vm(self):
        ext, lvm = self.ext(), self.lvm()
        vdi = self.create_vdi(ext, 8 * MiB)
        self.assertXapiError(['VDI_NEEDS_VM_FOR_MIGRATE', vdi],
                             self.api.VDI.pool_migrate, vdi, lvm, {})
        self.assertEqual(ext, self.api.VDI.get_SR(vdi))
        self.assertEqual({vdi}, self.vdi_set())

    def test_vdi_pool_migrate_refuses_cbt(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 8 * MiB, 4)], vif=False)
        self.api.VDI.enable_cbt(vdi)
        self.assertXapiError(['VDI_CBT_ENABLED', vdi],
                             self.api.VDI.pool_migrate, vdi, self.lvm(), {})
        self.assertEqual({vdi}, self.vdi_set())


SHARED_SR_UUID = '0b6e6d5c-5a47-4b5e-9a3c-3f1d2e6a7c11'


def _shared_topology():
    shared = {'name': 'Shared (nfs)', 'type': 'nfs', 'size': '8GiB',
              'shared': True, 'uuid': SHARED_SR_UUID}
    topo = migrate_base.topology_with({'pool-a': [dict(shared)],
                                       'pool-b': [dict(shared)]})
    topo['pools'][0]['hosts'] = [{'name': 'pool-a-host1'},
                                 {'name': 'pool-a-host2'}]
    return topo


class TestSharedStorage(migrate_base.MigrateTestCase):
    """pool-a has two hosts; one nfs SR is introduced in both pools."""

    topology = _shared_topology()

    def setUp(self):
        super().setUp()
        self.nfs_a = self.sr_named('Shared (nfs)')
        self.nfs_b = self.sr_named('Shared (nfs)', self.api_b)
        self.host_a2 = [h for h in self.api.host.get_all()
                        if h != self.host_a][0]

    def test_disk_on_an_sr_shared_by_both_pools_is_not_copied(self):
        vm, (shared, local), vif = self.make_vm(
            [(self.nfs_a, 8 * MiB, 16), (self.ext(), 8 * MiB, 16)])
        uuid = self.api.VM.get_uuid(vm)
        shared_uuid = self.api.VDI.get_uuid(shared)
        self.write(vm, ['0', '1'])
        self.wait_writes(vm)
        ext_b = self.ext(self.api_b)
        new_vm = self.migrate(vm, self.dest_b(),
                              {shared: self.nfs_b, local: ext_b},
                              {vif: self.net_b})
        vdis = {self.api_b.VBD.get_userdevice(v): self.api_b.VBD.get_VDI(v)
                for v in self.api_b.VM.get_VBDs(new_vm)}
        # The very same VDI, seen through pool-b.
        self.assertEqual(shared_uuid, self.api_b.VDI.get_uuid(vdis['0']))
        self.assertEqual(self.nfs_b, self.api_b.VDI.get_SR(vdis['0']))
        self.assertEqual(ext_b, self.api_b.VDI.get_SR(vdis['1']))
        (entry,) = self.ctl.migrations()
        moved = {d['vdi']: d['no_transfer'] for d in entry['disks']}
        self.assertTrue(moved[shared_uuid])
        # Only the local disk was copied.
        self.assertLessEqual(entry['bytes_copied'], 8 * MiB)
        # The shared VDI is not destroyed: it lives on; the local one is.
        self.assertEqual({shared}, self.vdi_set())
        self.assertEqual(shared_uuid, self.api.VDI.get_uuid(shared))
        self.assertIsNone(self.vm_in(uuid, self.api))
        self.wait_writes(uuid, ctl=self.ctl_b)
        self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0', '1'])

    def test_pool_migrate_on_shared_storage(self):
        vm, (vdi,), vif = self.make_vm([(self.nfs_a, 8 * MiB, 8)])
        self.write(vm, ['0'])
        self.wait_writes(vm)
        task = self.api.Async.VM.pool_migrate(vm, self.host_a2, {})
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertEqual(self.host_a2, self.api.VM.get_resident_on(vm))
        self.assertEqual(vdi, self.api.VBD.get_VDI(
            self.api.VM.get_VBDs(vm)[0]))
        self.assertEqual({vdi}, self.vdi_set())
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=['0'])

    def test_pool_migrate_needs_the_sr_on_the_destination_host(self):
        ext = self.ext()
        vm, vdis, vif = self.make_vm([(ext, 8 * MiB, 8)])
        self.assertXapiError(['VM_REQUIRES_SR', vm, ext],
                             self.api.VM.pool_migrate, vm, self.host_a2, {})
        self.assertEqual(self.host_a, self.api.VM.get_resident_on(vm))

    def test_storage_migration_to_the_other_host_of_the_pool(self):
        vm, (vdi,), vif = self.make_vm([(self.ext(), 8 * MiB, 16)])
        self.write(vm, ['0'])
        self.wait_writes(vm)
        dest = self.api.host.migrate_receive(self.host_a2, self.net_a, {})
        self.assertEqual(vm, self.migrate(vm, dest, {vdi: self.nfs_a}))
        self.assertEqual(self.host_a2, self.api.VM.get_resident_on(vm))
        new_vdi = self.api.VBD.get_VDI(self.api.VM.get_VBDs(vm)[0])
        self.assertEqual(self.nfs_a, self.api.VDI.get_SR(new_vdi))
        self.assertEqual({new_vdi}, self.vdi_set())
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=['0'])


class TestProgress(migrate_base.MigrateTestCase):

    def test_progress_rises_to_one_and_cancel_is_allowed(self):
        ext = self.ext()
        vm, vdis, vif = self.make_vm(
            [(ext, 8 * MiB, 24), (self.lvm(), 16 * MiB, 24)])
        # 3 MiB to copy at 6 MiB/s: about half a second.
        self.ctl.configure(bandwidth=6 * MiB)
        ext_b = self.ext(self.api_b)
        token = base.event_from(self.api, ['task'], '', 0)['token']
        task = self.migrate_async(vm, self.dest_b(),
                                  {v: ext_b for v in vdis},
                                  {vif: self.net_b})
        # Every state the task went through, from its events.
        seen = []
        deadline = time.monotonic() + base.DEADLINE
        while not seen or seen[-1]['status'] == 'pending':
            self.assertLess(time.monotonic(), deadline, seen[-1:])
            answer = base.event_from(self.api, ['task/%s' % task], token,
                                     1.0)
            token = answer['token']
            seen.extend(e['snapshot'] for e in answer['events']
                        if e['ref'] == task and e['operation'] != 'del')

        self.assertEqual('success', seen[-1]['status'], seen[-1])
        progress = [float(s['progress']) for s in seen]
        self.assertEqual(0.0, progress[0])
        self.assertEqual(1.0, progress[-1])
        self.assertEqual(sorted(progress), progress,
                         'progress went backwards')
        middle = {p for p in progress if 0.0 < p < 1.0}
        self.assertGreater(len(middle), 5, 'progress jumped: %s' % progress)
        # Cancellable while the disks are copied.
        copying = [s for s in seen if s['status'] == 'pending'
                   and float(s['progress']) < 0.9]
        self.assertGreater(len(copying), 5)
        for state in copying:
            self.assertIn('cancel', state['allowed_operations'], state)
        self.assertEqual([], seen[-1]['allowed_operations'])

    def test_disks_are_mirrored_one_after_the_other_smallest_first(self):
        small_sr, large_sr = self.ext(), self.lvm()
        vm, (large, small), vif = self.make_vm(
            [(large_sr, 16 * MiB, 24), (small_sr, 8 * MiB, 24)])
        self.ctl.configure(bandwidth=6 * MiB)
        ext_b = self.ext(self.api_b)
        token = base.event_from(self.api, ['VDI'], '', 0)['token']
        task = self.migrate_async(vm, self.dest_b(),
                                  {large: ext_b, small: ext_b},
                                  {vif: self.net_b})
        events = []
        deadline = time.monotonic() + base.DEADLINE
        while True:
            self.assertLess(time.monotonic(), deadline)
            answer = base.event_from(self.api, ['VDI', 'task/%s' % task],
                                     token, 1.0)
            token = answer['token']
            events.extend(answer['events'])
            if self.api.task.get_status(task) != 'pending' and any(
                    e['class'] == 'task' and e['snapshot']['status']
                    != 'pending' for e in events):
                break
        self.assertEqual('success', self.api.task.get_status(task))

        # The snapshot each mirror starts from, in order of creation.
        snaps = [(i, e) for i, e in enumerate(events)
                 if e['class'] == 'vdi' and e['operation'] == 'add'
                 and 'base_mirror' in e['snapshot']['sm_config']]
        self.assertEqual([small, large],
                         [e['snapshot']['snapshot_of'] for _, e in snaps])

        def progress_before(index):
            seen = [float(e['snapshot']['progress'])
                    for e in events[:index] if e['class'] == 'task']
            return seen[-1] if seen else 0.0

        # The large disk's mirror starts once the small one is copied.
        self.assertGreaterEqual(progress_before(snaps[1][0]),
                                0.9 * 8 / 24 - 1e-9)
        # Both snapshots (and so both mirrors) last until the memory has
        # moved: they go after the task reached 1.
        refs = {e['ref'] for _, e in snaps}
        gone = [i for i, e in enumerate(events)
                if e['operation'] == 'del' and e['ref'] in refs]
        self.assertEqual(2, len(gone))
        for index in gone:
            self.assertEqual(1.0, progress_before(index))


class TestCopyDirty(migrate_base.MigrateTestCase):

    def test_copy_dirty_is_correct_under_writes(self):
        # Each 4 KiB write dirties a 64 KiB block: at 512 KiB/s per disk
        # the guest dirties blocks a quarter as fast as they are copied,
        # so the passes shrink the dirty set quickly.
        self.ctl.configure(algorithm='copy-dirty', bandwidth=64 * MiB,
                           downtime_target=0.01)
        vm, (vdi0, vdi1), vif = self.make_vm(
            [(self.ext(), 8 * MiB, 16), (self.lvm(), 16 * MiB, 16)])
        uuid = self.api.VM.get_uuid(vm)
        self.write(vm, ['0', '1'], rate=512 * 1024)
        self.wait_writes(vm)
        ext_b = self.ext(self.api_b)
        new_vm = self.migrate(vm, self.dest_b(), {vdi0: ext_b, vdi1: ext_b},
                              {vif: self.net_b})
        self.assertEqual(new_vm, self.api_b.VM.get_by_uuid(uuid))
        self.assertEqual(set(), self.vdi_set())
        self.wait_writes(uuid, ctl=self.ctl_b)
        self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0', '1'])

        log = self.ctl.migrations()
        self.assertEqual(1, len(log))
        entry = log[0]
        self.assertEqual(uuid, entry['vm'])
        self.assertEqual('copy-dirty', entry['algorithm'])
        self.assertIsInstance(entry['passes'], int)
        self.assertTrue(entry['converged'], entry)
        self.assertGreater(entry['downtime'], 0.0)
        self.assertGreater(entry['bytes_copied'], 0)
        self.assertEqual(0, entry['bytes_mirrored'])
        self.assertEqual(2, len(entry['disks']))

    def test_copy_dirty_that_never_converges_is_still_correct(self):
        # No downtime is small enough while the guest writes: every pass
        # leaves dirty blocks, the pass limit ends it, stop-and-copy the
        # rest.
        self.ctl.configure(algorithm='copy-dirty', bandwidth=16 * MiB,
                           downtime_target=0, max_passes=2)
        vm, (vdi,), vif = self.make_vm([(self.ext(), 8 * MiB, 16)])
        uuid = self.api.VM.get_uuid(vm)
        self.write(vm, ['0'], rate=2 * MiB)
        self.wait_writes(vm)
        self.migrate(vm, self.dest_b(), {vdi: self.ext(self.api_b)},
                     {vif: self.net_b})
        self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0'])
        (entry,) = self.ctl_b.migrations()
        self.assertEqual('copy-dirty', entry['algorithm'])
        self.assertFalse(entry['converged'])
        self.assertEqual(2, entry['passes'])
        self.assertGreater(entry['downtime'], 0.0)

    def test_mirror_is_logged_too(self):
        vm, (vdi,), vif = self.make_vm([(self.ext(), 8 * MiB, 16)])
        uuid = self.api.VM.get_uuid(vm)
        vdi_uuid = self.api.VDI.get_uuid(vdi)
        self.write(vm, ['0'], rate=2 * MiB)
        self.wait_writes(vm)
        self.migrate(vm, self.dest_b(), {vdi: self.ext(self.api_b)},
                     {vif: self.net_b})
        self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0'])
        (entry,) = self.ctl.migrations()
        self.assertEqual(uuid, entry['vm'])
        self.assertEqual('mirror', entry['algorithm'])
        self.assertEqual(0, entry['passes'])
        self.assertTrue(entry['converged'])
        self.assertGreater(entry['downtime'], 0.0)
        self.assertEqual(entry['bytes_copied'] + entry['bytes_mirrored'],
                         entry['bytes_sent'])
        # The pre-filled blocks at least were copied; writes mirrored.
        self.assertGreaterEqual(entry['bytes_copied'], 16 * BLOCK)
        self.assertGreater(entry['bytes_mirrored'], 0)
        (disk,) = entry['disks']
        self.assertEqual('mirror', disk['kind'])
        self.assertEqual(vdi_uuid, disk['vdi'])
        self.assertEqual(str(8 * MiB), str(disk['virtual_size']))
