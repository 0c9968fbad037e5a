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

"""event.from: tokens, class filters, timeouts, waking waiters, and a
threaded server that keeps serving while a client waits."""

import threading
import time

from tests.functional.xapi_sim import base
from xapi_sim import db as dbmod

MiB = base.MiB
# What a blocked waiter asks for; it must be woken long before this.
LONG_WAIT = 30.0


class Waiter(threading.Thread):
    """Calls event.from once on its own session and keeps the answer."""

    def __init__(self, api, classes, token, timeout):
        super().__init__(daemon=True)
        self.api = api
        self.args = (classes, token, timeout)
        self.result = None
        self.error = None
        self.elapsed = None

    def run(self):
        start = time.monotonic()
        try:
            self.result = base.event_from(self.api, *self.args)
        except Exception as exc:
            self.error = exc
        self.elapsed = time.monotonic() - start


class TestEventFrom(base.SimulatorTestCase):

    def _token(self, classes=('*',)):
        return base.event_from(self.api, list(classes), '', 0)['token']

    def test_empty_token_returns_current_objects(self):
        vm = self.create_vm('listed')
        result = base.event_from(self.api, ['vm', 'sr'], '', 0)
        self.assertEqual({'events', 'valid_ref_counts', 'token'},
                         set(result))
        by_class = {}
        for ev in result['events']:
            self.assertEqual('add', ev['operation'])
            by_class.setdefault(ev['class'], set()).add(ev['ref'])
        self.assertEqual({'vm', 'sr'}, set(by_class))
        self.assertEqual(set(self.api.VM.get_all()), by_class['vm'])
        self.assertIn(vm, by_class['vm'])
        self.assertEqual(set(self.api.SR.get_all()), by_class['sr'])
        snap = [e['snapshot'] for e in result['events'] if e['ref'] == vm]
        self.assertEqual('listed', snap[0]['name_label'])
        self.assertEqual('Halted', snap[0]['power_state'])
        # Counts are XML-RPC ints, for every class, not only those asked.
        counts = result['valid_ref_counts']
        self.assertEqual(len(self.api.VM.get_all()), counts['vm'])
        self.assertEqual(len(self.api.VDI.get_all()), counts['vdi'])
        self.assertEqual(len(self.api.task.get_all()), counts['task'])

    def test_token_returns_only_later_events(self):
        token = self._token()
        vm = self.create_vm('after')
        result = base.event_from(self.api, ['vm'], token, 5)
        self.assertEqual([(vm, 'add')],
                         [(e['ref'], e['operation'])
                          for e in result['events']])
        self.assertEqual('after', result['events'][0]['snapshot']
                         ['name_label'])
        self.assertIn('id', result['events'][0])
        self.assertIn('timestamp', result['events'][0])
        # Following the new token: the change, then the deletion.
        self.api.VM.set_name_label(vm, 'renamed')
        self.api.VM.destroy(vm)
        later = base.event_from(self.api, ['vm'], result['token'], 5)
        self.assertEqual([(vm, 'mod'), (vm, 'del')],
                         [(e['ref'], e['operation'])
                          for e in later['events']])
        self.assertEqual('renamed',
                         later['events'][0]['snapshot']['name_label'])

    def test_class_filter(self):
        token = self._token()
        vm = self.create_vm()
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        only_vdi = base.event_from(self.api, ['vdi'], token, 5)
        self.assertEqual({'vdi'},
                         {e['class'] for e in only_vdi['events']})
        self.assertIn(vdi, [e['ref'] for e in only_vdi['events']])
        only_vm = base.event_from(self.api, ['VM'], token, 5)
        self.assertEqual([vm], [e['ref'] for e in only_vm['events']])
        both = base.event_from(self.api, ['vm', 'vdi'], token, 5)
        self.assertEqual({'vm', 'vdi'}, {e['class'] for e in both['events']})
        # One object only: class/ref.
        other = self.create_vm()
        one = base.event_from(self.api, ['vm/%s' % other], token, 5)
        self.assertEqual([other], [e['ref'] for e in one['events']])

    def test_timeout_returns_no_events(self):
        token = self._token()
        self.create_vdi(self.sr('ext'), 4 * MiB)  # not a VM event
        result = base.event_from(self.api, ['vm'], token, 0.2)
        self.assertEqual([], result['events'])
        self.assertTrue(result['token'])
        # The new token still sees what comes next.
        vm = self.create_vm()
        later = base.event_from(self.api, ['vm'], result['token'], 5)
        self.assertEqual([vm], [e['ref'] for e in later['events']])

    def test_sessions_are_not_in_the_event_stream(self):
        token = self._token()
        self.login()
        result = base.event_from(self.api, ['*'], token, 0.1)
        self.assertNotIn('session', {e['class'] for e in result['events']})

    def test_bad_token(self):
        self.assertXapiError(['EVENT_FROM_TOKEN_PARSE_FAILURE', 'garbage'],
                             base.event_from, self.api, ['vm'], 'garbage', 0)
        self.assertStillServing()

    def test_waiter_is_woken_when_a_task_finishes(self):
        waiter_api = self.login().xenapi
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        task = self.api.Async.VDI.snapshot(vdi)
        self.wait_task(task)
        token = self._token(['task'])
        # A manual task that only this test finishes.
        mine = self.api.task.create('waited-for', '')
        after_create = base.event_from(self.api, ['task'], token, 5)['token']
        waiter = Waiter(waiter_api, ['task'], after_create, LONG_WAIT)
        waiter.start()
        # Let the waiter's request reach the server (not an assertion).
        time.sleep(0.2)
        self.assertTrue(waiter.is_alive())
        self.api.task.set_status(mine, 'success')
        waiter.join(LONG_WAIT + 10)
        self.assertFalse(waiter.is_alive())
        self.assertIsNone(waiter.error)
        self.assertLess(waiter.elapsed, LONG_WAIT / 2)
        events = [e for e in waiter.result['events'] if e['ref'] == mine]
        self.assertEqual('success', events[-1]['snapshot']['status'])

    def test_waiter_is_woken_when_an_async_call_finishes(self):
        waiter_api = self.login().xenapi
        vm, _ = self.vm_with_disks([4 * MiB], start=False)
        token = self._token(['task'])
        task = self.api.Async.VM.start(vm, False, False)
        # The waiter follows the task until it reads success.
        start = time.monotonic()
        status = None
        while status != 'success':
            self.assertLess(time.monotonic() - start, LONG_WAIT / 2)
            waiter = Waiter(waiter_api, ['task/%s' % task], token,
                            LONG_WAIT)
            waiter.start()
            waiter.join(LONG_WAIT + 10)
            self.assertIsNone(waiter.error)
            self.assertLess(waiter.elapsed, LONG_WAIT / 2)
            token = waiter.result['token']
            for ev in waiter.result['events']:
                status = ev['snapshot']['status']
        self.assertEqual('Running', self.api.VM.get_power_state(vm))

    def test_other_clients_are_served_while_one_waits(self):
        waiter_api = self.login().xenapi
        token = self._token(['vm'])
        waiter = Waiter(waiter_api, ['vm'], token, LONG_WAIT)
        waiter.start()
        # Let the waiter's request reach the server (not an assertion).
        time.sleep(0.2)
        self.assertTrue(waiter.is_alive())
        # Meanwhile, other sessions and other pools get answers at once.
        started = time.monotonic()
        for _ in range(20):
            self.assertStillServing()
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        self.assertEqual('user', self.api.VDI.get_type(vdi))
        self.assertStillServing(self.login('pool-b').xenapi)
        served_in = time.monotonic() - started
        # Had the server been serialised, nothing above would have been
        # answered before the waiter's event.from ended.
        self.assertTrue(waiter.is_alive())
        self.assertLess(served_in, LONG_WAIT / 2)
        # A VM event ends the wait.
        vm = self.create_vm()
        waiter.join(LONG_WAIT + 10)
        self.assertFalse(waiter.is_alive())
        self.assertIsNone(waiter.error)
        self.assertEqual([vm], [e['ref'] for e in waiter.result['events']])

    def test_several_waiters_are_all_woken(self):
        token = self._token(['vm'])
        waiters = [Waiter(self.login().xenapi, ['vm'], token, LONG_WAIT)
                   for _ in range(4)]
        for w in waiters:
            w.start()
        vm = self.create_vm()
        for w in waiters:
            w.join(LONG_WAIT + 10)
            self.assertFalse(w.is_alive())
            self.assertIsNone(w.error)
            self.assertLess(w.elapsed, LONG_WAIT / 2)
            self.assertEqual([vm], [e['ref'] for e in w.result['events']])

    def test_token_older_than_the_log_is_events_lost(self):
        vm = self.create_vm()
        token = self._token(['vm'])
        # Push the token out of the bounded event log, in-process (over
        # HTTP this would take far longer than the test deserves).
        db = self.sim.pools['pool-a'].db
        for i in range(dbmod.EVENT_LOG_SIZE + 1):
            db.inject('VM', vm)
        self.assertXapiError(['EVENTS_LOST'], base.event_from, self.api,
                             ['vm'], token, 0)
        # A fresh start (empty token) works, and so does its token.
        fresh = base.event_from(self.api, ['vm'], '', 0)
        self.assertIn(vm, [e['ref'] for e in fresh['events']])
        self.api.VM.set_name_label(vm, 'after')
        later = base.event_from(self.api, ['vm'], fresh['token'], 5)
        self.assertEqual([vm], [e['ref'] for e in later['events']])

    def test_event_inject(self):
        vm = self.create_vm()
        token = self._token(['vm'])
        injected = self.api.event.inject('VM', vm)
        self.assertTrue(injected)
        result = base.event_from(self.api, ['vm'], token, 5)
        self.assertEqual([(vm, 'mod')], [(e['ref'], e['operation'])
                                         for e in result['events']])
