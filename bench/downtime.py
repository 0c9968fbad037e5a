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

"""Downtime benchmark: SXM's synchronous mirror against copy-dirty.

For every workload (idle; uniform random writes at 0.25, 0.5, 0.9 and 1.2
times the copy bandwidth; sequential writes at 0.9x; a hot spot, 90% of
the writes on 10% of the disk, at 0.9x and 1.2x) and for both algorithms of
the simulator (``configure algorithm=mirror`` and ``algorithm=copy-dirty``,
the same ``bandwidth`` cap for both, every other setting at the simulator's
default), one run does, on a fresh in-process simulator:

1. Logs in to ``pool-a`` and ``pool-b`` with the ``XenAPI`` client over
   HTTP and sets the algorithm and the bandwidth through the control
   interface (``POST /sim/configure``).
2. No-migration baseline, on a separate VM of the same shape in ``pool-a``
   (so that the migrated disk holds the same data whatever the write
   rate): a disk of ``--size`` on the thin ``ext`` SR, half of it filled
   with ``PUT /import_raw_vdi`` (the first 1 MiB of every 2 MiB, seeded
   PRNG data), the VM started, the workload started (64 KiB writes, rate =
   factor x bandwidth). After a short warm-up, two ``guest_stats`` calls
   ``--window`` seconds apart give the achieved write rate; at the end of
   the window the guest write latency p50/p99 and the largest heartbeat
   gap (the noise floor of the 10 ms heartbeat) are read, and the VM is
   destroyed.
3. The migrated VM: the same disk and prefill, started, the same
   workload started, ``heartbeat_reset``, then
   ``Async.VM.migrate_send`` to ``pool-b`` (its ``ext`` SR, live, after
   ``host.migrate_receive``), waited for through ``event.from`` with a
   deadline of ``--timeout`` seconds (the task is cancelled and the run
   reported as ``timeout`` when it passes). Meanwhile ``guest_stats`` is
   sampled every 0.1 s; a sample counts if the VM still ran on pool-a
   after it was taken. The write rate during the migration is the bytes
   written between the first and the last such sample over their time
   apart, and the write latency p50/p99 during the migration is that of
   the last sample (the writer started just before the migration). Later
   samples would mix in the burst with which the writer catches up, once
   it runs on pool-b, on the writes the mirror held back.
4. Right after the task ends the workload is stopped and the heartbeat's
   largest gap read; ``guest_check`` runs on ``pool-b`` (every unit of
   the destination disk must equal the image that the prefill plus the
   journal of the guest's writes imply; for the idle VM the sha256 of
   ``GET /export_raw_vdi`` on ``pool-b`` must equal the uploaded
   image's) and the engine's migration log is read.

The table shows per run: the requested and achieved write rates (in the
baseline window and during the migration), the migration time (the
engine's and the wall clock from the call to the end of the task), the
downtime as the guest sees it (largest heartbeat gap during the migration)
and as the engine measured it (pause to unpause), bytes copied, mirrored
and sent, copy-dirty's passes and whether it converged (reached
``downtime_target`` before ``max_passes``), the write latency p50/p99
without and during the migration, and the destination check.

The plot (``--out``, default ``bench/downtime.png``; needs matplotlib)
shows downtime, migration time and the guest's write latency p99 against
rho = write rate / bandwidth (the rate achieved in the baseline window)
for both algorithms. The exit status is 1 if a run timed out or failed.

Run from the top of the repository::

    .venv/bin/python bench/downtime.py
    .venv/bin/python bench/downtime.py --quick
    .venv/bin/python bench/downtime.py --bandwidth 64MiB --size 256MiB
"""

import argparse
import hashlib
import os
import random
import sys
import time

import benchlib
import XenAPI

from xapi_sim import control
from xapi_sim import sim as simmod
from xapi_sim import storage
from xapi_sim import vmbuild

MiB = 1 << 20
BLOCK_SIZE = 64 * 1024          # guest write size: a whole 64 KiB block
REGION = 2 << 20                # prefill: the first half of every region
WARMUP = 0.3
# How often guest_stats is sampled during a migration (s).
SAMPLE_INTERVAL = 0.1

