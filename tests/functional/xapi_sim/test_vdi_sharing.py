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

"""One VDI in several VMs: VDI.sharable, VBD modes, hosts, snapshots.

xapi_vbd_helpers.valid_operations (VDI_IN_USE, VDI_READONLY), xapi_vdi
check_operation_error (VDI_IS_SHARABLE) and SM's blktap2 _add_tag (a VDI
another host holds, without allow_multiple_vdi_attach on the attaching
host).
"""

import http.client
import io
import random
import urllib.parse

from sxm_core import transfer
from tests.functional import simhelpers
from tests.functional.xapi_sim import base
from xapi_sim import control

MiB = base.MiB


class SharingTestCase(base.SimulatorTestCase):

    topology = simhelpers.two_hosts_shared_nfs()

    def setUp(self):
        super().setUp()
        self.host1 = self.api.host.get_by_name_label('pool-a-host1')[0]
        self.host2 = self.api.host.get_by_name_label('pool-a-host2')[0]
        self.nfs = self.sr_named('Shared (nfs)')
        self.vdi = self.create_vdi(self.nfs, 4 * MiB, name='data')

    def vm_holding(self, vdi, mode='RW', host=None, name='vm'):
        """A VM with ``vdi`` at userdevice 0 in ``mode``; started."""
        vm = self.create_vm(name)
        self.create_vbd(vm, vdi, '0', mode=mode)
        if host is not None:
            self.api.VM.start_on(vm, host, False, False)
        return vm

    def attached(self, vm):
        return [self.api.VBD.get_currently_attached(v)
                for v in self.api.VM.get_VBDs(vm)]


class TestSharable(SharingTestCase):

    def test_set_sharable(self):
        self.assertFalse(self.api.VDI.get_sharable(self.vdi))
        self.api.VDI.set_sharable(self.vdi, True)
        self.assertTrue(self.api.VDI.get_sharable(self.vdi))
        self.assertTrue(self.api.VDI.get_record(self.vdi)['sharable'])
        self.api.VDI.set_sharable(self.vdi, False)
        self.assertFalse(self.api.VDI.get_sharable(self.vdi))

    def test_sharable_at_create(self):
        record = dict(simhelpers.vmbuild.vdi_record(self.nfs, MiB),
                      sharable=True)
        vdi = self.api.VDI.create(record)
        self.assertTrue(self.api.VDI.get_sharable(vdi))

    def test_set_sharable_rejects_a_non_boolean(self):
        exc = self.assertRaises(base.XenAPI.Failure,
                                self.api.VDI.set_sharable, self.vdi, 'maybe')
        self.assertEqual('FIELD_TYPE_ERROR', exc.details[0])
        self.assertFalse(self.api.VDI.get_sharable(self.vdi))


