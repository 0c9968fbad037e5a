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

"""More storage migrations from one host than xapi allows (three).

Five clients, each with limits of its own (as separate processes have),
migrate five VMs of one host at once: xapi refuses two with
TOO_MANY_STORAGE_MIGRATES; each must start again when another migration of
the host ends -- not after a fixed sleep. The test reads the order of
events from XAPI itself. And ``fleet.drain`` empties a host with bounded
concurrency, one VM's failure not stopping the others.
"""

import threading
import time

from sxm_core import fleet
from sxm_core import migrate
from sxm_core import slots as slotsmod
from tests.functional.sxm_core import base

MiB = base.MiB
EXT = base.EXT
# One 8 MiB disk each (xapi-sim moves five in a few seconds at this cap).
SMALL = (('0', 'system', EXT, 8 * MiB, 2 * MiB),)
BANDWIDTH = 6 * MiB
# What the core used to sleep before a retry, whatever happened meanwhile.
OLD_FIXED_INTERVAL = 30.0


class TaskRecorder(object):
    """Follows pool-a's storage migration tasks through event.from.

    ``attempts[vm] = [(created, ended, status, error code)]`` in XAPI's
    order, with this process's monotonic times of what it saw. A storage
    migration counts against ``host`` while its VM, resident there, has
    the migrate_send operation; it stops counting when the VM leaves the
    host (its memory has moved) or the operation ends, a little before the
    task's status changes: ``ended`` is the first of these.
    """

    def __init__(self, test, session, host):
        self.api = session.xenapi
        self.host = host
        self.stop = threading.Event()
        self.vm_of = {}      # task ref -> VM ref
        self.ops = {}        # VM ref -> its migrate_send tasks
        self.op_end = {}     # task ref -> when it left its VM's operations
        self.tasks = {}      # task ref -> [seen, ended, status, code]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        test.addCleanup(self.close)

    def _run(self):
        token = ''
        while not self.stop.is_set():
            answer = self.api.event_from(['task', 'VM'], token, 1.0)
            token = answer['token']
            now = time.monotonic()
            for event in answer['events']:
                rec = event.get('snapshot') or {}
                if event['class'] == 'vm':
                    ops = {t for t, op in (rec.get('current_operations')
                                           or {}).items()
                           if op == 'migrate_send'}
                    if (event['operation'] == 'del'
                            or rec.get('resident_on') != self.host):
                        ops = set()
                    for task, op in (rec.get('current_operations')
                                     or {}).items():
                        if op == 'migrate_send':
                            self.vm_of.setdefault(task, event['ref'])
                    for task in self.ops.get(event['ref'], set()) - ops:
                        self.op_end.setdefault(task, now)
                    self.ops[event['ref']] = ops
                    continue
                if rec.get('name_label') != 'Async.VM.migrate_send':
                    continue
                entry = self.tasks.setdefault(event['ref'],
                                              [now, None, None, None])
                if rec['status'] not in ('pending', 'cancelling') \
                        and entry[1] is None:
                    entry[1:] = [now, rec['status'],
                                 (rec.get('error_info') or [None])[0]]

    def close(self):
        self.stop.set()
        self.thread.join(10)

    def attempts(self):
        out = {}
        for task, entry in sorted(self.tasks.items(), key=lambda t: t[1][0]):
            seen, ended, status, code = entry
            if task in self.op_end and ended is not None:
                ended = min(ended, self.op_end[task])
            out.setdefault(self.vm_of.get(task), []).append(
                (seen, ended, status, code))
        return out


