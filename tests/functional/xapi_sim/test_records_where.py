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

"""<Class>.get_all_records_where: xapi's filter expressions."""

import XenAPI

from tests.functional.xapi_sim import base

MiB = base.MiB


class TestRecordsWhere(base.SimulatorTestCase):

    def setUp(self):
        super().setUp()
        self.vm1 = self.create_vm('alpha')
        self.vm2 = self.create_vm('beta')
        self.template = self.create_vm('gold')
        self.api.VM.set_is_a_template(self.template, True)
        self.dom0 = [v for v in self.api.VM.get_all()
                     if self.api.VM.get_is_control_domain(v)][0]

    def where(self, expr):
        return self.api.VM.get_all_records_where(expr)

    def test_field_equals_literal(self):
        found = self.where('field "name__label" = "alpha"')
        self.assertEqual([self.vm1], list(found))
        self.assertEqual(self.api.VM.get_record(self.vm1), found[self.vm1])

    def test_guests_only_as_nova_asked(self):
        found = self.where('field "is_a_template"="false" and '
                           'field "is_control_domain"="false"')
        self.assertEqual(sorted([self.vm1, self.vm2]), sorted(found))

    def test_or_not_parentheses_true_false(self):
        self.assertEqual(
            sorted([self.vm1, self.vm2]),
            sorted(self.where('field "name__label"="alpha" or '
                              'field "name__label"="beta"')))
        self.assertEqual(
            sorted([self.vm2, self.template, self.dom0]),
            sorted(self.where('not (field "name__label"="alpha")')))
        self.assertEqual(sorted(self.api.VM.get_all()),
                         sorted(self.where('true')))
        self.assertEqual({}, self.where('false'))

    def test_enums_refs_and_ints_compare_as_stored(self):
        self.api.VM.start(self.vm1, False, False)
        host = self.api.VM.get_resident_on(self.vm1)
        self.assertEqual(
            [self.vm1],
            list(self.where('field "power_state"="Running" and '
                            'field "is_control_domain"="false"')))
        self.assertEqual(
            sorted([self.vm1, self.dom0]),
            sorted(self.where('field "resident_on"="%s"' % host)))
        self.assertEqual(
            [self.dom0], list(self.where('field "domid"="0"')))

    def test_other_classes(self):
        sr = self.sr('lvm')
        found = self.api.SR.get_all_records_where('field "type"="lvm"')
        self.assertEqual([sr], list(found))
        self.assertEqual('lvm', found[sr]['type'])

    def test_malformed_expression_and_unknown_field(self):
        for expr in ('field "name__label" =', 'name__label = "x"',
                     '(true', 'field "name__label"="a" and'):
            exc = self.assertRaises(XenAPI.Failure, self.where, expr)
            self.assertEqual('INTERNAL_ERROR', exc.details[0], expr)
        exc = self.assertRaises(XenAPI.Failure, self.where,
                                'field "no_such_field"="x"')
        self.assertEqual('INTERNAL_ERROR', exc.details[0])
        self.assertStillServing()
