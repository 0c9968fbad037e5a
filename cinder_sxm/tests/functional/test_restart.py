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


"""cinder-volume dies mid-operation; a new one starts and reconciles.

The kill: the thread of the volume service that runs the operation dies
(an exception no handler catches, as if the process was gone) the moment
it starts waiting for its XAPI task; it makes no further XAPI call and no
database write. The service is stopped; XAPI goes on (or is let finish,
or fails the task); then a new volume service starts on the same host.
Checked: the volume's status, type, host, provider_location against where
XAPI has its VDI, the bytes (the guest checker for a volume in use), no
VDI of the volume other than its own, no task of the dead service left.
"""

import os
import threading
import uuid

import fixtures

from cinder import objects
from sxm_core import sessions
from sxm_core import tasks

from cinder_sxm.tests.functional import base
from cinder_sxm.tests.functional import test_images
from cinder_sxm import volumeops

MiB = base.MiB


class _Killed(BaseException):
    """Ends the thread of a killed service; no handler catches it."""


class Killer(fixtures.Fixture):
    """Kills the thread that calls ``method`` once it waits for the task.

    ``at_wait=False``: at its next XAPI call instead (a transfer's task is
    not waited for with event.from).
    """

    def __init__(self, method, at_wait=True):
        super().__init__()
        self.method = method
        self.at_wait = at_wait
        self.doomed = None
        self.died = threading.Event()
        self.armed = True

    def _setUp(self):
        real_call = sessions.SessionPool.call
        real_event_from = tasks._event_from
        killer = self

        def call(pool, method, *args):
            me = threading.current_thread()
            if killer.armed and killer.doomed is me and (
                    killer.died.is_set() or not killer.at_wait):
                killer.died.set()
                raise _Killed()
            result = real_call(pool, method, *args)
            if (killer.armed and method == killer.method
                    and killer.doomed is None):
                killer.doomed = me
            return result

        def event_from(session, task, token):
            if killer.armed and killer.doomed is threading.current_thread():
                killer.died.set()
                raise _Killed()
            return real_event_from(session, task, token)

        self.useFixture(fixtures.MonkeyPatch(
            'sxm_core.sessions.SessionPool.call', call))
        self.useFixture(fixtures.MonkeyPatch(
            'sxm_core.tasks._event_from', event_from))

    def disarm(self):
        self.armed = False


class RestartBase(base.SxmCinderTestCase):

    def setUp(self):
        super().setUp()
        self.owner = 'cinder-volume/%s' % self.volume.manager.driver.host

    # -- helpers -------------------------------------------------------------

    def kill_at(self, method, at_wait=True):
        return self.useFixture(Killer(method, at_wait))

    def die_and_stop(self, killer):
        """The operation's thread dies; the volume service stops."""
        self.assertTrue(killer.died.wait(60), 'the operation never waited')
        self.volume.stop()

    def restart(self, killer):
        killer.disarm()
        self.volume = self.start_service('volume')

    def settle(self, volume_id):
        """The volume once no longer transient.

        The successor may follow a task in the background.
        """
        return self._poll_volume_while(
            volume_id, ['retyping', 'extending', 'creating', 'downloading'],
            max_retries=120)

    def tasks_of(self, method):
        return [rec for rec in self.xapi.task.get_all_records().values()
                if rec['name_label'] == 'Async.' + method]

    def running(self, method):
        return [r for r in self.tasks_of(method)
                if r['status'] in ('pending', 'cancelling')]

    def owned_tasks(self):
        return [rec for rec in self.xapi.task.get_all_records().values()
                if rec['other_config'].get(volumeops.OWNER_KEY)
                == self.owner]

    def labelled(self, volume_id):
        """Every VDI of the pool whose name label is the volume's."""
        return set(self.xapi.VDI.get_by_name_label('volume-%s' % volume_id))

    def task_ended(self, method, timeout=120):
        """Wait until XAPI has run an ``Async.method`` task to its end."""
        self.poll(lambda: self.tasks_of(method) and not self.running(
            method), timeout=timeout, what='the %s task to end' % method)

    def live_retype_killed(self):
        """A slow live retype (silver to gold) whose service was killed.

        Returns (volume, its VDI, the VM, the killer).
        """
        vol, old, vm = self.attached('silver', 8 * MiB, 'before the kill')
        self.ctl.configure(bandwidth=2 * MiB)
        self.addCleanup(self.ctl.configure, bandwidth=0)
        killer = self.kill_at('Async.VDI.pool_migrate')
        self.start_retype(vol['id'], 'gold')
        self.die_and_stop(killer)
        return vol, old, vm, killer

    def assert_on(self, volume_id, tier, status, vdi=None):
        vol = self.api.get_volume(volume_id)
        self.assertEqual((status, tier), (vol['status'], vol['volume_type']))
        rec = self.admin_volume(volume_id)
        self.assertEqual('%s#%s' % (base.HOST, tier), rec.host)
        self.assertIsNone(rec.migration_status)
        ref, sr = self.vdi_of(volume_id)
        self.assertEqual(tier, sr)
        if vdi is not None:
            self.assertEqual(vdi, ref)
        # One VDI holds the volume: no copy, mirror target or original.
        self.assertEqual({ref}, self.labelled(volume_id))
        self.assertEqual([], self.owned_tasks())
        self.assertEqual(set(), {k for k in rec.admin_metadata
                                 if k.startswith('sxm_move')})
        return ref


