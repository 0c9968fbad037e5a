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

"""Storage XenMotion next to other work: a VM migrates once at a time
(xapi marks the VM with a ``migrate_send`` current operation and refuses
a second one with OTHER_OPERATION_IN_PROGRESS), and migrations that cross
in opposite directions between two pools do not stop either pool."""

import sys
import threading
import time
import xmlrpc.client

import XenAPI

from tests.functional.xapi_sim import migrate_base
from xapi_sim import fixture

MiB = migrate_base.MiB


class TestOneMigrationPerVM(migrate_base.MigrateTestCase):

    def setUp(self):
        super().setUp()
        self.vm, self.vdis, self.vif = self.make_vm(
            [(self.ext(), 8 * MiB, 8), (self.lvm(), 16 * MiB, 8)])
        self.uuid = self.api.VM.get_uuid(self.vm)
        self.write(self.vm, ['0', '1'], rate=512 * 1024)
        self.wait_writes(self.vm)
        # 1 MiB to copy at 4 MiB/s, shared with the mirrored writes: the
        # first migration runs for half a second.
        self.ctl.configure(bandwidth=4 * MiB)
        self.addCleanup(self.drain)

    def drain(self):
        """Let no migration run on into the teardown of the simulator."""
        deadline = time.monotonic() + 10.0
        for task in self.api.task.get_all():
            try:
                self.api.task.cancel(task)
            except XenAPI.Failure:
                pass  # over, or past the point of no return
            while (self.api.task.get_status(task) in ('pending',
                                                      'cancelling')
                   and time.monotonic() < deadline):
                time.sleep(0.02)

    def first_migration(self, dest, vdi_map, vif_map=None):
        task = self.migrate_async(self.vm, dest, vdi_map, vif_map)
        self.wait_progress(task)
        return task

    def assertRefusedAtOnce(self, task):
        """``task`` (a second operation on the VM) failed, and fast."""
        deadline = time.monotonic() + 1.0
        while self.api.task.get_status(task) == 'pending':
            if time.monotonic() > deadline:
                self.fail('a second migration of a migrating VM was '
                          'accepted and runs; xapi refuses it at once with '
                          'OTHER_OPERATION_IN_PROGRESS')
            time.sleep(0.01)
        rec = self.api.task.get_record(task)
        self.assertEqual('failure', rec['status'], rec)
        error = rec['error_info']
        # xapi: OTHER_OPERATION_IN_PROGRESS ["VM.migrate_send"; vm]
        # (xapi_vm_lifecycle.report_concurrent_operations_error).
        self.assertEqual('OTHER_OPERATION_IN_PROGRESS', error[0], error)
        self.assertIn(self.vm, error[1:])

    def test_vm_shows_its_migration_as_current_operation(self):
        ext_b = self.ext(self.api_b)
        task = self.first_migration(self.dest_b(),
                                    {v: ext_b for v in self.vdis},
                                    {self.vif: self.net_b})
        ops = self.api.VM.get_current_operations(self.vm)
        self.assertEqual({task: 'migrate_send'}, ops)
        self.assertNotIn('migrate_send',
                         self.api.VM.get_allowed_operations(self.vm))
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        self.assertEqual({}, self.api_b.VM.get_current_operations(
            self.api_b.VM.get_by_uuid(self.uuid)))

    def test_second_in_pool_migration_is_refused(self):
        lvm, ext = self.lvm(), self.ext()
        vdi_map = {self.vdis[0]: lvm, self.vdis[1]: ext}
        first = self.first_migration(self.dest_a(), vdi_map)
        self.assertRefusedAtOnce(
            self.migrate_async(self.vm, self.dest_a(), vdi_map))
        rec = self.wait_task(first)
        self.assertEqual('success', rec['status'], rec['error_info'])
        # One copy of each disk, on its target SR, holding what the
        # guest wrote.
        vdis = self.vdi_set()
        self.assertEqual(2, len(vdis), vdis)
        self.assertEqual({lvm, ext}, {self.api.VDI.get_SR(v) for v in vdis})
        self.stop_and_check(self.vm, devices=['0', '1'])

    def test_second_cross_pool_migration_is_refused(self):
        ext_b = self.ext(self.api_b)
        vdi_map = {v: ext_b for v in self.vdis}
        vif_map = {self.vif: self.net_b}
        first = self.first_migration(self.dest_b(), vdi_map, vif_map)
        self.assertRefusedAtOnce(
            self.migrate_async(self.vm, self.dest_b(), vdi_map, vif_map))
        rec = self.wait_task(first)
        self.assertEqual('success', rec['status'], rec['error_info'])
        self.assertEqual(set(), self.vdi_set())
        self.assertEqual(2, len(self.vdi_set(self.api_b)))
        self.stop_and_check(self.uuid, ctl=self.ctl_b, devices=['0', '1'])

    def test_vdi_pool_migrate_during_vm_migration_is_refused(self):
        ext_b = self.ext(self.api_b)
        first = self.first_migration(self.dest_b(),
                                     {v: ext_b for v in self.vdis},
                                     {self.vif: self.net_b})
        self.assertRefusedAtOnce(
            self.api.Async.VDI.pool_migrate(self.vdis[0], self.lvm(), {}))
        rec = self.wait_task(first)
        self.assertEqual('success', rec['status'], rec['error_info'])
        self.assertEqual(set(), self.vdi_set())
        self.stop_and_check(self.uuid, ctl=self.ctl_b, devices=['0', '1'])


