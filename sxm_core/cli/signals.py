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

"""Ctrl-C and SIGTERM while the ``sxm`` command waits on a worker.

Ctrl-C never raises into the code that talks to XAPI: while a migration
runs, SIGINT and SIGTERM only set the cancel Event the worker watches, and
the main thread waits for the worker to say it is done. A
KeyboardInterrupt landing in ``Thread.join`` could leave a migration
running with nobody to cancel it or destroy its task.
"""

import signal
import threading


class SignalGuard(object):
    """While active, SIGINT and SIGTERM are only counted.

    The handler takes no lock at all (a handler runs between two bytecodes
    of the main thread, maybe while that thread holds the very lock it
    would want): ``wait``, in the main thread, sets ``cancel`` and reports
    the signals. Outside the main thread (an embedding program) it
    installs nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, cancel=None):
        self.cancel = cancel if cancel is not None else threading.Event()
        self.count = 0
        self._announced = 0
        self._previous = {}

    def _handler(self, signum, frame):
        self.count += 1

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        return False

    def new_signals(self):
        """How many signals came since the last call."""
        count = self.count
        new, self._announced = count - self._announced, count
        return new

    def wait(self, done, on_first, on_again, poll=0.2):
        """Wait for ``done``; call on_first()/on_again() as signals come.

        ``poll`` only bounds how late a signal is reported: ``done`` wakes
        the wait at once.
        """
        while not done.wait(poll):
            self._report(on_first, on_again)
        self._report(on_first, on_again)

    def _report(self, on_first, on_again):
        before = self._announced
        new = self.new_signals()
        if new:
            self.cancel.set()
        for i in range(new):
            (on_first if before + i == 0 else on_again)()


class Either(object):
    """Ends a SignalGuard wait when ``done`` is set or a signal came.

    ``after``: the signals already seen, which do not count.
    """

    def __init__(self, done, guard, after=0):
        self.done = done
        self.guard = guard
        self.after = after

    def wait(self, timeout):
        return self.done.wait(timeout) or self.guard.count > self.after


def run_worker(fn, guard, on_first, on_again):
    """Run ``fn()`` in a thread until it returns; ('result'|'error', x).

    The main thread only waits on an Event the worker sets when it ends,
    reporting signals meanwhile; ``fn`` watches ``guard.cancel``.
    """
    done = threading.Event()
    outcome = {}

    def work():
        try:
            outcome['result'] = fn()
        except BaseException as exc:  # reported by the caller, whatever
            outcome['error'] = exc
        finally:
            done.set()

    worker = threading.Thread(target=work, name='sxm-worker', daemon=True)
    worker.start()
    guard.wait(done, on_first, on_again)
    worker.join()
    if 'error' in outcome:
        return 'error', outcome['error']
    return 'result', outcome['result']
