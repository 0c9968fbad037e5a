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

"""What an idle nova-compute asks of its pool master, per minute.

A region has hundreds of computes against a few dozen pool masters: one
idle compute's periodic tasks must cost a bounded number of XAPI calls,
whatever the number of its instances and of the VMs of the pool's other
hosts. Counted by the simulator's call log, with Nova's real compute
manager running every periodic task as often as it runs in a minute at
its default interval (a task of a longer interval, once).
"""

import math
import time

from nova.compute import power_state
from nova.compute import vm_states
from nova import context as nova_context
from nova import objects
from oslo_utils import uuidutils
from xapi_sim import vmbuild

from nova_sxm.tests.functional import base
from nova_sxm.virt import host as hostmod
from tests.functional import simhelpers

BUDGET = 30           # XAPI calls a minute
INSTANCES = 50        # on the compute's host
ELSEWHERE = 200       # VMs another host of the pool runs


class IdleComputeTest(base.SxmServicesTestCase):

    topology = simhelpers.two_host_topology('pool-a')

    def setUp(self):
        super().setUp()
        self.ctx = nova_context.get_admin_context()
        self.api_a = self.xapi['pool-a']
        self.host1, self.host2 = sorted(
            self.api_a.host.get_all(), key=self.api_a.host.get_name_label)
        self.manager = self.computes['host1'].manager
        (self.node,) = objects.ComputeNodeList.get_all_by_host(
            self.ctx, 'host1')
        self.flavor = objects.Flavor.get_by_flavor_id(
            self.ctx, self._create_flavor(memory_mb=64, vcpu=1, disk=0,
                                          ephemeral=0))
        for n in range(INSTANCES):
            self.make_instance(n)
        self.log = self.sim.pools['pool-a'].call_log

    def make_instance(self, n):
        """A running server of host1: Nova's record and its VM."""
        inst = objects.Instance(
            context=self.ctx, uuid=uuidutils.generate_uuid(),
            project_id=self.api.project_id, user_id='idle-test',
            display_name='idle-%d' % n, host='host1',
            node=self.node.hypervisor_hostname,
            compute_id=self.node.id,
            vm_state=vm_states.ACTIVE, power_state=power_state.RUNNING,
            flavor=self.flavor, instance_type_id=self.flavor.id,
            memory_mb=self.flavor.memory_mb, vcpus=self.flavor.vcpus,
            root_gb=0, ephemeral_gb=0)
        inst.create()
        vm = self.vm(inst.name, self.host1)
        self.api_a.VM.add_to_other_config(vm, 'nova_uuid', inst.uuid)
        return inst

    def vm(self, name, host):
        vm = self.api_a.VM.create(vmbuild.vm_record(name))
        self.api_a.VM.start_on(vm, host, False, False)
        return vm

    def one_minute(self):
        """XAPI calls of one minute of host1's periodic tasks, by method."""
        # Lookups a moment apart read afresh: so does each minute.
        time.sleep(hostmod.HostVMs.FRESH)
        self.log.reset()
        for name, task in self.manager._periodic_tasks:
            spacing = self.manager._periodic_spacing[name]
            for _ in range(max(1, math.ceil(60.0 / spacing))):
                task(self.manager, self.ctx)
        by_method = {}
        for method, originator, _size in self.log.entries():
            if originator != 'tests':
                by_method[method] = by_method.get(method, 0) + 1
        return by_method

    def test_an_idle_minute_within_budget_and_blind_to_other_hosts(self):
        self.one_minute()  # as after the compute started
        here = self.one_minute()
        self.assertLessEqual(sum(here.values()), BUDGET, here)
        # Nova sees every instance running: the calls did read them.
        self.assertEqual(
            {power_state.RUNNING},
            {i.power_state for i in objects.InstanceList.get_by_host(
                self.ctx, 'host1')})
        for n in range(ELSEWHERE):
            self.vm('elsewhere-%d' % n, self.host2)
        self.one_minute()
        self.assertEqual(here, self.one_minute())

    def test_power_sync_sees_a_vm_stopped_behind_novas_back(self):
        inst = objects.InstanceList.get_by_host(self.ctx, 'host1')[0]
        vm = self.api_a.VM.get_by_name_label(inst.name)[0]
        self.one_minute()
        self.api_a.VM.hard_shutdown(vm)
        self.one_minute()
        inst.refresh()
        self.assertEqual(power_state.SHUTDOWN, inst.power_state)
