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

"""VDI bytes in and out through XAPI's HTTP handlers.

``PUT /import_raw_vdi`` and ``GET /export_raw_vdi``, ``format`` ``raw``
(the disk's bytes) or ``vhd`` (a dynamic VHD as xapi streams it, or a
fixed one on import). Bytes stream in 1 MiB blocks between the socket and
a file: an image is never held in memory. xapi refuses chunked uploads,
so an upload states its length first.

``put`` and ``get`` speak HTTP for a session the caller holds (the
benchmarks use them with a bare XenAPI session); ``VdiTransfer`` does a
whole transfer through a ``SessionPool``: it refuses an image that cannot
fit before a byte is sent (a refused import leaves the VDI as it was),
ties the transfer to an XAPI task that the handler completes with its
outcome, as xapi does, and raises the task's typed error.

The session id travels in the query string: no URL is ever logged or put
into an error (``mask`` for the one that must be shown).
"""

import http.client
import os
import urllib.parse

from sxm_core import constants
from sxm_core import errors
from sxm_core import redact
from sxm_core import sessions
from sxm_core import tasks
from sxm_core import vhd

LOG = redact.get_logger(__name__)
CHUNK = 1 << 20
FORMATS = ('raw', 'vhd')
IMPORT = 'import_raw_vdi'
EXPORT = 'export_raw_vdi'
DEFAULT_TIMEOUT = 300.0
# How much of an error answer's body goes into the message.
_ERROR_BODY = 4096


class TransferFailed(errors.SxmError):
    message = '%(what)s failed: %(reason)s'


def mask(url):
    """``url`` with its session id (and any known secret) masked."""
    return redact.scrub(url)


def _check_format(fmt, what):
    if fmt not in FORMATS:
        raise TransferFailed(what=what, reason='unsupported format %r (raw '
                             'or vhd)' % (fmt,))


def _connection(url, context, timeout):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == 'https':
        return http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout,
            context=context or sessions.ssl_context(), blocksize=CHUNK)
    if parts.scheme != 'http':
        raise ValueError('XAPI URL must be http(s)://host[:port]/, got %r'
                         % mask(url))
    return http.client.HTTPConnection(parts.hostname, parts.port,
                                      timeout=timeout, blocksize=CHUNK)


def _target(url, handler, session_id, vdi, fmt, task):
    query = {'session_id': session_id, 'vdi': vdi, 'format': fmt}
    if task:
        query['task_id'] = task
    prefix = urllib.parse.urlsplit(url).path.rstrip('/')
    return '%s/%s?%s' % (prefix, handler, urllib.parse.urlencode(query))


def _refusal(resp, session_id):
    text = resp.read(_ERROR_BODY).decode('utf-8', 'replace').strip()
    if session_id:
        text = text.replace(session_id, redact.MASK)
    reason = 'HTTP %d %s' % (resp.status, resp.reason)
    return '%s: %s' % (reason, text) if text else reason


class _Limited(object):
    """A file object read in chunks, stopping after ``length`` bytes.

    ``progress(sent)`` is told the bytes read so far after each chunk.
    """

    def __init__(self, fileobj, length, what, progress=None):
        self._f = fileobj
        self._left = length
        self._what = what
        self._sent = 0
        self._progress = progress

    def read(self, size=CHUNK):
        if self._left <= 0:
            return b''
        data = self._f.read(min(size if size > 0 else CHUNK, self._left))
        if not data:
            # xapi would wait for the missing bytes until it times out.
            raise TransferFailed(what=self._what, reason='the file ended '
                                 '%d bytes early' % self._left)
        self._left -= len(data)
        self._sent += len(data)
        if self._progress is not None:
            self._progress(self._sent)
        return data


def _counted(chunks, length, what, progress=None):
    # Stops the upload at once when the body disagrees with its announced
    # length: xapi would wait for missing bytes until the socket times out.
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        if sent > length:
            break
        yield chunk
        if progress is not None:
            progress(sent)
    if sent != length:
        raise TransferFailed(what=what, reason='the body does not have the '
                             '%d bytes announced' % length)


