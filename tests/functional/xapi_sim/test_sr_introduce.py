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

"""What the historic driver's volume_utils did to attach a volume's SR:
SR.introduce, PBD.create and PBD.plug, SR.scan or VDI.introduce, then
PBD.unplug, PBD.destroy and SR.forget."""

import random
import uuid as uuidlib

import XenAPI

from tests.functional.xapi_sim import base

MiB = base.MiB


class TestIntroduceAndForget(base.SimulatorTestCase):

    def setUp(self):
        super().setUp()
        self.api_b = self.login('pool-b').xenapi
        self.host_b = self.api_b.pool.get_master(
            self.api_b.pool.get_all()[0])
        # The "volume": a VDI on pool-a's lvm SR with known bytes.
        self.sr_a = self.sr('lvm')
        self.sr_uuid = self.api.SR.get_uuid(self.sr_a)
        self.vdi_a = self.create_vdi(self.sr_a, 4 * MiB, name='volume')
        self.data = random.Random(2).randbytes(4 * MiB)
        self.import_vdi(self.vdi_a, self.data)
        self.vdi_uuid = self.api.VDI.get_uuid(self.vdi_a)

    def introduce(self, sr_uuid):
        sr = self.api_b.SR.introduce(sr_uuid, 'volume SR', '', 'LVMoISCSI',
                                     'user', True, {})
        pbd = self.api_b.PBD.create({
            'host': self.host_b, 'SR': sr,
            'device_config': {'target': '192.0.2.10',
                              'targetIQN': 'iqn.2026-01.org.example:vol'}})
        return sr, pbd

    def test_attach_read_detach_forget(self):
        sr, pbd = self.introduce(self.sr_uuid)
        rec = self.api_b.SR.get_record(sr)
        self.assertEqual(('lvmoiscsi', self.sr_uuid, True),
                         (rec['type'], rec['uuid'], rec['shared']))
        self.assertEqual([pbd], rec['PBDs'])
        self.assertFalse(self.api_b.PBD.get_currently_attached(pbd))
        self.api_b.PBD.plug(pbd)
        self.api_b.SR.scan(sr)
        vdi = self.api_b.VDI.get_by_uuid(self.vdi_uuid)
        self.assertEqual(sr, self.api_b.VDI.get_SR(vdi))
        self.assertEqual(base.sha256(self.data),
                         self.checksum(vdi, pool='pool-b',
                                       session=self.login('pool-b')))
        # Detach as volume_utils.forget_sr did.
        self.assertXapiError(['SR_HAS_PBD', sr], self.api_b.SR.forget, sr)
        self.assertXapiError(['OPERATION_NOT_ALLOWED',
                              'PBD is currently attached'],
                             self.api_b.PBD.destroy, pbd)
        self.api_b.PBD.unplug(pbd)
        self.api_b.SR.forget(sr)
        self.assertNotIn(sr, self.api_b.SR.get_all())
        self.assertNotIn(pbd, self.api_b.PBD.get_all())
        self.assertXapiError(['UUID_INVALID', 'VDI', self.vdi_uuid],
                             self.api_b.VDI.get_by_uuid, self.vdi_uuid)
        # The volume's bytes are where they were.
        self.assertEqual(base.sha256(self.data), self.checksum(self.vdi_a))

    def test_vdi_introduce(self):
        sr, pbd = self.introduce(self.sr_uuid)
        self.api_b.PBD.plug(pbd)
        vdi = self.api_b.VDI.introduce(
            self.vdi_uuid, 'vol', 'a volume', sr, 'user', False, False,
            {'osvol': 'True'}, self.vdi_uuid, {}, {})
        rec = self.api_b.VDI.get_record(vdi)
        self.assertEqual(('vol', {'osvol': 'True'}, str(4 * MiB)),
                         (rec['name_label'], rec['other_config'],
                          rec['virtual_size']))
        missing = str(uuidlib.uuid4())
        self.assertXapiError(['VDI_LOCATION_MISSING', sr, missing],
                             self.api_b.VDI.introduce, missing, '', '', sr,
                             'user', False, False, {}, missing, {}, {})

    def test_unknown_storage_and_duplicate_uuid(self):
        missing = str(uuidlib.uuid4())
        sr, pbd = self.introduce(missing)
        exc = self.assertRaises(XenAPI.Failure, self.api_b.PBD.plug, pbd)
        self.assertEqual('SR_BACKEND_FAILURE_47', exc.details[0])
        self.assertFalse(self.api_b.PBD.get_currently_attached(pbd))
        self.assertXapiError(['SR_UUID_EXISTS', missing],
                             self.api_b.SR.introduce, missing, 'again', '',
                             'lvmoiscsi', 'user', True, {})
        self.api_b.PBD.destroy(pbd)
        self.api_b.SR.forget(sr)
        self.assertStillServing(self.api_b)
