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

"""Cinder volumes through the real Nova API, attached across XAPI pools
and carried through a live block migration.

Nova's Cinder fixture stands in for Cinder; its connection info is built by
``sxm_core.attach.connection_info`` (what cinder_sxm hands out) from the
volume SR's real record and PBD in the simulator. Volumes live in two
tiers: *silver*, a shared NFS SR of ``pool-c`` (a storage pool with no
nova-compute) that pool-a and pool-b can introduce, and *gold*, an
lvmoiscsi SR local to pool-a.
"""

import copy
import hashlib
import logging
import random
import threading
import time
import urllib.parse
import urllib.request

import fixtures
from nova import context as nova_context
from nova import exception
from nova import objects
from nova.tests import fixtures as nova_fixtures
from oslo_serialization import jsonutils
from oslo_utils import uuidutils
from sxm_core import attach
import XenAPI

from nova_sxm.tests.functional import base
from nova_sxm.virt import volumeops

MiB = base.MiB
SILVER = 'Silver (nfs)'
GOLD = 'Gold (lvmoiscsi)'


def volume_topology():
    topo = base.simhelpers.topology_with(
        {'pool-a': [{'name': GOLD, 'type': 'lvmoiscsi', 'size': '16GiB'}]})
    storage = copy.deepcopy(topo['pools'][0])
    storage.update(name='pool-c', hosts=[{'name': 'pool-c-host1'}],
                   srs=[{'name': SILVER, 'type': 'nfs', 'size': '16GiB',
                         'shared': True, 'default': True}])
    topo['pools'].append(storage)
    return topo


class XensmCinderFixture(nova_fixtures.CinderFixture):
    """Nova's Cinder stand-in, with cinder_sxm's connection info.

    ``add_volume`` registers a VDI as a volume; an attachment with a
    connector gets ``attach.connection_info`` for that connector, built
    from the volume SR's record and device_config read from its pool.
    """

    def __init__(self, test):
        super().__init__(test)
        # volume id -> (XenAPI session of its pool, pool uuid, VDI uuid,
        # tier)
        self.backends = {}
        self._xapi_lock = threading.Lock()
        # Volumes Cinder is migrating (what lets Nova's API swap them).
        self.migrating = set()
        # (old volume id, new volume id, error) per migrate completion.
        self.completions = []

    def add_volume(self, volume_id, session, vdi_uuid, tier):
        x = session.xenapi
        pool_uuid = x.pool.get_uuid(x.pool.get_all()[0])
        self.backends[volume_id] = (session, pool_uuid, vdi_uuid, tier)

    def _xensm(self, volume_id, attachment_id, connector):
        session, pool_uuid, vdi_uuid, tier = self.backends[volume_id]
        with self._xapi_lock:  # one XenAPI session, many compute threads
            x = session.xenapi
            sr_rec = x.SR.get_record(x.VDI.get_SR(x.VDI.get_by_uuid(
                vdi_uuid)))
            device_config = x.PBD.get_device_config(sr_rec['PBDs'][0])
        try:
            info = attach.connection_info(volume_id, vdi_uuid, sr_rec,
                                          pool_uuid, connector,
                                          device_config, tier)
        except attach.CrossPoolRefused as exc:
            raise exception.InvalidVolume(reason=str(exc))
        info['data']['attachment_id'] = attachment_id
        return info

    def _find_connection_info(self, volume_id, attachment_id):
        attachment = self.volume_to_attachment[volume_id].get(
            attachment_id) or {}
        if volume_id in self.backends and attachment.get('connector'):
            return self._xensm(volume_id, attachment_id,
                               attachment['connector'])
        return super()._find_connection_info(volume_id, attachment_id)

    def fake_attachment_create(self, context, volume_id, instance_uuid,
                               connector=None, mountpoint=None):
        if volume_id not in self.backends or not connector:
            return super().fake_attachment_create(
                context, volume_id, instance_uuid, connector=connector,
                mountpoint=mountpoint)
        attachment = super().fake_attachment_create(
            context, volume_id, instance_uuid, mountpoint=mountpoint)
        try:
            attachment['connection_info'] = self._xensm(
                volume_id, attachment['id'], connector)
        except Exception:
            del self.volume_to_attachment[volume_id][attachment['id']]
            raise
        self.volume_to_attachment[volume_id][attachment['id']][
            'connector'] = connector
        return attachment

    def fake_get(self, context, volume_id, microversion=None):
        volume = super().fake_get(context, volume_id,
                                  microversion=microversion)
        if volume_id in self.migrating:
            volume['migration_status'] = 'migrating'
        return volume

    def fake_migrate_volume_completion(self, context, old_volume_id,
                                       new_volume_id, error):
        """As Cinder: the old id kept; on success it names the new VDI."""
        self.completions.append((old_volume_id, new_volume_id, error))
        self.migrating.discard(old_volume_id)
        if not error:
            self.backends[old_volume_id] = self.backends.pop(new_volume_id)
        return {'save_volume_id': old_volume_id}

    def connectors(self, volume_id):
        return [a['connector'] for a in
                self.volume_to_attachment[volume_id].values()
                if a['connector']]


