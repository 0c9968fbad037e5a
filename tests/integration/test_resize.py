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

"""``openstack server resize`` across pools, then confirm or revert.

The server boots on compute-a (pool-a); the resize copies its halted VM
to pool-b (xapi's copy mode of VM.migrate_send) where the new flavor is
applied. Confirm leaves nothing of it in pool-a; revert brings the
original back with every byte as it was and leaves nothing in pool-b.
Disk bytes are compared by the simulator's digests of the VM's disks.
A source compute killed (SIGKILL, with its watchdogs: the whole host)
while XAPI copies leaves, once it is started again, the server ACTIVE on
it, its VM running with its bytes and nothing in pool-b.
"""

import os
import signal

import cloudhelpers
from test_cloud import CLOUD
from test_cloud import CloudTestCase
from test_cloud import MiB
from test_images import _sha256_padded

GiB = 1 << 30
BIG = 'sxm.e2e.big'
ORIG_KEY = 'nova_resize_original'


def big_flavor(case):
    """2 VCPUs, 512 MiB, 2 GiB root, 1 GiB ephemeral."""
    proc = case.os('flavor', 'show', BIG, '-f', 'json', check=False)
    if proc.returncode:
        case.os('flavor', 'create', '--ram', 512, '--vcpus', 2,
                '--disk', 2, '--ephemeral', 1, BIG)
    return BIG


class ResizeTest(CloudTestCase):

    def originals(self, server, pool):
        return [rec for rec in self.xapi[pool].VM.get_all_records().values()
                if (rec['other_config'].get(ORIG_KEY) or '')
                .startswith(server + '/')]

    def resize(self, server):
        self.os('server', 'resize', '--flavor', big_flavor(self), '--wait',
                server)
        return self.wait_server(server, 'VERIFY_RESIZE')

    def test_1_resize_across_pools_then_confirm(self):
        before_a = self.local_vdis('pool-a')
        server = self.boot('e2e-resize-confirm')
        uuid = self.vm_uuid(server, 'pool-a')
        digests = self.ctl['pool-a'].vm_digests(uuid)
        # The root disk holds the image (sxm-e2e, kept in the cloud's
        # state) and zeros; no guest writes in this test.
        with open(os.path.join(CLOUD, 'state', 'sxm-e2e.raw'), 'rb') as f:
            image = f.read()
        self.assertEqual(_sha256_padded(image, GiB), digests['0'])

        srv = self.resize(server)
        self.assertEqual('compute-b', srv['OS-EXT-SRV-ATTR:host'])
        ref, rec = self.vm_of(server, 'pool-b')
        self.assertIsNotNone(ref)
        self.assertEqual('Running', rec['power_state'])
        self.assertEqual('2', rec['VCPUs_max'])
        self.assertEqual(str(512 * MiB), rec['memory_static_max'])
        new = self.ctl['pool-b'].vm_digests(rec['uuid'])
        # The ephemeral disk is copied as it was; the root disk grew to
        # the new flavor's 2 GiB with zeros.
        self.assertEqual(digests['4'], new['4'])
        self.assertEqual(_sha256_padded(image, 2 * GiB), new['0'])
        api_b = self.xapi['pool-b']
        new_root = api_b.VDI.get_by_uuid(self.disks(server, 'pool-b')['0'][0])
        self.assertEqual(2 * GiB, int(api_b.VDI.get_virtual_size(new_root)))
        # The original waits in pool-a, halted, until the confirm.
        kept = self.originals(server, 'pool-a')
        self.assertEqual([(uuid, 'Halted')],
                         [(r['uuid'], r['power_state']) for r in kept])

        self.os('server', 'resize', 'confirm', server)
        self.wait_server(server, 'ACTIVE')
        self.poll(lambda: not self.originals(server, 'pool-a'),
                  'the original VM removed from pool-a')
        self.assertEqual(before_a, self.local_vdis('pool-a'))

    def test_2_resize_across_pools_then_revert(self):
        before_b = self.local_vdis('pool-b')
        server = self.boot('e2e-resize-revert')
        uuid = self.vm_uuid(server, 'pool-a')
        self.write(server, 'pool-a', ('0', '4'))
        self.wait_writes(server, 'pool-a')
        self.ctl['pool-a'].workload_stop(uuid)
        digests = self.ctl['pool-a'].vm_digests(uuid)

        self.resize(server)
        self.os('server', 'resize', 'revert', server)
        srv = self.wait_server(server, 'ACTIVE')
        self.assertEqual('compute-a', srv['OS-EXT-SRV-ATTR:host'])
        self.poll(lambda: self.vm_of(server, 'pool-a')[1] and
                  self.vm_of(server, 'pool-a')[1]['power_state']
                  == 'Running', 'the original running again')
        _, rec = self.vm_of(server, 'pool-a')
        self.assertEqual(uuid, rec['uuid'])
        self.assertEqual('1', rec['VCPUs_max'])
        self.assertEqual(digests, self.ctl['pool-a'].vm_digests(uuid))
        self.assertEqual((None, None), self.vm_of(server, 'pool-b'))
        self.assertEqual(before_b, self.local_vdis('pool-b'))
        self.assertEqual([], self.originals(server, 'pool-a'))


class KilledResizeTest(cloudhelpers.ServiceKillTestCase):

    def test_source_compute_killed_mid_copy(self):
        before_b = self.local_vdis('pool-b')
        server = self.boot('e2e-resize-kill')
        uuid = self.vm_uuid(server, 'pool-a')
        digests = self.ctl['pool-a'].vm_digests(uuid)
        # A slow link: the copy takes minutes.
        self.ctl['pool-a'].configure(bandwidth=256 * 1024)
        self.addCleanup(self.ctl['pool-a'].configure, bandwidth=0)
        self.os('server', 'resize', '--flavor', big_flavor(self),
                server)
        self.poll(lambda: self.moving_task(uuid),
                  'the copy of %s under way' % server, interval=0.2)
        pid = cloudhelpers.pid_of('nova-compute-a')
        for child in cloudhelpers.pids():
            fields = cloudhelpers.stat(child)
            if fields is not None and int(fields[1]) == pid:
                os.kill(child, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        self.poll(lambda: not cloudhelpers.alive(pid), 'nova-compute-a to die',
                  interval=0.1)
        self.ctl['pool-a'].configure(bandwidth=0)
        self.ensure_cloud()

        def settled():
            srv = self.server(server)
            return srv if (srv['status'] == 'ACTIVE' and
                           not srv['OS-EXT-STS:task_state']) else None
        srv = self.poll(settled, 'the server ACTIVE with no task')
        self.assertEqual('compute-a', srv['OS-EXT-SRV-ATTR:host'])

        def home():
            ref, rec = self.vm_of_uuid(uuid, 'pool-a')
            return (rec and rec['power_state'] == 'Running'
                    and not rec['current_operations']
                    and ORIG_KEY not in rec['other_config'])
        self.poll(home, 'the original running again in pool-a')
        self.assertEqual(digests, self.ctl['pool-a'].vm_digests(uuid))
        self.assertEqual((None, None), self.vm_of(server, 'pool-b'))
        self.assertEqual([], [r['uuid'] for r in self.xapi['pool-b'].VM
                              .get_all_records().values()
                              if (r['other_config'].get(ORIG_KEY) or '')
                              .startswith(server + '/')])
        self.assertEqual(before_b, self.local_vdis('pool-b'))
