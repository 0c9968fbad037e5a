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

"""Volumes between the cloud's two Cinder backends, one per XAPI pool
(``sxm`` on pool-a, ``sxm-b`` on pool-b), and a VDI Cinder did not create
adopted with ``openstack volume create --remote-source`` and attached to a
server, through the ``openstack`` command.

Bytes are checked by sha256 read back through the simulator's
``/export_raw_vdi`` in the pool that holds the VDI.
"""

import hashlib
import os
import urllib.parse
import urllib.request

from test_cloud import CloudTestCase
from test_cloud import MiB
from test_cloud import POOLS
from test_images import _sha256_padded

GiB = 1 << 30
CHUNK = 4 * MiB
VOLUME_KEY = 'cinder_volume_id'
DEST = 'cinder-a@sxm-b#gold'


class PoolVolumes(object):
    """A volume's VDIs and bytes in either pool (for a CloudTestCase)."""

    def session_of(self, pool):
        # setUpClass logs in to the pools in POOLS' order.
        return dict(zip(POOLS, self.sessions))[pool]

    def _url(self, pool, handler, vdi):
        return '%s%s?%s' % (POOLS[pool], handler, urllib.parse.urlencode(
            {'session_id': self.session_of(pool).handle, 'vdi': vdi}))

    def put_bytes(self, pool, vdi, data):
        req = urllib.request.Request(
            self._url(pool, 'import_raw_vdi', vdi), data=data, method='PUT',
            headers={'Content-Length': str(len(data))})
        with urllib.request.urlopen(req, timeout=300) as resp:
            resp.read()

    def vdi_sha256(self, pool, vdi):
        digest = hashlib.sha256()
        with urllib.request.urlopen(self._url(pool, 'export_raw_vdi', vdi),
                                    timeout=300) as resp:
            for block in iter(lambda: resp.read(CHUNK), b''):
                digest.update(block)
        return digest.hexdigest()

    def volume_vdis(self, pool, volume):
        """uuids of the (non-snapshot) VDIs of ``volume`` in ``pool``."""
        api = self.xapi[pool]
        return [rec['uuid'] for rec in api.VDI.get_all_records().values()
                if rec['other_config'].get(VOLUME_KEY) == volume
                and not rec['is_a_snapshot']]

    def wait_migration(self, volume, status):
        def ended():
            vol = self.volume(volume)
            state = vol.get('os-vol-mig-status-attr:migstat')
            if state in ('success', 'error'):
                return vol
            return None
        vol = self.poll(ended, 'the migration of volume %s' % volume)
        self.assertEqual(status, vol['os-vol-mig-status-attr:migstat'],
                         vol)
        return vol


