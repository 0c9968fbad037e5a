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

"""Rebuild through the real Nova API on the simulator.

Nova's default rebuild (the driver's destroy, then spawn) gives the server
a root disk from the new image and keeps its volumes (same VDI, same
bytes) and its ports (same MACs).
"""

import hashlib
import random
import urllib.parse
import urllib.request

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import test_volumes

MiB = base.MiB
SILVER = test_volumes.SILVER


class ReimagingCinderFixture(test_volumes.XensmCinderFixture):
    """Cinder's reimage as cinder_sxm does it: the image into the VDI.

    Then Cinder tells Nova (the ``volume-reimaged`` external event).
    """

    def __init__(self, test):
        super().__init__(test)
        self.reimaged = []

    def fake_reimage_volume(self, context, volume_id, image_id,
                            reimage_reserved=False):
        test = self.test
        if not reimage_reserved:
            raise AssertionError('reimage_reserved not set')
        session, _, vdi_uuid, _ = self.backends[volume_id]
        query = urllib.parse.urlencode({'session_id': session.handle,
                                        'vdi': vdi_uuid})
        req = urllib.request.Request(
            '%simport_raw_vdi?%s' % (test.pools.url('pool-c'), query),
            data=test.image_data[image_id], method='PUT')
        with urllib.request.urlopen(req, timeout=30):
            pass
        self.volumes[volume_id]['volume_image_metadata'][
            'image_id'] = image_id
        self.reimaged.append((volume_id, image_id))
        server = [a['instance_uuid'] for a in
                  self.volume_to_attachment[volume_id].values()][0]
        test.admin_api.api_post('/os-server-external-events', {'events': [
            {'name': 'volume-reimaged', 'server_uuid': server,
             'tag': volume_id, 'status': 'completed'}]})


