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

"""The block data plane (xapi_sim.storage) on its own: no server, no socket.

A hypothesis state machine drives chains of writes, snapshots, clones,
copies, resizes and destroys, and checks every disk against a plain model
(one bytearray per disk). Plain tests pin down the space accounting.
"""

import os
import random
import shutil
import tempfile

import fixtures
from hypothesis import settings
from hypothesis import stateful
from hypothesis import strategies as st
import testtools

from xapi_sim import errors
from xapi_sim import storage

BLOCK = storage.BLOCK
SECTOR = 512
MiB = 1 << 20
SR_FULL = ['SR_BACKEND_FAILURE_44', '', 'There is insufficient space', '']

# Small disks keep each example fast; odd sizes exercise a partial last
# block and a partial last sector.
SIZES = st.sampled_from([BLOCK, 3 * BLOCK, 4 * BLOCK + 3 * SECTOR,
                         2 * BLOCK + 1000])


WITHIN = st.sampled_from([0, 1, 100, SECTOR - 1, SECTOR, 4096,
                          BLOCK - SECTOR - 3, BLOCK - 1])
LENGTHS = st.sampled_from([1, 100, SECTOR, 3 * SECTOR + 7, 4096, BLOCK,
                           BLOCK + 513])


def payload(seed, length, zero=False):
    if zero:
        return bytes(length)
    return random.Random(seed).randbytes(length)


class Model(object):
    """What a disk must read back as."""

    def __init__(self, disk, data, writable):
        self.disk = disk
        self.data = bytearray(data)
        self.writable = writable


