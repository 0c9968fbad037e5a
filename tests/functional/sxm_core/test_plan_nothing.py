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

"""In-pool plans that move nothing, and plans naming an unknown SR."""

from sxm_core.cli import formats
from sxm_core import plan as planmod
from tests.functional.sxm_core import base


class TestPlanReport(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        self.vm, _ = self.make_vm()
        self.uuid = self.api.VM.get_uuid(self.vm)

    def test_in_pool_plan_with_every_disk_in_place(self):
        migrator = self.migrator(cross_pool=False)
        the_plan, problems = migrator.plan(
            self.uuid, sr_map={'0': base.LVM, '1': base.EXT})
        self.assertTrue(the_plan.nothing_to_move)
        # Neither the local preflight nor XAPI object: plan exits 0.
        self.assertEqual([], planmod.blocking(migrator.check(the_plan)))
        text = formats.format_plan(the_plan, problems)
        self.assertIn("Nothing to move: every disk of VM 'web' (%s) "
                      'already is on its destination SR.' % self.uuid,
                      text)
        self.assertNotIn('space needed', text)

    def test_unknown_sr_in_the_map_is_on_the_disks_row(self):
        the_plan, problems = self.migrator().plan(self.uuid,
                                                  sr_map={'1': 'x'})
        (problem,) = planmod.blocking(problems)
        self.assertIn("No SR 'x' in pool pool-b", problem.message)
        self.assertIn("disk 1 'web-data'", problem.message)
        text = formats.format_plan(the_plan, problems)
        (row,) = [line for line in text.splitlines()
                  if line.startswith('1 web-data')]
        self.assertEqual(['1', 'web-data', '16.0', 'MiB', 'Local',
                          'storage', '(ext)', '?', 'unknown', 'SR', "'x'",
                          '?'], row.split())
