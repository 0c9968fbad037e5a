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


"""Images into and out of volumes through /import_raw_vdi, /export_raw_vdi.

The volume service's own driver runs them on volumes made through the
Cinder API; Glance is a small double that keeps the bytes (cinder's fake
image service drops uploaded data).
"""

import hashlib
import os
import tempfile

from cinder import context
from cinder import exception
from cinder import objects
import fixtures

from cinder_sxm.tests.functional import base

MiB = base.MiB


class Images(object):
    """A Glance stand-in: image bytes live in files of ``root``."""

    def __init__(self, root):
        self.root = root
        self.meta = {}

    def add(self, image_id, disk_format, data):
        with open(os.path.join(self.root, image_id), 'wb') as f:
            f.write(data)
        self.meta[image_id] = {'id': image_id, 'disk_format': disk_format,
                               'size': len(data), 'status': 'active'}

    def path(self, image_id):
        return os.path.join(self.root, image_id)

    def show(self, ctx, image_id):
        return dict(self.meta[image_id])

    def download(self, ctx, image_id, data):
        with open(self.path(image_id), 'rb') as f:
            for block in iter(lambda: f.read(MiB), b''):
                data.write(block)

    def update(self, ctx, image_id, metadata, data=None, **kwargs):
        self.meta[image_id].update(metadata)
        with open(self.path(image_id), 'wb') as out:
            for block in iter(lambda: data.read(MiB), b''):
                out.write(block)
        return self.meta[image_id]

    def digest(self, image_id):
        h = hashlib.sha256()
        with open(self.path(image_id), 'rb') as f:
            for block in iter(lambda: f.read(MiB), b''):
                h.update(block)
        return h.hexdigest()


class TestImages(base.SxmCinderTestCase):

    def setUp(self):
        super().setUp()
        self.images = Images(self.useFixture(fixtures.TempDir()).path)
        self.ctx = context.get_admin_context()
        self.driver = self.volume.manager.driver
        self.override_config('image_conversion_dir',
                             tempfile.mkdtemp(dir=self.images.root))

    def volume_obj(self, tier):
        vol = self.create_volume(tier)
        return objects.Volume.get_by_id(self.ctx, vol['id'])

    def test_raw_image_into_a_volume(self):
        data = os.urandom(3 * MiB + 512)
        self.images.add('img-raw', 'raw', data)
        vol = self.volume_obj('silver')
        self.driver.copy_image_to_volume(self.ctx, vol, self.images,
                                         'img-raw')
        vdi, _ = self.vdi_of(vol.id)
        self.assertEqual(data, self.head(vdi, len(data) + MiB)[:len(data)])

    def test_volume_to_raw_image(self):
        vol = self.volume_obj('gold')
        vdi, _ = self.vdi_of(vol.id)
        self.fill(vdi, 2 * MiB, 'to-image')
        self.images.add('out-raw', 'raw', b'')
        self.driver.copy_volume_to_image(self.ctx, vol, self.images,
                                         self.images.show(None, 'out-raw'))
        self.assertEqual(base.GiB, os.path.getsize(
            self.images.path('out-raw')))
        self.assertEqual(self.digest(vdi), self.images.digest('out-raw'))

    def test_vhd_round_trip(self):
        vol = self.volume_obj('silver')
        vdi, _ = self.vdi_of(vol.id)
        self.fill(vdi, 3 * MiB, 'vhd')
        self.images.add('out-vhd', 'vhd', b'')
        self.driver.copy_volume_to_image(self.ctx, vol, self.images,
                                         self.images.show(None, 'out-vhd'))
        with open(self.images.path('out-vhd'), 'rb') as f:
            footer = f.read(8)
        self.assertEqual(b'conectix', footer)  # a VHD, not raw bytes

        copy = self.volume_obj('gold')
        self.driver.copy_image_to_volume(self.ctx, copy, self.images,
                                         'out-vhd')
        copy_vdi, _ = self.vdi_of(copy.id)
        self.assertEqual(self.digest(vdi), self.digest(copy_vdi))

    def test_other_formats_are_refused_by_name(self):
        self.images.add('img-qcow2', 'qcow2', b'QFI\xfb')
        vol = self.volume_obj('silver')
        exc = self.assertRaises(exception.ImageUnacceptable,
                                self.driver.copy_image_to_volume, self.ctx,
                                vol, self.images, 'img-qcow2')
        self.assertIn("'qcow2'", str(exc))
        self.assertIn('raw and vhd', str(exc))

    def test_image_larger_than_the_volume_fails_cleanly(self):
        self.images.add('img-big', 'raw', b'\x01' * MiB)
        vol = self.volume_obj('silver')
        vdi, _ = self.vdi_of(vol.id)
        # Shrink nothing: import more than the VDI holds via a bigger file.
        with open(self.images.path('img-big'), 'r+b') as f:
            f.truncate(base.GiB + MiB)
        self.assertRaises(exception.VolumeBackendAPIException,
                          self.driver.copy_image_to_volume, self.ctx, vol,
                          self.images, 'img-big')
        self.assertEqual([], [t for t in self.xapi.task.get_all()
                              if self.xapi.task.get_name_label(t)
                              == 'cinder-sxm'])
