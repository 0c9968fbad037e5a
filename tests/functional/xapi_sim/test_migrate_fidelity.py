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

"""Migrations and storage as xapi does them, seen by a XenAPI client.

Destination memory and blocked operations refuse a migration before
anything moves; snapshots and suspended VMs arrive as what they were;
VHD chains show as SM's "base copy" VDIs; migrate_receive's session and
its parent; what SR.forget, PBD.unplug and an unplugged SR refuse.
"""

import xmlrpc.client

from tests.functional.xapi_sim import migrate_base

MiB = migrate_base.MiB
GiB = 1024 * MiB
BLOCK = migrate_base.BLOCK
NULL = migrate_base.NULL


def _topology():
    # pool-a: two hosts sharing an nfs SR (the default one: local SRs).
    shared = {'name': 'Shared (nfs)', 'type': 'nfs', 'size': '8GiB',
              'shared': True}
    topo = migrate_base.topology_with({'pool-a': [shared]})
    topo['pools'][0]['hosts'] = [{'name': 'pool-a-host1'},
                                 {'name': 'pool-a-host2'}]
    return topo


class FidelityTestCase(migrate_base.MigrateTestCase):

    topology = _topology()

    def setUp(self):
        super().setUp()
        self.nfs_a = self.sr_named('Shared (nfs)')
        self.host_a2 = [h for h in self.api.host.get_all()
                        if h != self.host_a][0]

    def fill_host(self, host, api=None, leave=128 * MiB):
        """Start a VM that leaves about ``leave`` bytes free on ``host``."""
        api = api or self.api
        free = int(api.host.compute_free_memory(host))
        filler = self.create_vm('filler', api=api)
        api.VM.set_memory_limits(filler, *[str(free - GiB)] * 4)
        overhead = int(api.VM.get_memory_overhead(filler))
        size = str(free - overhead - leave)
        api.VM.set_memory_limits(filler, size, size, size, size)
        api.VM.start_on(filler, host, False, False)
        return filler

    def needed(self, vm):
        return (int(self.api.VM.get_memory_dynamic_min(vm))
                + int(self.api.VM.get_memory_overhead(vm)))

    def assertNothingMoved(self, vm, host):
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertEqual(host, self.api.VM.get_resident_on(vm))
        self.assertEqual({}, self.api.VM.get_current_operations(vm))
        self.assertEqual(set(), self.vdi_set(self.api_b))
        self.assertEqual([], self.ctl.migrations())


class TestMigrationChecks(FidelityTestCase):

    def test_in_pool_migration_needs_memory_on_the_destination(self):
        vm, (vdi,), _ = self.make_vm([(self.nfs_a, 8 * MiB, 4)], vif=False)
        filler = self.fill_host(self.host_a2)
        available = str(self.api.host.compute_free_memory(self.host_a2))
        expected = ['HOST_NOT_ENOUGH_FREE_MEMORY', str(self.needed(vm)),
                    available]
        self.assertXapiError(expected, self.api.VM.pool_migrate, vm,
                             self.host_a2, {})
        dest = self.api.host.migrate_receive(self.host_a2, self.net_a, {})
        self.assertXapiError(expected, self.api.VM.assert_can_migrate, vm,
                             dest, True, {vdi: self.nfs_a}, {}, {})
        self.assertXapiError(expected, self.api.VM.migrate_send, vm, dest,
                             True, {vdi: self.nfs_a}, {}, {})
        self.assertNothingMoved(vm, self.host_a)
        # With the memory back it goes.
        self.api.VM.hard_shutdown(filler)
        self.api.VM.pool_migrate(vm, self.host_a2, {})
        self.assertEqual(self.host_a2, self.api.VM.get_resident_on(vm))

    def test_cross_pool_migration_needs_memory_on_the_destination(self):
        vm, (vdi,), vif = self.make_vm([(self.ext(), 8 * MiB, 4)])
        self.fill_host(self.host_b, api=self.api_b)
        available = str(self.api_b.host.compute_free_memory(self.host_b))
        expected = ['HOST_NOT_ENOUGH_FREE_MEMORY', str(self.needed(vm)),
                    available]
        vdi_map = {vdi: self.ext(self.api_b)}
        vif_map = {vif: self.net_b}
        self.assertXapiError(expected, self.api.VM.assert_can_migrate, vm,
                             self.dest_b(), True, vdi_map, vif_map, {})
        self.assertEqual(expected, self.migrate_fails(
            vm, self.dest_b(), vdi_map, vif_map))
        self.assertNothingMoved(vm, self.host_a)
        self.assertEqual({vdi}, self.vdi_set())

    def test_blocked_operations_refuse_migrations(self):
        vm, (vdi,), vif = self.make_vm([(self.nfs_a, 8 * MiB, 4)])
        self.api.VM.set_blocked_operations(vm, {'migrate_send': 'locked',
                                                'pool_migrate': 'nova'})
        vdi_map = {vdi: self.ext(self.api_b)}
        vif_map = {vif: self.net_b}
        blocked = ['OPERATION_BLOCKED', vm, 'locked']
        self.assertXapiError(blocked, self.api.VM.assert_can_migrate, vm,
                             self.dest_b(), True, vdi_map, vif_map, {})
        self.assertEqual(blocked, self.migrate_fails(
            vm, self.dest_b(), vdi_map, vif_map))
        self.assertXapiError(blocked, self.api.VM.migrate_send, vm,
                             self.dest_a(), True, {vdi: self.lvm()}, {}, {})
        self.assertXapiError(['OPERATION_BLOCKED', vm, 'nova'],
                             self.api.VM.pool_migrate, vm, self.host_a2, {})
        self.assertNothingMoved(vm, self.host_a)
        self.assertEqual({vdi}, self.vdi_set())


