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

"""What the functional tests of the simulator and of sxm_core share.

``SimTestCase``: a fresh simulator per test, the test's own ``XenAPI``
session to pool-a, the objects tests build and raw VDI transfer.
``TwoPoolsTestCase``: a session and a control interface to each pool and
the simulated guest's writers, for tests that move VMs between them.
"""

import copy
import time
import urllib.parse
import urllib.request

import testtools
import XenAPI

from xapi_sim import control
from xapi_sim import fixture
from xapi_sim import sim as simmod
from xapi_sim import vmbuild

MiB = 1 << 20
NULL = 'OpaqueRef:NULL'
# Generous: a deadline for things that normally take milliseconds.
DEADLINE = 30.0


def topology_with(extra_srs):
    """The default two pools plus ``extra_srs`` {pool name: [sr spec]}."""
    topo = copy.deepcopy(simmod.DEFAULT_TOPOLOGY)
    for spec in topo['pools']:
        spec['srs'].extend(extra_srs.get(spec['name'], []))
    return topo


def two_host_topology(*pools, topology=None):
    """``topology`` where each of ``pools`` (all if none) has two hosts.

    ``<pool>-host1`` is the master; ``<pool>-host2`` can take over. The
    default topology: the simulator's two pools.
    """
    topo = copy.deepcopy(topology or simmod.DEFAULT_TOPOLOGY)
    for spec in topo['pools']:
        if not pools or spec['name'] in pools:
            spec['hosts'] = [{'name': '%s-host1' % spec['name']},
                             {'name': '%s-host2' % spec['name']}]
    return topo


def two_hosts_shared_nfs(pool='pool-a'):
    """``pool`` with two hosts and a 4 GiB shared nfs SR both see."""
    topo = two_host_topology(pool)
    (spec,) = [p for p in topo['pools'] if p['name'] == pool]
    spec['srs'].append({'name': 'Shared (nfs)', 'type': 'nfs',
                        'size': '4GiB', 'shared': True})
    return topo


def spy_sessions(test, sim, pool):
    """Every session ref ``pool`` of ``sim`` creates from now on (a list).

    Wraps the simulator's database ``add`` of that pool until ``test``
    ends: logins and host.migrate_receive both create their session there.
    """
    db = sim.pools[pool].db
    created = []
    original = db.add

    def add(cls, record, ref=None):
        ref = original(cls, record, ref)
        if cls == 'session':
            created.append(ref)
        return ref
    db.add = add
    test.addCleanup(delattr, db, 'add')
    return created


class SimTestCase(testtools.TestCase):
    """One fresh simulator per test; ``session`` and ``api`` to pool-a.

    A subclass may set ``topology`` to run another simulator layout.
    """

    topology = None
    # The version the test's own sessions give at login.
    api_version = '1.0'
    # How long poll() sleeps between looks.
    poll_interval = 0.02

    def setUp(self):
        super().setUp()
        self.simfix = self.useFixture(
            fixture.SimulatorFixture(self.topology))
        self.sim = self.simfix.sim
        self.session = self.login('pool-a')
        self.api = self.session.xenapi

    # -- clients -----------------------------------------------------------

    def url(self, pool='pool-a'):
        return self.simfix.url(pool)

    def login(self, pool='pool-a'):
        session = XenAPI.Session(self.url(pool))
        session.login_with_password(self.simfix.username,
                                    self.simfix.password, self.api_version,
                                    'tests')
        self.addCleanup(self._close, session)
        return session

    @staticmethod
    def _close(session):
        try:
            session.xenapi.session.logout()
        except Exception:
            pass  # the test logged out already, or the simulator is gone
        session('close')()

    def control(self, pool='pool-a', session=None):
        session = session or (self.session if pool == 'pool-a'
                              else self.login(pool))
        return control.Control(self.url(pool), session.handle)

    def allow_multiple_vdi_attach(self, host, allow=True, pool='pool-a'):
        """Create (or remove) a host's allow_multiple_vdi_attach file.

        Absent on a fresh host: SM there then refuses a VDI another host
        holds RW (see ``xapi_sim.api.vm.assert_host_may_attach``).
        """
        return self.control(pool).allow_multiple_vdi_attach(host, allow)

    # -- objects -------------------------------------------------------------

    def sr_named(self, name, api=None):
        api = api or self.api
        found = api.SR.get_by_name_label(name)
        self.assertEqual(1, len(found), 'one SR named %r expected' % name)
        return found[0]

    def network(self, api=None):
        api = api or self.api
        return api.network.get_all()[0]

    def create_vdi(self, sr, size, name='disk', api=None):
        api = api or self.api
        return api.VDI.create(vmbuild.vdi_record(sr, size, name))

    def create_vm(self, name='vm', api=None):
        api = api or self.api
        return api.VM.create(vmbuild.vm_record(name))

    def create_vbd(self, vm, vdi, userdevice='0', api=None, **extra):
        api = api or self.api
        return api.VBD.create(vmbuild.vbd_record(vm, vdi, userdevice,
                                                 **extra))

    def create_vif(self, vm, network, device='0', api=None,
                   other_config=None):
        api = api or self.api
        return api.VIF.create(vmbuild.vif_record(vm, network, device,
                                                 other_config))

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

    # -- waiting -------------------------------------------------------------

    def poll(self, predicate, timeout=DEADLINE, interval=None, what=''):
        """Wait until ``predicate()`` is truthy; returns its value.

        Looks every ``interval`` seconds (default: ``poll_interval``).
        """
        if interval is None:
            interval = self.poll_interval
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail('timed out after %ss waiting for %s'
                          % (timeout, what or predicate))
            time.sleep(interval)


