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

import http.client
import random
import uuid as uuidlib
import xmlrpc.client

import XenAPI

from tests.functional import simhelpers
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
                              'targetIQN': 'iqn.2026-01.org.example:vol',
                              'SCSIid': '360014050123456789abcdef01'}})
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

    def test_one_pbd_per_host_and_no_srmaster_key(self):
        sr, pbd = self.introduce(self.sr_uuid)
        # Xapi_pbd.create_common: [SR; host; the PBD already there].
        self.assertXapiError(['PBD_EXISTS', sr, self.host_b, pbd],
                             self.api_b.PBD.create,
                             {'host': self.host_b, 'SR': sr,
                              'device_config': {}})
        self.api_b.PBD.destroy(pbd)
        self.assertXapiError(
            ['VALUE_NOT_SUPPORTED', 'SRmaster', 'true',
             'This key is for internal use only'],
            self.api_b.PBD.create,
            {'host': self.host_b, 'SR': sr,
             'device_config': {'SRmaster': 'true'}})
        self.assertEqual([], self.api_b.SR.get_PBDs(sr))

    def test_scan_needs_a_plugged_pbd(self):
        sr, pbd = self.introduce(self.sr_uuid)
        self.assertXapiError(['SR_HAS_NO_PBDS', sr], self.api_b.SR.scan, sr)
        self.api_b.PBD.plug(pbd)
        self.api_b.SR.scan(sr)
        self.api_b.VDI.get_by_uuid(self.vdi_uuid)


NFS = 'Shared NFS'


class TestSharedNfs(base.SimulatorTestCase):
    """An NFS SR two pools reach: one store, the same device_config."""

    topology = simhelpers.topology_with({
        'pool-a': [{'name': NFS, 'type': 'nfs', 'size': '8GiB',
                    'shared': True,
                    'uuid': '6b1d0c52-4a8e-4d55-9a51-0d8a6c3f2b10'}],
        'pool-b': [{'name': NFS, 'type': 'nfs', 'size': '8GiB',
                    'shared': True,
                    'uuid': '6b1d0c52-4a8e-4d55-9a51-0d8a6c3f2b10'}]})

    def test_plug_needs_the_device_config_of_the_storage(self):
        # pool-b forgets its NFS SR, then introduces it again by hand.
        api_b = self.login('pool-b').xenapi
        sr = self.sr_named(NFS, api_b)
        uuid = api_b.SR.get_uuid(sr)
        (pbd,) = api_b.SR.get_PBDs(sr)
        good = api_b.PBD.get_device_config(pbd)
        api_b.PBD.unplug(pbd)
        api_b.SR.forget(sr)
        sr = api_b.SR.introduce(uuid, NFS, '', 'nfs', 'user', True, {})
        host = api_b.host.get_all()[0]

        def plug(config):
            pbd = api_b.PBD.create({'host': host, 'SR': sr,
                                    'device_config': config})
            try:
                api_b.PBD.plug(pbd)
            finally:
                if not api_b.PBD.get_currently_attached(pbd):
                    api_b.PBD.destroy(pbd)
            return pbd
        self.assertXapiError(
            ['SR_BACKEND_FAILURE_101', '',
             'The request is missing the serverpath parameter', ''],
            plug, {'server': good['server']})
        self.assertXapiError(
            ['SR_BACKEND_FAILURE_102', '',
             'The request is missing the server parameter', ''],
            plug, {'serverpath': good['serverpath']})
        exc = self.assertRaises(XenAPI.Failure, plug,
                                dict(good, serverpath='/exports/other'))
        self.assertEqual('SR_BACKEND_FAILURE_47', exc.details[0])
        self.assertEqual([], api_b.SR.get_PBDs(sr))
        pbd = plug(good)
        self.assertTrue(api_b.PBD.get_currently_attached(pbd))

    def test_device_config_and_bytes_are_shared(self):
        api_b = self.login('pool-b').xenapi
        configs = []
        for api in (self.api, api_b):
            sr = self.sr_named(NFS, api)
            (pbd,) = api.SR.get_PBDs(sr)
            configs.append(api.PBD.get_device_config(pbd))
        self.assertEqual({'server', 'serverpath'}, set(configs[0]))
        self.assertIn('6b1d0c52-4a8e-4d55-9a51-0d8a6c3f2b10',
                      configs[0]['serverpath'])
        self.assertEqual(configs[0], configs[1])
        # Written through pool-a, read through pool-b after a scan.
        vdi = self.create_vdi(self.sr_named(NFS), 2 * MiB)
        data = random.Random(4).randbytes(2 * MiB)
        self.import_vdi(vdi, data)
        api_b.SR.scan(self.sr_named(NFS, api_b))
        vdi_b = api_b.VDI.get_by_uuid(self.api.VDI.get_uuid(vdi))
        self.assertEqual(base.sha256(data),
                         self.checksum(vdi_b, pool='pool-b',
                                       session=self.login('pool-b')))


class TestStop(base.SimulatorTestCase):

    def test_stop_ends_keep_alive_connections(self):
        # The test's session holds one HTTP/1.1 connection open.
        self.api.pool.get_all()
        self.sim.stop()
        self.assertRaises((OSError, http.client.HTTPException,
                           xmlrpc.client.ProtocolError),
                          self.api.pool.get_all)
