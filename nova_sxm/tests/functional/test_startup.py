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

"""nova-compute starts whatever state one instance's VM is in.

Each test changes one server's VM behind Nova's back (gone, moved to the
other pool, halted, inside an XAPI operation), restarts host1's
nova-compute (a new manager and driver, Nova's init_host and
_init_instance), and checks that the service came up, serves the other
server, logs one line saying what it found for the changed one, and
that Nova's view of that server is the one the driver documents.
"""

import logging
import random

import fixtures
from nova.compute import power_state
from nova.compute import task_states
from nova import context as nova_context
from nova import objects
from sxm_core import tasks

from nova_sxm.tests.functional import base

MiB = base.MiB


class StartupTest(base.SxmServicesTestCase):

    def setUp(self):
        super().setUp()
        self.logs = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        image = self.make_image(random.Random(5).randbytes(MiB))
        self.flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=0,
                                          ephemeral=0)
        self.keep = self._create_server(
            image_uuid=image, flavor_id=self.flavor, host='host1',
            networks=[{'port': self.neutron.port_1['id']}])
        self.odd = self._create_server(
            image_uuid=image, flavor_id=self.flavor, host='host1',
            networks='none')
        self.api_a = self.xapi['pool-a']
        self.odd_vm, rec = self.vm_of(self.odd, 'pool-a')
        self.odd_uuid = rec['uuid']

    def restart_host1(self):
        self.sxm_flags('pool-a')
        self.computes['host1'] = self.restart_compute_service(
            self.computes['host1'], keep_hypervisor_state=False)

    def instance(self, server):
        return objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), server['id'])

    def startup_line(self, server):
        """The start-up line of ``server`` (one line per instance)."""
        lines = [line for line in self.logs.output.splitlines()
                 if 'Start-up:' in line]
        self.assertEqual(2, len(lines), lines)
        vm, rec = self.vm_of(self.keep, 'pool-a')
        keep = [line for line in lines if rec['uuid'] in line]
        self.assertEqual(1, len(keep), lines)
        if server is self.keep:
            return keep[0]
        return [line for line in lines if line != keep[0]][0]

    def assert_serves_the_other_server(self):
        vm, rec = self.vm_of(self.keep, 'pool-a')
        self.assertIn('Start-up: VM %s is Running on this host'
                      % rec['uuid'], self.startup_line(self.keep))
        self._stop_server(self.keep)
        self.assertEqual('Halted', self.api_a.VM.get_power_state(vm))
        self._start_server(self.keep)
        self.assertEqual('Running', self.api_a.VM.get_power_state(vm))

    def sync_power_states(self):
        self.computes['host1'].manager._sync_power_states(
            nova_context.get_admin_context())

    def test_a_missing_vm(self):
        self.api_a.VM.hard_shutdown(self.odd_vm)
        self.api_a.VM.destroy(self.odd_vm)
        self.restart_host1()
        self.assertIn('no VM of this instance in XAPI pool',
                      self.startup_line(self.odd))
        self.assert_serves_the_other_server()
        self.sync_power_states()
        server = self._wait_for_server_parameter(
            self.odd, {'OS-EXT-STS:power_state': power_state.NOSTATE})
        self.assertEqual('ACTIVE', server['status'])

    def test_a_vm_moved_to_the_other_pool_by_an_interrupted_migration(self):
        api_b = self.xapi['pool-b']
        host_b = api_b.host.get_all()[0]
        net_b = api_b.network.get_all()[0]
        sr_b = api_b.SR.get_by_name_label('Local storage (ext)')[0]
        dest = api_b.host.migrate_receive(host_b, net_b, {})
        vdis = {rec['VDI']: sr_b for rec in (
            self.api_a.VBD.get_record(v)
            for v in self.api_a.VM.get_VBDs(self.odd_vm))
            if rec['VDI'] != base.NULL}
        self.api_a.VM.migrate_send(self.odd_vm, dest, True, vdis, {}, {})
        instance = self.instance(self.odd)
        instance.task_state = task_states.MIGRATING
        instance.save()
        self.restart_host1()
        line = self.startup_line(self.odd)
        self.assertIn('no VM of this instance in XAPI pool', line)
        self.assertIn('interrupted live migration', line)
        self.assert_serves_the_other_server()
        self.assertIsNotNone(self.vm_of(self.odd, 'pool-b')[0])

    def test_a_halted_vm_is_started_when_nova_resumes_guests(self):
        self.flags(resume_guests_state_on_host_boot=True)
        self.api_a.VM.hard_shutdown(self.odd_vm)
        self.restart_host1()
        self.assertIn('Start-up: VM %s is Halted though Nova has the '
                      'server active' % self.odd_uuid,
                      self.startup_line(self.odd))
        self.assertEqual('Running',
                         self.api_a.VM.get_power_state(self.odd_vm))
        self.assert_serves_the_other_server()

    def test_a_halted_vm_is_stopped_by_the_power_sync(self):
        self.api_a.VM.hard_shutdown(self.odd_vm)
        self.restart_host1()
        self.assertIn('Nova will see power state shutdown',
                      self.startup_line(self.odd))
        self.assert_serves_the_other_server()
        self.sync_power_states()
        self._wait_for_state_change(self.odd, 'SHUTOFF')
        self.assertEqual('Halted',
                         self.api_a.VM.get_power_state(self.odd_vm))

    def test_a_vm_inside_a_migrate_send(self):
        # A storage migration out of the pool that runs on (its caller
        # died): slowed down so that the restart happens during it.
        self.ctl['pool-a'].configure(bandwidth=64 * 1024)
        api_b = self.xapi['pool-b']
        dest = api_b.host.migrate_receive(api_b.host.get_all()[0],
                                          api_b.network.get_all()[0], {})
        sr_b = api_b.SR.get_by_name_label('Local storage (ext)')[0]
        vdis = {rec['VDI']: sr_b for rec in (
            self.api_a.VBD.get_record(v)
            for v in self.api_a.VM.get_VBDs(self.odd_vm))
            if rec['VDI'] != base.NULL}
        task = self.api_a.Async.VM.migrate_send(self.odd_vm, dest, True,
                                                vdis, {}, {})
        self.addCleanup(self._cancel, task)
        self.poll(lambda: self.api_a.VM.get_current_operations(
            self.odd_vm) or None, timeout=30, interval=0.05,
            what='migrate_send under way')
        self.restart_host1()
        self.assertIn('inside XAPI operation(s) migrate_send',
                      self.startup_line(self.odd))
        self.assertIn('Not plugging VIFs while XAPI runs migrate_send',
                      self.logs.output)
        self.assert_serves_the_other_server()
        # The migration itself was left alone.
        self.assertEqual('pending', self.api_a.task.get_status(task))
        driver = self.computes['host1'].manager.driver
        self.assertEqual(power_state.RUNNING,
                         driver.get_info(self.instance(self.odd)).state)

    def _cancel(self, task):
        try:
            self.api_a.task.cancel(task)
        except Exception:
            pass


