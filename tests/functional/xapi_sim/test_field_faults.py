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

"""What the field does to a toolstack's clients, as xapi does it.

A toolstack restart (xe-toolstack-restart): connections drop, sessions and
tasks are gone (not persisted), a storage migration in flight is undone
(Storage_migrate.killall at start-up), guests keep running and writing. A
pool master that moves: the old master answers HOST_IS_SLAVE [new master].
SM's SRScan error on SR.scan. xenopsd's Vms_failed_to_cooperate at the
end of a VDI.pool_migrate (the migration is undone). A connection reset
when the caller's answer was on its way (the work is done).
"""

import http.client
import json
import threading
import time
import xmlrpc.client

import XenAPI

from tests.functional import simhelpers
from tests.functional.xapi_sim import migrate_base
from tests.functional.xapi_sim import test_cli
from xapi_sim import control
from xapi_sim import sim as simmod

MiB = migrate_base.MiB
NULL = migrate_base.NULL
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


class FieldTestCase(migrate_base.MigrateTestCase):

    def restart(self, pool='pool-a', down=0, via=None):
        """Restart a pool's toolstack through the other pool's control."""
        via = via or (self.ctl_b if pool == 'pool-a' else self.ctl)
        answer = via.toolstack_restart(pool=pool, down=down)
        self.assertEqual(pool, answer['pool'])
        return answer

    def wait_lost(self, task, details=None):
        """Wait until ``task`` is gone with a restart.

        With ``details``, task.get_record must fail with exactly them.
        """
        def lost():
            try:
                self.api.task.get_record(task)
            except XenAPI.Failure as exc:
                return details is None or exc.details == details
            except CONNECTION_ERRORS:
                pass  # restarting
            return False
        self.poll(lost, what='the task to be lost')


