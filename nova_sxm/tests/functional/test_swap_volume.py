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

"""Swap volume and multiattach through the real Nova API and compute.

Swap (``PUT /servers/{id}/os-volume_attachments/{old}``, which Nova's API
accepts only from Cinder migrating the volume, and only for an active,
paused or resized server): done by the driver for a halted VM (VDI.copy
into the new VDI, the VBD replaced), refused for a running one with the
server keeping its volume and Cinder told the migration failed. The
halted case is a server whose guest powered itself off before Nova's
power sync noticed. Multiattach: one sharable VDI plugged in two running
servers.

Nova's harness runs a volume detach only on the compute whose host is
CONF.host (the one started last): the tests set it to host1 to detach.
"""

import random

from nova.tests.functional.api import client
from oslo_utils import uuidutils

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import test_volumes
from nova_sxm.virt import volumeops

MiB = base.MiB
GOLD = test_volumes.GOLD
SILVER = test_volumes.SILVER


class SwapVolumeTest(test_volumes.VolumeTestBase):

    def setUp(self):
        super().setUp()
        # The swap API is the service role's (Cinder's) by default.
        self.policy.set_rules(
            {'os_compute_api:os-volumes-attachments:swap': '@'},
            overwrite=False)
        self.data = random.Random(21).randbytes(8 * MiB)
        self.old, self.old_vdi = self.create_volume('pool-a', GOLD, 'gold',
                                                    self.data)
        self.new, self.new_vdi = self.create_volume(
            'pool-a', GOLD, 'gold', bytes(8 * MiB))
        self._attach_volume(self.server, self.old)
        self.x = self.xapi['pool-a']
        self.vm, _ = self.vm_of(self.server, 'pool-a')
        self.before, _, _ = self.volume_vbd('pool-a', self.old)
        # What Cinder's migration of an attached volume does: it asks
        # Nova to swap the volume for the one it created.
        self.cinder.migrating.add(self.old)

    def swap(self):
        self.api.put_server_volume(self.server['id'], self.old, self.new)

    def attached_ids(self):
        return {a['volumeId'] for a in self.api.api_get(
            '/servers/%s/os-volume_attachments' % self.server['id']
        ).body['volumeAttachments']}

    def test_swap_of_a_halted_server_copies_the_bytes(self):
        # The guest powered itself off; Nova still has the server active.
        self.x.VM.clean_shutdown(self.vm)
        self.swap()
        self._wait_for_instance_action_event(
            self.server, 'swap_volume', 'compute_swap_volume', 'success')
        self.assertEqual([(self.old, self.new, False)],
                         self.cinder.completions)
        # Cinder gave the migrated volume the old id: the server's volume
        # keeps its id, its VBD the same device, now on the new VDI.
        self.assertEqual({self.old}, self.attached_ids())
        rec, vdi_uuid, _ = self.volume_vbd('pool-a', self.old)
        self.assertEqual(self.new_vdi, vdi_uuid)
        for key in ('userdevice', 'mode', 'bootable', 'type'):
            self.assertEqual(self.before[key], rec[key], key)
        self.assertEqual(1, len([
            v for v in self.x.VM.get_VBDs(self.vm)
            if self.x.VBD.get_userdevice(v) == rec['userdevice']]))
        # Neither VDI destroyed (the old one is Cinder's to delete); the
        # new one holds the old bytes.
        self.assertEqual(self.data, self.export('pool-a', self.old_vdi))
        self.assertEqual(self.data, self.export('pool-a', self.new_vdi))
        self.assertEqual([], self.x.VDI.get_VBDs(
            self.x.VDI.get_by_uuid(self.old_vdi)))
        # The server starts on the new VDI and lets it go on detach.
        self.x.VM.start(self.vm, False, False)
        rec, _, _ = self.volume_vbd('pool-a', self.old)
        self.assertTrue(rec['currently_attached'])
        self.flags(host='host1')
        self.api.delete_server_volume(self.server['id'], self.old)
        self._wait_for_volume_detach(self.server['id'], self.old)
        self.assertEqual((None, None, None),
                         self.volume_vbd('pool-a', self.old))
        self.assertEqual(self.data, self.export('pool-a', self.new_vdi))

    def test_swap_onto_a_shared_sr_of_another_pool(self):
        # Cinder migrating the volume to the silver backend (pool-c's
        # shared NFS SR), whose new volume is smaller than the old VDI:
        # pool-a introduces the SR and grows the new VDI before the copy.
        new, new_vdi = self.create_volume('pool-c', SILVER, 'silver',
                                          bytes(4 * MiB))
        self.assertFalse(self.knows_sr('pool-a', self.silver_uuid))
        self.x.VM.clean_shutdown(self.vm)
        self.api.put_server_volume(self.server['id'], self.old, new)
        self._wait_for_instance_action_event(
            self.server, 'swap_volume', 'compute_swap_volume', 'success')
        rec, vdi_uuid, sr_uuid = self.volume_vbd('pool-a', self.old)
        self.assertEqual((new_vdi, self.silver_uuid), (vdi_uuid, sr_uuid))
        self.assertEqual(self.data, self.export('pool-c', new_vdi))
        self.assertEqual(self.data, self.export('pool-a', self.old_vdi))
        # The introduced SR goes with the server's last VBD on it.
        self.flags(host='host1')
        self.api.delete_server_volume(self.server['id'], self.old)
        self._wait_for_volume_detach(self.server['id'], self.old)
        self.assertFalse(self.knows_sr('pool-a', self.silver_uuid))

    def test_failed_copy_keeps_the_old_volume(self):
        # XAPI refuses to copy into a read-only VDI (VDI_READONLY).
        session = self._login('pool-a')
        x = session.xenapi
        vdi = x.VDI.create({
            'name_label': 'volume', 'name_description': '',
            'SR': x.SR.get_by_name_label(GOLD)[0],
            'virtual_size': str(8 * MiB), 'type': 'user',
            'sharable': False, 'read_only': True, 'other_config': {},
            'xenstore_data': {}, 'sm_config': {}, 'tags': []})
        new = uuidutils.generate_uuid()
        self.cinder.add_volume(new, session, x.VDI.get_uuid(vdi), 'gold')
        self.x.VM.clean_shutdown(self.vm)
        self.api.put_server_volume(self.server['id'], self.old, new)
        event = self._wait_for_action_fail_completion(
            self.server, 'swap_volume', 'compute_swap_volume')
        self.assertIn('VDI_READONLY', event['details'])
        self.assertEqual([(self.old, new, True)], self.cinder.completions)
        self.assertEqual({self.old}, self.attached_ids())
        rec, vdi_uuid, _ = self.volume_vbd('pool-a', self.old)
        self.assertEqual(self.old_vdi, vdi_uuid)
        self.assertEqual(self.before['userdevice'], rec['userdevice'])
        self.assertEqual(self.data, self.export('pool-a', self.old_vdi))

    def test_swap_of_a_running_server_is_refused(self):
        self.swap()
        event = self._wait_for_action_fail_completion(
            self.server, 'swap_volume', 'compute_swap_volume')
        self.assertIn('XAPI cannot mirror a plugged disk into another VDI '
                      'without moving the VM', event['details'])
        self.assertEqual('Running', self.x.VM.get_power_state(self.vm))
        rec, vdi_uuid, _ = self.volume_vbd('pool-a', self.old)
        self.assertEqual(self.old_vdi, vdi_uuid)
        self.assertTrue(rec['currently_attached'])
        self.assertEqual({self.old}, self.attached_ids())
        self.assertEqual('ACTIVE',
                         self.api.get_server(self.server['id'])['status'])
        # Nova gave the new volume's attachment back to Cinder and told it
        # the migration failed (Cinder then deletes the new volume).
        self.assertFalse(self.cinder.volume_to_attachment[self.new])
        self.assertEqual([(self.old, self.new, True)],
                         self.cinder.completions)
        self.assertEqual(bytes(8 * MiB), self.export('pool-a',
                                                     self.new_vdi))
        self.assertEqual(self.data, self.export('pool-a', self.old_vdi))

    def test_stopped_server_is_refused_by_nova(self):
        self._stop_server(self.server)
        exc = self.assertRaises(client.OpenStackApiException, self.swap)
        self.assertEqual(409, exc.response.status_code)
        self.assertEqual({self.old}, self.attached_ids())
        self.assertEqual(self.old_vdi, self.volume_vbd('pool-a',
                                                       self.old)[1])