class TestFiveAtOnce(base.CoreTestCase):

    def test_refused_migrations_start_when_a_slot_frees(self):
        self.ctl.configure(bandwidth=BANDWIDTH)
        names = ['vm%d' % i for i in range(5)]
        vms = {}
        for name in names:
            vm, _ = self.make_vm(name=name, disks=SMALL)
            self.write(vm, devices=('0',), rate=MiB // 8)
            vms[name] = vm
        for vm in vms.values():
            self.wait_writes(vm)
        recorder = TaskRecorder(self, self.login('pool-a'), self.host_a)
        barrier = threading.Barrier(len(names))
        outcomes = {}

        def client(name):
            # A client of its own: its own sessions and its own limits.
            m = migrate.Migrator(self.pool('pool-a'), self.pool('pool-b'),
                                 slots=slotsmod.HostSlots(3, poll=0.01),
                                 too_many_interval=2 * OLD_FIXED_INTERVAL)
            try:
                the_plan, _ = m.plan(name, tier='same')
                barrier.wait(60)
                outcomes[name] = m.migrate(the_plan)
            except Exception as exc:  # inspected below
                outcomes[name] = exc
        threads = [threading.Thread(target=client, args=(n,), daemon=True)
                   for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        for name in names:
            self.assertIsInstance(outcomes.get(name), migrate.Result,
                                  '%s: %s' % (name, outcomes.get(name)))
        recorder.close()
        attempts = recorder.attempts()
        ends = sorted(e[1] for tries in attempts.values() for e in tries
                      if e[2] == 'success')
        self.assertEqual(5, len(ends))
        retries = 0
        for vm, tries in attempts.items():
            self.assertEqual('success', tries[-1][2], tries)
            for refused, retry in zip(tries, tries[1:]):
                self.assertEqual('TOO_MANY_STORAGE_MIGRATES', refused[3])
                retries += 1
                # Retried because another migration of the host ended
                # (after the refusal, when three were running)...
                between = [t for t in ends if refused[0] <= t <= retry[0]]
                self.assertTrue(between, 'retry of %s not after another '
                                'migration ended: %s' % (vm, attempts))
                # ...not because a fixed interval had passed.
                self.assertLess(retry[0] - refused[1], OLD_FIXED_INTERVAL)
        self.assertGreaterEqual(retries, 2, attempts)
        for name, vm in vms.items():
            uuid = self.api_b.VM.get_uuid(outcomes[name].vm_ref)
            self.assertIsNone(self.vm_in(uuid, self.api))
            self.stop_and_check(outcomes[name].vm_ref, ctl=self.ctl_b,
                                devices=('0',))


class TestDrain(base.CoreTestCase):

    def test_drain_moves_every_running_vm_and_survives_a_failure(self):
        self.ctl.configure(bandwidth=BANDWIDTH)
        vms = {}
        for i in range(4):
            vm, _ = self.make_vm(name='guest%d' % i, disks=SMALL)
            self.write(vm, devices=('0',), rate=MiB // 8)
            vms['guest%d' % i] = vm
        halted, _ = self.make_vm(name='halted', disks=SMALL, start=False)
        for vm in vms.values():
            self.wait_writes(vm)
        # The first migration to start fails; the others go on.
        self.ctl.fault_inject('prepare', code='INTERNAL_ERROR',
                              params=['injected'], times=1)
        source, dest = self.pool('pool-a'), self.pool('pool-b')
        migrator = migrate.Migrator(
            source, dest, slots=slotsmod.HostSlots(2, poll=0.01))
        progress, done = {}, {}
        lock = threading.Lock()
        running, peak = [0], [0]

        def on_progress(name, p):
            with lock:
                progress.setdefault(name, []).append(p.fraction)

        def on_done(name, value):
            done[name] = value
        original = migrator.migrate

        def counted(*args, **kwargs):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                return original(*args, **kwargs)
            finally:
                with lock:
                    running[0] -= 1
        migrator.migrate = counted
        host = self.api.host.get_name_label(self.host_a)
        outcomes = fleet.drain(source, dest, host, {'tier': 'same'},
                               concurrency=3, on_progress=on_progress,
                               on_done=on_done, migrator=migrator)
        self.assertEqual(sorted(vms), [o.vm_name for o in outcomes])
        failed = [o for o in outcomes if not o.ok]
        self.assertEqual(1, len(failed), outcomes)
        self.assertIn('injected', str(failed[0].error))
        self.assertLessEqual(peak[0], 3)
        self.assertEqual(set(vms), set(done))
        for o in outcomes:
            vm = vms[o.vm_name]
            if o.ok:
                self.assertEqual(1.0, progress[o.vm_name][-1])
                self.assertIsNone(self.vm_in(o.vm_uuid, self.api))
                self.stop_and_check(o.result.vm_ref, ctl=self.ctl_b,
                                    devices=('0',))
            else:
                self.assertEqual('Running', self.api.VM.get_power_state(vm))
                self.stop_and_check(vm, devices=('0',))
        # Only running guests move.
        self.assertEqual('Halted', self.api.VM.get_power_state(halted))
