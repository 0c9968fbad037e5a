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

"""Disk images between Glance and VDIs: raw, and VHD (fixed or dynamic).

Glance images are imported raw through XAPI's ``/import_raw_vdi``: VHD
images are converted here (pure Python, the VHD specification's footer,
dynamic header and block allocation table), so that nothing runs in dom0.
Differencing VHDs (a chain) are refused. Snapshots go the other way as
XAPI exports them (``/export_raw_vdi?format=vhd``: a dynamic VHD), checked
as Glance will check them (``check_upload``).
"""

import os
import struct
import time
import uuid

from nova import exception
from oslo_utils.imageutils import format_inspector

SECTOR = 512
FOOTER = struct.Struct('>8sIIQI4sI4sQQIIi16sB427x')
COOKIE = b'conectix'
DYN_COOKIE = b'cxsparse'
DISK_FIXED, DISK_DYNAMIC, DISK_DIFF = 2, 3, 4
UNUSED = 0xFFFFFFFF
# Seconds between the Unix epoch and the VHD epoch (2000-01-01 UTC).
VHD_EPOCH = 946684800


class BadImage(exception.ImageUnacceptable):
    pass


class BadUpload(exception.NovaException):
    msg_fmt = ('The snapshot for image %(image_id)s is not what Glance '
               'accepts as %(fmt)s: %(reason)s')


def check_upload(f, fmt, size, image_id=''):
    """Refuse an upload Glance would answer with 415, before sending it.

    Glance inspects uploads with oslo.utils' format inspector: a ``vhd``
    must start with the footer copy of a dynamic VHD (cookie
    ``conectix``) and state the disk's virtual size. ``f`` is at the
    start of the data.
    """
    if fmt != 'vhd':
        return
    inspector = format_inspector.VHDInspector()
    inspector.eat_chunk(f.read(SECTOR))
    if not inspector.format_match:
        raise BadUpload(image_id=image_id, fmt=fmt,
                        reason='it does not begin with a VHD footer '
                               '(cookie "conectix")')
    if inspector.virtual_size != size:
        raise BadUpload(image_id=image_id, fmt=fmt,
                        reason='its virtual size is %d bytes, the disk\'s '
                               '%d' % (inspector.virtual_size, size))


def _bad(image_id, reason):
    return BadImage(image_id=image_id, reason=reason)


def vhd_to_raw(src, dst, image_id=''):
    """Write the disk of VHD file ``src`` as raw into file ``dst``.

    Returns the virtual size. ``dst`` stays sparse where the VHD is.
    """
    size = os.fstat(src.fileno()).st_size
    if size < SECTOR:
        raise _bad(image_id, 'too small to be a VHD')
    src.seek(size - SECTOR)
    footer = src.read(SECTOR)
    if footer[:8] != COOKIE:
        src.seek(0)
        footer = src.read(SECTOR)  # dynamic disks copy it at the start
        if footer[:8] != COOKIE:
            raise _bad(image_id, 'no VHD footer (cookie "conectix")')
    fields = FOOTER.unpack(footer)
    data_offset, current_size, disk_type = fields[3], fields[9], fields[11]
    if disk_type == DISK_FIXED:
        src.seek(0)
        _copy(src, dst, current_size)
    elif disk_type == DISK_DYNAMIC:
        _dynamic(src, dst, data_offset, current_size, image_id)
    elif disk_type == DISK_DIFF:
        raise _bad(image_id, 'differencing VHDs (with a parent) are not '
                             'supported; upload a flattened image')
    else:
        raise _bad(image_id, 'unknown VHD disk type %d' % disk_type)
    dst.truncate(current_size)
    return current_size


def _copy(src, dst, length):
    while length > 0:
        data = src.read(min(1 << 20, length))
        if not data:
            break
        dst.write(data)
        length -= len(data)


def _dynamic(src, dst, header_offset, current_size, image_id):
    src.seek(header_offset)
    header = src.read(1024)
    if header[:8] != DYN_COOKIE:
        raise _bad(image_id, 'no VHD dynamic header (cookie "cxsparse")')
    table_offset, = struct.unpack('>Q', header[16:24])
    entries, block_size = struct.unpack('>II', header[28:36])
    bitmap = -(-(block_size // SECTOR) // 8)
    bitmap = -(-bitmap // SECTOR) * SECTOR
    src.seek(table_offset)
    bat = struct.unpack('>%dI' % entries, src.read(4 * entries))
    for index, sector in enumerate(bat):
        if sector == UNUSED:
            continue
        start = index * block_size
        length = min(block_size, current_size - start)
        if length <= 0:
            break
        src.seek(sector * SECTOR + bitmap)
        dst.seek(start)
        _copy(src, dst, length)


def _geometry(size):
    """Cylinders, heads, sectors per track (VHD specification, appendix)."""
    sectors = min(size // SECTOR, 65535 * 16 * 255)
    if sectors >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = sectors // spt
    else:
        spt = 17
        cth = sectors // spt
        heads = max(4, (cth + 1023) // 1024)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = sectors // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = sectors // spt
    return cth // heads, heads, spt


def fixed_footer(size):
    """The 512-byte footer that makes ``size`` raw bytes a fixed VHD."""
    cyl, heads, spt = _geometry(size)
    geometry = struct.pack('>HBB', cyl, heads, spt)
    fields = [COOKIE, 2, 0x00010000, 0xFFFFFFFFFFFFFFFF,
              int(time.time()) - VHD_EPOCH, b'sxm ', 0x00010000, b'Wi2k',
              size, size, struct.unpack('>I', geometry)[0], DISK_FIXED, 0,
              uuid.uuid4().bytes, 0]
    raw = FOOTER.pack(*fields)
    checksum = (~sum(raw)) & 0xFFFFFFFF
    fields[12] = checksum - (1 << 32) if checksum >= 1 << 31 else checksum
    return FOOTER.pack(*fields)
