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

"""SessionPool with a fake ``session_factory``: no socket, no XAPI.

The fake (``fakes.FakeXapi``) stands in for the network, not for the pool
under test.
"""

import threading
import time
import uuid
import xmlrpc.client

import fixtures
import testtools
import XenAPI

from sxm_core import errors
from sxm_core import redact
from sxm_core import sessions
from tests.unit.sxm_core import fakes

URL = 'https://xs1.example.org:8443/'


class SessionsTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.logger = self.useFixture(fixtures.FakeLogger())
        self.net = fakes.FakeXapi()
        self.sleeps = []

    def pool(self, **kwargs):
        kwargs.setdefault('session_factory', self.net.factory)
        kwargs.setdefault('sleep', self.sleeps.append)
        pool = sessions.SessionPool(kwargs.pop('url', URL), 'root',
                                    kwargs.pop('password', 'pool-secret'),
                                    **kwargs)
        self.addCleanup(pool.close)
        return pool


class TestBorrowing(SessionsTestCase):

    def test_logs_in_lazily(self):
        pool = self.pool(maxsize=4)
        self.assertEqual([], self.net.logins)
        self.assertEqual('value of VM.get_all', pool.call('VM.get_all'))
        self.assertEqual([URL], self.net.logins)

    def test_sessions_are_reused_last_in_first_out(self):
        pool = self.pool(maxsize=4)
        first = pool.session()
        second = pool.session()
        s1 = first.__enter__()
        s2 = second.__enter__()
        self.assertIsNot(s1, s2)
        first.__exit__(None, None, None)
        second.__exit__(None, None, None)      # s2 is now on top
        with pool.session() as again:
            self.assertIs(s2, again)
            with pool.session() as other:
                self.assertIs(s1, other)
        for _ in range(5):
            pool.call('host.get_all')
        self.assertEqual(2, len(self.net.logins))
        self.assertEqual({s2.handle}, {h for h, m, a in self.net.calls
                                       if m == 'host.get_all'})

    def test_an_xapi_failure_keeps_the_session(self):
        pool = self.pool()
        self.net.script['VM.get_record'] = [
            XenAPI.Failure(['HANDLE_INVALID', 'VM', 'OpaqueRef:x'])]
        exc = self.assertRaises(errors.HandleInvalid, pool.call,
                                'VM.get_record', 'OpaqueRef:x')
        self.assertEqual('VM.get_record', exc.call)
        pool.call('VM.get_record', 'OpaqueRef:y')
        self.assertEqual(1, len(self.net.logins))

    def test_a_typed_failure_raised_inside_keeps_the_session(self):
        # The core raises its own XapiFailure inside ``with pool.session()``
        # (tasks.wait_task on a failed task): the connection is fine.
        pool = self.pool(maxsize=1)

        def failed_task():
            with pool.session():
                raise errors.XapiFailure.from_details(['MIRROR_FAILED',
                                                       'OpaqueRef:v'])
        self.assertRaises(errors.XapiFailure, failed_task)
        with pool.session() as again:
            pass
        self.assertEqual(1, len(self.net.logins))
        self.assertFalse(again.raw.closed)

    def test_a_session_that_hit_a_connection_error_is_discarded(self):
        pool = self.pool(maxsize=1)
        with pool.session() as s1:
            pass

        def broken():
            with pool.session() as s:
                self.assertIs(s1, s)
                raise ConnectionResetError('reset by peer')
        self.assertRaises(errors.ConnectionFailed, broken)
        with pool.session() as s2:
            self.assertIsNot(s1, s2)
        self.assertEqual(2, len(self.net.logins))

    def test_a_discarded_session_has_its_connection_closed(self):
        pool = self.pool(maxsize=1)
        self.net.script['VM.start'] = [ConnectionResetError('reset')]
        self.assertRaises(errors.ConnectionFailed, pool.call, 'VM.start',
                          'OpaqueRef:vm')
        (discarded,) = self.net.sessions
        # ServerProxy's own way: session('close')() closes the transport.
        self.assertTrue(discarded.closed,
                        'the discarded session\'s connection was left open')

    def test_discarding_a_real_xenapi_session_sends_nothing(self):
        """XenAPI.Session has no close(): ``session.close`` is an RPC."""

        class Transport(object):
            """Stands in for the network under a real XenAPI.Session."""

            def __init__(self):
                self.methods = []
                self.closed = False

            def request(self, host, handler, body, verbose=False):
                _, method = xmlrpc.client.loads(body)
                self.methods.append(method)
                if method == 'session.login_with_password':
                    return ({'Status': 'Success',
                             'Value': 'OpaqueRef:real-session'},)
                if method == 'VM.get_record':
                    raise ConnectionResetError('reset by peer')
                return ({'Status': 'Success', 'Value': ''},)

            def close(self):
                self.closed = True

            def set_timeout(self, timeout):
                pass

        transport = Transport()

        def factory(url):
            # What SessionPool._make_session builds, on a fake network.
            session = XenAPI.Session(url, transport=transport)
            session.sxm_transport = transport
            return session
        pool = self.pool(retries=0, session_factory=factory)
        self.assertRaises(errors.ConnectionFailed, pool.call,
                          'VM.get_record', 'OpaqueRef:vm')
        self.assertNotIn('close', transport.methods)
        self.assertTrue(transport.closed)


