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

"""The core's migrations and VDI moves under what the field does to XAPI.

A toolstack restart of either pool mid-copy, a pool master that moves, SM
failing SR.scan, xenopsd's Vms_failed_to_cooperate at the end, a
connection reset when the task had ended. Each ends typed: the migration
completed (the VM runs in exactly one place, on the planned disks) or it
did not (the source is whole, nothing is left in the destination), never
both; the guest's bytes are exact either way.
"""

import threading

from sxm_core import errors
from sxm_core import volumes
from tests.functional import simhelpers
from tests.functional.sxm_core import base
from tests.functional.sxm_core import test_migrate

MiB = base.MiB
EXT = base.EXT
LVM = base.LVM


class FieldTestCase(test_migrate.MigrateTestCase):

    def writing_and_planned(self):
        """A writing VM, a migrator and its plan to pool-b, same tiers.

        Returns (vm, vdis, uuid, migrator, plan).
        """
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator()
        return vm, vdis, uuid, m, self.planned(m, uuid, tier='same')

    def volume_vm(self):
        """A VM without VIF whose guest writes to one 16 MiB disk on EXT."""
        vm, vdis = self.make_vm(
            disks=(('0', 'volume', EXT, 16 * MiB, 4 * MiB),), vif=False)
        self.write(vm, devices=('0',))
        return vm, vdis

    def in_background(self, func, *args, **kwargs):
        """Run ``func``; returns a dict that gets 'value' or 'error'."""
        outcome = {}

        def run():
            try:
                outcome['value'] = func(*args, **kwargs)
            except Exception as exc:
                outcome['error'] = exc
        thread = threading.Thread(target=run)
        thread.start()
        self.addCleanup(thread.join, 60)
        outcome['thread'] = thread
        return outcome

    def finished(self, outcome):
        outcome['thread'].join(60)
        self.assertFalse(outcome['thread'].is_alive(), 'still running')
        return outcome

    def copying_to(self, api, before):
        self.poll(lambda: self.vdi_set(api) - before, timeout=30,
                  what='the copy to start')

    def assertNowhereElse(self, vm, vdis, uuid, before_a, before_b):
        """The migration did not happen; the source is whole and runs."""
        self.fresh_controls()
        self.assertRolledBack(vm, vdis, uuid, before_a, before_b)
        self.assertEqual({}, self.api.VM.get_current_operations(vm))

    def assertOnlyThere(self, uuid, the_plan):
        """The migration completed: the VM runs in pool-b only."""
        self.assertIsNone(self.vm_in(uuid, self.api))
        new = self.api_b.VM.get_by_uuid(uuid)
        self.assertEqual('Running', self.api_b.VM.get_power_state(new))
        planned = {s.disk.userdevice: s.dest_sr.uuid for s in the_plan.disks}
        actual = {ud: self.api_b.SR.get_uuid(self.api_b.VDI.get_SR(vdi))
                  for ud, vdi in self.vbd_vdis(new, self.api_b).items()}
        self.assertEqual(planned, actual)
        self.stop_and_check(uuid, ctl=self.ctl_b)


