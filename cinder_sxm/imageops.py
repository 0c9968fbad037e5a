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


"""Disk images in and out of VDIs through XAPI's HTTP handlers.

``PUT /import_raw_vdi`` and ``GET /export_raw_vdi`` with ``format=raw`` or
``vhd``. Bytes stream in 1 MiB blocks between the socket and a file (or a
file-like object): an image is never held in memory. xapi refuses chunked
uploads, so an upload needs its length first: the image is downloaded to
a file. The transfer is tied to an XAPI task, which the handler completes
with the transfer's outcome, as xapi does. URLs carry the session id:
they are never logged.
"""

import http.client
import os
import urllib.parse

from oslo_log import log as logging

from sxm_core import errors
from sxm_core import sessions

LOG = logging.getLogger(__name__)
CHUNK = 1 << 20
FORMATS = ('raw', 'vhd')
# name_label of the task of a transfer.
TASK_LABEL = 'cinder-sxm'


class TransferFailed(errors.SxmError):
    message = '%(what)s failed: %(reason)s'


class Transfers(object):

    def __init__(self, pool, ca_file=None, insecure=False, timeout=300):
        self.pool = pool
        self._ctx = None
        self._parts = urllib.parse.urlsplit(pool.url)
        if self._parts.scheme == 'https':
            self._ctx = sessions.ssl_context(ca_file, insecure)
        self.timeout = timeout

    def _connection(self):
        if self._ctx is not None:
            return http.client.HTTPSConnection(
                self._parts.hostname, self._parts.port, context=self._ctx,
                timeout=self.timeout, blocksize=CHUNK)
        return http.client.HTTPConnection(
            self._parts.hostname, self._parts.port, timeout=self.timeout,
            blocksize=CHUNK)

    def _run(self, what, handler, vdi, fmt, act):
        if fmt not in FORMATS:
            raise TransferFailed(what=what, reason='unsupported format %r '
                                 '(raw or vhd)' % fmt)
        task = self.pool.call('task.create', TASK_LABEL, what)
        try:
            with self.pool.session() as session:
                query = urllib.parse.urlencode({
                    'session_id': session.handle, 'vdi': vdi,
                    'format': fmt, 'task_id': task})
                path = '%s/%s?%s' % (self._parts.path.rstrip('/'), handler,
                                     query)
                conn = self._connection()
                try:
                    status, reason = act(conn, path)
                except (OSError, http.client.HTTPException) as exc:
                    raise TransferFailed(what=what, reason=exc) from None
                finally:
                    conn.close()
            rec = self.pool.call('task.get_record', task)
            if rec['status'] == 'failure':
                raise errors.XapiFailure.from_details(rec['error_info'],
                                                      call=handler)
            if status != 200:
                raise TransferFailed(what=what, reason='HTTP %s %s'
                                     % (status, reason))
        finally:
            try:
                self.pool.call('task.destroy', task)
            except errors.SxmError as exc:
                LOG.warning('Could not destroy the task of %s: %s', what,
                            exc)

    def upload(self, vdi, path, fmt, what):
        """Write the image file ``path`` (format ``fmt``) into VDI ``vdi``."""
        size = os.path.getsize(path)

        def act(conn, url):
            with open(path, 'rb') as image:
                conn.request('PUT', url, body=image, headers={
                    'Content-Type': 'application/octet-stream',
                    'Content-Length': str(size)})
                resp = conn.getresponse()
                resp.read()
                return resp.status, resp.reason
        self._run(what, 'import_raw_vdi', vdi, fmt, act)

    def download(self, vdi, out, fmt, what):
        """Write VDI ``vdi`` as format ``fmt`` to the file object ``out``."""
        def act(conn, url):
            conn.request('GET', url)
            resp = conn.getresponse()
            if resp.status != 200:
                resp.read()
                return resp.status, resp.reason
            expected = int(resp.getheader('Content-Length') or -1)
            got = 0
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                out.write(block)
                got += len(block)
            if expected >= 0 and got != expected:
                return 0, 'short read: %d of %d bytes' % (got, expected)
            return resp.status, resp.reason
        self._run(what, 'export_raw_vdi', vdi, fmt, act)
