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

"""The block data plane: the only module that touches disk-image files.

A VDI is a ``Disk``: a writable leaf ``Layer`` on a chain of frozen
parents, like a VHD chain. Each layer is a sparse file the size of the disk
plus a bitmap of the 64 KiB blocks it holds; a block missing from every
layer reads as zeros. Snapshots and clones freeze the leaf and give each
side a new empty leaf, so a snapshot never changes after it is taken and the
live disk records only the blocks written since.

Thin SRs account the blocks a layer holds; thick SRs account a writable
leaf at its full virtual size (LVHD inflates the leaf) and a frozen layer at
what it holds (LVHD deflates base copies).
"""

import os
import threading
import time
import uuid as uuidlib
import weakref

from xapi_sim import errors

BLOCK = 64 * 1024
ZERO_BLOCK = bytes(BLOCK)
# Like a VHD, a layer may hold part of a block: a bitmap of 512-byte
# sectors says which. A partly written leaf block never needs a copy-up,
# so a mirror leaf written before its base is copied still reads right.
SECTOR = 512
SECTORS = BLOCK // SECTOR
FULL_MASK = (1 << SECTORS) - 1
_ABSENT, _FULL, _PARTIAL = 0, 1, 2
# Contiguous blocks moved by one read/write when copying.
COPY_RUN = 64
# vhdutil: a VHD's virtual size is whole 2 MiB blocks, at most 2040 GiB.
VHD_BLOCK_SIZE = 2 * 1024 * 1024
MAX_VHD_SIZE = 2040 * 1024 * 1024 * 1024


def blocks_for(size):
    return (size + BLOCK - 1) // BLOCK


class SRStore(object):
    """The files and the space accounting of one SR."""

    def __init__(self, root, physical_size, thick):
        self.root = root
        self.physical_size = int(physical_size)
        self.thick = bool(thick)
        self.layers = set()
        # What the layers take, kept as they change (see Layer.physical).
        self.used = 0
        # uuid -> (Disk, record fields): what SR.scan finds on the SR.
        self.vdis = {}
        # Guards accounting and the layers' reference counts.
        self.lock = threading.RLock()
        os.makedirs(root, exist_ok=True)

    def utilisation(self):
        with self.lock:
            return self.used

    def _charge(self, nbytes):
        """Take space for a layer; the caller holds ``lock``."""
        if nbytes > 0 and self.used + nbytes > self.physical_size:
            raise errors.sr_full()
        self.used += nbytes

    def new_layer(self, size, parent=None, frozen=False):
        with self.lock:
            charge = self.thick and not frozen
            if charge:
                self._charge(size)
            try:
                layer = Layer(self, size, parent)
            except BaseException:
                if charge:
                    self.used -= size
                raise
            layer.frozen = frozen
            self.layers.add(layer)
            return layer


class Layer(object):
    def __init__(self, store, size, parent):
        self.store = store
        self.size = int(size)
        # Per block: _ABSENT, _FULL or _PARTIAL (sectors in ``sectors``).
        self.bitmap = bytearray(blocks_for(self.size))
        self.sectors = {}
        self.allocated = 0
        self.parent = parent
        self.refs = 0
        self.frozen = False
        # The uuid SM gives this layer once it is a hidden parent (a
        # "base copy" VDI); see Pool.sync_chains.
        self.uuid = None
        self.path = os.path.join(store.root, '%s.img' % uuidlib.uuid4())
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL,
                          0o600)
        try:
            if store.thick and self.size:
                os.posix_fallocate(self.fd, 0, self.size)
            else:
                os.ftruncate(self.fd, self.size)
        except OSError:
            os.close(self.fd)
            os.unlink(self.path)
            raise
        if parent is not None:
            with store.lock:
                parent.refs += 1

    def physical(self):
        if self.store.thick and not self.frozen:
            return self.size
        return self.allocated * BLOCK

    def freeze(self, frozen=True):
        """Mark read-only; on a thick SR that deflates it to its blocks."""
        with self.store.lock:
            before = self.physical()
            was, self.frozen = self.frozen, frozen
            delta = self.physical() - before
            if delta > 0:
                try:
                    self.store._charge(delta)
                except errors.XapiError:
                    self.frozen = was
                    raise
            else:
                self.store.used += delta

    def grow(self, size):
        with self.store.lock:
            if self.store.thick and not self.frozen:
                self.store._charge(size - self.size)
                try:
                    os.posix_fallocate(self.fd, 0, size)
                except OSError:
                    self.store.used -= size - self.size
                    raise
            else:
                os.ftruncate(self.fd, size)
            self.size = size
            self.bitmap.extend(bytes(blocks_for(size) - len(self.bitmap)))

    def mark(self, block, mask=FULL_MASK):
        """Record sectors as present, charging a thin SR for a new block."""
        state = self.bitmap[block]
        if state == _FULL:
            return
        if state == _ABSENT:
            store = self.store
            with store.lock:
                if not store.thick or self.frozen:
                    store._charge(BLOCK)
                self.allocated += 1
        mask |= self.sectors.pop(block, 0)
        if mask == FULL_MASK:
            self.bitmap[block] = _FULL
        else:
            self.bitmap[block] = _PARTIAL
            self.sectors[block] = mask

    def has(self, block):
        return block < len(self.bitmap) and self.bitmap[block] != _ABSENT

    def mask(self, block):
        if block >= len(self.bitmap):
            return 0
        state = self.bitmap[block]
        if state == _FULL:
            return FULL_MASK
        return self.sectors.get(block, 0)

    def release(self):
        with self.store.lock:
            self.refs -= 1
            layer = self
            while layer is not None and layer.refs <= 0:
                parent = layer.parent
                layer._delete()
                if parent is not None:
                    parent.refs -= 1
                layer = parent

    def _delete(self):
        with self.store.lock:
            if self in self.store.layers:
                self.store.layers.discard(self)
                self.store.used -= self.physical()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        # Readers take no lock: one that reached this layer before a
        # coalesce unlinked it still reads it through the open descriptor,
        # which closes once the last reference to the layer is gone.
        weakref.finalize(self, os.close, self.fd)


