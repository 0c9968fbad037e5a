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

"""A thread-safe pool of XenAPI sessions to one pool master.

``XenAPI.Session`` is an ``xmlrpc.client.ServerProxy`` holding one HTTP
connection: it must not be shared by threads. ``SessionPool`` keeps a
bounded LIFO of logged-in sessions (urllib3's connection-pool shape): a
caller makes one call with ``pool.api.VM.get_record(ref)`` (or
``pool.call('VM.get_record', ref)``) or borrows a session for a few calls
with ``with pool.session() as x: x.VM.get_record(ref)``. Either way the
calls are typed: an XAPI error is an ``errors.XapiFailure`` subclass, a
broken connection ``errors.ConnectionFailed``; ``XenAPI.Failure`` never
leaves this module. A session that hit a connection error
is discarded, not returned. Connection errors are retried with backoff for
logins and read-only calls (and for any call refused before it reached the
server), never after an XAPI failure. Logging in on a pool member follows
``HOST_IS_SLAVE`` to the master.

Every call has a read timeout of its own, so that a silent peer (a crashed
master, a firewall that drops a connection's state: no reset, packets just
vanish) is noticed in seconds, not after minutes: ``call_timeout`` for the
ordinary calls, ``long_call_timeout`` for the few that xapi may
legitimately run for long synchronously (``LONG_CALLS``: SR.scan,
assert_can_migrate...), and for ``event.from`` the timeout it asks the
server for plus ``event_grace``. Migrations and copies run as ``Async``
tasks, whose calls return at once.
"""

import contextlib
import http.client
import queue
import ssl
import threading
import time
import urllib.parse
import xmlrpc.client

import XenAPI

from sxm_core import errors
from sxm_core import redact
from sxm_core import retry

LOG = redact.get_logger(__name__)

CONNECTION_ERRORS = (OSError, http.client.HTTPException,
                     xmlrpc.client.ProtocolError)
API_VERSION = '2.21'
MAX_REDIRECTS = 3
# Calls that xapi may answer only after a long synchronous operation
# (storage backends, cross-pool checks, VM lifecycle).
LONG_CALLS = frozenset([
    'SR.scan', 'SR.probe', 'SR.create', 'SR.destroy', 'SR.forget',
    'SR.update', 'PBD.plug', 'PBD.unplug',
    'VDI.copy', 'VDI.clone', 'VDI.snapshot', 'VDI.resize', 'VDI.destroy',
    'VDI.pool_migrate', 'VDI.enable_cbt', 'VDI.disable_cbt',
    'VDI.list_changed_blocks',
    'VBD.plug', 'VBD.unplug', 'VBD.unplug_force',
    'VM.assert_can_migrate', 'VM.migrate_send', 'VM.pool_migrate',
    'VM.start', 'VM.start_on', 'VM.clean_shutdown', 'VM.hard_shutdown',
    'VM.clean_reboot', 'VM.hard_reboot', 'VM.suspend', 'VM.resume',
    'VM.snapshot', 'VM.clone', 'VM.copy', 'VM.destroy',
    'host.migrate_receive',
])
# How long a logout may take: it is never worth waiting for.
LOGOUT_TIMEOUT = 5.0


def wire_name(method):
    """``event_from`` -> ``event.from`` (XenAPI's spelling of keywords)."""
    if '.' not in method and '_' in method:
        return method.replace('_', '.', 1)
    return method


class Timeouts(object):
    """The read timeout of each call, by method name."""

    def __init__(self, call, long_call, event_grace):
        self.call = call
        self.long_call = long_call
        self.event_grace = event_grace

    def for_call(self, method, params):
        name = wire_name(method)
        if name == 'event.from':
            try:
                asked = float(params[-1])
            except (IndexError, TypeError, ValueError):
                asked = self.call
            return asked + self.event_grace
        if name in LONG_CALLS:
            return self.long_call
        return self.call


