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

"""The driver's XAPI connection: what its drivers share in one process."""

import threading

from oslo_config import fixture as config_fixture
import testtools

from nova_sxm import conf as sxm_conf
from nova_sxm.virt import session
from sxm_core import errors

HOST = 'a1b2c3d4-0000-4000-8000-000000000001'


class SharedSlotsTest(testtools.TestCase):
    """Every driver of a process counts against one storage-migration limit.

    xapi refuses a fourth storage migration from a host; a process with
    several drivers (several nova-compute services in a test, or a driver
    rebuilt by a service restart) must not allow ``limit`` per driver.
    """

    def setUp(self):
        super().setUp()
        fix = self.useFixture(config_fixture.Config(sxm_conf.CONF))
        fix.config(group='sxm', connection_url='https://pool.example.org/',
                   connection_password='pw',
                   max_concurrent_storage_migrations=1)

    def connection(self):
        conn = session.XapiConnection(session.Settings.from_conf())
        self.addCleanup(conn.close)
        return conn

    def test_two_connections_share_the_limit(self):
        first, second = self.connection(), self.connection()
        refuse_at_once = threading.Event()
        refuse_at_once.set()
        with first.migrator().slots.acquire(HOST):
            # The only slot of HOST is held by the other driver.
            self.assertRaises(errors.Cancelled,
                              second.migrator().slots.acquire, HOST,
                              refuse_at_once)
        # Released: the second driver gets it.
        with second.migrator().slots.acquire(HOST, refuse_at_once):
            pass

    def test_limit_comes_from_the_option(self):
        self.assertEqual(1, self.connection().migrator().slots.limit)