class DataPlaneMachine(stateful.RuleBasedStateMachine):
    """Writes, snapshots, clones and copies against a bytearray model."""

    disks = stateful.Bundle('disks')

    def __init__(self):
        super().__init__()
        self.root = tempfile.mkdtemp(prefix='xapi-sim-unit-')
        self.stores = {
            'thin': storage.SRStore(os.path.join(self.root, 'thin'),
                                    256 * MiB, thick=False),
            'thick': storage.SRStore(os.path.join(self.root, 'thick'),
                                     256 * MiB, thick=True),
        }
        self.live = []

    def teardown(self):
        try:
            for model in self.live:
                model.disk.destroy()
            # Every layer is released once no disk uses it: no leaks.
            for name, store in self.stores.items():
                assert not store.layers, (name, store.layers)
                assert store.utilisation() == 0, name
                assert os.listdir(store.root) == [], name
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _add(self, disk, data, writable):
        model = Model(disk, data, writable)
        self.live.append(model)
        return model

    # -- rules -------------------------------------------------------------

    # One thin and one thick disk to begin with; snapshots, clones and
    # copies add the others.
    @stateful.initialize(target=disks, size=SIZES)
    def thin_disk(self, size):
        return self._create(size, 'thin')

    @stateful.initialize(target=disks, size=SIZES)
    def thick_disk(self, size):
        return self._create(size, 'thick')

    @stateful.precondition(lambda self: len(self.live) < 2)
    @stateful.rule(target=disks, size=SIZES,
                   kind=st.sampled_from(['thin', 'thick']))
    def create(self, size, kind):
        return self._create(size, kind)

    def _create(self, size, kind):
        disk = storage.Disk.create(self.stores[kind], size)
        return self._add(disk, bytes(size), writable=True)

    @stateful.rule(model=disks, block=st.integers(0, 4), within=WITHIN,
                   length=LENGTHS, seed=st.integers(0, 1 << 16),
                   zero=st.integers(0, 4).map(lambda n: n == 0))
    def write(self, model, block, within, length, seed, zero):
        # Few blocks and edge offsets: writes pile up on the same blocks
        # and sectors, across layers.
        if model not in self.live:
            return
        length = min(length, model.disk.size)
        offset = min(block * BLOCK + within, model.disk.size - length)
        data = payload(seed, length, zero)
        if model.writable:
            model.disk.write(offset, data)
            model.data[offset:offset + length] = data
        else:
            # A snapshot is read-only: the write is refused, nothing moves.
            try:
                model.disk.write(offset, data)
            except errors.XapiError:
                pass  # the model check below shows nothing moved
            else:
                raise AssertionError('a snapshot accepted a write')

    @stateful.rule(target=disks, model=disks)
    def snapshot(self, model):
        if model not in self.live or not model.writable:
            return stateful.multiple()
        snap = model.disk.snapshot()
        return self._add(snap, model.data, writable=False)

    @stateful.rule(target=disks, model=disks)
    def clone(self, model):
        if model not in self.live or not model.writable:
            return stateful.multiple()
        clone = model.disk.snapshot(writable=True)
        return self._add(clone, model.data, writable=True)

    @stateful.rule(target=disks, model=disks,
                   kind=st.sampled_from(['thin', 'thick']))
    def copy_full(self, model, kind):
        if model not in self.live:
            return stateful.multiple()
        dest = storage.Disk.create(self.stores[kind], model.disk.size)
        model.disk.copy_to(dest)
        return self._add(dest, model.data, writable=True)

    @stateful.rule(target=disks, model=disks, base=disks,
                   kind=st.sampled_from(['thin', 'thick']))
    def copy_delta(self, model, base, kind):
        # dest first receives base (as a first full copy would), then
        # only what differs between base and model.
        if (model not in self.live or base not in self.live
                or base.disk.size > model.disk.size):
            return stateful.multiple()
        dest = storage.Disk.create(self.stores[kind], model.disk.size)
        base.disk.copy_to(dest)
        model.disk.copy_to(dest, base=base.disk)
        return self._add(dest, model.data, writable=True)

    @stateful.rule(model=disks, grow=st.sampled_from([1, SECTOR, BLOCK,
                                                      BLOCK + 3 * SECTOR]))
    def resize(self, model, grow):
        if model not in self.live or not model.writable:
            return
        # FileSR rounds the new size up to whole 2 MiB VHD blocks.
        size = model.disk.resize(model.disk.size + grow)
        model.data.extend(bytes(size - len(model.data)))

    @stateful.rule(model=stateful.consumes(disks))
    def destroy(self, model):
        if model not in self.live:
            return
        self.live.remove(model)
        model.disk.destroy()

    # -- invariants ----------------------------------------------------------

    @stateful.invariant()
    def every_disk_reads_as_its_model(self):
        for model in self.live:
            disk = model.disk
            assert disk.size == len(model.data)
            got = disk.read(0, disk.size)
            assert got == bytes(model.data), self._first_diff(got, model)

    @stateful.invariant()
    def accounting_is_bounded(self):
        for name, store in self.stores.items():
            used = store.utilisation()
            assert 0 <= used <= store.physical_size, (name, used)
            if store.thick:
                # Every writable thick leaf is inflated to its full size.
                leaves = sum(m.disk.size for m in self.live
                             if m.writable and m.disk.store is store)
                assert used >= leaves, (used, leaves)

    @staticmethod
    def _first_diff(got, model):
        for i, (a, b) in enumerate(zip(got, model.data)):
            if a != b:
                return 'first difference at byte %d (block %d)' % (
                    i, i // BLOCK)
        return 'lengths %d != %d' % (len(got), len(model.data))


class TestDataPlaneModel(testtools.TestCase):

    def test_chains_read_back_like_the_model(self):
        stateful.run_state_machine_as_test(DataPlaneMachine, settings=settings(
            max_examples=150, stateful_step_count=30, deadline=None,
            database=None))


class StoreTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path

    def store(self, thick=False, size=64 * MiB, name=None):
        name = name or ('thick' if thick else 'thin')
        return storage.SRStore(os.path.join(self.root, name), size, thick)

    def disk(self, store, size):
        disk = storage.Disk.create(store, size)
        self.addCleanup(disk.destroy)
        return disk

    def assertSrFull(self, func, *args):
        exc = self.assertRaises(errors.XapiError, func, *args)
        self.assertEqual(SR_FULL, exc.description)


class TestThinAccounting(StoreTestCase):

    def test_fresh_disk_costs_nothing(self):
        store = self.store()
        self.disk(store, 32 * MiB)
        self.assertEqual(0, store.utilisation())

    def test_written_blocks_are_charged_once(self):
        store = self.store()
        disk = self.disk(store, 32 * MiB)
        for block in (0, 5, 6, 400):
            disk.write(block * BLOCK + 100, b'x' * 10)
        disk.write(5 * BLOCK, b'y' * BLOCK)  # the same block again
        self.assertEqual(4 * BLOCK, store.utilisation())
        self.assertEqual(4 * BLOCK, disk.physical())
        # A write across a block boundary touches two blocks.
        disk.write(10 * BLOCK - 10, b'z' * 20)
        self.assertEqual(6 * BLOCK, store.utilisation())

    def test_snapshot_costs_nothing_until_written(self):
        store = self.store()
        disk = self.disk(store, 8 * MiB)
        disk.write(0, b'a' * (3 * BLOCK))
        snap = disk.snapshot()
        self.addCleanup(snap.destroy)
        self.assertEqual(3 * BLOCK, store.utilisation())
        self.assertEqual(0, disk.physical())
        disk.write(BLOCK, b'b')
        self.assertEqual(4 * BLOCK, store.utilisation())

    def test_destroy_gives_space_and_files_back(self):
        store = self.store()
        disk = storage.Disk.create(store, 8 * MiB)
        disk.write(0, b'a' * (2 * BLOCK))
        snap = disk.snapshot()
        clone = disk.snapshot(writable=True)
        clone.write(0, b'c' * BLOCK)
        for d in (disk, snap, clone):
            self.assertNotEqual([], os.listdir(store.root))
            d.destroy()
        self.assertEqual(0, store.utilisation())
        self.assertEqual([], os.listdir(store.root))

    def test_zero_copy_stays_thin(self):
        src = self.disk(self.store(thick=True), 8 * MiB)
        src.write(BLOCK, b'\x01' * BLOCK)
        src.write(3 * BLOCK, bytes(BLOCK))  # allocated, but zeros
        thin = self.store(name='dest')
        dest = self.disk(thin, 8 * MiB)
        src.copy_to(dest)
        self.assertEqual(BLOCK, thin.utilisation())
        self.assertEqual(src.read(0, src.size), dest.read(0, dest.size))

    def test_sr_full_on_write(self):
        store = self.store(size=4 * BLOCK)
        disk = self.disk(store, 8 * MiB)
        disk.write(0, b'a' * (4 * BLOCK))
        self.assertSrFull(disk.write, 4 * BLOCK, b'b')
        self.assertEqual(4 * BLOCK, store.utilisation())
        # What was written stays; rewriting allocated blocks still works.
        disk.write(0, b'c' * BLOCK)
        self.assertEqual(b'c' * BLOCK + b'a' * (3 * BLOCK),
                         disk.read(0, 4 * BLOCK))
        self.assertEqual(bytes(BLOCK), disk.read(4 * BLOCK, BLOCK))


class TestThickAccounting(StoreTestCase):

    def test_create_charges_virtual_size(self):
        store = self.store(thick=True)
        disk = self.disk(store, 16 * MiB)
        self.assertEqual(16 * MiB, store.utilisation())
        disk.write(0, b'x' * (5 * BLOCK))
        self.assertEqual(16 * MiB, store.utilisation())
        self.assertEqual(16 * MiB, disk.physical())

    def test_snapshot_deflates_the_frozen_layer(self):
        store = self.store(thick=True)
        disk = self.disk(store, 16 * MiB)
        disk.write(0, b'x' * (5 * BLOCK))
        snap = disk.snapshot()
        self.addCleanup(snap.destroy)
        # New leaf at full size plus what the frozen base holds.
        self.assertEqual(16 * MiB + 5 * BLOCK, store.utilisation())
        # As SM's VHD snapshot: the snapshot is an empty leaf over the
        # frozen base copy, which holds the data.
        self.assertEqual(0, snap.physical())
        self.assertIs(disk.leaf.parent, snap.leaf.parent)
        self.assertEqual(5 * BLOCK, snap.leaf.parent.physical())

    def test_sr_full_on_create(self):
        store = self.store(thick=True, size=16 * MiB)
        self.assertSrFull(storage.Disk.create, store, 16 * MiB + 1)
        self.disk(store, 10 * MiB)
        self.assertSrFull(storage.Disk.create, store, 7 * MiB)
        self.assertEqual(10 * MiB, store.utilisation())
        self.assertEqual(1, len(os.listdir(store.root)))

    def test_sr_full_on_snapshot_leaves_disk_usable(self):
        # The new leaf is inflated while the frozen base keeps what it
        # holds: one block more than the SR has.
        store = self.store(thick=True, size=8 * MiB + BLOCK - 1)
        disk = self.disk(store, 8 * MiB)
        disk.write(0, b'x' * BLOCK)
        self.assertSrFull(disk.snapshot)
        self.assertEqual(8 * MiB, store.utilisation())
        self.assertEqual(1, len(os.listdir(store.root)))
        disk.write(BLOCK, b'y' * BLOCK)
        self.assertEqual(b'x' * BLOCK + b'y' * BLOCK, disk.read(0, 2 * BLOCK))
        self.assertEqual(8 * MiB, store.utilisation())

    def test_snapshot_fits_when_the_base_is_small(self):
        store = self.store(thick=True, size=8 * MiB + BLOCK)
        disk = self.disk(store, 8 * MiB)
        disk.write(0, b'x' * BLOCK)
        snap = disk.snapshot()
        self.addCleanup(snap.destroy)
        self.assertEqual(8 * MiB + BLOCK, store.utilisation())

    def test_sr_full_on_grow(self):
        store = self.store(thick=True, size=12 * MiB)
        disk = self.disk(store, 8 * MiB)
        self.assertSrFull(disk.resize, 16 * MiB)
        self.assertEqual(8 * MiB, disk.size)
        disk.resize(12 * MiB)
        self.assertEqual(12 * MiB, store.utilisation())


class TestCopy(StoreTestCase):

    def _source(self, store):
        disk = self.disk(store, 4 * MiB)
        rng = random.Random(1)
        for _ in range(20):
            disk.write(rng.randrange(4 * MiB - 4096), rng.randbytes(4096))
        return disk

    def test_full_copy_reproduces_source(self):
        src = self._source(self.store())
        for thick in (False, True):
            dest = self.disk(self.store(thick, name='d%d' % thick), 4 * MiB)
            written = src.copy_to(dest)
            self.assertGreater(written, 0)
            self.assertEqual(src.read(0, src.size), dest.read(0, src.size))

    def test_delta_copy_writes_only_the_difference(self):
        store = self.store()
        src = self._source(store)
        base = src.snapshot()
        self.addCleanup(base.destroy)
        dest = self.disk(self.store(name='dest'), 4 * MiB)
        base.copy_to(dest)
        src.write(MiB, b'new' * 10)
        src.write(2 * MiB, b'z' * BLOCK)
        written = src.copy_to(dest, base=base)
        self.assertEqual(2 * BLOCK, written)
        self.assertEqual(src.read(0, src.size), dest.read(0, src.size))
        # Nothing changed since: nothing to send.
        self.assertEqual(0, src.copy_to(dest, base=src.snapshot()))

    def test_progress_can_stop_a_copy(self):
        src = self._source(self.store())
        dest_store = self.store(name='dest')
        dest = self.disk(dest_store, 4 * MiB)
        seen = []

        def progress(done, total):
            seen.append((done, total))
            if done:
                raise errors.XapiError('TASK_CANCELLED', 'task')

        exc = self.assertRaises(errors.XapiError, src.copy_to, dest,
                                progress=progress)
        self.assertEqual('TASK_CANCELLED', exc.code)
        self.assertEqual(0, seen[0][0])
        self.assertGreater(seen[0][1], 0)
        self.assertEqual(2, len(seen))

    def test_throttle_sees_every_byte(self):
        src = self._source(self.store())
        dest = self.disk(self.store(name='dest'), 4 * MiB)
        counted = []
        written = src.copy_to(dest, throttle=counted.append)
        self.assertEqual(written, sum(counted))


class TestDisk(StoreTestCase):

    def test_write_beyond_the_end_is_refused(self):
        disk = self.disk(self.store(), 4 * MiB)
        self.assertRaises(errors.XapiError, disk.write, 4 * MiB - 1, b'xy')
        self.assertRaises(errors.XapiError, disk.write, -1, b'x')
        self.assertEqual(bytes(4 * MiB), disk.read(0, 4 * MiB))

    def test_read_is_clamped_to_the_size(self):
        disk = self.disk(self.store(), 4 * MiB)
        self.assertEqual(100, len(disk.read(4 * MiB - 100, 1000)))
        self.assertEqual(b'', disk.read(4 * MiB, 10))

    def test_shrink_is_refused(self):
        disk = self.disk(self.store(), 4 * MiB)
        disk.write(0, b'keep')
        exc = self.assertRaises(errors.XapiError, disk.resize, 2 * MiB)
        self.assertEqual('SR_BACKEND_FAILURE_79', exc.code)
        self.assertEqual(4 * MiB, disk.size)
        self.assertEqual(b'keep', disk.read(0, 4))

    def test_snapshot_never_changes(self):
        disk = self.disk(self.store(), 4 * MiB)
        disk.write(0, b'a' * (2 * BLOCK))
        snap = disk.snapshot()
        self.addCleanup(snap.destroy)
        frozen = snap.read(0, snap.size)
        disk.write(100, b'b' * BLOCK)
        disk.resize(8 * MiB)
        disk.write(6 * MiB, b'c')
        clone = disk.snapshot(writable=True)
        self.addCleanup(clone.destroy)
        clone.write(0, b'd' * 10)
        self.assertEqual(frozen, snap.read(0, snap.size))
        self.assertEqual(4 * MiB, snap.size)

    def test_part_of_a_block_over_a_snapshot(self):
        # The leaf holds a few sectors of a block; the rest still comes
        # from the frozen layer below.
        disk = self.disk(self.store(), 4 * MiB)
        below = random.Random(2).randbytes(BLOCK)
        disk.write(BLOCK, below)
        snap = disk.snapshot()
        self.addCleanup(snap.destroy)
        disk.write(BLOCK + 2 * SECTOR, b'S' * SECTOR)  # whole sector
        disk.write(BLOCK + 5 * SECTOR + 10, b'p' * 20)  # part of one
        want = bytearray(below)
        want[2 * SECTOR:3 * SECTOR] = b'S' * SECTOR
        want[5 * SECTOR + 10:5 * SECTOR + 30] = b'p' * 20
        self.assertEqual(bytes(want), disk.read(BLOCK, BLOCK))
        self.assertEqual(below, snap.read(BLOCK, BLOCK))
        # A copy carries the merged block.
        dest = self.disk(self.store(name='dest'), 4 * MiB)
        disk.copy_to(dest)
        self.assertEqual(bytes(want), dest.read(BLOCK, BLOCK))
