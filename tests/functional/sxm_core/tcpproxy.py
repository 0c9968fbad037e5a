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

"""A TCP proxy on loopback that can go silent, for connection tests.

``FreezingProxy`` forwards every connection to an upstream address until
``freeze()``: from then on it forwards nothing, in either direction, and
closes nothing -- what a crashed pool master or a firewall that dropped the
connection state looks like to a client (no reset: packets just vanish).
Connections opened while frozen are accepted and left hanging too.
``thaw()`` delivers what was held and resumes. ``reset()`` closes every
connection at once, for the contrast. Use it as a fixture::

    proxy = self.useFixture(FreezingProxy(('127.0.0.1', port)))
    url = proxy.url
"""

import select
import socket
import threading
import urllib.parse

import fixtures


class FreezingProxy(fixtures.Fixture):

    def __init__(self, upstream):
        super().__init__()
        if isinstance(upstream, str):
            parts = urllib.parse.urlsplit(upstream)
            upstream = (parts.hostname, parts.port or 80)
        self.upstream = upstream
        self.accepted = 0

    def _setUp(self):
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._lock = threading.Lock()
        self._sockets = set()
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.port = self._listener.getsockname()[1]
        self.url = 'http://127.0.0.1:%d/' % self.port
        thread = threading.Thread(target=self._accept, daemon=True,
                                  name='freezing-proxy')
        thread.start()
        self.addCleanup(self._close)

    # -- control --------------------------------------------------------

    def freeze(self):
        """Stop forwarding; close nothing."""
        self._flowing.clear()

    def thaw(self):
        self._flowing.set()

    def reset(self):
        """Close every open connection (a reset, unlike a freeze)."""
        with self._lock:
            socks, self._sockets = list(self._sockets), set()
        for sock in socks:
            _close(sock)

    # -- forwarding -----------------------------------------------------

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(client,),
                             daemon=True).start()

    def _serve(self, client):
        with self._lock:
            self._sockets.add(client)
        # A connection opened while frozen never reaches the server.
        if not self._wait_flowing():
            return _close(client)
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            return _close(client)
        with self._lock:
            self._sockets.add(server)
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst),
                             daemon=True).start()

    def _wait_flowing(self):
        while not self._closed:
            if self._flowing.wait(0.2):
                return True
        return False

    def _pump(self, src, dst):
        while True:
            if not self._wait_flowing():
                break
            try:
                ready, _, _ = select.select([src], [], [], 0.2)
            except (OSError, ValueError):
                break
            if not ready:
                continue
            try:
                data = src.recv(65536)
            except OSError:
                data = b''
            # Whatever arrives during a freeze is held, not delivered.
            if not self._wait_flowing():
                break
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                break
            try:
                dst.sendall(data)
            except OSError:
                break

    def _close(self):
        self._closed = True
        _close(self._listener)
        self.reset()


def _close(sock):
    try:
        sock.close()
    except OSError:
        pass
