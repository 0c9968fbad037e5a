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

"""VDI.resize_online as xapi answers it (CP-314075: xapi_vdi
check_operation_error allows it on a plugged VDI only where the SR's SM
offers VDI_RESIZE_ONLINE) over the real XenAPI client, and the running
guest that writes to the grown part of its disk.

No stock SM driver offers VDI_RESIZE_ONLINE (FileSR, EXTSR, NFSSR, LVHD:
"We only support offline resize"); third-party SMs do (RBDSR, SMAPIv3
volume plugins). ``simhelpers.offer_online_resize`` gives an SR type's SM
record that feature, as xapi's own test_vdi_allowed_operations does with
Db.SM.set_features.
"""

import struct

from tests.functional import simhelpers
from tests.functional.xapi_sim import migrate_base

MiB = migrate_base.MiB


class ResizeOnlineRefusedTest(migrate_base.MigrateTestCase):
    """Stock SR types: the SM features say no, attached or not."""

    def test_stock_sm_features_lack_it(self):
        for ref, rec in self.api.SM.get_all_records().items():
            self.assertNotIn('VDI_RESIZE_ONLINE', rec['features'],
                             rec['type'])
            self.assertNotIn('VDI_RESIZE_ONLINE', rec['capabilities'])

    def test_plugged_vdi_on_stock_srs_is_refused(self):
        for sr in (self.ext(), self.lvm()):
            vm, (vdi,), _ = self.make_vm([(sr, 4 * MiB, 4)], vif=False)
            digest = self.checksum(vdi)
            self.assertXapiError(['SR_OPERATION_NOT_SUPPORTED', sr],
                                 self.api.VDI.resize_online, vdi,
                                 str(8 * MiB))
            # The offline call names the VBD as the reason.
            self.assertXapiError(['VDI_IN_USE', vdi, 'resize'],
                                 self.api.VDI.resize, vdi, str(8 * MiB))
            self.assertEqual(str(4 * MiB),
                             self.api.VDI.get_virtual_size(vdi))
            self.assertEqual(digest, self.checksum(vdi))
            self.api.VM.hard_shutdown(vm)

    def test_detached_vdi_is_refused_too(self):
        # The feature check does not depend on attachment.
        sr = self.ext()
        vdi = self.create_vdi(sr, 4 * MiB)
        self.assertXapiError(['SR_OPERATION_NOT_SUPPORTED', sr],
                             self.api.VDI.resize_online, vdi, str(8 * MiB))
        self.api.VDI.resize(vdi, str(8 * MiB))
        self.assertEqual(str(8 * MiB), self.api.VDI.get_virtual_size(vdi))

    def test_wrong_arguments(self):
        vdi = self.create_vdi(self.ext(), 4 * MiB)
        self.assertXapiError(
            ['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VDI.resize_online', '3',
             '2'], self.api.VDI.resize_online, vdi)
        self.assertXapiError(['HANDLE_INVALID', 'VDI', 'OpaqueRef:nope'],
                             self.api.VDI.resize_online, 'OpaqueRef:nope',
                             str(8 * MiB))


class ResizeOnlineTest(migrate_base.MigrateTestCase):
    """An SR whose SM offers VDI_RESIZE_ONLINE (here: pool-a's ext)."""

    def setUp(self):
        super().setUp()
        simhelpers.offer_online_resize(self.sim, 'pool-a', 'ext')

    def test_running_guest_writes_to_the_grown_part(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 4 * MiB, 32)], vif=False)
        before = self.export_vdi(vdi)
        uuid = self.api.VM.get_uuid(vm)
        task = self.api.Async.VDI.resize_online(vdi, str(11 * MiB))
        self.wait_task(task)
        self.assertEqual('success', self.api.task.get_status(task))
        # Whole 2 MiB VHD blocks, as for VDI.resize.
        self.assertEqual(str(12 * MiB), self.api.VDI.get_virtual_size(vdi))
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        (vbd,) = self.api.VDI.get_VBDs(vdi)
        self.assertTrue(self.api.VBD.get_currently_attached(vbd))
        grown = self.export_vdi(vdi)
        self.assertEqual(before, grown[:4 * MiB])
        self.assertEqual(bytes(8 * MiB), grown[4 * MiB:])
        # A writer started now sees the 12 MiB disk.
        self.write(uuid, ['0'], rate=32 * MiB)
        self.wait_writes(uuid, more=400)
        self.stop_and_check(uuid, devices=['0'], written=True)
        after = self.export_vdi(vdi)
        self.assertEqual(12 * MiB, len(after))
        beyond = [at for at in range(4 * MiB, 12 * MiB, 4096)
                  if after[at:at + 4] == b'SXMW'
                  and struct.unpack_from('<Q', after, at + 20)[0] == at]
        self.assertTrue(beyond, 'no guest write beyond the old end')

    def test_shrink_is_refused_as_sm_refuses_it(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 8 * MiB, 4)], vif=False)
        digest = self.checksum(vdi)
        self.assertXapiError(
            ['SR_BACKEND_FAILURE_79', '',
             'VDI Invalid size [opterr=shrinking not allowed]', ''],
            self.api.VDI.resize_online, vdi, str(4 * MiB))
        self.assertEqual(digest, self.checksum(vdi))

    def test_offline_resize_of_a_plugged_vdi_is_still_refused(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 4 * MiB, 0)], vif=False)
        self.assertXapiError(['VDI_IN_USE', vdi, 'resize'],
                             self.api.VDI.resize, vdi, str(8 * MiB))

    def test_cbt_metadata_and_base_copies_are_refused(self):
        record = {'SR': self.ext(), 'virtual_size': str(4 * MiB),
                  'type': 'cbt_metadata', 'name_label': 'cbt',
                  'sharable': False, 'read_only': False,
                  'other_config': {}}
        cbt = self.api.VDI.create(record)
        self.assertXapiError(['VDI_INCOMPATIBLE_TYPE', cbt, 'cbt_metadata'],
                             self.api.VDI.resize_online, cbt, str(8 * MiB))
        vdi = self.create_vdi(self.ext(), 4 * MiB)
        self.api.VDI.snapshot(vdi, {})
        (hidden,) = [r for r, rec in self.api.VDI.get_all_records().items()
                     if not rec['managed']]
        self.assertXapiError(['VDI_NOT_MANAGED', hidden],
                             self.api.VDI.resize_online, hidden,
                             str(8 * MiB))

    def test_unplugged_sr(self):
        sr = self.ext()
        vdi = self.create_vdi(sr, 4 * MiB)
        (pbd,) = self.api.SR.get_PBDs(sr)
        self.api.PBD.unplug(pbd)
        self.addCleanup(self.api.PBD.plug, pbd)
        self.assertXapiError(['SR_HAS_NO_PBDS', sr],
                             self.api.VDI.resize_online, vdi, str(8 * MiB))

    def test_scan_reports_the_size_sm_has(self):
        # SR.scan reports the virtual size SM has (xapi_sr.update_vdis).
        vdi = self.create_vdi(self.ext(), 4 * MiB)
        uuid = self.api.VDI.get_uuid(vdi)
        db = self.sim.pools['pool-a'].db
        with db.lock:
            db.update('VDI', vdi, virtual_size=2 * MiB)
        self.api.SR.scan(self.ext())
        self.assertEqual(str(4 * MiB), self.api.VDI.get_virtual_size(
            self.api.VDI.get_by_uuid(uuid)))
