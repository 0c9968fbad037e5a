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

"""The source nova-compute dies mid-migration and starts again.

The death is host1's migration thread stopping where it stands (nothing
more is said to XAPI or Nova: Nova's Migration stays 'running', the
instance MIGRATING) and its watchdog process killed with it, as when the
whole service is SIGKILLed; the XAPI task goes on. host1's compute is
then restarted with a new driver (a fresh process for the driver: no
migration in memory). Nova's start-up aborts the migration through the
driver; the instance must end where Nova has it -- on host1, in pool-a,
running, every byte the guest wrote there -- and nothing of it left in
pool-b.
"""

import logging
import os
import random
import signal
import threading

import fixtures
from nova import context as nova_context
from sxm_core import lease
from sxm_core import tasks

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import test_live_migration
from nova_sxm.tests.functional import test_servers
from nova_sxm.virt import migration as migrationmod

MiB = test_live_migration.MiB


def record_custodians(test):
    """``test.custodians``: the watchdog each lease is handed with, by task."""
    test.custodians = {}
    real_hand = lease.Lease.hand

    def hand(held, task, book=None, custodian=None):
        test.custodians[task] = custodian
        return real_hand(held, task, book, custodian)
    test.useFixture(fixtures.MonkeyPatch('sxm_core.lease.Lease.hand', hand))


class Died(BaseException):
    """The migration thread's end when its process is killed."""


