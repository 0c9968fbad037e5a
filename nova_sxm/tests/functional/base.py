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

"""Real Nova services (API, conductor, scheduler, placement, computes) on
the SXM driver, with the XAPI simulator behind it over HTTP.

Each nova-compute manages the host of its own simulated pool:
``host1`` -> pool-a, ``host2`` -> pool-b. The test checks XAPI through its
own XenAPI sessions (``xapi['pool-a']``) and drives guests through the
simulator's control interface (``ctl['pool-a']``).
"""

import importlib.util
import io
import os
import sys
import sysconfig

import fixtures
from nova.tests.functional import integrated_helpers
import XenAPI

from tests.functional import simhelpers
from xapi_sim import control
from xapi_sim import fixture as simfixture

import nova_sxm.conf

CONF = nova_sxm.conf.CONF
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
MiB = simhelpers.MiB
NULL = simhelpers.NULL
POOLS = ('pool-a', 'pool-b')
HOSTS = {'host1': 'pool-a', 'host2': 'pool-b'}


class ShimFixture(fixtures.Fixture):
    """Make ``nova.virt.sxm.driver`` importable from this source tree.

    An editable install cannot place the shim inside nova's package; a
    wheel does (setup.cfg ``[files] packages``). When nova cannot import
    it, the shim files of this tree are loaded under nova's names.
    """

    NAMES = ('nova.virt.sxm', 'nova.virt.sxm.driver')

    def _setUp(self):
        try:
            importlib.import_module('nova.virt.sxm.driver')
            return
        except ImportError:
            pass
        pkg_dir = os.path.join(REPO, 'nova', 'virt', 'sxm')
        for name in self.NAMES:
            self.addCleanup(sys.modules.pop, name, None)
        spec = importlib.util.spec_from_file_location(
            'nova.virt.sxm', os.path.join(pkg_dir, '__init__.py'),
            submodule_search_locations=[pkg_dir])
        pkg = importlib.util.module_from_spec(spec)
        sys.modules['nova.virt.sxm'] = pkg
        spec.loader.exec_module(pkg)
        importlib.import_module('nova.virt.sxm.driver')


def api_paste_ini():
    """The api-paste.ini the nova wheel installs (data files)."""
    for root in (sys.prefix, sysconfig.get_paths()['data']):
        path = os.path.join(root, 'etc', 'nova', 'api-paste.ini')
        if os.path.exists(path):
            return path
    raise RuntimeError('nova api-paste.ini not found under %s' % sys.prefix)


class SimulatorPools(fixtures.Fixture):
    """``pool-a`` and ``pool-b`` of a fresh XAPI simulator.

    The interface the tests use, shared with ``LivePools`` (real pools):
    ``url(pool)``, ``username``, ``passwords``, TLS settings, and
    ``simulated`` (True: the simulator's control interface and guest
    checker are there too).
    """

    simulated = True
    export_timeout = 30
    # Extra [sxm] flags of the compute of each pool.
    compute_flags = {}

    def __init__(self, topology=None):
        super().__init__()
        self.topology = topology

    def _setUp(self):
        self.simfix = self.useFixture(
            simfixture.SimulatorFixture(self.topology))
        self.username = self.simfix.username
        self.passwords = {
            spec['name']: spec.get('password', self.simfix.password)
            for spec in self.simfix.sim.topology['pools']}

    def url(self, pool):
        return self.simfix.url(pool)

    def session_kwargs(self):
        return {}

    def tls_flags(self):
        return {}

    def ssl_context(self):
        return None


