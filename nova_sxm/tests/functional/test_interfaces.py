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

"""Attach and detach of network interfaces through the Nova API.

A running guest gets its VIF hot-plugged (VIF.create + VIF.plug) and
hot-unplugged (VIF.unplug + VIF.destroy); a stopped one gets or loses the
VIF for its next start. XAPI refuses the hotplug of a guest without PV
drivers: the server keeps its interfaces and Nova releases the port.
"""

import random

from nova.tests.functional.api import client as api_client

from nova_sxm.tests.functional import base
from nova_sxm.virt import vif as vifmod
from xapi_sim import pool as simpool


class InterfaceTest(base.SxmServicesTestCase):

    def setUp(self):
        super().setUp()
        self.api_xapi = self.xapi['pool-a']
        self.port1 = self.neutron.port_1
        self.port2 = self.neutron.port_2
        self.neutron.create_port({'port': self.port2})

    def _boot(self):
        image = self.make_image(random.Random(5).randbytes(base.MiB))
        flavor = self._create_flavor(memory_mb=256, vcpu=1, disk=1,
                                     ephemeral=0)
        return self._create_server(image_uuid=image, flavor_id=flavor,
                                   host='host1',
                                   networks=[{'port': self.port1['id']}])

    def vifs(self, server):
        """{port id: VIF record} of the server's VM."""
        vm, _ = self.vm_of(server, 'pool-a')
        api = self.api_xapi
        out = {}
        for ref in api.VM.get_VIFs(vm):
            rec = api.VIF.get_record(ref)
            out[rec['other_config'].get(vifmod.PORT_KEY)] = rec
        return out

    def nova_ports(self, server):
        return {i['port_id'] for i in
                self.api.get_port_interfaces(server['id'])}

    def test_attach_detach_running(self):
        server = self._boot()
        self._attach_interface(server, self.port2['id'])
        vifs = self.vifs(server)
        self.assertEqual({self.port1['id'], self.port2['id']}, set(vifs))
        new = vifs[self.port2['id']]
        self.assertTrue(new['currently_attached'])
        self.assertEqual(self.port2['mac_address'], new['MAC'])
        self.assertEqual('1', new['device'])
        self.assertEqual('xenbr0',
                         self.api_xapi.network.get_bridge(new['network']))
        self.assertEqual({self.port1['id'], self.port2['id']},
                         self.nova_ports(server))

        self._detach_interface(server, self.port2['id'])
        vifs = self.vifs(server)
        self.assertEqual({self.port1['id']}, set(vifs))
        self.assertTrue(vifs[self.port1['id']]['currently_attached'])
        self.assertEqual({self.port1['id']}, self.nova_ports(server))
        self.assertEqual('ACTIVE', self.api.get_server(
            server['id'])['status'])

    def test_attach_detach_stopped(self):
        server = self._boot()
        server = self._stop_server(server)
        self._attach_interface(server, self.port2['id'])
        vifs = self.vifs(server)
        self.assertFalse(vifs[self.port2['id']]['currently_attached'])
        # The next start plugs it with the others.
        server = self._start_server(server)
        vifs = self.vifs(server)
        self.assertTrue(vifs[self.port2['id']]['currently_attached'])
        server = self._stop_server(server)
        self._detach_interface(server, self.port1['id'])
        self.assertEqual({self.port2['id']}, set(self.vifs(server)))
        server = self._start_server(server)
        self.assertEqual({self.port2['id']}, self.nova_ports(server))

    def test_guest_without_pv_drivers_refuses_hotplug(self):
        server = self._boot()
        vm, rec = self.vm_of(server, 'pool-a')
        # The guest runs no agent from its next boot on.
        self.sim.guest_agents[rec['uuid']] = simpool.guest_agent_profile(
            pv_drivers=False)
        server = self._reboot_server(server, hard=True)
        self.assertEqual('OpaqueRef:NULL',
                         self.api_xapi.VM.get_guest_metrics(vm))
        before = self.vifs(server)
        exc = self.assertRaises(
            api_client.OpenStackApiException, self.api.attach_interface,
            server['id'], {'interfaceAttachment': {
                'port_id': self.port2['id']}})
        self.assertIn('Failed to attach network adapter', str(exc))
        # No VIF left behind; the port is not the server's.
        self.assertEqual(set(before), set(self.vifs(server)))
        self.assertEqual({self.port1['id']}, self.nova_ports(server))
        # The reason is in the compute log (Nova's API says only that
        # the attach failed).
        self.assertIn('has no PV drivers', self.stdlog.logger.output)
        # Detach needs the hot-unplug too: refused, the VIF and the port
        # stay the server's.
        self.api.detach_interface(server['id'], self.port1['id'])
        self._wait_for_instance_action_event(
            server, 'detach_interface', 'compute_detach_interface', 'Error')
        vifs = self.vifs(server)
        self.assertEqual(set(before), set(vifs))
        self.assertTrue(vifs[self.port1['id']]['currently_attached'])
        self.assertEqual({self.port1['id']}, self.nova_ports(server))
        self._wait_for_state_change(server, 'ACTIVE')