class RebuildTest(base.SxmServicesTestCase):

    topology = test_volumes.volume_topology()

    create_volume = test_volumes.VolumeTestBase.create_volume
    volume_vbd = test_volumes.VolumeTestBase.volume_vbd

    def setUp(self):
        super().setUp()
        self.cinder = self.useFixture(ReimagingCinderFixture(self))
        self.storage = self._login('pool-c')
        self.xapi['pool-c'] = self.storage.xenapi
        self.data = random.Random(41).randbytes(2 * MiB)
        self.new_data = random.Random(42).randbytes(3 * MiB + 512)
        self.image = self.make_image(self.data)
        self.new_image = self.make_image(self.new_data, name='new-image')
        self.image_data = {self.image: self.data,
                           self.new_image: self.new_data}
        self.flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                          ephemeral=1)
        self.api_a = self.xapi['pool-a']

    def vifs(self, vm):
        return sorted((rec['other_config']['neutron-port-id'], rec['MAC'])
                      for rec in (self.api_a.VIF.get_record(v)
                                  for v in self.api_a.VM.get_VIFs(vm)))

    def test_rebuild_keeps_volumes_and_ports(self):
        self.server = self._create_server(
            image_uuid=self.image, flavor_id=self.flavor, host='host1',
            networks=[{'port': self.neutron.port_1['id']}])
        vol, vdi_uuid = self.create_volume(
            'pool-c', SILVER, 'silver', random.Random(43).randbytes(4 * MiB))
        self._attach_volume(self.server, vol)
        vm, rec = self.vm_of(self.server, 'pool-a')
        # The guest writes to its root and to the volume: the checker
        # knows what the volume must hold.
        self.write(rec['uuid'], ('0', '1'), rate=64 * 1024, seed=8,
                   ctl=self.ctl['pool-a'])
        self.wait_writes(rec['uuid'], 5, ctl=self.ctl['pool-a'])
        self.stop_and_check(rec['uuid'], ctl=self.ctl['pool-a'],
                            devices=('0', '1'))
        volume_digest = self.export_digest('pool-a', vdi_uuid)
        old_disks = {d['uuid'] for d in self.disks_of(vm, 'pool-a').values()
                     if d['uuid'] != vdi_uuid}
        vifs = self.vifs(vm)
        self.assertEqual([(self.neutron.port_1['id'],
                           self.neutron.port_1['mac_address'])], vifs)

        server = self._rebuild_server(self.server, self.new_image)
        self.assertEqual(self.new_image, server['image']['id'])
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        new_vm, new_rec = self.vm_of(self.server, 'pool-a')
        self.assertEqual('Running', new_rec['power_state'])
        # A new root from the new image; the old disks are gone.
        disks = self.disks_of(new_vm, 'pool-a')
        self.assertEqual({'0', '1', '4'}, set(disks))
        self.assertEqual(self.new_data, self.export(
            'pool-a', disks['0']['uuid'])[:len(self.new_data)])
        left = {self.api_a.VDI.get_uuid(v) for v in self.api_a.VDI.get_all()}
        self.assertEqual(set(), old_disks & left)
        # The volume: the same VDI, attached, every byte as it was.
        vbd, got_vdi, _ = self.volume_vbd('pool-a', vol)
        self.assertEqual(vdi_uuid, got_vdi)
        self.assertTrue(vbd['currently_attached'])
        self.assertEqual(volume_digest,
                         self.export_digest('pool-a', vdi_uuid))
        # The port: the same VIF MAC on the same port.
        self.assertEqual(vifs, self.vifs(new_vm))
        attachments = self.api.get_server_volumes(self.server['id'])
        self.assertEqual([vol], [a['volumeId'] for a in attachments])
        # The rebuilt guest writes to its disks, checked.
        self.write(new_rec['uuid'], ('0', '1'), rate=64 * 1024, seed=9,
                   ctl=self.ctl['pool-a'])
        self.wait_writes(new_rec['uuid'], 5, ctl=self.ctl['pool-a'])
        self.stop_and_check(new_rec['uuid'], ctl=self.ctl['pool-a'],
                            devices=('0', '1'))

    def test_rebuild_with_a_config_drive_makes_a_new_one(self):
        body = self._build_server(
            image_uuid=self.image, flavor_id=self.flavor, host='host1',
            networks='none')
        body['config_drive'] = True
        self.server = self._wait_for_state_change(
            self.api.post_server({'server': body}), 'ACTIVE')
        vm, _ = self.vm_of(self.server, 'pool-a')
        old = self.disks_of(vm, 'pool-a')['3']['uuid']
        self._rebuild_server(self.server, self.new_image)
        vm, _ = self.vm_of(self.server, 'pool-a')
        disks = self.disks_of(vm, 'pool-a')
        self.assertEqual({'0', '3', '4'}, set(disks))
        self.assertNotEqual(old, disks['3']['uuid'])
        self.assertNotIn(old, {self.api_a.VDI.get_uuid(v)
                               for v in self.api_a.VDI.get_all()})
        self.assertEqual(hashlib.sha256(self.new_data).hexdigest(),
                         hashlib.sha256(self.export(
                             'pool-a', disks['0']['uuid'])[
                                 :len(self.new_data)]).hexdigest())

    def test_rebuild_volume_backed_reimages_the_boot_volume(self):
        # Room for the new image, as Cinder requires.
        vol, vdi_uuid = self.create_volume('pool-c', SILVER, 'silver',
                                           self.data + bytes(2 * MiB))
        self.cinder.volumes[vol] = {
            'id': vol, 'display_name': 'boot', 'display_description': '',
            'size': 1, 'multiattach': False, 'availability_zone': 'nova',
            'bootable': True,
            'volume_image_metadata': {
                'image_id': self.image, 'disk_format': 'raw',
                'container_format': 'bare', 'min_disk': '0',
                'min_ram': '0', 'size': str(len(self.data))}}
        body = self._build_server(image_uuid='', flavor_id=self.flavor,
                                  networks=[{'port':
                                             self.neutron.port_1['id']}],
                                  host='host1')
        body['block_device_mapping_v2'] = [{
            'boot_index': 0, 'uuid': vol, 'source_type': 'volume',
            'destination_type': 'volume'}]
        self.server = self._wait_for_state_change(
            self.admin_api.post_server({'server': body}), 'ACTIVE')
        vm, _ = self.vm_of(self.server, 'pool-a')
        vifs = self.vifs(vm)
        ephemeral = self.disks_of(vm, 'pool-a')['4']['uuid']

        self._rebuild_server(self.server, self.new_image)
        self.assertEqual([(vol, self.new_image)], self.cinder.reimaged)
        vm, rec = self.vm_of(self.server, 'pool-a')
        self.assertEqual('Running', rec['power_state'])
        disks = self.disks_of(vm, 'pool-a')
        # The same volume boots, now holding the new image's bytes.
        self.assertEqual(vdi_uuid, disks['0']['uuid'])
        self.assertEqual(self.new_data, self.export(
            'pool-a', vdi_uuid)[:len(self.new_data)])
        self.assertNotEqual(ephemeral, disks['4']['uuid'])
        self.assertNotIn(ephemeral, {self.api_a.VDI.get_uuid(v)
                                     for v in self.api_a.VDI.get_all()})
        self.assertEqual(vifs, self.vifs(vm))
