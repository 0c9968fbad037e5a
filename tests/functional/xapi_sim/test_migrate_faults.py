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

"""Storage XenMotion that fails or is cancelled before the point of no
return: the task reports xapi's error and nothing has moved. The VM runs at
home on its own disks, no VDI is left in either pool, no VM with its uuid
exists in the destination pool, the guest never noticed, and a second
attempt succeeds. And a failure after the point of no return."""

from tests.functional.xapi_sim import migrate_base

MiB = migrate_base.MiB
NULL = migrate_base.NULL


class FaultTestCase(migrate_base.MigrateTestCase):

    def retry_cross_pool(self, vm, vdi_map, vif):
        """After a rollback the same migration goes through."""
        uuid = self.api.VM.get_uuid(vm)
        new_vm = self.migrate(vm, self.dest_b(), vdi_map, {vif: self.net_b})
        self.assertEqual(new_vm, self.api_b.VM.get_by_uuid(uuid))
        self.assertEqual(set(), self.vdi_set())
        # The journals of the stopped writers still say what the disks
        # must hold: check them on the destination.
        self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0', '1'])

    def cross_pool_fault(self, point, expected, **fault):
        """Arm a fault, migrate to pool-b, check the rollback, retry."""
        vm, small, large, vif = self.writing_vm()
        before = self.state(vm)
        self.ctl.fault_inject(point, **fault)
        ext_b = self.ext(self.api_b)
        vdi_map = {small: ext_b, large: ext_b}
        error = self.migrate_fails(vm, self.dest_b(), vdi_map,
                                   {vif: self.net_b})
        self.assertEqual(expected(vm, small, large), error)
        self.assertRolledBack(vm, before)
        self.retry_cross_pool(vm, vdi_map, vif)

    def cancel_while_copying(self, check_task=False):
        """Cancel a slowed migration to pool-b mid-copy; roll back, retry.

        With ``check_task`` the task must also offer ``cancel`` and end
        before 90% progress.
        """
        # Slowed: cancelled well before the end.
        vm, small, large, vif, task, before = self.slow_migration_to_b()
        if check_task:
            self.assertIn('cancel',
                          self.api.task.get_allowed_operations(task))
        self.api.task.cancel(task)
        rec = self.wait_task(task)
        self.assertEqual('cancelled', rec['status'])
        self.assertEqual(['TASK_CANCELLED', task], rec['error_info'])
        if check_task:
            self.assertLess(rec['progress'], 0.9)
        self.assertRolledBack(vm, before)
        self.ctl.configure(bandwidth=0)
        self.retry_cross_pool(vm, self.to_ext_b(small, large), vif)


class RollbackFaults(object):
    """Faults rolled back whatever the destination and the algorithm.

    The test class defines ``fault(point, expected, **fault)``: arm the
    fault, migrate, check the error and the rollback, retry.
    """

    def test_destination_full_halfway(self):
        self.fault(
            'destination_full',
            lambda vm, small, large: ['SR_BACKEND_FAILURE_44', '',
                                      'There is insufficient space', ''],
            percent=50)

    def test_memory_migration(self):
        # Cross-pool, the VM exists in pool-b by then: it must go again.
        self.fault(
            'memory',
            lambda vm, small, large: ['VM_MIGRATE_FAILED', vm, '', '',
                                      'Xenops_interface.Internal_error'])


class MirrorFaults(RollbackFaults):
    """And, where disks are mirrored, a mirror that breaks."""

    def test_mirror_breaks_halfway(self):
        # Disks go in order of size: the small one is mirrored first.
        self.fault(
            'mirror', lambda vm, small, large: ['MIRROR_FAILED', small],
            percent=50)


class TestCrossPoolFaults(MirrorFaults, FaultTestCase):

    fault = FaultTestCase.cross_pool_fault

    def test_prepare(self):
        self.cross_pool_fault(
            'prepare',
            lambda vm, small, large: ['INTERNAL_ERROR',
                                      'fault injected at prepare'])

    def test_snapshot(self):
        self.cross_pool_fault(
            'snapshot',
            lambda vm, small, large: ['SR_BACKEND_FAILURE_82', '',
                                      'Failed to snapshot VDI', ''])

    def test_copy_fails_halfway(self):
        self.cross_pool_fault(
            'copy',
            lambda vm, small, large: ['VDI_COPY_FAILED',
                                      'Storage_error ([S(Internal_error)])'],
            percent=50)

    def test_metadata_import(self):
        # Every disk is mirrored by then: all of it must be undone.
        self.cross_pool_fault(
            'metadata',
            lambda vm, small, large: ['IMPORT_ERROR',
                                      'metadata import failed'])

    def test_fault_with_a_chosen_error(self):
        self.cross_pool_fault(
            'copy', lambda vm, small, large: ['SR_BACKEND_FAILURE_47', '',
                                              'The SR is not available', ''],
            percent=10, code='SR_BACKEND_FAILURE_47',
            params=['', 'The SR is not available', ''])


