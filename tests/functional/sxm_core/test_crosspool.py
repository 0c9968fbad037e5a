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

"""A VDI copied from pool-a into a new VDI of pool-b (sxm_core.crosspool).

Real ``SessionPool``s and XAPI's HTTP handlers of the simulator move the
bytes; the test checks both disks through its own sessions' raw
``/export_raw_vdi`` by sha256, and what is left in each pool.
"""

import hashlib
import logging
import os
import random
import signal
import subprocess
import sys
import uuid as uuidlib

import fixtures
import XenAPI

from sxm_core import crosspool
from tests.functional.sxm_core import base

MiB = base.MiB
SMALL_LVM = 'Small lvm'
SMALL_EXT = 'Small ext'
ISO = 'ISO library'
# Known data at several offsets of a 64 MiB disk: the rest is never
# written (holes), so only three 2 MiB blocks hold data.
PIECES = ((0, 1 * MiB), (20 * MiB + 12345, 5000),
          (64 * MiB - 4096, 4096))

CHILD = '''
import os, signal, sys
from sxm_core import crosspool, sessions
user, password = os.environ['SIM_USER'], os.environ['SIM_PASSWORD']
src = sessions.SessionPool(sys.argv[1], user, password)
dst = sessions.SessionPool(sys.argv[2], user, password)

def created(uuid):
    print(uuid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

crosspool.copy_vdi(src, sys.argv[3], dst, sys.argv[4],
                   spool_dir=sys.argv[5], on_created=created)
'''


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class TestCrossPoolCopy(base.CoreTestCase):

    topology = base.topology_with({'pool-b': [
        {'name': SMALL_LVM, 'type': 'lvm', 'size': '16MiB'},
        {'name': SMALL_EXT, 'type': 'ext', 'size': '24MiB'},
        {'name': ISO, 'type': 'iso', 'size': '1GiB'},
    ]})

    def setUp(self):
        super().setUp()
        self.src = self.pool('pool-a')
        self.dst = self.pool('pool-b')
        self.spool = self.useFixture(fixtures.TempDir()).path
        self.log = self.useFixture(fixtures.FakeLogger(
            name='sxm_core.crosspool', level=logging.INFO))

    # -- helpers --------------------------------------------------------------

    def source_vdi(self, size=64 * MiB, pieces=PIECES, sr=base.EXT,
                   seed=1, name='volume'):
        """A pool-a VDI holding random bytes at ``pieces``; (ref, image)."""
        rng = random.Random(seed)
        image = bytearray(size)
        vdi = self.create_vdi(self.sr_named(sr), size, name)
        for offset, length in pieces:
            image[offset:offset + length] = rng.randbytes(length)
        # Written through XAPI's raw import, which skips zero chunks: the
        # holes stay unallocated.
        self.import_vdi(vdi, bytes(image))
        return vdi, bytes(image)

    def uuid_of(self, vdi, api=None):
        return (api or self.api).VDI.get_uuid(vdi)

    def copy(self, vdi, sr_name=base.EXT, **kwargs):
        kwargs.setdefault('spool_dir', self.spool)
        return crosspool.copy_vdi(
            self.src, self.uuid_of(vdi), kwargs.pop('destination', self.dst),
            kwargs.pop('sr_uuid', None) or self.sr_uuid(sr_name, self.api_b),
            **kwargs)

    def in_b(self, uuid):
        try:
            return self.api_b.VDI.get_by_uuid(uuid)
        except XenAPI.Failure as exc:
            self.assertEqual(['UUID_INVALID', 'VDI', uuid], exc.details)
            return None

    def copies_in_b(self):
        return [rec['uuid'] for rec in
                self.api_b.VDI.get_all_records().values()
                if crosspool.COPY_OF in rec['other_config']]

    def tasks_labelled(self, label, api):
        return [t for t in api.task.get_all()
                if api.task.get_name_label(t) == label]

    def assertNothingLeft(self, before_b, label='openstack-sxm'):
        self.assertEqual(before_b, self.vdi_set(self.api_b))
        self.assertEqual([], self.copies_in_b())
        self.assertEqual([], os.listdir(self.spool))
        for api in (self.api, self.api_b):
            self.assertEqual([], self.tasks_labelled(label, api))

    # -- copies ---------------------------------------------------------------

    def test_sparse_copy_is_verified_and_stays_sparse(self):
        vdi, image = self.source_vdi()
        src_uuid = self.uuid_of(vdi)
        seen, created = [], []

        def on_created(uuid):
            # Before a byte is sent: the new VDI exists, all zeros.
            new = self.in_b(uuid)
            created.append((uuid, sha256(self.export_vdi(
                new, 'pool-b', self.session_b))))

        result = self.copy(vdi, progress=lambda *a: seen.append(a),
                           on_created=on_created, label='test-copy')
        new = self.in_b(result.vdi_uuid)
        self.assertIsNotNone(new)
        self.assertEqual([(result.vdi_uuid, sha256(bytes(64 * MiB)))],
                         created)
        # The bytes: equal on both sides, and the digest is the disk's.
        self.assertEqual(sha256(image), result.digest)
        self.assertEqual(sha256(image), sha256(self.export_vdi(vdi)))
        self.assertEqual(sha256(image), sha256(self.export_vdi(
            new, 'pool-b', self.session_b)))
        rec = self.api_b.VDI.get_record(new)
        self.assertEqual(str(64 * MiB), rec['virtual_size'])
        self.assertEqual(64 * MiB, result.virtual_size)
        self.assertEqual(self.sr_uuid(base.EXT, self.api_b), result.sr_uuid)
        self.assertEqual(self.sr_uuid(base.EXT, self.api_b),
                         self.api_b.SR.get_uuid(rec['SR']))
        self.assertEqual(('volume', 'user', False, False),
                         (rec['name_label'], rec['type'], rec['sharable'],
                          rec['read_only']))
        self.assertEqual({crosspool.COPY_OF: src_uuid}, rec['other_config'])
        # Sparse: three 2 MiB blocks on the wire and in the new VDI.
        self.assertLess(result.sent_bytes, 8 * MiB)
        self.assertGreater(result.sent_bytes, 3 * 2 * MiB)
        self.assertEqual(result.sent_bytes, result.received_bytes)
        self.assertLess(int(rec['physical_utilisation']), 8 * MiB)
        self.assertGreater(result.verify_bytes, 3 * 2 * MiB)
        # Progress: each phase in order, ending at done == total.
        phases = [p for p, _, _ in seen]
        self.assertEqual(list(crosspool.PHASES),
                         sorted(set(phases), key=phases.index))
        for phase in crosspool.PHASES:
            mine = [(d, t) for p, d, t in seen if p == phase]
            self.assertEqual(0, mine[0][0])
            self.assertEqual(mine[-1][0], mine[-1][1])
            done = [d for d, _ in mine]
            self.assertEqual(sorted(done), done)
            self.assertTrue(all(d <= t for d, t in mine))
        self.assertEqual([('import', result.received_bytes,
                           result.received_bytes)],
                         [s for s in seen if s[0] == 'import'][-1:])
        # The source is as it was; the tasks are gone.
        self.assertEqual(sha256(image), sha256(self.export_vdi(vdi)))
        self.assertEqual({}, self.api.VDI.get_other_config(vdi))
        for api in (self.api, self.api_b):
            self.assertEqual([], self.tasks_labelled('test-copy', api))
        self.assertEqual([], os.listdir(self.spool))
        # The log: every 10% of each phase, by VDI uuid, never a URL.
        lines = self.log.output.splitlines()
        for phase in crosspool.PHASES:
            self.assertTrue([line for line in lines
                             if ': %s 100%% (' % phase in line], lines)
        self.assertTrue(all(src_uuid in line and result.vdi_uuid in line
                            for line in lines if '%' in line), lines)
        for secret in (self.src.url, self.dst.url, 'session_id',
                       'OpaqueRef'):
            self.assertNotIn(secret, self.log.output)

    def test_thick_to_thick_keeps_names_and_sharable(self):
        vdi, image = self.source_vdi(size=16 * MiB, sr=base.LVM,
                                     pieces=((3 * MiB, 2 * MiB + 7),),
                                     seed=2)
        self.api.VDI.set_sharable(vdi, True)
        result = self.copy(vdi, base.LVM, name_label='volume-1234',
                           name_description='moved',
                           other_config={'cinder_volume_id': '1234'})
        new = self.in_b(result.vdi_uuid)
        rec = self.api_b.VDI.get_record(new)
        self.assertEqual(('volume-1234', 'moved', True),
                         (rec['name_label'], rec['name_description'],
                          rec['sharable']))
        self.assertEqual({'cinder_volume_id': '1234',
                          crosspool.COPY_OF: self.uuid_of(vdi)},
                         rec['other_config'])
        self.assertEqual(sha256(image), sha256(self.export_vdi(
            new, 'pool-b', self.session_b)))
        self.assertEqual(sha256(image), result.digest)
        # A thick source sends only the blocks it holds data in.
        self.assertLess(result.sent_bytes, 8 * MiB)
        self.assertEqual([(new, rec)], crosspool.leftovers(
            self.dst, self.uuid_of(vdi)))

    def test_a_volume_with_snapshots_and_an_odd_size(self):
        # Its data lies in a VHD chain (base copies under the leaf), its
        # last 2 MiB block is partial: the copy is the flattened disk.
        size = 9 * MiB + 4096
        vdi, image = self.source_vdi(size, ((0, MiB),), seed=10)
        snap = self.api.VDI.snapshot(vdi, {})
        image = bytearray(image)
        tail = random.Random(11).randbytes(8192)
        image[size - 8192:] = tail
        self.import_vdi(vdi, bytes(image))
        self.api.VDI.snapshot(vdi, {})
        result = self.copy(vdi)
        new = self.in_b(result.vdi_uuid)
        self.assertEqual(str(size), self.api_b.VDI.get_virtual_size(new))
        self.assertEqual(sha256(image), result.digest)
        self.assertEqual(sha256(image), sha256(self.export_vdi(
            new, 'pool-b', self.session_b)))
        # The snapshots stay behind, untouched; the copy has none.
        self.assertEqual([], self.api_b.VDI.get_snapshots(new))
        self.assertEqual(sha256(bytes(image[:size - 8192])
                                + bytes(8192)),
                         sha256(self.export_vdi(snap)))

    # -- refusals: nothing is created -----------------------------------------

    def assertRefused(self, text, vdi=None, **kwargs):
        before = self.vdi_set(self.api_b)
        exc = self.assertRaises(crosspool.CopyFailed, self.copy,
                                vdi or self.source_vdi(16 * MiB,
                                                       ((0, MiB),))[0],
                                **kwargs)
        self.assertEqual('check', exc.phase)
        self.assertIn(text, str(exc))
        self.assertNothingLeft(before)
        self.assertNotIn(self.src.url, str(exc))
        return exc

    def test_source_refusals(self):
        # Missing.
        vdi, _ = self.source_vdi(16 * MiB, ((0, MiB),))
        gone = self.uuid_of(vdi)
        self.api.VDI.destroy(vdi)
        before = self.vdi_set(self.api_b)
        exc = self.assertRaises(crosspool.CopyFailed, crosspool.copy_vdi,
                                self.src, gone, self.dst,
                                self.sr_uuid(base.EXT, self.api_b))
        self.assertIn('no such VDI in the source pool', str(exc))
        self.assertIn(gone, str(exc))
        self.assertNothingLeft(before)
        # Plugged into a running VM: named.
        vm, vdis = self.make_vm('db', disks=(('0', 'root', base.EXT,
                                              16 * MiB, MiB),), vif=False)
        exc = self.assertRefused("attached to VM 'db'", vdis['0'])
        self.assertIn('detach it first', str(exc))
        # A snapshot, and the base copy a snapshot leaves on a VHD SR.
        vdi, _ = self.source_vdi(16 * MiB, ((0, MiB),), seed=3)
        snap = self.api.VDI.snapshot(vdi, {})
        self.assertRefused('is a snapshot (of VDI %s)' % self.uuid_of(vdi),
                           snap)
        bases = [ref for ref, rec in self.api.VDI.get_all_records().items()
                 if not rec['managed']]
        self.assertTrue(bases)
        self.assertRefused('is a base copy', bases[0])

    def test_destination_refusals(self):
        self.assertRefused('no such SR in the destination pool',
                           sr_uuid=str(uuidlib.uuid4()))
        self.assertRefused('the SR is in the source pool',
                           sr_uuid=self.sr_uuid(base.EXT))
        self.assertRefused('lacks VDI_CREATE', sr_name=ISO)
        vdi, _ = self.source_vdi(32 * MiB, ((0, MiB),), seed=4)
        # Thick: the whole virtual size must fit, whatever the data.
        exc = self.assertRefused('has 16.0 MiB free; the copy needs 32.0 '
                                 'MiB (a thick SR)', vdi, sr_name=SMALL_LVM)
        self.assertIn("SR '%s'" % SMALL_LVM, str(exc))
        # Thin: the data the source holds must fit (here it does not).
        big, _ = self.source_vdi(64 * MiB, ((0, 30 * MiB),), seed=5)
        self.assertRefused('(a thin SR)', big, sr_name=SMALL_EXT)
        # Unplugged: xapi could not attach the new VDI to import into it.
        small = self.sr_named(SMALL_LVM, self.api_b)
        for pbd in self.api_b.SR.get_PBDs(small):
            self.api_b.PBD.unplug(pbd)
        self.assertRefused('is not plugged on any host of pool',
                           sr_name=SMALL_LVM)
        # One pool for both.
        self.assertRefused('use VDI.pool_migrate / VDI.copy within a pool',
                           destination=self.src,
                           sr_uuid=self.sr_uuid(base.LVM))
        self.assertRefused('other_config must map strings to strings',
                           other_config={'size': 3})
        self.assertRefused('spool directory',
                           spool_dir=os.path.join(self.spool, 'none'))

    # -- failures after the VDI was created: it goes again --------------------

    def test_import_failure_removes_the_new_vdi(self):
        # The source holds 12 MiB: the small thin SR has room for it, until
        # another volume fills it while the copy runs.
        vdi, image = self.source_vdi(32 * MiB, ((0, 12 * MiB),), seed=6)
        small = self.sr_named(SMALL_EXT, self.api_b)
        before = self.vdi_set(self.api_b)
        created = []

        def on_created(uuid):
            created.append(uuid)
            other = self.create_vdi(small, 16 * MiB, 'other', self.api_b)
            self.fill(other, 14 * MiB, 'other', 'pool-b')
            before.add(other)

        exc = self.assertRaises(crosspool.CopyFailed, self.copy, vdi,
                                SMALL_EXT, on_created=on_created)
        self.assertEqual('import', exc.phase)
        self.assertIn('The destination SR is full', str(exc))
        self.assertIn(created[0], str(exc))
        self.assertIsNone(self.in_b(created[0]))
        self.assertNothingLeft(before)
        self.assertNotIn(self.dst.url, str(exc))
        self.assertEqual(sha256(image), sha256(self.export_vdi(vdi)))
        self.assertEqual({}, self.api.VDI.get_other_config(vdi))

    def test_verify_catches_a_destination_that_differs(self):
        vdi, image = self.source_vdi(16 * MiB, ((0, MiB),), seed=7)
        before = self.vdi_set(self.api_b)
        created = []

        def progress(phase, done, total):
            if phase == 'verify' and done == 0:
                # Another writer changes the new VDI before it is read back.
                self.import_vdi(self.in_b(created[0]), b'\x5a' * 4096,
                                'pool-b', self.session_b)

        exc = self.assertRaises(crosspool.CopyFailed, self.copy, vdi,
                                progress=progress,
                                on_created=created.append)
        self.assertEqual('verify', exc.phase)
        self.assertIn('other data than the source', str(exc))
        self.assertIsNone(self.in_b(created[0]))
        self.assertNothingLeft(before)
        self.assertEqual(sha256(image), sha256(self.export_vdi(vdi)))

    def test_a_raising_callback_cancels_and_cleans_up(self):
        vdi, image = self.source_vdi(16 * MiB, ((0, 4 * MiB),), seed=8)
        before = self.vdi_set(self.api_b)
        created = []

        class Stop(Exception):
            pass

        def progress(phase, done, total):
            if phase == 'import' and done > 0:
                raise Stop()

        exc = self.assertRaises(crosspool.CopyFailed, self.copy, vdi,
                                progress=progress, on_created=created.append)
        self.assertEqual('import', exc.phase)
        self.assertIsInstance(exc.__cause__, Stop)
        self.assertIsNone(self.in_b(created[0]))
        self.assertNothingLeft(before)

    # -- after a kill -9 ------------------------------------------------------

    def test_leftovers_finds_what_a_killed_copy_left(self):
        vdi, _ = self.source_vdi(16 * MiB, ((0, MiB),), seed=9)
        src_uuid = self.uuid_of(vdi)
        self.assertEqual([], crosspool.leftovers(self.dst, src_uuid))
        env = dict(os.environ, SIM_USER=self.simfix.username,
                   SIM_PASSWORD=self.simfix.password)
        proc = subprocess.run(
            [sys.executable, '-c', CHILD, self.url('pool-a'),
             self.url('pool-b'), src_uuid,
             self.sr_uuid(base.EXT, self.api_b), self.spool],
            env=env, capture_output=True, text=True, timeout=base.DEADLINE)
        self.assertEqual(-signal.SIGKILL, proc.returncode, proc.stderr)
        new_uuid = proc.stdout.strip()
        found = crosspool.leftovers(self.dst, src_uuid)
        self.assertEqual([new_uuid], [rec['uuid'] for _, rec in found])
        self.assertEqual(src_uuid,
                         found[0][1]['other_config'][crosspool.COPY_OF])
        # Nothing of another source, and no spool file outlived the copy.
        self.assertEqual([], crosspool.leftovers(self.dst,
                                                 str(uuidlib.uuid4())))
        self.assertEqual([], os.listdir(self.spool))
