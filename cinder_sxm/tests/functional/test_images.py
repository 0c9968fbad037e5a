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

Through the Cinder API (create a volume from an image, upload a volume
to an image) and the volume service's own driver; Glance is a small
stand-in that keeps the bytes (Cinder's fake image service drops uploaded
data).
"""

import copy
import hashlib
import json
import os
import tempfile
import uuid

from cinder import context
from cinder import exception
from cinder.image import format_inspector
from cinder.image import image_utils
from cinder import objects
import fixtures
from oslo_utils import imageutils

from cinder_sxm.tests.functional import base

MiB = base.MiB


class Images(object):
    """A Glance stand-in: image bytes live in files of ``root``.

    What Cinder's API and volume manager call of an image service (show,
    create, update, download, get_location...), keeping the bytes.
    """

    def __init__(self, root):
        self.root = root
        self.meta = {}
        self.temp_images = None  # Cinder's TemporaryImages cache

    def add(self, image_id, disk_format, data):
        with open(os.path.join(self.root, image_id), 'wb') as f:
            f.write(data)
        self.meta[image_id] = self._record(image_id, disk_format,
                                           size=len(data))

    @staticmethod
    def _record(image_id, disk_format, size=0, **extra):
        return dict({'id': image_id, 'name': image_id,
                     'disk_format': disk_format, 'container_format': 'bare',
                     'size': size, 'status': 'active', 'min_disk': 0,
                     'min_ram': 0, 'visibility': 'private',
                     'protected': False, 'owner': None, 'properties': {}},
                    **extra)

    def path(self, image_id):
        return os.path.join(self.root, image_id)

    def show(self, ctx, image_id):
        if image_id not in self.meta:
            raise exception.ImageNotFound(image_id=image_id)
        return copy.deepcopy(self.meta[image_id])

    def get_location(self, ctx, image_id):
        return None, None  # no direct URL: Cinder downloads the bytes

    def download(self, ctx, image_id, data):
        with open(self.path(image_id), 'rb') as f:
            for block in iter(lambda: f.read(MiB), b''):
                data.write(block)

    def create(self, ctx, metadata, data=None):
        image_id = metadata.get('id') or str(uuid.uuid4())
        fields = {k: v for k, v in metadata.items()
                  if k not in ('id', 'disk_format')}
        fields.setdefault('status', 'queued')
        self.meta[image_id] = self._record(
            image_id, metadata.get('disk_format'), **fields)
        open(self.path(image_id), 'wb').close()
        return copy.deepcopy(self.meta[image_id])

    def update(self, ctx, image_id, metadata, data=None, **kwargs):
        self.meta[image_id].update(metadata)
        if data is not None:
            with open(self.path(image_id), 'wb') as out:
                for block in iter(lambda: data.read(MiB), b''):
                    out.write(block)
            self.meta[image_id].update(
                status='active', size=os.path.getsize(self.path(image_id)))
        return copy.deepcopy(self.meta[image_id])

    def delete(self, ctx, image_id):
        self.meta.pop(image_id, None)

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


def _qemu_img_info(path, *args, **kwargs):
    """``qemu-img info`` as Cinder reads it, from Cinder's own inspector.

    Cinder runs the real one as root (privsep, rootwrap), which one test
    process cannot.
    """
    inspector = format_inspector.detect_file_format(path)
    name = str(inspector)
    return imageutils.QemuImgInfo(json.dumps({
        'filename': path,
        'format': image_utils.QEMU_IMG_FORMAT_MAP.get(name, name),
        'virtual-size': inspector.virtual_size,
        'actual-size': os.path.getsize(path)}), format='json')


class ImagesStandInMixin(object):
    """``images``: every image service Cinder's API and manager ask for.

    Mixed in before base.SxmCinderTestCase.
    """

    # Whether Cinder's ``qemu-img info`` (run as root) is stood in for.
    stand_in_qemu_img = True

    def setUp(self):
        # Before the services start: the API takes its image service then.
        self.images = Images(self.useFixture(fixtures.TempDir()).path)
        for name, stand_in in (
                ('get_remote_image_service',
                 lambda ctx, href: (self.images, href)),
                ('get_default_image_service', lambda: self.images)):
            self.useFixture(fixtures.MonkeyPatch(
                'cinder.image.glance.%s' % name, stand_in))
        if self.stand_in_qemu_img:
            self.useFixture(fixtures.MonkeyPatch(
                'cinder.image.image_utils.qemu_img_info', _qemu_img_info))
        super().setUp()
        self.override_config('image_conversion_dir',
                             tempfile.mkdtemp(dir=self.images.root))


class TestImagesThroughTheApi(ImagesStandInMixin, base.SxmCinderTestCase):
    """``imageRef`` and ``os-volume_upload_image``, checked by bytes."""

    def upload(self, volume_id, disk_format):
        reply = self.action(volume_id, {'os-volume_upload_image': {
            'image_name': 'from-%s' % volume_id, 'force': False,
            'disk_format': disk_format, 'container_format': 'bare'}})
        self.wait_volume(volume_id, ('uploading',), 'available')
        image_id = reply['os-volume_upload_image']['image_id']
        self.assertEqual('active', self.images.show(None, image_id)['status'])
        return image_id

    def test_a_volume_from_an_image(self):
        data = os.urandom(3 * MiB + 512)
        image_id = str(uuid.uuid4())
        self.images.add(image_id, 'raw', data)
        vol = self.create_volume('gold', imageRef=image_id)
        self.assertEqual('true', vol['bootable'])
        vdi, sr = self.vdi_of(vol['id'])
        self.assertEqual('gold', sr)
        # The image, then zeros.
        self.assertEqual(data + bytes(MiB), self.head(vdi, len(data) + MiB))

    def test_raw_upload(self):
        vol = self.create_volume('silver')
        vdi, _ = self.vdi_of(vol['id'])
        self.fill(vdi, 2 * MiB, 'upload')
        image_id = self.upload(vol['id'], 'raw')
        self.assertEqual(base.GiB, os.path.getsize(
            self.images.path(image_id)))
        self.assertEqual(self.digest(vdi), self.images.digest(image_id))

    def round_trip(self, disk_format):
        vol = self.create_volume('gold')
        vdi, _ = self.vdi_of(vol['id'])
        self.fill(vdi, 3 * MiB, 'round trip')
        image_id = self.upload(vol['id'], disk_format)

        copy_vol = self.create_volume('silver', imageRef=image_id)
        copy_vdi, sr = self.vdi_of(copy_vol['id'])
        self.assertEqual('silver', sr)
        self.assertEqual(self.digest(vdi), self.digest(copy_vdi))
        return image_id

    def test_raw_round_trip_between_tiers(self):
        self.round_trip('raw')

    def test_vhd_round_trip_between_tiers(self):
        image_id = self.round_trip('vhd')
        with open(self.images.path(image_id), 'rb') as f:
            self.assertEqual(b'conectix', f.read(8))  # VHD, not raw
        # A VHD carries the written blocks, not the whole volume.
        self.assertLess(os.path.getsize(self.images.path(image_id)),
                        base.GiB // 4)


_SUDO = """#!/bin/sh
echo "$*" >> "%s"
echo "sudo: not in this cloud" >&2
exit 1
"""


class TestImagesWithoutRoot(ImagesStandInMixin, base.SxmCinderTestCase):
    """A volume from an image where cinder-volume has no root helper.

    The one-machine cloud (like many containers) has no ``sudo``: every
    root command Cinder runs (``qemu-img`` through rootwrap, privsep's
    helper) fails there. Here ``sudo`` is a script first on PATH that
    records its arguments and fails; ``qemu-img info`` is Cinder's own.
    """

    stand_in_qemu_img = False

    def setUp(self):
        super().setUp()
        bin_dir = self.useFixture(fixtures.TempDir()).path
        self.sudo_calls = os.path.join(bin_dir, 'sudo-calls')
        sudo = os.path.join(bin_dir, 'sudo')
        with open(sudo, 'w') as f:
            f.write(_SUDO % self.sudo_calls)
        os.chmod(sudo, 0o755)
        self.useFixture(fixtures.EnvironmentVariable(
            'PATH', bin_dir + os.pathsep + os.environ.get('PATH', '')))

    def root_commands(self):
        if not os.path.exists(self.sudo_calls):
            return []
        with open(self.sudo_calls) as f:
            return f.read().splitlines()

    def check_from_image(self, disk_format, data, expected):
        image_id = str(uuid.uuid4())
        self.images.add(image_id, disk_format, data)
        vol = self.create_volume('silver', imageRef=image_id)
        self.assertEqual('true', vol['bootable'])
        self.assertEqual(image_id,
                         vol['volume_image_metadata']['image_id'])
        vdi, sr = self.vdi_of(vol['id'])
        self.assertEqual('silver', sr)
        self.assertEqual(expected, self.digest(vdi))
        self.assertEqual([], self.root_commands())
        return vol

    def test_raw_image(self):
        data = os.urandom(5 * MiB + 512)
        self.check_from_image('raw', data, hashlib.sha256(
            data + bytes(base.GiB - len(data))).hexdigest())

    def vhd_image(self, size_gb, nbytes, seed):
        """(image id, source VDI): a gold volume's VHD as XAPI exports it."""
        src = self.create_volume('gold', size=size_gb)
        src_vdi, _ = self.vdi_of(src['id'])
        self.fill(src_vdi, nbytes, seed)
        image_id = str(uuid.uuid4())
        self.images.add(image_id, 'vhd', b'')
        ctx = context.get_admin_context()
        self.volume.manager.driver.copy_volume_to_image(
            ctx, objects.Volume.get_by_id(ctx, src['id']), self.images,
            self.images.show(None, image_id))
        return image_id, src_vdi

    def test_vhd_image(self):
        # A VHD as XAPI exports it, from a volume of known bytes.
        image_id, src_vdi = self.vhd_image(1, 3 * MiB, 'vhd without root')
        with open(self.images.path(image_id), 'rb') as f:
            self.check_from_image('vhd', f.read(), self.digest(src_vdi))

    def test_an_image_larger_than_the_volume(self):
        image_id = str(uuid.uuid4())
        self.images.add(image_id, 'raw', b'\x01' * MiB)
        with open(self.images.path(image_id), 'r+b') as f:
            f.truncate(base.GiB + MiB)
        before = self.vdis_on('silver')
        body = {'size': 1, 'volume_type': 'silver', 'name': 'too-small',
                'imageRef': image_id}
        vol = self.api.post_volume({'volume': body})
        self.wait_volume(vol['id'], ('creating', 'downloading'), 'error')
        # The refused import left no VDI behind.
        self.assertEqual(before, self.vdis_on('silver'))
        self.assertEqual([], self.root_commands())
        # Refused by name, before any VDI is made (Cinder does not
        # reschedule an ImageTooBig).
        ctx = context.get_admin_context()
        exc = self.assertRaises(
            exception.ImageTooBig, self.volume.manager.driver.clone_image,
            ctx, objects.Volume.get_by_id(ctx, vol['id']), None,
            self.images.show(ctx, image_id), self.images)
        self.assertIn('larger than the volume (1 GiB)', str(exc))
        self.assertEqual(before, self.vdis_on('silver'))

    def test_a_vhd_too_large_for_the_volume(self):
        # A VHD of a 2 GiB disk (as XAPI exports it) into a 1 GiB volume.
        image_id, _ = self.vhd_image(2, MiB, 'big vhd')
        before = self.vdis_on('silver')
        body = {'size': 1, 'volume_type': 'silver', 'name': 'too-small',
                'imageRef': image_id}
        vol = self.api.post_volume({'volume': body})
        self.wait_volume(vol['id'], ('creating', 'downloading'), 'error')
        ctx = context.get_admin_context()
        exc = self.assertRaises(
            exception.ImageUnacceptable,
            self.volume.manager.driver.clone_image, ctx,
            objects.Volume.get_by_id(ctx, vol['id']), None,
            self.images.show(ctx, image_id), self.images)
        self.assertIn(image_id, str(exc))
        self.assertEqual(before, self.vdis_on('silver'))
        self.assertEqual([], self.root_commands())