# (name, pattern, factor of the bandwidth); pattern None: no writer.
WORKLOADS = [
    ('idle', None, 0.0),
    ('uniform', 'uniform', 0.25),
    ('uniform', 'uniform', 0.5),
    ('uniform', 'uniform', 0.9),
    ('uniform', 'uniform', 1.2),
    ('sequential', 'sequential', 0.9),
    ('hotspot', 'hotspot', 0.9),
    ('hotspot', 'hotspot', 1.2),
]
QUICK_WORKLOADS = [
    ('idle', None, 0.0),
    ('uniform', 'uniform', 0.5),
    ('uniform', 'uniform', 1.2),
    ('hotspot', 'hotspot', 0.9),
]
ALGORITHMS = ('mirror', 'copy-dirty')


BenchError = benchlib.BenchError


def parse_args(argv):
    p = argparse.ArgumentParser(
        description='Downtime, migration time, bytes sent and guest write '
                    'latency of a cross-pool live migration: SXM mirror '
                    'against copy-dirty, for several write workloads.')
    p.add_argument('--bandwidth', default='32MiB',
                   help='bandwidth cap per second, shared by the copy and '
                        'the mirrored writes, the same for both algorithms '
                        '(default 32MiB)')
    p.add_argument('--size', default='128MiB',
                   help='virtual size of the disk, half of it filled with '
                        'data (default 128MiB)')
    p.add_argument('--window', type=float, default=None,
                   help='seconds of the no-migration baseline window '
                        '(default 3, 1 with --quick)')
    p.add_argument('--timeout', type=float, default=120.0,
                   help='deadline of one migration in seconds; the task is '
                        'cancelled and the run reported as timeout '
                        '(default 120)')
    p.add_argument('--quick', action='store_true',
                   help='fewer workloads (idle, uniform 0.5 and 1.2, '
                        'hotspot 0.9) and a 1 s baseline window')
    p.add_argument('--out', default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'downtime.png'),
        help='where to write the plot (default bench/downtime.png)')
    p.add_argument('--seed', type=int, default=0,
                   help='PRNG seed of the prefill and of the workloads')
    args = p.parse_args(argv)
    try:
        args.size = simmod.parse_size(args.size)
        args.bandwidth = simmod.parse_size(args.bandwidth)
    except ValueError as exc:
        p.error(str(exc))
    if args.size <= 0 or args.size % storage.BLOCK:
        p.error('--size must be a positive multiple of 64 KiB')
    if args.bandwidth <= 0:
        p.error('--bandwidth must be positive (the cap is what is compared)')
    if args.window is None:
        args.window = 1.0 if args.quick else 3.0
    if args.window <= 0 or args.timeout <= 0:
        p.error('--window and --timeout must be positive')
    args.workloads = QUICK_WORKLOADS if args.quick else WORKLOADS
    return args


# -- the image -------------------------------------------------------------

