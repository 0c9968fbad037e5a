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

"""The get_all_records_where expression language, without a server."""

import testtools

from xapi_sim import dbfilter
from xapi_sim import errors
from xapi_sim import schema


def matches(expr, **rec):
    base = {'name_label': 'a', 'is_a_template': False, 'VCPUs_max': 2,
            'power_state': 'Halted', 'tags': [], 'other_config': {}}
    base.update(rec)
    return dbfilter.match(dbfilter.parse(expr), 'VM', base,
                          schema.CLASSES['VM'])


class TestParse(testtools.TestCase):

    def test_and_or_associate_left_not_binds_tight(self):
        self.assertEqual(
            ('or', ('and', ('true',), ('false',)), ('true',)),
            dbfilter.parse('true and false or true'))
        self.assertEqual(
            ('and', ('true',), ('or', ('false',), ('true',))),
            dbfilter.parse('true and (false or true)'))
        self.assertEqual(('and', ('not', ('false',)), ('true',)),
                         dbfilter.parse('not false and true'))

    def test_errors(self):
        for expr in ('', 'field', '"a" =', 'true true', 'and', '"x" = "y"'
                     ' or', 'fieldx "a"="b"'):
            exc = self.assertRaises(errors.XapiError, dbfilter.parse, expr)
            self.assertEqual('INTERNAL_ERROR', exc.code, expr)


class TestMatch(testtools.TestCase):

    def test_values_compare_as_the_database_stores_them(self):
        self.assertTrue(matches('field "name__label"="a"'))
        self.assertTrue(matches('field "is_a_template"="false"'))
        self.assertFalse(matches('field "is_a_template"="False"'))
        self.assertTrue(matches('field "VCPUs_max"="2"'))
        self.assertTrue(matches('field "power_state"="Halted"'))
        self.assertTrue(matches('"x"="x"'))
        self.assertTrue(matches('field "tags"="(\'a\' \'b\')"',
                                tags=['a', 'b']))
        self.assertTrue(matches('field "other_config"="((\'k\' \'v\'))"',
                                other_config={'k': 'v'}))

    def test_unknown_column(self):
        for col in ('nope', 'name_label'):
            exc = self.assertRaises(errors.XapiError, matches,
                                    'field "%s"="a"' % col)
            self.assertEqual('INTERNAL_ERROR', exc.code)