class TaskHygieneTest(base.SxmServicesTestCase):
    """The driver's XAPI tasks end destroyed, also across a restart."""

    def test_ended_tasks_of_an_earlier_run_are_destroyed(self):
        logs = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        api = self.xapi['pool-a']
        driver = self.computes['host1'].manager.driver
        host_uuid = api.host.get_uuid(api.host.get_all()[0])
        mine = tasks.owner_tag('nova-sxm', host_uuid)
        sr = api.SR.get_by_name_label('Local storage (ext)')[0]
        vdi = api.VDI.create({
            'name_label': 'scratch', 'name_description': '', 'SR': sr,
            'virtual_size': str(MiB), 'type': 'user', 'sharable': False,
            'read_only': False, 'other_config': {}, 'xenstore_data': {},
            'sm_config': {}, 'tags': []})
        # Left by a killed run of this compute: one done, one failed,
        # one still running. Another client's and another host's ended
        # tasks are not this service's to remove.
        pool = driver._conn.pool
        done = tasks.start(pool, 'VDI.snapshot', vdi, {})
        failed = tasks.start(pool, 'VDI.snapshot', 'OpaqueRef:bogus', {})
        running = api.task.create('migration', 'still running')
        api.task.add_to_other_config(running, tasks.OWNER_KEY, mine)
        foreign = api.Async.VDI.snapshot(vdi, {})
        other_host = api.Async.VDI.snapshot(vdi, {})
        api.task.add_to_other_config(other_host, tasks.OWNER_KEY,
                                     tasks.owner_tag('nova-sxm', 'x'))
        for task in (done, failed, foreign, other_host):
            self.poll(lambda: api.task.get_status(task) != 'pending' or None,
                      timeout=30, interval=0.05, what='task to end')
        self.assertEqual(mine, api.task.get_other_config(done)[
            tasks.OWNER_KEY])
        self.sxm_flags('pool-a')
        self.computes['host1'] = self.restart_compute_service(
            self.computes['host1'], keep_hypervisor_state=False)
        left = set(api.task.get_all())
        self.assertNotIn(done, left)
        self.assertNotIn(failed, left)
        self.assertEqual({running, foreign, other_host},
                         left & {running, foreign, other_host})
        self.assertIn('Destroyed 2 ended XAPI task(s)', logs.output)

    def test_operations_leave_no_task(self):
        api = self.xapi['pool-a']
        before = set(api.task.get_all())
        image = self.make_image(random.Random(8).randbytes(MiB))
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=0,
                                     ephemeral=0)
        server = self._create_server(image_uuid=image, flavor_id=flavor,
                                     host='host1', networks='none')
        self._stop_server(server)
        self._start_server(server)
        self._reboot_server(server, hard=True)
        self.api.post_server_action(server['id'],
                                    {'createImage': {'name': 'snap'}})
        self._wait_for_server_parameter(server,
                                        {'OS-EXT-STS:task_state': None})
        self._delete_server(server)
        self.assertEqual(before, set(api.task.get_all()))
