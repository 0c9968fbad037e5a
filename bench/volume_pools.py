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

"""What Cinder adds to moving a detached volume between XAPI pools.

One process runs real Cinder services (API, scheduler, and one volume
service per backend: ``sxm`` on pool-a, ``sxm-b`` on pool-b) and the XAPI
simulator, through the functional tests' harness
(``cinder_sxm.tests.functional.base.TwoBackendsTestCase``).

For each measurement a ``--size`` volume is made on pool-a's thick
``gold`` SR through the Cinder API and ``--written`` bytes of seeded PRNG
data are written into it in 1 MiB extents spread over the disk (a sparse
raw image through ``PUT /import_raw_vdi``: the holes stay holes). Then,
taking turns which goes first:

* cinder: ``os-retype`` from type ``on-a`` to ``on-b`` (types naming
  only a backend, so that Cinder hands the move to the driver; each
  backend serves one SR here, pool-b's thick ``copper``), policy
  on-demand: the driver copies the VDI between the pools
  (``sxm_core.crosspool.copy_vdi``), then destroys the source. The clock
  runs from the API call until the volume manager's ``retype`` returns
  (a condition wait); the API must then show the volume ``available`` on
  ``sxmhost@sxm-b#copper``;
* core: ``crosspool.copy_vdi`` of the volume's VDI to the same SR, called
  directly with two SessionPools (the volume is then deleted).

Each copy's bytes are checked (sha256 of the destination's raw export
against the source's). The bytes on the wire are the copy's three
streams: the source's VHD export, its import into the destination, the
destination's VHD export that verifies it. Medians and cinder / core are
printed.

Run from the top of the repository::

    .venv/bin/python bench/volume_pools.py
    .venv/bin/python bench/volume_pools.py --size 2GiB --written 1GiB
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

# First: eventlet must patch threading before anything else imports it
# (as cinder's own test packages do).
from cinder import monkey_patch  # noqa: E402,I100
monkey_patch.patch()

from benchlib import human  # noqa: E402,H306
from benchlib import run_case  # noqa: E402
from benchlib import told_when_done  # noqa: E402
from cinder_sxm.tests.functional import base  # noqa: E402,H306
from sxm_core import crosspool  # noqa: E402
from sxm_core import sessions  # noqa: E402
from sxm_core import transfer  # noqa: E402
from xapi_sim import sim as simmod  # noqa: E402

ARGS = None
RESULTS = []      # (kind, seconds, bytes on the wire)
GiB = 1 << 30
MiB = 1 << 20


class VolumeBetweenPools(base.TwoBackendsTestCase):

    def backend_options(self):
        options = super().backend_options()
        # One SR each: each arm has one place to go.
        options[base.BACKEND]['sxm_srs'] = ['gold']
        options[base.BACKEND_B]['sxm_srs'] = ['copper']
        return options

    def setUp(self):
        super().setUp()
        # Types naming a backend and nothing else: Cinder hands a retype
        # between them to the driver.
        for name, backend in (('on-a', base.BACKEND),
                              ('on-b', base.BACKEND_B)):
            self.api.api_post('/types', {'volume_type': {
                'name': name, 'extra_specs': {
                    'volume_backend_name': backend}}})
        # A run lasts minutes: the volume services must not look down to
        # the scheduler while the data plane keeps the process busy.
        self.override_config('service_down_time', 3600)
        self.copies = []
        copy_vdi = crosspool.copy_vdi

        def counted(*args, **kwargs):
            result = copy_vdi(*args, **kwargs)
            self.copies.append(result)
            return result
        # The driver's copy, counted: what it sent is the figure wanted.
        crosspool.copy_vdi = counted
        self.addCleanup(setattr, crosspool, 'copy_vdi', copy_vdi)

    def pool(self, name):
        return sessions.SessionPool(self.simfix.url(name),
                                    self.simfix.username,
                                    self.simfix.password)

    def extents(self):
        """(offset, bytes) of ``--written`` bytes in 1 MiB extents."""
        rng = random.Random(ARGS.seed)
        slots = ARGS.size // MiB
        every = 1 if ARGS.contiguous else slots // (ARGS.written // MiB)
        for i in range(ARGS.written // MiB):
            yield i * every * MiB, rng.randbytes(MiB)

    def fill(self, vdi):
        """The extents at their offsets, the rest holes.

        A sparse raw image streamed whole: xapi's import skips zero
        blocks, so the VDI holds only the extents.
        """
        size = int(self.xapi.VDI.get_virtual_size(vdi))
        with tempfile.TemporaryFile() as f:
            f.truncate(size)
            for offset, data in self.extents():
                f.seek(offset)
                f.write(data)
            f.seek(0)
            transfer.put(self.url('pool-a'), self.session.handle, vdi, f,
                         size, timeout=600)

    def run_cinder(self, vol):
        with told_when_done(self.volume.manager, 'retype') as done:
            started = time.monotonic()
            self.action(vol['id'], {'os-retype': {
                'new_type': 'on-b', 'migration_policy': 'on-demand'}})
            done.wait(1800)
            seconds = time.monotonic() - started
        found = self.api.get_volume(vol['id'])
        assert found['status'] == 'available', found
        assert found['os-vol-host-attr:host'] == '%s#copper' % base.HOST_B
        return seconds, self.copies.pop()

    def run_core(self, vdi):
        (copper,) = self.xapi_b.SR.get_by_name_label('copper')
        source, dest = self.pool('pool-a'), self.pool('pool-b')
        try:
            started = time.monotonic()
            result = crosspool.copy_vdi(
                source, self.xapi.VDI.get_uuid(vdi), dest,
                self.xapi_b.SR.get_uuid(copper))
            seconds = time.monotonic() - started
        finally:
            source.close()
            dest.close()
        self.copies.pop()
        return seconds, result

    def test_bench(self):
        for rep in range(ARGS.repeat):
            order = (('cinder', 'core') if rep % 2 == 0
                     else ('core', 'cinder'))
            for kind in order:
                self.report_capabilities()
                self.report_capabilities(self.volume_b, base.HOST_B)
                vol = self.create_volume('on-a', size=ARGS.size // GiB)
                vdi, sr = self.vdi_of(vol['id'])
                assert sr == 'gold', sr
                self.fill(vdi)
                expected = self.digest(vdi)
                if kind == 'cinder':
                    seconds, result = self.run_cinder(vol)
                else:
                    seconds, result = self.run_core(vdi)
                got = self.digest_b(result.vdi_uuid)
                assert got == expected, (kind, got, expected)
                wire = (result.sent_bytes + result.received_bytes
                        + result.verify_bytes)
                RESULTS.append((kind, seconds, wire))
                print('  %d %-6s %7.2f s  %s on the wire (export %s, '
                      'import %s, verify %s)' % (
                          rep + 1, kind, seconds, human(wire),
                          human(result.sent_bytes),
                          human(result.received_bytes),
                          human(result.verify_bytes)),
                      file=sys.__stderr__, flush=True)
                if kind == 'core':
                    self.xapi_b.VDI.destroy(
                        self.xapi_b.VDI.get_by_uuid(result.vdi_uuid))
                self.api.delete_volume(vol['id'])


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--size', type=simmod.parse_size, default='1GiB',
                        help='volume size, whole GiB')
    parser.add_argument('--written', type=simmod.parse_size,
                        default='512MiB',
                        help='bytes of data in the volume (1 MiB extents)')
    parser.add_argument('--contiguous', action='store_true',
                        help='write the data at the start of the volume '
                             '(default: 1 MiB extents spread evenly, which '
                             'touches every 2 MiB VHD block of a half-'
                             'written volume)')
    parser.add_argument('--seed', type=int, default=3)
    ARGS = parser.parse_args()
    if ARGS.size % GiB or ARGS.written > ARGS.size or ARGS.written % MiB:
        parser.error('--size must be whole GiB and hold --written (whole '
                     'MiB)')
    print('detached volume between pools, Cinder vs sxm_core: %d '
          'repetitions, gold (pool-a) -> copper (pool-b), volume %s with %s '
          'written %s' % (ARGS.repeat, human(ARGS.size), human(ARGS.written),
                          'at its start' if ARGS.contiguous
                          else 'in 1 MiB extents spread evenly'),
          flush=True)
    if not run_case(VolumeBetweenPools):
        return 1
    print('%-7s %6s %10s %12s %s' % ('path', 'runs', 'median s',
                                     'wire', 'each s'))
    medians = {}
    for kind in ('core', 'cinder'):
        rows = [(s, w) for k, s, w in RESULTS if k == kind]
        medians[kind] = statistics.median(s for s, _ in rows)
        print('%-7s %6d %10.2f %12s %s' % (
            kind, len(rows), medians[kind],
            human(statistics.median(w for _, w in rows)),
            ' '.join('%.2f' % s for s, _ in rows)))
    print('cinder / core: %.2fx' % (medians['cinder'] / medians['core']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
