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

"""devstack/plugin.sh's Cinder backend, run by a real bash.

The harness and fixture are the Nova side's (devstack's own iniset and
iniget, recorders for the rest, a stand-in ``openstack`` recording its
argv). cinder.conf is read back with configparser and with oslo.config
and this driver's options, as cinder-volume reads its backend section.
No cinder or nova import.
"""

import os
import shlex

from oslo_config import cfg
import testtools

from cinder_sxm import conf as sxm_conf
# The module, not its names: its test cases stay out of this module.
from nova_sxm.tests.unit import test_devstack as nova_devstack

URL = nova_devstack.URL
PASSWORD = nova_devstack.PASSWORD
SR_UUID = '4c1e4f0a-0000-4000-8000-00000000000a'

# As devstack's configure_cinder leaves it with the default LVM backend.
CINDER_CONF_BEFORE = """[DEFAULT]
debug = True
enabled_backends = lvmdriver-1
default_volume_type = lvmdriver-1

[lvmdriver-1]
volume_driver = cinder.volume.drivers.lvm.LVMVolumeDriver
volume_backend_name = lvmdriver-1
"""


class CinderPluginFixture(nova_devstack.PluginFixture):

    def _setUp(self):
        super()._setUp()
        self.cinder_conf = os.path.join(self.root, 'etc', 'cinder',
                                        'cinder.conf')
        os.makedirs(os.path.dirname(self.cinder_conf))
        with open(self.cinder_conf, 'w') as f:
            f.write(CINDER_CONF_BEFORE)
        self.env.update({
            'ENABLED_SERVICES': 'key,c-api,c-sch,c-vol',
            'CINDER_CONF': self.cinder_conf,
            'REGION_NAME': 'RegionOne',
        })

    def cinder_conf_text(self):
        with open(self.cinder_conf) as f:
            return f.read()

    def oslo(self, backend='sxm'):
        """The backend section as cinder-volume's oslo.config reads it."""
        conf = cfg.ConfigOpts()
        conf.register_opts([cfg.ListOpt('enabled_backends')])
        # Cinder's own options of a backend section.
        conf.register_opts([cfg.StrOpt('volume_driver'),
                            cfg.StrOpt('volume_backend_name')],
                           group=backend)
        conf.register_opts(sxm_conf.OPTS, group=backend)
        conf(['--config-file', self.cinder_conf], project='cinder')
        return conf

    def openstack_calls(self):
        return [shlex.split(line) for line in self.recorded()
                if line.startswith('openstack ')]


