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

"""Ctrl-C (SIGINT) and SIGTERM sent to a real ``sxm`` process mid-copy.

The simulator runs in the test; ``sxm`` is a separate process talking to
it over HTTP, as an operator's shell would run it. The migration network
is capped so that the copy lasts seconds; the signal is sent once the
migrate_send task reports progress.
"""

import signal

from sxm_core import cli
from tests.functional.sxm_core import base
from tests.functional.sxm_core import cliproc

MiB = base.MiB


class TestInterruptMigrate(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        self.vm, self.disks = self.make_vm(name='web')
        self.uuid = self.api.VM.get_uuid(self.vm)
        self.before = (self.vdi_set(), self.vdi_set(self.api_b))
        # 12 MiB to copy at 2 MiB/s; the guest's mirrored writes are slow
        # enough not to starve the copy.
        self.ctl.configure(bandwidth=2 * MiB)
        self.write(self.vm, rate=64 * 1024)
        self.wait_writes(self.vm)

    def start(self, *extra):
        return cliproc.Sxm(self, ['migrate', 'web', '--url',
                                  self.url('pool-a'), '--dest-url',
                                  self.url('pool-b'), '--tier', 'same']
                           + list(extra),
                           cliproc.environment(self.simfix.password))

    def assertCancelledCleanly(self, status, out, err):
        self.assertEqual(cli.EXIT_CANCELLED, status, out + err)
        self.assertNotIn('Traceback', err)
        messages = [line for line in err.splitlines()
                    if line.startswith('sxm: ')]
        self.assertEqual(1, len(messages), err)
        self.assertIn('sxm: Cancelled', messages[0])
        self.assertIn("VM 'web' keeps running on pool-a-host1", messages[0])
        self.assertEqual(messages[0], err.rstrip('\n').splitlines()[-1])
        # The source VM runs on its own host and disks; nothing new
        # anywhere; the task is gone.
        self.assertEqual('Running', self.api.VM.get_power_state(self.vm))
        self.assertEqual(self.host_a, self.api.VM.get_resident_on(self.vm))
        self.assertEqual(sorted(self.disks.values()), sorted(
            self.api.VBD.get_VDI(vbd)
            for vbd in self.api.VM.get_VBDs(self.vm)))
        self.assertEqual(self.before,
                         (self.vdi_set(), self.vdi_set(self.api_b)))
        self.assertIsNone(self.vm_in(self.uuid, self.api_b))
        self.assertEqual([], cliproc.tasks_named(self.api))
        self.stop_and_check(self.vm)

    def test_ctrl_c_mid_copy_cancels_the_migration(self):
        sxm = self.start()
        cliproc.wait_task(self, self.api, process=sxm)
        sxm.proc.send_signal(signal.SIGINT)
        self.assertCancelledCleanly(*sxm.finish())

    def test_a_second_ctrl_c_does_not_orphan_the_task(self):
        sxm = self.start()
        cliproc.wait_task(self, self.api, process=sxm)
        sxm.proc.send_signal(signal.SIGINT)
        sxm.wait_line('Cancelling', key='err')
        sxm.proc.send_signal(signal.SIGINT)
        sxm.wait_line('already being cancelled', key='err')
        status, out, err = sxm.finish()
        self.assertCancelledCleanly(status, out, err)

    def test_sigterm_cancels_too(self):
        sxm = self.start('--quiet')
        cliproc.wait_task(self, self.api, process=sxm)
        sxm.proc.send_signal(signal.SIGTERM)
        self.assertCancelledCleanly(*sxm.finish())
