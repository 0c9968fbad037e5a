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

"""cinder-volume killed (SIGKILL, its whole process group) during a live
retype of a volume attached to a running server, then started again by
``cloud.sh up``.

The copy (VDI.pool_migrate) is slowed by the simulator's link throttle so
that the kill lands mid-copy. Either XAPI finishes the copy while
cinder-volume is down, or it is still copying when cinder-volume is back.
Either way the volume leaves 'retyping': type gold, host ``...#gold``,
provider_location naming the VDI XAPI has on gold, the one VDI of the
volume; every byte the guest wrote is there; and a delete after the
detach removes that VDI.
"""

import os
import signal
import time

import pymysql

import cloudhelpers
from test_cloud import _secrets
from test_cloud import MiB
from test_cloud import TOP
from test_images import _sha256_padded
from test_volumes_across_pools import GiB
from test_volumes_across_pools import PoolVolumes

DB_PORT = int(os.environ.get('SXM_CLOUD_DB_PORT', '13306'))
POOL = 'pool-a'


def _code_mtime():
    """When the drivers' code last changed."""
    return max(os.path.getmtime(os.path.join(root, f))
               for pkg in ('cinder_sxm', 'sxm_core')
               for root, _, files in os.walk(os.path.join(TOP, pkg))
               for f in files if f.endswith('.py'))


def _group_alive(pgid):
    return any(fields is not None and int(fields[2]) == pgid
               and fields[0] != 'Z'
               for fields in map(cloudhelpers.stat, cloudhelpers.pids()))


class KillCinderTestCase(cloudhelpers.ServiceKillTestCase):
    """Kills cinder-volume; it runs this tree's driver."""

    def setUp(self):
        super().setUp()
        # The service under test must run this tree's driver.
        if self.started_at('cinder-volume') < _code_mtime():
            self.stop_cinder_volume(signal.SIGTERM)
            self.ensure_cloud()

    @staticmethod
    def started_at(name):
        """When the service's process started (seconds since the epoch)."""
        with open('/proc/%d/stat' % cloudhelpers.pid_of(name)) as f:
            ticks = int(f.read().rsplit(')', 1)[1].split()[19])
        with open('/proc/stat') as f:
            boot = next(int(line.split()[1]) for line in f
                        if line.startswith('btime'))
        return boot + ticks / os.sysconf('SC_CLK_TCK')

    def stop_cinder_volume(self, sig):
        """Signal cinder-volume's process group (parent and worker)."""
        pgid = cloudhelpers.pid_of('cinder-volume')
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        self.poll(lambda: not _group_alive(pgid),
                  'cinder-volume (group %d) to die' % pgid, timeout=60,
                  interval=0.2)

    # -- where things are ----------------------------------------------------

    def db_volume(self, volume_id):
        conn = pymysql.connect(host='127.0.0.1', port=DB_PORT, user='sxm',
                               password=_secrets()['DB_PASSWORD'],
                               database='cinder')
        try:
            with conn.cursor() as cur:
                cur.execute('SELECT v.status, v.host, v.provider_location, '
                            't.name, v.migration_status FROM volumes v '
                            'JOIN volume_types t ON t.id = v.volume_type_id'
                            ' WHERE v.id = %s', (volume_id,))
                return dict(zip(('status', 'host', 'provider_location',
                                 'type', 'migration_status'),
                                cur.fetchone()))
        finally:
            conn.close()