def put(url, session_id, vdi, body, length, fmt='raw', task=None,
        context=None, timeout=DEFAULT_TIMEOUT, what=None, progress=None):
    """PUT ``length`` bytes of ``body`` into VDI ``vdi`` (/import_raw_vdi).

    ``body`` is a binary file (read from its position) or an iterable of
    byte strings. Raises TransferFailed for an error answer or a broken
    connection; the caller reads the task (``task``) for XAPI's reason.
    ``progress(sent)``: the bytes handed to the socket so far, per chunk.
    """
    what = what or 'Import into VDI %s' % vdi
    _check_format(fmt, what)
    if hasattr(body, 'read'):
        _check_length(body, length, what)
        data = _Limited(body, length, what, progress)
    else:
        data = _counted(body, length, what, progress)
    conn = _connection(url, context, timeout)
    try:
        conn.request('PUT', _target(url, IMPORT, session_id, vdi, fmt, task),
                     body=data,
                     headers={'Content-Length': str(length),
                              'Content-Type': 'application/octet-stream'})
        resp = conn.getresponse()
        if resp.status != 200:
            raise TransferFailed(what=what,
                                 reason=_refusal(resp, session_id))
        resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise TransferFailed(what=what, reason=redact.scrub(
            exc.__class__.__name__ + ': ' + str(exc))) from None
    finally:
        conn.close()


def _check_length(f, length, what):
    # A body shorter than announced would leave xapi waiting for the rest
    # until the socket times out.
    try:
        available = os.fstat(f.fileno()).st_size - f.tell()
    except (AttributeError, OSError, ValueError):
        return  # not a plain file: counted as it is sent
    if length > available:
        raise TransferFailed(what=what, reason='%d bytes announced, the '
                             'file holds %d' % (length, available))


def get(url, session_id, vdi, out, fmt='raw', task=None, context=None,
        timeout=DEFAULT_TIMEOUT, sparse=False, what=None, progress=None):
    """GET VDI ``vdi`` (/export_raw_vdi) into ``out``; the byte count.

    ``out`` has ``write``; with ``sparse`` it is a seekable file, and
    zero chunks are skipped over so that it stays sparse. A short answer
    (fewer bytes than announced) is a TransferFailed; xapi announces no
    length for a vhd export (it closes the connection at the end).
    ``progress(received)``: the bytes received so far, per chunk.
    """
    what = what or 'Export of VDI %s' % vdi
    _check_format(fmt, what)
    conn = _connection(url, context, timeout)
    try:
        conn.request('GET', _target(url, EXPORT, session_id, vdi, fmt,
                                    task))
        resp = conn.getresponse()
        if resp.status != 200:
            raise TransferFailed(what=what,
                                 reason=_refusal(resp, session_id))
        expected = resp.getheader('Content-Length')
        got = _copy(resp, out, sparse, progress)
    except (OSError, http.client.HTTPException) as exc:
        raise TransferFailed(what=what, reason=redact.scrub(
            exc.__class__.__name__ + ': ' + str(exc))) from None
    finally:
        conn.close()
    if expected is not None and got != int(expected):
        raise TransferFailed(what=what, reason='short read: %d of %s bytes'
                             % (got, expected))
    return got


def _copy(src, dst, sparse, progress=None):
    zero = bytes(CHUNK)
    total = 0
    end = dst.tell() if sparse else 0
    while True:
        data = src.read(CHUNK)
        if not data:
            break
        total += len(data)
        if sparse and data == zero[:len(data)]:
            dst.seek(len(data), os.SEEK_CUR)
        else:
            dst.write(data)
        if sparse:
            end = dst.tell()
        if progress is not None:
            progress(total)
    if sparse:
        dst.truncate(end)
    return total


