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

"""Snapshots and shelve into a Glance that inspects what it receives.

Nova's Glance fixture stores anything. Glance 33 runs every upload
through oslo.utils' format inspector and answers 415 "Image disk_format
vhd does not match stream data raw" when the content is not the declared
format (a fixed VHD, footer at the end only, reads as raw), and refuses
content failing the inspector's safety checks. ``InspectingGlance`` does
the same with the real inspector, keeps images ``queued`` until their
data is accepted, and serves the accepted bytes back to the next boot.
"""

import io
import random

from nova import exception
from oslo_utils.imageutils import format_inspector
import testtools

from nova_sxm.tests.functional import base
from nova_sxm.virt import images
from xapi_sim import storage
from xapi_sim import vhd

MiB = base.MiB


class InspectingGlance(object):
    """Glance 33's upload check around nova's Glance fixture."""

    def __init__(self, fixture):
        self.fixture = fixture
        self.uploads = {}       # image id -> bytes Glance accepted
        self.inspected = {}     # image id -> (format name, virtual size)
        self.refuse = None      # a reason: the next upload is refused
        self._create = fixture.create
        self._update = fixture.update
        fixture.create = self.create
        fixture.update = self.update

    def create(self, context, metadata, data=None):
        if data is None and 'status' not in metadata:
            # Glance: an image without data is queued, not bootable.
            metadata = dict(metadata, status='queued')
        return self._create(context, metadata, data=data)

    def update(self, context, image_id, metadata, data=None,
               purge_props=False):
        if data is None:
            return self._update(context, image_id, metadata,
                                purge_props=purge_props)
        image = self.fixture.show(context, image_id)
        fmt = metadata.get('disk_format', image.get('disk_format'))
        if self.refuse:
            reason, self.refuse = self.refuse, None
            raise exception.ImageBadRequest(image_id=image_id,
                                            response=reason)
        wrapper = format_inspector.InspectWrapper(
            io.BytesIO(data.read()), expected_format=fmt)
        try:
            blob = b''.join(iter(lambda: wrapper.read(1 << 20), b''))
        except format_inspector.ImageFormatError as exc:
            raise exception.ImageBadRequest(
                image_id=image_id,
                response='415 Image disk_format %s does not match stream '
                         'data: %s' % (fmt, exc))
        finally:
            wrapper.close()
        found = wrapper.format
        if found.NAME != fmt:
            raise exception.ImageBadRequest(
                image_id=image_id,
                response='415 Image disk_format %s does not match stream '
                         'data %s' % (fmt, found.NAME))
        try:
            found.safety_check()
        except format_inspector.SafetyCheckFailed as exc:
            raise exception.ImageBadRequest(
                image_id=image_id,
                response='400 Image format %s failed safety check: %s'
                         % (fmt, exc))
        self.uploads[image_id] = blob
        self.inspected[image_id] = (found.NAME, found.virtual_size)
        self.fixture._imagedata[image_id] = blob
        metadata = dict(metadata, status='active', size=len(blob),
                        virtual_size=found.virtual_size)
        return self._update(context, image_id, metadata,
                            purge_props=purge_props)


