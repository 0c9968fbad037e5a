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

"""Resize and cold migration through the real Nova API, on the simulator.

Across pools (xapi's migrate_send copy mode), within a pool (VM.copy to
the destination host's SR) and on the same host; confirm, revert, a
refused smaller disk, a copy that fails half way and a delete while the
resize waits for its confirmation. Disk bytes are checked by digest of
what XAPI exports.
"""

import hashlib
import random
import urllib.parse
import urllib.request

from nova import context as nova_context
from nova import objects
from nova.tests.functional.api import client
import XenAPI

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import scenarios
from nova_sxm.tests.functional import test_servers
from nova_sxm.tests.functional import test_volumes
from nova_sxm.virt import resize
from nova_sxm.virt import volumeops

MiB = base.MiB
GiB = 1024 * MiB


def wait_status(test, server, status, timeout=120):
    """The server once its status is ``status`` (fails on ERROR)."""
    def done():
        found = test.api.get_server(server['id'])
        if found['status'] == status:
            return found
        if found['status'] == 'ERROR' and status != 'ERROR':
            test.fail('server went to ERROR: %s' % found.get('fault'))
        return None
    return test.poll(done, timeout=timeout, interval=0.2,
                     what='server status %s' % status)


class ResizeBase(scenarios.ScenarioHelpers, base.SxmServicesTestCase):

    def setUp(self):
        super().setUp()
        self.image_data = random.Random(21).randbytes(3 * MiB)
        self.image = self.make_image(self.image_data)
        self.small = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                         ephemeral=0)
        self.big = self._create_flavor(memory_mb=512, vcpu=2, disk=2,
                                       ephemeral=0)
        self.ephemeral = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                             ephemeral=2)
        self.less_ephemeral = self._create_flavor(memory_mb=512, vcpu=2,
                                                  disk=1, ephemeral=1)

    # -- helpers -------------------------------------------------------------

    def boot(self, host='host1', flavor=None, networks='none'):
        return self._create_server(image_uuid=self.image,
                                   flavor_id=flavor or self.small,
                                   host=host, networks=networks)

    def wait_status(self, server, status, timeout=120):
        return wait_status(self, server, status, timeout)

    def resize(self, server, flavor):
        self.api.post_server_action(server['id'],
                                    {'resize': {'flavorRef': flavor}})

    def action(self, server, name):
        self.api.post_server_action(server['id'], {name: None})

    def hasher(self, pool, vdi_uuid):
        """A sha256 object fed with a VDI's bytes (/export_raw_vdi)."""
        session = self._login(pool)
        query = urllib.parse.urlencode({'session_id': session.handle,
                                        'vdi': vdi_uuid})
        url = '%sexport_raw_vdi?%s' % (self.pools.url(pool), query)
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=60) as resp:
            for chunk in iter(lambda: resp.read(MiB), b''):
                digest.update(chunk)
        return digest

    @staticmethod
    def padded(digest, nbytes):
        """``digest`` (a copy) extended with ``nbytes`` zeros."""
        out = digest.copy()
        zeros = bytes(MiB)
        while nbytes > 0:
            out.update(zeros[:min(nbytes, MiB)])
            nbytes -= MiB
        return out.hexdigest()

    def root_of(self, vm, pool):
        return self.disks_of(vm, pool)['0']

    def originals(self, server, pool):
        """{ref: record} of the kept originals of the server in ``pool``."""
        return {ref: rec for ref, rec in
                self.xapi[pool].VM.get_all_records().items()
                if (rec['other_config'].get(resize.ORIG_KEY) or '')
                .startswith(server['id'] + '/')}

    def migration_record(self, server):
        ctxt = nova_context.get_admin_context()
        found = objects.MigrationList.get_by_filters(
            ctxt, {'instance_uuid': server['id']})
        return max(found, key=lambda m: m.id) if found else None

    def migration_failed(self, server):
        found = self.migration_record(server)
        return found if found and found.status == 'error' else None

    def events(self, server):
        """The tracebacks of the server's action events, as one text."""
        out = []
        for action in self.api.get_instance_actions(server['id']):
            detail = self.api.get_instance_action_details(
                server['id'], action['request_id'])
            out += [str(e.get('traceback') or '') + str(e.get('details'))
                    for e in detail.get('events', [])]
        return '\n'.join(out)

    def disable(self, host):
        service = self.admin_api.get_services(host=host,
                                              binary='nova-compute')[0]
        self.admin_api.put_service(service['id'], {'status': 'disabled'})


