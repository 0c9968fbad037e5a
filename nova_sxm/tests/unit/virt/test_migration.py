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

"""The live-migration carrier and the progress mapping."""

import json
import subprocess
import sys

from nova import exception
from nova.objects import base as obj_base
from nova.objects import migrate_data as migrate_data_obj
import testtools

from nova_sxm.virt import migration
from sxm_core import migrate as core_migrate

FACTS = {'pool_uuid': 'b6f1c0de-0000-4000-8000-000000000001',
         'host_uuid': 'b6f1c0de-0000-4000-8000-000000000002',
         'host_name': 'pool-b-host1',
         'sr_uuid': 'b6f1c0de-0000-4000-8000-000000000003',
         'networks': {'port-1': 'b6f1c0de-0000-4000-8000-000000000004'},
         'migration_network': None}
URL = 'https://pool-b.example.org/'

# Runs in a fresh interpreter that imports nova.objects only, as a
# conductor does: it must rebuild the object without nova_sxm.
CONDUCTOR = """
import json, sys
import nova.objects
nova.objects.register_all()
from nova.objects import base
primitive = json.load(sys.stdin)
obj = base.NovaObjectSerializer().deserialize_entity(None, primitive)
assert 'nova_sxm' not in sys.modules, 'the conductor imported nova_sxm'
print(json.dumps({'class': type(obj).__name__,
                  'url': obj.target_connect_addr,
                  'facts': json.loads(obj.filename),
                  'block': obj.block_migration,
                  'shared_path': obj.is_shared_instance_path,
                  'tag': obj.image_type}))
"""


class CarrierTest(testtools.TestCase):

    def test_round_trip_through_a_conductor_without_nova_sxm(self):
        data = migration.pack(FACTS, URL, True, False, 5 << 30,
                              shared=False)
        primitive = obj_base.NovaObjectSerializer().serialize_entity(
            None, data)
        out = subprocess.run(
            [sys.executable, '-c', CONDUCTOR], input=json.dumps(primitive),
            capture_output=True, text=True, timeout=120,
            env={'OS_NOVA_DISABLE_EVENTLET_PATCHING': '1',
                 'PATH': '/usr/bin:/bin'})
        self.assertEqual(0, out.returncode, out.stderr)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        self.assertEqual('LibvirtLiveMigrateData', got['class'])
        self.assertEqual(URL, got['url'])
        self.assertEqual(dict(FACTS, version=1), got['facts'])
        self.assertTrue(got['block'])
        self.assertFalse(got['shared_path'])
        self.assertEqual('sxm', got['tag'])

    def test_unpack_refuses_other_drivers_data(self):
        alien = migrate_data_obj.LibvirtLiveMigrateData(image_type='rbd')
        self.assertRaises(exception.MigrationPreCheckError, migration.unpack,
                          alien)
        url, facts = migration.unpack(migration.pack(
            FACTS, URL, None, None, 0, shared=True))
        self.assertEqual(URL, url)
        self.assertEqual(FACTS['sr_uuid'], facts['sr_uuid'])

    def test_only_public_facts_are_set(self):
        data = migration.pack(FACTS, URL, True, False, 0, False)
        self.assertEqual(
            {'image_type', 'target_connect_addr', 'filename',
             'block_migration', 'disk_over_commit', 'disk_available_mb',
             'is_shared_block_storage', 'is_shared_instance_path',
             'graphics_listen_addr_vnc', 'graphics_listen_addr_spice',
             'serial_listen_addr'},
            {f for f in data.fields if data.obj_attr_is_set(f)})
        self.assertEqual(
            {'pool_uuid', 'host_uuid', 'host_name', 'sr_uuid', 'networks',
             'migration_network', 'version'},
            set(json.loads(data.filename)))


class ProgressFieldsTest(testtools.TestCase):

    def test_storage_phase(self):
        fields = migration.progress_fields(
            core_migrate.Progress(0.45, 'mirror', None, 50, 100), 1000)
        # None, not 0: nova's API schema wants these null or >= 1.
        self.assertEqual({'disk_total': 100, 'disk_processed': 50,
                          'disk_remaining': 50, 'memory_total': 1000,
                          'memory_processed': None,
                          'memory_remaining': 1000},
                         fields)

    def test_memory_phase_and_done(self):
        half = migration.progress_fields(
            core_migrate.Progress(0.95, 'memory', None, 100, 100), 1000)
        self.assertEqual((None, 500, 500),
                         (half['disk_remaining'], half['memory_processed'],
                          half['memory_remaining']))
        done = migration.progress_fields(
            core_migrate.Progress(1.0, 'done', None, 100, 100), 1000)
        self.assertEqual(1000, done['memory_processed'])

    def test_memory_from_the_core(self):
        # The core's own memory counts win over the fraction and the
        # driver's estimate of the VM's memory.
        fields = migration.progress_fields(
            core_migrate.Progress(0.95, 'memory', None, 100, 100,
                                  memory_done=300, memory_total=2000), 1000)
        self.assertEqual((2000, 300, 1700),
                         (fields['memory_total'], fields['memory_processed'],
                          fields['memory_remaining']))
        done = migration.progress_fields(
            core_migrate.Progress(1.0, 'done', None, 100, 100,
                                  memory_done=0, memory_total=2000), 1000)
        self.assertEqual((2000, None), (done['memory_processed'],
                                        done['memory_remaining']))

    def test_bytes_never_exceed_total(self):
        fields = migration.progress_fields(
            core_migrate.Progress(0.9, 'copy', None, 130, 100), 0)
        self.assertEqual((100, None),
                         (fields['disk_processed'], fields['disk_remaining']))


