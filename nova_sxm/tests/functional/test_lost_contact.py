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

"""The source pool goes silent mid-migration, then answers again.

host1's nova-compute talks to pool-a through a proxy that stops forwarding
(packets vanish, nothing is reset) for longer than the contact limit. The
migration runs on in XAPI; the driver keeps following its task instead of
recording a failure, and Nova ends up where XAPI did.
"""

import time

from tests.functional.sxm_core import tcpproxy

from nova_sxm.tests.functional import test_live_migration

MiB = test_live_migration.MiB
# Past contact_timeout plus one event.from and its grace: contact is lost.
FREEZE = 14.0


class LostContactTest(test_live_migration.LiveMigrationBase):

    def setUp(self):
        super().setUp()
        # Let each compute's stop wait for its driver's cleanup_host (XAPI
        # logouts through the proxy), inside the window where nova's
        # service fixture keeps the thread pools alive.
        self.flags(manager_shutdown_timeout=10,
                   graceful_shutdown_timeout=30)

    def start_sxm_compute(self, host, pool, **extra):
        if host == 'host1':
            self.proxy = self.useFixture(tcpproxy.FreezingProxy(
                self.pools.url(pool)))
            self.addCleanup(self.proxy.thaw)
            extra.update(connection_url=self.proxy.url, contact_timeout=5,
                         event_grace=1, call_timeout=5)
        return super().start_sxm_compute(host, pool, **extra)

    def test_migration_followed_through_a_silent_source(self):
        self.ctl['pool-a'].configure(bandwidth=256 * 1024)
        self.start_guest()
        self.migrate(True)
        self.poll(lambda: [
            m for m in self.api.api_get(
                '/servers/%s/migrations' % self.server['id']
            ).body['migrations'] if m['disk_processed_bytes']],
            what='disks moving')
        self.proxy.freeze()
        time.sleep(FREEZE)
        self.proxy.thaw()
        migration = self.wait_migration(self.server, ['completed', 'error'],
                                        timeout=180, ignore=self.earlier)
        self.assertEqual('completed', migration['status'])
        ref = self.assert_on('host2', 'pool-b', 'pool-a')
        self.assertIsNotNone(ref)
        self.stop_and_check(self.vm_uuid, ctl=self.ctl['pool-b'],
                            devices=('0', '4'), written=True)
        # Connections the freeze left half-open would make host1's session
        # logouts at shutdown wait out call_timeout each, past the window
        # in which nova's service fixture expects the shutdown to end.
        self.proxy.reset()