class OwnerDeathTest(test_live_migration.LiveMigrationBase):

    def setUp(self):
        super().setUp()
        self.logs = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.died = threading.Event()
        self.task = None
        self.pool_a_url = self.pools.url('pool-a')
        real = tasks.wait_task
        test = self

        def wait_task(pool, task, what, *args, **kwargs):
            if kwargs.get('call') == 'VM.migrate_send' and \
                    pool.url == test.pool_a_url and \
                    not test.died.is_set():
                test.kill_owner(pool, task)
            return real(pool, task, what, *args, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'sxm_core.tasks.wait_task', wait_task))
        record_custodians(self)

    def kill_owner(self, pool, task):
        """Once the disks move: the custodian killed, the thread gone."""
        self.poll(lambda: float(pool.call('task.get_progress', task)) > 0.02,
                  timeout=120, what='the copy to start')
        custodian = self.custodians.get(task)
        self.assertIsNotNone(custodian, 'no watchdog started')
        os.kill(custodian.pid, signal.SIGKILL)
        self.task = task
        self.died.set()
        raise Died()

    def die_mid_copy(self):
        self.start_guest()
        self.migrate(True)
        self.poll(self.died.is_set, timeout=120, what='host1 to die')
        self.assertEqual('running', self.migration_record().status)
        self.assertEqual(
            'pending', self.xapi['pool-a'].task.get_status(self.task))

    def restart_host1(self):
        self.sxm_flags('pool-a')
        self.computes['host1'] = self.restart_compute_service(
            self.computes['host1'], keep_hypervisor_state=False)

    def migrate_send_tasks(self):
        api = self.xapi['pool-a']
        return [r for r, rec in api.task.get_all_records().items()
                if rec['name_label'] == 'Async.VM.migrate_send']

    def assert_no_records(self):
        api = self.xapi['pool-a']
        pool_other = api.pool.get_other_config(api.pool.get_all()[0])
        self.assertEqual([], [k for k in pool_other
                              if k.startswith(migrationmod.MARKER_KEY)])
        ref, rec = self.vm_of(self.server, 'pool-a')
        self.assertNotIn(migrationmod.MARKER_KEY, rec['other_config'])

    def assert_home(self):
        """Where Nova has it: host1, pool-a; the migration 'error'."""
        self.poll(lambda: self.migration_record().status == 'error',
                  what='the migration to be set error')
        self.assert_on('host1', 'pool-a', 'pool-b')
        # Placement too: the instance consumes host1's resources (the
        # resource provider's uuid is the XAPI host's), nothing else.
        api = self.xapi['pool-a']
        host_a = api.host.get_uuid(api.host.get_all()[0])
        self.assertEqual({host_a}, set(
            self._get_allocations_by_server_uuid(self.server['id'])))
        self.assertEqual({}, self._get_allocations_by_server_uuid(
            self.migration_record().uuid))
        self.assertEqual(self.pool_b_vdis, self.managed_vdis('pool-b'))
        self.assertEqual([], self.migrate_send_tasks())
        self.assert_no_records()
        self.stop_and_check(self.vm_uuid, ctl=self.ctl['pool-a'],
                            devices=('0', '4'), written=True)

    def test_task_still_running_is_cancelled_at_restart(self):
        self.ctl['pool-a'].configure(bandwidth=128 * 1024)
        self.die_mid_copy()
        self.restart_host1()
        self.assert_home()
        self.assertIn('still running in XAPI', self.logs.output)

    def test_migration_completed_meanwhile_is_brought_back(self):
        self.ctl['pool-a'].configure(bandwidth=2 * MiB)
        self.die_mid_copy()
        # The source compute stays down for longer than the copy.
        self.poll(lambda: self.vm_of(self.server, 'pool-b')[0] is not None
                  and self.vm_of(self.server, 'pool-a')[0] is None,
                  timeout=300, what='the migration to complete in XAPI')
        _, rec = self.vm_of(self.server, 'pool-b')
        self.assertIn(migrationmod.MARKER_KEY, rec['other_config'])
        self.restart_host1()
        self.poll(lambda: self.vm_of(self.server, 'pool-a')[0] is not None
                  and self.vm_of(self.server, 'pool-b')[0] is None,
                  timeout=300, what='the VM to be brought back')
        self.assert_home()
        self.assertIn('completed while its nova-compute was down',
                      self.logs.output)
        self.assertIn('Brought the instance back', self.logs.output)
        self.assertNotIn(self.simfix.password, self.logs.output)

    def test_delete_removes_the_vm_left_in_the_other_pool(self):
        self.ctl['pool-a'].configure(bandwidth=4 * MiB)
        self.die_mid_copy()
        self.poll(lambda: self.vm_of(self.server, 'pool-a')[0] is None,
                  timeout=300, what='the migration to complete in XAPI')
        # The way back fails (the destination SR is full): the VM stays
        # in pool-b while Nova has the server on host1.
        self.ctl['pool-a'].fault_inject(
            'prepare', code='SR_BACKEND_FAILURE_44',
            params=['', 'There is insufficient space', ''])
        self.restart_host1()
        self.poll(lambda: 'Bringing the instance back from XAPI pool' in
                  self.logs.output, what='the way back to fail')
        self.assertEqual('Running', self.vm_of(self.server, 'pool-b')[1][
            'power_state'])
        self._delete_server(self.server)
        self.assertEqual((None, None), self.vm_of(self.server, 'pool-a'))
        self.assertEqual((None, None), self.vm_of(self.server, 'pool-b'))
        self.assertEqual(self.pool_b_vdis, self.managed_vdis('pool-b'))
        self.assertIn('Removed the VM of this instance from XAPI pool',
                      self.logs.output)
        self.assertEqual([], self.migrate_send_tasks())
        api = self.xapi['pool-a']
        pool_other = api.pool.get_other_config(api.pool.get_all()[0])
        self.assertEqual([], [k for k in pool_other
                              if k.startswith(migrationmod.MARKER_KEY)])

    def test_server_deleted_while_its_compute_was_down(self):
        # The API deletes locally when the compute is down: nothing
        # reaches the driver. The VM the completed migration put in
        # pool-b is removed when host1 starts again.
        self.ctl['pool-a'].configure(bandwidth=4 * MiB)
        self.die_mid_copy()
        self.poll(lambda: self.vm_of(self.server, 'pool-a')[0] is None,
                  timeout=300, what='the migration to complete in XAPI')
        service = self.admin_api.get_services(
            binary='nova-compute', host='host1')[0]
        self.admin_api.put_service_force_down(service['id'], True)
        self._delete_server(self.server)
        self.assertIsNotNone(self.vm_of(self.server, 'pool-b')[0])
        self.admin_api.put_service_force_down(service['id'], False)
        self.restart_host1()
        # Until the start-up calls it (process_instances_at_startup).
        driver = self.computes['host1'].manager.driver
        driver._migration.reconcile_host(
            nova_context.get_admin_context(), [])
        self.assertEqual((None, None), self.vm_of(self.server, 'pool-b'))
        self.assertEqual(self.pool_b_vdis, self.managed_vdis('pool-b'))
        api = self.xapi['pool-a']
        pool_other = api.pool.get_other_config(api.pool.get_all()[0])
        self.assertEqual([], [k for k in pool_other
                              if k.startswith(migrationmod.MARKER_KEY)])
        self.assertIn('was deleted while an interrupted live migration',
                      self.logs.output)


