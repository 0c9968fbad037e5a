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

"""Plans of a VM whose disks are VHD chains (after a round trip).

A storage migration leaves each disk as a small mirror leaf over the
copied base: the leaf's physical_utilisation is nearly nothing, yet the
disk still holds all its data, and the next plan must say so.
"""

from sxm_core.cli import formats
from sxm_core import migrate
from sxm_core import plan as planmod
from sxm_core import slots as slotsmod
from tests.functional.sxm_core import base

MiB = base.MiB
# One thin disk of 64 MiB with 32 MiB written before boot.
DISKS = (('0', 'data', base.EXT, 64 * MiB, 32 * MiB),)


class TestPlanAfterRoundTrip(base.CoreTestCase):

    # A thin SR in pool-b too small for the disk's data.
    topology = base.topology_with({'pool-b': [
        {'name': 'small', 'type': 'ext', 'size': '24MiB'}]})

    def test_plan_counts_the_whole_chain_after_there_and_back(self):
        vm, _ = self.make_vm(disks=DISKS)
        uuid = self.api.VM.get_uuid(vm)
        there = self.migrator()
        first, problems = there.plan(uuid)
        self.assertEqual([], planmod.blocking(problems))
        self.assertEqual(32 * MiB, first.bytes_to_move)
        there.migrate(first)
        back = migrate.Migrator(self.pool('pool-b'), self.pool('pool-a'),
                                slots=slotsmod.HostSlots(poll=0.01))
        back_plan, problems = back.plan(uuid)
        self.assertEqual([], planmod.blocking(problems))
        (step,) = back_plan.disks
        self.assertEqual((32 * MiB, 32 * MiB),
                         (step.bytes_to_copy, step.bytes_needed))
        back.migrate(back_plan)
        again, problems = self.migrator().plan(uuid)
        (step,) = again.disks
        self.assertEqual((32 * MiB, 32 * MiB),
                         (step.bytes_to_copy, step.bytes_needed))
        self.assertEqual(32 * MiB, again.bytes_to_move)
        self.assertIn('To move: 32.0 MiB',
                      formats.format_plan(again, problems))
        # The space check counts it too.
        small, problems = self.migrator().plan(uuid, sr='small')
        (problem,) = planmod.blocking(problems)
        self.assertEqual('space', problem.code)
        self.assertIn('24.0 MiB free', problem.message)
        self.assertIn('need 32.0 MiB', problem.message)
