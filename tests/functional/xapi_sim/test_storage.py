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

"""The block data plane seen through the API: snapshots, clones, copies,
thin and thick accounting, raw import and export, resize."""

import random
import urllib.error
import urllib.parse
import urllib.request

import XenAPI

from tests.functional.xapi_sim import base
from xapi_sim import fixture

MiB = base.MiB
BLOCK = base.BLOCK


def pattern(size, seed):
    """Deterministic pseudo-random bytes: no block is all zeros."""
    return random.Random(seed).randbytes(size)


class StorageTestCase(base.SimulatorTestCase):

    def util(self, obj, cls='SR'):
        return int(getattr(self.api, cls).get_physical_utilisation(obj))

    def scanned_util(self, sr):
        self.api.SR.scan(sr)
        return self.util(sr)

    def _put_status(self, vdi, data, task):
        """PUT /import_raw_vdi with ``task_id``; the HTTP status."""
        query = urllib.parse.urlencode({'session_id': self.session.handle,
                                        'vdi': vdi, 'task_id': task})
        req = urllib.request.Request(
            '%simport_raw_vdi?%s' % (self.url(), query), data=data,
            method='PUT')
        with urllib.request.urlopen(req, timeout=base.DEADLINE) as resp:
            resp.read()
            return resp.status