class VolumeTestBase(base.SxmServicesTestCase):

    topology = volume_topology()

    def setUp(self):
        super().setUp()
        self.cinder = self.useFixture(XensmCinderFixture(self))
        self.storage = self._login('pool-c')
        self.xapi['pool-c'] = self.storage.xenapi
        self.silver_uuid = self.sr_uuid('pool-c', SILVER)
        self.image = self.make_image(random.Random(4).randbytes(MiB))
        self.flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                          ephemeral=0)
        self.server = self._create_server(image_uuid=self.image,
                                          flavor_id=self.flavor,
                                          host='host1', networks='none')

    def create_volume(self, pool, sr_name, tier, data, sharable=False,
                      volume_id=None):
        """A VDI holding ``data`` on ``sr_name``, known to the fixture."""
        session = self.storage if pool == 'pool-c' else self._login(pool)
        x = session.xenapi
        vdi = x.VDI.create({
            'name_label': 'volume', 'name_description': '',
            'SR': x.SR.get_by_name_label(sr_name)[0],
            'virtual_size': str(len(data)), 'type': 'user',
            'sharable': sharable, 'read_only': False, 'other_config': {},
            'xenstore_data': {}, 'sm_config': {}, 'tags': []})
        vdi_uuid = x.VDI.get_uuid(vdi)
        query = urllib.parse.urlencode({'session_id': session.handle,
                                        'vdi': vdi_uuid})
        req = urllib.request.Request(
            '%simport_raw_vdi?%s' % (self.pools.url(pool), query),
            data=data, method='PUT')
        with urllib.request.urlopen(req, timeout=30):
            pass
        volume_id = volume_id or uuidutils.generate_uuid()
        self.cinder.add_volume(volume_id, session, vdi_uuid, tier)
        return volume_id, vdi_uuid

    def volume_vbd(self, pool, volume_id):
        """(VBD record, VDI uuid, SR uuid) of the server's volume."""
        x = self.xapi[pool]
        vm, _ = self.vm_of(self.server, pool)
        for vbd in x.VM.get_VBDs(vm):
            rec = x.VBD.get_record(vbd)
            if rec['other_config'].get(volumeops.VOLUME_KEY) == volume_id:
                return (rec, x.VDI.get_uuid(rec['VDI']),
                        x.SR.get_uuid(x.VDI.get_SR(rec['VDI'])))
        return None, None, None

    def knows_sr(self, pool, sr_uuid):
        try:
            self.xapi[pool].SR.get_by_uuid(sr_uuid)
            return True
        except XenAPI.Failure as exc:
            self.assertEqual(['UUID_INVALID', 'SR', sr_uuid], exc.details)
            return False

    def migrate(self):
        earlier = self.migration_ids(self.server)
        self.api.post_server_action(self.server['id'], {
            'os-migrateLive': {'host': 'host2', 'block_migration': True}})
        return earlier


