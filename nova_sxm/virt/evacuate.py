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

"""Evacuate: a server whose compute is down, rebuilt on this host.

Nova's evacuate (``openstack server evacuate``) is a rebuild on another
compute: it asks the destination's ``instance_on_disk``, then calls
``spawn`` with the instance in task state ``rebuild_spawning``.

* The instance's VM is in this XAPI pool on another host, and every disk
  it has is on an SR this host reaches (a shared SR, volumes): the same
  VM, with its disks, is taken over. Its host dead (``host_metrics.live``
  false), ``VM.power_state_reset`` marks it halted (XAPI refuses that,
  HOST_IS_LIVE, while the host lives); its host alive (only the
  nova-compute died), a running VM moves by ``VM.pool_migrate``, without
  stopping. Then it prefers this host (``affinity``) and starts here.
* Otherwise (disks on the other host's local SR, or the VM in another
  pool: an evacuate across pools can only rebuild) Nova rebuilds from the
  image and ``spawn`` makes a new VM. An old VM of this pool is stopped
  first (hard shutdown on a live host, power_state_reset on a dead one)
  and left to its host, halted, so that two copies never run: when the old
  compute starts again, Nova's ``_destroy_evacuated_instances`` calls its
  ``destroy``, which removes that VM and, as
  ``check_instance_shared_storage_*`` tell Nova, its own disks (they are
  not the new VM's).

After a take-over the old compute lists no such VM (it runs here and
prefers this host), so its start-up destroys nothing this host uses.
"""

from nova.virt import driver as virt_driver
from oslo_log import log as logging
from sxm_core import constants
from sxm_core import errors

from nova_sxm.virt import vmops as vmopsmod
from nova_sxm.virt import volumeops

LOG = logging.getLogger(__name__)
NULL = constants.OPAQUE_NULL
LIVE = ('Running', 'Paused')


class EvacuateOps(object):

    def __init__(self, conn, host, vmops, vif, volumeops_):
        self._conn = conn
        self._host = host
        self._vmops = vmops
        self._vif = vif
        self._volumeops = volumeops_

    def stranded(self, instance):
        """(ref, record) of the instance's VM on another host of the pool.

        None when the pool has no VM of it or the VM is this host's.
        """
        found = vmopsmod.find_vm(self._conn.pool, instance.uuid,
                                 instance.name)
        if found is None or self._host.owns(found[1]):
            return None
        return found

    def _old_host(self, rec):
        host = rec['resident_on']
        return host if host != NULL else rec['affinity']

    def _name(self, host):
        try:
            return self._conn.call('host.get_name_label', host)
        except errors.SxmError:
            return host

    def _host_live(self, host):
        if host == NULL:
            return False
        try:
            metrics = self._conn.call('host.get_metrics', host)
            return metrics != NULL and bool(
                self._conn.call('host_metrics.get_live', metrics))
        except errors.SxmError as exc:
            if errors.missing(exc):
                return False
            raise

    def _reachable(self, sr, cache):
        if sr not in cache:
            cache[sr] = any(
                pbd['host'] == self._host.host_ref and
                pbd['currently_attached']
                for pbd in (self._conn.call('PBD.get_record', p)
                            for p in self._conn.call('SR.get_PBDs', sr)))
        return cache[sr]

    def on_disk(self, instance, found=None):
        """Whether this host can run the instance's VM with its disks."""
        found = found or self.stranded(instance)
        if found is None:
            return False
        cache = {}
        for _, vdi in self._vmops.disk_records(found[0]):
            if not self._reachable(vdi['SR'], cache):
                return False
        return True

    def _stop_old(self, instance, ref, rec):
        """The old VM halted: reset on a dead host, shut down on a live."""
        if rec['power_state'] == 'Halted':
            return
        old = self._old_host(rec)
        if self._host_live(old):
            LOG.warning('Evacuate: the VM still runs on live XAPI host %s; '
                        'shutting it down so that one copy runs',
                        self._name(old),
                        instance=instance)
            self._conn.call('VM.hard_shutdown', ref)
        else:
            LOG.info('Evacuate: XAPI host %s is down: resetting the power '
                     'state of VM %s', self._name(old), rec['uuid'],
                     instance=instance)
            self._conn.call('VM.power_state_reset', ref)

    def prepare_rebuild(self, instance):
        """Before a rebuild from the image: no old VM of the pool runs.

        The old VM stays its host's (affinity) for the old compute to
        destroy when it starts again.
        """
        found = self.stranded(instance)
        if found is None:
            return
        ref, rec = found
        self._stop_old(instance, ref, rec)
        if rec['affinity'] == NULL and rec['resident_on'] != NULL:
            self._conn.call('VM.set_affinity', ref, rec['resident_on'])

    def take_over(self, instance, network_info, block_device_info,
                  power_on):
        """Evacuate onto this host keeping the VM and its disks.

        Returns False (nothing done) when that is not possible: the caller
        rebuilds from the image.
        """
        found = self.stranded(instance)
        if found is None or not self.on_disk(instance, found):
            self.prepare_rebuild(instance)
            return False
        ref, rec = found
        old = self._old_host(rec)
        if rec['power_state'] in LIVE and self._host_live(old):
            # Only its nova-compute died: the guest moves without a stop.
            LOG.info('Evacuate: moving VM %s from live XAPI host %s to this '
                     'host by pool migration', rec['uuid'], self._name(old),
                     instance=instance)
            self._conn.call('VM.pool_migrate', ref, self._host.host_ref,
                            {'live': 'true'})
        else:
            self._stop_old(instance, ref, rec)
        self._conn.call('VM.set_affinity', ref, self._host.host_ref)
        self._vif.plug(ref, instance, network_info,
                       running=self._conn.call('VM.get_power_state',
                                               ref) in LIVE)
        self._attach_new_volumes(ref, instance, block_device_info)
        LOG.info('Evacuate: VM %s taken over with its disks from XAPI host '
                 '%s', rec['uuid'], self._name(old), instance=instance)
        if power_on:
            self._vmops.power_on(instance)
        return True

    def _attach_new_volumes(self, ref, instance, block_device_info):
        # The VM keeps its volumes' VBDs; a volume attached meanwhile (none
        # in Nova's flow) would get one here.
        have = {vbd['other_config'].get(volumeops.VOLUME_KEY)
                for vbd, _ in self._vmops.disk_records(ref)}
        for bdm in virt_driver.block_device_info_get_mapping(
                block_device_info):
            info = bdm['connection_info']
            if volumeops.volume_id(info) in have:
                continue
            self._volumeops.attach(ref, instance, info, bdm['mount_device'],
                                   running=False,
                                   bootable=bdm.get('boot_index') == 0)

    # -- Nova's shared-storage check, at the old compute's start-up --------

    def shared_storage_data(self, instance):
        """What the old compute knows: its VM's own disks (or None)."""
        ref = self._vmops.lookup(instance)
        if ref is None:
            return None
        own, _ = self._vmops.disk_roles(ref)
        return {'sxm_pool': self._host.pool_uuid, 'instance': instance.uuid,
                'vdis': sorted(own)}

    def shares_storage(self, data):
        """Whether this host's VM of ``data['instance']`` uses its disks."""
        if data.get('sxm_pool') != self._host.pool_uuid:
            return False
        for ref, rec in self._host.vms.records().items():
            if rec['other_config'].get(vmopsmod.UUID_KEY) == \
                    data.get('instance'):
                own, _ = self._vmops.disk_roles(ref)
                return bool(own & set(data.get('vdis') or ()))
        return False