class TestRetries(SessionsTestCase):

    def test_read_only_calls_are_retried_with_backoff(self):
        pool = self.pool(retries=3, backoff=0.5)
        self.net.script['VM.get_record'] = [
            ConnectionRefusedError('refused'), TimeoutError('timed out'),
            {'name_label': 'web'}]
        self.assertEqual({'name_label': 'web'},
                         pool.call('VM.get_record', 'OpaqueRef:vm'))
        self.assertEqual([0.5, 1.0], self.sleeps)
        self.assertEqual(3, self.net.count('VM.get_record'))
        # Each failure discarded its session.
        self.assertEqual(3, len(self.net.logins))

    def test_retries_are_bounded(self):
        pool = self.pool(retries=2, backoff=1.0)
        self.net.script['SR.get_all_records'] = [
            OSError('down')] * 5
        exc = self.assertRaises(errors.ConnectionFailed, pool.call,
                                'SR.get_all_records')
        self.assertIn(URL, str(exc))
        self.assertIn('down', str(exc))
        self.assertEqual([1.0, 2.0], self.sleeps)
        self.assertEqual(3, self.net.count('SR.get_all_records'))

    def test_a_call_that_is_not_read_only_is_not_retried(self):
        pool = self.pool(retries=3)
        for method in ('VM.migrate_send', 'Async.VM.migrate_send',
                       'VDI.destroy', 'event.from'):
            self.net.script[method] = [TimeoutError('timed out'), 'ok']
            self.assertRaises(errors.ConnectionFailed, pool.call, method)
            self.assertEqual(1, self.net.count(method), method)
        self.assertEqual([], self.sleeps)

    def test_an_xapi_failure_is_never_retried(self):
        pool = self.pool(retries=3)
        self.net.script['VM.get_record'] = [
            XenAPI.Failure(['HANDLE_INVALID', 'VM', 'OpaqueRef:x']), 'ok']
        self.assertRaises(errors.XapiFailure, pool.call, 'VM.get_record',
                          'OpaqueRef:x')
        self.assertEqual(1, self.net.count('VM.get_record'))
        self.assertEqual([], self.sleeps)

    def test_login_is_retried_on_connection_errors_only(self):
        pool = self.pool(retries=3, backoff=0.25)
        self.net.login_script = [ConnectionRefusedError('refused'),
                                 OSError('unreachable')]
        pool.call('host.get_all')
        self.assertEqual([0.25, 0.5], self.sleeps)
        self.assertEqual(3, len(self.net.logins))

    def test_wrong_credentials_are_not_retried(self):
        pool = self.pool(retries=3, password='not-the-password')
        self.net.login_script = [XenAPI.Failure(
            ['SESSION_AUTHENTICATION_FAILED', 'root',
             'Authentication failure'])]
        exc = self.assertRaises(errors.AuthenticationFailed, pool.call,
                                'host.get_all')
        self.assertEqual(1, len(self.net.logins))
        self.assertEqual([], self.sleeps)
        self.assertNotIn('not-the-password', str(exc))
        # The slot is free again: the next call logs in afresh.
        pool.call('host.get_all')
        self.assertEqual(2, len(self.net.logins))


