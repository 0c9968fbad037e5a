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

"""migrate: the pure helpers of the Migrator."""

import dataclasses

import fixtures
import testtools

from sxm_core import errors
from sxm_core import migrate
from sxm_core import plan as planmod
from sxm_core import sessions
from sxm_core import slots as slotsmod
from tests.unit.sxm_core import factories as f
from tests.unit.sxm_core import fakes


class TestHelpers(testtools.TestCase):

    def test_timeout_scales_with_the_bytes(self):
        m = migrate.Migrator(source=object(), seconds_per_gib=100,
                             minimum_timeout=60)
        self.assertEqual(60, m.timeout_for(0))
        self.assertEqual(260, m.timeout_for(2 * migrate.GIB))

    def test_describer_names_the_plans_objects(self):
        w = f.World()
        the_plan = planmod.build_plan(w.vm, w.a, w.b)
        describe = migrate.describer(the_plan)
        self.assertEqual("disk 1 'data' (%s)" % w.data.uuid,
                         describe('vdi', w.data.vdi))
        self.assertEqual(w.vm.label(), describe('vm', w.vm.ref))
        self.assertIn(w.lvm_b.uuid, describe('sr', w.lvm_b.ref))
        self.assertIn(w.host_b.uuid, describe('host', w.host_b.ref))
        self.assertIn(w.net_a.uuid, describe('network', w.net_a.ref))
        self.assertIn(w.vif.mac, describe('vif', w.vif.ref))
        self.assertIsNone(describe('vdi', 'OpaqueRef:other'))

    def test_state_report(self):
        clean = migrate.StateReport('Running', 'pool-a-host1', 'none', [])
        self.assertEqual('State after the failure: source VM Running on '
                         'pool-a-host1; destination VM none.\nNo VDI was '
                         'left behind on the target SRs.', clean.describe())
        left = migrate.StateReport('gone', '', 'Halted', ['uuid-1'])
        self.assertIn('source VM gone;', left.describe())
        self.assertIn('not removed (check them): uuid-1', left.describe())


