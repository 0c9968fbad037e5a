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

"""lease: the migrate_receive token's states, each path ending it once.

The destination pool here records ``logout_token`` only: it stands in for
the one XAPI call a lease makes (``session.logout`` of the token). The
Migrator's own paths are exercised against the simulator in
tests/functional/sxm_core/test_lease_paths.py.
"""

import threading

import testtools

from sxm_core import lease
from sxm_core import redact

TOKEN = 'OpaqueRef:5e551011-0000-4000-8000-00000000feed'


class LogoutRecorder(object):
    """The logout transport of a destination pool, recorded."""

    def __init__(self):
        self.logged_out = []

    def logout_token(self, token):
        self.logged_out.append(token)
        redact.forget(token)


class Custodian(object):
    def __init__(self):
        self.told = 0

    def done(self):
        self.told += 1


class LeaseTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.pool = LogoutRecorder()
        self.book = lease.Leases()
        self.held = lease.Lease(self.pool, {'session_id': TOKEN,
                                            'master': 'https://b/'},
                                host_ref='OpaqueRef:host')

    def assertEndedOnce(self):
        self.assertEqual([TOKEN], self.pool.logged_out)
        self.assertEqual(lease.ENDED, self.held.state)
        self.assertTrue(self.held.ended)


class TestPaths(LeaseTestCase):

    def test_success_the_tasks_end_ends_it(self):
        custodian = Custodian()
        self.held.hand('task-1', self.book, custodian)
        self.assertEqual(lease.HANDED, self.held.state)
        self.assertTrue(self.book.held('task-1'))
        self.assertTrue(self.held.end())
        self.assertEndedOnce()
        self.assertFalse(self.book.held('task-1'))
        self.assertEqual(1, custodian.told)

    def test_release_while_a_task_holds_it_leaves_it_to_the_task(self):
        self.held.hand('task-1', self.book)
        # The caller's "done with it" after a failure the task reported
        # itself: the task's end (below) is what logs it out.
        self.assertFalse(self.held.release())
        self.assertEqual([], self.pool.logged_out)
        self.assertTrue(self.book.end('task-1'))
        self.assertEndedOnce()

    def test_lost_contact_then_a_watch_ends_it_through_the_book(self):
        custodian = Custodian()
        self.held.hand('task-1', self.book, custodian)
        # The wait lost contact: nothing ended; a later watch of the
        # task (fleet.watch with the book) ends it once.
        self.assertEqual([], self.pool.logged_out)
        self.assertTrue(self.book.end('task-1'))
        self.assertFalse(self.book.end('task-1'))
        self.assertEndedOnce()
        self.assertEqual(1, custodian.told)

    def test_retry_after_too_many_storage_migrates_keeps_one_token(self):
        first, second = Custodian(), Custodian()
        self.held.hand('task-1', self.book, first)
        self.held.keep()
        self.assertEqual(lease.KEPT, self.held.state)
        self.assertEqual([], self.pool.logged_out)
        self.assertFalse(self.book.held('task-1'))
        self.assertEqual(1, first.told)   # its guard exits, no logout
        self.held.hand('task-2', self.book, second)
        self.assertTrue(self.held.end())
        self.assertEndedOnce()
        self.assertEqual((1, 1), (first.told, second.told))

    def test_release_before_hand_off(self):
        self.assertTrue(self.held.release())
        self.assertEndedOnce()

    def test_kept_then_released_ends_it(self):
        # A retry that is not made (cancelled while waiting for a slot).
        self.held.hand('task-1', self.book)
        self.held.keep()
        self.assertTrue(self.held.release())
        self.assertEndedOnce()

    def test_double_end_and_release_after_end_do_nothing(self):
        self.assertTrue(self.held.end())
        self.assertFalse(self.held.end())
        self.assertFalse(self.held.release())
        self.assertFalse(self.book.end('task-1'))
        self.assertEndedOnce()

    def test_context_manager_releases_an_unused_lease(self):
        with self.held as held:
            self.assertIs(self.held, held)
        self.assertEndedOnce()

    def test_ends_once_when_two_threads_race(self):
        self.held.hand('task-1', self.book)
        start = threading.Barrier(8)
        results = []

        def end():
            start.wait()
            results.append(self.book.end('task-1') or self.held.end())
        threads = [threading.Thread(target=end) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([True], [r for r in results if r])
        self.assertEndedOnce()


class TestTransitions(LeaseTestCase):

    def test_an_ended_lease_cannot_be_handed(self):
        self.held.end()
        exc = self.assertRaises(lease.LeaseError, self.held.hand, 'task-1')
        self.assertIn('ended', str(exc))

    def test_a_handed_lease_cannot_be_handed_again(self):
        self.held.hand('task-1', self.book)
        self.assertRaises(lease.LeaseError, self.held.hand, 'task-2')
        self.assertTrue(self.book.held('task-1'))
        self.assertFalse(self.book.held('task-2'))

    def test_only_a_handed_lease_can_be_kept(self):
        self.assertRaises(lease.LeaseError, self.held.keep)
        self.held.end()
        self.assertRaises(lease.LeaseError, self.held.keep)
        self.assertEndedOnce()

    def test_a_failing_custodian_does_not_stop_the_end(self):
        class Broken(object):
            def done(self):
                raise RuntimeError('pipe closed')
        self.held.hand('task-1', self.book, Broken())
        self.assertTrue(self.held.end())
        self.assertEndedOnce()
        self.assertFalse(self.book.held('task-1'))


class TestSecret(LeaseTestCase):

    def test_repr_masks_the_token(self):
        self.held.hand('task-1', self.book)
        self.assertNotIn(TOKEN, repr(self.held))
        self.assertIn('handed', repr(self.held))

    def test_the_token_is_scrubbed_from_text_until_ended(self):
        text = 'migrate_send failed with session %s' % TOKEN
        self.assertNotIn(TOKEN, redact.scrub(text))
        self.held.end()
        self.assertEqual([TOKEN], self.pool.logged_out)


class TestReceive(testtools.TestCase):

    def test_receive_asks_the_destination_and_holds_the_answer(self):
        asked = []

        class Dest(LogoutRecorder):
            def call(self, method, *args):
                asked.append((method, args))
                return {'session_id': TOKEN}
        dest = Dest()
        held = lease.receive(dest, 'OpaqueRef:host', 'OpaqueRef:net')
        self.assertEqual([('host.migrate_receive',
                           ('OpaqueRef:host', 'OpaqueRef:net', {}))], asked)
        self.assertEqual(lease.HELD, held.state)
        self.assertEqual(TOKEN, held.token)
        held.release()
        self.assertEqual([TOKEN], dest.logged_out)
