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


"""Connection info for the Nova side, from pool-a and from pool-b."""

import logging
import urllib.request

from cinder.tests.functional.api import client
import fixtures

from cinder_sxm.tests.functional import base
from tests.functional import simhelpers
from xapi_sim import vmbuild

MiB = base.MiB


class TestConnections(base.SxmCinderTestCase):

    def setUp(self):
        super().setUp()
        self.pool_a = self.xapi.pool.get_uuid(self.xapi.pool.get_all()[0])
        self.session_b = self.login('pool-b')
        self.xapi_b = self.session_b.xenapi
        self.pool_b = self.xapi_b.pool.get_uuid(
            self.xapi_b.pool.get_all()[0])
        self.host_b = self.xapi_b.pool.get_master(
            self.xapi_b.pool.get_all()[0])

    def connector(self, pool_uuid, host_name):
        # What nova_sxm's get_volume_connector answers.
        return {'ip': '127.0.0.1', 'host': host_name, 'platform': 'x86_64',
                'os_type': 'linux', 'multipath': False,
                'xapi_pool_uuid': pool_uuid, 'xapi_host_uuid': 'h-uuid',
                'xapi_host_name': host_name}

    def connect(self, volume_id, connector):
        return self.action(volume_id, {'os-initialize_connection': {
            'connector': connector}})['connection_info']

    def test_same_pool_names_the_sr_and_vdi(self):
        vol = self.create_volume('gold')
        vdi, _ = self.vdi_of(vol['id'])
        info = self.connect(vol['id'],
                            self.connector(self.pool_a, 'pool-a-host1'))
        self.assertEqual('xensm', info['driver_volume_type'])
        data = info['data']
        self.assertEqual(self.xapi.VDI.get_uuid(vdi), data['vdi_uuid'])
        self.assertEqual(self.xapi.SR.get_uuid(self.xapi.VDI.get_SR(vdi)),
                         data['sr_uuid'])
        self.assertEqual((self.pool_a, 'lvmoiscsi', False, vol['id']),
                         (data['pool_uuid'], data['sr_type'], data['shared'],
                          data['volume_id']))
        self.assertNotIn('introduce', data)

    def test_other_pool_introduces_the_shared_sr_and_sees_the_bytes(self):
        vol = self.create_volume('silver')
        vdi, _ = self.vdi_of(vol['id'])
        data_written = self.fill(vdi, 2 * MiB, 'shared')
        info = self.connect(vol['id'],
                            self.connector(self.pool_b, 'pool-b-host1'))
        data = info['data']
        intro = data['introduce']
        self.assertEqual(('nfs', True, data['sr_uuid']),
                         (intro['type'], intro['shared'], intro['sr_uuid']))
        # pool-b does what the Nova side does with it.
        sr = self.xapi_b.SR.introduce(intro['sr_uuid'], intro['name_label'],
                                      '', intro['type'],
                                      intro['content_type'], True, {})
        pbd = self.xapi_b.PBD.create({'host': self.host_b, 'SR': sr,
                                      'device_config':
                                          intro['device_config'],
                                      'other_config': {}})
        self.xapi_b.PBD.plug(pbd)
        self.xapi_b.SR.scan(sr)
        vdi_b = self.xapi_b.VDI.get_by_uuid(data['vdi_uuid'])
        self.assertEqual(data_written,
                         self.head(vdi_b, len(data_written), pool='pool-b'))

    def head(self, vdi, nbytes, pool='pool-a'):
        if pool == 'pool-a':
            return super().head(vdi, nbytes)
        url = self._vdi_url('export_raw_vdi', vdi, self.session_b, pool)
        with urllib.request.urlopen(url, timeout=simhelpers.DEADLINE) as r:
            return r.read(nbytes)

    def test_other_pool_is_refused_a_pool_local_volume(self):
        vol = self.create_volume('gold')
        log = self.useFixture(fixtures.FakeLogger(
            name='cinder.volume.manager', level=logging.ERROR))
        self.assertRaises(
            client.OpenStackApiException500, self.connect, vol['id'],
            self.connector(self.pool_b, 'pool-b-host1'))
        # The operator reads what to do, naming the volume and its tier.
        for part in ('Volume %s is on tier gold' % vol['id'], 'lvmoiscsi',
                     self.pool_b, 'Retype the volume to a shared tier'):
            self.assertIn(part, log.output)
        # Nothing changed: the volume is usable from its own pool.
        self.assertEqual('available', self.api.get_volume(vol['id'])[
            'status'])
        self.connect(vol['id'], self.connector(self.pool_a, 'pool-a-host1'))

    def test_force_detach_unplugs_and_removes_the_vbds(self):
        vol = self.create_volume('silver')
        vdi, _ = self.vdi_of(vol['id'])
        vm = self.xapi.VM.create(vmbuild.vm_record('server'))
        vbd = self.xapi.VBD.create(vmbuild.vbd_record(vm, vdi, '1',
                                                      bootable=False))
        self.xapi.VM.start(vm, False, False)
        self.assertTrue(self.xapi.VBD.get_currently_attached(vbd))
        self.action(vol['id'], {'os-reserve': None})
        self.action(vol['id'], {'os-attach': {
            'instance_uuid': self.xapi.VM.get_uuid(vm),
            'mountpoint': '/dev/xvdb'}})
        self.wait_volume(vol['id'], ('attaching',), 'in-use')

        self.action(vol['id'], {'os-force_detach': {}})

        self.wait_volume(vol['id'], ('detaching', 'in-use'), 'available')
        self.assertEqual([], self.xapi.VDI.get_VBDs(vdi))
        self.assertNotIn(vbd, self.xapi.VBD.get_all())
        self.assertEqual('Running', self.xapi.VM.get_power_state(vm))
