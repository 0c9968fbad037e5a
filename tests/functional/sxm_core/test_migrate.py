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

"""Migrator.plan / check / migrate against the simulator, over HTTP.

A running VM with a 32 MiB disk on the thick lvm SR and a 16 MiB disk on
the thin ext SR, its guest writing random 4 KiB blocks to both at 1 MiB/s,
moves across pools and inside a pool; it is cancelled half-way; faults
break it at every point before the point of no return. Afterwards the
guest's disks must hold exactly what it wrote, wherever it runs.
"""

import itertools
import threading

import fixtures
from testtools import matchers
import XenAPI

from sxm_core import errors
from sxm_core import migrate
from sxm_core import plan as planmod
from sxm_core import slots as slotsmod
from tests.functional.sxm_core import base

MiB = base.MiB
EXT = base.EXT
LVM = base.LVM


class Progress(object):
    """A progress callback that keeps what it was given."""

    def __init__(self, then=None):
        self.seen = []
        self.then = then

    def __call__(self, progress):
        self.seen.append(progress)
        if self.then is not None:
            self.then(progress)

    @property
    def fractions(self):
        return [p.fraction for p in self.seen]

    @property
    def phases(self):
        return [k for k, _ in itertools.groupby(p.phase for p in self.seen)]


class MigrateTestCase(base.CoreTestCase):

    def writing_vm(self, name='web', disks=base.DISKS):
        """A running VM whose guest writes to both disks."""
        vm, vdis = self.make_vm(name=name, disks=disks)
        uuid = self.api.VM.get_uuid(vm)
        self.write(vm)
        self.wait_writes(vm)
        return vm, vdis, uuid

    def planned(self, migrator, uuid, **choices):
        the_plan, problems = migrator.plan(uuid, **choices)
        self.assertEqual([], planmod.blocking(problems))
        self.assertEqual([], migrator.check(the_plan))
        return the_plan

    def vbd_vdis(self, vm, api=None):
        api = api or self.api
        return {api.VBD.get_userdevice(vbd): api.VBD.get_VDI(vbd)
                for vbd in api.VM.get_VBDs(vm)}

    def assertProgress(self, progress, the_plan):
        fractions = progress.fractions
        self.assertEqual(sorted(fractions), fractions,
                         'progress went backwards')
        self.assertEqual(1.0, fractions[-1])
        self.assertEqual(['mirror', 'memory', 'done'], progress.phases)
        done = [p.bytes_done for p in progress.seen]
        self.assertEqual(sorted(done), done)
        last = progress.seen[-1]
        self.assertEqual((the_plan.bytes_to_move, the_plan.bytes_to_move),
                         (last.bytes_done, last.bytes_total))
        # Disks are named as they move: the smaller one first.
        devices = [k for k, _ in itertools.groupby(
            p.disk.disk.userdevice for p in progress.seen
            if p.disk is not None)]
        self.assertEqual([d for d in ('1', '0') if d in devices], devices)
        self.assertIn('1', devices)

    def assertOnPlannedSRs(self, result, the_plan, api):
        planned = {s.disk.userdevice: s.dest_sr.uuid for s in the_plan.disks}
        self.assertEqual(planned, {ud: sr for ud, _, sr in result.disks})
        for userdevice, vdi_uuid, sr_uuid in result.disks:
            vdi = api.VDI.get_by_uuid(vdi_uuid)
            self.assertEqual(sr_uuid, api.SR.get_uuid(api.VDI.get_SR(vdi)))

    def assertRolledBack(self, vm, vdis, uuid, before_a, before_b):
        """Nothing moved; the guest still writes to its own disks."""
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertEqual(self.host_a, self.api.VM.get_resident_on(vm))
        self.assertEqual(vdis, self.vbd_vdis(vm))
        self.assertEqual(before_a, self.vdi_set(),
                         'VDIs were left behind (or lost) in pool-a')
        self.assertEqual(before_b, self.vdi_set(self.api_b),
                         'VDIs were left behind in pool-b')
        self.assertIsNone(self.vm_in(uuid, self.api_b),
                          'a VM with the migrating uuid is in pool-b')
        self.wait_writes(vm)
        self.stop_and_check(vm)

    def assertCleanState(self, exc):
        self.assertIsInstance(exc.state, migrate.StateReport)
        self.assertEqual('Running', exc.state.source_vm)
        self.assertEqual('none', exc.state.dest_vm)
        self.assertEqual([], exc.state.new_vdis)
        self.assertIn('source VM Running', str(exc))
        self.assertIn('No VDI was left behind', str(exc))