class TestToolstackRestart(FieldTestCase):

    def test_sessions_are_invalid_afterwards(self):
        handle = self.session.handle
        self.restart()
        self.assertFailure(['SESSION_INVALID', handle],
                           self.raw_call('VM.get_all', handle))
        # XenAPI's client logs in again by itself.
        self.assertStillServing()
        self.assertNotEqual(handle, self.session.handle)

    def test_control_with_the_old_session_is_refused(self):
        self.restart()
        self.assertRaises(control.ControlError, self.ctl.call, 'faults')
        self.fresh_controls()
        self.assertEqual([], self.ctl.call('faults'))

    def test_a_restart_asked_on_the_pool_itself_answers(self):
        answer = self.ctl.toolstack_restart()
        self.assertEqual('pool-a', answer['pool'])
        self.assertEqual(self.url('pool-a'), answer['url'])
        self.assertStillServing()

    def test_connections_drop_and_are_refused_while_down(self):
        proxy = self.raw()
        self.assertEqual('Success',
                         proxy.pool.get_all(self.session.handle)['Status'])
        done = threading.Event()
        pool = self.sim.pools['pool-a']
        epoch = pool.epoch

        def restart():
            try:
                # Down long enough that a loaded machine still asks
                # while it is.
                self.restart(down=10.0)
            finally:
                done.set()
        thread = threading.Thread(target=restart)
        thread.start()
        self.addCleanup(thread.join)
        # Wait until the master stops answering.
        raw = xmlrpc.client.ServerProxy(self.url('pool-a'))

        def refused():
            try:
                raw.pool.get_all('x')
            except ConnectionRefusedError:
                return True
            except CONNECTION_ERRORS:
                return False
            return False
        # Refused once the restart itself has begun (its epoch counts).
        self.poll(lambda: pool.epoch > epoch and refused(), timeout=10,
                  what='pool-a to refuse connections')
        # The kept-alive connection of before is gone too.
        self.assertRaises(CONNECTION_ERRORS, proxy.pool.get_all,
                          self.session.handle)
        self.assertTrue(done.wait(30))
        self.assertStillServing()

    def test_migration_in_flight_is_undone_and_its_task_gone(self):
        vm, small, large, vif, task, before = self.slow_migration_to_b()
        self.assertNotEqual(set(), self.vdi_set(self.api_b),
                            'the copy had not started in pool-b')
        self.restart()
        self.fresh_controls()
        # The task is not persisted: gone with the process.
        self.assertXapiError(['HANDLE_INVALID', 'task', task],
                             self.api.task.get_record, task)
        self.assertEqual([], self.api.task.get_all())
        # The guest ran on at home and still writes; nothing is left over.
        self.assertUnchanged(vm, before)
        self.assertEqual({}, self.api.VM.get_current_operations(vm))
        for vdi in (small, large):
            self.assertEqual({}, self.api.VDI.get_current_operations(vdi))
        self.wait_writes(vm)
        self.ctl.configure(bandwidth=0)
        # The VM can move again.
        uuid = self.api.VM.get_uuid(vm)
        self.migrate(vm, self.dest_b(), self.to_ext_b(small, large),
                     {vif: self.net_b})
        self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0', '1'])

    def test_destination_restart_breaks_the_mirror(self):
        vm, small, large, vif, task, before = self.slow_migration_to_b()
        self.restart('pool-b')
        rec = self.wait_task(task)
        self.assertEqual('failure', rec['status'])
        self.assertEqual(['MIRROR_FAILED', small], rec['error_info'])
        self.fresh_controls()
        self.ctl.configure(bandwidth=0)
        self.assertRolledBack(vm, before)

    def test_vdi_copy_in_flight_leaves_no_copy(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 16 * MiB, 64)],
                                     vif=False, start=False)
        vdis = self.vdi_set()
        self.ctl.configure(bandwidth=2 * MiB)
        # VDI.copy is not throttled by the migration link: slow it by size.
        task = self.api.Async.VDI.copy(vdi, self.lvm())
        self.restart()
        self.fresh_controls()
        self.assertXapiError(['HANDLE_INVALID', 'task', task],
                             self.api.task.get_record, task)
        # Finished before the restart or undone by it: never half a copy.
        after = self.vdi_set()
        self.assertTrue(after == vdis or len(after - vdis) == 1, after)
        for new in after - vdis:
            self.assertEqual(self.checksum(vdi), self.checksum(new))

    def test_guest_keeps_running(self):
        vm, small, large, vif = self.writing_vm(vif=False)
        uuid = self.api.VM.get_uuid(vm)
        self.restart(down=0.2)
        self.fresh_controls()
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertEqual(self.host_a, self.api.VM.get_resident_on(vm))
        self.wait_writes(uuid)
        self.stop_and_check(uuid, devices=['0', '1'], written=True)

    def test_restart_after_the_point_of_no_return(self):
        vm, small, large, vif = self.writing_vm()
        uuid = self.api.VM.get_uuid(vm)
        self.ctl.fault_inject('finalize', action='toolstack_restart')
        task = self.migrate_async(vm, self.dest_b(),
                                  self.to_ext_b(small, large),
                                  {vif: self.net_b})
        self.wait_lost(task, ['HANDLE_INVALID', 'task', task])
        self.fresh_controls()
        # The VM moved all the same: it runs in pool-b only, on its disks
        # there; nothing of it is left in pool-a.
        self.assertIsNone(self.vm_in(uuid, self.api))
        new = self.api_b.VM.get_by_uuid(uuid)
        self.assertEqual('Running', self.api_b.VM.get_power_state(new))
        self.assertEqual(set(), self.vdi_set())
        self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0', '1'])

    def test_restart_at_a_point_before_it(self):
        vm, small, large, vif = self.writing_vm()
        before = self.state(vm)
        self.ctl.fault_inject('copy', percent=50, action='toolstack_restart')
        task = self.migrate_async(vm, self.dest_b(),
                                  self.to_ext_b(small, large),
                                  {vif: self.net_b})
        self.wait_lost(task)
        self.fresh_controls()
        self.assertRolledBack(vm, before)

    def test_bad_requests(self):
        self.assertRaises(control.ControlError, self.ctl.fault_inject,
                          'mirror', action='toolstack_restart')
        self.assertRaises(control.ControlError, self.ctl.fault_inject,
                          'copy', action='reboot')
        self.assertRaises(control.ControlError, self.ctl.toolstack_restart,
                          pool='pool-z')
        self.assertRaises(control.ControlError, self.ctl.toolstack_restart,
                          down=-1)
        self.assertRaises(control.ControlError, self.ctl.call,
                          'toolstack_restart', wat=1)
        self.assertStillServing()


