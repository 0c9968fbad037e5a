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

"""What the functional tests of sxm_core share.

The core runs as in production: real ``SessionPool``s speaking XenAPI over
HTTP to the simulator's two pools. The test itself sets things up and
checks them through its own ``XenAPI`` sessions (``api``, ``api_b``), the
simulator's control interface (``ctl``, ``ctl_b``: guest workloads, faults,
settings) and raw ``PUT /import_raw_vdi``.
"""

import random
import time

import fixtures
import XenAPI

from sxm_core import migrate
from sxm_core import sessions
from sxm_core import slots
from sxm_core import volumes
from tests.functional import simhelpers

MiB = simhelpers.MiB
NULL = simhelpers.NULL
EXT = 'Local storage (ext)'
LVM = 'Local storage (lvm)'
DEADLINE = simhelpers.DEADLINE
# The VM most tests migrate: (userdevice, name, SR, size, bytes written
# before boot). xapi moves the smaller disk first.
DISKS = (('0', 'system', LVM, 32 * MiB, 8 * MiB),
         ('1', 'data', EXT, 16 * MiB, 4 * MiB))
topology_with = simhelpers.topology_with


class FlakySession(XenAPI.Session):
    """A XenAPI.Session whose calls fail as scripted, before they are sent.

    ``faults`` ({method: [exception, ...]}, shared by every session of a
    factory) stands for XAPI or the network failing a given call, one
    exception per call, while the rest of the pool keeps working.
    """

    faults = {}

    def xenapi_request(self, methodname, params):
        pending = self.faults.get(methodname)
        if pending:
            raise pending.pop(0)
        return super().xenapi_request(methodname, params)


def flaky_factory(faults, timeout=30.0):
    """A SessionPool ``session_factory`` making FlakySessions (http)."""
    def factory(url):
        transport = sessions.HTTPTransport()
        transport.set_timeout(timeout)
        session = FlakySession(url, transport=transport)
        session.faults = faults
        session.sxm_transport = transport
        return session
    return factory


class CoreTestCase(simhelpers.TwoPoolsTestCase):
    """A fresh simulator per test; ``topology`` may be overridden."""

    api_version = '2.21'
    poll_interval = 0.01

    def setUp(self):
        # The core logs failures it reports: keep them with the test,
        # from before the simulator starts until after it stops.
        self.useFixture(fixtures.FakeLogger())
        super().setUp()
        # The sessions the test itself holds, per pool.
        self.own_sessions = {'pool-a': self.sessions('pool-a'),
                             'pool-b': self.sessions('pool-b')}

    # -- clients --------------------------------------------------------------

    def pool(self, name='pool-a', **kwargs):
        """A real SessionPool to one of the simulator's pools."""
        kwargs.setdefault('retries', 1)
        kwargs.setdefault('backoff', 0.05)
        pool = sessions.SessionPool(self.url(name), self.simfix.username,
                                    self.simfix.password, **kwargs)
        self.addCleanup(pool.close)
        return pool

    def migrator(self, cross_pool=True, **kwargs):
        """A Migrator from pool-a to pool-b (or inside pool-a)."""
        kwargs.setdefault('slots', slots.HostSlots(poll=0.01))
        source = self.pool('pool-a')
        dest = self.pool('pool-b') if cross_pool else None
        return migrate.Migrator(source, dest, **kwargs)

    def mover(self, **kwargs):
        """A VdiMover inside pool-a."""
        kwargs.setdefault('slots', slots.HostSlots(poll=0.01))
        return volumes.VdiMover(self.pool('pool-a'), **kwargs)

    # -- objects --------------------------------------------------------------

    def sr_uuid(self, name, api=None):
        api = api or self.api
        return api.SR.get_uuid(self.sr_named(name, api))

    def fill(self, vdi, nbytes, seed, pool='pool-a', session=None):
        """Write ``nbytes`` of random data at the start of a VDI."""
        session = session or (self.session if pool == 'pool-a'
                              else self.session_b)
        data = random.Random(seed).randbytes(nbytes)
        self.assertEqual(200, self.import_vdi(vdi, data, pool, session))

    def make_vm(self, name='web', disks=DISKS, start=True, vif=True):
        """A VM with ``disks`` (see DISKS); returns (vm ref, {ud: vdi})."""
        vm = self.create_vm(name=name)
        vdis = {}
        for userdevice, disk, sr_name, size, written in disks:
            vdi = self.create_vdi(self.sr_named(sr_name), size,
                                  '%s-%s' % (name, disk))
            if written:
                self.fill(vdi, written, seed='%s-%s' % (name, userdevice))
            self.create_vbd(vm, vdi, userdevice)
            vdis[userdevice] = vdi
        if vif:
            self.create_vif(vm, self.network())
        if start:
            self.api.VM.start(vm, False, False)
        return vm, vdis

    # -- the guest: both disks of DISKS unless told ------------------------

    def write(self, vm, devices=('0', '1'), rate=MiB, ctl=None):
        """Uniform random 4 KiB writes at ``rate`` on each device."""
        super().write(vm, devices, rate, seed=11, ctl=ctl)

    def wait_writes(self, vm, more=10, ctl=None):
        super().wait_writes(vm, more, ctl)

    def stop_and_check(self, vm, ctl=None, devices=('0', '1')):
        """Stop the writers; each disk must hold exactly what was written.

        Every disk must have been written to, too.
        """
        return super().stop_and_check(vm, ctl, devices, written=True)

    # -- sessions -------------------------------------------------------------

    def sessions(self, pool):
        return set(self.sim.pools[pool].db.all_refs('session'))

    def assertNoSessionsLeft(self):
        """Only the test's own sessions remain in both pools.

        A migration's token custodian (a child process) logs its own
        session out as it exits, a moment after the command returns: a
        loaded machine is given time for that.
        """
        deadline = time.monotonic() + simhelpers.DEADLINE
        for pool in ('pool-a', 'pool-b'):
            left = self.sessions(pool) - self.own_sessions[pool]
            while left and time.monotonic() < deadline:
                time.sleep(0.1)
                left = self.sessions(pool) - self.own_sessions[pool]
            self.assertEqual(set(), left,
                             '%d XAPI session(s) left in %s'
                             % (len(left), pool))

    def spy_sessions(self, pool):
        """Every session ref the pool creates from now on (a list)."""
        return simhelpers.spy_sessions(self, self.sim, pool)
