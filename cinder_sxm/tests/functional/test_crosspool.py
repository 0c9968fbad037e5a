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


"""Volumes between backends of two XAPI pools (backend per pool).

A detached volume moves itself (driver.migrate_volume: the VDI streamed
as sparse VHD, verified, the source destroyed); what it cannot move is
refused by name, and Cinder's generic migration, which would copy through
host block devices or ask Nova to swap, never starts a half move: the
volume stays on its source, nothing is left in the other pool.
"""

import logging

from cinder.tests.functional.api import client
import fixtures
from sxm_core import crosspool as copier
from sxm_core import transfer

from cinder_sxm import moves
from cinder_sxm.tests.functional import base

MiB = base.MiB
TO_B = '%s#bronze' % base.HOST_B


class TestCrossPool(base.TwoBackendsTestCase):

    def migrate(self, volume_id, host=TO_B):
        self.action(volume_id, {'os-migrate_volume': {
            'host': host, 'force_host_copy': False}})
        return self.settled(volume_id)

    def settled(self, volume_id):
        """The volume's record once its migration has ended.

        The driver saves Cinder's side before it clears the move's record
        (a kill in between leaves the record for the successor): ended
        means both.
        """
        def ended(v):
            return (v.migration_status not in ('starting', 'migrating')
                    and v.status not in ('retyping', 'maintenance')
                    and not set(v.admin_metadata) & set(moves.MOVE_KEYS))
        return self.poll(
            lambda: (lambda v: v if ended(v) else None)(
                self.admin_volume(volume_id)),
            what='the migration of volume %s to end' % volume_id,
            timeout=120)

    def assert_nothing_on_b(self, volume_id, before):
        """Pool-b holds the VDIs it held ``before``, and none of ours."""
        now = {u: r for sr in ('bronze', 'copper')
               for u, r in self.vdis_b(sr).items()}
        self.assertEqual(set(before), set(now))
        self.assertEqual([], [u for u, r in now.items()
                              if r['other_config'].get('cinder_volume_id')
                              == volume_id])

    def all_b(self):
        return {u: r for sr in ('bronze', 'copper')
                for u, r in self.vdis_b(sr).items()}

    def assert_on_b(self, vol, digest, old_uuid):
        rec = self.admin_volume(vol['id'])
        self.assertEqual(TO_B, rec.host)
        self.assertEqual('available', rec.status)
        self.assertEqual('success', rec.migration_status)
        self.assertIn(rec.provider_location, self.vdis_b('bronze'))
        self.assertEqual(digest, self.digest_b(rec.provider_location))
        vdi = self.vdis_b('bronze')[rec.provider_location]
        self.assertEqual(vol['id'], vdi['other_config']['cinder_volume_id'])
        self.assertEqual('volume-%s' % vol['id'], vdi['name_label'])
        # The source VDI is gone from pool-a; no move is recorded.
        self.assertNotIn(old_uuid, [self.xapi.VDI.get_uuid(v)
                                    for v in self.xapi.VDI.get_all()])
        self.assertEqual({}, {k: v for k, v in rec.admin_metadata.items()
                              if k in moves.MOVE_KEYS})
        return rec

    def test_migrate_detached_volume_to_the_other_pool(self):
        vol, vdi, digest = self.plain_volume(3 * MiB, 'moved')
        old = self.xapi.VDI.get_uuid(vdi)
        before = self.all_b()

        self.migrate(vol['id'])

        rec = self.assert_on_b(vol, digest, old)
        # Only the volume's VDI was added to pool-b.
        self.assertEqual({rec.provider_location},
                         set(self.all_b()) - set(before))
        # sxm-b owns it now: a delete through the API removes it there.
        self.api.delete_volume(vol['id'])
        self.poll(lambda: rec.provider_location not in self.all_b(),
                  what='the VDI to be deleted from pool-b')

    def test_retype_to_a_type_of_the_other_backend(self):
        # Types that differ only by volume_backend_name (as Tempest's
        # VolumeRetypeWithMigrationTest makes): the driver moves it.
        for name, backend in (('on-a', base.BACKEND),
                              ('on-b', base.BACKEND_B)):
            self.types[name] = self.api.api_post('/types', {'volume_type': {
                'name': name, 'extra_specs': {
                    'volume_backend_name': backend}}})['volume_type']
        vol = self.create_volume('on-a')
        vdi, _ = self.vdi_of(vol['id'])
        self.fill(vdi, 2 * MiB, 'retyped')
        digest = self.digest(vdi)
        old = self.xapi.VDI.get_uuid(vdi)

        self.start_retype(vol['id'], 'on-b')
        rec = self.settled(vol['id'])

        self.assertEqual('available', rec.status)
        self.assertEqual(self.types['on-b']['id'], rec.volume_type_id)
        self.assertEqual(base.HOST_B,
                         rec.host.split('#')[0])
        self.assertEqual(digest, self.digest_b(rec.provider_location))
        self.assertNotIn(old, [self.xapi.VDI.get_uuid(v)
                               for v in self.xapi.VDI.get_all()])

    def test_move_in_the_owners_context(self):
        # A retype asked by the volume's owner reaches the driver in the
        # owner's (not admin) context; the API here is always admin.
        from cinder import context
        from cinder import objects
        vol, vdi, digest = self.plain_volume(MiB, 'owner')
        old = self.xapi.VDI.get_uuid(vdi)
        owner = context.RequestContext(
            'owner', vol['os-vol-tenant-attr:tenant_id'], is_admin=False)
        volume = objects.Volume.get_by_id(owner, vol['id'])
        (caps,) = [p for p in self.volume_b.manager.driver.get_volume_stats(
            refresh=True)['pools'] if p['pool_name'] == 'bronze']

        moved, update = self.volume.manager.driver.migrate_volume(
            owner, volume, {'host': TO_B, 'capabilities': caps})

        self.assertTrue(moved)
        self.assertEqual(self.admin_volume(vol['id']).provider_location,
                         update['provider_location'])
        self.assert_on_b(vol, digest, old)

    def test_retype_that_needs_the_generic_migration_is_refused(self):
        # silver -> bronze also changes pool_name: Cinder's generic
        # migration asks sxm-b for a target volume, which it refuses.
        vol, vdi, digest = self.written_volume('silver', MiB, 'generic')
        before = self.all_b()

        self.start_retype(vol['id'], 'bronze')
        rec = self.settled(vol['id'])

        self.assertEqual('available', rec.status)
        self.assertEqual('error', rec.migration_status)
        self.assertEqual(self.types['silver']['id'], rec.volume_type_id)
        self.assertEqual('%s#silver' % base.HOST, rec.host)
        self.assertEqual(digest, self.digest(vdi))
        self.poll(lambda: len(self.api.get_volumes()) == 1,
                  what='Cinder to delete the refused target volume')
        self.assert_nothing_on_b(vol['id'], before)

    def test_attached_volume_is_refused(self):
        vol, vdi, vm = self.attached('silver')
        before = self.all_b()

        rec = self.migrate(vol['id'])

        self.assertEqual('in-use', rec.status)
        self.assertEqual('error', rec.migration_status)
        self.assertEqual('%s#silver' % base.HOST, rec.host)
        self.assertEqual(vdi, self.vbd_vdi(vm))
        self.assert_nothing_on_b(vol['id'], before)
        self.check_guest(vm)

    def test_volume_with_snapshots_is_refused(self):
        # Cinder's API refuses it already; the driver would too.
        vol, vdi, digest = self.plain_volume(MiB, 'snapped')
        snap = self.api.post_snapshot({'snapshot': {
            'volume_id': vol['id'], 'name': 'snap'}})
        self._poll_snapshot_while(snap['id'], ['creating'])
        before = self.all_b()

        self.assertRaises(client.OpenStackApiException400, self.action,
                          vol['id'], {'os-migrate_volume': {
                              'host': TO_B, 'force_host_copy': False}})

        rec = self.admin_volume(vol['id'])
        self.assertEqual('available', rec.status)
        self.assertIsNone(rec.migration_status)
        self.assertEqual(self.xapi.VDI.get_uuid(vdi), rec.provider_location)
        self.assertEqual(digest, self.digest(vdi))
        self.assert_nothing_on_b(vol['id'], before)

    def test_import_fails_mid_copy(self):
        # The connection to pool-b drops after the import has begun: the
        # bytes already sent are in the new VDI, which must go.
        real = transfer.VdiTransfer.upload
        sent = []

        def upload(xfer, vdi, source, fmt='raw', what=None, length=None,
                   progress=None):
            def cut(done, *args):
                if progress:
                    progress(done, *args)
                if done and not sent:
                    sent.append(done)
                    raise transfer.TransferFailed(
                        what=what, reason='connection reset by peer')
            return real(xfer, vdi, source, fmt, what, length, cut)
        self.useFixture(fixtures.MonkeyPatch(
            'sxm_core.transfer.VdiTransfer.upload', upload))
        vol, vdi, digest = self.plain_volume(3 * MiB, 'cut')
        before = self.all_b()

        rec = self.migrate(vol['id'])

        self.assertNotEqual([], sent)
        self.assertEqual('available', rec.status)
        self.assertEqual('error', rec.migration_status)
        self.assertEqual(self.xapi.VDI.get_uuid(vdi), rec.provider_location)
        self.assertEqual(digest, self.digest(vdi))
        self.assert_nothing_on_b(vol['id'], before)
        self.assertEqual({}, {k: v for k, v in rec.admin_metadata.items()
                              if k in moves.MOVE_KEYS})

    def test_wrong_password_for_the_other_pool(self):
        self.volume.manager.driver._crosspool._passwords[
            self.xapi_b.pool.get_uuid(self.xapi_b.pool.get_all()[0])] = 'no'
        vol, vdi, digest = self.plain_volume(MiB, 'denied')
        before = self.all_b()
        log = self.useFixture(fixtures.FakeLogger(name='cinder_sxm.driver',
                                                  level=logging.INFO))

        rec = self.migrate(vol['id'])

        self.assertIn('sxm_remote_pool_passwords', log.output)
        self.assertNotIn(self.simfix.password, log.output)

        self.assertEqual('available', rec.status)
        self.assertEqual('error', rec.migration_status)
        self.assertEqual(digest, self.digest(vdi))
        self.assert_nothing_on_b(vol['id'], before)


