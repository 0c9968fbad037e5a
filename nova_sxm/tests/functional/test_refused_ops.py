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

"""Operations the driver does not do leave the server as it was.

Through the API: the guest keeps running (same domain), the server keeps
its host, flavor and (where Nova lets the driver decide) its state, and
the reason is in words in the action's event and the instance fault.
"""

import random

from nova import context as nova_context
from nova import objects

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

    def events(self, action):
        actions = [a for a in self.api.get_instance_actions(
            self.server['id']) if a['action'] == action]
        self.assertEqual(1, len(actions), actions)
        return self.api.api_get(
            '/servers/%s/os-instance-actions/%s'
            % (self.server['id'], actions[0]['request_id'])).body[
                'instanceAction']['events']

    def latest_fault(self):
        ctxt = nova_context.get_admin_context()
        faults = objects.InstanceFaultList.get_by_instance_uuids(
            ctxt, [self.server['id']])
        self.assertTrue(faults, 'no instance fault recorded')
        return faults[0]

    def refused(self, action, body, event):
        self.api.post_server_action(self.server['id'], {action: body})
        self.poll(lambda: [e for e in self.events(
            'migrate' if action == 'migrate' else action)
            if e['event'] == event and e['result'] == 'Error'] or None,
            timeout=60, interval=0.1, what='%s refused' % action)
        return self._wait_for_server_parameter(
            self.server, {'OS-EXT-STS:task_state': None})

    def test_resize_is_refused_in_words_and_changes_nothing(self):
        bigger = self._create_flavor(memory_mb=512, vcpu=2, disk=0,
                                     ephemeral=0)
        server = self.refused('resize', {'flavorRef': bigger},
                              'compute_resize_instance')
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(256, server['flavor']['ram'])
        (event,) = [e for e in self.events('resize')
                    if e['event'] == 'compute_resize_instance']
        self.assertIn('Resize and cold migration is not supported by the '
                      'SXM', event['details'])
        self.assertIn('Resize and cold migration is not supported',
                      self.latest_fault().message)
        migration = self.wait_migration(self.server, ('error',))
        self.assertEqual('resize', migration['migration_type'])
        self.assert_guest_untouched()

    def test_cold_migration_is_refused_in_words_and_changes_nothing(self):
        server = self.refused('migrate', None, 'compute_resize_instance')
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        (event,) = [e for e in self.events('migrate')
                    if e['event'] == 'compute_resize_instance']
        self.assertIn('live migration', event['details'])
        self.wait_migration(self.server, ('error',))
        self.assert_guest_untouched()

    def test_rescue_is_refused_before_the_guest_stops(self):
        server = self.refused('rescue', {}, 'compute_rescue_instance')
        (event,) = self.events('rescue')
        self.assertIn('Rescue is not supported by the SXM',
                      event['details'])
        fault = self.latest_fault().message
        self.assertIn('Rescue is not supported', fault)
        self.assertIn('keeps running', fault)
        # Nova 34 sets ERROR after any rescue failure (no way for a
        # driver to keep the state); the guest itself never stopped.
        self.assertEqual('ERROR', server['status'])
        self.assertIn('Rescue is not supported',
                      server['fault']['message'])
        self.assert_guest_untouched()


MiB = base.MiB