class TwoPoolsTestCase(SimTestCase):
    """Both pools, and the guest that keeps writing while its VM moves.

    pool-a: ``session``, ``api``, ``ctl``, ``host_a``; pool-b:
    ``session_b``, ``api_b``, ``ctl_b``, ``host_b``.
    """

    def setUp(self):
        super().setUp()
        self.session_b = self.login('pool-b')
        self.api_b = self.session_b.xenapi
        self.ctl = self.control('pool-a')
        self.ctl_b = self.control('pool-b', self.session_b)
        self.host_a = self.api.pool.get_master(self.api.pool.get_all()[0])
        self.host_b = self.api_b.pool.get_master(
            self.api_b.pool.get_all()[0])

    def fresh_controls(self):
        """Control clients on the sessions XenAPI logged in again with.

        (After a toolstack restart or a new master: the old ones are gone.)
        """
        self.api.pool.get_all()
        self.api_b.pool.get_all()
        self.ctl = control.Control(self.url('pool-a'), self.session.handle)
        self.ctl_b = control.Control(self.url('pool-b'),
                                     self.session_b.handle)

    # -- the guest -----------------------------------------------------------

    def write(self, vm, devices, rate=MiB, seed=7, ctl=None):
        """Uniform random 4 KiB writes on each of ``devices``."""
        ctl = ctl or self.ctl
        for i, dev in enumerate(devices):
            ctl.workload_start(vm, dev, pattern='uniform', rate=rate,
                               block_size=4096, seed=seed + i)

    def writes(self, vm, ctl=None):
        ctl = ctl or self.ctl
        return [d['writes'] for d in ctl.guest_stats(vm)['disks']]

    def wait_writes(self, vm, more=20, ctl=None):
        """Wait until every disk of ``vm`` has written ``more`` times more."""
        start = self.writes(vm, ctl)
        self.poll(lambda: all(now >= then + more for now, then in
                              zip(self.writes(vm, ctl), start)),
                  what='more guest writes on %s' % vm)

    def stop_and_check(self, vm, ctl=None, devices=None, written=False):
        """Stop the guest's writers; every disk must hold what was written.

        With ``devices``, the guest must have exactly those disks; with
        ``written``, every disk must have been written to. Returns the
        guest_check answer.
        """
        ctl = ctl or self.ctl
        ctl.workload_stop(vm)
        stats = ctl.guest_stats(vm)
        for disk in stats['disks']:
            self.assertEqual(0, disk['errors'], disk)
            if written:
                self.assertGreater(disk['writes'], 0, disk)
        report = ctl.guest_check(vm)
        if devices is not None:
            self.assertEqual(sorted(devices),
                             sorted(r['userdevice'] for r in report))
        for disk in report:
            self.assertTrue(disk['ok'], disk)
        return report

    # -- state ---------------------------------------------------------------

    def vdi_set(self, api=None):
        # A client's disks: SM's hidden "base copy" parents are managed
        # false and not the client's to count.
        records = (api or self.api).VDI.get_all_records()
        return {ref for ref, rec in records.items() if rec['managed']}

    def vm_in(self, uuid, api):
        """The ref of the VM with ``uuid`` in a pool, or None."""
        try:
            return api.VM.get_by_uuid(uuid)
        except XenAPI.Failure as exc:
            self.assertEqual(['UUID_INVALID', 'VM', uuid], exc.details)
            return None


def offer_online_resize(sim, pool, sr_type):
    """The SM of ``sr_type`` in ``pool`` of ``sim`` offers resize_online.

    What installing an SM plugin that reports VDI_RESIZE_ONLINE does to
    the SM record (xapi reads SM.features at each check).
    """
    db = sim.pools[pool].db
    with db.lock:
        (sm,) = db.find('SM', type=sr_type)
        rec = db.get('SM', sm)
        db.update('SM', sm,
                  features=dict(rec['features'], VDI_RESIZE_ONLINE=1),
                  capabilities=sorted(set(rec['capabilities'])
                                      | {'VDI_RESIZE_ONLINE'}))
