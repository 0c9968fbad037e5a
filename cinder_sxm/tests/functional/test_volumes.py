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


"""Volume lifecycle through the Cinder API, checked in XAPI."""

from cinder_sxm.tests.functional import base

GiB = base.GiB
MiB = base.MiB


class TestVolumeLifecycle(base.SxmCinderTestCase):

    def test_pools_and_types(self):
        gold = self.create_volume('gold')
        silver = self.create_volume('silver')
        self.assertEqual('%s#gold' % base.HOST,
                         self.admin_volume(gold['id']).host)
        gvdi, gsr = self.vdi_of(gold['id'])
        svdi, ssr = self.vdi_of(silver['id'])
        self.assertEqual(('gold', 'silver'), (gsr, ssr))
        self.assertEqual(str(GiB), self.xapi.VDI.get_virtual_size(gvdi))
        # Thick gold allocates the whole volume, thin silver nothing yet.
        self.assertEqual(str(GiB),
                         self.xapi.VDI.get_physical_utilisation(gvdi))
        self.assertLess(int(self.xapi.VDI.get_physical_utilisation(svdi)),
                        GiB)
        self.assertEqual(gold['id'], self.xapi.VDI.get_other_config(
            gvdi)['cinder_volume_id'])

    def test_extend_snapshot_clone_delete(self):
        vol = self.create_volume('silver')
        vdi, _ = self.vdi_of(vol['id'])
        data = self.fill(vdi, 4 * MiB, 'lifecycle')

        self.action(vol['id'], {'os-extend': {'new_size': 2}})
        vol = self.wait_volume(vol['id'], ('extending',), 'available')
        self.assertEqual(2, vol['size'])
        self.assertEqual(str(2 * GiB), self.xapi.VDI.get_virtual_size(vdi))

        snap = self.api.post_snapshot({'snapshot': {
            'volume_id': vol['id'], 'name': 'snap'}})
        snap = self._poll_snapshot_while(snap['id'], ['creating'],
                                         expected_end_status='available',
                                         max_retries=60)
        snap_vdis = self.xapi.VDI.get_snapshots(vdi)
        self.assertEqual(1, len(snap_vdis))

        # From the snapshot, larger. (Cinder schedules it to the
        # snapshot's own pool.)
        from_snap = self.create_volume('silver', size=3,
                                       snapshot_id=snap['id'])
        fvdi, fsr = self.vdi_of(from_snap['id'])
        self.assertEqual('silver', fsr)
        self.assertEqual(str(3 * GiB), self.xapi.VDI.get_virtual_size(fvdi))

        clone = self.create_volume('silver', size=2, source_volid=vol['id'])
        cvdi, csr = self.vdi_of(clone['id'])
        self.assertEqual('silver', csr)
        self.assertNotEqual(vdi, cvdi)
        # The bytes written before the extend are in every copy.
        for ref in (vdi, fvdi, cvdi):
            self.assertEqual(data, self.head(ref, len(data)), ref)
        self.assertEqual(self.digest(vdi), self.digest(cvdi))

        self.api.delete_snapshot(snap['id'])
        self._poll_snapshot_while(snap['id'], ['deleting'], max_retries=60)
        self.assertEqual([], self.xapi.VDI.get_snapshots(vdi))

        for volume in (clone, from_snap, vol):
            self.api.delete_volume(volume['id'])
            self.assertIsNone(self._poll_volume_while(
                volume['id'], ['deleting'], max_retries=60))
        for ref in (vdi, fvdi, cvdi):
            self.assertNotIn(ref, self.xapi.VDI.get_all())

    def test_deleting_a_volume_whose_vdi_is_gone(self):
        vol = self.create_volume('gold')
        vdi, _ = self.vdi_of(vol['id'])
        self.xapi.VDI.destroy(vdi)  # e.g. removed by an operator
        self.api.delete_volume(vol['id'])
        self.assertIsNone(self._poll_volume_while(
            vol['id'], ['deleting'], max_retries=60))

    def test_clone_onto_another_tier_copies_and_grows(self):
        # Cinder's scheduler keeps clones in the source's pool; the driver
        # still copies when asked for another SR (VDI.copy, then resize).
        src = self.create_volume('silver')
        src_vdi, _ = self.vdi_of(src['id'])
        data = self.fill(src_vdi, 2 * MiB, 'cross-tier')
        dest = self.create_volume('gold', size=2)
        dest_obj = self.admin_volume(dest['id'])
        drv = self.volume.manager.driver
        update = drv.create_cloned_volume(dest_obj,
                                          self.admin_volume(src['id']))
        new = self.xapi.VDI.get_by_uuid(update['provider_location'])
        self.addCleanup(self.xapi.VDI.destroy, new)
        self.assertEqual('gold', self.xapi.SR.get_name_label(
            self.xapi.VDI.get_SR(new)))
        self.assertEqual(str(2 * GiB), self.xapi.VDI.get_virtual_size(new))
        self.assertEqual(data, self.head(new, len(data)))
        self.assertEqual(dest['id'], self.xapi.VDI.get_other_config(
            new)['cinder_volume_id'])
