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

"""VM power operations as xapi checks them: blocked operations, memory
constraints, templates and snapshots, suspend and resume with a writing
guest, memory and VCPU settings, and what a running VM brings (metrics,
guest metrics, consoles)."""

import time

from tests.functional.xapi_sim import base
from tests.functional.xapi_sim import test_host_metrics

MiB = base.MiB
GiB = 1 << 30
UNIT = 4096


class VMTestCase(base.SimulatorTestCase):

    def setUp(self):
        super().setUp()
        self.host = self.api.pool.get_master(self.api.pool.get_all()[0])


class TestCreateAndBlocked(VMTestCase):

    def test_create_checks_affinity(self):
        bad = 'OpaqueRef:00000000-0000-0000-0000-000000000001'
        record = {'name_label': 'a', 'memory_static_max': str(256 * MiB),
                  'memory_dynamic_max': str(256 * MiB),
                  'memory_dynamic_min': str(256 * MiB),
                  'memory_static_min': str(256 * MiB), 'VCPUs_max': '1',
                  'VCPUs_at_startup': '1', 'is_a_template': False}
        before = set(self.api.VM.get_all())
        self.assertXapiError(['HANDLE_INVALID', 'host', bad],
                             self.api.VM.create, dict(record, affinity=bad))
        self.assertEqual(before, set(self.api.VM.get_all()))
        vm = self.api.VM.create(dict(record, affinity=base.NULL))
        self.assertEqual(base.NULL, self.api.VM.get_affinity(vm))
        vm = self.api.VM.create(dict(record, affinity=self.host))
        self.assertEqual(self.host, self.api.VM.get_affinity(vm))
        self.api.VM.start(vm, False, False)
        self.assertEqual(self.host, self.api.VM.get_resident_on(vm))

    def test_create_gives_metrics_and_derives_the_domain_type(self):
        vm = self.create_vm()
        metrics = self.api.VM.get_metrics(vm)
        self.assertIn(metrics, self.api.VM_metrics.get_all())
        self.assertEqual('0', self.api.VM_metrics.get_memory_actual(metrics))
        self.assertEqual(base.NULL, self.api.VM.get_guest_metrics(vm))
        self.assertEqual('hvm', self.api.VM.get_domain_type(vm))
        pv = self.api.VM.create({
            'name_label': 'pv', 'memory_static_max': str(256 * MiB),
            'memory_dynamic_max': str(256 * MiB),
            'memory_dynamic_min': str(256 * MiB),
            'memory_static_min': str(256 * MiB), 'VCPUs_max': '1',
            'VCPUs_at_startup': '1', 'HVM_boot_policy': '',
            'PV_bootloader': 'pygrub'})
        self.assertEqual('pv', self.api.VM.get_domain_type(pv))
        self.api.VM.destroy(vm)
        self.assertNotIn(metrics, self.api.VM_metrics.get_all())

    def test_blocked_operation_comes_first(self):
        vm, _ = self.vm_with_disks([4 * MiB], start=False)
        self.api.VM.add_to_blocked_operations(vm, 'start', 'nova-locked')
        self.assertXapiError(['OPERATION_BLOCKED', vm, 'nova-locked'],
                             self.api.VM.start, vm, False, False)
        # start_on is its own operation.
        self.api.VM.add_to_blocked_operations(vm, 'start_on', 'x')
        self.assertXapiError(['OPERATION_BLOCKED', vm, 'x'],
                             self.api.VM.start_on, vm, self.host, False,
                             False)
        # Checked before the power state.
        self.api.VM.add_to_blocked_operations(vm, 'clean_shutdown', 'y')
        self.assertXapiError(['OPERATION_BLOCKED', vm, 'y'],
                             self.api.VM.clean_shutdown, vm)
        self.assertEqual('Halted', self.api.VM.get_power_state(vm))
        self.api.VM.remove_from_blocked_operations(vm, 'start')
        self.api.VM.start(vm, False, False)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))


