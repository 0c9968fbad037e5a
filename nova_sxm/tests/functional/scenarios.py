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

"""Scenarios shared by simulated and real pools: the test bodies.

A concrete class mixes ``CrossPoolScenarios`` into
``base.SxmServicesTestCase`` and says where the pools come from
(``pool_source``): the simulator (``test_scenarios``) or real XCP-ng /
XenServer pools (``nova_sxm.tests.live``).

How data is proven to have arrived depends on what the pools allow:

* ``checks = 'guest'`` (simulator only): the guest writes to both disks
  all along, and the simulator's guest checker compares every disk with
  the exact image the writes imply.
* ``checks = 'snapshot'`` (what a real pool allows): a VM snapshot is
  taken before the migration; Storage XenMotion copies it with the VM.
  The sha256 of each of its disks, read with ``/export_raw_vdi`` (a
  halted copy, so its bytes cannot change), must be the same in the
  destination pool as in the source pool. The guest's own writes during
  the migration are not checked (a real guest cannot say what it wrote).
"""

import math
import random
import struct

from nova_sxm.tests.functional import base

MiB = base.MiB
GiB = 1024 * MiB


def vhd_virtual_size(data):
    """The virtual size in a VHD footer (the last 512 bytes)."""
    return struct.unpack('>Q', data[-512 + 48:-512 + 56])[0]


class ScenarioHelpers(object):
    """What the scenarios need, for simulated and real pools alike."""

    checks = 'guest'
    memory_mb = 256

    # -- what differs between simulated and real pools ----------------------

    def scenario_image(self):
        if self.pools.simulated:
            return random.Random(3).randbytes(4 * MiB), 'raw'
        return self.pools.image_data(), self.pools.image_format

    def start_load(self, vm_uuid, pool='pool-a'):
        """Simulated guests write to both disks; real ones run their OS."""
        if self.pools.simulated:
            self.write(vm_uuid, ('0', '4'), rate=16 * 1024, seed=5,
                       ctl=self.ctl[pool])
            self.wait_writes(vm_uuid, 5, ctl=self.ctl[pool])

    def slow_link(self):
        """Keep the copy in flight long enough to abort it (simulator)."""
        if self.pools.simulated:
            self.ctl['pool-a'].configure(bandwidth=512 * 1024)

    # -- helpers ------------------------------------------------------------

    def managed_vdis(self, pool):
        """VDIs a client sees: base copies (managed false) are xapi's."""
        api = self.xapi[pool]
        return {ref for ref, rec in api.VDI.get_all_records().items()
                if rec['managed']}

    def boot(self):
        data, fmt = self.scenario_image()
        size = vhd_virtual_size(data) if fmt == 'vhd' else len(data)
        image = self.make_image(data, disk_format=fmt)
        flavor = self._create_flavor(
            memory_mb=self.memory_mb, vcpu=1,
            disk=max(1, math.ceil(size / GiB)), ephemeral=1)
        server = self._create_server(image_uuid=image, flavor_id=flavor,
                                     host='host1', networks='none')
        if not self.pools.simulated:
            # Real pools outlive the test: leave nothing behind.
            self.addCleanup(self._delete_server, server)
        _, rec = self.vm_of(server, 'pool-a')
        return server, rec['uuid'], data

    def migrate_to_host2(self, server):
        earlier = self.migration_ids(server)
        self.api.post_server_action(server['id'], {
            'os-migrateLive': {'host': 'host2', 'block_migration': True}})
        return earlier

    def on(self, server, host, pool, other):
        found = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual(host, found['OS-EXT-SRV-ATTR:host'])
        ref, rec = self.vm_of(server, pool)
        self.assertEqual('Running', rec['power_state'])
        self.assertEqual((None, None), self.vm_of(server, other))
        return ref, rec

    def checkpoint(self, server):
        """Before a migration: a snapshot's disk digests (or None)."""
        if self.checks != 'snapshot':
            return None
        api = self.xapi['pool-a']
        vm, _ = self.vm_of(server, 'pool-a')
        name = 'sxm-check-%s' % server['id']
        snap = api.VM.snapshot(vm, name)
        self.addCleanup(self.remove_snapshot, name)
        return name, self.snapshot_digests(snap, 'pool-a')

    def snapshot_digests(self, snap, pool):
        api = self.xapi[pool]
        out = {}
        for vbd in api.VM.get_VBDs(snap):
            rec = api.VBD.get_record(vbd)
            if rec['type'] == 'Disk' and rec['VDI'] != base.NULL:
                out[rec['userdevice']] = self.export_digest(
                    pool, api.VDI.get_uuid(rec['VDI']))
        return out

    def snapshot_named(self, name, pool):
        api = self.xapi[pool]
        found = [ref for ref in api.VM.get_by_name_label(name)
                 if api.VM.get_is_a_snapshot(ref)]
        return found[0] if found else None

    def remove_snapshot(self, name):
        for pool in base.POOLS:
            snap = self.snapshot_named(name, pool)
            if snap is None:
                continue
            api = self.xapi[pool]
            vdis = [api.VBD.get_VDI(v) for v in api.VM.get_VBDs(snap)
                    if api.VBD.get_type(v) == 'Disk']
            api.VM.destroy(snap)
            for vdi in vdis:
                if vdi != base.NULL:
                    api.VDI.destroy(vdi)

    def verify(self, vm_uuid, point, pool):
        """Every byte arrived in ``pool`` (see the module's docstring)."""
        if point is not None:
            name, before = point
            snap = self.snapshot_named(name, pool)
            self.assertIsNotNone(snap, 'snapshot %s not in %s'
                                 % (name, pool))
            self.assertEqual(set(before), {'0', '4'})
            self.assertEqual(before, self.snapshot_digests(snap, pool))
        if self.pools.simulated:
            self.stop_and_check(vm_uuid, ctl=self.ctl[pool],
                                devices=('0', '4'), written=True)


