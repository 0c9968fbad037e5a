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

"""Rescue and unrescue through the real Nova API on the simulator.

The rescue VM boots the rescue image with the instance's root disk as its
second disk; unrescue removes it and the instance runs again with every
byte of its disks as it was.
"""

import random

import XenAPI

from nova_sxm.tests.functional import base

MiB = base.MiB


class RescueTest(base.SxmServicesTestCase):

    def setUp(self):
        super().setUp()
        self.data = random.Random(21).randbytes(2 * MiB + 512)
        self.rescue_data = random.Random(22).randbytes(MiB)
        image = self.make_image(self.data)
        self.rescue_image = self.make_image(self.rescue_data,
                                            name='rescue-image')
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=1)
        self.server = self._create_server(
            image_uuid=image, flavor_id=flavor, host='host1',
            networks=[{'port': self.neutron.port_1['id']}])
        self.api_a = self.xapi['pool-a']
        self.ctl_a = self.ctl['pool-a']
        self.vm, rec = self.vm_of(self.server, 'pool-a')
        self.vm_uuid = rec['uuid']
        self.name = rec['name_label']
        # The guest writes to its root and ephemeral disks first: the
        # checker knows what each must hold.
        self.write(self.vm_uuid, ('0', '4'), rate=64 * 1024, seed=3,
                   ctl=self.ctl_a)
        self.wait_writes(self.vm_uuid, 5, ctl=self.ctl_a)
        self.stop_and_check(self.vm_uuid, ctl=self.ctl_a,
                            devices=('0', '4'), written=True)
        self.disks = self.disks_of(self.vm, 'pool-a')
        self.digests = {dev: self.export_digest('pool-a', vdi['uuid'])
                        for dev, vdi in self.disks.items()}

    def rescue_vms(self):
        """{ref: record} of the pool's VMs named as the rescue VM."""
        return {ref: rec for ref, rec in
                self.api_a.VM.get_all_records().items()
                if rec['name_label'] == self.name + '-rescue'}

    def vdi_uuids(self):
        return {self.api_a.VDI.get_uuid(v) for v in self.api_a.VDI.get_all()}

    def rescue(self, **body):
        body.setdefault('rescue_image_ref', self.rescue_image)
        self.api.post_server_action(self.server['id'], {'rescue': body})
        return self._wait_for_state_change(self.server, 'RESCUE')

    def assert_disks_unchanged(self):
        disks = self.disks_of(self.vm, 'pool-a')
        self.assertEqual({d: v['uuid'] for d, v in self.disks.items()},
                         {d: v['uuid'] for d, v in disks.items()})
        self.assertEqual(self.digests, {
            dev: self.export_digest('pool-a', vdi['uuid'])
            for dev, vdi in disks.items()})

    def test_rescue_then_unrescue(self):
        before = self.vdi_uuids()
        server = self.rescue(adminPass='not-delivered')
        # Nova sees the rescued server running (the rescue VM runs).
        self.assertEqual(1, server['OS-EXT-STS:power_state'])
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])

        # The original VM is kept, halted, with its own disks; XAPI
        # refuses to start it while the rescue VM has them.
        self.assertEqual('Halted', self.api_a.VM.get_power_state(self.vm))
        exc = self.assertRaises(XenAPI.Failure, self.api_a.VM.start,
                                self.vm, False, False)
        self.assertEqual(['OPERATION_BLOCKED', self.vm, 'nova-rescue'],
                         exc.details)
        self.assertEqual((self.vm, self.vm_uuid),
                         (self.vm_of(self.server, 'pool-a')[0],
                          self.api_a.VM.get_uuid(self.vm)))
        # The rescue VM runs the rescue image with the instance's root
        # as its second disk (not bootable), its ephemeral disk as is.
        (rescue, rec), = self.rescue_vms().items()
        self.assertEqual('Running', rec['power_state'])
        self.assertNotIn('nova_uuid', rec['other_config'])
        self.assertEqual(self.server['id'],
                         rec['other_config']['nova_rescue_of'])
        disks = self.disks_of(rescue, 'pool-a')
        self.assertEqual({'0', '1', '4'}, set(disks))
        self.assertEqual(self.disks['0']['uuid'], disks['1']['uuid'])
        self.assertEqual(self.disks['4']['uuid'], disks['4']['uuid'])
        own_root = disks['0']['uuid']
        self.assertEqual({own_root}, self.vdi_uuids() - before)
        self.assertEqual(self.rescue_data, self.export(
            'pool-a', own_root)[:len(self.rescue_data)])
        vbds = {self.api_a.VBD.get_userdevice(v): self.api_a.VBD.get_record(v)
                for v in self.api_a.VM.get_VBDs(rescue)}
        self.assertEqual({'0': True, '1': False, '4': False},
                         {d: v['bootable'] for d, v in vbds.items()})
        vifs = [self.api_a.VIF.get_record(v)
                for v in self.api_a.VM.get_VIFs(rescue)]
        self.assertEqual([self.neutron.port_1['mac_address']],
                         [v['MAC'] for v in vifs])
        # The rescue guest writes to its own disk; the instance's are
        # left as the rescue left them.
        rescue_uuid = rec['uuid']
        self.write(rescue_uuid, ('0',), rate=64 * 1024, seed=4,
                   ctl=self.ctl_a)
        self.wait_writes(rescue_uuid, 3, ctl=self.ctl_a)
        self.ctl_a.workload_stop(rescue_uuid)

        self.api.post_server_action(self.server['id'], {'unrescue': None})
        server = self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertEqual(1, server['OS-EXT-STS:power_state'])
        self.assertEqual({}, self.rescue_vms())
        self.assertEqual(before, self.vdi_uuids())
        self.assertEqual('Running', self.api_a.VM.get_power_state(self.vm))
        self.assertEqual({}, self.api_a.VM.get_blocked_operations(self.vm))
        self.assert_disks_unchanged()
        # The guest goes on writing to its disks, checked.
        self.write(self.vm_uuid, ('0', '4'), rate=64 * 1024, seed=6,
                   ctl=self.ctl_a)
        self.wait_writes(self.vm_uuid, 5, ctl=self.ctl_a)
        self.stop_and_check(self.vm_uuid, ctl=self.ctl_a,
                            devices=('0', '4'), written=True)

    def test_delete_rescued_server_removes_both_vms(self):
        before = self.vdi_uuids()
        self.rescue()
        self.assertEqual(1, len(self.rescue_vms()))
        self._delete_server(self.server)
        self.assertEqual({}, self.rescue_vms())
        self.assertEqual((None, None), self.vm_of(self.server, 'pool-a'))
        # The instance's disks and the rescue VM's own disk are gone.
        own = {vdi['uuid'] for vdi in self.disks.values()}
        self.assertEqual(before - own, self.vdi_uuids())

    def test_failed_rescue_keeps_the_original(self):
        before = self.vdi_uuids()
        bad = self.make_image(b'QFI\xfb' + bytes(4092), disk_format='qcow2',
                              name='qcow2-rescue')
        self.api.post_server_action(self.server['id'],
                                    {'rescue': {'rescue_image_ref': bad}})
        server = self._wait_for_state_change(self.server, 'ERROR')
        self.assertIn('qcow2', server['fault']['message'])
        self.assertEqual({}, self.rescue_vms())
        self.assertEqual(before, self.vdi_uuids())
        self.assertEqual('Halted', self.api_a.VM.get_power_state(self.vm))
        # An administrator returns it; it starts with its bytes.
        self.admin_api.post_server_action(
            self.server['id'], {'os-resetState': {'state': 'active'}})
        self._wait_for_state_change(self.server, 'ACTIVE')
        self._stop_server(self.server)
        self._start_server(self.server)
        self.assertEqual('Running', self.api_a.VM.get_power_state(self.vm))
        self.assert_disks_unchanged()

    def test_rescued_server_survives_compute_restart(self):
        self.rescue()
        self.sxm_flags('pool-a')
        self.computes['host1'] = self.restart_compute_service(
            self.computes['host1'], keep_hypervisor_state=False)
        server = self.api.get_server(self.server['id'])
        self.assertEqual('RESCUE', server['status'])
        (rescue, rec), = self.rescue_vms().items()
        self.assertEqual('Running', rec['power_state'])
        self.assertEqual('Halted', self.api_a.VM.get_power_state(self.vm))
        self.api.post_server_action(self.server['id'], {'unrescue': None})
        self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertEqual({}, self.rescue_vms())
        self.assertEqual('Running', self.api_a.VM.get_power_state(self.vm))
        self.assert_disks_unchanged()
