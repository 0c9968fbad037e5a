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

"""What the ``sxm`` command prints: progress lines, cells, messages."""

import datetime
import io
import types

import testtools

from sxm_core.cli import console as consolemod
from sxm_core.cli import formats

MiB = 1 << 20


def state(source_vm='Running', source_host='host1', dest_vm='none',
          new_vdis=()):
    """What a migration left, as ``migrate.StateReport`` says it."""
    return types.SimpleNamespace(source_vm=source_vm,
                                 source_host=source_host, dest_vm=dest_vm,
                                 new_vdis=list(new_vdis))


class TestProgressLines(testtools.TestCase):
    """Off a terminal: one line per phase and per tenth of the bytes."""

    def bar(self, quiet=False, unit='B'):
        self.err = io.StringIO()
        con = consolemod.Console(io.StringIO(), self.err, quiet=quiet,
                                 tty=False)
        return con.bar(100 * MiB, 'web', unit=unit)

    def lines(self):
        return self.err.getvalue().splitlines()

    def test_a_line_per_tenth_and_per_phase(self):
        bar = self.bar()
        for done in range(0, 60 * MiB, MiB):
            bar.update(done, 'mirror disk 1')
        bar.update(60 * MiB, 'memory')
        bar.update(100 * MiB, 'done')
        bar.close()
        bar.update(100 * MiB, 'after close')
        self.assertEqual(
            ['web: mirror disk 1   0% (0 B of 100.0 MiB)']
            + ['web: mirror disk 1  %d%% (%d.0 MiB of 100.0 MiB)' % (n, n)
               for n in range(10, 60, 10)]
            + ['web: memory  60% (60.0 MiB of 100.0 MiB)',
               'web: done 100% (100.0 MiB of 100.0 MiB)'], self.lines())

    def test_progress_never_goes_back_within_a_phase(self):
        bar = self.bar()
        bar.update(50 * MiB, 'copy')
        bar.update(20 * MiB, 'copy')
        self.assertEqual(['web: copy  50% (50.0 MiB of 100.0 MiB)'],
                         self.lines())

    def test_percent_bar(self):
        bar = self.bar(unit='%')
        bar.update(45 * MiB, 'copying')
        self.assertEqual(['web: copying  45%'], self.lines())

    def test_quiet_prints_nothing(self):
        bar = self.bar(quiet=True)
        bar.update(50 * MiB, 'copy')
        self.assertEqual([], self.lines())

    def test_errors_even_when_quiet_and_json_on_stdout(self):
        out, err = io.StringIO(), io.StringIO()
        con = consolemod.Console(out, err, quiet=True, as_json=True)
        status = consolemod.fail(con, consolemod.EXIT_BAD_INPUT, 'no VM x',
                                 plan=None)
        self.assertEqual(2, status)
        self.assertEqual('sxm: no VM x\n', err.getvalue())
        self.assertEqual('{"error": "no VM x", "exit": 2, "plan": null}\n',
                         out.getvalue())


class TestCells(testtools.TestCase):

    def test_human_seconds(self):
        self.assertEqual(['-', '59s', '1m00s', '59m59s', '1h00m', '25h01m'],
                         [formats.human_seconds(s) for s in
                          (None, 59.9, 60, 3599, 3600, 90060)])

    def test_age(self):
        at = datetime.datetime(2026, 1, 1, 0, 1, 30,
                               tzinfo=datetime.timezone.utc)
        self.assertEqual(90.0, formats.age('2026-01-01T00:00:00Z', at))
        # xapi's times are UTC, with or without the Z.
        self.assertEqual(90.0, formats.age('2026-01-01T00:00:00', at))
        # A clock ahead of ours is no negative age.
        self.assertEqual(0.0, formats.age('2026-01-01T00:05:00Z', at))
        self.assertIsNone(formats.age('yesterday', at))

    def test_one_line(self):
        self.assertEqual(
            'The plan cannot run: no SR; no network',
            formats.one_line(ValueError('The plan cannot run:\n  - no SR\n'
                                        '  - no network\n')))
        self.assertEqual('a; b', formats.one_line(ValueError('a\nb')))
        self.assertEqual('KeyError', formats.one_line(KeyError()))

    def test_table_pads_columns_under_a_rule(self):
        self.assertEqual(['VM   OUTCOME', '---  -------', 'web  moved',
                          'db   failed'],
                         formats.table([('VM', 'OUTCOME'), ('web', 'moved'),
                                        ('db', 'failed')]))


class TestCancelledMessage(testtools.TestCase):

    def test_source_runs_on_and_nothing_left(self):
        self.assertEqual(
            "Cancelled: VM 'web' keeps running on host1 with its disks; "
            'nothing was left in pool pool-b.',
            formats.cancelled_message('web', state(), 'pool-b'))

    def test_what_was_left_is_named(self):
        text = formats.cancelled_message(
            'web', state(dest_vm='Halted', new_vdis=['v1', 'v2']),
            'pool-b')
        self.assertIn('a VM (Halted) is in pool pool-b', text)
        self.assertIn('VDIs left on the target SRs (check them): v1, v2',
                      text)

    def test_in_pool_speaks_of_target_srs(self):
        text = formats.cancelled_message(
            'web', state(source_vm='Halted', source_host=''), 'pool-a',
            cross_pool=False)
        self.assertEqual("Cancelled: VM 'web' is Halted; nothing was left "
                         'in the target SRs.', text)

    def test_unknown_state(self):
        self.assertIn('unknown', formats.cancelled_message(
            'web', None, 'pool-b'))
        self.assertIsNone(formats.state_json(None))
