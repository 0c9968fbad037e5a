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

"""A pool's database: event snapshots, refs, relation sets."""

import testtools

from xapi_sim import db as dbmod
from xapi_sim import dbfilter


class DatabaseTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.db = dbmod.Database()

    def test_an_event_keeps_the_record_as_it_was(self):
        flags = {0: ['fpu', 'sse'], 1: ['fpu']}
        ref = self.db.add('VM_metrics', {'VCPUs_flags': flags,
                                         'VCPUs_utilisation': {0: 0.5}})
        added = self.db.events[-1]['snapshot']
        rec = self.db.get('VM_metrics', ref)
        rec['VCPUs_flags'][0].append('avx')
        self.db.update('VM_metrics', ref, VCPUs_utilisation={0: 0.9})
        self.assertEqual({0: ['fpu', 'sse'], 1: ['fpu']},
                         added['VCPUs_flags'])
        self.assertEqual({0: 0.5}, added['VCPUs_utilisation'])
        modified = self.db.events[-1]['snapshot']
        self.assertEqual(['fpu', 'sse', 'avx'], modified['VCPUs_flags'][0])
        self.assertIsNot(rec['VCPUs_flags'][0], modified['VCPUs_flags'][0])

    def test_refs_and_uuids_are_unique_version_4(self):
        refs = [self.db.add('network', {'name_label': 'n%d' % i})
                for i in range(500)]
        uuids = [self.db.get('network', r)['uuid'] for r in refs]
        self.assertEqual(500, len(set(refs)))
        self.assertEqual(500, len(set(uuids)))
        for uuid in uuids:
            self.assertEqual('4', uuid[14])
        session = self.db.add('session', {})
        self.assertTrue(session.startswith('OpaqueRef:'))
        self.assertNotIn(session, refs)

    def test_referring_follows_the_relation_sets(self):
        vm = self.db.add('VM', {'name_label': 'vm'})
        other = self.db.add('VM', {'name_label': 'other'})
        vbds = [self.db.add('VBD', {'VM': vm}) for _ in range(3)]
        self.assertEqual(set(vbds), self.db.referring('VBD', 'VM', vm))
        self.db.update('VBD', vbds[0], VM=other)
        self.assertEqual(set(vbds[1:]), self.db.referring('VBD', 'VM', vm))
        self.db.remove('VBD', vbds[1])
        self.assertEqual({vbds[2]}, self.db.referring('VBD', 'VM', vm))
        self.assertEqual(set(), self.db.referring('VBD', 'VM',
                                                  'OpaqueRef:gone'))
        # No relation set (or the null ref): the caller must scan.
        self.assertIsNone(self.db.referring('VBD', 'VM', dbmod.NULL))
        self.assertIsNone(self.db.referring('VBD', 'device', 'xvda'))


class CandidatesTest(testtools.TestCase):
    """Which refs a query may match, from the relation sets."""

    SETS = {('VM', 'a'): {'1', '2'}, ('VM', 'b'): {'3'}}

    def candidates(self, expr):
        return dbfilter.candidates(dbfilter.parse(expr),
                                   lambda col, v: self.SETS.get((col, v)))

    def test_and_narrows_or_widens(self):
        self.assertEqual({'1', '2'}, self.candidates('field "VM" = "a"'))
        self.assertEqual({'1', '2'}, self.candidates('"a" = field "VM"'))
        self.assertEqual({'1', '2', '3'}, self.candidates(
            'field "VM" = "a" or field "VM" = "b"'))
        self.assertEqual(set(), self.candidates(
            'field "VM" = "a" and field "VM" = "b"'))
        self.assertEqual({'3'}, self.candidates(
            'field "mode" = "RW" and field "VM" = "b"'))
        self.assertEqual(set(), self.candidates('false and true'))

    def test_anything_else_scans_the_table(self):
        for expr in ('true', 'field "mode" = "RW"',
                     'field "VM" = "a" or field "mode" = "RW"',
                     'not field "VM" = "a"', 'field "VM" = field "VDI"',
                     'field "VM" = "unknown"'):
            self.assertIsNone(self.candidates(expr), expr)

    def test_unknown_columns(self):
        fields = {'VM': None, 'name_label': None}
        self.assertEqual({'bogus', 'name_label'}, dbfilter.unknown_columns(
            dbfilter.parse('field "VM" = "a" and (field "bogus" = "x" or '
                           'not field "name_label" = "y")'), fields))
        self.assertEqual(set(), dbfilter.unknown_columns(
            dbfilter.parse('field "name__label" = "a"'), fields))
