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
"""

import hashlib
import time
import urllib.parse
import urllib.request
import xmlrpc.client

import testtools
import XenAPI

from xapi_sim import control
from xapi_sim import fixture
from xapi_sim import storage

MiB = 1 << 20
BLOCK = storage.BLOCK
NULL = 'OpaqueRef:NULL'
# Generous: a deadline for things that normally take milliseconds.
DEADLINE = 30.0


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def event_from(api, classes, token, timeout):
    # ``from`` is a Python keyword: reach event.from by name.
    return getattr(api.event, 'from')(classes, token, float(timeout))


class SimulatorTestCase(testtools.TestCase):
    """One fresh simulator (pool-a and pool-b) per test."""

    def setUp(self):
        super().setUp()
        self.simfix = self.useFixture(fixture.SimulatorFixture())
        self.sim = self.simfix.sim
        self.session = self.login('pool-a')
        self.api = self.session.xenapi

    # -- clients -----------------------------------------------------------

    def url(self, pool='pool-a'):
        return self.simfix.url(pool)

    def login(self, pool='pool-a'):
        session = XenAPI.Session(self.url(pool))
        session.login_with_password(self.simfix.username,
                                    self.simfix.password, '1.0', 'tests')
        self.addCleanup(self._close, session)
        return session

    @staticmethod
    def _close(session):
        try:
            session.xenapi.session.logout()
        except Exception:
            pass  # the test may have logged out already
        session('close')()

    def raw(self, pool='pool-a'):
        """A bare ServerProxy: returns the ``Status`` envelope as it is."""
        proxy = xmlrpc.client.ServerProxy(self.url(pool), allow_none=True)
        self.addCleanup(proxy('close'))
        return proxy

    def raw_call(self, method, *params, pool='pool-a'):
        return getattr(self.raw(pool), method)(*params)

    def control(self, pool='pool-a', session=None):
        session = session or (self.session if pool == 'pool-a'
                              else self.login(pool))
        return control.Control(self.url(pool), session.handle)

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

    def network(self, api=None):
        api = api or self.api
        return api.network.get_all()[0]

    def create_vdi(self, sr, size, name='disk', api=None):
        api = api or self.api
        return api.VDI.create({
            'name_label': name, 'name_description': '', 'SR': sr,
            'virtual_size': str(size), 'type': 'user', 'sharable': False,
            'read_only': False, 'other_config': {}, 'xenstore_data': {},
            'sm_config': {}, 'tags': []})

    def create_vm(self, name='vm', api=None):
        api = api or self.api
        return api.VM.create({
            'name_label': name, 'name_description': '',
            'memory_static_max': str(256 * MiB),
            'memory_dynamic_max': str(256 * MiB),
            'memory_dynamic_min': str(256 * MiB),
            'memory_static_min': str(256 * MiB),
            'VCPUs_max': '1', 'VCPUs_at_startup': '1',
            'is_a_template': False, 'other_config': {}})

    def create_vbd(self, vm, vdi, userdevice='0', api=None, **extra):
        api = api or self.api
        record = {'VM': vm, 'VDI': vdi, 'userdevice': userdevice,
                  'bootable': userdevice == '0', 'mode': 'RW',
                  'type': 'Disk', 'empty': False, 'other_config': {},
                  'qos_algorithm_type': '', 'qos_algorithm_params': {}}
        record.update(extra)
        return api.VBD.create(record)

    def create_vif(self, vm, network, device='0', api=None):
        api = api or self.api
        return api.VIF.create({'VM': vm, 'network': network,
                               'device': device, 'MAC': '', 'MTU': '1500',
                               'other_config': {},
                               'qos_algorithm_type': '',
                               'qos_algorithm_params': {}})

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

    def _vdi_url(self, path, vdi, session, pool):
        query = urllib.parse.urlencode({'session_id': session.handle,
                                        'vdi': vdi})
        return '%s%s?%s' % (self.url(pool), path, query)

    def export_vdi(self, vdi, pool='pool-a', session=None):
        session = session or self.session
        url = self._vdi_url('export_raw_vdi', vdi, session, pool)
        with urllib.request.urlopen(url, timeout=DEADLINE) as resp:
            return resp.read()

    def import_vdi(self, vdi, data, pool='pool-a', session=None):
        session = session or self.session
        req = urllib.request.Request(
            self._vdi_url('import_raw_vdi', vdi, session, pool),
            data=data, method='PUT',
            headers={'Content-Type': 'application/octet-stream'})
        with urllib.request.urlopen(req, timeout=DEADLINE) as resp:
            return resp.status

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

    def poll(self, predicate, timeout=DEADLINE, interval=0.02, what=''):
        """Wait until ``predicate()`` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail('timed out after %ss waiting for %s'
                          % (timeout, what or predicate))
            time.sleep(interval)
