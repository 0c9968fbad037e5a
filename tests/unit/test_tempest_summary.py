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

"""tools/cloud/tempest_cloud.py summary: the lines a reader of the e2e
job sees, and the exit status that fails the job."""

import io
import os
import subprocess
import sys
import tempfile

import subunit
import testtools

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SCRIPT = os.path.join(TOP, 'tools', 'cloud', 'tempest_cloud.py')
LIVE = 'tempest.api.compute.admin.test_live_migration.LiveMigrationTest.'


def _stream(*tests):
    """A subunit v2 stream of (id, status, reason or traceback) tests."""
    out = io.BytesIO()
    result = subunit.StreamResultToBytes(out)
    for test_id, status, text in tests:
        result.status(test_id=test_id, test_status='inprogress')
        if text:
            name = 'reason' if status == 'skip' else 'traceback'
            result.status(test_id=test_id, file_name=name,
                          file_bytes=text.encode(), mime_type='text/plain')
        result.status(test_id=test_id, test_status=status)
    return out.getvalue()


class TestSummary(testtools.TestCase):

    def _summary(self, stream, *args):
        proc = subprocess.run([sys.executable, SCRIPT, 'summary'] +
                              list(args), input=stream,
                              capture_output=True, check=False)
        return proc.returncode, proc.stdout.decode().splitlines()

    def test_each_test_with_its_outcome_and_skip_reason(self):
        rc, lines = self._summary(_stream(
            (LIVE + 'test_live_block_migration[id-1dce,multinode]',
             'success', None),
            (LIVE + 'test_live_migration_with_trunk[id-1,multinode]',
             'skip', 'Marked as unstable and skipped because of bug: '
             'https://launchpad.net/bugs/1, failure was: Skipped because '
             'network extension: trunk is not enabled')))
        self.assertEqual(0, rc)
        self.assertEqual([
            'PASS  ' + LIVE + 'test_live_block_migration',
            'SKIP  ' + LIVE + 'test_live_migration_with_trunk: Skipped '
            'because network extension: trunk is not enabled',
            'tempest: 1 pass, 1 skip'], lines)

    def test_a_failure_fails_and_shows_its_last_line(self):
        rc, lines = self._summary(_stream(
            (LIVE + 'test_live_block_migration', 'fail',
             'Traceback (most recent call last):\n  File "x"\n'
             'BadRequest: No valid host was found.\n'),
            (LIVE + 'test_volume_backed_live_migration', 'success', None)))
        self.assertEqual(1, rc)
        self.assertIn('FAIL  ' + LIVE + 'test_live_block_migration: '
                      'BadRequest: No valid host was found.', lines)
        self.assertEqual('tempest: 1 fail, 1 pass', lines[-1])

    def test_excluded_tests_listed_with_the_reason(self):
        with tempfile.TemporaryDirectory() as tmp:
            selected = os.path.join(tmp, 'selected')
            exclude = os.path.join(tmp, 'exclude')
            with open(selected, 'w') as f:
                f.write(LIVE + 'test_live_block_migration\n' +
                        LIVE + 'test_live_block_migration_paused\n')
            with open(exclude, 'w') as f:
                f.write('# a comment line\n'
                        'test_live_block_migration_paused  # not Paused\n')
            rc, lines = self._summary(
                _stream((LIVE + 'test_live_block_migration', 'success',
                         None)),
                '--selected', selected, '--exclude-list', exclude)
        self.assertEqual(0, rc)
        self.assertEqual([
            'PASS  ' + LIVE + 'test_live_block_migration',
            'EXCL  ' + LIVE + 'test_live_block_migration_paused: not Paused',
            'tempest: 1 excl, 1 pass'], lines)

    def test_no_test_ran(self):
        rc, lines = self._summary(b'')
        self.assertEqual(0, rc)
        self.assertEqual(['tempest: no test ran'], lines)
