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

"""Data plane benchmark: ``Async.VDI.copy`` against ``cp --sparse=always``.

It starts the simulator in-process, logs in to pool-a with the real
``XenAPI`` client over HTTP, creates a VDI (default 1 GiB) on the thick
``lvm`` SR and fills half of it by ``PUT /import_raw_vdi``: by default the
first 1 MiB of every 2 MiB region (``--pattern extents``, data laid out in
extents as a filesystem leaves it), or a random half of the 64 KiB blocks
(``--pattern random``, the fragmented worst case). The data come from a
seeded PRNG: non-zero and incompressible.

It then times, interleaved ``--repeat`` times (cp, copy, cp, copy...):

* ``cp --sparse=always`` of the source VDI's backing file (the thick leaf
  layer) to a file on the same filesystem;
* ``Async.VDI.copy`` of the VDI to the thin ``ext`` SR of the same pool,
  from the call to the task's completion seen through ``event.from``.

Every copy is checked: the sha256 of ``GET /export_raw_vdi`` of source
and destination (and of the cp output) must equal that of the uploaded
image, and after ``SR.scan`` the destination's ``physical_utilisation``
must be the written half, not the virtual size. Caches are not dropped;
``sync`` runs before each measurement so that neither inherits the other's
dirty pages. The table shows the medians; ``bytes`` is the data held (the
written half), the same for both, so the throughput ratio is the inverse
of the time ratio.

Run from the top of the repository::

    .venv/bin/python bench/dataplane.py [--size 1GiB] [--repeat 3]
        [--pattern extents|random] [--dir DIR]
"""

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

import XenAPI

from sxm_core import transfer
from xapi_sim import sim as simmod
from xapi_sim import storage

POOL = 'pool-a'
CHUNK = 1 << 20
REGION = 2 << 20
EVENT_TIMEOUT = 30.0


class BenchError(Exception):
    pass


class _Digest(object):
    """A write-only file that keeps the sha256 of what it is given."""

    def __init__(self):
        self.digest = hashlib.sha256()

    def write(self, data):
        self.digest.update(data)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description='Time Async.VDI.copy (thick lvm -> thin ext) against '
                    'cp --sparse=always of the same bytes.')
    p.add_argument('--size', default='1GiB',
                   help='virtual size of the VDI (default 1GiB); a '
                        'multiple of 64 KiB')
    p.add_argument('--repeat', type=int, default=3,
                   help='measurements of each, interleaved (default 3)')
    p.add_argument('--pattern', choices=('extents', 'random'),
                   default='extents',
                   help='extents: the first half of each 2 MiB region '
                        '(default); random: a random half of the 64 KiB '
                        'blocks')
    p.add_argument('--dir', default=tempfile.gettempdir(),
                   help='where the simulator keeps its SRs and cp its '
                        'output; put it on the filesystem you want to '
                        'measure (default %(default)s)')
    p.add_argument('--seed', type=int, default=0,
                   help='PRNG seed of the data and the random layout')
    args = p.parse_args(argv)
    try:
        args.size = simmod.parse_size(args.size)
    except ValueError as exc:
        p.error(str(exc))
    if args.size <= 0 or args.size % storage.BLOCK:
        p.error('--size must be a positive multiple of 64 KiB')
    if args.repeat < 1:
        p.error('--repeat must be at least 1')
    return args


# -- the image -------------------------------------------------------------