class CrossPoolResizeTest(ResizeBase):
    """host1 (pool-a) to host2 (pool-b): migrate_send in copy mode."""

    def test_resize_then_confirm(self):
        server = self.boot(networks=[{'port': self.neutron.port_1['id']}])
        vm, rec = self.vm_of(server, 'pool-a')
        root = self.root_of(vm, 'pool-a')
        before = self.hasher('pool-a', root['uuid'])
        own = {d['uuid'] for d in self.disks_of(vm, 'pool-a').values()}
        pool_a = {self.xapi['pool-a'].VDI.get_uuid(v)
                  for v in self.managed_vdis('pool-a')}

        self.resize(server, self.big)
        server = self.wait_status(server, 'VERIFY_RESIZE')
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        # The original waits, halted and no longer the instance's VM.
        self.assertEqual((None, None), self.vm_of(server, 'pool-a'))
        kept = self.originals(server, 'pool-a')
        self.assertEqual([rec['uuid']], [r['uuid'] for r in kept.values()])
        self.assertEqual('Halted', list(kept.values())[0]['power_state'])
        # The copy has the new flavor, grown root disk, a VIF for the port.
        new, new_rec = self.vm_of(server, 'pool-b')
        self.assertNotEqual(rec['uuid'], new_rec['uuid'])
        self.assertEqual('Running', new_rec['power_state'])
        self.assertEqual(('2', '2'), (new_rec['VCPUs_max'],
                                      new_rec['VCPUs_at_startup']))
        self.assertEqual(str(512 * MiB), new_rec['memory_static_max'])
        self.assertEqual(str(512 * MiB), new_rec['memory_dynamic_min'])
        new_root = self.root_of(new, 'pool-b')
        self.assertEqual(2 * GiB, int(new_root['virtual_size']))
        self.assertEqual(
            self.padded(before, 2 * GiB - int(root['virtual_size'])),
            self.hasher('pool-b', new_root['uuid']).hexdigest())
        api_b = self.xapi['pool-b']
        ports = [api_b.VIF.get_other_config(v).get('neutron-port-id')
                 for v in new_rec['VIFs']]
        self.assertEqual([self.neutron.port_1['id']], ports)
        # Progress of the copy in the Migration record.
        migration = self.migration_record(server)
        self.assertGreater(migration.disk_total or 0, 0)
        self.assertEqual(migration.disk_total, migration.disk_processed)

        self.action(server, 'confirmResize')
        self.wait_status(server, 'ACTIVE')
        self.poll(lambda: not self.originals(server, 'pool-a'), timeout=60,
                  what='the original removed')
        left = {self.xapi['pool-a'].VDI.get_uuid(v)
                for v in self.managed_vdis('pool-a')}
        self.assertEqual(pool_a - own, left)
        self.assertEqual(new_rec['uuid'], self.vm_of(server, 'pool-b')[1][
            'uuid'])

    def test_resize_then_revert(self):
        server = self.boot()
        vm, rec = self.vm_of(server, 'pool-a')
        root = self.root_of(vm, 'pool-a')
        before = self.hasher('pool-a', root['uuid']).hexdigest()
        pool_b = self.managed_vdis('pool-b')

        self.resize(server, self.big)
        server = self.wait_status(server, 'VERIFY_RESIZE')
        self.action(server, 'revertResize')
        server = self.wait_status(server, 'ACTIVE')
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.poll(lambda: self.vm_of(server, 'pool-a')[0] is not None and
                  self.vm_of(server, 'pool-a')[1]['power_state']
                  == 'Running', timeout=60, what='the original running')
        back, back_rec = self.vm_of(server, 'pool-a')
        self.assertEqual(rec['uuid'], back_rec['uuid'])
        self.assertEqual('1', back_rec['VCPUs_max'])
        self.assertNotIn(resize.ORIG_KEY, back_rec['other_config'])
        self.assertEqual(before, self.hasher(
            'pool-a', self.root_of(back, 'pool-a')['uuid']).hexdigest())
        # Nothing of the copy is left in pool-b.
        self.assertEqual((None, None), self.vm_of(server, 'pool-b'))
        self.assertEqual({}, self.originals(server, 'pool-b'))
        self.assertEqual(pool_b, self.managed_vdis('pool-b'))

    def test_smaller_root_disk_is_refused_by_the_api(self):
        # Nova's API refuses it (the image's min_disk is the flavor's
        # root_gb at boot): the driver is never asked.
        server = self.boot(flavor=self.big)
        exc = self.assertRaises(client.OpenStackApiException,
                                self.resize, server, self.small)
        self.assertEqual(400, exc.response.status_code)
        self.assertIsNone(self.migration_record(server))
        self.assertEqual('Running', self.vm_of(server, 'pool-a')[1][
            'power_state'])

    def test_smaller_disk_is_refused_before_anything_moves(self):
        server = self.boot(flavor=self.ephemeral)
        vm, rec = self.vm_of(server, 'pool-a')
        pool_b = self.managed_vdis('pool-b')
        vms_a = set(self.xapi['pool-a'].VM.get_all())
        self.resize(server, self.less_ephemeral)
        self.poll(lambda: self.migration_failed(server), timeout=60,
                  what='migration error')
        server = self.wait_status(server, 'ACTIVE')
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        # The reason reaches the user (the action's event, recorded as
        # the refusal unwinds).
        self.poll(lambda: 'Unable to resize disk down' in self.events(
            server), timeout=30, what='the refusal in the action event')
        # The guest was never stopped, nothing was copied.
        vm2, rec2 = self.vm_of(server, 'pool-a')
        self.assertEqual((rec['uuid'], 'Running'),
                         (rec2['uuid'], rec2['power_state']))
        self.assertEqual(vms_a, set(self.xapi['pool-a'].VM.get_all()))
        self.assertEqual(pool_b, self.managed_vdis('pool-b'))

    def test_failure_mid_copy_leaves_the_server_on_the_source(self):
        server = self.boot()
        vm, rec = self.vm_of(server, 'pool-a')
        before = self.hasher('pool-a', self.root_of(vm, 'pool-a')[
            'uuid']).hexdigest()
        pool_b = self.managed_vdis('pool-b')
        vms_b = set(self.xapi['pool-b'].VM.get_all())
        self.ctl['pool-a'].fault_inject('copy', percent=50)
        self.resize(server, self.big)
        self.poll(lambda: self.migration_failed(server), timeout=120,
                  what='migration error')
        # The copy had begun: the simulator ran (and failed) it.
        self.assertTrue([m for m in self.ctl['pool-a'].migrations()
                         if m['vm'] == rec['uuid']])
        server = self.wait_status(server, 'ACTIVE')
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.poll(lambda: self.vm_of(server, 'pool-a')[1]['power_state']
                  == 'Running', timeout=60, what='the VM started again')
        vm2, rec2 = self.vm_of(server, 'pool-a')
        self.assertEqual(rec['uuid'], rec2['uuid'])
        self.assertNotIn(resize.ORIG_KEY, rec2['other_config'])
        self.assertEqual(before, self.hasher(
            'pool-a', self.root_of(vm2, 'pool-a')['uuid']).hexdigest())
        self.assertEqual(vms_b, set(self.xapi['pool-b'].VM.get_all()))
        self.assertEqual(pool_b, self.managed_vdis('pool-b'))

    def test_delete_while_verify_resize(self):
        pool_a = self.managed_vdis('pool-a')
        pool_b = self.managed_vdis('pool-b')
        server = self.boot()
        self.resize(server, self.big)
        server = self.wait_status(server, 'VERIFY_RESIZE')
        self.api.delete_server(server['id'])
        self._wait_until_deleted(server)
        # Nova confirms first: the original goes, then the copy.
        self.poll(lambda: not self.originals(server, 'pool-a'), timeout=60,
                  what='the original removed')
        self.assertEqual((None, None), self.vm_of(server, 'pool-b'))
        self.assertEqual(pool_a, self.managed_vdis('pool-a'))
        self.assertEqual(pool_b, self.managed_vdis('pool-b'))

    def test_confirm_after_the_source_compute_restarted(self):
        server = self.boot()
        self.resize(server, self.big)
        server = self.wait_status(server, 'VERIFY_RESIZE')
        self.assertEqual(1, len(self.originals(server, 'pool-a')))
        # Its start-up sees the kept original (no instance of its own)
        # and does not die; the confirm still finds it in XAPI.
        self.sxm_flags('pool-a')
        self.computes['host1'] = self.restart_compute_service(
            self.computes['host1'], keep_hypervisor_state=False)
        self.action(server, 'confirmResize')
        self.wait_status(server, 'ACTIVE')
        self.poll(lambda: not self.originals(server, 'pool-a'), timeout=60,
                  what='the original removed')
        self.assertEqual('Running',
                         self.vm_of(server, 'pool-b')[1]['power_state'])

    def test_stopped_server_stays_stopped(self):
        server = self.boot()
        self.action(server, 'os-stop')
        server = self.wait_status(server, 'SHUTOFF')
        self.resize(server, self.big)
        server = self.wait_status(server, 'VERIFY_RESIZE')
        _, rec = self.vm_of(server, 'pool-b')
        self.assertEqual('Halted', rec['power_state'])
        self.action(server, 'revertResize')
        server = self.wait_status(server, 'SHUTOFF')
        _, rec = self.vm_of(server, 'pool-a')
        self.assertEqual('Halted', rec['power_state'])
        self.assertEqual((None, None), self.vm_of(server, 'pool-b'))


