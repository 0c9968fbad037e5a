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

"""The VHD parser, on images packed here by hand from the specification.

The images are built field by field with ``struct`` (not with the module's
own writers), so that a wrong offset in the parser cannot hide behind the
same wrong offset in the writer.
"""

import io
import os
import struct
import tempfile

import testtools

from sxm_core import vhd

MiB = 1 << 20
BLOCK = 2 * MiB


def _sum(raw):
    return (~sum(raw)) & 0xFFFFFFFF


def hand_footer(size, disk_type, data_offset):
    raw = bytearray(512)
    raw[0:8] = b'conectix'
    struct.pack_into('>IIQI', raw, 8, 2, 0x00010000, data_offset, 0)
    raw[28:32] = b'test'
    struct.pack_into('>QQ', raw, 40, size, size)
    struct.pack_into('>HBB', raw, 56, 1024, 16, 63)
    struct.pack_into('>I', raw, 60, disk_type)
    raw[68:84] = os.urandom(16)
    struct.pack_into('>I', raw, 64, _sum(raw))
    return bytes(raw)


def hand_dynamic(size, blocks, bitmaps=None, entries=None,
                 block_size=BLOCK):
    """A dynamic VHD: ``blocks`` {index: data}, ``bitmaps`` {index: bytes}.

    Layout as vhd-util writes it: footer copy, header at 512, BAT at 1536,
    then the blocks (bitmap + data), then the footer.
    """
    entries = entries or -(-size // block_size)
    foot = hand_footer(size, 3, 512)
    header = bytearray(1024)
    header[0:8] = b'cxsparse'
    struct.pack_into('>QQIII', header, 8, 0xFFFFFFFFFFFFFFFF, 1536,
                     0x00010000, entries, block_size)
    struct.pack_into('>I', header, 36, _sum(header))
    bat_bytes = -(-entries * 4 // 512) * 512
    start = (1536 + bat_bytes) // 512
    bat = [0xFFFFFFFF] * entries
    body = bytearray()
    bitmap_len = -(-(block_size // 512 // 8) // 512) * 512
    for index, data in sorted(blocks.items()):
        bat[index] = start + len(body) // 512
        bitmap = (bitmaps or {}).get(index, b'\xff' * (block_size // 4096))
        body += bitmap.ljust(bitmap_len, b'\0')
        body += data.ljust(block_size, b'\0')
    table = struct.pack('>%dI' % entries, *bat).ljust(bat_bytes, b'\xff')
    return foot + bytes(header) + table + bytes(body) + foot


def convert(image, capacity=None):
    """(virtual size, disk bytes, write calls) of ``read_stream``."""
    disk = {}
    calls = []

    def write(offset, data):
        calls.append((offset, len(data)))
        disk[offset] = data

    size = vhd.read_stream(io.BytesIO(image).read, len(image), write,
                           capacity)
    out = bytearray(size)
    for offset, data in disk.items():
        out[offset:offset + len(data)] = data
    return size, bytes(out), calls


class TestFooter(testtools.TestCase):

    def test_writer_agrees_with_the_specification(self):
        raw = vhd.footer(5 * MiB, vhd.DISK_DYNAMIC, 512)
        self.assertEqual(512, len(raw))
        self.assertEqual(b'conectix', raw[:8])
        self.assertEqual(5 * MiB, struct.unpack_from('>Q', raw, 48)[0])
        self.assertEqual(3, struct.unpack_from('>I', raw, 60)[0])
        zeroed = bytearray(raw)
        zeroed[64:68] = bytes(4)
        self.assertEqual(_sum(zeroed), struct.unpack_from('>I', raw, 64)[0])
        # A fixed disk's footer points at no header.
        fixed = vhd.footer(MiB, vhd.DISK_FIXED)
        self.assertEqual(vhd.NO_OFFSET,
                         struct.unpack_from('>Q', fixed, 16)[0])

    def test_parses_a_hand_made_footer(self):
        foot = vhd.parse_footer(hand_footer(7 * MiB, 2, vhd.NO_OFFSET))
        self.assertEqual((7 * MiB, 2, (1024, 16, 63)),
                         (foot.current_size, foot.disk_type,
                          (foot.cylinders, foot.heads,
                           foot.sectors_per_track)))

    def test_geometry_of_the_specification(self):
        # A small disk keeps the algorithm's first choice: 17 a track.
        cyl, heads, spt = vhd.geometry(127 * MiB)
        self.assertEqual(17, spt)
        self.assertLessEqual(cyl * heads * spt * 512, 127 * MiB)
        self.assertEqual((65535, 16, 255), vhd.geometry(1 << 40))

    def test_no_cookie(self):
        exc = self.assertRaises(vhd.VhdError, vhd.parse_footer,
                                b'\1' * 512)
        self.assertIn('conectix', str(exc))

    def test_bad_checksum_names_both_values(self):
        raw = bytearray(hand_footer(MiB, 2, vhd.NO_OFFSET))
        raw[50] ^= 0x40  # a bit of the size flips on the way
        exc = self.assertRaises(vhd.VhdError, vhd.parse_footer, bytes(raw))
        self.assertIn('checksum', str(exc))
        self.assertIn('0x', str(exc))

    def test_truncated_footer(self):
        exc = self.assertRaises(vhd.VhdError, vhd.parse_footer,
                                hand_footer(MiB, 2, vhd.NO_OFFSET)[:100])
        self.assertIn('truncated', str(exc))

    def test_differencing_and_unknown_types_are_refused_by_name(self):
        exc = self.assertRaises(vhd.VhdError, vhd.parse_footer,
                                hand_footer(MiB, 4, 512))
        self.assertIn('differencing', str(exc))
        exc = self.assertRaises(vhd.VhdError, vhd.parse_footer,
                                hand_footer(MiB, 9, 512))
        self.assertIn('disk type 9', str(exc))

    def test_error_is_a_core_error(self):
        from sxm_core import errors
        exc = self.assertRaises(vhd.VhdError, vhd.parse_footer, b'')
        self.assertIsInstance(exc, errors.SxmError)


class TestDynamicHeader(testtools.TestCase):

    def header(self, image):
        return bytearray(image[512:1536])

    def test_parses_a_hand_made_header(self):
        head = vhd.parse_dynamic_header(self.header(hand_dynamic(
            6 * MiB, {})))
        self.assertEqual((1536, 3, BLOCK),
                         (head.table_offset, head.max_table_entries,
                          head.block_size))

    def test_writer_round_trips(self):
        head = vhd.parse_dynamic_header(vhd.dynamic_header(5, 2048))
        self.assertEqual((2048, 5, vhd.BLOCK_SIZE),
                         (head.table_offset, head.max_table_entries,
                          head.block_size))

    def test_bad_cookie_and_checksum(self):
        raw = self.header(hand_dynamic(2 * MiB, {}))
        raw[0:8] = b'xxsparse'
        self.assertIn('cxsparse', str(self.assertRaises(
            vhd.VhdError, vhd.parse_dynamic_header, raw)))
        raw = self.header(hand_dynamic(2 * MiB, {}))
        raw[30] ^= 1
        self.assertIn('checksum', str(self.assertRaises(
            vhd.VhdError, vhd.parse_dynamic_header, raw)))

    def test_block_size_must_be_a_power_of_two(self):
        raw = self.header(hand_dynamic(2 * MiB, {}))
        struct.pack_into('>I', raw, 32, 3 * MiB)
        struct.pack_into('>I', raw, 36, 0)
        struct.pack_into('>I', raw, 36, _sum(raw))
        self.assertIn('power of two', str(self.assertRaises(
            vhd.VhdError, vhd.parse_dynamic_header, raw)))


class TestReadStream(testtools.TestCase):

    def test_dynamic_holes_read_as_zeros(self):
        one = os.urandom(BLOCK)
        three = os.urandom(1000)
        size, disk, _ = convert(hand_dynamic(4 * BLOCK, {1: one, 3: three}))
        self.assertEqual(4 * BLOCK, size)
        self.assertEqual(bytes(BLOCK) + one + bytes(BLOCK)
                         + three.ljust(BLOCK, b'\0'), disk)

    def test_only_sectors_the_bitmap_marks_are_written(self):
        data = os.urandom(BLOCK)
        bitmap = bytearray(512)
        bitmap[0] = 0x80          # sector 0
        bitmap[1] = 0x01          # sector 15
        size, disk, calls = convert(hand_dynamic(
            BLOCK, {0: data}, bitmaps={0: bytes(bitmap)}))
        self.assertEqual([(0, 512), (15 * 512, 512)], calls)
        self.assertEqual(data[:512], disk[:512])
        self.assertEqual(data[15 * 512:16 * 512], disk[15 * 512:16 * 512])
        self.assertEqual(bytes(512), disk[512:1024])

    def test_last_block_is_cut_at_the_virtual_size(self):
        size, disk, calls = convert(hand_dynamic(3 * MiB, {1: b'\7' * BLOCK}))
        self.assertEqual(3 * MiB, size)
        self.assertEqual(3 * MiB, max(o + n for o, n in calls))

    def test_fixed(self):
        raw = os.urandom(MiB + 512)
        size, disk, _ = convert(raw + hand_footer(len(raw), 2,
                                                  vhd.NO_OFFSET))
        self.assertEqual((len(raw), raw), (size, disk))

    def test_fixed_footer_must_state_the_data_size(self):
        raw = os.urandom(MiB)
        exc = self.assertRaises(vhd.VhdError, convert,
                                raw + hand_footer(2 * MiB, 2, vhd.NO_OFFSET))
        self.assertIn('size', str(exc))

    def test_too_big_is_refused_before_any_write(self):
        image = hand_dynamic(4 * BLOCK, {0: b'\1' * BLOCK})
        calls = []
        exc = self.assertRaises(
            vhd.VhdError, vhd.read_stream, io.BytesIO(image).read,
            len(image), lambda o, d: calls.append(o), 2 * BLOCK)
        self.assertIn('larger than the disk', str(exc))
        self.assertEqual([], calls)

    def test_truncated_image(self):
        image = hand_dynamic(2 * BLOCK, {1: b'\1' * BLOCK})
        exc = self.assertRaises(vhd.VhdError, convert, image[:-MiB])
        self.assertIn('ends early', str(exc))

    def test_missing_end_footer(self):
        image = hand_dynamic(2 * BLOCK, {1: b'\1' * BLOCK})
        exc = self.assertRaises(vhd.VhdError, convert, image[:-512])
        self.assertIn('footer at the end', str(exc))

    def test_bat_smaller_than_the_disk(self):
        image = hand_dynamic(4 * BLOCK, {}, entries=2)
        exc = self.assertRaises(vhd.VhdError, convert, image)
        self.assertIn('needs 4', str(exc))

    def test_overlapping_blocks(self):
        image = bytearray(hand_dynamic(2 * BLOCK, {0: b'\1' * BLOCK,
                                                   1: b'\2' * BLOCK}))
        first = struct.unpack_from('>I', image, 1536)[0]
        struct.pack_into('>I', image, 1540, first)  # both at one place
        exc = self.assertRaises(vhd.VhdError, convert, bytes(image))
        self.assertIn('overlap', str(exc))

    def test_not_a_vhd(self):
        exc = self.assertRaises(vhd.VhdError, convert, b'\1' * 4000)
        self.assertIn('conectix', str(exc))


class TestInspect(testtools.TestCase):

    def file_of(self, image):
        f = tempfile.TemporaryFile()
        self.addCleanup(f.close)
        f.write(image)
        f.seek(0)
        return f

    def test_good_images(self):
        f = self.file_of(hand_dynamic(2 * BLOCK, {1: b'\1' * BLOCK}))
        self.assertEqual(2 * BLOCK, vhd.inspect(f).current_size)
        self.assertEqual(0, f.tell())
        raw = b'\3' * MiB
        f = self.file_of(raw + hand_footer(MiB, 2, vhd.NO_OFFSET))
        self.assertEqual(2, vhd.inspect(f, capacity=MiB).disk_type)

    def test_block_past_the_end(self):
        image = hand_dynamic(2 * BLOCK, {1: b'\1' * BLOCK})
        # Cut a block's tail but keep a valid footer at the end.
        f = self.file_of(image[:-(MiB + 512)] + image[-512:])
        exc = self.assertRaises(vhd.VhdError, vhd.inspect, f)
        self.assertIn('block 1', str(exc))

    def test_capacity(self):
        f = self.file_of(hand_dynamic(2 * BLOCK, {}))
        exc = self.assertRaises(vhd.VhdError, vhd.inspect, f, BLOCK)
        self.assertIn('larger than the disk', str(exc))

    def test_damaged_end_footer(self):
        image = bytearray(hand_dynamic(BLOCK, {}))
        image[-400] ^= 0xFF
        exc = self.assertRaises(vhd.VhdError, vhd.inspect,
                                self.file_of(bytes(image)))
        self.assertIn('checksum', str(exc))
