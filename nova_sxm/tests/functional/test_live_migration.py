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

"""Live block migration between pools through the real Nova API.

The guest keeps writing during every migration; afterwards the simulator's
guest checker compares each disk with the exact image the writes imply.
"""

import logging
import random

import fixtures
from nova import context as nova_context
from nova import objects
from oslo_serialization import jsonutils

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import scenarios
from nova_sxm.tests.functional import test_servers

MiB = base.MiB


class LiveMigrationBase(scenarios.ScenarioHelpers,
                        base.SxmServicesTestCase):

    def setUp(self):
        super().setUp()
        self.image_data = random.Random(3).randbytes(4 * MiB)
        image = self.make_image(self.image_data)
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=1)
        self.server = self._create_server(
            image_uuid=image, flavor_id=flavor, host='host1',
            networks=[{'port': self.neutron.port_1['id']}])
        _, rec = self.vm_of(self.server, 'pool-a')
        self.vm_uuid = rec['uuid']
        self.pool_b_vdis = self.managed_vdis('pool-b')

    def start_guest(self, rate=16 * 1024):
        self.write(self.vm_uuid, ('0', '4'), rate=rate, seed=5,
                   ctl=self.ctl['pool-a'])
        self.wait_writes(self.vm_uuid, 5, ctl=self.ctl['pool-a'])

    def migrate(self, block_migration, host='host2'):
        self.earlier = self.migration_ids(self.server)
        self.api.post_server_action(self.server['id'], {
            'os-migrateLive': {'host': host,
                               'block_migration': block_migration}})

    def migration_record(self):
        ctxt = nova_context.get_admin_context()
        return objects.MigrationList.get_by_filters(
            ctxt, {'instance_uuid': self.server['id']})[0]

    def assert_on(self, host, pool, other_pool):
        server = self._wait_for_state_change(self.server, 'ACTIVE')
        self.assertEqual(host, server['OS-EXT-SRV-ATTR:host'])
        ref, rec = self.vm_of(self.server, pool)
        self.assertEqual('Running', rec['power_state'])
        self.assertEqual((None, None), self.vm_of(self.server, other_pool))
        return ref

    def assert_source_intact(self):
        """Still on host1, running; nothing new left in pool-b."""
        self.assert_on('host1', 'pool-a', 'pool-b')
        self.assertEqual(self.pool_b_vdis, self.managed_vdis('pool-b'))
        self.stop_and_check(self.vm_uuid, ctl=self.ctl['pool-a'],
                            devices=('0', '4'), written=True)


class LiveMigrationTest(LiveMigrationBase):

    def test_block_then_auto_with_progress(self):
        self.ctl['pool-a'].configure(bandwidth=2 * MiB)
        self.start_guest()
        self.migrate(True)
        # Progress is visible while the disks move.
        progress = self.poll(lambda: [
            m for m in self.api.api_get(
                '/servers/%s/migrations' % self.server['id']
            ).body['migrations'] if m['disk_processed_bytes']],
            what='disk progress in the in-progress migration')
        self.assertGreater(progress[0]['disk_total_bytes'], 0)
        self.wait_migration(self.server, ['completed'], ignore=self.earlier)
        ref = self.assert_on('host2', 'pool-b', 'pool-a')
        record = self.migration_record()
        self.assertGreater(record.disk_total, 0)
        self.assertEqual(record.disk_total, record.disk_processed)
        self.assertIsNone(record.disk_remaining)  # nothing left
        # Placement: the allocation moved with the server, to the
        # resource provider of pool-b's host (its uuid is the XAPI host's).
        allocations = self._get_allocations_by_server_uuid(self.server['id'])
        api_b = self.xapi['pool-b']
        host_b = api_b.host.get_uuid(api_b.pool.get_master(
            api_b.pool.get_all()[0]))
        self.assertEqual({host_b}, set(allocations))
        self.assertEqual(256, allocations[host_b]['resources']['MEMORY_MB'])
        # Disks are on pool-b's SR for instances, the VIF on its network
        # with the same port.
        api = self.xapi['pool-b']
        ext = self.sr_uuid('pool-b', 'Local storage (ext)')
        disks = self.disks_of(ref, 'pool-b')
        self.assertEqual({'0', '4'}, set(disks))
        for disk in disks.values():
            self.assertEqual(ext, api.SR.get_uuid(disk['SR']))
        vifs = [api.VIF.get_record(v) for v in api.VM.get_VIFs(ref)]
        self.assertEqual([self.neutron.port_1['id']],
                         [v['other_config']['neutron-port-id']
                          for v in vifs])
        # Every byte the guest wrote is at the destination.
        self.stop_and_check(self.vm_uuid, ctl=self.ctl['pool-b'],
                            devices=('0', '4'), written=True)

        # And back, letting nova choose: 'auto' is a block migration here.
        self.start_guest_on('pool-b')
        self.migrate('auto', host='host1')
        self.wait_migration(self.server, ['completed'], ignore=self.earlier)
        self.assert_on('host1', 'pool-a', 'pool-b')
        self.stop_and_check(self.vm_uuid, ctl=self.ctl['pool-a'],
                            devices=('0', '4'), written=True)

    def start_guest_on(self, pool):
        self.write(self.vm_uuid, ('0', '4'), rate=16 * 1024, seed=9,
                   ctl=self.ctl[pool])
        self.wait_writes(self.vm_uuid, 5, ctl=self.ctl[pool])

    def test_fault_mid_mirror(self):
        self.ctl['pool-a'].configure(bandwidth=1 * MiB)
        self.ctl['pool-a'].fault_inject('mirror', percent=50)
        self.start_guest()
        self.migrate(True)
        self.wait_migration(self.server, ['error'], ignore=self.earlier)
        self.assert_source_intact()

    def test_no_secret_in_debug_logs(self):
        logs = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        created = self.spy_sessions('pool-a') + self.spy_sessions('pool-b')
        self.migrate('auto')
        self.wait_migration(self.server, ['completed'], ignore=self.earlier)
        self.assert_on('host2', 'pool-b', 'pool-a')
        output = logs.output
        # The carrier was logged (nova prints it at DEBUG) ...
        self.assertIn('live_migration data is', output)
        self.assertIn("image_type='sxm'", output)
        # ... and nothing secret was: no password, no session id, no token.
        self.assertNotIn(self.simfix.password, output)
        sessions = set(created)
        for pool in base.POOLS:
            sessions |= set(self.sim.pools[pool].db.all_refs('session'))
        self.assertTrue(sessions)
        for ref in sessions:
            self.assertNotIn(ref, output)
            self.assertNotIn(ref.split(':', 1)[-1], output)