class VolumesAcrossPoolsTest(PoolVolumes, CloudTestCase):

    # -- tests -------------------------------------------------------------

    def test_1_retype_between_backends_and_back(self):
        """pool-a -> pool-b -> pool-a, detached: types naming a backend."""
        vol = self.create_volume('e2e-across', 'pool-a')
        (vdi,) = self.volume_vdis('pool-a', vol)
        data = os.urandom(8 * MiB)
        self.put_bytes('pool-a', vdi, data)
        expected = _sha256_padded(data, GiB)
        # The types differ only by volume_backend_name: Cinder lets the
        # driver move the volume.
        self.os('volume', 'set', '--type', 'pool-b', '--migration-policy',
                'on-demand', vol)
        moved = self.wait_volume(vol, 'available', type='pool-b')
        self.assertEqual(DEST, moved['os-vol-host-attr:host'])
        self.assertEqual('success',
                         moved['os-vol-mig-status-attr:migstat'])
        self.assertEqual([], self.volume_vdis('pool-a', vol),
                         'the source VDI is still in pool-a')
        (vdi,) = self.volume_vdis('pool-b', vol)
        self.assertEqual(expected, self.vdi_sha256('pool-b', vdi))

        self.os('volume', 'set', '--type', 'pool-a', '--migration-policy',
                'on-demand', vol)
        back = self.wait_volume(vol, 'available', type='pool-a')
        self.assertTrue(back['os-vol-host-attr:host'].startswith(
            'cinder-a@sxm#'), back['os-vol-host-attr:host'])
        self.assertEqual([], self.volume_vdis('pool-b', vol))
        (vdi,) = self.volume_vdis('pool-a', vol)
        self.assertEqual(expected, self.vdi_sha256('pool-a', vdi))

    def test_2_migrate_to_the_other_backend(self):
        """openstack volume migrate --host, type gold-any (no backend)."""
        vol = self.create_volume('e2e-migrate', 'gold-any')
        here = self.volume(vol)['os-vol-host-attr:host']
        pools = {'cinder-a@sxm#gold': 'pool-a', DEST: 'pool-b'}
        self.assertIn(here, pools)
        there = [h for h in pools if h != here][0]
        (vdi,) = self.volume_vdis(pools[here], vol)
        data = os.urandom(8 * MiB)
        self.put_bytes(pools[here], vdi, data)
        self.os('volume', 'migrate', '--host', there, vol)
        moved = self.wait_migration(vol, 'success')
        self.assertEqual('available', moved['status'])
        self.assertEqual(there, moved['os-vol-host-attr:host'])
        self.assertEqual([], self.volume_vdis(pools[here], vol))
        (vdi,) = self.volume_vdis(pools[there], vol)
        self.assertEqual(_sha256_padded(data, GiB),
                         self.vdi_sha256(pools[there], vdi))

    def test_3_attached_volume_refused_and_kept(self):
        server = self.boot('e2e-across-attached')
        vol = self.create_volume('e2e-across-attached', 'gold')
        self.attach(server, vol)
        (vdi,) = self.volume_vdis('pool-a', vol)
        (dev,) = [d for d, (uuid, _) in self.disks(server, 'pool-a').items()
                  if uuid == vdi]
        self.write(server, 'pool-a', [dev])
        self.wait_writes(server, 'pool-a')
        self.os('volume', 'set', '--type', 'pool-b', '--migration-policy',
                'on-demand', vol)
        vol_rec = self.wait_migration(vol, 'error')
        vol_rec = self.wait_volume(vol, 'in-use')
        self.assertEqual('gold', vol_rec['type'])
        self.assertEqual('cinder-a@sxm#gold',
                         vol_rec['os-vol-host-attr:host'])
        self.assertEqual([], self.volume_vdis('pool-b', vol),
                         'a VDI of the refused move is in pool-b')
        self.assertEqual([vdi], self.volume_vdis('pool-a', vol))
        # The guest never noticed.
        self.wait_writes(server, 'pool-a')
        self.stop_and_check(server, 'pool-a', [dev])

    def test_4_adopted_vdi_attached_to_a_server(self):
        api = self.xapi['pool-a']
        (sr,) = api.SR.get_by_name_label('gold')
        vdi = api.VDI.create({
            'name_label': 'e2e-legacy-disk', 'name_description': '',
            'SR': sr, 'virtual_size': str(GiB - 3 * MiB), 'type': 'user',
            'sharable': False, 'read_only': False, 'other_config': {},
            'xenstore_data': {}, 'sm_config': {}, 'tags': []})
        uuid = api.VDI.get_uuid(vdi)
        self.addCleanup(self._destroy_vdi, 'pool-a', uuid)
        data = os.urandom(4 * MiB)
        self.put_bytes('pool-a', uuid, data)

        vol = self.os('volume', 'create', '--remote-source',
                      'source-id=%s' % uuid, '--host', 'cinder-a@sxm#gold',
                      '--type', 'gold', '--non-bootable', 'e2e-adopted',
                      '-f', 'json')
        self.addCleanup(self.delete_volume, vol['id'])
        vol = self.wait_volume(vol['id'], 'available')
        # Rounded up to whole GiB; the VDI grew, its bytes kept.
        self.assertEqual(1, int(vol['size']))
        self.assertEqual([uuid], self.volume_vdis('pool-a', vol['id']))
        self.assertEqual(_sha256_padded(data, GiB),
                         self.vdi_sha256('pool-a', uuid))

        server = self.boot('e2e-adopted')
        self.attach(server, vol['id'])
        found = [dev for dev, (vdi_uuid, _) in
                 self.disks(server, 'pool-a').items() if vdi_uuid == uuid]
        self.assertEqual(1, len(found),
                         'the server does not have the adopted VDI')
        digests = self.ctl['pool-a'].vm_digests(
            self.vm_uuid(server, 'pool-a'))
        self.assertEqual(_sha256_padded(data, GiB), digests[found[0]])

        # Unmanage leaves the VDI (the clean-up above destroys it).
        self.os('server', 'remove', 'volume', server, vol['id'])
        self.wait_volume(vol['id'], 'available')
        self.os('volume', 'delete', '--remote', vol['id'])
        self.poll(lambda: self.os('volume', 'show', vol['id'], check=False)
                  .returncode != 0, 'volume %s unmanaged' % vol['id'])
        self.assertTrue(api.VDI.get_by_uuid(uuid))

    def _destroy_vdi(self, pool, uuid):
        api = self.xapi[pool]
        try:
            api.VDI.destroy(api.VDI.get_by_uuid(uuid))
        except Exception:  # already gone: nothing to clean
            pass
