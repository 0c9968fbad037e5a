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

"""What Storage XenMotion refuses, with xapi's error and parameters.

VM.assert_can_migrate, VM.migrate_send and Async.VM.migrate_send give the
same error for each check and move nothing. Also host.migrate_receive's
answer and errors, the limit of three storage migrations per host, and
destination SRs too small for the disks.
"""

from tests.functional.xapi_sim import migrate_base

MiB = migrate_base.MiB
BLOCK = migrate_base.BLOCK
NULL = migrate_base.NULL
SR_FULL = ['SR_BACKEND_FAILURE_44', '', 'There is insufficient space', '']


class CheckTestCase(migrate_base.MigrateTestCase):

    def assert_refused(self, expected, vm, dest, vdi_map, vif_map=None):
        """Every way of asking gives ``expected``; nothing moves."""
        vif_map = vif_map or {}
        before = self.state(vm)
        self.assertXapiError(expected, self.api.VM.assert_can_migrate,
                             vm, dest, True, vdi_map, vif_map, {})
        # With the optional vgpu_map too.
        self.assertXapiError(expected, self.api.VM.assert_can_migrate,
                             vm, dest, True, vdi_map, vif_map, {}, {})
        self.assertXapiError(expected, self.api.VM.migrate_send,
                             vm, dest, True, vdi_map, vif_map, {})
        self.assertEqual(expected,
                         self.migrate_fails(vm, dest, vdi_map, vif_map))
        after = self.state(vm)
        for key in ('power_state', 'resident_on', 'vbds', 'vifs', 'vdis_a',
                    'vdis_b'):
            self.assertEqual(before[key], after[key], key)
        self.assertIsNone(self.vm_in(before['uuid'], self.api_b))
        # The migration engine never ran.
        self.assertEqual([], self.ctl.migrations())

    def two_disk_vm(self, **kwargs):
        return self.make_vm([(self.ext(), 8 * MiB, 4),
                             (self.lvm(), 16 * MiB, 4)], **kwargs)


