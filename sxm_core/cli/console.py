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

"""The ``sxm`` command's streams: results, errors, progress, log lines.

Results (plan tables, summaries, JSON) go to stdout; errors, log lines and
progress to stderr, so that ``sxm ... > file`` keeps only results. Every
line goes through ``tqdm.write``, which clears the progress bars first and
redraws them after, so a log line never glues to a bar. Bars are drawn
only on a terminal; elsewhere progress is a plain line per phase or disk
and per tenth of the bytes, and ``--quiet`` shows none. What the lines
say is in ``sxm_core.cli.formats``.
"""

import json
import logging
import sys
import threading
import time

import tqdm

from sxm_core.cli import formats

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


class Console(object):
    """The CLI's two streams and how chatty to be.

    ``tty`` (default: whether stderr is a terminal) decides between bars
    and plain progress lines; ``quiet`` drops progress and notes;
    ``as_json`` makes ``result`` print one JSON object.
    """

    def __init__(self, out=None, err=None, quiet=False, as_json=False,
                 tty=None):
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.quiet = quiet
        self.as_json = as_json
        if tty is None:
            isatty = getattr(self.err, 'isatty', None)
            tty = bool(isatty and isatty())
        self.tty = tty

    @staticmethod
    def _write(text, stream):
        tqdm.tqdm.write(text, file=stream)
        stream.flush()

    def result(self, text):
        """A result for stdout (a table, a summary)."""
        self._write(text, self.out)

    def json(self, value):
        """One JSON document on stdout, on a line of its own."""
        self._write(json.dumps(value, sort_keys=True), self.out)

    def error(self, text):
        """``sxm: <text>`` on stderr, whatever ``quiet`` says."""
        self._write('sxm: %s' % text, self.err)

    def note(self, text, always=False):
        """A remark for the operator on stderr; ``quiet`` drops it."""
        if always or not self.quiet:
            self._write(text, self.err)

    def bar(self, total, label='', position=None, unit='B'):
        return Bar(self, total, label, position, unit)

    def plan_bar(self, the_plan, label='', position=None):
        return PlanBar(self, the_plan, label, position)


def fail(console, status, message, **extra):
    """Report an error (stderr, and stdout as JSON with --json)."""
    console.error(message)
    if console.as_json:
        doc = {'error': str(message), 'exit': status}
        doc.update(extra)
        console.json(doc)
    return status


class Bar(object):
    """Progress over ``total`` bytes, labelled, at tqdm line ``position``.

    On a terminal a tqdm bar (several at once with distinct positions);
    otherwise a plain line when the description changes and at each tenth
    of the total; nothing when quiet. ``unit`` '%' counts percent (a
    migration followed from its task, whose bytes are unknown).
    ``update`` may be called from any thread.
    """

    STEP = 0.1

    def __init__(self, console, total, label='', position=None, unit='B'):
        self.console = console
        self.total = max(1, int(total or 0))
        self.label = label
        self.unit = unit
        self._lock = threading.Lock()
        self._reported = (None, -1)  # (description, tenth) last printed
        self._closed = False
        self._tqdm = None
        if console.quiet:
            self.mode = 'off'
        elif console.tty:
            self.mode = 'bar'
            scaled = dict(unit='B', unit_scale=True, unit_divisor=1024) \
                if unit == 'B' else dict(
                    unit=unit, bar_format='{desc}: {percentage:3.0f}%|'
                    '{bar}| [{elapsed}<{remaining}]')
            self._tqdm = tqdm.tqdm(
                total=self.total, file=console.err, desc=label or
                'starting', dynamic_ncols=True, mininterval=0.2,
                position=position, leave=True, **scaled)
        else:
            self.mode = 'lines'

    def update(self, done, description=None):
        done = max(0, min(int(done), self.total))
        with self._lock:
            if self._closed:
                return
            if self.mode == 'bar':
                desc = ' '.join(x for x in (self.label, description) if x)
                if desc:
                    self._tqdm.set_description_str(desc, refresh=False)
                self._tqdm.n = done
                self._tqdm.refresh()
            elif self.mode == 'lines':
                tenth = int(done / self.total / self.STEP + 1e-9)
                if (description, tenth) == self._reported:
                    return
                if description == self._reported[0] and \
                        tenth <= self._reported[1]:
                    return
                self._reported = (description, tenth)
                self.console.note(self._line(done, description))

    def _line(self, done, description):
        head = ': '.join(x for x in (self.label, description) if x)
        if self.unit != 'B':
            return '%s %3d%%' % (head or 'progress', 100 * done // self.total)
        return '%s %3d%% (%s of %s)' % (
            head or 'progress', 100 * done // self.total,
            formats.human_bytes(done), formats.human_bytes(self.total))

    def close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._tqdm is not None:
                self._tqdm.close()


class PlanBar(Bar):
    """A Bar over a plan's bytes fed with ``migrate.Progress``."""

    def __init__(self, console, the_plan, label='', position=None):
        super().__init__(console, the_plan.bytes_to_move, label, position)

    def __call__(self, progress):
        self.update(progress.bytes_done, formats.describe(progress))


class DrainView(object):
    """A drain's progress (one bar per VM on a terminal) and outcomes."""

    def __init__(self, console, names):
        self.console = console
        self.position = {name: i for i, name in enumerate(names)}
        self.bars = {}
        self.started = {}
        self.ended = {}
        self.lock = threading.Lock()

    def progress(self, name, progress):
        with self.lock:
            bar = self.bars.get(name)
            if bar is None:
                self.started.setdefault(name, time.monotonic())
                bar = self.bars[name] = self.console.bar(
                    progress.bytes_total, name,
                    position=self.position.get(name))
        bar.update(progress.bytes_done, formats.describe(progress))

    def done(self, name, value):
        with self.lock:
            self.ended[name] = time.monotonic()
            bar = self.bars.get(name)
        if bar is not None:
            bar.close()
        if isinstance(value, Exception):
            self.console.note('%s: FAILED: %s'
                              % (name, formats.one_line(value)))
        else:
            self.console.note('%s: moved in %.1f s' % (name, value.seconds))

    def close(self):
        for bar in list(self.bars.values()):
            bar.close()

    def seconds(self, name):
        if name in self.started and name in self.ended:
            return self.ended[name] - self.started[name]
        return None


class _TqdmHandler(logging.StreamHandler):
    """Log lines through tqdm.write: bars are cleared, then redrawn."""

    def emit(self, record):
        try:
            tqdm.tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:
            self.handleError(record)


def setup_logging(debug=False, stream=None):
    """Log to ``stream`` (stderr) unless the root logger has handlers.

    Like ``logging.basicConfig``: a process (or test) that configured
    logging already keeps its handlers.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = _TqdmHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter(
        '%(asctime)s %(levelname)s %(name)s: %(message)s'))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
