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

"""The live tests' own logic: when they run, and with which settings."""

import testtools

from nova_sxm.tests.live import pools

FULL = {'SXM_LIVE_SOURCE_URL': 'https://a.example.org/',
        'SXM_LIVE_DEST_URL': 'https://b.example.org/',
        'SXM_LIVE_PASSWORD': 'pw', 'SXM_LIVE_IMAGE': '/images/x.vhd'}


class SkipReasonTest(testtools.TestCase):

    def test_names_every_missing_variable(self):
        reason = pools.skip_reason({'SXM_LIVE_SOURCE_URL': 'https://a/'})
        for name in ('SXM_LIVE_DEST_URL', 'SXM_LIVE_PASSWORD',
                     'SXM_LIVE_IMAGE'):
            self.assertIn(name, reason)
        self.assertNotIn('SXM_LIVE_SOURCE_URL (', reason)
        self.assertIn('README.rst', reason)

    def test_none_when_configured(self):
        self.assertIsNone(pools.skip_reason(FULL))


class LivePoolsTest(testtools.TestCase):

    def test_settings(self):
        env = dict(FULL, SXM_LIVE_DEST_PASSWORD='other',
                   SXM_LIVE_SOURCE_HOST='xcp1', SXM_LIVE_DEST_SR='uuid:s1',
                   SXM_LIVE_INSECURE='1')
        live = pools.LivePools(env)
        self.assertFalse(live.simulated)
        self.assertEqual({'pool-a': 'pw', 'pool-b': 'other'},
                         live.passwords)
        self.assertEqual('https://b.example.org/', live.url('pool-b'))
        self.assertEqual('vhd', live.image_format)
        self.assertEqual({'pool-a': {'host_name': 'xcp1'},
                          'pool-b': {'sr_matching_filter': 'uuid:s1'}},
                         live.compute_flags)
        self.assertEqual({'ca_file': None, 'insecure': True},
                         live.tls_flags())
        self.assertIn('transport', live.session_kwargs())
