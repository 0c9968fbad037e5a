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

"""Hosts as operators meet them: host.disable / enable (maintenance), a
host that lost power (HOST_OFFLINE, VM.power_state_reset, evacuation from
a shared SR), and the boot_time and agent_start_time xapi reports."""

import re
import socket
import time

from tests.functional import simhelpers
from tests.functional.xapi_sim import base
from xapi_sim import control
from xapi_sim import sim as simmod

MiB = base.MiB
NULL = base.NULL
TIME = re.compile(r'^\d{10,}\.$')


class HostTestCase(base.SimulatorTestCase):

    topology = simhelpers.two_hosts_shared_nfs()

    def setUp(self):
        super().setUp()
        self.ctl = self.control()
        self.host1 = self.api.host.get_by_name_label('pool-a-host1')[0]
        self.host2 = self.api.host.get_by_name_label('pool-a-host2')[0]
        self.nfs = self.sr_named('Shared (nfs)')

    def shared_vm(self, host=None, name='vm'):
        """A VM with one disk on the shared SR and a VIF; started."""
        vm = self.create_vm(name)
        vdi = self.create_vdi(self.nfs, 8 * MiB, name='%s disk' % name)
        self.create_vbd(vm, vdi, '0')
        self.create_vif(vm, self.network())
        if host is not None:
            self.api.VM.start_on(vm, host, False, False)
        return vm, vdi

    def live(self, host):
        return self.api.host_metrics.get_live(
            self.api.host.get_metrics(host))

    def writes(self, vm):
        return sum(d['writes'] for d in self.ctl.guest_stats(vm)['disks'])


class TestDisable(HostTestCase):

    def test_disabled_host_refuses_new_vms(self):
        vm, _ = self.shared_vm()
        self.api.host.disable(self.host2)
        self.assertFalse(self.api.host.get_enabled(self.host2))
        self.assertXapiError(['HOST_DISABLED', self.host2],
                             self.api.VM.assert_can_boot_here, vm,
                             self.host2)
        self.assertXapiError(['HOST_DISABLED', self.host2],
                             self.api.VM.start_on, vm, self.host2, False,
                             False)
        self.assertEqual('Halted', self.api.VM.get_power_state(vm))
        # Placement skips it, even for a VM whose affinity it is.
        self.api.VM.set_affinity(vm, self.host2)
        self.api.VM.start(vm, False, False)
        self.assertEqual(self.host1, self.api.VM.get_resident_on(vm))
        # Nor can a running VM move there.
        self.assertXapiError(['HOST_DISABLED', self.host2],
                             self.api.VM.pool_migrate, vm, self.host2, {})
        self.api.host.enable(self.host2)
        self.assertTrue(self.api.host.get_enabled(self.host2))
        self.api.VM.pool_migrate(vm, self.host2, {})
        self.assertEqual(self.host2, self.api.VM.get_resident_on(vm))

    def test_running_vms_stay_and_may_move_within_the_host(self):
        vm, _ = self.shared_vm(self.host2)
        self.api.host.disable(self.host2)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertEqual(self.host2, self.api.VM.get_resident_on(vm))
        # A local migration is no new VM for the host.
        self.api.VM.assert_can_boot_here(vm, self.host2)
        self.api.VM.clean_reboot(vm)
        self.assertEqual(self.host2, self.api.VM.get_resident_on(vm))

    def test_resume_on_a_disabled_host_is_refused(self):
        vm, _ = self.shared_vm(self.host1)
        self.api.pool.set_suspend_image_SR(self.api.pool.get_all()[0],
                                           self.nfs)
        self.api.VM.suspend(vm)
        self.api.host.disable(self.host2)
        self.assertXapiError(['HOST_DISABLED', self.host2],
                             self.api.VM.resume_on, vm, self.host2, False,
                             False)
        self.assertEqual('Suspended', self.api.VM.get_power_state(vm))
        self.api.VM.resume(vm, False, False)
        self.assertEqual(self.host1, self.api.VM.get_resident_on(vm))

    def test_no_enabled_host_left(self):
        vm, _ = self.shared_vm()
        self.api.host.disable(self.host1)
        self.api.host.disable(self.host2)
        self.assertXapiError(['NO_HOSTS_AVAILABLE'], self.api.VM.start, vm,
                             False, False)
        # Disabling again changes nothing; enabling one host is enough.
        self.api.host.disable(self.host2)
        self.api.host.enable(self.host2)
        self.api.host.enable(self.host2)
        self.api.VM.start(vm, False, False)
        self.assertEqual(self.host2, self.api.VM.get_resident_on(vm))

    def test_disable_takes_a_bool_auto_enable(self):
        self.assertXapiError(['FIELD_TYPE_ERROR', 'auto_enable'],
                             self.api.host.disable, self.host2, 'no')
        self.assertTrue(self.api.host.get_enabled(self.host2))


