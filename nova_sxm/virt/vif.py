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

"""VIFs: Neutron ports as XAPI VIFs, found again by port id.

Each VIF carries its Neutron port id in ``other_config['neutron-port-id']``
(the key the historic xenapi driver and ``sxm_core.plan`` use), which is
how the driver finds it later and how a live migration maps it to a
destination network. The XAPI network of a port is chosen by the first
rule that matches (the ``[sxm] default_network`` help text):

1. the XAPI network whose bridge is the Neutron network's bridge;
2. else the XAPI network whose name label is the Neutron network's name;
3. else ``[sxm] default_network`` (a name label, bridge or uuid).
"""

from nova import exception
from oslo_log import log as logging
from oslo_utils import excutils
from sxm_core import constants
from sxm_core import errors

LOG = logging.getLogger(__name__)
PORT_KEY = 'neutron-port-id'
NULL = constants.OPAQUE_NULL


class VifOps(object):

    def __init__(self, conn):
        self._conn = conn

    def networks(self, network_info=None, also=()):
        """{ref: record} of the networks ``choose_network`` may pick.

        With ``network_info``: only those its VIFs, ``[sxm]
        default_network`` and ``also`` (uuids, bridges or name labels)
        can name (a network record lists every VIF on it: a pool's whole
        table is large). Without: every network.
        """
        keys = {self._conn.settings.default_network}
        keys.update(also)
        for vif in network_info or ():
            net = vif.get('network') or {}
            keys.update((net.get('bridge'), net.get('label')))
        keys.discard(None)
        keys.discard('')
        if network_info is None or any('"' in k for k in keys):
            # (xapi's filter strings cannot hold a double quote.)
            return self._conn.call('network.get_all_records')
        terms = ['field "%s" = "%s"' % (column, key) for key in sorted(keys)
                 for column in ('uuid', 'bridge', 'name__label')]
        if not terms:
            return {}
        return self._conn.call('network.get_all_records_where',
                               ' or '.join(terms))

    def choose_network(self, vif, networks=None):
        """The XAPI network ref for a nova VIF (see the module's rules)."""
        networks = networks if networks is not None else self.networks()
        net = vif.get('network') or {}
        bridge = net.get('bridge')
        label = net.get('label')
        for key, value in (('bridge', bridge), ('name_label', label)):
            if not value:
                continue
            found = [r for r, rec in networks.items() if rec[key] == value]
            if len(found) == 1:
                return found[0]
        default = self._conn.settings.default_network
        for ref, rec in networks.items():
            if default in (rec['uuid'], rec['bridge'], rec['name_label']):
                return ref
        raise exception.NetworkNotFoundForBridge(
            bridge='%s (nor network %r, nor [sxm] default_network %r)'
            % (bridge, label, default))

    def vifs_by_port(self, vm_ref):
        """{port id: VIF ref} of a VM's VIFs."""
        out = {}
        for vif in self._conn.call('VM.get_VIFs', vm_ref):
            port = self._conn.call('VIF.get_other_config', vif).get(
                PORT_KEY)
            if port:
                out[port] = vif
        return out

    def plug(self, vm_ref, instance, network_info, running=False):
        """Create a VIF per port of ``network_info`` that has none."""
        existing = self.vifs_by_port(vm_ref)
        used = self._devices(vm_ref)
        networks = self.networks(network_info or [])
        for vif in network_info or []:
            if vif['id'] in existing:
                continue
            ref = self._create(vm_ref, instance, vif, used, networks)
            if running:
                self._conn.call('VIF.plug', ref)

    def _devices(self, vm_ref):
        return {self._conn.call('VIF.get_device', v)
                for v in self._conn.call('VM.get_VIFs', vm_ref)}

    def _create(self, vm_ref, instance, vif, used, networks):
        """A new VIF for port ``vif`` at the first device not in ``used``."""
        device = next(str(i) for i in range(len(used) + 1)
                      if str(i) not in used)
        used.add(device)
        ref = self._conn.call('VIF.create', {
            'VM': vm_ref, 'device': device,
            'network': self.choose_network(vif, networks),
            'MAC': vif['address'] or '',
            'MTU': str((vif.get('network') or {}).get('meta', {}).get(
                'mtu') or 1500),
            'other_config': {PORT_KEY: vif['id'],
                             'nova-instance-uuid': instance.uuid},
            'qos_algorithm_type': '', 'qos_algorithm_params': {}})
        LOG.debug('Created VIF %s for port %s', device, vif['id'],
                  instance=instance)
        return ref

    def attach(self, vm_ref, instance, vif, running):
        """Add port ``vif`` to a VM, hot-plugged when it is ``running``.

        XAPI refuses the hotplug of a guest without PV drivers (or one
        that says it cannot hotplug VIFs): the new VIF is removed again
        and the refusal raised (an ``sxm_core.errors.XapiFailure``).
        """
        ref = self.vifs_by_port(vm_ref).get(vif['id'])
        created = ref is None
        if created:
            ref = self._create(vm_ref, instance, vif,
                               self._devices(vm_ref),
                               self.networks([vif]))
        if not running or (not created and self._conn.call(
                'VIF.get_currently_attached', ref)):
            return ref  # (a retried request finds it attached)
        try:
            self._conn.call('VIF.plug', ref)
        except Exception:
            with excutils.save_and_reraise_exception():
                try:
                    self._conn.call('VIF.destroy', ref)
                except errors.SxmError as exc:
                    LOG.warning('Could not remove VIF %s after its hotplug '
                                'failed: %s', ref, exc, instance=instance)
        return ref

    def detach(self, vm_ref, instance, port_id):
        """Remove port ``port_id``'s VIF, hot-unplugged first.

        False when the VM has no VIF for that port.
        """
        ref = self.vifs_by_port(vm_ref).get(port_id)
        if ref is None:
            return False
        self._remove(ref)
        return True

    def _remove(self, ref):
        if self._conn.call('VIF.get_currently_attached', ref):
            self._conn.call('VIF.unplug', ref)
        self._conn.call('VIF.destroy', ref)

    def unplug(self, vm_ref, instance, network_info):
        """Remove the VIFs of ``network_info``'s ports (unplug first)."""
        existing = self.vifs_by_port(vm_ref)
        for vif in network_info or []:
            ref = existing.get(vif['id'])
            if ref is not None:
                self._remove(ref)
