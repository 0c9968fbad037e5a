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

"""The ``sxm`` command against the simulator: plan, migrate, bad input.

``sxm_core.cli.main`` runs in-process with stdout and stderr captured; the
password comes from SXM_PASSWORD as an operator would give it.
"""

import io
import os

import fixtures
import XenAPI

from sxm_core import cli
from sxm_core import sessions
from tests.functional.sxm_core import base

MiB = base.MiB
ENV = ('SXM_URL', 'SXM_USERNAME', 'SXM_DEST_URL', 'SXM_DEST_USERNAME',
       'SXM_DEST_PASSWORD')


def quiet_environment(test, password):
    """SXM_PASSWORD set, every other SXM_* unset; logging captured.

    The CLI configures logging with basicConfig: with the root logger
    captured it adds no handler of its own to the test process.
    """
    for name in ENV:
        test.useFixture(fixtures.EnvironmentVariable(name))
    test.useFixture(fixtures.EnvironmentVariable('SXM_PASSWORD', password))
    return test.useFixture(fixtures.FakeLogger())


class CliTestCase(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        self.password = self.simfix.password
        self.logger = quiet_environment(self, self.password)
        self.vm, self.disks = self.make_vm(name='web')
        self.uuid = self.api.VM.get_uuid(self.vm)
        self.before = (self.vdi_set(), self.vdi_set(self.api_b))

    def sxm(self, *args, config=None):
        """(exit status, stdout + stderr) of ``sxm <args>``.

        ``self.stdout`` and ``self.stderr`` keep the two streams apart.
        """
        argv = []
        if config is not None:
            path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                'sxm.conf')
            with open(path, 'w') as f:
                f.write(config)
            argv += ['--config-file', path]
        argv += list(args)
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(argv, out=out, err=err)
        self.stdout, self.stderr = out.getvalue(), err.getvalue()
        return status, self.stdout + self.stderr

    def urls(self, dest=True):
        out = ['--url', self.url('pool-a')]
        if dest:
            out += ['--dest-url', self.url('pool-b')]
        return out

    def assertNothingLeftBehind(self):
        self.assertEqual('Running', self.api.VM.get_power_state(self.vm))
        self.assertEqual(self.host_a, self.api.VM.get_resident_on(self.vm))
        self.assertEqual(self.before,
                         (self.vdi_set(), self.vdi_set(self.api_b)))
        self.assertIsNone(self.vm_in(self.uuid, self.api_b))
        self.assertNoSessionsLeft()

    def assertBadInput(self, status, output, *expected):
        self.assertEqual(cli.EXIT_BAD_INPUT, status, output)
        for text in expected:
            self.assertIn(text, output)
        self.assertNotIn('Traceback', output)
        self.assertNotIn(self.password, output)
        self.assertNothingLeftBehind()


class TestPlan(CliTestCase):

    def test_plan_prints_the_table(self):
        status, output = self.sxm('plan', 'web', *self.urls())
        self.assertEqual(0, status, output)
        self.assertIn("Live cross-pool migration: VM 'web' (%s) -> pool "
                      "'pool-b', host 'pool-b-host1'" % self.uuid, output)
        self.assertIn('0 web-system', output)
        self.assertIn('1 web-data', output)
        self.assertIn('Local storage (lvm)  ', output)
        self.assertNotIn('(lvm) (lvm)', output)
        self.assertIn('mirror', output)
        self.assertIn('To move: 36.0 MiB', output)
        self.assertNotIn('ERROR', output)
        self.assertEqual('Running', self.api.VM.get_power_state(self.vm))
        self.assertEqual(self.before,
                         (self.vdi_set(), self.vdi_set(self.api_b)))

    def test_plan_by_uuid_with_choices(self):
        status, output = self.sxm(
            'plan', self.uuid, *self.urls(), '--sr-map', '0=Local storage '
            '(lvm)', '--tier', 'thin', '--network-map',
            'xenbr0=Pool-wide network associated with eth0')
        self.assertEqual(0, status, output)
        self.assertIn('To move: 36.0 MiB', output)

    def test_in_pool_plan(self):
        status, output = self.sxm('plan', 'web', *self.urls(dest=False),
                                  '--sr', base.EXT)
        self.assertEqual(0, status, output)
        self.assertIn('in-pool storage migration', output)
        self.assertIn('stay', output)
        self.assertIn('To move: 32.0 MiB', output)


