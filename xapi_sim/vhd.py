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

Import takes a dynamic VHD or a fixed one (raw data followed by a footer).
"""

import struct
import time
import uuid as uuidlib

from xapi_sim import storage

VHD_BLOCK = 2 << 20
SECTOR = 512
_UNUSED = 0xFFFFFFFF
_EPOCH_2000 = 946684800
_BITMAP = SECTOR  # 4096 sectors a block: 512 bytes of bitmap


class VhdError(ValueError):
    pass


def _checksum(data):
    return (~sum(data)) & 0xFFFFFFFF


def _geometry(size):
    """Cylinders, heads, sectors per track, per the VHD specification."""
    total = min(size // SECTOR, 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = max(4, (cth + 1023) // 1024)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def footer(size, disk_type=3, data_offset=SECTOR, unique_id=None):
    cyl, heads, spt = _geometry(size)
    fields = struct.pack(
        '>8sIIQI4sI4sQQHBBII16sB',
        b'conectix', 2, 0x00010000, data_offset,
        int(time.time()) - _EPOCH_2000, b'xsim', 0x00010000, b'Wi2k',
        size, size, cyl, heads, spt, disk_type, 0,
        (unique_id or uuidlib.uuid4()).bytes, 0)
    raw = fields.ljust(SECTOR, b'\0')
    return raw[:64] + struct.pack('>I', _checksum(raw)) + raw[68:]


def _dynamic_header(entries, table_offset):
    raw = struct.pack('>8sQQIII', b'cxsparse', 0xFFFFFFFFFFFFFFFF,
                      table_offset, 0x00010000, entries, VHD_BLOCK)
    raw = raw.ljust(1024, b'\0')
    return raw[:36] + struct.pack('>I', _checksum(raw)) + raw[40:]


def _layout(disk):
    """(entries, BAT bytes, [(vhd block, file offset)]) of an export."""
    entries = -(-disk.size // VHD_BLOCK)
    per = VHD_BLOCK // storage.BLOCK
    used = sorted({b // per for b in disk.allocated_blocks()})
    bat_size = -(-entries * 4 // SECTOR) * SECTOR
    offset = 3 * SECTOR + bat_size
    bat = [_UNUSED] * entries
    placed = []
    for index in used:
        bat[index] = offset // SECTOR
        placed.append((index, offset))
        offset += _BITMAP + VHD_BLOCK
    table = struct.pack('>%dI' % entries, *bat).ljust(bat_size, b'\xff')
    return entries, table, placed, offset + SECTOR


def export_length(disk):
    return _layout(disk)[3]


def export_chunks(disk):
    """The VHD of ``disk``, as a sequence of byte strings."""
    entries, table, placed, _ = _layout(disk)
    foot = footer(disk.size)
    yield foot
    yield _dynamic_header(entries, 3 * SECTOR)
    yield table
    bitmap = b'\xff' * _BITMAP
    for index, _ in placed:
        yield bitmap
        start = index * VHD_BLOCK
        data = disk.read(start, VHD_BLOCK)
        yield data.ljust(VHD_BLOCK, b'\0')
    yield foot


class _Reader(object):
    def __init__(self, read, length):
        self._read = read
        self.remaining = length
        self.pos = 0

    def take(self, n):
        out = bytearray()
        while len(out) < n:
            if self.remaining <= 0:
                raise VhdError('the VHD stream ends early')
            chunk = self._read(min(n - len(out), self.remaining, 1 << 20))
            if not chunk:
                raise VhdError('the VHD stream ends early')
            out += chunk
            self.remaining -= len(chunk)
            self.pos += len(chunk)
        return bytes(out)

    def skip_to(self, offset):
        if offset < self.pos:
            raise VhdError('VHD blocks out of order')
        while self.pos < offset:
            self.take(min(offset - self.pos, 1 << 20))

    def drain(self):
        while self.remaining > 0:
            if not self._read(min(self.remaining, 1 << 20)):
                break
            self.remaining -= min(self.remaining, 1 << 20)


def _parse_footer(raw):
    if raw[:8] != b'conectix':
        raise VhdError('not a VHD (no footer cookie)')
    size = struct.unpack('>Q', raw[48:56])[0]
    disk_type = struct.unpack('>I', raw[60:64])[0]
    if _checksum(raw[:64] + b'\0' * 4 + raw[68:]) != struct.unpack(
            '>I', raw[64:68])[0]:
        raise VhdError('bad VHD footer checksum')
    return size, disk_type


def import_stream(read, length, write, capacity):
    """Write the VHD read from ``read`` through ``write(offset, data)``.

    ``capacity`` is the VDI's size: a bigger virtual disk is refused.
    """
    reader = _Reader(read, length)
    try:
        head = reader.take(SECTOR)
        if head[:8] != b'conectix':
            return _import_fixed(reader, head, length, write, capacity)
        size, disk_type = _parse_footer(head)
        if disk_type not in (3, 4):
            raise VhdError('VHD disk type %d is not dynamic' % disk_type)
        if disk_type == 4:
            raise VhdError('differencing VHDs need a parent')
        if size > capacity:
            raise VhdError('the VHD (%d bytes) is larger than the VDI (%d)'
                           % (size, capacity))
        header = reader.take(1024)
        if header[:8] != b'cxsparse':
            raise VhdError('no dynamic disk header')
        table_offset, _, entries, block_size = struct.unpack(
            '>QIII', header[16:36])
        reader.skip_to(table_offset)
        bat = struct.unpack('>%dI' % entries, reader.take(entries * 4))
        bitmap_size = -(-(block_size // SECTOR) // 8 // SECTOR) * SECTOR
        blocks = sorted((off * SECTOR, i) for i, off in enumerate(bat)
                        if off != _UNUSED)
        for offset, index in blocks:
            reader.skip_to(offset)
            bitmap = reader.take(bitmap_size)
            data = reader.take(block_size)
            _write_present(write, index * block_size, data, bitmap, size)
    finally:
        reader.drain()


def _write_present(write, base, data, bitmap, size):
    """Write the runs of sectors the block's bitmap marks present."""
    sectors = len(data) // SECTOR
    s = 0
    while s < sectors:
        if not bitmap[s // 8] & (0x80 >> (s % 8)):
            s += 1
            continue
        first = s
        while s < sectors and bitmap[s // 8] & (0x80 >> (s % 8)):
            s += 1
        start = base + first * SECTOR
        end = min(base + s * SECTOR, size)
        if start < end:
            write(start, data[first * SECTOR:end - base])


def _import_fixed(reader, head, length, write, capacity):
    size = length - SECTOR
    if size < 0 or size % SECTOR:
        raise VhdError('not a VHD: no footer and not sector-aligned')
    if size > capacity:
        raise VhdError('the VHD (%d bytes) is larger than the VDI (%d)'
                       % (size, capacity))
    offset = 0
    chunk = head
    while True:
        take = min(len(chunk), size - offset)
        if take > 0:
            write(offset, chunk[:take])
            offset += take
        if offset >= size:
            tail = chunk[take:] + reader.take(SECTOR - len(chunk[take:]))
            _parse_footer(tail)
            return
        chunk = reader.take(min(1 << 20, size - offset))
