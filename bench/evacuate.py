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

"""How close a host drain comes to what the link allows.

Starts the simulator in-process, creates ``--vms`` running VMs of varied
disk sizes on pool-a's host, each guest writing, caps the link between the
pools (``configure bandwidth``) and drains the host to pool-b with
``sxm_core.fleet.drain`` (``--concurrency`` at once, xapi's limit of three
storage migrations per host respected). Prints the makespan against the
lower bound -- every byte the migrations sent (background copy plus
mirrored guest writes, from the simulator's migration log) over the link
cap -- as a ratio, and each VM's times. Every guest's bytes are checked
afterwards. See bench/README.rst.
"""

import argparse
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import benchlib  # noqa: E402

from sxm_core import fleet  # noqa: E402
from sxm_core import migrate  # noqa: E402
from sxm_core import sessions  # noqa: E402
from sxm_core import slots  # noqa: E402
from xapi_sim import sim as simmod  # noqa: E402
from xapi_sim import vmbuild  # noqa: E402

MiB = 1 << 20
TARGET = 1.15


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--vms', type=int, default=6)
    p.add_argument('--min-size', type=simmod.parse_size, default=8 * MiB,
                   help='disk size of the smallest VM (default 8MiB)')
    p.add_argument('--max-size', type=simmod.parse_size, default=48 * MiB,
                   help='disk size of the largest VM (default 48MiB)')
    p.add_argument('--bandwidth', type=simmod.parse_size, default=8 * MiB,
                   help='link cap in bytes/s (default 8MiB)')
    p.add_argument('--write-rate', type=simmod.parse_size,
                   default=256 * 1024,
                   help='guest writes per VM in bytes/s (default 256KiB)')
    p.add_argument('--concurrency', type=int, default=3)
    p.add_argument('--seed', type=int, default=7)
    return p.parse_args(argv)


class Client(benchlib.Client):
    """The bench's own XenAPI session on one pool, and its control."""

    def __init__(self, url):
        super().__init__(url, 'bench-evacuate')

    def running_vm(self, label, size, image):
        x = self.xenapi
        sr = vmbuild.find_sr(x, 'ext')
        vm, (vdi,) = vmbuild.create_vm(x, label, [(size, sr)], start=False)
        self.import_raw(vdi, image)
        x.VM.start(vm, False, False)
        return x.VM.get_uuid(vm)


def sizes(args):
    if args.vms == 1:
        return [args.max_size]
    step = (args.max_size - args.min_size) / (args.vms - 1)
    # Whole MiB: the guests write 4 KiB blocks.
    return [int(args.min_size + i * step) // MiB * MiB
            for i in range(args.vms)]


def run(args):
    sim = simmod.Simulator().start()
    a = b = source = dest = None
    try:
        a, b = Client(sim.pools['pool-a'].url), Client(
            sim.pools['pool-b'].url)
        rng = random.Random(args.seed)
        vms = {}
        for i, size in enumerate(sizes(args)):
            name = 'vm%d' % i
            vms[name] = (a.running_vm(name, size, rng.randbytes(size)),
                         size)
            a.control.workload_start(vms[name][0], '0',
                                     rate=args.write_rate,
                                     seed=args.seed + i)
        a.control.configure(bandwidth=args.bandwidth)
        source = sessions.SessionPool(sim.pools['pool-a'].url,
                                      simmod.DEFAULT_USERNAME,
                                      simmod.DEFAULT_PASSWORD, maxsize=8)
        dest = sessions.SessionPool(sim.pools['pool-b'].url,
                                    simmod.DEFAULT_USERNAME,
                                    simmod.DEFAULT_PASSWORD, maxsize=8)
        migrator = migrate.Migrator(
            source, dest, slots=slots.HostSlots(min(3, args.concurrency)))
        host = a.xenapi.host.get_name_label(a.xenapi.pool.get_master(
            a.xenapi.pool.get_all()[0]))
        times, lock = {}, threading.Lock()

        def on_progress(name, progress):
            with lock:
                times.setdefault(name, [time.monotonic(), None])

        def on_done(name, value):
            with lock:
                times.setdefault(name, [None, None])[1] = time.monotonic()
        started = time.monotonic()
        outcomes = fleet.drain(source, dest, host, {'tier': 'same'},
                               concurrency=args.concurrency,
                               on_progress=on_progress, on_done=on_done,
                               migrator=migrator)
        makespan = time.monotonic() - started
        log = {m['vm']: m for m in a.control.migrations()
               if m.get('bytes_sent') is not None}
        report(args, vms, outcomes, times, started, makespan, log, b)
        return 0 if all(o.ok for o in outcomes) else 1
    finally:
        for pool in (source, dest):
            if pool is not None:
                pool.close()
        for c in (a, b):
            if c is not None:
                c.close()
        sim.stop()


def report(args, vms, outcomes, times, started, makespan, log, b):
    total = 0
    print('%-5s %8s %10s %8s %8s %8s  %s' % (
        'vm', 'disk', 'sent', 'start', 'end', 'seconds', 'guest check'))
    for o in outcomes:
        uuid, size = vms[o.vm_name]
        sent = int(log.get(uuid, {}).get('bytes_sent') or 0)
        total += sent
        begin, end = times.get(o.vm_name, [None, None])
        check = 'FAILED: %s' % o.error if not o.ok else _check(b, uuid)
        print('%-5s %6.0fMiB %8.1fMiB %7.2fs %7.2fs %7.2fs  %s' % (
            o.vm_name, size / MiB, sent / MiB,
            (begin or started) - started, (end or started) - started,
            o.result.seconds if o.ok else float('nan'), check))
    bound = total / float(args.bandwidth)
    print()
    print('VMs: %d, concurrency %d, link cap %.0f MiB/s, guest writes '
          '%.0f KiB/s each' % (len(vms), args.concurrency,
                               args.bandwidth / MiB, args.write_rate / 1024))
    print('bytes sent: %.1f MiB; lower bound (bytes / cap): %.2f s'
          % (total / MiB, bound))
    ratio = makespan / bound if bound else float('nan')
    print('makespan: %.2f s; ratio makespan / lower bound: %.3fx '
          '(target <= %.2fx: %s)' % (makespan, ratio, TARGET,
                                     'met' if ratio <= TARGET
                                     else 'NOT met'))


def _check(b, uuid):
    b.control.workload_stop(uuid)
    stats = b.control.guest_stats(uuid)
    report = b.control.guest_check(uuid)
    errors = sum(d['errors'] for d in stats['disks'])
    if errors or not all(d['ok'] for d in report):
        return 'BAD (%d I/O errors, %s)' % (errors, report)
    return 'ok (%d writes)' % sum(d['writes'] for d in stats['disks'])


def main(argv=None):
    return run(parse_args(argv if argv is not None else sys.argv[1:]))


if __name__ == '__main__':
    sys.exit(main())
