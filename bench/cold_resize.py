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

"""What Nova adds to a cold cross-pool resize: Nova end to end vs the core.

One process runs real Nova services (API, conductor, scheduler, placement,
two nova-computes on the SXM driver: host1 on pool-a, host2 on pool-b) and
the XAPI simulator, through the functional tests' harness
(``nova_sxm.tests.functional.base``). The simulator's link between the
pools is capped with ``configure bandwidth`` for the whole run.

Each repetition boots two servers on host1 with the same image
(``--image-size`` of seeded PRNG data in a 1 GiB root disk) and a blank
1 GiB ephemeral disk, stops both (``os-stop``: the disks are halted), then,
taking turns which goes first:

* nova: ``resize`` to a flavor with more VCPUs and memory and the same
  disks through the API; the clock stops at Nova's
  ``instance.resize_finish.end`` notification (the copy runs in pool-b
  with the new flavor: VERIFY_RESIZE); then the resize is confirmed
  (not timed);
* core: the same copy without Nova: a ``Migrator`` of ``sxm_core.migrate``
  over HTTP, ``plan`` with ``copy`` (xapi's copy mode of
  ``VM.migrate_send``, disks to pool-b's ext SR), ``check`` and
  ``migrate``; the clock covers all of it.

After each copy the root disk's sha256 in pool-b must equal the source's.
The medians are printed with nova / core and nova - core (what Nova and the
driver add: power-off check, the compute node lookup, VIFs, the flavor
applied on the halted copy, RPC between the two computes).

Run from the top of the repository (about half a minute per repetition)::

    .venv/bin/python bench/cold_resize.py
    .venv/bin/python bench/cold_resize.py --repeat 5 --bandwidth 16MiB
"""

import hashlib
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

# First: it sets nova's threading mode before anything imports eventlet.
from nova_sxm.tests.functional import base  # noqa: E402,I100

import benchlib  # noqa: E402,H306
from benchlib import human  # noqa: E402
from sxm_core import migrate  # noqa: E402
from sxm_core import plan as planmod  # noqa: E402

ARGS = None
RESULTS = []      # (kind, seconds)
KINDS = ('nova', 'core')


class ColdResize(base.SxmServicesTestCase):

    def boot_halted(self, image, flavor):
        server = self._create_server(image_uuid=image, flavor_id=flavor,
                                     host='host1', networks='none')
        self.api.post_server_action(server['id'], {'os-stop': None})
        self._wait_for_state_change(server, 'SHUTOFF')
        vm, rec = self.vm_of(server, 'pool-a')
        return server, vm, rec['uuid']

    def root_digest(self, pool, vm):
        return self.export_digest(pool, self.disks_of(vm, pool)['0']['uuid'])

    def run_nova(self, server, flavor, count):
        started = time.monotonic()
        self.api.post_server_action(server['id'],
                                    {'resize': {'flavorRef': flavor}})
        self.notifier.wait_for_versioned_notifications(
            'instance.resize_finish.end', n_events=count, timeout=600)
        seconds = time.monotonic() - started
        self._wait_for_state_change(server, 'VERIFY_RESIZE')
        copy, _ = self.vm_of(server, 'pool-b')
        return seconds, copy

    def run_core(self, source, vm_uuid):
        host_b, ext_b = benchlib.pool_b_target(self)
        started = time.monotonic()
        dest = benchlib.session_pool(self, 'pool-b')
        try:
            migrator = migrate.Migrator(source, dest)
            the_plan, problems = migrator.plan(vm_uuid, dest_host=host_b,
                                               sr=ext_b, copy=True)
            problems = migrator.check(the_plan)
            self.assertEqual([], [p.message for p in
                                  planmod.blocking(problems)])
            result = migrator.migrate(the_plan)
        finally:
            dest.close()
        return time.monotonic() - started, result.vm_ref

    def test_bench(self):
        self.ctl['pool-a'].configure(bandwidth=ARGS.bandwidth)
        image = self.make_image(
            random.Random(ARGS.seed).randbytes(ARGS.image_size))
        small = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                    ephemeral=1)
        big = self._create_flavor(memory_mb=512, vcpu=2, disk=1,
                                  ephemeral=1)
        expected = hashlib.sha256(random.Random(ARGS.seed).randbytes(
            ARGS.image_size) + bytes(base.MiB * 1024 - ARGS.image_size))
        source = benchlib.session_pool(self, 'pool-a')
        self.addCleanup(source.close)
        resizes = 0
        for rep in range(ARGS.repeat):
            order = KINDS[rep % 2:] + KINDS[:rep % 2]
            for kind in order:
                server, vm, vm_uuid = self.boot_halted(image, small)
                self.assertEqual(expected.hexdigest(),
                                 self.root_digest('pool-a', vm))
                if kind == 'nova':
                    resizes += 1
                    seconds, copy = self.run_nova(server, big, resizes)
                else:
                    seconds, copy = self.run_core(source, vm_uuid)
                self.assertEqual(expected.hexdigest(),
                                 self.root_digest('pool-b', copy))
                RESULTS.append((kind, seconds))
                print('  %d %-4s %6.2f s' % (rep + 1, kind, seconds),
                      file=sys.__stderr__, flush=True)
                if kind == 'nova':
                    self.api.post_server_action(server['id'],
                                                {'confirmResize': None})
                    self._wait_for_state_change(server, 'SHUTOFF')
                else:
                    self.destroy_copy(copy)
                self._delete_server(server)

    def destroy_copy(self, vm):
        api = self.xapi['pool-b']
        vdis = [api.VBD.get_VDI(v) for v in api.VM.get_VBDs(vm)]
        api.VM.destroy(vm)
        for vdi in vdis:
            if vdi != base.NULL:
                api.VDI.destroy(vdi)


def main():
    global ARGS
    parser = benchlib.nova_parser(__doc__.split('\n')[0], '64MiB')
    ARGS = parser.parse_args()
    print('cold resize, nova vs core: %d repetitions, bandwidth %s/s, '
          'image %s' % (ARGS.repeat, human(ARGS.bandwidth),
                        human(ARGS.image_size)), flush=True)
    if not benchlib.run_case(ColdResize):
        return 1
    print('%-5s %8s %10s' % ('path', 'runs', 'median s'))
    medians = {}
    for kind in KINDS:
        secs = [s for k, s in RESULTS if k == kind]
        medians[kind] = statistics.median(secs)
        print('%-5s %8d %10.2f' % (kind, len(secs), medians[kind]))
    print('nova / core: %.2fx; nova - core: %.2f s' % (
        medians['nova'] / medians['core'],
        medians['nova'] - medians['core']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