class KillCinderVolumeTest(KillCinderTestCase):

    def labelled(self, volume_id):
        api = self.xapi[POOL]
        return {api.VDI.get_uuid(ref): api.SR.get_name_label(
            api.VDI.get_SR(ref))
            for ref in api.VDI.get_by_name_label('volume-%s' % volume_id)}

    def copying(self, vdi_uuid):
        api = self.xapi[POOL]
        try:
            ops = api.VDI.get_current_operations(
                api.VDI.get_by_uuid(vdi_uuid))
        except Exception:
            return False
        for task in ops:
            try:
                if api.task.get_status(task) == 'pending' and float(
                        api.task.get_progress(task)) > 0.05:
                    return True
            except Exception:
                continue
        return False

    def vdi_of_device(self, server, device):
        api = self.xapi[POOL]
        ref, rec = self.vm_of(server, POOL)
        for vbd in rec['VBDs']:
            vbd_rec = api.VBD.get_record(vbd)
            if vbd_rec['userdevice'] == device:
                return api.VDI.get_uuid(vbd_rec['VDI'])
        self.fail('server %s has no disk %s' % (server, device))

    # -- the scenario --------------------------------------------------------

    def kill_mid_retype(self, name):
        server = self.boot(name)
        volume = self.create_volume(name, 'silver')
        self.attach(server, volume)
        old = self.db_volume(volume)['provider_location']
        (device,) = [dev for dev, (uuid, _) in
                     self.disks(server, POOL).items() if uuid == old]
        self.write(server, POOL, [device])
        self.wait_writes(server, POOL)
        self.ctl[POOL].configure(bandwidth=256 * 1024)
        self.addCleanup(self.ctl[POOL].configure, bandwidth=0)

        self.os('volume', 'set', '--type', 'gold', '--migration-policy',
                'on-demand', volume)
        self.poll(lambda: self.copying(old), 'the live copy to run',
                  interval=0.2)
        self.stop_cinder_volume(signal.SIGKILL)
        self.assertEqual('retyping', self.db_volume(volume)['status'])
        return server, volume, device, old

    def settled(self, server, volume, device, old):
        vol = self.poll(
            lambda: (lambda v: v if v['status'] != 'retyping' else None)(
                self.volume(volume)), 'volume %s to leave retyping' % volume)
        self.assertEqual('in-use', vol['status'])
        self.assertEqual('gold', vol['type'])
        rec = self.db_volume(volume)
        self.assertEqual('cinder-a@sxm#gold', rec['host'])
        self.assertEqual('gold', rec['type'])
        new = self.vdi_of_device(server, device)
        self.assertNotEqual(old, new)
        self.assertEqual(new, rec['provider_location'])
        # One VDI holds the volume, on gold: no original, no copy.
        self.assertEqual({new: 'gold'}, self.labelled(volume))
        self.wait_writes(server, POOL)
        self.stop_and_check(server, POOL, [device])
        # Delete after the detach removes the data.
        self.os('server', 'remove', 'volume', server, volume)
        self.wait_volume(volume, 'available')
        self.os('volume', 'delete', volume)
        self.poll(lambda: self.os('volume', 'show', volume,
                                  check=False).returncode != 0,
                  'volume %s deleted' % volume)
        self.assertEqual({}, self.labelled(volume))

    def test_1_xapi_finishes_while_cinder_volume_is_down(self):
        server, volume, device, old = self.kill_mid_retype('e2e-kill-c1')
        self.ctl[POOL].configure(bandwidth=0)
        self.poll(lambda: not self.labelled(volume).get(old),
                  'XAPI to finish the copy', interval=0.5)
        self.assertEqual({'gold'}, set(self.labelled(volume).values()))
        self.ensure_cloud()
        self.settled(server, volume, device, old)

    def test_2_still_copying_when_cinder_volume_is_back(self):
        server, volume, device, old = self.kill_mid_retype('e2e-kill-c2')
        started = time.monotonic()
        self.ensure_cloud()
        self.assertIn(old, self.labelled(volume),
                      'the copy ended before cinder-volume was back (%.0f s)'
                      % (time.monotonic() - started))
        self.ctl[POOL].configure(bandwidth=4 << 20)
        self.settled(server, volume, device, old)


class KillCinderCrossPoolTest(PoolVolumes, KillCinderTestCase):
    """cinder-volume killed mid copy of a volume to another pool.

    SIGKILL while the driver itself streams a detached volume to the other
    pool's backend (export, spool, import, verify), then its restart: the
    source VDI still exists, so the volume stays where it was, bytes
    intact, and nothing of the copy is left in the other pool; a second
    retype then moves it.
    """

    def test_killed_mid_copy_to_another_pool(self):
        vol = self.create_volume('e2e-kill-across', 'pool-a')
        (source,) = self.volume_vdis('pool-a', vol)
        data = os.urandom(512 * MiB)
        self.put_bytes('pool-a', source, data)
        expected = _sha256_padded(data, GiB)
        del data

        self.os('volume', 'set', '--type', 'pool-b', '--migration-policy',
                'on-demand', vol)
        # The copy is made in pool-b before a byte moves (marked
        # sxm_copy_of): kill while it is there.
        self.poll(lambda: self.volume_vdis('pool-b', vol),
                  'the copy to start in pool-b', interval=0.1)
        self.stop_cinder_volume(signal.SIGKILL)
        rec = self.db_volume(vol)
        self.assertEqual(('retyping', 'pool-a'),
                         (rec['status'], rec['type']))

        self.ensure_cloud()
        back = self.wait_volume(vol, 'available', type='pool-a')
        self.assertTrue(back['os-vol-host-attr:host'].startswith(
            'cinder-a@sxm#'), back['os-vol-host-attr:host'])
        self.assertEqual('error', back['os-vol-mig-status-attr:migstat'])
        self.assertEqual(source, self.db_volume(vol)['provider_location'])
        self.assertEqual([source], self.volume_vdis('pool-a', vol))
        self.assertEqual(expected, self.vdi_sha256('pool-a', source))
        api = self.xapi['pool-b']
        self.assertEqual([], [
            rec['uuid'] for rec in api.VDI.get_all_records().values()
            if rec['other_config'].get('sxm_copy_of') == source],
            'a copy of the volume is left in pool-b')

        # Nothing stands in the way of the next move.
        self.os('volume', 'set', '--type', 'pool-b', '--migration-policy',
                'on-demand', vol)
        moved = self.wait_volume(vol, 'available', type='pool-b')
        self.assertEqual('success', moved['os-vol-mig-status-attr:migstat'])
        self.assertEqual([], self.volume_vdis('pool-a', vol))
        (copy,) = self.volume_vdis('pool-b', vol)
        self.assertEqual(expected, self.vdi_sha256('pool-b', copy))
        self.os('volume', 'delete', vol)
