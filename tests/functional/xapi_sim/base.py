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

"""What every functional test of the simulator needs.

Tests talk to the simulator the way a user does: through the real
``XenAPI`` client over HTTP, or through a raw ``xmlrpc.client.ServerProxy``
where the client would hide the answer (it swallows ``SESSION_INVALID``).
Raw HTTP is used for ``/import_raw_vdi`` and ``/export_raw_vdi``.

The simulator, the test's session and the objects it builds come from
``tests.functional.simhelpers``; here is what only these tests use.
"""

import hashlib
import time
import xmlrpc.client

import XenAPI

from tests.functional import simhelpers
from xapi_sim import storage

MiB = simhelpers.MiB
BLOCK = storage.BLOCK
NULL = simhelpers.NULL
DEADLINE = simhelpers.DEADLINE


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def event_from(api, classes, token, timeout):
    # ``from`` is a Python keyword: reach event.from by name.
    return getattr(api.event, 'from')(classes, token, float(timeout))


class SimulatorTestCase(simhelpers.SimTestCase):
    """One fresh simulator (pool-a and pool-b) per test."""

    # -- clients -----------------------------------------------------------

    def raw(self, pool='pool-a'):
        """A bare ServerProxy: returns the ``Status`` envelope as it is."""
        proxy = xmlrpc.client.ServerProxy(self.url(pool), allow_none=True)
        self.addCleanup(proxy('close'))
        return proxy

    def raw_call(self, method, *params, pool='pool-a'):
        return getattr(self.raw(pool), method)(*params)

    # -- assertions --------------------------------------------------------

    def assertFailure(self, expected, envelope):
        """``envelope`` is a raw failure with exactly ``expected``."""
        self.assertEqual({'Status': 'Failure',
                          'ErrorDescription': list(expected)}, envelope)

    def assertXapiError(self, expected, func, *args, **kwargs):
        """``func(*args)`` fails with exactly ``expected`` (code, params)."""
        exc = self.assertRaises(XenAPI.Failure, func, *args, **kwargs)
        self.assertEqual(list(expected), exc.details)
        return exc

    def assertStillServing(self, api=None):
        """A call after an error still succeeds."""
        api = api or self.api
        pools = api.pool.get_all()
        self.assertEqual(1, len(pools))

    # -- topology and objects ------------------------------------------------

    def sr(self, sr_type, api=None):
        api = api or self.api
        found = [r for r in api.SR.get_all() if api.SR.get_type(r) == sr_type]
        self.assertEqual(1, len(found), 'one %s SR expected' % sr_type)
        return found[0]

    def vm_with_disks(self, sizes, sr=None, api=None, start=True):
        """A VM with one disk per size (userdevice 0, 1, ...); started."""
        api = api or self.api
        sr = sr or self.sr('ext', api)
        vm = self.create_vm(api=api)
        vdis = []
        for i, size in enumerate(sizes):
            vdi = self.create_vdi(sr, size, name='disk%d' % i, api=api)
            self.create_vbd(vm, vdi, str(i), api=api)
            vdis.append(vdi)
        if start:
            api.VM.start(vm, False, False)
        return vm, vdis

    def disk(self, vdi, pool='pool-a'):
        """The in-process data plane of a VDI (for writes at an offset)."""
        return self.sim.pools[pool].disk(vdi)

    # -- raw VDI transfer ----------------------------------------------------

    def checksum(self, vdi, pool='pool-a', session=None):
        return sha256(self.export_vdi(vdi, pool, session))

    # -- waiting -------------------------------------------------------------

    def wait_task(self, task, api=None, timeout=DEADLINE):
        """The record of ``task`` once it has ended; waits on event.from."""
        api = api or self.api
        deadline = time.monotonic() + timeout
        token = event_from(api, ['task'], '', 0)['token']
        while True:
            rec = api.task.get_record(task)
            if rec['status'] not in ('pending', 'cancelling'):
                return rec
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail('task %s still %s after %ss'
                          % (task, rec['status'], timeout))
            token = event_from(api, ['task/%s' % task], token,
                               min(remaining, 5.0))['token']
