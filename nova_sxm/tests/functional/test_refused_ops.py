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

"""Operations XAPI cannot do leave the server as it was.

Through the API: the caller gets Nova's 501, the guest keeps running
(same domain, same bytes) and the server keeps its host and state.
"""

import random

from nova_sxm.tests.functional import base


class RefusedOperationsTest(base.SxmServicesTestCase):

    def setUp(self):
        super().setUp()
        self.data = random.Random(3).randbytes(MiB)
        image = self.make_image(self.data)
        self.flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=0,
                                          ephemeral=0)
        self.server = self._create_server(
            image_uuid=image, flavor_id=self.flavor, host='host1',
            networks='none')
        self.vm, rec = self.vm_of(self.server, 'pool-a')
        self.api_a = self.xapi['pool-a']
        self.domid = rec['domid']
        self.digest = self.ctl['pool-a'].vm_digests(rec['uuid'])['0']

    def assert_guest_untouched(self):
        rec = self.api_a.VM.get_record(self.vm)
        self.assertEqual('Running', rec['power_state'])
        # Never stopped: the same domain runs.
        self.assertEqual(self.domid, rec['domid'])
        self.assertEqual(self.digest,
                         self.ctl['pool-a'].vm_digests(rec['uuid'])['0'])
        self.assertEqual((None, None), self.vm_of(self.server, 'pool-b'))

    def test_set_password_is_refused_and_changes_nothing(self):
        # XAPI cannot set a guest's password without the old guest agent:
        # Nova's API answers 501 and the server stays as it was.
        resp = self.api.api_post(
            '/servers/%s/action' % self.server['id'],
            {'changePassword': {'adminPass': 'not-set-anywhere'}},
            check_response_status=False)
        self.assertEqual(501, resp.status, resp.body)
        server = self._wait_for_server_parameter(
            self.server, {'OS-EXT-STS:task_state': None})
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assert_guest_untouched()

    def test_console_output_is_refused(self):
        resp = self.api.api_post(
            '/servers/%s/action' % self.server['id'],
            {'os-getConsoleOutput': {'length': 10}},
            check_response_status=False)
        self.assertEqual(501, resp.status, resp.body)
        self.assert_guest_untouched()


MiB = base.MiB
