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

"""The SXM compute driver: one nova-compute per XenServer / XCP-ng host.

Configure ``compute_driver = sxm.driver.SxmDriver`` and the ``[sxm]``
group. This class only converts and delegates: lifecycle to ``vmops``,
VIFs to ``vif``, volumes to ``volumeops``, host resources to ``host``, live
migration to ``migration``; every XAPI call goes through ``sxm_core``.

Support matrix (what is not listed is not supported):

* spawn (Glance raw and vhd images, root, swap and ephemeral disks,
  VIFs), destroy, reboot (soft, hard), power off / on, pause / unpause,
  suspend / resume, snapshot (to Glance, ``[sxm] image_upload_format``),
  attach / detach of ``xensm`` volumes (a shared SR of another XAPI pool
  is introduced here and forgotten with its last VBD), plug / unplug VIFs;
* live migration: in a pool or to another pool, with (Storage XenMotion)
  or without (shared storage) block migration, progress in the
  Migration record, abort; attached volumes stay on their SR when the
  destination pool can reach it (a shared SR), else the migration is
  refused before anything is copied;
* not supported (NotImplementedError): cold migration and resize,
  live_migration_force_complete (XAPI has no post-copy, and memory
  migration is already the last, short phase), consoles and console
  output (need dom0 plugins), rescue, set_admin_password, inject files,
  attach / detach interface, evacuate.
"""

from nova.compute import power_state
import nova.conf
from nova import exception
from nova.virt import driver
from nova.virt import node as nova_node
import os_resource_classes as orc
from oslo_log import log as logging
from oslo_utils import excutils

from nova_sxm.virt import host as hostmod
from nova_sxm.virt import migration
from nova_sxm.virt import session
from nova_sxm.virt import vif as vifmod
from nova_sxm.virt import vmops as vmopsmod
from nova_sxm.virt import volumeops

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF


