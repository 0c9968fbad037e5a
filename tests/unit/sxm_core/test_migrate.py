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

"""migrate: HostSlots with threads, and the pure helpers of the Migrator."""

import dataclasses
import subprocess
import sys
import threading
import time

import fixtures
import testtools

from sxm_core import errors
from sxm_core import migrate
from sxm_core import plan as planmod
from sxm_core import sessions
from tests.unit.sxm_core import factories as f
from tests.unit.sxm_core import fakes

# Generous: these waits normally take milliseconds.
DEADLINE = 10.0

HOLD_IN_ANOTHER_PROCESS = """
import sys
from sxm_core import migrate
slots = migrate.HostSlots(limit=1, lock_path=sys.argv[1])
with slots.acquire('host-1'):
    print('held', flush=True)
    sys.stdin.readline()
"""


class Holders(object):
    """Threads that take a slot, note it, and hold it until released."""

    def __init__(self, slots):
        self.slots = slots
        self.lock = threading.Lock()
        self.holding = {}           # host -> count now
        self.peak = {}              # host -> highest count seen
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.errors = []
        self.threads = []

    def start(self, host, cancel=None):
        def run():
            try:
                with self.slots.acquire(host, cancel):
                    with self.lock:
                        now = self.holding.get(host, 0) + 1
                        self.holding[host] = now
                        self.peak[host] = max(self.peak.get(host, 0), now)
                    self.entered.release()
                    self.release.wait(DEADLINE)
                    with self.lock:
                        self.holding[host] -= 1
            except Exception as exc:
                self.errors.append(exc)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def wait_entered(self, n):
        for _ in range(n):
            if not self.entered.acquire(timeout=DEADLINE):
                raise AssertionError('a holder did not get its slot')

    def join(self):
        self.release.set()
        for t in self.threads:
            t.join(DEADLINE)


class TestHostSlots(testtools.TestCase):

    def holders(self, slots):
        h = Holders(slots)
        self.addCleanup(h.join)
        return h

    def assertTwoAtATime(self, slots, count, pause):
        """``count`` holders on one host of ``slots`` (limit 2).

        Two get in and stay the only ones for ``pause`` seconds; once
        released, the rest get in, never more than two at a time, and
        nobody fails.
        """
        h = self.holders(slots)
        for _ in range(count):
            h.start('host-1')
        h.wait_entered(2)
        time.sleep(pause)
        self.assertEqual(2, h.holding['host-1'])
        h.release.set()
        h.wait_entered(count - 2)
        h.join()
        self.assertEqual(2, h.peak['host-1'])
        self.assertEqual([], h.errors)

    def test_at_most_limit_holders_per_host(self):
        self.assertTwoAtATime(migrate.HostSlots(limit=2, poll=0.005), 5, 0.1)

    def test_separate_hosts_do_not_block_each_other(self):
        h = self.holders(migrate.HostSlots(limit=1, poll=0.005))
        h.start('host-1')
        h.wait_entered(1)
        waiting = h.start('host-1')
        started = time.monotonic()
        h.start('host-2')
        h.wait_entered(1)
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertEqual({'host-1': 1, 'host-2': 1}, h.holding)
        self.assertTrue(waiting.is_alive())
        h.join()
        self.assertEqual({'host-1': 1, 'host-2': 1}, h.peak)

    def test_a_released_slot_is_reused(self):
        slots = migrate.HostSlots(limit=1, poll=0.005)
        for _ in range(3):
            with slots.acquire('host-1'):
                pass
        with slots.acquire('host-1'):
            h = self.holders(slots)
            h.start('host-1')
            time.sleep(0.05)
            self.assertEqual({}, h.holding)
        h.wait_entered(1)

    def test_a_failure_inside_releases_the_slot(self):
        slots = migrate.HostSlots(limit=1, poll=0.005)

        def fail():
            with slots.acquire('host-1'):
                raise errors.SxmError('migration failed')
        self.assertRaises(errors.SxmError, fail)
        h = self.holders(slots)
        h.start('host-1')
        h.wait_entered(1)

    def test_cancel_while_waiting(self):
        slots = migrate.HostSlots(limit=1, poll=0.005)
        cancel = threading.Event()
        with slots.acquire('host-1'):
            h = self.holders(slots)
            h.start('host-1', cancel)
            time.sleep(0.05)
            cancel.set()
            h.threads[0].join(DEADLINE)
        self.assertEqual(1, len(h.errors))
        self.assertIn('Cancelled while waiting', str(h.errors[0]))

    def test_instances_do_not_share_slots(self):
        one = migrate.HostSlots(limit=1, poll=0.005)
        two = migrate.HostSlots(limit=1, poll=0.005)
        with one.acquire('host-1'):
            h = self.holders(two)
            h.start('host-1')
            h.wait_entered(1)

    def test_with_a_lock_path(self):
        path = self.useFixture(fixtures.TempDir()).path
        self.assertTwoAtATime(
            migrate.HostSlots(limit=2, lock_path=path, poll=0.005), 4, 0.05)

    def test_limit_is_what_xapi_allows(self):
        for bad in (0, 4):
            self.assertRaises(ValueError, migrate.HostSlots, limit=bad)
        migrate.HostSlots(limit=3)


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
                             slots=migrate.HostSlots(poll=0.005))
        self.assertEqual(60 + 100 * 3, m.timeout_for(3 * f.GiB))
        # What the destination answers afterwards: nothing left over, the
        # VM where planned.
        self.net.script['host.migrate_receive'] = [{}]
        self.net.script['SR.get_VDIs'] = [[], []]
        self.net.script['VM.get_VBDs'] = [[]]
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
                             slots=migrate.HostSlots(poll=0.005))
        self.net.script['host.migrate_receive'] = [{}]
        self.net.script['SR.get_VDIs'] = [[]]
        self.net.script['VM.get_VBDs'] = [[]]
        self.net.script['VM.get_record'] = [{
            'power_state': 'Running', 'resident_on': self.w.host_b.ref,
            'VBDs': []}]
        m.migrate(the_plan)
        (_, watch), = self.watches
        # 1 GiB of memory and 36 MiB of disks, at 1 s per MiB.
        self.assertEqual(10 + 1024 + 36, watch.timeout)


