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

"""What the ``sxm`` CLI shows: results, errors, progress, log lines.

Results (plan tables, summaries, JSON) go to stdout; errors, log lines and
progress to stderr, so that ``sxm ... > file`` keeps only results. Every
line goes through ``tqdm.write``, which clears the progress bars first and
redraws them after, so a log line never glues to a bar. Bars are drawn
only on a terminal; elsewhere progress is a plain line per phase or disk
and per tenth of the bytes, and ``--quiet`` shows none.
"""

import json
import logging
import sys
import threading

import tqdm

from sxm_core import plan as planmod


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
            planmod.human_bytes(done), planmod.human_bytes(self.total))

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
        self.plan = the_plan
        super().__init__(console, the_plan.bytes_to_move, label, position)

    def __call__(self, progress):
        self.progress(progress)

    def progress(self, progress):
        self.update(progress.bytes_done, describe(progress))


def describe(progress):
    """'mirror disk 1', 'memory', 'done' for a ``migrate.Progress``."""
    if progress.disk is not None:
        disk = progress.disk.disk
        return '%s disk %s' % (progress.phase, disk.userdevice or disk.name)
    return progress.phase


def summary(the_plan, result):
    lines = ['Migrated %s to pool %s in %.1f s (at most %s to move).' % (
        the_plan.vm.label(), the_plan.dest.name, result.seconds,
        planmod.human_bytes(result.bytes_planned))]
    for userdevice, vdi, sr in sorted(result.disks):
        lines.append('  disk %s: VDI %s on SR %s' % (userdevice, vdi, sr))
    if result.leftovers_removed:
        lines.append('  removed leftovers: %s'
                     % ', '.join(result.leftovers_removed))
    for warning in result.warnings:
        lines.append('  WARNING: %s' % warning)
    return '\n'.join(lines)


def table(rows):
    """Lines of a text table; ``rows[0]`` is the header."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append('  '.join(str(c).ljust(w) for c, w in zip(row, widths))
                   .rstrip())
        if n == 0:
            out.append('  '.join('-' * w for w in widths))
    return out


# -- JSON shapes (documented in README.rst, "The sxm command") --------------

def _sr_json(sr):
    return None if sr is None else {'uuid': sr.uuid, 'name': sr.name,
                                    'type': sr.type}


def plan_json(the_plan, problems):
    """The plan as a JSON-ready dict: what ``sxm plan --json`` prints."""
    src = the_plan.source
    disks = []
    for step in the_plan.disks + the_plan.snapshot_disks:
        disk = step.disk
        disks.append({
            'userdevice': disk.userdevice, 'name': disk.name,
            'vdi_uuid': disk.uuid, 'virtual_size': disk.virtual_size,
            'snapshot': step in the_plan.snapshot_disks,
            'from_sr': _sr_json(src.sr(disk.sr)),
            'to_sr': _sr_json(step.dest_sr), 'how': step.kind,
            'bytes_needed': step.bytes_needed,
            'bytes_to_copy': step.bytes_to_copy})
    vifs = []
    for step in the_plan.vifs:
        net = src.network(step.vif.network)
        vifs.append({
            'device': step.vif.device, 'mac': step.vif.mac,
            'from_network': net.name if net else step.vif.network,
            'to_network': (step.dest_network.name if step.dest_network
                           else None)})
    return {
        'vm': {'uuid': the_plan.vm.uuid, 'name': the_plan.vm.name},
        'source_pool': src.name, 'dest_pool': the_plan.dest.name,
        'dest_host': (the_plan.dest_host.name if the_plan.dest_host
                      else None),
        'cross_pool': the_plan.cross_pool, 'live': the_plan.live,
        'bytes_to_move': the_plan.bytes_to_move,
        'disks': disks, 'vifs': vifs,
        'problems': [{'code': p.code, 'message': p.message,
                      'blocking': p.blocking} for p in problems],
        'can_run': not planmod.blocking(problems)}


def result_json(the_plan, result):
    """A finished migration: what ``sxm migrate --json`` prints."""
    return {
        'vm_uuid': result.vm_uuid, 'vm_name': the_plan.vm.name,
        'dest_pool': the_plan.dest.name, 'seconds': round(result.seconds, 3),
        'bytes_planned': result.bytes_planned,
        'disks': [{'userdevice': ud, 'vdi_uuid': vdi, 'sr_uuid': sr}
                  for ud, vdi, sr in sorted(result.disks)],
        'leftovers_removed': list(result.leftovers_removed),
        'warnings': list(result.warnings)}


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
