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

"""The simulator: several pools in one process, each at its own URL.

Topology comes from a JSON document (see ``DEFAULT_TOPOLOGY``); sizes may
be integers or strings such as ``"8GiB"``. An SR may give the
``device_config`` of its PBDs (default: what its type typically has, e.g.
``server`` and ``serverpath`` for nfs; an SR with the uuid of another
pool's SR copies that one's). A local SR names its ``host`` (default:
the master). A host may give its
``memory`` (default 64GiB, dom0 takes 4GiB) and ``cpus`` (default 8).
Guests (``guest.Domain``) belong to the simulator, not to a pool, so that
a VM keeps running, with the same writer threads, when it moves to another
pool; so does what each guest's agent reports (``guest_agents``). A member
host can lose power and come back (``Pool.host_live``): its own server, if
it has one, goes down and up with it.
"""

import collections
import copy
import json
import shutil
import tempfile
import threading
import time
import urllib.parse

from xapi_sim import api
from xapi_sim import errors
from xapi_sim import faults
from xapi_sim import guest
from xapi_sim import migration
from xapi_sim import pool as poolmod
from xapi_sim import server
from xapi_sim import vmbuild

DEFAULT_USERNAME = 'root'
DEFAULT_PASSWORD = 'xapi-sim'

# The built-in topology: two pools, each one host with a thin ext SR (the
# pool's default SR), a thick lvm SR and one network on its management PIF.
DEFAULT_TOPOLOGY = {
    'pools': [
        {
            'name': name,
            'username': DEFAULT_USERNAME,
            'password': DEFAULT_PASSWORD,
            'hosts': [{'name': '%s-host1' % name}],
            'networks': [{'name': 'Pool-wide network associated with eth0',
                          'bridge': 'xenbr0', 'device': 'eth0',
                          'management': True}],
            'srs': [
                {'name': 'Local storage (ext)', 'type': 'ext',
                 'size': '64GiB', 'default': True},
                {'name': 'Local storage (lvm)', 'type': 'lvm',
                 'size': '64GiB'},
            ],
        }
        for name in ('pool-a', 'pool-b')
    ],
}

# Sizes as operators write them ('8GiB'): the topology and the CLI.
parse_size = vmbuild.size_of


