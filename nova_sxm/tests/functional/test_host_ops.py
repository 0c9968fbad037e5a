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

"""Host operations through the Nova API: uptime, maintenance mode and
enabling or disabling the compute service (the XAPI host follows).
"""

import random
import re
import time

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import test_servers

MiB = base.MiB


class HostUptimeTest(base.SxmServicesTestCase):

    def hypervisor(self, name):
        for hyp in self.admin_api.api_get(
                '/os-hypervisors/detail').body['hypervisors']:
            if hyp['hypervisor_hostname'] == name:
                return hyp
        self.fail('no hypervisor %s' % name)

    def test_uptime_from_boot_time(self):
        api = self.xapi['pool-a']
        host = api.host.get_all()[0]
        other = api.host.get_other_config(host)
        # The simulator's toolstack wrote both at its start.
        self.assertIn('boot_time', other)
        now = time.time()
        api.host.remove_from_other_config(host, 'boot_time')
        api.host.add_to_other_config(host, 'boot_time', '%d.' % (
            now - (3 * 86400 + 2 * 3600 + 3 * 60 + 30)))
        api.host.remove_from_other_config(host, 'agent_start_time')
        api.host.add_to_other_config(host, 'agent_start_time',
                                     '%d.' % (now - 7 * 60 - 30))
        self._run_periodics()
        line = self.hypervisor('pool-a-host1')['uptime']
        self.assertRegex(line, r'^ \d\d:\d\d:\d\d up 3 days,  2:0[34],  '
                               r'xapi up [78] min$')
        # The time of day is now's, in UTC.
        shown = re.match(r' (\d\d):(\d\d):(\d\d)', line).groups()
        h, m, sec = (int(x) for x in shown)
        seconds = (h * 3600 + m * 60 + sec - int(now)) % 86400
        self.assertLess(min(seconds, 86400 - seconds), 60)

    def test_no_boot_time_no_uptime(self):
        api = self.xapi['pool-a']
        host = api.host.get_all()[0]
        api.host.remove_from_other_config(host, 'boot_time')
        self._run_periodics()
        self.assertIsNone(self.hypervisor('pool-a-host1')['uptime'])
        self.assertIsNotNone(self.hypervisor('pool-b-host1')['uptime'])


class HostEnabledTest(base.SxmServicesTestCase):

    def test_service_disable_disables_xapi_host(self):
        api = self.xapi['pool-a']
        host = api.host.get_all()[0]
        service = self.admin_api.get_services(host='host1',
                                              binary='nova-compute')[0]
        self.admin_api.put_service(service['id'], {'status': 'disabled'})
        self.assertFalse(api.host.get_enabled(host))
        self.admin_api.put_service(service['id'], {'status': 'enabled'})
        self.assertTrue(api.host.get_enabled(host))


class MaintenanceBase(base.SxmServicesTestCase):
    """host3 manages pool-b-host2; host2 the master pool-b-host1."""

    topology = test_servers.two_host_topology()
    SR = test_servers.NFS

    def setUp(self):
        super().setUp()
        self.api_b = self.xapi['pool-b']
        self.host_b2 = self.api_b.host.get_by_name_label('pool-b-host2')[0]
        self.add_srs()
        self.start_sxm_compute('host3', 'pool-b', host_name='pool-b-host2',
                               sr_matching_filter='name-label:' + self.SR)

    def add_srs(self):
        pass

    def maintenance(self, host, mode, status=(200,)):
        was = self.admin_api.microversion
        self.admin_api.microversion = '2.42'  # os-hosts ends at 2.42
        try:
            return self.admin_api.api_put(
                '/os-hosts/%s' % host, {'maintenance_mode': mode},
                check_response_status=list(status)).body
        finally:
            self.admin_api.microversion = was

    def _boot(self, seed):
        image = self.make_image(random.Random(seed).randbytes(MiB))
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=0)
        return self._create_server(image_uuid=image, flavor_id=flavor,
                                   host='host3', networks='none')


