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

"""Config drives through the real Nova API on the simulator.

The VDI at userdevice 3 must hold an ISO9660 image that a guest's
cloud-init reads: volume label ``config-2`` and
``openstack/latest/meta_data.json`` naming the instance.
"""

import json
import random
import shutil
import struct

from nova_sxm.tests.functional import base

MiB = base.MiB
SECTOR = 2048


def _records(image, extent, size):
    """(name, extent, size, is_dir) of an ISO9660 directory's entries."""
    offset, end = extent * SECTOR, extent * SECTOR + size
    while offset < end:
        length = image[offset]
        if length == 0:  # records do not cross sectors: next sector
            offset = (offset // SECTOR + 1) * SECTOR
            continue
        rec = image[offset:offset + length]
        name = rec[33:33 + rec[32]].decode('ascii', 'replace')
        yield (name.split(';')[0].lower(),
               struct.unpack('<I', rec[2:6])[0],
               struct.unpack('<I', rec[10:14])[0], bool(rec[25] & 2))
        offset += length


def iso_read(image, path):
    """The bytes of ``path`` in an ISO9660 image, and its volume label."""
    pvd = image[16 * SECTOR:17 * SECTOR]
    if pvd[1:6] != b'CD001':
        raise AssertionError('not an ISO9660 image: %r' % pvd[:8])
    label = pvd[40:72].decode('ascii').strip()
    extent, size = struct.unpack('<I', pvd[158:162])[0], struct.unpack(
        '<I', pvd[166:170])[0]
    for part in path.split('/'):
        for name, ext, length, _ in _records(image, extent, size):
            if name == part.lower():
                extent, size = ext, length
                break
        else:
            raise AssertionError('%s not in the image' % path)
    return label, image[extent * SECTOR:extent * SECTOR + size]


class ConfigDriveTest(base.SxmServicesTestCase):

    def setUp(self):
        super().setUp()
        self.data = random.Random(31).randbytes(MiB)
        self.image = self.make_image(self.data)
        self.flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                          ephemeral=0)
        self.api_a = self.xapi['pool-a']

    def boot(self, expected='ACTIVE', **extra):
        body = self._build_server(
            image_uuid=self.image, flavor_id=self.flavor, host='host1',
            networks=[{'port': self.neutron.port_1['id']}])
        body.update(extra)
        server = self.api.post_server({'server': body})
        return self._wait_for_state_change(server, expected)

    def drive_of(self, server, pool):
        vm, _ = self.vm_of(server, pool)
        api = self.xapi[pool]
        vbds = {api.VBD.get_userdevice(v): api.VBD.get_record(v)
                for v in api.VM.get_VBDs(vm)}
        return vbds.get('3'), self.disks_of(vm, pool).get('3')

    def test_config_drive_holds_the_instance_metadata(self):
        before = {self.api_a.VDI.get_uuid(v) for v in self.api_a.VDI.get_all()}
        server = self.boot(config_drive=True, metadata={'role': 'db'},
                           adminPass='s3cret-pass')
        self.assertEqual('True', server['config_drive'])
        vbd, vdi = self.drive_of(server, 'pool-a')
        self.assertIsNotNone(vbd, 'no disk at userdevice 3')
        self.assertEqual(('RO', False, 'Disk'),
                         (vbd['mode'], vbd['bootable'], vbd['type']))
        self.assertEqual('config-2',
                         vdi['other_config']['nova_disk'])
        label, raw = iso_read(self.export('pool-a', vdi['uuid']),
                              'openstack/latest/meta_data.json')
        self.assertEqual('config-2', label)
        meta = json.loads(raw)
        self.assertEqual(server['id'], meta['uuid'])
        self.assertEqual({'role': 'db'}, meta['meta'])
        self.assertEqual('s3cret-pass', meta['admin_pass'])
        # The root disk is the image's, as without a drive.
        root = self.disks_of(self.vm_of(server, 'pool-a')[0], 'pool-a')['0']
        self.assertEqual(self.data, self.export(
            'pool-a', root['uuid'])[:len(self.data)])

        self._delete_server(server)
        after = {self.api_a.VDI.get_uuid(v) for v in self.api_a.VDI.get_all()}
        self.assertEqual(before, after)

    def test_no_config_drive_unless_asked(self):
        server = self.boot()
        self.assertEqual('', server['config_drive'])
        self.assertEqual((None, None), self.drive_of(server, 'pool-a'))

    def test_config_drive_moves_with_live_migration(self):
        server = self.boot(config_drive=True)
        _, vdi = self.drive_of(server, 'pool-a')
        digest = self.export_digest('pool-a', vdi['uuid'])
        self.live_migrate(server, 'host2')
        vbd, moved = self.drive_of(server, 'pool-b')
        self.assertEqual('RO', vbd['mode'])
        self.assertEqual(digest, self.export_digest('pool-b', moved['uuid']))
        label, raw = iso_read(self.export('pool-b', moved['uuid']),
                              'openstack/latest/meta_data.json')
        self.assertEqual(server['id'], json.loads(raw)['uuid'])

    def test_missing_iso_tool_refuses_the_build(self):
        self.flags(mkisofs_cmd='no-such-genisoimage')
        self.assertIsNone(shutil.which('no-such-genisoimage'))
        before = set(self.api_a.VM.get_all())
        server = self.boot(expected='ERROR', config_drive=True)
        self.assertIn('no-such-genisoimage', server['fault']['message'])
        self.assertIn('genisoimage', server['fault']['message'])
        self.assertEqual(before, set(self.api_a.VM.get_all()))

    def test_rescue_vm_gets_a_drive_with_the_rescue_password(self):
        server = self.boot(config_drive=True, adminPass='first-pass')
        _, drive = self.drive_of(server, 'pool-a')
        digest = self.export_digest('pool-a', drive['uuid'])
        rescue_image = self.make_image(random.Random(32).randbytes(MiB),
                                       name='rescue')
        self.api.post_server_action(server['id'], {'rescue': {
            'rescue_image_ref': rescue_image, 'adminPass': 'rescue-pass'}})
        self._wait_for_state_change(server, 'RESCUE')
        name = server['OS-EXT-SRV-ATTR:instance_name'] + '-rescue'
        rescue, = self.api_a.VM.get_by_name_label(name)
        vbd = [self.api_a.VBD.get_record(v)
               for v in self.api_a.VM.get_VBDs(rescue)
               if self.api_a.VBD.get_userdevice(v) == '3'][0]
        self.assertEqual('RO', vbd['mode'])
        rescue_drive = self.api_a.VDI.get_uuid(vbd['VDI'])
        self.assertNotEqual(drive['uuid'], rescue_drive)
        _, raw = iso_read(self.export('pool-a', rescue_drive),
                          'openstack/latest/meta_data.json')
        meta = json.loads(raw)
        self.assertEqual((server['id'], 'rescue-pass'),
                         (meta['uuid'], meta['admin_pass']))

        self.api.post_server_action(server['id'], {'unrescue': None})
        self._wait_for_state_change(server, 'ACTIVE')
        left = {self.api_a.VDI.get_uuid(v) for v in self.api_a.VDI.get_all()}
        self.assertNotIn(rescue_drive, left)
        # The instance's own drive is the one it had, bytes unchanged.
        self.assertEqual(drive['uuid'], self.drive_of(server, 'pool-a')[1][
            'uuid'])
        self.assertEqual(digest, self.export_digest('pool-a', drive['uuid']))