class TestMigrate(MigrateTestCase):

    def test_cross_pool_live_migration_under_writes(self):
        # Capped, so that the waiter (which logs in a session of its own
        # first) sees the first disk move even on a loaded machine.
        self.ctl.configure(bandwidth=32 * MiB)
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator()
        the_plan = self.planned(m, uuid, tier='same')
        self.assertTrue(the_plan.cross_pool)
        self.assertEqual({'0': self.sr_uuid(LVM, self.api_b),
                          '1': self.sr_uuid(EXT, self.api_b)},
                         {s.disk.userdevice: s.dest_sr.uuid
                          for s in the_plan.disks})
        progress = Progress()
        result = m.migrate(the_plan, progress=progress)

        new_vm = self.vm_in(uuid, self.api_b)
        self.assertEqual(new_vm, result.vm_ref)
        self.assertEqual(uuid, result.vm_uuid)
        self.assertIsNone(self.vm_in(uuid, self.api), 'source VM is left')
        self.assertEqual(set(), set(vdis.values()) & self.vdi_set(),
                         'source VDIs are left')
        self.assertEqual('Running', self.api_b.VM.get_power_state(new_vm))
        self.assertEqual(self.host_b, self.api_b.VM.get_resident_on(new_vm))
        self.assertOnPlannedSRs(result, the_plan, self.api_b)
        self.assertEqual(the_plan.bytes_to_move, result.bytes_planned)
        self.assertGreater(result.seconds, 0)
        self.assertProgress(progress, the_plan)
        # The guest kept writing across the switch, on the new disks.
        self.wait_writes(new_vm, ctl=self.ctl_b)
        self.stop_and_check(new_vm, ctl=self.ctl_b)

    def test_in_pool_live_migration_under_writes(self):
        # Capped, so that the waiter (which logs in a session of its own
        # first) sees the first disk move even on a loaded machine.
        self.ctl.configure(bandwidth=32 * MiB)
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator(cross_pool=False)
        # Swap the SRs: the thick disk goes thin, the thin one thick.
        the_plan = self.planned(m, uuid, sr_map={'0': EXT, '1': LVM})
        self.assertFalse(the_plan.cross_pool)
        self.assertEqual({}, the_plan.vif_map)
        progress = Progress()
        result = m.migrate(the_plan, progress=progress)

        self.assertEqual(vm, result.vm_ref)
        self.assertEqual(uuid, result.vm_uuid)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertEqual(self.host_a, self.api.VM.get_resident_on(vm))
        self.assertOnPlannedSRs(result, the_plan, self.api)
        self.assertEqual({'0': self.sr_uuid(EXT), '1': self.sr_uuid(LVM)},
                         {ud: sr for ud, _, sr in result.disks})
        now = self.vbd_vdis(vm)
        self.assertEqual(set(), set(now.values()) & set(vdis.values()))
        self.assertEqual(set(), set(vdis.values()) & self.vdi_set(),
                         'source VDIs are left')
        self.assertProgress(progress, the_plan)
        self.wait_writes(vm)
        self.stop_and_check(vm)

    def test_cancel_in_the_middle(self):
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
        progress = Progress(then=cancel_past_a_tenth)
        exc = self.assertRaises(errors.MigrationFailed, m.migrate, the_plan,
                                progress, cancel)
        self.assertTrue(cancel.is_set())
        self.assertIsInstance(exc.cause, errors.TaskCancelled)
        self.assertIn('cancelled', str(exc))
        self.assertCleanState(exc)
        self.assertLess(max(progress.fractions), 0.9)
        self.assertNotIn('done', progress.phases)
        self.assertRolledBack(vm, vdis, uuid, before_a, before_b)

    def test_preflight_problems_stop_migrate(self):
        vm, vdis = self.make_vm()
        m = self.migrator()
        the_plan, problems = m.plan(vm, sr='nosuch')
        self.assertEqual(['sr', 'sr'], [p.code for p in problems])
        before_b = self.vdi_set(self.api_b)
        exc = self.assertRaises(errors.PreflightFailed, m.migrate, the_plan)
        self.assertEqual(2, len(exc.problems))
        self.assertIn("No SR 'nosuch'", str(exc))
        self.assertEqual(before_b, self.vdi_set(self.api_b))
        self.assertEqual('Running', self.api.VM.get_power_state(vm))

    def test_leftover_base_mirror_is_removed(self):
        # Older xapi left sm_config base_mirror on the new VDIs.
        self.ctl.configure(leave_base_mirror=True)
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator()
        result = m.migrate(self.planned(m, uuid, tier='same'))
        self.assertEqual(sorted('%s:base_mirror' % vdi
                                for _, vdi, _ in result.disks),
                         sorted(result.leftovers_removed))
        for _, vdi_uuid, _ in result.disks:
            vdi = self.api_b.VDI.get_by_uuid(vdi_uuid)
            self.assertNotIn('base_mirror',
                             self.api_b.VDI.get_sm_config(vdi))
        self.stop_and_check(result.vm_ref, ctl=self.ctl_b)

    def test_in_pool_fault_rolls_back(self):
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator(cross_pool=False)
        the_plan = self.planned(m, uuid, sr_map={'0': EXT, '1': LVM})
        before_a, before_b = self.vdi_set(), self.vdi_set(self.api_b)
        self.ctl.fault_inject('mirror', percent=50)
        exc = self.assertRaises(errors.MigrationFailed, m.migrate, the_plan)
        self.assertEqual('MIRROR_FAILED', exc.cause.code)
        self.assertCleanState(exc)
        self.assertRolledBack(vm, vdis, uuid, before_a, before_b)

    def test_vm_with_a_snapshot_and_a_cd_drive(self):
        vm, vdis = self.make_vm(start=False)
        self.api.VBD.create({
            'VM': vm, 'VDI': base.NULL, 'userdevice': '3', 'bootable': False,
            'mode': 'RO', 'type': 'CD', 'empty': True, 'other_config': {},
            'qos_algorithm_type': '', 'qos_algorithm_params': {}})
        snap = self.api.VM.snapshot(vm, 'before upgrade')
        self.api.VM.start(vm, False, False)
        uuid = self.api.VM.get_uuid(vm)
        self.write(vm)
        m = self.migrator()
        the_plan, problems = m.plan(uuid, tier='same')
        self.assertEqual(['cd', 'snapshots'],
                         sorted(p.code for p in problems))
        self.assertEqual([], planmod.blocking(problems))
        self.assertEqual(2, len(the_plan.snapshot_disks))
        # Snapshot disks go where the disk they were taken of goes.
        self.assertEqual(
            {s.disk.name: s.dest_sr.uuid for s in the_plan.disks},
            {s.disk.name: s.dest_sr.uuid for s in the_plan.snapshot_disks})
        self.assertEqual(['cd', 'snapshots'],
                         sorted(p.code for p in m.check(the_plan)))
        progress = Progress()
        result = m.migrate(the_plan, progress=progress)
        new_vm = result.vm_ref
        snaps = self.api_b.VM.get_snapshots(new_vm)
        self.assertEqual(['before upgrade'],
                         [self.api_b.VM.get_name_label(s) for s in snaps])
        self.assertIsNone(self.vm_in(uuid, self.api))
        self.assertNotIn(snap, self.api.VM.get_all())
        self.assertEqual(set(), self.vdi_set() & (
            set(vdis.values()) | set(s.disk.vdi
                                     for s in the_plan.snapshot_disks)))
        self.assertIn('copy', progress.phases)
        self.assertEqual(1.0, progress.fractions[-1])
        self.stop_and_check(new_vm, ctl=self.ctl_b)


