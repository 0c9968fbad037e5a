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

"""Simulated guests: write workloads, a heartbeat, and the image checker.

A ``Domain`` is the running side of a VM, keyed by the VM's uuid so that it
survives a migration to another pool. Its workloads write through the VM's
plugged VBDs (looked up on every write, so a migration that swaps the disk
underneath is seen at once). Every written unit is derivable from
``(seed, seq, offset)``, and the journal keeps the last ``seq`` per offset,
so the checker can compute the exact image each disk must hold.
"""

import hashlib
import random
import struct
import threading
import time

from xapi_sim import storage

HEARTBEAT_INTERVAL = 0.01
PATTERNS = ('sequential', 'uniform', 'hotspot')
_MAGIC = b'SXMW'
_LATENCY_SAMPLES = 200000


def unit_content(seed, seq, offset, size):
    """The bytes a guest write of ``size`` at ``offset`` carries."""
    head = struct.pack('<4sQQQ', _MAGIC, seed, seq, offset)
    fill = hashlib.blake2b(head, digest_size=64).digest()
    return (head + fill * (size // 64 + 1))[:size]


def _digest(data):
    return hashlib.sha256(data).digest()


class WorkloadError(ValueError):
    pass


class DiskWorkload(object):
    """One writer thread on one of a domain's disks."""

    def __init__(self, domain, userdevice, pattern='uniform', rate=0,
                 block_size=4096, seed=1, hot_fraction=0.1, hot_share=0.9):
        if pattern not in PATTERNS:
            raise WorkloadError('unknown pattern %r (one of %s)'
                                % (pattern, ', '.join(PATTERNS)))
        block_size = int(block_size)
        if (block_size <= 0 or storage.BLOCK % block_size
                or block_size % storage.SECTOR):
            raise WorkloadError('block_size must be a multiple of %d that '
                                'divides %d' % (storage.SECTOR,
                                                storage.BLOCK))
        if float(rate) < 0:
            raise WorkloadError('rate must not be negative')
        self.domain = domain
        self.userdevice = str(userdevice)
        self.pattern = pattern
        self.rate = float(rate)
        self.block_size = block_size
        self.seed = int(seed)
        self.hot_fraction = float(hot_fraction)
        self.hot_share = float(hot_share)
        self.journal = {}
        self.seq = 0
        self.bytes_written = 0
        self.errors = []
        self.latencies = []
        disk = domain.resolve(self.userdevice)
        self.size = disk.size
        self.units = self.size // block_size
        self.baseline = self._baseline(disk)
        self._rng = random.Random(self.seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True,
            name='guest-%s-%s' % (domain.vm_uuid[:8], self.userdevice))

    def _baseline(self, disk):
        # Digests of the units that were not zero when the workload began.
        base = {}
        per_block = storage.BLOCK // self.block_size
        for block in disk.allocated_blocks():
            data = disk.read_block(block)
            for i in range(per_block):
                offset = block * storage.BLOCK + i * self.block_size
                if offset + self.block_size > self.size:
                    break
                unit = data[i * self.block_size:(i + 1) * self.block_size]
                if unit.count(0) != len(unit):
                    base[offset] = _digest(unit)
        return base

    def start(self):
        self._thread.start()

    @property
    def alive(self):
        return self._thread.is_alive()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)

    def _next_offset(self):
        if self.pattern == 'sequential':
            unit = self.seq % self.units
        elif self.pattern == 'uniform':
            unit = self._rng.randrange(self.units)
        else:
            hot = max(1, int(self.units * self.hot_fraction))
            if self._rng.random() < self.hot_share:
                unit = self._rng.randrange(hot)
            else:
                unit = self._rng.randrange(self.units)
        return unit * self.block_size

    def _run(self):
        interval = self.block_size / self.rate if self.rate else 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            offset = self._next_offset()
            seq = self.seq + 1
            data = unit_content(self.seed, seq, offset, self.block_size)
            if not self.domain.io_begin(self._stop):
                break
            start = time.monotonic()
            try:
                disk = self.domain.resolve(self.userdevice)
                disk.write(offset, data)
                self.seq = seq
                self.journal[offset] = seq
                failed = False
            except Exception as exc:  # the guest sees an I/O error
                self.errors.append(str(exc))
                failed = True
            finally:
                self.domain.io_end()
            if failed:
                if len(self.errors) > 100:
                    break
                self._stop.wait(0.05)
                continue
            done = time.monotonic()
            self.bytes_written += self.block_size
            self.domain.wrote(done)
            if len(self.latencies) < _LATENCY_SAMPLES:
                self.latencies.append(done - start)
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -1.0:
                    next_at = time.monotonic()  # do not burst to catch up

    def expected_unit(self, offset):
        seq = self.journal.get(offset)
        if seq is not None:
            return _digest(unit_content(self.seed, seq, offset,
                                        self.block_size))
        return self.baseline.get(offset, _zero_digest(self.block_size))

    def check(self, disk):
        """Compare ``disk`` with the image this workload implies."""
        bad = []
        for unit in range(self.units):
            offset = unit * self.block_size
            actual = _digest(disk.read(offset, self.block_size))
            if actual != self.expected_unit(offset):
                bad.append(offset)
        return {
            'userdevice': self.userdevice,
            'ok': not bad,
            'mismatches': len(bad),
            'first_mismatches': bad[:16],
            'units_checked': self.units,
            'writes': self.seq,
            'distinct_offsets': len(self.journal),
        }

    def stats(self):
        lat = sorted(self.latencies)
        return {
            'userdevice': self.userdevice,
            'pattern': self.pattern,
            'rate': self.rate,
            'block_size': self.block_size,
            'writes': self.seq,
            'bytes_written': self.bytes_written,
            'errors': len(self.errors),
            'last_error': self.errors[-1] if self.errors else '',
            'latency_p50': _pct(lat, 0.50),
            'latency_p99': _pct(lat, 0.99),
        }


_zero_cache = {}


def _zero_digest(size):
    digest = _zero_cache.get(size)
    if digest is None:
        digest = _zero_cache[size] = _digest(bytes(size))
    return digest


def _pct(sorted_values, q):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1,
                             int(q * len(sorted_values)))]


