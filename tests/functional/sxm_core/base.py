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

import copy
import random
import time
import urllib.parse
import urllib.request

import fixtures
import testtools
import XenAPI

from sxm_core import migrate
from sxm_core import sessions
from xapi_sim import control
from xapi_sim import fixture
from xapi_sim import sim as simmod

MiB = 1 << 20
NULL = 'OpaqueRef:NULL'
EXT = 'Local storage (ext)'
LVM = 'Local storage (lvm)'
# Generous: a deadline for things that normally take milliseconds.
DEADLINE = 30.0
# The VM most tests migrate: (userdevice, name, SR, size, bytes written
# before boot). xapi moves the smaller disk first.
DISKS = (('0', 'system', LVM, 32 * MiB, 8 * MiB),
         ('1', 'data', EXT, 16 * MiB, 4 * MiB))


def topology_with(extra_srs):
    """The default two pools plus ``extra_srs`` {pool name: [sr spec]}."""
    topo = copy.deepcopy(simmod.DEFAULT_TOPOLOGY)
    for spec in topo['pools']:
        spec['srs'].extend(extra_srs.get(spec['name'], []))
    return topo


class CoreTestCase(testtools.TestCase):
    """A fresh simulator per test; ``topology`` may be overridden."""

    topology = None

    def setUp(self):
        super().setUp()
        # The core logs failures it reports: keep them with the test.
        self.useFixture(fixtures.FakeLogger())
        self.simfix = self.useFixture(fixture.SimulatorFixture(
            self.topology))
        self.sim = self.simfix.sim
        self.session_a = self.login('pool-a')
        self.session_b = self.login('pool-b')
        self.api = self.session_a.xenapi
        self.api_b = self.session_b.xenapi
        self.ctl = control.Control(self.url('pool-a'),
                                   self.session_a.handle)
        self.ctl_b = control.Control(self.url('pool-b'),
                                     self.session_b.handle)
        self.host_a = self.api.host.get_all()[0]
        self.host_b = self.api_b.host.get_all()[0]
        # The sessions the test itself holds, per pool.
        self.own_sessions = {'pool-a': self.sessions('pool-a'),
                             'pool-b': self.sessions('pool-b')}

    # -- clients --------------------------------------------------------------

    def url(self, pool='pool-a'):
        return self.simfix.url(pool)

    def login(self, pool='pool-a'):
        session = XenAPI.Session(self.url(pool))
        session.login_with_password(self.simfix.username,
                                    self.simfix.password, '2.21', 'tests')
        self.addCleanup(self._close, session)
        return session

    @staticmethod
    def _close(session):
        try:
            session.xenapi.session.logout()
        except Exception:
            pass  # the simulator may be gone already
        session('close')()

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
        kwargs.setdefault('slots', migrate.HostSlots(poll=0.01))
        source = self.pool('pool-a')
        dest = self.pool('pool-b') if cross_pool else None
        return migrate.Migrator(source, dest, **kwargs)

    # -- objects --------------------------------------------------------------

    def sr(self, name, api=None):
        found = (api or self.api).SR.get_by_name_label(name)
        self.assertEqual(1, len(found), 'one SR named %r expected' % name)
        return found[0]

    def sr_uuid(self, name, api=None):
        api = api or self.api
        return api.SR.get_uuid(self.sr(name, api))

    def fill(self, vdi, nbytes, seed, pool='pool-a', session=None):
        """Write ``nbytes`` of random data at the start of a VDI."""
        session = session or (self.session_a if pool == 'pool-a'
                              else self.session_b)
        data = random.Random(seed).randbytes(nbytes)
        query = urllib.parse.urlencode({'session_id': session.handle,
                                        'vdi': vdi})
        req = urllib.request.Request(
            '%simport_raw_vdi?%s' % (self.url(pool), query), data=data,
            method='PUT',
            headers={'Content-Type': 'application/octet-stream'})
        with urllib.request.urlopen(req, timeout=DEADLINE) as resp:
            self.assertEqual(200, resp.status)

    def export(self, vdi, pool='pool-a'):
        session = self.session_a if pool == 'pool-a' else self.session_b
        query = urllib.parse.urlencode({'session_id': session.handle,
                                        'vdi': vdi})
        url = '%sexport_raw_vdi?%s' % (self.url(pool), query)
        with urllib.request.urlopen(url, timeout=DEADLINE) as resp:
            return resp.read()

    def create_vdi(self, sr, size, name, api=None):
        return (api or self.api).VDI.create({
            'name_label': name, 'name_description': '', 'SR': sr,
            'virtual_size': str(size), 'type': 'user', 'sharable': False,
            'read_only': False, 'other_config': {}, 'xenstore_data': {},
            'sm_config': {}, 'tags': []})

    def make_vm(self, name='web', disks=DISKS, start=True, vif=True):
        """A VM with ``disks`` (see DISKS); returns (vm ref, {ud: vdi})."""
        api = self.api
        vm = api.VM.create({
            'name_label': name, 'name_description': '',
            'memory_static_max': str(256 * MiB),
            'memory_dynamic_max': str(256 * MiB),
            'memory_dynamic_min': str(256 * MiB),
            'memory_static_min': str(256 * MiB),
            'VCPUs_max': '1', 'VCPUs_at_startup': '1',
            'is_a_template': False, 'other_config': {}})
        vdis = {}
        for userdevice, disk, sr_name, size, written in disks:
            vdi = self.create_vdi(self.sr(sr_name), size,
                                  '%s-%s' % (name, disk))
            if written:
                self.fill(vdi, written, seed='%s-%s' % (name, userdevice))
            api.VBD.create({
                'VM': vm, 'VDI': vdi, 'userdevice': userdevice,
                'bootable': userdevice == '0', 'mode': 'RW',
                'type': 'Disk', 'empty': False, 'other_config': {},
                'qos_algorithm_type': '', 'qos_algorithm_params': {}})
            vdis[userdevice] = vdi
        if vif:
            api.VIF.create({
                'VM': vm, 'network': api.network.get_all()[0],
                'device': '0', 'MAC': '', 'MTU': '1500',
                'other_config': {}, 'qos_algorithm_type': '',
                'qos_algorithm_params': {}})
        if start:
            api.VM.start(vm, False, False)
        return vm, vdis

    # -- the guest ------------------------------------------------------------

    def write(self, vm, devices=('0', '1'), rate=MiB, ctl=None):
        """Uniform random 4 KiB writes at ``rate`` on each device."""
        for i, dev in enumerate(devices):
            (ctl or self.ctl).workload_start(
                vm, dev, pattern='uniform', rate=rate, block_size=4096,
                seed=11 + i)

    def writes(self, vm, ctl=None):
        return [d['writes'] for d in (ctl or self.ctl).guest_stats(vm)[
            'disks']]

    def wait_writes(self, vm, more=10, ctl=None):
        """Wait until every disk of ``vm`` has written ``more`` times."""
        start = self.writes(vm, ctl)
        self.poll(lambda: all(now >= then + more for now, then in
                              zip(self.writes(vm, ctl), start)),
                  what='more guest writes on %s' % vm)

    def stop_and_check(self, vm, ctl=None, devices=('0', '1')):
        """Stop the writers; each disk must hold exactly what was written."""
        ctl = ctl or self.ctl
        ctl.workload_stop(vm)
        for disk in ctl.guest_stats(vm)['disks']:
            self.assertEqual(0, disk['errors'], disk)
            self.assertGreater(disk['writes'], 0, disk)
        report = ctl.guest_check(vm)
        self.assertEqual(sorted(devices),
                         sorted(r['userdevice'] for r in report))
        for disk in report:
            self.assertTrue(disk['ok'], disk)
        return report

    # -- state ----------------------------------------------------------------

    def vdis(self, api=None):
        return set((api or self.api).VDI.get_all())

    def vm_in(self, uuid, api):
        """The ref of the VM with ``uuid`` in a pool, or None."""
        try:
            return api.VM.get_by_uuid(uuid)
        except XenAPI.Failure as exc:
            self.assertEqual(['UUID_INVALID', 'VM', uuid], exc.details)
            return None

    def sessions(self, pool):
        return set(self.sim.pools[pool].db.all_refs('session'))

    def assertNoSessionsLeft(self):
        """Only the test's own sessions remain in both pools."""
        for pool in ('pool-a', 'pool-b'):
            left = self.sessions(pool) - self.own_sessions[pool]
            self.assertEqual(set(), left,
                             '%d XAPI session(s) left in %s'
                             % (len(left), pool))

    def poll(self, predicate, timeout=DEADLINE, interval=0.01, what=''):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail('timed out after %ss waiting for %s'
                          % (timeout, what or predicate))
            time.sleep(interval)

    def spy_sessions(self, pool):
        """Every session ref the pool creates from now on (a list).

        Wraps the simulator's database ``add`` of that pool: logins and
        host.migrate_receive both create their session there.
        """
        db = self.sim.pools[pool].db
        created = []
        original = db.add

        def add(cls, record, ref=None):
            ref = original(cls, record, ref)
            if cls == 'session':
                created.append(ref)
            return ref
        db.add = add
        self.addCleanup(delattr, db, 'add')
        return created
