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

"""What the deployed cloud adds to a live block migration.

Needs the cloud of ``tools/cloud/cloud.sh up``. Each repetition boots two
servers on compute-a (pool-a) with the same image and flavor (1 GiB root,
1 GiB ephemeral), starts the same guest workload on both disks of each
(uniform random 4 KiB writes, ``--rate`` bytes/s per disk), then, taking
turns which goes first:

* cloud: ``openstack server migrate --live-migration --block-migration
  --host compute-b`` as a user types it; the clock runs from the command's
  start until the server is ACTIVE on compute-b with no task and its
  migration ``completed`` (polled through the API every 0.2 s);
* core: the same disks moved by ``sxm_core.migrate.Migrator`` (plan to
  pool-b's default SR, check, migrate) over HTTP against the same
  simulator, without any OpenStack service; the clock covers all of it.
  The VM is then moved back the same way, so that nova deletes it where
  it knows it is.

After each migration the guest checker must find every written byte. The
medians and the ratio cloud / core are printed.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import openstack  # noqa: E402
import XenAPI  # noqa: E402

from sxm_core import migrate  # noqa: E402
from sxm_core import plan as planmod  # noqa: E402
from sxm_core import sessions  # noqa: E402
from xapi_sim import control  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOUD = os.path.join(TOP, '.cloud')
URLS = {'pool-a': 'http://127.0.0.1:8480/', 'pool-b': 'http://127.0.0.1:8481/'}
MiB = 1 << 20


def secrets():
    with open(os.path.join(CLOUD, 'secrets.env')) as f:
        return dict(line.strip().split('=', 1) for line in f if '=' in line)


class Bench(object):

    def __init__(self, args):
        self.args = args
        os.environ['OS_CLIENT_CONFIG_FILE'] = os.path.join(CLOUD,
                                                           'clouds.yaml')
        os.environ['OS_CLOUD'] = 'sxm-admin'
        self.conn = openstack.connect(cloud='sxm-admin')
        self.password = secrets()['XAPI_PASSWORD']
        self.xapi, self.ctl = {}, {}
        for pool, url in URLS.items():
            session = XenAPI.Session(url)
            session.login_with_password('root', self.password, '2.21',
                                        'bench')
            self.xapi[pool] = session.xenapi
            self.ctl[pool] = control.Control(url, session.handle)

    def openstack(self, *args):
        subprocess.run([os.path.join(TOP, '.venv', 'bin', 'openstack')]
                       + list(args), check=True, stdout=subprocess.DEVNULL)

    def wait(self, predicate, what, timeout=600, interval=0.2):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                sys.exit('timed out waiting for %s' % what)
            time.sleep(interval)

    def vm(self, server, pool):
        for ref, rec in self.xapi[pool].VM.get_all_records().items():
            if rec['other_config'].get('nova_uuid') == server and \
                    not rec['is_a_snapshot']:
                return ref, rec
        return None, None

    def image_and_flavor(self):
        """The end-to-end tier's image and flavor, made if missing."""
        image = self.conn.image.find_image('sxm-e2e')
        if image is None:
            image = self.conn.create_image(
                'sxm-e2e', data=os.urandom(8 * MiB), disk_format='raw',
                container_format='bare', visibility='public', wait=True)
        flavor = self.conn.compute.find_flavor('sxm.e2e')
        if flavor is None:
            flavor = self.conn.compute.create_flavor(
                name='sxm.e2e', ram=256, vcpus=1, disk=1, ephemeral=1)
        return image.id, flavor.id

    def boot(self, name):
        image, flavor = self.image_and_flavor()
        srv = self.conn.compute.create_server(
            name=name, image_id=image, flavor_id=flavor,
            networks='none', availability_zone='nova:compute-a')
        srv = self.conn.compute.wait_for_server(srv, wait=600)
        ref, rec = self.vm(srv.id, 'pool-a')
        for dev, seed in (('0', 1), ('4', 2)):
            self.ctl['pool-a'].workload_start(
                rec['uuid'], dev, pattern='uniform', rate=self.args.rate,
                block_size=4096, seed=seed)
        return srv.id, rec['uuid']

    def check(self, vm_uuid, pool):
        for disk in self.ctl[pool].guest_check(vm_uuid):
            if not disk['ok']:
                sys.exit('disk %s of %s is not what was written'
                         % (disk['userdevice'], vm_uuid))

    def run_cloud(self, server):
        started = time.monotonic()
        self.openstack('server', 'migrate', '--live-migration',
                       '--block-migration', '--host', 'compute-b', server)

        def done():
            srv = self.conn.compute.get_server(server)
            if srv.status == 'ERROR':
                sys.exit('server %s went to ERROR' % server)
            return (srv.compute_host == 'compute-b' and srv.status == 'ACTIVE'
                    and not srv.task_state and any(
                        m.status == 'completed' for m in
                        self.conn.compute.migrations(instance_uuid=server)))
        self.wait(done, 'server %s on compute-b, migration completed'
                  % server)
        return time.monotonic() - started

    def core_move(self, vm_uuid, src, dst):
        api = self.xapi[dst]
        host = api.host.get_uuid(api.pool.get_master(api.pool.get_all()[0]))
        sr = api.SR.get_uuid(api.pool.get_default_SR(api.pool.get_all()[0]))
        started = time.monotonic()
        source = sessions.SessionPool(URLS[src], 'root', self.password)
        dest = sessions.SessionPool(URLS[dst], 'root', self.password)
        try:
            migrator = migrate.Migrator(source, dest)
            vm = source.call('VM.get_by_uuid', vm_uuid)
            own = [source.call('VDI.get_uuid',
                               source.call('VBD.get_VDI', vbd))
                   for vbd in source.call('VM.get_VBDs', vm)
                   if source.call('VBD.get_type', vbd) == 'Disk']
            the_plan, problems = migrator.plan(
                vm, dest_host=host, sr_map={v: sr for v in own},
                network_map={})
            problems = planmod.blocking(problems) or planmod.blocking(
                migrator.check(the_plan))
            if problems:
                sys.exit('core refused: %s'
                         % '; '.join(p.message for p in problems))
            migrator.migrate(the_plan)
        finally:
            source.close()
            dest.close()
        return time.monotonic() - started

    def run(self):
        cloud, core = [], []
        for rep in range(self.args.repeat):
            servers = [self.boot('bench-cloud-%d' % rep),
                       self.boot('bench-core-%d' % rep)]
            try:
                time.sleep(self.args.warmup)
                order = ('cloud', 'core') if rep % 2 == 0 else ('core',
                                                                'cloud')
                for kind in order:
                    if kind == 'cloud':
                        server, vm_uuid = servers[0]
                        cloud.append(self.run_cloud(server))
                        self.check(vm_uuid, 'pool-b')
                    else:
                        server, vm_uuid = servers[1]
                        core.append(self.core_move(vm_uuid, 'pool-a',
                                                   'pool-b'))
                        self.check(vm_uuid, 'pool-b')
                        self.core_move(vm_uuid, 'pool-b', 'pool-a')
                print('rep %d: cloud %.2fs, core %.2fs'
                      % (rep, cloud[-1], core[-1]), flush=True)
            finally:
                for server, _vm in servers:
                    self.conn.compute.delete_server(server)
                for server, _vm in servers:
                    self.wait(lambda: self.conn.compute.find_server(
                        server) is None, 'server %s deleted' % server,
                        timeout=300, interval=1)
        c, k = statistics.median(cloud), statistics.median(core)
        print('live block migration, median of %d: openstack %.2fs, '
              'core %.2fs, ratio %.1f' % (len(cloud), c, k, c / k))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--rate', type=int, default=MiB,
                        help='guest writes, bytes/s per disk')
    parser.add_argument('--warmup', type=float, default=2.0,
                        help='seconds of guest writes before migrating')
    Bench(parser.parse_args()).run()


if __name__ == '__main__':
    main()
