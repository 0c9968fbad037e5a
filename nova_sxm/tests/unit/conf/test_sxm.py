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

"""The [sxm] group of nova.conf: registration, parsing, secrets, sample."""

import configparser
import importlib.metadata
import io
import logging
import os
import re
import subprocess
import sys

import fixtures
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from oslo_config import cfg
import testtools

import nova_sxm.conf
from nova_sxm.conf import opts
from nova_sxm.conf import sxm
from sxm_core import conf as core_conf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))))

POOL_A = '6b3d0c2e-1111-4222-8333-444455556666'
POOL_B = '9f1a7d40-aaaa-4bbb-8ccc-dddd0000eeee'
# oslo.config reads '$$' as '$' (a lone '$' starts a substitution).
PASSWORD = 'p@ss:w0rd;#"%$x'
PASSWORD_IN_FILE = PASSWORD.replace('$', '$$')
REMOTE_PASSWORD = 'r3m0te:Secr#t'

SXM_NAMES = {'host_name', 'sr_matching_filter', 'default_network',
             'remote_pool_passwords', 'live_migration_network',
             'image_upload_format'}


class ConfFileMixin(object):

    def load(self, text):
        """A fresh ConfigOpts with the group registered and ``text`` read."""
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'nova.conf')
        with open(path, 'w') as f:
            f.write(text)
        conf = cfg.ConfigOpts()
        sxm.register_opts(conf)
        conf(['--config-file', path], project='nova')
        return conf


class TestRegister(ConfFileMixin, testtools.TestCase):

    def test_defaults_on_a_fresh_config(self):
        conf = cfg.ConfigOpts()
        sxm.register_opts(conf)
        conf([], project='nova')
        g = conf.sxm
        self.assertIsNone(g.host_name)
        self.assertEqual('default-sr:true', g.sr_matching_filter)
        self.assertEqual('xenbr0', g.default_network)
        self.assertEqual({}, g.remote_pool_passwords)
        self.assertIsNone(g.live_migration_network)
        self.assertEqual('vhd', g.image_upload_format)
        self.assertEqual('root', g.connection_username)
        self.assertIsNone(g.lock_path)
        # The pool arguments the driver builds from the group.
        self.assertEqual('root', core_conf.pool_kwargs(g)['username'])

    def test_every_value_read_from_nova_conf(self):
        g = self.load(
            '[DEFAULT]\ncompute_driver = sxm.driver.SxmDriver\n'
            '[sxm]\n'
            'connection_url = https://master.example.org/\n'
            'connection_username = admin\n'
            'connection_password = %s\n'
            'host_name = xs2\n'
            'sr_matching_filter = other-config:i18n-key=local-storage\n'
            'default_network = Pool-wide network\n'
            'live_migration_network = xenbr1\n'
            'remote_pool_passwords = %s:%s,%s:other\n'
            'image_upload_format = raw\n'
            'lock_path = /var/lib/nova/sxm-locks\n'
            'max_concurrent_storage_migrations = 3\n'
            % (PASSWORD_IN_FILE, POOL_A, REMOTE_PASSWORD, POOL_B)).sxm
        self.assertEqual('https://master.example.org/', g.connection_url)
        self.assertEqual('admin', g.connection_username)
        self.assertEqual(PASSWORD, g.connection_password)
        self.assertEqual('xs2', g.host_name)
        self.assertEqual(('other-config', 'i18n-key', 'local-storage'),
                         sxm.parse_sr_filter(g.sr_matching_filter))
        self.assertEqual('Pool-wide network', g.default_network)
        self.assertEqual('xenbr1', g.live_migration_network)
        # A ':' inside a password survives the dictionary syntax.
        self.assertEqual({POOL_A: REMOTE_PASSWORD, POOL_B: 'other'},
                         g.remote_pool_passwords)
        self.assertEqual('raw', g.image_upload_format)
        self.assertEqual('/var/lib/nova/sxm-locks', g.lock_path)
        self.assertEqual(3, g.max_concurrent_storage_migrations)

    def test_bad_sr_matching_filter_is_refused_naming_the_option(self):
        conf = self.load('[sxm]\nsr_matching_filter = local-storage\n')
        exc = self.assertRaises(cfg.ConfigFileValueError,
                                getattr, conf.sxm, 'sr_matching_filter')
        self.assertIn('sr_matching_filter', str(exc))
        self.assertIn('local-storage', str(exc))

    def test_unknown_image_format_is_refused(self):
        conf = self.load('[sxm]\nimage_upload_format = qcow2\n')
        exc = self.assertRaises(cfg.ConfigFileValueError,
                                getattr, conf.sxm, 'image_upload_format')
        self.assertIn('image_upload_format', str(exc))

    def test_core_limits_apply_in_the_nova_group(self):
        conf = self.load('[sxm]\nmax_concurrent_storage_migrations = 4\n')
        self.assertRaises(cfg.ConfigFileValueError, getattr, conf.sxm,
                          'max_concurrent_storage_migrations')

    def test_registering_again_or_next_to_the_cli_lists_is_harmless(self):
        # The sxm CLI registers the core lists in a group named 'sxm' too;
        # both may end up on one ConfigOpts in a process.
        conf = cfg.ConfigOpts()
        conf.register_opts(core_conf.XAPI_OPTS + core_conf.MIGRATION_OPTS,
                           group='sxm')
        sxm.register_opts(conf)
        sxm.register_opts(conf)
        conf([], project='nova')
        self.assertEqual('xenbr0', conf.sxm.default_network)

    def test_package_registers_on_the_global_conf(self):
        self.assertIs(cfg.CONF, nova_sxm.conf.CONF)
        for opt in sxm.ALL_OPTS:
            self.assertIn(opt.dest, cfg.CONF.sxm)


