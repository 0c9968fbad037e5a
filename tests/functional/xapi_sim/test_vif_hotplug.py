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

"""Network interfaces attached to and detached from VMs, as Nova's
interface attach does it (VIF.create + VIF.plug, VIF.unplug +
VIF.destroy), with what xapi refuses: a halted VM, a device in use, a
guest without PV drivers."""

from tests.functional.xapi_sim import base
from xapi_sim import control
from xapi_sim import vmbuild

MiB = base.MiB
NULL = base.NULL


class VifTestCase(base.SimulatorTestCase):

    def setUp(self):
        super().setUp()
        self.ctl = self.control()
        self.net = self.network()
        self.vm, _ = self.vm_with_disks([4 * MiB])

    def vif(self, vm=None, device='1', mac=''):
        record = vmbuild.vif_record(vm or self.vm, self.net, device)
        record['MAC'] = mac
        return self.api.VIF.create(record)


class TestHotplug(VifTestCase):

    def test_attach_and_detach_on_a_running_vm(self):
        vif = self.vif()
        # Created, not plugged, even when the caller says it is.
        self.assertFalse(self.api.VIF.get_currently_attached(vif))
        record = vmbuild.vif_record(self.vm, self.net, '2')
        record['currently_attached'] = True
        other = self.api.VIF.create(record)
        self.assertFalse(self.api.VIF.get_currently_attached(other))
        self.api.VIF.plug(vif)
        self.assertTrue(self.api.VIF.get_currently_attached(vif))
        self.assertXapiError(['DEVICE_ALREADY_ATTACHED', vif],
                             self.api.VIF.plug, vif)
        self.assertXapiError(['OPERATION_NOT_ALLOWED',
                              'VIF currently attached to a running VM'],
                             self.api.VIF.destroy, vif)
        self.api.VIF.unplug(vif)
        self.assertFalse(self.api.VIF.get_currently_attached(vif))
        self.assertXapiError(['DEVICE_ALREADY_DETACHED', vif],
                             self.api.VIF.unplug, vif)
        self.api.VIF.destroy(vif)
        self.assertNotIn(vif, self.api.VM.get_VIFs(self.vm))
        self.assertNotIn(vif, self.api.network.get_VIFs(self.net))

    def test_a_halted_or_paused_vm_has_no_hotplug(self):
        vif = self.vif()
        self.api.VM.pause(self.vm)
        self.assertXapiError(['VM_BAD_POWER_STATE', self.vm, 'running',
                              'paused'], self.api.VIF.plug, vif)
        self.api.VM.unpause(self.vm)
        self.api.VIF.plug(vif)
        self.api.VM.hard_shutdown(self.vm)
        # Halting detached it; it is plugged again at the next start.
        self.assertFalse(self.api.VIF.get_currently_attached(vif))
        self.assertXapiError(['VM_BAD_POWER_STATE', self.vm, 'running',
                              'halted'], self.api.VIF.plug, vif)
        self.assertXapiError(['VM_BAD_POWER_STATE', self.vm, 'running',
                              'halted'], self.api.VIF.unplug, vif)
        self.api.VM.start(self.vm, False, False)
        self.assertTrue(self.api.VIF.get_currently_attached(vif))
        self.api.VM.hard_shutdown(self.vm)
        self.api.VIF.destroy(vif)

    def test_the_control_domain_has_no_hotplug(self):
        dom0 = [v for v in self.api.VM.get_all()
                if self.api.VM.get_is_control_domain(v)][0]
        vif = self.vif(dom0, '0', mac='02:00:00:00:00:01')
        self.assertXapiError(['OPERATION_NOT_ALLOWED',
                              'Control domain does not support hotplug'],
                             self.api.VIF.plug, vif)

    def test_allowed_devices(self):
        self.assertEqual([str(i) for i in range(16)],
                         self.api.VM.get_allowed_VIF_devices(self.vm))
        self.vif(device='0')
        self.vif(device='3')
        allowed = self.api.VM.get_allowed_VIF_devices(self.vm)
        self.assertEqual(14, len(allowed))
        self.assertNotIn('0', allowed)
        self.assertNotIn('3', allowed)
        # What it offers can be used.
        self.api.VIF.plug(self.vif(device=allowed[0]))


