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
two nova-computes on the SXM driver, two on Nova's fake driver) and the
XAPI simulator, through the same harness as the functional tests
(``nova_sxm.tests.functional.base``).
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
  and ``migrate``; the clock covers all of it;
* floor: Nova's own cost, the same ``os-migrateLive`` through the same
  services between host3 and host4, two nova-computes on Nova's fake
  driver (``nova.virt.fake.MediumFakeDriver``, as Nova's functional
  tests migrate live: its ``live_migration`` calls Nova's post method at
  once; ``FakeLiveMigrateDriver`` would hold each migration 5 s for a
  force-complete), a server of the same flavor; the same clock.

After each SXM migration the guest checker must find every written byte
at the destination. The medians are printed, with nova / core (target at
most 1.2) and the seconds of a migration through Nova split: the core's
work, Nova's own (the floor) and the driver's, what is left (nova - core
- floor; target at most 0.5 s).

Run from the top of the repository (about a minute per repetition)::

    .venv/bin/python bench/nova_vs_core.py
    .venv/bin/python bench/nova_vs_core.py --repeat 5 --bandwidth 16MiB
"""

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
from nova import context as nova_context  # noqa: E402,H306
from nova import objects  # noqa: E402
from sxm_core import migrate  # noqa: E402
from sxm_core import plan as planmod  # noqa: E402
from xapi_sim import sim as simmod  # noqa: E402

ARGS = None
RESULTS = []      # (kind, seconds, bytes sent)
KINDS = ('nova', 'core', 'floor')
FAKE_DRIVER = 'fake.MediumFakeDriver'
FAKE_HOSTS = ('host3', 'host4')


class NovaVsCore(base.SxmServicesTestCase):

    def boot(self, image, flavor):
        server = self._create_server(image_uuid=image, flavor_id=flavor,
                                     host='host1', networks='none')
        _, rec = self.vm_of(server, 'pool-a')
        self.write(rec['uuid'], ('0', '4'), rate=ARGS.rate, seed=5,
                   ctl=self.ctl['pool-a'])
        self.wait_writes(rec['uuid'], 5, ctl=self.ctl['pool-a'])
        return server, rec['uuid']

    def start_fake_computes(self):
        # The driver is loaded when the compute manager is made: only
        # these two computes get the fake one.
        self.flags(compute_driver=FAKE_DRIVER)
        for host in FAKE_HOSTS:
            self._start_compute(host)
        self.flags(compute_driver=self.compute_driver)

    def boot_fake(self, image, flavor):
        server = self._create_server(image_uuid=image, flavor_id=flavor,
                                     host=FAKE_HOSTS[0], networks='none')
        self.assertEqual(FAKE_HOSTS[0], server['OS-EXT-SRV-ATTR:host'])
        return server

    def run_nova(self, server, count, dest='host2'):
        """Seconds from the API call to the end of the source's work.

        The clock stops at the ``instance.live_migration_post.end``
        notification (nova sets the Migration ``completed`` right after):
        a condition wait, so nothing polls while the data moves (a poll in
        this process would compete with the simulator's data plane).
        """
        started = time.monotonic()
        self.api.post_server_action(server['id'], {
            'os-migrateLive': {'host': dest, 'block_migration': True}})
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
        self.assertEqual(dest, found['OS-EXT-SRV-ATTR:host'])
        return seconds

    def run_core(self, source, vm_uuid):
        host_b, ext_b = benchlib.pool_b_target(self)
        started = time.monotonic()
        dest = benchlib.session_pool(self, 'pool-b')
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
        source = benchlib.session_pool(self, 'pool-a')
        self.addCleanup(source.close)
        self.start_fake_computes()
        migrations = 0    # instance.live_migration_post.end so far
        for rep in range(ARGS.repeat):
            # Each arm goes first in turn.
            order = KINDS[rep % 3:] + KINDS[:rep % 3]
            for kind in order:
                if kind == 'floor':
                    server = self.boot_fake(image, flavor)
                    migrations += 1
                    seconds = self.run_nova(server, migrations,
                                            dest=FAKE_HOSTS[1])
                    RESULTS.append((kind, seconds, 0))
                else:
                    server, vm_uuid = self.boot(image, flavor)
                    if kind == 'nova':
                        migrations += 1
                        seconds = self.run_nova(server, migrations)
                    else:
                        seconds = self.run_core(source, vm_uuid)
                    self.stop_and_check(vm_uuid, ctl=self.ctl['pool-b'],
                                        devices=('0', '4'), written=True)
                    RESULTS.append((kind, seconds, self.sent(vm_uuid)))
                print('  %d %-5s %6.2f s' % (rep + 1, kind, seconds),
                      file=sys.__stderr__, flush=True)
                if kind != 'core':
                    self._delete_server(server)


def main():
    global ARGS
    parser = benchlib.nova_parser(__doc__.split('\n')[0], '8MiB')
    parser.add_argument('--rate', type=simmod.parse_size, default='64KiB',
                        help='guest writes, bytes/s per disk')
    ARGS = parser.parse_args()
    print('nova vs core: %d repetitions, bandwidth %s/s, image %s, guest '
          'writes %s/s per disk' % (
              ARGS.repeat, human(ARGS.bandwidth), human(ARGS.image_size),
              human(ARGS.rate)), flush=True)
    if not benchlib.run_case(NovaVsCore):
        return 1
    print('%-5s %8s %10s %12s' % ('path', 'runs', 'median s',
                                  'median sent'))
    medians = {}
    for kind in ('core', 'nova', 'floor'):
        secs = [s for k, s, _ in RESULTS if k == kind]
        sent = [b for k, _, b in RESULTS if k == kind]
        medians[kind] = statistics.median(secs)
        print('%-5s %8d %10.2f %12s' % (
            kind, len(secs), medians[kind],
            human(statistics.median(sent)) if kind != 'floor' else '-'))
    print('nova / core: %.2fx (target <= 1.2x)'
          % (medians['nova'] / medians['core']))
    driver = medians['nova'] - medians['core'] - medians['floor']
    print('through nova, %.2f s: core %.2f s, nova itself %.2f s, the '
          'driver %.2f s (target <= 0.5 s)' % (
              medians['nova'], medians['core'], medians['floor'], driver))
    return 0


if __name__ == '__main__':
    sys.exit(main())
