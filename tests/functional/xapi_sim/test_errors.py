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

"""Bad input gets xapi's error code with xapi's parameters, and the
simulator keeps serving afterwards."""

import urllib.request
import uuid

import XenAPI

from tests.functional.xapi_sim import base

MiB = base.MiB


class TestSessionErrors(base.SimulatorTestCase):

    def test_wrong_password(self):
        session = XenAPI.Session(self.url())
        self.addCleanup(session('close'))
        exc = self.assertRaises(XenAPI.Failure, session.login_with_password,
                                'root', 'not-the-password', '1.0', 'tests')
        self.assertEqual(['SESSION_AUTHENTICATION_FAILED', 'root',
                          'Authentication failure'], exc.details)
        # The same client logs in once it has the right password.
        session.login_with_password('root', 'xapi-sim', '1.0', 'tests')
        self.assertTrue(session.handle.startswith('OpaqueRef:'))
        self.assertStillServing(session.xenapi)

    def test_wrong_user(self):
        session = XenAPI.Session(self.url())
        self.addCleanup(session('close'))
        exc = self.assertRaises(XenAPI.Failure, session.login_with_password,
                                'admin', 'xapi-sim')
        self.assertEqual(['SESSION_AUTHENTICATION_FAILED', 'admin',
                          'Authentication failure'], exc.details)

    def test_session_of_one_pool_is_unknown_to_another(self):
        # Sessions belong to a pool: a pool-a session is unknown to pool-b.
        envelope = self.raw_call('VM.get_all', self.session.handle,
                                 pool='pool-b')
        self.assertFailure(['SESSION_INVALID', self.session.handle],
                           envelope)

    def test_logged_out_session_is_invalid(self):
        session = self.login()
        handle = session.handle
        raw = self.raw()
        self.assertEqual('Success', raw.VM.get_all(handle)['Status'])
        self.assertEqual('Success', raw.session.logout(handle)['Status'])
        self.assertFailure(['SESSION_INVALID', handle], raw.VM.get_all(handle))
        # Other sessions are untouched.
        self.assertStillServing()

    def test_unknown_session_is_invalid(self):
        bogus = 'OpaqueRef:%s' % uuid.uuid4()
        self.assertFailure(['SESSION_INVALID', bogus],
                           self.raw_call('VM.get_all', bogus))
        self.assertStillServing()

    def test_xenapi_client_logs_in_again_after_logout(self):
        # The client hides SESSION_INVALID by logging in again: check that
        # the simulator lets it (a new session, not the old one).
        old = self.session.handle
        self.raw_call('session.logout', old)
        self.assertStillServing()
        self.assertNotEqual(old, self.session.handle)


