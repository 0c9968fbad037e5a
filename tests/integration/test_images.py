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

"""Images through the ``openstack`` command: volumes from an image (and
their clones and extends) and back to one, boot from a volume, server
snapshots and backups, shelve and unshelve.

Cinder's own create-from-image and upload-to-image flows run here as a
deployment runs them: cinder-volume calls ``qemu-img`` as root through
``sudo cinder-rootwrap`` and privsep before the driver copies a byte
(tools/cloud/cloud.sh sets that up as devstack does). Glance is the real
one, which inspects what it is sent (a disk_format that does not match the
data is refused with 415).

Bytes are checked end to end: a VDI's sha256 read back through the
simulator's ``/export_raw_vdi`` (or its control interface's digests of a
VM's disks) against the image, and an uploaded image downloaded again with
``openstack image save``.
"""

import hashlib
import json
import os
import subprocess
import tempfile
import urllib.parse
import urllib.request

from test_cloud import CLOUD
from test_cloud import CloudTestCase
from test_cloud import DEADLINE
from test_cloud import MiB
from test_cloud import OPENSTACK
from test_cloud import POOLS

GiB = 1 << 30
CHUNK = 4 * MiB
# Where Cinder's backend (pool-a, tiers gold and silver) keeps a volume.
VOLUME_KEY = 'cinder_volume_id'
# Where the servers of these tests run: silver, the volumes' default tier,
# is shared by both pools.
HOST, POOL = 'compute-b', 'pool-b'


def _sha256_padded(data, size):
    """sha256 of ``data`` followed by zeros up to ``size`` bytes."""
    digest = hashlib.sha256(data)
    left = size - len(data)
    zeros = bytes(CHUNK)
    while left > 0:
        n = min(left, CHUNK)
        digest.update(zeros[:n])
        left -= n
    return digest.hexdigest()


def _cli(*args, check=True):
    """``openstack ARGS`` as the admin, outside a test (class set-up)."""
    env = dict(os.environ, OS_CLOUD='sxm-admin',
               OS_CLIENT_CONFIG_FILE=os.path.join(CLOUD, 'clouds.yaml'))
    proc = subprocess.run([OPENSTACK] + list(args), env=env, text=True,
                          capture_output=True, timeout=DEADLINE)
    if check and proc.returncode:
        raise RuntimeError('openstack %s: %s' % (' '.join(args),
                                                 proc.stderr))
    return proc.stdout


def _sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


