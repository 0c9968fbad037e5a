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

"""Extend through the real Cinder API, scheduler and volume manager.

A detached volume grows with VDI.resize. An attached one (API microversion
3.42) grows with VDI.resize_online under its running VM, only in a pool
whose SR's SM offers VDI_RESIZE_ONLINE (online_extend_support in the
stats); elsewhere Cinder's scheduler refuses it and the volume stays
in-use, untouched. Nova's volume-extended event (Cinder's nova API, a
stand-in here) names the server.
"""

from cinder import exception
import fixtures

from tests.functional import simhelpers

from cinder_sxm import stats
from cinder_sxm.tests.functional import base

GiB = base.GiB
MiB = base.MiB


class _ExtendBase(base.SxmCinderTestCase):

    def setUp(self):
        super().setUp()
        self.osapi_version = '3.42'  # extend of an in-use volume
        self.events = []
        self.useFixture(fixtures.MockPatch(
            'cinder.compute.nova.API.extend_volume',
            lambda _api, ctxt, instances, volume_id:
                self.events.append((list(instances), volume_id))))

    def pools(self):
        driver = self.volume.manager.driver
        return {p['pool_name']: p
                for p in driver.get_volume_stats(refresh=True)['pools']}

    def extend(self, volume_id, size):
        self.action(volume_id, {'os-extend': {'new_size': size}})

    def wait_extended(self, volume_id, expected):
        return self.wait_volume(volume_id, ('extending',), expected)


class StockSmExtendTest(_ExtendBase):
    """Stock SMs (lvmoiscsi, nfs): offline resize only."""

    def test_no_pool_extends_online(self):
        pools = self.pools()
        self.assertEqual({'gold', 'silver'}, set(pools))
        for pool in pools.values():
            self.assertIs(False, pool['online_extend_support'])

    def test_detached_volume_grows_and_keeps_its_bytes(self):
        vol, vdi, digest = self.written_volume('silver', 4 * MiB, 'ext')
        head = self.head(vdi, 4 * MiB)
        self.extend(vol['id'], 2)
        vol = self.wait_extended(vol['id'], 'available')
        self.assertEqual(2, vol['size'])
        self.assertEqual(str(2 * GiB), self.xapi.VDI.get_virtual_size(vdi))
        self.assertEqual(head, self.head(vdi, 4 * MiB))
        self.assertEqual([], self.events)

    def test_attached_volume_is_refused_and_untouched(self):
        vol, vdi, vm = self.attached('silver')
        self.extend(vol['id'], 2)
        # The scheduler's CapabilitiesFilter refuses it: back to in-use.
        self.poll(lambda: self.api.get_volume(vol['id'])['status']
                  == 'in-use' and self.xapi.VDI.get_virtual_size(vdi)
                  == str(GiB) and self.scheduler_refused(vol['id']),
                  what='the extend to be refused')
        self.assertEqual(1, self.api.get_volume(vol['id'])['size'])
        self.check_guest(vm)
        self.assertEqual([], self.events)

    def scheduler_refused(self, volume_id):
        messages = self.api.api_get(
            '/messages?resource_uuid=%s' % volume_id)['messages']
        return any(m['event_id'] for m in messages)

    def test_driver_names_what_refuses_it(self):
        # Called as the volume manager would without the scheduler's
        # filter: the VDI stays as it is.
        vol, vdi, vm = self.attached('gold')
        volume = self.admin_volume(vol['id'])
        driver = self.volume.manager.driver
        exc = self.assertRaises(exception.VolumeBackendAPIException,
                                driver.extend_volume, volume, 2)
        self.assertIn('SR gold (type lvmoiscsi) cannot resize a plugged '
                      'VDI (its SM does not offer VDI_RESIZE_ONLINE)',
                      str(exc))
        self.assertEqual(str(GiB), self.xapi.VDI.get_virtual_size(vdi))
        self.check_guest(vm)


class OnlineSmExtendTest(_ExtendBase):
    """pool-a's nfs SM offers VDI_RESIZE_ONLINE (as a third-party SM)."""

    def start_service(self, name, host=None, **kwargs):
        if name == 'volume':
            simhelpers.offer_online_resize(self.sim, 'pool-a', 'nfs')
        return super().start_service(name, host=host, **kwargs)

    def test_stats_per_sr_type(self):
        pools = self.pools()
        self.assertIs(True, pools['silver']['online_extend_support'])
        self.assertIs(False, pools['gold']['online_extend_support'])
        self.assertEqual('nfs', pools['silver']['sxm_sr_type'])
        self.assertIn(stats.ONLINE_RESIZE, self.xapi.SM.get_features(
            self.xapi.SM.get_by_name_label('NFS VHD')[0]))

    def test_attached_volume_grows_under_the_writing_guest(self):
        vol, vdi, vm = self.attached('silver')
        log = self.sim.pools['pool-a'].call_log
        log.reset()
        self.extend(vol['id'], 2)
        vol = self.wait_extended(vol['id'], 'in-use')
        self.assertEqual(2, vol['size'])
        self.assertEqual(str(2 * GiB), self.xapi.VDI.get_virtual_size(vdi))
        methods = [m for m, originator, _ in log.entries()
                   if originator != 'tests']
        self.assertIn('Async.VDI.resize_online', methods)
        self.assertNotIn('Async.VDI.resize', methods)
        self.assertEqual('Running', self.xapi.VM.get_power_state(vm))
        # Every write of the guest, before and after, is on the disk.
        self.check_guest(vm)
        self.assertEqual([([self.xapi.VM.get_uuid(vm)], vol['id'])],
                         self.events)

    def test_attached_to_a_halted_vm_grows_offline(self):
        vol, vdi, vm = self.attached('silver')
        self.xapi.VM.hard_shutdown(vm)
        head = self.head(vdi, 4 * MiB)
        log = self.sim.pools['pool-a'].call_log
        log.reset()
        self.extend(vol['id'], 2)
        self.wait_extended(vol['id'], 'in-use')
        methods = [m for m, originator, _ in log.entries()
                   if originator != 'tests']
        self.assertIn('Async.VDI.resize', methods)
        self.assertNotIn('Async.VDI.resize_online', methods)
        self.assertEqual(str(2 * GiB), self.xapi.VDI.get_virtual_size(vdi))
        self.assertEqual(head, self.head(vdi, 4 * MiB))

    def test_attached_through_another_pool_is_refused_by_name(self):
        # In use in Cinder, no VBD in the SR's pool: another pool's VM.
        vol, vdi, _ = self.written_volume('silver', MiB, 'elsewhere')
        self.action(vol['id'], {'os-reserve': None})
        self.action(vol['id'], {'os-attach': {
            'instance_uuid': '7d5c1a7e-0a39-4d6c-9c1e-5a0c3b2f7e11',
            'mountpoint': '/dev/xvdb'}})
        self.wait_volume(vol['id'], ('attaching',), 'in-use')
        self.extend(vol['id'], 2)
        vol = self.wait_extended(vol['id'], 'error_extending')
        self.assertEqual(1, vol['size'])
        self.assertEqual(str(GiB), self.xapi.VDI.get_virtual_size(vdi))
        exc = self.assertRaises(
            exception.VolumeBackendAPIException,
            self.volume.manager.driver.extend_volume,
            self.admin_volume(vol['id']), 2)
        self.assertIn('attached to a server of another XAPI pool', str(exc))