class _TimeoutTransport(xmlrpc.client.Transport):
    """A client that gives up instead of waiting for a stuck server."""

    def __init__(self, timeout):
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.timeout = self._timeout
        return conn


class TestOppositeDirections(migrate_base.MigrateTestCase):

    def test_checks_crossing_between_pools_do_not_deadlock(self):
        """pool-a checks a move to pool-b while pool-b checks one to pool-a.

        Clients do that all the time (two computes each checking a live
        migration to the other). Neither pool may stop answering.
        """
        # A simulator of its own: if it locks up, this test fails on a
        # timeout and nothing else hangs (its sessions are never logged
        # out).
        simfix = self.useFixture(fixture.SimulatorFixture())

        def session(pool, timeout=5.0):
            s = XenAPI.Session(simfix.url(pool),
                               transport=_TimeoutTransport(timeout))
            s.login_with_password(simfix.username, simfix.password)
            return s.xenapi

        sides = {}
        for here, there in (('pool-a', 'pool-b'), ('pool-b', 'pool-a')):
            api, remote = session(here), session(there)
            vm, vdis, vif = self.running_vm(api)
            host = remote.pool.get_master(remote.pool.get_all()[0])
            net = self.network(remote)
            dest = remote.host.migrate_receive(host, net, {})
            sides[here] = (vm, dest, {v: self.ext(remote) for v in vdis},
                           {vif: net})

        # Switch threads often, so that the checks interleave finely.
        self.addCleanup(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(1e-5)
        errors = []
        calls = [0]
        stop_at = time.monotonic() + 2.0

        def hammer(pool):
            try:
                api = session(pool)
                vm, dest, vdi_map, vif_map = sides[pool]
                while time.monotonic() < stop_at:
                    api.VM.assert_can_migrate(vm, dest, True, vdi_map,
                                              vif_map, {})
                    calls[0] += 1
            except Exception as exc:
                errors.append('%s: %r' % (pool, exc))

        threads = [threading.Thread(target=hammer, args=(pool,),
                                    daemon=True)
                   for pool in ('pool-a', 'pool-b') * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20.0)
        self.assertEqual([], errors,
                         'after %d checks the pools stopped answering'
                         % calls[0])
        # Both pools still answer.
        for pool in ('pool-a', 'pool-b'):
            self.assertEqual(1, len(session(pool, 2.0).pool.get_all()))

    def running_vm(self, api, disks=16):
        """A running VM with many small disks and a VIF, through ``api``.

        Many disks make each check long enough for the two pools' checks
        to meet.
        """
        vm = self.create_vm(api=api)
        vdis = []
        for i in range(disks):
            vdi = self.create_vdi(self.ext(api), MiB, api=api)
            self.create_vbd(vm, vdi, str(i), api=api)
            vdis.append(vdi)
        vif = self.create_vif(vm, self.network(api), api=api)
        api.VM.start(vm, False, False)
        return vm, vdis, vif