class TestChecks(CheckTestCase):

    def test_assert_can_migrate_accepts_and_moves_nothing(self):
        vm, (vdi0, vdi1), vif = self.two_disk_vm()
        before = self.state(vm)
        ext_b = self.ext(self.api_b)
        self.assertEqual('', self.api.VM.assert_can_migrate(
            vm, self.dest_b(), True, {vdi0: ext_b, vdi1: ext_b},
            {vif: self.net_b}, {}))
        self.assertEqual('', self.api.VM.assert_can_migrate(
            vm, self.dest_a(), True, {vdi0: self.lvm(), vdi1: self.ext()},
            {}, {}))
        self.assertUnchanged(vm, before)
        self.assertEqual([], self.ctl.migrations())

    def test_disabled_destination_host(self):
        # assert_can_migrate, cross-pool: "the remote host is enabled and
        # not in maintenance mode".
        vm, (vdi0, vdi1), vif = self.two_disk_vm()
        ext_b = self.ext(self.api_b)
        self.api_b.host.disable(self.host_b)
        self.assert_refused(['HOST_DISABLED', self.host_b], vm,
                            self.dest_b(), {vdi0: ext_b, vdi1: ext_b},
                            {vif: self.net_b})
        self.api_b.host.enable(self.host_b)
        self.assertEqual('', self.api.VM.assert_can_migrate(
            vm, self.dest_b(), True, {vdi0: ext_b, vdi1: ext_b},
            {vif: self.net_b}, {}))

    def test_vdi_not_in_map(self):
        vm, (vdi0, vdi1), vif = self.two_disk_vm()
        self.assert_refused(['VDI_NOT_IN_MAP', vdi1], vm, self.dest_b(),
                            {vdi0: self.ext(self.api_b)}, {vif: self.net_b})
        self.assert_refused(['VDI_NOT_IN_MAP', vdi0], vm, self.dest_a(),
                            {vdi1: self.ext()})

    def test_empty_cd_drive_needs_no_map_entry(self):
        vm, (vdi,), vif = self.make_vm([(self.ext(), 8 * MiB, 4)],
                                       start=False)
        self.create_vbd(vm, NULL, '3', type='CD', mode='RO', empty=True)
        self.api.VM.start(vm, False, False)
        new_vm = self.migrate(vm, self.dest_b(), {vdi: self.ext(self.api_b)},
                              {vif: self.net_b})
        cds = [v for v in self.api_b.VM.get_VBDs(new_vm)
               if self.api_b.VBD.get_type(v) == 'CD']
        self.assertEqual(1, len(cds))
        cd = self.api_b.VBD.get_record(cds[0])
        self.assertTrue(cd['empty'])
        self.assertEqual(NULL, cd['VDI'])
        self.assertEqual('3', cd['userdevice'])

    def test_vif_not_in_map(self):
        vm, vdis, vif = self.two_disk_vm()
        ext_b = self.ext(self.api_b)
        self.assert_refused(['VIF_NOT_IN_MAP', vif], vm, self.dest_b(),
                            {v: ext_b for v in vdis})

    def test_snapshot_vif_is_mapped_by_its_mac(self):
        vm, vdis, vif = self.two_disk_vm()
        snap = self.api.VM.snapshot(vm, 'snap')
        (snap_vif,) = self.api.VM.get_VIFs(snap)
        self.assertNotEqual(vif, snap_vif)
        self.assertEqual(self.api.VIF.get_MAC(vif),
                         self.api.VIF.get_MAC(snap_vif))
        ext_b = self.ext(self.api_b)
        vdi_map = {v: ext_b for v in vdis}
        dest = self.dest_b()
        # Either VIF of the pair stands for the other.
        for mapped in (vif, snap_vif):
            self.api.VM.assert_can_migrate(vm, dest, True, vdi_map,
                                           {mapped: self.net_b}, {})
        # With no entry at all, the VM's own VIF is the one missing.
        self.assertXapiError(['VIF_NOT_IN_MAP', vif],
                             self.api.VM.assert_can_migrate, vm, dest, True,
                             vdi_map, {}, {})

    def test_vif_map_is_not_allowed_in_pool(self):
        vm, (vdi0, vdi1), vif = self.two_disk_vm()
        self.assert_refused(
            ['OPERATION_NOT_ALLOWED',
             'VIF mapping is not allowed for intra-pool migration'],
            vm, self.dest_a(), {vdi0: self.lvm(), vdi1: self.ext()},
            {vif: self.net_a})

    def test_cbt_enabled_disk_cannot_move(self):
        vm, (vdi0, vdi1), vif = self.two_disk_vm()
        self.api.VDI.enable_cbt(vdi1)
        ext_b = self.ext(self.api_b)
        self.assert_refused(['VDI_CBT_ENABLED', vdi1], vm, self.dest_b(),
                            {vdi0: ext_b, vdi1: ext_b}, {vif: self.net_b})
        self.assert_refused(['VDI_CBT_ENABLED', vdi1], vm, self.dest_a(),
                            {vdi0: self.lvm(), vdi1: self.ext()})

    def test_paused_vm(self):
        vm, vdis, vif = self.two_disk_vm()
        self.api.VM.pause(vm)
        ext_b = self.ext(self.api_b)
        self.assert_refused(
            ['VM_BAD_POWER_STATE', vm, 'halted, suspended, running',
             'paused'],
            vm, self.dest_b(), {v: ext_b for v in vdis}, {vif: self.net_b})
        self.assertEqual('Paused', self.api.VM.get_power_state(vm))

    def test_destination_sr_of_the_wrong_pool(self):
        vm, vdis, vif = self.two_disk_vm()
        ext_a = self.ext()
        self.assert_refused(['HANDLE_INVALID', 'SR', ext_a], vm,
                            self.dest_b(), {v: ext_a for v in vdis},
                            {vif: self.net_b})

    def test_destination_network_of_the_wrong_pool(self):
        vm, vdis, vif = self.two_disk_vm()
        ext_b = self.ext(self.api_b)
        self.assert_refused(['HANDLE_INVALID', 'network', self.net_a], vm,
                            self.dest_b(), {v: ext_b for v in vdis},
                            {vif: self.net_a})

    def test_destination_host_unknown(self):
        vm, vdis, vif = self.two_disk_vm()
        dest = self.dest_b()
        bogus = 'OpaqueRef:00000000-0000-0000-0000-000000000000'
        dest['host'] = bogus
        ext_b = self.ext(self.api_b)
        self.assert_refused(['HANDLE_INVALID', 'host', bogus], vm, dest,
                            {v: ext_b for v in vdis}, {vif: self.net_b})

    def test_default_template_cannot_migrate(self):
        vm, vdis, vif = self.make_vm([(self.ext(), 8 * MiB, 0)],
                                     start=False)
        self.api.VM.set_is_a_template(vm, True)
        self.api.VM.add_to_other_config(vm, 'default_template', 'true')
        ext_b = self.ext(self.api_b)
        # xapi_vm_lifecycle.check_template: [vm; operation].
        expected = ['VM_IS_TEMPLATE', vm, 'migrate_send']
        self.assertXapiError(expected, self.api.VM.migrate_send, vm,
                             self.dest_b(), True, {v: ext_b for v in vdis},
                             {vif: self.net_b}, {})
        self.assertIsNone(self.vm_in(self.api.VM.get_uuid(vm), self.api_b))
        self.assertEqual(set(vdis), self.vdi_set())