class TestToolstackRestart(FieldTestCase):

    def slow_migration(self):
        self.ctl.configure(bandwidth=4 * MiB)
        vm, vdis, uuid, m, the_plan = self.writing_and_planned()
        before_a, before_b = self.vdi_set(), self.vdi_set(self.api_b)
        outcome = self.in_background(m.migrate, the_plan)
        self.copying_to(self.api_b, before_b)
        return vm, vdis, uuid, the_plan, outcome, (before_a, before_b)

    def test_source_restarts_mid_copy(self):
        vm, vdis, uuid, the_plan, outcome, before = self.slow_migration()
        self.ctl_b.toolstack_restart(pool='pool-a')
        self.finished(outcome)
        self.assertNotIn('value', outcome, 'the migration cannot complete')
        exc = outcome['error']
        self.assertIsInstance(exc, errors.MigrationFailed)
        self.assertEqual('Running', exc.state.source_vm)
        self.assertEqual('none', exc.state.dest_vm)
        self.ctl_b.configure(bandwidth=0)
        self.assertNowhereElse(vm, vdis, uuid, *before)
        # The pools serve the core again at once.
        m = self.migrator()
        the_plan = self.planned(m, uuid, tier='same')
        self.write(vm)
        m.migrate(the_plan)
        self.assertOnlyThere(uuid, the_plan)

    def test_the_error_says_what_happened(self):
        vm, vdis, uuid, the_plan, outcome, before = self.slow_migration()
        self.ctl_b.toolstack_restart(pool='pool-a')
        exc = self.finished(outcome).get('error')
        self.assertIsInstance(exc, errors.MigrationFailed)
        # An operator can do nothing with a task's OpaqueRef: the message
        # must say that XAPI lost the migration (its toolstack restarted)
        # and where the VM is.
        self.assertNotIn('OpaqueRef', str(exc))
        self.assertIn('source VM Running', str(exc))

    def test_destination_restarts_mid_copy(self):
        vm, vdis, uuid, the_plan, outcome, before = self.slow_migration()
        self.ctl.toolstack_restart(pool='pool-b')
        self.finished(outcome)
        exc = outcome.get('error')
        self.assertIsInstance(exc, errors.MigrationFailed)
        self.assertEqual('MIRROR_FAILED', exc.cause.code)
        self.assertIn('Mirroring disk', str(exc))
        self.ctl.configure(bandwidth=0)
        self.assertNowhereElse(vm, vdis, uuid, *before)

    def test_live_move_vdi_restart_mid_copy(self):
        self.ctl.configure(bandwidth=2 * MiB)
        vm, vdis = self.volume_vm()
        lvm = self.sr_named(LVM)
        m = self.mover()
        outcome = self.in_background(
            m.move, self.api.VDI.get_uuid(vdis['0']), LVM)
        self.poll(lambda: self.api.SR.get_VDIs(lvm), what='the copy')
        self.ctl_b.toolstack_restart(pool='pool-a')
        self.finished(outcome)
        self.assertIsInstance(outcome.get('error'), errors.SxmError)
        self.fresh_controls()
        self.ctl.configure(bandwidth=0)
        # Still on its own disk; nothing left on the target SR.
        self.assertEqual({'0': vdis['0']}, self.vbd_vdis(vm))
        self.assertEqual([], self.api.SR.get_VDIs(lvm))
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=('0',))

    def test_source_restarts_after_the_point_of_no_return(self):
        # The VM moved; the task that says so is lost with the restart.
        vm, vdis, uuid, m, the_plan = self.writing_and_planned()
        self.ctl.fault_inject('finalize', action='toolstack_restart')
        try:
            result = m.migrate(the_plan)
        except errors.MigrationCompleted:
            pass  # typed: it completed, whatever the task said
        else:
            self.assertEqual(uuid, result.vm_uuid)
        self.fresh_controls()
        self.assertOnlyThere(uuid, the_plan)

    def test_live_move_vdi_restart_after_the_point_of_no_return(self):
        vm, vdis = self.volume_vm()
        self.wait_writes(vm)
        old_uuid = self.api.VDI.get_uuid(vdis['0'])
        m = self.mover()
        self.ctl.fault_inject('finalize', action='toolstack_restart')
        moved = m.move(old_uuid, LVM)
        self.fresh_controls()
        # The caller learns where the volume's data is now.
        new = self.vbd_vdis(vm)['0']
        self.assertEqual(self.sr_named(LVM), self.api.VDI.get_SR(new))
        self.assertEqual(self.api.VDI.get_uuid(new), moved.vdi_uuid)
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=('0',))

    def test_pooled_sessions_survive_a_restart(self):
        vm, vdis, uuid, m, the_plan = self.writing_and_planned()
        self.ctl_b.toolstack_restart(pool='pool-a')
        self.ctl_b.toolstack_restart()
        self.fresh_controls()
        m.migrate(the_plan)
        self.assertOnlyThere(uuid, the_plan)


class TestMasterMoves(FieldTestCase):

    topology = simhelpers.two_host_topology()

    def relogin(self):
        """The test's own sessions, at the masters of now."""
        self.session = self.login('pool-a')
        self.api = self.session.xenapi
        self.session_b = self.login('pool-b')
        self.api_b = self.session_b.xenapi
        self.fresh_controls()

    def host2(self, api):
        master = api.pool.get_master(api.pool.get_all()[0])
        return [h for h in api.host.get_all() if h != master][0]

    def test_destination_master_moved_after_the_check(self):
        vm, vdis, uuid, m, the_plan = self.writing_and_planned()
        answer = self.ctl.designate_new_master(self.host2(self.api_b),
                                               pool='pool-b')
        self.assertNotEqual(m.dest.url, answer['url'])
        result = m.migrate(the_plan)
        self.assertEqual(uuid, result.vm_uuid)
        self.assertEqual(answer['url'], m.dest.url)
        self.relogin()
        self.assertOnlyThere(uuid, the_plan)

    def test_source_master_moved_before_a_live_move_vdi(self):
        vm, vdis = self.volume_vm()
        uuid = self.api.VDI.get_uuid(vdis['0'])
        m = self.mover()
        m.pool.call('pool.get_all')  # a pooled session at host1
        answer = self.ctl_b.designate_new_master(self.host2(self.api),
                                                 pool='pool-a')
        moved = m.move(uuid, LVM)
        self.assertEqual(answer['url'], m.pool.url)
        self.assertTrue(moved.moved)
        self.relogin()
        new = self.api.VDI.get_by_uuid(moved.vdi_uuid)
        self.assertEqual({'0': new}, self.vbd_vdis(vm))
        self.assertEqual(self.sr_named(LVM), self.api.VDI.get_SR(new))
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=('0',))


