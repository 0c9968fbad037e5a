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

"""What Nova adds to a live block migration: Nova end to end vs the core.

One process runs real Nova services (API, conductor, scheduler, placement,
two nova-computes on the SXM driver) and the XAPI simulator, through the
same harness as the functional tests (``nova_sxm.tests.functional.base``).
The simulator's link between the pools is capped with ``configure
bandwidth`` for the whole run.

Each repetition boots two servers on host1 (pool-a) with the same image
(``--image-size`` of seeded PRNG data in a 1 GiB root disk) and a blank
1 GiB ephemeral disk, starts the same guest workload on both disks of each
(uniform random 4 KiB writes at ``--rate`` bytes/s per disk) and then,
taking turns which goes first:

* nova: ``os-migrateLive`` (``block_migration`` true, host2) through the
  API; the clock stops at nova's ``instance.live_migration_post.end``
  notification (a condition wait, no polling); then the Migration must
  say ``completed`` and the server be ACTIVE on host2;
* core: what the driver does below Nova, without Nova: a ``Migrator`` of
  ``sxm_core.migrate`` over HTTP (a long-lived session pool to pool-a, a
  new one to pool-b per migration, as the driver has), ``plan`` (disks to
  pool-b's ext SR), ``check`` (preflight and ``VM.assert_can_migrate``)
  and ``migrate``; the clock covers all of it.

After each migration the guest checker must find every written byte at
the destination. The medians and the ratio nova / core are printed; the
target is at most 1.2.

Run from the top of the repository (about a minute per repetition)::

    .venv/bin/python bench/nova_vs_core.py
    .venv/bin/python bench/nova_vs_core.py --repeat 5 --bandwidth 16MiB
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

# First: it sets nova's threading mode before anything imports eventlet.
from nova_sxm.tests.functional import base  # noqa: E402,I100

from benchlib import human  # noqa: E402,H306
from nova import context as nova_context  # noqa: E402,H306
from nova import objects  # noqa: E402
from sxm_core import migrate  # noqa: E402
from sxm_core import plan as planmod  # noqa: E402
from sxm_core import sessions  # noqa: E402
from xapi_sim import sim as simmod  # noqa: E402

ARGS = None
RESULTS = []      # (kind, seconds, bytes sent)


class NovaVsCore(base.SxmServicesTestCase):

    def session_pool(self, pool):
        return sessions.SessionPool(self.simfix.url(pool),
                                    self.simfix.username,
                                    self.passwords[pool])

    def boot(self, image, flavor):
        server = self._create_server(image_uuid=image, flavor_id=flavor,
                                     host='host1', networks='none')
        _, rec = self.vm_of(server, 'pool-a')
        self.write(rec['uuid'], ('0', '4'), rate=ARGS.rate, seed=5,
                   ctl=self.ctl['pool-a'])
        self.wait_writes(rec['uuid'], 5, ctl=self.ctl['pool-a'])
        return server, rec['uuid']

    def run_nova(self, server, count):
        """Seconds from the API call to the end of the source's work.

        The clock stops at the ``instance.live_migration_post.end``
        notification (nova sets the Migration ``completed`` right after):
        a condition wait, so nothing polls while the data moves (a poll in
        this process would compete with the simulator's data plane).
        """
        started = time.monotonic()
        self.api.post_server_action(server['id'], {
            'os-migrateLive': {'host': 'host2', 'block_migration': True}})
        self.notifier.wait_for_versioned_notifications(
            'instance.live_migration_post.end', n_events=count, timeout=600)
        seconds = time.monotonic() - started
        ctxt = nova_context.get_admin_context()

        def completed():
            return objects.MigrationList.get_by_filters(
                ctxt, {'instance_uuid': server['id']})[0].status == \
                'completed'
        self.poll(completed, timeout=60, what='the migration completed')
        found = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('host2', found['OS-EXT-SRV-ATTR:host'])
        return seconds

    def run_core(self, source, vm_uuid):
        api_b = self.xapi['pool-b']
        host_b = api_b.host.get_uuid(api_b.pool.get_master(
            api_b.pool.get_all()[0]))
        ext_b = self.sr_uuid('pool-b', 'Local storage (ext)')
        started = time.monotonic()
        dest = self.session_pool('pool-b')
        try:
            migrator = migrate.Migrator(source, dest)
            vm = source.call('VM.get_by_uuid', vm_uuid)
            own = [source.call('VDI.get_uuid', source.call('VBD.get_VDI',
                                                           vbd))
                   for vbd in source.call('VM.get_VBDs', vm)
                   if source.call('VBD.get_type', vbd) == 'Disk']
            the_plan, problems = migrator.plan(
                vm, dest_host=host_b, sr_map={v: ext_b for v in own},
                network_map={})
            problems = migrator.check(the_plan)
            self.assertEqual([], [p.message for p in
                                  planmod.blocking(problems)])
            migrator.migrate(the_plan)
        finally:
            dest.close()
        return time.monotonic() - started

    def sent(self, vm_uuid):
        return sum(m['bytes_sent'] for m in self.ctl['pool-a'].migrations()
                   if m['vm'] == vm_uuid)

    def test_bench(self):
        self.ctl['pool-a'].configure(bandwidth=ARGS.bandwidth)
        image = self.make_image(
            random.Random(ARGS.seed).randbytes(ARGS.image_size))
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=1)
        source = self.session_pool('pool-a')
        self.addCleanup(source.close)
        for rep in range(ARGS.repeat):
            order = ('nova', 'core') if rep % 2 == 0 else ('core', 'nova')
            for kind in order:
                server, vm_uuid = self.boot(image, flavor)
                if kind == 'nova':
                    seconds = self.run_nova(server, rep + 1)
                else:
                    seconds = self.run_core(source, vm_uuid)
                self.stop_and_check(vm_uuid, ctl=self.ctl['pool-b'],
                                    devices=('0', '4'), written=True)
                RESULTS.append((kind, seconds, self.sent(vm_uuid)))
                print('  %d %-4s %6.2f s' % (rep + 1, kind, seconds),
                      file=sys.__stderr__, flush=True)
                if kind == 'nova':
                    self._delete_server(server)


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--bandwidth', type=simmod.parse_size,
                        default='8MiB', help='bytes/s between the pools')
    parser.add_argument('--image-size', type=simmod.parse_size,
                        default='32MiB')
    parser.add_argument('--rate', type=simmod.parse_size, default='64KiB',
                        help='guest writes, bytes/s per disk')
    parser.add_argument('--seed', type=int, default=3)
    ARGS = parser.parse_args()
    print('nova vs core: %d repetitions, bandwidth %s/s, image %s, guest '
          'writes %s/s per disk' % (
              ARGS.repeat, human(ARGS.bandwidth), human(ARGS.image_size),
              human(ARGS.rate)), flush=True)
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(NovaVsCore))
    if not result.wasSuccessful():
        return 1
    print('%-5s %8s %10s %12s' % ('path', 'runs', 'median s',
                                  'median sent'))
    medians = {}
    for kind in ('core', 'nova'):
        secs = [s for k, s, _ in RESULTS if k == kind]
        sent = [b for k, _, b in RESULTS if k == kind]
        medians[kind] = statistics.median(secs)
        print('%-5s %8d %10.2f %12s' % (kind, len(secs), medians[kind],
                                        human(statistics.median(sent))))
    print('nova / core: %.2fx (target <= 1.2x)'
          % (medians['nova'] / medians['core']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