class TestMemoryConstraints(VMTestCase):

    def test_start_refuses_ranges_that_cannot_be_coerced(self):
        vm, _ = self.vm_with_disks([4 * MiB], start=False)
        self.api.VM.set_memory_static_min(vm, str(512 * MiB))
        self.assertXapiError(['MEMORY_CONSTRAINT_VIOLATION'],
                             self.api.VM.start, vm, False, False)
        self.assertXapiError(['MEMORY_CONSTRAINT_VIOLATION'],
                             self.api.VM.start_on, vm, self.host, False,
                             False)
        self.api.VM.set_memory_static_min(vm, str(256 * MiB))
        self.api.VM.set_memory_dynamic_min(vm, str(300 * MiB))
        self.assertXapiError(['MEMORY_CONSTRAINT_VIOLATION'],
                             self.api.VM.start, vm, False, False)
        self.assertEqual('Halted', self.api.VM.get_power_state(vm))
        self.api.VM.set_memory_dynamic_min(vm, str(256 * MiB))
        self.api.VM.start(vm, False, False)

    def test_set_memory_limits(self):
        vm = self.create_vm()
        self.api.VM.set_memory_limits(vm, str(128 * MiB), str(1 * GiB),
                                      str(256 * MiB), str(512 * MiB))
        rec = self.api.VM.get_record(vm)
        self.assertEqual(
            [str(128 * MiB), str(256 * MiB), str(512 * MiB), str(GiB)],
            [rec['memory_static_min'], rec['memory_dynamic_min'],
             rec['memory_dynamic_max'], rec['memory_static_max']])
        before = int(rec['memory_overhead'])
        self.api.VM.set_memory_limits(vm, str(128 * MiB), str(8 * GiB),
                                      str(256 * MiB), str(512 * MiB))
        self.assertGreater(int(self.api.VM.get_memory_overhead(vm)), before)
        self.assertXapiError(['MEMORY_CONSTRAINT_VIOLATION_ORDER'],
                             self.api.VM.set_memory_limits, vm,
                             str(128 * MiB), str(256 * MiB), str(512 * MiB),
                             str(512 * MiB))
        self.api.VM.set_memory_limits(vm, str(256 * MiB), str(256 * MiB),
                                      str(256 * MiB), str(256 * MiB))
        self.api.VM.start(vm, False, False)
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'halted', 'running'],
                             self.api.VM.set_memory_limits, vm,
                             str(256 * MiB), str(256 * MiB), str(256 * MiB),
                             str(256 * MiB))

    def test_vcpus(self):
        vm = self.create_vm()
        self.api.VM.set_VCPUs_max(vm, '4')
        self.api.VM.set_VCPUs_at_startup(vm, '2')
        self.assertEqual(('4', '2'), (self.api.VM.get_VCPUs_max(vm),
                                      self.api.VM.get_VCPUs_at_startup(vm)))
        rule = 'VCPU values must satisfy: 0 < VCPUs_at_startup \u2264 ' \
               'VCPUs_max'
        self.assertXapiError(['INVALID_VALUE', rule, '1'],
                             self.api.VM.set_VCPUs_max, vm, '1')
        self.assertXapiError(['INVALID_VALUE', rule, '5'],
                             self.api.VM.set_VCPUs_at_startup, vm, '5')
        self.assertXapiError(['INVALID_VALUE', rule, '0'],
                             self.api.VM.set_VCPUs_at_startup, vm, '0')
        self.api.VM.start(vm, False, False)
        self.assertEqual('2', self.api.VM_metrics.get_VCPUs_number(
            self.api.VM.get_metrics(vm)))
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'halted', 'running'],
                             self.api.VM.set_VCPUs_max, vm, '8')


