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

"""A source pool that goes silent mid-migration (no reset: packets vanish).

The core talks to pool-a through a ``FreezingProxy``. A freeze shorter than
the contact limit is survived and the migration's real outcome reported; a
freeze that lasts ends the wait with ``ContactLost`` naming the task within
about the contact limit -- not after the old 300 s socket timeout -- and
the task, which runs on in XAPI, can be followed to its end afterwards.
"""

import threading
import time

from sxm_core import errors
from sxm_core import fleet
from sxm_core import migrate
from sxm_core import sessions
from sxm_core import slots as slotsmod
from tests.functional.sxm_core import base
from tests.functional.sxm_core import cliproc
from tests.functional.sxm_core import tcpproxy

MiB = base.MiB
# 48 MiB to move at 3 MiB/s: the migration outlasts the freezes below.
BANDWIDTH = 3 * MiB
SHORT_FREEZE = 12.0     # longer than one event.from (5 s + 5 s grace)
# The pool's default contact limit plus one event.from and a login: the
# bound the issue asks for ("within ~30-40 s, not 300 s").
CONTACT_BOUND = 30.0 + 10.0 + 15.0


class FrozenTestCase(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        self.proxy = self.useFixture(tcpproxy.FreezingProxy(
            self.url('pool-a')))
        self.addCleanup(self.proxy.thaw)
        self.ctl.configure(bandwidth=BANDWIDTH)
        self.vm, self.vdis = self.make_vm(name='web')
        self.uuid = self.api.VM.get_uuid(self.vm)
        # Light writes: the mirrored ones share the capped link.
        self.write(self.vm, rate=MiB // 4)
        self.wait_writes(self.vm)

    def proxied_pool(self, **kwargs):
        kwargs.setdefault('retries', 1)
        kwargs.setdefault('backoff', 0.05)
        pool = sessions.SessionPool(self.proxy.url, self.simfix.username,
                                    self.simfix.password, **kwargs)
        self.addCleanup(pool.close)
        return pool

    def start(self, migrator):
        """Run a planned migration in a thread; returns its outcome dict."""
        the_plan, problems = migrator.plan('web', tier='same')
        outcome = {}

        def work():
            try:
                outcome['result'] = migrator.migrate(the_plan)
            except Exception as exc:  # inspected by the test
                outcome['error'] = exc
            outcome['ended'] = time.monotonic()
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 120)
        task, rec = cliproc.wait_task(self, self.api, above=0.05)
        return thread, outcome, task, rec['uuid']


class TestFrozenSource(FrozenTestCase):

    def test_a_short_freeze_is_survived_and_the_outcome_reported(self):
        migrator = migrate.Migrator(self.proxied_pool(), self.pool('pool-b'),
                                    slots=slotsmod.HostSlots(poll=0.01))
        thread, outcome, task, task_uuid = self.start(migrator)
        connections = self.proxy.accepted
        self.proxy.freeze()
        time.sleep(SHORT_FREEZE)   # the outage itself
        self.proxy.thaw()
        thread.join(120)
        self.assertNotIn('error', outcome, outcome.get('error'))
        new_vm = self.vm_in(self.uuid, self.api_b)
        self.assertEqual(new_vm, outcome['result'].vm_ref)
        self.assertIsNone(self.vm_in(self.uuid, self.api))
        # The waiter noticed the silence and watched again.
        self.assertGreater(self.proxy.accepted, connections)
        self.stop_and_check(new_vm, ctl=self.ctl_b)

    def test_a_lasting_freeze_says_contact_is_lost_naming_the_task(self):
        created_b = self.spy_sessions('pool-b')
        migrator = migrate.Migrator(self.proxied_pool(), self.pool('pool-b'),
                                    slots=slotsmod.HostSlots(poll=0.01))
        thread, outcome, task, task_uuid = self.start(migrator)
        self.proxy.freeze()
        frozen_at = time.monotonic()
        thread.join(CONTACT_BOUND * 3)
        self.assertIn('error', outcome, 'the wait did not end')
        exc = outcome['error']
        self.assertIsInstance(exc, errors.ContactLost)
        self.assertIn(task_uuid, str(exc))
        self.assertIn('may still be running', str(exc))
        self.assertIn("VM 'web'", str(exc))
        self.assertLess(outcome['ended'] - frozen_at, CONTACT_BOUND)
        # The migration runs on in XAPI; its token is still held here.
        self.assertTrue(migrator.leases.held(task))
        self.proxy.thaw()
        source = self.pool('pool-a')
        # It may have ended during the freeze: found by its task's uuid
        # all the same (the client never got to destroy the task).
        info = fleet.find_migration(source, task_uuid)
        self.assertEqual(task, info.task_ref)
        result = fleet.watch(source, info, leases=migrator.leases)
        self.assertTrue(result.ok, result.describe())
        # Whoever finds the task finished logs the token out.
        self.assertFalse(migrator.leases.held(task))
        self.assertEqual(set(), set(created_b) & self.sessions('pool-b'))
        new_vm = self.vm_in(self.uuid, self.api_b)
        self.assertEqual(new_vm, result.vm_ref)
        self.stop_and_check(new_vm, ctl=self.ctl_b)


class TestFrozenCli(FrozenTestCase):

    def test_sxm_migrate_says_contact_is_lost_naming_the_task(self):
        proc = cliproc.Sxm(self, [
            'migrate', 'web', '--url', self.proxy.url,
            '--dest-url', self.url('pool-b'), '--tier', 'same'],
            cliproc.environment(self.simfix.password))
        task, rec = cliproc.wait_task(self, self.api, above=0.05,
                                      process=proc)
        self.proxy.freeze()
        frozen_at = time.monotonic()
        status, out, err = proc.finish(CONTACT_BOUND * 3)
        elapsed = time.monotonic() - frozen_at
        self.assertNotEqual(0, status, proc.report())
        self.assertIn('Lost contact with XAPI', out + err)
        self.assertIn(rec['uuid'], out + err)
        self.assertIn('may still be running', out + err)
        self.assertNotIn('Traceback', out + err)
        self.assertNotIn(self.simfix.password, out + err)
        self.assertLess(elapsed, CONTACT_BOUND, proc.report())
        # The migration went on without the client.
        self.proxy.thaw()
        source = self.pool('pool-a')
        outcome = fleet.watch(source,
                              fleet.find_migration(source, rec['uuid']))
        self.assertTrue(outcome.ok, outcome.describe())
        self.stop_and_check(self.vm_in(self.uuid, self.api_b),
                            ctl=self.ctl_b)