class TestVerification(MigrateTestCase):
    """What a migration reports of the disks it moved, read back."""

    def disks_in_b(self, vm):
        out = {}
        for vbd in self.api_b.VM.get_VBDs(vm):
            vdi = self.api_b.VBD.get_VDI(vbd)
            if vdi == base.NULL:
                continue
            out[self.api_b.VBD.get_userdevice(vbd)] = (
                self.api_b.VDI.get_uuid(vdi),
                self.api_b.SR.get_uuid(self.api_b.VDI.get_SR(vdi)))
        return out

    def test_twin_disks_are_told_apart_by_their_vbds(self):
        # Same name, same size, same SR: only the VBDs say which is which.
        twins = (('0', 'disk', EXT, 16 * MiB, 1 * MiB),
                 ('1', 'disk', EXT, 16 * MiB, 3 * MiB))
        vm, vdis = self.make_vm(disks=twins)
        uuid = self.api.VM.get_uuid(vm)
        m = self.migrator()
        result = m.migrate(self.planned(m, uuid, tier='same'))
        self.assertEqual([], result.warnings)
        got = {ud: (vdi, sr) for ud, vdi, sr in result.disks}
        self.assertEqual(self.disks_in_b(result.vm_ref), got)
        self.assertEqual(['0', '1'], sorted(got))

    def test_a_cd_drive_is_not_a_disk(self):
        vm, vdis = self.make_vm(start=False)
        self.api.VBD.create({
            'VM': vm, 'VDI': base.NULL, 'userdevice': '3', 'bootable': False,
            'mode': 'RO', 'type': 'CD', 'empty': True, 'other_config': {},
            'qos_algorithm_type': '', 'qos_algorithm_params': {}})
        m = self.migrator()
        the_plan, problems = m.plan(vm, tier='same')
        self.assertEqual(['cd'], [p.code for p in problems])
        result = m.migrate(the_plan)
        self.assertEqual([], result.warnings)
        self.assertEqual(self.disks_in_b(result.vm_ref),
                         {ud: (vdi, sr) for ud, vdi, sr in result.disks})
        self.assertEqual(['0', '1'], sorted(ud for ud, _, _ in
                                            result.disks))