class TestListOpts(testtools.TestCase):

    def test_group_and_every_option(self):
        listing = sxm.list_opts()
        self.assertEqual([sxm.sxm_group], list(listing))
        self.assertEqual('sxm', sxm.sxm_group.name)
        all_opts = listing[sxm.sxm_group]
        names = [o.name for o in all_opts]
        self.assertEqual(len(names), len(set(names)), names)
        self.assertTrue(SXM_NAMES <= set(names), names)
        # The core's lists are taken as they are, so an option added there
        # reaches nova.conf without a change here.
        for opt in core_conf.XAPI_OPTS + core_conf.MIGRATION_OPTS:
            self.assertTrue(any(o is opt for o in all_opts), opt.name)

    def test_every_option_has_help(self):
        self.assertTrue(sxm.sxm_group.help.strip())
        for opt in sxm.ALL_OPTS:
            self.assertTrue(opt.help and opt.help.strip(), opt.name)
        for opt in sxm.SXM_OPTS:
            self.assertIn('Related options:', opt.help, opt.name)

    def test_generator_entry_point_function_gives_pairs(self):
        self.assertEqual([(sxm.sxm_group, sxm.ALL_OPTS)], opts.list_opts())


class TestSecrets(ConfFileMixin, testtools.TestCase):

    def test_passwords_are_secret(self):
        by_name = {o.name: o for o in sxm.ALL_OPTS}
        self.assertTrue(by_name['connection_password'].secret)
        self.assertTrue(by_name['remote_pool_passwords'].secret)
        self.assertFalse(by_name['host_name'].secret)

    def test_option_dump_at_startup_hides_passwords(self):
        # Nova logs every option value at startup (log_opt_values).
        conf = self.load(
            '[sxm]\nconnection_password = %s\n'
            'remote_pool_passwords = %s:%s\n'
            % (PASSWORD_IN_FILE, POOL_A, REMOTE_PASSWORD))
        stream = io.StringIO()
        logger = logging.getLogger('test_sxm_conf_dump')
        logger.propagate = False
        handler = logging.StreamHandler(stream)
        logger.addHandler(handler)
        self.addCleanup(logger.removeHandler, handler)
        conf.log_opt_values(logger, logging.WARNING)
        dump = stream.getvalue()
        self.assertIn('sxm.connection_password', dump)
        self.assertIn('sxm.remote_pool_passwords', dump)
        self.assertIn('sxm.default_network', dump)
        self.assertNotIn(PASSWORD, dump)
        self.assertNotIn(REMOTE_PASSWORD, dump)
        self.assertNotIn('r3m0te', dump)

    def test_malformed_password_map_error_does_not_echo_it(self):
        conf = self.load('[sxm]\nremote_pool_passwords = S3cretNoPool\n')
        exc = self.assertRaises(cfg.ConfigFileValueError, getattr,
                                conf.sxm, 'remote_pool_passwords')
        self.assertIn('remote_pool_passwords', str(exc))
        self.assertNotIn('S3cretNoPool', str(exc))


GOOD_FILTERS = [
    ('default-sr:true', ('default-sr', None, 'true')),
    ('other-config:i18n-key=local-storage',
     ('other-config', 'i18n-key', 'local-storage')),
    ('other-config:tier=gold=fast', ('other-config', 'tier', 'gold=fast')),
    ('name-label:Local storage', ('name-label', None, 'Local storage')),
    ('name-label:a:b', ('name-label', None, 'a:b')),
    ('uuid:' + POOL_A, ('uuid', None, POOL_A)),
    ('uuid:' + POOL_A.upper(), ('uuid', None, POOL_A)),
]

