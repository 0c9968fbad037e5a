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

"""Servers on the SXM driver through the real Nova API."""

import random
import tempfile

from nova import context as nova_context
from nova import exception
from nova import objects

from nova_sxm.tests.functional import base
from nova_sxm.virt import images
from nova_sxm.virt import vmops

EXT = 'Local storage (ext)'
LVM = 'Local storage (lvm)'
NFS = 'Shared NFS'


class ServerLifecycleTest(base.SxmServicesTestCase):

    def _boot(self, image_data, host='host1', ephemeral=1, **flavor):
        image = self.make_image(image_data)
        flavor_id = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                        ephemeral=ephemeral, **flavor)
        server = self._create_server(
            image_uuid=image, flavor_id=flavor_id, host=host,
            networks=[{'port': self.neutron.port_1['id']}])
        return server

    def test_boot_and_delete(self):
        data = random.Random(1).randbytes(3 * base.MiB + 512)
        server = self._boot(data)
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        vm, rec = self.vm_of(server, 'pool-a')
        self.assertIsNotNone(vm)
        self.assertEqual('Running', rec['power_state'])
        self.assertEqual((None, None), self.vm_of(server, 'pool-b'))
        self.assertEqual('256', str(int(rec['memory_static_max'])
                                    // base.MiB))
        disks = self.disks_of(vm, 'pool-a')
        self.assertEqual({'0', '4'}, set(disks))
        default_sr = self.sr_uuid('pool-a', EXT)
        api = self.xapi['pool-a']
        for disk in disks.values():
            self.assertEqual(default_sr, api.SR.get_uuid(disk['SR']))
        self.assertEqual(str(1 << 30), disks['0']['virtual_size'])
        self.assertEqual(str(1 << 30), disks['4']['virtual_size'])
        # The image's bytes are the start of the root disk.
        root = self.export('pool-a', disks['0']['uuid'])
        self.assertEqual(data, root[:len(data)])
        self.assertEqual(bytes(1024), root[len(data):len(data) + 1024])
        vifs = [api.VIF.get_record(v) for v in api.VM.get_VIFs(vm)]
        self.assertEqual([self.neutron.port_1['id']],
                         [v['other_config']['neutron-port-id']
                          for v in vifs])
        self.assertEqual([self.neutron.port_1['mac_address']],
                         [v['MAC'] for v in vifs])
        self.assertEqual('xenbr0', api.network.get_bridge(vifs[0]['network']))
        vdis = {d['uuid'] for d in disks.values()}

        self._delete_server(server)
        self.assertEqual((None, None), self.vm_of(server, 'pool-a'))
        left = {api.VDI.get_uuid(v) for v in api.VDI.get_all()}
        self.assertEqual(set(), vdis & left)


def two_host_topology():
    """pool-b gets a second host and a shared NFS SR both hosts reach."""
    topo = base.simhelpers.topology_with(
        {'pool-b': [{'name': NFS, 'type': 'nfs', 'size': '64GiB',
                     'shared': True}]})
    topo['pools'][1]['hosts'].append({'name': 'pool-b-host2'})
    return topo


class HostAndSrChoiceTest(ServerLifecycleTest):
    """host_name and sr_matching_filter pick the host and the SR."""

    topology = two_host_topology()

    def test_boot_and_delete(self):
        # host3 manages pool-b's second host; its disks go to the NFS SR.
        self.start_sxm_compute('host3', 'pool-b', host_name='pool-b-host2',
                               sr_matching_filter='name-label:' + NFS)
        server = self._boot(b'x' * 4096, host='host3', ephemeral=0)
        vm, rec = self.vm_of(server, 'pool-b')
        api = self.xapi['pool-b']
        self.assertEqual('pool-b-host2',
                         api.host.get_name_label(rec['resident_on']))
        disks = self.disks_of(vm, 'pool-b')
        self.assertEqual(self.sr_uuid('pool-b', NFS),
                         api.SR.get_uuid(disks['0']['SR']))
        hypervisors = self.admin_api.api_get(
            '/os-hypervisors/detail').body['hypervisors']
        by_name = {h['hypervisor_hostname']: h for h in hypervisors}
        self.assertEqual({'pool-a-host1', 'pool-b-host1', 'pool-b-host2'},
                         set(by_name))
        self.assertEqual('host3', by_name['pool-b-host2']['service']['host'])
        self._delete_server(server)
        self.assertEqual((None, None), self.vm_of(server, 'pool-b'))


class ServerActionsTest(base.SxmServicesTestCase):
    """Power, pause, suspend, reboot and snapshot reach XAPI."""

    def setUp(self):
        super().setUp()
        self.data = random.Random(2).randbytes(2 * base.MiB)
        image = self.make_image(self.data)
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=0)
        self.server = self._create_server(image_uuid=image,
                                          flavor_id=flavor, host='host1',
                                          networks='none')
        self.vm, _ = self.vm_of(self.server, 'pool-a')
        self.api_a = self.xapi['pool-a']

    def power(self):
        return self.api_a.VM.get_power_state(self.vm)

    def _action(self, action, state):
        self.api.post_server_action(self.server['id'], {action: None})
        return self._wait_for_state_change(self.server, state)

    def test_power_pause_suspend_reboot(self):
        # XAPI suspends to the pool's suspend image SR: an operator sets it.
        pool = self.api_a.pool.get_all()[0]
        self.api_a.pool.set_suspend_image_SR(
            pool, self.api_a.pool.get_default_SR(pool))
        self._stop_server(self.server)
        self.assertEqual('Halted', self.power())
        self._start_server(self.server)
        self.assertEqual('Running', self.power())
        self._action('pause', 'PAUSED')
        self.assertEqual('Paused', self.power())
        self._action('unpause', 'ACTIVE')
        self.assertEqual('Running', self.power())
        self._suspend_server(self.server)
        self.assertEqual('Suspended', self.power())
        self._resume_server(self.server)
        self.assertEqual('Running', self.power())
        for hard in (False, True):
            domid = self.api_a.VM.get_domid(self.vm)
            self._reboot_server(self.server, hard=hard)
            self.assertEqual('Running', self.power())
            self.assertNotEqual(domid, self.api_a.VM.get_domid(self.vm))
        # The guest's disk kept the image through all of it.
        root = self.disks_of(self.vm, 'pool-a')['0']
        self.assertEqual(self.data,
                         self.export('pool-a', root['uuid'])[:len(
                             self.data)])

    def test_suspend_without_a_suspend_sr_keeps_the_server_active(self):
        self.api.post_server_action(self.server['id'], {'suspend': None})
        server = self._wait_for_server_parameter(
            self.server, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None})
        self.assertEqual('Running', self.power())
        actions = self.api.get_instance_actions(self.server['id'])
        suspend = [a for a in actions if a['action'] == 'suspend']
        self.assertEqual(1, len(suspend), actions)
        events = self.api.api_get(
            '/servers/%s/os-instance-actions/%s'
            % (server['id'], suspend[0]['request_id'])).body[
                'instanceAction']['events']
        self.assertEqual(
            [('compute_suspend_instance', 'Error')],
            [(e['event'], e['result']) for e in events])

    def test_a_vm_renamed_in_xapi_stays_the_servers(self):
        # An operator renames the VM (xe vm-param-set name-label=...):
        # other_config, not the name, says whose it is.
        self.api_a.VM.set_name_label(self.vm, 'renamed by an operator')
        self._stop_server(self.server)
        self.assertEqual('Halted', self.power())
        self._start_server(self.server)
        self.assertEqual('Running', self.power())
        ctxt = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(ctxt, self.server['id'])
        conn = self.computes['host1'].manager.driver._conn
        # Found by the instance's uuid in the pool too, never a template
        # that carries it (one made from the VM keeps its other_config).
        template = self.api_a.VM.create({
            'name_label': instance.name, 'is_a_template': True,
            'other_config': {'nova_uuid': instance.uuid}})
        self.assertEqual(self.vm, vmops.find_vm(
            conn.pool, instance.uuid, instance.name)[0])
        self.assertEqual(self.vm, vmops.find_vm(conn.pool,
                                                instance.uuid)[0])
        self.assertIsNone(vmops.find_vm(conn.pool, 'no-such-instance',
                                        instance.name))
        self.api_a.VM.destroy(template)
        self._delete_server(self.server)
        self.assertEqual((None, None), self.vm_of(self.server, 'pool-a'))

    def test_snapshot_to_glance(self):
        # The Glance fixture drops uploaded bytes: keep them.
        uploads = {}
        fixture_update = self.glance.update

        def update(api, context, image_id, metadata, data=None,
                   purge_props=False):
            if data is not None:
                uploads[image_id] = data.read()
            return fixture_update(context, image_id, metadata,
                                  purge_props=purge_props)
        self.stub_out('nova.image.glance.API.update', update)
        self.api.post_server_action(self.server['id'],
                                    {'createImage': {'name': 'snap'}})
        self.notifier.wait_for_versioned_notifications(
            'instance.snapshot.end')
        self._wait_for_server_parameter(self.server,
                                        {'OS-EXT-STS:task_state': None})
        snaps = [i for i in self.glance.images.values()
                 if i['name'] == 'snap']
        self.assertEqual('vhd', snaps[0]['disk_format'])
        blob = uploads[snaps[0]['id']]
        with tempfile.TemporaryFile() as src, \
                tempfile.TemporaryFile() as dst:
            src.write(blob)
            src.flush()
            size = images.vhd_to_raw(src, dst)
            dst.seek(0)
            raw = dst.read()
        self.assertEqual(1 << 30, size)
        self.assertEqual(self.data, raw[:len(self.data)])
        # No snapshot VDI is left behind in the pool.
        names = [r['name_label'] for r in
                 self.api_a.VDI.get_all_records().values()]
        self.assertEqual(1, len(names), names)


