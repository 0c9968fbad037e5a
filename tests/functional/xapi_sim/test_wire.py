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

"""What travels on the wire: envelopes, int64 strings, refs, enum case,
``Class_method`` aliases and versioned arities."""

import re
import urllib.request
import uuid
import xmlrpc.client

import XenAPI

from tests.functional.xapi_sim import base

MiB = base.MiB
REF = re.compile(r'^OpaqueRef:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-'
                 r'[0-9a-f]{4}-[0-9a-f]{12}$')


def _post(url, body):
    req = urllib.request.Request(url, data=body.encode(),
                                 headers={'Content-Type': 'text/xml'})
    with urllib.request.urlopen(req, timeout=base.DEADLINE) as resp:
        return resp.read().decode()


class TestEnvelope(base.SimulatorTestCase):

    def test_success_envelope(self):
        envelope = self.raw_call('pool.get_all', self.session.handle)
        self.assertEqual({'Status', 'Value'}, set(envelope))
        self.assertEqual('Success', envelope['Status'])
        self.assertEqual(1, len(envelope['Value']))

    def test_void_result_is_empty_string(self):
        vm = self.create_vm()
        envelope = self.raw_call('VM.set_name_label', self.session.handle,
                                 vm, 'renamed')
        self.assertEqual({'Status': 'Success', 'Value': ''}, envelope)
        self.assertEqual('renamed', self.api.VM.get_name_label(vm))

    def test_strings_are_bare_values(self):
        # xapi writes <value>text</value>, with no <string> element.
        body = ('<?xml version="1.0"?><methodCall><methodName>'
                'session.login_with_password</methodName><params>'
                '<param><value>root</value></param>'
                '<param><value>xapi-sim</value></param>'
                '</params></methodCall>')
        answer = _post(self.url(), body)
        self.assertIn('<value>Success</value>', answer)
        self.assertNotIn('<string>', answer)
        self.assertRegex(answer, r'<value>OpaqueRef:[0-9a-f-]{36}</value>')


class TestValues(base.SimulatorTestCase):

    def test_int64_fields_are_decimal_strings(self):
        sr = self.sr('ext')
        size = 5 * (1 << 30) + 12345 * base.BLOCK  # beyond 32 bits
        vdi = self.create_vdi(sr, size)
        raw = self.raw()
        handle = self.session.handle
        got = raw.VDI.get_virtual_size(handle, vdi)
        self.assertEqual({'Status': 'Success', 'Value': str(size)}, got)
        got = raw.SR.get_physical_size(handle, sr)
        self.assertEqual('Success', got['Status'])
        self.assertIsInstance(got['Value'], str)
        self.assertEqual(str(64 << 30), got['Value'])
        record = raw.VDI.get_record(handle, vdi)['Value']
        for field in ('virtual_size', 'physical_utilisation'):
            self.assertIsInstance(record[field], str, field)
            self.assertTrue(record[field].isdigit(), field)
        self.assertEqual(str(size), record['virtual_size'])

    def test_int64_accepted_as_string_on_input(self):
        vm = self.create_vm()
        big = str(6 << 30)
        self.api.VM.set_memory_static_max(vm, big)
        self.assertEqual(big, self.api.VM.get_memory_static_max(vm))

    def test_refs_look_like_opaque_refs(self):
        vm = self.create_vm()
        self.assertRegex(vm, REF)
        for cls in ('VM', 'SR', 'VDI', 'host', 'network', 'PIF', 'PBD',
                    'SM', 'pool'):
            refs = getattr(self.api, cls).get_all()
            for ref in refs:
                self.assertRegex(ref, REF)
        self.assertRegex(self.session.handle, REF)
        self.assertEqual(base.NULL, self.api.VM.get_resident_on(vm))

    def test_enums_keep_exact_case(self):
        vm, (vdi,) = self.vm_with_disks([4 * MiB], start=False)
        self.assertEqual('Halted', self.api.VM.get_power_state(vm))
        vbd = self.api.VM.get_VBDs(vm)[0]
        self.assertEqual('RW', self.api.VBD.get_mode(vbd))
        self.assertEqual('Disk', self.api.VBD.get_type(vbd))
        self.assertEqual('user', self.api.VDI.get_type(vdi))
        self.api.VM.start(vm, False, False)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.api.VM.pause(vm)
        self.assertEqual('Paused', self.api.VM.get_power_state(vm))

    def test_enum_in_any_case_is_accepted_unknown_value_refused(self):
        # xapi lower-cases enum input before matching; its answers keep
        # the datamodel's case (more in test_enums.py).
        vm = self.create_vm()
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        vbd = self.create_vbd(vm, vdi, mode='rw')
        self.assertEqual('RW', self.api.VBD.get_mode(vbd))
        self.assertXapiError(['FIELD_TYPE_ERROR', 'mode'],
                             self.create_vbd, vm, vdi, '1', mode='rwx')
        self.assertEqual([vbd], self.api.VM.get_VBDs(vm))

    def test_record_round_trips_through_get_all_records(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB, name='rt')
        records = self.api.VDI.get_all_records()
        self.assertEqual(self.api.VDI.get_record(vdi), records[vdi])
        self.assertEqual([vdi], self.api.VDI.get_by_name_label('rt'))
        uuid_ = records[vdi]['uuid']
        self.assertEqual(vdi, self.api.VDI.get_by_uuid(uuid_))

    def test_map_fields(self):
        vm = self.create_vm()
        self.api.VM.add_to_other_config(vm, 'k', 'v')
        self.assertEqual({'k': 'v'}, self.api.VM.get_other_config(vm))
        exc = self.assertRaises(XenAPI.Failure,
                                self.api.VM.add_to_other_config, vm, 'k',
                                'w')
        self.assertEqual(['MAP_DUPLICATE_KEY', 'VM', 'other_config',
                          self.api.VM.get_uuid(vm), 'k'], exc.details)
        self.api.VM.remove_from_other_config(vm, 'k')
        self.assertEqual({}, self.api.VM.get_other_config(vm))


