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
from sxm_core import errors

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

    def test_refusal_is_a_core_error(self):
        exc = self.assertRaises(
            attach.CrossPoolRefused, self.info,
            sr(type='lvm', shared=False), {'xapi_pool_uuid': 'other-pool'})
        self.assertIsInstance(exc, errors.SxmError)


class TestConsumerSide(testtools.TestCase):
    """What the compute side decides from the connection info alone."""

    def data(self, consumer, **fields):
        info = attach.connection_info('vol-1', 'vdi-1', sr(**fields), POOL,
                                      {'xapi_pool_uuid': consumer},
                                      {'server': 'nfs'})
        return attach.volume_data(info)

    def test_volume_data_only_for_xensm(self):
        self.assertIsNone(attach.volume_data({'driver_volume_type': 'iscsi',
                                              'data': {}}))
        self.assertIsNone(attach.volume_data(None))
        self.assertEqual('vdi-1', self.data(POOL)['vdi_uuid'])

    def test_shared_sr_of_another_pool_can_be_introduced(self):
        self.assertIsNone(attach.check_introducible(
            'vol-1', self.data('pool-b'), 'pool-b'))

    def test_info_made_for_another_consumer_is_refused(self):
        # Handed out to a consumer of the volume's own pool, used in
        # another: no introduce data, the SR is local.
        data = self.data(POOL, type='lvmoiscsi', shared=False)
        exc = self.assertRaises(attach.CrossPoolRefused,
                                attach.check_introducible, 'vol-1', data,
                                'pool-b')
        for part in ('vol-1', 'sr-uuid-1', 'lvmoiscsi', POOL, 'pool-b',
                     'shared tier'):
            self.assertIn(part, str(exc))

    def test_sr_gone_from_its_own_pool_is_not_found(self):
        self.assertRaises(errors.NotFound, attach.check_introducible,
                          'vol-1', self.data(POOL), POOL)

    def test_refusal_for_a_migration(self):
        local = self.data(POOL, type='lvm', shared=False)
        self.assertIsNone(attach.refusal('vol-1', local, POOL))
        self.assertIsNone(attach.refusal('vol-1', local, 'pool-b',
                                         knows_sr=True))
        self.assertIsNone(attach.refusal('vol-1', self.data(POOL),
                                         'pool-b'))
        why = attach.refusal('vol-1', local, 'pool-b')
        self.assertIsInstance(why, attach.CrossPoolRefused)
        self.assertIn('local to XAPI pool %s' % POOL, str(why))