BAD_FILTERS = [
    ('', 'empty'),
    ('default-sr', 'no ":"'),
    ('default-sr:false', 'default-sr:true'),
    ('default-sr:True', 'default-sr:true'),
    ('other-config:i18n-key', 'KEY=VALUE'),
    ('other-config:=local', 'KEY is empty'),
    ('other-config:tier=', 'VALUE is empty'),
    ('name-label:', 'name is empty'),
    ('uuid:1234', 'not a UUID'),
    ('uuid:' + POOL_A + 'x', 'not a UUID'),
    ('label:Local storage', "unknown kind 'label'"),
    ('Name-label:x', "unknown kind 'Name-label'"),
    ('name-label:a\nb', 'several lines'),
    ('local-storage', 'no ":"'),
]


def oslo_accepts(value):
    try:
        cfg.types.String(regex=sxm.SR_FILTER_REGEX)(value)
    except ValueError:
        return False
    return True


def helper_accepts(value):
    try:
        sxm.parse_sr_filter(value)
    except ValueError:
        return False
    return True


class TestParseSrFilter(testtools.TestCase):

    def test_accepts(self):
        for value, expected in GOOD_FILTERS:
            self.assertEqual(expected, sxm.parse_sr_filter(value), value)

    def test_refuses_with_a_clear_message(self):
        for value, reason in BAD_FILTERS:
            exc = self.assertRaises(ValueError, sxm.parse_sr_filter, value)
            msg = str(exc)
            self.assertIn('sr_matching_filter', msg)
            self.assertIn(repr(value), msg)
            self.assertIn(reason, msg)
            self.assertIn('other-config:KEY=VALUE', msg)

    def test_refuses_non_strings(self):
        self.assertRaises(ValueError, sxm.parse_sr_filter, None)

    def test_oslo_regex_agrees_with_the_helper(self):
        for value, _ in GOOD_FILTERS:
            self.assertTrue(oslo_accepts(value), value)
        for value, _ in BAD_FILTERS:
            self.assertFalse(oslo_accepts(value), value)

    @settings(database=None, deadline=None)
    @given(st.sampled_from(['default-sr:', 'other-config:', 'name-label:',
                            'uuid:', 'uuid:' + POOL_A, '', 'x:']),
           st.text(alphabet='ab=:- \nAF0123456789', max_size=40))
    def test_oslo_regex_agrees_with_the_helper_on_any_input(
            self, head, tail):
        value = head + tail
        self.assertEqual(helper_accepts(value), oslo_accepts(value), value)


class TestSampleConfig(testtools.TestCase):
    """The real oslo-config-generator, run as operators run it."""

    def test_sample_has_the_group_and_every_option(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, 'cache'))
        eps = importlib.metadata.entry_points(group='oslo.config.opts',
                                              name='nova_sxm')
        if not eps:
            # Until the package is reinstalled from a setup.cfg declaring
            # the entry point, declare it through a dist-info on the path;
            # the generator still finds it through stevedore.
            dist = os.path.join(tmp, 'nova_sxm_conf_test-0.dist-info')
            os.mkdir(dist)
            with open(os.path.join(dist, 'METADATA'), 'w') as f:
                f.write('Metadata-Version: 2.1\nName: nova-sxm-conf-test\n'
                        'Version: 0\n')
            with open(os.path.join(dist, 'entry_points.txt'), 'w') as f:
                f.write('[oslo.config.opts]\n'
                        'nova_sxm = nova_sxm.conf.opts:list_opts\n')
            env['PYTHONPATH'] = os.pathsep.join(
                [tmp, REPO] + [p for p in [env.get('PYTHONPATH')] if p])
        generator = os.path.join(os.path.dirname(sys.executable),
                                 'oslo-config-generator')
        cmd = ([generator] if os.path.exists(generator)
               else [sys.executable, '-m', 'oslo_config.generator'])
        sample = os.path.join(tmp, 'nova-sxm.conf.sample')
        proc = subprocess.run(
            cmd + ['--config-file',
                   os.path.join('etc', 'oslo-config-generator',
                                'nova-sxm.conf'),
                   '--output-file', sample],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(0, proc.returncode, proc.stderr)
        with open(sample) as f:
            text = f.read()
        parser = configparser.ConfigParser()
        parser.read_string(text)
        self.assertIn('sxm', parser.sections())
        sxm_part = text[text.index('\n[sxm]\n'):]
        for opt in sxm.ALL_OPTS:
            self.assertIsNotNone(
                re.search(r'^#%s =( |$)' % re.escape(opt.name), sxm_part,
                          re.MULTILINE), opt.name)
        self.assertIn('#sr_matching_filter = default-sr:true', sxm_part)
        self.assertIn('#default_network = xenbr0', sxm_part)
        self.assertIn('bridge equals the bridge', sxm_part)