class TestToolstackRestart(HostTestCase):

    def restart(self):
        self.ctl.toolstack_restart()
        # The test's session went with the toolstack: log in again.
        self.session = self.login('pool-a')
        self.api = self.session.xenapi
        self.ctl = self.control()

    def test_a_plain_disable_does_not_survive_a_restart(self):
        self.api.host.disable(self.host1)
        self.restart()
        self.assertTrue(self.api.host.get_enabled(self.host1))

    def test_disable_without_auto_enable_does(self):
        self.api.host.disable(self.host1, False)
        self.restart()
        self.assertFalse(self.api.host.get_enabled(self.host1))
        # A second disable, even with auto_enable, does not undo it.
        self.api.host.disable(self.host1, True)
        self.restart()
        self.assertFalse(self.api.host.get_enabled(self.host1))
        self.api.host.enable(self.host1)
        self.restart()
        self.assertTrue(self.api.host.get_enabled(self.host1))

    def test_agent_start_time_moves_boot_time_does_not(self):
        before = self.api.host.get_other_config(self.host1)
        self.assertRegex(before['boot_time'], TIME)
        self.assertRegex(before['agent_start_time'], TIME)
        self.assertLessEqual(float(before['boot_time']),
                             float(before['agent_start_time']))
        self.restart()
        after = self.api.host.get_other_config(self.host1)
        self.assertEqual(before['boot_time'], after['boot_time'])
        self.assertGreater(float(after['agent_start_time']),
                           float(before['agent_start_time']))
        # Only the master's toolstack restarted.
        self.assertEqual(
            self.sim.pools['pool-a'].db.get('host', self.host2)[
                'other_config']['agent_start_time'],
            self.api.host.get_other_config(self.host2)['agent_start_time'])


