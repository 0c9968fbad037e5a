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


"""Multiattach: one volume held by several VMs, where XAPI allows it.

xapi lets a second VM plug a VDI only when VDI.sharable is true, and
refuses VDI.snapshot of a sharable VDI (VDI_IS_SHARABLE). SR 'silver' is
opted in (sxm_multiattach_srs); 'gold' is not.
"""

from xapi_sim import vmbuild

from cinder_sxm.tests.functional import base


class TestMultiattach(base.SxmCinderTestCase):

    def setUp(self):
        super().setUp()
        for name, pool in (('shared', 'silver'), ('shared-gold', 'gold')):
            self.types[name] = self.api.api_post('/types', {'volume_type': {
                'name': name, 'extra_specs': {
                    'volume_backend_name': base.BACKEND,
                    'pool_name': pool,
                    'multiattach': '<is> True'}}})['volume_type']

    def backend_options(self):
        options = super().backend_options()
        options[base.BACKEND]['sxm_multiattach_srs'] = ['silver']
        return options

    def attach(self, vol, vdi, name):
        """A running VM holding ``vdi``, attached through Cinder's API."""
        vm = self.xapi.VM.create(vmbuild.vm_record(name))
        self.xapi.VBD.create(vmbuild.vbd_record(
            vm, vdi, '1', bootable=False,
            other_config={'nova_volume_id': vol['id']}))
        self.xapi.VM.start(vm, False, False)
        info = self.action(vol['id'], {'os-initialize_connection': {
            'connector': {'host': name}}})['connection_info']
        self.action(vol['id'], {'os-reserve': None})
        self.action(vol['id'], {'os-attach': {
            'instance_uuid': self.xapi.VM.get_uuid(vm),
            'mountpoint': '/dev/xvdb'}})
        self.wait_volume(vol['id'], ('attaching',), 'in-use')
        return vm, info

    def test_two_running_vms_hold_one_volume(self):
        vol = self.create_volume('shared')
        self.assertTrue(vol['multiattach'])
        vdi, sr = self.vdi_of(vol['id'])
        self.assertEqual('silver', sr)
        self.assertTrue(self.xapi.VDI.get_sharable(vdi))
        written = self.fill(vdi, 2 * base.MiB, 'shared')

        vm1, info1 = self.attach(vol, vdi, 'server-1')
        vm2, info2 = self.attach(vol, vdi, 'server-2')

        self.assertEqual(vdi, self.vbd_vdi(vm1))
        self.assertEqual(vdi, self.vbd_vdi(vm2))
        self.assertEqual(info1['data']['vdi_uuid'],
                         info2['data']['vdi_uuid'])
        got = self.api.get_volume(vol['id'])
        self.assertEqual('in-use', got['status'])
        self.assertEqual(
            {self.xapi.VM.get_uuid(vm1), self.xapi.VM.get_uuid(vm2)},
            {a['server_id'] for a in got['attachments']})
        self.assertEqual(written, self.head(vdi, len(written)))

    def test_snapshot_of_a_multiattach_volume_is_refused(self):
        vol = self.create_volume('shared')
        vdi, _ = self.vdi_of(vol['id'])
        before = set(self.xapi.VDI.get_all())

        snap = self.api.post_snapshot({'snapshot': {
            'volume_id': vol['id'], 'name': 'snap'}})
        snap = self._poll_snapshot_while(snap['id'], ['creating'])

        self.assertEqual('error', snap['status'])
        self.assertEqual(before, set(self.xapi.VDI.get_all()))
        self.assertEqual('available',
                         self.api.get_volume(vol['id'])['status'])

    def test_multiattach_type_on_an_sr_not_opted_in_is_refused(self):
        gold = self.vdis_on('gold')
        vol = self.api.post_volume({'volume': {
            'size': 1, 'volume_type': 'shared-gold', 'name': 'refused'}})

        vol = self.wait_volume(vol['id'], ('creating',), 'error')

        self.assertEqual(gold, self.vdis_on('gold'))

    def test_ordinary_volume_is_not_sharable(self):
        vol = self.create_volume('silver')
        vdi, _ = self.vdi_of(vol['id'])
        self.assertFalse(vol['multiattach'])
        self.assertFalse(self.xapi.VDI.get_sharable(vdi))
