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


"""Revert of a volume to its latest snapshot, checked in the bytes."""

import logging

import fixtures

from cinder_sxm.tests.functional import base
from xapi_sim import vmbuild

MiB = base.MiB


class TestRevert(base.SxmCinderTestCase):

    def setUp(self):
        super().setUp()
        self.osapi_version = '3.40'  # the revert action

    def snapshot(self, vol):
        snap = self.api.post_snapshot({'snapshot': {
            'volume_id': vol['id'], 'name': 'before'}})
        return self._poll_snapshot_while(snap['id'], ['creating'],
                                         expected_end_status='available',
                                         max_retries=60)

    def revert(self, vol, snap):
        self.action(vol['id'], {'revert': {'snapshot_id': snap['id']}})

    def leftovers(self):
        return [rec['uuid'] for rec in self.xapi.VDI.get_all_records(
        ).values() if rec['name_label'].startswith('revert base of')]

    def check_revert(self, tier):
        vol, vdi, taken = self.written_volume(tier, 4 * MiB, 'kept')
        snap = self.snapshot(vol)
        (snap_vdi,) = self.xapi.VDI.get_snapshots(vdi)
        # Later writes, also where the snapshot has never been written.
        self.fill(vdi, 12 * MiB, 'overwritten')
        self.assertNotEqual(taken, self.digest(vdi))

        self.revert(vol, snap)
        self.wait_volume(vol['id'], ('reverting',), 'available')

        self.assertEqual(taken, self.digest(vdi))
        # In place: the same VDI, the snapshot kept, nothing else left.
        self.assertEqual(self.xapi.VDI.get_uuid(vdi),
                         self.admin_volume(vol['id']).provider_location)
        self.assertEqual([snap_vdi], self.xapi.VDI.get_snapshots(vdi))
        self.assertEqual(taken, self.digest(snap_vdi))
        self.assertEqual([], self.leftovers())
        self.assertEqual('available',
                         self.api.get_snapshot(snap['id'])['status'])

    def test_revert_thin(self):
        self.check_revert('silver')

    def test_revert_thick(self):
        self.check_revert('gold')

    def test_refused_while_a_vm_has_it_plugged(self):
        vol, vdi, _ = self.written_volume('silver', 4 * MiB, 'kept')
        snap = self.snapshot(vol)
        # A guest Cinder was not told about (the volume shows available).
        vm = self.xapi.VM.create(vmbuild.vm_record('unknown'))
        self.xapi.VBD.create(vmbuild.vbd_record(vm, vdi, '1',
                                                bootable=False))
        self.xapi.VM.start(vm, False, False)
        self.write(vm, ['1'], rate=MiB, seed=3)
        self.wait_writes(vm)
        log = self.useFixture(fixtures.FakeLogger(level=logging.WARNING))

        self.revert(vol, snap)
        # Cinder's manager marks a failed revert 'error'.
        self.wait_volume(vol['id'], ('reverting',), 'error')

        self.assertIn('cannot be reverted to snapshot %s while a VM has '
                      'its VDI plugged (XAPI: VDI_IN_USE)' % snap['id'],
                      log.output)
        self.assertEqual([], self.leftovers())
        self.check_guest(vm)  # every byte the guest wrote is still there