class TestTimeouts(MigrateTestCase):

    def test_a_migration_that_takes_too_long_is_cancelled(self):
        # At 8 MiB/s the 32 MiB written take 4 s; the limit is 1 s.
        self.ctl.configure(bandwidth=8 * MiB)
        disks = (('0', 'system', LVM, 64 * MiB, 32 * MiB),
                 ('1', 'data', EXT, 16 * MiB, 4 * MiB))
        vm, vdis, uuid = self.writing_vm(disks=disks)
        m = self.migrator(minimum_timeout=1, seconds_per_gib=0)
        the_plan = self.planned(m, uuid, tier='same')
        before_a, before_b = self.vdi_set(), self.vdi_set(self.api_b)
        exc = self.assertRaises(errors.MigrationFailed, m.migrate, the_plan)
        self.assertIsInstance(exc.cause, errors.TaskTimeout)
        self.assertIn('did not finish within 1 s; it was cancelled',
                      str(exc))
        self.assertCleanState(exc)
        self.assertRolledBack(vm, vdis, uuid, before_a, before_b)


class TestFaults(MigrateTestCase):
    """A fault before the point of no return leaves everything as it was."""

    def migration_fails(self, point, code, percent=None):
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator()
        the_plan = self.planned(m, uuid, tier='same')
        before_a, before_b = self.vdi_set(), self.vdi_set(self.api_b)
        args = {} if percent is None else {'percent': percent}
        self.ctl.fault_inject(point, **args)
        exc = self.assertRaises(errors.MigrationFailed, m.migrate, the_plan)
        self.assertEqual([], self.ctl.call('faults'),
                         'the armed fault did not fire')
        self.assertIsInstance(exc.cause, errors.XapiFailure)
        self.assertEqual(code, exc.cause.code)
        self.assertIn(str(exc.cause), str(exc))
        self.assertCleanState(exc)
        self.assertRolledBack(vm, vdis, uuid, before_a, before_b)
        return exc, vdis

    def test_prepare(self):
        self.migration_fails('prepare', 'INTERNAL_ERROR')

    def test_snapshot(self):
        self.migration_fails('snapshot', 'SR_BACKEND_FAILURE_82')

    def test_mirror(self):
        exc, vdis = self.migration_fails('mirror', 'MIRROR_FAILED',
                                         percent=50)
        # The smaller disk moves first: 'data', userdevice 1.
        data_uuid = self.api.VDI.get_uuid(vdis['1'])
        self.assertEqual([vdis['1']], exc.cause.params)
        self.assertIn("Mirroring disk 1 'web-data' (%s) to the destination "
                      'failed.' % data_uuid, str(exc))

    def test_copy(self):
        self.migration_fails('copy', 'VDI_COPY_FAILED', percent=50)

    def test_destination_full(self):
        exc, _ = self.migration_fails('destination_full',
                                      'SR_BACKEND_FAILURE_44', percent=50)
        self.assertIn('destination SR is full', str(exc))

    def test_metadata(self):
        self.migration_fails('metadata', 'IMPORT_ERROR')

    def test_memory(self):
        self.migration_fails('memory', 'VM_MIGRATE_FAILED')


