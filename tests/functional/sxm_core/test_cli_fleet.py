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

"""``sxm list``, ``watch``, ``cancel`` and ``drain`` as real processes.

A migration started by one ``sxm migrate`` process is listed, watched and
cancelled by others, as operators on different shells would; the
migration network is capped so that it lasts seconds.
"""

import json
import signal

from sxm_core import cli
from tests.functional.sxm_core import base
from tests.functional.sxm_core import cliproc
from tests.functional.sxm_core import test_cli_output

MiB = base.MiB
run = test_cli_output.run


class FleetTestCase(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        self.vm, self.disks = self.make_vm(name='web')
        self.uuid = self.api.VM.get_uuid(self.vm)
        self.before = (self.vdi_set(), self.vdi_set(self.api_b))
        self.env = cliproc.environment(self.simfix.password)
        self.ctl.configure(bandwidth=2 * MiB)
        self.write(self.vm, rate=64 * 1024)
        self.wait_writes(self.vm)

    def migrate_in_background(self):
        """A running ``sxm migrate web`` whose copy is under way."""
        sxm = cliproc.Sxm(self, ['migrate', 'web', '--url',
                                 self.url('pool-a'), '--dest-url',
                                 self.url('pool-b'), '--tier', 'same'],
                          self.env)
        task, record = cliproc.wait_task(self, self.api, process=sxm)
        return sxm, task, record

    def assertSourceIntact(self):
        self.assertEqual('Running', self.api.VM.get_power_state(self.vm))
        self.assertEqual(self.host_a, self.api.VM.get_resident_on(self.vm))
        self.assertEqual(self.before,
                         (self.vdi_set(), self.vdi_set(self.api_b)))
        self.assertIsNone(self.vm_in(self.uuid, self.api_b))
        self.assertEqual([], cliproc.tasks_named(self.api))
        self.stop_and_check(self.vm)

    def assertMoved(self):
        self.assertIsNone(self.vm_in(self.uuid, self.api))
        new_vm = self.vm_in(self.uuid, self.api_b)
        self.assertEqual('Running', self.api_b.VM.get_power_state(new_vm))
        self.stop_and_check(new_vm, ctl=self.ctl_b)


class TestList(FleetTestCase):

    def test_list_shows_a_migration_of_another_process(self):
        sxm, task, record = self.migrate_in_background()
        status, out, err = run(['list', '--url', self.url('pool-a')],
                               self.env)
        self.assertEqual(0, status, err)
        lines = out.splitlines()
        self.assertEqual(['TASK', 'VM', 'VM', 'UUID', 'HOST', 'PROGRESS',
                          'STATUS', 'AGE'], lines[0].split())
        row = [line for line in lines if record['uuid'] in line]
        self.assertEqual(1, len(row), out)
        fields = row[0].split()
        self.assertEqual([record['uuid'], 'web', self.uuid, 'pool-a-host1'],
                         fields[:4])
        self.assertRegex(fields[4], r'^\d+%$')
        self.assertEqual('pending', fields[5])

        status, out, err = run(['list', '--json', '--url',
                                self.url('pool-a')], self.env)
        self.assertEqual(0, status, err)
        doc = json.loads(out)
        [mig] = doc['migrations']
        self.assertEqual(record['uuid'], mig['task_uuid'])
        self.assertEqual(self.uuid, mig['vm_uuid'])
        self.assertEqual('web', mig['vm_name'])
        self.assertEqual('pool-a-host1', mig['host'])
        self.assertGreater(mig['progress'], 0)
        self.assertGreaterEqual(mig['age_seconds'], 0)
        sxm.proc.send_signal(signal.SIGINT)
        self.assertEqual(cli.EXIT_CANCELLED, sxm.finish()[0])
        self.assertSourceIntact()

    def test_an_empty_pool(self):
        status, out, err = run(['list', '--url', self.url('pool-b')],
                               self.env)
        self.assertEqual(0, status, err)
        self.assertIn('No storage migration is running', out)


class TestWatch(FleetTestCase):

    def test_watch_follows_the_migration_to_its_end(self):
        sxm, task, record = self.migrate_in_background()
        watcher = cliproc.Sxm(self, ['watch', 'web', '--url',
                                     self.url('pool-a')], self.env)
        status, out, err = watcher.finish()
        self.assertEqual(0, status, watcher.report())
        self.assertIn("Migration of VM 'web' (%s), task %s succeeded."
                      % (self.uuid, record['uuid']), out)
        self.assertNotIn('Traceback', err)
        self.assertEqual(0, sxm.finish()[0], sxm.report())
        self.assertMoved()

    def test_ctrl_c_detaches_without_cancelling(self):
        sxm, task, record = self.migrate_in_background()
        watcher = cliproc.Sxm(self, ['watch', record['uuid'], '--url',
                                     self.url('pool-a')], self.env)
        watcher.wait_line('Watching the migration', key='err')
        watcher.proc.send_signal(signal.SIGINT)
        status, out, err = watcher.finish()
        self.assertEqual(cli.EXIT_CANCELLED, status, watcher.report())
        self.assertIn('Detached', err)
        self.assertIn('not cancelled', err)
        self.assertNotIn('Traceback', err)
        # The migration went on, and ends well.
        self.assertEqual(0, sxm.finish()[0], sxm.report())
        self.assertMoved()

    def test_no_such_migration(self):
        status, out, err = run(['watch', 'web', '--url', self.url('pool-a')],
                               self.env)
        self.assertEqual(cli.EXIT_BAD_INPUT, status)
        self.assertRegex(err, r"^sxm: No storage migration 'web' is running")


class TestCancel(FleetTestCase):

    def test_cancel_leaves_the_source_running(self):
        sxm, task, record = self.migrate_in_background()
        status, out, err = run(['cancel', 'web', '--url',
                                self.url('pool-a')], self.env)
        self.assertEqual(0, status, out + err)
        self.assertIn("Cancelled the migration of VM 'web' (%s), task %s; "
                      'the source VM is Running.'
                      % (self.uuid, record['uuid']), out)
        # The process that started it reports the cancel as a failure.
        m_status, m_out, m_err = sxm.finish()
        self.assertEqual(cli.EXIT_FAILED, m_status, sxm.report())
        self.assertIn('cancelled', m_err)
        self.assertNotIn('Traceback', m_err)
        self.assertSourceIntact()


class TestDrain(base.CoreTestCase):

    topology = base.topology_with({'pool-b': [
        {'name': 'small', 'type': 'lvm', 'size': '64MiB'}]})

    def test_drain_moves_what_fits_and_reports_the_rest(self):
        small = (('0', 'system', base.LVM, 8 * MiB, 2 * MiB),)
        vms = {}
        for name in ('vm-a', 'vm-b'):
            vms[name] = self.make_vm(name=name, disks=small)[0]
        vms['vm-big'] = self.make_vm(name='vm-big', disks=(
            ('0', 'system', base.LVM, 128 * MiB, 2 * MiB),))[0]
        uuids = {n: self.api.VM.get_uuid(r) for n, r in vms.items()}
        for ref in vms.values():
            self.write(ref, devices=('0',), rate=64 * 1024)
        status, out, err = run(
            ['drain', 'pool-a-host1', '--url', self.url('pool-a'),
             '--dest-url', self.url('pool-b'), '--sr', 'small',
             '--concurrency', '2'],
            cliproc.environment(self.simfix.password),
            timeout=cliproc.DEADLINE * 4)
        self.assertEqual(cli.EXIT_FAILED, status, out + err)
        self.assertNotIn('Traceback', err)
        lines = out.splitlines()
        self.assertEqual(['VM', 'OUTCOME', 'TIME', 'BYTES', 'MESSAGE'],
                         lines[0].split())
        rows = {line.split()[0]: line for line in lines[2:5]}
        self.assertEqual(['vm-a', 'vm-b', 'vm-big'], sorted(rows))
        for name in ('vm-a', 'vm-b'):
            self.assertEqual('moved', rows[name].split()[1], out)
        self.assertEqual('failed', rows['vm-big'].split()[1], out)
        self.assertIn("SR 'small'", rows['vm-big'])
        self.assertIn('2 of 3 VM(s) moved off host pool-a-host1.', out)
        # One progress line per VM at least, and each VM's end, on stderr.
        for name in ('vm-a', 'vm-b'):
            self.assertRegex(err, r'(?m)^%s: (mirror disk 0|memory|done) +'
                                  r'\d+%% ' % name)
            self.assertRegex(err, r'(?m)^%s: moved in ' % name)
        self.assertRegex(err, r'(?m)^vm-big: FAILED: ')
        for name in ('vm-a', 'vm-b'):
            new_vm = self.vm_in(uuids[name], self.api_b)
            self.assertEqual('Running',
                             self.api_b.VM.get_power_state(new_vm))
            self.assertIsNone(self.vm_in(uuids[name], self.api))
            self.stop_and_check(new_vm, ctl=self.ctl_b, devices=('0',))
        self.assertEqual('Running',
                         self.api.VM.get_power_state(vms['vm-big']))
        self.assertEqual(self.host_a,
                         self.api.VM.get_resident_on(vms['vm-big']))
        self.stop_and_check(vms['vm-big'], devices=('0',))

    def test_ctrl_c_cancels_the_running_and_skips_the_rest(self):
        disks = (('0', 'system', base.LVM, 16 * MiB, 8 * MiB),)
        vms = {name: self.make_vm(name=name, disks=disks)[0]
               for name in ('vm-a', 'vm-b', 'vm-c')}
        before = (self.vdi_set(), self.vdi_set(self.api_b))
        self.ctl.configure(bandwidth=2 * MiB)
        for ref in vms.values():
            self.write(ref, devices=('0',), rate=64 * 1024)
        sxm = cliproc.Sxm(self, ['drain', 'pool-a-host1', '--url',
                                 self.url('pool-a'), '--dest-url',
                                 self.url('pool-b'), '--concurrency', '1'],
                          cliproc.environment(self.simfix.password))
        cliproc.wait_task(self, self.api, process=sxm)
        sxm.proc.send_signal(signal.SIGINT)
        status, out, err = sxm.finish()
        self.assertEqual(cli.EXIT_CANCELLED, status, sxm.report())
        self.assertNotIn('Traceback', err)
        self.assertIn('Cancelling the running migrations', err)
        outcomes = {line.split()[0]: line.split()[1]
                    for line in out.splitlines()[2:5]}
        self.assertEqual({'vm-a': 'cancelled', 'vm-b': 'skipped',
                          'vm-c': 'skipped'}, outcomes, out)
        self.assertEqual(before, (self.vdi_set(), self.vdi_set(self.api_b)))
        self.assertEqual([], cliproc.tasks_named(self.api))
        for ref in vms.values():
            self.assertEqual('Running', self.api.VM.get_power_state(ref))
            self.assertEqual(self.host_a, self.api.VM.get_resident_on(ref))
            self.stop_and_check(ref, devices=('0',))
