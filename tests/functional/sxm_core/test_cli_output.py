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

"""What ``sxm`` prints, and where: real processes against the simulator.

Results (plan tables, summaries, JSON) on stdout; errors, log lines and
progress on stderr; bars only on a terminal (a pseudo-terminal here), plain
progress lines elsewhere; ``--quiet`` and ``--json``; messages that name
the pool whose credentials were refused; ``--help`` epilogs.
"""

import json
import os
import re
import subprocess
import sys

import fixtures
import testtools

from sxm_core import cli
from tests.functional.sxm_core import base
from tests.functional.sxm_core import cliproc

MiB = base.MiB
LOG_LINE = re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|'
                      r'WARNING|ERROR) ')


def run(args, env, timeout=cliproc.DEADLINE * 2):
    """(exit status, stdout, stderr) of ``sxm <args>`` with pipes."""
    proc = subprocess.run([sys.executable, '-m', 'sxm_core.cli'] + args,
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env=env, cwd=cliproc.REPO,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def run_on_terminal(args, env, timeout=cliproc.DEADLINE * 2):
    """(exit status, everything written) with stdout and stderr on a pty.

    Both streams on one 24x100 terminal, as in an operator's shell: what
    they write interleaves exactly as it would on screen.
    """
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 100, 0,
                                                       0))
    proc = subprocess.Popen([sys.executable, '-m', 'sxm_core.cli'] + args,
                            stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, env=env, cwd=cliproc.REPO)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([master], [], [], left)[0]:
                proc.kill()
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    status = proc.wait(cliproc.DEADLINE)
    return status, b''.join(chunks).decode('utf-8', 'replace')


