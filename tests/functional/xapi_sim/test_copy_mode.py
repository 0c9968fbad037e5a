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

"""Copies of VMs: migrate_send's copy mode (to another pool), VM.copy and
VM.clone (in the pool), over the XenAPI client; bytes checked by digest."""

import uuid as uuidlib

from tests.functional.xapi_sim import migrate_base

MiB = migrate_base.MiB
NULL = migrate_base.NULL
COPY = {'copy': 'true'}
INTRA_POOL_COPY = ('Copy mode is disallowed on intra pool storage '
                   'migration, try efficient alternatives, for example, '
                   'VM.copy/clone.')


class CopyTestCase(migrate_base.MigrateTestCase):

    def halted_vm(self, name='vm', vif=True):
        """A halted VM with a thin and a thick disk, both pre-filled."""
        vm, vdis, vif_ref = self.make_vm(
            [(self.ext(), 8 * MiB, 24), (self.lvm(), 4 * MiB, 12)],
            vif=vif, start=False, name=name)
        return vm, vdis, vif_ref

    def records(self, api, vm):
        """The VM's record and its VBDs', VIFs' and VDIs' records."""
        rec = api.VM.get_record(vm)
        vbds = {v: api.VBD.get_record(v) for v in rec['VBDs']}
        vdis = {r['VDI']: api.VDI.get_record(r['VDI'])
                for r in vbds.values() if r['VDI'] != NULL}
        vifs = {v: api.VIF.get_record(v) for v in rec['VIFs']}
        return {'vm': rec, 'vbds': vbds, 'vdis': vdis, 'vifs': vifs}

    def disks_of(self, api, vm):
        """{userdevice: VDI record and its 'ref'} of a VM's disks."""
        out = {}
        for vbd in api.VM.get_VBDs(vm):
            rec = api.VBD.get_record(vbd)
            if rec['VDI'] != NULL and rec['type'] == 'Disk':
                out[rec['userdevice']] = dict(
                    api.VDI.get_record(rec['VDI']), ref=rec['VDI'])
        return out


