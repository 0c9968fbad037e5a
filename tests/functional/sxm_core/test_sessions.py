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

"""A real SessionPool shared by many threads, against the simulator."""

import threading
import time

from sxm_core import errors
from sxm_core import sessions
from tests.functional.sxm_core import base
from tests.functional.sxm_core import tcpproxy

THREADS = 16
CALLS = 25
MAXSIZE = 4


class TestSessionPool(base.CoreTestCase):

    def test_sixteen_threads_share_a_bounded_pool(self):
        vms = []
        for i in range(THREADS):
            vm, _ = self.make_vm(name='vm%02d' % i, disks=(), start=False,
                                 vif=False)
            vms.append((vm, self.api.VM.get_uuid(vm), 'vm%02d' % i))
        logins = self.spy_sessions('pool-a')
        pool = self.pool('pool-a', maxsize=MAXSIZE)
        errs = []
        peak = [0]
        done = threading.Event()
        go = threading.Barrier(THREADS + 1)

        def sample():
            while not done.is_set():
                held = len(self.sessions('pool-a')
                           - self.own_sessions['pool-a'])
                peak[0] = max(peak[0], held)
                time.sleep(0.001)

        def work(vm, uuid, name):
            try:
                go.wait(10)
                for n in range(CALLS):
                    if n % 3 == 0:
                        got = pool.call('VM.get_name_label', vm)
                        assert got == name, (got, name)
                    elif n % 3 == 1:
                        rec = pool.call('VM.get_record', vm)
                        assert (rec['uuid'], rec['name_label']) == (
                            uuid, name), rec
                    else:
                        with pool.session() as s:
                            got = s.VM.get_by_uuid(uuid)
                            assert got == vm, (got, vm)
                            got = s.VM.get_name_label(got)
                            assert got == name, (got, name)
            except Exception as exc:
                errs.append(exc)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        threads = [threading.Thread(target=work, args=args, daemon=True)
                   for args in vms]
        for t in threads:
            t.start()
        go.wait(10)
        for t in threads:
            t.join(base.DEADLINE)
        done.set()
        sampler.join(base.DEADLINE)

        self.assertEqual([], errs)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertLessEqual(peak[0], MAXSIZE)
        self.assertLessEqual(len(logins), MAXSIZE)
        self.assertGreaterEqual(len(logins), 1)
        pool.close()
        self.assertNoSessionsLeft()

    def test_failures_are_typed_and_keep_the_pool_usable(self):
        pool = self.pool('pool-a', maxsize=2)
        exc = self.assertRaises(errors.HandleInvalid, pool.call,
                                'VM.get_record', 'OpaqueRef:nosuch')
        self.assertEqual(['VM', 'OpaqueRef:nosuch'], exc.params)
        self.assertEqual('VM.get_record', exc.call)
        self.assertEqual(1, len(pool.call('pool.get_all')))

    def test_wrong_password(self):
        pool = sessions.SessionPool(self.url('pool-a'), 'root',
                                    'not-xapi-sim')
        self.addCleanup(pool.close)
        exc = self.assertRaises(errors.AuthenticationFailed, pool.call,
                                'pool.get_all')
        self.assertIn('refused the credentials of user root', str(exc))
        self.assertNotIn('not-xapi-sim', str(exc))
        # The refusal names its pool (without user info), from the core.
        self.assertEqual('XAPI refused the credentials of user root for '
                         'the pool at %s.' % self.url('pool-a'), str(exc))
        self.assertEqual(self.url('pool-a'), exc.pool)

    def test_wrong_password_names_the_pools_role_and_hides_user_info(self):
        url = self.url('pool-b').replace('://', '://root:secret-pw@')
        pool = sessions.SessionPool(url, 'root', 'not-xapi-sim',
                                    label='destination')
        self.addCleanup(pool.close)
        exc = self.assertRaises(errors.AuthenticationFailed, pool.call,
                                'pool.get_all')
        self.assertEqual('XAPI refused the credentials of user root for '
                         'the destination pool at %s.' % self.url('pool-b'),
                         str(exc))
        self.assertNotIn('secret-pw', str(exc))

    def test_unreachable_master(self):
        sleeps = []
        pool = sessions.SessionPool('http://127.0.0.1:1/', 'root', 'pw-1234',
                                    retries=2, backoff=0.01,
                                    sleep=sleeps.append)
        self.addCleanup(pool.close)
        exc = self.assertRaises(errors.ConnectionFailed, pool.call,
                                'pool.get_all')
        self.assertIn('http://127.0.0.1:1/', str(exc))
        self.assertIn('refused', str(exc))
        self.assertEqual([0.01, 0.02], sleeps)

    def test_a_call_that_times_out_is_not_retried(self):
        # A silent master: the short call's read timeout gives up, and a
        # call that may have reached the server is not sent again.
        proxy = self.useFixture(tcpproxy.FreezingProxy(self.url('pool-a')))
        pool = sessions.SessionPool(proxy.url, self.simfix.username,
                                    self.simfix.password, call_timeout=0.5,
                                    retries=3, backoff=0.01)
        self.addCleanup(pool.close)
        ref = pool.call('pool.get_all')[0]
        proxy.freeze()
        started = time.monotonic()
        self.assertRaises(errors.ConnectionFailed, pool.call, 'event.inject',
                          'pool', ref)
        self.assertLess(time.monotonic() - started, 3.0)
        self.assertEqual(1, proxy.accepted)   # no second try
        proxy.thaw()
        # The pool still works, with a fresh session.
        self.assertEqual(1, len(pool.call('pool.get_all')))

    def test_event_from_may_block_longer_than_the_call_timeout(self):
        # Its read timeout is the one it asks the server for plus a grace.
        pool = self.pool('pool-a', call_timeout=0.5, event_grace=1.0)
        token = pool.call('event.inject', 'pool',
                          pool.call('pool.get_all')[0])
        started = time.monotonic()
        answer = pool.call('event.from', ['vm/OpaqueRef:nosuch'], token, 2.0)
        self.assertEqual([], answer['events'])
        self.assertGreater(time.monotonic() - started, 1.5)
