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

"""HTTP front end of one pool master.

* ``POST /``: XML-RPC, the XenAPI.
* ``PUT /import_raw_vdi`` and ``GET /export_raw_vdi``: disk images,
  ``format=raw`` (default) or ``vhd``, authorised by ``session_id`` (or
  HTTP basic auth) like xapi's handlers; a ``task_id`` given in the query
  is completed (success, or failure with the error) when the transfer
  ends, and named in the ``task-id`` response header. As xapi's, both
  answer ``Connection: close``: an export carries no Content-Length (the
  body ends with the connection), and an import that got under way answers
  200 whatever happens: its task says whether the image was written.
* ``POST /sim/<op>``: the simulator's control interface (JSON), visibly
  outside the XenAPI namespace; see ``xapi_sim.control``.
"""

import base64
import http.server
import json
import socket
import struct
import threading
import time
import urllib.parse
import xml.parsers.expat
import xmlrpc.client

from xapi_sim import api
from xapi_sim import errors
from xapi_sim import storage
from xapi_sim import vhd
from xapi_sim import wire

CHUNK = 1 << 20
FORMATS = ('raw', 'vhd')
_LOGINS = ('session.login_with_password', 'session_login_with_password')
# How often serve_forever looks for a shutdown request: stop() waits for it.
POLL_INTERVAL = 0.05


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'xapi-sim'
    # Headers and body go out in separate writes: with Nagle's algorithm
    # the body then waits for the client's delayed ACK (40 ms a call).
    disable_nagle_algorithm = True

    @property
    def pool(self):
        return self.server.pool

    def log_message(self, fmt, *args):
        # Request lines carry session ids in query strings: never log them.
        pass

    def _send(self, code, body, ctype='text/xml'):
        if isinstance(body, str):
            body = body.encode('utf-8')
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length)

    # -- XML-RPC ---------------------------------------------------------

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith('/sim/'):
            return self._control(path[len('/sim/'):])
        if path not in ('/', '/RPC2'):
            return self._send(404, 'not found', 'text/plain')
        body = self._body()
        try:
            name, params = wire.parse_call(body)
        except (xml.parsers.expat.ExpatError, xmlrpc.client.ResponseError,
                ValueError, TypeError) as exc:
            return self._send(200, wire.failure(
                ['XMLRPC_UNMARSHAL_FAILURE', 'methodCall', str(exc)]))
        if self.server.member_of and (name in _LOGINS
                                      or self._pool_session(params)):
            return self._send(200, wire.failure(
                ['HOST_IS_SLAVE', self.server.member_of]))
        originator = self._originator(name, params)
        try:
            value = self.pool.call(name, params)
            out = wire.success('' if value is None else value)
        except errors.Restarted:
            # The process that ran the call is gone: no answer at all.
            return self._reset()
        except errors.XapiError as exc:
            out = wire.failure(exc.description)
        except Exception as exc:  # a bug in the simulator: report, serve on
            self.pool.log.exception('%s failed', name)
            out = wire.failure(['INTERNAL_ERROR', '%s: %s'
                                % (type(exc).__name__, exc)])
        if self.pool.sim.faults.take_reset(name, self.pool.task_ended_since):
            return self._reset()
        self.pool.call_log.record(name, originator, len(out))
        self._send(200, out)

    def _originator(self, name, params):
        """The originator the calling session logged in with, or ''."""
        if name in _LOGINS:
            return params[3] if len(params) > 3 and isinstance(
                params[3], str) else ''
        session = params[0] if params else None
        if not isinstance(session, str):
            return ''
        with self.pool.db.lock:
            if not self.pool.db.exists('session', session):
                return ''
            return self.pool.db.get('session', session)['originator']

    def _reset(self):
        """Drop the connection unanswered, with a TCP reset."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack('ii', 1, 0))
        except OSError:
            pass  # the peer closed it already

    def _pool_session(self, params):
        """Whether a call carries a session a member does not serve.

        As session_check.ml: on a member only its local sessions
        (slave_local_login_with_password) are served; a pool session
        gets HOST_IS_SLAVE, an unknown one SESSION_INVALID.
        """
        session = params[0] if params else None
        if not isinstance(session, str):
            return False
        with self.pool.db.lock:
            if not self.pool.db.exists('session', session):
                return False
            return (self.pool.db.get('session', session)['originator']
                    != 'slave_local')

    # -- raw VDI import/export ---------------------------------------------

    def _authorise(self, query):
        session = query.get('session_id', [None])[0]
        if session is None:
            auth = self.headers.get('Authorization', '')
            if auth.startswith('Basic '):
                try:
                    user, _, pwd = base64.b64decode(
                        auth[6:]).decode().partition(':')
                    session = self.pool.login(user, pwd, 'http')
                except (ValueError, errors.XapiError):
                    session = None
        try:
            self.pool.check_session(session)
        except errors.XapiError:
            return None
        return session

    def _vdi_request(self):
        """(vdi, disk, query); Nones once an error answer went out."""
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        if self._authorise(query) is None:
            self._send(401, 'Unauthorised', 'text/plain')
            return None, None, query
        fmt = query.get('format', ['raw'])[0]
        if fmt not in FORMATS:
            # import_raw_vdi/export_raw_vdi: an unknown format fails the
            # task and answers 404.
            self._finish(query, errors.XapiError(
                'INTERNAL_ERROR', 'Unknown format %s' % fmt))
            self._send(404, 'Unknown format %s' % fmt, 'text/plain')
            return None, None, query
        vdi = query.get('vdi', [''])[0]
        try:
            if not vdi.startswith('OpaqueRef:'):
                with self.pool.db.lock:
                    vdi = self.pool.db.by_uuid_ref('VDI', vdi)
            return vdi, self.pool.disk(vdi), query
        except errors.XapiError as exc:
            self._finish(query, exc)
            self._send(404, ' '.join(exc.description), 'text/plain')
            return None, None, query

    def _task(self, query):
        task = query.get('task_id', [None])[0]
        with self.pool.db.lock:
            if task and self.pool.db.exists('task', task):
                return task
        return None

    def _finish(self, query, exc=None, value=None):
        """Complete the caller's task (``task_id``) as xapi's handlers do."""
        task = self._task(query)
        if task is not None:
            api.finish_task(self.pool.db, task, value=value, exc=exc)

    def _task_header(self, query):
        task = self._task(query)
        if task is not None:
            self.send_header('task-id', task)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path != '/export_raw_vdi':
            return self._send(404, 'not found', 'text/plain')
        vdi, disk, query = self._vdi_request()
        if disk is None:
            return
        fmt = query.get('format', ['raw'])[0]
        with self.pool.db.lock:
            uuid = self.pool.db.get('VDI', vdi)['uuid']
        # Export_raw_vdi.localhost_handler: http_200_ok ~keep_alive:false,
        # no Content-Length in either format: vhd-tool streams until it
        # closes the connection, which ends the body; a failure after the
        # headers only cuts the stream short and fails the task.
        self.close_connection = True
        self.send_response(200)
        self.send_header('Connection', 'close')
        self.send_header('Cache-Control', 'no-cache, no-store')
        self._task_header(query)
        self.send_header('Content-Type', 'application/vhd' if fmt == 'vhd'
                         else 'application/octet-stream')
        self.send_header('Content-Disposition',
                         'attachment; filename="%s.%s"' % (uuid, fmt))
        self.end_headers()
        try:
            if fmt == 'vhd':
                # After the headers too (Constants.max_vhd_size).
                if disk.size > vhd.MAX_VHD_SIZE:
                    raise errors.XapiError('VDI_TOO_LARGE', vdi,
                                           vhd.MAX_VHD_SIZE)
                for chunk in vhd.export_chunks(disk):
                    self.wfile.write(chunk)
            else:
                for offset in range(0, disk.size, CHUNK):
                    self.wfile.write(disk.read(offset, CHUNK))
        except errors.XapiError as exc:
            self._finish(query, exc)
            self.close_connection = True
            return
        self._finish(query)

    def do_PUT(self):
        """Import_raw_vdi.localhost_handler.

        Refusals of the request itself (format, chunked encoding, no such
        VDI) answer an error status. Otherwise xapi sends ``200 OK``,
        ``Connection: close``, then attaches the VDI RW to dom0 and lets
        vhd-tool write: what fails from then on fails the task only
        (VDI_READONLY [vdi] from dom0's VBD.create for a read-only VDI;
        VDI_IO_ERROR ["Device I/O errors"] when vhd-tool stops, e.g. on an
        image bigger than the VDI; SR_BACKEND_FAILURE_44 when the SR is
        full), and the connection closes. A VDI a running VM holds RW is
        written all the same: dom0's VBD escapes the sharing check.
        Unlike xapi, the simulator sends that answer once the image is
        written (xapi sends it before reading a byte, so a client that does
        not read to the close races the write), reads the whole body (xapi
        stops: its client may see a reset) and refuses an oversized image
        before writing any of it (vhd-tool writes up to the VDI's end).
        """
        path = urllib.parse.urlsplit(self.path).path
        if path != '/import_raw_vdi':
            return self._send(404, 'not found', 'text/plain')
        vdi, disk, query = self._vdi_request()
        if disk is None:
            return
        if 'chunked' in self.headers.get('Transfer-Encoding', ''):
            exc = errors.XapiError('INTERNAL_ERROR',
                                   'Cannot handle chunked encoding')
            self._finish(query, exc)
            self.close_connection = True
            return self._send(404, ' '.join(exc.description), 'text/plain')
        length = int(self.headers.get('Content-Length') or 0)
        self._read = 0
        with self.pool.db.lock:
            read_only = self.pool.db.get('VDI', vdi)['read_only']
        if read_only:
            failed = errors.XapiError('VDI_READONLY', vdi)
        elif query.get('format', ['raw'])[0] == 'vhd':
            failed = self._put_vhd(disk, length)
        elif length > disk.size:
            failed = _io_error()
        else:
            failed = self._put_raw(disk, length)
        self._drain(length)
        self.pool.refresh_vdi(vdi)
        self._finish(query, failed, value=vdi)
        self.close_connection = True
        self.send_response(200)
        self.send_header('Connection', 'close')
        self.send_header('Cache-Control', 'no-cache, no-store')
        self._task_header(query)
        self.send_header('Content-Type', 'application/octet-stream')
        self.end_headers()

    def _drain(self, length):
        remaining = length - self._read
        while remaining > 0:
            data = self.rfile.read(min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)

    def _put_raw(self, disk, length):
        while self._read < length:
            data = self.rfile.read(min(CHUNK, length - self._read))
            if not data:
                break
            start = self._read
            self._read += len(data)
            try:
                _write_sparse(disk, start, data)
            except errors.XapiError as exc:
                return exc
        return None

    def _put_vhd(self, disk, length):
        def read(n):
            data = self.rfile.read(n)
            self._read += len(data)
            return data
        try:
            vhd.import_stream(read, length,
                              lambda off, data: _write_sparse(disk, off,
                                                              data),
                              disk.size)
        except vhd.VhdError:
            return _io_error()
        except errors.XapiError as exc:
            return exc
        return None

    # -- control interface ---------------------------------------------------

    def _control(self, op):
        from xapi_sim import control
        try:
            request = json.loads(self._body() or b'{}')
            if not isinstance(request, dict):
                raise ValueError('the request must be a JSON object')
            self.pool.check_session(request.pop('session_id', None))
        except (ValueError, errors.XapiError) as exc:
            return self._send(401 if isinstance(exc, errors.XapiError)
                              else 400, json.dumps({'error': str(exc)}),
                              'application/json')
        try:
            value = control.handle(self.pool, op, request,
                                   connection=self.connection)
        except control.ControlError as exc:
            return self._send(400, json.dumps({'error': str(exc)}),
                              'application/json')
        self._send(200, json.dumps({'value': value}), 'application/json')


def _io_error():
    # Vhd_tool_wrapper: whatever made vhd-tool stop, the task says this.
    return errors.XapiError('VDI_IO_ERROR', 'Device I/O errors')


def _write_sparse(disk, offset, data):
    """Write an image chunk, skipping zero blocks where the disk is zero."""
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        block, within = divmod(offset + pos, storage.BLOCK)
        take = min(storage.BLOCK - within, len(data) - pos)
        chunk = view[pos:pos + take]
        if (chunk.nbytes == storage.BLOCK and chunk == storage.ZERO_BLOCK
                and disk.owner(block) is None):
            pos += take
            continue
        disk.write(offset + pos, chunk.tobytes())
        pos += take


class _Server(http.server.ThreadingHTTPServer):
    """Keeps the connections it serves, so that stop() can end them.

    Without that a keep-alive client would still get answers from a
    stopped pool (its handler thread lives on the open connection).
    """

    daemon_threads = True

    def __init__(self, *args, **kwargs):
        self._open = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self, keep=None):
        """End every open connection but ``keep`` (a request's own)."""
        with self._open_lock:
            open_now = [r for r in self._open if r is not keep]
            self._open = {r for r in self._open if r is keep}
        for request in open_now:
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the peer closed it meanwhile
            request.close()


class PoolServer(object):
    """A threaded HTTP server for one pool; ``url`` once started.

    With ``member_of`` (the master's address) it is a pool member's: logins
    and calls with a pool session get HOST_IS_SLAVE; calls with a session
    of ``slave_local_login_with_password`` are served as the master serves
    them.
    """

    def __init__(self, pool, host='127.0.0.1', port=0, member_of=None):
        self.pool = pool
        self._member_of = member_of
        self._bind(host, port)
        self.host, self.port = self.httpd.server_address[:2]
        self.url = 'http://%s:%d/' % (self.host, self.port)

    def _bind(self, host, port):
        self.httpd = _Server((host, port), _Handler)
        self.httpd.pool = self.pool
        self.httpd.member_of = self._member_of
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        args=(POLL_INTERVAL,),
                                        name='xapi-%s' % self.pool.name,
                                        daemon=True)

    @property
    def member_of(self):
        return self._member_of

    @member_of.setter
    def member_of(self, master):
        """The master's address (a member's server), or None (the master)."""
        self._member_of = master
        self.httpd.member_of = master

    def start(self):
        self._thread.start()

    def stop(self, keep=None):
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.close_connections(keep)
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def go_down(self, keep=None):
        """The toolstack dies: connections drop, new ones are refused."""
        self.stop(keep)

    def come_up(self):
        """The toolstack is back, at the same address and port."""
        deadline = time.monotonic() + 10
        while True:
            try:
                self._bind(self.host, self.port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.start()
