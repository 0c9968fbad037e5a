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

"""The end-to-end tier: the operator's ``openstack`` commands against the
cloud of ``tools/cloud/cloud.sh`` (real services, MariaDB, RabbitMQ,
Keystone tokens) driving the simulator's two pools.

Outcomes are checked through the APIs and through the simulator: its
XenAPI (where each VM and disk is) and its control interface (the guest's
writers and the checker that knows the exact image every disk must hold).
The tests run in name order, one after the other (``--serial``); each
leaves the cloud as it found it.
"""

import json
import os
import re
import subprocess
import time
import unittest

import XenAPI

from xapi_sim import control

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CLOUD = os.environ.get('SXM_CLOUD_DIR', os.path.join(TOP, '.cloud'))
OPENSTACK = os.path.join(os.environ.get('VENV', os.path.join(TOP, '.venv')),
                         'bin', 'openstack')
POOLS = {'pool-a': 'http://127.0.0.1:8480/',
         'pool-b': 'http://127.0.0.1:8481/'}
HOSTS = {'compute-a': 'pool-a', 'compute-b': 'pool-b'}
MiB = 1 << 20
DEADLINE = 300


def _secrets():
    values = {}
    with open(os.path.join(CLOUD, 'secrets.env')) as f:
        for line in f:
            key, _, value = line.strip().partition('=')
            if key:
                values[key] = value
    return values


def cloud_is_up():
    return os.path.exists(os.path.join(CLOUD, 'clouds.yaml')) and \
        subprocess.call([os.path.join(TOP, 'tools', 'cloud', 'cloud.sh'),
                         'status'], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL) == 0


