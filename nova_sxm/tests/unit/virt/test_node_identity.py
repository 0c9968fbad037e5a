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

"""nova-compute restarts: the node identity Nova requires on disk.

Nova refuses to start a compute service it has seen before unless
``state_path/compute_id`` exists. Found by the one-machine cloud: the
second start of nova-compute failed. Not a Nova test base on purpose:
those stub the identity file out.
"""

import os

import fixtures
import nova.conf
from nova import exception
from nova.virt import node as nova_node
from oslo_config import fixture as config_fixture
import testtools

from nova_sxm import conf as sxm_conf
from nova_sxm.virt import driver
from xapi_sim import fixture as simfixture


class NodeIdentityTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.sim = self.useFixture(simfixture.SimulatorFixture())
        self.state = self.useFixture(fixtures.TempDir()).path
        self.conf = self.useFixture(config_fixture.Config(nova.conf.CONF))
        # Parsed as a service parses it: the identity file is looked for
        # beside CONF.config_file too.
        self.conf.conf(args=[], project='nova', default_config_files=[])
        self.conf.config(state_path=self.state)
        self.useFixture(config_fixture.Config(sxm_conf.CONF))
        nova_node.LOCAL_NODE_UUID = None
        self.addCleanup(setattr, nova_node, 'LOCAL_NODE_UUID', None)

    def start(self, pool):
        self.conf.config(group='sxm', connection_url=self.sim.url(pool),
                         connection_username=self.sim.username,
                         connection_password=self.sim.password,
                         connect_retries=1)
        drv = driver.SxmDriver(None)
        self.addCleanup(drv.cleanup_host, 'compute')
        drv.init_host('compute')
        nova_node.LOCAL_NODE_UUID = None  # as after a process restart
        return drv

    def identity(self):
        with open(os.path.join(self.state, 'compute_id')) as f:
            return f.read()

    def test_first_start_writes_the_xapi_host_uuid(self):
        drv = self.start('pool-a')
        self.assertEqual(drv._host.host_uuid, self.identity())
        self.assertEqual({drv._host.host_uuid: drv._host.host_name},
                         drv.get_nodenames_by_uuid())

    def test_a_restart_on_the_same_host_starts(self):
        first = self.start('pool-a')
        second = self.start('pool-a')
        self.assertEqual(first._host.host_uuid, self.identity())
        self.assertEqual(first._host.host_uuid, second._host.host_uuid)

    def test_pointed_at_another_host_refuses_to_start(self):
        first = self.start('pool-a')
        exc = self.assertRaises(exception.InvalidConfiguration,
                                self.start, 'pool-b')
        self.assertIn(first._host.host_uuid, str(exc))
        self.assertIn('connection_url', str(exc))
        self.assertEqual(first._host.host_uuid, self.identity())