class TestHostIsSlave(SessionsTestCase):

    def test_login_follows_the_master_with_the_same_scheme_and_port(self):
        pool = self.pool()
        self.net.login_script = [XenAPI.Failure(['HOST_IS_SLAVE',
                                                 '192.0.2.10'])]
        pool.call('host.get_all')
        self.assertEqual([URL, 'https://192.0.2.10:8443/'],
                         self.net.logins)
        self.assertEqual('https://192.0.2.10:8443/', pool.url)
        self.assertEqual([], self.sleeps)

    def test_ipv6_master_and_default_port(self):
        pool = self.pool(url='http://xs2.example.org/')
        self.net.login_script = [XenAPI.Failure(['HOST_IS_SLAVE',
                                                 '2001:db8::10'])]
        pool.call('host.get_all')
        self.assertEqual('http://[2001:db8::10]/', pool.url)

    def test_redirects_are_bounded(self):
        pool = self.pool()
        self.net.login_script = [XenAPI.Failure(['HOST_IS_SLAVE', 'a'])] * 10
        self.assertRaises(errors.HostIsSlave, pool.call, 'host.get_all')
        self.assertEqual(1 + sessions.MAX_REDIRECTS, len(self.net.logins))


class TestExhaustion(SessionsTestCase):

    def test_block_waits_then_gives_up_after_the_timeout(self):
        pool = self.pool(maxsize=1, block=True, pool_timeout=0.2)
        with pool.session():
            started = time.monotonic()
            exc = self.assertRaises(errors.SxmError, pool.call,
                                    'host.get_all')
            waited = time.monotonic() - started
        self.assertGreaterEqual(waited, 0.15)
        self.assertIn('No free XAPI session', str(exc))
        self.assertEqual(1, len(self.net.logins))
        # Free again.
        pool.call('host.get_all')

    def test_block_gets_the_session_another_thread_returns(self):
        pool = self.pool(maxsize=1, block=True, pool_timeout=10)
        got = []
        borrowed = threading.Event()

        def holder():
            with pool.session() as s:
                got.append(s)
                borrowed.set()
                time.sleep(0.1)
        thread = threading.Thread(target=holder)
        thread.start()
        borrowed.wait(5)
        with pool.session() as s:
            got.append(s)
        thread.join()
        self.assertIs(got[0], got[1])
        self.assertEqual(1, len(self.net.logins))

    def test_no_block_fails_at_once(self):
        pool = self.pool(maxsize=1, block=False, pool_timeout=30)
        with pool.session():
            started = time.monotonic()
            self.assertRaises(errors.SxmError, pool.call, 'host.get_all')
            self.assertLess(time.monotonic() - started, 5)

    def test_never_more_sessions_than_maxsize(self):
        pool = self.pool(maxsize=3)
        in_use = []
        peak = []
        lock = threading.Lock()

        def work():
            for _ in range(20):
                with pool.session() as s:
                    with lock:
                        in_use.append(s)
                        peak.append(len(in_use))
                    time.sleep(0.001)
                    with lock:
                        in_use.remove(s)
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertLessEqual(max(peak), 3)
        self.assertLessEqual(len(self.net.logins), 3)

    def test_a_failed_login_gives_the_slot_back(self):
        pool = self.pool(maxsize=1, retries=0, pool_timeout=0.1)
        self.net.login_script = [OSError('down')]
        self.assertRaises(errors.ConnectionFailed, pool.call, 'host.get_all')
        self.assertEqual('value of host.get_all', pool.call('host.get_all'))


class TestClose(SessionsTestCase):

    def test_close_logs_out_idle_sessions(self):
        pool = self.pool(maxsize=4)
        a = pool.session()
        b = pool.session()
        a.__enter__()
        b.__enter__()
        a.__exit__(None, None, None)
        b.__exit__(None, None, None)
        self.assertEqual(2, len(self.net.live))
        pool.close()
        self.assertEqual(set(), self.net.live)
        self.assertEqual(2, self.net.count('session.logout'))
        self.assertRaises(errors.SxmError, pool.call, 'host.get_all')

    def test_a_borrowed_session_logs_out_when_returned(self):
        pool = self.pool()
        with pool.session() as s:
            pool.close()
            self.assertFalse(s.raw.logged_out)
        self.assertTrue(s.raw.logged_out)
        self.assertEqual(set(), self.net.live)

    def test_logout_failures_are_ignored(self):
        pool = self.pool()
        pool.call('host.get_all')
        original = self.net.call

        def call(session, method, args):
            if method == 'session.logout':
                raise OSError('gone')
            return original(session, method, args)
        self.net.call = call
        pool.close()

    def test_session_handles_are_secret_until_logout(self):
        pool = self.pool()
        with pool.session() as s:
            handle = s.handle
        self.assertEqual('***', redact.scrub(handle))
        pool.close()
        self.assertEqual(handle, redact.scrub(handle))

    def test_the_password_is_secret(self):
        self.pool(password='pool-secret-1')
        self.assertEqual('pw ***', redact.scrub('pw pool-secret-1'))

    def test_closing_one_pool_keeps_a_shared_password_secret(self):
        # Two pool masters with the same root password: closing one pool
        # must not unmask the password the other still uses.
        one = self.pool(url='https://a.example.org/',
                        password='same-root-pw')
        self.pool(url='https://b.example.org/', password='same-root-pw')
        one.close()
        self.assertEqual('pw ***', redact.scrub('pw same-root-pw'))


