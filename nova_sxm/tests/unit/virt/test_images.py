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

"""VHD images to and from raw bytes (the VHD specification's layout)."""

import os
import struct
import tempfile

import testtools

from nova_sxm.virt import images
from sxm_core import vhd

MiB = 1 << 20
BLOCK = 2 * MiB


def dynamic_vhd(size, blocks):
    """A dynamic VHD of ``size`` bytes with ``blocks`` {index: bytes}."""
    footer = bytearray(vhd.footer(size, vhd.DISK_FIXED))
    struct.pack_into('>Q', footer, 16, 512)             # data offset
    struct.pack_into('>I', footer, 60, 3)               # dynamic
    struct.pack_into('>I', footer, 64, 0)
    checksum = (~sum(footer)) & 0xFFFFFFFF
    struct.pack_into('>I', footer, 64, checksum)
    entries = -(-size // BLOCK)
    table = 512 + 1024
    header = bytearray(1024)
    header[:8] = b'cxsparse'
    struct.pack_into('>QQIII', header, 8, 0xFFFFFFFFFFFFFFFF, table,
                     0x00010000, entries, BLOCK)
    struct.pack_into('>I', header, 36, (~sum(header)) & 0xFFFFFFFF)
    bat_bytes = -(-entries * 4 // 512) * 512
    data_start = (table + bat_bytes) // 512
    bat = [0xFFFFFFFF] * entries
    body = bytearray()
    bitmap = 512  # 2 MiB block: 4096 sectors -> 512 bytes of bitmap
    for index, content in sorted(blocks.items()):
        bat[index] = data_start + len(body) // 512
        body += b'\xff' * bitmap + content.ljust(BLOCK, b'\0')
    bat_raw = struct.pack('>%dI' % entries, *bat).ljust(bat_bytes, b'\xff')
    return bytes(footer) + bytes(header) + bat_raw + bytes(body) + \
        bytes(footer)


class VhdTest(testtools.TestCase):

    def convert(self, blob):
        with tempfile.TemporaryFile() as src, \
                tempfile.TemporaryFile() as dst:
            src.write(blob)
            src.flush()
            size = images.vhd_to_raw(src, dst)
            dst.seek(0)
            return size, dst.read()

    def test_fixed_round_trip(self):
        raw = os.urandom(3 * MiB + 512)
        size, back = self.convert(raw + vhd.footer(len(raw),
                                                   vhd.DISK_FIXED))
        self.assertEqual(len(raw), size)
        self.assertEqual(raw, back)

    def test_dynamic_holes_read_as_zeros(self):
        one = os.urandom(BLOCK)
        three = os.urandom(1000)
        size, back = self.convert(dynamic_vhd(4 * BLOCK,
                                              {1: one, 3: three}))
        self.assertEqual(4 * BLOCK, size)
        self.assertEqual(bytes(BLOCK), back[:BLOCK])
        self.assertEqual(one, back[BLOCK:2 * BLOCK])
        self.assertEqual(bytes(BLOCK), back[2 * BLOCK:3 * BLOCK])
        self.assertEqual(three.ljust(BLOCK, b'\0'), back[3 * BLOCK:])

    def test_not_a_vhd(self):
        self.assertRaises(images.BadImage, self.convert, b'\1' * 4096)

    def test_differencing_refused(self):
        footer = bytearray(vhd.footer(MiB))
        struct.pack_into('>I', footer, 60, 4)         # differencing
        struct.pack_into('>I', footer, 64, 0)
        struct.pack_into('>I', footer, 64, (~sum(footer)) & 0xFFFFFFFF)
        exc = self.assertRaises(images.BadImage, self.convert,
                                bytes(MiB) + bytes(footer))
        self.assertIn('differencing', str(exc))