class DestinationTooSmallTest(LiveMigrationBase):
    """host2 puts instance disks on a thick SR too small for them.

    Placement lets the 2 GiB flavor in (the SR has 3 GiB), but a mirrored
    disk takes twice its size on a thick SR until the migration ends: the
    driver's checks refuse before anything is copied.
    """

    topology = base.simhelpers.topology_with(
        {'pool-b': [{'name': 'small', 'type': 'lvm', 'size': '3GiB'}]})
    compute_flags = {'host2': {'sr_matching_filter': 'name-label:small'}}

    def test_refused_before_copy(self):
        logs = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        self.start_guest()
        self.migrate(True)
        self.wait_migration(self.server, ['error'], ignore=self.earlier)
        self.assertEqual([], self.ctl['pool-a'].migrations())
        self.assert_source_intact()
        # The scheduler-checked destination failed its checks: nova says
        # NoValidHost and logs the driver's reason, all of it.
        self.assertIn('Skipping host', logs.output)
        reason = [line for line in logs.output.splitlines()
                  if 'Skipping host' in line][0]
        self.assertIn("SR 'small'", reason)
        self.assertIn('free', reason)


class InPoolLiveMigrationTest(base.SxmServicesTestCase):
    """Two hosts of pool-b share an NFS SR: 'auto' moves only memory."""

    topology = test_servers.two_host_topology()

    def test_auto_is_a_pool_migration_on_shared_storage(self):
        self.start_sxm_compute('host3', 'pool-b', host_name='pool-b-host2',
                               sr_matching_filter='name-label:'
                               + test_servers.NFS)
        image = self.make_image(random.Random(4).randbytes(MiB))
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=0)
        server = self._create_server(image_uuid=image, flavor_id=flavor,
                                     host='host3', networks='none')
        vm, rec = self.vm_of(server, 'pool-b')
        api = self.xapi['pool-b']
        vdis = {d['uuid'] for d in self.disks_of(vm, 'pool-b').values()}
        self.write(rec['uuid'], ('0',), rate=16 * 1024, seed=3,
                   ctl=self.ctl['pool-b'])
        self.wait_writes(rec['uuid'], 5, ctl=self.ctl['pool-b'])
        server = self.live_migrate(server, block_migration='auto')
        # The same VM, now on the pool master, on the same disks: the
        # source compute's cleanup left it alone.
        self.assertEqual('pool-b-host1', api.host.get_name_label(
            api.VM.get_resident_on(vm)))
        self.assertEqual(vdis, {d['uuid'] for d in
                                self.disks_of(vm, 'pool-b').values()})
        # Memory only: no disk bytes travelled.
        for moved in self.ctl['pool-b'].migrations():
            self.assertEqual(0, moved['bytes_sent'], moved)
        self.stop_and_check(rec['uuid'], ctl=self.ctl['pool-b'],
                            devices=('0',), written=True)