class TestTimeoutCountsMemory(testtools.TestCase):
    """XenMotion moves the VM's memory too: the timeout must allow it."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.FakeLogger())
        self.w = f.World()
        self.net = fakes.FakeXapi()
        self.pool = sessions.SessionPool(
            'https://pool-a.example.org/', 'root', 'pw-for-tests',
            session_factory=self.net.factory, sleep=lambda s: None)
        self.addCleanup(self.pool.close)
        self.watches = []

        def wait_task(pool, task, what, watch=None, call=None):
            self.watches.append((call, watch))
            return self.w.vm.ref
        self.useFixture(fixtures.MockPatchObject(migrate.tasks,
                                                 'wait_task', wait_task))

    def test_a_plan_whose_disks_stay_gets_time_for_the_memory(self):
        vm = dataclasses.replace(self.w.vm, memory=3 * f.GiB)
        # In-pool, each disk mapped to the SR it is on: nothing to copy.
        the_plan = planmod.build_plan(vm, self.w.a, self.w.a, sr_map={
            '0': self.w.lvm_a.uuid, '1': self.w.ext_a.uuid})
        self.assertEqual(0, the_plan.bytes_to_move)
        self.assertEqual([], planmod.preflight(the_plan))
        m = migrate.Migrator(self.pool, seconds_per_gib=100,
                             minimum_timeout=60,
                             slots=slotsmod.HostSlots(poll=0.005))
        self.assertEqual(60 + 100 * 3, m.timeout_for(3 * f.GiB))
        # What the destination answers afterwards: nothing left over, the
        # VM where planned.
        self.net.script['host.migrate_receive'] = [{}]
        self.net.script['VDI.get_all_records_where'] = [{}]
        self.net.script['VBD.get_all_records_where'] = [{}]
        self.net.script['VM.get_record'] = [{
            'power_state': 'Running', 'resident_on': self.w.host_a.ref,
            'VBDs': []}]
        result = m.migrate(the_plan)
        self.assertEqual([], result.warnings)
        (method, watch), = self.watches
        self.assertEqual('VM.migrate_send', method)
        self.assertEqual(60 + 100 * 3, watch.timeout)

    def test_memory_adds_to_the_bytes_of_the_disks(self):
        vm = dataclasses.replace(self.w.vm, memory=f.GiB)
        the_plan = planmod.build_plan(vm, self.w.a, self.w.b)
        m = migrate.Migrator(self.pool, seconds_per_gib=1024,
                             minimum_timeout=10,
                             slots=slotsmod.HostSlots(poll=0.005))
        self.net.script['host.migrate_receive'] = [{}]
        self.net.script['VDI.get_all_records_where'] = [{}]
        self.net.script['VBD.get_all_records_where'] = [{}]
        self.net.script['VM.get_record'] = [{
            'power_state': 'Running', 'resident_on': self.w.host_b.ref,
            'VBDs': []}]
        m.migrate(the_plan)
        (_, watch), = self.watches
        # 1 GiB of memory and 36 MiB of disks, at 1 s per MiB.
        self.assertEqual(10 + 1024 + 36, watch.timeout)


class TestProgressOf(testtools.TestCase):
    """Progress carries the memory phase as well as the disks."""

    def setUp(self):
        super().setUp()
        w = f.World()
        vm = dataclasses.replace(w.vm, memory=f.GiB)
        self.plan = planmod.build_plan(vm, w.a, w.b)
        self.total = self.plan.bytes_to_move

    def test_while_disks_move_no_memory_is_done(self):
        p = migrate.progress_of(self.plan, planmod.STORAGE_SHARE / 2)
        self.assertIn(p.phase, ('mirror', 'copy'))
        self.assertEqual(self.total // 2, p.bytes_done)
        self.assertEqual((0, f.GiB), (p.memory_done, p.memory_total))

    def test_the_memory_phase(self):
        half = planmod.STORAGE_SHARE + (1 - planmod.STORAGE_SHARE) / 2
        p = migrate.progress_of(self.plan, half)
        self.assertEqual('memory', p.phase)
        self.assertIsNone(p.disk)
        self.assertEqual(self.total, p.bytes_done)
        self.assertEqual(f.GiB // 2, p.memory_done)
        self.assertEqual(f.GiB, p.memory_total)
        end = migrate.progress_of(self.plan, 1.0)
        self.assertEqual(f.GiB, end.memory_done)

    def test_old_callers_still_build_progress_positionally(self):
        p = migrate.Progress(0.5, 'copy', None, 1, 2)
        self.assertEqual((0, 0), (p.memory_done, p.memory_total))


class TestTypedOutcomes(testtools.TestCase):
    """A caller can tell an abort from a failure from a lost contact."""

    def test_cancelled_is_a_failure_whose_rollback_is_safe(self):
        state = migrate.StateReport('Running', 'h', 'none', [])
        exc = errors.MigrationCancelled(
            errors.TaskCancelled('TASK_CANCELLED', ['OpaqueRef:t']), state)
        self.assertIsInstance(exc, errors.MigrationFailed)
        self.assertTrue(exc.rollback_safe)
        self.assertTrue(exc.source_intact)

    def test_a_failure_says_whether_the_source_is_whole(self):
        gone = errors.MigrationFailed(
            errors.XapiFailure('MIRROR_FAILED', ['OpaqueRef:v']),
            migrate.StateReport('gone', '', 'Running', []))
        self.assertNotIsInstance(gone, errors.MigrationCancelled)
        self.assertFalse(gone.source_intact)

    def test_contact_lost_is_not_safe_to_roll_back(self):
        exc = errors.ContactLost(url='https://p/', seconds=30,
                                 what='migration', task_uuid='t-1')
        self.assertFalse(exc.rollback_safe)
        self.assertEqual('t-1', exc.task_uuid)
        self.assertNotIsInstance(exc, errors.MigrationFailed)

    def test_drain_outcomes_say_skipped_or_cancelled(self):
        from sxm_core import fleet
        cases = [
            (None, 'moved'),
            (errors.DrainSkipped(vm='a'), 'skipped'),
            (errors.MigrationCancelled(errors.Cancelled(waiting='x')),
             'cancelled'),
            (errors.MigrationFailed(errors.SxmError('boom')), 'failed'),
        ]
        for error, status in cases:
            o = fleet.DrainOutcome('a', 'u', result=None, error=error)
            self.assertEqual(status, o.status)
        self.assertTrue(fleet.DrainOutcome('a', 'u', error=cases[1][0])
                        .skipped)
