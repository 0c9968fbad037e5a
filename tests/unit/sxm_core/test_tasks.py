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

"""tasks: task_result and parse_result (pure functions of records), and
wait_task / call_async over a SessionPool whose network is faked."""

import threading
import time
import types
import xmlrpc.client

import fixtures
import testtools
import XenAPI

from sxm_core import errors
from sxm_core import sessions
from sxm_core import tasks
from tests.unit.sxm_core import fakes

TASK = 'OpaqueRef:7d0c7f5e-0000-4000-8000-00000000000a'
VDI = 'OpaqueRef:7d0c7f5e-0000-4000-8000-00000000000b'


def record(status, result='', error_info=(), progress=0.0):
    return {'status': status, 'result': result,
            'error_info': list(error_info), 'progress': progress}


def encoded(value):
    """A task ``result``: one XML-RPC <value>, as xapi writes it."""
    text = xmlrpc.client.dumps((value,), allow_none=True)
    start = text.index('<value>')
    end = text.rindex('</value>') + len('</value>')
    return text[start:end]


class TestParseResult(testtools.TestCase):

    def test_a_bare_string_value(self):
        # xapi leaves the <string> type out.
        self.assertEqual('OpaqueRef:abc',
                         tasks.parse_result('<value>OpaqueRef:abc</value>'))

    def test_void_is_none(self):
        self.assertIsNone(tasks.parse_result(''))
        self.assertIsNone(tasks.parse_result(None))

    def test_typed_values(self):
        for value in ('OpaqueRef:x', 42, True, 1.5, ['a', 'b'],
                      {'SM': 'http://h/services/SM', 'host': 'OpaqueRef:h'},
                      {'nested': {'list': ['1', '2']}}):
            self.assertEqual(value, tasks.parse_result(encoded(value)))

    def test_escaped_text(self):
        self.assertEqual('a<b&c', tasks.parse_result(
            '<value>a&lt;b&amp;c</value>'))


class TestTaskResult(testtools.TestCase):

    def test_pending_and_cancelling_are_pending(self):
        for status in ('pending', 'cancelling'):
            self.assertIs(tasks.PENDING,
                          tasks.task_result(record(status, progress=0.4)))

    def test_success_gives_the_value(self):
        self.assertEqual(VDI, tasks.task_result(
            record('success', '<value>%s</value>' % VDI)))
        self.assertIsNone(tasks.task_result(record('success', '')))

    def test_failure_raises_the_typed_error(self):
        exc = self.assertRaises(
            errors.XapiFailure, tasks.task_result,
            record('failure', error_info=['MIRROR_FAILED', VDI]),
            task=TASK, call='VM.migrate_send')
        self.assertEqual('MIRROR_FAILED', exc.code)
        self.assertEqual([VDI], exc.params)
        self.assertEqual(TASK, exc.task)
        self.assertEqual('VM.migrate_send', exc.call)

    def test_failure_with_a_subclass(self):
        self.assertRaises(
            errors.TooManyStorageMigrates, tasks.task_result,
            record('failure', error_info=['TOO_MANY_STORAGE_MIGRATES', '3']))

    def test_failure_is_described(self):
        exc = self.assertRaises(
            errors.XapiFailure, tasks.task_result,
            record('failure', error_info=['MIRROR_FAILED', VDI]),
            describe=lambda kind, ref: "disk 0 'root' (uuid-0)")
        self.assertIn("disk 0 'root' (uuid-0)", str(exc))

    def test_failure_without_error_info(self):
        exc = self.assertRaises(errors.XapiFailure, tasks.task_result,
                                record('failure'))
        self.assertEqual('INTERNAL_ERROR', exc.code)

    def test_cancelled(self):
        exc = self.assertRaises(
            errors.TaskCancelled, tasks.task_result,
            record('cancelled', error_info=['TASK_CANCELLED', TASK]),
            task=TASK)
        self.assertEqual([TASK], exc.params)
        # Without error_info the task is named all the same.
        exc = self.assertRaises(errors.TaskCancelled, tasks.task_result,
                                record('cancelled'), task=TASK)
        self.assertEqual([TASK], exc.params)
        self.assertEqual(TASK, exc.param('task'))

    def test_the_record_is_not_changed(self):
        rec = record('failure', error_info=['MIRROR_FAILED', VDI])
        copy = dict(rec, error_info=list(rec['error_info']))
        self.assertRaises(errors.XapiFailure, tasks.task_result, rec)
        self.assertEqual(copy, rec)


