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

"""What a review of the simulator found, pinned down through the API.

A guest that writes faster than the link still lets its migration finish
(the synchronous mirror slows the guest, not the copy); a migrating VM and
its VDIs refuse conflicting operations until the migration ends; VDI.copy
never writes into a disk a running guest owns; VDI.pool_migrate moves only
a disk plugged into a running VM; unaligned guest writes are mirrored
exactly; a rolled-back migration gives back the space and the chain it
took; vm_digests see a halted VM and its snapshots unchanged by a move;
and stopping the simulator in the middle of a migration ends it cleanly.
"""

import random
import threading
import time

import fixtures

from tests.functional.xapi_sim import migrate_base
from xapi_sim import control

MiB = migrate_base.MiB
BLOCK = migrate_base.BLOCK
SECTOR = 512
NULL = migrate_base.NULL


class ReviewTestCase(migrate_base.MigrateTestCase):

    def bytes_written(self, uuid):
        """What the guest of VM ``uuid`` has written, wherever it is."""
        for ctl in (self.ctl, self.ctl_b):
            try:
                stats = ctl.guest_stats(uuid)
            except control.ControlError:
                continue  # not (or no longer) in this pool
            return sum(d['bytes_written'] for d in stats['disks'])
        self.fail('VM %s is in neither pool' % uuid)

    def rate_over(self, uuid, seconds):
        """The guest's write rate (bytes/s) over the next ``seconds``."""
        t0, b0 = time.monotonic(), self.bytes_written(uuid)
        self.poll(lambda: time.monotonic() - t0 >= seconds,
                  what='%ss of guest writes' % seconds)
        return (self.bytes_written(uuid) - b0) / (time.monotonic() - t0)

    def assertSameImage(self, expected, actual):
        """Two disk images are equal; else say where they first differ."""
        self.assertEqual(len(expected), len(actual))
        if expected != actual:
            at = next(i for i, (a, b) in enumerate(zip(expected, actual))
                      if a != b)
            self.fail('the images differ from byte %d (block %d, sector '
                      '%d of it): %r expected, %r found'
                      % (at, at // BLOCK, at % BLOCK // SECTOR,
                         expected[at:at + 16], actual[at:at + 16]))

    def new_vdi_of(self, vm, userdevice, api):
        for vbd in api.VM.get_VBDs(vm):
            if api.VBD.get_userdevice(vbd) == userdevice:
                return api.VBD.get_VDI(vbd)
        self.fail('VM %s has no VBD %s' % (vm, userdevice))


class TestGuestFasterThanTheLink(ReviewTestCase):

    CAP = 4 * MiB

    def test_migration_finishes_and_the_mirror_slows_the_guest(self):
        # A full 8 MiB disk; the guest asks for 1.5 times the link in
        # whole 64 KiB writes.
        vm, (vdi,), _ = self.make_vm([(self.ext(), 8 * MiB, 0)],
                                     vif=False, start=False)
        self.import_vdi(vdi, random.Random(4).randbytes(8 * MiB))
        self.api.VM.start(vm, False, False)
        uuid = self.api.VM.get_uuid(vm)
        asked = 1.5 * self.CAP
        self.ctl.workload_start(vm, '0', pattern='uniform', rate=asked,
                                block_size=BLOCK, seed=3)
        # Unmigrated, the guest does write faster than the link: what
        # slows it later is the migration.
        self.assertGreater(self.rate_over(uuid, 0.5), self.CAP)
        self.ctl.configure(bandwidth=self.CAP)

        # 8 MiB to copy on half of the link (the guest has the other
        # half): four seconds; generously, it is over within a minute.
        deadline = time.monotonic() + 60.0
        task = self.migrate_async(vm, self.dest_b(),
                                  {vdi: self.ext(self.api_b)})
        self.wait_progress(task)
        # From now on every guest write is mirrored: sample the guest's
        # progress for as long as the task is pending.
        first = (time.monotonic(), self.bytes_written(uuid))
        last = first
        while time.monotonic() < deadline:
            sample = (time.monotonic(), self.bytes_written(uuid))
            if self.api.task.get_status(task) != 'pending':
                break
            last = sample
            time.sleep(0.05)
        if self.api.task.get_status(task) == 'pending':
            self.fail('the migration of a disk whose guest writes faster '
                      'than the link did not finish within 60 s (progress '
                      '%s)' % self.api.task.get_progress(task))
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])

        window = last[0] - first[0]
        self.assertGreater(window, 0.5, 'the migration was too short to '
                           'measure the guest during it')
        rate = (last[1] - first[1]) / window
        self.assertLess(rate, asked, 'the guest wrote as fast as it asked '
                        'while its disk was mirrored over a slower link')
        # Mirror and copy share the one link: the guest gets at most it.
        self.assertLess(rate, 1.1 * self.CAP)
        self.assertGreater(rate, 0, 'the guest was starved of writes')
        # And the copy was not starved either: it had its share of the
        # link (half of it, when both always want more).
        (log,) = self.ctl.migrations()
        (job,) = log['disks']
        self.assertGreaterEqual(log['bytes_copied'], 8 * MiB)
        copy_rate = log['bytes_copied'] / job['seconds']
        self.assertGreater(copy_rate, self.CAP / 4,
                           'the mirrored writes starved the copy')
        self.assertEqual('Running', self.api_b.VM.get_power_state(
            self.api_b.VM.get_by_uuid(uuid)))
        self.ctl.configure(bandwidth=0)
        self.wait_writes(uuid, ctl=self.ctl_b)
        self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0'])


