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

"""Servers booted from an xensm volume, through the real Nova API.

The volume is a VDI holding an image's bytes on *silver*, the shared NFS
SR of ``pool-c`` (a storage pool without nova-compute) that the computes'
pools introduce; Nova's Cinder fixture hands out ``sxm_core.attach``'s
connection info for it (``test_volumes.XensmCinderFixture``).
"""

import hashlib
import random

from nova import context as nova_context
from nova import objects
from oslo_serialization import jsonutils

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import test_volumes
from nova_sxm.virt import volumeops

MiB = base.MiB
SILVER = test_volumes.SILVER


class BootFromVolumeTest(base.SxmServicesTestCase):

    topology = test_volumes.volume_topology()

    create_volume = test_volumes.VolumeTestBase.create_volume
    knows_sr = test_volumes.VolumeTestBase.knows_sr

    def setUp(self):
        super().setUp()
        self.cinder = self.useFixture(test_volumes.XensmCinderFixture(self))
        self.storage = self._login('pool-c')
        self.xapi['pool-c'] = self.storage.xenapi
        self.silver_uuid = self.sr_uuid('pool-c', SILVER)
        self.data = random.Random(21).randbytes(4 * MiB + 512)
        self.image = self.make_image(self.data)
        # Swap (userdevice 2) and ephemeral (4) stay the driver's own.
        self.flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                          ephemeral=1, swap=64)

    def volume_from_image(self, data=None, seed=None):
        """A bootable volume holding ``data`` (the image's bytes)."""
        if data is None:
            data = self.data if seed is None else \
                random.Random(seed).randbytes(2 * MiB)
        vol, vdi_uuid = self.create_volume('pool-c', SILVER, 'silver', data)
        # What Cinder says of a volume created from an image.
        self.cinder.volumes[vol] = {
            'id': vol, 'display_name': 'volume-from-image',
            'display_description': '', 'size': 1,
            'multiattach': False, 'availability_zone': 'nova',
            'bootable': True,
            'volume_image_metadata': {
                'image_id': self.image, 'disk_format': 'raw',
                'container_format': 'bare', 'min_disk': '0',
                'min_ram': '0', 'size': str(len(data))}}
        return vol, vdi_uuid, hashlib.sha256(data).hexdigest()

    def boot(self, bdms, expected_state='ACTIVE'):
        body = self._build_server(image_uuid='', flavor_id=self.flavor,
                                  networks='none', host='host1')
        body['block_device_mapping_v2'] = bdms
        server = self.admin_api.post_server({'server': body})
        return self._wait_for_state_change(server, expected_state)

    @staticmethod
    def root_bdm(vol, **extra):
        return dict({'boot_index': 0, 'uuid': vol, 'source_type': 'volume',
                     'destination_type': 'volume'}, **extra)

    def own_vdis(self, pool='pool-a'):
        """VDI uuids on the pool's own SRs (not an introduced volume SR)."""
        api = self.xapi[pool]
        return {rec['uuid'] for rec in api.VDI.get_all_records().values()
                if api.SR.get_uuid(rec['SR']) != self.silver_uuid}

    def vbds(self, vm, pool='pool-a'):
        api = self.xapi[pool]
        return {rec['userdevice']: rec for rec in
                (api.VBD.get_record(v) for v in api.VM.get_VBDs(vm))}

    def fault(self, server):
        return self.admin_api.get_server(server['id']).get(
            'fault', {}).get('message', '')

    def test_boot_power_snapshot_and_delete_keep_the_volume(self):
        vol, vdi_uuid, digest = self.volume_from_image()
        before = self.own_vdis()
        server = self.boot([self.root_bdm(vol)])
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        api = self.xapi['pool-a']
        vm, rec = self.vm_of(server, 'pool-a')
        self.assertEqual('Running', rec['power_state'])
        # The volume's VDI is the root disk: userdevice 0, bootable, found
        # as the volume by its VBD; no root disk was made from an image.
        vbds = self.vbds(vm)
        self.assertEqual({'0', '2', '4'}, set(vbds))
        root = vbds['0']
        self.assertEqual(vdi_uuid, api.VDI.get_uuid(root['VDI']))
        self.assertTrue(root['bootable'])
        self.assertTrue(root['currently_attached'])
        self.assertEqual(vol, root['other_config'][volumeops.VOLUME_KEY])
        self.assertEqual(self.silver_uuid,
                         api.SR.get_uuid(api.VDI.get_SR(root['VDI'])))
        disks = self.disks_of(vm, 'pool-a')
        self.assertEqual(
            {'2': 'swap', '4': 'ephemeral'},
            {dev: disks[dev]['other_config'].get('nova_disk')
             for dev in ('2', '4')})
        self.assertEqual({'2': False, '4': False},
                         {dev: vbds[dev]['bootable'] for dev in ('2', '4')})
        self.assertEqual({disks['2']['uuid'], disks['4']['uuid']},
                         self.own_vdis() - before)
        # The guest's first disk holds the image's bytes.
        vm_uuid = rec['uuid']
        self.assertEqual(digest,
                         self.ctl['pool-a'].vm_digests(vm_uuid)['0'])

        # Power operations and reboots keep the volume as the root disk.
        self._stop_server(server)
        self.assertEqual('Halted', api.VM.get_power_state(vm))
        self._start_server(server)
        domid = api.VM.get_domid(vm)
        self._reboot_server(server, hard=True)
        self.assertEqual('Running', api.VM.get_power_state(vm))
        self.assertNotEqual(domid, api.VM.get_domid(vm))
        self.assertEqual(vdi_uuid, api.VDI.get_uuid(self.vbds(vm)['0'][
            'VDI']))

        # The guest writes to its root disk: the bytes land on the volume.
        self.write(vm_uuid, ('0',), rate=64 * 1024, seed=5,
                   ctl=self.ctl['pool-a'])
        self.wait_writes(vm_uuid, 5, ctl=self.ctl['pool-a'])
        self.stop_and_check(vm_uuid, ctl=self.ctl['pool-a'],
                            devices=('0',))
        written = self.export_digest('pool-c', vdi_uuid)
        self.assertNotEqual(digest, written)
        self.assertEqual(written, self.export_digest('pool-a', vdi_uuid))

        # Nova snapshots a volume-backed server through Cinder, never
        # through the driver: the guest keeps running, no VDI is made.
        vdis = set(api.VDI.get_all())
        self.api.post_server_action(server['id'],
                                    {'createImage': {'name': 'bfv-snap'}})
        self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None})
        self.assertEqual('Running', api.VM.get_power_state(vm))
        self.assertEqual(vdis, set(api.VDI.get_all()))

        # The volume is not one of the instance's own disks (what a live
        # migration copies).
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), server['id'])
        disk_info = jsonutils.loads(self.computes['host1'].manager.driver
                                    .get_instance_disk_info(instance))
        self.assertEqual(['2', '4'],
                         sorted(d['userdevice'] for d in disk_info))

        # Delete: the VM and its own disks go; the volume's VDI stays,
        # bytes and all, and pool-a forgets the SR it introduced.
        self._delete_server(server)
        self.assertEqual((None, None), self.vm_of(server, 'pool-a'))
        self.assertEqual(before, self.own_vdis())
        self.assertFalse(self.knows_sr('pool-a', self.silver_uuid))
        self.assertEqual(written, self.export_digest('pool-c', vdi_uuid))

    def test_failed_attach_removes_the_vm_and_keeps_the_volumes(self):
        vol, vdi_uuid, digest = self.volume_from_image()
        data_vol, data_vdi, data_digest = self.volume_from_image(seed=22)
        before = self.own_vdis()
        vms = set(self.xapi['pool-a'].VM.get_all())
        # The root volume attaches; the data volume asked for /dev/vde,
        # the driver's ephemeral disk (userdevice 4): XAPI refuses
        # DEVICE_ALREADY_EXISTS after the VM, its disks and the root
        # volume's VBD exist.
        server = self.boot(
            [self.root_bdm(vol),
             {'boot_index': -1, 'uuid': data_vol, 'source_type': 'volume',
              'destination_type': 'volume', 'device_name': '/dev/vde'}],
            expected_state='ERROR')
        # It failed where it should have: at the data volume's VBD.
        self.assertIn("DEVICE_ALREADY_EXISTS", self.stdlog.logger.output)
        self.assertEqual((None, None), self.vm_of(server, 'pool-a'))
        self.assertEqual(vms, set(self.xapi['pool-a'].VM.get_all()))
        self.assertEqual(before, self.own_vdis())
        # Volumes are detached, never destroyed; the SR introduced for
        # them is forgotten again.
        self.assertFalse(self.knows_sr('pool-a', self.silver_uuid))
        self.assertEqual(digest, self.export_digest('pool-c', vdi_uuid))
        self.assertEqual(data_digest,
                         self.export_digest('pool-c', data_vdi))

    def test_boot_volume_on_another_device_is_refused_by_name(self):
        vol, vdi_uuid, digest = self.volume_from_image()
        before = self.own_vdis()
        server = self.boot([self.root_bdm(vol, device_name='/dev/vdb')],
                           expected_state='ERROR')
        fault = self.fault(server)
        self.assertIn('boot volume %s is mapped to device /dev/vdb' % vol,
                      fault)
        self.assertIn('userdevice 0', fault)
        # Refused before anything was built or introduced.
        self.assertEqual((None, None), self.vm_of(server, 'pool-a'))
        self.assertEqual(before, self.own_vdis())
        self.assertFalse(self.knows_sr('pool-a', self.silver_uuid))
        self.assertEqual(digest, self.export_digest('pool-c', vdi_uuid))

    def test_live_migration_leaves_the_root_volume_on_its_sr(self):
        vol, vdi_uuid, digest = self.volume_from_image()
        server = self.boot([self.root_bdm(vol)])
        vm_uuid = self.vm_of(server, 'pool-a')[1]['uuid']
        x_b = self.xapi['pool-b']
        b_vdis = set(x_b.VDI.get_all())
        self.write(vm_uuid, ('0', '4'), rate=64 * 1024, seed=9,
                   ctl=self.ctl['pool-a'])
        self.wait_writes(vm_uuid, 5, ctl=self.ctl['pool-a'])

        server = self.live_migrate(server)
        # The volume is still the bootable root disk, the same VDI on the
        # same SR, which pool-b introduced: nothing was copied for it.
        vm, _ = self.vm_of(server, 'pool-b')
        root = self.vbds(vm, 'pool-b')['0']
        self.assertEqual(vdi_uuid, x_b.VDI.get_uuid(root['VDI']))
        self.assertTrue(root['bootable'])
        self.assertTrue(root['currently_attached'])
        self.assertEqual(self.silver_uuid,
                         x_b.SR.get_uuid(x_b.VDI.get_SR(root['VDI'])))
        copied = [x_b.VDI.get_uuid(v) for v in set(x_b.VDI.get_all())
                  - b_vdis if x_b.VDI.get_SR(v) == x_b.VDI.get_SR(
                      root['VDI']) and v != root['VDI']]
        self.assertEqual([], copied)
        # Every byte the guest wrote, before and during the move.
        self.stop_and_check(vm_uuid, ctl=self.ctl['pool-b'],
                            devices=('0', '4'), written=True)
        self.assertFalse(self.knows_sr('pool-a', self.silver_uuid))
        written = self.export_digest('pool-c', vdi_uuid)
        self.assertNotEqual(digest, written)

        self._delete_server(server)
        self.assertEqual((None, None), self.vm_of(server, 'pool-b'))
        self.assertFalse(self.knows_sr('pool-b', self.silver_uuid))
        self.assertEqual(written, self.export_digest('pool-c', vdi_uuid))

    def test_shelve_offload_and_unshelve(self):
        # Nova offloads a volume-backed server at once (no image): the
        # driver's destroy, then a new spawn from the same volume.
        vol, vdi_uuid, digest = self.volume_from_image()
        server = self.boot([self.root_bdm(vol)])
        self.api.post_server_action(server['id'], {'shelve': None})
        self._wait_for_state_change(server, 'SHELVED_OFFLOADED')
        for pool in ('pool-a', 'pool-b'):
            self.assertEqual((None, None), self.vm_of(server, pool))
            self.assertFalse(self.knows_sr(pool, self.silver_uuid))
        self.assertEqual(digest, self.export_digest('pool-c', vdi_uuid))

        self.api.post_server_action(server['id'], {'unshelve': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        pool = base.HOSTS[server['OS-EXT-SRV-ATTR:host']]
        vm, rec = self.vm_of(server, pool)
        self.assertEqual('Running', rec['power_state'])
        root = self.vbds(vm, pool)['0']
        self.assertEqual(vdi_uuid,
                         self.xapi[pool].VDI.get_uuid(root['VDI']))
        self.assertTrue(root['bootable'])
        self.assertEqual(digest,
                         self.ctl[pool].vm_digests(rec['uuid'])['0'])
