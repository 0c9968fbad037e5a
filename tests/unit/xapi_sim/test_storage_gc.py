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

"""Destroyed disks and SM-style coalescing in the data plane (no sockets).

A destroyed disk must fail to read, not read as zeros. Once no snapshot or
clone pins the parent of a disk's leaf, ``Disk.coalesce`` merges it into
the leaf: the bytes stay what they were (checked against a bytearray), the
chain gets shorter, and the SR's accounting stays the sum of what its
layers take, on thin and thick stores alike.
"""

import os
import random

import fixtures
import testtools

from xapi_sim import errors
from xapi_sim import storage

BLOCK = storage.BLOCK
SECTOR = storage.SECTOR
MiB = 1 << 20
# A partial last block and a partial last sector.
SIZE = 16 * BLOCK + 3 * SECTOR + 100


class Tracked(object):
    """A Disk and the bytes it must read back as."""

    def __init__(self, disk, data):
        self.disk = disk
        self.data = bytearray(data)

    def write(self, offset, payload):
        self.disk.write(offset, payload)
        self.data[offset:offset + len(payload)] = payload


def random_write(rnd, tracked):
    """A write of one of the shapes guests make, somewhere random."""
    size = len(tracked.data)
    shape = rnd.choice(['block', 'sectors', 'bytes', 'across', 'zeros'])
    if shape == 'block':
        offset = rnd.randrange(size // BLOCK) * BLOCK
        length = BLOCK
    elif shape == 'sectors':
        offset = rnd.randrange(size // SECTOR) * SECTOR
        length = SECTOR * rnd.randint(1, 9)
    elif shape == 'across':
        offset = rnd.randrange(1, size // BLOCK) * BLOCK - rnd.randint(1, 700)
        length = rnd.randint(2, 1400)
    else:
        offset = rnd.randrange(size)
        length = rnd.randint(1, 3 * SECTOR)
    length = min(length, size - offset)
    payload = (bytes(length) if shape == 'zeros'
               else rnd.randbytes(length))
    tracked.write(offset, payload)


def _short(read):
    """What ``read()`` returned, short enough for a failure message."""
    value = read()
    if isinstance(value, bytes):
        return '%d bytes, %d of them zero' % (len(value), value.count(0))
    return value


class GcTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path

    def store(self, thick, name=None):
        name = name or ('thick' if thick else 'thin')
        return storage.SRStore(os.path.join(self.root, name), 64 * MiB,
                               thick)

    def disk(self, store, size=SIZE):
        disk = storage.Disk.create(store, size)
        self.addCleanup(disk.destroy)
        return disk

    def chain_length(self, disk):
        return len(list(disk.chain()))

    def assertAccounted(self, store):
        """The SR takes what its layers take, and has a file per layer."""
        with store.lock:
            layers = list(store.layers)
            self.assertEqual(sum(layer.physical() for layer in layers),
                             store.used)
        self.assertEqual(store.used, store.utilisation())
        self.assertEqual(sorted(os.path.basename(layer.path)
                                for layer in layers),
                         sorted(os.listdir(store.root)))

    def assertReads(self, tracked):
        self.assertEqual(bytes(tracked.data),
                         tracked.disk.read(0, len(tracked.data)))


class TestDestroyedDisk(GcTestCase):

    def test_reading_fails_and_never_returns_zeros(self):
        for thick in (False, True):
            store = self.store(thick)
            disk = storage.Disk.create(store, SIZE)
            disk.ref = 'OpaqueRef:gone'
            disk.write(BLOCK + 7, b'something to read')
            other = self.disk(self.store(thick, name='other-%s' % thick))
            disk.destroy()
            for read in (lambda: disk.read(0, SIZE),
                         lambda: disk.read(BLOCK + 7, 17),
                         lambda: disk.read_block(1),
                         lambda: disk.owner(1),
                         disk.allocated_blocks,
                         lambda: list(disk.chain()),
                         lambda: disk.copy_to(other)):
                exc = self.assertRaises(errors.XapiError, _short, read)
                self.assertEqual(['HANDLE_INVALID', 'VDI', 'OpaqueRef:gone'],
                                 exc.description)
            self.assertEqual(bytes(SIZE), other.read(0, SIZE))
            self.assertEqual(0, store.utilisation())
            self.assertEqual([], os.listdir(store.root))

    def test_a_destroyed_disk_does_not_read_through_to_its_snapshot(self):
        for thick in (False, True):
            store = self.store(thick)
            disk = storage.Disk.create(store, SIZE)
            disk.write(0, b'kept by the snapshot')
            snap = disk.snapshot()
            self.addCleanup(snap.destroy)
            disk.destroy()
            exc = self.assertRaises(errors.XapiError, _short,
                                    lambda: disk.read(0, 20))
            self.assertEqual('HANDLE_INVALID', exc.code)
            self.assertEqual(b'kept by the snapshot', snap.read(0, 20))
            self.assertAccounted(store)


class TestCoalesce(GcTestCase):

    def snapshotted(self, thick, seed):
        """A written disk, a snapshot of it, then more writes on the disk.

        Returns (store, tracked disk, snapshot, the snapshot's bytes).
        """
        rnd = random.Random(seed)
        store = self.store(thick)
        tracked = Tracked(self.disk(store), bytes(SIZE))
        for _ in range(30):
            random_write(rnd, tracked)
        snap = tracked.disk.snapshot()
        self.addCleanup(snap.destroy)
        frozen = bytes(tracked.data)
        # Over what the parent holds: whole blocks, sectors and bytes of
        # blocks it holds in part, and blocks it does not hold at all.
        for _ in range(30):
            random_write(rnd, tracked)
        return store, tracked, snap, frozen

    def test_the_parent_merges_once_the_snapshot_is_gone(self):
        for thick in (False, True):
            store, tracked, snap, frozen = self.snapshotted(thick, seed=1)
            disk = tracked.disk
            self.assertEqual(2, self.chain_length(disk))
            # Pinned by the snapshot: nothing to merge.
            self.assertFalse(disk.coalesce())
            self.assertEqual(2, self.chain_length(disk))
            self.assertEqual(frozen, snap.read(0, SIZE))
            self.assertAccounted(store)

            snap.destroy()
            self.assertAccounted(store)
            pinned = store.utilisation()
            self.assertTrue(disk.coalesce())

            self.assertEqual(1, self.chain_length(disk), thick)
            self.assertReads(tracked)
            self.assertAccounted(store)
            self.assertEqual({disk.leaf}, store.layers)
            if thick:
                # The leaf is inflated to the virtual size, no more.
                self.assertEqual(SIZE, store.utilisation())
            else:
                # Each block is held (and charged) once again.
                self.assertEqual(len(disk.allocated_blocks()) * BLOCK,
                                 store.utilisation())
            self.assertLessEqual(store.utilisation(), pinned)
            # Nothing more to merge; the disk works on.
            self.assertFalse(disk.coalesce())
            random_write(random.Random(2), tracked)
            self.assertReads(tracked)
            self.assertAccounted(store)

    def test_a_chain_of_snapshots_merges_down_to_one_layer(self):
        for thick in (False, True):
            rnd = random.Random(3)
            store = self.store(thick)
            tracked = Tracked(self.disk(store), bytes(SIZE))
            snaps = []
            for _ in range(3):
                for _ in range(10):
                    random_write(rnd, tracked)
                snaps.append((tracked.disk.snapshot(), bytes(tracked.data)))
            self.assertEqual(4, self.chain_length(tracked.disk))
            # The oldest goes first: the layers above it still pin the
            # chain.
            for snap, frozen in snaps:
                self.assertEqual(frozen, snap.read(0, SIZE))
                snap.destroy()
                while tracked.disk.coalesce():
                    pass
                self.assertReads(tracked)
                self.assertAccounted(store)
            self.assertEqual(1, self.chain_length(tracked.disk))
            self.assertEqual({tracked.disk.leaf}, store.layers)

    def test_not_while_a_clone_or_a_mirror_uses_the_parent(self):
        for thick in (False, True):
            store, tracked, snap, _ = self.snapshotted(thick, seed=4)
            disk = tracked.disk
            snap.destroy()
            clone = disk.snapshot(writable=True)
            self.assertFalse(disk.coalesce())
            clone.destroy()
            # The clone's snapshot layer is the leaf's parent now.
            while disk.coalesce():
                pass
            self.assertEqual(1, self.chain_length(disk))

            def mirror(offset, data):
                pass
            snap = disk.snapshot(mirror=mirror)
            snap.destroy()
            self.assertFalse(disk.coalesce())
            self.assertEqual(2, self.chain_length(disk))
            disk.detach_mirror(mirror)
            self.assertTrue(disk.coalesce())
            self.assertEqual(1, self.chain_length(disk))
            self.assertReads(tracked)
            self.assertAccounted(store)

    def test_random_histories_against_a_bytearray(self):
        """Writes, snapshots, clones and destroys in any order.

        After each step the SR's accounting holds; after each coalesce
        every disk still reads like its model.
        """
        for thick in (False, True):
            for seed in range(6):
                rnd = random.Random('%s-%s' % (thick, seed))
                store = self.store(thick, name='%s-%d' % (thick, seed))
                live = [Tracked(self.disk(store), bytes(SIZE))]
                for step in range(60):
                    op = rnd.choice(['write'] * 5 + [
                        'snapshot', 'clone', 'destroy', 'coalesce'])
                    tracked = rnd.choice(live)
                    if op == 'write' and not tracked.disk.read_only:
                        random_write(rnd, tracked)
                    elif op in ('snapshot', 'clone') and len(live) < 6:
                        child = tracked.disk.snapshot(
                            writable=op == 'clone')
                        self.addCleanup(child.destroy)
                        live.append(Tracked(child, tracked.data))
                    elif op == 'destroy' and len(live) > 1:
                        live.remove(tracked)
                        tracked.disk.destroy()
                    elif op == 'coalesce':
                        for t in live:
                            while t.disk.coalesce():
                                pass
                        for t in live:
                            self.assertReads(t)
                    self.assertAccounted(store)
                for t in live:
                    while t.disk.coalesce():
                        pass
                    self.assertReads(t)
                    self.assertAccounted(store)
                for t in live:
                    t.disk.destroy()
                self.assertEqual(set(), store.layers)
                self.assertEqual(0, store.utilisation())
                self.assertEqual([], os.listdir(store.root))