class TestRestart(RestartBase):

    # -- live retype (VDI.pool_migrate) --------------------------------------

    def test_live_retype_finished_by_xapi_while_down(self):
        vol, old, vm, killer = self.live_retype_killed()
        self.poll(lambda: old not in self.xapi.VDI.get_all(), timeout=120,
                  what='XAPI to finish the copy')
        self.assertEqual('retyping', self.api.get_volume(vol['id'])['status'])
        self.restart(killer)

        self.settle(vol['id'])
        new = self.assert_on(vol['id'], 'gold', 'in-use',
                             vdi=self.vbd_vdi(vm))
        self.assertNotEqual(old, new)
        self.assertEqual(vol['id'], self.xapi.VDI.get_other_config(
            new)['cinder_volume_id'])
        self.check_guest(vm)

    def test_live_retype_still_copying_is_followed(self):
        vol, old, vm, killer = self.live_retype_killed()
        self.restart(killer)
        # The copy was still running when the new service started.
        self.assertNotEqual([], self.running('VDI.pool_migrate'))

        self.settle(vol['id'])
        new = self.assert_on(vol['id'], 'gold', 'in-use',
                             vdi=self.vbd_vdi(vm))
        self.assertNotIn(old, self.xapi.VDI.get_all())
        self.assertNotEqual(old, new)
        self.check_guest(vm)

    def test_live_retype_failed_while_down_stays_on_the_source(self):
        gold_before = self.vdis_on('gold')
        self.ctl.fault_inject('mirror', percent=50)
        vol, old, vm, killer = self.live_retype_killed()
        self.poll(lambda: not self.running('VDI.pool_migrate'),
                  timeout=120, what='the copy to fail')
        self.restart(killer)

        self.settle(vol['id'])
        self.assert_on(vol['id'], 'silver', 'in-use', vdi=old)
        self.assertEqual(old, self.vbd_vdi(vm))
        self.assertEqual(gold_before, self.vdis_on('gold'))
        self.check_guest(vm)

    # -- detached retype (VDI.copy + VDI.destroy) ----------------------------

    def test_detached_retype_copied_while_down_is_finished(self):
        vol, old, digest = self.written_volume('silver', 4 * MiB, 'detached')
        killer = self.kill_at('Async.VDI.copy')

        self.start_retype(vol['id'], 'gold')
        self.die_and_stop(killer)
        self.task_ended('VDI.copy')
        # XAPI made the copy; the original is still there.
        self.assertEqual(2, len(self.labelled(vol['id'])))
        self.restart(killer)

        self.settle(vol['id'])
        new = self.assert_on(vol['id'], 'gold', 'available')
        self.assertNotIn(old, self.xapi.VDI.get_all())
        self.assertEqual(digest, self.digest(new))

    # -- admin migration between the pools (migrate_volume) -----------------

    def test_migration_copied_while_down_is_finished(self):
        vol, old, here, there = self.volume_of_any_tier()
        self.fill(old, 2 * MiB, 'migrate')
        digest = self.digest(old)
        killer = self.kill_at('Async.VDI.copy')

        self.start_migration(vol['id'], there)
        self.die_and_stop(killer)
        self.task_ended('VDI.copy')
        self.assertEqual('migrating', self.admin_volume(
            vol['id']).migration_status)
        self.restart(killer)

        rec = self.poll(lambda: (lambda v: v if v.migration_status not in (
            'starting', 'migrating') else None)(
            self.admin_volume(vol['id'])), what='the migration to end')
        self.assertEqual(('success', 'available'),
                         (rec.migration_status, rec.status))
        self.assertEqual('%s#%s' % (base.HOST, there), rec.host)
        new, sr = self.vdi_of(vol['id'])
        self.assertEqual(there, sr)
        self.assertEqual({new}, self.labelled(vol['id']))
        self.assertEqual(digest, self.digest(new))
        self.assertEqual([], self.owned_tasks())

    # -- revert to snapshot (VDI.copy against a temporary snapshot) ---------

    def test_revert_interrupted_leaves_no_base(self):
        self.osapi_version = '3.40'
        vol, vdi, taken = self.written_volume('silver', 4 * MiB, 'kept')
        snap = self.api.post_snapshot({'snapshot': {
            'volume_id': vol['id'], 'name': 'before'}})
        self._poll_snapshot_while(snap['id'], ['creating'],
                                  expected_end_status='available',
                                  max_retries=60)
        self.fill(vdi, 8 * MiB, 'overwritten')
        killer = self.kill_at('Async.VDI.copy')

        self.action(vol['id'], {'revert': {'snapshot_id': snap['id']}})
        self.die_and_stop(killer)
        self.task_ended('VDI.copy')
        bases = [r['uuid'] for r in self.xapi.VDI.get_all_records().values()
                 if r['name_label'].startswith(volumeops.REVERT_BASE)]
        self.assertEqual(1, len(bases), 'the dead revert left its base')
        self.restart(killer)

        self.poll(lambda: not [
            r for r in self.xapi.VDI.get_all_records().values()
            if r['name_label'].startswith(volumeops.REVERT_BASE)],
            what='the base of the interrupted revert destroyed')
        # XAPI finished the copy: the volume has the snapshot's bytes.
        self.assertEqual(taken, self.digest(vdi))
        self.assertEqual([], self.owned_tasks())

    # -- clone (VDI.clone, then labelled) ------------------------------------

    def test_clone_interrupted_leaves_no_copy(self):
        src, src_vdi, digest = self.written_volume('silver', 4 * MiB, 'source')
        silver_before = self.vdis_on('silver')
        killer = self.kill_at('Async.VDI.clone')

        clone = self.api.post_volume({'volume': {
            'size': 1, 'volume_type': 'silver', 'source_volid': src['id'],
            'name': 'clone'}})
        self.die_and_stop(killer)
        self.task_ended('VDI.clone')
        # XAPI made the clone, still labelled as its source.
        self.assertEqual(2, len(self.labelled(src['id'])))
        self.restart(killer)

        clone = self.settle(clone['id'])
        self.assertEqual('error', clone['status'])
        self.assertEqual(set(), self.labelled(clone['id']))
        self.assertEqual(silver_before, self.vdis_on('silver'))
        self.assertEqual({src_vdi}, self.labelled(src['id']))
        self.assertEqual([], self.owned_tasks())
        # The source is untouched.
        self.assertEqual('available', self.api.get_volume(src['id'])[
            'status'])
        self.assertEqual((src_vdi, 'silver'), self.vdi_of(src['id']))
        self.assertEqual(digest, self.digest(src_vdi))
        # And the error volume goes away cleanly.
        self.api.delete_volume(clone['id'])
        self.poll(lambda: self._volume_gone(clone['id']),
                  what='the clone deleted')
        self.assertEqual(silver_before, self.vdis_on('silver'))

    def _volume_gone(self, volume_id):
        from cinder.tests.functional.api import client
        try:
            self.api.get_volume(volume_id)
        except client.OpenStackApiException404:
            return True
        return False

    # -- extend --------------------------------------------------------------

    def test_extending_when_killed_ends_with_the_vdis_size(self):
        vol = self.create_volume('silver')
        vdi, _ = self.vdi_of(vol['id'])
        killer = self.kill_at('Async.VDI.resize')

        self.action(vol['id'], {'os-extend': {'new_size': 2}})
        self.die_and_stop(killer)
        self.task_ended('VDI.resize', timeout=60)
        self.assertEqual('extending', self.api.get_volume(vol['id'])[
            'status'])
        self.restart(killer)

        vol = self.settle(vol['id'])
        self.assertEqual(('available', 2), (vol['status'], vol['size']))
        self.assertEqual(str(2 * base.GiB),
                         self.xapi.VDI.get_virtual_size(vdi))
        self.assertEqual([], self.owned_tasks())