class ImagesTest(CloudTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # An image of this class's own: 8 MiB of random bytes, raw.
        cls.image_bytes = os.urandom(8 * MiB)
        cls.workdir = tempfile.mkdtemp(prefix='sxm-e2e-images-',
                                       dir=os.path.join(CLOUD, 'state'))
        path = os.path.join(cls.workdir, 'source.raw')
        with open(path, 'wb') as f:
            f.write(cls.image_bytes)
        cls.image_id = json.loads(_cli(
            'image', 'create', '--disk-format', 'raw', '--container-format',
            'bare', '--file', path, '--private', 'sxm-e2e-images', '-f',
            'json'))['id']

    @classmethod
    def tearDownClass(cls):
        _cli('image', 'delete', cls.image_id, check=False)
        for name in os.listdir(cls.workdir):
            os.unlink(os.path.join(cls.workdir, name))
        os.rmdir(cls.workdir)
        super().tearDownClass()

    # -- helpers -----------------------------------------------------------

    def delete_image(self, ident):
        self.os('image', 'delete', ident, check=False)

    def wait_image(self, ident):
        def active():
            image = self.os('image', 'show', ident, '-f', 'json')
            if image['status'] in ('killed', 'deleted', 'deactivated'):
                self.fail('image %s: %s' % (ident, image['status']))
            return image if image['status'] == 'active' else None
        return self.poll(active, 'image %s active' % ident)

    def volume_vdi(self, volume):
        """uuid of the VDI that holds ``volume`` (pool-a)."""
        api = self.xapi['pool-a']
        found = [rec['uuid'] for rec in api.VDI.get_all_records().values()
                 if rec['other_config'].get(VOLUME_KEY) == volume
                 and not rec['is_a_snapshot']]
        self.assertEqual(1, len(found), 'VDIs of volume %s: %s'
                         % (volume, found))
        return found[0]

    def vdi_sha256(self, vdi, pool='pool-a'):
        """sha256 of a VDI's bytes, read through /export_raw_vdi."""
        # setUpClass logs in to the pools in POOLS' order.
        session = dict(zip(POOLS, self.sessions))[pool]
        url = '%sexport_raw_vdi?%s' % (POOLS[pool], urllib.parse.urlencode(
            {'session_id': session.handle, 'vdi': vdi}))
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=300) as resp:
            for block in iter(lambda: resp.read(CHUNK), b''):
                digest.update(block)
        return digest.hexdigest()

    def root_sha256(self, server, pool=POOL):
        """sha256 of the server's root disk (userdevice 0)."""
        return self.ctl[pool].vm_digests(self.vm_uuid(server, pool))['0']

    def volume_from_image(self, name, size=1, tier='silver'):
        vol = self.os('volume', 'create', '--image', self.image_id,
                      '--size', size, '--type', tier, name, '-f', 'json')
        self.addCleanup(self.delete_volume, vol['id'])
        return self.wait_volume(vol['id'], 'available')

    def boot_image(self, name, image, host=HOST):
        srv = self.os('server', 'create', '--image', image,
                      '--flavor', self.flavor(), '--nic', 'none',
                      '--availability-zone', 'nova:%s' % host, '--wait',
                      name, '-f', 'json')
        self.addCleanup(self.delete_server, srv['id'])
        self.assertEqual('ACTIVE', srv['status'])
        return srv['id']

    def written(self, server, pool=POOL):
        """The guest writes to its root disk for a while, then stops.

        Returns the root disk's sha256 once the writes are checked.
        """
        self.write(server, pool, ['0'], seed=7)
        self.wait_writes(server, pool, more=20)
        self.stop_and_check(server, pool, ['0'])
        return self.root_sha256(server, pool)

    # -- tests -------------------------------------------------------------

    def test_1_volume_from_image(self):
        for tier in ('silver', 'gold'):
            vol = self.volume_from_image('e2e-from-image-%s' % tier,
                                         tier=tier)
            self.assertEqual('true', str(vol['bootable']).lower())
            self.assertEqual(_sha256_padded(self.image_bytes, GiB),
                             self.vdi_sha256(self.volume_vdi(vol['id'])),
                             'the %s volume does not hold the image' % tier)

    def test_2_clone_and_extend_of_image_volume(self):
        """Cinder's flows for a bootable volume (its image metadata)."""
        src = self.volume_from_image('e2e-clone-src')['id']
        clone = self.os('volume', 'create', '--source', src, '--size', 1,
                        'e2e-clone', '-f', 'json')
        self.addCleanup(self.delete_volume, clone['id'])
        clone = self.wait_volume(clone['id'], 'available')
        self.assertEqual('true', str(clone['bootable']).lower())
        self.assertEqual(self.image_id,
                         clone['volume_image_metadata']['image_id'])
        expected = _sha256_padded(self.image_bytes, GiB)
        self.assertEqual(expected,
                         self.vdi_sha256(self.volume_vdi(clone['id'])))
        self.os('volume', 'set', '--size', 2, clone['id'])
        self.wait_volume(clone['id'], 'available', size=2)
        self.assertEqual(_sha256_padded(self.image_bytes, 2 * GiB),
                         self.vdi_sha256(self.volume_vdi(clone['id'])))
        # The source is untouched.
        self.assertEqual(expected, self.vdi_sha256(self.volume_vdi(src)))

    def test_3_volume_upload_to_image(self):
        vol = self.volume_from_image('e2e-upload')['id']
        before = self.vdi_sha256(self.volume_vdi(vol))
        name = 'e2e-upload-%s' % vol[:8]
        self.os('image', 'create', '--volume', vol, '--disk-format', 'raw',
                '--container-format', 'bare', name)
        found = self.poll(lambda: self.os('image', 'list', '--name', name,
                                          '-f', 'json'),
                          'image %s listed' % name)
        image = found[0]['ID']
        self.addCleanup(self.delete_image, image)
        image = self.wait_image(image)
        self.wait_volume(vol, 'available')
        self.assertEqual('raw', image['disk_format'])
        self.assertEqual(GiB, int(image['size']))
        path = os.path.join(self.workdir, 'upload.raw')
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        self.os('image', 'save', '--file', path, image['id'])
        self.assertEqual(before, _sha256_file(path))
        self.assertEqual(_sha256_padded(self.image_bytes, GiB), before)

    def test_4_boot_from_volume(self):
        vol = self.volume_from_image('e2e-boot-volume')['id']
        srv = self.os('server', 'create', '--volume', vol,
                      '--flavor', self.flavor(), '--nic', 'none',
                      '--availability-zone', 'nova:' + HOST, '--wait',
                      'e2e-boot-volume', '-f', 'json', check=False)
        if srv.returncode == 0:
            ident = json.loads(srv.stdout)['id']
        else:
            ident = None
            found = self.os('server', 'list', '--name', 'e2e-boot-volume',
                            '-f', 'json')
            if found:
                ident = found[0]['ID']
        if ident:
            self.addCleanup(self.delete_server, ident)
        self.assertEqual(0, srv.returncode, 'boot from volume failed: %s%s'
                         % (srv.stderr, ident and
                            self.server(ident).get('fault')))
        self.assertEqual('in-use', self.volume(vol)['status'])
        disks = self.disks(ident, POOL)
        self.assertEqual(self.volume_vdi(vol), disks['0'][0],
                         'the root disk is not the volume')
        self.assertEqual('Running', self.vm_of(ident, POOL)[1][
            'power_state'])
        self.assertEqual(_sha256_padded(self.image_bytes, GiB),
                         self.root_sha256(ident))

    def test_5_server_image_create_and_boot_from_it(self):
        server = self.boot_image('e2e-snap-src', self.image_id)
        written = self.written(server)
        name = 'e2e-snap-%s' % server[:8]
        proc = self.os('server', 'image', 'create', '--name', name,
                       '--wait', server, '-f', 'json', check=False)
        found = self.os('image', 'list', '--name', name, '-f', 'json')
        for image in found:
            self.addCleanup(self.delete_image, image['ID'])
        self.assertEqual(0, proc.returncode, 'server image create: %s'
                         % proc.stderr)
        srv = self.wait_server(server)
        self.assertEqual('Running', self.vm_of(server, POOL)[1][
            'power_state'])
        (image,) = found
        image = self.wait_image(image['ID'])
        # The snapshot keeps the guest's disk, whatever the upload format.
        copy = self.boot_image('e2e-snap-copy', image['id'])
        self.assertEqual(written, self.root_sha256(copy))
        # The source is untouched.
        self.assertEqual(written, self.root_sha256(server))
        self.assertEqual('ACTIVE', srv['status'])

    def test_6_shelve_and_unshelve(self):
        server = self.boot_image('e2e-shelve', self.image_id)
        written = self.written(server)
        self.os('server', 'shelve', server)
        self.wait_server(server, 'SHELVED_OFFLOADED')
        self.assertEqual((None, None), self.vm_of(server, POOL))
        shelved = self.os('image', 'list', '--name', 'e2e-shelve-shelved',
                          '-f', 'json')
        self.assertEqual(1, len(shelved), shelved)
        self.os('server', 'unshelve', server)
        srv = self.wait_server(server)
        pool = {'compute-a': 'pool-a', 'compute-b': 'pool-b'}[
            srv['OS-EXT-SRV-ATTR:host']]
        self.assertEqual('Running', self.vm_of(server, pool)[1][
            'power_state'])
        self.assertEqual(written, self.root_sha256(server, pool))
        # Nova deletes the shelve image once the server is back.
        self.poll(lambda: not self.os('image', 'list', '--name',
                                      'e2e-shelve-shelved', '-f', 'json'),
                  'the shelve image deleted')

    def test_7_server_backup(self):
        server = self.boot_image('e2e-backup-src', self.image_id)
        written = self.written(server)
        name = 'e2e-backup-%s' % server[:8]
        proc = self.os('server', 'backup', 'create', '--name', name,
                       '--type', 'daily', '--rotate', 1, '--wait', server,
                       check=False)
        found = self.os('image', 'list', '--name', name, '-f', 'json')
        for image in found:
            self.addCleanup(self.delete_image, image['ID'])
        self.assertEqual(0, proc.returncode, 'server backup create: %s'
                         % proc.stderr)
        (image,) = found
        image = self.wait_image(image['ID'])
        self.assertEqual('backup', image['properties']['image_type'])
        self.assertEqual('daily', image['properties']['backup_type'])
        self.wait_server(server)
        copy = self.boot_image('e2e-backup-copy', image['id'])
        self.assertEqual(written, self.root_sha256(copy))