class SnapshotGlanceBase(base.SxmServicesTestCase):

    upload_format = 'vhd'

    def setUp(self):
        self.compute_flags = {
            host: {'image_upload_format': self.upload_format}
            for host in base.HOSTS}
        super().setUp()
        self.inspecting = InspectingGlance(self.glance)
        self.data = random.Random(7).randbytes(3 * MiB + 4096)
        self.image = self.make_image(self.data)
        # No root_gb: the root disk is the image's size (4 MiB), small
        # enough for whole-disk checksums and raw uploads.
        self.flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=0,
                                          ephemeral=0)
        self.server = self._create_server(
            image_uuid=self.image, flavor_id=self.flavor, host='host1',
            networks='none')
        self.vm, _ = self.vm_of(self.server, 'pool-a')
        self.api_a = self.xapi['pool-a']

    def root_digest(self, server, pool):
        vm, rec = self.vm_of(server, pool)
        return self.ctl[pool].vm_digests(rec['uuid'])['0']

    def vdi_names(self, pool):
        return sorted(r['name_label'] for r in
                      self.xapi[pool].VDI.get_all_records().values())

    def snapshot(self, name='snap'):
        self.api.post_server_action(self.server['id'],
                                    {'createImage': {'name': name}})
        return self.poll(
            lambda: [i for i in self.glance.images.values()
                     if i['name'] == name and i['status'] == 'active'],
            timeout=60, interval=0.1, what='image %s active' % name)[0]

    def action_events(self, server, action):
        actions = [a for a in self.api.get_instance_actions(server['id'])
                   if a['action'] == action]
        self.assertEqual(1, len(actions), actions)
        return self.api.api_get(
            '/servers/%s/os-instance-actions/%s'
            % (server['id'], actions[0]['request_id'])).body[
                'instanceAction']['events']


