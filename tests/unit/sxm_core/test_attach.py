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


"""The xensm connection info both drivers share."""

import testtools

from sxm_core import attach

POOL = 'a1b2c3d4-0000-4000-8000-000000000001'


def sr(**fields):
    rec = {'uuid': 'sr-uuid-1', 'name_label': 'silver', 'type': 'nfs',
           'name_description': 'thin tier', 'sm_config': {'nosubdir': 'true'},
           'shared': True, 'content_type': 'user'}
    rec.update(fields)
    return rec


class TestConnectionInfo(testtools.TestCase):

    def info(self, rec, connector, device_config=None):
        return attach.connection_info('vol-1', 'vdi-1', rec, POOL, connector,
                                      device_config, tier='silver')

    def test_same_pool_names_sr_and_vdi(self):
        got = self.info(sr(type='lvmoiscsi', shared=False),
                        {'xapi_pool_uuid': POOL, 'host': 'h'})
        self.assertEqual('xensm', got['driver_volume_type'])
        self.assertEqual({'volume_id': 'vol-1', 'vdi_uuid': 'vdi-1',
                          'sr_uuid': 'sr-uuid-1', 'pool_uuid': POOL,
                          'sr_type': 'lvmoiscsi', 'shared': False},
                         got['data'])

    def test_other_pool_shared_sr_carries_introduce_without_secrets(self):
        got = self.info(sr(), {'xapi_pool_uuid': 'other-pool'},
                        {'server': '10.0.0.5', 'serverpath': '/export',
                         'password': 'hunter22',
                         'chappassword_secret': 'x-secret'})
        self.assertEqual({'sr_uuid': 'sr-uuid-1', 'name_label': 'silver',
                          'name_description': 'thin tier',
                          'type': 'nfs', 'content_type': 'user',
                          'shared': True, 'sm_config': {'nosubdir': 'true'},
                          'device_config': {'server': '10.0.0.5',
                                            'serverpath': '/export'}},
                         got['data']['introduce'])
        self.assertNotIn('hunter22', repr(got))

    def test_other_pool_local_sr_is_refused_with_advice(self):
        exc = self.assertRaises(
            attach.CrossPoolRefused, self.info,
            sr(name_label='gold', type='lvmoiscsi', shared=False),
            {'xapi_pool_uuid': 'other-pool'})
        msg = str(exc)
        for part in ('vol-1', 'silver', 'lvmoiscsi', 'other-pool',
                     'shared tier'):
            self.assertIn(part, msg)

    def test_unknown_consumer_gets_the_plain_info(self):
        for connector in (None, {}, {'host': 'cinder-volume-1'}):
            got = self.info(sr(), connector)
            self.assertNotIn('introduce', got['data'])
