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

"""What a live block migration through Nova costs XAPI, counted by XAPI.

The simulator logs every XML-RPC call each pool answers (method and the
session's originator). A live block migration of a two-disk VM with one
VIF, between the computes of two pools, must make at most ``BUDGET``
calls in all (both computes, both pools) outside the task wait (the
``event.from`` calls that follow the task), ask for one migrate_receive
token, log in once per pool, read no pool's whole table of VMs, SRs or
networks, and leave each pool with the sessions it had before.
"""

import time

from nova_sxm.tests.functional import test_live_migration

BUDGET = 60
ORIGINATOR = 'openstack-sxm'
WAIT_METHODS = ('event.from', 'event_from')
LOGINS = ('session.login_with_password', 'session_login_with_password')
POOLS = ('pool-a', 'pool-b')


class TestLiveMigrationCallBudget(test_live_migration.LiveMigrationBase):

    def entries(self, pool):
        """[method] the services asked of ``pool`` since the last reset."""
        return [method for method, originator, _ in
                self.sim.pools[pool].call_log.entries()
                if originator.startswith(ORIGINATOR)]

    def settled(self):
        """Wait until neither pool has answered a service for a while."""
        last, quiet_since = None, time.monotonic()
        while time.monotonic() - quiet_since < 1.0:
            now = tuple(len(self.entries(p)) for p in POOLS)
            if now != last:
                last, quiet_since = now, time.monotonic()
            time.sleep(0.1)

    def test_a_live_block_migration_within_budget(self):
        self.start_guest()
        self.settled()
        before = {p: self.ctl[p].calls(reset=True)['sessions_open']
                  for p in POOLS}
        self.migrate(True)
        self.wait_migration(self.server, ['completed'], ignore=self.earlier)
        self.assert_on('host2', 'pool-b', 'pool-a')
        self.settled()
        made = {p: [m for m in self.entries(p) if m not in WAIT_METHODS]
                for p in POOLS}
        total = sum(len(m) for m in made.values())
        detail = {p: sorted(set((m, made[p].count(m)) for m in made[p]))
                  for p in POOLS}
        everything = self.entries('pool-a') + self.entries('pool-b')
        self.assertEqual(1, everything.count('host.migrate_receive'),
                         detail)
        # The destination pool: the source compute's one login (the
        # destination compute's pool is logged in already).
        self.assertEqual(1, sum(made['pool-b'].count(m) for m in LOGINS),
                         detail)
        # Sessions at the end as at the start, in both pools: the
        # migrate_receive token and the source's login to pool-b are
        # logged out.
        after = {p: self.ctl[p].calls()['sessions_open'] for p in POOLS}
        self.assertEqual(before, after)
        self.stop_and_check(self.vm_uuid, ctl=self.ctl['pool-b'],
                            devices=('0', '4'), written=True)
        # Only what the migration names is read: no whole table of a
        # pool (a pool has one record; the where-filtered reads are fine).
        whole = [(p, m) for p in POOLS for m in made[p]
                 if m.endswith('.get_all_records') and
                 m != 'pool.get_all_records']
        self.assertEqual([], whole, detail)
        # Last, with the calls in the order made when it fails.
        self.assertLessEqual(total, BUDGET, made)
