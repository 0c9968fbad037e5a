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

"""The shared scenarios against real XCP-ng / XenServer pools.

Real Nova services in this process (the functional harness), two
nova-computes on the SXM driver: host1 manages the source pool
(SXM_LIVE_SOURCE_URL), host2 the destination pool (SXM_LIVE_DEST_URL).
Skipped, with the reason, unless the SXM_LIVE_* variables are set; see
README.rst.
"""

from nova_sxm.tests.functional import base
from nova_sxm.tests.functional import scenarios
from nova_sxm.tests.live import pools


class LiveScenariosTest(scenarios.CrossPoolScenarios,
                        base.SxmServicesTestCase):
    """Boot, live block migration with a data check, abort."""

    # No guest checker on a real pool: a snapshot's disk digests instead.
    checks = 'snapshot'

    @property
    def memory_mb(self):
        return int(self.pools.env.get('SXM_LIVE_MEMORY_MB') or 512)

    def pool_source(self):
        reason = pools.skip_reason()
        if reason:
            self.skipTest(reason)
        return pools.LivePools()