class Domain(object):
    """The running state of one VM: its gate, heartbeat and workloads."""

    def __init__(self, vm_uuid, resolve):
        self.vm_uuid = vm_uuid
        # resolve(vm_uuid, userdevice) -> storage.Disk of a plugged RW VBD
        self._resolve = resolve
        self._gate = threading.Condition()
        self._alive = False
        self._paused = False
        self._inflight = 0
        self.workloads = {}
        self.lock = threading.Lock()
        self.max_gap = 0.0
        self.last_write = None
        self.max_write_gap = 0.0
        self._beat = None

    def resolve(self, userdevice):
        return self._resolve(self.vm_uuid, userdevice)

    # -- lifecycle: driven by the VM's power state --------------------------

    def boot(self):
        with self._gate:
            self._alive = True
            self._paused = False
            self._gate.notify_all()
        if self._beat is None:
            self._beat = threading.Thread(
                target=self._heartbeat, daemon=True,
                name='heartbeat-%s' % self.vm_uuid[:8])
            self._beat.start()

    def pause(self):
        """Stop the vCPUs; returns once no guest write is in flight."""
        with self._gate:
            self._paused = True
            while self._inflight:
                self._gate.wait()

    def unpause(self):
        with self._gate:
            self._paused = False
            self._gate.notify_all()

    def halt(self):
        with self._gate:
            self._alive = False
            self._gate.notify_all()
        for wl in list(self.workloads.values()):
            wl.stop()
        self.workloads.clear()
        if self._beat is not None:
            self._beat.join(timeout=5)
            self._beat = None

    @property
    def running(self):
        return self._alive and not self._paused

    def io_begin(self, stop):
        """Wait until the vCPUs run; False once halted or ``stop`` is set."""
        with self._gate:
            while self._alive and self._paused and not stop.is_set():
                self._gate.wait(0.05)
            if not self._alive or stop.is_set():
                return False
            self._inflight += 1
            return True

    def io_end(self):
        with self._gate:
            self._inflight -= 1
            self._gate.notify_all()

    # -- heartbeat -------------------------------------------------------

    def _heartbeat(self):
        last = time.monotonic()
        while True:
            with self._gate:
                while self._alive and self._paused:
                    self._gate.wait()
                if not self._alive:
                    break
            now = time.monotonic()
            with self.lock:
                self.max_gap = max(self.max_gap, now - last)
            last = now
            time.sleep(HEARTBEAT_INTERVAL)

    def wrote(self, when):
        with self.lock:
            if self.last_write is not None:
                self.max_write_gap = max(self.max_write_gap,
                                         when - self.last_write)
            self.last_write = when

    def reset_heartbeat(self):
        with self.lock:
            self.max_gap = 0.0
            self.max_write_gap = 0.0
            self.last_write = None

    # -- workloads -------------------------------------------------------

    def start_workload(self, userdevice, **params):
        if not self.running:
            raise WorkloadError('VM %s is not running' % self.vm_uuid)
        userdevice = str(userdevice)
        current = self.workloads.get(userdevice)
        if current is not None and current.alive:
            raise WorkloadError('disk %s already has a workload'
                                % userdevice)
        wl = DiskWorkload(self, userdevice, **params)
        self.workloads[userdevice] = wl
        wl.start()
        return wl

    def stop_workloads(self):
        for wl in self.workloads.values():
            wl._stop.set()
        for wl in self.workloads.values():
            wl.stop()

    def check(self):
        return [wl.check(self.resolve(ud))
                for ud, wl in sorted(self.workloads.items())]

    def stats(self):
        with self.lock:
            beat = {'max_gap': self.max_gap,
                    'max_write_gap': self.max_write_gap}
        beat['running'] = self.running
        beat['disks'] = [wl.stats() for _, wl in
                         sorted(self.workloads.items())]
        return beat