class WaitTestCase(testtools.TestCase):
    """A SessionPool on a fake network; each event.from takes 6 s."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.FakeLogger())
        self.net = fakes.FakeXapi()
        self.pool = sessions.SessionPool(
            'https://xs1.example.org/', 'root', 'pw-for-tests',
            session_factory=self.net.factory, sleep=lambda s: None)
        self.addCleanup(self.pool.close)
        self.now = [0.0]
        self.tokens = []
        self.answers = []

    def clock(self):
        return self.now[0]

    def event_from(self):
        """The next scripted event.from answer, 6 s later."""
        self.now[0] += 6.0
        handle, method, args = self.net.calls[-1]
        self.tokens.append(args[1])
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        n = len(self.tokens)
        return {'events': [{'id': str(n), 'class': 'task', 'ref': TASK,
                            'operation': op, 'snapshot': rec}
                           for op, rec in answer],
                'valid_ref_counts': {'task': '1'},
                'token': 'token-%d' % n}

    def script(self, *answers):
        self.answers = list(answers)
        self.net.script['event_from'] = [self.event_from] * len(answers)

    def wait(self, **watch):
        watch.setdefault('clock', self.clock)
        return tasks.wait_task(self.pool, TASK, 'migration of web',
                               tasks.Watch(**watch), call='VM.migrate_send')


class TestWaitTask(WaitTestCase):

    def test_value_and_progress(self):
        moves = []
        self.script([('mod', record('pending', progress=0.1))],
                    [('mod', record('pending', progress=0.1))],
                    [('mod', record('pending', progress=0.5))],
                    [('mod', record('success', '<value>%s</value>' % VDI,
                                    progress=1.0))])
        self.assertEqual(VDI, self.wait(progress=moves.append))
        self.assertEqual([0.1, 0.5, 1.0], moves)
        self.assertEqual(['', 'token-1', 'token-2', 'token-3'], self.tokens)
        self.assertEqual(['task/%s' % TASK], self.net.calls[0][2][0])

    def test_first_answer_without_the_task_reads_its_record(self):
        self.script([])
        self.net.script['task.get_record'] = [
            record('success', '<value>done</value>')]
        self.assertEqual('done', self.wait())

    def test_events_lost_restarts_from_the_current_state(self):
        self.script([('mod', record('pending', progress=0.2))],
                    XenAPI.Failure(['EVENTS_LOST']),
                    [('mod', record('success', ''))])
        self.assertIsNone(self.wait())
        self.assertEqual(['', 'token-1', ''], self.tokens)

    def test_a_destroyed_task(self):
        self.script([('mod', record('pending'))], [('del', None)])
        exc = self.assertRaises(errors.TaskVanished, self.wait)
        self.assertIn('lost the task', str(exc))
        self.assertNotIn('OpaqueRef', str(exc))

    def test_a_failed_task_raises_its_error(self):
        self.script([('mod', record('failure',
                                    error_info=['MIRROR_FAILED', VDI]))])
        exc = self.assertRaises(
            errors.XapiFailure, self.wait,
            describe=lambda kind, ref: "disk 1 'data' (uuid-1)")
        self.assertEqual((TASK, 'VM.migrate_send'), (exc.task, exc.call))
        self.assertIn("disk 1 'data' (uuid-1)", str(exc))

    def test_cancel_on_request(self):
        cancel = threading.Event()
        cancel.set()
        self.script([('mod', record('pending', progress=0.3))],
                    [('mod', record('cancelling', progress=0.3))],
                    [('mod', record('cancelled',
                                    error_info=['TASK_CANCELLED', TASK]))])
        self.assertRaises(errors.TaskCancelled, self.wait, cancel=cancel)
        self.assertEqual(1, self.net.count('task.cancel'))

    def test_a_task_that_cannot_be_cancelled_any_more_finishes(self):
        cancel = threading.Event()
        cancel.set()
        self.net.script['task.cancel'] = [XenAPI.Failure(
            ['OPERATION_NOT_ALLOWED', 'not cancellable'])]
        self.script([('mod', record('pending', progress=0.95))],
                    [('mod', record('success', '<value>vm</value>'))])
        self.assertEqual('vm', self.wait(cancel=cancel))

    def test_timeout_cancels_and_says_so(self):
        self.script([('mod', record('pending', progress=0.1))],
                    [('mod', record('pending', progress=0.2))],
                    [('mod', record('pending', progress=0.3))],
                    [('mod', record('cancelled',
                                    error_info=['TASK_CANCELLED', TASK]))])
        exc = self.assertRaises(errors.TaskTimeout, self.wait, timeout=15)
        self.assertIn('did not finish within 15 s', str(exc))
        self.assertEqual(1, self.net.count('task.cancel'))

    def test_stall_cancels_and_says_so(self):
        self.script([('mod', record('pending', progress=0.1))],
                    [], [],
                    [('mod', record('cancelled',
                                    error_info=['TASK_CANCELLED', TASK]))])
        exc = self.assertRaises(errors.TaskStalled, self.wait,
                                stall_timeout=10)
        self.assertIn('made no progress for 10 s', str(exc))
        self.assertEqual(1, self.net.count('task.cancel'))

    def test_a_task_that_ignores_the_cancel_is_given_up(self):
        self.script(*([[('mod', record('pending', progress=0.1))]]
                      + [[]] * 20))
        self.assertRaises(errors.TaskTimeout, self.wait, timeout=15)
        self.assertEqual(1, self.net.count('task.cancel'))


class TestCallAsync(WaitTestCase):

    def test_the_task_is_destroyed_after_success_and_failure(self):
        self.net.script['Async.VDI.copy'] = [TASK, TASK]
        self.script([('mod', record('success', '<value>%s</value>' % VDI))],
                    [('mod', record('failure',
                                    error_info=['SR_BACKEND_FAILURE_44']))])
        self.assertEqual(VDI, tasks.call_async(
            self.pool, 'VDI.copy', ('OpaqueRef:v', 'OpaqueRef:sr'), 'copy'))
        self.assertRaises(errors.XapiFailure, tasks.call_async, self.pool,
                          'VDI.copy', ('OpaqueRef:v', 'OpaqueRef:sr'),
                          'copy')
        self.assertEqual([(TASK,), (TASK,)],
                         [a for _, m, a in self.net.calls
                          if m == 'task.destroy'])

    def test_a_refused_call_is_described(self):
        self.net.script['Async.VDI.pool_migrate'] = [XenAPI.Failure(
            ['VDI_NEEDS_VM_FOR_MIGRATE', VDI])]
        exc = self.assertRaises(
            errors.XapiFailure, tasks.call_async, self.pool,
            'VDI.pool_migrate', (VDI, 'OpaqueRef:sr', {}), 'move',
            describe=lambda kind, ref: "VDI 'vol' (uuid-v)")
        self.assertIn("VDI 'vol' (uuid-v) is not attached to a VM",
                      str(exc))
        self.assertEqual(0, self.net.count('task.destroy'))


class TestWaitSurvives(WaitTestCase):
    """What must not end a wait early: the task's outcome is what counts."""

    def setUp(self):
        super().setUp()
        # The backoff between watches is real time: not in unit tests.
        self.sleeps = []
        self.useFixture(fixtures.MockPatchObject(
            tasks, 'time', types.SimpleNamespace(
                sleep=self.sleeps.append, monotonic=time.monotonic)))
        self.logger = self.useFixture(fixtures.FakeLogger())

    def test_a_progress_callback_that_raises(self):
        self.net.script['Async.VDI.copy'] = [TASK]
        self.net.script['task.get_status'] = ['success']
        seen = []

        def broken(fraction):
            seen.append(fraction)
            raise RuntimeError('bug in the caller')
        self.script([('mod', record('pending', progress=0.4))],
                    [('mod', record('success', '<value>%s</value>' % VDI,
                                    progress=1.0))])
        value = tasks.call_async(
            self.pool, 'VDI.copy', ('OpaqueRef:v', 'OpaqueRef:sr'), 'copy',
            watch=tasks.Watch(progress=broken, clock=self.clock))
        self.assertEqual(VDI, value)
        self.assertEqual([0.4, 1.0], seen)
        self.assertEqual([(TASK,)], [a for _, m, a in self.net.calls
                                     if m == 'task.destroy'])
        self.assertIn('Progress callback of copy failed',
                      self.logger.output)

    def refused_cancel(self, **watch):
        """The cancel comes past the point of no return; then success."""
        self.net.script['task.cancel'] = [XenAPI.Failure(
            ['OPERATION_NOT_ALLOWED', 'task is not cancellable'])]
        # 6 s per answer: the limit passes at the 3rd; then far more than
        # CANCEL_GRACE goes by before the task succeeds.
        pending = [[('mod', record('pending', progress=0.1 * n))]
                   for n in range(1, 4)]
        late = int(tasks.CANCEL_GRACE / 6) + 10
        self.script(*(pending + [[]] * late
                      + [[('mod', record('success', '<value>vm</value>',
                                         progress=1.0))]]))
        value = self.wait(**watch)
        self.assertEqual('vm', value)
        self.assertEqual(1, self.net.count('task.cancel'))
        self.assertEqual([], self.answers, 'the wait ended early')
        self.assertNotIn('it was cancelled', self.logger.output)

    def test_a_refused_cancel_for_timeout_keeps_waiting(self):
        self.refused_cancel(timeout=15)

    def test_a_refused_cancel_for_stall_keeps_waiting(self):
        self.refused_cancel(stall_timeout=20)

    def test_a_connection_error_watches_again_on_a_fresh_session(self):
        self.script([('mod', record('pending', progress=0.3))],
                    ConnectionResetError('reset by peer'),
                    [('mod', record('success', '<value>%s</value>' % VDI,
                                    progress=1.0))])
        self.assertEqual(VDI, self.wait())
        handles = [h for h, m, a in self.net.calls if m == 'event_from']
        self.assertEqual(3, len(handles))
        self.assertEqual(handles[0], handles[1])
        self.assertNotEqual(handles[1], handles[2])
        # The new watch starts from the task's current state.
        self.assertEqual(['', 'token-1', ''], self.tokens)
        self.assertEqual(1, len(self.sleeps))
        # Both watch sessions are gone.
        self.assertEqual(set(), self.net.live & set(handles))

    def test_a_silent_pool_gives_up_naming_the_task_and_keeps_it(self):
        # Each failed watch takes 6 s of the fake clock: after the pool's
        # contact_timeout (30 s) without an answer, the wait gives up.
        self.net.script['Async.VM.migrate_send'] = [TASK]
        self.script(*[ConnectionResetError('reset by peer')] * 10)
        exc = self.assertRaises(
            errors.ContactLost, tasks.call_async, self.pool,
            'VM.migrate_send', ('OpaqueRef:vm', {}, True, {}, {}, {}),
            'migration of web', watch=tasks.Watch(clock=self.clock))
        self.assertIn(TASK, str(exc))
        self.assertIn('migration of web', str(exc))
        self.assertIn('may still be running', str(exc))
        self.assertEqual(5, self.net.count('event_from'))
        # Silent pool: the task is neither asked about nor destroyed.
        self.assertEqual(0, self.net.count('task.get_status'))
        self.assertEqual(0, self.net.count('task.destroy'))

    def test_the_contact_limit_counts_from_the_last_answer(self):
        # Four failures (24 s), an answer, four more: never 30 s silent.
        blip = [ConnectionResetError('reset by peer')] * 4
        self.script(*(blip + [[('mod', record('pending', progress=0.5))]]
                      + blip
                      + [[('mod', record('success', '<value>ok</value>'))]]))
        self.assertEqual('ok', self.wait())
        self.assertEqual(10, self.net.count('event_from'))