def data_blocks(size, pattern, seed):
    """A bytearray, one byte per 64 KiB block: 1 where data is written."""
    nblocks = storage.blocks_for(size)
    marks = bytearray(nblocks)
    if pattern == 'extents':
        per_region = REGION // storage.BLOCK
        for b in range(nblocks):
            if b % per_region < per_region // 2:
                marks[b] = 1
    else:
        for b in random.Random(seed).sample(range(nblocks), nblocks // 2):
            marks[b] = 1
    return marks


def image_chunks(size, marks, seed):
    """Yield the raw image in 1 MiB chunks; zeros where nothing is written.

    Never holds more than one chunk: the image is generated as it is sent.
    """
    rng = random.Random(seed + 1)
    for offset in range(0, size, CHUNK):
        chunk = bytearray(min(CHUNK, size - offset))
        for pos in range(0, len(chunk), storage.BLOCK):
            if marks[(offset + pos) // storage.BLOCK]:
                n = min(storage.BLOCK, len(chunk) - pos)
                chunk[pos:pos + n] = rng.randbytes(n)
        yield bytes(chunk)


# -- XenAPI and HTTP ---------------------------------------------------------

class Client(object):
    def __init__(self, url, username, password):
        self.url = url
        self.session = XenAPI.Session(url)
        self.session.xenapi.login_with_password(
            username, password, '1.0', 'bench-dataplane')
        self.xenapi = self.session.xenapi

    @property
    def session_id(self):
        return self.session._session

    def logout(self):
        try:
            self.xenapi.session.logout()
        except Exception:  # the server may already be gone
            pass

    def import_raw(self, vdi, size, chunks):
        """PUT the image chunk by chunk; returns its sha256 hex digest."""
        digest = hashlib.sha256()

        def hashed():
            for chunk in chunks:
                digest.update(chunk)
                yield chunk
        transfer.put(self.url, self.session_id, vdi, hashed(), size)
        return digest.hexdigest()

    def export_sha256(self, vdi):
        """sha256 hex digest and length of GET /export_raw_vdi."""
        sink = _Digest()
        total = transfer.get(self.url, self.session_id, vdi, sink)
        return sink.digest.hexdigest(), total

    def wait_task(self, task, timeout):
        """Block on event.from until ``task`` leaves pending; its record."""
        event_from = getattr(self.xenapi.event, 'from')
        classes = ['task/%s' % task]
        token = ''
        deadline = time.monotonic() + timeout
        while True:
            # The empty token returns the task as it is now, so a task that
            # finished before the first call is not missed.
            out = event_from(classes, token, EVENT_TIMEOUT)
            token = out['token']
            for ev in out['events']:
                if ev['ref'] != task:
                    continue
                if ev['operation'] == 'del':
                    raise BenchError('task %s vanished' % task)
                snap = ev.get('snapshot') or {}
                if snap.get('status') not in (None, 'pending', 'cancelling'):
                    return self.xenapi.task.get_record(task)
            if time.monotonic() > deadline:
                raise BenchError('task %s still pending after %ds'
                                 % (task, timeout))


def task_result_ref(result):
    """The ref in a task's ``result`` (``<value>OpaqueRef:...</value>``)."""
    return ''.join(ElementTree.fromstring(result).itertext()).strip()


def find_sr(xenapi, sr_type):
    for ref, rec in xenapi.SR.get_all_records().items():
        if rec['type'] == sr_type:
            return ref
    raise BenchError('no %s SR in %s' % (sr_type, POOL))


def create_vdi(xenapi, sr, size, label):
    return xenapi.VDI.create({
        'name_label': label, 'name_description': 'bench/dataplane.py',
        'SR': sr, 'virtual_size': str(size), 'type': 'user',
        'sharable': False, 'read_only': False, 'other_config': {},
        'xenstore_data': {}, 'sm_config': {}, 'tags': []})


def allocated_bytes(path):
    return os.stat(path).st_blocks * 512


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            data = f.read(CHUNK)
            if not data:
                break
            digest.update(data)
    return digest.hexdigest()


# -- the measurements --------------------------------------------------------

def time_cp(src, dst, expected_sha):
    os.sync()
    t0 = time.perf_counter()
    subprocess.run(['cp', '--sparse=always', src, dst], check=True)
    seconds = time.perf_counter() - t0
    try:
        if file_sha256(dst) != expected_sha:
            raise BenchError('cp output differs from the image')
        alloc = allocated_bytes(dst)
    finally:
        os.unlink(dst)
    return seconds, alloc


def time_copy(client, sim, src_vdi, dest_sr, expected_sha, data_bytes,
              created):
    xenapi = client.xenapi
    os.sync()
    t0 = time.perf_counter()
    task = xenapi.Async.VDI.copy(src_vdi, dest_sr)
    rec = client.wait_task(task, timeout=3600)
    seconds = time.perf_counter() - t0
    try:
        if rec['status'] != 'success':
            raise BenchError('VDI.copy: %s %s' % (rec['status'],
                                                  rec['error_info']))
        dest = task_result_ref(rec['result'])
    finally:
        xenapi.task.destroy(task)
    created.append(dest)
    try:
        sha, length = client.export_sha256(dest)
        if sha != expected_sha or length != int(
                xenapi.VDI.get_virtual_size(src_vdi)):
            raise BenchError('destination differs from the source')
        xenapi.SR.scan(dest_sr)
        phys = int(xenapi.VDI.get_physical_utilisation(dest))
        if phys > data_bytes + storage.BLOCK:
            raise BenchError('destination is not thin: physical_utilisation '
                             '%d for %d bytes of data' % (phys, data_bytes))
        alloc = allocated_bytes(sim.pools[POOL].disk(dest).leaf.path)
    finally:
        xenapi.VDI.destroy(dest)
        created.remove(dest)
    return seconds, phys, alloc


def median(values):
    return statistics.median(values)


def rate(nbytes, seconds, unit):
    return nbytes / unit / seconds if seconds > 0 else float('inf')


def print_table(data_bytes, cp_times, copy_times):
    rows = [('cp --sparse=always', data_bytes, median(cp_times)),
            ('Async.VDI.copy lvm->ext', data_bytes, median(copy_times))]
    print('%-24s %12s %9s %9s %9s' % ('operation', 'bytes', 'seconds',
                                      'MB/s', 'MiB/s'))
    for name, nbytes, seconds in rows:
        print('%-24s %12d %9.3f %9.1f %9.1f'
              % (name, nbytes, seconds, rate(nbytes, seconds, 1e6),
                 rate(nbytes, seconds, 1 << 20)))
    ratio = (rate(data_bytes, median(copy_times), 1)
             / rate(data_bytes, median(cp_times), 1))
    print('ratio copy/cp throughput: %.2f (target >= 0.70: %s)'
          % (ratio, 'met' if ratio >= 0.7 else 'NOT met'))
    return ratio


def run(args, workdir):
    sim = simmod.Simulator(root=os.path.join(workdir, 'sim')).start()
    client = None
    created = []
    try:
        client = Client(sim.pools[POOL].url, simmod.DEFAULT_USERNAME,
                        simmod.DEFAULT_PASSWORD)
        xenapi = client.xenapi
        lvm = find_sr(xenapi, 'lvm')
        ext = find_sr(xenapi, 'ext')

        marks = data_blocks(args.size, args.pattern, args.seed)
        data_bytes = sum(min(storage.BLOCK, args.size - b * storage.BLOCK)
                         for b in range(len(marks)) if marks[b])
        src = create_vdi(xenapi, lvm, args.size, 'bench-source')
        created.append(src)
        t0 = time.perf_counter()
        image_sha = client.import_raw(
            src, args.size, image_chunks(args.size, marks, args.seed))
        import_s = time.perf_counter() - t0
        sha, length = client.export_sha256(src)
        if sha != image_sha or length != args.size:
            raise BenchError('the source VDI does not hold the image')
        leaf = sim.pools[POOL].disk(src).leaf.path

        print('size %d bytes (%.2f GiB), pattern %s, data %d bytes, '
              'repeat %d, dir %s'
              % (args.size, args.size / (1 << 30), args.pattern, data_bytes,
                 args.repeat, workdir))
        print('import_raw_vdi: %.3f s; source physical_utilisation %s '
              '(thick), backing file %s allocated %d'
              % (import_s, xenapi.VDI.get_physical_utilisation(src),
                 os.path.basename(leaf), allocated_bytes(leaf)))

        cp_times, copy_times = [], []
        for i in range(args.repeat):
            cp_s, cp_alloc = time_cp(leaf, os.path.join(workdir, 'cp.img'),
                                     image_sha)
            copy_s, phys, alloc = time_copy(client, sim, src, ext, image_sha,
                                            data_bytes, created)
            cp_times.append(cp_s)
            copy_times.append(copy_s)
            print('run %d: cp %.3f s (output allocated %d), copy %.3f s '
                  '(physical_utilisation %d, allocated %d); checksums ok'
                  % (i + 1, cp_s, cp_alloc, copy_s, phys, alloc))
        print()
        print_table(data_bytes, cp_times, copy_times)
    finally:
        if client is not None:
            for vdi in created:
                try:
                    client.xenapi.VDI.destroy(vdi)
                except Exception as exc:
                    print('cleanup: VDI.destroy %s: %s' % (vdi, exc),
                          file=sys.stderr)
            client.logout()
        sim.stop()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    workdir = tempfile.mkdtemp(prefix='bench-dataplane-', dir=args.dir)
    try:
        run(args, workdir)
    except (BenchError, transfer.TransferFailed) as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
