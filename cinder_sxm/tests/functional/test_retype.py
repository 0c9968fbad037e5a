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


"""Retype between the tiers (SRs) of one backend moves the VDI.

Detached: VDI.copy to the new SR, then the source is destroyed. Attached
to a running VM: VDI.pool_migrate while the guest keeps writing, and the
guest checker confirms every byte. A failed move leaves the volume where
it was; two moves of one volume never run at once.
"""

import logging
import threading

from cinder import exception
from cinder.tests.functional.api import client
import fixtures

from xapi_sim import vmbuild

from cinder_sxm.tests.functional import base

MiB = base.MiB


class TestRetype(base.SxmCinderTestCase):

    def retype(self, volume_id, tier, policy='on-demand'):
        self.start_retype(volume_id, tier, policy)
        return self._poll_volume_while(volume_id, ['retyping'],
                                       max_retries=120)

    def test_detached_silver_to_gold(self):
        vol, old, digest = self.written_volume('silver', 4 * MiB, 'detached')
        silver_before = self.vdis_on('silver')

        vol = self.retype(vol['id'], 'gold')

        self.assertEqual('available', vol['status'])
        self.assertEqual('gold', vol['volume_type'])
        self.assertEqual('%s#gold' % base.HOST,
                         self.admin_volume(vol['id']).host)
        new, sr = self.vdi_of(vol['id'])
        self.assertEqual('gold', sr)
        self.assertEqual(digest, self.digest(new))
        # Nothing left behind on the source SR.
        self.assertNotIn(old, self.xapi.VDI.get_all())
        self.assertEqual(silver_before - {old}, self.vdis_on('silver'))
        self.assertEqual(vol['id'], self.xapi.VDI.get_other_config(
            new)['cinder_volume_id'])

    def test_attached_to_a_running_vm_moves_live(self):
        vol = self.create_volume('silver')
        old, _ = self.vdi_of(vol['id'])
        vm = self.attach_to_running_vm(vol, old)
        self.wait_writes(vm)
        log = self.useFixture(fixtures.FakeLogger(name='cinder_sxm.driver',
                                                  level=logging.INFO))

        vol = self.retype(vol['id'], 'gold')

        self.assertEqual('in-use', vol['status'])
        self.assertEqual('gold', vol['volume_type'])
        new, sr = self.vdi_of(vol['id'])
        self.assertEqual('gold', sr)
        self.assertNotEqual(old, new)
        self.assertIn('live (VDI.pool_migrate)', log.output)
        self.assertNotIn(old, self.xapi.VDI.get_all())
        self.assertEqual('Running', self.xapi.VM.get_power_state(vm))
        self.assertEqual(new, self.vbd_vdi(vm))
        self.check_guest(vm)  # the guest goes on writing on gold

    def test_a_volume_with_snapshots_stays(self):
        vol = self.create_volume('silver')
        old, _ = self.vdi_of(vol['id'])
        snap = self.api.post_snapshot({'snapshot': {'volume_id': vol['id'],
                                                    'name': 'keep'}})
        self._poll_snapshot_while(snap['id'], ['creating'],
                                  expected_end_status='available',
                                  max_retries=60)
        log = self.useFixture(fixtures.FakeLogger(name='cinder_sxm.driver',
                                                  level=logging.WARNING))
        self.retype(vol['id'], 'gold')
        vol = self.api.get_volume(vol['id'])
        self.assertEqual('available', vol['status'])
        self.assertEqual('silver', vol['volume_type'])
        self.assertEqual((old, 'silver'), self.vdi_of(vol['id']))
        self.assertEqual(1, len(self.xapi.VDI.get_snapshots(old)))
        self.assertIn('Cannot retype volume %s' % vol['id'], log.output)
        self.assertIn('has 1 snapshot(s)', log.output)

    def test_admin_migrate_between_pools_of_the_backend(self):
        vol, old, here, there = self.volume_of_any_tier()
        self.fill(old, MiB, 'migrate')
        digest = self.digest(old)
        self.start_migration(vol['id'], there)
        vol = self.poll(
            lambda: (lambda v: v if v['os-vol-mig-status-attr:migstat']
                     in ('success', 'error') else None)(
                self.api.get_volume(vol['id'])),
            timeout=120, what='the migration to end')
        self.assertEqual('success', vol['os-vol-mig-status-attr:migstat'])
        # The driver moved it: a generic migration makes a new volume.
        self.assertIsNone(vol['os-vol-mig-status-attr:name_id'])
        self.assertEqual('%s#%s' % (base.HOST, there),
                         self.admin_volume(vol['id']).host)
        new, sr = self.vdi_of(vol['id'])
        self.assertEqual(there, sr)
        self.assertEqual(digest, self.digest(new))
        self.assertNotIn(old, self.xapi.VDI.get_all())

    def test_same_pool_only_specs_change(self):
        self.api.api_post('/types', {'volume_type': {
            'name': 'silver-plus', 'extra_specs': {
                'volume_backend_name': base.BACKEND, 'pool_name': 'silver',
                'sxm:note': 'same SR, other specs'}}})
        vol = self.create_volume('silver')
        before = self.vdi_of(vol['id'])
        vol = self.retype(vol['id'], 'silver-plus')
        self.assertEqual(('available', 'silver-plus'),
                         (vol['status'], vol['volume_type']))
        self.assertEqual(before, self.vdi_of(vol['id']))

    def test_driver_refuses_pools_it_cannot_reach(self):
        vol = self.create_volume('silver')
        obj = self.admin_volume(vol['id'])
        drv = self.volume.manager.driver
        (silver,) = self.xapi.SR.get_by_name_label('silver')
        gold_uuid = self.xapi.SR.get_uuid(
            self.xapi.SR.get_by_name_label('gold')[0])
        for location in ('LVMVolumeDriver:host:vg',
                         'SxmVolumeDriver:%s:not-an-sr-of-ours'
                         % self.xapi.pool.get_uuid(
                             self.xapi.pool.get_all()[0])):
            host = {'host': 'elsewhere@b#p',
                    'capabilities': {'location_info': location}}
            self.assertEqual((False, None), drv.retype(
                self._context(), obj, None, {}, host), location)
            self.assertEqual((False, None), drv.migrate_volume(
                self._context(), obj, host), location)
        # Another XAPI pool (see test_crosspool) that does not say where
        # it is: refused by name, so that Cinder does not fall back.
        host = {'host': 'elsewhere@b#p', 'capabilities': {
            'location_info': 'SxmVolumeDriver:another-xapi-pool:%s'
                             % gold_uuid}}
        for call in (lambda: drv.retype(self._context(), obj, None, {},
                                        host),
                     lambda: drv.migrate_volume(self._context(), obj, host)):
            exc = self.assertRaises(exception.VolumeMigrationFailed, call)
            self.assertIn('sxm_pool_url', str(exc))
        self.assertEqual(self.admin_volume(vol['id']).provider_location,
                         self.xapi.VDI.get_uuid(self.vdi_of(vol['id'])[0]))
        self.assertIn(self.vdi_of(vol['id'])[0],
                      self.xapi.SR.get_VDIs(silver))

    def test_a_failed_live_move_leaves_the_volume_as_it_was(self):
        vol = self.create_volume('silver')
        old, _ = self.vdi_of(vol['id'])
        old_uuid = self.xapi.VDI.get_uuid(old)
        vm = self.xapi.VM.create(vmbuild.vm_record('server'))
        vbd = self.xapi.VBD.create(vmbuild.vbd_record(vm, old, '1',
                                                      bootable=False))
        self.xapi.VM.start(vm, False, False)
        self.write(vm, ['1'], rate=MiB)
        self.wait_writes(vm)
        gold_before = self.vdis_on('gold')
        drv = self.volume.manager.driver
        (gold,) = [p for p in drv.get_volume_stats(refresh=True)['pools']
                   if p['pool_name'] == 'gold']
        self.ctl.fault_inject('mirror', percent=30)
        log = self.useFixture(fixtures.FakeLogger(name='cinder_sxm.driver',
                                                  level=logging.ERROR))

        moved = drv.retype(self._context(), self.admin_volume(vol['id']),
                           None, {}, {'host': '%s#gold' % base.HOST,
                                      'capabilities': gold})

        self.assertEqual((False, None), moved)
        self.assertIn('retype of volume %s' % vol['id'], log.output)
        self.assertIn('Mirroring', log.output)
        self.assertIn('(in VDI.pool_migrate)', log.output)
        self.assertEqual(old_uuid, self.xapi.VDI.get_uuid(old))
        self.assertEqual(old, self.xapi.VBD.get_VDI(vbd))
        self.assertTrue(self.xapi.VBD.get_currently_attached(vbd))
        self.assertEqual('Running', self.xapi.VM.get_power_state(vm))
        self.assertEqual(gold_before, self.vdis_on('gold'))
        self.check_guest(vm)