def make_image(size, seed):
    """The prefill: random data in the first 1 MiB of every 2 MiB."""
    rng = random.Random(seed)
    image = bytearray(size)
    for offset in range(0, size, REGION):
        n = min(REGION // 2, size - offset)
        image[offset:offset + n] = rng.randbytes(n)
    return bytes(image)


# -- XenAPI, raw HTTP and the control interface -------------------------------

class Client(benchlib.Client):
    """A XenAPI session on one pool plus its control interface."""

    def __init__(self, url):
        super().__init__(url, 'bench-downtime')

    def wait_task(self, task, deadline, sample=None):
        """The task's record once it has ended; None at the deadline.

        Waits on ``event.from``; while the task is pending, ``sample()``
        is called every ``SAMPLE_INTERVAL`` seconds.
        """
        event_from = getattr(self.xenapi.event, 'from')
        token = ''
        sampled = 0.0
        while True:
            rec = self.xenapi.task.get_record(task)
            if rec['status'] not in ('pending', 'cancelling'):
                return rec
            now = time.monotonic()
            if sample is not None and now - sampled >= SAMPLE_INTERVAL:
                sampled = now
                sample()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            wait = SAMPLE_INTERVAL if sample is not None else 5.0
            token = event_from(['task/%s' % task], token,
                               min(remaining, wait))['token']

    def sr(self, sr_type):
        for ref, rec in self.xenapi.SR.get_all_records().items():
            if rec['type'] == sr_type:
                return ref
        raise BenchError('no %s SR' % sr_type)

    def network(self):
        for ref, rec in self.xenapi.network.get_all_records().items():
            if rec['bridge'] == 'xenbr0':
                return ref
        raise BenchError('no xenbr0 network')

    def vm_with_disk(self, sr, size, image, label):
        """A halted VM with one prefilled disk (userdevice 0) and a VIF."""
        vm, (vdi,) = vmbuild.create_vm(self.xenapi, label, [(size, sr)],
                                       network=self.network(), start=False)
        self.import_raw(vdi, image)
        return vm, vdi, self.xenapi.VM.get_VIFs(vm)[0]


# -- one run -----------------------------------------------------------------

def workload_params(pattern, factor, bandwidth, seed):
    return {'pattern': pattern, 'rate': factor * bandwidth,
            'block_size': BLOCK_SIZE, 'seed': seed, 'hot_fraction': 0.1,
            'hot_share': 0.9}


def disk_stats(stats):
    disks = stats.get('disks') or [{}]
    return disks[0]


def baseline_window(a, sr, image, pattern, factor, args):
    """Write rate, latency and heartbeat of the workload, no migration."""
    vm, vdi, _ = a.vm_with_disk(sr, len(image), image, 'bench-baseline')
    x = a.xenapi
    x.VM.start(vm, False, False)
    out = {}
    try:
        if pattern is not None:
            a.control.workload_start(vm, '0', **workload_params(
                pattern, factor, args.bandwidth, args.seed + 1))
        time.sleep(WARMUP)
        a.control.heartbeat_reset(vm)
        t1 = time.monotonic()
        s1 = disk_stats(a.control.guest_stats(vm))
        time.sleep(args.window)
        stats = a.control.guest_stats(vm)
        t2 = time.monotonic()
        s2 = disk_stats(stats)
        written = s2.get('bytes_written', 0) - s1.get('bytes_written', 0)
        out['rate'] = written / (t2 - t1)
        out['p50'] = s2.get('latency_p50')
        out['p99'] = s2.get('latency_p99')
        out['gap'] = stats['max_gap']
        if s2.get('errors'):
            raise BenchError('baseline guest write errors: %s'
                             % s2['last_error'])
    finally:
        if pattern is not None:
            a.control.workload_stop(vm)
        x.VM.hard_shutdown(vm)
        x.VM.destroy(vm)
        x.VDI.destroy(vdi)
    return out


def migrate(a, b, sr_a, image, image_sha, pattern, factor, args, out):
    """Boot, load, migrate to pool-b, stop, check; fills ``out``."""
    vm, vdi, vif = a.vm_with_disk(sr_a, len(image), image, 'bench-vm')
    xa, xb = a.xenapi, b.xenapi
    xa.VM.start(vm, False, False)
    uuid = xa.VM.get_uuid(vm)
    host_b = xb.host.get_all()[0]
    net_b = b.network()
    dest = xb.host.migrate_receive(host_b, net_b, {})
    vdi_map = {vdi: b.sr('ext')}
    vif_map = {vif: net_b}

    samples = []

    def sample():
        """guest_stats, kept if the VM still ran on pool-a afterwards."""
        try:
            stats = a.control.guest_stats(uuid)
            when = time.monotonic()
            if xa.VM.get_power_state(vm) == 'Running':
                samples.append((when, disk_stats(stats)))
        except (control.ControlError, XenAPI.Failure):
            pass  # the VM has moved: the sample is not kept

    if pattern is not None:
        a.control.workload_start(vm, '0', **workload_params(
            pattern, factor, args.bandwidth, args.seed + 2))
    a.control.heartbeat_reset(vm)
    if pattern is not None:
        sample()
    t0 = time.monotonic()
    task = xa.Async.VM.migrate_send(vm, dest, True, vdi_map, vif_map, {})
    rec = a.wait_task(task, t0 + args.timeout,
                      sample if pattern is not None else None)
    out['wall'] = time.monotonic() - t0
    if rec is None:
        out['status'] = 'timeout'
        try:
            xa.task.cancel(task)
        except XenAPI.Failure:
            pass  # past the point of no return: it ends by itself
        rec = a.wait_task(task, time.monotonic() + 30)
        log = a.control.migrations()
        if log:
            out['log'] = log[-1]
        if pattern is not None:
            where = a if (rec or {}).get('status') != 'success' else b
            where.control.workload_stop(uuid)
        return
    if rec['status'] != 'success':
        out['status'] = 'failed'
        out['error'] = ' '.join(rec['error_info'])
        if pattern is not None:
            a.control.workload_stop(uuid)
        return

    # Stop the writer at once; its heartbeat gap covers the migration.
    stats = (b.control.workload_stop(uuid) if pattern is not None
             else b.control.guest_stats(uuid))
    out['status'] = 'ok'
    out['gap'] = stats['max_gap']
    if pattern is not None:
        out['guest_errors'] = disk_stats(stats)['errors']
        # The guest's rate and latencies up to the last sample taken while
        # it still ran on pool-a: after the switch the writer catches up
        # on what the mirror held back, unthrottled, which is not the
        # migration's cost.
        if len(samples) >= 2:
            (t1, s1), (t2, s2) = samples[0], samples[-1]
            out['mig_rate'] = ((s2['bytes_written'] - s1['bytes_written'])
                               / (t2 - t1))
            out['mig_p50'] = s2['latency_p50']
            out['mig_p99'] = s2['latency_p99']
            out['mig_window'] = t2 - t0
    log = a.control.migrations()
    if not log:
        raise BenchError('the migration log of pool-a is empty')
    out['log'] = log[-1]

    try:
        xa.VM.get_by_uuid(uuid)
        out['check'] = 'VM left on pool-a'
        return
    except XenAPI.Failure as exc:
        if exc.details[0] != 'UUID_INVALID':
            raise
    dest_vm = xb.VM.get_by_uuid(uuid)
    if xb.VM.get_power_state(dest_vm) != 'Running':
        out['check'] = 'not running'
        return
    if pattern is None:
        dest_vdi = None
        for vbd in xb.VM.get_VBDs(dest_vm):
            if xb.VBD.get_userdevice(vbd) == '0':
                dest_vdi = xb.VBD.get_VDI(vbd)
        same = (dest_vdi is not None
                and b.export_sha256(dest_vdi) == image_sha)
        out['check'] = 'ok' if same else 'sha256 differs'
        return
    checks = b.control.guest_check(uuid)
    bad = sum(c['mismatches'] for c in checks)
    if not checks:
        out['check'] = 'nothing checked'
    elif bad or not all(c['ok'] for c in checks):
        out['check'] = '%d units differ' % bad
    else:
        out['check'] = 'ok'
    if out.get('guest_errors'):
        out['check'] += ', %d I/O errors' % out['guest_errors']


def run_one(args, name, pattern, factor, algorithm, image, image_sha):
    out = {'workload': name, 'pattern': pattern, 'factor': factor,
           'algorithm': algorithm, 'status': 'error'}
    sim = simmod.Simulator().start()
    a = b = None
    try:
        a = client(sim, 'pool-a')
        b = client(sim, 'pool-b')
        settings = a.control.configure(algorithm=algorithm,
                                       bandwidth=args.bandwidth)
        out['settings'] = settings
        sr_a = a.sr('ext')
        out['base'] = baseline_window(a, sr_a, image, pattern, factor, args)
        migrate(a, b, sr_a, image, image_sha, pattern, factor, args, out)
    except (BenchError, XenAPI.Failure, control.ControlError,
            OSError) as exc:
        out['status'] = 'error'
        out['error'] = str(exc)
    finally:
        for c in (a, b):
            if c is not None:
                c.close()
        sim.stop()
    return out


def client(sim, pool):
    return Client(sim.pools[pool].url)


# -- output ------------------------------------------------------------------

def _f(value, fmt, scale=1.0):
    if value is None:
        return '-'
    return fmt % (value * scale)


def _pair_ms(p50, p99):
    if p50 is None or p99 is None:
        return '-'
    return '%.2f/%.1f' % (p50 * 1e3, p99 * 1e3)


COLUMNS = [
    # header, left-aligned
    ('workload', True), ('rho', False), ('algorithm', True),
    ('asked', False), ('got', False), ('in-mig', False),
    ('time', False), ('wall', False), ('downtime', False),
    ('engine', False), ('gap0', False), ('copied', False),
    ('mirrored', False), ('sent', False), ('passes', False),
    ('conv', True), ('lat base', False), ('lat migr', False),
    ('check', True),
]


def table_row(r, bandwidth):
    base = r.get('base') or {}
    ok = r['status'] == 'ok'
    # A cancelled or failed migration's log holds partial figures: only
    # its time is shown.
    log = r.get('log') or {}
    if not ok:
        log = {'seconds': log.get('seconds')}
    rate = base.get('rate')
    asked = r['factor'] * bandwidth
    conv = log.get('converged')
    if log.get('algorithm') != 'copy-dirty' or conv is None:
        conv = '-' if log.get('algorithm') != 'copy-dirty' else '?'
    else:
        conv = 'yes' if conv else 'NO'
    check = r.get('check', '-') if ok else r['status']
    return [
        r['workload'],
        _f(rate / bandwidth if rate is not None else None, '%.2f'),
        r['algorithm'],
        _f(asked, '%.1f', 1.0 / MiB),
        _f(rate, '%.1f', 1.0 / MiB),
        _f(r.get('mig_rate'), '%.1f', 1.0 / MiB),
        _f(log.get('seconds'), '%.2f'),
        _f(r.get('wall'), '%.2f'),
        _f(r.get('gap') if ok else None, '%.3f'),
        _f(log.get('downtime') if ok else None, '%.3f'),
        _f(base.get('gap'), '%.3f'),
        _f(log.get('bytes_copied'), '%.1f', 1.0 / MiB),
        _f(log.get('bytes_mirrored'), '%.1f', 1.0 / MiB),
        _f(log.get('bytes_sent'), '%.1f', 1.0 / MiB),
        str(log['passes']) if 'passes' in log else '-',
        conv,
        _pair_ms(base.get('p50'), base.get('p99')),
        _pair_ms(r.get('mig_p50'), r.get('mig_p99')),
        check,
    ]


def print_table(results, bandwidth):
    rows = [[h for h, _ in COLUMNS]] + [table_row(r, bandwidth)
                                        for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for n, row in enumerate(rows):
        cells = []
        for (_, left), width, cell in zip(COLUMNS, widths, row):
            cells.append(cell.ljust(width) if left else cell.rjust(width))
        print('  '.join(cells).rstrip())
        if n == 0:
            print('  '.join('-' * w for w in widths))


def print_legend(args, settings):
    print()
    for line in (
            'rho: write rate achieved without migration / bandwidth',
            'asked, got, in-mig: write rate requested, achieved without '
            'migration, achieved during the migration (MiB/s)',
            'time: engine migration time (s); wall: call to end of task (s)',
            'downtime: largest gap of the 10 ms heartbeat during the '
            'migration (s); engine: pause to unpause (s);',
            '    gap0: largest heartbeat gap without migration, the noise '
            'floor (s)',
            'copied, mirrored, sent: MiB; passes, conv: copy-dirty\'s '
            'dirty passes and whether it reached downtime_target',
            'lat base, lat migr: guest write latency p50/p99 (ms) without '
            'and during migration',
            'check: the disk on pool-b equals the expected image '
            '(guest_check; for idle the sha256 of the export)'):
        print(line)
    if settings:
        keys = ('bandwidth', 'mirror_latency', 'memory_seconds',
                'pause_seconds', 'downtime_target', 'max_passes')
        print('settings: %s' % ', '.join(
            '%s=%s' % (k, settings[k]) for k in keys if k in settings))
    for r in args.results:
        asked = r['factor'] * args.bandwidth
        rate = (r.get('base') or {}).get('rate')
        if asked and rate is not None and abs(rate - asked) > 0.1 * asked:
            print('WARNING: %s %.2f %s: the guest wrote %.1f MiB/s, asked '
                  '%.1f' % (r['workload'], r['factor'], r['algorithm'],
                            rate / MiB, asked / MiB))
    for r in results_with_errors(args.results):
        print('%s %.2f %s: %s %s' % (r['workload'], r['factor'],
                                     r['algorithm'], r['status'],
                                     r.get('error', '')))


def results_with_errors(results):
    return [r for r in results if r['status'] not in ('ok',)]


def _rho(r, bandwidth):
    return r['base']['rate'] / bandwidth


def _series(ax, runs, bandwidth, value, color, label, others=True,
            **style):
    """Uniform runs (and idle at rho 0) as a line; others as markers."""
    line = sorted((r for r in runs if r['workload'] in ('idle', 'uniform')
                   and value(r) is not None),
                  key=lambda r: _rho(r, bandwidth))
    idle = ' (idle at 0)' if line and line[0]['workload'] == 'idle' else ''
    ax.plot([_rho(r, bandwidth) for r in line], [value(r) for r in line],
            style.pop('fmt', 'o-'), color=color,
            label='%s, uniform%s' % (label, idle), **style)
    if not others:
        return
    for name, marker in (('sequential', 's'), ('hotspot', '^')):
        pts = [r for r in runs if r['workload'] == name
               and value(r) is not None]
        if pts:
            ax.plot([_rho(r, bandwidth) for r in pts],
                    [value(r) for r in pts], marker, linestyle='none',
                    color=color, markersize=8, label='%s, %s' % (label, name),
                    **style)


def plot(results, bandwidth, settings, out):
    """Write the PNG; False when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax_d, ax_t, ax_l) = plt.subplots(1, 3, figsize=(17, 5.5))
    colors = {'mirror': 'tab:blue', 'copy-dirty': 'tab:red'}
    ok = [r for r in results if r['status'] == 'ok' and r.get('base')]
    for alg in ALGORITHMS:
        mine = [r for r in ok if r['algorithm'] == alg]
        color = colors[alg]
        _series(ax_d, mine, bandwidth, lambda r: r['gap'], color, alg)
        _series(ax_d, mine, bandwidth, lambda r: r['log']['downtime'],
                color, alg + ' engine pause', others=False, fmt='o:',
                markerfacecolor='none', alpha=0.5)
        _series(ax_t, mine, bandwidth, lambda r: r['log']['seconds'],
                color, alg)
        _series(ax_l, mine, bandwidth,
                lambda r: (r['mig_p99'] * 1e3 if r.get('mig_p99')
                           else None), color, alg + ' during migration')
    _series(ax_l, ok, bandwidth,
            lambda r: (r['base']['p99'] * 1e3 if r['base'].get('p99')
                       else None), 'grey', 'no migration (both runs)', fmt='o',
            alpha=0.6)
    target = (settings or {}).get('downtime_target')
    if target:
        ax_d.axhline(target, color='grey', linestyle='--', linewidth=0.8,
                     label='downtime_target %.2g s' % target)
    for ax in (ax_d, ax_t, ax_l):
        ax.axvline(1.0, color='grey', linestyle=':', linewidth=0.8)
        ax.set_xlabel('rho = guest write rate / bandwidth')
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in (ax_d, ax_l):
        if any(y > 0 for line in ax.get_lines() for y in line.get_ydata()):
            ax.set_yscale('log')
    ax_d.set_ylabel('downtime (s): largest gap of a 10 ms heartbeat')
    ax_d.set_title('Downtime')
    ax_t.set_ylabel('migration time (s)')
    ax_t.set_ylim(bottom=0)
    ax_t.set_title('Migration time')
    ax_l.set_ylabel('guest write latency p99 (ms)')
    ax_l.set_title('Guest write latency p99 (64 KiB writes)')
    failed = results_with_errors(results)
    note = ('; not plotted: %s' % ', '.join(
        '%s %.2f %s (%s)' % (r['workload'], r['factor'], r['algorithm'],
                             r['status']) for r in failed)) if failed else ''
    fig.suptitle('Cross-pool live migration of one %d MiB disk (half '
                 'full), bandwidth %.0f MiB/s: SXM mirror vs copy-dirty%s'
                 % (results[0]['size'] // MiB if results else 0,
                    bandwidth / MiB, note), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    image = make_image(args.size, args.seed)
    image_sha = hashlib.sha256(image).hexdigest()
    runs = [(w, alg) for w in args.workloads for alg in ALGORITHMS]
    print('disk %d MiB (%d MiB of data), bandwidth %.1f MiB/s, %d KiB '
          'writes, baseline window %g s, timeout %g s, %d runs'
          % (args.size // MiB, (args.size - _zero_bytes(image)) // MiB,
             args.bandwidth / MiB, BLOCK_SIZE // 1024, args.window,
             args.timeout, len(runs)), flush=True)
    results = []
    settings = None
    for (name, pattern, factor), alg in runs:
        t = time.monotonic()
        r = run_one(args, name, pattern, factor, alg, image, image_sha)
        r['size'] = args.size
        settings = settings or r.get('settings')
        results.append(r)
        print('  %-10s %.2f %-10s %-7s %5.1f s' % (
            name, factor, alg, r['status'], time.monotonic() - t),
            file=sys.stderr, flush=True)
    args.results = results
    print()
    print_table(results, args.bandwidth)
    print_legend(args, settings)
    if not any(r['status'] == 'ok' for r in results):
        print('plot: not written, no run succeeded')
    elif plot(results, args.bandwidth, settings, args.out):
        print('plot: %s' % args.out)
    else:
        print('plot: not written, matplotlib is not installed '
              '(.venv/bin/pip install matplotlib)')
    print('total %.1f s' % (time.monotonic() - started))
    return 0 if not results_with_errors(results) else 1


def _zero_bytes(image):
    zeros = 0
    for offset in range(0, len(image), storage.BLOCK):
        block = image[offset:offset + storage.BLOCK]
        if block.count(0) == len(block):
            zeros += len(block)
    return zeros


if __name__ == '__main__':
    sys.exit(main())
