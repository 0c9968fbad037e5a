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

"""Scale: one nova-compute and one migration preflight, big pool vs small.

Two simulated pools in this process, each with a shared NFS SR (the
pool's default SR), a "Local storage" SR per host and VMs spread evenly
over the hosts, each with a disk on its host's local SR, a disk on the
shared SR and a VIF: a big pool (``--hosts`` 64, ``--vms`` 2000) and a
small one (``--small-hosts`` 4, ``--small-vms`` 50). The VMs are built in
bulk in this process (``Simulator.add_vms``: the XenAPI handlers without
HTTP); XAPI sees them run, but their guests do not (a thread per guest).

In each pool, over HTTP like a deployment:

* one nova-compute: the real SXM driver (``nova_sxm.virt.driver``) of
  the first host, ``sr_matching_filter`` its local SR, called as Nova's
  periodic tasks call it: ``update_available_resource``
  (get_available_nodes, node_is_available, get_available_resource,
  update_provider_tree), ``_sync_power_states`` (get_num_instances, then
  get_info for every instance of the host: the VMs of the first host),
  ``_cleanup_running_deleted_instances`` (list_instance_uuids), and the
  os-hypervisors API's get_host_uptime. "per minute" adds them up at
  Nova's default intervals (60 s, 600 s and 1800 s);
* one live migration's preflight through ``sxm_core.migrate.Migrator``:
  ``plan`` (a VM of the first host to the second host, its local disk to
  that host's local SR, its shared disk staying) and ``check`` (local
  preflight, ``host.migrate_receive``, ``VM.assert_can_migrate``), with
  a long-lived session pool as a nova-compute has; nothing is migrated.

Each measurement runs ``--repeat`` times (a periodic task ``--gap``
seconds after the previous call, 2.5 by default: Nova runs them a minute
or more apart, and the driver keeps what it read for a moment, so runs
back to back would read nothing): wall time is the median, XAPI
calls and bytes (the answers' XML-RPC bodies) those of the last run, from
the pool's own call log (with ``--repeat 1``, the first run's, which
fills the driver's caches). The memory of each simulator is the growth of
this process's resident set size (RSS, from /proc/self/statm) while it
was built, VMs included. Run from the top of the repository::

    .venv/bin/python bench/scale.py
    .venv/bin/python bench/scale.py --hosts 16 --vms 500 --repeat 1
"""

import argparse
import gc
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid as uuidlib

# Before nova is imported: nova-compute 34 runs native threads.
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from benchlib import BenchError  # noqa: E402,H306
from benchlib import human  # noqa: E402
from nova.compute import provider_tree  # noqa: E402
import nova.conf  # noqa: E402
from nova import objects  # noqa: E402
from nova.virt import node as nova_node  # noqa: E402
from sxm_core import migrate  # noqa: E402
from sxm_core import plan as planmod  # noqa: E402
from sxm_core import sessions  # noqa: E402
from xapi_sim import sim as simmod  # noqa: E402

from nova_sxm.virt import driver as sxm_driver  # noqa: E402
from nova_sxm.virt import vmops  # noqa: E402

CONF = nova.conf.CONF
GiB = 1 << 30
LOCAL = 'Local storage'
SHARED = 'NFS shared storage'
# Nova's default periodic intervals, seconds (nova.conf: compute options).
MINUTE = 60.0
INTERVALS = {'update_available_resource': 60.0,
             'sync_power_states': 600.0,
             'cleanup_running_deleted': 1800.0}


