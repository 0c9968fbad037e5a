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

"""``xapi-sim demo``: the README's first command, in-process and as a
real process interrupted mid-migration.
"""

import ast
import io
import os
import signal
import sys

import fixtures
import testtools
import XenAPI

from sxm_core import cli
from tests.functional.sxm_core import cliproc
from xapi_sim import demo
from xapi_sim import sim as simmod


def imported(path):
    """The modules a Python file imports, wherever the import is."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


class Demo(cliproc.Process):
    """``xapi-sim demo`` as a process; killed at cleanup if running."""

    name = 'xapi-sim demo'

    def __init__(self, test, args, env):
        super().__init__(test, [sys.executable, '-m', 'xapi_sim.cli',
                                'demo'] + list(args), env)


class TestDemo(testtools.TestCase):

    def setUp(self):
        super().setUp()
        # The demo logs through the root logger: captured, not printed.
        self.useFixture(fixtures.FakeLogger())

    def test_demo_passes(self):
        out, err = io.StringIO(), io.StringIO()
        status = demo.main(out=out, err=err)
        output = out.getvalue()
        self.assertEqual(0, status, output + err.getvalue())
        self.assertIn("VM 'demo-vm' runs on pool-a", output)
        self.assertIn('Live cross-pool migration', output)
        self.assertIn("Migrated VM 'demo-vm'", output)
        # Both disks, verified against what the guest wrote.
        checked = [line for line in output.splitlines()
                   if line.endswith('ok: byte for byte')]
        self.assertEqual(2, len(checked), output)
        self.assertIn('VM and disks removed', output)
        self.assertRegex(output.rstrip('\n').splitlines()[-1],
                         r'^Demo passed in [0-9.]+ s\.$')
        # Progress went to stderr, not into the report.
        self.assertIn('mirror disk', err.getvalue())
        self.assertNotIn('mirror disk', output)

    def test_quiet_demo_prints_no_progress(self):
        out, err = io.StringIO(), io.StringIO()
        status = demo.main(quiet=True, out=out, err=err)
        self.assertEqual(0, status, out.getvalue() + err.getvalue())
        self.assertIn('Demo passed', out.getvalue())
        self.assertEqual('', err.getvalue())

    def test_sxm_demo_says_where_the_demo_went(self):
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(['demo'], out=out, err=err)
        self.assertEqual(cli.EXIT_BAD_INPUT, status)
        self.assertIn('xapi-sim demo', err.getvalue())
        self.assertEqual('', out.getvalue())

    def test_no_package_imports_across_its_boundary(self):
        # The product never imports the simulator; the drivers import the
        # core, never each other (nor the other service); the core
        # imports neither driver nor service. Read, not imported: an
        # import inside a function counts too.
        forbidden = {
            'sxm_core': {'xapi_sim', 'nova_sxm', 'cinder_sxm', 'nova',
                         'cinder'},
            'nova_sxm': {'xapi_sim', 'cinder_sxm', 'cinder'},
            'cinder_sxm': {'xapi_sim', 'nova_sxm', 'nova'},
        }
        found = []
        for package, others in forbidden.items():
            root = os.path.join(cliproc.REPO, package)
            for folder, dirs, files in os.walk(root):
                # The drivers' tests run them on the simulator.
                dirs[:] = [d for d in dirs if d != 'tests']
                for name in files:
                    if name.endswith('.py'):
                        path = os.path.join(folder, name)
                        found += ['%s: %s' % (os.path.relpath(
                            path, cliproc.REPO), module)
                            for module in imported(path)
                            if module.split('.')[0] in others]
        self.assertEqual([], found)


class TestInterruptDemo(testtools.TestCase):

    def test_ctrl_c_mid_migration_stops_the_demo_cleanly(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        proc = Demo(self, [], cliproc.environment(TMPDIR=tmp))
        match = proc.wait_line(r'pool-a at (\S+),', timeout=120)
        session = XenAPI.Session(match.group(1))
        session.login_with_password(simmod.DEFAULT_USERNAME,
                                    simmod.DEFAULT_PASSWORD, '2.21', 'tests')
        try:
            # The demo's own simulator: wait for its migration to copy.
            cliproc.wait_task(self, session.xenapi, process=proc,
                              timeout=120)
            proc.proc.send_signal(signal.SIGINT)
        finally:
            try:
                session.xenapi.session.logout()
            except Exception:
                pass  # the demo may have stopped its simulator already
        status, out, err = proc.finish()
        self.assertEqual(cli.EXIT_CANCELLED, status, proc.report())
        self.assertNotIn('Traceback', err)
        self.assertIn('Demo cancelled', out + err)
        self.assertNotIn('Demo passed', out)
        # The simulator removed its files on the way out.
        self.assertEqual([], os.listdir(tmp))
