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

"""The record of a migration under way that XAPI keeps (the marker)."""

import json

import testtools

from nova_sxm.virt import migration

FACTS = {'pool_uuid': 'b6f1c0de-0000-4000-8000-000000000001',
         'host_uuid': 'b6f1c0de-0000-4000-8000-000000000002',
         'host_name': 'pool-b-host1',
         'sr_uuid': 'b6f1c0de-0000-4000-8000-000000000003'}
INSTANCE = '6f1c0de0-0000-4000-8000-00000000000a'


def marker(**over):
    value = migration.make_marker(
        INSTANCE, 'vm-uuid', 'https://root:s3cret@pool-a.example.org/',
        'pool-a-uuid', 'host-a-uuid', 'https://pool-b.example.org/', FACTS,
        started='2026-12-06T09:00:00Z')
    value.update(over)
    return value


class MarkerTest(testtools.TestCase):

    def test_public_facts_only(self):
        value = marker()
        self.assertEqual(
            {'version', 'instance_uuid', 'vm_uuid', 'source_url',
             'source_pool_uuid', 'source_host_uuid', 'dest_url',
             'dest_pool_uuid', 'dest_host_uuid', 'dest_host_name',
             'started'}, set(value))
        # A URL's user information never reaches XAPI's other_config.
        self.assertEqual('https://pool-a.example.org/', value['source_url'])
        self.assertNotIn('s3cret', json.dumps(value))
        self.assertEqual(FACTS['pool_uuid'], value['dest_pool_uuid'])

    def test_round_trip(self):
        value = marker()
        self.assertEqual(value, migration.read_marker(json.dumps(value),
                                                      INSTANCE))

    def test_garbled_or_foreign_records_are_ignored(self):
        for text in (None, '', 'not json', '[1, 2]', '{"dest_url": ""}',
                     json.dumps(marker(dest_pool_uuid=None))):
            self.assertIsNone(migration.read_marker(text, INSTANCE), text)
        # Another instance's record.
        self.assertIsNone(migration.read_marker(json.dumps(marker()),
                                                'another-instance'))