class SxmDriver(driver.ComputeDriver):
    """A XenServer / XCP-ng host through XAPI, with Storage XenMotion."""

    capabilities = dict(driver.ComputeDriver.capabilities, **{
        'has_imagecache': False,
        'supports_evacuate': False,
        'supports_migrate_to_same_host': False,
        'supports_attach_interface': False,
        'supports_device_tagging': False,
        'supports_extend_volume': False,
        'supports_multiattach': False,
        'supports_image_type_raw': True,
        'supports_image_type_vhd': True,
    })

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi)
        # Read now: the next service of a test process may change CONF.
        self._settings = session.Settings.from_conf()
        self._conn = session.XapiConnection(self._settings)
        self._host = hostmod.HostState(self._conn)
        self._vif = vifmod.VifOps(self._conn)
        self._vmops = vmopsmod.VMOps(self._conn, self._host, self._vif)
        self._volumeops = volumeops.VolumeOps(self._conn, self._host)
        self._migration = migration.LiveMigrationOps(
            self._conn, self._host, self._vmops, self._vif, self._volumeops)
        self.active_migrations = self._migration.active_migrations

    # -- host ----------------------------------------------------------------

    def init_host(self, host):
        self._host.connect()
        self._record_node_identity()
        LOG.info('Managing XAPI host %s (%s) of pool %s',
                 self._host.host_name, self._host.host_uuid,
                 self._host.pool_uuid)

    def _record_node_identity(self):
        """Keep the XAPI host's uuid as this service's node identity.

        Nova refuses to start an existing compute service without
        ``state_path/compute_id`` (libvirt writes a uuid of its own there);
        our compute node's uuid is the XAPI host's, so that is what goes in.
        """
        known = nova_node.read_local_node_uuid()
        if known is None:
            nova_node.write_local_node_uuid(self._host.host_uuid)
        elif known != self._host.host_uuid:
            raise exception.InvalidConfiguration(
                'This compute service was the node of XAPI host %s (%s); '
                '[sxm] connection_url now leads to host %s (%s). Point it '
                'back, or remove the file and the old compute node record '
                'to make this service another node.'
                % (known, nova_node.COMPUTE_ID_FILE, self._host.host_uuid,
                   self._host.host_name))

    def cleanup_host(self, host):
        self._conn.close()

    def _ensure(self):
        if self._host.host_ref is None:
            self._host.connect()

    def get_available_nodes(self, refresh=False):
        self._ensure()
        return [self._host.host_name]

    def get_nodenames_by_uuid(self, refresh=False):
        self._ensure()
        return {self._host.host_uuid: self._host.host_name}

    def get_available_resource(self, nodename):
        self._ensure()
        return self._host.stats()

    def update_provider_tree(self, provider_tree, nodename,
                             allocations=None):
        stats = self._host.stats()
        inv = provider_tree.data(nodename).inventory
        ratios = self._get_allocation_ratios(inv)

        def one(total, reserved, ratio):
            return {'total': total, 'min_unit': 1,
                    'max_unit': max(1, total), 'step_size': 1,
                    'allocation_ratio': ratio, 'reserved': reserved}
        provider_tree.update_inventory(nodename, {
            orc.VCPU: one(stats['vcpus'], CONF.reserved_host_cpus,
                          ratios[orc.VCPU]),
            orc.MEMORY_MB: one(stats['memory_mb'],
                               CONF.reserved_host_memory_mb,
                               ratios[orc.MEMORY_MB]),
            orc.DISK_GB: one(stats['local_gb'],
                             self._get_reserved_host_disk_gb_from_config(),
                             ratios[orc.DISK_GB]),
        })

    def get_host_ip_addr(self):
        self._ensure()
        return self._host.address

    def get_volume_connector(self, instance):
        # The XenServer host, not the nova-compute node, reaches the
        # storage: its address and iSCSI IQN.
        self._ensure()
        return {'ip': self._host.address, 'host': self._host.host_name,
                'initiator': self._host.iqn,
                'platform': 'x86_64', 'os_type': 'linux',
                'multipath': False,
                'xapi_pool_uuid': self._host.pool_uuid,
                'xapi_host_uuid': self._host.host_uuid,
                'xapi_host_name': self._host.host_name}

    # -- instances -----------------------------------------------------------

    def list_instances(self):
        return [rec['name_label']
                for rec in self._vmops.instances().values()]

    def list_instance_uuids(self):
        return list(self._vmops.instances())

    def instance_exists(self, instance):
        return self._vmops.lookup(instance) is not None

    def get_info(self, instance, use_cache=True):
        return self._vmops.get_info(instance)

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None,
              share_info=None):
        self._ensure()
        self._vmops.spawn(context, instance, image_meta, network_info,
                          power_on=False)
        try:
            vm = self._vmops.require(instance)
            for bdm in driver.block_device_info_get_mapping(
                    block_device_info):
                self._volumeops.attach(vm, instance, bdm['connection_info'],
                                       bdm['mount_device'], running=False)
            if power_on:
                self._vmops.power_on(instance)
        except Exception:
            with excutils.save_and_reraise_exception():
                # Volumes are detached with the VM, never destroyed.
                self._vmops.destroy(instance, destroy_disks=True)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        self._vmops.destroy(instance, destroy_disks=destroy_disks)
        self._release_volume_srs(block_device_info)

    def cleanup(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, migrate_data=None, destroy_vifs=True,
                destroy_secrets=True):
        # After a live migration the VM is gone from this host (another
        # pool, or another host of this pool): lookup() finds nothing.
        self._vmops.destroy(instance, destroy_disks=destroy_disks)
        self._release_volume_srs(block_device_info)

    def _release_volume_srs(self, block_device_info):
        # Nova detaches a deleted server's volumes without detach_volume:
        # the SRs introduced for them go when nothing else uses them.
        for vol, info in migration.volume_connections(block_device_info):
            try:
                self._volumeops.release_sr(info['data']['sr_uuid'])
            except Exception as exc:
                LOG.warning('Could not forget the SR of volume %s: %s',
                            vol, exc)

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None, share_info=None):
        self._vmops.reboot(instance, reboot_type)

    def power_off(self, instance, timeout=0, retry_interval=0):
        self._vmops.power_off(instance, timeout)

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        self._vmops.power_on(instance)

    def pause(self, instance):
        self._vmops.pause(instance)

    def unpause(self, instance):
        self._vmops.unpause(instance)

    def suspend(self, context, instance):
        self._vmops.suspend(instance)

    def resume(self, context, instance, network_info,
               block_device_info=None, share_info=None):
        self._vmops.resume(instance)

    def snapshot(self, context, instance, image_id, update_task_state):
        self._vmops.snapshot(context, instance, image_id, update_task_state)

    def plug_vifs(self, instance, network_info):
        vm = self._vmops.require(instance)
        running = self._vmops.get_info(instance).state == \
            power_state.RUNNING
        self._vif.plug(vm, instance, network_info, running=running)

    def unplug_vifs(self, instance, network_info):
        vm = self._vmops.lookup(instance)
        if vm is not None:
            self._vif.unplug(vm, instance, network_info)

    # -- volumes -------------------------------------------------------------

    def attach_volume(self, context, connection_info, instance, mountpoint,
                      disk_bus=None, device_type=None, encryption=None):
        if encryption:
            raise exception.VolumeEncryptionNotSupported(
                volume_type='xensm',
                volume_id=connection_info.get('serial', ''))
        vm = self._vmops.require(instance)
        running = self._vmops.get_info(instance).state == \
            power_state.RUNNING
        self._volumeops.attach(vm, instance, connection_info, mountpoint,
                               running)

    def detach_volume(self, context, connection_info, instance, mountpoint,
                      encryption=None):
        vm = self._vmops.lookup(instance)
        if vm is None:
            return
        self._volumeops.detach(vm, instance, connection_info, mountpoint)

    # -- live migration ------------------------------------------------------

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info,
                                           dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        return self._migration.check_destination(instance, block_migration,
                                                 disk_over_commit)

    def cleanup_live_migration_destination_check(self, context,
                                                 dest_check_data):
        # The destination check holds nothing (no token, no reservation).
        pass

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data,
                                      block_device_info=None):
        return self._migration.check_source(instance, dest_check_data,
                                            block_device_info)

    def get_instance_disk_info(self, instance, block_device_info=None):
        return self._migration.disk_info(instance)

    def pre_live_migration(self, context, instance, block_device_info,
                           network_info, disk_info, migrate_data):
        return self._migration.pre_live_migration(instance,
                                                  block_device_info,
                                                  migrate_data)

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration=False,
                       migrate_data=None):
        self._migration.live_migration(context, instance, dest, post_method,
                                       recover_method, block_migration,
                                       migrate_data)

    def live_migration_abort(self, instance):
        self._migration.abort(instance)

    def live_migration_force_complete(self, instance):
        raise NotImplementedError(
            'XAPI has no post-copy: the memory phase of a Storage XenMotion '
            'is already its last and shortest step.')

    def post_live_migration(self, context, instance, block_device_info,
                            migrate_data=None):
        self._migration.post_at_source(instance, block_device_info,
                                       migrate_data)

    def post_live_migration_at_source(self, context, instance, network_info):
        # The VM record left this host with the migration: nothing to do.
        pass

    def post_live_migration_at_destination(self, context, instance,
                                           network_info,
                                           block_migration=False,
                                           block_device_info=None):
        self._migration.post_at_destination(instance)

    def rollback_live_migration_at_destination(self, context, instance,
                                               network_info,
                                               block_device_info,
                                               destroy_disks=True,
                                               migrate_data=None):
        self._migration.rollback_at_destination(instance, migrate_data)

    def check_instance_shared_storage_local(self, context, instance):
        return None

    def get_host_uptime(self):
        raise NotImplementedError()
