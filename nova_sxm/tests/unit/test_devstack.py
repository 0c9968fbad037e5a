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

"""devstack/plugin.sh run by a real bash, as stack.sh sources it.

devstack's own functions are played by devstack_functions.sh: iniset is
devstack's code (it writes a real nova.conf), the installers and die are
recorders. nova.conf is read back with configparser and with oslo.config,
as nova-compute reads it. No nova import.
"""

import configparser
import importlib.util
import os
import shutil
import subprocess
import sys

import fixtures
from oslo_config import cfg
import testtools

from nova_sxm.conf import sxm

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
PLUGIN_DIR = os.path.join(REPO, 'devstack')
HARNESS = os.path.join(HERE, 'devstack_functions.sh')
BASH = shutil.which('bash')

URL = 'https://xenserver1.example.org/'
# Everything devstack's iniset, sed, the shell and oslo.config could eat:
# sed's & and \, words that glob (files matching them exist in the working
# directory), a shell variable name, oslo's $ substitution, comment marks.
PASSWORD = r'p@ss w0rd:;#%&\1 ? [ab] 1* !x$HOME${y}$$'
TRICKY_PASSWORDS = [PASSWORD, '"quoted"', "'", 'a"b', r'\\&&\n']

# A nova.conf as devstack's create_nova_conf leaves it, with a stale [sxm].
NOVA_CONF_BEFORE = """[DEFAULT]
debug = True
my_ip = 192.0.2.10

[sxm]
connection_url = http://old.example.org/

[oslo_concurrency]
lock_path = /opt/stack/data/nova
"""


class PluginFixture(fixtures.Fixture):
    """A devstack-like tree in a temporary directory."""

    def _setUp(self):
        self.root = self.useFixture(fixtures.TempDir()).path
        self.nova_conf = os.path.join(self.root, 'etc', 'nova', 'nova.conf')
        os.makedirs(os.path.dirname(self.nova_conf))
        with open(self.nova_conf, 'w') as f:
            f.write(NOVA_CONF_BEFORE)
        self.tempest_conf = os.path.join(self.root, 'tempest.conf')
        open(self.tempest_conf, 'w').close()
        self.calls = os.path.join(self.root, 'calls')
        self.data_dir = os.path.join(self.root, 'data')
        self.cwd = os.path.join(self.root, 'cwd')
        os.mkdir(self.cwd)
        for name in ('1abc', 'a', 'b', 'xyz'):
            open(os.path.join(self.cwd, name), 'w').close()
        # The interpreter devstack's global venv would hold; -S keeps this
        # test's own site-packages (which may hold nova) out of it.
        self.site = os.path.join(self.root, 'site')
        os.mkdir(self.site)
        venv_bin = os.path.join(self.root, 'venv', 'bin')
        os.makedirs(venv_bin)
        python = os.path.join(venv_bin, 'python3')
        with open(python, 'w') as f:
            f.write('#!/bin/sh\nexec "%s" -S "$@"\n' % sys.executable)
        os.chmod(python, 0o755)
        self.env = {
            'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
            'LANG': 'C.UTF-8',
            'SXM_TEST_CALLS': self.calls,
            'ENABLED_SERVICES': 'key,n-api,n-cpu,tempest',
            'NOVA_CONF': self.nova_conf,
            'TEMPEST_CONFIG': self.tempest_conf,
            'DATA_DIR': self.data_dir,
            'GLOBAL_VENV': 'True',
            'DEVSTACK_VENV': os.path.join(self.root, 'venv'),
            'PYTHONPATH': self.site,
            'XENAPI_CONNECTION_URL': URL,
            'XENAPI_PASSWORD': PASSWORD,
            'SXM_HOST_NAME': 'xs2',
        }

    def add_nova_shim(self):
        shim = os.path.join(self.site, 'nova', 'virt', 'sxm')
        os.makedirs(shim)
        with open(os.path.join(shim, 'driver.py'), 'w') as f:
            f.write('raise ImportError("only looked up, never run")\n')

    def run(self, *args, **env):
        full_env = dict(self.env)
        for key, value in env.items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        if os.path.exists(self.calls):
            os.unlink(self.calls)
        proc = subprocess.run([BASH, HARNESS, PLUGIN_DIR] + list(args),
                              cwd=self.cwd, env=full_env,
                              capture_output=True, text=True, timeout=60)
        return proc

    def recorded(self):
        if not os.path.exists(self.calls):
            return []
        with open(self.calls) as f:
            return f.read().splitlines()

    def nova_conf_text(self):
        with open(self.nova_conf) as f:
            return f.read()

    def ini(self, path=None):
        # No DEFAULT magic: nova.conf's [DEFAULT] is a section like others.
        parser = configparser.RawConfigParser(default_section='-')
        with open(path or self.nova_conf) as f:
            parser.read_file(f)
        return parser

    def oslo(self):
        """[sxm] as nova-compute's oslo.config reads it."""
        conf = cfg.ConfigOpts()
        sxm.register_opts(conf)
        conf(['--config-file', self.nova_conf], project='nova')
        return conf.sxm