class CrossPoolScenarios(ScenarioHelpers):
    """Boot; live block migration to the other pool; abort."""

    def test_boot(self):
        server, vm_uuid, data = self.boot()
        vm, rec = self.on(server, 'host1', 'pool-a', 'pool-b')
        disks = self.disks_of(vm, 'pool-a')
        self.assertEqual({'0', '4'}, set(disks))
        if self.pools.simulated:
            # A real guest changes its root disk as it boots: the image
            # bytes are checked where nothing runs on them.
            root = self.export('pool-a', disks['0']['uuid'])
            self.assertEqual(data, root[:len(data)])

    def test_live_block_migration_keeps_data(self):
        server, vm_uuid, _ = self.boot()
        self.start_load(vm_uuid)
        point = self.checkpoint(server)
        earlier = self.migrate_to_host2(server)
        self.wait_migration(server, ['completed'], ignore=earlier,
                            timeout=3600)
        vm, _ = self.on(server, 'host2', 'pool-b', 'pool-a')
        self.assertEqual({'0', '4'}, set(self.disks_of(vm, 'pool-b')))
        self.verify(vm_uuid, point, 'pool-b')

    def test_abort_leaves_source_running(self):
        server, vm_uuid, _ = self.boot()
        self.start_load(vm_uuid)
        before_b = self.managed_vdis('pool-b')
        self.slow_link()
        earlier = self.migrate_to_host2(server)
        migration = self.poll(lambda: [
            m for m in self.api.api_get(
                '/servers/%s/migrations' % server['id']
            ).body['migrations'] if m['disk_processed_bytes']],
            timeout=600, what='the copy to start')[0]
        self.api.api_delete('/servers/%s/migrations/%s'
                            % (server['id'], migration['id']))
        ended = self.wait_migration(server, ['cancelled', 'completed'],
                                    ignore=earlier, timeout=3600)
        if ended['status'] == 'completed' and not self.pools.simulated:
            self.skipTest('the migration ended before the abort reached '
                          'it: use a bigger SXM_LIVE_IMAGE')
        self.assertEqual('cancelled', ended['status'])
        self.on(server, 'host1', 'pool-a', 'pool-b')
        self.assertEqual(before_b, self.managed_vdis('pool-b'))
        if self.pools.simulated:
            self.stop_and_check(vm_uuid, ctl=self.ctl['pool-a'],
                                devices=('0', '4'), written=True)
