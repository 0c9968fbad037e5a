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

"""What the benchmarks share: a client of one simulated pool, sizes."""

import hashlib
import http.client
import urllib.parse

import XenAPI

from xapi_sim import control
from xapi_sim import sim as simmod

CHUNK = 1 << 20


class BenchError(Exception):
    """A bench run that cannot go on; the message says why."""


def human(n):
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return ('%d %s' % (n, unit) if unit == 'B'
                    else '%.1f %s' % (n, unit))
        n /= 1024.0


class Client(object):
    """A XenAPI session on one simulated pool plus its control interface."""

    def __init__(self, url, label='bench'):
        self.url = url
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.session = XenAPI.Session(url)
        self.session.xenapi.login_with_password(
            simmod.DEFAULT_USERNAME, simmod.DEFAULT_PASSWORD, '1.0', label)
        self.xenapi = self.session.xenapi
        self.control = control.Control(url, self.session._session,
                                       timeout=60)

    def close(self):
        try:
            self.xenapi.session.logout()
        except Exception:  # the server may already be gone
            pass
        self.session('close')()

    def _query(self, vdi):
        return urllib.parse.urlencode({'session_id': self.session._session,
                                       'vdi': vdi})

    def import_raw(self, vdi, image):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.putrequest('PUT', '/import_raw_vdi?' + self._query(vdi))
            conn.putheader('Content-Type', 'application/octet-stream')
            conn.putheader('Content-Length', str(len(image)))
            conn.endheaders()
            view = memoryview(image)
            for offset in range(0, len(image), CHUNK):
                conn.send(view[offset:offset + CHUNK])
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise BenchError('import_raw_vdi: HTTP %d %s' % (
                    resp.status, body.decode(errors='replace')))
        finally:
            conn.close()

    def export_sha256(self, vdi):
        digest = hashlib.sha256()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request('GET', '/export_raw_vdi?' + self._query(vdi))
            resp = conn.getresponse()
            if resp.status != 200:
                raise BenchError('export_raw_vdi: HTTP %d %s' % (
                    resp.status, resp.read().decode(errors='replace')))
            while True:
                data = resp.read(CHUNK)
                if not data:
                    break
                digest.update(data)
        finally:
            conn.close()
        return digest.hexdigest()
