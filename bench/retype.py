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

"""What Cinder adds to a live volume move: a retype vs VDI.pool_migrate.

One process runs real Cinder services (API, scheduler, volume on the SXM
driver) and the XAPI simulator, through the same harness as the
functional tests (``cinder_sxm.tests.functional.base``): pool-a has a
thick ``gold`` SR and a thin ``silver`` one, a Cinder pool each.

Each repetition makes two gold volumes of ``--size`` through the Cinder
API, writes ``--written`` bytes of seeded PRNG data into each
(``PUT /import_raw_vdi``), attaches each to its own running VM
(``os-attach``) whose guest writes uniformly at ``--rate`` bytes/s, and
then, taking turns which goes first:

* cinder: ``os-retype`` to the ``silver`` type (``migration_policy``
  on-demand) through the API; the driver moves the VDI live
  (``volumes.VdiMover.move``: VDI.pool_migrate under the volume's lock). The
  clock runs from the API call until the volume manager's ``retype``
  returns, the volume saved (a condition wait: a poll in this process
  would take CPU from the simulator's data plane); then the API must show
  the volume ``in-use`` on the silver type;
* xapi: ``Async.VDI.pool_migrate`` of the other volume's VDI to the
  silver SR, called with the XenAPI client over HTTP; the clock stops
  when ``event.from`` reports the task's end.

After each move the guest checker must find every written byte on the
new VDI, which must be on silver. The medians and cinder / xapi are
printed.

Run from the top of the repository::

    .venv/bin/python bench/retype.py
    .venv/bin/python bench/retype.py --size 1GiB --written 512MiB --repeat 3
"""

import argparse
import os
import random
import statistics
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

# First: eventlet must patch threading before anything else imports it
# (as cinder's own test packages do).
from cinder import monkey_patch  # noqa: E402,I100
monkey_patch.patch()

from benchlib import human  # noqa: E402,H306
from benchlib import told_when_done  # noqa: E402
from cinder_sxm.tests.functional import base  # noqa: E402,H306
from sxm_core import transfer  # noqa: E402
from xapi_sim import sim as simmod  # noqa: E402

ARGS = None
RESULTS = []      # (kind, seconds)
GiB = 1 << 30


class RetypeVsPoolMigrate(base.SxmCinderTestCase):

    def fill_vdi(self, vdi):
        """Streams ``--written`` seeded PRNG bytes to /import_raw_vdi."""
        rng = random.Random(ARGS.seed)

        def chunks():
            left = ARGS.written
            while left:
                n = min(left, 4 << 20)
                yield rng.randbytes(n)
                left -= n
        transfer.put(self.url('pool-a'), self.session.handle, vdi, chunks(),
                     ARGS.written, timeout=600)

    def setUp(self):
        super().setUp()
        # A run lasts minutes: the volume service must not look down to
        # the scheduler when the data plane keeps the process busy.
        self.override_config('service_down_time', 3600)

    def attached_volume(self, name):
        """A written gold volume plugged into a running VM that writes."""
        self.report_capabilities()  # fresh free space after each move
        vol = self.create_volume('gold', size=ARGS.size // GiB)
        vdi, sr = self.vdi_of(vol['id'])
        assert sr == 'gold', sr
        self.fill_vdi(vdi)
        vm = self.attach_to_running_vm(vol, vdi, name, rate=ARGS.rate,
                                       seed=9)
        self.wait_writes(vm, 5)
        return vol, vdi, vm

    def run_cinder(self, vol):
        with told_when_done(self.volume.manager, 'retype') as done:
            started = time.monotonic()
            self.action(vol['id'], {'os-retype': {
                'new_type': 'silver', 'migration_policy': 'on-demand'}})
            done.wait(600)
            seconds = time.monotonic() - started
        found = self.api.get_volume(vol['id'])
        assert (found['status'], found['volume_type']) == (
            'in-use', 'silver'), found
        return seconds, self.vdi_of(vol['id'])

    def run_xapi(self, vdi):
        (silver,) = self.xapi.SR.get_by_name_label('silver')
        started = time.monotonic()
        task = self.xapi.Async.VDI.pool_migrate(vdi, silver, {})
        token = ''
        while self.xapi.task.get_status(task) == 'pending':
            token = self.xapi.event_from(['task/%s' % task], token,
                                         30.0)['token']
        seconds = time.monotonic() - started
        status = self.xapi.task.get_status(task)
        assert status == 'success', self.xapi.task.get_error_info(task)
        new = self.xapi.task.get_result(task)
        new = new.replace('<value>', '').replace('</value>', '')
        self.xapi.task.destroy(task)
        return seconds, (new, self.xapi.SR.get_name_label(
            self.xapi.VDI.get_SR(new)))

    def test_bench(self):
        for rep in range(ARGS.repeat):
            order = (('cinder', 'xapi') if rep % 2 == 0
                     else ('xapi', 'cinder'))
            for kind in order:
                vol, vdi, vm = self.attached_volume('%s-%d' % (kind, rep))
                if kind == 'cinder':
                    seconds, (new, sr) = self.run_cinder(vol)
                else:
                    seconds, (new, sr) = self.run_xapi(vdi)
                assert sr == 'silver', sr
                self.stop_and_check(vm, devices=['1'], written=True)
                RESULTS.append((kind, seconds))
                print('  %d %-6s %7.2f s' % (rep + 1, kind, seconds),
                      file=sys.__stderr__, flush=True)
                self.xapi.VM.hard_shutdown(vm)


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--size', type=simmod.parse_size, default='1GiB',
                        help='volume size, whole GiB')
    parser.add_argument('--written', type=simmod.parse_size,
                        default='1GiB',
                        help='bytes of data written before the move')
    parser.add_argument('--rate', type=simmod.parse_size, default='256KiB',
                        help='guest writes during the move, bytes/s')
    parser.add_argument('--seed', type=int, default=3)
    ARGS = parser.parse_args()
    if ARGS.size % GiB or ARGS.written > ARGS.size:
        parser.error('--size must be whole GiB and hold --written')
    print('retype vs VDI.pool_migrate: %d repetitions, gold -> silver, '
          'volume %s with %s written, guest writes %s/s' % (
              ARGS.repeat, human(ARGS.size), human(ARGS.written),
              human(ARGS.rate)), flush=True)
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(
            RetypeVsPoolMigrate))
    if not result.wasSuccessful():
        return 1
    print('%-7s %6s %10s %s' % ('path', 'runs', 'median s', 'each'))
    medians = {}
    for kind in ('xapi', 'cinder'):
        secs = [s for k, s in RESULTS if k == kind]
        medians[kind] = statistics.median(secs)
        print('%-7s %6d %10.2f %s' % (kind, len(secs), medians[kind],
                                      ' '.join('%.2f' % s for s in secs)))
    print('cinder / xapi: %.2fx' % (medians['cinder'] / medians['xapi']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