class Simulator(object):
    """Pools, their HTTP servers and the running guests."""

    def __init__(self, topology=None, root=None, bind='127.0.0.1'):
        api.load()
        self._own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix='xapi-sim-')
        self.bind = bind
        self.topology = copy.deepcopy(topology or DEFAULT_TOPOLOGY)
        self.pools = collections.OrderedDict()
        self.servers = {}
        self.member_servers = []
        self.domains = {}
        self._lock = threading.Lock()
        self.settings = dict(migration.DEFAULT_SETTINGS)
        self.settings.update(self.topology.get('settings', {}))
        self.faults = faults.Faults()
        self.migration_log = []
        # VM uuid -> what its guest agent reports (pool.guest_agent_profile)
        # when it is not the default; kept across reboots and migrations.
        self.guest_agents = {}
        self._link = None
        self._migrates = collections.Counter()
        self._stopped = False
        for spec in self.topology.get('pools', []):
            self._build_pool(spec)

    def _build_pool(self, spec):
        name = spec['name']
        if name in self.pools:
            raise ValueError('pool %r defined twice' % name)
        srv_port = int(spec.get('port', 0))
        p = poolmod.Pool(self, name, '%s/%s' % (self.root, name),
                         spec.get('username', DEFAULT_USERNAME),
                         spec.get('password', DEFAULT_PASSWORD))
        # The server is bound first so that hosts and PIFs carry its address.
        srv = server.PoolServer(p, self.bind, srv_port)
        p.url, p.address = srv.url, srv.host
        hosts = spec.get('hosts') or [{'name': '%s-host1' % name}]
        for i, host in enumerate(hosts):
            address = host.get('address') or (
                srv.host if i == 0 else _member_address(srv.host, i))
            extra = {}
            if 'memory' in host:
                extra['memory'] = parse_size(host['memory'])
            if 'cpus' in host:
                extra['cpus'] = int(host['cpus'])
            p.add_host(host['name'], address, **extra)
            if i and address != srv.host:
                # A pool member answers logins with HOST_IS_SLAVE, at its
                # own address on the master's port, as xapi does.
                self.member_servers.append(server.PoolServer(
                    p, address, srv.port, member_of=srv.host))
        for net in spec.get('networks', []):
            p.add_network(net['name'], net['bridge'], net.get('device'),
                          ip=net.get('ip'),
                          management=bool(net.get('management')))
        for sr in spec.get('srs', []):
            host = None
            if sr.get('host'):
                with p.db.lock:
                    host = p.find_host(sr['host'])
            p.add_sr(sr['name'], sr['type'], parse_size(sr['size']),
                     shared=sr.get('shared', False), uuid=sr.get('uuid'),
                     default=sr.get('default', False),
                     device_config=sr.get('device_config'), host=host)
        self.pools[name] = p
        self.servers[name] = srv

    @classmethod
    def from_file(cls, path, **kwargs):
        with open(path) as f:
            return cls(json.load(f), **kwargs)

    def start(self):
        for srv in list(self.servers.values()) + self.member_servers:
            srv.start()
        return self

    def stop(self):
        # A toolstack restart under way must not bring a server back.
        self._stopped = True
        # Migrations first: they need the guests and the files.
        for p in self.pools.values():
            p.cancel_tasks()
        for dom in list(self.domains.values()):
            dom.halt()
        for srv in list(self.servers.values()) + self.member_servers:
            srv.stop()
        for p in self.pools.values():
            p.close()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __getitem__(self, name):
        return self.pools[name]

    # -- bulk ------------------------------------------------------------

    def add_vms(self, name, vms, guests=False):
        """Create running VMs in pool ``name`` by the thousand: benchmarks.

        ``vms``: dicts with ``name``, ``host`` (a host ref), ``disks``
        ([(size, SR ref), ...], userdevices 0, 1, ...) and optionally
        ``memory`` (bytes) and ``other_config``. Each VM gets a VIF on the
        management network and starts on its host. Every step is the
        XenAPI call a client makes (VM.create, VDI.create, VBD.create,
        VIF.create, then VM.start_on's checks), dispatched in this process
        without HTTP. Without ``guests`` no guest runs for them (no
        heartbeat thread, no workloads: a thread per guest would take the
        machine's CPU); XAPI sees them run all the same. Returns their
        refs. On an error (a full SR, a bad ref) the VM being built is
        removed with its disks, the ones built before it stay, and the
        XapiError goes to the caller.
        """
        from xapi_sim.api import vm as vm_api
        pool = self.pools[name]
        spec = next(p for p in self.topology['pools'] if p['name'] == name)
        session = pool.login(pool.username,
                             spec.get('password', DEFAULT_PASSWORD),
                             'xapi-sim')
        ctx = api.Context(pool, session)

        def call(method, *args):
            return pool.call(method, [session] + list(args))
        try:
            network = next(
                (rec['network'] for rec in
                 call('PIF.get_all_records').values()
                 if rec['management']), None)
            refs = []
            for spec in vms:
                record = vmbuild.vm_record(
                    spec['name'], spec.get('memory', 256 * vmbuild.MiB))
                record['other_config'] = dict(spec.get('other_config', {}))
                vm = call('VM.create', record)
                vdis = []
                try:
                    for n, (size, sr) in enumerate(spec['disks']):
                        vdis.append(call('VDI.create', vmbuild.vdi_record(
                            sr, size, '%s disk %d' % (spec['name'], n))))
                        call('VBD.create',
                             vmbuild.vbd_record(vm, vdis[-1], str(n)))
                    if network is not None:
                        call('VIF.create', vmbuild.vif_record(vm, network))
                    vm_api.boot(ctx, vm, spec['host'], guest=guests)
                except errors.XapiError:
                    for vdi in vdis:
                        call('VDI.destroy', vdi)
                    call('VM.destroy', vm)
                    raise
                refs.append(vm)
            return refs
        finally:
            pool.logout(session)

    # -- field faults --------------------------------------------------------

    def _servers_of(self, pool):
        return [self.servers[pool.name]] + [
            s for s in self.member_servers if s.pool is pool]

    def restart_toolstack(self, name, down=0.0, keep=None, hosts=None):
        """``xe-toolstack-restart`` on the master of pool ``name``.

        HTTP connections drop and, for ``down`` seconds, new ones are
        refused; sessions and tasks are gone, calls in flight end
        unanswered (see ``Pool.restart_toolstack``, which ``hosts`` goes
        to); guests run on. ``keep`` is a connection to leave open (the
        control request's). A dead member's server stays down.
        """
        pool = self.pools.get(name)
        if pool is None:
            raise ValueError('no pool %r (pools: %s)'
                             % (name, ', '.join(self.pools)))
        down = float(down or 0)
        if down < 0 or down > 300:
            raise ValueError('down must be 0..300 seconds')
        servers = self._servers_of(pool)
        for srv in servers:
            srv.go_down(keep)
        try:
            pool.restart_toolstack(hosts=hosts)
            time.sleep(down)
        finally:
            if not self._stopped:
                dead = self._dead_addresses(pool)
                master = self.servers[name]
                for srv in servers:
                    if srv is master or srv.host not in dead:
                        srv.come_up()
        with pool.db.lock:
            return {'pool': name, 'epoch': pool.epoch, 'url': pool.url}

    def new_master_server(self, pool, host):
        """(host ref, the server it would serve at as master)."""
        with pool.db.lock:
            ref = pool.find_host(host)
            address = pool.db.get('host', ref)['address']
        new = [s for s in self._servers_of(pool) if s.host == address]
        if not new:
            raise ValueError('host %s has no server of its own (members '
                             'get one at 127.0.0.2, ... beside a loopback '
                             'master)' % host)
        return ref, new[0]

    def designate_new_master(self, name, host, down=0.0, keep=None):
        """The master role moves to ``host`` (a ref, uuid or name).

        As pool.designate_new_master (or an emergency transition): both
        toolstacks restart, so every session and task is lost; the old
        master answers logins with HOST_IS_SLAVE [new master's address].
        A member serves at an address of its own only in a loopback
        topology (127.0.0.2, ...): elsewhere it cannot become master here.
        """
        pool = self.pools.get(name)
        if pool is None:
            raise ValueError('no pool %r (pools: %s)'
                             % (name, ', '.join(self.pools)))
        ref, new = self.new_master_server(pool, host)
        if ref == pool.master:
            raise ValueError('%s is the master of %s already'
                             % (host, name))
        with pool.db.lock:
            if not pool.host_is_live(ref):
                raise ValueError('host %s is not live' % host)
            restarted = [pool.master, ref]
        address = new.host
        servers = self._servers_of(pool)
        with pool.db.lock:
            pool.master = ref
            pool.db.update('pool', pool.pool_ref, master=ref)
            pool.url, pool.address = new.url, new.host
        for srv in servers:
            srv.member_of = None if srv is new else address
        with self._lock:
            old = self.servers[name]
            self.servers[name] = new
            self.member_servers = [s for s in self.member_servers
                                   if s is not new] + [old]
        return self.restart_toolstack(name, down=down, keep=keep,
                                      hosts=restarted)

    def _dead_addresses(self, pool):
        """Addresses of the pool's members marked dead (no server)."""
        with pool.db.lock:
            return {rec['address'] for ref, rec in
                    pool.db.tables['host'].items()
                    if ref != pool.master and not pool.host_is_live(ref)}

    def host_power(self, pool, address, live):
        """A member's own server goes with its power (``Pool.host_live``).

        Only a member with an address of its own (127.0.0.2, ... beside a
        loopback master) has a server to stop.
        """
        master = self.servers[pool.name]
        for srv in self._servers_of(pool):
            if srv is master or srv.host != address:
                continue
            if live:
                srv.come_up()
            else:
                srv.go_down()

    # -- guests ----------------------------------------------------------

    def domain(self, vm_uuid):
        with self._lock:
            dom = self.domains.get(vm_uuid)
            if dom is None:
                dom = self.domains[vm_uuid] = guest.Domain(
                    vm_uuid, self.resolve_disk)
            return dom

    def forget_domain(self, vm_uuid):
        with self._lock:
            dom = self.domains.pop(vm_uuid, None)
        if dom is not None:
            dom.halt()

    def resolve_disk(self, vm_uuid, userdevice):
        """The Disk behind a running VM's plugged read-write VBD."""
        for p in self.pools.values():
            with p.db.lock:
                vm = p.db.by_uuid['VM'].get(vm_uuid)
                if vm is None:
                    continue
                rec = p.db.get('VM', vm)
                if rec['power_state'] not in ('Running', 'Paused'):
                    continue
                for vbd in rec['VBDs']:
                    vrec = p.db.get('VBD', vbd)
                    if vrec['userdevice'] != userdevice:
                        continue
                    if not vrec['currently_attached']:
                        raise errors.XapiError('DEVICE_ALREADY_DETACHED',
                                               vbd)
                    if vrec['mode'] != 'RW':
                        raise errors.XapiError('VDI_READONLY', vrec['VDI'])
                    disk = p.disks.get(vrec['VDI'])
                    if disk is None:
                        raise errors.XapiError('HANDLE_INVALID', 'VDI',
                                               vrec['VDI'])
                    return disk
        raise errors.XapiError('HANDLE_INVALID', 'VBD',
                               '%s/%s' % (vm_uuid, userdevice))

    # -- migration support -------------------------------------------------

    def pool_by_url(self, url):
        """The pool whose master answers at ``url`` (scheme://host:port)."""
        want = urllib.parse.urlsplit(url or '')
        for p in self.pools.values():
            have = urllib.parse.urlsplit(p.url)
            if (want.hostname, want.port) == (have.hostname, have.port):
                return p
        return None

    def find_store(self, sr_uuid):
        for p in self.pools.values():
            for sr, store in p.stores.items():
                with p.db.lock:
                    if p.db.get('SR', sr)['uuid'] == sr_uuid:
                        return store
        return None

    def find_pbd_config(self, sr_uuid, exclude=None):
        """The device_config another pool's PBD of SR ``sr_uuid`` has."""
        for p in self.pools.values():
            if p is exclude:
                continue
            with p.db.lock:
                sr = p.db.by_uuid['SR'].get(sr_uuid)
                if sr is not None:
                    for pbd in p.db.get('SR', sr)['PBDs']:
                        return dict(p.db.get('PBD', pbd)['device_config'])
        return None

    def link(self):
        """The bandwidth cap migrations share, made anew when it changes."""
        with self._lock:
            rate = self.settings['bandwidth']
            if self._link is None or self._link.rate != float(rate or 0):
                self._link = migration.TokenBucket(rate)
            return self._link

    def storage_migrate_slot(self, host):
        """Count a storage migration on ``host``; xapi allows three."""
        with self._lock:
            if self._migrates[host] >= migration.MAX_STORAGE_MIGRATES:
                raise errors.XapiError('TOO_MANY_STORAGE_MIGRATES',
                                       migration.MAX_STORAGE_MIGRATES)
            self._migrates[host] += 1
        return _Slot(self, host)

    def configure(self, **settings):
        unknown = set(settings) - set(migration.DEFAULT_SETTINGS)
        if unknown:
            raise ValueError('unknown settings: %s (known: %s)' % (
                ', '.join(sorted(unknown)),
                ', '.join(sorted(migration.DEFAULT_SETTINGS))))
        if settings.get('algorithm', 'mirror') not in migration.ALGORITHMS:
            raise ValueError('algorithm must be one of %s'
                             % ', '.join(migration.ALGORITHMS))
        for key, value in settings.items():
            default = migration.DEFAULT_SETTINGS[key]
            if isinstance(default, bool):
                value = bool(value)
            elif isinstance(default, (int, float)):
                value = type(default)(value)
                if value < 0:
                    raise ValueError('%s must not be negative' % key)
            self.settings[key] = value
        return dict(self.settings)


def _member_address(master, index):
    """Pool members on 127.0.0.2, 127.0.0.3, ... beside a loopback master.

    Elsewhere members share the master's address and serve no URL.
    """
    parts = master.split('.')
    if master.startswith('127.') and len(parts) == 4:
        return '127.0.0.%d' % (int(parts[3]) + index)
    return master


class _Slot(object):
    def __init__(self, sim, host):
        self._sim = sim
        self._host = host

    def release(self):
        with self._sim._lock:
            self._sim._migrates[self._host] -= 1