def rss():
    """This process's resident set size in bytes."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except OSError:  # not Linux: the peak, which only grows
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def topology(name, hosts):
    names = ['%s-h%02d' % (name, i) for i in range(hosts)]
    srs = [{'name': SHARED, 'type': 'nfs', 'size': '64TiB',
            'shared': True, 'default': True}]
    srs += [{'name': LOCAL, 'type': 'ext', 'size': '4TiB', 'host': h}
            for h in names]
    return {'pools': [{
        'name': name, 'hosts': [{'name': h} for h in names],
        'networks': [{'name': 'Pool-wide network associated with eth0',
                      'bridge': 'xenbr0', 'device': 'eth0',
                      'management': True}],
        'srs': srs}]}


class Pool(object):
    """One simulator of one pool, its VMs, and what was measured there."""

    def __init__(self, name, hosts, vms, state_dir):
        self.name, self.nhosts, self.nvms = name, hosts, vms
        gc.collect()
        before, started = rss(), time.monotonic()
        self.sim = simmod.Simulator(topology(name, hosts))
        self.pool = self.sim[name]
        db = self.pool.db
        with db.lock:
            self.hosts = sorted(db.all_refs('host'), key=lambda h: db.get(
                'host', h)['name_label'])
            self.local = {db.get('PBD', pbd)['host']: sr
                          for sr in db.find('SR', name_label=LOCAL)
                          for pbd in db.get('SR', sr)['PBDs']}
            shared = db.find('SR', name_label=SHARED)[0]
        self.instances = {}   # VM name -> (instance id, uuid), first host
        specs = []
        for i in range(vms):
            host = self.hosts[i % hosts]
            uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL,
                                     '%s/%d' % (name, i)))
            vm_name = CONF.instance_name_template % (i + 1)
            if host == self.hosts[0]:
                self.instances[vm_name] = (i + 1, uuid)
            specs.append({'name': vm_name, 'host': host,
                          'other_config': {vmops.UUID_KEY: uuid},
                          'disks': [(GiB, self.local[host]),
                                    (GiB, shared)]})
        self.sim.add_vms(name, specs)
        self.sim.start()
        gc.collect()
        self.build_seconds = time.monotonic() - started
        self.memory = rss() - before
        self.url = self.sim.pools[name].url
        self.state_dir = os.path.join(state_dir, name)
        os.makedirs(self.state_dir)
        self.rows = {}
        self.methods = {}

    def close(self):
        self.sim.stop()

    def host_name(self, index):
        with self.pool.db.lock:
            return self.pool.db.get('host', self.hosts[index])['name_label']

    def measure(self, what, func, repeat, gap=0.0):
        """Time ``func`` ``repeat`` times; calls and bytes of the last.

        Each run starts ``gap`` seconds after the last: what a client keeps
        for a moment is not what Nova's next periodic run finds.
        """
        log = self.pool.call_log
        seconds = []
        for _ in range(repeat):
            time.sleep(gap)
            log.reset()
            started = time.monotonic()
            result = func()
            seconds.append(time.monotonic() - started)
        entries = log.entries()
        self.rows[what] = (statistics.median(seconds), len(entries),
                           sum(size for _, _, size in entries))
        by_method = {}
        for method, _, size in entries:
            calls, nbytes = by_method.get(method, (0, 0))
            by_method[method] = (calls + 1, nbytes + size)
        self.methods[what] = by_method
        return result

    # -- one nova-compute ------------------------------------------------

    def compute(self):
        """The SXM driver of the first host, started as nova-compute does."""
        CONF.set_override('state_path', self.state_dir)
        for opt, value in (('connection_url', self.url),
                           ('connection_username', simmod.DEFAULT_USERNAME),
                           ('connection_password', simmod.DEFAULT_PASSWORD),
                           ('host_name', self.host_name(0)),
                           ('sr_matching_filter', 'name-label:' + LOCAL)):
            CONF.set_override(opt, value, group='sxm')
        # A new service of this process: its own node identity file.
        nova_node.LOCAL_NODE_UUID = None
        drv = sxm_driver.SxmDriver(None)
        drv.init_host(self.host_name(0))
        return drv

    def periodic(self, drv, repeat, gap):
        instances = [objects.Instance(id=i, uuid=u)
                     for i, u in self.instances.values()]
        # The compute node's uuid, as Nova learns it at start-up.
        (node_uuid, _), = drv.get_nodenames_by_uuid().items()

        def update_available_resource():
            node = drv.get_available_nodes()[0]
            drv.node_is_available(node)
            drv.get_available_resource(node)
            tree = provider_tree.ProviderTree()
            tree.new_root(node, node_uuid)
            drv.update_provider_tree(tree, node)

        def sync_power_states():
            drv.get_num_instances()
            states = [drv.get_info(inst).state for inst in instances]
            if len(states) != len(self.instances):
                raise BenchError('get_info answered %d of %d instances'
                                 % (len(states), len(self.instances)))

        def cleanup_running_deleted():
            found = drv.list_instance_uuids()
            if len(found) != len(self.instances):
                raise BenchError(
                    'list_instance_uuids found %d VMs on %s, expected %d'
                    % (len(found), self.host_name(0), len(self.instances)))

        def host_uptime():
            try:
                drv.get_host_uptime()
            except NotImplementedError:
                return 'not supported'

        self.measure('update_available_resource',
                     update_available_resource, repeat, gap)
        self.measure('sync_power_states', sync_power_states, repeat, gap)
        self.measure('cleanup_running_deleted', cleanup_running_deleted,
                     repeat, gap)
        self.uptime = self.measure('get_host_uptime', host_uptime, repeat,
                                   gap)
        per_minute = [0.0, 0.0, 0.0]
        for what, interval in INTERVALS.items():
            for n, value in enumerate(self.rows[what]):
                per_minute[n] += value * MINUTE / interval
        self.rows['periodic tasks per minute'] = tuple(per_minute)

    # -- one migration's preflight ---------------------------------------

    def preflight(self, repeat):
        with self.pool.db.lock:
            vm = self.pool.db.get('host', self.hosts[0])['resident_VMs']
            vm = [v for v in vm if not self.pool.db.get(
                'VM', v)['is_control_domain']][0]
            vm_uuid = self.pool.db.get('VM', vm)['uuid']
            dest_sr = self.pool.db.get('SR', self.local[self.hosts[1]])
        source = sessions.SessionPool(self.url, simmod.DEFAULT_USERNAME,
                                      simmod.DEFAULT_PASSWORD)
        try:
            source.call('pool.get_all')   # logged in, as a compute is
            migrator = migrate.Migrator(source)

            def plan_and_check():
                the_plan, problems = migrator.plan(
                    vm_uuid, dest_host=self.host_name(1),
                    sr_map={'0': dest_sr['uuid']})
                problems = migrator.check(the_plan)
                blocking = [p.message for p in planmod.blocking(problems)]
                if blocking:
                    raise BenchError('the preflight refused the migration: '
                                     + '; '.join(blocking))
            self.measure('migration preflight (plan + check)',
                         plan_and_check, repeat)
        finally:
            source.close()


ROWS = ('update_available_resource', 'sync_power_states',
        'cleanup_running_deleted', 'get_host_uptime',
        'periodic tasks per minute', 'migration preflight (plan + check)')


def ratio(big, small):
    return '%.1fx' % (big / small) if small else '-'


def report(small, big):
    def head(p):
        return '%d hosts, %d VMs' % (p.nhosts, p.nvms)
    print('small: %s; big: %s' % (head(small), head(big)))
    print('%-38s %8s %7s %10s' % ('', 'seconds', 'calls', 'bytes'))
    for what in ROWS:
        s, b = small.rows[what], big.rows[what]
        label = what
        if what == 'sync_power_states':
            label = '%s (%d, %d VMs)' % (what, len(small.instances),
                                         len(big.instances))
        print(label)
        print('%38s %8.3f %7.1f %10s' % ('small', s[0], s[1], human(s[2])))
        print('%38s %8.3f %7.1f %10s' % ('big', b[0], b[1], human(b[2])))
        print('%38s %8s %7s %10s' % ('big / small', ratio(b[0], s[0]),
                                     ratio(b[1], s[1]), ratio(b[2], s[2])))
    if big.uptime:
        print('(get_host_uptime: %s by the driver, no XAPI call)'
              % big.uptime)
    print('simulator memory (RSS growth): small %s, big %s, %s'
          % (human(small.memory), human(big.memory),
             ratio(big.memory, small.memory)))
    print('simulator build (in process): small %.1f s, big %.1f s'
          % (small.build_seconds, big.build_seconds))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--hosts', type=int, default=64)
    parser.add_argument('--vms', type=int, default=2000)
    parser.add_argument('--small-hosts', type=int, default=4)
    parser.add_argument('--small-vms', type=int, default=50)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--methods', action='store_true',
                        help='also print the calls (and bytes) by method')
    parser.add_argument('--gap', type=float, default=2.5,
                        help='seconds between two runs of a periodic task '
                        '(Nova: at least 60)')
    args = parser.parse_args(argv)
    for label, hosts, vms in (('small', args.small_hosts, args.small_vms),
                              ('big', args.hosts, args.vms)):
        if hosts < 2 or vms < hosts:
            parser.error('the %s pool needs at least 2 hosts and a VM per '
                         'host (got %d hosts, %d VMs)' % (label, hosts, vms))
    if args.repeat < 1:
        parser.error('--repeat must be at least 1')
    CONF(args=[], project='nova', default_config_files=[])
    objects.register_all()
    pools = []
    with tempfile.TemporaryDirectory(prefix='sxm-scale-') as state:
        try:
            for name, hosts, vms in (
                    ('small', args.small_hosts, args.small_vms),
                    ('big', args.hosts, args.vms)):
                print('building the %s pool: %d hosts, %d VMs...'
                      % (name, hosts, vms), flush=True)
                pool = Pool(name, hosts, vms, state)
                pools.append(pool)
            for pool in pools:
                print('measuring the %s pool...' % pool.name, flush=True)
                drv = pool.compute()
                try:
                    pool.periodic(drv, args.repeat, args.gap)
                finally:
                    drv.cleanup_host(pool.host_name(0))
                pool.preflight(args.repeat)
        except BenchError as exc:
            print('scale: %s' % exc, file=sys.stderr)
            return 1
        finally:
            for pool in pools:
                pool.close()
    report(*pools)
    if args.methods:
        for pool in pools:
            for what in ROWS:
                if pool.methods.get(what):
                    print('%s, %s: %s' % (pool.name, what, ', '.join(
                        '%s %d (%s)' % (method, n, human(nbytes))
                        for method, (n, nbytes) in sorted(
                            pool.methods[what].items()))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
