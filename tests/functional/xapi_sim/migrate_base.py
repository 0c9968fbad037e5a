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

"""What the Storage XenMotion tests share: two logged-in pools, VMs with
pre-filled disks and a writing guest, migrations, and the invariants a
failed migration must leave behind."""

import random
import xmlrpc.client

from tests.functional import simhelpers
from tests.functional.xapi_sim import base

MiB = base.MiB
BLOCK = base.BLOCK
NULL = base.NULL
topology_with = simhelpers.topology_with


def decode_result(result):
    """A task ``result`` (one XML-RPC <value>) as a Python value."""
    (value,), _ = xmlrpc.client.loads(
        '<methodResponse><params><param>%s</param></params>'
        '</methodResponse>' % result)
    return value


class MigrateTestCase(simhelpers.TwoPoolsTestCase, base.SimulatorTestCase):
    """pool-a (``api``, ``ctl``) and pool-b (``api_b``, ``ctl_b``).

    A subclass may set ``topology`` to run another simulator layout.
    """

    def setUp(self):
        super().setUp()
        self.net_a = self.network()
        self.net_b = self.network(self.api_b)

    # -- topology -----------------------------------------------------------

    def ext(self, api=None):
        return self.sr_named('Local storage (ext)', api)

    def lvm(self, api=None):
        return self.sr_named('Local storage (lvm)', api)

    def dest_b(self):
        """pool-b's host.migrate_receive: a cross-pool destination."""
        return self.api_b.host.migrate_receive(self.host_b, self.net_b, {})

    def dest_a(self):
        """pool-a's own host.migrate_receive: an in-pool destination."""
        return self.api.host.migrate_receive(self.host_a, self.net_a, {})

    # -- VMs and disks -------------------------------------------------------

    def prefill(self, vdi, blocks, seed, pool='pool-a'):
        """Write random data into every other 64 KiB block (0, 2, 4, ...).

        Holes between the blocks make each block its own copy run, so a
        migration's copy reports progress (and notices a cancel) per block.
        """
        rnd = random.Random(seed)
        disk = self.disk(vdi, pool)
        for i in range(blocks):
            disk.write(2 * i * BLOCK, rnd.randbytes(BLOCK))

    def make_vm(self, disks, vif=True, start=True, name='vm'):
        """A VM with one disk per (sr, size, prefilled blocks) spec.

        Disks get userdevice 0, 1, ... in order; with ``vif`` the VM has a
        VIF (device 0) on pool-a's network with a known other_config.
        Returns (vm, [vdi...], vif or None).
        """
        vm = self.create_vm(name=name)
        vdis = []
        for i, (sr, size, blocks) in enumerate(disks):
            vdi = self.create_vdi(sr, size, name='%s-disk%d' % (name, i))
            if blocks:
                self.prefill(vdi, blocks, seed='%s-%d' % (name, i))
            self.create_vbd(vm, vdi, str(i))
            vdis.append(vdi)
        vif_ref = None
        if vif:
            vif_ref = self.create_vif(
                vm, self.net_a, other_config={'owner': name, 'k': 'v'})
        if start:
            self.api.VM.start(vm, False, False)
        return vm, vdis, vif_ref

    # -- a writing VM and its move to pool-b ---------------------------------

    def writing_vm(self, vif=True):
        """A VM writing to a small thin disk and a larger thick one.

        Returns (vm, small VDI, large VDI, VIF or None).
        """
        vm, (small, large), vif_ref = self.make_vm(
            [(self.ext(), 8 * MiB, 32), (self.lvm(), 16 * MiB, 32)],
            vif=vif)
        self.write(vm, ['0', '1'])
        self.wait_writes(vm)
        return vm, small, large, vif_ref

    def to_ext_b(self, *vdis):
        """A vdi_map sending each of ``vdis`` to pool-b's ext SR."""
        return dict.fromkeys(vdis, self.ext(self.api_b))

    def slow_migration_to_b(self):
        """A writing VM's migration to pool-b at 2 MiB/s, under way.

        Returns (vm, small, large, vif, task, the VM's state before).
        """
        vm, small, large, vif = self.writing_vm()
        before = self.state(vm)
        self.ctl.configure(bandwidth=2 * MiB)
        task = self.migrate_async(vm, self.dest_b(),
                                  self.to_ext_b(small, large),
                                  {vif: self.net_b})
        self.wait_progress(task)
        return vm, small, large, vif, task, before

    # -- snapshots of state ---------------------------------------------------

    def state(self, vm):
        """What a failed migration must leave as it was."""
        rec = self.api.VM.get_record(vm)
        vbds = {}
        for vbd in rec['VBDs']:
            vrec = self.api.VBD.get_record(vbd)
            vbds[vbd] = (vrec['VDI'], vrec['currently_attached'])
        return {'uuid': rec['uuid'], 'power_state': rec['power_state'],
                'resident_on': rec['resident_on'], 'vbds': vbds,
                'vifs': sorted(rec['VIFs']),
                'vdis_a': self.vdi_set(), 'vdis_b': self.vdi_set(self.api_b)}

    def assertUnchanged(self, vm, before):
        """Nothing moved: the VM runs at home on its own disks."""
        after = self.state(vm)
        self.assertEqual('Running', after['power_state'])
        self.assertEqual(self.host_a, after['resident_on'])
        self.assertEqual(before['vbds'], after['vbds'])
        self.assertEqual(before['vifs'], after['vifs'])
        self.assertEqual(before['vdis_a'], after['vdis_a'],
                         'VDIs were left behind (or lost) in pool-a')
        self.assertEqual(before['vdis_b'], after['vdis_b'],
                         'VDIs were left behind in pool-b')
        self.assertIsNone(self.vm_in(before['uuid'], self.api_b),
                          'a VM with the migrating uuid is in pool-b')

    def assertRolledBack(self, vm, before, writing=True):
        """After a failed migration: nothing moved, the guest still writes.

        Then its disks must hold exactly what it wrote.
        """
        self.assertUnchanged(vm, before)
        self.assertEqual([], self.ctl.call('faults'),
                         'the armed fault did not fire')
        if writing:
            self.wait_writes(vm)
        self.stop_and_check(vm)

    # -- migrations ---------------------------------------------------------

    def migrate_async(self, vm, dest, vdi_map, vif_map=None, api=None):
        api = api or self.api
        return api.Async.VM.migrate_send(vm, dest, True, vdi_map,
                                         vif_map or {}, {})

    def migrate(self, vm, dest, vdi_map, vif_map=None):
        """A migration that must succeed; returns the destination VM ref."""
        task = self.migrate_async(vm, dest, vdi_map, vif_map)
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'], rec['error_info'])
        self.assertEqual(1.0, rec['progress'])
        return decode_result(rec['result'])

    def migrate_fails(self, vm, dest, vdi_map, vif_map=None,
                      status='failure'):
        """A migration that must fail; returns its error_info."""
        task = self.migrate_async(vm, dest, vdi_map, vif_map)
        rec = self.wait_task(task)
        self.assertEqual(status, rec['status'], rec)
        self.assertEqual('', rec['result'])
        self.assertEqual([], rec['allowed_operations'])
        return rec['error_info']

    def wait_progress(self, task, above=0.0, api=None):
        """Wait until a pending task reports progress above ``above``."""
        api = api or self.api

        def moved():
            rec = api.task.get_record(task)
            if rec['status'] != 'pending':
                self.fail('task ended (%s %s) before progress passed %s'
                          % (rec['status'], rec['error_info'], above))
            return rec['progress'] > above
        self.poll(moved, interval=0.005, what='progress of %s' % task)
