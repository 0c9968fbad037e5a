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

"""The two halves of a migration and the destination cleanup, over HTTP.

The destination half asks its pool for the migrate_receive token once;
the source half checks and sends with it (also across a
TOO_MANY_STORAGE_MIGRATES retry); a cancel, a failure and a lost
contact are told apart by type; the destination cleanup removes what a
migration left in the destination pool and is safe to call twice.
"""

import threading

import fixtures

from sxm_core import errors
from sxm_core import fleet
from sxm_core import migrate
from sxm_core import plan as planmod
from sxm_core import slots as slotsmod
from tests.functional.sxm_core import base
from tests.functional.sxm_core import test_migrate
from xapi_sim import vmbuild

MiB = base.MiB
LVM = base.LVM
EXT = base.EXT


class HalvesTestCase(test_migrate.MigrateTestCase):

    def count_calls(self, pool, method):
        """How often ``pool.call(method, ...)`` is made (a list)."""
        made = []
        real = pool.call

        def call(name, *args):
            if name == method:
                made.append(args)
            return real(name, *args)
        pool.call = call
        return made


class TestOneReceivePerMigration(HalvesTestCase):

    def test_check_and_migrate_share_one_token_across_a_retry(self):
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator(too_many_interval=0.01, sleep=lambda s: None)
        receives = self.count_calls(m.dest, 'host.migrate_receive')
        checks = self.count_calls(m.source, 'VM.assert_can_migrate')
        the_plan, problems = m.plan(uuid, tier='same')
        self.assertEqual([], planmod.blocking(problems))
        problems, held = m.prepare(the_plan)
        self.assertEqual([], problems)
        self.assertNotIn(held.token, repr(held))
        self.ctl.fault_inject('prepare', code='TOO_MANY_STORAGE_MIGRATES',
                              params=['3'], times=1)
        progress = test_migrate.Progress()
        result = m.migrate(the_plan, progress=progress, lease=held)
        self.assertEqual([], self.ctl.call('faults'),
                         'the TOO_MANY_STORAGE_MIGRATES did not fire')
        self.assertEqual(['refused', 'retry'], [k for k, _ in m.retry_log])
        self.assertEqual(1, len(receives))
        self.assertEqual(1, len(checks))
        self.assertTrue(held.ended)
        # The memory phase is reported, and complete at the end.
        memory = the_plan.vm.memory
        self.assertGreater(memory, 0)
        last = progress.seen[-1]
        self.assertEqual('done', last.phase)
        self.assertEqual((int(memory), int(memory)),
                         (last.memory_done, last.memory_total))
        self.assertTrue(all(p.memory_done == 0 for p in progress.seen
                            if p.phase in ('mirror', 'copy')))
        self.stop_and_check(result.vm_ref, ctl=self.ctl_b)
        m.source.close()
        m.dest.close()
        self.assertNoSessionsLeft()

    def test_migrate_alone_receives_once(self):
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator()
        receives = self.count_calls(m.dest, 'host.migrate_receive')
        the_plan, _ = m.plan(uuid, tier='same')
        result = m.migrate(the_plan)
        self.assertEqual(1, len(receives))
        self.stop_and_check(result.vm_ref, ctl=self.ctl_b)

    def test_a_plan_is_preflighted_once(self):
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator()
        runs = []
        real = planmod.preflight

        def counted(the_plan):
            runs.append(the_plan)
            return real(the_plan)
        self.useFixture(fixtures.MockPatchObject(migrate.planmod,
                                                 'preflight', counted))
        the_plan, _ = m.plan(uuid, tier='same')
        problems, held = m.prepare(the_plan)
        self.assertEqual([], problems)
        result = m.migrate(the_plan, lease=held)
        self.assertEqual(1, len(runs))
        self.stop_and_check(result.vm_ref, ctl=self.ctl_b)

    def test_an_unused_lease_is_logged_out(self):
        vm, vdis = self.make_vm()
        m = self.migrator()
        tokens = self.spy_sessions('pool-b')
        the_plan, _ = m.plan(vm)
        with m.receive(the_plan) as held:
            self.assertIn(held.token, self.sessions('pool-b'))
        self.assertNotIn(held.token, self.sessions('pool-b'))
        self.assertFalse(held.release())  # twice is harmless
        self.assertIn(held.token, tokens)


