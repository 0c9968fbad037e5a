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

"""VDI transfers and VHD parsing against the simulator over HTTP.

A real ``SessionPool`` and ``sxm_core.transfer`` write and read the bytes
of simulated VDIs; the test checks them through its own session's raw
``/export_raw_vdi`` by sha256.
"""

import hashlib
import io
import random
import tempfile
import urllib.parse

from sxm_core import errors
from sxm_core import transfer
from sxm_core import vhd
from tests.functional.sxm_core import base

MiB = base.MiB


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class TestTransfer(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        self.xpool = self.pool('pool-a')
        self.transfer = transfer.VdiTransfer(self.xpool, label='test-xfer')

    def vdi(self, size=8 * MiB, sr=base.EXT):
        return self.create_vdi(self.sr_named(sr), size)

    def image_file(self, data):
        f = tempfile.NamedTemporaryFile()
        self.addCleanup(f.close)
        f.write(data)
        f.flush()
        f.seek(0)
        return f

    def written(self, size=8 * MiB, seed=3):
        """A VDI with data in two of its 2 MiB blocks (not in the last)."""
        data = bytearray(size)
        rng = random.Random(seed)
        data[0:MiB] = rng.randbytes(MiB)
        middle = size // 2 + MiB // 2
        data[middle:middle + 4096] = rng.randbytes(4096)
        vdi = self.vdi(size)
        self.fill_with(vdi, bytes(data))
        return vdi, bytes(data)

    def fill_with(self, vdi, data):
        self.assertEqual(200, self.import_vdi(vdi, data))

    def tasks_named(self, label):
        return [t for t in self.api.task.get_all()
                if self.api.task.get_name_label(t) == label]

    def test_raw_round_trip_of_real_bytes(self):
        data = random.Random(1).randbytes(3 * MiB + 512)
        vdi = self.vdi()
        self.transfer.upload(vdi, self.image_file(data).name)
        self.assertEqual(sha256(data + bytes(8 * MiB - len(data))),
                         sha256(self.export_vdi(vdi)))
        with tempfile.TemporaryFile() as out:
            self.assertEqual(8 * MiB, self.transfer.download(vdi, out,
                                                             sparse=True))
            out.seek(0)
            back = out.read()
        self.assertEqual(sha256(self.export_vdi(vdi)), sha256(back))
        # Each transfer's task was completed and removed.
        self.assertEqual([], self.tasks_named('test-xfer'))

    def test_vhd_export_parses_and_imports_elsewhere(self):
        vdi, data = self.written()
        with tempfile.TemporaryFile() as image:
            self.transfer.download(vdi, image, 'vhd')
            image.seek(0)
            foot = vhd.inspect(image)
            self.assertEqual((8 * MiB, vhd.DISK_DYNAMIC),
                             (foot.current_size, foot.disk_type))
            # Only the two blocks with data travel.
            self.assertLess(image.seek(0, 2), 5 * MiB)
            image.seek(0)
            disk = bytearray(8 * MiB)

            def write(offset, chunk):
                disk[offset:offset + len(chunk)] = chunk
            length = image.seek(0, 2)
            image.seek(0)
            self.assertEqual(8 * MiB, vhd.read_stream(image.read, length,
                                                      write))
            self.assertEqual(sha256(data), sha256(bytes(disk)))
            # Into a thick SR of the same pool, as a VHD.
            target = self.vdi(8 * MiB, base.LVM)
            image.seek(0)
            self.transfer.upload(target, image, 'vhd')
        self.assertEqual(sha256(data), sha256(self.export_vdi(target)))

    def test_fixed_vhd_import(self):
        data = random.Random(2).randbytes(2 * MiB)
        image = self.image_file(data + vhd.footer(len(data), vhd.DISK_FIXED))
        vdi = self.vdi(4 * MiB)
        self.transfer.upload(vdi, image, 'vhd')
        self.assertEqual(sha256(data + bytes(2 * MiB)),
                         sha256(self.export_vdi(vdi)))

    def assertUntouched(self, vdi, data, exc):
        self.assertEqual(sha256(data), sha256(self.export_vdi(vdi)))
        self.assertEqual([], self.tasks_named('test-xfer'))
        self.assertNotIn(self.session.handle, str(exc))

    def test_refused_imports_leave_the_vdi_as_it_was(self):
        vdi, data = self.written(4 * MiB)
        # Raw, one byte too many.
        exc = self.assertRaises(
            transfer.TransferFailed, self.transfer.upload, vdi,
            self.image_file(b'\x09' * (4 * MiB + 1)))
        self.assertIn('larger than the VDI', str(exc))
        self.assertUntouched(vdi, data, exc)
        # A VHD of a bigger disk.
        big, _ = self.written(8 * MiB, seed=5)
        with tempfile.TemporaryFile() as image:
            self.transfer.download(big, image, 'vhd')
            image.seek(0)
            exc = self.assertRaises(transfer.TransferFailed,
                                    self.transfer.upload, vdi, image, 'vhd')
            self.assertIn('larger than the disk', str(exc))
            self.assertUntouched(vdi, data, exc)
            # A VHD cut short (its last block gone, the footer kept).
            image.seek(0)
            whole = image.read()
        small, _ = self.written(4 * MiB, seed=6)
        with tempfile.TemporaryFile() as image:
            self.transfer.download(small, image, 'vhd')
            image.seek(0)
            whole = image.read()
        cut = whole[:-(MiB + 512)] + whole[-512:]
        exc = self.assertRaises(transfer.TransferFailed, self.transfer.upload,
                                vdi, self.image_file(cut), 'vhd')
        self.assertIn('truncated', str(exc))
        self.assertUntouched(vdi, data, exc)
        # A footer whose checksum does not match.
        bad = bytearray(whole)
        bad[-470] ^= 0x10
        exc = self.assertRaises(transfer.TransferFailed, self.transfer.upload,
                                vdi, self.image_file(bytes(bad)), 'vhd')
        self.assertIn('checksum', str(exc))
        self.assertUntouched(vdi, data, exc)

    def test_unknown_format_is_refused_by_name(self):
        vdi, data = self.written(4 * MiB)
        exc = self.assertRaises(transfer.TransferFailed,
                                self.transfer.download, vdi, io.BytesIO(),
                                'qcow2')
        self.assertIn("'qcow2'", str(exc))
        self.assertUntouched(vdi, data, exc)

    def test_xapi_refusal_is_typed_and_never_names_the_session(self):
        vdi, _ = self.written(4 * MiB)
        self.api.VDI.destroy(vdi)
        # The session the transfer used, as the server saw it.
        seen = []
        real = transfer.put

        def spy(url, session_id, *args, **kwargs):
            seen.append(session_id)
            return real(url, session_id, *args, **kwargs)
        self.patch(transfer, 'put', spy)
        self.patch(self.xpool, 'call', self.pool_call_without_size(
            self.xpool.call))
        exc = self.assertRaises(errors.SxmError, self.transfer.upload,
                                vdi, self.image_file(b'\1' * MiB))
        self.assertEqual(1, len(seen))
        # The task failed with XAPI's reason; its typed error wins.
        self.assertIsInstance(exc, errors.HandleInvalid)
        for text in (str(exc), repr(exc), repr(exc.args),
                     repr(getattr(exc, 'params', ''))):
            self.assertNotIn(seen[0], text)
        self.assertEqual([], self.tasks_named('test-xfer'))

    @staticmethod
    def pool_call_without_size(call):
        # The preflight reads the VDI's size; a VDI that vanished after
        # it is what reaches the HTTP handler.
        def wrapped(method, *args):
            if method == 'VDI.get_virtual_size':
                return str(64 * MiB)
            return call(method, *args)
        return wrapped

    def test_low_level_get_masks_the_session_in_errors(self):
        handle = self.session.handle
        exc = self.assertRaises(
            transfer.TransferFailed, transfer.get, self.url(), handle,
            'OpaqueRef:no-such-vdi', io.BytesIO())
        self.assertIn('HTTP 404', str(exc))
        self.assertNotIn(handle, str(exc))
        url = '%sexport_raw_vdi?%s' % (self.url(), urllib.parse.urlencode(
            {'session_id': handle, 'vdi': 'x'}))
        self.assertNotIn(handle, transfer.mask(url))

    def test_low_level_put_streams_chunks(self):
        vdi = self.vdi(4 * MiB)
        chunks = [random.Random(i).randbytes(MiB) for i in range(2)]
        transfer.put(self.url(), self.session.handle, vdi, iter(chunks),
                     2 * MiB)
        self.assertEqual(sha256(b''.join(chunks) + bytes(2 * MiB)),
                         sha256(self.export_vdi(vdi)))

    def test_a_body_shorter_than_announced_fails_at_once(self):
        vdi, data = self.written(4 * MiB)
        exc = self.assertRaises(
            transfer.TransferFailed, self.transfer.upload, vdi,
            self.image_file(b'\5' * MiB), length=2 * MiB)
        self.assertIn('file holds %d' % MiB, str(exc))
        self.assertUntouched(vdi, data, exc)
        # Chunks that stop early end the request instead of leaving the
        # server waiting for the rest until the socket times out.
        exc = self.assertRaises(
            transfer.TransferFailed, transfer.put, self.url(),
            self.session.handle, vdi, iter([b'\6' * MiB]), 2 * MiB,
            timeout=base.DEADLINE)
        self.assertIn('%d bytes announced' % (2 * MiB), str(exc))
        self.assertNotIn(self.session.handle, str(exc))
