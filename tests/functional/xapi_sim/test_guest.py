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

"""Simulated guests: workloads, the image checker, pause and heartbeat."""

import time

from xapi_sim import control

from tests.functional.xapi_sim import base

MiB = base.MiB
UNIT = 4096


class GuestTestCase(base.SimulatorTestCase):

    def setUp(self):
        super().setUp()
        self.ctl = self.control()

    def writes(self, vm, disk=0):
        return self.ctl.guest_stats(vm)['disks'][disk]['writes']

    def wait_writes(self, vm, more_than, disk=0):
        return self.poll(lambda: self.writes(vm, disk) > more_than,
                         what='more than %d guest writes' % more_than)


class TestChecker(GuestTestCase):

    def _run_and_check(self, pattern):
        vm, vdis = self.vm_with_disks([4 * MiB, 8 * MiB])
        for i, seed in ((0, 11), (1, 12)):
            self.ctl.workload_start(vm, str(i), pattern=pattern,
                                    rate=2 * MiB, block_size=UNIT,
                                    seed=seed)
        self.wait_writes(vm, 200, disk=0)
        self.wait_writes(vm, 200, disk=1)
        stats = self.ctl.workload_stop(vm)
        for disk in stats['disks']:
            self.assertEqual(pattern, disk['pattern'])
            self.assertEqual(0, disk['errors'], disk['last_error'])
        reports = self.ctl.guest_check(vm)
        self.assertEqual(['0', '1'], [r['userdevice'] for r in reports])
        for report, size in zip(reports, (4 * MiB, 8 * MiB)):
            self.assertTrue(report['ok'], report)
            self.assertEqual(0, report['mismatches'])
            self.assertEqual(size // UNIT, report['units_checked'])
            self.assertGreater(report['writes'], 200)
        return vm, vdis, reports

    def test_sequential(self):
        _, _, reports = self._run_and_check('sequential')
        # Sequential writes touch distinct offsets until they wrap.
        for report in reports:
            self.assertEqual(min(report['writes'], report['units_checked']),
                             report['distinct_offsets'])

    def test_uniform(self):
        self._run_and_check('uniform')

    def test_hotspot(self):
        vm, _, reports = self._run_and_check('hotspot')
        # 90% of the writes hit 10% of the disk: offsets repeat.
        for report in reports:
            self.assertLess(report['distinct_offsets'], report['writes'])

    def test_one_corrupted_unit_is_found(self):
        vm, (vdi, _), _ = self._run_and_check('uniform')
        for offset in (0, 3 * MiB + 5 * UNIT, 4 * MiB - UNIT):
            good = self.disk(vdi).read(offset, UNIT)
            self.disk(vdi).write(offset, b'x' * UNIT)
            report = self.ctl.guest_check(vm)[0]
            self.assertFalse(report['ok'])
            self.assertEqual(1, report['mismatches'])
            self.assertEqual([offset], report['first_mismatches'])
            # The other disk is untouched.
            self.assertTrue(self.ctl.guest_check(vm)[1]['ok'])
            # Put it back: clean again.
            self.disk(vdi).write(offset, good)
            self.assertTrue(self.ctl.guest_check(vm)[0]['ok'])

    def test_one_corrupted_byte_is_found(self):
        vm, (vdi, _), _ = self._run_and_check('sequential')
        offset = 2 * MiB + 7 * UNIT + 100
        byte = self.disk(vdi).read(offset, 1)
        self.disk(vdi).write(offset, bytes([byte[0] ^ 0xff]))
        report = self.ctl.guest_check(vm)[0]
        self.assertEqual(1, report['mismatches'])
        self.assertEqual([offset - 100], report['first_mismatches'])

    def test_existing_data_is_the_baseline(self):
        # Data that was on the disk before the workload started counts as
        # expected content, not as corruption.
        vm, (vdi,) = self.vm_with_disks([4 * MiB], start=False)
        self.import_vdi(vdi, b'\x42' * (2 * MiB))
        self.api.VM.start(vm, False, False)
        self.ctl.workload_start(vm, '0', pattern='uniform', rate=2 * MiB,
                                block_size=UNIT, seed=3)
        self.wait_writes(vm, 100)
        self.ctl.workload_stop(vm)
        self.assertTrue(self.ctl.guest_check(vm)[0]['ok'])
        # Zeroing a unit of the baseline is a mismatch.
        journal_free = [o for o in range(0, 2 * MiB, UNIT)
                        if self.disk(vdi).read(o, UNIT) == b'\x42' * UNIT]
        self.assertTrue(journal_free)
        self.disk(vdi).write(journal_free[0], bytes(UNIT))
        report = self.ctl.guest_check(vm)[0]
        self.assertEqual([journal_free[0]], report['first_mismatches'])


class TestPauseAndHeartbeat(GuestTestCase):

    def test_paused_vm_writes_nothing(self):
        vm, _ = self.vm_with_disks([4 * MiB])
        self.ctl.workload_start(vm, '0', pattern='uniform', rate=0,
                                block_size=UNIT, seed=5)
        self.wait_writes(vm, 100)
        self.api.VM.pause(vm)
        at_pause = self.writes(vm)
        self.assertFalse(self.ctl.guest_stats(vm)['running'])
        # Give a misbehaving guest time to write (this is not a timing
        # assertion: nothing at all may be written in that window).
        time.sleep(0.3)
        self.assertEqual(at_pause, self.writes(vm))
        self.api.VM.unpause(vm)
        self.assertTrue(self.ctl.guest_stats(vm)['running'])
        self.wait_writes(vm, at_pause)
        self.ctl.workload_stop(vm)
        self.assertTrue(self.ctl.guest_check(vm)[0]['ok'])

    def test_heartbeat_gap_reflects_a_pause(self):
        vm, _ = self.vm_with_disks([4 * MiB])
        self.poll(lambda: self.ctl.guest_stats(vm)['running'],
                  what='the guest to run')
        self.ctl.heartbeat_reset(vm)
        self.api.VM.pause(vm)
        time.sleep(0.3)
        self.api.VM.unpause(vm)
        gap = self.poll(
            lambda: self.ctl.guest_stats(vm)['max_gap'] >= 0.3
            and self.ctl.guest_stats(vm)['max_gap'],
            what='the heartbeat to see the pause')
        self.assertGreaterEqual(gap, 0.3)
        # A reset forgets it; a running guest beats often.
        self.ctl.heartbeat_reset(vm)
        self.assertLess(self.ctl.guest_stats(vm)['max_gap'], 0.3)

    def test_halted_vm_writes_nothing(self):
        vm, (vdi,) = self.vm_with_disks([4 * MiB])
        self.ctl.workload_start(vm, '0', pattern='sequential', rate=0,
                                block_size=UNIT, seed=6)
        self.wait_writes(vm, 100)
        self.api.VM.hard_shutdown(vm)
        before = self.checksum(vdi)
        time.sleep(0.2)  # a window for stray writes, not a timing check
        self.assertEqual(before, self.checksum(vdi))
        self.assertRaises(control.ControlError, self.ctl.workload_start,
                          vm, '0', pattern='uniform')


class TestControlErrors(GuestTestCase):

    def test_workload_on_halted_vm(self):
        vm, _ = self.vm_with_disks([4 * MiB], start=False)
        exc = self.assertRaises(control.ControlError,
                                self.ctl.workload_start, vm, '0')
        self.assertIn('not running', str(exc))

    def test_bad_parameters(self):
        vm, _ = self.vm_with_disks([4 * MiB])
        for params in ({'pattern': 'zigzag'}, {'block_size': 1000},
                       {'rate': -1}, {'colour': 'blue'}):
            self.assertRaises(control.ControlError,
                              self.ctl.workload_start, vm, '0', **params)
        # One workload per disk.
        self.ctl.workload_start(vm, '0', rate=MiB)
        self.assertRaises(control.ControlError, self.ctl.workload_start,
                          vm, '0', rate=MiB)
        self.ctl.workload_stop(vm)

    def test_unknown_vm_and_bad_session(self):
        self.assertRaises(control.ControlError, self.ctl.guest_stats,
                          'OpaqueRef:nope')
        vm, _ = self.vm_with_disks([4 * MiB])
        bad = control.Control(self.url(), 'OpaqueRef:not-a-session')
        self.assertRaises(control.ControlError, bad.guest_stats, vm)
        self.assertFalse(self.ctl.guest_stats(vm)['disks'])