class OutputTestCase(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        self.vm, self.disks = self.make_vm(name='web')
        self.uuid = self.api.VM.get_uuid(self.vm)
        self.env = cliproc.environment(self.simfix.password)

    def urls(self):
        return ['--url', self.url('pool-a'), '--dest-url', self.url('pool-b')]

    def assertMigrated(self):
        self.assertIsNone(self.vm_in(self.uuid, self.api))
        new_vm = self.vm_in(self.uuid, self.api_b)
        self.assertEqual('Running', self.api_b.VM.get_power_state(new_vm))
        return new_vm


class TestStreams(OutputTestCase):

    def test_results_on_stdout_progress_and_logs_on_stderr(self):
        self.write(self.vm, rate=64 * 1024)
        status, out, err = run(['--debug', 'migrate', 'web'] + self.urls()
                               + ['--tier', 'same'], self.env)
        self.assertEqual(0, status, out + err)
        # stdout: the plan table and the summary, nothing else.
        self.assertIn('To move: ', out)
        self.assertIn("Migrated VM 'web' (%s) to pool pool-b" % self.uuid,
                      out)
        self.assertIsNone(LOG_LINE.search(out), out)
        self.assertNotIn('%', out)
        # stderr: log lines and a few plain progress lines, no redraws.
        self.assertIsNotNone(LOG_LINE.search(err), err)
        self.assertNotIn('\r', err)
        progress = [line for line in err.splitlines()
                    if not LOG_LINE.match(line)]
        self.assertTrue(progress, err)
        self.assertLessEqual(len(progress), 20, err)
        for line in progress:
            self.assertRegex(line, r'^(mirror disk \d|memory|done|starting)'
                                   r' +\d+% \(.* of .*\)$')
        self.assertRegex(progress[-1], r'100% ')
        self.stop_and_check(self.assertMigrated(), ctl=self.ctl_b)

    def test_errors_on_stderr(self):
        status, out, err = run(['plan', 'nosuch-vm'] + self.urls(),
                               self.env)
        self.assertEqual(cli.EXIT_BAD_INPUT, status)
        self.assertEqual('', out)
        self.assertRegex(err, r"^sxm: No VM 'nosuch-vm' in pool \S+\.\n$")

    def test_log_lines_never_glue_to_the_bar(self):
        self.ctl.configure(bandwidth=8 * MiB)
        status, screen = run_on_terminal(
            ['--debug', 'migrate', 'web'] + self.urls() + ['--tier', 'same'],
            self.env)
        self.assertEqual(0, status, screen)
        self.assertIn('%|', screen)   # a bar was drawn
        starts = [m.start() for m in LOG_LINE.finditer(screen)]
        self.assertTrue(starts, screen)
        during = 0
        for start in starts:
            # A log line starts a line: after a newline, or after the
            # carriage return that cleared the bar.
            before = screen[max(0, start - 60):start]
            self.assertIn(screen[start - 1], '\r\n', repr(before))
            during += '%|' in screen[:start]
        self.assertGreater(during, 0, 'no log line while the bar was up')
        self.assertMigrated()


class TestQuietAndJson(OutputTestCase):

    def test_quiet_prints_only_the_result(self):
        status, out, err = run(['migrate', 'web', '--quiet'] + self.urls()
                               + ['--tier', 'same'], self.env)
        self.assertEqual(0, status, out + err)
        self.assertEqual('', err)
        self.assertTrue(out.startswith("Migrated VM 'web' (%s)" % self.uuid),
                        out)
        self.assertNotIn('To move', out)
        self.assertMigrated()

    def test_plan_json(self):
        status, out, err = run(['plan', 'web', '--json'] + self.urls(),
                               self.env)
        self.assertEqual(0, status, out + err)
        doc = json.loads(out)
        self.assertEqual({'uuid': self.uuid, 'name': 'web'}, doc['vm'])
        self.assertEqual(['0', '1'], sorted(d['userdevice']
                                            for d in doc['disks']))
        disk0 = [d for d in doc['disks'] if d['userdevice'] == '0'][0]
        self.assertEqual(self.api.VDI.get_uuid(self.disks['0']),
                         disk0['vdi_uuid'])
        self.assertEqual('mirror', disk0['how'])
        self.assertEqual(base.LVM, disk0['from_sr']['name'])
        self.assertEqual(1, len(doc['vifs']))
        self.assertEqual([], [p for p in doc['problems'] if p['blocking']])
        self.assertTrue(doc['can_run'])
        self.assertEqual('pool-b', doc['dest_pool'])

    def test_migrate_json(self):
        status, out, err = run(['migrate', 'web', '--json'] + self.urls()
                               + ['--tier', 'same'], self.env)
        self.assertEqual(0, status, out + err)
        doc = json.loads(out)
        result = doc['result']
        self.assertEqual(self.uuid, result['vm_uuid'])
        self.assertEqual([], result['warnings'])
        self.assertGreater(result['seconds'], 0)
        new_vm = self.assertMigrated()
        self.assertEqual(sorted(
            {'userdevice': self.api_b.VBD.get_userdevice(vbd),
             'vdi_uuid': self.api_b.VDI.get_uuid(
                 self.api_b.VBD.get_VDI(vbd)),
             'sr_uuid': self.api_b.SR.get_uuid(self.api_b.VDI.get_SR(
                 self.api_b.VBD.get_VDI(vbd)))}.items()
            for vbd in self.api_b.VM.get_VBDs(new_vm)),
            sorted(d.items() for d in result['disks']))
        self.assertEqual(2, len(doc['plan']['disks']))

    def test_json_errors(self):
        status, out, err = run(['migrate', 'nosuch', '--json']
                               + self.urls(), self.env)
        self.assertEqual(cli.EXIT_BAD_INPUT, status)
        doc = json.loads(out)
        self.assertEqual(['error', 'exit'], sorted(doc))
        self.assertEqual(2, doc['exit'])
        self.assertTrue(doc['error'].startswith("No VM 'nosuch' in pool "),
                        doc)
        self.assertEqual('sxm: %s\n' % doc['error'], err)

    def test_json_for_a_plan_that_cannot_run(self):
        status, out, err = run(['migrate', 'web', '--json', '--sr',
                                'nosuch'] + self.urls(), self.env)
        self.assertEqual(cli.EXIT_BAD_INPUT, status)
        doc = json.loads(out)
        self.assertEqual(2, doc['exit'])
        self.assertIn("No SR 'nosuch' in pool pool-b", doc['error'])
        self.assertFalse(doc['plan']['can_run'])
        self.assertTrue(all(p['blocking'] for p in doc['plan']['problems']))
        self.assertIsNotNone(self.vm_in(self.uuid, self.api))


class TestMessages(OutputTestCase):

    def test_no_password(self):
        env = cliproc.environment()
        status, out, err = run(['plan', 'web', '--url', self.url('pool-a')],
                               env)
        self.assertEqual(cli.EXIT_BAD_INPUT, status)
        self.assertEqual('sxm: No password: set SXM_PASSWORD or '
                         'connection_password in the --config-file.\n', err)

    def test_wrong_destination_password_names_that_pool(self):
        env = cliproc.environment(self.simfix.password,
                                  SXM_DEST_PASSWORD='Wrong-Passw0rd')
        status, out, err = run(['migrate', 'web'] + self.urls(), env)
        self.assertEqual(cli.EXIT_BAD_INPUT, status)
        self.assertEqual('sxm: XAPI refused the credentials of user root '
                         'for the destination pool at %s.\n'
                         % self.url('pool-b'), err)
        self.assertNotIn('Wrong-Passw0rd', out + err)
        self.assertIsNotNone(self.vm_in(self.uuid, self.api))

    def test_wrong_source_password_names_that_pool(self):
        env = cliproc.environment('Wrong-Passw0rd')
        status, out, err = run(['migrate', 'web'] + self.urls(), env)
        self.assertEqual(cli.EXIT_BAD_INPUT, status)
        self.assertEqual('sxm: XAPI refused the credentials of user root '
                         'for the source pool at %s.\n'
                         % self.url('pool-a'), err)

    def test_global_options_after_the_subcommand(self):
        config = os.path.join(self.useFixture(fixtures.TempDir()).path,
                              'sxm.conf')
        with open(config, 'w') as f:
            f.write('[sxm]\nconnection_url = %s\n' % self.url('pool-a'))
        status, out, err = run(['plan', 'web', '--debug', '--config-file',
                                config], self.env)
        self.assertEqual(0, status, out + err)
        self.assertIn('in-pool storage migration', out)
        self.assertRegex(err, LOG_LINE.pattern + r'sxm_core')
        # and before it, as before
        status, out, err = run(['--debug', '--config-file', config, 'plan',
                                'web'], self.env)
        self.assertEqual(0, status, out + err)
        self.assertRegex(err, LOG_LINE.pattern + r'sxm_core')


class TestHelpText(testtools.TestCase):

    def test_every_command_documents_environment_and_exit_status(self):
        for command in ('plan', 'migrate'):
            status, out, err = run([command, '--help'],
                                   cliproc.environment())
            self.assertEqual(0, status, err)
            for text in ('SXM_PASSWORD', 'SXM_DEST_PASSWORD', 'SXM_URL',
                         'exit status:', '--json', '--quiet', '--debug',
                         '--config-file'):
                self.assertIn(text, out, command)
        status, out, err = run(['migrate', '--help'], cliproc.environment())
        self.assertIn('130', out)
        self.assertIn('Ctrl-C', out)
