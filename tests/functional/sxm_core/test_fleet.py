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

"""Migrations whose client is gone: find them, follow them, stop them.

A real ``sxm migrate`` process is killed with SIGKILL mid-copy. The
migration runs on in XAPI; ``fleet`` finds it by task or VM, follows it to
its end (the guest's bytes checked) or cancels it (the source VM keeps
running), and nothing the killed client created in the destination pool
-- its login, the migrate_receive token -- is left there afterwards.
"""

from sxm_core import constants
from sxm_core import errors
from sxm_core import fleet
from tests.functional.sxm_core import base
from tests.functional.sxm_core import cliproc

MiB = base.MiB
# 48 MiB at 4 MiB/s: time to kill the client and look around.
BANDWIDTH = 4 * MiB


class FleetTestCase(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        self.ctl.configure(bandwidth=BANDWIDTH)
        self.vm, self.vdis = self.make_vm(name='web')
        self.uuid = self.api.VM.get_uuid(self.vm)
        self.write(self.vm, rate=MiB // 4)
        self.wait_writes(self.vm)
        self.source = self.pool('pool-a')

    def killed_client(self):
        """Start ``sxm migrate web``, SIGKILL it mid-copy: (task, uuid)."""
        self.created_b = self.spy_sessions('pool-b')
        proc = cliproc.Sxm(self, [
            'migrate', 'web', '--url', self.url('pool-a'),
            '--dest-url', self.url('pool-b'), '--tier', 'same'],
            cliproc.environment(self.simfix.password))
        task, rec = cliproc.wait_task(self, self.api, above=0.1,
                                      process=proc)
        proc.proc.kill()
        proc.proc.wait()
        return task, rec['uuid']

    def assertNothingOfTheClientLeft(self):
        """No session the killed client made remains in pool-b."""
        def gone():
            return not set(self.created_b) & self.sessions('pool-b')
        # Sessions raise no events: the custodian's logout is polled.
        self.poll(gone, what='the killed client\'s sessions in pool-b '
                             'to be logged out')


class TestKilledClient(FleetTestCase):

    def test_the_migration_goes_on_and_can_be_followed_to_the_end(self):
        task, task_uuid = self.killed_client()
        running = fleet.list_migrations(self.source)
        self.assertEqual([task], [i.task_ref for i in running])
        info, = running
        self.assertEqual((task_uuid, 'web', self.uuid, self.vm),
                         (info.task_uuid, info.vm_name, info.vm_uuid,
                          info.vm_ref))
        self.assertEqual('pending', info.status)
        self.assertEqual('Async.VM.migrate_send', info.name_label)
        self.assertTrue(info.host_name)
        self.assertGreater(info.progress, 0.1)
        for ident in (task_uuid, task, 'web', self.uuid):
            self.assertEqual(task, fleet.find_migration(
                self.source, ident).task_ref)
        seen = []
        outcome = fleet.watch(self.source, info, progress=seen.append)
        self.assertTrue(outcome.ok, outcome.describe())
        self.assertEqual(1.0, seen[-1])
        new_vm = self.vm_in(self.uuid, self.api_b)
        self.assertEqual(new_vm, outcome.vm_ref)
        self.assertIsNone(self.vm_in(self.uuid, self.api))
        self.stop_and_check(new_vm, ctl=self.ctl_b)
        self.assertEqual([], fleet.list_migrations(self.source))
        self.assertNothingOfTheClientLeft()

    def test_cancel_keeps_the_source_vm_running(self):
        task, task_uuid = self.killed_client()
        info = fleet.find_migration(self.source, 'web')
        outcome = fleet.cancel(self.source, info)
        self.assertEqual(constants.TASK_CANCELLED, outcome.status,
                         outcome.describe())
        self.assertIsInstance(outcome.error, errors.TaskCancelled)
        self.assertEqual('Running', outcome.source_vm)
        self.assertIn('The source VM is Running', outcome.describe())
        self.assertIsNone(self.vm_in(self.uuid, self.api_b))
        self.stop_and_check(self.vm)
        self.assertNothingOfTheClientLeft()


class TestFind(FleetTestCase):

    def test_nothing_running_is_a_typed_error(self):
        self.assertEqual([], fleet.list_migrations(self.source))
        exc = self.assertRaises(errors.MigrationNotFound,
                                fleet.find_migration, self.source, 'web')
        self.assertIn("'web'", str(exc))
        self.assertIsInstance(exc, errors.NotFound)