class TestWhatArrives(FidelityTestCase):

    def test_snapshot_arrives_as_a_snapshot_template(self):
        vm, (vdi,), vif = self.make_vm([(self.ext(), 8 * MiB, 4)])
        self.api.VM.snapshot(vm, 'before')
        uuid = self.api.VM.get_uuid(vm)
        self.migrate(vm, self.dest_b(), {vdi: self.ext(self.api_b)},
                     {vif: self.net_b})
        new_vm = self.api_b.VM.get_by_uuid(uuid)
        (snap,) = self.api_b.VM.get_snapshots(new_vm)
        rec = self.api_b.VM.get_record(snap)
        self.assertEqual('before', rec['name_label'])
        self.assertTrue(rec['is_a_snapshot'])
        # xapi's snapshots are templates: they cannot start.
        self.assertTrue(rec['is_a_template'])
        self.assertFalse(self.api_b.VM.get_is_a_template(new_vm))

    def test_suspended_vm_takes_its_suspend_image_along(self):
        ext_a, ext_b = self.ext(), self.ext(self.api_b)
        self.api.pool.set_suspend_image_SR(self.api.pool.get_all()[0],
                                           ext_a)
        pool_b = self.api_b.pool.get_all()[0]
        self.api_b.pool.set_suspend_image_SR(pool_b, ext_b)
        vm, (vdi,), vif = self.make_vm([(ext_a, 8 * MiB, 4)])
        self.write(vm, ['0'])
        self.wait_writes(vm)
        self.api.VM.suspend(vm)
        image = self.api.VM.get_suspend_VDI(vm)
        image_bytes = self.checksum(image)
        uuid = self.api.VM.get_uuid(vm)
        task = self.api.Async.VM.migrate_send(
            vm, self.dest_b(), False, {vdi: ext_b}, {vif: self.net_b}, {})
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        new_vm = self.api_b.VM.get_by_uuid(uuid)
        self.assertEqual('Suspended', self.api_b.VM.get_power_state(new_vm))
        new_image = self.api_b.VM.get_suspend_VDI(new_vm)
        self.assertEqual(ext_b, self.api_b.VDI.get_SR(new_image))
        self.assertEqual('suspend', self.api_b.VDI.get_type(new_image))
        self.assertEqual(image_bytes,
                         self.checksum(new_image, 'pool-b', self.session_b))
        # Nothing is left behind at the source, the image included.
        self.assertEqual(set(), self.vdi_set())
        self.assertIsNone(self.vm_in(uuid, self.api))
        self.api_b.VM.resume(new_vm, False, False)
        self.assertEqual('Running', self.api_b.VM.get_power_state(new_vm))
        self.assertNotIn(new_image, self.vdi_set(self.api_b))
        self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0'])