@testtools.skipIf(nova_devstack.BASH is None, 'bash is not installed')
class TestCinderBackend(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dev = self.useFixture(CinderPluginFixture())
        self.lock_path = os.path.join(self.dev.data_dir, 'sxm', 'locks')

    def assertRan(self, proc):
        self.assertEqual(
            0, proc.returncode,
            'stdout:\n%s\nstderr:\n%s' % (proc.stdout, proc.stderr))

    def test_post_config_adds_the_backend(self):
        self.assertRan(self.dev.run('stack', 'post-config'))
        ini = self.dev.ini(self.dev.cinder_conf)
        self.assertEqual({
            'volume_driver': 'cinder_sxm.driver.SxmVolumeDriver',
            'volume_backend_name': 'sxm',
            'sxm_connection_url': URL,
            'sxm_connection_username': 'root',
            'sxm_connection_password': PASSWORD.replace('$', '$$'),
            'sxm_srs': 'gold,silver',
            'sxm_lock_path': self.lock_path,
        }, dict(ini.items('sxm')))
        self.assertTrue(os.path.isdir(self.lock_path))
        # devstack's backend and settings survive.
        self.assertEqual('lvmdriver-1,sxm',
                         ini.get('DEFAULT', 'enabled_backends'))
        self.assertEqual('lvmdriver-1',
                         ini.get('DEFAULT', 'default_volume_type'))
        self.assertEqual('lvmdriver-1',
                         ini.get('lvmdriver-1', 'volume_backend_name'))
        # cinder-volume reads what was meant.
        conf = self.dev.oslo()
        self.assertEqual(['lvmdriver-1', 'sxm'], conf.enabled_backends)
        self.assertEqual(PASSWORD, conf.sxm.sxm_connection_password)
        self.assertEqual(URL, conf.sxm.sxm_connection_url)
        self.assertEqual(['gold', 'silver'], conf.sxm.sxm_srs)
        self.assertEqual(self.lock_path, conf.sxm.sxm_lock_path)
        # Not a compute node: nova.conf is not touched.
        self.assertEqual(nova_devstack.NOVA_CONF_BEFORE,
                         self.dev.nova_conf_text())

    def test_post_config_twice_gives_the_same_file(self):
        self.assertRan(self.dev.run('stack', 'post-config'))
        first = self.dev.cinder_conf_text()
        self.assertRan(self.dev.run('stack', 'post-config'))
        self.assertEqual(first, self.dev.cinder_conf_text())
        self.assertEqual(['lvmdriver-1', 'sxm'],
                         self.dev.oslo().enabled_backends)

    def test_every_tricky_password_reads_back_unchanged(self):
        for password in nova_devstack.TRICKY_PASSWORDS:
            proc = self.dev.run('stack', 'post-config',
                                XENAPI_PASSWORD=password)
            self.assertRan(proc)
            self.assertEqual(password,
                             self.dev.oslo().sxm.sxm_connection_password)

    def test_password_never_in_the_trace(self):
        proc = self.dev.run('stack', 'post-config')
        self.assertRan(proc)
        output = proc.stdout + proc.stderr
        self.assertIn('+ iniset', output)  # tracing was on
        self.assertIn('sxm_iniset_secret', output)
        self.assertNotIn('w0rd', output)

    def test_variables_from_local_conf(self):
        with open(self.dev.cinder_conf, 'w') as f:
            f.write('[DEFAULT]\ndebug = True\n')
        locks = os.path.join(self.dev.root, 'locks')
        proc = self.dev.run(
            'stack', 'post-config', SXM_CINDER_BACKEND='xen-tiers',
            XENAPI_USER='openstack', SXM_LOCK_PATH=locks,
            SXM_CINDER_SRS='Local storage,' + SR_UUID)
        self.assertRan(proc)
        conf = self.dev.oslo('xen-tiers')
        # No backend before: only this one.
        self.assertEqual(['xen-tiers'], conf.enabled_backends)
        be = conf['xen-tiers']
        self.assertEqual('cinder_sxm.driver.SxmVolumeDriver',
                         be.volume_driver)
        self.assertEqual('xen-tiers', be.volume_backend_name)
        self.assertEqual('openstack', be.sxm_connection_username)
        self.assertEqual(['Local storage', SR_UUID], be.sxm_srs)
        self.assertEqual(locks, be.sxm_lock_path)
        self.assertTrue(os.path.isdir(locks))

    def test_nothing_written_without_cinder_volume(self):
        for env in ({'ENABLED_SERVICES': 'key,c-api,c-sch'},
                    {'SXM_CINDER_BACKEND': ''}):
            proc = self.dev.run('stack', 'post-config', **env)
            self.assertRan(proc)
            self.assertEqual(CINDER_CONF_BEFORE, self.dev.cinder_conf_text())

    def test_missing_url_or_password_stops_with_their_name(self):
        for variable in ('XENAPI_CONNECTION_URL', 'XENAPI_PASSWORD'):
            proc = self.dev.run('stack', 'post-config', **{variable: None})
            self.assertEqual(1, proc.returncode)
            self.assertIn('%s is not set' % variable, proc.stderr)
            self.assertEqual(CINDER_CONF_BEFORE, self.dev.cinder_conf_text())

    def test_password_iniset_would_mangle_is_refused(self):
        proc = self.dev.run('stack', 'post-config',
                            XENAPI_PASSWORD='two  sp4ces')
        self.assertEqual(1, proc.returncode)
        self.assertIn('XENAPI_PASSWORD has leading, trailing', proc.stderr)
        self.assertNotIn('sp4ces', proc.stdout + proc.stderr)
        self.assertFalse(self.dev.ini(self.dev.cinder_conf).has_option(
            'sxm', 'sxm_connection_password'))


@testtools.skipIf(nova_devstack.BASH is None, 'bash is not installed')
class TestVolumeTypes(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dev = self.useFixture(CinderPluginFixture())

    def assertRan(self, proc):
        self.assertEqual(
            0, proc.returncode,
            'stdout:\n%s\nstderr:\n%s' % (proc.stdout, proc.stderr))

    def creates(self):
        admin = ['openstack', '--os-cloud', 'devstack-admin',
                 '--os-region-name', 'RegionOne']
        out = []
        for argv in self.dev.openstack_calls():
            self.assertEqual(admin, argv[:len(admin)])
            command = argv[len(admin):]
            if command[:3] == ['volume', 'type', 'create']:
                out.append(command[3:])
        return out

    def test_extra_creates_gold_and_silver(self):
        self.assertRan(self.dev.run('stack', 'extra'))
        self.assertEqual([
            ['--property', 'volume_backend_name=sxm',
             '--property', 'pool_name=gold', 'gold'],
            ['--property', 'volume_backend_name=sxm',
             '--property', 'pool_name=silver', 'silver'],
        ], self.creates())

    def test_existing_type_is_skipped(self):
        proc = self.dev.run('stack', 'extra', SXM_TEST_VOLUME_TYPES='gold')
        self.assertRan(proc)
        self.assertEqual([
            ['--property', 'volume_backend_name=sxm',
             '--property', 'pool_name=silver', 'silver'],
        ], self.creates())
        self.assertIn('Volume type gold exists', proc.stdout)
        proc = self.dev.run('stack', 'extra',
                            SXM_TEST_VOLUME_TYPES='silver,gold')
        self.assertRan(proc)
        self.assertEqual([], self.creates())

    def test_names_pools_and_backend_from_local_conf(self):
        self.assertRan(self.dev.run(
            'stack', 'extra', SXM_CINDER_BACKEND='xen-tiers',
            SXM_CINDER_VOLUME_TYPES='fast ssd:Local storage,slow'))
        self.assertEqual([
            ['--property', 'volume_backend_name=xen-tiers',
             '--property', 'pool_name=Local storage', 'fast ssd'],
            ['--property', 'volume_backend_name=xen-tiers',
             '--property', 'pool_name=slow', 'slow'],
        ], self.creates())

    def test_no_types_without_cinder_api_or_backend(self):
        for env in ({'ENABLED_SERVICES': 'key,c-vol'},
                    {'SXM_CINDER_BACKEND': ''},
                    {'SXM_CINDER_VOLUME_TYPES': ''}):
            self.assertRan(self.dev.run('stack', 'extra', **env))
            self.assertEqual([], self.dev.openstack_calls(), env)