class SilverVolumeTest(VolumeTestBase):

    def test_attach_migrate_detach_across_pools(self):
        data = random.Random(7).randbytes(8 * MiB)
        vol, vdi_uuid = self.create_volume('pool-c', SILVER, 'silver', data)
        self._attach_volume(self.server, vol)
        # pool-a introduced pool-c's SR, with the device_config of pool-c's
        # PBD, marked as its own, plugged on its host.
        vbd, got_vdi, got_sr = self.volume_vbd('pool-a', vol)
        self.assertEqual((vdi_uuid, self.silver_uuid), (got_vdi, got_sr))
        self.assertTrue(vbd['currently_attached'])
        x_a, x_c = self.xapi['pool-a'], self.xapi['pool-c']
        sr_a = x_a.SR.get_by_uuid(self.silver_uuid)
        pool_c = x_c.pool.get_uuid(x_c.pool.get_all()[0])
        self.assertEqual(pool_c, x_a.SR.get_other_config(sr_a)[
            volumeops.INTRODUCED_KEY])
        pbds = [x_a.PBD.get_record(p) for p in x_a.SR.get_PBDs(sr_a)]
        silver_c = x_c.SR.get_by_uuid(self.silver_uuid)
        config_c = x_c.PBD.get_device_config(x_c.SR.get_PBDs(silver_c)[0])
        self.assertEqual({'server', 'serverpath'}, set(config_c))
        self.assertEqual([(config_c, True)],
                         [(p['device_config'], p['currently_attached'])
                          for p in pbds])
        self.assertEqual(hashlib.sha256(data).hexdigest(),
                         self.export_digest('pool-a', vdi_uuid))
        b_vdis_before = set(self.xapi['pool-b'].VDI.get_all())
        # The guest keeps writing to its root disk and to the volume.
        vm_uuid = self.vm_of(self.server, 'pool-a')[1]['uuid']
        self.write(vm_uuid, ('0', '1'), rate=64 * 1024, seed=3,
                   ctl=self.ctl['pool-a'])
        self.wait_writes(vm_uuid, 5, ctl=self.ctl['pool-a'])

        earlier = self.migrate()
        self.wait_migration(self.server, ['completed'], ignore=earlier)
        server = self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        # The volume stayed on its SR: the same VDI, now in pool-b through
        # the SR pool-b introduced; nothing was copied for it.
        vbd, got_vdi, got_sr = self.volume_vbd('pool-b', vol)
        self.assertEqual((vdi_uuid, self.silver_uuid), (got_vdi, got_sr))
        self.assertTrue(vbd['currently_attached'])
        self.assertEqual(vbd['userdevice'], '1')
        x_b = self.xapi['pool-b']
        new = {x_b.VDI.get_uuid(v) for v in
               set(x_b.VDI.get_all()) - b_vdis_before}
        new_on_silver = [u for u in new if x_b.SR.get_uuid(
            x_b.VDI.get_SR(x_b.VDI.get_by_uuid(u))) == self.silver_uuid
            and u != vdi_uuid]
        self.assertEqual([], new_on_silver)
        self.assertEqual(1, len(x_c.SR.get_VDIs(silver_c)))
        # Every byte the guest wrote, before and during the move, is on
        # the volume (one store: pool-b and pool-c read the same bytes).
        self.stop_and_check(vm_uuid, ctl=self.ctl['pool-b'],
                            devices=('0', '1'), written=True)
        after = self.export_digest('pool-c', vdi_uuid)
        self.assertNotEqual(hashlib.sha256(data).hexdigest(), after)
        self.assertEqual(after, self.export_digest('pool-b', vdi_uuid))
        # The volume is not one of the instance's own disks.
        instance = objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), self.server['id'])
        disk_info = jsonutils.loads(self.computes['host2'].manager.driver
                                    .get_instance_disk_info(instance))
        self.assertEqual(['0'], [d['userdevice'] for d in disk_info])
        # The source pool forgot the SR it had introduced.
        self.assertFalse(self.knows_sr('pool-a', self.silver_uuid))
        # The attachment moved with the server: Cinder knows one
        # connected attachment, for pool-b's host.
        self.assertEqual([vol], [v['volumeId'] for v in
                                 self.api.get_server_volumes(
                                     self.server['id'])])
        pool_b = x_b.pool.get_uuid(x_b.pool.get_all()[0])
        self.assertEqual([pool_b], [c['xapi_pool_uuid'] for c in
                                    self.cinder.connectors(vol)])

        # Detach: pool-b forgets the SR it introduced; the volume's bytes
        # stay where Cinder keeps them.
        self.api.delete_server_volume(self.server['id'], vol)
        self._wait_for_volume_detach(self.server['id'], vol)
        self.assertEqual((None, None, None), self.volume_vbd('pool-b', vol))
        self.assertFalse(self.knows_sr('pool-b', self.silver_uuid))
        self.assertEqual(after, self.export_digest('pool-c', vdi_uuid))

    def test_failed_migration_forgets_the_sr_in_the_destination(self):
        data = random.Random(10).randbytes(4 * MiB)
        vol, vdi_uuid = self.create_volume('pool-c', SILVER, 'silver', data)
        self._attach_volume(self.server, vol)
        self.ctl['pool-a'].configure(bandwidth=4 * MiB)
        self.ctl['pool-a'].fault_inject('mirror', percent=50)
        earlier = self.migrate()
        self.wait_migration(self.server, ['error'], ignore=earlier)
        server = self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        # pre_live_migration had introduced the SR in pool-b: the
        # rollback there forgot it again; pool-a keeps it for the VM.
        self.poll(lambda: not self.knows_sr('pool-b', self.silver_uuid),
                  what='pool-b to forget the volume SR')
        vbd, got_vdi, got_sr = self.volume_vbd('pool-a', vol)
        self.assertEqual((vdi_uuid, self.silver_uuid), (got_vdi, got_sr))
        self.assertTrue(vbd['currently_attached'])
        self.assertEqual(hashlib.sha256(data).hexdigest(),
                         self.export_digest('pool-a', vdi_uuid))

    def test_unknown_sr_without_introduce_data_is_refused_by_name(self):
        # Connection info for pool-a's consumer (no introduce data) used
        # in pool-b: the driver cannot reach the SR and says which volume.
        data = random.Random(11).randbytes(MiB)
        vol, vdi_uuid = self.create_volume('pool-a', GOLD, 'gold', data)
        x_a = self.xapi['pool-a']
        info = self.cinder._xensm(vol, 'attachment-1', {
            'xapi_pool_uuid': x_a.pool.get_uuid(x_a.pool.get_all()[0])})
        info['serial'] = vol
        server = self._create_server(image_uuid=self.image,
                                     flavor_id=self.flavor, host='host2',
                                     networks='none')
        ctxt = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(ctxt, server['id'])
        driver = self.computes['host2'].manager.driver
        exc = self.assertRaises(exception.VolumeAttachFailed,
                                driver.attach_volume, ctxt, info, instance,
                                '/dev/xvdb')
        self.assertIn(vol, str(exc))
        self.assertIn('Retype the volume to a shared tier', str(exc))
        self.assertFalse(self.knows_sr('pool-b', self.sr_uuid('pool-a',
                                                              GOLD)))

    def test_failed_attach_forgets_the_sr_it_introduced(self):
        vol, _ = self.create_volume('pool-c', SILVER, 'silver',
                                    random.Random(14).randbytes(MiB))
        x_a = self.xapi['pool-a']
        info = self.cinder._xensm(vol, 'attachment-1', {
            'xapi_pool_uuid': x_a.pool.get_uuid(x_a.pool.get_all()[0])})
        info['serial'] = vol
        self.assertIn('introduce', info['data'])
        ctxt = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(ctxt, self.server['id'])
        driver = self.computes['host1'].manager.driver
        self.assertRaises(exception.InvalidDevicePath, driver.attach_volume,
                          ctxt, info, instance, '/dev/not-a-disk')
        self.assertFalse(self.knows_sr('pool-a', self.silver_uuid))
        vm, _ = self.vm_of(self.server, 'pool-a')
        self.assertEqual(['0'], [x_a.VBD.get_userdevice(v)
                                 for v in x_a.VM.get_VBDs(vm)])

    def test_server_delete_forgets_the_sr(self):
        data = random.Random(12).randbytes(2 * MiB)
        vol, vdi_uuid = self.create_volume('pool-c', SILVER, 'silver', data)
        self._attach_volume(self.server, vol)
        self.assertTrue(self.knows_sr('pool-a', self.silver_uuid))
        self._delete_server(self.server)
        self.assertFalse(self.knows_sr('pool-a', self.silver_uuid))
        self.assertEqual(hashlib.sha256(data).hexdigest(),
                         self.export_digest('pool-c', vdi_uuid))

    def test_operator_sr_is_never_forgotten(self):
        # pool-a's own gold SR: attach and detach leave it as it was.
        data = random.Random(8).randbytes(2 * MiB)
        vol, vdi_uuid = self.create_volume('pool-a', GOLD, 'gold', data)
        gold_uuid = self.sr_uuid('pool-a', GOLD)
        self._attach_volume(self.server, vol)
        self.assertEqual(gold_uuid, self.volume_vbd('pool-a', vol)[2])
        self.api.delete_server_volume(self.server['id'], vol)
        self._wait_for_volume_detach(self.server['id'], vol)
        self.assertTrue(self.knows_sr('pool-a', gold_uuid))
        self.assertEqual(hashlib.sha256(data).hexdigest(),
                         self.export_digest('pool-a', vdi_uuid))


