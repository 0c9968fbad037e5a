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


"""Real Cinder services (API, scheduler, volume) on the simulator.

The volume service runs SxmVolumeDriver as backend ``sxm`` against pool-a
of the simulator over HTTP; pool-a has a thick lvmoiscsi SR 'gold' and a
thin shared nfs SR 'silver', one Cinder pool each. Volume types 'gold' and
'silver' are bound to them by ``volume_backend_name`` and ``pool_name``.
``TwoBackendsTestCase`` adds backend ``sxm-b`` on pool-b (SRs 'bronze',
nfs, and 'copper', lvmoiscsi), as a cloud with one backend per XAPI pool.
"""

import hashlib
import os
import sys
import urllib.request

from cinder import service
from cinder.tests.functional import functional_helpers
from cinder.volume import configuration
from cinder.volume import driver
from cinder.volume import manager
from oslo_config import cfg

from cinder_sxm import conf

from tests.functional import simhelpers
from xapi_sim import fixture
from xapi_sim import vmbuild

MiB = 1 << 20
GiB = 1 << 30
BACKEND = 'sxm'
HOST = 'sxmhost@%s' % BACKEND
TOPOLOGY = simhelpers.topology_with({'pool-a': [
    {'name': 'gold', 'type': 'lvmoiscsi', 'size': '64GiB'},
    {'name': 'silver', 'type': 'nfs', 'size': '64GiB', 'shared': True},
]})
BACKEND_B = 'sxm-b'
HOST_B = 'sxmhost@%s' % BACKEND_B
TOPOLOGY_B = simhelpers.topology_with({
    'pool-a': TOPOLOGY['pools'][0]['srs'][2:],
    'pool-b': [{'name': 'bronze', 'type': 'nfs', 'size': '64GiB',
                'shared': True},
               {'name': 'copper', 'type': 'lvmoiscsi', 'size': '64GiB'}]})
_SIM = simhelpers.SimTestCase


def _api_paste():
    """Cinder's api-paste.ini as installed next to the interpreter."""
    for root in (sys.prefix, os.path.join(sys.prefix, 'local')):
        path = os.path.join(root, 'etc', 'cinder', 'api-paste.ini')
        if os.path.exists(path):
            return path
    raise RuntimeError('cinder\'s etc/cinder/api-paste.ini is not installed')