class CloudTestCase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not cloud_is_up():
            raise unittest.SkipTest('no cloud: run tools/cloud/cloud.sh up')
        cls.secrets = _secrets()
        cls.xapi = {}
        cls.ctl = {}
        cls.sessions = []
        for pool, url in POOLS.items():
            session = XenAPI.Session(url)
            session.login_with_password('root', cls.secrets['XAPI_PASSWORD'],
                                        '2.21', 'integration tests')
            cls.sessions.append(session)
            cls.xapi[pool] = session.xenapi
            cls.ctl[pool] = control.Control(url, session.handle)

    @classmethod
    def tearDownClass(cls):
        for session in cls.sessions:
            try:
                session.xenapi.session.logout()
            except (OSError, XenAPI.Failure):
                pass

    # -- the openstack command -------------------------------------------

    def os(self, *args, cloud='sxm-admin', check=True):
        """Run ``openstack ARGS``; JSON output is decoded."""
        env = dict(os.environ, OS_CLOUD=cloud,
                   OS_CLIENT_CONFIG_FILE=os.path.join(CLOUD, 'clouds.yaml'))
        cmd = [OPENSTACK] + [str(a) for a in args]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=DEADLINE)
        if check and proc.returncode:
            self.fail('%s failed (%d): %s' % (' '.join(args),
                                              proc.returncode, proc.stderr))
        if not check:
            return proc
        if '-f' in args and 'json' in args:
            return json.loads(proc.stdout or 'null')
        return proc.stdout

    def poll(self, predicate, what, timeout=DEADLINE, interval=1.0):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail('timed out waiting for %s' % what)
            time.sleep(interval)

    def server(self, ident):
        return self.os('server', 'show', ident, '-f', 'json')

    def wait_server(self, ident, status='ACTIVE', task=None):
        def ready():
            srv = self.server(ident)
            if srv['status'] == 'ERROR' and status != 'ERROR':
                self.fail('server %s went to ERROR: %s'
                          % (ident, srv.get('fault')))
            if srv['status'] == status and \
                    srv.get('OS-EXT-STS:task_state') == task:
                return srv
            return None
        return self.poll(ready, 'server %s %s' % (ident, status))

    def volume(self, ident):
        return self.os('volume', 'show', ident, '-f', 'json')

    def wait_volume(self, ident, status, **expect):
        def ready():
            vol = self.volume(ident)
            if vol['status'].startswith('error'):
                self.fail('volume %s: %s' % (ident, vol['status']))
            if vol['status'] == status and all(
                    vol.get(k) == v for k, v in expect.items()):
                return vol
            return None
        return self.poll(ready, 'volume %s %s %s' % (ident, status, expect))

    # -- resources ---------------------------------------------------------

    def image(self):
        found = self.os('image', 'list', '--name', 'sxm-e2e', '-f', 'json')
        if found:
            return found[0]['ID']
        path = os.path.join(CLOUD, 'state', 'sxm-e2e.raw')
        if not os.path.exists(path):
            with open(path, 'wb') as f:
                f.write(os.urandom(8 * MiB))
        return self.os('image', 'create', '--disk-format', 'raw',
                       '--container-format', 'bare', '--file', path,
                       '--public', 'sxm-e2e', '-f', 'json')['id']

    def flavor(self):
        """1 GiB root and 1 GiB ephemeral disk."""
        proc = self.os('flavor', 'show', 'sxm.e2e', '-f', 'json',
                       check=False)
        if proc.returncode == 0:
            return 'sxm.e2e'
        self.os('flavor', 'create', '--ram', 256, '--vcpus', 1, '--disk', 1,
                '--ephemeral', 1, 'sxm.e2e')
        return 'sxm.e2e'

    def boot(self, name, host='compute-a'):
        srv = self.os('server', 'create', '--image', self.image(),
                      '--flavor', self.flavor(), '--nic', 'none',
                      '--availability-zone', 'nova:%s' % host, '--wait',
                      name, '-f', 'json')
        self.addCleanup(self.delete_server, srv['id'])
        self.assertEqual('ACTIVE', srv['status'])
        self.assertEqual(host, srv['OS-EXT-SRV-ATTR:host'])
        return srv['id']

    def delete_server(self, ident):
        self.os('server', 'delete', '--wait', ident, check=False)

    def create_volume(self, name, tier, size=1):
        vol = self.os('volume', 'create', '--size', size, '--type', tier,
                      name, '-f', 'json')
        self.addCleanup(self.delete_volume, vol['id'])
        return self.wait_volume(vol['id'], 'available')['id']

    def delete_volume(self, ident):
        proc = self.os('volume', 'show', ident, '-f', 'json', check=False)
        if proc.returncode:
            return
        vol = json.loads(proc.stdout)
        for att in vol.get('attachments') or ():
            self.os('server', 'remove', 'volume', att['server_id'], ident,
                    check=False)
        self.poll(lambda: self.volume(ident)['status'] in (
            'available', 'error'), 'volume %s detached' % ident)
        self.os('volume', 'delete', ident, check=False)

    def attach(self, server, volume):
        self.os('server', 'add', 'volume', server, volume)
        return self.wait_volume(volume, 'in-use')

    # -- the simulator -----------------------------------------------------

    def vm_of(self, server, pool):
        api = self.xapi[pool]
        for ref, rec in api.VM.get_all_records().items():
            if rec['other_config'].get('nova_uuid') == server and \
                    not rec['is_a_snapshot']:
                return ref, rec
        return None, None

    def disks(self, server, pool):
        """{userdevice: (VDI uuid, SR name label)} of the server's VM."""
        api = self.xapi[pool]
        ref, rec = self.vm_of(server, pool)
        out = {}
        for vbd in rec['VBDs']:
            vbd_rec = api.VBD.get_record(vbd)
            if vbd_rec['type'] != 'Disk' or vbd_rec['empty']:
                continue
            vdi = vbd_rec['VDI']
            out[vbd_rec['userdevice']] = (
                api.VDI.get_uuid(vdi),
                api.SR.get_name_label(api.VDI.get_SR(vdi)))
        return out

    def local_vdis(self, pool):
        """The client's VDIs on the pool's own (not shared) SRs.

        The shared SR (silver) is the same storage in both pools: its
        volumes, of this or any other test, show in each.
        """
        api = self.xapi[pool]
        local = {ref for ref, rec in api.SR.get_all_records().items()
                 if not rec['shared']}
        return {rec['uuid'] for rec in api.VDI.get_all_records().values()
                if rec['managed'] and rec['SR'] in local}

    def vm_uuid(self, server, pool):
        ref, rec = self.vm_of(server, pool)
        self.assertIsNotNone(ref, 'no VM of server %s in %s' % (server, pool))
        return rec['uuid']

    def write(self, server, pool, devices, seed=1):
        """The guest writes uniformly at 1 MiB/s to each of ``devices``."""
        vm = self.vm_uuid(server, pool)
        for i, dev in enumerate(sorted(devices)):
            self.ctl[pool].workload_start(vm, dev, pattern='uniform',
                                          rate=MiB, block_size=4096,
                                          seed=seed + i)

    def wait_writes(self, server, pool, more=10):
        vm = self.vm_uuid(server, pool)

        def writes():
            return [d['writes'] for d in
                    self.ctl[pool].guest_stats(vm)['disks']]
        start = writes()
        self.poll(lambda: all(n >= s + more for n, s in
                              zip(writes(), start)),
                  'more guest writes on %s' % server, interval=0.2)

    def stop_and_check(self, server, pool, devices):
        """Stop the writers; every disk holds exactly what was written."""
        ctl = self.ctl[pool]
        vm = self.vm_uuid(server, pool)
        ctl.workload_stop(vm)
        for disk in ctl.guest_stats(vm)['disks']:
            self.assertEqual(0, disk['errors'], disk)
            self.assertGreater(disk['writes'], 0, disk)
        report = ctl.guest_check(vm)
        self.assertEqual(sorted(devices),
                         sorted(r['userdevice'] for r in report))
        for disk in report:
            self.assertTrue(disk['ok'], disk)

    def migrations(self, server):
        return self.os('server', 'migration', 'list', '--server', server,
                       '-f', 'json')

    def in_progress(self, server):
        for mig in self.migrations(server):
            if mig['Status'] not in ('completed', 'error', 'failed',
                                     'cancelled', 'done'):
                return mig
        return None


