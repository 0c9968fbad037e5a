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

"""The source nova-compute killed (SIGKILL) during a cross-pool live block
migration, then started again by ``cloud.sh up``.

Whatever XAPI did meanwhile, the end is where Nova has the server: on
compute-a, ACTIVE, its VM running in pool-a only, pool-b clean, every
byte the guest wrote there, the migration record ``error``, and the
compute up. Two ways there: the driver's watchdog process cancels the
migration as soon as nova-compute dies; or, when the watchdog dies with it
(a whole host going down), the migration completes in pool-b and the
restarted compute brings the VM back.
"""

import os
import signal
import time

import cloudhelpers
from test_cloud import CLOUD
from test_cloud import MiB

COMPUTE_LOG = os.path.join(CLOUD, 'logs', 'nova-compute-a.log')


def _children(pid, marker):
    """Pids of processes whose parent is ``pid`` and cmdline has marker."""
    out = []
    for child in cloudhelpers.pids():
        fields = cloudhelpers.stat(child)
        try:
            with open('/proc/%s/cmdline' % child, 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode()
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if fields is not None and int(fields[1]) == pid and marker in cmd:
            out.append(child)
    return out


class KillComputeTest(cloudhelpers.ServiceKillTestCase):

    def compute_a_up(self):
        found = self.os('compute', 'service', 'list', '--service',
                        'nova-compute', '--host', 'compute-a', '-f', 'json')
        return found and found[0]['State'] == 'up' and \
            found[0]['Status'] == 'enabled'

    def start_migration(self, name, bandwidth=256 * 1024, rate=MiB):
        server = self.boot(name)
        own = self.disks(server, 'pool-a')
        before_b = self.local_vdis('pool-b')
        vm = self.vm_uuid(server, 'pool-a')
        for i, dev in enumerate(sorted(own)):
            self.ctl['pool-a'].workload_start(vm, dev, pattern='uniform',
                                              rate=rate, block_size=4096,
                                              seed=1 + i)
        self.wait_writes(server, 'pool-a')
        # A slow link: the copy takes minutes at the default.
        self.ctl['pool-a'].configure(bandwidth=bandwidth)
        self.addCleanup(self.ctl['pool-a'].configure, bandwidth=0)
        vm_uuid = self.vm_uuid(server, 'pool-a')
        self.os('server', 'migrate', '--live-migration',
                '--block-migration', '--host', 'compute-b', server)
        task = self.poll(lambda: self.moving_task(vm_uuid),
                         'the disks of %s moving' % server, interval=0.2)
        mig = self.in_progress(server)
        self.assertIsNotNone(mig)
        return server, own, before_b, vm_uuid, task, mig

    def kill_compute_a(self, with_watchdogs=False):
        pid = cloudhelpers.pid_of('nova-compute-a')
        watchdogs = _children(pid, 'sxm_core.fleet custodian')
        if with_watchdogs:
            # The whole host goes down: its watchdogs first, so that none
            # of them sees its owner die.
            for child in watchdogs:
                os.kill(child, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        self.poll(lambda: not cloudhelpers.alive(pid), 'nova-compute-a to die',
                  interval=0.1)
        return watchdogs

    def assert_home(self, server, own, before_b, vm_uuid, mig):
        """Where Nova has it: compute-a, pool-a; pool-b clean."""
        self.assertTrue(self.poll(self.compute_a_up, 'compute-a up'))
        self.poll(lambda: [m for m in self.migrations(server)
                           if m['Id'] == mig['Id']
                           and m['Status'] == 'error'],
                  'migration %s error' % mig['Id'])
        srv = self.wait_server(server)
        self.assertEqual('compute-a', srv['OS-EXT-SRV-ATTR:host'])

        def home():
            # Settled: the bring-back clears its marker just after the
            # VM arrived.
            ref, rec = self.vm_of(server, 'pool-a')
            return (rec and rec['power_state'] == 'Running'
                    and not rec['current_operations']
                    and 'nova-sxm-migration' not in rec['other_config']
                    and self.vm_of(server, 'pool-b') == (None, None))
        self.poll(home, 'the VM of %s running in pool-a only' % server)
        ref, rec = self.vm_of(server, 'pool-a')
        self.assertNotIn('nova-sxm-migration', rec['other_config'])
        # The cloud is shared: only this server's VDIs are looked at.
        self.assertEqual([], self.vdis_of(server, 'pool-b',
                                          self.local_vdis('pool-b')
                                          - before_b))
        api = self.xapi['pool-a']
        self.assertEqual([], [
            r for r, t in api.task.get_all_records().items()
            if t['name_label'] == 'Async.VM.migrate_send'
            and t['status'] in ('pending', 'cancelling')])
        pool_other = api.pool.get_other_config(api.pool.get_all()[0])
        self.assertNotIn('nova-sxm-migration/%s' % server, pool_other)
        self.wait_writes(server, 'pool-a')
        self.stop_and_check(server, 'pool-a', own)

    def vdis_of(self, server, pool, uuids):
        """Those of ``uuids`` that are the server's disks or their mirrors."""
        api = self.xapi[pool]
        out = []
        for uuid in sorted(uuids):
            rec = api.VDI.get_record(api.VDI.get_by_uuid(uuid))
            if rec['other_config'].get('nova_uuid') == server or \
                    'base_mirror' in rec['sm_config']:
                out.append((uuid, rec['name_label']))
        return out

    def log_since(self, offset):
        with open(COMPUTE_LOG) as f:
            f.seek(offset)
            return f.read()

    def test_1_watchdog_cancels_when_the_source_compute_dies(self):
        server, own, before_b, vm_uuid, task, mig = self.start_migration(
            'e2e-kill')
        watchdogs = self.kill_compute_a()
        self.assertEqual(1, len(watchdogs), 'one watchdog per migration')
        # The watchdog cancels at once; the compute is still down.
        self.poll(lambda: not cloudhelpers.alive(watchdogs[0]),
                  'the watchdog to end')
        self.assertIsNone(self.vm_of(server, 'pool-b')[0])
        self.assertEqual('Running',
                         self.vm_of(server, 'pool-a')[1]['power_state'])
        offset = os.path.getsize(COMPUTE_LOG)
        self.ensure_cloud()
        self.assert_home(server, own, before_b, vm_uuid, mig)
        self.assertIn('ended while its nova-compute was down',
                      self.log_since(offset))

    def test_2_copy_completed_while_compute_down_is_brought_back(self):
        # A link that finishes the copy in seconds, a guest that dirties
        # little: the copy completes while the compute is down.
        server, own, before_b, vm_uuid, task, mig = self.start_migration(
            'e2e-kill-host', bandwidth=2 * MiB, rate=64 * 1024)
        self.assertEqual(1, len(self.kill_compute_a(with_watchdogs=True)))
        self.poll(lambda: self.vm_of(server, 'pool-a')[0] is None and
                  self.vm_of(server, 'pool-b')[0] is not None,
                  'the migration to complete in XAPI')
        time.sleep(1)
        offset = os.path.getsize(COMPUTE_LOG)
        self.ensure_cloud()
        self.assert_home(server, own, before_b, vm_uuid, mig)
        text = self.log_since(offset)
        self.assertIn('completed while its nova-compute was down', text)
        self.assertIn('Brought the instance back', text)