class TestOperationsWhileMigrating(ReviewTestCase):

    def test_conflicting_operations_are_refused_until_the_end(self):
        ext, lvm = self.ext(), self.lvm()
        vm, vdis, vif = self.make_vm([(ext, 4 * MiB, 16)] * 3)
        vbds = [self.api.VDI.get_VBDs(v)[0] for v in vdis]
        # Disk 2 stays on the VM, unplugged.
        self.api.VBD.unplug(vbds[2])
        scratch = self.create_vdi(ext, 4 * MiB, name='scratch')
        self.prefill(scratch, 2, seed='scratch')
        # 3 MiB to copy at 2 MiB/s: over a second and a half.
        self.ctl.configure(bandwidth=2 * MiB)

        task = self.migrate_async(vm, self.dest_a(),
                                  {v: lvm for v in vdis})
        self.wait_progress(task)

        self.assertEqual({task: 'migrate_send'},
                         self.api.VM.get_current_operations(vm))
        for vdi in vdis:
            self.assertNotEqual({}, self.api.VDI.get_current_operations(vdi),
                                'VDI %s of the migrating VM looks idle'
                                % vdi)

        def in_progress(cls, ref):
            ops = (x.VM.get_current_operations(ref) if cls == 'VM'
                   else x.VDI.get_current_operations(ref))
            ((op_ref, op),) = ops.items()
            return ['OTHER_OPERATION_IN_PROGRESS', cls, ref, op, op_ref]

        x = self.api
        refused = [
            (in_progress('VM', vm), x.VM.hard_shutdown, vm),
            (in_progress('VM', vm), x.VM.clean_shutdown, vm),
            (in_progress('VM', vm), x.VM.pause, vm),
            (in_progress('VM', vm), x.VM.snapshot, vm, 'during'),
            (in_progress('VM', vm), x.VBD.unplug, vbds[1]),
            (in_progress('VM', vm), x.VIF.unplug, vif),
            (in_progress('VM', vm), x.VBD.destroy, vbds[2]),
            (in_progress('VDI', vdis[2]), x.VDI.destroy, vdis[2]),
            (in_progress('VDI', vdis[2]), x.VDI.resize, vdis[2],
             str(8 * MiB)),
            (in_progress('VDI', vdis[2]), x.VDI.copy, scratch, ext, NULL,
             vdis[2]),
        ]
        for expected, func, *args in refused:
            self.assertXapiError(expected, func, *args)
        # Refused means untouched, and the migration was still running.
        self.assertEqual('pending', self.api.task.get_status(task),
                         'the migration ended before every operation was '
                         'tried: slow it down')
        self.assertEqual('Running', x.VM.get_power_state(vm))
        self.assertEqual([], x.VM.get_snapshots(vm))
        self.assertEqual(sorted(vbds), sorted(x.VM.get_VBDs(vm)))
        self.assertEqual([True, True, False],
                         [x.VBD.get_currently_attached(v) for v in vbds])
        self.assertTrue(x.VIF.get_currently_attached(vif))
        self.assertEqual(str(4 * MiB), x.VDI.get_virtual_size(vdis[2]))

        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        self.ctl.configure(bandwidth=0)

        self.assertEqual({}, x.VM.get_current_operations(vm))
        moved = [x.VBD.get_VDI(v) for v in vbds]
        self.assertEqual(set(moved) | {scratch}, self.vdi_set())
        for vdi in moved + [scratch]:
            self.assertEqual({}, x.VDI.get_current_operations(vdi), vdi)
        self.assertEqual([lvm] * 3, [x.VDI.get_SR(v) for v in moved])

        # Now every one of them goes through.
        self.assertEqual(moved[2], x.VDI.copy(scratch, lvm, NULL, moved[2]))
        # scratch holds blocks 0 and 2: the copy wrote them.
        self.assertEqual(self.export_vdi(scratch)[:3 * BLOCK],
                         self.export_vdi(moved[2])[:3 * BLOCK])
        x.VDI.resize(moved[2], str(8 * MiB))
        self.assertEqual(str(8 * MiB), x.VDI.get_virtual_size(moved[2]))
        x.VBD.unplug(vbds[1])
        self.assertFalse(x.VBD.get_currently_attached(vbds[1]))
        x.VIF.unplug(vif)
        self.assertFalse(x.VIF.get_currently_attached(vif))
        snap = x.VM.snapshot(vm, 'after')
        self.assertEqual([snap], x.VM.get_snapshots(vm))
        x.VM.pause(vm)
        self.assertEqual('Paused', x.VM.get_power_state(vm))
        x.VM.unpause(vm)
        x.VM.clean_shutdown(vm)
        self.assertEqual('Halted', x.VM.get_power_state(vm))
        x.VM.start(vm, False, False)
        x.VM.hard_shutdown(vm)
        self.assertEqual('Halted', x.VM.get_power_state(vm))
        x.VBD.destroy(vbds[2])
        self.assertNotIn(vbds[2], x.VM.get_VBDs(vm))
        x.VDI.destroy(moved[2])
        self.assertNotIn(moved[2], self.vdi_set())