class OperatorSessionTest(CloudTestCase):

    def test_1_boot_retype_and_live_block_migrate(self):
        before_a = self.local_vdis('pool-a')
        server = self.boot('e2e-move')
        ref, rec = self.vm_of(server, 'pool-a')
        self.assertIsNotNone(ref, 'no VM of %s in pool-a' % server)
        self.assertEqual('Running', rec['power_state'])
        own = self.disks(server, 'pool-a')
        # Root (0) and the blank ephemeral disk (4) on the instance SR.
        self.assertEqual({'0', '4'}, set(own))
        self.write(server, 'pool-a', own)
        self.wait_writes(server, 'pool-a')

        volume = self.create_volume('e2e-silver', 'silver')
        self.attach(server, volume)
        disks = self.disks(server, 'pool-a')
        (vdev,) = set(disks) - set(own)
        self.assertEqual('silver', disks[vdev][1])
        self.ctl['pool-a'].workload_stop(self.vm_uuid(server, 'pool-a'))
        self.write(server, 'pool-a', disks, seed=10)
        self.wait_writes(server, 'pool-a')

        # Live retype there and back, the guest writing throughout.
        for tier in ('gold', 'silver'):
            self.os('volume', 'set', '--type', tier, '--migration-policy',
                    'on-demand', volume)
            seen = set()

            def done():
                vol = self.volume(volume)
                seen.add(vol['status'])
                return vol['type'] == tier and vol['status'] == 'in-use' \
                    and vol.get('migration_status') in (None, 'success')
            self.poll(done, 'volume %s retyped to %s' % (volume, tier))
            self.assertEqual({'in-use'}, seen - {'retyping'},
                             'volume status during the retype')
            self.assertEqual(tier, self.disks(server, 'pool-a')[vdev][1])
            self.wait_writes(server, 'pool-a')
        self.stop_and_check(server, 'pool-a', disks)
        # A live retype moves the volume to a new VDI (VDI.pool_migrate).
        disks = self.disks(server, 'pool-a')

        # Live block migration to the other pool's compute.
        self.write(server, 'pool-a', disks, seed=20)
        self.wait_writes(server, 'pool-a')
        t0 = time.monotonic()
        self.os('server', 'migrate', '--live-migration', '--block-migration',
                '--host', 'compute-b', server)
        progress = []

        def moved():
            mig = self.in_progress(server)
            if mig:
                progress.append(mig)
            srv = self.server(server)
            if srv['status'] == 'ERROR':
                self.fail('server %s went to ERROR: %s'
                          % (server, srv.get('fault')))
            return srv if (srv['OS-EXT-SRV-ATTR:host'] == 'compute-b'
                           and srv['status'] == 'ACTIVE'
                           and not srv['OS-EXT-STS:task_state']
                           and not mig) else None
        srv = self.poll(moved, 'server %s on compute-b' % server,
                        interval=0.5)
        elapsed = time.monotonic() - t0
        print('live block migration through openstack: %.1fs' % elapsed)
        self.assertTrue(progress, 'no migration in progress was listed')
        (last,) = [m for m in self.migrations(server)
                   if m['Dest Compute'] == 'compute-b']
        self.assertEqual('completed', last['Status'])
        self.assertEqual('pool-b-host1',
                         srv['OS-EXT-SRV-ATTR:hypervisor_hostname'])
        self.assertEqual((None, None), self.vm_of(server, 'pool-a'))
        ref, rec = self.vm_of(server, 'pool-b')
        self.assertEqual('Running', rec['power_state'])
        moved_disks = self.disks(server, 'pool-b')
        self.assertEqual(set(disks), set(moved_disks))
        self.assertEqual('silver', moved_disks[vdev][1])
        self.assertEqual(disks[vdev][0], moved_disks[vdev][0])
        self.wait_writes(server, 'pool-b')
        self.stop_and_check(server, 'pool-b', disks)
        # Nothing of the server's own disks is left in pool-a.
        self.assertEqual(set(), self.local_vdis('pool-a') - before_a)
        self.assertEqual('in-use', self.volume(volume)['status'])

    def test_2_abort_a_slow_migration(self):
        server = self.boot('e2e-abort')
        own = self.disks(server, 'pool-a')
        before_b = self.local_vdis('pool-b')
        self.write(server, 'pool-a', own)
        self.wait_writes(server, 'pool-a')
        # A slow link: the copy of the disks takes minutes.
        self.ctl['pool-a'].configure(bandwidth=256 * 1024)
        self.addCleanup(self.ctl['pool-a'].configure, bandwidth=0)
        self.os('server', 'migrate', '--live-migration', '--block-migration',
                '--host', 'compute-b', server)
        mig = self.poll(lambda: (lambda m: m if m and m['Status'] == 'running'
                                 else None)(self.in_progress(server)),
                        'a running migration of %s' % server, interval=0.5)
        self.os('server', 'migration', 'abort', server, mig['Id'])
        self.poll(lambda: [m for m in self.migrations(server)
                           if m['Id'] == mig['Id']
                           and m['Status'] == 'cancelled'],
                  'migration %s cancelled' % mig['Id'])
        srv = self.wait_server(server)
        self.assertEqual('compute-a', srv['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('Running', self.vm_of(server, 'pool-a')[1][
            'power_state'])
        self.assertEqual((None, None), self.vm_of(server, 'pool-b'))
        self.wait_writes(server, 'pool-a')
        self.stop_and_check(server, 'pool-a', own)
        self.assertEqual(set(), self.local_vdis('pool-b') - before_b)

    def _refused_gold(self):
        """Boot, attach a gold volume, ask for the cross-pool migration.

        Returns the server, the volume and what the user saw: the command's
        error and the details of the server's failed action events.
        """
        server = self.boot('e2e-gold')
        volume = self.create_volume('e2e-gold', 'gold')
        self.attach(server, volume)
        proc = self.os('server', 'migrate', '--live-migration',
                       '--block-migration', '--host', 'compute-b', server,
                       check=False)
        self.assertNotEqual(0, proc.returncode, 'the migration was accepted')
        seen = [proc.stderr]
        events = self.os('--os-compute-api-version', '2.84', 'server',
                         'event', 'list', server, '-f', 'json')
        for event in events:
            if event['Action'] == 'live-migration':
                seen.append(json.dumps(self.os(
                    '--os-compute-api-version', '2.84', 'server', 'event',
                    'show', server, event['Request ID'], '-f', 'json')))
        srv = self.wait_server(server)
        self.assertEqual('compute-a', srv['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('in-use', self.volume(volume)['status'])
        self.assertIsNotNone(self.vm_of(server, 'pool-a')[0])
        self.assertEqual((None, None), self.vm_of(server, 'pool-b'))
        # What the user saw, for test_4 (a boot less).
        type(self).gold_refusal_seen = '\n'.join(seen)
        return server, volume, '\n'.join(seen)

    def test_3_gold_volume_refuses_cross_pool_migration(self):
        server, volume, _seen = self._refused_gold()
        # The driver's reason, whole, where the operator looks.
        with open(os.path.join(CLOUD, 'logs', 'nova-conductor.log')) as f:
            reasons = [line for line in f if volume in line
                       and 'Retype the volume to a shared tier' in line]
        self.assertTrue(reasons, 'no reason naming volume %s in '
                        'nova-conductor.log' % volume)
        self.assertIn('cannot reach it', reasons[-1])

    @unittest.expectedFailure
    def test_4_gold_refusal_reason_reaches_the_user(self):
        # Known problem: with "--host" (microversion >= 2.30) nova's
        # conductor checks the requested host as a scheduler candidate and
        # turns the driver's MigrationPreCheckError into "No valid host was
        # found"; the reason is only in nova-conductor.log ("Skipping
        # host"). Reported with the tier's findings.
        seen = getattr(self, 'gold_refusal_seen', None)
        if seen is None:
            seen = self._refused_gold()[2]
        self.assertIn('Retype the volume to a shared tier', seen)

    def test_9_logs_hold_no_secret(self):
        secrets = {k: v for k, v in self.secrets.items()
                   if k.endswith('PASSWORD')}
        token_parts = re.compile(
            r"session_id['\"]?\s*[:=]\s*['\"]?OpaqueRef:[0-9a-f-]{8}"
            r"|'xenops'\s*:|'SM'\s*:\s*'OpaqueRef|'master'\s*:\s*'http")
        for name in ('nova-compute-a', 'nova-compute-b', 'cinder-volume'):
            path = os.path.join(CLOUD, 'logs', '%s.log' % name)
            with open(path) as f:
                text = f.read()
            self.assertIn('DEBUG', text, '%s is not at DEBUG' % name)
            for key, value in secrets.items():
                self.assertNotIn(value, text, '%s in %s' % (key, name))
            found = token_parts.search(text)
            self.assertIsNone(found, '%s: %s' % (
                name, found and text[found.start() - 80:found.end() + 80]))
