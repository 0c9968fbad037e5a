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


"""The driver's options: the core's, prefixed, per backend."""

from oslo_config import cfg
from oslo_config import fixture as cfg_fixture
import testtools

from cinder_sxm import conf
from sxm_core import conf as core_conf


class TestOptions(testtools.TestCase):

    def test_every_core_option_is_prefixed(self):
        names = {o.name for o in conf.OPTS}
        for opt in core_conf.XAPI_OPTS + core_conf.MIGRATION_OPTS:
            self.assertIn('sxm_' + opt.name, names)
            self.assertNotIn(opt.name, names)
        self.assertIn('sxm_srs', names)
        for opt in conf.OPTS:
            self.assertTrue(opt.help, opt.name)

    def test_related_options_name_the_prefixed_options(self):
        (ca_file,) = [o for o in conf.OPTS if o.name == 'sxm_ca_file']
        self.assertIn('* sxm_insecure', ca_file.help)

    def test_the_core_lists_are_untouched(self):
        self.assertEqual('connection_url', core_conf.XAPI_OPTS[0].name)

    def test_core_view_feeds_the_session_pool(self):
        fix = self.useFixture(cfg_fixture.Config(cfg.ConfigOpts()))
        fix.conf.register_opts(conf.OPTS, group='backend1')
        fix.config(group='backend1', sxm_connection_url='https://xs1/',
                   sxm_connection_password='pw-secret',
                   sxm_session_pool_size=2, sxm_srs=['gold'])
        kwargs = core_conf.pool_kwargs(conf.core_view(fix.conf.backend1))
        self.assertEqual('https://xs1/', kwargs['url'])
        self.assertEqual('pw-secret', kwargs['password'])
        self.assertEqual(2, kwargs['maxsize'])

    def test_remote_pool_passwords_are_secret(self):
        fix = self.useFixture(cfg_fixture.Config(cfg.ConfigOpts()))
        fix.conf.register_opts(conf.OPTS, group='backend1')
        fix.config(group='backend1', sxm_remote_pool_passwords={
            'pool-b-uuid': 'pw:with-colon'})
        self.assertEqual({'pool-b-uuid': 'pw:with-colon'},
                         fix.conf.backend1.sxm_remote_pool_passwords)
        (opt,) = [o for o in conf.OPTS
                  if o.name == 'sxm_remote_pool_passwords']
        self.assertTrue(opt.secret)
        self.assertIn(opt, dict(conf.list_opts())['backend_defaults'])