class SameHostResizeTest(ResizeBase):
    """host2 disabled, allow_resize_to_same_host: VM.copy on host1."""

    def setUp(self):
        super().setUp()
        self.flags(allow_resize_to_same_host=True)
        self.disable('host2')

    def test_resize_same_host_confirm(self):
        server = self.boot()
        vm, rec = self.vm_of(server, 'pool-a')
        own = {d['uuid'] for d in self.disks_of(vm, 'pool-a').values()}
        self.resize(server, self.big)
        server = self.wait_status(server, 'VERIFY_RESIZE')
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        new, new_rec = self.vm_of(server, 'pool-a')
        self.assertNotEqual(rec['uuid'], new_rec['uuid'])
        self.assertEqual('2', new_rec['VCPUs_max'])
        self.assertEqual([rec['uuid']], [
            r['uuid'] for r in self.originals(server, 'pool-a').values()])
        self.action(server, 'confirmResize')
        self.wait_status(server, 'ACTIVE')
        self.poll(lambda: not self.originals(server, 'pool-a'), timeout=60,
                  what='the original removed')
        api = self.xapi['pool-a']
        left = {api.VDI.get_uuid(v) for v in self.managed_vdis('pool-a')}
        self.assertEqual(set(), own & left)
        self.assertEqual(new_rec['uuid'],
                         self.vm_of(server, 'pool-a')[1]['uuid'])

    def test_resize_same_host_revert(self):
        server = self.boot()
        vm, rec = self.vm_of(server, 'pool-a')
        before = self.hasher('pool-a', self.root_of(vm, 'pool-a')[
            'uuid']).hexdigest()
        pool_a = self.managed_vdis('pool-a')
        self.resize(server, self.big)
        server = self.wait_status(server, 'VERIFY_RESIZE')
        self.action(server, 'revertResize')
        server = self.wait_status(server, 'ACTIVE')
        self.poll(lambda: self.vm_of(server, 'pool-a')[1]['power_state']
                  == 'Running', timeout=60, what='the original running')
        back, back_rec = self.vm_of(server, 'pool-a')
        self.assertEqual(rec['uuid'], back_rec['uuid'])
        self.assertEqual(before, self.hasher(
            'pool-a', self.root_of(back, 'pool-a')['uuid']).hexdigest())
        # Only the original and its disks: the copy went with its disks.
        self.assertEqual(pool_a, self.managed_vdis('pool-a'))

    def test_cold_migrate_to_the_same_host(self):
        server = self.boot()
        _, rec = self.vm_of(server, 'pool-a')
        self.action(server, 'migrate')
        server = self.wait_status(server, 'VERIFY_RESIZE')
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        _, new_rec = self.vm_of(server, 'pool-a')
        self.assertNotEqual(rec['uuid'], new_rec['uuid'])
        self.assertEqual('1', new_rec['VCPUs_max'])
        self.action(server, 'confirmResize')
        self.wait_status(server, 'ACTIVE')