class MultiattachTest(test_volumes.VolumeTestBase):

    def setUp(self):
        super().setUp()
        self.other = self._create_server(image_uuid=self.image,
                                         flavor_id=self.flavor,
                                         host='host1', networks='none')
        self.x = self.xapi['pool-a']

    def vbd_of(self, server, vdi_uuid):
        vm, _ = self.vm_of(server, 'pool-a')
        vdi = self.x.VDI.get_by_uuid(vdi_uuid)
        for vbd in self.x.VDI.get_VBDs(vdi):
            if self.x.VBD.get_VM(vbd) == vm:
                return self.x.VBD.get_record(vbd)
        return None

    def test_capability(self):
        driver = self.computes['host1'].driver
        self.assertTrue(driver.capabilities['supports_multiattach'])

    def test_one_volume_in_two_running_servers(self):
        data = random.Random(5).randbytes(4 * MiB)
        vol, vdi_uuid = self.create_volume(
            'pool-a', GOLD, 'gold', data, sharable=True,
            volume_id=self.cinder.MULTIATTACH_VOL)
        self._attach_volume(self.server, vol)
        self._attach_volume(self.other, vol)
        # Nova's API lists an attachment before the compute has plugged it.

        def plugged():
            recs = [self.vbd_of(s, vdi_uuid) for s in (self.server,
                                                       self.other)]
            if all(r and r['currently_attached'] for r in recs):
                return recs
            return None
        for rec in self.poll(plugged, what='both VBDs plugged'):
            self.assertTrue(rec['currently_attached'])
            self.assertEqual('RW', rec['mode'])
            self.assertEqual(vol, rec['other_config'][volumeops.VOLUME_KEY])
        self.flags(host='host1')
        self.api.delete_server_volume(self.server['id'], vol)
        self._wait_for_volume_detach(self.server['id'], vol)
        self.assertIsNone(self.vbd_of(self.server, vdi_uuid))
        self.assertTrue(self.vbd_of(self.other, vdi_uuid)
                        ['currently_attached'])
        self.assertEqual(data, self.export('pool-a', vdi_uuid))

    def test_a_non_sharable_vdi_is_refused_by_name(self):
        vol, vdi_uuid = self.create_volume(
            'pool-a', GOLD, 'gold', bytes(MiB),
            volume_id=self.cinder.MULTIATTACH_VOL)
        self._attach_volume(self.server, vol)
        self.api.post_server_volume(
            self.other['id'], {'volumeAttachment': {'volumeId': vol}})
        event = self._wait_for_action_fail_completion(
            self.other, 'attach_volume', 'compute_attach_volume')
        self.assertIn('is in use by another VM and is not sharable',
                      event['details'])
        self.assertIsNone(self.vbd_of(self.other, vdi_uuid))
        self.assertTrue(self.vbd_of(self.server, vdi_uuid)
                        ['currently_attached'])
