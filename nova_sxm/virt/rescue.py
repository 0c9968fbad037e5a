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

"""Rescue and unrescue, as the historic xenapi driver did them.

Rescue builds a second VM, ``<instance name>-rescue``, on this host: its
own root disk from the rescue image (streamed as spawn streams an image),
the instance's root disk attached as its second disk (userdevice 1, not
bootable), the instance's swap and ephemeral disks at their own
userdevices, and the instance's VIFs (same ports, same MACs: the original
VM is halted). The original VM is halted by Nova before and kept as it
is, with ``start`` and ``start_on`` in its ``blocked_operations`` (the
historic driver's boot lock: XAPI answers ``OPERATION_BLOCKED`` to anyone
starting it while the rescue VM has its disks). The rescue VM carries
``other_config['nova_rescue_of']`` (not ``nova_uuid``), so every lookup
by instance finds the original; its VBDs to the instance's disks are
marked borrowed and are never destroyed with it
(``vmops.VMOps.own_disk_records``).

The rescue password: XAPI cannot set a password inside a guest without
the guest agent the historic driver used. When the instance has a config
drive, the rescue VM gets a config drive of its own holding the rescue
password (``admin_pass``), as libvirt does; otherwise it is not
delivered.

Refused before anything is built (the original VM stays halted and
startable; Nova 34 marks the server ERROR after any rescue failure, an
administrator returns it with ``openstack server set --state active``):
a volume-backed server (Nova's API already refuses it unless the driver
reports stable device rescue, which this one does not), a server already
rescued, a VM without a root disk. A failure while building removes the
rescue VM and its own disks and lifts the boot lock.

Unrescue destroys the rescue VM and its own disks, lifts the boot lock,
then starts the original VM on this host. Deleting a rescued server
removes both VMs (``vmops.VMOps.destroy``).
"""

from nova import exception
from oslo_log import log as logging

from nova_sxm.virt import configdrive
from nova_sxm.virt import vmops

LOG = logging.getLogger(__name__)
# The blocked_operations of a rescued instance's VM (value: the code XAPI
# answers with OPERATION_BLOCKED).
BOOT_LOCK = {'start': 'nova-rescue', 'start_on': 'nova-rescue'}


class RescueOps(object):

    def __init__(self, conn, host, vmops_, vifops):
        self._conn = conn
        self._host = host
        self._vmops = vmops_
        self._vif = vifops

    def _refuse(self, instance, reason):
        return exception.InstanceNotRescuable(instance_id=instance.uuid,
                                              reason=reason)

    def rescue(self, context, instance, network_info, image_meta,
               rescue_password, block_device_info):
        if vmops.root_volume(block_device_info) is not None:
            raise self._refuse(instance, 'its root disk is a volume; the '
                               'SXM driver does not rescue volume-backed '
                               'servers')
        ref = self._vmops.require(instance)
        found = self._vmops.rescue_vm(instance)
        if found is not None:
            raise self._refuse(instance, 'rescue VM %s already exists; '
                               'unrescue the server first'
                               % found[1]['uuid'])
        borrowed = self._vmops.own_disk_records(ref)
        if not any(vbd['userdevice'] == vmops.ROOT for vbd, _ in borrowed):
            raise self._refuse(instance, 'its VM has no root disk')
        with_drive = configdrive.required(instance)
        if with_drive:
            configdrive.check_tools(instance)
        if self._vmops.power(ref) != 'halted':
            # Nova stopped the guest first; one that ignored it is
            # stopped now (the rescue VM writes to its disks).
            self._vmops.hard_shutdown(ref)
        self._boot_lock(ref, True)
        rescue = self._vmops.create_vm(
            instance, instance.name + vmops.RESCUE_SUFFIX,
            {vmops.RESCUE_KEY: instance.uuid})
        try:
            sr = self._host.find_sr()
            self._vmops.root_disk(context, instance, image_meta, rescue, sr,
                                  kind='rescue', owner_key=vmops.RESCUE_KEY)
            for vbd, vdi in borrowed:
                device = vbd['userdevice']
                if device == vmops.CONFIGDRIVE and with_drive:
                    continue  # the rescue VM has its own (below)
                self._vmops.attach(
                    rescue, vbd['VDI'],
                    vmops.RESCUE if device == vmops.ROOT else device,
                    other={vmops.BORROWED_KEY: instance.uuid},
                    mode=vbd['mode'])
            if with_drive:
                self._vmops.config_drive(
                    instance, rescue, sr, network_info, None,
                    rescue_password, owner_key=vmops.RESCUE_KEY)
            self._vif.plug(rescue, instance, network_info)
            self._vmops.start(rescue)
        except Exception:
            LOG.exception('Building the rescue VM failed; removing it (the '
                          'original VM is kept halted)', instance=instance)
            self._vmops.destroy_ref(instance, rescue)
            self._boot_lock(ref, False)
            raise
        finally:
            self._host.vms.records()  # get_info's view, now current
        LOG.info('Rescue VM %s runs with the instance root disk at '
                 'userdevice %s', instance.name + vmops.RESCUE_SUFFIX,
                 vmops.RESCUE, instance=instance)

    def unrescue(self, instance):
        ref = self._vmops.require(instance)
        found = self._vmops.rescue_vm(instance)
        if found is not None:
            self._vmops.destroy_ref(instance, found[0])
        else:
            LOG.warning('No rescue VM to remove; starting the original VM',
                        instance=instance)
        self._boot_lock(ref, False)
        self._vmops.power_on(instance)
        self._host.vms.records()

    def _boot_lock(self, ref, locked):
        """Block (or allow again) starting the original VM."""
        call = self._conn.call
        blocked = call('VM.get_blocked_operations', ref)
        if locked:
            blocked.update(BOOT_LOCK)
        else:
            for op, code in BOOT_LOCK.items():
                if blocked.get(op) == code:
                    del blocked[op]
        call('VM.set_blocked_operations', ref, blocked)
