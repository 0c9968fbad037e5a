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

import argparse
import contextlib
import hashlib
import io
import sys
import threading
import unittest

import XenAPI

from sxm_core import sessions
from sxm_core import transfer
from xapi_sim import control
from xapi_sim import sim as simmod


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

    def import_raw(self, vdi, image):
        try:
            transfer.put(self.url, self.session._session, vdi,
                         io.BytesIO(image), len(image), timeout=60)
        except transfer.TransferFailed as exc:
            raise BenchError(str(exc))

    def export_sha256(self, vdi):
        out = _Digest()
        try:
            transfer.get(self.url, self.session._session, vdi, out,
                         timeout=60)
        except transfer.TransferFailed as exc:
            raise BenchError(str(exc))
        return out.digest.hexdigest()


class _Digest(object):
    """A file that keeps only the sha256 of what is written to it."""

    def __init__(self):
        self.digest = hashlib.sha256()

    def write(self, data):
        self.digest.update(data)


# -- benchmarks through Nova's services (nova_vs_core.py, cold_resize.py) --

def nova_parser(description, bandwidth):
    """The arguments every Nova-side benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--bandwidth', type=simmod.parse_size,
                        default=bandwidth, help='bytes/s between the pools')
    parser.add_argument('--image-size', type=simmod.parse_size,
                        default='32MiB')
    parser.add_argument('--seed', type=int, default=3)
    return parser


def run_case(case):
    """Run the tests of a benchmark's TestCase; whether they passed."""
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(case))
    return result.wasSuccessful()


def session_pool(case, pool):
    """A SessionPool to a pool of a Nova functional test case's simulator."""
    return sessions.SessionPool(case.simfix.url(pool), case.simfix.username,
                                case.passwords[pool])


def pool_b_target(case):
    """(master host uuid, ext SR uuid) of pool-b: where the core arms go."""
    api_b = case.xapi['pool-b']
    host_b = api_b.host.get_uuid(api_b.pool.get_master(
        api_b.pool.get_all()[0]))
    return host_b, case.sr_uuid('pool-b', 'Local storage (ext)')


@contextlib.contextmanager
def told_when_done(obj, name):
    """Yields an Event set each time ``obj.<name>`` returns or raises.

    For a service's manager: the RPC dispatcher looks the method up on
    each call, so the wrapper on the instance is the one called. A wait on
    the event costs the process no CPU, unlike a poll.
    """
    done = threading.Event()
    method = getattr(obj, name)

    def call_then_tell(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        finally:
            done.set()
    setattr(obj, name, call_then_tell)
    try:
        yield done
    finally:
        delattr(obj, name)
