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

"""Evacuate (``openstack server evacuate``) on the SXM driver.

pool-b has two hosts: host3 manages pool-b-host2, host2 the master
pool-b-host1. host3's nova-compute goes down (and, unless said otherwise,
its XAPI host dies); the server is evacuated to host2.
"""

import random

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import test_servers
from nova_sxm.tests.functional import test_volumes

MiB = base.MiB
NULL = 'OpaqueRef:NULL'


class EvacuateBase(base.SxmServicesTestCase):

    topology = test_servers.two_host_topology()
    SR = test_servers.NFS

    def setUp(self):
        super().setUp()
        self.api_b = self.xapi['pool-b']
        self.ctl_b = self.ctl['pool-b']
        self.host_b1 = self.api_b.host.get_by_name_label('pool-b-host1')[0]
        self.host_b2 = self.api_b.host.get_by_name_label('pool-b-host2')[0]
        self.add_srs()
        self.start_host3()

    def add_srs(self):
        pass

    def host3_flags(self):
        return dict(host_name='pool-b-host2',
                    sr_matching_filter='name-label:' + self.SR)

    def start_host3(self):
        self.start_sxm_compute('host3', 'pool-b', **self.host3_flags())

    def boot(self, seed=1):
        image = self.make_image(random.Random(seed).randbytes(MiB))
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=0)
        return self._create_server(
            image_uuid=image, flavor_id=flavor, host='host3',
            networks=[{'port': self.neutron.port_1['id']}])

    def host3_down(self, xapi_host_dies=True):
        self.computes['host3'].stop()
        self.service3 = self.admin_api.get_services(
            host='host3', binary='nova-compute')[0]
        self.admin_api.put_service_force_down(self.service3['id'], True)
        if xapi_host_dies:
            self.ctl_b.host_live('pool-b-host2', False)

    def host3_back(self):
        """pool-b-host2 boots again, then host3's nova-compute starts."""
        if not self.api_b.host_metrics.get_live(
                self.api_b.host.get_metrics(self.host_b2)):
            self.ctl_b.host_live('pool-b-host2', True)
        self.sxm_flags('pool-b', **self.host3_flags())
        self.computes['host3'] = self.restart_compute_service(
            self.computes['host3'], keep_hypervisor_state=False)
        # (Nova refuses this until the restart completed the evacuations.)
        self.admin_api.put_service_force_down(self.service3['id'], False)

    def evacuate(self, server, state='ACTIVE'):
        """Evacuate to host2; ACTIVE: as before microversion 2.95."""
        was = self.admin_api.microversion
        if state == 'ACTIVE':
            # From 2.95 on an evacuated server ends stopped.
            self.admin_api.microversion = '2.94'
        try:
            return self._evacuate_server(server, expected_host='host2',
                                         expected_state=state,
                                         extra_post_args={'host': 'host2'})
        finally:
            self.admin_api.microversion = was

    def vms_of(self, server):
        return {ref: rec for ref, rec in
                self.api_b.VM.get_all_records().items()
                if rec['other_config'].get('nova_uuid') == server['id']
                and not rec['is_a_snapshot']}


