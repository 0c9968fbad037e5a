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

"""The Migrator's copy mode (migrate_send with {"copy": "true"}).

A halted VM is copied to another pool with its disks: the source VM and
its disks stay exactly as they were, the copy is a new VM whose disks
hold the same bytes. Copy mode in a pool and of a running VM is refused
before anything is sent, as xapi refuses it.
"""

import hashlib

from sxm_core import errors
from sxm_core import plan as planmod
from tests.functional.sxm_core import base

MiB = base.MiB


class ColdCopyTest(base.CoreTestCase):

    def digests(self, vdis, pool='pool-a'):
        session = self.session if pool == 'pool-a' else self.session_b
        return {ud: hashlib.sha256(self.export_vdi(vdi, pool, session))
                .hexdigest() for ud, vdi in vdis.items()}

    def test_copy_to_another_pool_leaves_the_source(self):
        vm, vdis = self.make_vm(name='cold', start=False)
        uuid = self.api.VM.get_uuid(vm)
        before = self.digests(vdis)
        source_vdis = self.vdi_set()
        seen = []
        migrator = self.migrator()
        the_plan, problems = migrator.plan(uuid, copy=True)
        self.assertEqual([], planmod.blocking(problems))
        self.assertEqual({'copy': 'true'}, the_plan.options)
        self.assertEqual({'copy'}, {s.kind for s in the_plan.disks})
        self.assertEqual([], migrator.check(the_plan))
        result = migrator.migrate(the_plan, progress=seen.append)

        # The source is untouched: same VM, halted, same disks and bytes.
        self.assertEqual('Halted', self.api.VM.get_power_state(vm))
        self.assertEqual(vdis, {self.api.VBD.get_userdevice(v):
                                self.api.VBD.get_VDI(v)
                                for v in self.api.VM.get_VBDs(vm)})
        self.assertEqual(source_vdis, self.vdi_set())
        self.assertEqual(before, self.digests(vdis))
        # The copy: a new VM in pool-b, halted, its disks the same bytes.
        api_b = self.api_b
        self.assertNotEqual(uuid, result.vm_uuid)
        self.assertEqual(result.vm_uuid, api_b.VM.get_uuid(result.vm_ref))
        self.assertEqual('Halted', api_b.VM.get_power_state(result.vm_ref))
        copied = {api_b.VBD.get_userdevice(v): api_b.VBD.get_VDI(v)
                  for v in api_b.VM.get_VBDs(result.vm_ref)}
        self.assertEqual(set(vdis), set(copied))
        self.assertEqual(before, self.digests(copied, 'pool-b'))
        self.assertEqual(sorted(copied), sorted(d[0] for d in result.disks))
        self.assertEqual('done', seen[-1].phase)
        self.assertEqual(the_plan.bytes_to_move, seen[-1].bytes_done)
        # No login left behind (the migrate_receive token ended too).
        migrator.source.close()
        migrator.dest.close()
        self.assertNoSessionsLeft()

    def test_copy_within_a_pool_is_refused_before_sending(self):
        vm, _ = self.make_vm(name='cold', start=False)
        migrator = self.migrator(cross_pool=False)
        the_plan, problems = migrator.plan(self.api.VM.get_uuid(vm),
                                           copy=True, sr=base.EXT)
        self.assertEqual(['copy'], [p.code for p in
                                    planmod.blocking(problems)])
        self.assertIn('VM.copy', problems[0].message)
        before = self.vdi_set()
        self.assertRaises(errors.PreflightFailed, migrator.migrate, the_plan)
        self.assertEqual(before, self.vdi_set())

    def test_copy_of_a_running_vm_is_refused(self):
        vm, _ = self.make_vm(name='hot')
        migrator = self.migrator()
        the_plan, problems = migrator.plan(self.api.VM.get_uuid(vm),
                                           copy=True)
        self.assertIn('copy', [p.code for p in planmod.blocking(problems)])
        vms_b = set(self.api_b.VM.get_all())
        self.assertRaises(errors.PreflightFailed, migrator.migrate, the_plan)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertEqual(vms_b, set(self.api_b.VM.get_all()))

    def test_failed_copy_reports_the_state_and_keeps_the_source(self):
        vm, vdis = self.make_vm(name='cold', start=False)
        before = self.digests(vdis)
        migrator = self.migrator()
        the_plan, _ = migrator.plan(self.api.VM.get_uuid(vm), copy=True)
        self.control().fault_inject('copy', percent=50)
        exc = self.assertRaises(errors.MigrationFailed, migrator.migrate,
                                the_plan)
        self.assertEqual('Halted', exc.state.source_vm)
        self.assertEqual('none', exc.state.dest_vm)
        self.assertEqual(before, self.digests(vdis))
