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

"""``vhd.digest``: the disk a VHD holds, hashed whatever its allocation.

On images packed by hand from the specification (``test_vhd``'s
builders), compared with hashlib over the raw disk built here.
"""

import hashlib
import io
import os
import struct

import testtools

from sxm_core import vhd
from tests.unit.sxm_core import test_vhd

MiB = test_vhd.MiB
BLOCK = test_vhd.BLOCK


def digest(image, capacity=None):
    return vhd.digest(io.BytesIO(image).read, len(image), capacity)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class TestDigest(testtools.TestCase):

    def test_dynamic_with_holes_and_absent_sectors(self):
        one = os.urandom(BLOCK)
        bitmap = bytearray(512)
        bitmap[0] = 0x80          # only sector 0 of block 3 is present
        three = os.urandom(BLOCK)
        image = test_vhd.hand_dynamic(4 * BLOCK + MiB, {1: one, 3: three},
                                      bitmaps={3: bytes(bitmap)})
        disk = (bytes(BLOCK) + one + bytes(BLOCK) + three[:512]
                + bytes(BLOCK - 512) + bytes(MiB))
        self.assertEqual((sha256(disk), 4 * BLOCK + MiB), digest(image))

    def test_allocation_does_not_change_it(self):
        data = os.urandom(3000)
        sparse = test_vhd.hand_dynamic(3 * BLOCK, {1: data})
        # The same disk with block 0 allocated and all zeros, and fixed.
        allocated = test_vhd.hand_dynamic(3 * BLOCK, {0: b'', 1: data})
        raw = bytes(BLOCK) + data.ljust(BLOCK, b'\0') + bytes(BLOCK)
        fixed = raw + test_vhd.hand_footer(len(raw), 2, vhd.NO_OFFSET)
        self.assertEqual({(sha256(raw), 3 * BLOCK)},
                         {digest(sparse), digest(allocated), digest(fixed)})
        # One byte more is another disk.
        other = test_vhd.hand_dynamic(3 * BLOCK, {1: data + b'\1'})
        self.assertNotEqual(digest(sparse), digest(other))

    def test_blocks_out_of_disk_order_are_refused_by_name(self):
        image = bytearray(test_vhd.hand_dynamic(
            2 * BLOCK, {0: b'\1' * 512, 1: b'\2' * 512}))
        # Swap the two BAT entries: block 1 now lies first in the file.
        first, second = struct.unpack_from('>II', image, 1536)
        struct.pack_into('>II', image, 1536, second, first)
        exc = self.assertRaises(vhd.VhdError, digest, bytes(image))
        self.assertIn('not stored in disk order', str(exc))

    def test_a_broken_image_is_a_vhd_error(self):
        image = test_vhd.hand_dynamic(2 * BLOCK, {1: b'\3' * 512})
        exc = self.assertRaises(vhd.VhdError, digest, image[:-600])
        self.assertIn('ends early', str(exc))
        exc = self.assertRaises(vhd.VhdError, digest, image, BLOCK)
        self.assertIn('larger than the disk', str(exc))