class TestMigrateSendCopy(CopyTestCase):

    def test_copy_makes_a_new_vm_in_the_other_pool(self):
        vm, (thin, thick), vif = self.halted_vm()
        self.api.VM.snapshot(vm, 'before-copy')
        uuid = self.api.VM.get_uuid(vm)
        before = self.records(self.api, vm)
        digests = self.ctl.vm_digests(uuid)
        vdis_b = self.vdi_set(self.api_b)
        vdi_map = {thin: self.ext(self.api_b), thick: self.lvm(self.api_b)}
        self.api.VM.assert_can_migrate(vm, self.dest_b(), False, vdi_map,
                                       {vif: self.net_b}, COPY)
        new = self.api.VM.migrate_send(vm, self.dest_b(), False, vdi_map,
                                       {vif: self.net_b}, COPY)

        # The source: every record and every byte as it was.
        self.assertEqual(before, self.records(self.api, vm))
        self.assertEqual(digests, self.ctl.vm_digests(uuid))
        # The destination: a new VM (not a restore), no snapshots.
        rec = self.api_b.VM.get_record(new)
        self.assertNotEqual(uuid, rec['uuid'])
        self.assertIsNone(self.vm_in(uuid, self.api_b))
        self.assertEqual('vm', rec['name_label'])
        self.assertEqual('Halted', rec['power_state'])
        self.assertEqual([], rec['snapshots'])
        self.assertNotEqual(before['vm']['other_config'].get('mac_seed'),
                            rec['other_config']['mac_seed'])
        copied = self.ctl_b.vm_digests(rec['uuid'])
        self.assertEqual({k: v for k, v in digests.items() if '/' not in k},
                         copied)
        disks = self.disks_of(self.api_b, new)
        self.assertEqual(self.ext(self.api_b), disks['0']['SR'])
        self.assertEqual(self.lvm(self.api_b), disks['1']['SR'])
        # Full copies, new VDIs: only the VM's two disks arrived.
        self.assertEqual(2, len(self.vdi_set(self.api_b) - vdis_b))
        for d in disks.values():
            self.assertNotIn(d['uuid'],
                             [v['uuid'] for v in before['vdis'].values()])
        (new_vif,) = rec['VIFs']
        vrec = self.api_b.VIF.get_record(new_vif)
        old_vif = before['vifs'][vif]
        self.assertEqual(self.net_b, vrec['network'])
        self.assertEqual(old_vif['other_config'], vrec['other_config'])
        self.assertEqual(old_vif['device'], vrec['device'])
        self.assertNotEqual(old_vif['MAC'], vrec['MAC'])

    def test_both_vms_boot_and_diverge(self):
        vm, (thin, thick), vif = self.halted_vm()
        uuid = self.api.VM.get_uuid(vm)
        digests = self.ctl.vm_digests(uuid)
        ext_b = self.ext(self.api_b)
        new = self.api.VM.migrate_send(vm, self.dest_b(), False,
                                       {thin: ext_b, thick: ext_b},
                                       {vif: self.net_b}, COPY)
        new_uuid = self.api_b.VM.get_uuid(new)
        self.api.VM.start(vm, False, False)
        self.api_b.VM.start(new, False, False)
        self.write(new_uuid, ['0', '1'], ctl=self.ctl_b)
        self.wait_writes(new_uuid, ctl=self.ctl_b)
        self.stop_and_check(new_uuid, ctl=self.ctl_b, written=True)
        # What the copy's guest wrote did not reach the original.
        self.assertNotEqual(digests, self.ctl_b.vm_digests(new_uuid))
        self.assertEqual(digests, self.ctl.vm_digests(uuid))

    def test_running_vm_is_refused_without_force(self):
        vm, (thin,), vif = self.make_vm([(self.ext(), 4 * MiB, 4)],
                                        name='running')
        vms_b = self.api_b.VM.get_all()
        vdis_b = self.vdi_set(self.api_b)
        args = (vm, self.dest_b(), False, self.to_ext_b(thin),
                {vif: self.net_b}, COPY)
        expected = ['VM_BAD_POWER_STATE', vm, 'halted', 'running']
        self.assertXapiError(expected, self.api.VM.assert_can_migrate,
                             *args)
        self.assertXapiError(expected, self.api.VM.migrate_send, *args)
        self.assertEqual(sorted(vms_b), sorted(self.api_b.VM.get_all()))
        self.assertEqual(vdis_b, self.vdi_set(self.api_b))
        self.assertEqual('Running', self.api.VM.get_power_state(vm))

    def test_force_copies_a_running_vm_and_leaves_it_running(self):
        vm, (thin,), vif = self.make_vm([(self.ext(), 4 * MiB, 8)])
        uuid = self.api.VM.get_uuid(vm)
        digests = self.ctl.vm_digests(uuid)
        new = self.api.VM.migrate_send(
            vm, self.dest_b(), True, self.to_ext_b(thin), {vif: self.net_b},
            {'copy': 'true', 'force': 'true'})
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertEqual(self.host_a, self.api.VM.get_resident_on(vm))
        self.assertEqual('Halted', self.api_b.VM.get_power_state(new))
        self.assertEqual(digests,
                         self.ctl_b.vm_digests(self.api_b.VM.get_uuid(new)))

    def test_force_copies_a_writing_vm_from_one_instant(self):
        vm, small, large, vif = self.writing_vm()
        vdis_a = self.vdi_set()
        new = self.api.VM.migrate_send(
            vm, self.dest_b(), True, self.to_ext_b(small, large),
            {vif: self.net_b}, {'copy': 'true', 'force': 'true'})
        # The snapshots the copy was read from are gone again; the guest
        # wrote on throughout, and its disks hold what it wrote.
        self.assertEqual(vdis_a, self.vdi_set())
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=['0', '1'], written=True)
        new_uuid = self.api_b.VM.get_uuid(new)
        self.assertEqual(['0', '1'],
                         sorted(self.ctl_b.vm_digests(new_uuid)))
        self.api_b.VM.start(new, False, False)
        self.assertEqual('Running', self.api_b.VM.get_power_state(new))

    def test_copy_within_the_pool_is_refused_by_migrate_send(self):
        vm, (thin, thick), _ = self.halted_vm(vif=False)
        vdis = self.vdi_set()
        vdi_map = {thin: self.lvm(), thick: self.ext()}
        # xapi checks this in migrate_send only, not in assert_can_migrate.
        self.api.VM.assert_can_migrate(vm, self.dest_a(), False, vdi_map,
                                       {}, COPY)
        self.assertXapiError(['OPERATION_NOT_ALLOWED', INTRA_POOL_COPY],
                             self.api.VM.migrate_send, vm, self.dest_a(),
                             False, vdi_map, {}, COPY)
        self.assertEqual(vdis, self.vdi_set())
        self.assertEqual({}, self.api.VM.get_current_operations(vm))

    def test_options_are_read_as_xapi_reads_them(self):
        # OCaml's bool_of_string: only "true" is true; "True" is a move.
        vm, (thin,), vif = self.make_vm([(self.ext(), 4 * MiB, 4)],
                                        start=False)
        uuid = self.api.VM.get_uuid(vm)
        new = self.api.VM.migrate_send(
            vm, self.dest_b(), False, self.to_ext_b(thin), {vif: self.net_b},
            {'copy': 'True', 'compress': 'true', 'unknown': 'x'})
        self.assertEqual(uuid, self.api_b.VM.get_uuid(new))
        self.assertIsNone(self.vm_in(uuid, self.api))

    def test_cancelled_copy_leaves_nothing_behind(self):
        vm, (thin, thick), vif = self.halted_vm()
        uuid = self.api.VM.get_uuid(vm)
        before = self.records(self.api, vm)
        digests = self.ctl.vm_digests(uuid)
        vms_b = sorted(self.api_b.VM.get_all())
        vdis_b = self.vdi_set(self.api_b)
        self.ctl.configure(bandwidth=2 * MiB)
        task = self.api.Async.VM.migrate_send(
            vm, self.dest_b(), False, self.to_ext_b(thin, thick),
            {vif: self.net_b}, COPY)
        self.wait_progress(task)
        self.api.task.cancel(task)
        rec = self.wait_task(task)
        self.assertEqual('cancelled', rec['status'])
        self.assertEqual(['TASK_CANCELLED', task], rec['error_info'])
        self.assertEqual(vms_b, sorted(self.api_b.VM.get_all()))
        self.assertEqual(vdis_b, self.vdi_set(self.api_b))
        self.assertEqual(before, self.records(self.api, vm))
        self.assertEqual(digests, self.ctl.vm_digests(uuid))

    def test_failed_copy_leaves_nothing_behind_and_can_be_retried(self):
        vm, (thin, thick), vif = self.halted_vm()
        uuid = self.api.VM.get_uuid(vm)
        before = self.records(self.api, vm)
        vms_b = sorted(self.api_b.VM.get_all())
        vdis_b = self.vdi_set(self.api_b)
        self.ctl.fault_inject('copy', percent=50)
        args = (vm, self.dest_b(), False, self.to_ext_b(thin, thick),
                {vif: self.net_b}, COPY)
        self.assertXapiError(['VDI_COPY_FAILED',
                              'Storage_error ([S(Internal_error)])'],
                             self.api.VM.migrate_send, *args)
        self.assertEqual(vms_b, sorted(self.api_b.VM.get_all()))
        self.assertEqual(vdis_b, self.vdi_set(self.api_b))
        self.assertEqual(before, self.records(self.api, vm))
        new = self.api.VM.migrate_send(*args)
        self.assertEqual(self.ctl.vm_digests(uuid),
                         self.ctl_b.vm_digests(self.api_b.VM.get_uuid(new)))