class InPoolBlockMigrationTest(base.SxmServicesTestCase):
    """pool-b's second host has its own local SR: its disks move in-pool.

    host3 manages pool-b-host2 and puts disks on that host's local SR;
    block_migration true to host2 (pool-b-host1) is an in-pool Storage
    XenMotion (VM.migrate_send within the pool, empty VIF map) that copies
    them to pool-b-host1's local SR.
    """

    topology = test_servers.two_host_topology()

    def setUp(self):
        super().setUp()
        self.start_local_sr_compute()

    def test_block_migration_moves_local_disks_in_pool(self):
        image = self.make_image(random.Random(8).randbytes(2 * MiB))
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=1)
        server = self._create_server(
            image_uuid=image, flavor_id=flavor, host='host3',
            networks=[{'port': self.neutron.port_1['id']}])
        api = self.xapi['pool-b']
        vm, rec = self.vm_of(server, 'pool-b')
        before = self.disks_of(vm, 'pool-b')
        local2 = self.sr_uuid('pool-b', self.LOCAL2)
        self.assertEqual({local2}, {api.SR.get_uuid(d['SR'])
                                    for d in before.values()})
        self.ctl['pool-b'].configure(bandwidth=4 * MiB)
        self.write(rec['uuid'], ('0', '4'), rate=16 * 1024, seed=13,
                   ctl=self.ctl['pool-b'])
        self.wait_writes(rec['uuid'], 5, ctl=self.ctl['pool-b'])
        server = self.live_migrate(server)
        vm, rec = self.vm_of(server, 'pool-b')
        self.assertEqual('Running', rec['power_state'])
        self.assertEqual('pool-b-host1', api.host.get_name_label(
            rec['resident_on']))
        # Every disk is a new VDI on pool-b-host1's local SR; the old ones
        # are gone (base copies, managed=false, are not the instance's).
        after = self.disks_of(vm, 'pool-b')
        self.assertEqual({'0', '4'}, set(after))
        ext = self.sr_uuid('pool-b', 'Local storage (ext)')
        self.assertEqual({ext}, {api.SR.get_uuid(d['SR'])
                                 for d in after.values()})
        left = {api.VDI.get_uuid(v) for v in api.VDI.get_all()
                if api.VDI.get_managed(v)}
        self.assertEqual(set(), {d['uuid'] for d in before.values()} & left)
        # The VIF kept its port (an in-pool move keeps the network).
        vifs = [api.VIF.get_record(v) for v in api.VM.get_VIFs(vm)]
        self.assertEqual([self.neutron.port_1['id']],
                         [v['other_config']['neutron-port-id']
                          for v in vifs])
        # The bytes did travel, through migrate_send within the pool.
        moved = [m for m in self.ctl['pool-b'].migrations()
                 if m['vm'] == rec['uuid']]
        self.assertEqual(1, len(moved))
        self.assertGreater(moved[0]['bytes_sent'], 0)
        # Placement: the allocation moved to pool-b-host1's provider.
        allocations = self._get_allocations_by_server_uuid(server['id'])
        self.assertEqual({api.host.get_uuid(rec['resident_on'])},
                         set(allocations))
        self.assertEqual(256, list(allocations.values())[0]['resources'][
            'MEMORY_MB'])
        self.stop_and_check(rec['uuid'], ctl=self.ctl['pool-b'],
                            devices=('0', '4'), written=True)


def other_password_topology():
    topo = base.simhelpers.topology_with({})
    topo['pools'][1]['password'] = OTHER_PASSWORD
    return topo


OTHER_PASSWORD = 'b-s3cret'


class RemotePoolPasswordTest(LiveMigrationBase):
    """pool-b has its own password: the source needs it to migrate there."""

    topology = other_password_topology()

    def test_source_logs_in_to_the_destination_pool(self):
        logs = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        # host1 knows only pool-a's password: refused, before any copy.
        self.migrate(True)
        self.wait_migration(self.server, ['error'], ignore=self.earlier)
        self.assertEqual([], self.ctl['pool-a'].migrations())
        self.assert_on('host1', 'pool-a', 'pool-b')
        self.assertIn('SESSION_AUTHENTICATION_FAILED', logs.output)
        # Told pool-b's password (by pool uuid), host1 migrates there.
        api_b = self.xapi['pool-b']
        uuid_b = api_b.pool.get_uuid(api_b.pool.get_all()[0])
        self.sxm_flags('pool-a',
                       remote_pool_passwords={uuid_b: OTHER_PASSWORD})
        self.restart_compute_service(self.computes['host1'],
                                     keep_hypervisor_state=False)
        self.migrate(True)
        self.wait_migration(self.server, ['completed'], ignore=self.earlier)
        self.assert_on('host2', 'pool-b', 'pool-a')
        self.assertNotIn(OTHER_PASSWORD, logs.output)
        self.assertNotIn(self.simfix.password, logs.output)


