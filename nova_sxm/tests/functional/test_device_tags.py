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

"""Device role tags through the real Nova API on the simulator.

A guest finds its tagged NICs (by MAC) and disks (by volume id, with the
xen device numbers of the VBD XAPI has) in ``meta_data.json``
``devices``: in the config drive's bytes and from the metadata service.
"""

import json
import random

from nova.api.metadata import base as metadata_base
from nova.tests.functional.api import client as api_client

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import test_config_drive
from nova_sxm.tests.functional import test_volumes
from nova_sxm.virt import vif as vifmod
from nova_sxm.virt import volumeops
from xapi_sim import pool as simpool

MiB = base.MiB
SILVER = test_volumes.SILVER
META = 'openstack/latest/meta_data.json'


def xvd_number(userdevice):
    """xen-blkfront's device number of an xvd disk (vbd-interface.txt)."""
    return str(202 << 8 | int(userdevice) << 4)


class DeviceTagTest(base.SxmServicesTestCase):

    topology = test_volumes.volume_topology()
    create_volume = test_volumes.VolumeTestBase.create_volume

    def setUp(self):
        super().setUp()
        self.cinder = self.useFixture(test_volumes.XensmCinderFixture(self))
        self.storage = self._login('pool-c')
        self.xapi['pool-c'] = self.storage.xenapi
        self.image = self.make_image(random.Random(41).randbytes(MiB))
        self.flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                          ephemeral=0)
        self.port1 = self.neutron.port_1
        self.port2 = self.neutron.port_2
        self.neutron.create_port({'port': self.port2})

    def boot(self, networks, bdms=(), host='host1', **extra):
        body = self._build_server(image_uuid=self.image,
                                  flavor_id=self.flavor, host=host,
                                  networks=networks)
        if bdms:
            body['block_device_mapping_v2'] = [
                {'boot_index': 0, 'uuid': self.image,
                 'source_type': 'image', 'destination_type': 'local'}
            ] + list(bdms)
        body.update(extra)
        server = self.api.post_server({'server': body})
        return self._wait_for_state_change(server, 'ACTIVE')

    def served(self, server):
        """meta_data.json ``devices`` as the metadata service serves it."""
        md = metadata_base.get_metadata_by_instance_id(server['id'],
                                                       '10.0.0.1')
        return json.loads(md.lookup('/' + META))['devices']

    def on_drive(self, server):
        """meta_data.json ``devices`` read from the config drive's VDI."""
        vm, _ = self.vm_of(server, 'pool-a')
        drive = self.disks_of(vm, 'pool-a')['3']
        _, raw = test_config_drive.iso_read(
            self.export('pool-a', drive['uuid']), META)
        return json.loads(raw)['devices']

    def pool_of(self, server):
        found = self.api.get_server(server['id'])
        return base.HOSTS[found['OS-EXT-SRV-ATTR:host']]

    def xapi_vif(self, server, port_id):
        pool = self.pool_of(server)
        x = self.xapi[pool]
        vm, _ = self.vm_of(server, pool)
        for ref in x.VM.get_VIFs(vm):
            rec = x.VIF.get_record(ref)
            if rec['other_config'].get(vifmod.PORT_KEY) == port_id:
                return rec
        return None

    def xapi_vbd(self, server, volume_id):
        pool = self.pool_of(server)
        x = self.xapi[pool]
        vm, _ = self.vm_of(server, pool)
        for ref in x.VM.get_VBDs(vm):
            rec = x.VBD.get_record(ref)
            if rec['other_config'].get(volumeops.VOLUME_KEY) == volume_id:
                return rec
        return None

    @staticmethod
    def nics(devices):
        return {d['mac']: d for d in devices if d['type'] == 'nic'}

    @staticmethod
    def disks(devices, serial):
        return [d for d in devices
                if d['type'] == 'disk' and d.get('serial') == serial]

    def check_disk(self, devices, server, volume_id, tag):
        """The volume's entries name the device of its VBD in XAPI."""
        vbd = self.xapi_vbd(server, volume_id)
        self.assertIsNotNone(vbd, 'volume %s has no VBD' % volume_id)
        found = self.disks(devices, volume_id)
        self.assertTrue(found, 'no disk entry for volume %s' % volume_id)
        self.assertEqual({(tag,)}, {tuple(d['tags']) for d in found})
        number = xvd_number(vbd['userdevice'])
        self.assertIn(('xen', number, '/sys/devices/vbd-' + number),
                      [(d['bus'], d['address'], d.get('path'))
                       for d in found])

    def test_boot_tags_reach_the_config_drive(self):
        vol, _ = self.create_volume('pool-c', SILVER, 'silver',
                                    random.Random(42).randbytes(MiB))
        server = self.boot(
            [{'port': self.port1['id'], 'tag': 'frontend'},
             {'port': self.port2['id']}],
            bdms=[{'uuid': vol, 'source_type': 'volume',
                   'destination_type': 'volume', 'tag': 'database'}],
            config_drive=True)
        devices = self.on_drive(server)
        # The tagged NIC, by the MAC its XAPI VIF has; the untagged one
        # is not listed.
        vif = self.xapi_vif(server, self.port1['id'])
        self.assertEqual(self.port1['mac_address'], vif['MAC'])
        nics = self.nics(devices)
        self.assertEqual([vif['MAC']], list(nics))
        self.assertEqual((['frontend'], 'pci'),
                         (nics[vif['MAC']]['tags'],
                          nics[vif['MAC']]['bus']))
        self.assertIsNotNone(self.xapi_vif(server, self.port2['id']))
        # The tagged volume, at the device XAPI attached it to.
        self.check_disk(devices, server, vol, 'database')
        self.assertEqual({'nic', 'disk'}, {d['type'] for d in devices})
        # The metadata service serves the same list.
        self.assertEqual(devices, self.served(server))

    def test_tagged_attach_and_detach(self):
        # On host2: Nova's functional harness runs a volume detach only on
        # the compute started last (CONF.host).
        server = self.boot([{'port': self.port1['id']}], host='host2')
        self.assertEqual([], self.served(server))
        vol, _ = self.create_volume('pool-c', SILVER, 'silver',
                                    random.Random(43).randbytes(MiB))
        self.api.post_server_volume(server['id'], {'volumeAttachment': {
            'volumeId': vol, 'tag': 'scratch'}})
        self._wait_for_volume_attach(server['id'], vol)
        self.poll(lambda: self.disks(self.served(server), vol),
                  what='the tagged volume in the metadata')
        self.assertTrue(self.xapi_vbd(server, vol)['currently_attached'])
        self.check_disk(self.served(server), server, vol, 'scratch')

        self.api.attach_interface(server['id'], {'interfaceAttachment': {
            'port_id': self.port2['id'], 'tag': 'backend'}})
        vif = self.xapi_vif(server, self.port2['id'])
        self.assertTrue(vif['currently_attached'])
        nics = self.poll(lambda: self.nics(self.served(server)) or None,
                         what='the tagged interface in the metadata')
        self.assertEqual({vif['MAC']: ['backend']},
                         {mac: d['tags'] for mac, d in nics.items()})
        self.assertEqual(self.port2['mac_address'], vif['MAC'])

        # Detach: the entries go with the devices, the others stay.
        self.api.delete_server_volume(server['id'], vol)
        self._wait_for_volume_detach(server['id'], vol)
        self.poll(lambda: not self.disks(self.served(server), vol),
                  what='the detached volume to leave the metadata')
        self.assertIsNone(self.xapi_vbd(server, vol))
        self.assertEqual([vif['MAC']], list(self.nics(self.served(server))))

        self.api.detach_interface(server['id'], self.port2['id'])
        self.poll(lambda: self.served(server) == [],
                  what='the detached interface to leave the metadata')
        self.assertIsNone(self.xapi_vif(server, self.port2['id']))
        self.assertEqual('ACTIVE', self.api.get_server(
            server['id'])['status'])

    def test_refused_tagged_attach_leaves_no_entry(self):
        # A guest without PV drivers refuses the hotplug: no VIF, no
        # metadata entry, the port is not the server's.
        server = self.boot([{'port': self.port1['id'], 'tag': 'first'}])
        _, rec = self.vm_of(server, 'pool-a')
        self.sim.guest_agents[rec['uuid']] = simpool.guest_agent_profile(
            pv_drivers=False)
        server = self._reboot_server(server, hard=True)
        self.assertRaises(
            api_client.OpenStackApiException, self.api.attach_interface,
            server['id'], {'interfaceAttachment': {
                'port_id': self.port2['id'], 'tag': 'second'}})
        self.assertIsNone(self.xapi_vif(server, self.port2['id']))
        self.assertEqual({self.port1['mac_address']: ['first']},
                         {mac: d['tags'] for mac, d in
                          self.nics(self.served(server)).items()})

    def test_rebuild_keeps_the_tags_on_its_new_drive(self):
        server = self.boot([{'port': self.port1['id'], 'tag': 'frontend'}],
                           config_drive=True)
        vm, _ = self.vm_of(server, 'pool-a')
        old_drive = self.disks_of(vm, 'pool-a')['3']['uuid']
        image = self.make_image(random.Random(44).randbytes(MiB),
                                name='other')
        server = self._rebuild_server(server, image)
        vm, _ = self.vm_of(server, 'pool-a')
        self.assertNotEqual(old_drive, self.disks_of(vm, 'pool-a')['3'][
            'uuid'])
        devices = self.on_drive(server)
        self.assertEqual({self.port1['mac_address']: ['frontend']},
                         {mac: d['tags'] for mac, d in
                          self.nics(devices).items()})
        self.assertEqual(devices, self.served(server))

    def test_failed_live_migration_keeps_the_volume_tag(self):
        # The rollback drops the destination's connection to the volume
        # (the driver's detach_volume there): the server keeps the volume,
        # and its tag.
        server = self.boot([{'port': self.port1['id']}])
        vol, _ = self.create_volume('pool-c', SILVER, 'silver',
                                    random.Random(45).randbytes(4 * MiB))
        self.api.post_server_volume(server['id'], {'volumeAttachment': {
            'volumeId': vol, 'tag': 'kept'}})
        self._wait_for_volume_attach(server['id'], vol)
        self.poll(lambda: self.disks(self.served(server), vol),
                  what='the tagged volume in the metadata')
        before = self.served(server)
        self.ctl['pool-a'].configure(bandwidth=4 * MiB)
        self.ctl['pool-a'].fault_inject('mirror', percent=50)
        earlier = self.migration_ids(server)
        self.api.post_server_action(server['id'], {
            'os-migrateLive': {'host': 'host2', 'block_migration': True}})
        self.wait_migration(server, ['error'], ignore=earlier)
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assertTrue(self.xapi_vbd(server, vol)['currently_attached'])
        self.check_disk(self.served(server), server, vol, 'kept')
        self.assertEqual(before, self.served(server))