class TestTooManyStorageMigrates(MigrateTestCase):

    def test_retried(self):
        vm, vdis, uuid = self.writing_vm()
        sleeps = []
        m = self.migrator(too_many_interval=0.01, sleep=sleeps.append)
        the_plan = self.planned(m, uuid, tier='same')
        self.ctl.fault_inject('prepare', code='TOO_MANY_STORAGE_MIGRATES',
                              params=['3'], times=1)
        result = m.migrate(the_plan)
        self.assertEqual([], self.ctl.call('faults'))
        self.assertEqual([0.01], sleeps)
        new_vm = self.vm_in(uuid, self.api_b)
        self.assertEqual(new_vm, result.vm_ref)
        self.assertIsNone(self.vm_in(uuid, self.api))
        self.stop_and_check(new_vm, ctl=self.ctl_b)

    def test_gives_up_after_the_retries(self):
        vm, vdis, uuid = self.writing_vm()
        sleeps = []
        m = self.migrator(too_many_interval=0.01, too_many_retries=2,
                          sleep=sleeps.append)
        the_plan = self.planned(m, uuid, tier='same')
        before_a, before_b = self.vdi_set(), self.vdi_set(self.api_b)
        self.ctl.fault_inject('prepare', code='TOO_MANY_STORAGE_MIGRATES',
                              params=['3'], times=3)
        exc = self.assertRaises(errors.MigrationFailed, m.migrate, the_plan)
        self.assertIsInstance(exc.cause, errors.TooManyStorageMigrates)
        self.assertIn('already runs 3 storage migrations', str(exc))
        self.assertEqual([0.01, 0.01], sleeps)
        self.assertCleanState(exc)
        self.assertRolledBack(vm, vdis, uuid, before_a, before_b)


class TestCheck(MigrateTestCase):

    def test_check_reports_what_xapi_refuses(self):
        vm, vdis = self.make_vm()
        uuid = self.api.VM.get_uuid(vm)
        m = self.migrator()
        the_plan, problems = m.plan(uuid)
        self.assertEqual([], problems)
        # The VM changes after the plan was made: only xapi knows.
        self.api.VM.pause(vm)
        problems = m.check(the_plan)
        self.assertEqual(['xapi'], [p.code for p in problems])
        self.assertIn("XAPI refuses: VM 'web' (%s) is paused" % uuid,
                      problems[0].message)
        self.assertEqual('Paused', self.api.VM.get_power_state(vm))

    def test_check_runs_local_preflight_first(self):
        vm, vdis = self.make_vm()
        self.api.VDI.enable_cbt(vdis['1'])
        m = self.migrator()
        receive = self.spy_sessions('pool-b')
        the_plan, problems = m.plan(vm)
        self.assertEqual(['cbt'], [p.code for p in problems])
        self.assertEqual(['cbt'], [p.code for p in m.check(the_plan)])
        # No host.migrate_receive was made: one login of the pool only.
        self.assertEqual(1, len(receive))