class TestOneHost(SharingTestCase):

    def test_second_rw_start_of_non_sharable_is_vdi_in_use(self):
        first = self.vm_holding(self.vdi, host=self.host1, name='first')
        second = self.vm_holding(self.vdi, name='second')
        self.assertXapiError(['VDI_IN_USE', self.vdi], self.api.VM.start_on,
                             second, self.host1, False, False)
        self.assertEqual('Halted', self.api.VM.get_power_state(second))
        self.assertEqual([False], self.attached(second))
        self.assertEqual([True], self.attached(first))

    def test_vbd_plug_rw_of_non_sharable_is_vdi_in_use(self):
        self.vm_holding(self.vdi, host=self.host1, name='first')
        other = self.create_vm('other')
        self.api.VM.start_on(other, self.host1, False, False)
        # VBD.create does not check sharing (Xapi_vbd.create): plug does.
        vbd = self.create_vbd(other, self.vdi, '1')
        self.assertXapiError(['VDI_IN_USE', self.vdi], self.api.VBD.plug,
                             vbd)
        self.assertFalse(self.api.VBD.get_currently_attached(vbd))

    def test_ro_beside_rw_holder_is_vdi_in_use(self):
        self.vm_holding(self.vdi, host=self.host1, name='writer')
        reader = self.vm_holding(self.vdi, mode='RO', name='reader')
        self.assertXapiError(['VDI_IN_USE', self.vdi], self.api.VM.start_on,
                             reader, self.host1, False, False)

    def test_rw_beside_ro_holder_is_vdi_in_use(self):
        self.vm_holding(self.vdi, mode='RO', host=self.host1, name='reader')
        writer = self.vm_holding(self.vdi, name='writer')
        self.assertXapiError(['VDI_IN_USE', self.vdi], self.api.VM.start_on,
                             writer, self.host1, False, False)

    def test_two_readers_share_a_non_sharable_vdi(self):
        one = self.vm_holding(self.vdi, mode='RO', host=self.host1,
                              name='one')
        two = self.vm_holding(self.vdi, mode='RO', host=self.host1,
                              name='two')
        self.assertEqual([True], self.attached(one))
        self.assertEqual([True], self.attached(two))

    def test_two_writers_share_a_sharable_vdi_on_one_host(self):
        self.api.VDI.set_sharable(self.vdi, True)
        one = self.vm_holding(self.vdi, host=self.host1, name='one')
        two = self.vm_holding(self.vdi, host=self.host1, name='two')
        self.assertEqual('Running', self.api.VM.get_power_state(two))
        self.assertEqual([True], self.attached(one))
        self.assertEqual([True], self.attached(two))
        # Hot-plugged into a third running VM of the host as well.
        third = self.create_vm('third')
        self.api.VM.start_on(third, self.host1, False, False)
        vbd = self.create_vbd(third, self.vdi, '1')
        self.api.VBD.plug(vbd)
        self.assertTrue(self.api.VBD.get_currently_attached(vbd))

    def test_a_suspended_holder_does_not_count(self):
        sleeper = self.vm_holding(self.vdi, host=self.host1, name='sleeper')
        self.api.VM.set_suspend_SR(sleeper, self.nfs)
        self.api.VM.suspend(sleeper)
        # Its VBD still says attached: only the power state exempts it.
        self.assertEqual([True], self.attached(sleeper))
        other = self.vm_holding(self.vdi, host=self.host1, name='other')
        self.assertEqual('Running', self.api.VM.get_power_state(other))

    def test_a_halted_holder_does_not_count(self):
        halted = self.vm_holding(self.vdi, host=self.host1, name='halted')
        self.api.VM.hard_shutdown(halted)
        other = self.vm_holding(self.vdi, host=self.host1, name='other')
        self.assertEqual('Running', self.api.VM.get_power_state(other))

    def test_rw_vbd_of_read_only_vdi_is_refused_at_create(self):
        record = dict(simhelpers.vmbuild.vdi_record(self.nfs, MiB),
                      read_only=True)
        vdi = self.api.VDI.create(record)
        vm = self.create_vm()
        self.assertXapiError(['VDI_READONLY', vdi], self.create_vbd, vm,
                             vdi, '0')