class TestTypedOutcomes(HalvesTestCase):

    def test_a_cancel_is_a_migration_cancelled(self):
        self.ctl.configure(bandwidth=8 * MiB)
        disks = (('0', 'system', LVM, 64 * MiB, 32 * MiB),
                 ('1', 'data', EXT, 16 * MiB, 4 * MiB))
        vm, vdis, uuid = self.writing_vm(disks=disks)
        m = self.migrator()
        the_plan = self.planned(m, uuid, tier='same')
        before_a, before_b = self.vdi_set(), self.vdi_set(self.api_b)
        cancel = threading.Event()

        def cancel_past_a_tenth(progress):
            if progress.fraction > 0.1:
                cancel.set()
        exc = self.assertRaises(errors.MigrationCancelled, m.migrate,
                                the_plan,
                                test_migrate.Progress(cancel_past_a_tenth),
                                cancel)
        self.assertTrue(exc.rollback_safe)
        self.assertTrue(exc.source_intact)
        self.assertEqual('Running', exc.state.source_vm)
        self.assertRolledBack(vm, vdis, uuid, before_a, before_b)

    def test_a_failure_is_not_a_cancel(self):
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator()
        the_plan = self.planned(m, uuid, tier='same')
        self.ctl.fault_inject('mirror', percent=50)
        exc = self.assertRaises(errors.MigrationFailed, m.migrate, the_plan)
        self.assertNotIsInstance(exc, errors.MigrationCancelled)
        self.assertEqual('MIRROR_FAILED', exc.cause.code)
        self.assertTrue(exc.source_intact)
        self.assertTrue(exc.rollback_safe)
        self.stop_and_check(vm)

    def test_a_cancel_while_waiting_for_a_slot(self):
        vm, vdis, uuid = self.writing_vm()
        slots = slotsmod.HostSlots(limit=1, cancel_poll=0.01)
        m = self.migrator(slots=slots)
        the_plan = self.planned(m, uuid, tier='same')
        host = self.host_a  # slots are keyed by the host's ref
        tokens = self.spy_sessions('pool-b')
        cancel = threading.Event()
        cancel.set()
        with slots.acquire(host):
            exc = self.assertRaises(errors.MigrationCancelled, m.migrate,
                                    the_plan, None, cancel)
        self.assertIsInstance(exc.cause, errors.Cancelled)
        # The token asked for this migration was logged out again.
        self.assertEqual([], [t for t in tokens
                              if t in self.sessions('pool-b')])
        self.stop_and_check(vm)


