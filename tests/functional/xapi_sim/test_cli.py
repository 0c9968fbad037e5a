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

"""``xapi-sim serve`` and ``xapi-sim create-vm`` as real processes.

A ``serve`` process runs the pools on free ports; ``create-vm`` talks to it
over the network; the test checks the result through its own ``XenAPI``
session and the pool's control interface, as a user would.
"""

import copy
import json
import os
import signal
import subprocess
import sys
import time

import fixtures
import testtools
import XenAPI

from tests.functional import simhelpers
from xapi_sim import control
from xapi_sim import sim as simmod

MiB = simhelpers.MiB
DEADLINE = simhelpers.DEADLINE
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
EXT = 'Local storage (ext)'
LVM = 'Local storage (lvm)'


def xapi_sim(*args):
    return [sys.executable, '-m', 'xapi_sim.cli'] + list(args)


class Serve(fixtures.Fixture):
    """A ``xapi-sim serve`` process; ``urls`` {pool name: URL}."""

    def __init__(self, topology=None):
        super().__init__()
        self.topology = topology

    def _setUp(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        args = ['serve', '--data-dir', os.path.join(tmp, 'srs')]
        if self.topology is not None:
            path = os.path.join(tmp, 'topology.json')
            with open(path, 'w') as f:
                json.dump(self.topology, f)
            args += ['--config', path]
        self.proc = subprocess.Popen(
            xapi_sim(*args), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
            cwd=REPO, text=True)
        self.addCleanup(self._stop)
        npools = len((self.topology or simmod.DEFAULT_TOPOLOGY)['pools'])
        self.urls = {}
        for _ in range(npools):
            # One line per pool once it serves: "<name> <url>".
            name, url = self.proc.stdout.readline().split()
            self.urls[name] = url

    def _stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


class ServeTestCase(testtools.TestCase):
    """``xapi-sim serve`` of ``topology``; a session to its pool-a."""

    topology = None

    def setUp(self):
        super().setUp()
        self.serve = self.useFixture(Serve(self.topology))
        self.url = self.serve.urls['pool-a']
        self.session = XenAPI.Session(self.url)
        self.session.login_with_password(simmod.DEFAULT_USERNAME,
                                         simmod.DEFAULT_PASSWORD, '1.0',
                                         'tests')
        self.addCleanup(self.session('close'))
        self.api = self.session.xenapi
        self.ctl = control.Control(self.url, self.session.handle)

    def run_cli(self, command, *args, url=None):
        """(exit status, stdout, stderr) of ``xapi-sim command --url``."""
        proc = subprocess.run(
            xapi_sim(command, '--url', url or self.url, *args),
            capture_output=True, text=True, cwd=REPO, timeout=DEADLINE,
            stdin=subprocess.DEVNULL)
        return proc.returncode, proc.stdout, proc.stderr


class CreateVmTestCase(ServeTestCase):

    def create_vm(self, *args, url=None):
        """(exit status, stdout, stderr) of ``xapi-sim create-vm``."""
        return self.run_cli('create-vm', *args, url=url)

    def state(self):
        """Every VM and VDI of pool-a: nothing may be left on error."""
        return (set(self.api.VM.get_all()), set(self.api.VDI.get_all()))

    def sr(self, name):
        (ref,) = self.api.SR.get_by_name_label(name)
        return ref

    def disks(self, vm):
        """{userdevice: (virtual_size, SR name)} of a VM's disks."""
        out = {}
        for vbd in self.api.VM.get_VBDs(vm):
            rec = self.api.VBD.get_record(vbd)
            vdi = self.api.VDI.get_record(rec['VDI'])
            out[rec['userdevice']] = (int(vdi['virtual_size']),
                                      self.api.SR.get_name_label(vdi['SR']))
        return out

    def assertRefused(self, result, status, *words):
        """Exit ``status``, one error naming ``words``, nothing created."""
        code, out, err = result
        self.assertEqual(status, code, err)
        self.assertEqual('', out)
        for word in words:
            self.assertIn(word, err)
        self.assertNotIn('Traceback', err)


class TestCreateVm(CreateVmTestCase):

    def test_vm_with_disks_on_named_srs_and_a_writing_guest(self):
        code, out, err = self.create_vm(
            '--name', 'web01', '--disk', '256MiB@lvm', '--disk', '128MiB',
            '--disk', '8M@%s' % self.api.SR.get_uuid(self.sr(LVM)),
            '--memory', '512MiB', '--write', 'uniform:8MiB/s')
        self.assertEqual(0, code, err)
        uuid = out.strip()
        vm = self.api.VM.get_by_uuid(uuid)
        rec = self.api.VM.get_record(vm)
        self.assertEqual(('web01', 'Running', 512 * MiB),
                         (rec['name_label'], rec['power_state'],
                          int(rec['memory_static_max'])))
        # By type, the pool's default SR, by uuid.
        self.assertEqual({'0': (256 * MiB, LVM), '1': (128 * MiB, EXT),
                          '2': (8 * MiB, LVM)}, self.disks(vm))
        (vif,) = rec['VIFs']
        (pif,) = self.api.network.get_PIFs(self.api.VIF.get_network(vif))
        self.assertTrue(self.api.PIF.get_management(pif))
        # The guest writes to every disk, and what it wrote is there.
        deadline = time.monotonic() + DEADLINE
        while not all(d['writes'] >= 10 for d in
                      self.ctl.guest_stats(vm)['disks']):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        self.ctl.workload_stop(vm)
        report = self.ctl.guest_check(vm)
        self.assertEqual(['0', '1', '2'],
                         sorted(r['userdevice'] for r in report))
        self.assertTrue(all(r['ok'] for r in report), report)

    def test_halted_vm_without_a_guest(self):
        code, out, err = self.create_vm('--name', 'db', '--disk', '1GiB',
                                        '--no-start')
        self.assertEqual(0, code, err)
        vm = self.api.VM.get_by_uuid(out.strip())
        self.assertEqual('Halted', self.api.VM.get_power_state(vm))
        self.assertEqual({'0': (1 << 30, EXT)}, self.disks(vm))

    def test_password_from_the_environment(self):
        env = dict(os.environ, XAPI_SIM_PASSWORD='wrong')
        proc = subprocess.run(
            xapi_sim('create-vm', '--url', self.url, '--name', 'x'),
            capture_output=True, text=True, cwd=REPO, env=env,
            timeout=DEADLINE)
        self.assertEqual(1, proc.returncode)
        self.assertIn('cannot log in', proc.stderr)
        self.assertIn('SESSION_AUTHENTICATION_FAILED', proc.stderr)
        self.assertNotIn('wrong', proc.stderr)


class TestCreateVmRefuses(CreateVmTestCase):

    def setUp(self):
        super().setUp()
        self.before = self.state()

    def tearDown(self):
        self.assertEqual(self.before, self.state())
        super().tearDown()

    def test_bad_size(self):
        for size in ('12XB', '0', 'big', '1.5GiB'):
            self.assertRefused(self.create_vm('--name', 'x', '--disk',
                                              size + '@lvm'),
                               2, 'argument --disk', 'bad size', size)

    def test_bad_workload(self):
        self.assertRefused(self.create_vm('--name', 'x', '--write', 'wild'),
                           2, "bad workload 'wild'", 'sequential')
        self.assertRefused(self.create_vm('--name', 'x', '--write',
                                          'uniform:fast'),
                           2, "bad workload 'uniform:fast'", '8MiB/s')

    def test_unknown_sr(self):
        self.assertRefused(self.create_vm('--name', 'x', '--disk', '8MiB',
                                          '--disk', '8MiB@gold'),
                           2, "unknown SR 'gold'", EXT, LVM)

    def test_write_needs_a_running_vm(self):
        self.assertRefused(self.create_vm('--name', 'x', '--disk', '8MiB',
                                          '--write', 'uniform',
                                          '--no-start'),
                           2, '--write needs a running VM with a disk')
        self.assertRefused(self.create_vm('--name', 'x', '--write',
                                          'uniform'),
                           2, '--write needs a running VM with a disk')


class TestCreateVmOnAFullSR(CreateVmTestCase):

    topology = copy.deepcopy(simmod.DEFAULT_TOPOLOGY)
    topology['pools'][0]['srs'].append(
        {'name': 'tiny', 'type': 'lvm', 'size': '64MiB'})

    def test_full_sr_leaves_nothing_behind(self):
        before = self.state()
        # The first two disks fit, the third does not.
        self.assertRefused(self.create_vm(
            '--name', 'x', '--disk', '8MiB', '--disk', '32MiB@tiny',
            '--disk', '48MiB@tiny'), 2, "SR 'tiny' is full", 'x disk 2',
            '48 MiB', '32 MiB free', 'SR_BACKEND_FAILURE_44')
        self.assertEqual(before, self.state())
        self.assertEqual('0', self.api.SR.get_physical_utilisation(
            self.sr('tiny')))