class TestDeleteFindsTheData(base.SxmCinderTestCase):
    """Delete never leaves the VDI holding the volume's data."""

    labelled = RestartBase.labelled

    def test_data_moved_behind_cinders_back_is_deleted(self):
        vol = self.create_volume('silver')
        old, _ = self.vdi_of(vol['id'])
        # A move XAPI finished with nobody to tell Cinder: the data is on
        # gold now, provider_location names a VDI that is gone; plus a
        # copy an interrupted move left on silver.
        (gold,) = self.xapi.SR.get_by_name_label('gold')
        (silver,) = self.xapi.SR.get_by_name_label('silver')
        moved = self.xapi.VDI.copy(old, gold)
        leftover = self.xapi.VDI.copy(old, silver)
        self.xapi.VDI.destroy(old)
        gold_before = self.vdis_on('gold') - {moved}
        silver_before = self.vdis_on('silver') - {leftover}
        self.assertEqual({moved, leftover}, self.labelled(vol['id']))

        self.api.delete_volume(vol['id'])
        self.poll(lambda: not [v for v in self.api.get_volumes()
                               if v['id'] == vol['id']],
                  what='the volume deleted')

        self.assertEqual(gold_before, self.vdis_on('gold'))
        self.assertEqual(silver_before, self.vdis_on('silver'))

    def test_delete_of_a_volume_without_any_vdi_succeeds(self):
        vol = self.create_volume('gold')
        vdi, _ = self.vdi_of(vol['id'])
        self.xapi.VDI.destroy(vdi)
        self.api.delete_volume(vol['id'])
        self.poll(lambda: not [v for v in self.api.get_volumes()
                               if v['id'] == vol['id']],
                  what='the volume deleted')

    def test_another_volumes_vdi_is_never_taken(self):
        keep = self.create_volume('silver')
        keep_vdi, _ = self.vdi_of(keep['id'])
        vol = self.create_volume('silver')
        vdi, _ = self.vdi_of(vol['id'])
        # Same label, but another volume's id in other_config.
        self.xapi.VDI.set_name_label(keep_vdi, 'volume-%s' % vol['id'])
        self.api.delete_volume(vol['id'])
        self.poll(lambda: not [v for v in self.api.get_volumes()
                               if v['id'] == vol['id']],
                  what='the volume deleted')
        self.assertNotIn(vdi, self.xapi.VDI.get_all())
        self.assertIn(keep_vdi, self.xapi.VDI.get_all())
        self.assertIsNotNone(objects.Volume.get_by_id(
            self._context(), keep['id']).provider_location)