class InPoolColdMigrationTest(ResizeBase):
    """pool-b-host2 (local SR) to pool-b-host1: VM.copy within pool-b."""

    topology = test_servers.two_host_topology()

    def setUp(self):
        super().setUp()
        self.start_local_sr_compute()

    def test_cold_migrate_in_pool_then_confirm(self):
        server = self.boot(host='host3')
        api = self.xapi['pool-b']
        vm, rec = self.vm_of(server, 'pool-b')
        root = self.root_of(vm, 'pool-b')
        before = self.hasher('pool-b', root['uuid']).hexdigest()
        local2 = self.sr_uuid('pool-b', self.LOCAL2)
        self.assertEqual(local2, api.SR.get_uuid(root['SR']))
        self.api.post_server_action(server['id'],
                                    {'migrate': {'host': 'host2'}})
        server = self.wait_status(server, 'VERIFY_RESIZE')
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        new, new_rec = self.vm_of(server, 'pool-b')
        self.assertEqual('pool-b-host1', api.host.get_name_label(
            new_rec['resident_on']))
        new_root = self.root_of(new, 'pool-b')
        self.assertNotEqual(local2, api.SR.get_uuid(new_root['SR']))
        self.assertEqual(before, self.hasher('pool-b',
                                             new_root['uuid']).hexdigest())
        self.action(server, 'confirmResize')
        self.wait_status(server, 'ACTIVE')
        self.poll(lambda: not self.originals(server, 'pool-b'), timeout=60,
                  what='the original removed')
        sr = api.SR.get_by_uuid(local2)
        self.assertEqual([], [v for v in api.SR.get_VDIs(sr)
                              if api.VDI.get_managed(v)])
        self.assertRaises(XenAPI.Failure, api.VM.get_by_uuid, rec['uuid'])