@testtools.skipIf(BASH is None, 'bash is not installed')
class TestPluginStack(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dev = self.useFixture(PluginFixture())

    def assertRan(self, proc):
        self.assertEqual(
            0, proc.returncode,
            'stdout:\n%s\nstderr:\n%s' % (proc.stdout, proc.stderr))

    def test_settings_define_the_plugin_and_install_is_not_editable(self):
        self.dev.add_nova_shim()
        proc = self.dev.run('stack', 'install')
        self.assertRan(proc)
        self.assertEqual(['define_plugin openstack-sxm',
                          'setup_install %s' % REPO], self.dev.recorded())

    def test_install_fails_clearly_when_nova_cannot_see_the_shim(self):
        # e.g. an editable install: nova could not load the driver later.
        proc = self.dev.run('stack', 'install')
        self.assertEqual(1, proc.returncode)
        calls = self.dev.recorded()
        self.assertIn('setup_install %s' % REPO, calls)
        self.assertIn('nova.virt.sxm.driver is not importable', calls[-1])
        self.assertIn('sxm.driver.SxmDriver', calls[-1])

    def test_install_on_a_node_without_compute_skips_the_shim_check(self):
        proc = self.dev.run('stack', 'install', ENABLED_SERVICES='key,n-api')
        self.assertRan(proc)
        self.assertEqual('setup_install %s' % REPO, self.dev.recorded()[-1])

    def test_post_config_writes_nova_conf(self):
        proc = self.dev.run('stack', 'post-config')
        self.assertRan(proc)
        ini = self.dev.ini()
        self.assertEqual('sxm.driver.SxmDriver',
                         ini.get('DEFAULT', 'compute_driver'))
        lock_path = os.path.join(self.dev.data_dir, 'sxm', 'locks')
        self.assertEqual({
            'connection_url': URL,
            'connection_username': 'root',
            # '$' doubled for oslo.config, the rest byte for byte.
            'connection_password': PASSWORD.replace('$', '$$'),
            'host_name': 'xs2',
            'sr_matching_filter': 'default-sr:true',
            'lock_path': lock_path,
        }, dict(ini.items('sxm')))
        self.assertTrue(os.path.isdir(lock_path))
        # devstack's own settings survive.
        self.assertEqual('192.0.2.10', ini.get('DEFAULT', 'my_ip'))
        self.assertEqual('/opt/stack/data/nova',
                         ini.get('oslo_concurrency', 'lock_path'))
        # And nova-compute reads what was meant.
        g = self.dev.oslo()
        self.assertEqual(PASSWORD, g.connection_password)
        self.assertEqual(URL, g.connection_url)
        self.assertEqual('xs2', g.host_name)
        self.assertEqual(('default-sr', None, 'true'),
                         sxm.parse_sr_filter(g.sr_matching_filter))
        self.assertEqual(lock_path, g.lock_path)

    def test_variables_from_local_conf(self):
        proc = self.dev.run(
            'stack', 'post-config', XENAPI_USER='openstack',
            SXM_SR_MATCHING_FILTER='name-label:Local storage',
            SXM_LOCK_PATH=os.path.join(self.dev.root, 'locks'),
            SXM_HOST_NAME='4c1e4f0a-0000-4000-8000-000000000009')
        self.assertRan(proc)
        g = self.dev.oslo()
        self.assertEqual('openstack', g.connection_username)
        self.assertEqual('name-label:Local storage', g.sr_matching_filter)
        self.assertEqual(os.path.join(self.dev.root, 'locks'), g.lock_path)
        self.assertEqual('4c1e4f0a-0000-4000-8000-000000000009', g.host_name)

    def test_every_tricky_password_reads_back_unchanged(self):
        for password in TRICKY_PASSWORDS:
            proc = self.dev.run('stack', 'post-config',
                                XENAPI_PASSWORD=password)
            self.assertRan(proc)
            self.assertEqual(password, self.dev.oslo().connection_password)

    def test_post_config_twice_is_harmless(self):
        self.assertRan(self.dev.run('stack', 'post-config'))
        first = self.dev.nova_conf_text()
        self.assertRan(self.dev.run('stack', 'post-config'))
        self.assertEqual(first, self.dev.nova_conf_text())
        self.assertEqual(PASSWORD, self.dev.oslo().connection_password)

    def test_password_never_in_the_trace(self):
        # stack.sh runs with xtrace on and keeps its output in stack.log.
        proc = self.dev.run('stack', 'post-config')
        self.assertRan(proc)
        output = proc.stdout + proc.stderr
        self.assertIn('+ iniset', output)  # tracing was on
        self.assertIn('sxm_iniset_secret', output)
        self.assertNotIn('w0rd', output)

    def test_unset_host_name_means_the_pool_master(self):
        proc = self.dev.run('stack', 'post-config', SXM_HOST_NAME=None)
        self.assertRan(proc)
        self.assertFalse(self.dev.ini().has_option('sxm', 'host_name'))
        self.assertIsNone(self.dev.oslo().host_name)

    def test_missing_url_or_password_stops_with_their_name(self):
        for variable in ('XENAPI_CONNECTION_URL', 'XENAPI_PASSWORD'):
            proc = self.dev.run('stack', 'post-config', **{variable: None})
            self.assertEqual(1, proc.returncode)
            self.assertIn('%s is not set' % variable, proc.stderr)
            self.assertEqual(NOVA_CONF_BEFORE, self.dev.nova_conf_text())

    def test_password_iniset_would_mangle_is_refused_without_echo(self):
        for password in ('two  sp4ces', 'new\nl1ne', ' le4ding', '-neE'):
            proc = self.dev.run('stack', 'post-config',
                                XENAPI_PASSWORD=password)
            self.assertEqual(1, proc.returncode, password)
            self.assertIn('XENAPI_PASSWORD has leading, trailing',
                          proc.stderr)
            self.assertNotIn(password, proc.stdout + proc.stderr)
            self.assertFalse(
                self.dev.ini().has_option('sxm', 'connection_password'))

    def test_nothing_written_for_another_virt_driver(self):
        proc = self.dev.run('stack', 'post-config', VIRT_DRIVER='libvirt',
                            SXM_OVERRIDE_VIRT_DRIVER='False')
        self.assertRan(proc)
        self.assertEqual(NOVA_CONF_BEFORE, self.dev.nova_conf_text())

    def test_nothing_written_without_nova_compute(self):
        proc = self.dev.run('stack', 'post-config',
                            ENABLED_SERVICES='key,n-api')
        self.assertRan(proc)
        self.assertEqual(NOVA_CONF_BEFORE, self.dev.nova_conf_text())

    def test_disable_service_sxm_turns_the_plugin_off(self):
        proc = self.dev.run('stack', 'post-config', DISABLED_SERVICES='sxm')
        self.assertRan(proc)
        self.assertEqual(NOVA_CONF_BEFORE, self.dev.nova_conf_text())
        self.assertEqual(['define_plugin openstack-sxm'],
                         self.dev.recorded())

    def test_tempest_knows_live_block_migration(self):
        self.assertRan(self.dev.run('stack', 'test-config'))
        ini = self.dev.ini(self.dev.tempest_conf)
        self.assertEqual('True', ini.get('compute-feature-enabled',
                                         'live_migration'))
        self.assertEqual('True', ini.get(
            'compute-feature-enabled', 'block_migration_for_live_migration'))

    def test_extra_unstack_and_clean(self):
        self.assertRan(self.dev.run('stack', 'post-config'))
        self.assertRan(self.dev.run('stack', 'extra'))
        self.assertRan(self.dev.run('unstack'))
        lock_path = os.path.join(self.dev.data_dir, 'sxm', 'locks')
        self.assertTrue(os.path.isdir(lock_path))
        self.assertRan(self.dev.run('clean'))
        self.assertFalse(os.path.exists(lock_path))


class TestBashate(testtools.TestCase):

    @testtools.skipIf(importlib.util.find_spec('bashate') is None,
                      'bashate is not installed (test-requirements.txt)')
    def test_plugin_files_are_bashate_clean(self):
        files = [os.path.join(PLUGIN_DIR, name)
                 for name in ('plugin.sh', 'settings', 'override-defaults')]
        # --error E: every rule fails the run, warnings (E005...) too.
        proc = subprocess.run(
            [sys.executable, '-m', 'bashate.bashate', '--error', 'E', '-v']
            + files, capture_output=True, text=True, timeout=60)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertNotIn('warning', proc.stdout + proc.stderr)
