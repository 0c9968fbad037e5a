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

"""The ``sxm`` command as a real process, for tests of signals and output.

``Sxm`` runs ``python -m sxm_core.cli`` with pipes (so its output is not a
terminal), collects stdout and stderr as they come and can wait for a line.
``wait_task`` follows a pool's tasks through ``event.from`` until one is
under way.
"""

import os
import re
import subprocess
import sys
import threading
import time

from tests.functional import simhelpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
DEADLINE = simhelpers.DEADLINE
MIGRATE_SEND = 'Async.VM.migrate_send'


def environment(password=None, **extra):
    """This process's environment without SXM_*, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('SXM_')}
    if password is not None:
        env['SXM_PASSWORD'] = password
    env.update(extra)
    return env


class Process(object):
    """A running ``argv`` with piped output; killed at cleanup if running.

    ``stdin``: text written to its standard input, which stays open.
    """

    name = 'the process'

    def __init__(self, test, argv, env, stdin=None):
        self.test = test
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            cwd=REPO, text=True)
        if stdin is not None:
            self.proc.stdin.write(stdin)
            self.proc.stdin.flush()
        self._cond = threading.Condition()
        self._lines = {'out': [], 'err': []}
        self._readers = [
            threading.Thread(target=self._read, args=(stream, key),
                             daemon=True)
            for stream, key in ((self.proc.stdout, 'out'),
                                (self.proc.stderr, 'err'))]
        for reader in self._readers:
            reader.start()
        test.addCleanup(self.kill)

    def _read(self, stream, key):
        for line in stream:
            with self._cond:
                self._lines[key].append(line)
                self._cond.notify_all()
        with self._cond:
            self._lines[key].append(None)  # end of stream
            self._cond.notify_all()

    def text(self, key):
        with self._cond:
            return ''.join(x for x in self._lines[key] if x is not None)

    def wait_line(self, pattern, key='out', timeout=DEADLINE):
        """The first match of ``pattern`` in a line of stdout (or stderr)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                lines = self._lines[key]
                for line in lines[seen:]:
                    if line is None:
                        self.test.fail('%s ended before printing %r:\n%s'
                                       % (self.name, pattern, self.report()))
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    self.test.fail('%s printed no %r in %ss:\n%s'
                                   % (self.name, pattern, timeout,
                                      self.report()))
                self._cond.wait(left)

    def finish(self, timeout=DEADLINE * 2):
        """(exit status, stdout, stderr) once the process has ended."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.test.fail('%s still running after %ss:\n%s'
                           % (self.name, timeout, self.report()))
        for reader in self._readers:
            reader.join(DEADLINE)
        return status, self.text('out'), self.text('err')

    def report(self):
        return 'stdout:\n%s\nstderr:\n%s' % (self.text('out'),
                                             self.text('err'))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(DEADLINE)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class Sxm(Process):
    """One running ``sxm`` process; killed at cleanup if still running."""

    name = 'sxm'

    def __init__(self, test, args, env):
        super().__init__(test, [sys.executable, '-m', 'sxm_core.cli']
                         + list(args), env)


def wait_task(test, api, name=MIGRATE_SEND, above=0.0, process=None,
              timeout=DEADLINE):
    """(ref, record) of a pending task ``name`` whose progress > ``above``.

    Follows the pool's tasks through event.from; fails the test when
    ``process`` ends first.
    """
    deadline = time.monotonic() + timeout
    token = ''
    while True:
        answer = api.event_from(['task'], token, 1.0)
        token = answer['token']
        for event in answer['events']:
            record = event.get('snapshot') or {}
            if (record.get('name_label') == name
                    and record.get('status') == 'pending'
                    and float(record.get('progress') or 0) > above):
                return event['ref'], record
        if process is not None and process.proc.poll() is not None:
            test.fail('%s ended before task %s got under way:\n%s'
                      % (process.name, name, process.report()))
        if time.monotonic() > deadline:
            test.fail('no %s task under way after %ss' % (name, timeout))


def tasks_named(api, name=MIGRATE_SEND):
    return [ref for ref, rec in api.task.get_all_records().items()
            if rec['name_label'] == name]
