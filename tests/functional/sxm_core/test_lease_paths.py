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

"""Every path of a real migration ends its migrate_receive token once.

A Migrator between the simulator's pools over HTTP; the destination
pool's ``logout_token`` is counted (it stays the real one: the token is
logged out in pool-b), and the token's session must be gone afterwards.
"""

import threading

import XenAPI

from sxm_core import errors
from sxm_core import lease
from sxm_core import migrate
from sxm_core import slots
from tests.functional.sxm_core import base
from tests.functional.sxm_core import test_migrate


class LeasePathsTestCase(test_migrate.MigrateTestCase):

    def setUp(self):
        super().setUp()
        self.vm, self.vdis, self.uuid = self.writing_vm()

    def migrator(self, **kwargs):
        m = super().migrator(**kwargs)
        return self.counting(m)

    def counting(self, m):
        self.logged_out = []
        real = m.dest.logout_token

        def logout_token(token):
            self.logged_out.append(token)
            return real(token)
        m.dest.logout_token = logout_token
        return m

    def prepared(self, m):
        the_plan, _ = m.plan(self.uuid, tier='same')
        problems, held = m.prepare(the_plan)
        self.assertEqual([], problems)
        self.assertEqual(lease.HELD, held.state)
        self.assertIn(held.token, self.sessions('pool-b'))
        return the_plan, held

    def assertEndedOnce(self, held):
        self.assertEqual([held.token], self.logged_out)
        self.assertTrue(held.ended)
        self.assertNotIn(held.token, self.sessions('pool-b'))


class TestLeasePaths(LeasePathsTestCase):

    def test_success(self):
        m = self.migrator()
        the_plan, held = self.prepared(m)
        result = m.migrate(the_plan, lease=held)
        self.assertEndedOnce(held)
        self.assertFalse(m.leases.held(held.task))
        self.stop_and_check(result.vm_ref, ctl=self.ctl_b)

    def test_failure(self):
        m = self.migrator()
        the_plan, held = self.prepared(m)
        self.ctl.fault_inject('mirror', percent=50)
        exc = self.assertRaises(errors.MigrationFailed, m.migrate, the_plan,
                                lease=held)
        self.assertEqual('MIRROR_FAILED', exc.cause.code)
        self.assertEndedOnce(held)
        self.stop_and_check(self.vm)

    def test_cancel(self):
        m = self.migrator()
        the_plan, held = self.prepared(m)
        cancel = threading.Event()

        def cancel_past_a_tenth(progress):
            if progress.fraction > 0.1:
                cancel.set()
        self.assertRaises(errors.MigrationCancelled, m.migrate, the_plan,
                          test_migrate.Progress(cancel_past_a_tenth), cancel,
                          lease=held)
        self.assertEndedOnce(held)
        self.stop_and_check(self.vm)

    def test_retry_after_too_many_storage_migrates(self):
        m = self.migrator(too_many_interval=0.01, sleep=lambda s: None)
        the_plan, held = self.prepared(m)
        self.ctl.fault_inject('prepare', code='TOO_MANY_STORAGE_MIGRATES',
                              params=['3'], times=1)
        result = m.migrate(the_plan, lease=held)
        self.assertEqual(['refused', 'retry'], [k for k, _ in m.retry_log])
        self.assertEndedOnce(held)
        self.stop_and_check(result.vm_ref, ctl=self.ctl_b)

    def test_released_before_the_hand_off(self):
        m = self.migrator()
        the_plan, held = self.prepared(m)
        self.assertTrue(held.release())
        self.assertFalse(held.release())
        self.assertFalse(held.end())
        self.assertEndedOnce(held)
        # Too late to migrate with it.
        self.assertRaises(lease.LeaseError, m.migrate, the_plan, lease=held)
        self.assertEqual([held.token], self.logged_out)
        self.stop_and_check(self.vm)

    def test_refused_by_xapi_ends_the_token_in_prepare(self):
        faults = {'VM.assert_can_migrate': [XenAPI.Failure(
            ['VIF_NOT_IN_MAP', 'OpaqueRef:vif'])]}
        source = self.pool('pool-a',
                           session_factory=base.flaky_factory(faults))
        m = self.counting(migrate.Migrator(
            source, self.pool('pool-b'), slots=slots.HostSlots(poll=0.01)))
        the_plan, _ = m.plan(self.uuid, tier='same')
        tokens = self.spy_sessions('pool-b')
        problems, held = m.prepare(the_plan)
        self.assertEqual([], faults['VM.assert_can_migrate'])
        self.assertIsNone(held)
        self.assertEqual(['xapi'], [p.code for p in problems])
        self.assertEqual(1, len(self.logged_out))
        self.assertIn(self.logged_out[0], tokens)
        self.assertNotIn(self.logged_out[0], self.sessions('pool-b'))
        self.stop_and_check(self.vm)