class MaintenanceModeTest(MaintenanceBase):
    """Disks on the pool's shared SR: only memory moves."""

    def test_maintenance_moves_running_servers(self):
        running = self._boot(1)
        stopped = self._stop_server(self._boot(2))
        vm, rec = self.vm_of(running, 'pool-b')
        self.write(rec['uuid'], ('0',), rate=16 * 1024, seed=5,
                   ctl=self.ctl['pool-b'])
        self.wait_writes(rec['uuid'], 5, ctl=self.ctl['pool-b'])

        self.assertEqual({'host': 'host3',
                          'maintenance_mode': 'on_maintenance'},
                         self.maintenance('host3', 'enable'))
        self.assertFalse(self.api_b.host.get_enabled(self.host_b2))
        # Nova moved it (its migration record, host, node); XAPI runs the
        # same VM on the master, on the same shared disks.
        running = self._wait_for_state_change(running, 'ACTIVE')
        self.assertEqual('host2', running['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('pool-b-host1',
                         running['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        migrations = self.api.api_get('/os-migrations?instance_uuid=%s'
                                      % running['id']).body['migrations']
        self.assertEqual([('live-migration', 'completed')],
                         [(m['migration_type'], m['status'])
                          for m in migrations])
        self.assertEqual('pool-b-host1', self.api_b.host.get_name_label(
            self.api_b.VM.get_resident_on(vm)))
        self.stop_and_check(rec['uuid'], ctl=self.ctl['pool-b'],
                            devices=('0',), written=True)
        # The stopped server stays, halted, the compute's.
        stopped = self.api.get_server(stopped['id'])
        self.assertEqual(('SHUTOFF', 'host3'), (
            stopped['status'], stopped['OS-EXT-SRV-ATTR:host']))

        self.assertEqual({'host': 'host3',
                          'maintenance_mode': 'off_maintenance'},
                         self.maintenance('host3', 'disable'))
        self.assertTrue(self.api_b.host.get_enabled(self.host_b2))
        self._start_server(stopped)
        vm2, rec2 = self.vm_of(stopped, 'pool-b')
        self.assertEqual(self.host_b2, rec2['resident_on'])

    def test_no_destination_says_which_servers_stay(self):
        server = self._boot(3)
        # The other host's compute is disabled: nowhere to go.
        service = self.admin_api.get_services(host='host2',
                                              binary='nova-compute')[0]
        self.admin_api.put_service(service['id'], {'status': 'disabled'})
        body = self.maintenance('host3', 'enable', status=(400,))
        self.assertIn(server['id'], body['badRequest']['message'])
        self.assertIn('no other host of pool', body['badRequest']['message'])
        server = self.api.get_server(server['id'])
        self.assertEqual(('ACTIVE', 'host3'), (
            server['status'], server['OS-EXT-SRV-ATTR:host']))
        vm, rec = self.vm_of(server, 'pool-b')
        self.assertEqual(self.host_b2, rec['resident_on'])
        self.assertFalse(self.api_b.host.get_enabled(self.host_b2))

    def test_a_paused_server_is_named_and_stays(self):
        # XAPI refuses VM.pool_migrate and VM.migrate_send of a paused VM
        # (xapi_vm_lifecycle.ml): the answer names it, nothing moves.
        server = self._boot(4)
        self.api.post_server_action(server['id'], {'pause': None})
        server = self._wait_for_state_change(server, 'PAUSED')
        body = self.maintenance('host3', 'enable', status=(400,))
        message = body['badRequest']['message']
        self.assertIn(server['id'], message)
        self.assertIn('paused', message)
        server = self.api.get_server(server['id'])
        self.assertEqual(('PAUSED', 'host3'), (
            server['status'], server['OS-EXT-SRV-ATTR:host']))
        self.assertEqual([], self.api.api_get(
            '/os-migrations?instance_uuid=%s' % server['id']
        ).body['migrations'])
        vm, rec = self.vm_of(server, 'pool-b')
        self.assertEqual(('Paused', self.host_b2),
                         (rec['power_state'], rec['resident_on']))
        self.assertFalse(self.api_b.host.get_enabled(self.host_b2))


class LocalDiskMaintenanceTest(MaintenanceBase):
    """Disks on pool-b-host2's own SR move with the VM (in-pool SXM)."""

    SR = 'Local storage (pool-b-host2)'

    def add_srs(self):
        self.sim.pools['pool-b'].add_sr(self.SR, 'ext', 64 * 1024 * MiB,
                                        host=self.host_b2)

    def test_local_disks_move_with_the_server(self):
        server = self._boot(7)
        vm, rec = self.vm_of(server, 'pool-b')
        before = {d['uuid'] for d in self.disks_of(vm, 'pool-b').values()}
        self.write(rec['uuid'], ('0',), rate=16 * 1024, seed=8,
                   ctl=self.ctl['pool-b'])
        self.wait_writes(rec['uuid'], 5, ctl=self.ctl['pool-b'])
        self.assertEqual({'host': 'host3',
                          'maintenance_mode': 'on_maintenance'},
                         self.maintenance('host3', 'enable'))
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        vm, rec = self.vm_of(server, 'pool-b')
        after = self.disks_of(vm, 'pool-b')
        # New disks on a storage pool-b-host1 reaches; the old ones gone.
        self.assertEqual(set(), before & {d['uuid'] for d in after.values()})
        local2 = self.sr_uuid('pool-b', self.SR)
        self.assertNotIn(local2, {self.api_b.SR.get_uuid(d['SR'])
                                  for d in after.values()})
        self.stop_and_check(rec['uuid'], ctl=self.ctl['pool-b'],
                            devices=('0',), written=True)