class TestCreate(VifTestCase):

    def test_device_checks(self):
        self.vif(device='1')
        self.assertXapiError(['DEVICE_ALREADY_EXISTS', '1'], self.vif,
                             device='1')
        # Devices are numbers: 01 is device 1.
        self.assertXapiError(['DEVICE_ALREADY_EXISTS', '01'], self.vif,
                             device='01')
        self.assertXapiError(['INVALID_DEVICE', 'eth1'], self.vif,
                             device='eth1')
        self.assertXapiError(['INVALID_DEVICE', ''], self.vif, device='')
        self.assertXapiError(['INVALID_DEVICE', '-1'], self.vif, device='-1')

    def test_mac_checks(self):
        for bad in ('02-00-00-00-00-01', '02:00:00:00:00', '0g:00:00:00:00:01',
                    '2:00:00:00:00:01'):
            self.assertXapiError(['MAC_INVALID', bad], self.vif, mac=bad)
        vif = self.vif(mac='02:AB:cd:00:00:01')
        self.assertEqual('02:AB:cd:00:00:01', self.api.VIF.get_MAC(vif))
        self.assertFalse(self.api.VIF.get_MAC_autogenerated(vif))

    def test_autogenerated_macs_come_from_the_vm_mac_seed(self):
        seed = 'c5a6b0f6-1d3e-4f9a-8a55-0d2b0e7f3a10'
        twin = self.create_vm('twin')
        for vm in (self.vm, twin):
            self.api.VM.add_to_other_config(vm, 'mac_seed', seed)
        first = self.vif(device='1')
        mac = self.api.VIF.get_MAC(first)
        self.assertTrue(self.api.VIF.get_MAC_autogenerated(first))
        octet = int(mac.split(':')[0], 16)
        self.assertEqual(0x2, octet & 0x3)  # locally administered unicast
        # The same seed and device give the same MAC, another device not.
        self.assertEqual(mac, self.api.VIF.get_MAC(self.vif(twin, '1')))
        self.assertNotEqual(mac, self.api.VIF.get_MAC(self.vif(device='2')))
        other = self.create_vm('other')
        self.api.VM.add_to_other_config(other, 'mac_seed', seed[::-1])
        self.assertNotEqual(mac, self.api.VIF.get_MAC(self.vif(other, '1')))

    def test_without_a_seed_a_valid_mac_is_drawn(self):
        macs = {self.api.VIF.get_MAC(self.vif(device=str(d)))
                for d in range(4)}
        self.assertEqual(4, len(macs))
        for mac in macs:
            self.assertEqual(0x2, int(mac.split(':')[0], 16) & 0x3)