class TestScanFails(FieldTestCase):

    def test_migration_goes_on(self):
        vm, vdis, uuid = self.writing_vm()
        m = self.migrator()
        self.ctl.fault_inject('sr_scan')
        the_plan = self.planned(m, uuid, tier='same')
        self.assertEqual([], self.ctl.call('faults'), 'no SR.scan was made')
        m.migrate(the_plan)
        self.assertOnlyThere(uuid, the_plan)


class TestFailedToCooperate(FieldTestCase):

    def test_migration_is_undone(self):
        vm, vdis, uuid, m, the_plan = self.writing_and_planned()
        before_a, before_b = self.vdi_set(), self.vdi_set(self.api_b)
        self.ctl.fault_inject('cooperate')
        exc = self.assertRaises(errors.MigrationFailed, m.migrate, the_plan)
        self.assertEqual([], self.ctl.call('faults'))
        self.assertEqual('INTERNAL_ERROR', exc.cause.code)
        self.assertIn('Vms_failed_to_cooperate', str(exc))
        self.assertCleanState(exc)
        self.assertNowhereElse(vm, vdis, uuid, before_a, before_b)

    def test_the_error_says_what_to_do(self):
        vm, vdis, uuid, m, the_plan = self.writing_and_planned()
        self.ctl.fault_inject('cooperate')
        exc = self.assertRaises(errors.MigrationFailed, m.migrate, the_plan)
        # Not xenopsd's raw words only: the guest did not answer the
        # suspend request of the final pause (its PV drivers).
        self.assertNotIn('XAPI error INTERNAL_ERROR', str(exc))
        self.assertIn('Vms_failed_to_cooperate', str(exc))

    def test_live_move_vdi_is_undone(self):
        vm, vdis = self.volume_vm()
        self.wait_writes(vm)
        lvm = self.sr_named(LVM)
        self.ctl.fault_inject('cooperate')
        m = self.mover()
        exc = self.assertRaises(errors.XapiFailure, m.move,
                                self.api.VDI.get_uuid(vdis['0']), LVM)
        self.assertEqual('INTERNAL_ERROR', exc.code)
        self.assertEqual({'0': vdis['0']}, self.vbd_vdis(vm))
        self.assertEqual([], self.api.SR.get_VDIs(lvm))
        self.assertEqual([], self.api.task.get_all(),
                         'the failed task was not destroyed')
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=('0',))


class TestConnectionReset(FieldTestCase):

    def test_migration_completes(self):
        vm, vdis, uuid, m, the_plan = self.writing_and_planned()
        # Twice: Python's XML-RPC client sends a call again once.
        self.ctl.fault_inject('connection_reset', times=2)
        result = m.migrate(the_plan)
        self.assertEqual([], self.ctl.call('faults'), 'no reset happened')
        self.assertEqual(uuid, result.vm_uuid)
        self.assertOnlyThere(uuid, the_plan)
        self.assertEqual([], self.api.task.get_all(),
                         'the task was not destroyed')

    def test_live_move_vdi_completes(self):
        vm, vdis = self.volume_vm()
        old_uuid = self.api.VDI.get_uuid(vdis['0'])
        m = self.mover()
        self.ctl.fault_inject('connection_reset', times=2)
        moved = m.move(old_uuid, LVM)
        self.assertEqual([], self.ctl.call('faults'), 'no reset happened')
        self.assertIsInstance(moved, volumes.VdiMove)
        new = self.api.VDI.get_by_uuid(moved.vdi_uuid)
        self.assertNotEqual(old_uuid, moved.vdi_uuid)
        self.assertEqual({'0': new}, self.vbd_vdis(vm))
        self.assertEqual(self.sr_named(LVM), self.api.VDI.get_SR(new))
        self.assertEqual((), moved.leftovers)
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=('0',))