class TestNoSessionLeft(MigrateTestCase):
    """Every XAPI session the core opens is closed again.

    host.migrate_receive makes a session in the destination pool; the
    core must log it out whatever happens, and closing the pools logs out
    the rest.
    """

    def close(self, m):
        m.source.close()
        m.dest.close()

    def test_after_check(self):
        vm, vdis = self.make_vm()
        m = self.migrator()
        the_plan, problems = m.plan(vm)
        self.assertEqual([], m.check(the_plan))
        self.close(m)
        self.assertNoSessionsLeft()

    def test_after_a_check_xapi_refuses(self):
        vm, vdis = self.make_vm()
        m = self.migrator()
        the_plan, problems = m.plan(vm)
        self.api.VM.pause(vm)
        self.assertEqual(['xapi'], [p.code for p in m.check(the_plan)])
        self.close(m)
        self.assertNoSessionsLeft()

    def test_after_a_cross_pool_migration(self):
        vm, vdis = self.make_vm()
        m = self.migrator()
        the_plan, problems = m.plan(vm)
        m.migrate(the_plan)
        self.close(m)
        self.assertNoSessionsLeft()

    def test_after_an_in_pool_migration(self):
        vm, vdis = self.make_vm()
        m = self.migrator(cross_pool=False)
        the_plan, problems = m.plan(vm, sr_map={'0': EXT, '1': LVM})
        m.migrate(the_plan)
        self.close(m)
        self.assertNoSessionsLeft()

    def test_a_failed_migration_reuses_its_session(self):
        # One thread, one call at a time: one pooled source session is
        # enough, also when the task fails (its session is not broken);
        # the wait on the task borrows it while it is idle.
        vm, vdis = self.make_vm()
        m = self.migrator()
        logins = self.spy_sessions('pool-a')
        the_plan, problems = m.plan(vm)
        self.ctl.fault_inject('metadata')
        self.assertRaises(errors.MigrationFailed, m.migrate, the_plan)
        m.source.call('VM.get_power_state', vm)
        self.assertEqual(1, len(logins))
        self.close(m)
        self.assertNoSessionsLeft()

    def test_after_a_failed_migration(self):
        vm, vdis = self.make_vm()
        m = self.migrator()
        the_plan, problems = m.plan(vm)
        self.ctl.fault_inject('metadata')
        self.assertRaises(errors.MigrationFailed, m.migrate, the_plan)
        self.close(m)
        self.assertNoSessionsLeft()


class TestMoveVdi(MigrateTestCase):

    def test_attached_vdi_moves_live(self):
        disks = (('0', 'volume', EXT, 16 * MiB, 4 * MiB),)
        vm, vdis = self.make_vm(disks=disks, vif=False)
        self.write(vm, devices=('0',))
        self.wait_writes(vm)
        old_uuid = self.api.VDI.get_uuid(vdis['0'])
        m = self.mover()
        progress = Progress()
        new_uuid = m.move(old_uuid, LVM, progress=progress).vdi_uuid

        self.assertNotEqual(old_uuid, new_uuid)
        new = self.api.VDI.get_by_uuid(new_uuid)
        self.assertEqual(self.sr_named(LVM), self.api.VDI.get_SR(new))
        self.assertEqual({'0': new}, self.vbd_vdis(vm))
        self.assertNotIn(vdis['0'], self.vdi_set())
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        fractions = progress.fractions
        self.assertEqual(sorted(fractions), fractions)
        self.assertEqual(1.0, fractions[-1])
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=('0',))

    def test_detached_vdi_is_copied_then_destroyed(self):
        vdi = self.create_vdi(self.sr_named(EXT), 16 * MiB, 'volume')
        self.fill(vdi, 4 * MiB, seed='volume')
        image = self.export_vdi(vdi)
        before = self.vdi_set()
        m = self.mover()
        new_uuid = m.move(self.api.VDI.get_uuid(vdi),
                          self.sr_uuid(LVM)).vdi_uuid
        new = self.api.VDI.get_by_uuid(new_uuid)
        self.assertEqual(self.sr_named(LVM), self.api.VDI.get_SR(new))
        self.assertEqual(before - {vdi} | {new}, self.vdi_set())
        self.assertEqual('volume', self.api.VDI.get_name_label(new))
        self.assertEqual(image, self.export_vdi(new))

    def test_to_the_sr_it_is_on_moves_nothing(self):
        vdi = self.create_vdi(self.sr_named(EXT), 16 * MiB, 'volume')
        self.fill(vdi, 4 * MiB, seed='volume')
        image = self.export_vdi(vdi)
        vdi_uuid = self.api.VDI.get_uuid(vdi)
        before = self.vdi_set()
        m = self.mover()
        for sr in (EXT, self.sr_uuid(EXT), self.sr_named(EXT)):
            self.assertEqual(vdi_uuid, m.move(vdi_uuid, sr).vdi_uuid)
        self.assertEqual(before, self.vdi_set())
        self.assertEqual(self.sr_named(EXT), self.api.VDI.get_SR(vdi))
        self.assertEqual(image, self.export_vdi(vdi))

    def test_an_attached_vdi_to_the_sr_it_is_on_moves_nothing(self):
        disks = (('0', 'volume', EXT, 16 * MiB, 4 * MiB),)
        vm, vdis = self.make_vm(disks=disks, vif=False)
        vdi_uuid = self.api.VDI.get_uuid(vdis['0'])
        before = self.vdi_set()
        m = self.mover()
        self.assertEqual(vdi_uuid, m.move(vdi_uuid, EXT).vdi_uuid)
        self.assertEqual(before, self.vdi_set())
        self.assertEqual({'0': vdis['0']}, self.vbd_vdis(vm))
        # Not even a storage migration onto the same SR was run.
        self.assertEqual([], self.ctl.migrations())
        self.assertEqual('Running', self.api.VM.get_power_state(vm))

    def test_unknown_sr(self):
        vdi = self.create_vdi(self.sr_named(EXT), 16 * MiB, 'volume')
        before = self.vdi_set()
        m = self.mover()
        exc = self.assertRaises(errors.NotFound, m.move,
                                self.api.VDI.get_uuid(vdi), 'nosuch')
        self.assertIn("No SR 'nosuch'", str(exc))
        self.assertEqual(before, self.vdi_set())