class TestSnapshotAndClone(StorageTestCase):

    def test_snapshot_is_isolated_from_a_writing_guest(self):
        vm, (vdi,) = self.vm_with_disks([16 * MiB])
        ctl = self.control()
        ctl.workload_start(vm, '0', pattern='uniform', rate=4 * MiB,
                           block_size=4096, seed=7)
        # Some writes land before the snapshot.
        self.poll(lambda: ctl.guest_stats(vm)['disks'][0]['writes'] > 50,
                  what='guest writes before the snapshot')
        snap = self.api.VDI.snapshot(vdi)
        first = self.checksum(snap)
        live_first = self.checksum(vdi)
        writes_at_first = ctl.guest_stats(vm)['disks'][0]['writes']
        # Wait until the guest has written plenty more, then look again.
        self.poll(lambda: (ctl.guest_stats(vm)['disks'][0]['writes']
                           > writes_at_first + 200),
                  what='guest writes after the snapshot')
        second = self.checksum(snap)
        live_second = self.checksum(vdi)
        ctl.workload_stop(vm)
        self.assertEqual(first, second)
        self.assertNotEqual(live_first, live_second)
        self.assertEqual(0, ctl.guest_stats(vm)['disks'][0]['errors'])
        # The guest's own view is intact.
        for report in ctl.guest_check(vm):
            self.assertTrue(report['ok'], report)

    def test_snapshot_content_is_the_content_at_snapshot_time(self):
        sr = self.sr('ext')
        vdi = self.create_vdi(sr, 4 * MiB)
        before = pattern(4 * MiB, 1)
        self.import_vdi(vdi, before)
        snap = self.api.VDI.snapshot(vdi)
        self.disk(vdi).write(MiB + 100, b'after' * 1000)
        self.assertEqual(base.sha256(before), self.checksum(snap))
        self.assertNotEqual(base.sha256(before), self.checksum(vdi))
        rec = self.api.VDI.get_record(snap)
        self.assertTrue(rec['is_a_snapshot'])
        self.assertEqual(vdi, rec['snapshot_of'])
        self.assertEqual(rec['virtual_size'],
                         self.api.VDI.get_virtual_size(vdi))

    def test_clone_is_independent_of_its_origin(self):
        sr = self.sr('ext')
        vdi = self.create_vdi(sr, 4 * MiB)
        origin = pattern(4 * MiB, 2)
        self.import_vdi(vdi, origin)
        clone = self.api.VDI.clone(vdi)
        self.assertFalse(self.api.VDI.get_is_a_snapshot(clone))
        self.assertEqual(base.sha256(origin), self.checksum(clone))
        # Writes to either side stay on that side.
        self.disk(clone).write(0, b'C' * BLOCK)
        self.disk(vdi).write(2 * BLOCK, b'O' * BLOCK)
        got_clone = self.export_vdi(clone)
        got_origin = self.export_vdi(vdi)
        want_clone = b'C' * BLOCK + origin[BLOCK:]
        want_origin = (origin[:2 * BLOCK] + b'O' * BLOCK
                       + origin[3 * BLOCK:])
        self.assertEqual(base.sha256(want_clone), base.sha256(got_clone))
        self.assertEqual(base.sha256(want_origin), base.sha256(got_origin))
        # Destroying the origin leaves the clone whole.
        self.api.VDI.destroy(vdi)
        self.assertEqual(base.sha256(want_clone), self.checksum(clone))

    def test_snapshot_survives_destroying_its_origin(self):
        vdi = self.create_vdi(self.sr('lvm'), 4 * MiB)
        data = pattern(4 * MiB, 3)
        self.import_vdi(vdi, data)
        snap = self.api.VDI.snapshot(vdi)
        self.api.VDI.destroy(vdi)
        self.assertEqual(base.sha256(data), self.checksum(snap))

    def test_snapshot_is_read_only(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        snap = self.api.VDI.snapshot(vdi)
        task = self.api.task.create('import', '')
        self.assertEqual(200, self._put_status(snap, b'x' * BLOCK, task))
        # Import_raw_vdi answered 200 already: the task says why.
        self.assertEqual('VDI_READONLY',
                         self.wait_task(task)['error_info'][0])
        self.assertEqual(base.sha256(bytes(4 * MiB)), self.checksum(snap))


class TestCopy(StorageTestCase):

    def test_full_copy_across_srs(self):
        src = self.create_vdi(self.sr('ext'), 8 * MiB)
        data = pattern(8 * MiB, 4)
        self.import_vdi(src, data)
        for sr_type in ('ext', 'lvm'):
            sr = self.sr(sr_type)
            copy = self.api.VDI.copy(src, sr)
            self.assertEqual(sr, self.api.VDI.get_SR(copy))
            self.assertEqual(str(8 * MiB), self.api.VDI.get_virtual_size(copy))
            self.assertEqual(base.sha256(data), self.checksum(copy))

    def test_delta_copy_into_makes_target_equal(self):
        sr = self.sr('ext')
        dest_sr = self.sr('lvm')
        vdi = self.create_vdi(sr, 8 * MiB)
        self.import_vdi(vdi, pattern(8 * MiB, 5))
        base_snap = self.api.VDI.snapshot(vdi)
        # The destination holds the base already (a first full copy).
        into = self.api.VDI.copy(base_snap, dest_sr)
        self.assertEqual(self.checksum(base_snap), self.checksum(into))
        # The guest moves on: rewrite some blocks, zero one, write a tail.
        disk = self.disk(vdi)
        disk.write(3 * BLOCK + 17, b'delta' * 2000)
        disk.write(10 * BLOCK, bytes(BLOCK))
        disk.write(8 * MiB - 4096, b'T' * 4096)
        self.assertNotEqual(self.checksum(vdi), self.checksum(into))
        result = self.api.VDI.copy(vdi, dest_sr, base_snap, into)
        self.assertEqual(into, result)
        self.assertEqual(self.checksum(vdi), self.checksum(into))
        # No new VDI on the destination.
        self.assertEqual([into], self.api.SR.get_VDIs(dest_sr))

    def test_delta_copy_from_a_later_snapshot(self):
        sr = self.sr('ext')
        vdi = self.create_vdi(sr, 4 * MiB)
        self.import_vdi(vdi, pattern(4 * MiB, 6))
        snap1 = self.api.VDI.snapshot(vdi)
        into = self.api.VDI.copy(snap1, self.sr('lvm'))
        self.disk(vdi).write(BLOCK, b'second' * 100)
        snap2 = self.api.VDI.snapshot(vdi)
        self.disk(vdi).write(2 * BLOCK, b'third' * 100)
        self.api.VDI.copy(snap2, self.sr('lvm'), snap1, into)
        self.assertEqual(self.checksum(snap2), self.checksum(into))
        self.assertNotEqual(self.checksum(vdi), self.checksum(into))

    def test_copy_into_a_smaller_vdi_is_refused(self):
        sr = self.sr('ext')
        vdi = self.create_vdi(sr, 8 * MiB)
        small = self.create_vdi(sr, 4 * MiB)
        self.assertXapiError(['VDI_TOO_SMALL', small, str(8 * MiB)],
                             self.api.VDI.copy, vdi, sr, base.NULL, small)

    def test_copy_into_a_read_only_vdi_is_refused(self):
        sr = self.sr('ext')
        vdi = self.create_vdi(sr, 4 * MiB)
        self.import_vdi(vdi, pattern(4 * MiB, 13))
        snap = self.api.VDI.snapshot(self.create_vdi(sr, 4 * MiB))
        ro = self.api.VDI.create({'SR': sr, 'virtual_size': str(4 * MiB),
                                  'type': 'user', 'read_only': True,
                                  'name_label': 'ro'})
        for into in (snap, ro):
            self.assertXapiError(['VDI_READONLY', into], self.api.VDI.copy,
                                 vdi, sr, base.NULL, into)
            self.assertEqual(base.sha256(bytes(4 * MiB)),
                             self.checksum(into))
        self.assertStillServing()

    def test_copy_of_thick_vdi_to_thin_sr_is_thin(self):
        thick_sr = self.sr('lvm')
        thin_sr = self.sr('ext')
        vdi = self.create_vdi(thick_sr, 32 * MiB)
        self.assertEqual(32 * MiB, self.util(vdi, 'VDI'))
        written = 5 * BLOCK
        self.import_vdi(vdi, b'\x01' * written)
        before = self.scanned_util(thin_sr)
        copy = self.api.VDI.copy(vdi, thin_sr)
        self.assertEqual(written, self.util(copy, 'VDI'))
        self.assertEqual(before + written, self.scanned_util(thin_sr))
        self.assertEqual(self.checksum(vdi), self.checksum(copy))

    def test_copy_of_thin_vdi_to_thick_sr_is_thick(self):
        vdi = self.create_vdi(self.sr('ext'), 16 * MiB)
        self.import_vdi(vdi, b'\x02' * BLOCK)
        thick_sr = self.sr('lvm')
        before = self.scanned_util(thick_sr)
        copy = self.api.VDI.copy(vdi, thick_sr)
        self.assertEqual(16 * MiB, self.util(copy, 'VDI'))
        self.assertEqual(before + 16 * MiB, self.scanned_util(thick_sr))


class TestAccounting(StorageTestCase):

    def test_thick_sr_allocates_virtual_size_at_create(self):
        sr = self.sr('lvm')
        self.assertEqual('thick', self.api.SR.get_sm_config(sr)['allocation'])
        before = self.scanned_util(sr)
        alloc_before = int(self.api.SR.get_virtual_allocation(sr))
        vdi = self.create_vdi(sr, 16 * MiB)
        # No scan needed: creating a VDI updates the SR, as SM does.
        self.assertEqual(before + 16 * MiB, self.util(sr))
        self.assertEqual(alloc_before + 16 * MiB,
                         int(self.api.SR.get_virtual_allocation(sr)))
        self.assertEqual(16 * MiB, self.util(vdi, 'VDI'))
        # Writing does not change a thick VDI's footprint.
        self.import_vdi(vdi, b'\x03' * (4 * BLOCK))
        self.assertEqual(before + 16 * MiB, self.scanned_util(sr))
        self.api.VDI.destroy(vdi)
        self.assertEqual(before, self.scanned_util(sr))

    def test_thin_sr_grows_with_written_blocks(self):
        sr = self.sr('ext')
        self.assertEqual('dynamic',
                         self.api.SR.get_sm_config(sr)['allocation'])
        before = self.scanned_util(sr)
        vdi = self.create_vdi(sr, 16 * MiB)
        self.assertEqual(before, self.scanned_util(sr))
        self.assertEqual(0, self.util(vdi, 'VDI'))
        # An image with a few bytes in each of N blocks, zeros elsewhere.
        blocks = [0, 1, 7, 100, 255]
        image = bytearray(16 * MiB)
        for b in blocks:
            image[b * BLOCK + 10:b * BLOCK + 110] = b'w' * 100
        self.import_vdi(vdi, bytes(image))
        # Written again: the same blocks, no new space.
        image[7 * BLOCK + 500:7 * BLOCK + 505] = b'again'
        self.import_vdi(vdi, bytes(image))
        after = self.scanned_util(sr)
        self.assertEqual(before + len(blocks) * BLOCK, after)
        self.assertEqual(len(blocks) * BLOCK, self.util(vdi, 'VDI'))
        self.assertEqual(16 * MiB,
                         int(self.api.SR.get_virtual_allocation(sr)))
        self.api.VDI.destroy(vdi)
        self.assertEqual(before, self.scanned_util(sr))

    def test_thin_snapshot_costs_only_new_writes(self):
        sr = self.sr('ext')
        vdi = self.create_vdi(sr, 8 * MiB)
        self.import_vdi(vdi, b'\x04' * (4 * BLOCK))
        base_util = self.scanned_util(sr)
        self.assertEqual(4 * BLOCK, base_util)
        self.api.VDI.snapshot(vdi)
        self.assertEqual(base_util, self.scanned_util(sr))
        self.disk(vdi).write(0, b'\x05' * BLOCK)
        self.assertEqual(base_util + BLOCK, self.scanned_util(sr))

    def test_thin_sr_full(self):
        topology = {'pools': [{
            'name': 'tiny', 'hosts': [{'name': 'h1'}],
            'networks': [],
            'srs': [{'name': 'small', 'type': 'ext', 'size': '1MiB',
                     'default': True}],
        }]}
        simfix = self.useFixture(fixture.SimulatorFixture(topology))
        url = simfix.url('tiny')
        session = XenAPI.Session(url)
        session.login_with_password('root', 'xapi-sim')
        self.addCleanup(session('close'))
        api = session.xenapi
        sr = api.SR.get_all()[0]
        # Thin: an 8 MiB VDI fits in a 1 MiB SR until it is written.
        vdi = self.create_vdi(sr, 8 * MiB, api=api)
        task = api.task.create('import', '')
        query = urllib.parse.urlencode({'session_id': session.handle,
                                        'vdi': vdi, 'task_id': task})
        req = urllib.request.Request('%simport_raw_vdi?%s' % (url, query),
                                     data=b'\x06' * (2 * MiB), method='PUT')
        # Import_raw_vdi: 200, the failure is in the task.
        with urllib.request.urlopen(req) as resp:
            self.assertEqual(200, resp.status)
        self.assertEqual('SR_BACKEND_FAILURE_44',
                         self.wait_task(task, api)['error_info'][0])
        # The SR filled up to its size, not beyond, and still serves.
        api.SR.scan(sr)
        self.assertEqual(str(MiB), api.SR.get_physical_utilisation(sr))
        self.assertEqual(1, len(api.pool.get_all()))

    def test_sr_fields_are_consistent(self):
        for sr_type in ('ext', 'lvm'):
            sr = self.sr(sr_type)
            rec = self.api.SR.get_record(sr)
            self.assertEqual(str(64 << 30), rec['physical_size'])
            self.assertLessEqual(int(rec['physical_utilisation']),
                                 int(rec['physical_size']))
            self.assertEqual('user', rec['content_type'])
            self.assertEqual(1, len(rec['PBDs']))
            pbd = rec['PBDs'][0]
            self.assertTrue(self.api.PBD.get_currently_attached(pbd))


class TestImportExport(StorageTestCase):

    def test_round_trip(self):
        for sr_type in ('ext', 'lvm'):
            vdi = self.create_vdi(self.sr(sr_type), 4 * MiB)
            data = pattern(4 * MiB, 9)
            self.assertEqual(200, self.import_vdi(vdi, data))
            got = self.export_vdi(vdi)
            self.assertEqual(4 * MiB, len(got))
            self.assertEqual(base.sha256(data), base.sha256(got))

    def test_import_shorter_image_leaves_the_rest(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        self.import_vdi(vdi, b'\xff' * (4 * MiB))
        self.import_vdi(vdi, b'\x00' * MiB + b'\x11' * 100)
        got = self.export_vdi(vdi)
        want = (b'\x00' * MiB + b'\x11' * 100
                + b'\xff' * (3 * MiB - 100))
        self.assertEqual(base.sha256(want), base.sha256(got))

    def test_zero_import_keeps_thin_disk_thin(self):
        sr = self.sr('ext')
        vdi = self.create_vdi(sr, 8 * MiB)
        self.import_vdi(vdi, bytes(8 * MiB))
        self.assertEqual(0, self.util(vdi, 'VDI'))
        self.assertEqual(base.sha256(bytes(8 * MiB)), self.checksum(vdi))

    def test_export_by_uuid(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        data = pattern(4 * MiB, 10)
        self.import_vdi(vdi, data)
        uuid = self.api.VDI.get_uuid(vdi)
        self.assertEqual(base.sha256(data),
                         base.sha256(self.export_vdi(uuid)))

    def test_session_is_checked(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        for sid in ('OpaqueRef:bogus', ''):
            query = urllib.parse.urlencode({'session_id': sid, 'vdi': vdi})
            url = '%sexport_raw_vdi?%s' % (self.url(), query)
            exc = self.assertRaises(urllib.error.HTTPError,
                                    urllib.request.urlopen, url)
            self.assertEqual(401, exc.code)
            req = urllib.request.Request(
                '%simport_raw_vdi?%s' % (self.url(), query),
                data=b'x' * 100, method='PUT')
            exc = self.assertRaises(urllib.error.HTTPError,
                                    urllib.request.urlopen, req)
            self.assertEqual(401, exc.code)
        # A session of the other pool is not a session here.
        other = self.login('pool-b')
        exc = self.assertRaises(urllib.error.HTTPError, self.export_vdi, vdi,
                                'pool-a', other)
        self.assertEqual(401, exc.code)
        self.assertEqual(base.sha256(bytes(4 * MiB)), self.checksum(vdi))

    def test_unknown_vdi(self):
        exc = self.assertRaises(urllib.error.HTTPError, self.export_vdi,
                                'OpaqueRef:nope')
        self.assertEqual(404, exc.code)

    def test_image_larger_than_the_vdi(self):
        vdi = self.create_vdi(self.sr('ext'), 4 * MiB)
        task = self.api.task.create('import', '')
        self.assertEqual(200, self._put_status(vdi, b'\x01' * (4 * MiB + 1),
                                               task))
        self.assertEqual(['VDI_IO_ERROR', 'Device I/O errors'],
                         self.wait_task(task)['error_info'])
        self.assertEqual(base.sha256(bytes(4 * MiB)), self.checksum(vdi))
        self.assertStillServing()


class TestResize(StorageTestCase):

    def test_grow_keeps_data_and_reads_zeros_beyond(self):
        sr = self.sr('ext')
        vdi = self.create_vdi(sr, 4 * MiB)
        data = pattern(4 * MiB, 11)
        self.import_vdi(vdi, data)
        snap = self.api.VDI.snapshot(vdi)
        self.api.VDI.resize(vdi, str(8 * MiB))
        self.assertEqual(str(8 * MiB), self.api.VDI.get_virtual_size(vdi))
        self.assertEqual(base.sha256(data + bytes(4 * MiB)),
                         self.checksum(vdi))
        # The new space is writable; the snapshot keeps its size.
        self.disk(vdi).write(6 * MiB, b'grown')
        self.assertEqual(str(4 * MiB), self.api.VDI.get_virtual_size(snap))
        self.assertEqual(base.sha256(data), self.checksum(snap))

    def test_grow_thick_charges_the_sr(self):
        sr = self.sr('lvm')
        vdi = self.create_vdi(sr, 4 * MiB)
        before = self.scanned_util(sr)
        self.api.VDI.resize(vdi, str(12 * MiB))
        self.assertEqual(before + 8 * MiB, self.scanned_util(sr))

    def test_shrink_fails(self):
        vdi = self.create_vdi(self.sr('ext'), 8 * MiB)
        data = pattern(8 * MiB, 12)
        self.import_vdi(vdi, data)
        self.assertXapiError(
            ['SR_BACKEND_FAILURE_79', '',
             'VDI Invalid size [opterr=shrinking not allowed]', ''],
            self.api.VDI.resize, vdi, str(4 * MiB))
        self.assertEqual(str(8 * MiB), self.api.VDI.get_virtual_size(vdi))
        self.assertEqual(base.sha256(data), self.checksum(vdi))
        self.assertStillServing()

    def test_resize_of_attached_vdi_is_refused(self):
        vm, (vdi,) = self.vm_with_disks([4 * MiB])
        self.assertXapiError(['VDI_IN_USE', vdi, 'resize'],
                             self.api.VDI.resize, vdi, str(8 * MiB))
        self.assertEqual(str(4 * MiB), self.api.VDI.get_virtual_size(vdi))
        self.api.VM.hard_shutdown(vm)
        self.api.VDI.resize(vdi, str(8 * MiB))
        self.assertEqual(str(8 * MiB), self.api.VDI.get_virtual_size(vdi))

    def test_grow_thick_beyond_the_sr(self):
        sr = self.sr('lvm')
        vdi = self.create_vdi(sr, 4 * MiB)
        huge = int(self.api.SR.get_physical_size(sr)) + BLOCK
        self.assertXapiError(['SR_BACKEND_FAILURE_44', '',
                              'There is insufficient space', ''],
                             self.api.VDI.resize, vdi, str(huge))
        self.assertEqual(str(4 * MiB), self.api.VDI.get_virtual_size(vdi))
