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

"""Live block migration through Nova's API while XAPI does what the field
does: a toolstack restart of either pool mid-copy, a destination pool
whose master moved, SM failing SR.scan, xenopsd's Vms_failed_to_cooperate
at the end, a connection reset once the task had ended.

Each ends with the server in exactly one place Nova knows (its host and
the pool its VM runs in agree, the VM runs nowhere else, no disk is left
in the other pool), every byte the guest wrote where it runs, and, when
the migration failed, the reason in the compute's log in words.
"""

import logging

import fixtures

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import test_live_migration
from nova_sxm.tests.functional import test_servers
from xapi_sim import control

MiB = base.MiB


class FieldFaultBase(test_live_migration.LiveMigrationBase):

    def setUp(self):
        super().setUp()
        self.logs = self.useFixture(fixtures.FakeLogger(level=logging.INFO))

    def fresh_sessions(self):
        """The test's own sessions and controls, after a restart."""
        for pool in base.POOLS:
            session = self._login(pool)
            self.xapi[pool] = session.xenapi
            self.ctl[pool] = control.Control(self.pools.url(pool),
                                             session.handle)

    def copying(self):
        """Wait until the first disk is being copied to pool-b."""
        self.poll(lambda: self.managed_vdis('pool-b') - self.pool_b_vdis,
                  timeout=60, what='the copy to pool-b')

    def migrates_to_host2(self):
        self.wait_migration(self.server, ['completed'], ignore=self.earlier)
        self.assert_on('host2', 'pool-b', 'pool-a')
        self.assertEqual(set(), self.managed_vdis('pool-a') - self.pool_a,
                         'disks left behind in pool-a')
        self.stop_and_check(self.vm_uuid, ctl=self.ctl['pool-b'],
                            devices=('0', '4'), written=True)

    def stays_on_host1(self, *words):
        migration = self.wait_migration(self.server, ['error', 'failed'],
                                        ignore=self.earlier)
        self.assertIn(migration['status'], ('error', 'failed'))
        self.assert_source_intact()
        # The compute's log says where the VM is, and why it is there.
        self.assertIn('source VM Running on pool-a-host1', self.logs.output)
        for word in words:
            self.assertIn(word, self.logs.output)
        # The tasks the driver created are gone, whatever their end.
        self.assertEqual([], self.xapi['pool-a'].task.get_all())

    def start(self, bandwidth=2 * MiB):
        self.pool_a = self.managed_vdis('pool-a')
        if bandwidth:
            self.ctl['pool-a'].configure(bandwidth=bandwidth)
        self.start_guest()
        self.migrate(True)


class ToolstackRestartTest(FieldFaultBase):

    def test_source_pool_restarts_mid_copy(self):
        self.start()
        self.copying()
        self.ctl['pool-b'].toolstack_restart(pool='pool-a')
        self.fresh_sessions()
        self.stays_on_host1()

    def test_destination_pool_restarts_mid_copy(self):
        self.start()
        self.copying()
        self.ctl['pool-a'].toolstack_restart(pool='pool-b')
        self.fresh_sessions()
        self.ctl['pool-a'].configure(bandwidth=0)
        self.stays_on_host1('to the destination failed')


class ToolstackRestartAtTheEndTest(FieldFaultBase):
    """pool-a restarts after the point of no return.

    The VM moved, and the task that says so is lost: Nova must put the
    server where it runs.
    """

    def test_server_follows_its_vm(self):
        self.ctl['pool-a'].fault_inject('finalize',
                                        action='toolstack_restart')
        self.start(bandwidth=0)
        migration = self.wait_migration(
            self.server, ['completed', 'error', 'failed'],
            ignore=self.earlier)
        self.fresh_sessions()
        _, rec = self.vm_of(self.server, 'pool-b')
        self.assertEqual('Running', rec and rec['power_state'],
                         'the VM did not move: the fault misfired')
        self.assertEqual('completed', migration['status'],
                         'the VM runs in pool-b, Nova says the migration '
                         'failed')
        self.migrates_to_host2()


class DestinationMasterMovedTest(FieldFaultBase):
    """pool-b's master role moves to its second host before the move."""

    topology = test_servers.two_host_topology()

    def test_migration_follows_the_new_master(self):
        api_b = self.xapi['pool-b']
        host2 = api_b.host.get_by_name_label('pool-b-host2')[0]
        self.ctl['pool-a'].designate_new_master(host2, pool='pool-b')
        self.fresh_sessions()
        self.assertEqual(host2, self.xapi['pool-b'].pool.get_master(
            self.xapi['pool-b'].pool.get_all()[0]))
        self.start(bandwidth=0)
        self.migrates_to_host2()


class ScanFailsTest(FieldFaultBase):

    def test_migration_goes_on(self):
        # One scan: the migration is planned once.
        self.ctl['pool-a'].fault_inject('sr_scan', times=1)
        self.start(bandwidth=0)
        self.migrates_to_host2()
        self.assertEqual([], self.ctl['pool-a'].call('faults'),
                         'the driver made no SR.scan')


class FailedToCooperateTest(FieldFaultBase):

    def test_migration_is_undone(self):
        self.ctl['pool-a'].fault_inject('cooperate')
        self.start(bandwidth=0)
        self.stays_on_host1('Vms_failed_to_cooperate')
        self.assertEqual([], self.ctl['pool-a'].call('faults'))


class ConnectionResetTest(FieldFaultBase):

    def test_migration_completes(self):
        # Twice: Python's XML-RPC client sends a call again once.
        self.ctl['pool-a'].fault_inject('connection_reset', times=2)
        self.start(bandwidth=0)
        self.migrates_to_host2()
        self.assertEqual([], self.ctl['pool-a'].call('faults'),
                         'no connection was reset')
        self.assertEqual([], self.xapi['pool-a'].task.get_all())
