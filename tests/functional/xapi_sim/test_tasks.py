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

"""Async.<Class>.<method>: task records, results, failures, cancel."""

import uuid
import xmlrpc.client

import XenAPI

from tests.functional.xapi_sim import base

MiB = base.MiB
BLOCK = base.BLOCK


def decode_result(result):
    """A task ``result`` (one XML-RPC <value>) as a Python value."""
    body = ('<?xml version="1.0"?><methodResponse><params><param>%s'
            '</param></params></methodResponse>' % result)
    (value,), _ = xmlrpc.client.loads(body)
    return value


class TestAsync(base.SimulatorTestCase):

    def test_async_snapshot_returns_task_with_encoded_result(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        before = set(self.api.VDI.get_all())
        task = self.api.Async.VDI.snapshot(vdi)
        self.assertTrue(task.startswith('OpaqueRef:'))
        self.assertIn(task, self.api.task.get_all())
        self.assertEqual('Async.VDI.snapshot',
                         self.api.task.get_name_label(task))
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'])
        self.assertEqual(1.0, rec['progress'])
        self.assertEqual([], rec['error_info'])
        self.assertEqual([], rec['allowed_operations'])
        # The base copy SM leaves under both leaves is not a new disk.
        new = {ref for ref, r in self.api.VDI.get_all_records().items()
               if r['managed']} - before
        self.assertEqual(1, len(new))
        snap = new.pop()
        self.assertEqual('<value>%s</value>' % snap, rec['result'])
        self.assertEqual(snap, decode_result(rec['result']))
        self.assertTrue(self.api.VDI.get_is_a_snapshot(snap))
        self.assertEqual(vdi, self.api.VDI.get_snapshot_of(snap))

    def test_async_copy_result_is_the_new_vdi(self):
        sr = self.sr('ext')
        vdi = self.create_vdi(sr, 4 * MiB)
        self.disk(vdi).write(BLOCK, b'copy me' * 100)
        task = self.api.Async.VDI.copy(vdi, self.sr('lvm'))
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        copy = decode_result(rec['result'])
        self.assertEqual(self.sr('lvm'), self.api.VDI.get_SR(copy))
        self.assertEqual(self.checksum(vdi), self.checksum(copy))

    def test_async_void_result_is_empty(self):
        vm, _ = self.vm_with_disks([4 * MiB], start=False)
        task = self.api.Async.VM.start(vm, False, False)
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        self.assertEqual('', rec['result'])
        self.assertEqual('Running', self.api.VM.get_power_state(vm))

    def test_async_failure_sets_error_info(self):
        vm = self.create_vm()
        task = self.api.Async.VM.pause(vm)
        rec = self.wait_task(task)
        self.assertEqual('failure', rec['status'])
        self.assertEqual(['VM_BAD_POWER_STATE', vm, 'running', 'halted'],
                         rec['error_info'])
        self.assertEqual('', rec['result'])
        self.assertEqual([], rec['allowed_operations'])
        self.assertStillServing()

    def test_async_failure_of_bad_handle(self):
        bogus = 'OpaqueRef:%s' % uuid.uuid4()
        rec = self.wait_task(self.api.Async.VDI.snapshot(bogus))
        self.assertEqual('failure', rec['status'])
        self.assertEqual(['HANDLE_INVALID', 'VDI', bogus], rec['error_info'])

    def test_async_arity_is_checked_before_a_task_exists(self):
        self.assertXapiError(['MESSAGE_PARAMETER_COUNT_MISMATCH',
                              'Async.VM.start', '4', '2'],
                             self.api.Async.VM.start, base.NULL)
        self.assertEqual([], self.api.task.get_all())

    def test_getters_setters_and_session_have_no_async_form(self):
        vm = self.create_vm()
        for name, args in (('VM.get_record', (vm,)),
                           ('VM.get_all', ()),
                           ('VM.set_name_label', (vm, 'x')),
                           ('task.get_all', ()),
                           ('event.from', (['vm'], '', 0.0)),
                           ('session.logout', ())):
            envelope = self.raw_call('Async.%s' % name,
                                     self.session.handle, *args)
            self.assertFailure(['MESSAGE_METHOD_UNKNOWN', 'Async.%s' % name],
                               envelope)
        self.assertEqual([], self.api.task.get_all())
        self.assertStillServing()

    def test_task_is_tracked_by_session(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        task = self.api.Async.VDI.snapshot(vdi)
        self.wait_task(task)
        self.assertIn(task, self.api.session.get_tasks(self.session.handle))

    def test_task_destroy_removes_it(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        task = self.api.Async.VDI.clone(vdi)
        self.wait_task(task)
        self.api.task.destroy(task)
        self.assertNotIn(task, self.api.task.get_all())
        self.assertXapiError(['HANDLE_INVALID', 'task', task],
                             self.api.task.get_record, task)
        # The clone itself stays (beside the base copy under both).
        self.assertEqual(2, len([
            r for r in self.api.VDI.get_all_records().values()
            if r['managed']]))

    def test_cancel_after_the_end_changes_nothing(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        task = self.api.Async.VDI.snapshot(vdi)
        done = self.wait_task(task)
        self.assertEqual('success', done['status'])
        try:
            self.api.task.cancel(task)
        except XenAPI.Failure as exc:
            # The simulator refuses: the task is no longer cancellable.
            self.assertEqual('OPERATION_NOT_ALLOWED', exc.details[0])
        after = self.api.task.get_record(task)
        self.assertEqual('success', after['status'])
        self.assertEqual(done['result'], after['result'])
        self.assertEqual([], after['error_info'])
        snap = decode_result(done['result'])
        self.assertTrue(self.api.VDI.get_is_a_snapshot(snap))


class TestCancel(base.SimulatorTestCase):

    def _long_copy_source(self):
        # A large sparse disk with every other block written: the copy
        # visits each written block on its own and checks for a cancel
        # between them, so it runs for a while.
        sr = self.sr('ext')
        size = 128 * MiB
        vdi = self.create_vdi(sr, size)
        disk = self.disk(vdi)
        for block in range(0, size // BLOCK, 2):
            disk.write(block * BLOCK, b'\x5a' * 4096)
        return sr, vdi

    def test_cancel_long_copy(self):
        sr, vdi = self._long_copy_source()
        vdis_before = sorted(self.api.VDI.get_all())
        self.api.SR.scan(sr)
        util_before = self.api.SR.get_physical_utilisation(sr)
        # A fast machine may finish the copy before the cancel lands:
        # retry a few times, cleaning up the copies that did finish.
        for attempt in range(5):
            task = self.api.Async.VDI.copy(vdi, sr)
            try:
                self.api.task.cancel(task)
            except XenAPI.Failure as exc:
                # Finished before the cancel: it is no longer cancellable.
                self.assertEqual('OPERATION_NOT_ALLOWED', exc.details[0])
            rec = self.wait_task(task)
            if rec['status'] == 'cancelled':
                break
            self.assertEqual('success', rec['status'], rec['error_info'])
            self.api.VDI.destroy(decode_result(rec['result']))
            self.api.task.destroy(task)
        else:
            self.fail('the copy always finished before task.cancel')
        self.assertEqual(['TASK_CANCELLED', task], rec['error_info'])
        self.assertEqual('', rec['result'])
        self.assertEqual([], rec['allowed_operations'])
        self.assertLess(rec['progress'], 1.0)
        # No copy is left behind, and the space it took is given back.
        self.assertEqual(vdis_before, sorted(self.api.VDI.get_all()))
        self.api.SR.scan(sr)
        self.assertEqual(util_before,
                         self.api.SR.get_physical_utilisation(sr))
        self.assertStillServing()

    def test_task_history_pending_then_progress_then_success(self):
        # event.from keeps every change of the task: it was created
        # pending and cancellable, its progress only grew, within 0..1.
        sr, vdi = self._long_copy_source()
        token = base.event_from(self.api, ['task'], '', 0)['token']
        task = self.api.Async.VDI.copy(vdi, sr)
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        events = base.event_from(self.api, ['task'], token, 0)['events']
        mine = [e for e in events if e['ref'] == task]
        self.assertEqual('add', mine[0]['operation'])
        first = mine[0]['snapshot']
        self.assertEqual('pending', first['status'])
        self.assertEqual(['cancel'], first['allowed_operations'])
        self.assertEqual(0.0, first['progress'])
        progress = [e['snapshot']['progress'] for e in mine]
        self.assertEqual(sorted(progress), progress)
        self.assertTrue(all(0.0 <= p <= 1.0 for p in progress))
        # Some intermediate progress was published on the way.
        self.assertTrue(any(0.0 < p < 1.0 for p in progress), progress)
        self.assertEqual('success', mine[-1]['snapshot']['status'])