class TestCopyIntoAnAttachedVdi(ReviewTestCase):

    def test_refused_with_vdi_in_use(self):
        ext = self.ext()
        vm, (vdi,), _ = self.make_vm([(ext, 4 * MiB, 8)], vif=False)
        src = self.create_vdi(ext, 4 * MiB, name='src')
        self.prefill(src, 4, seed='src')
        image = self.checksum(vdi)
        before = self.vdi_set()
        for sr in (ext, self.lvm()):
            self.assertXapiError(['VDI_IN_USE', vdi, 'copy'],
                                 self.api.VDI.copy, src, sr, NULL, vdi)
        self.assertEqual(image, self.checksum(vdi))
        self.assertEqual(before, self.vdi_set())
        self.assertEqual('Running', self.api.VM.get_power_state(vm))


class TestVdiPoolMigrateNeedsARunningVm(ReviewTestCase):

    def assertNothingMoves(self, vm, vdi):
        ext, lvm = self.ext(), self.lvm()
        vbd = self.api.VDI.get_VBDs(vdi)[0]
        image = self.checksum(vdi)
        before = self.vdi_set()
        power = self.api.VM.get_power_state(vm)
        self.assertXapiError(['VDI_NEEDS_VM_FOR_MIGRATE', vdi],
                             self.api.VDI.pool_migrate, vdi, lvm, {})
        task = self.api.Async.VDI.pool_migrate(vdi, lvm, {})
        rec = self.wait_task(task)
        self.assertEqual('failure', rec['status'])
        self.assertEqual(['VDI_NEEDS_VM_FOR_MIGRATE', vdi],
                         rec['error_info'])
        self.assertEqual(before, self.vdi_set())
        self.assertEqual(ext, self.api.VDI.get_SR(vdi))
        self.assertEqual(vdi, self.api.VBD.get_VDI(vbd))
        self.assertEqual(image, self.checksum(vdi))
        self.assertEqual(power, self.api.VM.get_power_state(vm))
        self.assertEqual([], self.ctl.migrations())
        self.assertEqual([], self.api.SR.get_VDIs(lvm))

    def test_vm_halted(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 4 * MiB, 8)],
                                     vif=False, start=False)
        self.assertNothingMoves(vm, vdi)

    def test_vbd_unplugged(self):
        vm, (vdi0, vdi1), _ = self.make_vm(
            [(self.ext(), 4 * MiB, 8), (self.ext(), 4 * MiB, 8)], vif=False)
        self.api.VBD.unplug(self.api.VDI.get_VBDs(vdi1)[0])
        self.assertNothingMoves(vm, vdi1)
        self.assertEqual(self.ext(), self.api.VDI.get_SR(vdi0))


