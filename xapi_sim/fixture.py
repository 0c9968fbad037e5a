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

"""A ``fixtures.Fixture`` that runs the simulator for one test."""

import fixtures

from xapi_sim import sim as simmod


class SimulatorFixture(fixtures.Fixture):
    """Starts the pools of ``topology`` (default: the built-in two pools).

    ``self.sim`` is the Simulator; ``url(name)`` a pool's URL; ``username``
    and ``password`` the credentials of the built-in topology.
    """

    username = simmod.DEFAULT_USERNAME
    password = simmod.DEFAULT_PASSWORD

    def __init__(self, topology=None):
        super().__init__()
        self.topology = topology

    def _setUp(self):
        root = self.useFixture(fixtures.TempDir()).path
        self.sim = simmod.Simulator(self.topology, root=root)
        self.addCleanup(self.sim.stop)
        self.sim.start()

    def url(self, pool):
        return self.sim.pools[pool].url
