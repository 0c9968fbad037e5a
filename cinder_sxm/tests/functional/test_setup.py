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


"""do_setup / check_for_setup_error / stats against the simulator."""

from cinder import context
from cinder import exception
from cinder.tests.unit import test
from cinder.volume import configuration
from cinder.volume import driver as cinder_driver

from cinder_sxm import driver
from cinder_sxm.tests.functional import base
from xapi_sim import fixture

GROUP = 'sxm_setup'


class TestSetup(test.TestCase):

    def setUp(self):
        super().setUp()
        self.simfix = self.useFixture(fixture.SimulatorFixture(
            base.TOPOLOGY))

    def make(self, **overrides):
        conf = configuration.Configuration(cinder_driver.volume_opts,
                                           config_group=GROUP)
        drv = driver.SxmVolumeDriver(configuration=conf)
        values = {'sxm_connection_url': self.simfix.url('pool-a'),
                  'sxm_connection_username': self.simfix.username,
                  'sxm_connection_password': self.simfix.password,
                  'sxm_srs': ['gold', 'silver'],
                  'volume_backend_name': 'tiers'}
        values.update(overrides)
        for key, value in values.items():
            self.override_config(key, value, group=GROUP)
        drv.do_setup(context.get_admin_context())
        return drv

    def test_stats_one_pool_per_sr(self):
        drv = self.make(max_over_subscription_ratio='4.0',
                        reserved_percentage=10)
        drv.check_for_setup_error()
        got = drv.get_volume_stats(refresh=True)
        self.assertEqual('tiers', got['volume_backend_name'])
        pools = {p['pool_name']: p for p in got['pools']}
        self.assertEqual({'gold', 'silver'}, set(pools))
        gold, silver = pools['gold'], pools['silver']
        self.assertTrue(gold['thick_provisioning_support'])
        self.assertEqual(1.0, gold['max_over_subscription_ratio'])
        self.assertTrue(silver['thin_provisioning_support'])
        self.assertEqual(4.0, silver['max_over_subscription_ratio'])
        self.assertEqual(64.0, gold['total_capacity_gb'])
        self.assertEqual(10, silver['reserved_percentage'])
        x = self.simfix.sim.pools['pool-a']
        with x.db.lock:
            pool_uuid = x.db.get('pool', x.pool_ref)['uuid']
            (sr,) = x.db.find('SR', name_label='silver')
            sr_uuid = x.db.get('SR', sr)['uuid']
        self.assertEqual('SxmVolumeDriver:%s:%s' % (pool_uuid, sr_uuid),
                         silver['location_info'])

    def test_an_sr_by_uuid_works_too(self):
        x = self.simfix.sim.pools['pool-a']
        with x.db.lock:
            (sr,) = x.db.find('SR', name_label='gold')
            uuid = x.db.get('SR', sr)['uuid']
        drv = self.make(sxm_srs=[uuid])
        drv.check_for_setup_error()
        (pool,) = drv.get_volume_stats(refresh=True)['pools']
        self.assertEqual('gold', pool['pool_name'])

    def test_a_missing_sr_is_named(self):
        drv = self.make(sxm_srs=['gold', 'platinum'])
        exc = self.assertRaises(exception.VolumeBackendAPIException,
                                drv.check_for_setup_error)
        self.assertIn("SR 'platinum'", str(exc))
        self.assertIn('sxm_srs', str(exc))

    def test_no_srs_configured(self):
        drv = self.make(sxm_srs=[])
        self.assertRaises(exception.InvalidConfigurationValue,
                          drv.check_for_setup_error)

    def test_wrong_password_never_shows_it(self):
        drv = self.make(sxm_connection_password='not-the-password')
        exc = self.assertRaises(exception.VolumeBackendAPIException,
                                drv.check_for_setup_error)
        self.assertNotIn('not-the-password', str(exc))
        self.assertIn('refused the credentials of user root', str(exc))

    def test_no_url(self):
        conf = configuration.Configuration(cinder_driver.volume_opts,
                                           config_group=GROUP)
        drv = driver.SxmVolumeDriver(configuration=conf)
        self.assertRaises(exception.InvalidConfigurationValue, drv.do_setup,
                          context.get_admin_context())

    def test_stats_leave_out_a_vanished_sr(self):
        drv = self.make()
        drv.check_for_setup_error()
        x = self.simfix.sim.pools['pool-a']
        with x.db.lock:
            (sr,) = x.db.find('SR', name_label='gold')
            x.db.update('SR', sr, name_label='gold-renamed')
        pools = drv.get_volume_stats(refresh=True)['pools']
        self.assertEqual(['silver'], [p['pool_name'] for p in pools])

    def test_stats_without_xapi_offer_no_pools(self):
        drv = self.make()
        drv.check_for_setup_error()
        self.simfix.sim.stop()
        # (Connections the simulator had accepted outlive its stop.)
        drv._xapi.release_idle()
        self.assertEqual([], drv.get_volume_stats(refresh=True)['pools'])
