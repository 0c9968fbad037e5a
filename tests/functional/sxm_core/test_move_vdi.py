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

"""Migrator.move_vdi of a volume attached to a halted VM.

XAPI refuses VDI.pool_migrate unless the VDI is plugged into a running VM,
so the core copies the disk, recreates the VM's VBD on the copy and
destroys the original: the VM must find its volume where it was, with the
same bytes, and start.
"""

import hashlib

import fixtures
import XenAPI

from sxm_core import errors
from sxm_core import migrate
from tests.functional.sxm_core import base

MiB = base.MiB
EXT = base.EXT
LVM = base.LVM


class TestMoveVdiOfAHaltedVm(base.CoreTestCase):

    def test_the_vbd_follows_the_copy(self):
        vm, vdis = self.make_vm(
            disks=(('0', 'system', EXT, 8 * MiB, MiB),), start=False,
            vif=False)
        volume = self.create_vdi(self.sr_named(EXT), 16 * MiB, 'volume')
        self.fill(volume, 4 * MiB, seed='volume')
        self.create_vbd(vm, volume, '1', bootable=False, mode='RO',
                        other_config={'osvol': 'true'})
        old_vbd = self.vbd_at(vm, '1')
        old_rec = self.api.VBD.get_record(old_vbd)
        old_uuid = self.api.VDI.get_uuid(volume)
        image = self.sha256(volume)
        before = self.vdi_set()

        m = self.migrator(cross_pool=False)
        new_uuid = m.move_vdi(old_uuid, LVM)

        self.assertNotEqual(old_uuid, new_uuid)
        new = self.api.VDI.get_by_uuid(new_uuid)
        self.assertEqual(self.sr_named(LVM), self.api.VDI.get_SR(new))
        self.assertEqual(str(16 * MiB), self.api.VDI.get_virtual_size(new))
        # The old VDI is gone, and nothing else appeared or went.
        exc = self.assertRaises(XenAPI.Failure, self.api.VDI.get_record,
                                volume)
        self.assertEqual(['HANDLE_INVALID', 'VDI', volume], exc.details)
        self.assertEqual(before - {volume} | {new}, self.vdi_set())
        # One VBD at userdevice 1, on the copy, as it was.
        at_1 = [v for v in self.api.VM.get_VBDs(vm)
                if self.api.VBD.get_userdevice(v) == '1']
        self.assertEqual(1, len(at_1), at_1)
        rec = self.api.VBD.get_record(at_1[0])
        self.assertEqual(new, rec['VDI'])
        self.assertEqual([at_1[0]], self.api.VDI.get_VBDs(new))
        for field in ('other_config', 'mode', 'bootable', 'type',
                      'unpluggable', 'empty'):
            self.assertEqual(old_rec[field], rec[field], field)
        self.assertEqual({'osvol': 'true'}, rec['other_config'])
        self.assertEqual('RO', rec['mode'])
        # The system disk did not move.
        system = self.vbd_at(vm, '0')
        self.assertEqual(vdis['0'], self.api.VBD.get_VDI(system))
        self.assertEqual(image, self.sha256(new))

        self.api.VM.start(vm, False, False)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertTrue(self.api.VBD.get_currently_attached(at_1[0]))

    def vbd_at(self, vm, userdevice):
        (vbd,) = [v for v in self.api.VM.get_VBDs(vm)
                  if self.api.VBD.get_userdevice(v) == userdevice]
        return vbd

    def sha256(self, vdi):
        return hashlib.sha256(self.export_vdi(vdi)).hexdigest()


class TestMoveVdiFailures(base.CoreTestCase):
    """Whatever fails, the halted VM keeps exactly one intact volume."""

    def setUp(self):
        super().setUp()
        self.vm, _ = self.make_vm(
            disks=(('0', 'system', EXT, 8 * MiB, MiB),), start=False,
            vif=False)
        self.volume = self.create_vdi(self.sr_named(EXT), 16 * MiB,
                                      'volume')
        self.fill(self.volume, 2 * MiB, seed='volume')
        self.digest = hashlib.sha256(self.export_vdi(self.volume)).digest()
        self.create_vbd(self.vm, self.volume, '1',
                        other_config={'osvol': 'true'})
        self.faults = {}
        pool = self.pool('pool-a',
                         session_factory=base.flaky_factory(self.faults))
        self.migrator = migrate.Migrator(
            pool, None, slots=migrate.HostSlots(poll=0.01))

    def volume_of_vm(self):
        vbds = [v for v in self.api.VM.get_VBDs(self.vm)
                if self.api.VBD.get_userdevice(v) == '1']
        self.assertEqual(1, len(vbds))
        self.assertEqual({'osvol': 'true'},
                         self.api.VBD.get_other_config(vbds[0]))
        vdi = self.api.VBD.get_VDI(vbds[0])
        self.assertEqual(self.digest,
                         hashlib.sha256(self.export_vdi(vdi)).digest())
        return vdi

    def move(self):
        return self.migrator.move_vdi(self.api.VDI.get_uuid(self.volume),
                                      LVM)

    def test_the_original_cannot_be_removed(self):
        self.faults['VDI.destroy'] = [
            XenAPI.Failure(['INTERNAL_ERROR', 'backend busy'])]
        new_uuid = self.move()
        vdi = self.volume_of_vm()
        self.assertEqual(new_uuid, self.api.VDI.get_uuid(vdi))
        self.assertEqual(self.sr_named(LVM), self.api.VDI.get_SR(vdi))
        # The original is left for the operator, unattached.
        self.assertIn(self.volume, self.api.VDI.get_all())
        self.assertEqual([], self.api.VDI.get_VBDs(self.volume))

    def test_the_reply_to_the_removal_is_lost(self):
        # XAPI did destroy the original; only the answer never came back.
        self.faults['VDI.destroy'] = []

        real = base.FlakySession.xenapi_request

        def request(session, method, params):
            value = real(session, method, params)
            if method == 'VDI.destroy' and not self.faults.get('lost'):
                self.faults['lost'] = True
                raise ConnectionResetError('reply lost')
            return value
        self.useFixture(fixtures.MockPatchObject(
            base.FlakySession, 'xenapi_request', request))
        self.move()
        vdi = self.volume_of_vm()
        self.assertEqual(self.sr_named(LVM), self.api.VDI.get_SR(vdi))
        self.assertNotIn(self.volume, self.api.VDI.get_all())

    def test_the_vbd_cannot_be_recreated(self):
        self.faults['VBD.create'] = [
            XenAPI.Failure(['INTERNAL_ERROR', 'database busy'])]
        self.assertRaises(errors.XapiFailure, self.move)
        vdi = self.volume_of_vm()
        self.assertEqual(self.volume, vdi)
        # The copy is gone again: one volume, where it was.
        names = [self.api.VDI.get_name_label(v)
                 for v in self.api.VDI.get_all()]
        self.assertEqual(1, names.count('volume'))