class TestCleanupDestination(HalvesTestCase):

    def leftovers(self, uuid, the_plan):
        """What a crashed migration could leave in pool-b.

        A halted VM with the source VM's uuid and a disk, and a VDI still
        marked as the mirror target of the source's disk 1. (xapi and the
        simulator clean up after themselves: this is the case they
        could not.)
        """
        db = self.sim.pools['pool-b'].db
        record = dict(vmbuild.vm_record('web'), uuid=uuid)
        vm = db.add('VM', dict(record, power_state='Halted'))
        sr = self.sr_named(base.EXT, self.api_b)
        disk = self.create_vdi(sr, 16 * MiB, 'web-system', api=self.api_b)
        self.create_vbd(vm, disk, '0', api=self.api_b)
        source = {s.disk.userdevice: s.disk for s in the_plan.disks}
        marked = self.api_b.VDI.create(dict(
            vmbuild.vdi_record(sr, 16 * MiB, 'web-data'),
            sm_config={'base_mirror': '%s/%s' % (
                self.sr_uuid(base.EXT), source['1'].uuid)}))
        return vm, disk, marked

    def test_removes_the_leftovers_and_is_safe_twice(self):
        # No guest workload: the simulator keys a guest by VM uuid, and
        # the leftover VM shares the source VM's.
        vm, vdis = self.make_vm()
        uuid = self.api.VM.get_uuid(vm)
        m = self.migrator()
        the_plan, _ = m.plan(uuid, tier='same')
        other = self.create_vdi(self.sr_named(base.EXT, self.api_b),
                                MiB, 'another tenant', api=self.api_b)
        left_vm, disk, marked = self.leftovers(uuid, the_plan)
        uuids = {self.api_b.VDI.get_uuid(disk),
                 self.api_b.VDI.get_uuid(marked)}
        removed = m.cleanup_destination(the_plan)
        self.assertEqual(['VM %s' % uuid] + sorted('VDI %s' % u
                                                   for u in uuids),
                         removed[:1] + sorted(removed[1:]))
        self.assertIsNone(self.vm_in(uuid, self.api_b))
        self.assertEqual(set(), {disk, marked} & self.vdi_set(self.api_b))
        self.assertIn(other, self.vdi_set(self.api_b))
        self.assertEqual([], m.cleanup_destination(the_plan))
        # The source is untouched.
        self.assertEqual(vdis, self.vbd_vdis(vm))
        self.assertEqual('Running', self.api.VM.get_power_state(vm))

    def test_a_completed_migration_is_left_alone(self):
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator()
        the_plan = self.planned(m, uuid, tier='same')
        result = m.migrate(the_plan)
        exc = self.assertRaises(errors.MigrationCompleted,
                                m.cleanup_destination, the_plan)
        self.assertIn(uuid, str(exc))
        self.assertEqual('Running',
                         self.api_b.VM.get_power_state(result.vm_ref))
        self.stop_and_check(result.vm_ref, ctl=self.ctl_b)

    def test_after_a_real_failure_nothing_is_left_to_remove(self):
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator()
        the_plan = self.planned(m, uuid, tier='same')
        before_b = self.vdi_set(self.api_b)
        self.ctl.fault_inject('metadata')
        self.assertRaises(errors.MigrationFailed, m.migrate, the_plan)
        self.assertEqual([], m.cleanup_destination(the_plan))
        self.assertEqual(before_b, self.vdi_set(self.api_b))
        self.stop_and_check(vm)


class TestWatchStop(HalvesTestCase):

    def test_stop_detaches_and_logs_the_watch_out(self):
        self.ctl.configure(bandwidth=2 * MiB)
        disks = (('0', 'system', LVM, 64 * MiB, 32 * MiB),
                 ('1', 'data', EXT, 16 * MiB, 4 * MiB))
        vm, vdis, uuid = self.writing_vm(disks=disks)
        m = self.migrator()
        the_plan = self.planned(m, uuid, tier='same')
        cancel = threading.Event()
        outcome = {}

        def run():
            try:
                outcome['result'] = m.migrate(the_plan, cancel=cancel)
            except Exception as exc:
                outcome['error'] = exc
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        self.addCleanup(worker.join, 60)
        self.addCleanup(cancel.set)
        watcher_pool = self.pool('pool-a', originator='watch-test')
        info = self.poll(lambda: fleet.list_migrations(watcher_pool),
                         what='the migration to start')[0]
        db = self.sim.pools['pool-a'].db

        def watch_sessions():
            with db.lock:
                return {r for r in db.all_refs('session')
                        if db.get('session', r)['originator'] ==
                        'watch-test'}
        pooled = watch_sessions()   # list_migrations' pooled session
        stop = threading.Event()
        seen = []

        def progress(fraction):
            seen.append(watch_sessions())
            stop.set()
        self.assertRaises(errors.Detached, fleet.watch, watcher_pool, info,
                          progress=progress, stop=stop)
        # The watch waited on the pool's idle session (no login of its
        # own), and left it as it found it; the migration goes on.
        self.assertEqual(pooled, seen[0])
        self.assertEqual(pooled, watch_sessions())
        self.assertNotIn('error', outcome)
        cancel.set()
        worker.join(60)
        self.stop_and_check(vm)
