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
images are converted here (pure Python, ``sxm_core.vhd``), so that nothing
runs in dom0. Differencing VHDs (a chain) are refused. Snapshots go the
other way as XAPI exports them (``/export_raw_vdi?format=vhd``: a dynamic
VHD), checked as Glance will check them (``check_upload``).
"""

import os

from nova import exception
from oslo_utils.imageutils import format_inspector
from sxm_core import vhd

SECTOR = vhd.SECTOR


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


def vhd_to_raw(src, dst, image_id=''):
    """Write the disk of VHD file ``src`` as raw into file ``dst``.

    Returns the virtual size. ``dst`` stays sparse where the VHD is.
    Raises BadImage naming what is wrong with the VHD.
    """
    def write(offset, data):
        if data.count(0) != len(data):
            dst.seek(offset)
            dst.write(data)

    src.seek(0)
    try:
        size = vhd.read_stream(src.read, os.fstat(src.fileno()).st_size,
                               write)
    except vhd.VhdError as exc:
        raise BadImage(image_id=image_id, reason=str(exc)) from None
    dst.truncate(size)
    return size