class SnapshotVhdTest(SnapshotGlanceBase):

    def test_snapshot_is_a_vhd_glance_accepts_and_boots_elsewhere(self):
        before = self.root_digest(self.server, 'pool-a')
        names = self.vdi_names('pool-a')
        image = self.snapshot()
        blob = self.inspecting.uploads[image['id']]
        # Glance's inspector: a VHD of the root disk's size.
        self.assertEqual(b'conectix', blob[:8])
        self.assertEqual(('vhd', 4 * MiB),
                         self.inspecting.inspected[image['id']])
        self.assertEqual('vhd', image['disk_format'])
        # The server ran on, and no snapshot VDI is left in the pool.
        self.assertEqual('Running', self.api_a.VM.get_power_state(self.vm))
        server = self.api.get_server(self.server['id'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual(names, self.vdi_names('pool-a'))
        # A server of the other pool boots from it: the same disk bytes.
        copy = self._create_server(image_uuid=image['id'],
                                   flavor_id=self.flavor, host='host2',
                                   networks='none')
        self.assertEqual(before, self.root_digest(copy, 'pool-b'))
        self.assertEqual(before, self.root_digest(self.server, 'pool-a'))

    def test_a_refused_upload_keeps_the_server_and_leaves_no_image(self):
        names = self.vdi_names('pool-a')
        self.inspecting.refuse = ('415 Image disk_format vhd does not match '
                                  'stream data raw')
        self.api.post_server_action(self.server['id'],
                                    {'createImage': {'name': 'refused'}})
        self.poll(lambda: not [i for i in self.glance.images.values()
                               if i['name'] == 'refused'] or None,
                  timeout=60, interval=0.1, what='the refused image gone')
        server = self._wait_for_server_parameter(
            self.server, {'status': 'ACTIVE',
                          'OS-EXT-STS:task_state': None})
        self.assertEqual('Running', self.api_a.VM.get_power_state(self.vm))
        self.assertEqual(names, self.vdi_names('pool-a'))
        self.assertEqual('ACTIVE', server['status'])

    def test_shelve_offload_and_unshelve_keep_the_disk(self):
        before = self.root_digest(self.server, 'pool-a')
        self.api.post_server_action(self.server['id'], {'shelve': None})
        server = self._wait_for_state_change(self.server,
                                             'SHELVED_OFFLOADED')
        self.assertEqual((None, None), self.vm_of(server, 'pool-a'))
        shelved = [i for i in self.glance.images.values()
                   if i['name'].endswith('-shelved')]
        self.assertEqual(1, len(shelved), shelved)
        self.assertEqual('active', shelved[0]['status'])
        self.assertEqual(('vhd', 4 * MiB),
                         self.inspecting.inspected[shelved[0]['id']])
        self.api.post_server_action(self.server['id'], {'unshelve': None})
        server = self._wait_for_state_change(self.server, 'ACTIVE')
        pool = base.HOSTS[server['OS-EXT-SRV-ATTR:host']]
        vm, rec = self.vm_of(server, pool)
        self.assertEqual('Running', rec['power_state'])
        self.assertEqual(before, self.root_digest(server, pool))

    def test_a_refused_shelve_upload_restarts_the_guest(self):
        names = self.vdi_names('pool-a')
        self.inspecting.refuse = ('415 Image disk_format vhd does not match '
                                  'stream data raw')
        self.api.post_server_action(self.server['id'], {'shelve': None})
        server = self._wait_for_server_parameter(
            self.server, {'status': 'ACTIVE',
                          'OS-EXT-STS:task_state': None})
        self.poll(lambda: self.api_a.VM.get_power_state(self.vm)
                  == 'Running' or None, timeout=30, interval=0.1,
                  what='the guest running again')
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual([], [i for i in self.glance.images.values()
                              if i['name'].endswith('-shelved')])
        self.assertEqual(names, self.vdi_names('pool-a'))
        events = self.action_events(server, 'shelve')
        self.assertEqual([('compute_shelve_instance', 'Error')],
                         [(e['event'], e['result']) for e in events])
        self.assertIn('does not match stream data', events[0]['details'])


class SnapshotRawTest(SnapshotGlanceBase):

    upload_format = 'raw'

    def test_raw_snapshot_is_the_disk(self):
        before = self.root_digest(self.server, 'pool-a')
        image = self.snapshot()
        self.assertEqual('raw', image['disk_format'])
        self.assertEqual(('raw', 4 * MiB),
                         self.inspecting.inspected[image['id']])
        blob = self.inspecting.uploads[image['id']]
        self.assertEqual(self.data, blob[:len(self.data)])
        self.assertEqual(bytes(4 * MiB - len(self.data)),
                         blob[len(self.data):])
        copy = self._create_server(image_uuid=image['id'],
                                   flavor_id=self.flavor, host='host1',
                                   networks='none')
        self.assertEqual(before, self.root_digest(copy, 'pool-a'))


class _Disk(object):
    """What xapi_sim.vhd.export_chunks reads: size, blocks, bytes."""

    def __init__(self, data, size):
        self.data, self.size = data, size

    def allocated_blocks(self):
        return range(-(-len(self.data) // storage.BLOCK))

    def read(self, offset, length):
        return self.data[offset:offset + length].ljust(
            max(0, min(length, self.size - offset)), b'\0')


class CheckUploadTest(testtools.TestCase):
    """The driver's own check agrees with Glance's inspector."""

    size = 8 * MiB

    def test_xapi_dynamic_vhd_passes(self):
        data = random.Random(1).randbytes(3 * MiB)
        blob = b''.join(vhd.export_chunks(_Disk(data, self.size)))
        images.check_upload(io.BytesIO(blob), 'vhd', self.size)
        wrapper = format_inspector.InspectWrapper(io.BytesIO(blob), 'vhd')
        while wrapper.read(MiB):
            pass
        wrapper.close()
        self.assertEqual(('vhd', self.size),
                         (wrapper.format.NAME, wrapper.format.virtual_size))

    def test_fixed_vhd_is_refused_before_glance_sees_it(self):
        raw = random.Random(2).randbytes(self.size)
        blob = raw + vhd.footer(self.size, disk_type=2)
        exc = self.assertRaises(images.BadUpload, images.check_upload,
                                io.BytesIO(blob), 'vhd', self.size, 'img')
        self.assertIn('conectix', str(exc))

    def test_wrong_virtual_size_is_refused(self):
        blob = b''.join(vhd.export_chunks(_Disk(b'x' * MiB, self.size)))
        exc = self.assertRaises(images.BadUpload, images.check_upload,
                                io.BytesIO(blob), 'vhd', 2 * self.size)
        self.assertIn('virtual size', str(exc))