class TestValidation(SessionsTestCase):

    def test_bad_urls_and_sizes(self):
        for url in ('', 'xs1.example.org', 'ftp://xs1/', 'http:///'):
            self.assertRaises(ValueError, sessions.SessionPool, url,
                              'root', 'pw', session_factory=self.net.factory)
        self.assertRaises(ValueError, sessions.SessionPool, URL, 'root',
                          'pw', maxsize=0, session_factory=self.net.factory)

    def test_a_bad_url_is_reported_without_its_session_id(self):
        exc = self.assertRaises(ValueError, sessions.SessionPool,
                                'ftp://h/?session_id=OpaqueRef:tok', 'root',
                                'pw', session_factory=self.net.factory)
        self.assertNotIn('OpaqueRef:tok', str(exc))


class TestErrorsAtTheBoundary(SessionsTestCase):
    """What XenAPI raises inside ``with pool.session()`` comes out typed."""

    def borrow_and_call(self, pool):
        with pool.session() as s:
            return s.VM.get_record('OpaqueRef:x')

    def test_a_xenapi_failure_becomes_a_typed_xapi_failure(self):
        pool = self.pool(maxsize=1)
        self.net.script['VM.get_record'] = [
            XenAPI.Failure(['HANDLE_INVALID', 'VM', 'OpaqueRef:x']),
            XenAPI.Failure(['MIRROR_FAILED', 'OpaqueRef:v'])]
        exc = self.assertRaises(errors.HandleInvalid, self.borrow_and_call,
                                pool)
        self.assertEqual(['VM', 'OpaqueRef:x'], exc.params)
        exc = self.assertRaises(errors.XapiFailure, self.borrow_and_call,
                                pool)
        self.assertIs(errors.XapiFailure, type(exc))
        self.assertEqual(('MIRROR_FAILED', ['OpaqueRef:v']),
                         (exc.code, exc.params))
        # An XAPI failure leaves the session usable: it went back.
        self.assertEqual('value of VM.get_record',
                         self.borrow_and_call(pool))
        self.assertEqual(1, len(self.net.logins))

    def test_a_connection_error_becomes_connection_failed(self):
        pool = self.pool(maxsize=1)
        self.net.script['VM.get_record'] = [
            ConnectionResetError('reset by peer')]
        exc = self.assertRaises(errors.ConnectionFailed,
                                self.borrow_and_call, pool)
        self.assertIn('reset by peer', str(exc))
        self.assertIn(URL, str(exc))
        (broken,) = self.net.sessions
        self.assertTrue(broken.closed)
        self.assertEqual('value of VM.get_record',
                         self.borrow_and_call(pool))
        self.assertEqual(2, len(self.net.logins))


class TestPrivateSession(SessionsTestCase):

    def test_logged_in_apart_from_the_pool_and_logged_out_after(self):
        pool = self.pool(maxsize=1, block=False)
        with pool.private_session() as private:
            handle = private.handle
            self.assertIn(handle, self.net.live)
            self.assertEqual('***', redact.scrub(handle))
            # The pool's only session is still free for others.
            self.assertEqual('value of host.get_all',
                             pool.call('host.get_all'))
        (pooled,) = {h for h, m, a in self.net.calls
                     if m == 'host.get_all'}
        self.assertNotEqual(handle, pooled)
        self.assertTrue(private.raw.logged_out)
        self.assertTrue(private.raw.closed)
        self.assertNotIn(handle, self.net.live)
        self.assertEqual(handle, redact.scrub(handle))
        # It never joined the pool.
        with pool.session() as again:
            self.assertIsNot(private, again)
            self.assertEqual(pooled, again.handle)
        self.assertEqual(2, len(self.net.logins))

    def test_errors_inside_are_typed_and_the_session_logged_out(self):
        pool = self.pool()
        self.net.script['event_from'] = [
            XenAPI.Failure(['SESSION_INVALID', 'OpaqueRef:s']),
            ConnectionResetError('reset by peer')]
        for expected in (errors.SessionInvalid, errors.ConnectionFailed):
            def wait():
                with pool.private_session() as s:
                    s.call('event_from', ['task'], '', 5.0)
            self.assertRaises(expected, wait)
        self.assertEqual(2, self.net.count('session.logout'))
        self.assertEqual(set(), self.net.live)