class InPoolOwnerDeathTest(base.SxmServicesTestCase):
    """The same death during an in-pool block migration.

    host3 manages pool-b-host2 with its own local SR; its server moves
    (Storage XenMotion inside pool-b) to pool-b-host1 (host2). host3 dies
    mid-copy, the copy completes, host3 starts again: the VM comes back
    to pool-b-host2 and its local SR, where Nova has it.
    """

    topology = test_servers.two_host_topology()

    def setUp(self):
        super().setUp()
        self.logs = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.start_local_sr_compute()
        self.died = threading.Event()
        real = tasks.wait_task
        test = self

        def wait_task(pool, task, what, *args, **kwargs):
            if kwargs.get('call') == 'VM.migrate_send' and \
                    not test.died.is_set():
                OwnerDeathTest.kill_owner(test, pool, task)
            return real(pool, task, what, *args, **kwargs)
        self.useFixture(fixtures.MonkeyPatch(
            'sxm_core.tasks.wait_task', wait_task))
        record_custodians(self)

    def test_completed_in_pool_migration_is_brought_back(self):
        image = self.make_image(random.Random(8).randbytes(2 * MiB))
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=1)
        server = self._create_server(image_uuid=image, flavor_id=flavor,
                                     host='host3', networks='none')
        api = self.xapi['pool-b']
        vm, rec = self.vm_of(server, 'pool-b')
        local2 = self.sr_uuid('pool-b', self.LOCAL2)
        self.ctl['pool-b'].configure(bandwidth=4 * MiB)
        self.write(rec['uuid'], ('0', '4'), rate=16 * 1024, seed=13,
                   ctl=self.ctl['pool-b'])
        self.wait_writes(rec['uuid'], 5, ctl=self.ctl['pool-b'])
        self.api.post_server_action(server['id'], {
            'os-migrateLive': {'host': 'host2', 'block_migration': True}})
        self.poll(self.died.is_set, timeout=120, what='host3 to die')

        def resident():
            ref, rec = self.vm_of(server, 'pool-b')
            if rec is None or rec['current_operations']:
                return None
            return api.host.get_name_label(rec['resident_on'])
        self.poll(lambda: resident() == 'pool-b-host1', timeout=300,
                  what='the migration to complete in XAPI')
        self.sxm_flags('pool-b', **self.HOST3_FLAGS)
        self.computes['host3'] = self.restart_compute_service(
            self.computes['host3'], keep_hypervisor_state=False)
        self.poll(lambda: resident() == 'pool-b-host2', timeout=300,
                  what='the VM to be brought back to pool-b-host2')
        found = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('host3', found['OS-EXT-SRV-ATTR:host'])
        vm, rec = self.vm_of(server, 'pool-b')
        self.assertEqual('Running', rec['power_state'])
        self.assertEqual({local2}, {api.SR.get_uuid(d['SR']) for d in
                                    self.disks_of(vm, 'pool-b').values()})
        self.assertNotIn(migrationmod.MARKER_KEY, rec['other_config'])
        self.assertIn('Brought the instance back', self.logs.output)
        self.stop_and_check(rec['uuid'], ctl=self.ctl['pool-b'],
                            devices=('0', '4'), written=True)