class TestNames(base.SimulatorTestCase):

    def test_class_underscore_method_aliases(self):
        handle = self.session.handle
        raw = self.raw()
        dotted = raw.VM.get_all(handle)
        underscored = raw.VM_get_all(handle)
        self.assertEqual('Success', underscored['Status'])
        self.assertEqual(dotted, underscored)
        sr = self.sr('ext')
        self.assertEqual(raw.SR.get_type(handle, sr),
                         raw.SR_get_type(handle, sr))
        # Through the XenAPI client too.
        self.assertEqual(self.api.VM.get_all(), self.api.VM_get_all())

    def test_event_from_alias(self):
        raw = self.raw()
        envelope = raw.event_from(self.session.handle, ['vm'], '', 0.0)
        self.assertEqual('Success', envelope['Status'])
        value = envelope['Value']
        self.assertEqual({'events', 'valid_ref_counts', 'token'}, set(value))
        self.assertTrue(value['events'])
        self.assertEqual({'vm'}, {e['class'] for e in value['events']})

    def test_async_alias(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        task = self.api.Async.VDI_snapshot(vdi)
        self.assertRegex(task, REF)
        self.assertEqual('success', self.wait_task(task)['status'])


class TestVersionedArities(base.SimulatorTestCase):

    def test_vdi_copy_with_two_and_four_arguments(self):
        sr = self.sr('ext')
        vdi = self.create_vdi(sr, 4 * MiB)
        self.disk(vdi).write(0, b'A' * base.BLOCK)
        short = self.api.VDI.copy(vdi, sr)
        full = self.api.VDI.copy(vdi, sr, base.NULL, base.NULL)
        for copy in (short, full):
            self.assertRegex(copy, REF)
            self.assertNotEqual(vdi, copy)
            self.assertEqual(self.checksum(vdi), self.checksum(copy))
        self.assertXapiError(
            ['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VDI.copy', '5', '2'],
            self.api.VDI.copy, vdi)

    def test_login_with_two_three_and_four_arguments(self):
        raw = self.raw()
        for args in (('root', 'xapi-sim'),
                     ('root', 'xapi-sim', '1.0'),
                     ('root', 'xapi-sim', '1.0', 'tests')):
            envelope = raw.session.login_with_password(*args)
            self.assertEqual('Success', envelope['Status'], args)
            handle = envelope['Value']
            self.assertRegex(handle, REF)
            self.assertEqual('Success',
                             raw.VM.get_all(handle)['Status'])
            raw.session.logout(handle)
        too_many = raw.session.login_with_password('root', 'xapi-sim',
                                                   '1.0', 'tests', 'x')
        self.assertEqual('Failure', too_many['Status'])
        self.assertEqual(['MESSAGE_PARAMETER_COUNT_MISMATCH',
                          'session.login_with_password'],
                         too_many['ErrorDescription'][:2])
        self.assertEqual('5', too_many['ErrorDescription'][3])
        too_few = raw.session.login_with_password('root')
        self.assertEqual('Failure', too_few['Status'])
        self.assertEqual('MESSAGE_PARAMETER_COUNT_MISMATCH',
                         too_few['ErrorDescription'][0])

    def test_xenapi_client_login_with_two_arguments(self):
        session = XenAPI.Session(self.url())
        self.addCleanup(session('close'))
        session.login_with_password('root', 'xapi-sim')
        self.assertRegex(session.handle, REF)
        self.assertStillServing(session.xenapi)
        session.xenapi.session.logout()

    def test_snapshot_with_and_without_driver_params(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        one = self.api.VDI.snapshot(vdi)
        two = self.api.VDI.snapshot(vdi, {})
        for snap in (one, two):
            self.assertTrue(self.api.VDI.get_is_a_snapshot(snap))
            self.assertEqual(vdi, self.api.VDI.get_snapshot_of(snap))
        self.assertEqual(sorted([one, two]),
                         sorted(self.api.VDI.get_snapshots(vdi)))


class TestRawProxyWithoutXenAPI(base.SimulatorTestCase):
    """A client that is not XenAPI's (a plain ServerProxy) works too."""

    def test_plain_server_proxy(self):
        proxy = xmlrpc.client.ServerProxy(self.url())
        self.addCleanup(proxy('close'))
        login = proxy.session.login_with_password('root', 'xapi-sim')
        handle = login['Value']
        bogus = 'OpaqueRef:%s' % uuid.uuid4()
        self.assertEqual(
            {'Status': 'Failure',
             'ErrorDescription': ['HANDLE_INVALID', 'VM', bogus]},
            proxy.VM.get_record(handle, bogus))
        self.assertEqual('Success', proxy.VM.get_all(handle)['Status'])