class TestSnapshots(VMTestCase):

    def test_snapshot_is_a_template_that_cannot_start(self):
        vm, _ = self.vm_with_disks([4 * MiB])
        snap = self.api.VM.snapshot(vm, 'snap')
        rec = self.api.VM.get_record(snap)
        self.assertTrue(rec['is_a_template'])
        self.assertTrue(rec['is_a_snapshot'])
        self.assertEqual(vm, rec['snapshot_of'])
        self.assertEqual('Halted', rec['power_state'])
        # xapi_vm_lifecycle.check_snapshot.
        self.assertXapiError(['VM_IS_SNAPSHOT', snap, 'start'],
                             self.api.VM.start, snap, False, False)
        self.assertXapiError(['VM_IS_SNAPSHOT', snap, 'start_on'],
                             self.api.VM.start_on, snap, self.host, False,
                             False)
        self.assertXapiError(['VM_IS_SNAPSHOT', snap, 'snapshot'],
                             self.api.VM.snapshot, snap, 'again')
        self.assertEqual('Halted', self.api.VM.get_power_state(snap))
        # The guests filter of nova's era leaves it out.
        found = self.api.VM.get_all_records_where(
            'field "is_a_template"="false" and '
            'field "is_control_domain"="false"')
        self.assertEqual([vm], list(found))
        self.api.VM.destroy(snap)

    def test_template_cannot_start_or_snapshot(self):
        vm = self.create_vm()
        self.api.VM.set_is_a_template(vm, True)
        self.assertXapiError(['VM_IS_TEMPLATE', vm, 'start'],
                             self.api.VM.start, vm, False, False)
        self.assertXapiError(['VM_IS_TEMPLATE', vm, 'snapshot'],
                             self.api.VM.snapshot, vm, 's')


class TestRunningVM(VMTestCase):

    def test_metrics_guest_metrics_and_consoles(self):
        vm = self.create_vm()
        self.create_vif(vm, self.network(), '0')
        self.create_vif(vm, self.network(), '1')
        self.api.VM.set_VCPUs_max(vm, '2')
        self.api.VM.set_VCPUs_at_startup(vm, '2')
        self.api.VM.start(vm, False, False)
        rec = self.api.VM.get_record(vm)
        metrics = self.api.VM_metrics.get_record(rec['metrics'])
        self.assertEqual(rec['memory_dynamic_max'], metrics['memory_actual'])
        self.assertEqual('2', metrics['VCPUs_number'])
        self.assertEqual(['running'], metrics['state'])
        self.assertGreater(metrics['start_time'].value, '2000')
        self.assertEqual('hvm', metrics['current_domain_type'])
        gm = self.api.VM_guest_metrics.get_record(rec['guest_metrics'])
        self.assertTrue(gm['live'])
        self.assertTrue(gm['os_version']['name'])
        self.assertIn('major', gm['PV_drivers_version'])
        self.assertTrue(gm['PV_drivers_up_to_date'])
        self.assertEqual({'0/ip', '0/ipv4/0', '1/ip', '1/ipv4/0'},
                         set(gm['networks']))
        self.assertEqual(1, len(rec['consoles']))
        console = self.api.console.get_record(rec['consoles'][0])
        self.assertEqual('rfb', console['protocol'])
        self.assertEqual(vm, console['VM'])
        address = self.api.host.get_address(self.host)
        self.assertEqual('https://%s/console?uuid=%s'
                         % (address, console['uuid']), console['location'])

        self.api.VM.clean_shutdown(vm)
        rec = self.api.VM.get_record(vm)
        self.assertEqual([], rec['consoles'])
        self.assertEqual({}, self.api.console.get_all_records_where(
            'field "VM"="%s"' % vm))
        self.assertFalse(self.api.VM_guest_metrics.get_live(
            rec['guest_metrics']))
        self.assertEqual('0', self.api.VM_metrics.get_memory_actual(
            rec['metrics']))
        # A new boot: the old guest metrics go, the agent reports anew.
        old_gm = rec['guest_metrics']
        self.api.VM.start(vm, False, False)
        new_gm = self.api.VM.get_guest_metrics(vm)
        self.assertNotEqual(old_gm, new_gm)
        self.assertNotIn(old_gm, self.api.VM_guest_metrics.get_all())

    def test_pv_guest_has_a_text_console_too(self):
        vm = self.create_vm()
        self.api.VM.set_domain_type(vm, 'pv')
        self.api.VM.start(vm, False, False)
        protocols = sorted(self.api.console.get_protocol(c)
                           for c in self.api.VM.get_consoles(vm))
        self.assertEqual(['rfb', 'vt100'], protocols)

    def test_reboots_keep_it_running_with_a_new_domain(self):
        vm, _ = self.vm_with_disks([4 * MiB])
        domid = int(self.api.VM.get_domid(vm))
        self.api.VM.clean_reboot(vm)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertGreater(int(self.api.VM.get_domid(vm)), domid)
        self.api.VM.pause(vm)
        self.api.VM.hard_reboot(vm)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'paused',
                              'running'], self.api.VM.unpause, vm)