class ConcurrentMigrationBase(LiveMigrationBase):
    """Two servers of host1 live-migrate to host2 at the same time."""

    def setUp(self):
        super().setUp()
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=1)
        image = self.make_image(random.Random(6).randbytes(4 * MiB))
        self.other = self._create_server(
            image_uuid=image, flavor_id=flavor, host='host1',
            networks='none')
        _, rec = self.vm_of(self.other, 'pool-a')
        self.other_uuid = rec['uuid']
        # The most storage migrations the source host ran at once, as the
        # simulator's xapi counted them.
        sim = self.sim
        original = sim.storage_migrate_slot
        self.peak = [0]

        def counting(host):
            slot = original(host)
            self.peak[0] = max(self.peak[0], sim._migrates[host])
            return slot
        sim.storage_migrate_slot = counting
        self.addCleanup(delattr, sim, 'storage_migrate_slot')

    def migrate_both(self):
        self.ctl['pool-a'].configure(bandwidth=2 * MiB)
        self.start_guest()
        self.write(self.other_uuid, ('0', '4'), rate=16 * 1024, seed=11,
                   ctl=self.ctl['pool-a'])
        self.wait_writes(self.other_uuid, 5, ctl=self.ctl['pool-a'])
        earlier_other = self.migration_ids(self.other)
        self.migrate(True)
        self.api.post_server_action(self.other['id'], {
            'os-migrateLive': {'host': 'host2', 'block_migration': True}})
        self.wait_migration(self.server, ['completed'], ignore=self.earlier)
        self.wait_migration(self.other, ['completed'], ignore=earlier_other)
        for server, vm_uuid in ((self.server, self.vm_uuid),
                                (self.other, self.other_uuid)):
            found = self._wait_for_state_change(server, 'ACTIVE')
            self.assertEqual('host2', found['OS-EXT-SRV-ATTR:host'])
            _, rec = self.vm_of(server, 'pool-b')
            self.assertEqual('Running', rec['power_state'])
            self.assertEqual((None, None), self.vm_of(server, 'pool-a'))
            self.stop_and_check(vm_uuid, ctl=self.ctl['pool-b'],
                                devices=('0', '4'), written=True)
        done = [m for m in self.ctl['pool-a'].migrations()
                if m['vm'] in (self.vm_uuid, self.other_uuid)]
        self.assertEqual({self.vm_uuid, self.other_uuid},
                         {m['vm'] for m in done})


class OneSlotConcurrentMigrationTest(ConcurrentMigrationBase):
    """host1 allows one storage migration at a time: the second waits."""

    compute_flags = {'host1': {'max_concurrent_storage_migrations': 1}}

    def test_second_waits_for_the_slot(self):
        self.migrate_both()
        self.assertEqual(1, self.peak[0])


class TooManyStorageMigratesTest(ConcurrentMigrationBase):
    """xapi refuses one with TOO_MANY_STORAGE_MIGRATES: it is retried."""

    compute_flags = {'host1': {'too_many_migrates_interval': 1}}

    def test_both_run_and_the_refused_one_is_retried(self):
        logs = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.ctl['pool-a'].fault_inject(
            'prepare', code='TOO_MANY_STORAGE_MIGRATES', params=['3'])
        self.migrate_both()
        # The refusal happened (the fault fired) and was retried.
        self.assertEqual([], self.ctl['pool-a'].call('faults'))
        self.assertIn('Host busy with other storage migrations',
                      logs.output)
        self.assertLessEqual(self.peak[0], 2)


class DiskInfoTest(LiveMigrationBase):
    """get_instance_disk_info counts what a disk's whole VHD chain holds."""

    def test_after_a_migration_the_chain_is_counted(self):
        self.migrate(True)
        self.wait_migration(self.server, ['completed'], ignore=self.earlier)
        ref = self.assert_on('host2', 'pool-b', 'pool-a')
        ctxt = nova_context.get_admin_context()
        instance = objects.Instance.get_by_uuid(ctxt, self.server['id'])
        driver = self.computes['host2'].manager.driver
        info = {d['userdevice']: d for d in jsonutils.loads(
            driver.get_instance_disk_info(instance))}
        self.assertEqual({'0', '4'}, set(info))
        root = self.disks_of(ref, 'pool-b')['0']
        # The migrated leaf alone holds less than the image written into
        # the disk; its base copy holds the rest, and both count.
        self.assertLess(int(root['physical_utilisation']),
                        len(self.image_data))
        self.assertGreaterEqual(info['0']['disk_size'], len(self.image_data))
        self.assertEqual(root['uuid'], info['0']['path'])
        self.assertEqual(1 << 30, info['0']['virt_disk_size'])
        self.assertEqual(info['0']['virt_disk_size']
                         - info['0']['disk_size'],
                         info['0']['over_committed_disk_size'])