class TestMasterMoves(FieldTestCase):

    topology = simhelpers.two_host_topology('pool-a')

    def setUp(self):
        super().setUp()
        self.old_url = self.url('pool-a')
        self.host_a2 = [h for h in self.api.host.get_all()
                        if h != self.host_a][0]
        self.address2 = self.api.host.get_address(self.host_a2)

    def move(self):
        answer = self.ctl_b.designate_new_master(self.host_a2,
                                                 pool='pool-a')
        self.assertNotEqual(self.old_url, answer['url'])
        return answer

    def session_at(self, url):
        """A XenAPI session at ``url`` (the new master), closed at cleanup."""
        new = XenAPI.Session(url)
        new.login_with_password(self.simfix.username, self.simfix.password,
                                '1.0', 'tests')
        self.addCleanup(self._close, new)
        return new

    def test_old_master_answers_host_is_slave(self):
        handle = self.session.handle
        answer = self.move()
        old = xmlrpc.client.ServerProxy(self.old_url)
        self.addCleanup(old('close'))
        # Sessions of before are gone, on either host.
        self.assertFailure(['SESSION_INVALID', handle],
                           old.VM.get_all(handle))
        self.assertFailure(
            ['HOST_IS_SLAVE', self.address2],
            old.session.login_with_password(self.simfix.username,
                                            self.simfix.password))
        new = self.session_at(answer['url'])
        pool = new.xenapi.pool.get_all()[0]
        self.assertEqual(self.host_a2, new.xenapi.pool.get_master(pool))
        # XenAPI's own re-login on the old master gets the redirect.
        exc = self.assertRaises(XenAPI.Failure, self.api.pool.get_all)
        self.assertEqual(['HOST_IS_SLAVE', self.address2], exc.details)

    def test_the_old_master_serves_only_its_local_sessions(self):
        answer = self.move()
        new = self.session_at(answer['url'])
        old = xmlrpc.client.ServerProxy(self.old_url)
        self.addCleanup(old('close'))
        # A session of the pool, used at a member: HOST_IS_SLAVE.
        self.assertFailure(['HOST_IS_SLAVE', self.address2],
                           old.pool.get_all(new.handle))
        local = old.session.slave_local_login_with_password(
            self.simfix.username, self.simfix.password)['Value']
        self.assertEqual('Success', old.pool.get_all(local)['Status'])

    def test_migrate_receive_names_the_new_master(self):
        answer = self.move()
        new = self.session_at(answer['url'])
        net = new.xenapi.network.get_all()[0]
        dest = new.xenapi.host.migrate_receive(self.host_a, net, {})
        self.assertEqual(answer['url'], dest['master'])

    def test_running_vm_stays(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 8 * MiB, 8)], vif=False)
        uuid = self.api.VM.get_uuid(vm)
        self.write(vm, ['0'])
        self.wait_writes(vm)
        answer = self.move()
        new = self.session_at(answer['url'])
        self.assertEqual('Running', new.xenapi.VM.get_power_state(vm))
        ctl = control.Control(answer['url'], new.handle)
        self.wait_writes(uuid, ctl=ctl)
        self.stop_and_check(uuid, ctl=ctl, devices=['0'])

    def test_through_the_xenapi(self):
        pool = self.api.pool.get_all()[0]
        # The master already: nothing happens.
        self.api.pool.designate_new_master(self.host_a)
        self.assertEqual(self.host_a, self.api.pool.get_master(pool))
        self.api.pool.designate_new_master(self.host_a2)
        old = xmlrpc.client.ServerProxy(self.old_url)
        self.addCleanup(old('close'))

        def redirected():
            try:
                answer = old.session.login_with_password(
                    self.simfix.username, self.simfix.password)
            except CONNECTION_ERRORS:
                return False  # restarting
            return answer.get('ErrorDescription') == ['HOST_IS_SLAVE',
                                                      self.address2]
        self.poll(redirected, what='the old master to redirect')
        new = XenAPI.Session('http://%s:%d/' % (
            self.address2, self.sim.pools['pool-a'].port))

        def login():
            try:
                new.login_with_password(self.simfix.username,
                                        self.simfix.password, '1.0',
                                        'tests')
            except CONNECTION_ERRORS:
                return False
            return True
        self.poll(login, what='the new master to serve')
        self.addCleanup(self._close, new)
        self.assertEqual(self.host_a2, new.xenapi.pool.get_master(pool))

    def test_a_host_without_an_address_of_its_own_cannot_take_over(self):
        self.assertRaises(control.ControlError,
                          self.ctl_b.designate_new_master, self.host_a,
                          pool='pool-a')
        self.assertRaises(control.ControlError,
                          self.ctl_b.designate_new_master, 'no-such-host',
                          pool='pool-a')
        self.assertStillServing()