class TestGuestAgent(VifTestCase):

    def test_default_guest_claims_hotplug(self):
        gm = self.api.VM.get_guest_metrics(self.vm)
        rec = self.api.VM_guest_metrics.get_record(gm)
        self.assertEqual('yes', rec['can_use_hotplug_vif'])
        self.assertTrue(rec['PV_drivers_detected'])
        self.assertEqual('hvm', self.api.VM.get_domain_type(self.vm))

    def test_hvm_guest_without_pv_drivers(self):
        vif = self.vif()
        profile = self.ctl.guest_agent(self.vm, pv_drivers=False)
        self.assertFalse(profile['pv_drivers'])
        self.assertEqual(NULL, self.api.VM.get_guest_metrics(self.vm))
        self.assertXapiError(['VM_MISSING_PV_DRIVERS', self.vm],
                             self.api.VIF.plug, vif)
        self.assertFalse(self.api.VIF.get_currently_attached(vif))
        # A reboot plugs it (no hotplug), but installs no drivers.
        self.api.VM.clean_reboot(self.vm)
        self.assertTrue(self.api.VIF.get_currently_attached(vif))
        self.assertEqual(NULL, self.api.VM.get_guest_metrics(self.vm))
        self.assertXapiError(['VM_MISSING_PV_DRIVERS', self.vm],
                             self.api.VIF.unplug, vif)
        # Drivers installed: the agent reports from the next boot on.
        self.ctl.guest_agent(self.vm, pv_drivers=True)
        self.assertEqual(NULL, self.api.VM.get_guest_metrics(self.vm))
        self.api.VM.clean_reboot(self.vm)
        self.assertNotEqual(NULL, self.api.VM.get_guest_metrics(self.vm))
        self.api.VIF.unplug(vif)
        self.api.VIF.plug(vif)
        self.assertTrue(self.api.VIF.get_currently_attached(vif))

    def test_pv_guest_needs_no_drivers(self):
        vm, _ = self.vm_with_disks([4 * MiB], start=False)
        self.api.VM.set_HVM_boot_policy(vm, '')
        self.api.VM.set_domain_type(vm, 'pv')
        self.ctl.guest_agent(vm, pv_drivers=False)
        self.api.VM.start(vm, False, False)
        self.assertEqual(NULL, self.api.VM.get_guest_metrics(vm))
        vif = self.vif(vm)
        self.api.VIF.plug(vif)
        self.assertTrue(self.api.VIF.get_currently_attached(vif))

    def test_what_the_agent_claims(self):
        vif = self.vif()
        self.ctl.guest_agent(self.vm, can_use_hotplug_vif='no')
        gm = self.api.VM.get_guest_metrics(self.vm)
        self.assertEqual('no',
                         self.api.VM_guest_metrics.get_can_use_hotplug_vif(gm))
        self.assertXapiError(['OPERATION_NOT_ALLOWED',
                              'VM states it does not support VIF hotplug.'],
                             self.api.VIF.plug, vif)
        # Unspecified: PV drivers are enough.
        self.ctl.guest_agent(self.vm, can_use_hotplug_vif='unspecified')
        self.api.VIF.plug(vif)
        self.api.VIF.unplug(vif)

    def test_the_profile_follows_the_vm(self):
        self.ctl.guest_agent(self.vm, can_use_hotplug_vif='no')
        self.api.VM.hard_shutdown(self.vm)
        self.api.VM.start(self.vm, False, False)
        gm = self.api.VM.get_guest_metrics(self.vm)
        self.assertEqual('no',
                         self.api.VM_guest_metrics.get_can_use_hotplug_vif(gm))

    def test_bad_requests(self):
        for bad in ({'pv_drivers': 'no'}, {'can_use_hotplug_vif': 'maybe'},
                    {'drivers': True}):
            self.assertRaises(control.ControlError, self.ctl.guest_agent,
                              self.vm, **bad)
        self.assertRaises(control.ControlError, self.ctl.guest_agent,
                          'no-such-vm', pv_drivers=False)


class TestVbdHotplug(VifTestCase):
    """Disks follow the same guest rules (Xapi_vbd_helpers)."""

    def test_guest_rules_for_disks(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB, name='extra')
        vbd = self.create_vbd(self.vm, vdi, '1')
        self.ctl.guest_agent(self.vm, can_use_hotplug_vbd='no')
        self.assertXapiError(['OPERATION_NOT_ALLOWED',
                              'VM states it does not support VBD hotplug.'],
                             self.api.VBD.plug, vbd)
        # The VIF claim is another one.
        vif = self.vif()
        self.api.VIF.plug(vif)
        self.ctl.guest_agent(self.vm, pv_drivers=False)
        self.assertXapiError(['VM_MISSING_PV_DRIVERS', self.vm],
                             self.api.VBD.plug, vbd)
        self.ctl.guest_agent(self.vm, pv_drivers=True,
                             can_use_hotplug_vbd='yes')
        self.api.VM.clean_reboot(self.vm)
        self.assertTrue(self.api.VBD.get_currently_attached(vbd))
        self.api.VBD.unplug(vbd)
        self.api.VBD.plug(vbd)

    def test_hvm_cd_drives_are_not_hotplugged(self):
        cd = self.create_vbd(self.vm, NULL, '3', type='CD', mode='RO',
                             empty=True)
        self.assertXapiError(
            ['OPERATION_NOT_ALLOWED', 'HVM CDROMs cannot be '
             'hotplugged/unplugged, only inserted or ejected'],
            self.api.VBD.plug, cd)