class TestWaitSession(WaitTestCase):

    def test_the_wait_does_not_hold_a_pooled_session(self):
        # One pooled session, no waiting for it: the wait must not take it.
        pool = sessions.SessionPool(
            'https://xs1.example.org/', 'root', 'pw-for-tests', maxsize=1,
            block=False, session_factory=self.net.factory,
            sleep=lambda s: None)
        self.addCleanup(pool.close)
        during = []

        def answer_then_call():
            answer = self.event_from()
            during.append(pool.call('VM.get_power_state', 'OpaqueRef:vm'))
            return answer
        self.answers = [[('mod', record('pending', progress=0.5))],
                        [('mod', record('success', '<value>vm</value>'))]]
        self.net.script['event_from'] = [answer_then_call, self.event_from]
        self.assertEqual('vm', tasks.wait_task(
            pool, TASK, 'migration of web', tasks.Watch(clock=self.clock)))
        self.assertEqual(['value of VM.get_power_state'], during)
        (waiter,) = {h for h, m, a in self.net.calls if m == 'event_from'}
        (pooled,) = {h for h, m, a in self.net.calls
                     if m == 'VM.get_power_state'}
        self.assertNotEqual(pooled, waiter)
        # The wait's session is logged out; the pooled one is kept.
        self.assertNotIn(waiter, self.net.live)
        self.assertIn(pooled, self.net.live)
        pool.call('VM.get_power_state', 'OpaqueRef:vm')
        self.assertEqual(2, len(self.net.logins))