def two_host_volume_topology():
    topo = volume_topology()
    topo['pools'][1]['hosts'].append({'name': 'pool-b-host2'})
    return topo


class TwoHostPoolTest(VolumeTestBase):
    """An introduced shared SR gets a PBD on every host of the pool."""

    topology = two_host_volume_topology()

    def test_every_host_gets_a_plugged_pbd(self):
        data = random.Random(13).randbytes(MiB)
        vol, _ = self.create_volume('pool-c', SILVER, 'silver', data)
        server = self._create_server(image_uuid=self.image,
                                     flavor_id=self.flavor, host='host2',
                                     networks='none')
        self._attach_volume(server, vol)
        x_b = self.xapi['pool-b']
        sr = x_b.SR.get_by_uuid(self.silver_uuid)
        pbds = [x_b.PBD.get_record(p) for p in x_b.SR.get_PBDs(sr)]
        self.assertEqual(set(x_b.host.get_all()), {p['host'] for p in pbds})
        self.assertEqual([True, True],
                         [p['currently_attached'] for p in pbds])
        self.api.delete_server_volume(server['id'], vol)
        self._wait_for_volume_detach(server['id'], vol)
        self.assertFalse(self.knows_sr('pool-b', self.silver_uuid))
        self.assertEqual([], [p for p in x_b.PBD.get_all_records().values()
                              if p['SR'] == sr])


