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

"""The shared scenarios (``scenarios``) on the XAPI simulator."""

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import scenarios


class SimulatedScenariosTest(scenarios.CrossPoolScenarios,
                             base.SxmServicesTestCase):
    """Guest checker: every byte the guest wrote, checked."""


class SimulatedSnapshotChecksTest(scenarios.ScenarioHelpers,
                                  base.SxmServicesTestCase):
    """The live tests' data check, run here so that it is known to work."""

    checks = 'snapshot'
    test_live_block_migration_keeps_data = (
        scenarios.CrossPoolScenarios.test_live_block_migration_keeps_data)