class TestThickDestinationSpace(MigrateTestCase):
    """What preflight accepts, the thick destination SR can hold."""

    topology = base.topology_with({'pool-b': [
        {'name': 'small lvm', 'type': 'lvm', 'size': '48MiB'}]})

    def test_a_plan_preflight_accepts_does_not_run_out_of_space(self):
        # 32 MiB disk to a thick SR with 48 MiB free.
        disks = (('0', 'system', EXT, 32 * MiB, 8 * MiB),)
        vm, vdis = self.make_vm(disks=disks, vif=False)
        m = self.migrator()
        the_plan, problems = m.plan(vm, sr='small lvm')
        if 'space' in [p.code for p in problems]:
            return      # refused up front: fine
        self.assertEqual([], planmod.blocking(problems))
        result = m.migrate(the_plan)
        self.assertEqual(self.sr_uuid('small lvm', self.api_b),
                         result.disks[0][2])


class TestAfterTheSwitch(MigrateTestCase):
    """Once xapi has moved the VM, what fails after is a warning."""

    def flaky_migrator(self):
        """A Migrator whose destination pool fails the calls in ``faults``.

        The fault is in XAPI (or the network to it), below the core.
        """
        self.faults = {}
        source = self.pool('pool-a')
        dest = self.pool('pool-b',
                         session_factory=base.flaky_factory(self.faults))
        return migrate.Migrator(source, dest,
                                slots=slotsmod.HostSlots(poll=0.01))

    def migrated_despite(self, method, exc):
        log = self.useFixture(fixtures.FakeLogger())
        vm, vdis = self.make_vm(vif=False)
        uuid = self.api.VM.get_uuid(vm)
        m = self.flaky_migrator()
        the_plan = self.planned(m, uuid, tier='same')
        self.faults[method] = [exc]
        progress = Progress()
        result = m.migrate(the_plan, progress=progress)
        self.assertEqual([], self.faults[method], 'the fault did not fire')
        new_vm = self.vm_in(uuid, self.api_b)
        self.assertEqual(new_vm, result.vm_ref)
        self.assertIsNone(self.vm_in(uuid, self.api))
        self.assertEqual('Running', self.api_b.VM.get_power_state(new_vm))
        self.assertEqual(1, len(result.warnings), result.warnings)
        self.assertIn(result.warnings[0], log.output)
        self.assertEqual('done', progress.phases[-1])
        return result

    def test_leftover_removal_failing_is_a_warning(self):
        self.ctl.configure(leave_base_mirror=True)
        result = self.migrated_despite(
            'VDI.remove_from_sm_config', XenAPI.Failure(
                ['INTERNAL_ERROR', 'sm_config unwritable']))
        self.assertThat(result.warnings[0], matchers.StartsWith(
            'Strip sm_config base_mirror that older xapi left on new VDIs: '))
        self.assertIn('sm_config unwritable', result.warnings[0])
        # Verification still ran.
        self.assertEqual(['0', '1'], sorted(ud for ud, _, _ in result.disks))

    def test_verification_failing_is_a_warning(self):
        result = self.migrated_despite(
            'VM.get_record', ConnectionResetError('reset by peer'))
        self.assertThat(result.warnings[0], matchers.StartsWith(
            'Check that the VM runs where planned with every disk moved: '))
        self.assertIn('reset by peer', result.warnings[0])