class TestTwoHosts(SharingTestCase):

    def setUp(self):
        super().setUp()
        self.api.VDI.set_sharable(self.vdi, True)
        self.uuid = self.api.VDI.get_uuid(self.vdi)
        self.first = self.vm_holding(self.vdi, host=self.host1,
                                     name='first')

    def unavailable(self):
        # XenError('VDIUnavailable', opterr=...) from blktap2's
        # _activate_locked, as xapi passes SM's error on.
        return ['SR_BACKEND_FAILURE_46', '',
                'The VDI is not available [opterr=VDI %s not detached '
                'cleanly]' % self.uuid, '']

    def test_second_host_refused_without_the_file(self):
        second = self.vm_holding(self.vdi, name='second')
        self.assertXapiError(self.unavailable(), self.api.VM.start_on,
                             second, self.host2, False, False)
        self.assertEqual('Halted', self.api.VM.get_power_state(second))
        self.assertEqual([False], self.attached(second))
        self.assertEqual([True], self.attached(self.first))

    def test_hotplug_on_second_host_refused_without_the_file(self):
        other = self.create_vm('other')
        self.api.VM.start_on(other, self.host2, False, False)
        vbd = self.create_vbd(other, self.vdi, '1')
        self.assertXapiError(self.unavailable(), self.api.VBD.plug, vbd)
        self.assertFalse(self.api.VBD.get_currently_attached(vbd))

    def test_the_file_on_the_first_host_does_not_help_the_second(self):
        self.allow_multiple_vdi_attach('pool-a-host1')
        second = self.vm_holding(self.vdi, name='second')
        self.assertXapiError(self.unavailable(), self.api.VM.start_on,
                             second, self.host2, False, False)

    def test_second_host_attaches_with_the_file(self):
        answer = self.allow_multiple_vdi_attach('pool-a-host2')
        self.assertEqual({'host': self.api.host.get_uuid(self.host2),
                          'allow': True}, answer)
        second = self.vm_holding(self.vdi, host=self.host2, name='second')
        self.assertEqual(self.host2, self.api.VM.get_resident_on(second))
        self.assertEqual([True], self.attached(second))
        # Removed again: host2 holds the VDI already, so a third VM there
        # makes no SM call; once host2 lets go, SM refuses again.
        self.allow_multiple_vdi_attach('pool-a-host2', allow=False)
        third = self.vm_holding(self.vdi, host=self.host2, name='third')
        self.assertEqual([True], self.attached(third))
        self.api.VM.hard_shutdown(second)
        self.api.VM.hard_shutdown(third)
        self.assertXapiError(self.unavailable(), self.api.VM.start_on,
                             third, self.host2, False, False)

    def test_resume_on_second_host_attaches_again(self):
        self.allow_multiple_vdi_attach('pool-a-host2')
        second = self.vm_holding(self.vdi, host=self.host2, name='second')
        self.api.VM.set_suspend_SR(second, self.nfs)
        self.api.VM.suspend(second)
        # Suspended, host2 let the VDI go: resuming there attaches anew.
        self.allow_multiple_vdi_attach('pool-a-host2', allow=False)
        self.assertXapiError(self.unavailable(), self.api.VM.resume_on,
                             second, self.host2, False, False)
        self.assertEqual('Suspended', self.api.VM.get_power_state(second))
        self.allow_multiple_vdi_attach('pool-a-host2')
        self.api.VM.resume_on(second, self.host2, False, False)
        self.assertEqual('Running', self.api.VM.get_power_state(second))

    def test_readers_on_two_hosts_need_no_file(self):
        vdi = self.create_vdi(self.nfs, MiB, name='image')
        one = self.vm_holding(vdi, mode='RO', host=self.host1, name='r1')
        two = self.vm_holding(vdi, mode='RO', host=self.host2, name='r2')
        self.assertEqual([True], self.attached(one))
        self.assertEqual([True], self.attached(two))

    def test_unknown_host_is_a_clear_control_error(self):
        exc = self.assertRaises(control.ControlError,
                                self.allow_multiple_vdi_attach, 'no-such')
        self.assertIn('no host no-such', str(exc))


