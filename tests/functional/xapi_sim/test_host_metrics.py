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

"""host as nova read it: the record, host_metrics, CPUs, versions, the
iSCSI IQN, and memory that running VMs take from the host."""

import copy

from tests.functional.xapi_sim import base
from xapi_sim import sim as simmod

MiB = base.MiB
GiB = 1 << 30


class TestHostRecord(base.SimulatorTestCase):

    def setUp(self):
        super().setUp()
        self.host = self.api.pool.get_master(self.api.pool.get_all()[0])

    def test_record_has_what_nova_read(self):
        rec = self.api.host.get_record(self.host)
        for key in ('address', 'hostname', 'name_label', 'uuid', 'cpu_info',
                    'software_version', 'capabilities', 'host_CPUs',
                    'PIFs', 'PBDs', 'metrics', 'iscsi_iqn',
                    'memory_overhead'):
            self.assertIn(key, rec)
        self.assertEqual('127.0.0.1', rec['address'])
        self.assertEqual('pool-a-host1', rec['hostname'])
        self.assertIn('hvm-3.0-x86_64', rec['capabilities'])
        self.assertEqual(sorted(self.api.host.get_PIFs(self.host)),
                         sorted(rec['PIFs']))
        self.assertEqual(2, len(rec['PBDs']))

    def test_cpu_info_and_host_cpus(self):
        rec = self.api.host.get_record(self.host)
        info = rec['cpu_info']
        for key in ('cpu_count', 'socket_count', 'vendor', 'speed',
                    'modelname', 'family', 'model', 'stepping', 'flags',
                    'features', 'features_pv', 'features_hvm'):
            self.assertTrue(info.get(key), key)
        self.assertEqual(int(info['cpu_count']), len(rec['host_CPUs']))
        cpus = [self.api.host_cpu.get_record(c) for c in rec['host_CPUs']]
        self.assertEqual(sorted(range(len(cpus))),
                         sorted(int(c['number']) for c in cpus))
        for cpu in cpus:
            self.assertEqual(self.host, cpu['host'])
            self.assertEqual(info['modelname'], cpu['modelname'])
            self.assertEqual(info['vendor'], cpu['vendor'])

    def test_software_version(self):
        version = self.api.host.get_software_version(self.host)
        for key in ('product_version', 'product_brand', 'platform_name',
                    'platform_version', 'build_number', 'xapi', 'xen'):
            self.assertTrue(version.get(key), key)
        self.assertEqual('XCP', version['platform_name'])
        self.assertRegex(version['platform_version'], r'^\d+\.\d+\.\d+$')

    def test_iscsi_iqn_field_and_other_config_agree(self):
        iqn = self.api.host.get_iscsi_iqn(self.host)
        self.assertTrue(iqn.startswith('iqn.'))
        self.assertEqual(iqn, self.api.host.get_other_config(
            self.host)['iscsi_iqn'])
        self.api.host.set_iscsi_iqn(self.host, 'iqn.2026-02.org.example:h1')
        self.assertEqual('iqn.2026-02.org.example:h1',
                         self.api.host.get_iscsi_iqn(self.host))
        self.assertEqual('iqn.2026-02.org.example:h1',
                         self.api.host.get_other_config(
                             self.host)['iscsi_iqn'])
        # xapi's other-config watcher keeps the field in step too.
        self.api.host.remove_from_other_config(self.host, 'iscsi_iqn')
        self.api.host.add_to_other_config(self.host, 'iscsi_iqn',
                                          'iqn.2026-03.org.example:h1')
        self.assertEqual('iqn.2026-03.org.example:h1',
                         self.api.host.get_iscsi_iqn(self.host))
        self.assertXapiError(['INVALID_VALUE', 'value', ''],
                             self.api.host.set_iscsi_iqn, self.host, '')

    def test_sr_sizes_are_strings(self):
        rec = self.api.SR.get_record(self.sr('ext'))
        for key in ('physical_size', 'physical_utilisation',
                    'virtual_allocation'):
            self.assertIsInstance(rec[key], str)
            int(rec[key])


def small_hosts(memory):
    topo = copy.deepcopy(simmod.DEFAULT_TOPOLOGY)
    for spec in topo['pools']:
        for host in spec['hosts']:
            host['memory'] = memory
    return topo