class SharedStorageEvacuateTest(EvacuateBase):
    """Disks on the pool's shared SR: the same VM starts on host2."""

    def test_dead_host_vm_taken_over_with_its_disks(self):
        server = self.boot()
        vm, rec = self.vm_of(server, 'pool-b')
        vdis = {d['uuid'] for d in self.disks_of(vm, 'pool-b').values()}
        self.write(rec['uuid'], ('0',), rate=16 * 1024, seed=3,
                   ctl=self.ctl_b)
        self.wait_writes(rec['uuid'], 5, ctl=self.ctl_b)
        self.host3_down()

        server = self.evacuate(server)
        self.assertEqual('pool-b-host1',
                         server['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        # One VM, the same, now running on the master with its disks.
        vms = self.vms_of(server)
        self.assertEqual([vm], list(vms))
        self.assertEqual('Running', vms[vm]['power_state'])
        self.assertEqual(self.host_b1, vms[vm]['resident_on'])
        self.assertEqual(self.host_b1, vms[vm]['affinity'])
        self.assertEqual(vdis, {d['uuid'] for d in
                                self.disks_of(vm, 'pool-b').values()})
        # What the guest wrote before its host died is on its disk.
        self.stop_and_check(rec['uuid'], ctl=self.ctl_b, devices=('0',))
        vifs = [self.api_b.VIF.get_record(v)
                for v in self.api_b.VM.get_VIFs(vm)]
        self.assertEqual([(self.neutron.port_1['id'], True)],
                         [(v['other_config']['neutron-port-id'],
                           v['currently_attached']) for v in vifs])

        # The old host and its compute come back: nothing of the server
        # is destroyed, nothing runs twice.
        self.host3_back()
        self.assertEqual([vm], list(self.vms_of(server)))
        self.assertEqual(self.host_b1, self.api_b.VM.get_resident_on(vm))
        self.assertEqual(vdis, {d['uuid'] for d in
                                self.disks_of(vm, 'pool-b').values()})
        self._wait_for_migration_status(server, ['completed'])
        self.assertEqual('ACTIVE', self.api.get_server(
            server['id'])['status'])
        # Deleting it afterwards goes through host2.
        self._delete_server(server)
        self.assertEqual({}, self.vms_of(server))

    def test_live_host_vm_moves_without_stopping(self):
        # Only host3's nova-compute died: XAPI's pool_migrate moves the
        # running guest, its writes go on.
        server = self.boot()
        vm, rec = self.vm_of(server, 'pool-b')
        self.write(rec['uuid'], ('0',), rate=16 * 1024, seed=9,
                   ctl=self.ctl_b)
        self.wait_writes(rec['uuid'], 5, ctl=self.ctl_b)
        self.host3_down(xapi_host_dies=False)
        server = self.evacuate(server)
        self.assertEqual([vm], list(self.vms_of(server)))
        self.assertEqual(self.host_b1, self.api_b.VM.get_resident_on(vm))
        self.wait_writes(rec['uuid'], 5, ctl=self.ctl_b)
        self.stop_and_check(rec['uuid'], ctl=self.ctl_b, devices=('0',),
                            written=True)

    def test_evacuated_stopped_as_nova_2_95_says(self):
        # A running server, evacuated with today's microversion: Nova
        # stops it on its new host; it starts there.
        server = self.boot()
        vm, _ = self.vm_of(server, 'pool-b')
        self.host3_down()
        server = self.evacuate(server, state='SHUTOFF')
        self.assertEqual([vm], list(self.vms_of(server)))
        rec = self.api_b.VM.get_record(vm)
        self.assertEqual(('Halted', self.host_b1),
                         (rec['power_state'], rec['affinity']))
        server = self._start_server(server)
        self.assertEqual(self.host_b1, self.api_b.VM.get_resident_on(vm))


class LocalDiskEvacuateTest(EvacuateBase):
    """Disks on the dead host's local SR: Nova rebuilds from the image."""

    SR = 'Local storage (pool-b-host2)'

    def add_srs(self):
        self.sim.pools['pool-b'].add_sr(self.SR, 'ext', 64 * 1024 * MiB,
                                        host=self.host_b2)

    def test_rebuilt_from_image_old_vm_removed_when_host_returns(self):
        server = self.boot(seed=4)
        old, old_rec = self.vm_of(server, 'pool-b')
        old_vdis = {d['uuid'] for d in self.disks_of(old, 'pool-b').values()}
        self.host3_down()

        server = self.evacuate(server)
        vms = self.vms_of(server)
        self.assertEqual(2, len(vms))
        new = next(ref for ref in vms if ref != old)
        self.assertEqual(('Running', self.host_b1),
                         (vms[new]['power_state'], vms[new]['resident_on']))
        # The old VM is halted (its host dead: power_state_reset) and
        # stays its host's, so that two copies never run.
        self.assertEqual(('Halted', self.host_b2),
                         (vms[old]['power_state'], vms[old]['affinity']))
        new_disks = self.disks_of(new, 'pool-b')
        self.assertEqual(set(), old_vdis & {d['uuid']
                                            for d in new_disks.values()})
        # A fresh root disk from the image.
        image = random.Random(4).randbytes(MiB)
        self.assertEqual(image, self.export(
            'pool-b', new_disks['0']['uuid'])[:MiB])

        # host3 starts again: Nova's _destroy_evacuated_instances removes
        # the old VM and its own disks, not the new one's.
        self.host3_back()
        self.assertEqual([new], list(self.vms_of(server)))
        left = {self.api_b.VDI.get_uuid(v) for v in self.api_b.VDI.get_all()}
        self.assertEqual(set(), old_vdis & left)
        self.assertTrue({d['uuid'] for d in new_disks.values()} <= left)
        self.assertEqual('Running', self.api_b.VM.get_power_state(new))
        self._wait_for_migration_status(server, ['completed'])


def _volume_topology():
    topo = test_volumes.two_host_volume_topology()
    topo['pools'][1]['srs'].append({'name': test_servers.NFS, 'type': 'nfs',
                                    'size': '64GiB', 'shared': True})
    return topo


class VolumeEvacuateTest(test_volumes.VolumeTestBase, EvacuateBase):
    """A server with a volume of pool-c's shared SR keeps it."""

    topology = _volume_topology()

    def test_volume_kept_through_evacuate_and_return(self):
        data = random.Random(21).randbytes(2 * MiB)
        vol, vdi_uuid = self.create_volume('pool-c', test_volumes.SILVER,
                                           'silver', data)
        self.server = self.boot(seed=6)
        self._attach_volume(self.server, vol)
        vm, _ = self.vm_of(self.server, 'pool-b')
        vbd, vdi, sr = self.volume_vbd('pool-b', vol)
        self.assertTrue(vbd['currently_attached'])
        self.host3_down()

        self.server = self.evacuate(self.server)
        self.assertEqual([vm], list(self.vms_of(self.server)))
        vbd2, vdi2, sr2 = self.volume_vbd('pool-b', vol)
        self.assertEqual((vdi, sr, True),
                         (vdi2, sr2, vbd2['currently_attached']))
        self.assertEqual(data, self.export('pool-c', vdi_uuid)[:len(data)])
        attached = self.api.get_server(self.server['id'])[
            'os-extended-volumes:volumes_attached']
        self.assertEqual([vol], [v['id'] for v in attached])

        self.host3_back()
        vbd3, vdi3, _ = self.volume_vbd('pool-b', vol)
        self.assertEqual((vdi, True), (vdi3, vbd3['currently_attached']))
        self.assertTrue(self.knows_sr('pool-b', sr))