class TestRefErrors(base.SimulatorTestCase):

    def test_handle_invalid_on_bogus_ref(self):
        bogus = 'OpaqueRef:%s' % uuid.uuid4()
        self.assertXapiError(['HANDLE_INVALID', 'VM', bogus],
                             self.api.VM.get_record, bogus)
        self.assertXapiError(['HANDLE_INVALID', 'VDI', bogus],
                             self.api.VDI.get_virtual_size, bogus)
        self.assertXapiError(['HANDLE_INVALID', 'SR', bogus],
                             self.api.SR.scan, bogus)
        self.assertStillServing()

    def test_handle_invalid_on_ref_of_another_class(self):
        sr = self.sr('ext')
        self.assertXapiError(['HANDLE_INVALID', 'VM', sr],
                             self.api.VM.get_record, sr)

    def test_handle_invalid_on_null_ref(self):
        self.assertXapiError(['HANDLE_INVALID', 'VM', base.NULL],
                             self.api.VM.start, base.NULL, False, False)

    def test_uuid_invalid(self):
        missing = str(uuid.uuid4())
        self.assertXapiError(['UUID_INVALID', 'VM', missing],
                             self.api.VM.get_by_uuid, missing)
        self.assertXapiError(['UUID_INVALID', 'VDI', 'not-a-uuid'],
                             self.api.VDI.get_by_uuid, 'not-a-uuid')
        self.assertStillServing()

    def test_uuid_of_another_class_is_invalid(self):
        sr = self.sr('ext')
        sr_uuid = self.api.SR.get_uuid(sr)
        self.assertEqual(sr, self.api.SR.get_by_uuid(sr_uuid))
        self.assertXapiError(['UUID_INVALID', 'VDI', sr_uuid],
                             self.api.VDI.get_by_uuid, sr_uuid)

    def test_destroyed_object_is_handle_invalid(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        self.api.VDI.destroy(vdi)
        self.assertXapiError(['HANDLE_INVALID', 'VDI', vdi],
                             self.api.VDI.get_record, vdi)
        self.assertXapiError(['HANDLE_INVALID', 'VDI', vdi],
                             self.api.VDI.destroy, vdi)


class TestMessageErrors(base.SimulatorTestCase):

    def test_method_unknown(self):
        self.assertXapiError(['MESSAGE_METHOD_UNKNOWN', 'VM.frobnicate'],
                             self.api.VM.frobnicate, 'OpaqueRef:NULL')
        self.assertXapiError(['MESSAGE_METHOD_UNKNOWN', 'Nope.get_all'],
                             self.api.Nope.get_all)
        self.assertStillServing()

    def test_method_unknown_raw(self):
        handle = self.session.handle
        self.assertFailure(['MESSAGE_METHOD_UNKNOWN', 'VM.frobnicate'],
                           self.raw_call('VM.frobnicate', handle))
        self.assertFailure(['MESSAGE_METHOD_UNKNOWN', 'VM_frobnicate'],
                           self.raw_call('VM_frobnicate', handle))

    def test_setter_of_read_only_field_is_unknown(self):
        # xapi generates no setter for a read-only field.
        vm = self.create_vm()
        self.assertXapiError(['MESSAGE_METHOD_UNKNOWN', 'VM.set_power_state'],
                             self.api.VM.set_power_state, vm, 'Running')
        self.assertEqual('Halted', self.api.VM.get_power_state(vm))

    def test_parameter_count_mismatch_counts_the_session(self):
        self.assertXapiError(
            ['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VM.get_record', '2', '1'],
            self.api.VM.get_record)
        vm = self.create_vm()
        self.assertXapiError(
            ['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VM.get_record', '2', '3'],
            self.api.VM.get_record, vm, vm)
        self.assertXapiError(
            ['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VM.start', '4', '2'],
            self.api.VM.start, vm)
        self.assertStillServing()

    def test_parameter_count_mismatch_raw(self):
        # Without the session argument at all.
        self.assertFailure(
            ['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VM.get_all', '1', '0'],
            self.raw_call('VM.get_all'))

    def test_parameter_count_mismatch_on_versioned_method(self):
        # VDI.copy takes 2 or 4 arguments after the session: 5 is too many.
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        exc = self.assertRaises(XenAPI.Failure, self.api.VDI.copy, vdi,
                                self.sr('ext'), base.NULL, base.NULL,
                                base.NULL)
        self.assertEqual(['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VDI.copy'],
                         exc.details[:2])
        self.assertEqual('6', exc.details[3])
        self.assertStillServing()

    def test_malformed_request_body(self):
        req = urllib.request.Request(self.url(), data=b'<not xml',
                                     headers={'Content-Type': 'text/xml'})
        with urllib.request.urlopen(req, timeout=base.DEADLINE) as resp:
            self.assertEqual(200, resp.status)
            body = resp.read()
        self.assertIn(b'Failure', body)
        self.assertStillServing()


class TestPowerStateErrors(base.SimulatorTestCase):

    def test_pause_halted_vm(self):
        vm = self.create_vm()
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'running', 'halted'],
                             self.api.VM.pause, vm)
        self.assertEqual('Halted', self.api.VM.get_power_state(vm))
        self.assertStillServing()

    def test_unpause_running_vm(self):
        vm, _ = self.vm_with_disks([4 * MiB])
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'paused', 'running'],
                             self.api.VM.unpause, vm)

    def test_start_running_vm(self):
        vm, _ = self.vm_with_disks([4 * MiB])
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'halted', 'running'],
                             self.api.VM.start, vm, False, False)

    def test_clean_shutdown_paused_vm(self):
        vm, _ = self.vm_with_disks([4 * MiB])
        self.api.VM.pause(vm)
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'running', 'paused'],
                             self.api.VM.clean_shutdown, vm)

    def test_destroy_running_vm(self):
        # ``expected`` lists every state the operation allows, in xapi's
        # order (xapi_vm_lifecycle.allowed_power_states).
        vm, _ = self.vm_with_disks([4 * MiB])
        self.assertXapiError(
            ['VM_BAD_POWER_STATE', vm, 'halted, suspended', 'running'],
            self.api.VM.destroy, vm)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))

    def test_hard_shutdown_and_hard_reboot_of_halted_vm(self):
        vm = self.create_vm()
        self.assertXapiError(
            ['VM_BAD_POWER_STATE', vm, 'paused, suspended, running',
             'halted'], self.api.VM.hard_shutdown, vm)
        self.assertXapiError(
            ['VM_BAD_POWER_STATE', vm, 'paused, running', 'halted'],
            self.api.VM.hard_reboot, vm)
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'running', 'halted'],
                             self.api.VM.clean_reboot, vm)
        self.assertEqual('Halted', self.api.VM.get_power_state(vm))