class TestBadInput(CliTestCase):

    def test_unknown_vm(self):
        status, output = self.sxm('plan', 'nosuch-vm', *self.urls())
        self.assertBadInput(status, output, "No VM 'nosuch-vm'")
        self.assertTrue(output.startswith('sxm: '), output)

    def test_unknown_sr(self):
        status, output = self.sxm('migrate', 'web', *self.urls(),
                                  '--sr', 'nosuch')
        self.assertBadInput(status, output, "No SR 'nosuch' in pool pool-b",
                            "ERROR: disk 0 'web-system'",
                            "ERROR: disk 1 'web-data'")

    def test_wrong_password(self):
        self.useFixture(fixtures.EnvironmentVariable('SXM_PASSWORD',
                                                     'Wrong-Passw0rd'))
        status, output = self.sxm('migrate', 'web', *self.urls())
        self.assertBadInput(status, output,
                            'XAPI refused the credentials of user root')
        self.assertNotIn('Wrong-Passw0rd', output)
        self.assertNotIn('Wrong-Passw0rd', self.logger.output)

    def test_unreachable_destination(self):
        status, output = self.sxm(
            'migrate', 'web', '--url', self.url('pool-a'),
            '--dest-url', 'http://127.0.0.1:1/',
            config='[sxm]\nconnect_retries = 0\n')
        self.assertBadInput(status, output,
                            'Cannot reach XAPI at http://127.0.0.1:1/',
                            'refused')

    def test_vm_with_cbt(self):
        self.api.VDI.enable_cbt(self.disks['1'])
        data_uuid = self.api.VDI.get_uuid(self.disks['1'])
        status, output = self.sxm('migrate', 'web', *self.urls())
        self.assertBadInput(status, output,
                            "ERROR: disk 1 'web-data' (%s) has changed block "
                            'tracking enabled' % data_uuid)

    def test_bad_pairs(self):
        status, output = self.sxm('plan', 'web', *self.urls(),
                                  '--sr-map', 'no-equals-sign')
        self.assertBadInput(status, output,
                            "--sr-map takes KEY=VALUE, got 'no-equals-sign'")

    def test_no_url(self):
        status, output = self.sxm('plan', 'web')
        self.assertBadInput(status, output, '--url')


class TestFullDestination(CliTestCase):

    topology = base.topology_with({'pool-b': [
        {'name': 'tiny', 'type': 'ext', 'size': '8MiB'}]})

    def test_full_destination_sr(self):
        status, output = self.sxm('migrate', 'web', *self.urls(),
                                  '--sr', 'tiny')
        tiny = self.sr_uuid('tiny', self.api_b)
        self.assertBadInput(status, output,
                            "ERROR: SR 'tiny' (%s) has 8.0 MiB free; the "
                            'disks moving there need 36.0 MiB.' % tiny)


class TestMigrate(CliTestCase):

    def test_migrate_prints_the_summary(self):
        self.write(self.vm)
        self.wait_writes(self.vm)
        status, output = self.sxm('migrate', 'web', *self.urls(),
                                  '--tier', 'same')
        self.assertEqual(0, status, output)
        self.assertIn("Migrated VM 'web' (%s) to pool pool-b in"
                      % self.uuid, output)
        new_vm = self.vm_in(self.uuid, self.api_b)
        for vbd in self.api_b.VM.get_VBDs(new_vm):
            vdi = self.api_b.VBD.get_VDI(vbd)
            sr = self.api_b.VDI.get_SR(vdi)
            self.assertIn('  disk %s: VDI %s on SR %s' % (
                self.api_b.VBD.get_userdevice(vbd),
                self.api_b.VDI.get_uuid(vdi), self.api_b.SR.get_uuid(sr)),
                output)
        self.assertIsNone(self.vm_in(self.uuid, self.api))
        self.assertEqual('Running', self.api_b.VM.get_power_state(new_vm))
        self.stop_and_check(new_vm, ctl=self.ctl_b)


class TestMigrateWithWarnings(CliTestCase):

    def test_a_failed_step_after_the_switch_exits_1_with_a_warning(self):
        # The destination pool fails one call after the VM moved: the
        # removal of a base_mirror key older xapi left (a fault of XAPI).
        self.ctl.configure(leave_base_mirror=True)
        faults = {'VDI.remove_from_sm_config': [XenAPI.Failure(
            ['INTERNAL_ERROR', 'sm_config unwritable'])]}
        dest_url = self.url('pool-b')
        flaky = base.flaky_factory(faults)
        make_session = sessions.SessionPool._make_session

        def make(pool, url):
            if url == dest_url:
                return flaky(url)
            return make_session(pool, url)
        self.useFixture(fixtures.MockPatchObject(
            sessions.SessionPool, '_make_session', make))
        status, output = self.sxm('migrate', 'web', *self.urls(),
                                  '--tier', 'same')
        self.assertEqual([], faults['VDI.remove_from_sm_config'],
                         'the fault did not fire')
        self.assertEqual(cli.EXIT_FAILED, status, output)
        self.assertIn("Migrated VM 'web' (%s) to pool pool-b in"
                      % self.uuid, output)
        self.assertIn('  WARNING: Strip sm_config base_mirror that older '
                      'xapi left on new VDIs: ', output)
        self.assertIn('sm_config unwritable', output)
        self.assertNotIn('Traceback', output)
        # The VM did move.
        new_vm = self.vm_in(self.uuid, self.api_b)
        self.assertEqual('Running', self.api_b.VM.get_power_state(new_vm))
        self.assertIsNone(self.vm_in(self.uuid, self.api))
        self.assertNoSessionsLeft()