class _Saved(object):
    """Records what each save() wrote (a Migration or an Instance)."""

    def __init__(self):
        self.saves = []

    def save(self):
        self.saves.append(dict(vars(self), saves=None))


class ReporterTest(testtools.TestCase):
    """Progress reaches the database at most once a second per phase."""

    def setUp(self):
        super().setUp()
        self.now = [0.0]
        self.instance, self.migration = _Saved(), _Saved()
        self.report = migration._Reporter(self.instance, self.migration,
                                          1000, interval=1.0,
                                          clock=lambda: self.now[0])

    def progress(self, fraction, phase, done):
        self.report(core_migrate.Progress(fraction, phase, None, done, 100))

    def test_throttled_within_a_phase(self):
        for step in range(10):          # ten reports in 0.9 s
            self.progress(0.05 * step, 'mirror', step * 10)
            self.now[0] += 0.1
        self.assertEqual(1, len(self.migration.saves))
        self.now[0] = 1.0
        self.progress(0.5, 'mirror', 100)   # 1 s after the first: saved
        self.assertEqual(2, len(self.migration.saves))
        self.assertEqual(100, self.migration.saves[-1]['disk_processed'])
        self.assertEqual(50, self.instance.saves[-1]['progress'])

    def test_new_phase_and_end_always_saved(self):
        self.progress(0.1, 'mirror', 10)
        self.progress(0.9, 'memory', 100)
        self.progress(1.0, 'done', 100)
        self.assertEqual(3, len(self.migration.saves))
        self.assertEqual(100, self.instance.saves[-1]['progress'])
        self.assertEqual(1000, self.migration.saves[-1]['memory_processed'])


class DecideBlockTest(testtools.TestCase):
    """block_migration True / False / 'auto' (None) against the disks."""

    def test_true_always_moves_the_disks(self):
        self.assertTrue(migration.decide_block(True, [], 'h2'))
        self.assertTrue(migration.decide_block(True, ['root'], 'h2'))

    def test_auto_keeps_disks_the_destination_reaches(self):
        # Shared storage (or the same SR in the pool): nothing is copied.
        self.assertFalse(migration.decide_block(None, [], 'h2'))

    def test_auto_moves_disks_the_destination_cannot_reach(self):
        self.assertTrue(migration.decide_block(None, ['root'], 'h2'))

    def test_false_with_shared_storage(self):
        self.assertFalse(migration.decide_block(False, [], 'h2'))

    def test_false_refused_with_unreachable_disks(self):
        exc = self.assertRaises(exception.InvalidSharedStorage,
                                migration.decide_block, False,
                                ['root', 'ephemeral'], 'pool-b-host1')
        self.assertIn('root, ephemeral', str(exc))
        self.assertIn('pool-b-host1', str(exc))
        self.assertIn('block migration', str(exc))


class TestVolumeReach(testtools.TestCase):
    """Whether a volume can follow its VM to another XAPI pool."""

    DATA = {'volume_id': 'vol-1', 'sr_uuid': 'sr-1', 'pool_uuid': 'pool-a',
            'sr_type': 'lvmoiscsi', 'shared': False}

    def test_pool_local_sr_of_another_pool_is_named(self):
        why = migration.unreachable_volume('vol-1', self.DATA, 'pool-b',
                                           'host-b', False)
        for part in ('volume vol-1', 'sr-1', 'lvmoiscsi', 'pool-a',
                     'host-b', 'pool-b', 'Retype the volume to a shared'):
            self.assertIn(part, why)

    def test_reachable_cases(self):
        reach = migration.unreachable_volume
        # Its own pool, an SR the destination already knows, a shared SR.
        self.assertIsNone(reach('vol-1', self.DATA, 'pool-a', 'h', False))
        self.assertIsNone(reach('vol-1', self.DATA, 'pool-b', 'h', True))
        self.assertIsNone(reach('vol-1', dict(self.DATA, shared=True),
                                'pool-b', 'h', False))

    def test_only_xensm_volumes_count(self):
        bdi = {'block_device_mapping': [
            {'connection_info': {'driver_volume_type': 'xensm',
                                 'serial': 'vol-1', 'data': self.DATA}},
            {'connection_info': {'driver_volume_type': 'iscsi',
                                 'data': {}}}]}
        self.assertEqual(['vol-1'], [v for v, _ in
                                     migration.volume_connections(bdi)])
        self.assertEqual([], migration.volume_connections(None))