class TestVMCopyAndClone(CopyTestCase):

    def test_copy_into_one_sr(self):
        vm, (thin, thick), vif = self.halted_vm()
        uuid = self.api.VM.get_uuid(vm)
        before = self.records(self.api, vm)
        digests = self.ctl.vm_digests(uuid)
        task = self.api.Async.VM.copy(vm, 'the-copy', self.lvm())
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        self.assertEqual(1.0, rec['progress'])
        new = migrate_base.decode_result(rec['result'])
        new_rec = self.api.VM.get_record(new)
        self.assertEqual('the-copy', new_rec['name_label'])
        self.assertNotEqual(uuid, new_rec['uuid'])
        self.assertEqual('Halted', new_rec['power_state'])
        self.assertFalse(new_rec['is_a_template'])
        self.assertEqual({}, new_rec['current_operations'])
        self.assertEqual(digests, self.ctl.vm_digests(new_rec['uuid']))
        disks = self.disks_of(self.api, new)
        self.assertEqual({self.lvm()}, {d['SR'] for d in disks.values()})
        self.assertEqual(before, self.records(self.api, vm))
        # other_config goes along, with a new MAC seed; the VIF too, on
        # the same network with a new MAC.
        self.assertEqual(
            {k: v for k, v in before['vm']['other_config'].items()
             if k != 'mac_seed'},
            {k: v for k, v in new_rec['other_config'].items()
             if k != 'mac_seed'})
        self.assertIn('mac_seed', new_rec['other_config'])
        (new_vif,) = new_rec['VIFs']
        vrec = self.api.VIF.get_record(new_vif)
        self.assertEqual(self.net_a, vrec['network'])
        self.assertNotEqual(before['vifs'][vif]['MAC'], vrec['MAC'])
        # Full copies: writing to one does not touch the other.
        self.disk(disks['1']['ref']).write(0, b'only in the copy')
        self.assertEqual(digests, self.ctl.vm_digests(uuid))
        self.assertNotEqual(digests, self.ctl.vm_digests(new_rec['uuid']))

    def test_copy_with_null_sr_keeps_each_disk_in_its_sr(self):
        vm, (thin, thick), _ = self.halted_vm(vif=False)
        self.create_vbd(vm, NULL, '3', type='CD', mode='RO', empty=True,
                        bootable=False)
        vdis = self.vdi_set()
        new = self.api.VM.copy(vm, 'c', NULL)
        # Two full copies; the empty CD drive comes along, still empty.
        self.assertEqual(2, len(self.vdi_set() - vdis))
        cds = [self.api.VBD.get_record(v) for v in self.api.VM.get_VBDs(new)
               if self.api.VBD.get_type(v) == 'CD']
        self.assertEqual([('3', True, NULL)],
                         [(c['userdevice'], c['empty'], c['VDI'])
                          for c in cds])
        disks = self.disks_of(self.api, new)
        self.assertEqual(self.ext(), disks['0']['SR'])
        self.assertEqual(self.lvm(), disks['1']['SR'])
        self.assertNotIn(disks['0']['uuid'],
                         (self.api.VDI.get_uuid(thin),
                          self.api.VDI.get_uuid(thick)))
        self.assertEqual(self.ctl.vm_digests(self.api.VM.get_uuid(vm)),
                         self.ctl.vm_digests(self.api.VM.get_uuid(new)))

    def test_clone_is_copy_on_write_in_the_same_srs(self):
        vm, (thin, thick), vif = self.halted_vm()
        uuid = self.api.VM.get_uuid(vm)
        digests = self.ctl.vm_digests(uuid)
        new = self.api.VM.clone(vm, 'clone')
        new_uuid = self.api.VM.get_uuid(new)
        disks = self.disks_of(self.api, new)
        self.assertEqual(self.ext(), disks['0']['SR'])
        self.assertEqual(self.lvm(), disks['1']['SR'])
        self.assertEqual(digests, self.ctl.vm_digests(new_uuid))
        # Both start and write; each sees only its own writes.
        self.api.VM.start(new, False, False)
        self.write(new_uuid, ['0'])
        self.wait_writes(new_uuid)
        self.stop_and_check(new_uuid, written=True)
        self.assertEqual(digests, self.ctl.vm_digests(uuid))
        self.api.VM.start(vm, False, False)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))

    def test_running_vm_cannot_be_copied_or_cloned(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 4 * MiB, 2)])
        vms = sorted(self.api.VM.get_all())
        vdis = self.vdi_set()
        expected = ['VM_BAD_POWER_STATE', vm, 'halted', 'running']
        self.assertXapiError(expected, self.api.VM.copy, vm, 'c', NULL)
        self.assertXapiError(expected, self.api.VM.clone, vm, 'c')
        self.assertEqual(vms, sorted(self.api.VM.get_all()))
        self.assertEqual(vdis, self.vdi_set())

    def test_suspended_vm_needs_the_pool_switch(self):
        vm, (vdi,), _ = self.make_vm([(self.ext(), 4 * MiB, 2)])
        pool = self.api.pool.get_all()[0]
        self.api.pool.set_suspend_image_SR(pool, self.ext())
        self.api.VM.suspend(vm)
        self.assertXapiError(['VM_BAD_POWER_STATE', vm, 'halted',
                              'suspended'], self.api.VM.clone, vm, 'c')
        self.api.pool.add_to_other_config(pool, 'allow_clone_suspended_vm',
                                          'true')
        new = self.api.VM.copy(vm, 'c', NULL)
        rec = self.api.VM.get_record(new)
        self.assertEqual('Suspended', rec['power_state'])
        self.assertNotIn(rec['suspend_VDI'], (NULL, self.api.VM.
                                              get_suspend_VDI(vm)))
        self.api.VM.resume(new, False, False)
        self.assertEqual('Running', self.api.VM.get_power_state(new))

    def test_copy_of_a_snapshot_is_a_template(self):
        vm, _, _ = self.halted_vm(vif=False)
        snap = self.api.VM.snapshot(vm, 'snap')
        new = self.api.VM.copy(snap, 'from-snap', NULL)
        rec = self.api.VM.get_record(new)
        self.assertTrue(rec['is_a_template'])
        self.assertFalse(rec['is_a_snapshot'])
        self.assertEqual(NULL, rec['snapshot_of'])
        self.assertEqual('snap', rec['other_config']['base_template_name'])
        self.assertEqual(
            {k: v for k, v in self.ctl.vm_digests(
                self.api.VM.get_uuid(vm)).items() if k.startswith('snap/')},
            {'snap/' + k: v for k, v in self.ctl.vm_digests(
                rec['uuid']).items()})

    def test_copy_to_an_iso_sr_is_refused(self):
        iso = self.api.SR.introduce(str(uuidlib.uuid4()), 'isos', '',
                                    'iso', 'iso', False, {})
        vm, _, _ = self.halted_vm(vif=False)
        vms = sorted(self.api.VM.get_all())
        self.assertXapiError(['OPERATION_NOT_ALLOWED',
                              "Cannot copy a VM's disks to an ISO SR"],
                             self.api.VM.copy, vm, 'c', iso)
        self.assertEqual(vms, sorted(self.api.VM.get_all()))

    def test_failed_copy_leaves_nothing_behind(self):
        vm, (thin, thick), _ = self.halted_vm(vif=False)
        vms = sorted(self.api.VM.get_all())
        vdis = self.vdi_set()
        # The thick SR cannot hold a second copy of every disk.
        big = self.create_vdi(self.lvm(), 4 * MiB, name='big')
        self.create_vbd(vm, big, '2')
        free = (int(self.api.SR.get_physical_size(self.lvm()))
                - int(self.api.SR.get_physical_utilisation(self.lvm())))
        filler = self.create_vdi(self.lvm(), free - 6 * MiB, name='fill')
        vdis = self.vdi_set()
        self.assertXapiError(['SR_BACKEND_FAILURE_44', '',
                              'There is insufficient space', ''],
                             self.api.VM.copy, vm, 'c', self.lvm())
        self.assertEqual(vms, sorted(self.api.VM.get_all()))
        self.assertEqual(vdis, self.vdi_set())
        self.assertEqual({}, self.api.VM.get_current_operations(vm))
        self.api.VDI.destroy(filler)
        self.api.VM.copy(vm, 'c', self.lvm())