class TestRestartDuringImageTransfers(test_images.ImagesStandInMixin,
                                      RestartBase):
    """Create from image and upload to image, killed after the bytes moved.

    (The image service is the in-process stand-in of test_images.)
    """

    def test_create_from_image_killed(self):
        image_id = str(uuid.uuid4())
        self.images.add(image_id, 'raw', os.urandom(2 * MiB))
        gold_before = self.vdis_on('gold')
        killer = self.kill_at('task.add_to_other_config', at_wait=False)

        vol = self.api.post_volume({'volume': {
            'size': 1, 'volume_type': 'gold', 'imageRef': image_id,
            'name': 'from-image'}})
        self.die_and_stop(killer)
        # The driver creates it from the image (clone_image): Cinder's
        # generic download never starts.
        self.assertEqual('creating', self.api.get_volume(vol['id'])[
            'status'])
        self.assertEqual(1, len(self.labelled(vol['id'])))
        self.assertNotEqual([], self.owned_tasks())
        self.restart(killer)

        vol = self.settle(vol['id'])
        self.assertEqual('error', vol['status'])
        self.assertEqual(set(), self.labelled(vol['id']))
        self.assertEqual(gold_before, self.vdis_on('gold'))
        self.assertEqual([], self.owned_tasks())

    def test_uploading_before_the_upload_reached_the_service(self):
        # Killed after the API set 'uploading', before the RPC arrived:
        # no workers row, so Cinder's own clean-up never resets it.
        vol = self.create_volume('silver')
        vdi, _ = self.vdi_of(vol['id'])
        self.volume.stop()
        rec = self.admin_volume(vol['id'])
        rec.update({'status': 'uploading'})
        rec.save()
        self.volume = self.start_service('volume')

        vol = self._poll_volume_while(vol['id'], ['uploading'],
                                      max_retries=60)
        self.assertEqual('available', vol['status'])
        self.assert_on(vol['id'], 'silver', 'available', vdi=vdi)

    def test_upload_to_image_killed(self):
        vol, vdi, digest = self.written_volume('silver', 2 * MiB, 'upload')
        killer = self.kill_at('task.add_to_other_config', at_wait=False)

        self.action(vol['id'], {'os-volume_upload_image': {
            'image_name': 'killed', 'force': False, 'disk_format': 'raw',
            'container_format': 'bare'}})
        self.die_and_stop(killer)
        # (The manager's own clean-up may have run in the dying thread.)
        self.assertNotEqual([], self.owned_tasks())
        self.restart(killer)

        vol = self.settle(vol['id'])
        self.assertEqual('available', vol['status'])
        self.assert_on(vol['id'], 'silver', 'available', vdi=vdi)
        self.assertEqual(digest, self.digest(vdi))