class TestDestination(CheckTestCase):

    def test_migrate_receive_answer(self):
        dest = self.dest_b()
        self.assertEqual({'SM', 'host', 'xenops', 'session_id', 'master'},
                         set(dest))
        self.assertEqual(self.host_b, dest['host'])
        self.assertEqual(self.url('pool-b').rstrip('/'),
                         dest['master'].rstrip('/'))
        for key in ('SM', 'xenops'):
            self.assertIn('session_id=%s' % dest['session_id'], dest[key])
        # A new session of pool-b, unknown to pool-a.
        self.assertNotEqual(self.session_b.handle, dest['session_id'])
        answer = self.raw('pool-b').pool.get_all(dest['session_id'])
        self.assertEqual('Success', answer['Status'])
        answer = self.raw('pool-a').pool.get_all(dest['session_id'])
        self.assertFailure(['SESSION_INVALID', dest['session_id']], answer)

    def test_host_cannot_attach_network(self):
        net = self.api_b.network.create({
            'name_label': 'no PIF here', 'name_description': '',
            'bridge': 'xenbr9', 'MTU': '1500', 'other_config': {}})
        self.assertXapiError(
            ['HOST_CANNOT_ATTACH_NETWORK', self.host_b, net],
            self.api_b.host.migrate_receive, self.host_b, net, {})

    def test_destination_session_logged_out(self):
        vm, vdis, vif = self.two_disk_vm()
        before = self.state(vm)
        dest = self.dest_b()
        dest_session = dest['session_id']
        raw_b = self.raw('pool-b')
        self.assertEqual('Success',
                         raw_b.session.logout(dest_session)['Status'])
        ext_b = self.ext(self.api_b)
        vdi_map = {v: ext_b for v in vdis}
        vif_map = {vif: self.net_b}
        expected = ['SESSION_INVALID', dest_session]
        # The XenAPI client would log in again on SESSION_INVALID, as if
        # its own session had expired: ask over a bare proxy.
        raw_a = self.raw('pool-a')
        for method in ('assert_can_migrate', 'migrate_send'):
            answer = getattr(raw_a.VM, method)(
                self.session.handle, vm, dest, True, vdi_map, vif_map, {})
            self.assertFailure(expected, answer)
        self.assertEqual(expected,
                         self.migrate_fails(vm, dest, vdi_map, vif_map))
        self.assertUnchanged(vm, before)
        # The client's own session is fine.
        self.assertStillServing()


