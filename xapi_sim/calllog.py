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


"""What a pool's clients asked of it: every XML-RPC call, counted.

For the call budgets of the tests and the benchmarks: each call is kept
with its method, the originator of the session it came with (what the
client gave ``session.login_with_password``) and the size of the answer.
Session refs are never kept.
"""

import collections
import threading

_LOGINS = ('session.login_with_password', 'session_login_with_password',
           'session.slave_local_login_with_password')


class CallLog(object):
    """Counts of the calls one pool answered, since the last reset."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = []

    def record(self, method, originator, nbytes):
        with self._lock:
            self._entries.append((method, originator or '', int(nbytes)))

    def reset(self):
        with self._lock:
            self._entries = []

    def entries(self):
        """[(method, originator, answer bytes)] in the order answered."""
        with self._lock:
            return list(self._entries)

    def summary(self, exclude=()):
        """Totals, by method and by originator; ``exclude``: methods."""
        by_method = collections.Counter()
        by_originator = collections.Counter()
        nbytes = 0
        for method, originator, size in self.entries():
            if method in exclude:
                continue
            by_method[method] += 1
            by_originator[originator] += 1
            nbytes += size
        return {'calls': sum(by_method.values()), 'bytes': nbytes,
                'logins': sum(by_method[m] for m in _LOGINS),
                'by_method': dict(by_method),
                'by_originator': dict(by_originator)}