class TestDevices(VMTestCase):

    def test_allowed_devices(self):
        vm, _ = self.vm_with_disks([4 * MiB, 4 * MiB], start=False)
        allowed = self.api.VM.get_allowed_VBD_devices(vm)
        self.assertEqual([str(i) for i in range(2, 255)], allowed)
        self.create_vif(vm, self.network(), '0')
        self.create_vif(vm, self.network(), '3')
        allowed = self.api.VM.get_allowed_VIF_devices(vm)
        self.assertEqual([str(i) for i in range(16) if i not in (0, 3)],
                         allowed)

    def test_vbd_create_defaults_and_checks(self):
        vm = self.create_vm()
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        vbd = self.api.VBD.create({'VM': vm, 'VDI': vdi,
                                   'userdevice': 'autodetect', 'mode': 'RW',
                                   'type': 'Disk', 'empty': False})
        rec = self.api.VBD.get_record(vbd)
        self.assertEqual('0', rec['userdevice'])
        self.assertTrue(rec['unpluggable'])
        self.assertFalse(rec['bootable'])
        self.assertFalse(rec['currently_attached'])
        self.assertEqual({}, rec['other_config'])
        other = self.create_vdi(self.sr('ext'), 4 * MiB)
        self.assertXapiError(['INVALID_DEVICE', 'bogus'],
                             self.create_vbd, vm, other, 'bogus')
        self.assertXapiError(['DEVICE_ALREADY_EXISTS', 'xvda'],
                             self.create_vbd, vm, other, 'xvda')
        self.assertXapiError(['VBD_CDS_MUST_BE_READONLY'],
                             self.create_vbd, vm, other, '3', type='CD')
        self.assertXapiError(['VBD_NOT_REMOVABLE_MEDIA', 'in constructor'],
                             self.create_vbd, vm, base.NULL, '3',
                             empty=True)
        self.assertEqual([vbd], self.api.VM.get_VBDs(vm))

    def test_vbd_and_vif_hotplug_on_a_running_vm(self):
        vm, _ = self.vm_with_disks([4 * MiB])
        vdi = self.create_vdi(self.sr('lvm'), 4 * MiB)
        vbd = self.create_vbd(vm, vdi, '1')
        self.assertFalse(self.api.VBD.get_currently_attached(vbd))
        self.api.VBD.plug(vbd)
        self.assertEqual('xvdb', self.api.VBD.get_device(vbd))
        vif = self.create_vif(vm, self.network(), '2')
        self.api.VIF.plug(vif)
        self.assertTrue(self.api.VIF.get_currently_attached(vif))
        self.api.VIF.unplug(vif)
        self.assertFalse(self.api.VIF.get_currently_attached(vif))

    def test_vif_create_checks(self):
        vm = self.create_vm()
        net = self.network()
        self.assertXapiError(['INVALID_DEVICE', 'eth0'],
                             self.create_vif, vm, net, 'eth0')
        record = {'VM': vm, 'network': net, 'device': '0',
                  'MAC': 'not-a-mac', 'MTU': '1500', 'other_config': {}}
        self.assertXapiError(['MAC_INVALID', 'not-a-mac'],
                             self.api.VIF.create, record)
        vif = self.api.VIF.create(dict(record, MAC='aa:bb:cc:dd:ee:ff'))
        self.assertEqual('aa:bb:cc:dd:ee:ff', self.api.VIF.get_MAC(vif))
        self.assertFalse(self.api.VIF.get_MAC_autogenerated(vif))

    def test_vdi_create_keeps_other_config_and_sm_config(self):
        vdi = self.api.VDI.create({
            'name_label': 'root', 'SR': self.sr('lvm'),
            'virtual_size': str(4 * MiB), 'type': 'system',
            'sharable': False, 'read_only': False,
            'other_config': {'nova_disk_type': 'root'},
            'sm_config': {'vmhint': 'abc'}})
        rec = self.api.VDI.get_record(vdi)
        self.assertEqual({'nova_disk_type': 'root'}, rec['other_config'])
        self.assertEqual('abc', rec['sm_config']['vmhint'])
        self.assertEqual(('system', str(4 * MiB)),
                         (rec['type'], rec['virtual_size']))

    def test_other_config_and_xenstore_data(self):
        vm = self.create_vm()
        self.api.VM.add_to_other_config(vm, 'nova_uuid', 'abc')
        self.api.VM.add_to_xenstore_data(vm, 'vm-data/hostname', 'h')
        rec = self.api.VM.get_record(vm)
        self.assertEqual('abc', rec['other_config']['nova_uuid'])
        self.assertEqual({'vm-data/hostname': 'h'}, rec['xenstore_data'])


