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

"""Call budgets of ``sxm migrate``, counted by the simulator's call log.

A pool master answers every client of a region: what one migration asks
of it must not grow with the pool. The budget counts every XML-RPC call
both pools answer for the CLI, logins included; waiting on the
migrate_send task (event.from and task polls) is counted apart, as it
grows with the time the copy takes, not with what is read.
"""

import io

import fixtures

from sxm_core import cli
from sxm_core import fleet
from tests.functional.sxm_core import base

# What the migration asks of XAPI, outside the task wait.
MIGRATE_BUDGET = 30
# The wait on a task: how long it runs decides how many there are.
# (XenAPI sends event.from on the wire as event_from.)
WAIT_METHODS = frozenset(('event.from', 'event_from', 'event.next',
                          'task.get_record', 'task.get_status',
                          'task.get_progress'))
ENV = ('SXM_URL', 'SXM_USERNAME', 'SXM_DEST_URL', 'SXM_DEST_USERNAME',
       'SXM_DEST_PASSWORD')


class TestMigrateBudget(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        for name in ENV:
            self.useFixture(fixtures.EnvironmentVariable(name))
        self.useFixture(fixtures.EnvironmentVariable(
            'SXM_PASSWORD', self.simfix.password))
        self.vm, _ = self.make_vm(name='web')
        self.uuid = self.api.VM.get_uuid(self.vm)
        self.logs = {name: self.sim.pools[name].call_log
                     for name in ('pool-a', 'pool-b')}

    def open_sessions(self):
        return {name: len(self.sessions(name)) for name in self.logs}

    def count(self):
        """(calls outside the wait, wait calls, by method) of both pools.

        The token's custodian (a child process that only follows the task,
        in case the command dies) counts with the wait.
        """
        work, wait, by_method = 0, 0, {}
        for name, log in self.logs.items():
            for method, originator, _size in log.entries():
                if (method in WAIT_METHODS
                        or originator == fleet.WATCHDOG_ORIGINATOR):
                    wait += 1
                    continue
                work += 1
                key = '%s %s' % (name, method)
                by_method[key] = by_method.get(key, 0) + 1
        return work, wait, by_method

    def test_migrate_two_disks_one_vif_within_budget(self):
        before = self.open_sessions()
        for log in self.logs.values():
            log.reset()
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(['migrate', 'web', '--url', self.url('pool-a'),
                           '--dest-url', self.url('pool-b')],
                          out=out, err=err)
        self.assertEqual(0, status, out.getvalue() + err.getvalue())
        # The custodian exits (and logs out) a moment after the command.
        self.poll(lambda: before == self.open_sessions(),
                  what='the sessions of sxm migrate to end')
        work, wait, by_method = self.count()
        # It did migrate: the VM runs in pool-b, with both its disks.
        self.assertIsNotNone(self.vm_in(self.uuid, self.api_b))
        detail = '%d calls (+%d waiting on the task): %s' % (
            work, wait, ', '.join('%s x%d' % item
                                  for item in sorted(by_method.items())))
        self.assertEqual(before, self.open_sessions(),
                         'sessions left open by sxm migrate')
        self.assertLessEqual(work, MIGRATE_BUDGET, detail)

    def test_planning_does_not_grow_with_the_pools(self):
        # The same plan in pools whose other VMs and disks multiply.
        small = self.plan_calls()
        for n in range(20):
            self.make_vm(name='other-%d' % n, start=False)
            vm = self.create_vm('remote-%d' % n, api=self.api_b)
            vdi = self.create_vdi(self.sr_named(base.EXT, self.api_b),
                                  base.MiB, 'remote-%d' % n, api=self.api_b)
            self.create_vbd(vm, vdi, api=self.api_b)
        self.assertEqual(small, self.plan_calls())
        whole = sorted(m for m in small if m.endswith('.get_all_records')
                       and not m.endswith(' pool.get_all_records'))
        self.assertEqual([], whole, 'whole tables read to plan')

    def plan_calls(self):
        """{pool method: count} of one ``sxm plan`` of the VM."""
        for log in self.logs.values():
            log.reset()
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(['plan', 'web', '--url', self.url('pool-a'),
                           '--dest-url', self.url('pool-b')],
                          out=out, err=err)
        self.assertEqual(0, status, out.getvalue() + err.getvalue())
        return self.count()[2]