class TestCancel(FaultTestCase):

    def test_cancel_while_copying(self):
        self.cancel_while_copying(check_task=True)

    def test_cancel_during_memory_precopy(self):
        # Every disk mirrored, the VM imported into pool-b: cancel then.
        vm, small, large, vif = self.writing_vm()
        before = self.state(vm)
        self.ctl.configure(memory_seconds=5.0)
        ext_b = self.ext(self.api_b)
        vdi_map = {small: ext_b, large: ext_b}
        task = self.migrate_async(vm, self.dest_b(), vdi_map,
                                  {vif: self.net_b})
        self.wait_progress(task, above=0.89)
        uuid = before['uuid']
        self.poll(lambda: self.vm_in(uuid, self.api_b),
                  what='the VM imported into pool-b')
        self.api.task.cancel(task)
        rec = self.wait_task(task, timeout=4.0)
        self.assertEqual('cancelled', rec['status'])
        self.assertEqual(['TASK_CANCELLED', task], rec['error_info'])
        self.assertRolledBack(vm, before)
        self.ctl.configure(memory_seconds=0.05)
        self.retry_cross_pool(vm, vdi_map, vif)

    def test_cancel_vdi_pool_migrate(self):
        vm, small, large, vif = self.writing_vm()
        before = self.state(vm)
        self.ctl.configure(bandwidth=2 * MiB)
        task = self.api.Async.VDI.pool_migrate(large, self.ext(), {})
        self.wait_progress(task)
        self.api.task.cancel(task)
        rec = self.wait_task(task)
        self.assertEqual('cancelled', rec['status'])
        self.assertEqual(['TASK_CANCELLED', task], rec['error_info'])
        self.assertRolledBack(vm, before)


class TestInPoolFaults(MirrorFaults, FaultTestCase):

    def fault(self, point, expected, **fault):
        """Arm a fault, migrate inside pool-a, check the rollback, retry."""
        vm, small, large, vif = self.writing_vm()
        before = self.state(vm)
        self.ctl.fault_inject(point, **fault)
        vdi_map = {small: self.lvm(), large: self.ext()}
        error = self.migrate_fails(vm, self.dest_a(), vdi_map)
        self.assertEqual(expected(vm, small, large), error)
        self.assertRolledBack(vm, before)
        # Then it goes through.
        self.assertEqual(vm, self.migrate(vm, self.dest_a(), vdi_map))
        self.assertEqual(2, len(self.vdi_set()))
        self.assertEqual(set(), self.vdi_set() & {small, large})
        self.stop_and_check(vm, devices=['0', '1'])

    def test_vdi_pool_migrate_mirror_breaks(self):
        vm, small, large, vif = self.writing_vm()
        before = self.state(vm)
        self.ctl.fault_inject('mirror', percent=50)
        task = self.api.Async.VDI.pool_migrate(large, self.ext(), {})
        rec = self.wait_task(task)
        self.assertEqual('failure', rec['status'])
        self.assertEqual(['MIRROR_FAILED', large], rec['error_info'])
        self.assertRolledBack(vm, before)


class TestAfterThePointOfNoReturn(FaultTestCase):

    def test_finalize_fault_leaves_the_vm_running_on_the_destination(self):
        """A failure after the memory moved cannot roll back.

        What the simulator does: the task fails with the fault's error,
        the VM runs in pool-b on its new disks and the guest keeps
        writing there; the source VM record stays in pool-a, halted, with
        its old VDIs (and the mirror snapshots), which nobody cleans up.
        """
        vm, small, large, vif = self.writing_vm()
        uuid = self.api.VM.get_uuid(vm)
        self.ctl.fault_inject('finalize')
        ext_b = self.ext(self.api_b)
        error = self.migrate_fails(vm, self.dest_b(),
                                   {small: ext_b, large: ext_b},
                                   {vif: self.net_b})
        self.assertEqual(['INTERNAL_ERROR', 'fault injected at finalize'],
                         error)
        new_vm = self.vm_in(uuid, self.api_b)
        self.assertIsNotNone(new_vm)
        rec = self.api_b.VM.get_record(new_vm)
        self.assertEqual('Running', rec['power_state'])
        self.assertEqual(self.host_b, rec['resident_on'])
        for vbd in rec['VBDs']:
            self.assertTrue(self.api_b.VBD.get_currently_attached(vbd))
            self.assertEqual(ext_b, self.api_b.VDI.get_SR(
                self.api_b.VBD.get_VDI(vbd)))
        # Never running in two places.
        old = self.vm_in(uuid, self.api)
        if old is not None:
            self.assertEqual('Halted', self.api.VM.get_power_state(old))
            self.assertEqual(NULL, self.api.VM.get_resident_on(old))
        self.wait_writes(uuid, ctl=self.ctl_b)
        self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0', '1'])


class TestCopyDirtyRollback(RollbackFaults, FaultTestCase):
    """The baseline algorithm undoes a failure as completely."""

    fault = FaultTestCase.cross_pool_fault

    def setUp(self):
        super().setUp()
        self.ctl.configure(algorithm='copy-dirty')

    def test_cancel_while_copying(self):
        self.cancel_while_copying()