class TestUnalignedMirroredWrites(ReviewTestCase):
    """Guest writes of odd sizes at odd offsets while the copy runs."""

    def writes(self):
        rnd = random.Random(5)
        # (offset, length): prefilled blocks are the even ones, holes the
        # odd ones; the copy goes up from block 0.
        spots = [
            (SECTOR - 1, 1),                     # an early, copied block
            (100 * BLOCK + 13, BLOCK + 2 * SECTOR + 5),  # data, hole, data
            (110 * BLOCK + 777, 1001),           # inside a data block
            (113 * BLOCK + 5, 3),                # inside a hole
            (121 * BLOCK - 300, 700),            # data block into a hole
            (124 * BLOCK + 3 * SECTOR - 1, 2),   # across a sector boundary
            (8 * MiB - 7, 7),                    # the very end
        ]
        return [(off, rnd.randbytes(n)) for off, n in spots]

    def write_while_copying(self, vm, vdi, dest, vdi_map):
        """Write into the source disk mid-copy; the image to expect."""
        expected = bytearray(self.export_vdi(vdi))
        # 4 MiB to copy at 2 MiB/s.
        self.ctl.configure(bandwidth=2 * MiB)
        task = self.migrate_async(vm, dest, vdi_map)
        self.wait_progress(task)
        disk = self.disk(vdi)
        for offset, data in self.writes():
            disk.write(offset, data)  # as the guest would
            expected[offset:offset + len(data)] = data
        rec = self.api.task.get_record(task)
        self.assertEqual('pending', rec['status'])
        self.assertLess(rec['progress'], 0.5, 'the copy went past the '
                        'written blocks already: slow it down')
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        return bytes(expected)

    def test_in_pool(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 8 * MiB, 64)],
                                     vif=False)
        lvm = self.lvm()
        expected = self.write_while_copying(vm, vdi, self.dest_a(),
                                            {vdi: lvm})
        new = self.new_vdi_of(vm, '0', self.api)
        self.assertNotEqual(vdi, new)
        self.assertEqual(lvm, self.api.VDI.get_SR(new))
        self.assertSameImage(expected, self.export_vdi(new))

    def test_cross_pool(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 8 * MiB, 64)],
                                     vif=False)
        uuid = self.api.VM.get_uuid(vm)
        expected = self.write_while_copying(
            vm, vdi, self.dest_b(), {vdi: self.lvm(self.api_b)})
        new = self.new_vdi_of(self.api_b.VM.get_by_uuid(uuid), '0',
                              self.api_b)
        self.assertSameImage(expected, self.export_vdi(new, 'pool-b',
                                                       self.session_b))


