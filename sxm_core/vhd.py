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

"""VHD images (the Virtual Hard Disk Image Format Specification).

The one VHD parser of the project: the 512-byte footer (cookie
``conectix``, big-endian fields, one's complement checksum), the dynamic
disk header (cookie ``cxsparse``), the block allocation table (BAT) and
each block's sector bitmap. Fixed (raw data then a footer) and dynamic
disks are read; differencing disks (a chain) are refused, for they mean
nothing without their parent.

``read_stream`` turns a VHD read front to back (a socket, a file) into
``write(offset, data)`` calls of the disk's data; ``inspect`` checks an
image file's structure without reading its data, so that a bad image is
refused before anything is written; ``digest`` hashes the disk an image
holds, so that two images of one disk compare equal however each stores
its blocks. ``footer`` and ``dynamic_header``
write the structures. Every refusal is a ``VhdError`` naming the problem.
"""

import collections
import hashlib
import os
import struct
import time
import uuid as uuidlib

from sxm_core import errors

SECTOR = 512
FOOTER_SIZE = 512
HEADER_SIZE = 1024
COOKIE = b'conectix'
DYN_COOKIE = b'cxsparse'
DISK_FIXED, DISK_DYNAMIC, DISK_DIFF = 2, 3, 4
DISK_TYPES = {DISK_FIXED: 'fixed', DISK_DYNAMIC: 'dynamic',
              DISK_DIFF: 'differencing'}
# vhd-util's and xapi's block size.
BLOCK_SIZE = 2 << 20
UNUSED = 0xFFFFFFFF
NO_OFFSET = 0xFFFFFFFFFFFFFFFF
# Seconds between the Unix epoch and the VHD epoch (2000-01-01 UTC).
VHD_EPOCH = 946684800
_CHUNK = 1 << 20
_FOOTER = struct.Struct('>8sIIQI4sI4sQQHBBII16sB427x')
_HEADER = struct.Struct('>8sQQIIII16sI4x512s192s256x')

Footer = collections.namedtuple('Footer', [
    'features', 'version', 'data_offset', 'timestamp', 'creator_app',
    'creator_version', 'creator_os', 'original_size', 'current_size',
    'cylinders', 'heads', 'sectors_per_track', 'disk_type', 'checksum',
    'unique_id', 'saved_state'])

DynamicHeader = collections.namedtuple('DynamicHeader', [
    'data_offset', 'table_offset', 'version', 'max_table_entries',
    'block_size', 'checksum', 'parent_uuid'])


class VhdError(errors.SxmError, ValueError):
    """Not a VHD this code can read; the message says why."""

    message = 'Not a usable VHD: %(reason)s'


def _bad(reason, *args):
    return VhdError(reason=reason % args if args else reason)


def checksum(raw, at):
    """One's complement of the byte sum, the 4 bytes at ``at`` as zeros."""
    total = sum(raw) - sum(raw[at:at + 4])
    return (~total) & 0xFFFFFFFF


def geometry(size):
    """(cylinders, heads, sectors per track): the specification's CHS."""
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


