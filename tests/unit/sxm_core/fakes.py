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

"""The network under a SessionPool, faked: ``session_factory`` for tests.

The fake stands in for XAPI over the network (what a ``XenAPI.Session``
would send and receive), not for the pool under test. ``FakeSession`` has
the shape of a ``XenAPI.Session``: ``login_with_password``, ``handle``,
``xenapi.<Class>.<method>(...)`` and ``session('close')()``, and no
``close`` attribute.
"""

import threading
import uuid


class FakeXapi(object):
    """The far end: scripted answers, and a log of what reached it.

    ``script[method]`` is a list of outcomes used one per call (an
    exception instance is raised, anything else returned); when it is
    empty the default answer is ``'value of <method>'``. A callable
    outcome is called (with no argument) and its result returned.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.sessions = []          # every FakeSession made
        self.calls = []             # (handle, method, args)
        self.logins = []            # url of every login attempt
        self.login_script = []
        self.script = {}
        self.live = set()           # handles logged in and not logged out

    def factory(self, url):
        session = FakeSession(self, url)
        with self.lock:
            self.sessions.append(session)
        return session

    def _outcome(self, queue, default):
        with self.lock:
            outcome = queue.pop(0) if queue else default
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return outcome()
        return outcome

    def login(self, session, args):
        with self.lock:
            self.logins.append(session.url)
            n = len(self.logins)
        self._outcome(self.login_script, None)
        # Unique across tests, as XAPI's are: the secret registry is
        # process-wide.
        session._session = 'OpaqueRef:session-%d-%s' % (n, uuid.uuid4())
        with self.lock:
            self.live.add(session.handle)

    def call(self, session, method, args):
        with self.lock:
            self.calls.append((session.handle, method, args))
        if method == 'session.logout':
            with self.lock:
                self.live.discard(session.handle)
            session.logged_out = True
            return ''
        return self._outcome(self.script.setdefault(method, []),
                             'value of %s' % method)

    def count(self, method):
        return len([c for c in self.calls if c[1] == method])


class _Dispatcher(object):
    def __init__(self, session, path):
        self._session = session
        self._path = path

    def __getattr__(self, name):
        return _Dispatcher(self._session, self._path + [name])

    def __call__(self, *args):
        return self._session.net.call(self._session, '.'.join(self._path),
                                      args)


class FakeSession(object):
    def __init__(self, net, url):
        self.net = net
        self.url = url
        self._session = None    # where XenAPI.Session keeps its handle
        self.closed = False
        self.logged_out = False

    @property
    def handle(self):
        return self._session

    def login_with_password(self, *args):
        self.net.login(self, args)

    @property
    def xenapi(self):
        return _Dispatcher(self, [])

    def __call__(self, attr):
        # xmlrpc.client.ServerProxy's way to reach its transport.
        if attr == 'close':
            return self._close
        raise AttributeError(attr)

    def _close(self):
        self.closed = True