class TestRetypeGoldToSilver(base.SxmCinderTestCase):
    """The tiers as sold: a thick gold volume in use turns thin silver."""

    retype = TestRetype.retype

    def test_live_to_the_thin_tier(self):
        vol, old, vm = self.attached('gold')
        self.assertEqual(str(base.GiB),
                         self.xapi.VDI.get_physical_utilisation(old))

        vol = self.retype(vol['id'], 'silver')

        self.assertEqual(('in-use', 'silver'),
                         (vol['status'], vol['volume_type']))
        self.assertEqual('%s#silver' % base.HOST,
                         self.admin_volume(vol['id']).host)
        new, sr = self.vdi_of(vol['id'])
        self.assertEqual('silver', sr)
        self.assertEqual(new, self.vbd_vdi(vm))
        # Thin now: only what was written takes space.
        self.assertLess(int(self.xapi.VDI.get_physical_utilisation(new)),
                        int(self.xapi.VDI.get_virtual_size(new)))
        self.assertNotIn(old, self.xapi.VDI.get_all())
        self.check_guest(vm)

    def test_a_fault_during_the_move_leaves_it_on_gold(self):
        vol, old, vm = self.attached('gold')
        silver_before = self.vdis_on('silver')
        self.ctl.fault_inject('mirror', percent=30)
        log = self.useFixture(fixtures.FakeLogger(name='cinder_sxm.driver',
                                                  level=logging.ERROR))

        self.retype(vol['id'], 'silver')

        self.assertIn('retype of volume %s' % vol['id'], log.output)
        self.assertIn('(in VDI.pool_migrate)', log.output)
        vol = self.api.get_volume(vol['id'])
        self.assertEqual(('in-use', 'gold'),
                         (vol['status'], vol['volume_type']))
        self.assertEqual((old, 'gold'), self.vdi_of(vol['id']))
        self.assertEqual(old, self.vbd_vdi(vm))
        self.assertEqual('Running', self.xapi.VM.get_power_state(vm))
        # No orphan on silver (Cinder's generic migration, tried next,
        # removes the volume it made there).
        self.poll(lambda: self.vdis_on('silver') == silver_before,
                  what='silver as it was')
        self.check_guest(vm)

    def test_two_retypes_at_once(self):
        vol, old, digest = self.written_volume('gold', 4 * MiB, 'two at once')
        silver_before = self.vdis_on('silver')
        answers = []
        go = threading.Barrier(2)

        def retype():
            go.wait()
            try:
                self.action(vol['id'], {'os-retype': {
                    'new_type': 'silver', 'migration_policy': 'on-demand'}})
                answers.append('accepted')
            except client.OpenStackApiException400 as exc:
                answers.append(exc.response.text)
        threads = [threading.Thread(target=retype) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        vol = self._poll_volume_while(vol['id'], ['retyping'],
                                      max_retries=120)

        # Cinder lets one in; the other is refused, saying why.
        self.assertEqual(1, answers.count('accepted'), answers)
        (refusal,) = [a for a in answers if a != 'accepted']
        self.assertIn('Retype needs volume to be in available or in-use '
                      'state', refusal)
        self.assertEqual(('available', 'silver'),
                         (vol['status'], vol['volume_type']))
        new, sr = self.vdi_of(vol['id'])
        self.assertEqual('silver', sr)
        self.assertEqual(digest, self.digest(new))
        # One copy: the original is gone, nothing else appeared.
        self.assertNotIn(old, self.xapi.VDI.get_all())
        self.assertEqual(silver_before | {new}, self.vdis_on('silver'))

    def test_two_driver_moves_of_one_volume_wait_for_each_other(self):
        # Below Cinder's status checks: the volume lock alone keeps them
        # apart. The second finds the volume moved and refuses.
        vol, old, digest = self.written_volume('gold', 8 * MiB, 'driver race')
        silver_before = self.vdis_on('silver')
        drv = self.volume.manager.driver
        (silver,) = [p for p in drv.get_volume_stats(refresh=True)['pools']
                     if p['pool_name'] == 'silver']
        host = {'host': '%s#silver' % base.HOST, 'capabilities': silver}
        log = self.useFixture(fixtures.FakeLogger(name='cinder_sxm.driver',
                                                  level=logging.INFO))
        outcomes = []
        go = threading.Barrier(2)

        def retype():
            obj = self.admin_volume(vol['id'])  # as each RPC loads it
            go.wait()
            outcomes.append(drv.retype(self._context(), obj, None, {},
                                       host))
        threads = [threading.Thread(target=retype) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)

        (moved,) = [o for o in outcomes if o[0]]
        self.assertEqual([(False, None)], [o for o in outcomes if not o[0]])
        self.assertIn('moved or removed meanwhile', log.output)
        new = self.xapi.VDI.get_by_uuid(moved[1]['provider_location'])
        self.assertEqual(silver_before | {new}, self.vdis_on('silver'))
        self.assertEqual(digest, self.digest(new))
        self.assertNotIn(old, self.xapi.VDI.get_all())
