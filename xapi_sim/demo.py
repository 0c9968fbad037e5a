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

"""``xapi-sim demo``: a live cross-pool block migration on the simulator.

It boots a VM with two disks of different sizes, one on a thick (lvm) SR
and one on a thin (ext) SR, fills part of each through ``import_raw_vdi``,
starts a guest that keeps writing to both, migrates the VM live to the
other pool with the same code path as ``sxm migrate``, and verifies every
disk byte for byte against the image the guest's writes imply.

It lives beside the simulator because it starts one: the product
(``sxm_core``, the drivers) never imports ``xapi_sim``.
"""

import random
import time

from sxm_core.cli import commands
from sxm_core.cli import console as consolemod
from sxm_core.cli import formats
from sxm_core.cli import pools
from sxm_core.cli import signals
from sxm_core import errors
from sxm_core import sessions
from sxm_core import transfer
from xapi_sim import control
from xapi_sim import sim as simmod

MIB = 1 << 20
DISKS = (  # userdevice, name, SR type, size, bytes written before boot
    ('0', 'system', 'lvm', 256 * MIB, 96 * MIB),
    ('1', 'data', 'ext', 128 * MIB, 48 * MIB),
)
GUEST_RATE = 2 * MIB        # bytes/s per disk, 4 KiB random writes
BANDWIDTH = 64 * MIB        # the simulated migration network
human_bytes = formats.human_bytes


def _fill(url, session, vdi, nbytes, seed):
    rng = random.Random(seed)

    def chunks():
        left = nbytes
        while left:
            n = min(MIB, left)
            yield rng.randbytes(n)
            left -= n
    transfer.put(url, session, vdi, chunks(), nbytes, timeout=120)


def _utilisation(pool, vm_uuid):
    out = {}
    with pool.session() as x:
        vm = x.VM.get_by_uuid(vm_uuid)
        for vbd in x.VM.get_VBDs(vm):
            vdi = x.VBD.get_VDI(vbd)
            sr = x.VDI.get_SR(vdi)
            x.SR.scan(sr)
            out[x.VBD.get_userdevice(vbd)] = (
                x.SR.get_type(sr), int(x.VDI.get_virtual_size(vdi)),
                int(x.VDI.get_physical_utilisation(vdi)))
    return out


def _build_vm(pool, sim_pool):
    with pool.session() as x:
        srs = {rec['type']: ref for ref, rec in
               x.SR.get_all_records().items()}
        memory = str(512 * MIB)
        vm = x.VM.create({'name_label': 'demo-vm',
                          'memory_static_min': memory,
                          'memory_dynamic_min': memory,
                          'memory_dynamic_max': memory,
                          'memory_static_max': memory,
                          'VCPUs_max': '1', 'VCPUs_at_startup': '1'})
        for userdevice, name, sr_type, size, fill in DISKS:
            vdi = x.VDI.create({
                'SR': srs[sr_type], 'virtual_size': str(size),
                'type': 'user', 'name_label': name, 'sharable': False,
                'read_only': False, 'other_config': {}})
            _fill(sim_pool.url, x.handle, vdi, fill, seed=int(userdevice))
            x.VBD.create({'VM': vm, 'VDI': vdi, 'userdevice': userdevice,
                          'mode': 'RW', 'type': 'Disk', 'empty': False,
                          'bootable': userdevice == '0'})
        x.VIF.create({'VM': vm, 'network': x.network.get_all()[0],
                      'device': '0', 'MTU': '1500', 'MAC': '',
                      'other_config': {}})
        x.VM.start(vm, False, False)
        return vm, x.VM.get_uuid(vm), x.handle


def main(debug=False, quiet=False, out=None, err=None):
    """``xapi-sim demo``: run the demo; returns the exit status."""
    console = consolemod.Console(out, err, quiet=quiet)
    consolemod.setup_logging(debug, console.err)
    try:
        return run(console)
    except errors.SxmError as exc:
        return consolemod.fail(console, consolemod.EXIT_FAILED,
                               'The demo failed: %s' % exc)


def run(console):
    """Run the demo, writing to ``console``; returns the exit status.

    Ctrl-C while the VM is built stops the demo at once; during the
    migration it cancels the migration (as ``sxm migrate`` does); either
    way the simulator is stopped and its files removed before the exit.
    """
    started = time.monotonic()
    sim = simmod.Simulator().start()
    pools_ = []
    status = consolemod.EXIT_FAILED
    try:
        status = _run(console, sim, pools_, started)
    except KeyboardInterrupt:
        status = consolemod.EXIT_CANCELLED
    finally:
        # A second Ctrl-C must not cut the shutdown short.
        with signals.SignalGuard():
            for pool in pools_:
                pool.close()
            sim.stop()
    if status == consolemod.EXIT_CANCELLED:
        console.note('Demo cancelled after %.1f s; the simulator is stopped.'
                     % (time.monotonic() - started), always=True)
    return status