class ResizeWithVolumeTest(test_volumes.VolumeTestBase):
    """A silver volume (pool-c's shared SR) follows the resize, uncopied."""

    def setUp(self):
        super().setUp()
        self.big = self._create_flavor(memory_mb=512, vcpu=2, disk=1,
                                       ephemeral=0)
        self.data = random.Random(9).randbytes(4 * MiB)
        self.vol, self.vdi_uuid = self.create_volume(
            'pool-c', test_volumes.SILVER, 'silver', self.data)
        self._attach_volume(self.server, self.vol)
        silver = self.xapi['pool-c'].SR.get_by_uuid(self.silver_uuid)
        self.silver_vdis = set(self.xapi['pool-c'].SR.get_VDIs(silver))

    def resize(self):
        self.api.post_server_action(self.server['id'],
                                    {'resize': {'flavorRef': self.big}})
        return wait_status(self, self.server, 'VERIFY_RESIZE')

    def assert_volume_on(self, pool, other):
        vbd, vdi, sr = self.volume_vbd(pool, self.vol)
        self.assertEqual((self.vdi_uuid, self.silver_uuid), (vdi, sr))
        self.assertEqual('1', vbd['userdevice'])
        self.assertTrue(vbd['currently_attached'])
        # Never copied: the silver SR holds the one VDI it had.
        silver = self.xapi['pool-c'].SR.get_by_uuid(self.silver_uuid)
        self.assertEqual(self.silver_vdis,
                         set(self.xapi['pool-c'].SR.get_VDIs(silver)))
        self.assertEqual(hashlib.sha256(self.data).hexdigest(),
                         self.export_digest('pool-c', self.vdi_uuid))
        # No VM of the other pool (the kept original, the copy) has it.
        key = volumeops.VOLUME_KEY
        self.assertEqual([], [
            rec for rec in self.xapi[other].VBD.get_all_records().values()
            if rec['other_config'].get(key) == self.vol])

    def test_resize_with_a_volume_then_confirm(self):
        server = self.resize()
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        self.assert_volume_on('pool-b', 'pool-a')
        self.api.post_server_action(self.server['id'],
                                    {'confirmResize': None})
        wait_status(self, self.server, 'ACTIVE')
        self.assert_volume_on('pool-b', 'pool-a')
        self.assertFalse(self.knows_sr('pool-a', self.silver_uuid))

    def test_resize_with_a_volume_then_revert(self):
        self.resize()
        self.api.post_server_action(self.server['id'],
                                    {'revertResize': None})
        server = wait_status(self, self.server, 'ACTIVE')
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.poll(lambda: self.volume_vbd('pool-a', self.vol)[0],
                  timeout=60, what='the volume attached again')
        self.assert_volume_on('pool-a', 'pool-b')
        self.assertFalse(self.knows_sr('pool-b', self.silver_uuid))