class Disk(object):
    """One VDI's bytes: a leaf layer and the chain below it."""

    def __init__(self, store, leaf, size, read_only=False):
        self.store = store
        self.leaf = leaf
        self.size = int(size)
        self.read_only = read_only
        # The VDI this disk backs, for error messages; set by the pool.
        self.ref = ''
        self.lock = threading.RLock()
        # Called under the disk lock after each local write: mirrors with
        # (offset, whole blocks), watchers with (first, last) block index.
        # The SXM mirror and copy-dirty's dirty tracking hang here.
        self.mirrors = []
        self.watchers = []
        with store.lock:
            leaf.refs += 1

    @classmethod
    def create(cls, store, size):
        return cls(store, store.new_layer(size), size)

    # -- reading ---------------------------------------------------------

    def _live_leaf(self):
        leaf = self.leaf
        if leaf is None:
            # Destroyed: using it must fail, reading must not look like
            # zeros.
            raise errors.XapiError('HANDLE_INVALID', 'VDI', self.ref)
        return leaf

    def chain(self):
        layer = self._live_leaf()
        while layer is not None:
            yield layer
            layer = layer.parent

    def owner(self, block):
        for layer in self.chain():
            if layer.has(block):
                return layer
        return None

    def allocated_blocks(self):
        """Indexes of blocks held by some layer of the chain, sorted."""
        nblocks = blocks_for(self.size)
        union = bytearray(nblocks)
        for layer in self.chain():
            bm = layer.bitmap
            n = min(nblocks, len(bm))
            if layer.allocated == 0:
                continue
            for i in range(n):
                if bm[i]:
                    union[i] = 1
        return [i for i in range(nblocks) if union[i]]

    def read_block(self, block):
        need = FULL_MASK
        out = None
        for layer in self.chain():
            have = layer.mask(block) & need
            if not have:
                continue
            data = os.pread(layer.fd, BLOCK, block * BLOCK).ljust(BLOCK,
                                                                  b'\0')
            if have == FULL_MASK:
                return data
            if out is None:
                out = bytearray(BLOCK)
            for first, last in _bit_runs(have):
                out[first * SECTOR:last * SECTOR] = \
                    data[first * SECTOR:last * SECTOR]
            need &= ~have
            if not need:
                break
        return ZERO_BLOCK if out is None else bytes(out)

    def read(self, offset, length):
        length = max(0, min(length, self.size - offset))
        out = bytearray()
        pos = offset
        end = offset + length
        while pos < end:
            block, within = divmod(pos, BLOCK)
            take = min(BLOCK - within, end - pos)
            out += self.read_block(block)[within:within + take]
            pos += take
        return bytes(out)

    # -- writing ---------------------------------------------------------

    def write(self, offset, data, mirror=True):
        if self.read_only:
            raise errors.XapiError('VDI_READONLY', self.ref)
        if offset < 0 or offset + len(data) > self.size:
            raise errors.XapiError('INTERNAL_ERROR',
                                   'write beyond the end of the disk')
        with self.lock:
            leaf = self._live_leaf()
            view = memoryview(data)
            pos = 0
            while pos < len(data):
                block, within = divmod(offset + pos, BLOCK)
                take = min(BLOCK - within, len(data) - pos)
                chunk = view[pos:pos + take]
                lo = within // SECTOR
                hi = (within + take + SECTOR - 1) // SECTOR
                if (lo * SECTOR != within or hi * SECTOR != within + take) \
                        and leaf.mask(block) != FULL_MASK:
                    # A write of part of a sector: read-modify-write it.
                    span = bytearray(self.read_block(block)[
                        lo * SECTOR:hi * SECTOR])
                    span[within - lo * SECTOR:within - lo * SECTOR + take] \
                        = chunk
                    chunk, within = span, lo * SECTOR
                leaf.mark(block, ((1 << hi) - 1) ^ ((1 << lo) - 1))
                os.pwrite(leaf.fd, chunk, block * BLOCK + within)
                pos += take
            first = offset // BLOCK
            last = (offset + len(data) - 1) // BLOCK
            for watch in self.watchers:
                watch(first, last)
            if mirror and self.mirrors:
                # Sent before the write completes: a synchronous mirror. In
                # whole sectors, so the destination leaf never reads a base
                # that may not be copied yet.
                lo = offset // SECTOR * SECTOR
                hi = -(-(offset + len(data)) // SECTOR) * SECTOR
                if (lo, hi) != (offset, offset + len(data)):
                    data, offset = self.read(lo, hi - lo), lo
                for target in self.mirrors:
                    target(offset, data)

    # -- chain operations ------------------------------------------------

    def snapshot(self, writable=False, mirror=None):
        """Freeze the leaf; returns the new Disk that sees the frozen state.

        ``writable`` gives the new Disk its own leaf (a clone). ``mirror``
        is attached in the same critical section, so that every write after
        the snapshot is mirrored (SXM's snapshot-and-mirror).
        """
        with self.lock:
            old = self._live_leaf()
            if mirror is not None:
                self.mirrors.append(mirror)
            # On a thick SR this deflates the frozen layer before the new
            # leaf is inflated: the net cost is what the old leaf held.
            old.freeze()
            try:
                self.leaf = self.store.new_layer(self.size, parent=old)
            except errors.XapiError:
                old.freeze(False)
                if mirror is not None:
                    self.mirrors.remove(mirror)
                raise
            with self.store.lock:
                self.leaf.refs += 1
                old.refs -= 1
            if writable:
                other = Disk(self.store,
                             self.store.new_layer(self.size, parent=old),
                             self.size)
            else:
                # As SM's VHD snapshot: the frozen layer becomes a hidden
                # base copy under two leaves, the disk's and the
                # snapshot's (an empty read-only one).
                try:
                    leaf = self.store.new_layer(self.size, parent=old,
                                                frozen=True)
                except BaseException:
                    other = Disk(self.store, old, self.size, read_only=True)
                else:
                    other = Disk(self.store, leaf, self.size,
                                 read_only=True)
            return other

    @classmethod
    def create_mirror_target(cls, store, size):
        """A destination for SXM: (disk, base).

        ``disk`` is a leaf over an empty base layer: mirrored writes land in
        the leaf while the background copy fills ``base``, so whichever
        arrives first, reads see the newest data (xapi composes the copied
        base under the mirror leaf the same way). Call ``seal_base`` when
        the copy is done.
        """
        base_layer = store.new_layer(size)
        base = cls(store, base_layer, size)
        try:
            leaf = store.new_layer(size, parent=base_layer)
        except errors.XapiError:
            base.destroy()
            raise
        return cls(store, leaf, size), base

    def seal_base(self):
        """Freeze this disk's leaf (a copied base) and let it go."""
        with self.lock:
            self.leaf.freeze()
        self.destroy()

    def coalesce(self):
        """Merge the leaf's parent into the leaf once nothing else uses it.

        What SM's garbage collector does after a snapshot is deleted (or a
        storage migration rolled back): the chain gets one layer shorter
        and the SR gets the space of the duplicated blocks back. Returns
        whether a layer was merged.
        """
        with self.lock:
            leaf = self.leaf
            parent = leaf.parent if leaf is not None else None
            if (parent is None or parent.refs != 1 or not parent.frozen
                    or self.mirrors or self.watchers):
                return False
            for block in range(min(len(parent.bitmap), len(leaf.bitmap))):
                missing = parent.mask(block) & ~leaf.mask(block)
                if not missing:
                    continue
                data = os.pread(parent.fd, BLOCK, block * BLOCK)
                # Bytes first, then the bitmap: a reader meanwhile sees the
                # parent's copy or the leaf's, never a hole.
                for first, last in _bit_runs(missing):
                    os.pwrite(leaf.fd, data[first * SECTOR:last * SECTOR],
                              block * BLOCK + first * SECTOR)
                leaf.mark(block, missing)
            with self.store.lock:
                leaf.parent = parent.parent
                if parent.parent is not None:
                    parent.parent.refs += 1
                parent.release()
            return True

    def resize(self, size):
        """Grow the virtual size as FileSR.resize does; returns the size.

        Never shrinks; rounds up to whole VHD blocks (vhdutil).
        """
        size = int(size)
        with self.lock:
            if size < self.size:
                raise invalid_size('shrinking not allowed')
            if size == self.size:
                return size
            if size > MAX_VHD_SIZE:
                raise invalid_size('VDI size must be between 1 MB and %d MB'
                                   % (MAX_VHD_SIZE // (1 << 20)))
            size = -(-size // VHD_BLOCK_SIZE) * VHD_BLOCK_SIZE
            self._live_leaf().grow(size)
            self.size = size
            return size

    def destroy(self):
        with self.lock:
            self.mirrors = []
            self.watchers = []
            leaf, self.leaf = self.leaf, None
        if leaf is not None:
            leaf.release()

    def physical(self):
        return self._live_leaf().physical()

    def copy_to(self, dest, base=None, progress=None, throttle=None):
        """Write this disk's content into ``dest``, block by block.

        Only blocks that may differ are read: every allocated block, or
        with ``base`` (whose content ``dest`` already holds) the blocks held
        by layers that are not shared by both chains. All-zero blocks are
        skipped where ``dest`` reads zero already, so thin stays thin.
        ``progress(done, total)`` may raise to stop the copy; ``throttle``
        gets the byte count of each write. Returns bytes written.
        """
        if base is None:
            candidates = self.allocated_blocks()
            compare = None
        else:
            mine = set(self.chain())
            theirs = set(base.chain())
            nblocks = blocks_for(self.size)
            marks = bytearray(nblocks)
            for layer in mine.symmetric_difference(theirs):
                bm = layer.bitmap
                for i in range(min(nblocks, len(bm))):
                    if bm[i]:
                        marks[i] = 1
            candidates = [i for i in range(nblocks) if marks[i]]
            compare = base
        total = len(candidates)
        written = 0
        done = 0
        if progress:
            progress(0, total)
        next_report = max(1, total // 100)
        next_time = time.monotonic() + 0.1
        for run in _runs(candidates):
            datas = [self.read_block(b) for b in run]
            pending = []
            for b, data in zip(run, datas):
                if compare is not None:
                    if data == compare.read_block(b):
                        continue
                elif data == ZERO_BLOCK and dest.owner(b) is None:
                    continue
                pending.append((b, data))
            pending = dict(pending)
            for group in _runs(list(pending)):
                buf = b''.join(pending[b] for b in group)
                start = group[0] * BLOCK
                end = min(start + len(buf), dest.size)
                if throttle:
                    # Block by block, so that a bandwidth cap interleaves
                    # other traffic at block granularity.
                    for at in range(start, end, BLOCK):
                        throttle(min(BLOCK, end - at))
                dest.write_blocks(start, buf[:end - start])
                written += end - start
            done += len(run)
            if progress and (done == total or done >= next_report
                             or time.monotonic() >= next_time):
                # Often enough to cancel promptly, rarely enough that task
                # events do not slow the copy down.
                progress(done, total)
                next_report = done + max(1, total // 100)
                next_time = time.monotonic() + 0.1
        return written

    def write_blocks(self, offset, data):
        """A block-aligned write that bypasses the mirrors."""
        self.write(offset, data, mirror=False)

    def detach_mirror(self, mirror):
        with self.lock:
            if mirror in self.mirrors:
                self.mirrors.remove(mirror)


def invalid_size(opterr):
    """SM's XenError('VDISize') (79) as xapi relays it."""
    return errors.XapiError('SR_BACKEND_FAILURE_79', '',
                            'VDI Invalid size [opterr=%s]' % opterr, '')


def _bit_runs(mask):
    """(first, end) sector ranges of the set bits of ``mask``."""
    i = 0
    while mask:
        if mask & 1:
            start = i
            while mask & 1:
                mask >>= 1
                i += 1
            yield start, i
        else:
            low = (mask & -mask).bit_length() - 1
            mask >>= low
            i += low


def _runs(blocks, limit=COPY_RUN):
    """Split sorted block indexes into runs of consecutive indexes."""
    run = []
    for b in blocks:
        if run and (b != run[-1] + 1 or len(run) >= limit):
            yield run
            run = []
        run.append(b)
    if run:
        yield run