def bitmap_size(block_size):
    """Bytes of a block's sector bitmap, padded to whole sectors."""
    nbytes = -(-(block_size // SECTOR) // 8)
    return -(-nbytes // SECTOR) * SECTOR


def footer(size, disk_type=DISK_DYNAMIC, data_offset=SECTOR,
           unique_id=None, creator_app=b'sxm ', timestamp=None):
    """The 512-byte footer of a ``size``-byte disk.

    A fixed disk's footer has no data offset (``NO_OFFSET``); a dynamic
    disk's points at its dynamic header.
    """
    if disk_type == DISK_FIXED and data_offset == SECTOR:
        data_offset = NO_OFFSET
    cyl, heads, spt = geometry(size)
    when = int(time.time() if timestamp is None else timestamp)
    raw = bytearray(_FOOTER.pack(
        COOKIE, 2, 0x00010000, data_offset,
        max(0, when - VHD_EPOCH) & 0xFFFFFFFF, creator_app[:4].ljust(4),
        0x00010000, b'Wi2k', size, size, cyl, heads, spt, disk_type, 0,
        (unique_id or uuidlib.uuid4()).bytes, 0))
    struct.pack_into('>I', raw, 64, checksum(raw, 64))
    return bytes(raw)


def parse_footer(raw, where='footer'):
    """The Footer of 512 bytes ``raw``; VhdError if it is not one."""
    if len(raw) < FOOTER_SIZE:
        raise _bad('the %s is %d bytes long, not %d (the image is '
                   'truncated)', where, len(raw), FOOTER_SIZE)
    raw = bytes(raw[:FOOTER_SIZE])
    if raw[:8] != COOKIE:
        raise _bad('no VHD %s (cookie "conectix" missing)', where)
    fields = _FOOTER.unpack(raw)
    foot = Footer(*fields[1:])
    want = checksum(raw, 64)
    if foot.checksum != want:
        raise _bad('bad %s checksum: stored 0x%08x, computed 0x%08x',
                   where, foot.checksum, want)
    if foot.version >> 16 != 1:
        raise _bad('unsupported VHD version %d.%d in the %s',
                   foot.version >> 16, foot.version & 0xFFFF, where)
    if foot.disk_type not in DISK_TYPES:
        raise _bad('unknown VHD disk type %d in the %s', foot.disk_type,
                   where)
    if foot.disk_type == DISK_DIFF:
        raise _bad('differencing VHDs (with a parent) are not supported; '
                   'use a flattened (fixed or dynamic) image')
    return foot


def dynamic_header(entries, table_offset, block_size=BLOCK_SIZE):
    """The 1024-byte dynamic disk header (no parent)."""
    raw = bytearray(_HEADER.pack(DYN_COOKIE, NO_OFFSET, table_offset,
                                 0x00010000, entries, block_size, 0,
                                 bytes(16), 0, bytes(512), bytes(192)))
    struct.pack_into('>I', raw, 36, checksum(raw, 36))
    return bytes(raw)


def parse_dynamic_header(raw):
    """The DynamicHeader of 1024 bytes ``raw``; VhdError if not one."""
    if len(raw) < HEADER_SIZE:
        raise _bad('the dynamic disk header is truncated (%d of %d '
                   'bytes)', len(raw), HEADER_SIZE)
    raw = bytes(raw[:HEADER_SIZE])
    if raw[:8] != DYN_COOKIE:
        raise _bad('no dynamic disk header (cookie "cxsparse" missing)')
    fields = _HEADER.unpack(raw)
    head = DynamicHeader(*fields[1:8])
    want = checksum(raw, 36)
    if head.checksum != want:
        raise _bad('bad dynamic header checksum: stored 0x%08x, computed '
                   '0x%08x', head.checksum, want)
    bs = head.block_size
    if bs < SECTOR or bs % SECTOR or bs & (bs - 1):
        raise _bad('block size %d is not a power of two multiple of %d',
                   bs, SECTOR)
    if head.table_offset % SECTOR:
        raise _bad('the BAT offset %d is not sector-aligned',
                   head.table_offset)
    return head


def _check_sizes(foot, head):
    need = -(-foot.current_size // head.block_size)
    if head.max_table_entries < need:
        raise _bad('the BAT has %d entries; a disk of %d bytes in blocks '
                   'of %d needs %d', head.max_table_entries,
                   foot.current_size, head.block_size, need)
    return need


def _check_capacity(foot, capacity):
    if capacity is not None and foot.current_size > capacity:
        raise _bad('its virtual size (%d bytes) is larger than the disk it '
                   'goes to (%d bytes)', foot.current_size, capacity)


class _Stream(object):
    """A front-to-back reader of at most ``length`` bytes."""

    def __init__(self, read, length):
        self._read = read
        self.remaining = length
        self.pos = 0

    def take(self, n):
        out = bytearray()
        while len(out) < n:
            if self.remaining <= 0:
                raise _bad('the image ends early, at byte %d', self.pos)
            chunk = self._read(min(n - len(out), self.remaining, _CHUNK))
            if not chunk:
                raise _bad('the image ends early, at byte %d', self.pos)
            out += chunk
            self.remaining -= len(chunk)
            self.pos += len(chunk)
        return bytes(out)

    def skip_to(self, offset):
        if offset < self.pos:
            raise _bad('blocks overlap or are out of order (byte %d '
                       'referenced after byte %d)', offset, self.pos)
        while self.pos < offset:
            self.take(min(offset - self.pos, _CHUNK))

    def drain(self):
        """Read what the sender still sends (the connection stays sane)."""
        while self.remaining > 0:
            chunk = self._read(min(self.remaining, _CHUNK))
            if not chunk:
                break
            self.remaining -= len(chunk)


def read_stream(read, length, write, capacity=None):
    """Write the disk of a ``length``-byte VHD through ``write(off, data)``.

    ``read(n)`` reads the image front to back (a socket's read will do).
    A fixed VHD is raw data followed by its footer; a dynamic one starts
    with a footer copy. Only sectors a dynamic block's bitmap marks as
    present are written: the rest of the disk reads as zeros. ``capacity``
    (the target's size in bytes) refuses a bigger disk before anything is
    written. Returns the disk's virtual size; the stream is read to its
    end even when the image is refused.
    """
    stream = _Stream(read, length)
    try:
        head = stream.take(min(FOOTER_SIZE, length))
        if head[:8] != COOKIE:
            return _read_fixed(stream, head, length, write, capacity)
        foot = parse_footer(head, 'footer copy')
        if foot.disk_type != DISK_DYNAMIC:
            raise _bad('a %s disk must not start with a footer copy',
                       DISK_TYPES[foot.disk_type])
        _check_capacity(foot, capacity)
        stream.skip_to(foot.data_offset)
        header = parse_dynamic_header(stream.take(HEADER_SIZE))
        entries = _check_sizes(foot, header)
        stream.skip_to(header.table_offset)
        bat = struct.unpack('>%dI' % header.max_table_entries,
                            stream.take(4 * header.max_table_entries))
        bitmap = bitmap_size(header.block_size)
        blocks = sorted((off * SECTOR, i) for i, off in
                        enumerate(bat[:entries]) if off != UNUSED)
        for offset, index in blocks:
            stream.skip_to(offset)
            present = stream.take(bitmap)
            data = stream.take(header.block_size)
            _write_present(write, index * header.block_size, data,
                           present, foot.current_size)
        if length - stream.pos < FOOTER_SIZE:
            raise _bad('the footer at the end of the image is missing')
        stream.skip_to(length - FOOTER_SIZE)
        parse_footer(stream.take(FOOTER_SIZE))
        return foot.current_size
    finally:
        stream.drain()


def digest(read, length, capacity=None):
    """(sha256 hex digest, virtual size) of the disk a VHD holds.

    The digest is that of the disk's raw content, absent blocks and
    sectors reading as zeros: the image's allocation does not change it.
    ``read`` and ``length`` as for ``read_stream``, in one pass with
    bounded memory; so the image must store its blocks in disk order,
    as xapi's exports do (a VhdError says so otherwise).
    """
    hasher = hashlib.sha256()
    at = [0]

    def write(offset, data):
        if offset < at[0]:
            raise _bad('its blocks are not stored in disk order (byte %d '
                       'after byte %d): it cannot be hashed in one pass',
                       offset, at[0])
        _hash_zeros(hasher, offset - at[0])
        hasher.update(data)
        at[0] = offset + len(data)
    size = read_stream(read, length, write, capacity)
    _hash_zeros(hasher, size - at[0])
    return hasher.hexdigest(), size


_ZEROS = bytes(_CHUNK)


def _hash_zeros(hasher, count):
    while count > 0:
        n = min(count, _CHUNK)
        hasher.update(_ZEROS[:n] if n < _CHUNK else _ZEROS)
        count -= n


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


def _read_fixed(stream, head, length, write, capacity):
    size = length - FOOTER_SIZE
    if size < 0 or size % SECTOR:
        raise _bad('no footer copy at the start (cookie "conectix"), and '
                   'its length (%d bytes) is not that of a fixed VHD',
                   length)
    if capacity is not None and size > capacity:
        raise _bad('its virtual size (%d bytes) is larger than the disk it '
                   'goes to (%d bytes)', size, capacity)
    offset = 0
    chunk = head
    while True:
        take = min(len(chunk), size - offset)
        if take > 0:
            write(offset, chunk[:take])
            offset += take
        if offset >= size:
            tail = chunk[take:]
            foot = parse_footer(tail + stream.take(FOOTER_SIZE - len(tail)))
            _check_fixed(foot, size)
            return size
        chunk = stream.take(min(_CHUNK, size - offset))


def _check_fixed(foot, size):
    if foot.disk_type != DISK_FIXED:
        raise _bad('the footer says %s but the image has no footer copy '
                   'at its start', DISK_TYPES[foot.disk_type])
    if foot.current_size != size:
        raise _bad('the footer gives a size of %d bytes, the image holds '
                   '%d', foot.current_size, size)


def inspect(f, capacity=None):
    """Check the structure of the VHD file ``f``; its Footer.

    Reads the footers, the dynamic header and the BAT, not the data:
    every BAT entry must point at a whole block inside the file. ``f`` is
    a seekable binary file; its position is restored.
    """
    start = f.tell()
    try:
        length = os.fstat(f.fileno()).st_size
        if length < FOOTER_SIZE:
            raise _bad('%d bytes is too small for a VHD', length)
        f.seek(0)
        head = f.read(FOOTER_SIZE)
        if head[:8] != COOKIE:
            f.seek(length - FOOTER_SIZE)
            foot = parse_footer(f.read(FOOTER_SIZE))
            _check_fixed(foot, length - FOOTER_SIZE)
            _check_capacity(foot, capacity)
            return foot
        foot = parse_footer(head, 'footer copy')
        if foot.disk_type != DISK_DYNAMIC:
            raise _bad('a %s disk must not start with a footer copy',
                       DISK_TYPES[foot.disk_type])
        f.seek(length - FOOTER_SIZE)
        parse_footer(f.read(FOOTER_SIZE))
        _check_capacity(foot, capacity)
        f.seek(foot.data_offset)
        header = parse_dynamic_header(f.read(HEADER_SIZE))
        entries = _check_sizes(foot, header)
        f.seek(header.table_offset)
        raw = f.read(4 * entries)
        if len(raw) < 4 * entries:
            raise _bad('the BAT is truncated')
        end = length - FOOTER_SIZE
        block = bitmap_size(header.block_size) + header.block_size
        for index, sector in enumerate(struct.unpack('>%dI' % entries,
                                                     raw)):
            if sector != UNUSED and sector * SECTOR + block > end:
                raise _bad('block %d lies beyond the end of the image '
                           '(the image is truncated)', index)
        return foot
    finally:
        f.seek(start)