class GoldVolumeTest(VolumeTestBase):

    def test_pool_local_volume_refuses_the_migration(self):
        logs = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        data = random.Random(9).randbytes(4 * MiB)
        vol, vdi_uuid = self.create_volume('pool-a', GOLD, 'gold', data)
        self._attach_volume(self.server, vol)
        b_vdis = set(self.xapi['pool-b'].VDI.get_all())
        b_vms = set(self.xapi['pool-b'].VM.get_all())

        earlier = self.migrate()
        self.wait_migration(self.server, ['error'], ignore=earlier)
        server = self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        # The reason names the volume and what to do.
        reason = [line for line in logs.output.splitlines()
                  if 'Skipping host' in line]
        self.assertTrue(reason, logs.output[-2000:])
        self.assertIn('volume %s' % vol, reason[0])
        self.assertIn('Retype the volume to a shared tier', reason[0])
        # Conductor logs that at DEBUG only: the source compute warns.
        warned = [line for line in logs.output.splitlines()
                  if line.startswith('Live migration to pool-b-host1 '
                                     'refused: volume %s' % vol)]
        self.assertTrue(warned, logs.output[-2000:])
        # Nothing was created in pool-b, nothing moved.
        self.assertEqual([], self.ctl['pool-a'].migrations())
        self.assertEqual(b_vdis, set(self.xapi['pool-b'].VDI.get_all()))
        self.assertEqual(b_vms, set(self.xapi['pool-b'].VM.get_all()))
        self.assertFalse(self.knows_sr('pool-b', self.sr_uuid('pool-a',
                                                              GOLD)))
        vbd, got_vdi, _ = self.volume_vbd('pool-a', vol)
        self.assertEqual(vdi_uuid, got_vdi)
        self.assertTrue(vbd['currently_attached'])
        self.assertEqual(hashlib.sha256(data).hexdigest(),
                         self.export_digest('pool-a', vdi_uuid))


class DeviceNamesTest(VolumeTestBase):
    """Volumes never take the positions of swap and the ephemeral disk.

    The driver puts swap at userdevice 2 and the ephemeral disk at 4;
    Nova's own naming (root sda, swap sdb) would give the first volume sdc,
    userdevice 2, and XAPI would refuse it (DEVICE_ALREADY_EXISTS).
    """

    def setUp(self):
        super().setUp()
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=1, swap=64)
        self.server = self._create_server(image_uuid=self.image,
                                          flavor_id=flavor, host='host1',
                                          networks='none')

    def test_volumes_attach_beside_swap_and_ephemeral(self):
        attached = []
        for seed in (11, 12, 13):
            data = random.Random(seed).randbytes(MiB)
            vol, vdi_uuid = self.create_volume('pool-c', SILVER, 'silver',
                                               data)
            # One volume_attach.end notification satisfies every later
            # wait of _attach_volume: poll for this volume's VBD instead.
            self.api.post_server_volume(
                self.server['id'], {'volumeAttachment': {'volumeId': vol}})
            for _ in range(200):
                vbd, got_vdi, _ = self.volume_vbd('pool-a', vol)
                if vbd is not None and vbd['currently_attached']:
                    break
                time.sleep(0.1)
            self.assertEqual(vdi_uuid, got_vdi)
            self.assertTrue(vbd['currently_attached'])
            attached.append(vbd['userdevice'])
        self.assertEqual(3, len(set(attached)))
        self.assertEqual(set(), set(attached) & {'0', '2', '4'})
        x = self.xapi['pool-a']
        vm, _ = self.vm_of(self.server, 'pool-a')
        own = {x.VBD.get_userdevice(v) for v in x.VM.get_VBDs(vm)
               if volumeops.VOLUME_KEY not in x.VBD.get_other_config(v)}
        self.assertEqual({'0', '2', '4'}, own)