class VolumeTest(base.SxmServicesTestCase):
    """xensm volumes: attached by SR and VDI uuid, found again by device."""

    def test_attach_survives_a_retype_then_detach(self):
        image = self.make_image(b'v' * 4096)
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=0)
        server = self._create_server(image_uuid=image, flavor_id=flavor,
                                     host='host1', networks='none')
        api = self.xapi['pool-a']
        lvm = api.SR.get_by_name_label(LVM)[0]
        vdi = api.VDI.create({
            'name_label': 'volume-1', 'name_description': '', 'SR': lvm,
            'virtual_size': str(64 * base.MiB), 'type': 'user',
            'sharable': False, 'read_only': False, 'other_config': {},
            'xenstore_data': {}, 'sm_config': {}, 'tags': []})
        info = {'driver_volume_type': 'xensm', 'serial': 'vol-1',
                'data': {'sr_uuid': api.SR.get_uuid(lvm),
                         'vdi_uuid': api.VDI.get_uuid(vdi),
                         'volume_id': 'vol-1'}}
        ctxt = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(ctxt, server['id'])
        driver = self.computes['host1'].manager.driver
        driver.attach_volume(ctxt, info, instance, '/dev/xvdb')
        vm, _ = self.vm_of(server, 'pool-a')
        vbds = [api.VBD.get_record(v) for v in api.VM.get_VBDs(vm)]
        volume = [v for v in vbds if v['userdevice'] == '1'][0]
        self.assertTrue(volume['currently_attached'])
        self.assertEqual('vol-1', volume['other_config']['nova_volume_id'])
        # Cinder retypes it live to another SR: the VDI gets a new uuid.
        ext = api.SR.get_by_name_label(EXT)[0]
        moved = api.VDI.pool_migrate(volume['VDI'], ext, {})
        self.assertNotEqual(info['data']['vdi_uuid'], api.VDI.get_uuid(moved))
        driver.detach_volume(ctxt, info, instance, '/dev/xvdb')
        self.assertEqual(['0'], sorted(
            api.VBD.get_userdevice(v) for v in api.VM.get_VBDs(vm)))
        # The volume itself is Cinder's: it stays.
        self.assertEqual('volume-1', api.VDI.get_name_label(moved))
        # An unknown volume type is refused by name.
        bad = dict(info, driver_volume_type='iscsi')
        exc = self.assertRaises(exception.VolumeDriverNotFound,
                                driver.attach_volume, ctxt, bad, instance,
                                '/dev/xvdc')
        self.assertIn('iscsi', str(exc))
