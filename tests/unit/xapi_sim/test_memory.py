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

"""The memory model against figures worked out from xen-api's
``memory.ml`` and ``memory_check.ml`` by hand."""

import testtools

from xapi_sim import db as dbmod
from xapi_sim import errors
from xapi_sim import memory
from xapi_sim import runtime

MiB = 1 << 20
GiB = 1 << 30


def vm_record(mib, vcpus=1, domain_type='hvm', **extra):
    rec = {'memory_static_max': mib * MiB, 'memory_dynamic_max': mib * MiB,
           'memory_dynamic_min': mib * MiB, 'memory_static_min': mib * MiB,
           'VCPUs_max': vcpus, 'VCPUs_at_startup': vcpus,
           'domain_type': domain_type, 'HVM_shadow_multiplier': 1.0,
           'HVM_boot_policy': 'BIOS order'}
    rec.update(extra)
    return rec


class TestOverhead(testtools.TestCase):

    def test_hvm(self):
        # 256 MiB, 1 vCPU: shadow = ceil((256 + 2*256) pages / 256) = 3;
        # 1 internal + 1 external + 3 + ceil(38/256) = 6 MiB.
        self.assertEqual(6 * MiB, memory.vm_overhead(vm_record(256)))
        # 4 GiB, 4 vCPUs: shadow = ceil((1024 + 8192) / 256) = 36;
        # 1 + 1 + 36 + 1 = 39 MiB.
        self.assertEqual(39 * MiB, memory.vm_overhead(vm_record(4096, 4)))

    def test_shadow_multiplier_and_pv(self):
        self.assertEqual(
            (1 + 1 + 6 + 1) * MiB,
            memory.vm_overhead(vm_record(256,
                                         HVM_shadow_multiplier=2.0)))
        # PV: no internal extra, the multiplier does not apply.
        self.assertEqual(5 * MiB, memory.vm_overhead(
            vm_record(256, domain_type='pv', HVM_shadow_multiplier=4.0)))
        # unspecified follows the boot policy.
        self.assertEqual('pv', memory.domain_type(vm_record(
            256, domain_type='unspecified', HVM_boot_policy='')))

    def test_required_to_start_uses_dynamic_min(self):
        rec = vm_record(1024, memory_dynamic_min=512 * MiB)
        self.assertEqual(512 * MiB + memory.vm_overhead(rec),
                         memory.required_to_start(rec))
        # PV-in-PVH starts at static_max, with its shim.
        rec = vm_record(1024, domain_type='pv_in_pvh',
                        memory_dynamic_min=512 * MiB)
        self.assertEqual(1024 * MiB + memory.vm_overhead(rec),
                         memory.required_to_start(rec))
        self.assertEqual((1 + 1 + 9 + 1 + 23 + 11) * MiB,
                         memory.vm_overhead(rec))

    def test_constraints(self):
        self.assertTrue(memory.constraints_valid(1, 2, 3, 4))
        self.assertFalse(memory.constraints_valid(1, 3, 2, 4))
        self.assertFalse(memory.constraints_valid(2, 1, 3, 4))
        # Coercible: dynamic outside static is clamped, as VM.start does.
        self.assertTrue(memory.constraints_coercible(
            vm_record(256, memory_dynamic_max=512 * MiB)))
        self.assertFalse(memory.constraints_coercible(
            vm_record(256, memory_static_min=512 * MiB)))


class TestHostAccounting(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.db = dbmod.Database()
        self.db.watch(runtime.watcher, prepare=runtime.prepare)
        metrics = self.db.add('host_metrics', {'memory_total': 8 * GiB})
        self.host = self.db.add('host', {'metrics': metrics,
                                         'memory_overhead': 256 * MiB})

    def add_vm(self, mib, **fields):
        rec = vm_record(mib)
        rec.update(fields)
        return self.db.add('VM', rec)

    def test_resident_and_scheduled_vms_count(self):
        free = memory.host_compute_free_memory(self.db, self.host)
        self.assertEqual(8 * GiB - 256 * MiB, free)
        vm = self.add_vm(1024, power_state='Running', resident_on=self.host)
        other = self.add_vm(512, scheduled_to_be_resident_on=self.host)
        # Overheads: 1024 MiB -> 1 + 1 + ceil(2304 / 256) + 1 = 12 MiB;
        # 512 MiB -> 1 + 1 + 5 + 1 = 8 MiB.
        self.assertEqual(free - (1024 + 12) * MiB - (512 + 8) * MiB,
                         memory.host_compute_free_memory(self.db,
                                                         self.host))
        # The VM being placed is not counted against itself.
        self.assertEqual(free - (1024 + 12) * MiB,
                         memory.host_compute_free_memory(
                             self.db, self.host, ignore_vm=other))
        self.db.update('VM', vm, power_state='Halted', resident_on=dbmod.NULL)
        self.assertEqual(free - (512 + 8) * MiB,
                         memory.host_compute_free_memory(self.db,
                                                         self.host))

    def test_assert_enough_memory(self):
        self.add_vm(7 * 1024, power_state='Running', resident_on=self.host)
        available = memory.host_compute_free_memory(self.db, self.host)
        rec = vm_record(1024)
        exc = self.assertRaises(errors.XapiError,
                                memory.assert_enough_memory, self.db,
                                self.host, rec)
        self.assertEqual(['HOST_NOT_ENOUGH_FREE_MEMORY',
                          str(memory.required_to_start(rec)),
                          str(available)], exc.description)
        memory.assert_enough_memory(self.db, self.host, vm_record(256))