class TestRollbackGivesSpaceBack(ReviewTestCase):

    def test_five_rollbacks_in_a_row(self):
        ext = self.ext()
        vm, (vdi,), _ = self.make_vm([(ext, MiB, 0)], vif=False,
                                     start=False)
        # Every block holds data, so the guest only rewrites blocks: the
        # SR must not grow for good.
        self.import_vdi(vdi, random.Random(9).randbytes(MiB))
        self.api.VM.start(vm, False, False)
        self.write(vm, ['0'])
        self.wait_writes(vm)
        disk = self.disk(vdi)

        def chain():
            return len(list(self.disk(vdi).chain()))

        def used():
            self.api.SR.scan(ext)
            return int(self.api.SR.get_physical_utilisation(ext))

        self.assertEqual(1, chain())
        self.assertEqual(MiB, used())
        before = self.state(vm)
        # Half of the disk at 2 MiB/s, shared with the mirrored writes.
        self.ctl.configure(bandwidth=2 * MiB)
        for attempt in range(5):
            self.ctl.fault_inject('copy', percent=50)
            error = self.migrate_fails(vm, self.dest_b(),
                                       {vdi: self.ext(self.api_b)})
            self.assertEqual(['VDI_COPY_FAILED',
                              'Storage_error ([S(Internal_error)])'], error)
            self.assertEqual(1, chain(), 'attempt %d left a longer chain'
                             % attempt)
            self.assertEqual(MiB, used(), 'attempt %d left the SR fuller'
                             % attempt)
            self.assertIs(disk, self.disk(vdi))
            self.assertUnchanged(vm, before)
        self.assertEqual([], self.ctl.call('faults'))
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=['0'])


class TestVmDigests(ReviewTestCase):

    def test_halted_vm_with_a_snapshot_keeps_its_digests(self):
        vm, (vdi0, vdi1), _ = self.make_vm(
            [(self.ext(), 4 * MiB, 8), (self.lvm(), 2 * MiB, 4)],
            vif=False, start=False)
        uuid = self.api.VM.get_uuid(vm)
        self.api.VM.snapshot(vm, 'snap')
        # The disk moves on after the snapshot.
        self.disk(vdi0).write(BLOCK + 3, b'after the snapshot')
        digests = self.ctl.vm_digests(vm)
        self.assertEqual({'0', '1', 'snap/0', 'snap/1'}, set(digests))
        self.assertEqual(self.checksum(vdi0), digests['0'])
        self.assertEqual(self.checksum(vdi1), digests['1'])
        self.assertNotEqual(digests['0'], digests['snap/0'])
        self.assertEqual(digests['1'], digests['snap/1'])
        self.assertEqual(digests, self.ctl.vm_digests(uuid))

        new = self.migrate(vm, self.dest_b(),
                           {vdi0: self.ext(self.api_b),
                            vdi1: self.lvm(self.api_b)})
        self.assertEqual('Halted', self.api_b.VM.get_power_state(new))
        self.assertEqual(digests, self.ctl_b.vm_digests(new))
        self.assertEqual(digests, self.ctl_b.vm_digests(uuid))
        self.assertRaises(control.ControlError, self.ctl.vm_digests, uuid)


class TestStopWhileMigrating(ReviewTestCase):

    def test_stop_cancels_and_joins_the_migration(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 8 * MiB, 64)],
                                     vif=False)
        self.write(vm, ['0'])
        self.wait_writes(vm)
        # 4 MiB at 512 KiB/s: eight seconds, unless stopped.
        self.ctl.configure(bandwidth=512 * 1024)
        task = self.migrate_async(vm, self.dest_b(),
                                  {vdi: self.ext(self.api_b)})
        self.wait_progress(task)
        pool_a = self.sim.pools['pool-a']
        threads = [t for t in threading.enumerate()
                   if t.name == 'task-VM.migrate_send']
        self.assertEqual(1, len(threads))

        escaped = []
        self.useFixture(fixtures.MonkeyPatch(
            'threading.excepthook', lambda args: escaped.append(
                (args.thread.name, args.exc_value))))
        raised = []

        def stop():
            try:
                self.sim.stop()
            except BaseException as exc:
                raised.append(exc)
        stopper = threading.Thread(target=stop, daemon=True)
        started = time.monotonic()
        stopper.start()
        stopper.join(30.0)
        self.assertFalse(stopper.is_alive(),
                         'Simulator.stop() still runs after 30 s')
        self.assertLess(time.monotonic() - started, 30.0)
        self.assertEqual([], raised)
        self.assertEqual([], escaped)
        self.assertFalse(threads[0].is_alive(),
                         'the migration still runs after Simulator.stop()')
        rec = pool_a.db.get('task', task)
        self.assertEqual('cancelled', rec['status'], rec['error_info'])
        self.assertEqual(['TASK_CANCELLED', task], rec['error_info'])
        for name, pool in self.sim.pools.items():
            self.assertEqual({}, pool.running_tasks, name)
