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


"""Pool stats and location_info from SR records."""

import testtools

from cinder_sxm import stats

GiB = 1 << 30
POOL = 'a1b2c3d4-0000-4000-8000-000000000001'


def sr(**fields):
    rec = {'uuid': 'sr-uuid-1', 'name_label': 'silver', 'type': 'nfs',
           'shared': True, 'content_type': 'user',
           'physical_size': str(100 * GiB),
           'physical_utilisation': str(30 * GiB),
           'virtual_allocation': str(250 * GiB)}
    rec.update(fields)
    return rec


class TestPoolStats(testtools.TestCase):

    def test_thin_nfs(self):
        got = stats.pool_stats(sr(), POOL, 20.0, 5)
        self.assertEqual('silver', got['pool_name'])
        self.assertEqual(100.0, got['total_capacity_gb'])
        self.assertEqual(70.0, got['free_capacity_gb'])
        self.assertEqual(250.0, got['provisioned_capacity_gb'])
        self.assertTrue(got['thin_provisioning_support'])
        self.assertFalse(got['thick_provisioning_support'])
        self.assertEqual(20.0, got['max_over_subscription_ratio'])
        self.assertEqual(5, got['reserved_percentage'])
        self.assertFalse(got['QoS_support'])
        self.assertFalse(got['multiattach'])
        self.assertEqual('SxmVolumeDriver:%s:sr-uuid-1' % POOL,
                         got['location_info'])

    def test_every_type(self):
        for sr_type, thin in (('ext', True), ('file', True), ('nfs', True),
                              ('lvm', False), ('lvmoiscsi', False),
                              ('lvmohba', False)):
            got = stats.pool_stats(sr(type=sr_type), POOL, 20.0, 0)
            self.assertEqual(thin, got['thin_provisioning_support'], sr_type)
            self.assertEqual(not thin, got['thick_provisioning_support'],
                             sr_type)
            # A thick SR cannot over-subscribe: XAPI allocates in full.
            self.assertEqual(20.0 if thin else 1.0,
                             got['max_over_subscription_ratio'], sr_type)

    def test_multiattach_only_where_opted_in_and_the_pool_url(self):
        got = stats.pool_stats(sr(), POOL, 20.0, 0, multiattach=True,
                               pool_url='https://xs1.example.org/')
        self.assertTrue(got['multiattach'])
        self.assertEqual('https://xs1.example.org/', got[stats.POOL_URL])
        self.assertFalse(stats.pool_stats(sr(), POOL, 20.0, 0)[
            'multiattach'])

    def test_overfull_sr_reports_no_free_space(self):
        got = stats.pool_stats(sr(physical_utilisation=str(101 * GiB)),
                               POOL, 1.0, 0)
        self.assertEqual(0.0, got['free_capacity_gb'])


class TestLocationInfo(testtools.TestCase):

    def test_round_trip(self):
        text = stats.location_info(POOL, 'sr-9')
        self.assertEqual((POOL, 'sr-9'), stats.parse_location_info(text))

    def test_foreign_or_broken(self):
        for text in (None, '', 'LVMVolumeDriver:host:vg', 'SxmVolumeDriver',
                     'SxmVolumeDriver:%s' % POOL, 'SxmVolumeDriver::sr',
                     'SxmVolumeDriver:%s:sr:extra' % POOL):
            self.assertIsNone(stats.parse_location_info(text), text)