class TimedSession(XenAPI.Session):
    """A XenAPI.Session that sets each call's read timeout first."""

    sxm_timeouts = None

    def xenapi_request(self, methodname, params):
        timeouts = vars(self).get('sxm_timeouts')
        transport = vars(self).get('sxm_transport')
        if timeouts is not None and transport is not None:
            transport.set_timeout(timeouts.for_call(methodname, params))
        return super().xenapi_request(methodname, params)


class _TimeoutMixin(object):
    """An xmlrpc transport whose socket timeout can be changed."""

    timeout = None

    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.timeout = self.timeout
        if conn.sock is not None:
            conn.sock.settimeout(self.timeout)
        return conn

    def set_timeout(self, timeout):
        self.timeout = timeout
        conn = getattr(self, '_connection', (None, None))[1]
        if conn is not None:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)


class HTTPTransport(_TimeoutMixin, xmlrpc.client.Transport):
    pass


class HTTPSTransport(_TimeoutMixin, xmlrpc.client.SafeTransport):
    pass


def ssl_context(ca_file=None, insecure=False):
    """Verification on, against ``ca_file`` or the system store.

    ``insecure`` is the explicit opt-out, for lab pools with self-signed
    certificates.
    """
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=ca_file)


def safe_url(url):
    """A pool URL without user information (which may hold a password)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ''
        if ':' in host:
            host = '[%s]' % host
        if parts.port is not None:
            host = '%s:%d' % (host, parts.port)
        return urllib.parse.urlunsplit((parts.scheme, host, parts.path,
                                        '', ''))
    except ValueError:
        return '(an unparsable URL)'


def _read_only(method):
    return method.rsplit('.', 1)[-1].startswith('get_')


class SessionPool(object):
    """Logged-in XenAPI sessions to one pool, shared by threads.

    ``call_timeout``, ``long_call_timeout`` and ``event_grace`` set the
    read timeout of each call (see the module's docstring);
    ``contact_timeout`` is how long a task waiter tolerates a silent pool
    before it gives up with ``errors.ContactLost``. ``label`` names the
    pool's role in messages ("source", "destination").
    """

    def __init__(self, url, username, password, maxsize=4, block=True,
                 pool_timeout=120.0, login_timeout=30.0, call_timeout=30.0,
                 ca_file=None, insecure=False, retries=3, backoff=0.5,
                 originator='openstack-sxm', session_factory=None,
                 sleep=time.sleep, long_call_timeout=300.0,
                 event_grace=5.0, contact_timeout=30.0, label=None):
        parts = urllib.parse.urlsplit(url or '')
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise ValueError('XAPI URL must be http(s)://host[:port]/, got '
                             '%r' % redact.scrub(url))
        if maxsize < 1:
            raise ValueError('maxsize must be at least 1')
        self.url = url
        self.label = label
        self.username = username
        self._password = redact.register(password)
        self.block = block
        self.pool_timeout = pool_timeout
        self.login_timeout = login_timeout
        self.call_timeout = call_timeout
        self.long_call_timeout = long_call_timeout
        self.event_grace = event_grace
        self.contact_timeout = contact_timeout
        self.timeouts = Timeouts(call_timeout, long_call_timeout,
                                 event_grace)
        self.retries = retries
        self.backoff = backoff
        self.originator = originator
        self._tls = {'ca_file': ca_file, 'insecure': insecure}
        self._ctx = (ssl_context(ca_file, insecure)
                     if parts.scheme == 'https' else None)
        self._factory = session_factory or self._make_session
        self._sleep = sleep
        self._queue = queue.LifoQueue(maxsize)
        for _ in range(maxsize):
            self._queue.put(None)
        self._closed = False
        # A waiter holds one of the pooled sessions (wait_session).
        self._waiting = False
        self._waiting_lock = threading.Lock()

    def __repr__(self):
        return '<SessionPool %s user=%s>' % (self.url, self.username)

    def connection_args(self):
        """What another process needs to log in here, password included.

        Secret: only for handing to a child process through a pipe.
        """
        return dict(self._tls, url=self.url, username=self.username,
                    password=self._password,
                    login_timeout=self.login_timeout,
                    call_timeout=self.call_timeout,
                    long_call_timeout=self.long_call_timeout,
                    event_grace=self.event_grace,
                    contact_timeout=self.contact_timeout)

    # -- sessions --------------------------------------------------------

    def _make_session(self, url):
        if url.startswith('https'):
            transport = HTTPSTransport(context=self._ctx)
        else:
            transport = HTTPTransport()
        transport.set_timeout(self.login_timeout)
        session = TimedSession(url, transport=transport)
        session.sxm_transport = transport
        return session

    def _login(self, timeout=None):
        """A logged-in session; connection errors retried with backoff.

        ``timeout`` (a caller's deadline) means one bounded attempt.
        """
        def on_retry(exc, attempt, delay):
            LOG.warning('Cannot log in to %(url)s (%(err)s); retrying in '
                        '%(delay).1f s', {'url': safe_url(self.url),
                                          'err': exc, 'delay': delay})

        return retry.call(
            lambda: self._login_once(timeout),
            retries=0 if timeout is not None else self.retries,
            retry_if=lambda exc: isinstance(exc, errors.ConnectionFailed),
            delay=retry.backoff(self.backoff), wait=self._sleep,
            on_retry=on_retry)

    def _login_once(self, timeout):
        redirects = 0
        while True:
            session = self._factory(self.url)
            # vars(): a plain XenAPI.Session answers any attribute
            # with an XML-RPC stub.
            transport = vars(session).get('sxm_transport')
            if transport is not None:
                transport.set_timeout(min(self.login_timeout,
                                          timeout or self.login_timeout))
            try:
                session.login_with_password(self.username, self._password,
                                            API_VERSION, self.originator)
            except XenAPI.Failure as failure:
                self._discard(session)
                exc = errors.XapiFailure.from_failure(
                    failure, call='session.login_with_password')
                if (isinstance(exc, errors.HostIsSlave)
                        and redirects < MAX_REDIRECTS):
                    redirects += 1
                    self._follow_master(exc.param('master_ip_address'))
                    continue
                if isinstance(exc, errors.AuthenticationFailed):
                    # Name the pool: a CLI or a driver may talk to several.
                    exc = errors.AuthenticationFailed(
                        exc.code, exc.params, call=exc.call,
                        pool=safe_url(self.url), pool_label=self.label)
                # Chained: a traceback still shows XAPI's own answer.
                raise exc
            except xmlrpc.client.Fault as fault:
                self._discard(session)
                raise errors.ConnectionFailed(
                    url=safe_url(self.url), reason=fault.faultString,
                    during='login') from None
            except CONNECTION_ERRORS as err:
                self._discard(session)
                raise errors.ConnectionFailed(
                    url=safe_url(self.url), reason=err,
                    during='login') from None
            redact.register(session.handle)
            session.sxm_handle = session.handle
            # Where it logged in: a master that moves makes it stale.
            session.sxm_url = self.url
            if transport is not None:
                transport.set_timeout(self.call_timeout)
                session.sxm_timeouts = self.timeouts
            LOG.debug('Logged in to %s as %s', safe_url(self.url),
                      self.username)
            return session

    def _follow_master(self, master):
        if not master:
            return
        parts = urllib.parse.urlsplit(self.url)
        host = '[%s]' % master if ':' in master else master
        if parts.port is not None:
            host = '%s:%d' % (host, parts.port)
        new = urllib.parse.urlunsplit((parts.scheme, host,
                                       parts.path or '/', '', ''))
        LOG.info('%s is a pool member; following its master to %s',
                 self.url, new)
        self.url = new

    def _get(self):
        if self._closed:
            raise errors.PoolClosed(url=safe_url(self.url))
        try:
            session = self._queue.get(block=self.block,
                                      timeout=self.pool_timeout)
        except queue.Empty:
            raise errors.PoolExhausted(url=safe_url(self.url),
                                       seconds=self.pool_timeout) from None
        if session is not None:
            if vars(session).get('sxm_url', self.url) == self.url:
                return session
            # Logged in at a host that is no longer the master.
            redact.forget(session.handle)
            self._discard(session)
        try:
            return self._login()
        except BaseException:
            self._queue.put(None)
            raise

    def _put(self, session):
        if session is not None:
            # XenAPI logs in again by itself after SESSION_INVALID: the new
            # handle is a secret too.
            known = vars(session).get('sxm_handle')
            if session.handle != known:
                redact.register(session.handle)
                redact.forget(known)
                session.sxm_handle = session.handle
        if session is not None and self._closed:
            self._logout(session)
            session = None
        try:
            self._queue.put_nowait(session)
        except queue.Full:
            if session is not None:
                self._logout(session)

    def _logout(self, session):
        """Log out, briefly: False when the pool did not answer."""
        handle = session.handle
        vars(session).pop('sxm_timeouts', None)
        transport = vars(session).get('sxm_transport')
        if transport is not None:
            transport.set_timeout(min(LOGOUT_TIMEOUT, self.call_timeout))
        answered = True
        try:
            session.xenapi.session.logout()
        except (XenAPI.Failure, xmlrpc.client.Fault):
            pass
        except CONNECTION_ERRORS:
            answered = False
        redact.forget(handle)
        return answered

    @property
    def api(self):
        """Typed one-off calls: ``pool.api.VM.get_record(ref)``."""
        return Api(self.call)

    @contextlib.contextmanager
    def session(self):
        """Borrow a logged-in session (a typed ``Session``) for a few calls.

        A connection error inside becomes ``errors.ConnectionFailed``. The
        session
        goes back to the pool unless the connection broke (or the call was
        interrupted mid-way); XAPI failures and the core's own errors
        leave it usable.
        """
        with self._lent(self._get()) as typed:
            yield typed

    @contextlib.contextmanager
    def _lent(self, session, log_out_broken=False):
        """Lend a pooled ``session``; back to the pool when done.

        One that cannot go back is dropped, or with ``log_out_broken``
        logged out (over a new connection, briefly).
        """
        clean_exit = False
        try:
            yield Session.of(session)
            clean_exit = True
        except Exception as exc:
            typed = self._typed(exc)
            # Only a broken connection makes the session unusable.
            clean_exit = typed is None or isinstance(exc, XenAPI.Failure)
            if self._moved(typed or exc):
                clean_exit = False
            if typed is None:
                raise
            raise typed from None
        finally:
            if not clean_exit and session is not None:
                self._discard(session)
                if log_out_broken:
                    self._logout(session)
                    self._discard(session)
                session = None
            self._put(session)

    @contextlib.contextmanager
    def wait_session(self, login_timeout=None):
        """A session to block in (event.from), as cheap as it can be.

        An idle logged-in session of the pool when one is free and the
        pool keeps others for its callers (one waiter at a time borrows):
        no login, and a process killed meanwhile leaves no more logins
        than it had. Otherwise ``private_session(login_timeout)``, so
        that waiters never starve the pool's callers.
        """
        session = self._take_idle()
        if session is None:
            with self.private_session(login_timeout=login_timeout) as typed:
                yield typed
            return
        try:
            # Interrupted or broken mid-wait, it is logged out as a private
            # one would be: the wait leaves no login behind.
            with self._lent(session, log_out_broken=True) as typed:
                yield typed
        finally:
            with self._waiting_lock:
                self._waiting = False

    def _take_idle(self):
        """An idle logged-in session for a waiter, or None."""
        with self._waiting_lock:
            if self._closed or self._waiting:
                return None
            try:
                session = self._queue.get_nowait()
            except queue.Empty:
                return None
            usable = (session is not None and self._queue.qsize() > 0
                      and vars(session).get('sxm_url', self.url) == self.url)
            if not usable:
                self._queue.put_nowait(session)
                return None
            self._waiting = True
            return session

    @contextlib.contextmanager
    def token_session(self, token):
        """A typed ``Session`` on session ref ``token``: no login, no logout.

        For the session ``host.migrate_receive`` made, whose owner logs it
        out (``logout_token``). A token gone meanwhile raises
        ``errors.SessionInvalid``: XenAPI cannot log it in again.
        """
        session = self._factory(self.url)
        transport = vars(session).get('sxm_transport')
        if transport is not None:
            transport.set_timeout(self.call_timeout)
            session.sxm_timeouts = self.timeouts
        session._session = token
        try:
            yield Session.of(session)
        except Exception as exc:
            typed = self._typed(exc)
            if typed is None:
                raise
            raise typed from None
        finally:
            self._discard(session)

    @contextlib.contextmanager
    def private_session(self, login_timeout=None):
        """A session of its own, outside the pool, logged out afterwards.

        For calls that block for long (event.from) when the pool has no
        session to spare (``wait_session``). ``login_timeout`` bounds the
        login (one attempt, no retries) for a caller with a deadline.
        """
        session = self._login(timeout=login_timeout)
        try:
            yield Session.of(session)
        except Exception as exc:
            typed = self._typed(exc)
            self._moved(typed or exc)
            if typed is None:
                raise
            raise typed from None
        finally:
            # After a broken connection the logout goes over a new one,
            # briefly: a silent peer must not hold the caller up.
            self._discard(session)
            self._logout(session)
            self._discard(session)

    def _moved(self, typed):
        """Follow a master that moved; True when ``typed`` says it did.

        After a toolstack restart XenAPI logs in again by itself on
        SESSION_INVALID; when the master role moved meanwhile, the old
        master answers that login (or any call) with HOST_IS_SLAVE.
        """
        if not isinstance(typed, errors.HostIsSlave):
            return False
        try:
            master = typed.param('master_ip_address')
        except KeyError:
            master = None
        self._follow_master(master)
        return True

    def _typed(self, exc):
        """The core's error for a XenAPI or transport one, else None."""
        if isinstance(exc, XenAPI.Failure):
            return errors.XapiFailure.from_failure(exc)
        if isinstance(exc, xmlrpc.client.Fault):
            return errors.SessionInvalid('SESSION_INVALID', [],
                                         call=exc.faultString)
        if isinstance(exc, CONNECTION_ERRORS):
            return errors.ConnectionFailed(url=self.url, reason=exc)
        return None

    def _discard(self, session):
        try:
            session('close')()  # ServerProxy: close the HTTP connection
        except Exception:  # closing a broken connection
            pass

    def logout_token(self, token):
        """Log out a session of this pool known only by its ref.

        For the session ``host.migrate_receive`` makes: it would otherwise
        live on in the destination pool.
        """
        if not token:
            return
        session = self._factory(self.url)
        transport = vars(session).get('sxm_transport')
        if transport is not None:
            transport.set_timeout(min(LOGOUT_TIMEOUT, self.call_timeout))
        try:
            # A raw call: XenAPI.Session's own logout needs a login first.
            getattr(session, 'session.logout')(token)
        except (xmlrpc.client.Fault,) + CONNECTION_ERRORS as exc:
            LOG.debug('Could not log out a session of %s: %s', self.url,
                      exc)
        finally:
            self._discard(session)
            redact.forget(token)

    def call(self, method, *args):
        """One XAPI call, e.g. ``call('VM.get_record', ref)``.

        Raises ``errors.XapiFailure`` (or a subclass) for an XAPI error and
        ``errors.ConnectionFailed`` when the pool master cannot be reached.
        """
        def once():
            with self.session() as session:
                return session.call(method, *args)

        def retry_if(exc):
            # Refused by a host that is no longer the master: the call
            # never ran; send it to the new master (a login that ran out
            # of redirects has been retried enough).
            if isinstance(exc, errors.HostIsSlave):
                return exc.call != 'session.login_with_password'
            # Logins retried already; a call that may have reached XAPI
            # is retried only when it reads.
            if not isinstance(exc, errors.ConnectionFailed) or \
                    exc.kwargs.get('during') == 'login':
                return False
            refused = isinstance(exc.kwargs.get('reason'),
                                 ConnectionRefusedError)
            return refused or _read_only(method)

        def on_retry(exc, attempt, delay):
            LOG.warning('%(method)s to %(url)s failed (%(err)s); '
                        'retrying in %(delay).1f s',
                        {'method': method, 'url': safe_url(self.url),
                         'err': exc.kwargs.get('reason', exc),
                         'delay': delay})

        return retry.call(once, self.retries, retry_if,
                          delay=retry.backoff(self.backoff),
                          wait=self._sleep, on_retry=on_retry)

    def release_idle(self):
        """Log out the idle sessions (a long wait is coming).

        A process killed during that wait then leaves no login of its own
        behind in this pool.
        """
        taken = []
        while True:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                break
        reachable = True
        for session in taken:
            if session is not None:
                if reachable:
                    reachable = self._logout(session)
                else:
                    redact.forget(session.handle)
                self._discard(session)
            self._queue.put_nowait(None)

    def close(self):
        """Log out every idle session; borrowed ones log out when back.

        A pool that stops answering is not waited for: after the first
        logout without an answer the others are dropped.
        """
        if self._closed:
            return
        self._closed = True
        reachable = True
        while True:
            try:
                session = self._queue.get_nowait()
            except queue.Empty:
                break
            if session is not None:
                if reachable:
                    reachable = self._logout(session)
                else:
                    redact.forget(session.handle)
                self._discard(session)
        redact.forget(self._password)


class Api(object):
    """XAPI calls as attributes: ``api.VM.get_record(ref)``.

    ``call`` runs ``call('VM.get_record', ref)``. ``event.from`` is
    ``api.event.from_(...)`` (``from`` is a Python keyword).
    """

    __slots__ = ('_call', '_name')

    def __init__(self, call, name=''):
        self._call = call
        self._name = name

    def __getattr__(self, part):
        if part.startswith('__'):
            raise AttributeError(part)
        if part == 'from_':
            part = 'from'
        return Api(self._call, '%s.%s' % (self._name, part) if self._name
                   else part)

    def __call__(self, *args):
        return self._call(self._name, *args)

    def __bool__(self):
        # A call never made: ``if session.VM.get_all`` is a bug.
        raise TypeError('%s is an XAPI call: call it' % self._name)

    def __repr__(self):
        return '<XAPI %s>' % (self._name or 'API')


class Session(object):
    """A logged-in session of a ``SessionPool``, with typed calls.

    ``session.VM.get_record(ref)`` or ``session.call('VM.get_record',
    ref)``: an XAPI error is raised as ``errors.XapiFailure`` (a subclass
    where one exists). ``handle`` is the session's ref: a secret.
    """

    def __init__(self, raw):
        self.raw = raw

    @classmethod
    def of(cls, raw):
        # One per XenAPI session, so that a borrower sees the same object.
        typed = vars(raw).get('sxm_typed')
        if typed is None:
            typed = raw.sxm_typed = cls(raw)
        return typed

    @property
    def handle(self):
        return self.raw.handle

    def call(self, method, *args):
        target = self.raw.xenapi
        for part in method.split('.'):
            target = getattr(target, part)
        try:
            return target(*args)
        except XenAPI.Failure as failure:
            raise errors.XapiFailure.from_failure(
                failure, call=method) from None

    def __getattr__(self, part):
        if part.startswith('_') or part in ('raw', 'sxm_typed'):
            raise AttributeError(part)
        return getattr(Api(self.call), part)

    def __repr__(self):
        return '<XAPI session (handle masked)>'