class TestDeadHost(HostTestCase):

    def setUp(self):
        super().setUp()
        self.vm, self.vdi = self.shared_vm(self.host2)
        self.ctl.workload_start(self.vm, '0', rate=0, block_size=4096)
        self.poll(lambda: self.writes(self.vm) > 20, what='guest writes')

    def kill(self):
        answer = self.ctl.host_live('pool-a-host2', False)
        self.assertFalse(answer['live'])
        return answer

    def test_reset_is_refused_while_the_host_is_live(self):
        self.assertXapiError(['HOST_IS_LIVE', self.host2],
                             self.api.VM.power_state_reset, self.vm)
        on_master, _ = self.shared_vm(self.host1, name='on-master')
        self.assertXapiError(['DOMAIN_EXISTS', on_master],
                             self.api.VM.power_state_reset, on_master)
        dom0 = [v for v in self.api.VM.get_all()
                if self.api.VM.get_is_control_domain(v)][0]
        self.assertXapiError(['CANNOT_RESET_CONTROL_DOMAIN', dom0],
                             self.api.VM.power_state_reset, dom0)
        self.assertEqual('Running', self.api.VM.get_power_state(self.vm))
        self.assertEqual('Running',
                         self.api.VM.get_power_state(on_master))

    def test_a_dead_host_keeps_its_vms_in_the_database(self):
        self.kill()
        self.assertFalse(self.live(self.host2))
        self.assertTrue(self.live(self.host1))
        self.assertEqual('Running', self.api.VM.get_power_state(self.vm))
        self.assertEqual(self.host2, self.api.VM.get_resident_on(self.vm))
        # Its guest no longer writes.
        stats = self.ctl.guest_stats(self.vm)
        self.assertFalse(stats['running'])
        writes = self.writes(self.vm)
        time.sleep(0.3)
        self.assertEqual(writes, self.writes(self.vm))

    def test_what_a_dead_host_answers(self):
        self.kill()
        vif = self.api.VM.get_VIFs(self.vm)[0]
        for call, args in ((self.api.VM.clean_shutdown, ()),
                           (self.api.VM.hard_shutdown, ()),
                           (self.api.VM.hard_reboot, ()),
                           (self.api.VM.suspend, ()),
                           (self.api.VM.pause, ())):
            self.assertXapiError(['HOST_OFFLINE', self.host2], call,
                                 self.vm, *args)
        self.assertXapiError(['HOST_OFFLINE', self.host2],
                             self.api.VIF.unplug, vif)
        self.assertXapiError(['HOST_OFFLINE', self.host2],
                             self.api.host.disable, self.host2)
        self.assertXapiError(['HOST_OFFLINE', self.host2],
                             self.api.host.enable, self.host2)
        other, _ = self.shared_vm(name='other')
        self.assertXapiError(['HOST_NOT_LIVE'], self.api.VM.start_on,
                             other, self.host2, False, False)
        self.assertXapiError(['HOST_NOT_LIVE'],
                             self.api.VM.assert_can_boot_here, other,
                             self.host2)
        # Placement goes elsewhere.
        self.api.VM.start(other, False, False)
        self.assertEqual(self.host1, self.api.VM.get_resident_on(other))
        self.assertEqual('Running', self.api.VM.get_power_state(self.vm))

    def test_evacuate_from_shared_storage(self):
        self.kill()
        self.api.VM.power_state_reset(self.vm)
        self.assertEqual('Halted', self.api.VM.get_power_state(self.vm))
        self.assertEqual(NULL, self.api.VM.get_resident_on(self.vm))
        for vbd in self.api.VM.get_VBDs(self.vm):
            self.assertFalse(self.api.VBD.get_currently_attached(vbd))
        for vif in self.api.VM.get_VIFs(self.vm):
            self.assertFalse(self.api.VIF.get_currently_attached(vif))
        self.assertNotIn(self.vm, self.api.host.get_resident_VMs(self.host2))
        # It starts on the surviving host, on the bytes its guest wrote.
        self.api.VM.start(self.vm, False, False)
        self.assertEqual(self.host1, self.api.VM.get_resident_on(self.vm))
        results = self.ctl.guest_check(self.vm)
        self.assertEqual(1, len(results))
        self.assertTrue(results[0]['ok'], results[0])
        self.assertGreater(results[0]['distinct_offsets'], 0)
        # The dead host coming back does not take the VM back.
        answer = self.ctl.host_live('pool-a-host2', True)
        self.assertTrue(answer['live'])
        self.assertTrue(self.live(self.host2))
        self.assertEqual('Running', self.api.VM.get_power_state(self.vm))
        self.assertEqual(self.host1, self.api.VM.get_resident_on(self.vm))

    def test_a_host_back_from_the_dead_has_rebooted(self):
        before = self.api.host.get_other_config(self.host2)
        self.kill()
        answer = self.ctl.host_live(self.host2, True)
        after = self.api.host.get_other_config(self.host2)
        self.assertEqual(after, answer['other_config'])
        self.assertRegex(after['boot_time'], TIME)
        self.assertGreater(float(after['boot_time']),
                           float(before['boot_time']))
        self.assertGreater(float(after['agent_start_time']),
                           float(before['agent_start_time']))
        # Its VMs died with it: xapi's start-up resets them.
        self.assertEqual('Halted', self.api.VM.get_power_state(self.vm))
        self.assertEqual(NULL, self.api.VM.get_resident_on(self.vm))
        self.assertFalse(self.ctl.guest_stats(self.vm)['running'])
        self.api.VM.start_on(self.vm, self.host2, False, False)
        self.assertEqual('Running', self.api.VM.get_power_state(self.vm))

    def test_a_persistent_disable_outlives_the_power_loss(self):
        self.api.host.disable(self.host2, False)
        self.kill()
        self.ctl.host_live(self.host2, True)
        self.assertFalse(self.api.host.get_enabled(self.host2))
        self.api.host.enable(self.host2)
        self.assertTrue(self.api.host.get_enabled(self.host2))

    def test_a_dead_member_answers_no_connection(self):
        address = self.api.host.get_address(self.host2)
        port = self.sim.pools['pool-a'].port

        def connects():
            try:
                socket.create_connection((address, port), timeout=5).close()
                return True
            except OSError:
                return False
        self.assertTrue(connects())
        self.kill()
        self.assertFalse(connects())
        self.ctl.host_live(self.host2, True)
        self.assertTrue(connects())

    def test_bad_requests(self):
        self.assertRaises(control.ControlError, self.ctl.host_live,
                          'pool-a-host1', False)
        self.assertRaises(control.ControlError, self.ctl.host_live,
                          'no-such-host', False)
        self.assertRaises(control.ControlError, self.ctl.call, 'host_live',
                          host='pool-a-host2', live='no')
        self.assertTrue(self.live(self.host2))


class TestSingleHost(base.SimulatorTestCase):
    """The default topology: every pool has one host, its master."""

    topology = simmod.DEFAULT_TOPOLOGY

    def test_new_hosts_report_their_times(self):
        host = self.api.host.get_all()[0]
        other = self.api.host.get_other_config(host)
        self.assertRegex(other['boot_time'], TIME)
        self.assertRegex(other['agent_start_time'], TIME)
        self.assertLess(abs(float(other['agent_start_time']) - time.time()),
                        600)