class SxmServicesTestCase(integrated_helpers.ProviderUsageBaseTestCase):
    """Nova services, two SXM computes, one simulator per test."""

    compute_driver = 'sxm.driver.SxmDriver'
    microversion = 'latest'
    topology = None
    poll_interval = 0.05
    # Extra [sxm] flags per compute host, e.g. {'host2': {...}}.
    compute_flags = {}

    # The simulator test helpers, shared (their ``self.api`` would clash
    # with nova's API client, hence no inheritance).
    poll = simhelpers.SimTestCase.poll
    writes = simhelpers.TwoPoolsTestCase.writes
    write = simhelpers.TwoPoolsTestCase.write
    wait_writes = simhelpers.TwoPoolsTestCase.wait_writes
    stop_and_check = simhelpers.TwoPoolsTestCase.stop_and_check

    def pool_source(self):
        """Where the two pools come from: here, a fresh simulator."""
        return SimulatorPools(self.topology)

    def setUp(self):
        # Chosen first: a live source without its settings skips the test
        # before any Nova service starts.
        source = self.pool_source()
        self.useFixture(ShimFixture())
        CONF.set_override('api_paste_config', api_paste_ini(), group='wsgi')
        self.addCleanup(CONF.clear_override, 'api_paste_config',
                        group='wsgi')
        # Started first, stopped last: after the computes.
        self.pools = self.useFixture(source)
        self.passwords = self.pools.passwords
        if self.pools.simulated:
            self.simfix = self.pools.simfix
            self.sim = self.simfix.sim
        super().setUp()
        self.xapi = {}
        self.ctl = {}
        for pool in POOLS:
            session = self._login(pool)
            self.xapi[pool] = session.xenapi
            if self.pools.simulated:
                self.ctl[pool] = control.Control(self.pools.url(pool),
                                                 session.handle)
        self.computes_started = {}
        for host, pool in HOSTS.items():
            flags = dict(self.pools.compute_flags.get(pool, {}))
            flags.update(self.compute_flags.get(host, {}))
            self.start_sxm_compute(host, pool, **flags)

    def _login(self, pool):
        session = XenAPI.Session(self.pools.url(pool),
                                 **self.pools.session_kwargs())
        session.login_with_password(self.pools.username,
                                    self.passwords[pool], '2.21', 'tests')
        self.addCleanup(simhelpers.SimTestCase._close, session)
        return session

    def sxm_flags(self, pool, **extra):
        opts = dict(connection_url=self.pools.url(pool),
                    connection_username=self.pools.username,
                    connection_password=self.passwords[pool],
                    connect_retries=1, **self.pools.tls_flags())
        opts.update(extra)
        self.flags(group='sxm', **opts)

    def start_sxm_compute(self, host, pool, **extra):
        """Set the [sxm] flags for ``pool``, then start nova-compute."""
        self.sxm_flags(pool, **extra)
        compute = self._start_compute(host)
        self.computes_started[host] = pool
        return compute

    # pool-b's second host (test_servers.two_host_topology) with a local
    # SR of its own, as its installer makes it (seen by it only).
    LOCAL2 = 'Local storage (pool-b-host2)'
    HOST3_FLAGS = {'host_name': 'pool-b-host2',
                   'sr_matching_filter': 'name-label:' + LOCAL2}

    def start_local_sr_compute(self):
        """host3: nova-compute of pool-b-host2, instances on its local SR."""
        api = self.xapi['pool-b']
        host2 = api.host.get_by_name_label('pool-b-host2')[0]
        self.sim.pools['pool-b'].add_sr(self.LOCAL2, 'ext', 64 * 1024 * MiB,
                                        host=host2)
        return self.start_sxm_compute('host3', 'pool-b', **self.HOST3_FLAGS)

    def migration_ids(self, server):
        return {m['id'] for m in self.api.api_get(
            '/os-migrations?instance_uuid=%s' % server['id']
        ).body['migrations']}

    def live_migrate(self, server, host='host2', block_migration=True):
        """Live-migrate through the API; the server once ACTIVE on host."""
        earlier = self.migration_ids(server)
        self.api.post_server_action(server['id'], {
            'os-migrateLive': {'host': host,
                               'block_migration': block_migration}})
        self.wait_migration(server, ['completed'], ignore=earlier)
        found = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual(host, found['OS-EXT-SRV-ATTR:host'])
        return found

    def wait_migration(self, server, statuses, timeout=120, ignore=()):
        """The server's latest migration once its status is one of these.

        Nova's own helper gives up after 5 s; a block migration with a
        guest writing takes longer.
        """
        def latest():
            found = self.api.api_get(
                '/os-migrations?instance_uuid=%s' % server['id']
            ).body['migrations']
            found = sorted((m for m in found if m['id'] not in ignore),
                           key=lambda m: m['id'])
            if found and found[-1]['status'] in statuses:
                return found[-1]
            return None
        return self.poll(latest, timeout=timeout, interval=0.2,
                         what='migration status %s' % (statuses,))

    # -- images ---------------------------------------------------------------

    def make_image(self, data, disk_format='raw', name='sxm-image'):
        meta = {'name': name, 'disk_format': disk_format,
                'container_format': 'bare', 'status': 'active',
                'visibility': 'public', 'min_disk': 0, 'min_ram': 0,
                'is_public': True, 'size': len(data), 'properties': {}}
        image = self.glance.create(None, meta, data=io.BytesIO(data))
        return image['id']

    # -- XAPI view ------------------------------------------------------------

    def vm_of(self, server, pool):
        """(ref, record) of the server's VM in ``pool``, or (None, None)."""
        api = self.xapi[pool]
        for ref, rec in api.VM.get_all_records().items():
            if rec['other_config'].get('nova_uuid') == server['id'] and \
                    not rec['is_a_snapshot']:
                return ref, rec
        return None, None

    def disks_of(self, vm, pool):
        """{userdevice: VDI record} of a VM's disks."""
        api = self.xapi[pool]
        out = {}
        for vbd in api.VM.get_VBDs(vm):
            rec = api.VBD.get_record(vbd)
            if rec['VDI'] != NULL:
                out[rec['userdevice']] = api.VDI.get_record(rec['VDI'])
        return out

    def spy_sessions(self, pool):
        """Every session ref ``pool`` creates from now on (a list)."""
        return simhelpers.spy_sessions(self, self.sim, pool)

    def sr_uuid(self, pool, name):
        api = self.xapi[pool]
        return api.SR.get_uuid(api.SR.get_by_name_label(name)[0])

    def export(self, pool, vdi_uuid):
        import urllib.parse
        import urllib.request
        session = self._login(pool)
        query = urllib.parse.urlencode({'session_id': session.handle,
                                        'vdi': vdi_uuid})
        url = '%sexport_raw_vdi?%s' % (self.pools.url(pool), query)
        with urllib.request.urlopen(url, timeout=self.pools.export_timeout,
                                    context=self.pools.ssl_context()) as resp:
            return resp.read()

    def export_digest(self, pool, vdi_uuid):
        """sha256 of a VDI's bytes (/export_raw_vdi), read in chunks."""
        import hashlib
        import urllib.parse
        import urllib.request
        session = self._login(pool)
        query = urllib.parse.urlencode({'session_id': session.handle,
                                        'vdi': vdi_uuid})
        url = '%sexport_raw_vdi?%s' % (self.pools.url(pool), query)
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=self.pools.export_timeout,
                                    context=self.pools.ssl_context()) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b''):
                digest.update(chunk)
        return digest.hexdigest()
