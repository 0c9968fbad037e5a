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

"""No password and no XAPI session id in logs or error messages.

Every log record of the process is captured at DEBUG (root logger) during
whole migrations, a successful one and a failed one, and compared with
every secret of the run: the password and every session ref either pool
handed out, including the one host.migrate_receive creates for the
destination (which travels in the URLs of its answer).
"""

import logging

import fixtures

from sxm_core import errors
from tests.functional.sxm_core import base


class TestSecrets(base.CoreTestCase):

    def test_no_secret_in_logs_or_errors(self):
        created = {'pool-a': self.spy_sessions('pool-a'),
                   'pool-b': self.spy_sessions('pool-b')}
        log = self.useFixture(fixtures.FakeLogger(
            level=logging.DEBUG,
            format='%(asctime)s %(levelname)s %(name)s: %(message)s'))
        messages = []

        # A successful cross-pool migration under a writing guest.
        vm, _ = self.make_vm(name='ok')
        self.write(vm)
        m = self.migrator()
        the_plan, problems = m.plan(vm, tier='same')
        messages += [p.message for p in problems]
        messages += [p.message for p in m.check(the_plan)]
        result = m.migrate(the_plan, progress=lambda p: None)
        self.ctl_b.workload_stop(result.vm_ref)

        # A failed one: the mirror breaks.
        vm, _ = self.make_vm(name='broken')
        self.write(vm)
        the_plan, problems = m.plan(vm, tier='same')
        self.ctl.fault_inject('mirror', percent=50)
        exc = self.assertRaises(errors.MigrationFailed, m.migrate, the_plan)
        messages += [str(exc), repr(exc), str(exc.cause), repr(exc.cause)]
        self.ctl.workload_stop(vm)

        # A check xapi refuses (the VM is paused after planning).
        the_plan, problems = m.plan(vm)
        self.api.VM.pause(vm)
        messages += [p.message for p in m.check(the_plan)]
        m.source.close()
        m.dest.close()

        output = log.output
        # Debug logging was on, and the core logged through it.
        self.assertIn('DEBUG sxm_core.sessions: Logged in to', output)
        self.assertIn('INFO sxm_core.migrate: Starting migration', output)
        self.assertIn('ERROR sxm_core.migrate:', output)
        # The pools made sessions for the core: logins in both, and
        # migrate_receive tokens in pool-b.
        self.assertGreaterEqual(len(created['pool-a']), 1)
        self.assertGreaterEqual(len(created['pool-b']), 3)
        secrets = ([self.simfix.password, self.session.handle,
                    self.session_b.handle]
                   + created['pool-a'] + created['pool-b'])
        for secret in secrets:
            self.assertNotIn(secret, output)
            for message in messages:
                self.assertNotIn(secret, message)
