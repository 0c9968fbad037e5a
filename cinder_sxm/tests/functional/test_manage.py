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


"""Existing VDIs adopted (``volume manage``) and given back (unmanage)."""

import hashlib
import logging
import urllib.request
import uuid as uuidlib

import fixtures

from cinder_sxm.tests.functional import base
from tests.functional import simhelpers
from xapi_sim import vmbuild

GiB = base.GiB
MiB = base.MiB
HAND_MADE = 'made by hand in XenCenter'


class TestManage(base.SxmCinderTestCase):

    def setUp(self):
        super().setUp()
        # Manageable listings need 3.8.
        self.osapi_version = '3.8'

    def _get_flags(self):
        f = super()._get_flags()
        # Each refused manage leaves a volume in error that counts.
        f['use_default_quota_class'] = {'v': False}
        f['quota_volumes'] = {'v': 50}
        return f

    # -- helpers -------------------------------------------------------------

    def new_vdi(self, sr_name, size, name, seed=None, nbytes=4 * MiB,
                vdi_type='user'):
        """A VDI made through XenAPI alone, as an operator's is."""
        (sr,) = self.xapi.SR.get_by_name_label(sr_name)
        vdi = self.xapi.VDI.create({
            'SR': sr, 'virtual_size': str(size), 'type': vdi_type,
            'sharable': False, 'read_only': False, 'name_label': name,
            'name_description': HAND_MADE, 'other_config': {'x': 'y'},
            'xenstore_data': {}, 'sm_config': {}, 'tags': []})
        if seed is not None:
            self.fill(vdi, nbytes, seed)
        return vdi

    def stream(self, vdi, nbytes):
        """(sha256 of the first ``nbytes``, whether the rest reads zero)."""
        url = self._vdi_url('export_raw_vdi', vdi, self.session, 'pool-a')
        digest, zero, left = hashlib.sha256(), True, nbytes
        with urllib.request.urlopen(url, timeout=simhelpers.DEADLINE) as r:
            for block in iter(lambda: r.read(MiB), b''):
                head, tail = block[:max(0, left)], block[max(0, left):]
                digest.update(head)
                left -= len(head)
                zero = zero and not tail.strip(b'\0')
        return digest.hexdigest(), zero

    def start_manage(self, ref, tier, host_pool=None):
        """Manage on ``host_pool`` (default ``tier``; '': the backend)."""
        pool = tier if host_pool is None else host_pool
        return self.api.api_post('/os-volume-manage', {'volume': {
            'host': '%s#%s' % (base.HOST, pool) if pool else base.HOST,
            'ref': ref, 'volume_type': tier, 'name': 'adopted'}})['volume']

    def manage(self, ref, tier, host_pool=None):
        vol = self.start_manage(ref, tier, host_pool)
        # The API shows 'managing' as 'creating'.
        return self.wait_volume(vol['id'], ('creating',), 'available')

    def refused(self, ref, tier, reason, host_pool=None):
        """Manage is refused with ``reason`` in the log; nothing changes."""
        log = self.useFixture(fixtures.FakeLogger(level=logging.WARNING))
        vol = self.start_manage(ref, tier, host_pool)
        # 'error_managing' shows as 'error'.
        self.wait_volume(vol['id'], ('creating',), 'error')
        self.assertIn(reason, log.output)
        self.assertIn('ManageExistingInvalidReference', log.output)
        # Deleting the failed volume leaves the VDI it named alone.
        self.api.delete_volume(vol['id'])
        self._poll_volume_while(vol['id'], ['deleting'], max_retries=60)

    def gone_from_api(self, path):
        self.poll(lambda: not any(
            path.endswith(item['id']) for item in self.api.api_get(
                path.rsplit('/', 1)[0])[path.split('/')[1]]),
            what='%s to leave Cinder' % path)

    # -- volumes -------------------------------------------------------------

    def test_adopted_by_uuid_works_as_any_volume(self):
        size = GiB - 64 * MiB  # rounded up to 1 GiB
        vdi = self.new_vdi('silver', size, 'legacy-data', seed='legacy')
        before = self.stream(vdi, size)[0]
        uuid = self.xapi.VDI.get_uuid(vdi)

        vol = self.manage({'source-id': uuid}, 'silver')

        self.assertEqual(1, vol['size'])
        self.assertEqual('adopted', vol['name'])
        self.assertEqual(uuid, self.admin_volume(vol['id']).provider_location)
        # As for a created volume: otherwise os-brick on the compute host
        # locks on the (unset) service uuid and Nova's attach fails.
        self.assertFalse(self.admin_volume(vol['id']).shared_targets)
        self.assertEqual(str(GiB), self.xapi.VDI.get_virtual_size(vdi))
        # The same bytes; the GiB it grew by reads zero.
        self.assertEqual((before, True), self.stream(vdi, size))
        self.assertEqual('volume-%s' % vol['id'],
                         self.xapi.VDI.get_name_label(vdi))
        self.assertEqual(HAND_MADE, self.xapi.VDI.get_name_description(vdi))
        other = self.xapi.VDI.get_other_config(vdi)
        self.assertEqual(vol['id'], other['cinder_volume_id'])
        self.assertEqual('y', other['x'])

        # Attach: Cinder hands Nova this very VDI.
        info = self.action(vol['id'], {'os-initialize_connection': {
            'connector': {'host': 'compute1', 'initiator': 'none'}}})
        self.assertEqual(uuid, info['connection_info']['data']['vdi_uuid'])

        snap = self.api.post_snapshot({'snapshot': {
            'volume_id': vol['id'], 'name': 'snap'}})
        self._poll_snapshot_while(snap['id'], ['creating'],
                                  expected_end_status='available',
                                  max_retries=60)
        (snap_vdi,) = self.xapi.VDI.get_snapshots(vdi)
        self.assertEqual((before, True), self.stream(snap_vdi, size))

        # Retype to gold moves it like any volume of ours (once its
        # snapshot is gone).
        self.api.delete_snapshot(snap['id'])
        self._poll_snapshot_while(snap['id'], ['deleting'], max_retries=60)
        self.action(vol['id'], {'os-retype': {
            'new_type': 'gold', 'migration_policy': 'on-demand'}})
        self.poll(lambda: self.api.get_volume(vol['id'])['volume_type']
                  == 'gold', what='the retype to gold')
        moved, sr = self.vdi_of(vol['id'])
        self.assertEqual('gold', sr)
        self.assertEqual((before, True), self.stream(moved, size))

        self.api.delete_volume(vol['id'])
        self._poll_volume_while(vol['id'], ['deleting'], max_retries=60)
        self.assertNotIn(moved, self.xapi.VDI.get_all())
        self.assertNotIn(vdi, self.xapi.VDI.get_all())

    def test_adopted_by_name_then_unmanaged_stays(self):
        vdi = self.new_vdi('gold', 2 * GiB, 'by-name', seed='named')
        before = self.digest(vdi)
        # The mark of a Cinder volume long gone is no obstacle.
        self.xapi.VDI.add_to_other_config(vdi, 'cinder_volume_id',
                                          str(uuidlib.uuid4()))

        vol = self.manage({'source-name': 'by-name'}, 'gold')
        self.assertEqual(2, vol['size'])
        self.assertEqual(self.xapi.VDI.get_uuid(vdi),
                         self.admin_volume(vol['id']).provider_location)

        self.action(vol['id'], {'os-unmanage': None})
        self.gone_from_api('/volumes/%s' % vol['id'])

        self.assertIn(vdi, self.xapi.VDI.get_all())
        self.assertEqual('by-name', self.xapi.VDI.get_name_label(vdi))
        self.assertEqual({'x': 'y'}, self.xapi.VDI.get_other_config(vdi))
        self.assertEqual(before, self.digest(vdi))
        # Adopted again: nothing of the first time is in the way. Asked
        # of the backend, not of a pool: the volume is in the VDI's.
        again = self.manage({'source-name': 'by-name'}, 'gold', host_pool='')
        self.assertEqual(self.xapi.VDI.get_uuid(vdi),
                         self.admin_volume(again['id']).provider_location)
        self.assertEqual('%s#gold' % base.HOST,
                         self.admin_volume(again['id']).host)

    def test_refusals_name_the_problem(self):
        plain = self.new_vdi('silver', GiB, 'plain')
        self.refused({'source-id': str(uuidlib.uuid4())}, 'silver',
                     'no VDI has uuid')
        self.refused({'source-name': 'nobody'}, 'silver',
                     "no VDI is named 'nobody'")
        self.refused({'lun': 'x'}, 'silver', 'give exactly one of source-id')
        self.new_vdi('silver', GiB, 'twin')
        self.new_vdi('gold', GiB, 'twin')
        self.refused({'source-name': 'twin'}, 'silver',
                     "2 VDIs are named 'twin'")
        self.refused({'source-name': 'plain'}, 'gold',
                     'it is on pool silver, not on pool gold',
                     host_pool='gold')
        local = self.new_vdi('Local storage (ext)', GiB, 'local')
        self.refused({'source-id': self.xapi.VDI.get_uuid(local)}, 'silver',
                     "which is not one of this backend's pools")
        system = self.new_vdi('silver', GiB, 'system', vdi_type='system')
        self.refused({'source-id': self.xapi.VDI.get_uuid(system)}, 'silver',
                     'it is not a user disk (type system)')

        snap = self.xapi.VDI.snapshot(plain, {})
        self.refused({'source-id': self.xapi.VDI.get_uuid(snap)}, 'silver',
                     'it is a snapshot')
        (base_copy,) = [
            ref for ref, rec in self.xapi.VDI.get_all_records().items()
            if not rec['managed'] and rec['SR'] == self.xapi.VDI.get_SR(plain)]
        self.refused({'source-id': self.xapi.VDI.get_uuid(base_copy)},
                     'silver', 'XAPI does not manage it (managed=false')

        vm = self.xapi.VM.create(vmbuild.vm_record('legacy-vm'))
        self.xapi.VBD.create(vmbuild.vbd_record(vm, plain, '1',
                                                bootable=False))
        self.refused({'source-name': 'plain'}, 'silver',
                     'a VM that Cinder does not know has it: legacy-vm')

        ours = self.create_volume('silver')
        ours_uuid = self.admin_volume(ours['id']).provider_location
        self.refused({'source-id': ours_uuid}, 'silver',
                     'it is managed by Cinder already (as %s)' % ours['id'])
        # A copy made by hand carries the volume's name and mark: the
        # volume's delete would find it, so it is not Cinder's to adopt.
        clone = self.xapi.VDI.clone(self.xapi.VDI.get_by_uuid(ours_uuid), {})
        self.refused({'source-id': self.xapi.VDI.get_uuid(clone)}, 'silver',
                     'it is managed by Cinder already (as %s)' % ours['id'])

        # Nothing refused was touched.
        self.assertEqual('plain', self.xapi.VDI.get_name_label(plain))
        self.assertEqual({'x': 'y'}, self.xapi.VDI.get_other_config(plain))
        self.assertEqual(ours['id'], self.xapi.VDI.get_other_config(
            self.xapi.VDI.get_by_uuid(ours_uuid))['cinder_volume_id'])

    def test_manageable_listing(self):
        free = self.new_vdi('gold', GiB + 1, 'free')
        busy = self.new_vdi('silver', GiB, 'busy')
        vm = self.xapi.VM.create(vmbuild.vm_record('legacy-vm'))
        self.xapi.VBD.create(vmbuild.vbd_record(vm, busy, '1',
                                                bootable=False))
        ours = self.create_volume('silver')
        found = {e['reference']['source-id']: e for e in self.api.api_get(
            '/manageable_volumes/detail?host=%s' % base.HOST)[
                'manageable-volumes']}
        entry = found[self.xapi.VDI.get_uuid(free)]
        self.assertEqual((2, True), (entry['size'], entry['safe_to_manage']))
        entry = found[self.xapi.VDI.get_uuid(busy)]
        self.assertFalse(entry['safe_to_manage'])
        self.assertIn('legacy-vm', entry['reason_not_safe'])
        entry = found[self.admin_volume(ours['id']).provider_location]
        self.assertEqual(ours['id'], entry['cinder_id'])
        self.assertFalse(entry['safe_to_manage'])

    # -- snapshots -----------------------------------------------------------

    def start_snapshot_manage(self, volume_id, ref):
        return self.api.api_post('/os-snapshot-manage', {'snapshot': {
            'volume_id': volume_id, 'ref': ref, 'name': 'adopted'}})[
                'snapshot']

    def test_snapshot_adopted_and_unmanaged(self):
        vol, vdi, _ = self.written_volume('silver', 4 * MiB, 'first')
        taken = self.digest(vdi)
        snap_vdi = self.xapi.VDI.snapshot(vdi, {})
        self.xapi.VDI.set_name_label(snap_vdi, 'nightly')
        self.fill(vdi, 8 * MiB, 'later')

        listed = {e['reference']['source-id']: e for e in self.api.api_get(
            '/manageable_snapshots/detail?host=%s' % base.HOST)[
                'manageable-snapshots']}
        entry = listed[self.xapi.VDI.get_uuid(snap_vdi)]
        self.assertTrue(entry['safe_to_manage'], entry)
        self.assertEqual({'source-id': self.xapi.VDI.get_uuid(vdi)},
                         entry['source_reference'])

        snap = self.start_snapshot_manage(vol['id'], {'source-name':
                                                      'nightly'})
        snap = self._poll_snapshot_while(snap['id'], ['creating'],
                                         expected_end_status='available',
                                         max_retries=60)
        self.assertEqual(1, snap['size'])
        self.assertEqual('snapshot-%s' % snap['id'],
                         self.xapi.VDI.get_name_label(snap_vdi))

        # A volume from the adopted snapshot holds its bytes.
        copy = self.create_volume('silver', snapshot_id=snap['id'])
        self.assertEqual(taken, self.digest(self.vdi_of(copy['id'])[0]))

        self.api.api_post('/snapshots/%s/action' % snap['id'],
                          {'os-unmanage': None})
        self.gone_from_api('/snapshots/%s' % snap['id'])
        self.assertEqual('nightly', self.xapi.VDI.get_name_label(snap_vdi))
        self.assertNotIn('cinder_snapshot_id',
                         self.xapi.VDI.get_other_config(snap_vdi))
        self.assertEqual(taken, self.digest(snap_vdi))

    def test_snapshot_refusals(self):
        vol, vdi, _ = self.written_volume('silver', MiB, 'first')
        other, other_vdi, _ = self.written_volume('silver', MiB, 'other')
        foreign = self.xapi.VDI.snapshot(other_vdi, {})
        for ref, reason in (
                ({'source-id': self.xapi.VDI.get_uuid(foreign)},
                 "it is not a snapshot of the volume's VDI"),
                ({'source-id': self.xapi.VDI.get_uuid(vdi)},
                 'it is not a snapshot')):
            log = self.useFixture(fixtures.FakeLogger(level=logging.WARNING))
            snap = self.start_snapshot_manage(vol['id'], ref)
            self._poll_snapshot_while(snap['id'], ['creating'],
                                      expected_end_status='error',
                                      max_retries=60)
            self.assertIn(reason, log.output)
        self.assertEqual('volume-%s' % other['id'],
                         self.xapi.VDI.get_name_label(foreign))
