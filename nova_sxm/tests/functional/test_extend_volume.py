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

"""Extend of an attached volume, as Cinder does it, through the real Nova
API and compute: Cinder grows the VDI with VDI.resize_online under the
running VM (what cinder_sxm does where the SR's SM offers
VDI_RESIZE_ONLINE), then posts the ``volume-extended`` external event;
nova-compute calls the driver's extend_volume, which checks the server's
disk has the new size. The guest then writes beyond the old end.
"""

import random
import struct
import urllib.parse
import urllib.request

from tests.functional import simhelpers

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import test_volumes

MiB = base.MiB
GiB = 1 << 30
BRONZE = 'Bronze (nfs)'


def extend_topology():
    topo = test_volumes.volume_topology()
    for spec in topo['pools']:
        if spec['name'] == 'pool-a':
            spec['srs'].append({'name': BRONZE, 'type': 'nfs',
                                'size': '16GiB', 'shared': True})
    return topo


class ExtendVolumeTest(test_volumes.VolumeTestBase):

    topology = extend_topology()

    def setUp(self):
        super().setUp()
        # pool-a's NFS SM offers online resize (as a third-party SM).
        simhelpers.offer_online_resize(self.sim, 'pool-a', 'nfs')
        self.data = random.Random(11).randbytes(4 * MiB)
        self.vol, self.vdi_uuid = self.create_volume('pool-a', BRONZE,
                                                     'bronze', self.data)
        self._attach_volume(self.server, self.vol)
        self.x = self.xapi['pool-a']
        self.vdi = self.x.VDI.get_by_uuid(self.vdi_uuid)

    def cinder_extends(self, size_gb, online=True):
        """What Cinder does: grow the VDI, record it, tell Nova."""
        if online:
            self.x.VDI.resize_online(self.vdi, str(size_gb * GiB))
        self.cinder.volumes[self.vol] = {
            'id': self.vol, 'display_name': self.vol, 'size': size_gb,
            'multiattach': False, 'availability_zone': self.cinder.az}
        self.api.api_post('/os-server-external-events', {'events': [
            {'name': 'volume-extended', 'server_uuid': self.server['id'],
             'tag': self.vol}]})

    def head(self, nbytes):
        """The first ``nbytes`` of the volume, from /export_raw_vdi."""
        session = self._login('pool-a')
        query = urllib.parse.urlencode({'session_id': session.handle,
                                        'vdi': self.vdi_uuid})
        url = '%sexport_raw_vdi?%s' % (self.pools.url('pool-a'), query)
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.read(nbytes)

    def test_capability(self):
        driver = self.computes['host1'].driver
        self.assertTrue(driver.capabilities['supports_extend_volume'])

    def test_extended_volume_is_seen_by_the_running_guest(self):
        vm, _ = self.vm_of(self.server, 'pool-a')
        uuid = self.x.VM.get_uuid(vm)
        rec, _, _ = self.volume_vbd('pool-a', self.vol)
        self.cinder_extends(1)
        self._wait_for_instance_action_event(
            self.server, 'extend_volume', 'compute_extend_volume', 'success')
        self.assertEqual(str(GiB), self.x.VDI.get_virtual_size(self.vdi))
        self.assertEqual('Running', self.x.VM.get_power_state(vm))
        # The guest writes all over the 1 GiB disk, beyond the old 4 MiB.
        self.write(uuid, [rec['userdevice']], rate=64 * MiB,
                   ctl=self.ctl['pool-a'])
        self.wait_writes(uuid, more=300, ctl=self.ctl['pool-a'])
        self.stop_and_check(uuid, ctl=self.ctl['pool-a'],
                            devices=[rec['userdevice']], written=True)
        data = self.head(64 * MiB)
        beyond = [at for at in range(4 * MiB, len(data), 4096)
                  if data[at:at + 4] == b'SXMW'
                  and struct.unpack_from('<Q', data, at + 20)[0] == at]
        self.assertTrue(beyond, 'no guest write beyond the old end')

    def test_a_volume_that_did_not_grow_is_reported(self):
        self.cinder_extends(1, online=False)
        event = self._wait_for_action_fail_completion(
            self.server, 'extend_volume', 'compute_extend_volume')
        self.assertIn('holds %d bytes, less than the %d Cinder reports'
                      % (4 * MiB, GiB), event['details'])
        self.assertEqual(str(4 * MiB),
                         self.x.VDI.get_virtual_size(self.vdi))
        self.assertEqual(self.data, self.export('pool-a', self.vdi_uuid))