class TestWaitSession(SessionsTestCase):
    """A waiter blocks on an idle pooled session rather than log in."""

    def test_borrows_the_idle_session_and_gives_it_back(self):
        pool = self.pool(maxsize=4)
        pool.call('VM.get_all')
        (pooled,) = self.net.live
        with pool.wait_session() as waiter:
            self.assertEqual(pooled, waiter.handle)
            waiter.call('event_from', ['task'], '', 5.0)
            # Other callers get another session meanwhile.
            pool.call('host.get_all')
        self.assertEqual(2, len(self.net.logins))
        self.assertEqual(0, self.net.count('session.logout'))
        with pool.session() as again:
            self.assertIn(again.handle, self.net.live)

    def test_one_waiter_at_a_time_borrows(self):
        pool = self.pool(maxsize=4)
        pool.call('VM.get_all')
        with pool.wait_session() as first:
            with pool.wait_session() as second:
                self.assertNotEqual(first.handle, second.handle)
                private = second.handle
            self.assertNotIn(private, self.net.live)
        with pool.wait_session() as third:
            self.assertEqual(first.handle, third.handle)

    def test_without_an_idle_session_it_logs_in_privately(self):
        pool = self.pool(maxsize=4)
        with pool.wait_session() as waiter:
            handle = waiter.handle
        self.assertEqual(1, len(self.net.logins))
        self.assertNotIn(handle, self.net.live)
        self.assertTrue(waiter.raw.logged_out)

    def test_the_only_session_of_a_pool_is_never_lent(self):
        pool = self.pool(maxsize=1, block=False)
        pool.call('VM.get_all')
        (pooled,) = self.net.live
        with pool.wait_session() as waiter:
            self.assertNotEqual(pooled, waiter.handle)
            # The pool's callers are not starved by the wait.
            self.assertEqual('value of host.get_all',
                             pool.call('host.get_all'))

    def test_a_broken_connection_discards_the_borrowed_session(self):
        pool = self.pool(maxsize=4)
        pool.call('VM.get_all')
        self.net.script['event_from'] = [
            ConnectionResetError('reset by peer')]

        def wait():
            with pool.wait_session() as waiter:
                waiter.call('event_from', ['task'], '', 5.0)
        self.assertRaises(errors.ConnectionFailed, wait)
        (broken,) = self.net.sessions
        self.assertTrue(broken.closed)
        # Logged out, as a private wait's session would be.
        self.assertTrue(broken.logged_out)
        self.assertEqual(set(), self.net.live)
        pool.call('VM.get_all')
        self.assertEqual(2, len(self.net.logins))

    def test_an_interrupted_wait_leaves_no_login(self):
        pool = self.pool(maxsize=4)
        pool.call('VM.get_all')

        def wait():
            with pool.wait_session():
                raise KeyboardInterrupt()
        self.assertRaises(KeyboardInterrupt, wait)
        self.assertEqual(set(), self.net.live)


class TestTokenSession(SessionsTestCase):
    """Calls on a session another party logged in (migrate_receive's)."""

    def test_calls_with_the_token_without_login_or_logout(self):
        pool = self.pool()
        token = 'OpaqueRef:token-%s' % uuid.uuid4()
        with pool.token_session(token) as x:
            self.assertEqual('value of VM.get_record',
                             x.VM.get_record('OpaqueRef:vm'))
        self.assertEqual([(token, 'VM.get_record', ('OpaqueRef:vm',))],
                         self.net.calls)
        self.assertEqual([], self.net.logins)
        self.assertTrue(self.net.sessions[0].closed)

    def test_a_token_gone_is_session_invalid(self):
        pool = self.pool()
        self.net.script['VM.get_record'] = [
            xmlrpc.client.Fault(401, 'You must log in')]

        def read():
            with pool.token_session('OpaqueRef:gone') as x:
                x.VM.get_record('OpaqueRef:vm')
        self.assertRaises(errors.SessionInvalid, read)
        self.assertEqual([], self.net.logins)