class TestBaseCopies(FidelityTestCase):

    def records(self, api=None):
        return (api or self.api).VDI.get_all_records()

    def base_copies(self, api=None):
        return {ref: rec for ref, rec in self.records(api).items()
                if not rec['managed']}

    def test_snapshot_leaves_a_base_copy_until_it_is_deleted(self):
        ext = self.ext()
        vdi = self.create_vdi(ext, 8 * MiB)
        self.prefill(vdi, 4, seed='chain')
        before = self.checksum(vdi)
        self.assertEqual({}, self.base_copies())
        snap = self.api.VDI.snapshot(vdi, {})
        ((parent, rec),) = self.base_copies().items()
        self.assertEqual('base copy', rec['name_label'])
        self.assertTrue(rec['read_only'])
        self.assertEqual(ext, rec['SR'])
        self.assertEqual(str(4 * BLOCK), rec['physical_utilisation'])
        self.assertIn(parent, self.api.SR.get_VDIs(ext))
        # Both leaves name it; the leaves themselves hold nothing yet.
        for leaf in (vdi, snap):
            leaf_rec = self.api.VDI.get_record(leaf)
            self.assertEqual(rec['uuid'], leaf_rec['sm_config']['vhd-parent'])
            self.assertEqual('0', leaf_rec['physical_utilisation'])
        self.assertXapiError(['VDI_IN_USE', parent, 'destroy'],
                             self.api.VDI.destroy, parent)
        # SM's GC coalesces the base copy into the leaf once the snapshot
        # goes.
        self.api.VDI.destroy(snap)
        self.assertEqual({}, self.base_copies())
        leaf_rec = self.api.VDI.get_record(vdi)
        self.assertNotIn('vhd-parent', leaf_rec['sm_config'])
        self.assertEqual(str(4 * BLOCK), leaf_rec['physical_utilisation'])
        self.assertEqual(before, self.checksum(vdi))

    def test_mirrored_disk_shows_its_copied_base(self):
        vm, (vdi,), vif = self.make_vm([(self.ext(), 8 * MiB, 6)])
        uuid = self.api.VM.get_uuid(vm)
        ext_b = self.ext(self.api_b)
        self.migrate(vm, self.dest_b(), {vdi: ext_b}, {vif: self.net_b})
        new_vm = self.api_b.VM.get_by_uuid(uuid)
        leaf = self.api_b.VBD.get_VDI(self.api_b.VM.get_VBDs(new_vm)[0])
        leaf_rec = self.api_b.VDI.get_record(leaf)
        ((parent, rec),) = self.base_copies(self.api_b).items()
        self.assertEqual(rec['uuid'], leaf_rec['sm_config']['vhd-parent'])
        self.assertEqual(str(6 * BLOCK), rec['physical_utilisation'])
        self.assertEqual(ext_b, rec['SR'])
        # The source keeps no hidden layer of the moved disk.
        self.assertEqual({}, self.base_copies())


class TestSessions(FidelityTestCase):

    def test_migrate_receive_session_outlives_its_parent(self):
        caller = self.login('pool-b')
        dest = caller.xenapi.host.migrate_receive(self.host_b, self.net_b,
                                                  {})
        child, parent = dest['session_id'], caller.handle
        rec = self.api_b.session.get_record(child)
        self.assertEqual(parent, rec['parent'])
        self.assertEqual(self.host_b, rec['this_host'])
        for field in ('subject', 'validation_time', 'auth_user_sid',
                      'rbac_permissions', 'client_certificate'):
            self.assertIn(field, rec)
        caller.xenapi.session.logout()
        # Xapi_session.destroy_db_session ends that one session only.
        raw = xmlrpc.client.ServerProxy(self.url('pool-b'))
        answer = raw.host.get_all(child)
        self.assertEqual('Success', answer['Status'], answer)
        self.assertEqual(['SESSION_INVALID', parent],
                         raw.host.get_all(parent)['ErrorDescription'])


class TestStorageRefusals(FidelityTestCase):

    def test_pbd_unplug_refused_while_a_running_vm_uses_the_sr(self):
        ext = self.ext()
        vm, (vdi,), _ = self.make_vm([(ext, 8 * MiB, 2)], vif=False)
        (pbd,) = self.api.SR.get_PBDs(ext)
        self.assertXapiError(['VDI_IN_USE', vdi], self.api.PBD.unplug, pbd)
        self.assertTrue(self.api.PBD.get_currently_attached(pbd))
        self.api.VM.hard_shutdown(vm)
        self.api.PBD.unplug(pbd)
        self.assertFalse(self.api.PBD.get_currently_attached(pbd))

    def test_unplugged_sr_has_no_pbds_and_cannot_be_forgotten_plugged(self):
        ext = self.ext()
        vdi = self.create_vdi(ext, 4 * MiB)
        (pbd,) = self.api.SR.get_PBDs(ext)
        self.assertXapiError(['SR_HAS_PBD', ext], self.api.SR.forget, ext)
        self.api.PBD.unplug(pbd)
        no_pbds = ['SR_HAS_NO_PBDS', ext]
        self.assertXapiError(no_pbds, self.create_vdi, ext, 4 * MiB)
        self.assertXapiError(no_pbds, self.api.VDI.snapshot, vdi, {})
        self.assertXapiError(no_pbds, self.api.VDI.clone, vdi, {})
        self.assertXapiError(no_pbds, self.api.VDI.resize, vdi,
                             str(8 * MiB))
        self.assertXapiError(no_pbds, self.api.VDI.destroy, vdi)
        self.assertEqual({vdi}, self.vdi_set())
        # A VBD cannot plug a disk of an SR its host has not attached.
        self.api.PBD.plug(pbd)
        vm = self.create_vm('plug')
        vbd = self.create_vbd(vm, vdi)
        self.api.VM.start(vm, False, False)
        self.api.VBD.unplug(vbd)
        self.api.PBD.unplug(pbd)
        self.assertXapiError(no_pbds, self.api.VBD.plug, vbd)
        self.assertFalse(self.api.VBD.get_currently_attached(vbd))
        self.api.PBD.plug(pbd)
        self.api.VBD.plug(vbd)
        self.assertTrue(self.api.VBD.get_currently_attached(vbd))