class TestHostMemory(base.SimulatorTestCase):

    topology = small_hosts('6GiB')

    def setUp(self):
        super().setUp()
        self.host = self.api.pool.get_master(self.api.pool.get_all()[0])
        self.metrics = self.api.host.get_metrics(self.host)

    def free(self):
        return int(self.api.host.compute_free_memory(self.host))

    def reported_free(self):
        return int(self.api.host_metrics.get_memory_free(self.metrics))

    def vm(self, mib, name='vm'):
        vm = self.create_vm(name)
        value = str(mib * MiB)
        self.api.VM.set_memory_limits(vm, value, value, value, value)
        return vm

    def test_host_metrics_record(self):
        rec = self.api.host_metrics.get_record(self.metrics)
        self.assertEqual(str(6 * GiB), rec['memory_total'])
        self.assertTrue(rec['live'])
        self.assertIn('last_updated', rec)
        self.assertEqual({}, rec['other_config'])
        self.assertEqual([self.metrics], self.api.host_metrics.get_all())

    def test_dom0_and_the_host_overhead_are_not_free(self):
        dom0 = [v for v in self.api.host.get_resident_VMs(self.host)
                if self.api.VM.get_is_control_domain(v)][0]
        used = (int(self.api.VM.get_memory_dynamic_min(dom0))
                + int(self.api.VM.get_memory_overhead(dom0)))
        overhead = int(self.api.host.compute_memory_overhead(self.host))
        self.assertGreater(overhead, 0)
        self.assertEqual(6 * GiB - overhead - used, self.free())
        self.assertEqual(self.free(), self.reported_free())

    def test_running_vm_takes_its_memory_until_it_halts(self):
        before, reported = self.free(), self.reported_free()
        vm = self.vm(1024)
        self.api.VM.start(vm, False, False)
        overhead = int(self.api.VM.get_memory_overhead(vm))
        self.assertGreater(overhead, 0)
        self.assertEqual(before - GiB - overhead, self.free())
        actual = int(self.api.VM_metrics.get_memory_actual(
            self.api.VM.get_metrics(vm)))
        self.assertEqual(GiB, actual)
        self.assertEqual(reported - actual - overhead, self.reported_free())
        self.api.VM.clean_shutdown(vm)
        self.assertEqual(before, self.free())
        self.assertEqual(reported, self.reported_free())

    def test_vm_that_does_not_fit_fails_to_start(self):
        first = self.vm(1024, 'first')
        self.api.VM.start(first, False, False)
        big = self.vm(1024, 'big')
        available = self.free()
        needed = (int(self.api.VM.get_memory_dynamic_min(big))
                  + int(self.api.VM.get_memory_overhead(big)))
        self.assertLess(available, needed)
        self.assertXapiError(
            ['HOST_NOT_ENOUGH_FREE_MEMORY', str(needed), str(available)],
            self.api.VM.start, big, False, False)
        self.assertXapiError(
            ['HOST_NOT_ENOUGH_FREE_MEMORY', str(needed), str(available)],
            self.api.VM.start_on, big, self.host, False, False)
        self.assertXapiError(
            ['HOST_NOT_ENOUGH_FREE_MEMORY', str(needed), str(available)],
            self.api.VM.assert_can_boot_here, big, self.host)
        rec = self.api.VM.get_record(big)
        self.assertEqual('Halted', rec['power_state'])
        self.assertEqual(base.NULL, rec['resident_on'])
        self.assertEqual(available, self.free())
        # Once the first one halts, it fits.
        self.api.VM.hard_shutdown(first)
        self.api.VM.start(big, False, False)
        self.assertEqual('Running', self.api.VM.get_power_state(big))

    def test_start_counts_dynamic_min(self):
        # xapi places a VM by its dynamic_min (it can balloon down).
        vm = self.create_vm('balloon')
        self.api.VM.set_memory_limits(vm, str(256 * MiB), str(4 * GiB),
                                      str(512 * MiB), str(4 * GiB))
        before = self.free()
        self.api.VM.start(vm, False, False)
        self.assertEqual(
            before - 512 * MiB - int(self.api.VM.get_memory_overhead(vm)),
            self.free())
        self.assertEqual(str(4 * GiB), self.api.VM.get_memory_target(vm))
