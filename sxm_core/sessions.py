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
caller borrows one with ``with pool.session() as s`` or makes one call with
``pool.call('VM.get_record', ref)``. A session that hit a connection error
is discarded, not returned. Connection errors are retried with backoff for
logins and read-only calls (and for any call refused before it reached the
server), never after an XAPI failure. Logging in on a pool member follows
``HOST_IS_SLAVE`` to the master.
"""

import contextlib
import http.client
import queue
import ssl
import time
import urllib.parse
import xmlrpc.client

import XenAPI

from sxm_core import errors
from sxm_core import redact

LOG = redact.get_logger(__name__)

CONNECTION_ERRORS = (OSError, http.client.HTTPException,
                     xmlrpc.client.ProtocolError)
API_VERSION = '2.21'
MAX_REDIRECTS = 3


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


def _read_only(method):
    return method.rsplit('.', 1)[-1].startswith('get_')


class SessionPool(object):
    """Logged-in XenAPI sessions to one pool, shared by threads."""

    def __init__(self, url, username, password, maxsize=4, block=True,
                 pool_timeout=120.0, login_timeout=30.0, call_timeout=300.0,
                 ca_file=None, insecure=False, retries=3, backoff=0.5,
                 originator='openstack-sxm', session_factory=None,
                 sleep=time.sleep):
        parts = urllib.parse.urlsplit(url or '')
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise ValueError('XAPI URL must be http(s)://host[:port]/, got '
                             '%r' % redact.scrub(url))
        if maxsize < 1:
            raise ValueError('maxsize must be at least 1')
        self.url = url
        self.username = username
        self._password = redact.register(password)
        self.block = block
        self.pool_timeout = pool_timeout
        self.login_timeout = login_timeout
        self.call_timeout = call_timeout
        self.retries = retries
        self.backoff = backoff
        self.originator = originator
        self._ctx = (ssl_context(ca_file, insecure)
                     if parts.scheme == 'https' else None)
        self._factory = session_factory or self._make_session
        self._sleep = sleep
        self._queue = queue.LifoQueue(maxsize)
        for _ in range(maxsize):
            self._queue.put(None)
        self._closed = False

    def __repr__(self):
        return '<SessionPool %s user=%s>' % (self.url, self.username)

    # -- sessions --------------------------------------------------------

    def _make_session(self, url):
        if url.startswith('https'):
            transport = HTTPSTransport(context=self._ctx)
        else:
            transport = HTTPTransport()
        transport.set_timeout(self.login_timeout)
        session = XenAPI.Session(url, transport=transport)
        session.sxm_transport = transport
        return session

    def _login(self):
        redirects = 0
        attempt = 0
        while True:
            session = self._factory(self.url)
            try:
                session.login_with_password(self.username, self._password,
                                            API_VERSION, self.originator)
            except XenAPI.Failure as failure:
                exc = errors.XapiFailure.from_failure(
                    failure, call='session.login_with_password')
                if (isinstance(exc, errors.HostIsSlave)
                        and redirects < MAX_REDIRECTS):
                    redirects += 1
                    self._follow_master(exc.param('master'))
                    continue
                raise exc
            except xmlrpc.client.Fault as fault:
                exc = errors.ConnectionFailed(url=self.url,
                                              reason=fault.faultString,
                                              during='login')
            except CONNECTION_ERRORS as err:
                exc = errors.ConnectionFailed(url=self.url, reason=err,
                                              during='login')
            else:
                redact.register(session.handle)
                session.sxm_handle = session.handle
                # vars(): a plain XenAPI.Session answers any attribute
                # with an XML-RPC stub.
                transport = vars(session).get('sxm_transport')
                if transport is not None:
                    transport.set_timeout(self.call_timeout)
                LOG.debug('Logged in to %s as %s', self.url, self.username)
                return session
            if attempt >= self.retries:
                raise exc
            delay = self.backoff * (2 ** attempt)
            attempt += 1
            LOG.warning('Cannot log in to %(url)s (%(err)s); retrying in '
                        '%(delay).1f s', {'url': self.url, 'err': exc,
                                          'delay': delay})
            self._sleep(delay)

    def _follow_master(self, master):
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
            raise errors.SxmError('The session pool for %s is closed.'
                                  % self.url)
        try:
            session = self._queue.get(block=self.block,
                                      timeout=self.pool_timeout)
        except queue.Empty:
            raise errors.SxmError(
                'No free XAPI session to %s after %.0f s: too many '
                'concurrent calls for the session pool size.'
                % (self.url, self.pool_timeout))
        if session is not None:
            return session
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
        handle = session.handle
        try:
            session.xenapi.session.logout()
        except (XenAPI.Failure, xmlrpc.client.Fault) + CONNECTION_ERRORS:
            pass
        redact.forget(handle)

    @contextlib.contextmanager
    def session(self):
        """Borrow a logged-in ``XenAPI.Session`` for a few calls.

        A ``XenAPI.Failure`` raised inside becomes ``errors.XapiFailure``
        and a connection error ``errors.ConnectionFailed``. The session
        goes back to the pool unless the connection broke (or the call was
        interrupted mid-way); XAPI failures and the core's own errors
        leave it usable.
        """
        session = self._get()
        clean_exit = False
        try:
            yield session
            clean_exit = True
        except Exception as exc:
            typed = self._typed(exc)
            # Only a broken connection makes the session unusable.
            clean_exit = typed is None or isinstance(exc, XenAPI.Failure)
            if typed is None:
                raise
            raise typed from None
        finally:
            if not clean_exit and session is not None:
                self._discard(session)
                session = None
            self._put(session)

    @contextlib.contextmanager
    def private_session(self):
        """A session of its own, outside the pool, logged out afterwards.

        For calls that block for long (event.from), so that a waiter never
        holds one of the pool's sessions.
        """
        session = self._login()
        try:
            yield session
        except Exception as exc:
            typed = self._typed(exc)
            if typed is None:
                raise
            raise typed from None
        finally:
            self._logout(session)
            self._discard(session)

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
        attempt = 0
        while True:
            try:
                with self.session() as session:
                    try:
                        return _invoke(session, method, args)
                    except XenAPI.Failure as failure:
                        raise errors.XapiFailure.from_failure(
                            failure, call=method) from None
            except errors.ConnectionFailed as exc:
                err = exc.kwargs.get('reason')
                refused = isinstance(err, ConnectionRefusedError)
                if (exc.kwargs.get('during') == 'login'  # retried already
                        or not (refused or _read_only(method))
                        or attempt >= self.retries):
                    raise
                delay = self.backoff * (2 ** attempt)
                attempt += 1
                LOG.warning('%(method)s to %(url)s failed (%(err)s); '
                            'retrying in %(delay).1f s',
                            {'method': method, 'url': self.url, 'err': err,
                             'delay': delay})
                self._sleep(delay)

    def close(self):
        """Log out every idle session; borrowed ones log out when back."""
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                session = self._queue.get_nowait()
            except queue.Empty:
                break
            if session is not None:
                self._logout(session)
        redact.forget(self._password)


def _invoke(session, method, args):
    target = session.xenapi
    for part in method.split('.'):
        target = getattr(target, part)
    return target(*args)
