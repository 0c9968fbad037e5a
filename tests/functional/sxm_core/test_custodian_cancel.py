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

"""The watchdog of a service that owns its migrations.

A real parent process (a small service stand-in running the core's
``Migrator`` with ``fleet.owner_custodian_for``) starts a cross-pool
migration and is killed with SIGKILL mid-copy. Its custodian, a real
child process, must cancel the migration: the source VM keeps running on
its own disks with every byte the guest wrote, nothing is left in the
destination pool (no VM, no VDI, no session of the dead service), the
task is destroyed and the owner's marker removed from the source VM.
"""

import json
import os
import signal
import sys

from tests.functional.sxm_core import base
from tests.functional.sxm_core import cliproc

MiB = base.MiB
BANDWIDTH = 2 * MiB
MARKER = 'test-owner-migration'

# The service stand-in: migrates ``vm`` with an owner's custodian and
# prints the custodian's pid; its settings come on stdin.
PARENT = r'''
import json
import sys
from sxm_core import fleet, migrate, sessions
cfg = json.loads(sys.stdin.readline())
src = sessions.SessionPool(cfg['a'], cfg['user'], cfg['password'])
dst = sessions.SessionPool(cfg['b'], cfg['user'], cfg['password'])
inner = fleet.owner_custodian_for(src, dst, marker_key=cfg['marker'])


def custodian(task, token, the_plan=None):
    guard = inner(task, token, the_plan)
    print('custodian %d' % guard.pid, flush=True)
    return guard


m = migrate.Migrator(src, dst, custodian=custodian)
plan, problems = m.plan(cfg['vm'], tier='same')
try:
    m.migrate(plan)
except Exception as exc:
    print('ended %s' % type(exc).__name__, flush=True)
    sys.exit(3)
finally:
    src.close()
    dst.close()
print('ended ok', flush=True)
'''


class Parent(cliproc.Process):
    """The stand-in service as a real process."""

    name = 'the service stand-in'

    def __init__(self, test, cfg):
        super().__init__(test, [sys.executable, '-c', PARENT],
                         cliproc.environment(), stdin=json.dumps(cfg) + '\n')


class OwnerDeathTest(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        self.ctl.configure(bandwidth=BANDWIDTH)
        self.vm, self.vdis = self.make_vm(name='web')
        self.uuid = self.api.VM.get_uuid(self.vm)
        self.api.VM.add_to_other_config(self.vm, MARKER, '{"public": 1}')
        self.disks_before = self.vdi_uuids(self.vm)
        self.write(self.vm, rate=MiB // 4)
        self.wait_writes(self.vm)
        self.vdis_b = self.managed_vdis(self.api_b)
        self.created_b = self.spy_sessions('pool-b')

    def vdi_uuids(self, vm):
        return sorted(self.api.VDI.get_uuid(self.api.VBD.get_VDI(vbd))
                      for vbd in self.api.VM.get_VBDs(vm)
                      if self.api.VBD.get_type(vbd) == 'Disk')

    def managed_vdis(self, api):
        return {rec['uuid'] for rec in api.VDI.get_all_records().values()
                if rec['managed']}

    def start_parent(self):
        parent = Parent(self, {
            'a': self.url('pool-a'), 'b': self.url('pool-b'),
            'user': self.simfix.username, 'password': self.simfix.password,
            'vm': 'web', 'marker': MARKER})
        pid = int(parent.wait_line(r'custodian (\d+)').group(1))
        self.addCleanup(self._reap, pid)
        task, _ = cliproc.wait_task(self, self.api, above=0.1,
                                    process=parent)
        return parent, pid, task

    def _reap(self, pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def alive(self, pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie is not alive: the custodian's parent is gone.
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split(')')[-1].split()[0] != 'Z'

    def assertCancelledAndClean(self, custodian):
        self.poll(lambda: not cliproc.tasks_named(self.api),
                  what='the migration task to be cancelled and destroyed')
        self.poll(lambda: not self.alive(custodian),
                  what='the custodian to exit')
        rec = self.api.VM.get_record(self.vm)
        self.assertEqual('Running', rec['power_state'])
        self.assertEqual({}, rec['current_operations'])
        self.assertNotIn(MARKER, rec['other_config'])
        self.assertEqual(self.disks_before, self.vdi_uuids(self.vm))
        self.assertIsNone(self.vm_in(self.uuid, self.api_b))
        self.assertEqual(self.vdis_b, self.managed_vdis(self.api_b))
        self.assertEqual(set(), set(self.created_b)
                         & self.sessions('pool-b'))
        self.stop_and_check(self.vm)

    def test_parent_killed_mid_copy_cancels_the_migration(self):
        parent, custodian, task = self.start_parent()
        self.assertTrue(self.alive(custodian))
        parent.proc.kill()
        parent.proc.wait()
        self.assertCancelledAndClean(custodian)

    def test_custodian_terminated_with_its_service_cancels(self):
        # systemd stops every process of the service's cgroup: the
        # custodian gets SIGTERM while its parent still runs.
        parent, custodian, task = self.start_parent()
        os.kill(custodian, signal.SIGTERM)
        parent.wait_line(r'ended MigrationCancelled')
        self.assertEqual(3, parent.finish()[0])
        self.assertCancelledAndClean(custodian)

    def test_parent_that_finishes_keeps_its_migration(self):
        self.ctl.configure(bandwidth=16 * MiB)
        parent, custodian, task = self.start_parent()
        parent.wait_line(r'ended ok')
        self.poll(lambda: not self.alive(custodian),
                  what='the custodian to exit')
        self.assertEqual([], cliproc.tasks_named(self.api))
        new_vm = self.vm_in(self.uuid, self.api_b)
        self.assertIsNotNone(new_vm)
        self.assertEqual('Running', self.api_b.VM.get_power_state(new_vm))
        self.stop_and_check(new_vm, ctl=self.ctl_b)