class SxmCinderTestCase(functional_helpers._FunctionalTestBase):
    """``api``: the Cinder API client; ``xapi``: XenAPI of pool-a."""

    # Borrowed from the simulator's test helpers (``api`` means the Cinder
    # client here, so the XenAPI proxy is ``xapi``).
    url = _SIM.url
    login = _SIM.login
    _close = staticmethod(_SIM._close)
    control = _SIM.control
    _vdi_url = _SIM._vdi_url
    import_vdi = _SIM.import_vdi
    poll = _SIM.poll
    write = simhelpers.TwoPoolsTestCase.write
    writes = simhelpers.TwoPoolsTestCase.writes
    wait_writes = simhelpers.TwoPoolsTestCase.wait_writes
    stop_and_check = simhelpers.TwoPoolsTestCase.stop_and_check
    poll_interval = 0.05
    api_version = _SIM.api_version

    topology = None  # TOPOLOGY (read when the test starts)

    def setUp(self):
        # The simulator first: the backend's options name its URL.
        self.simfix = self.useFixture(fixture.SimulatorFixture(
            self.topology or TOPOLOGY))
        self.sim = self.simfix.sim
        super().setUp()
        self.session = self.login('pool-a')
        self.xapi = self.session.xenapi
        self.ctl = self.control('pool-a')
        # (The test client's create_type misplaces extra_specs.)
        self.types = {}
        for tier in ('gold', 'silver'):
            body = {'volume_type': {'name': tier, 'extra_specs': {
                'volume_backend_name': BACKEND, 'pool_name': tier}}}
            self.types[tier] = self.api.api_post('/types',
                                                 body)['volume_type']
        self.report_capabilities()

    def report_capabilities(self, service=None, host=HOST):
        """The volume service reports its pools to the scheduler."""
        ctxt = self._context()
        (service or self.volume).manager.publish_service_capabilities(ctxt)
        states = self.scheduler.manager.driver.host_manager.service_states
        self.poll(lambda: host in states, what='the scheduler to know %s'
                  % host)

    def backend_options(self):
        """{backend section: {option: value}} of the volume services."""
        return {BACKEND: {
            'volume_driver': 'cinder_sxm.driver.SxmVolumeDriver',
            'volume_backend_name': BACKEND,
            'sxm_connection_url': self.simfix.url('pool-a'),
            'sxm_connection_username': self.simfix.username,
            'sxm_connection_password': self.simfix.password,
            'sxm_srs': ['gold', 'silver'],
            'sxm_lock_path': None,
        }}

    def _context(self):
        from cinder import context
        return context.get_admin_context()

    def _get_flags(self):
        # The backend's section must know its options before overrides.
        backends = self.backend_options()
        for opt in (conf.OPTS + driver.volume_opts
                    + manager.volume_backend_opts):
            for group in list(backends) + [configuration.SHARED_CONF_GROUP]:
                try:
                    cfg.CONF.register_opt(opt, group=group)
                except cfg.DuplicateOptError:
                    pass
        f = super()._get_flags()
        f['enabled_backends'] = {'v': list(backends)}
        # The volume service reports in setUp: no minute-long wait for it.
        f['scheduler_driver_init_wait_time'] = {'v': 1}
        f['default_volume_type'] = {'v': '__DEFAULT__'}
        first, *others = backends
        for key, value in backends[first].items():
            f[key] = {'v': value, 'g': first}
        # The flags are keyed by option name: set the other sections here.
        for group in others:
            for key, value in backends[group].items():
                self.override_config(key, value, group)
        return f

    def start_service(self, name, host=None, **kwargs):
        if name == 'volume' and host is None:
            host, kwargs['service_name'] = HOST, BACKEND
        return super().start_service(name, host=host, **kwargs)

    def _start_api_service(self):
        # As functional_helpers does, with the installed api-paste.ini
        # (it looks for one in a source tree).
        cfg.CONF.api_paste_config = _api_paste()
        self.osapi = service.WSGIService('osapi_volume')
        self.osapi.start()
        self.auth_url = 'http://%s:%s/v%s' % (
            self.osapi.host, self.osapi.port, self.osapi_version_major)

    # -- Cinder --------------------------------------------------------------

    def create_volume(self, tier, size=1, **extra):
        body = dict({'size': size, 'volume_type': tier,
                     'name': 'vol-%s' % tier}, **extra)
        vol = self.api.post_volume({'volume': body})
        return self.wait_volume(vol['id'], ('creating', 'downloading'),
                                'available')

    def wait_volume(self, volume_id, busy, expected):
        vol = self._poll_volume_while(volume_id, busy, max_retries=60)
        self.assertIsNotNone(vol, 'volume %s vanished' % volume_id)
        self.assertEqual(expected, vol['status'], vol)
        return vol

    def action(self, volume_id, body):
        return self.api.api_post('/volumes/%s/action' % volume_id, body)

    def admin_volume(self, volume_id):
        """The volume's database record (host, provider_location)."""
        from cinder import objects
        return objects.Volume.get_by_id(self._context(), volume_id)

    def attach_to_running_vm(self, vol, vdi, name='server', rate=MiB,
                             seed=7):
        """A running VM with ``vdi`` plugged the way nova_sxm plugs it.

        The volume is marked in-use through the API and the guest writes.
        """
        vm = self.xapi.VM.create(vmbuild.vm_record(name))
        self.xapi.VBD.create(vmbuild.vbd_record(
            vm, vdi, '1', bootable=False,
            other_config={'nova_volume_id': vol['id']}))
        self.xapi.VM.start(vm, False, False)
        self.action(vol['id'], {'os-reserve': None})
        self.action(vol['id'], {'os-attach': {
            'instance_uuid': self.xapi.VM.get_uuid(vm),
            'mountpoint': '/dev/xvdb'}})
        self.wait_volume(vol['id'], ('attaching',), 'in-use')
        self.write(vm, ['1'], rate=rate, seed=seed)
        return vm

    def written_volume(self, tier, nbytes, seed):
        """A ``tier`` volume holding known bytes: (volume, VDI, sha256)."""
        vol = self.create_volume(tier)
        vdi, _ = self.vdi_of(vol['id'])
        self.fill(vdi, nbytes, seed)
        return vol, vdi, self.digest(vdi)

    def attached(self, tier, nbytes=4 * MiB,
                 seed='written before the attach'):
        """A written ``tier`` volume in use by a running VM that writes.

        Returns (volume, its VDI, the VM).
        """
        vol = self.create_volume(tier)
        vdi, _ = self.vdi_of(vol['id'])
        self.fill(vdi, nbytes, seed)
        vm = self.attach_to_running_vm(vol, vdi)
        self.wait_writes(vm)
        return vol, vdi, vm

    def start_retype(self, volume_id, tier, policy='on-demand'):
        """Asks for a retype; returns without waiting for it."""
        self.action(volume_id, {'os-retype': {'new_type': tier,
                                              'migration_policy': policy}})

    def volume_of_any_tier(self):
        """A volume of a type naming no pool: it may live in either.

        Returns (volume, its VDI, its SR name, the other SR name).
        """
        self.api.api_post('/types', {'volume_type': {
            'name': 'any', 'extra_specs': {
                'volume_backend_name': BACKEND}}})
        vol = self.create_volume('any')
        vdi, here = self.vdi_of(vol['id'])
        return vol, vdi, here, {'gold': 'silver', 'silver': 'gold'}[here]

    def start_migration(self, volume_id, tier):
        """Asks for an admin migration to ``tier`` of this backend."""
        self.action(volume_id, {'os-migrate_volume': {
            'host': '%s#%s' % (HOST, tier), 'force_host_copy': False}})

    # -- XAPI ----------------------------------------------------------------

    def vbd_vdi(self, vm, userdevice='1'):
        """The VDI plugged at ``userdevice`` of ``vm`` (it must be)."""
        (vbd,) = [v for v in self.xapi.VM.get_VBDs(vm)
                  if self.xapi.VBD.get_userdevice(v) == userdevice]
        self.assertTrue(self.xapi.VBD.get_currently_attached(vbd))
        return self.xapi.VBD.get_VDI(vbd)

    def check_guest(self, vm):
        """The guest writes on; every byte it wrote is on its disk."""
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=['1'], written=True)

    def vdi_of(self, volume_id):
        """(VDI ref, SR name) of a volume, from its provider_location."""
        uuid = self.admin_volume(volume_id).provider_location
        vdi = self.xapi.VDI.get_by_uuid(uuid)
        return vdi, self.xapi.SR.get_name_label(self.xapi.VDI.get_SR(vdi))

    def vdis_on(self, sr_name):
        (sr,) = self.xapi.SR.get_by_name_label(sr_name)
        return set(self.xapi.SR.get_VDIs(sr))

    def fill(self, vdi, nbytes, seed):
        """Writes known bytes at the start of a VDI; returns them."""
        block = hashlib.sha256(seed.encode()).digest() * (MiB // 32)
        data = (block * (nbytes // MiB + 1))[:nbytes]
        self.import_vdi(vdi, data)
        return data

    def head(self, vdi, nbytes, pool='pool-a'):
        """The first ``nbytes`` of a VDI, from /export_raw_vdi."""
        url = self._vdi_url('export_raw_vdi', vdi, self.session, pool)
        with urllib.request.urlopen(url, timeout=simhelpers.DEADLINE) as r:
            return r.read(nbytes)

    def digest(self, vdi, pool='pool-a'):
        """sha256 of the whole VDI, streamed from /export_raw_vdi."""
        url = self._vdi_url('export_raw_vdi', vdi, self.session, pool)
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=simhelpers.DEADLINE) as r:
            for block in iter(lambda: r.read(MiB), b''):
                digest.update(block)
        return digest.hexdigest()


class TwoBackendsTestCase(SxmCinderTestCase):
    """Backend ``sxm`` on pool-a and ``sxm-b`` on pool-b.

    ``volume_b``: the service of ``sxm-b``; ``xapi_b``: XenAPI of pool-b;
    volume types 'bronze' and 'copper' are bound to its SRs.
    """

    topology = TOPOLOGY_B

    def setUp(self):
        super().setUp()
        self.volume_b = self.start_service('volume', host=HOST_B,
                                           service_name=BACKEND_B)
        self.session_b = self.login('pool-b')
        self.xapi_b = self.session_b.xenapi
        for tier in ('bronze', 'copper'):
            body = {'volume_type': {'name': tier, 'extra_specs': {
                'volume_backend_name': BACKEND_B, 'pool_name': tier}}}
            self.types[tier] = self.api.api_post('/types',
                                                 body)['volume_type']
        self.report_capabilities(self.volume_b, HOST_B)

    def _get_flags(self):
        f = super()._get_flags()
        # The manager finds the destination's service by host, which reads
        # the connection string (Cinder's test database leaves it unset).
        f['connection'] = {'v': 'sqlite://', 'g': 'database'}
        return f

    def plain_volume(self, nbytes, seed):
        """A written volume of a type bound to no backend (any will do).

        Returns (volume, VDI, sha256); ``os-migrate_volume`` may move it
        to either backend (the scheduler checks the type's extra specs).
        """
        if 'plain' not in self.types:
            self.types['plain'] = self.api.api_post('/types', {
                'volume_type': {'name': 'plain'}})['volume_type']
        vol = self.create_volume('plain')
        vdi, _ = self.vdi_of(vol['id'])
        self.fill(vdi, nbytes, seed)
        return vol, vdi, self.digest(vdi)

    def backend_options(self):
        options = super().backend_options()
        options[BACKEND_B] = dict(
            options[BACKEND], volume_backend_name=BACKEND_B,
            sxm_connection_url=self.simfix.url('pool-b'),
            sxm_srs=['bronze', 'copper'])
        return options

    def vdis_b(self, sr_name):
        """The VDIs of SR ``sr_name`` of pool-b (uuid: record)."""
        (sr,) = self.xapi_b.SR.get_by_name_label(sr_name)
        return {self.xapi_b.VDI.get_uuid(v): self.xapi_b.VDI.get_record(v)
                for v in self.xapi_b.SR.get_VDIs(sr)}

    def digest_b(self, vdi_uuid):
        """sha256 of a VDI of pool-b."""
        url = self._vdi_url('export_raw_vdi',
                            self.xapi_b.VDI.get_by_uuid(vdi_uuid),
                            self.session_b, 'pool-b')
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=simhelpers.DEADLINE) as r:
            for block in iter(lambda: r.read(MiB), b''):
                digest.update(block)
        return digest.hexdigest()