class TestStateReportOfOthersVdis(MigrateTestCase):

    def test_only_vdis_like_the_moved_disks_are_reported(self):
        vm, vdis = self.make_vm(vif=False)
        uuid = self.api.VM.get_uuid(vm)
        m = self.migrator()
        the_plan = self.planned(m, uuid, tier='same')
        ext_b = self.sr_named(EXT, self.api_b)
        made = {}

        def others_use_the_sr(progress):
            # While the migration runs, on one of its target SRs: another
            # tenant's volume, and one like disk 1 (16 MiB 'web-data').
            if not made:
                made['tenant'] = self.create_vdi(ext_b, 16 * MiB,
                                                 'tenant-volume', self.api_b)
                made['like'] = self.create_vdi(ext_b, 16 * MiB, 'web-data',
                                               self.api_b)
        self.ctl.fault_inject('metadata')
        exc = self.assertRaises(errors.MigrationFailed, m.migrate, the_plan,
                                Progress(then=others_use_the_sr))
        self.assertEqual('IMPORT_ERROR', exc.cause.code)
        self.assertEqual({'tenant', 'like'}, set(made))
        tenant = self.api_b.VDI.get_uuid(made['tenant'])
        like = self.api_b.VDI.get_uuid(made['like'])
        self.assertEqual([like], exc.state.new_vdis)
        self.assertNotIn(tenant, str(exc))
        self.assertIn(like, str(exc))
        # Reported, never removed.
        self.assertTrue({made['tenant'], made['like']}
                        <= self.vdi_set(self.api_b))


class TestOneSessionPool(MigrateTestCase):

    def test_calls_are_served_while_a_migration_is_waited_for(self):
        # The wait on the task has a session of its own: a pool of one,
        # that never waits for a free session, still serves other calls.
        vm, vdis = self.make_vm(vif=False)
        uuid = self.api.VM.get_uuid(vm)
        source = self.pool('pool-a', maxsize=1, block=False)
        m = migrate.Migrator(source, self.pool('pool-b'),
                             slots=slotsmod.HostSlots(poll=0.01))
        the_plan = self.planned(m, uuid, tier='same')
        pool_ref = self.api.pool.get_all()
        answers = []

        def meanwhile(progress):
            if progress.phase == 'done':
                return
            try:
                answers.append(source.call('pool.get_all'))
            except errors.SxmError as exc:
                answers.append(exc)
        m.migrate(the_plan, progress=Progress(then=meanwhile))
        self.assertNotEqual([], answers)
        self.assertEqual([pool_ref] * len(answers), answers)
        self.assertIsNotNone(self.vm_in(uuid, self.api_b))


class TestPoolOfOne(MigrateTestCase):
    """Every step must make do with one pooled session per pool."""

    def test_a_failure_is_reported_with_a_pool_of_one_session(self):
        vm, vdis, uuid = self.writing_vm()
        m = migrate.Migrator(
            self.pool('pool-a', maxsize=1, block=False),
            self.pool('pool-b', maxsize=1, block=False),
            slots=slotsmod.HostSlots(poll=0.01))
        the_plan = self.planned(m, uuid, tier='same')
        before_a, before_b = self.vdi_set(), self.vdi_set(self.api_b)
        self.ctl.fault_inject('copy', percent=30)
        exc = self.assertRaises(errors.MigrationFailed, m.migrate, the_plan)
        self.assertNotIn('No free XAPI session', str(exc))
        self.assertCleanState(exc)
        self.assertRolledBack(vm, vdis, uuid, before_a, before_b)
