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

"""VDI.resize as xapi (xapi_vdi.check_operation_error) and SM's FileSR and
vhdutil answer it: what grows, how it rounds, what is refused; and the
guest that sees the grown disk."""

from tests.functional.xapi_sim import migrate_base

MiB = migrate_base.MiB
GiB = 1 << 30
NULL = migrate_base.NULL
SHRINK = ['SR_BACKEND_FAILURE_79', '',
          'VDI Invalid size [opterr=shrinking not allowed]', '']


class TestResize(migrate_base.MigrateTestCase):

    def test_size_rounds_up_to_whole_vhd_blocks(self):
        vdi = self.create_vdi(self.ext(), 4 * MiB)
        self.api.VDI.resize(vdi, str(5 * MiB + 1))
        self.assertEqual(str(6 * MiB), self.api.VDI.get_virtual_size(vdi))
        self.assertEqual(6 * MiB, len(self.export_vdi(vdi)))

    def test_same_size_changes_nothing(self):
        vdi = self.create_vdi(self.ext(), 4 * MiB)
        self.prefill(vdi, 8, seed='same')
        digest = self.checksum(vdi)
        self.api.VDI.resize(vdi, str(4 * MiB))
        self.assertEqual(str(4 * MiB), self.api.VDI.get_virtual_size(vdi))
        self.assertEqual(digest, self.checksum(vdi))

    def test_shrinking_is_refused_and_nothing_is_lost(self):
        vdi = self.create_vdi(self.lvm(), 8 * MiB)
        self.prefill(vdi, 16, seed='shrink')
        digest = self.checksum(vdi)
        self.assertXapiError(SHRINK, self.api.VDI.resize, vdi, str(6 * MiB))
        self.assertXapiError(SHRINK, self.api.VDI.resize, vdi, '-1')
        self.assertEqual(str(8 * MiB), self.api.VDI.get_virtual_size(vdi))
        self.assertEqual(digest, self.checksum(vdi))

    def test_beyond_the_largest_vhd_is_refused(self):
        vdi = self.create_vdi(self.ext(), 4 * MiB)
        self.assertXapiError(
            ['SR_BACKEND_FAILURE_79', '',
             'VDI Invalid size [opterr=VDI size must be between 1 MB and '
             '2088960 MB]', ''],
            self.api.VDI.resize, vdi, str(2040 * GiB + 1))
        self.assertEqual(str(4 * MiB), self.api.VDI.get_virtual_size(vdi))

    def test_thin_sr_may_promise_more_than_it_has(self):
        # FileSR does not check the space: the SR is thin.
        sr = self.ext()
        vdi = self.create_vdi(sr, 4 * MiB)
        huge = int(self.api.SR.get_physical_size(sr)) + 64 * MiB
        self.api.VDI.resize(vdi, str(huge))
        self.assertEqual(str(huge), self.api.VDI.get_virtual_size(vdi))
        self.api.SR.scan(sr)
        self.assertGreaterEqual(
            int(self.api.SR.get_virtual_allocation(sr)), huge)

    def test_thick_sr_refuses_what_it_cannot_hold(self):
        sr = self.lvm()
        vdi = self.create_vdi(sr, 4 * MiB)
        used = int(self.api.SR.get_physical_utilisation(sr))
        huge = int(self.api.SR.get_physical_size(sr)) + 4 * MiB
        self.assertXapiError(['SR_BACKEND_FAILURE_44', '',
                              'There is insufficient space', ''],
                             self.api.VDI.resize, vdi, str(huge))
        self.assertEqual(str(4 * MiB), self.api.VDI.get_virtual_size(vdi))
        self.api.SR.scan(sr)
        self.assertEqual(used, int(self.api.SR.get_physical_utilisation(sr)))

    def test_attached_to_a_running_or_suspended_vm_is_refused(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 4 * MiB, 2)], vif=False)
        expected = ['VDI_IN_USE', vdi, 'resize']
        self.assertXapiError(expected, self.api.VDI.resize, vdi,
                             str(8 * MiB))
        self.api.pool.set_suspend_image_SR(self.api.pool.get_all()[0],
                                           self.ext())
        self.api.VM.suspend(vm)
        self.assertXapiError(expected, self.api.VDI.resize, vdi,
                             str(8 * MiB))
        self.assertEqual(str(4 * MiB), self.api.VDI.get_virtual_size(vdi))

    def test_a_snapshot_grows_its_base_copy_does_not(self):
        vdi = self.create_vdi(self.ext(), 4 * MiB)
        self.prefill(vdi, 8, seed='snap')
        digest = self.checksum(vdi)
        snap = self.api.VDI.snapshot(vdi, {})
        hidden = [r for r, rec in self.api.VDI.get_all_records().items()
                  if not rec['managed']]
        self.assertEqual(1, len(hidden))
        # xapi_vdi.resize: assert_managed, before SM sees it.
        self.assertXapiError(['VDI_NOT_MANAGED', hidden[0]],
                             self.api.VDI.resize, hidden[0], str(8 * MiB))
        # FileSR resizes any VHD leaf, a snapshot's too.
        self.api.VDI.resize(snap, str(8 * MiB))
        self.assertEqual(str(8 * MiB), self.api.VDI.get_virtual_size(snap))
        self.assertEqual(migrate_base.base.sha256(
            self.export_vdi(vdi) + bytes(4 * MiB)), self.checksum(snap))
        self.assertEqual(digest, self.checksum(vdi))

    def test_cbt_metadata_vdi_is_refused(self):
        record = {'SR': self.ext(), 'virtual_size': str(4 * MiB),
                  'type': 'cbt_metadata', 'name_label': 'cbt',
                  'sharable': False, 'read_only': False,
                  'other_config': {}}
        vdi = self.api.VDI.create(record)
        self.assertXapiError(['VDI_INCOMPATIBLE_TYPE', vdi, 'cbt_metadata'],
                             self.api.VDI.resize, vdi, str(8 * MiB))

    def test_the_guest_sees_the_grown_disk(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 4 * MiB, 32)], vif=False,
                                     start=False)
        old = self.export_vdi(vdi)
        self.api.VDI.resize(vdi, str(16 * MiB))
        grown = self.export_vdi(vdi)
        self.assertEqual(old, grown[:4 * MiB])
        self.assertEqual(bytes(12 * MiB), grown[4 * MiB:])
        self.api.VM.start(vm, False, False)
        uuid = self.api.VM.get_uuid(vm)
        # The guest writes all over its 16 MiB disk, the new part too.
        self.write(uuid, ['0'], rate=16 * MiB)
        self.wait_writes(uuid, more=200)
        self.stop_and_check(uuid, devices=['0'], written=True)
        self.api.VM.hard_shutdown(vm)
        after = self.export_vdi(vdi)
        self.assertNotEqual(bytes(12 * MiB), after[4 * MiB:])