class TestSecretsOfThePool(SessionsTestCase):

    def test_closing_twice_keeps_a_shared_password_secret(self):
        one = self.pool(url='https://a.example.org/',
                        password='twice-closed-pw')
        self.pool(url='https://b.example.org/', password='twice-closed-pw')
        one.close()
        one.close()
        self.assertEqual('pw ***', redact.scrub('pw twice-closed-pw'))

    def test_a_handle_from_a_silent_relogin_is_secret(self):
        """XenAPI logs in again by itself when XAPI says SESSION_INVALID."""
        tag = uuid.uuid4()
        handles = ['OpaqueRef:first-%s' % tag, 'OpaqueRef:second-%s' % tag]

        class Transport(object):
            """The network under a real XenAPI.Session."""

            def __init__(self):
                self.logins = list(handles)

            def request(self, host, handler, body, verbose=False):
                params, method = xmlrpc.client.loads(body)
                if method == 'session.login_with_password':
                    return ({'Status': 'Success',
                             'Value': self.logins.pop(0)},)
                if method == 'VM.get_record' and params[0] == handles[0]:
                    # The session expired on the server.
                    return ({'Status': 'Failure',
                             'ErrorDescription': ['SESSION_INVALID',
                                                  params[0]]},)
                return ({'Status': 'Success', 'Value': 'ok'},)

            def close(self):
                pass

            def set_timeout(self, timeout):
                pass

        def factory(url):
            transport = Transport()
            session = XenAPI.Session(url, transport=transport)
            session.sxm_transport = transport
            return session
        pool = self.pool(session_factory=factory)
        self.assertEqual('ok', pool.call('VM.get_record', 'OpaqueRef:vm'))
        with pool.session() as s:
            self.assertEqual(handles[1], s.handle)
        self.assertEqual('ref ***', redact.scrub('ref %s' % handles[1]))
        pool.close()
        # Logged out: no longer a secret.
        self.assertEqual(handles[1], redact.scrub(handles[1]))


class TestReadTimeouts(testtools.TestCase):
    """Each call's read timeout: short, long for slow calls, event.from's."""

    def setUp(self):
        super().setUp()
        self.timeouts = sessions.Timeouts(call=30.0, long_call=300.0,
                                          event_grace=5.0)

    def test_ordinary_calls_get_the_short_timeout(self):
        for method in ('VM.get_record', 'task.cancel', 'session.logout',
                       'Async.VM.migrate_send', 'Async.SR.scan'):
            self.assertEqual(30.0, self.timeouts.for_call(method, ()))

    def test_calls_that_may_run_long_synchronously_get_the_long_one(self):
        for method in ('SR.scan', 'VM.assert_can_migrate', 'VDI.copy',
                       'host.migrate_receive', 'VM.clean_shutdown'):
            self.assertEqual(300.0, self.timeouts.for_call(method, ()))

    def test_event_from_waits_its_own_timeout_plus_the_grace(self):
        for name in ('event.from', 'event_from'):
            self.assertEqual(65.0, self.timeouts.for_call(
                name, ('OpaqueRef:s', ['task'], '', 60.0)))
        self.assertEqual(10.0, self.timeouts.for_call(
            'event_from', ('OpaqueRef:s', ['task'], '', '5')))

    def test_the_transport_gets_the_timeout_before_each_call(self):
        transport = sessions.HTTPTransport()
        session = sessions.TimedSession('http://xs1.example.org/',
                                        transport=transport)
        session.sxm_transport = transport
        session.sxm_timeouts = self.timeouts
        seen = []

        def request(methodname, params):
            seen.append((methodname, transport.timeout))
            return {'Status': 'Success', 'Value': 'ok'}
        self.useFixture(fixtures.MockPatchObject(
            xmlrpc.client.ServerProxy, '_ServerProxy__request',
            lambda self, m, p: request(m, p)))
        session._session = 'OpaqueRef:s'
        session.xenapi.SR.scan('OpaqueRef:sr')
        session.xenapi.VM.get_record('OpaqueRef:vm')
        session.xenapi.event_from(['task'], '', 5.0)
        self.assertEqual([('SR.scan', 300.0), ('VM.get_record', 30.0),
                          ('event_from', 10.0)], seen)