def _run(console, sim, pools_, started):
    out = console.result
    src_sim, dst_sim = sim['pool-a'], sim['pool-b']
    out('XAPI simulator: pool-a at %s, pool-b at %s'
        % (src_sim.url, dst_sim.url))
    source = sessions.SessionPool(src_sim.url, simmod.DEFAULT_USERNAME,
                                  simmod.DEFAULT_PASSWORD)
    pools_.append(source)
    dest = sessions.SessionPool(dst_sim.url, simmod.DEFAULT_USERNAME,
                                simmod.DEFAULT_PASSWORD)
    pools_.append(dest)
    vm, uuid, handle = _build_vm(source, src_sim)
    ctl = control.Control(src_sim.url, handle)
    ctl.configure(bandwidth=BANDWIDTH)
    for userdevice, *_ in DISKS:
        ctl.workload_start(vm, userdevice, pattern='uniform',
                           rate=GUEST_RATE, block_size=4096,
                           seed=int(userdevice) + 1)
    before = _utilisation(source, uuid)
    out("VM 'demo-vm' runs on pool-a; its guest writes %s/s of "
        'random 4 KiB blocks to each disk.\n' % human_bytes(GUEST_RATE))

    opts = pools.load_conf()
    migrator = pools.migrator_for(source, dest, opts)
    the_plan, _ = migrator.plan(uuid, tier='thin')
    # As the CLI runs it: one migrate_receive for the check and the move.
    problems, lease = migrator.prepare(the_plan)
    out(formats.format_plan(the_plan, problems) + '\n')
    if lease is None:
        return consolemod.EXIT_FAILED
    heartbeat_from = time.monotonic()
    status = commands.run_migration(migrator, the_plan, console, lease)
    if status:
        return status

    with dest.session() as x:
        new_vm = x.VM.get_by_uuid(uuid)
        dctl = control.Control(dst_sim.url, x.handle)
    stats = dctl.workload_stop(new_vm)
    checks = dctl.guest_check(new_vm)
    log = dctl.migrations()[-1]
    after = _utilisation(dest, uuid)
    with source.session() as x:
        left = [r['name_label'] for r in
                x.VM.get_all_records().values() if r['uuid'] == uuid]
    ok = all(c['ok'] for c in checks) and not left
    _report(out, log, stats, checks, before, after, left,
            time.monotonic() - heartbeat_from)
    out('\nDemo %s in %.1f s.' % ('passed' if ok else 'FAILED',
                                  time.monotonic() - started))
    return consolemod.EXIT_OK if ok else consolemod.EXIT_FAILED


def _report(out, log, stats, checks, before, after, left, elapsed):
    writes = sum(d['writes'] for d in stats['disks'])
    out('\nSummary')
    out('  migration time     %.2f s (engine), %.2f s with checks'
        % (log['seconds'], elapsed))
    out('  downtime           %.0f ms (largest gap of the guest\'s 10 ms '
        'heartbeat)' % (stats['max_gap'] * 1000))
    out('  bytes moved        %s copied + %s mirrored = %s' % (
        human_bytes(log['bytes_copied']), human_bytes(log['bytes_mirrored']),
        human_bytes(log['bytes_sent'])))
    out('  guest writes       %d during the run, write latency p99 '
        '%.2f ms' % (writes, 1000 * max(d['latency_p99']
                                        for d in stats['disks'])))
    out('  source pool        %s' % ('VM and disks removed' if not left
                                     else 'VM still there!'))
    out('\n  disk  before (pool-a)                after (pool-b)'
        '                 image check')
    for c in checks:
        ud = c['userdevice']
        b_type, size, b_phys = before[ud]
        a_type, _, a_phys = after[ud]
        out('  %-4s  %-4s %-8s of %-8s  ->  %-4s %-8s of %-8s  %s' % (
            ud, b_type, human_bytes(b_phys), human_bytes(size), a_type,
            human_bytes(a_phys), human_bytes(size),
            'ok: byte for byte' if c['ok'] else
            'MISMATCH in %d blocks' % c['mismatches']))