class TestTooManyStorageMigrates(CheckTestCase):

    def test_fourth_concurrent_migration_is_refused(self):
        vms = []
        for i in range(4):
            vm, (vdi,), vif = self.make_vm([(self.ext(), 8 * MiB, 16)],
                                           name='vm%d' % i)
            self.write(vm, ['0'], rate=256 * 1024, seed=i)
            vms.append((vm, vdi, vif, self.api.VM.get_uuid(vm)))
        for vm, _, _, _ in vms:
            self.wait_writes(vm, more=5)
        # 1 MiB each at 2 MiB/s: they all overlap.
        self.ctl.configure(bandwidth=2 * MiB)
        ext_b = self.ext(self.api_b)
        tasks = [self.migrate_async(vm, self.dest_b(), {vdi: ext_b},
                                    {vif: self.net_b})
                 for vm, vdi, vif, _ in vms]
        recs = [self.wait_task(t) for t in tasks]
        failed = [i for i, r in enumerate(recs) if r['status'] != 'success']
        self.assertEqual(1, len(failed), [r['error_info'] for r in recs])
        (loser,) = failed
        self.assertEqual('failure', recs[loser]['status'])
        self.assertEqual(['TOO_MANY_STORAGE_MIGRATES', '3'],
                         recs[loser]['error_info'])
        for i, (vm, vdi, _, uuid) in enumerate(vms):
            if i == loser:
                self.assertEqual('Running', self.api.VM.get_power_state(vm))
                self.assertEqual(vdi, self.api.VBD.get_VDI(
                    self.api.VM.get_VBDs(vm)[0]))
                self.assertIsNone(self.vm_in(uuid, self.api_b))
                self.stop_and_check(vm, devices=['0'])
            else:
                self.assertIsNone(self.vm_in(uuid, self.api))
                self.stop_and_check(uuid, ctl=self.ctl_b, devices=['0'])
        self.assertEqual({vms[loser][1]}, self.vdi_set())
        # Three slots are free again.
        self.ctl.configure(bandwidth=0)
        vm, vdi, vif, uuid = vms[loser]
        self.migrate(vm, self.dest_b(), {vdi: ext_b}, {vif: self.net_b})
        self.assertEqual(set(), self.vdi_set())


class TestUnsuitableSRs(CheckTestCase):

    topology = migrate_base.topology_with({
        'pool-a': [{'name': 'ISO library', 'type': 'iso', 'size': '1GiB'}],
        'pool-b': [{'name': 'ISO library', 'type': 'iso', 'size': '1GiB'},
                   {'name': 'Tiny (ext)', 'type': 'ext', 'size': '1MiB'},
                   {'name': 'Tiny (lvm)', 'type': 'lvm', 'size': '4MiB'}],
    })

    def test_iso_sr_cannot_receive_a_migration(self):
        vm, (vdi0, vdi1), vif = self.two_disk_vm()
        ext_b = self.ext(self.api_b)
        iso_b = self.sr_named('ISO library', self.api_b)
        self.assert_refused(['SR_DOES_NOT_SUPPORT_MIGRATION', iso_b], vm,
                            self.dest_b(), {vdi0: ext_b, vdi1: iso_b},
                            {vif: self.net_b})
        iso_a = self.sr_named('ISO library')
        self.assert_refused(['SR_DOES_NOT_SUPPORT_MIGRATION', iso_a], vm,
                            self.dest_a(), {vdi0: iso_a, vdi1: self.ext()})

    def too_small(self, sr_name, blocks):
        """A writing VM's disk does not fit pool-b's SR ``sr_name``.

        The disk is 8 MiB with ``blocks`` pre-filled: the migration fails
        with SR full, rolls back and leaves nothing on that SR.
        """
        vm, (vdi,), vif = self.make_vm([(self.ext(), 8 * MiB, blocks)])
        self.write(vm, ['0'])
        self.wait_writes(vm)
        before = self.state(vm)
        tiny = self.sr_named(sr_name, self.api_b)
        error = self.migrate_fails(vm, self.dest_b(), {vdi: tiny},
                                   {vif: self.net_b})
        self.assertEqual(SR_FULL, error)
        self.assertRolledBack(vm, before)
        self.api_b.SR.scan(tiny)
        self.assertEqual('0', self.api_b.SR.get_physical_utilisation(tiny))

    def test_thin_destination_too_small(self):
        # 2 MiB of data do not fit a 1 MiB SR: found out while copying.
        self.too_small('Tiny (ext)', 32)

    def test_thick_destination_too_small(self):
        # An 8 MiB disk cannot be allocated on a 4 MiB thick SR.
        self.too_small('Tiny (lvm)', 4)