class TestCrossPoolRestart(base.TwoBackendsTestCase):
    """A service killed mid-move; its successor settles the move.

    The kill is simulated by leaving what a killed service leaves: the
    move recorded in the volume's admin metadata (as the driver records it
    before anything moves) and the VDIs in the state of that moment.
    """

    def killed_move(self, nbytes, seed):
        """A volume, its VDI uuid, its digest and a real copy on pool-b."""
        vol, vdi, digest = self.plain_volume(nbytes, seed)
        source = self.xapi.VDI.get_uuid(vdi)
        driver = self.volume.manager.driver
        (bronze,) = self.xapi_b.SR.get_by_name_label('bronze')
        sr_uuid = self.xapi_b.SR.get_uuid(bronze)
        pool_b = self.xapi_b.pool.get_uuid(self.xapi_b.pool.get_all()[0])
        rec = self.admin_volume(vol['id'])
        rec.update({'migration_status': 'migrating'})
        rec.save()
        moves.record_move(rec, {
            moves.MOVE_HOST: TO_B, moves.MOVE_SR: sr_uuid,
            moves.MOVE_FROM: source, moves.MOVE_POOL: pool_b,
            moves.MOVE_URL: self.simfix.url('pool-b')})
        with driver._crosspool.remote(self.simfix.url('pool-b'),
                                      pool_b) as dest:
            result = copier.copy_vdi(
                driver._xapi, source, dest, sr_uuid,
                name_label='volume-%s' % vol['id'],
                other_config={'cinder_volume_id': vol['id']},
                on_created=lambda uuid: moves.record_move(
                    rec, {moves.MOVE_TO: uuid}))
        return vol, vdi, digest, result.vdi_uuid

    def restart(self):
        self.volume.stop()
        self.volume = self.start_service('volume')

    def test_killed_before_the_source_was_destroyed(self):
        vol, vdi, digest, copy = self.killed_move(2 * MiB, 'kept')
        before = set(self.all_b()) - {copy}

        self.restart()

        rec = self.admin_volume(vol['id'])
        self.assertEqual('available', rec.status)
        self.assertEqual('error', rec.migration_status)
        self.assertEqual(self.xapi.VDI.get_uuid(vdi), rec.provider_location)
        self.assertTrue(rec.host.startswith(base.HOST + '#'))
        self.assertEqual(digest, self.digest(vdi))
        self.assertEqual(before, set(self.all_b()))
        self.assertEqual({}, {k: v for k, v in rec.admin_metadata.items()
                              if k in moves.MOVE_KEYS})

    def test_killed_after_the_source_was_destroyed(self):
        vol, vdi, digest, copy = self.killed_move(2 * MiB, 'moved')
        self.xapi.VDI.destroy(vdi)

        self.restart()

        rec = self.admin_volume(vol['id'])
        self.assertEqual('available', rec.status)
        self.assertEqual('success', rec.migration_status)
        self.assertEqual(TO_B, rec.host)
        self.assertEqual(copy, rec.provider_location)
        self.assertEqual(digest, self.digest_b(copy))
        self.assertEqual({}, {k: v for k, v in rec.admin_metadata.items()
                              if k in moves.MOVE_KEYS})

    all_b = TestCrossPool.all_b
