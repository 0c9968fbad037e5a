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

"""slots: HostSlots with threads and processes, and its shared instance."""

import subprocess
import sys
import threading
import time

import fixtures
import testtools

from sxm_core import errors
from sxm_core import migrate
from sxm_core import slots as slotsmod

# Generous: these waits normally take milliseconds.
DEADLINE = 10.0

HOLD_IN_ANOTHER_PROCESS = """
import sys
from sxm_core import slots as slotsmod
slots = slotsmod.HostSlots(limit=1, lock_path=sys.argv[1])
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
        self.assertTwoAtATime(slotsmod.HostSlots(limit=2, poll=0.005), 5, 0.1)

    def test_separate_hosts_do_not_block_each_other(self):
        h = self.holders(slotsmod.HostSlots(limit=1, poll=0.005))
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
        slots = slotsmod.HostSlots(limit=1, poll=0.005)
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
        slots = slotsmod.HostSlots(limit=1, poll=0.005)

        def fail():
            with slots.acquire('host-1'):
                raise errors.SxmError('migration failed')
        self.assertRaises(errors.SxmError, fail)
        h = self.holders(slots)
        h.start('host-1')
        h.wait_entered(1)

    def test_cancel_while_waiting(self):
        slots = slotsmod.HostSlots(limit=1, poll=0.005)
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
        one = slotsmod.HostSlots(limit=1, poll=0.005)
        two = slotsmod.HostSlots(limit=1, poll=0.005)
        with one.acquire('host-1'):
            h = self.holders(two)
            h.start('host-1')
            h.wait_entered(1)

    def test_with_a_lock_path(self):
        path = self.useFixture(fixtures.TempDir()).path
        self.assertTwoAtATime(
            slotsmod.HostSlots(limit=2, lock_path=path, poll=0.005), 4, 0.05)

    def test_limit_is_what_xapi_allows(self):
        for bad in (0, 4):
            self.assertRaises(ValueError, slotsmod.HostSlots, limit=bad)
        slotsmod.HostSlots(limit=3)


class TestSlotsWake(testtools.TestCase):
    """A waiter wakes when a slot is released, not at its next poll."""

    def holders(self, slots):
        h = Holders(slots)
        self.addCleanup(h.join)
        return h

    def test_a_release_in_this_process_wakes_a_waiter(self):
        # Polls an hour apart: only the release's notification can wake
        # the waiter within the test's deadline.
        slots = slotsmod.HostSlots(limit=1, poll=3600, cancel_poll=3600)
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
        h = self.holders(slotsmod.HostSlots(limit=1, lock_path=path,
                                            poll=0.01))
        h.start('host-1')
        time.sleep(0.1)
        self.assertEqual({}, h.holding)
        other.stdin.write('release\n')
        other.stdin.flush()
        h.wait_entered(1)
        self.assertEqual({'host-1': 1}, h.holding)

    def test_one_object_per_process_by_default(self):
        self.assertIs(slotsmod.shared_slots(), slotsmod.shared_slots())
        self.assertIsNot(slotsmod.shared_slots(2), slotsmod.shared_slots(1))
        m1 = migrate.Migrator(source=object())
        m2 = migrate.Migrator(source=object())
        self.assertIs(m1.slots, m2.slots)
        self.assertIs(slotsmod.shared_slots(), m1.slots)