class TestScanFails(FieldTestCase):

    def test_sm_error_40_then_scans_again(self):
        sr = self.ext()
        self.ctl.fault_inject('sr_scan')
        self.assertXapiError(['SR_BACKEND_FAILURE_40', '',
                              'The SR scan failed ', ''],
                             self.api.SR.scan, sr)
        self.api.SR.scan(sr)
        self.assertEqual([], self.ctl.call('faults'))

    def test_during_a_move(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 8 * MiB, 16)],
                                     vif=False)
        self.write(vm, ['0'])
        self.ctl.configure(bandwidth=2 * MiB)
        task = self.api.Async.VDI.pool_migrate(vdi, self.lvm(), {})
        self.wait_progress(task)
        self.ctl.fault_inject('sr_scan', times=2)
        for sr in (self.ext(), self.lvm()):
            self.assertXapiError(['SR_BACKEND_FAILURE_40', '',
                                  'The SR scan failed ', ''],
                                 self.api.SR.scan, sr)
        self.ctl.configure(bandwidth=0)
        # The move itself is not disturbed.
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        self.stop_and_check(vm, devices=['0'])


class TestFailedToCooperate(FieldTestCase):

    def test_vdi_pool_migrate_is_undone(self):
        ext, lvm = self.ext(), self.lvm()
        vm, (vdi0, vdi1), _ = self.make_vm(
            [(ext, 8 * MiB, 16), (ext, 8 * MiB, 8)], vif=False)
        uuid = self.api.VM.get_uuid(vm)
        vbd0 = self.api.VDI.get_VBDs(vdi0)[0]
        self.write(vm, ['0', '1'])
        self.wait_writes(vm)
        before = self.vdi_set()
        self.ctl.fault_inject('cooperate')
        task = self.api.Async.VDI.pool_migrate(vdi0, lvm, {})
        rec = self.wait_task(task)
        self.assertEqual('failure', rec['status'])
        self.assertEqual(
            ['INTERNAL_ERROR',
             'Xenops_interface.Xenopsd_error([S(Vms_failed_to_cooperate);'
             '[S(%s)]])' % uuid], rec['error_info'])
        # The copy on lvm is destroyed; the VM runs on the source disk.
        self.assertEqual(vdi0, self.api.VBD.get_VDI(vbd0))
        self.assertEqual(before, self.vdi_set())
        self.assertEqual([], self.api.SR.get_VDIs(lvm))
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertEqual({}, self.api.VM.get_current_operations(vm))
        self.assertEqual([], self.ctl.call('faults'))
        self.wait_writes(vm)
        # A second attempt goes through.
        task = self.api.Async.VDI.pool_migrate(vdi0, lvm, {})
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        self.stop_and_check(vm, devices=['0', '1'])

    def test_cross_pool_is_undone(self):
        vm, small, large, vif = self.writing_vm()
        before = self.state(vm)
        self.ctl.fault_inject('cooperate')
        error = self.migrate_fails(vm, self.dest_b(),
                                   self.to_ext_b(small, large),
                                   {vif: self.net_b})
        self.assertEqual('INTERNAL_ERROR', error[0])
        self.assertIn('Vms_failed_to_cooperate', error[1])
        self.assertRolledBack(vm, before)


