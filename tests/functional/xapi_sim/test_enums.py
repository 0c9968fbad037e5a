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

"""Enums: any case on input (xapi lower-cases before matching), xapi's
exact case on output."""

from tests.functional.xapi_sim import base

MiB = base.MiB


class TestEnumCase(base.SimulatorTestCase):

    def test_create_records_with_lower_and_mixed_case_enums(self):
        vm = self.create_vm()
        vdi = self.api.VDI.create({
            'name_label': 'd', 'SR': self.sr('ext'),
            'virtual_size': str(4 * MiB), 'type': 'User',
            'sharable': False, 'read_only': False, 'other_config': {}})
        vbd = self.create_vbd(vm, vdi, '0', type='disk', mode='rw')
        cd = self.create_vbd(vm, base.NULL, '3', type='cd', mode='ro',
                             empty=True)
        self.assertEqual('user', self.api.VDI.get_type(vdi))
        self.assertEqual('Disk', self.api.VBD.get_type(vbd))
        self.assertEqual('RW', self.api.VBD.get_mode(vbd))
        self.assertEqual('CD', self.api.VBD.get_type(cd))
        self.assertEqual('RO', self.api.VBD.get_mode(cd))
        # Records and event snapshots carry the same exact spelling.
        rec = self.api.VBD.get_record(cd)
        self.assertEqual(('CD', 'RO'), (rec['type'], rec['mode']))
        self.api.VM.start(vm, False, False)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))

    def test_setters_accept_any_case(self):
        vm = self.create_vm()
        self.api.VM.set_actions_after_crash(vm, 'Destroy')
        self.assertEqual('destroy', self.api.VM.get_actions_after_crash(vm))
        self.api.VM.set_domain_type(vm, 'PV')
        self.assertEqual('pv', self.api.VM.get_domain_type(vm))
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        vbd = self.create_vbd(vm, vdi, '0', mode='RO')
        self.api.VBD.set_mode(vbd, 'rw')
        self.assertEqual('RW', self.api.VBD.get_mode(vbd))

    def test_unknown_enum_value_is_a_field_type_error(self):
        vm = self.create_vm()
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        self.assertXapiError(['FIELD_TYPE_ERROR', 'type'],
                             self.create_vbd, vm, vdi, type='harddisk')
        self.assertXapiError(['FIELD_TYPE_ERROR', 'domain_type'],
                             self.api.VM.set_domain_type, vm, 'kvm')
        self.assertEqual([], self.api.VM.get_VBDs(vm))
        self.assertStillServing()