class TestSnapshots(SharingTestCase):

    def test_snapshot_of_sharable_is_vdi_is_sharable(self):
        self.api.VDI.set_sharable(self.vdi, True)
        before = set(self.api.SR.get_VDIs(self.nfs))
        self.assertXapiError(['VDI_IS_SHARABLE', self.vdi],
                             self.api.VDI.snapshot, self.vdi, {})
        self.assertEqual(before, set(self.api.SR.get_VDIs(self.nfs)))
        # Clone and copy are allowed (check_operation_error).
        clone = self.api.VDI.clone(self.vdi, {})
        self.assertTrue(self.api.VDI.get_sharable(clone))
        self.api.VDI.copy(self.vdi, self.nfs)

    def test_vm_snapshot_with_sharable_disk_fails_and_leaves_nothing(self):
        other = self.create_vdi(self.nfs, MiB, name='boot')
        vm = self.create_vm()
        self.create_vbd(vm, other, '0')
        self.create_vbd(vm, self.vdi, '1')
        self.api.VDI.set_sharable(self.vdi, True)
        before = set(self.api.SR.get_VDIs(self.nfs))
        vms = set(self.api.VM.get_all())
        self.assertXapiError(['VDI_IS_SHARABLE', self.vdi],
                             self.api.VM.snapshot, vm, 'snap')
        # safe_clone_disks deleted the boot disk's snapshot it had made.
        self.assertEqual(before, set(self.api.SR.get_VDIs(self.nfs)))
        self.assertEqual(vms, set(self.api.VM.get_all()))
        self.assertEqual([], self.api.VDI.get_snapshots(other))


class TestExportStream(base.SimulatorTestCase):
    """/export_raw_vdi ends with the connection, as xapi's does."""

    def written_vdi(self):
        vdi = self.create_vdi(self.sr('ext'), 6 * MiB)
        data = bytearray(6 * MiB)
        rng = random.Random(17)
        data[0:8192] = rng.randbytes(8192)
        data[4 * MiB + 512:4 * MiB + 70000] = rng.randbytes(69488)
        self.import_vdi(vdi, bytes(data))
        return vdi, bytes(data)

    def headers(self, vdi, fmt):
        parts = urllib.parse.urlsplit(self.url())
        conn = http.client.HTTPConnection(parts.hostname, parts.port,
                                          timeout=base.DEADLINE)
        self.addCleanup(conn.close)
        query = urllib.parse.urlencode({'session_id': self.session.handle,
                                        'vdi': vdi, 'format': fmt})
        conn.request('GET', '/export_raw_vdi?' + query)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, resp.headers, body

    def test_no_content_length_and_connection_closed(self):
        vdi, data = self.written_vdi()
        uuid = self.api.VDI.get_uuid(vdi)
        for fmt, ctype in (('vhd', 'application/vhd'),
                           ('raw', 'application/octet-stream')):
            status, headers, body = self.headers(vdi, fmt)
            self.assertEqual(200, status)
            self.assertIsNone(headers.get('Content-Length'))
            self.assertEqual('close', headers.get('Connection'))
            self.assertEqual(ctype, headers.get('Content-Type'))
            self.assertEqual('attachment; filename="%s.%s"' % (uuid, fmt),
                             headers.get('Content-Disposition'))
            if fmt == 'raw':
                self.assertEqual(data, body)
            else:
                self.assertEqual(b'conectix', body[:8])
                self.assertEqual(b'conectix', body[-512:-504])

    def test_vhd_round_trip_through_the_core(self):
        vdi, data = self.written_vdi()
        image = io.BytesIO()
        got = transfer.get(self.url(), self.session.handle, vdi, image,
                           fmt='vhd', timeout=base.DEADLINE)
        self.assertEqual(got, len(image.getvalue()))
        # Only the two 2 MiB blocks holding data travel.
        self.assertLess(got, 5 * MiB)
        target = self.create_vdi(self.sr('lvm'), 6 * MiB)
        image.seek(0)
        transfer.put(self.url(), self.session.handle, target, image, got,
                     fmt='vhd', timeout=base.DEADLINE)
        self.assertEqual(base.sha256(data),
                         base.sha256(self.export_vdi(target)))

    def test_raw_round_trip_through_the_core(self):
        vdi, data = self.written_vdi()
        image = io.BytesIO()
        got = transfer.get(self.url(), self.session.handle, vdi, image,
                           timeout=base.DEADLINE)
        self.assertEqual(len(data), got)
        target = self.create_vdi(self.sr('ext'), 6 * MiB)
        image.seek(0)
        transfer.put(self.url(), self.session.handle, target, image, got,
                     timeout=base.DEADLINE)
        self.assertEqual(data, self.export_vdi(target))