class VdiTransfer(object):
    """Whole transfers through a ``SessionPool``, each tied to a task.

    ``label`` names the transfers' tasks (a service finds its own after a
    crash by it); ``ca_file``/``insecure`` as for the pool's sessions;
    ``timeout`` bounds each socket read (default: the pool's
    ``long_call_timeout``).
    """

    def __init__(self, pool, label='openstack-sxm', ca_file=None,
                 insecure=False, timeout=None):
        self.pool = pool
        self.label = label
        self.timeout = timeout or getattr(pool, 'long_call_timeout',
                                          DEFAULT_TIMEOUT)
        self._context = None
        if urllib.parse.urlsplit(pool.url).scheme == 'https':
            self._context = sessions.ssl_context(ca_file, insecure)

    def upload(self, vdi, source, fmt='raw', what=None, length=None,
               progress=None):
        """Write image ``source`` (a path or binary file) into VDI ``vdi``.

        ``length``: bytes to send from a file object's position (default:
        to its end). An image bigger than the VDI, or a VHD whose
        structure is broken, is refused before anything is sent.
        ``progress(sent)`` is told the bytes sent so far, per chunk.
        """
        what = what or 'Import into VDI %s' % vdi
        _check_format(fmt, what)
        if isinstance(source, (str, os.PathLike)):
            with open(source, 'rb') as f:
                return self._upload(vdi, f, fmt, length, what, progress)
        return self._upload(vdi, source, fmt, length, what, progress)

    def _upload(self, vdi, f, fmt, length, what, progress=None):
        if length is None:
            length = os.fstat(f.fileno()).st_size - f.tell()
        capacity = int(self.pool.call('VDI.get_virtual_size', vdi))
        if fmt == 'vhd':
            try:
                vhd.inspect(f, capacity)
            except vhd.VhdError as exc:
                raise TransferFailed(what=what, reason=exc) from None
        elif length > capacity:
            raise TransferFailed(
                what=what, reason='the image (%d bytes) is larger than the '
                'VDI (%d bytes)' % (length, capacity))
        self._run(what, vdi, lambda handle, task: put(
            self.pool.url, handle, vdi, f, length, fmt, task,
            self._context, self.timeout, what, progress))

    def download(self, vdi, out, fmt='raw', what=None, sparse=False,
                 progress=None):
        """Write VDI ``vdi`` as ``fmt`` to ``out``; the byte count.

        ``progress(received)`` is told the bytes received so far, per
        chunk.
        """
        what = what or 'Export of VDI %s' % vdi
        _check_format(fmt, what)
        got = self._run(what, vdi, lambda handle, task: get(
            self.pool.url, handle, vdi, out, fmt, task, self._context,
            self.timeout, sparse, what, progress))
        if fmt == 'raw':
            # xapi's export sends no Content-Length: a connection closed
            # early shows only against the disk's size.
            size = int(self.pool.call('VDI.get_virtual_size', vdi))
            if got != size:
                raise TransferFailed(what=what, reason='short read: %d of '
                                     '%d bytes' % (got, size))
        return got

    def _run(self, what, vdi, act):
        task = self.pool.call('task.create', self.label, what)
        tasks.tag(self.pool, task)
        try:
            with self.pool.session() as session:
                try:
                    result = act(session.handle, task)
                except TransferFailed as exc:
                    failed = exc
                else:
                    failed = None
            rec = self.pool.call('task.get_record', task)
            if rec['status'] not in (constants.TASK_PENDING,
                                     constants.TASK_SUCCESS):
                # XAPI's reason (VDI_IO_ERROR, HANDLE_INVALID...) beats
                # the HTTP status that carried it.
                tasks.task_result(rec, task, call=what)
            if failed is not None:
                raise failed
            return result
        finally:
            try:
                self.pool.call('task.destroy', task)
            except errors.SxmError as exc:
                LOG.warning('Could not destroy the task of %s: %s', what,
                            exc)