class TestCrossPoolAndStorageErrors(base.SimulatorTestCase):

    def test_vbd_joining_vm_and_vdi_of_different_pools(self):
        api_b = self.login('pool-b').xenapi
        vm = self.create_vm()
        vdi_b = self.create_vdi(self.sr('ext', api_b), 4 * MiB, api=api_b)
        self.assertXapiError(['HANDLE_INVALID', 'VDI', vdi_b],
                             self.create_vbd, vm, vdi_b)
        # Nothing was half-created on either side.
        self.assertEqual([], self.api.VM.get_VBDs(vm))
        self.assertEqual([], api_b.VDI.get_VBDs(vdi_b))
        self.assertEqual([], self.api.VBD.get_all())
        self.assertStillServing()
        self.assertStillServing(api_b)

    def test_vbd_joining_vm_of_other_pool(self):
        api_b = self.login('pool-b').xenapi
        vm_b = self.create_vm(api=api_b)
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        self.assertXapiError(['HANDLE_INVALID', 'VM', vm_b],
                             self.create_vbd, vm_b, vdi)

    def test_vdi_larger_than_thick_sr(self):
        sr = self.sr('lvm')
        size = int(self.api.SR.get_physical_size(sr))
        before = self.api.VDI.get_all()
        self.assertXapiError(['SR_BACKEND_FAILURE_44', '',
                              'There is insufficient space', ''],
                             self.create_vdi, sr, size + base.BLOCK)
        self.assertEqual(sorted(before), sorted(self.api.VDI.get_all()))
        self.assertEqual('0', self.api.SR.get_physical_utilisation(sr))
        # A VDI that fits is still created.
        vdi = self.create_vdi(sr, 4 * MiB)
        self.assertEqual(str(4 * MiB), self.api.VDI.get_virtual_size(vdi))

    def test_vdi_create_on_unknown_sr(self):
        bogus = 'OpaqueRef:%s' % uuid.uuid4()
        self.assertXapiError(['HANDLE_INVALID', 'SR', bogus],
                             self.create_vdi, bogus, 4 * MiB)

    def test_vdi_create_with_bad_size(self):
        sr = self.sr('ext')
        self.assertXapiError(['FIELD_TYPE_ERROR', 'virtual_size'],
                             self.create_vdi, sr, 'big')
        self.assertStillServing()