class SuspendTestCase(VMTestCase):

    def setUp(self):
        super().setUp()
        self.ctl = self.control()

    def writes(self, vm):
        return self.ctl.guest_stats(vm)['disks'][0]['writes']

    def suspend_sr(self):
        sr = self.sr('ext')
        self.api.pool.set_suspend_image_SR(self.api.pool.get_all()[0], sr)
        return sr


class TestSuspendResume(SuspendTestCase):

    def test_suspend_and_resume_a_writing_guest(self):
        sr = self.suspend_sr()
        vm, (vdi,) = self.vm_with_disks([4 * MiB])
        self.ctl.workload_start(vm, '0', pattern='uniform', rate=0,
                                block_size=UNIT, seed=3)
        self.poll(lambda: self.writes(vm) > 50, what='guest writes')
        vdis_before = set(self.api.VDI.get_all())

        self.api.VM.suspend(vm)
        rec = self.api.VM.get_record(vm)
        self.assertEqual('Suspended', rec['power_state'])
        self.assertEqual(base.NULL, rec['resident_on'])
        self.assertEqual('-1', rec['domid'])
        image = rec['suspend_VDI']
        self.assertEqual({image}, set(self.api.VDI.get_all()) - vdis_before)
        irec = self.api.VDI.get_record(image)
        self.assertEqual(('suspend', sr), (irec['type'], irec['SR']))
        self.assertEqual(
            int(int(rec['memory_static_max']) * 1.2 * 1.05) + 100 * MiB,
            int(irec['virtual_size']))
        self.assertEqual([], rec['consoles'])
        # The disks stay attached to the suspended domain.
        for vbd in rec['VBDs']:
            self.assertTrue(self.api.VBD.get_currently_attached(vbd))
        at_suspend = self.writes(vm)
        # Not a timing assertion: no write at all may land meanwhile.
        time.sleep(0.3)
        self.assertEqual(at_suspend, self.writes(vm))

        self.api.VM.resume(vm, False, False)
        rec = self.api.VM.get_record(vm)
        self.assertEqual('Running', rec['power_state'])
        self.assertEqual(self.host, rec['resident_on'])
        self.assertEqual(base.NULL, rec['suspend_VDI'])
        self.assertNotIn(image, self.api.VDI.get_all())
        self.assertTrue(self.api.VM_guest_metrics.get_live(
            rec['guest_metrics']))
        self.poll(lambda: self.writes(vm) > at_suspend + 50,
                  what='writes after resume')
        self.ctl.workload_stop(vm)
        report = self.ctl.guest_check(vm)
        self.assertTrue(report[0]['ok'], report)

    def test_no_suspend_sr(self):
        vm, _ = self.vm_with_disks([4 * MiB])
        vdis = set(self.api.VDI.get_all())
        self.assertXapiError(['VM_NO_SUSPEND_SR', vm],
                             self.api.VM.suspend, vm)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertEqual(vdis, set(self.api.VDI.get_all()))
        # A host's suspend SR serves too, and the VM's own comes first.
        ext, lvm = self.sr('ext'), self.sr('lvm')
        self.api.host.set_suspend_image_sr(self.host, ext)
        self.api.VM.set_suspend_SR(vm, lvm)
        self.api.VM.suspend(vm)
        image = self.api.VM.get_suspend_VDI(vm)
        self.assertEqual(lvm, self.api.VDI.get_SR(image))

    def test_power_state_errors(self):
        self.suspend_sr()
        vm, _ = self.vm_with_disks([4 * MiB], start=False)
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'running', 'halted'],
                             self.api.VM.suspend, vm)
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'suspended',
                              'halted'], self.api.VM.resume, vm, False,
                             False)
        self.api.VM.start(vm, False, False)
        self.api.VM.suspend(vm)
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'halted',
                              'suspended'], self.api.VM.start, vm, False,
                             False)
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'paused, running',
                              'suspended'], self.api.VM.hard_reboot, vm)
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'running',
                              'suspended'], self.api.VM.clean_shutdown, vm)

    def test_hard_shutdown_of_a_suspended_vm_drops_the_image(self):
        self.suspend_sr()
        vm, (vdi,) = self.vm_with_disks([4 * MiB])
        self.api.VM.suspend(vm)
        image = self.api.VM.get_suspend_VDI(vm)
        self.api.VM.hard_shutdown(vm)
        rec = self.api.VM.get_record(vm)
        self.assertEqual('Halted', rec['power_state'])
        self.assertEqual(base.NULL, rec['suspend_VDI'])
        self.assertNotIn(image, self.api.VDI.get_all())
        self.assertIn(vdi, self.api.VDI.get_all())
        for vbd in rec['VBDs']:
            self.assertFalse(self.api.VBD.get_currently_attached(vbd))
        self.api.VM.start(vm, False, False)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))

    def test_destroy_of_a_suspended_vm_drops_the_image(self):
        self.suspend_sr()
        vm, (vdi,) = self.vm_with_disks([4 * MiB])
        self.api.VM.suspend(vm)
        image = self.api.VM.get_suspend_VDI(vm)
        self.api.VM.destroy(vm)
        self.assertNotIn(image, self.api.VDI.get_all())
        self.assertIn(vdi, self.api.VDI.get_all())


class TestResumeMemory(SuspendTestCase):

    topology = test_host_metrics.small_hosts('6GiB')

    def test_resume_needs_the_memory_back(self):
        self.suspend_sr()
        vm, _ = self.vm_with_disks([4 * MiB], start=False)
        self.api.VM.set_memory_limits(vm, *[str(GiB)] * 4)
        self.api.VM.start(vm, False, False)
        self.api.VM.suspend(vm)
        free = int(self.api.host.compute_free_memory(self.host))
        # What the suspended VM gave back goes to another VM.
        filler = self.create_vm('filler')
        size = str(free - 512 * MiB)
        self.api.VM.set_memory_limits(filler, size, size, size, size)
        self.api.VM.start(filler, False, False)
        available = int(self.api.host.compute_free_memory(self.host))
        needed = GiB + int(self.api.VM.get_memory_overhead(vm))
        self.assertXapiError(
            ['HOST_NOT_ENOUGH_FREE_MEMORY', str(needed), str(available)],
            self.api.VM.resume, vm, False, False)
        self.assertEqual('Suspended', self.api.VM.get_power_state(vm))
        self.api.VM.hard_shutdown(filler)
        self.api.VM.resume_on(vm, self.host, False, False)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