class TestSlotsWake(testtools.TestCase):
    """A waiter wakes when a slot is released, not at its next poll."""

    def holders(self, slots):
        h = Holders(slots)
        self.addCleanup(h.join)
        return h

    def test_a_release_in_this_process_wakes_a_waiter(self):
        # Polls an hour apart: only the release's notification can wake
        # the waiter within the test's deadline.
        slots = migrate.HostSlots(limit=1, poll=3600, cancel_poll=3600)
        first = self.holders(slots)
        first.start('host-1')
        first.wait_entered(1)
        second = self.holders(slots)
        waiting = second.start('host-1', threading.Event())
        time.sleep(0.05)
        self.assertEqual({}, second.holding)
        first.release.set()
        second.wait_entered(1)
        self.assertEqual({'host-1': 1}, second.holding)
        second.release.set()
        waiting.join(DEADLINE)
        self.assertEqual([], first.errors + second.errors)

    def test_other_processes_releases_are_polled(self):
        # Another process holds the only slot: its release notifies
        # nobody here, the bounded poll finds the slot free.
        path = self.useFixture(fixtures.TempDir()).path
        other = subprocess.Popen(
            [sys.executable, '-c', HOLD_IN_ANOTHER_PROCESS, path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(other.wait, DEADLINE)
        self.addCleanup(other.kill)
        self.assertEqual('held\n', other.stdout.readline())
        h = self.holders(migrate.HostSlots(limit=1, lock_path=path,
                                           poll=0.01))
        h.start('host-1')
        time.sleep(0.1)
        self.assertEqual({}, h.holding)
        other.stdin.write('release\n')
        other.stdin.flush()
        h.wait_entered(1)
        self.assertEqual({'host-1': 1}, h.holding)

    def test_one_object_per_process_by_default(self):
        self.assertIs(migrate.shared_slots(), migrate.shared_slots())
        self.assertIsNot(migrate.shared_slots(2), migrate.shared_slots(1))
        m1 = migrate.Migrator(source=object())
        m2 = migrate.Migrator(source=object())
        self.assertIs(m1.slots, m2.slots)
        self.assertIs(migrate.shared_slots(), m1.slots)


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
