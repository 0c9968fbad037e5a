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

"""bench/scale.py in a tiny configuration, so that it cannot rot.

It runs as an operator runs it (its own process: it starts a Nova
driver, whose options are process-global) and must measure what it says:
a nova-compute's periodic tasks and a preflight that reached xapi's own
checks, in both pools.
"""

import os
import re
import subprocess
import sys

import testtools

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SCRIPT = os.path.join(REPO, 'bench', 'scale.py')


def run(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args),
                          cwd=REPO, capture_output=True, text=True,
                          timeout=600)


class ScaleBenchTest(testtools.TestCase):

    def test_tiny_pools_side_by_side(self):
        done = run('--hosts', '4', '--vms', '20', '--small-hosts', '2',
                   '--small-vms', '5', '--repeat', '1', '--methods')
        self.assertEqual(0, done.returncode, done.stderr[-3000:])
        out = done.stdout
        self.assertIn('small: 2 hosts, 5 VMs; big: 4 hosts, 20 VMs', out)
        rows, label = {}, None
        for line in out.splitlines():
            if line and not line.startswith(' '):
                label = line
                continue
            found = re.match(r' +(small|big) +([\d.]+) +([\d.]+) ', line)
            if found:
                rows[label, found.group(1)] = (float(found.group(2)),
                                               float(found.group(3)))
        # The first host of each pool: 3 of 5 VMs, 5 of 20.
        self.assertIn(('sync_power_states (3, 5 VMs)', 'big'), rows)
        for what in ('update_available_resource',
                     'migration preflight (plan + check)',
                     'periodic tasks per minute'):
            for pool in ('small', 'big'):
                seconds, calls = rows[what, pool]
                self.assertGreater(calls, 0, (what, pool))
                self.assertGreater(seconds, 0, (what, pool))
        self.assertRegex(out, r'simulator memory \(RSS growth\): small '
                         r'[\d.]+ \w+, big [\d.]+ \w+')
        # The preflight reached xapi's checks with a token, in each pool.
        for pool in ('small', 'big'):
            line = [ln for ln in out.splitlines() if ln.startswith(
                '%s, migration preflight' % pool)]
            self.assertEqual(1, len(line), out)
            self.assertIn('VM.assert_can_migrate 1', line[0])
            self.assertIn('host.migrate_receive 1', line[0])

    def test_a_pool_too_small_is_refused_by_name(self):
        done = run('--small-hosts', '1')
        self.assertEqual(2, done.returncode)
        self.assertIn('the small pool needs at least 2 hosts', done.stderr)