class TestConnectionReset(FieldTestCase):

    def _moving_vm(self):
        ext, lvm = self.ext(), self.lvm()
        vm, (vdi,), _ = self.make_vm([(ext, 8 * MiB, 16)], vif=False)
        self.write(vm, ['0'])
        self.wait_writes(vm)
        return vm, vdi, lvm, self.api.VDI.get_VBDs(vdi)[0]

    def test_the_wait_for_an_ended_task_is_reset(self):
        vm, vdi, lvm, vbd = self._moving_vm()
        # Python's XML-RPC client sends a call again once after a reset:
        # two resets reach its caller.
        self.ctl.fault_inject('connection_reset', times=2)
        task = self.api.Async.VDI.pool_migrate(vdi, lvm, {})
        proxy = self.raw()
        handle = self.session.handle
        token = getattr(proxy.event, 'from')(handle, ['task'], '',
                                             0.0)['Value']['token']

        def wait():
            deadline = time.monotonic() + 30
            token_now = token
            while time.monotonic() < deadline:
                answer = getattr(proxy.event, 'from')(
                    handle, ['task/%s' % task], token_now, 5.0)
                token_now = answer['Value']['token']
        self.assertRaises(CONNECTION_ERRORS, wait)
        self.assertEqual([], self.ctl.call('faults'))
        # The task ended all the same: a new connection reads it.
        rec = self.api.task.get_record(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        new = migrate_base.decode_result(rec['result'])
        self.assertEqual(new, self.api.VBD.get_VDI(vbd))
        self.assertEqual(lvm, self.api.VDI.get_SR(new))
        self.stop_and_check(vm, devices=['0'])

    def test_a_synchronous_call_did_its_work(self):
        vm, vdi, lvm, vbd = self._moving_vm()
        self.ctl.fault_inject('connection_reset', method='VDI.pool_migrate',
                              times=2)
        proxy = self.raw()
        self.assertRaises(CONNECTION_ERRORS, proxy.VDI.pool_migrate,
                          self.session.handle, vdi, lvm, {})
        new = self.api.VBD.get_VDI(vbd)
        self.assertNotEqual(vdi, new)
        self.assertEqual(lvm, self.api.VDI.get_SR(new))
        self.stop_and_check(vm, devices=['0'])

    def test_the_client_sending_again_is_told_the_vdi_is_gone(self):
        # One reset: Python's XML-RPC client sends the call again, and
        # the VDI it names has moved meanwhile.
        vm, vdi, lvm, vbd = self._moving_vm()
        self.ctl.fault_inject('connection_reset', method='VDI.pool_migrate')
        self.assertFailure(['HANDLE_INVALID', 'VDI', vdi],
                           self.raw().VDI.pool_migrate(self.session.handle,
                                                       vdi, lvm, {}))
        new = self.api.VBD.get_VDI(vbd)
        self.assertEqual(lvm, self.api.VDI.get_SR(new))
        self.stop_and_check(vm, devices=['0'])

    def test_other_calls_are_answered(self):
        self.ctl.fault_inject('connection_reset')
        # No task has ended yet: a wait is answered.
        self.assertEqual('Success', self.raw_call(
            'task.get_all', self.session.handle)['Status'])
        self.assertEqual(1, len(self.ctl.call('faults')))

    def test_bad_fault_requests(self):
        self.assertRaises(control.ControlError, self.ctl.fault_inject,
                          'connection_reset', code='INTERNAL_ERROR')
        self.assertRaises(control.ControlError, self.ctl.fault_inject,
                          'copy', method='VDI.copy')
        self.assertRaises(control.ControlError, self.ctl.fault_inject,
                          'no_such_point')


class TestCli(test_cli.ServeTestCase):
    """The same, from a shell: ``xapi-sim fault|toolstack-restart|...``."""

    topology = simhelpers.two_host_topology('pool-a')

    def test_fault_then_clear(self):
        code, out, err = self.run_cli('fault', 'sr_scan', '--times', '2')
        self.assertEqual(0, code, err)
        self.assertEqual(['sr_scan'], [f['point'] for f in json.loads(out)])
        sr = self.session.xenapi.SR.get_all()[0]
        exc = self.assertRaises(XenAPI.Failure, self.session.xenapi.SR.scan,
                                sr)
        self.assertEqual('SR_BACKEND_FAILURE_40', exc.details[0])
        code, out, err = self.run_cli('fault', '--clear')
        self.assertEqual((0, []), (code, json.loads(out)), err)
        self.session.xenapi.SR.scan(sr)

    def test_toolstack_restart(self):
        handle = self.session.handle
        code, out, err = self.run_cli('toolstack-restart', '--down', '0.2')
        self.assertEqual(0, code, err)
        self.assertEqual('pool-a', json.loads(out)['pool'])
        raw = xmlrpc.client.ServerProxy(self.url)
        self.addCleanup(raw('close'))
        self.assertEqual(['SESSION_INVALID', handle],
                         raw.VM.get_all(handle)['ErrorDescription'])

    def test_designate_new_master(self):
        code, out, err = self.run_cli('designate-new-master', '--host',
                                      'pool-a-host2')
        self.assertEqual(0, code, err)
        answer = json.loads(out)
        self.assertNotEqual(self.url, answer['url'])
        raw = xmlrpc.client.ServerProxy(self.url)
        self.addCleanup(raw('close'))
        self.assertEqual(
            'HOST_IS_SLAVE',
            raw.session.login_with_password(
                simmod.DEFAULT_USERNAME,
                simmod.DEFAULT_PASSWORD)['ErrorDescription'][0])

    def test_bad_input(self):
        code, out, err = self.run_cli('fault')
        self.assertEqual((2, ''), (code, out))
        self.assertIn('give a POINT', err)
        code, out, err = self.run_cli('fault', 'nowhere')
        self.assertEqual((1, ''), (code, out))
        self.assertIn("unknown fault point 'nowhere'", err)
        code, out, err = self.run_cli('designate-new-master', '--host',
                                      'pool-a-host1')
        self.assertEqual(1, code)
        self.assertIn('is the master of pool-a already', err)
        self.assertNotIn('Traceback', err)
