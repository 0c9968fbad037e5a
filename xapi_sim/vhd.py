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

"""VHD streams for ``/export_raw_vdi`` and ``/import_raw_vdi?format=vhd``.

Export writes a dynamic VHD (the Virtual Hard Disk Image Format
Specification, as vhd-tool streams it): a footer copy, the dynamic disk
header, the block allocation table (BAT), then one 2 MiB block (sector
bitmap + data) for each part of the disk that holds data, and the footer.
Unallocated parts of the disk are not sent: they read as zeros.

Import takes a dynamic VHD or a fixed one (raw data followed by a footer),
parsed by ``sxm_core.vhd`` (the simulator may import the core; the core
never imports the simulator).
"""

import struct

from sxm_core import vhd as vhdlib
from xapi_sim import storage

VHD_BLOCK = vhdlib.BLOCK_SIZE
SECTOR = vhdlib.SECTOR
VhdError = vhdlib.VhdError
_BITMAP = vhdlib.bitmap_size(VHD_BLOCK)
# xen-api Constants.max_vhd_size: 2040 GiB.
MAX_VHD_SIZE = 2040 << 30


def footer(size, disk_type=vhdlib.DISK_DYNAMIC, data_offset=SECTOR,
           unique_id=None):
    """A footer as vhd-tool writes it (creator ``xsim``)."""
    return vhdlib.footer(size, disk_type, data_offset, unique_id,
                         creator_app=b'xsim')


def _layout(disk):
    """(entries, BAT bytes, [(vhd block, file offset)]) of an export."""
    entries = -(-disk.size // VHD_BLOCK)
    per = VHD_BLOCK // storage.BLOCK
    used = sorted({b // per for b in disk.allocated_blocks()})
    bat_size = -(-entries * 4 // SECTOR) * SECTOR
    offset = 3 * SECTOR + bat_size
    bat = [vhdlib.UNUSED] * entries
    placed = []
    for index in used:
        bat[index] = offset // SECTOR
        placed.append((index, offset))
        offset += _BITMAP + VHD_BLOCK
    table = struct.pack('>%dI' % entries, *bat).ljust(bat_size, b'\xff')
    return entries, table, placed


def export_chunks(disk):
    """The VHD of ``disk``, as a sequence of byte strings."""
    entries, table, placed = _layout(disk)
    foot = footer(disk.size)
    yield foot
    yield vhdlib.dynamic_header(entries, 3 * SECTOR, VHD_BLOCK)
    yield table
    bitmap = b'\xff' * _BITMAP
    for index, _ in placed:
        yield bitmap
        start = index * VHD_BLOCK
        data = disk.read(start, VHD_BLOCK)
        yield data.ljust(VHD_BLOCK, b'\0')
    yield foot


def import_stream(read, length, write, capacity):
    """Write the VHD read from ``read`` through ``write(offset, data)``.

    ``capacity`` is the VDI's size: a bigger virtual disk is refused
    before anything is written. The parsing is ``sxm_core.vhd``'s.
    """
    vhdlib.read_stream(read, length, write, capacity)
