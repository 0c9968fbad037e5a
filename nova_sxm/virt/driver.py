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
migration to ``migration``, resize and cold migration to ``resize``;
every XAPI call goes through ``sxm_core``.

Support matrix (what is not listed is not supported):

* spawn (Glance raw and vhd images, root, swap and ephemeral disks,
  VIFs; boot from an ``xensm`` volume: the volume is the root disk at
  userdevice 0, bootable, and is detached, never destroyed), destroy,
  reboot (soft, hard), power off / on, pause / unpause, suspend / resume,
  snapshot and shelve (to Glance: the dynamic VHD XAPI exports, or raw,
  ``[sxm] image_upload_format``; a volume-backed server's snapshot is
  Cinder's, Nova never asks the driver), rescue / unrescue (``rescue``),
  config drive (``configdrive``), rebuild (Nova's destroy and spawn:
  volumes and ports are kept),
  attach / detach of ``xensm`` volumes (a shared SR of another XAPI pool
  is introduced here and forgotten with its last VBD), multiattach (a
  sharable VDI plugged read-write in several VMs; XAPI's VDI_IN_USE for
  a non-sharable one is said in words), swap volume of a halted VM (the
  old VDI copied into the new one, the VBD replaced; refused for a
  running, paused or suspended VM and for a VDI of another pool's local
  SR, which XAPI cannot do), plug / unplug VIFs,
  attach / detach interface (hot-plugged on a running guest: XAPI refuses
  a guest without PV drivers, and the server keeps its interfaces),
  device tags of NICs and volumes (``devicemeta``);
* host (``host``): maintenance mode (the XAPI host disabled, its running
  servers live-migrated by Nova to the computes of the pool's other
  hosts), enable / disable (the XAPI host follows the compute service),
  uptime (from the host's ``boot_time``);
* evacuate (``evacuate``): the same VM started here with its disks when
  they are on an SR this host reaches, else Nova's rebuild from the image
  (the old VM stopped, and destroyed with its disks when its compute
  starts again);
* live migration: in a pool or to another pool, with (Storage XenMotion)
  or without (shared storage) block migration, progress in the
  Migration record, abort; attached volumes stay on their SR when the
  destination pool can reach it (a shared SR), else the migration is
  refused before anything is copied;
* resize and cold migration (``resize``): to another pool (xapi's copy
  mode of VM.migrate_send), another host of the pool or the same host
  (VM.copy); the halted source VM is kept until the confirm, restored
  byte for byte on revert; a smaller disk or any failure leaves the
  server as it was on the source;
* not supported (NotImplementedError): live_migration_force_complete
  (XAPI has no post-copy, and memory migration is already the last,
  short phase), consoles and console output (need dom0 plugins),
  set_admin_password, inject files.

A refusal leaves the server as it was and says why in words (the instance
fault and the action's event): a refused or failed rescue leaves the
original VM halted and startable, though Nova 34 marks the server ERROR
after any rescue failure (an administrator sets it back with ``openstack
server set --state active``).

Start-up (Nova's init_host, then _init_instance per instance): one VM
that is missing, on another host, in another pool after an interrupted
migration, halted or inside an XAPI operation never stops the service.
``process_instances_at_startup`` logs per instance what XAPI has and what
Nova will see; ``plug_vifs`` (where anything but
VirtualInterfacePlugException kills the service) skips such VMs;
``get_info`` raises InstanceNotFound for a VM that is not this host's
(Nova's power sync reads NOSTATE and leaves the server alone) and reports
NOSTATE while XAPI changes a VM's power state. ``init_host`` destroys the
ended XAPI tasks an earlier run of this service created (tasks are tagged
``other_config['sxm_owner'] = nova-sxm/<XAPI host uuid>``).
"""

import time

from nova import block_device
from nova.compute import power_state
from nova.compute import task_states
from nova.compute import utils as compute_utils
from nova.compute import vm_states
import nova.conf
from nova import exception
from nova.virt import driver
from nova.virt import node as nova_node
import os_resource_classes as orc
from oslo_log import log as logging
from oslo_utils import excutils
from sxm_core import attach
from sxm_core import errors
from sxm_core import tasks

from nova_sxm.virt import devicemeta
from nova_sxm.virt import evacuate as evacuatemod
from nova_sxm.virt import host as hostmod
from nova_sxm.virt import migration
from nova_sxm.virt import rescue as rescuemod
from nova_sxm.virt import resize as resizemod
from nova_sxm.virt import session
from nova_sxm.virt import vif as vifmod
from nova_sxm.virt import vmops as vmopsmod
from nova_sxm.virt import volumeops

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
# The service part of this driver's task tags (sxm_core.tasks.set_owner).
TASK_OWNER = 'nova-sxm'
# How long get_available_resource's figures serve the update_provider_tree
# of the same resource tracker run (seconds).
STATS_FOR_TREE = 10.0
SHELVING = (task_states.SHELVING, task_states.SHELVING_IMAGE_PENDING_UPLOAD,
            task_states.SHELVING_IMAGE_UPLOADING)


class NotSupported(exception.NovaException, NotImplementedError):
    """An operation this driver does not do, said in words.

    A NotImplementedError for Nova (its compute manager keeps the
    server's state for resize and migration) whose message reaches the
    instance fault and the action's event (a bare NotImplementedError
    shows only its class name there).
    """
    msg_fmt = '%(what)s is not supported by the SXM (XenServer) driver%(why)s'


class SnapshotFailed(exception.NovaException):
    msg_fmt = 'Snapshot to image %(image_id)s failed: %(reason)s'


class InterfaceAttachRefused(exception.InterfaceAttachFailed):
    msg_fmt = ('Failed to attach network adapter device to '
               '%(instance_uuid)s: %(reason)s')


class InterfaceDetachRefused(exception.InterfaceDetachFailed):
    msg_fmt = ('Failed to detach network adapter device from '
               '%(instance_uuid)s: %(reason)s')


def _not_supported(what, why=''):
    return NotSupported(what=what, why=': %s' % why if why else '.')


class SxmDriver(driver.ComputeDriver):
    """A XenServer / XCP-ng host through XAPI, with Storage XenMotion."""

    capabilities = dict(driver.ComputeDriver.capabilities, **{
        'has_imagecache': False,
        'supports_evacuate': True,
        # A cold migration to the same host is a VM.copy (see resize).
        'supports_migrate_to_same_host': True,
        'supports_attach_interface': True,
        # Tags as the historic driver exposed them (see devicemeta).
        'supports_device_tagging': True,
        'supports_tagged_attach_interface': True,
        'supports_tagged_attach_volume': True,
        # Cinder resizes the VDI under the running VM (VDI.resize_online
        # where the SR's SM offers it); see volumeops.check_extended.
        'supports_extend_volume': True,
        # XAPI lets several VMs plug a sharable VDI read-write; the Cinder
        # backend decides which SRs offer multiattach volumes.
        'supports_multiattach': True,
        'supports_image_type_raw': True,
        'supports_image_type_vhd': True,
    })

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi)
        # Read now: the next service of a test process may change CONF.
        self._settings = session.Settings.from_conf()
        self._conn = session.XapiConnection(self._settings)
        self._host = hostmod.HostState(self._conn)
        # (time, stats) of get_available_resource, for update_provider_tree
        self._stats_for_tree = None
        self._vif = vifmod.VifOps(self._conn)
        self._vmops = vmopsmod.VMOps(self._conn, self._host, self._vif)
        self._volumeops = volumeops.VolumeOps(self._conn, self._host)
        self._migration = migration.LiveMigrationOps(
            self._conn, self._host, self._vmops, self._vif, self._volumeops)
        self.active_migrations = self._migration.active_migrations
        self._evacuate = evacuatemod.EvacuateOps(
            self._conn, self._host, self._vmops, self._vif, self._volumeops)
        self._maintenance = hostmod.Maintenance(self._conn, self._host)
        self._rescue = rescuemod.RescueOps(self._conn, self._host,
                                           self._vmops, self._vif)
        self._resize = resizemod.ResizeOps(
            self._conn, self._host, self._vmops, self._vif, self._volumeops)

    # -- host ----------------------------------------------------------------

    def init_host(self, host):
        self._connect()
        self._record_node_identity()
        LOG.info('Managing XAPI host %s (%s) of pool %s',
                 self._host.host_name, self._host.host_uuid,
                 self._host.pool_uuid)
        self._reap_tasks()

    def _connect(self):
        self._host.connect()
        tasks.set_owner(self._conn.pool, TASK_OWNER, self._host.host_uuid)

    def _reap_tasks(self):
        """Destroy the ended tasks an earlier run of this service left.

        A process killed while it waited for a task never destroyed it.
        Running tasks and other clients' tasks are left alone.
        """
        try:
            done = tasks.reap(self._conn.pool, TASK_OWNER,
                              self._host.host_uuid)
        except Exception as exc:
            LOG.warning('Could not clean up the ended XAPI tasks of an '
                        'earlier run of this service: %s', exc)
            return
        if done:
            LOG.info('Destroyed %d ended XAPI task(s) left by an earlier '
                     'run of this service: %s', len(done), '; '.join(done))

    def process_instances_at_startup(self, context, instances):
        """Log per instance what XAPI has and what Nova will see.

        Nova's _init_instance then runs for every instance, and the
        driver's hooks cope with what is logged here. Interrupted live
        migrations are reconciled (see "A dead owner" in ``migration``).
        """
        for instance in instances:
            try:
                self._report_at_startup(instance)
            except Exception as exc:
                LOG.warning('Could not look up the VM at start-up (%s); '
                            'Nova goes on with the instance', exc,
                            instance=instance)
        # Interrupted migrations Nova will not abort itself (a bring-back
        # cut short, a server deleted while this compute was down); the
        # MIGRATING ones are reconciled by Nova's live_migration_abort.
        try:
            self._migration.reconcile_host(context, instances)
        except Exception as exc:
            LOG.warning('Could not reconcile the interrupted live '
                        'migrations of this host at start-up: %s', exc)
        return instances

    def _report_at_startup(self, instance):
        found = self._vmops.survey(instance)
        states = '(Nova: vm_state %s, task_state %s)' % (
            instance.vm_state, instance.task_state)
        if found['where'] == 'missing':
            hint = ''
            if instance.task_state == task_states.MIGRATING:
                hint = ('; an interrupted live migration may have moved it '
                        'to its destination pool')
            LOG.warning('Start-up: no VM of this instance in XAPI pool %s '
                        '%s%s. Nova will see power state NOSTATE; VIFs are '
                        'not plugged and the server is left as Nova has '
                        'it.', self._host.pool_uuid, states, hint,
                        instance=instance)
        elif found['where'] == 'other-host':
            LOG.warning('Start-up: VM %s of this instance runs on host %s '
                        'of the pool, not on %s %s. Nova will see power '
                        'state NOSTATE; VIFs are not plugged.',
                        found['record']['uuid'], found['host_name'],
                        self._host.host_name, states, instance=instance)
        else:
            rec = found['record']
            seen = power_state.STATE_MAP.get(found['power'], '?')
            if found['operations']:
                LOG.warning('Start-up: VM %s is %s inside XAPI operation(s) '
                            '%s %s. VIFs are left as they are; Nova sees '
                            'power state %s until the operation ends.',
                            rec['uuid'], rec['power_state'],
                            ', '.join(found['operations']), states, seen,
                            instance=instance)
            elif (instance.vm_state == vm_states.ACTIVE and
                  found['power'] != power_state.RUNNING):
                LOG.warning('Start-up: VM %s is %s though Nova has the '
                            'server %s %s. Nova will see power state %s '
                            '(its power sync stops the server unless '
                            '[DEFAULT] resume_guests_state_on_host_boot '
                            'starts the VM).', rec['uuid'],
                            rec['power_state'], instance.vm_state, states,
                            seen, instance=instance)
            else:
                LOG.info('Start-up: VM %s is %s on this host %s; Nova '
                         'sees power state %s.', rec['uuid'],
                         rec['power_state'], states, seen,
                         instance=instance)

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
            self._connect()

    def get_available_nodes(self, refresh=False):
        self._ensure()
        return [self._host.host_name]

    def get_nodenames_by_uuid(self, refresh=False):
        self._ensure()
        return {self._host.host_uuid: self._host.host_name}

    def get_available_resource(self, nodename):
        self._ensure()
        stats = self._host.stats()
        # The compute node's stats: what a resize's source needs to copy
        # a VM here (public facts, see resize.public_facts).
        stats['stats'].update(self._resize.public_facts())
        # The resource tracker's update_provider_tree follows in the same
        # run: it takes these rather than reading XAPI again.
        self._stats_for_tree = (time.monotonic(), stats)
        return stats

    def _tree_stats(self):
        taken, self._stats_for_tree = self._stats_for_tree, None
        if taken is not None and \
                time.monotonic() - taken[0] < STATS_FOR_TREE:
            return taken[1]
        return self._host.stats()

    def update_provider_tree(self, provider_tree, nodename,
                             allocations=None):
        self._ensure()
        stats = self._tree_stats()
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
        # InstanceNotFound (not this host's VM) is what Nova's power sync
        # and start-up expect: they read NOSTATE.
        try:
            return self._vmops.get_info(instance, use_cache=use_cache)
        except errors.HandleInvalid:
            raise exception.InstanceNotFound(instance_id=instance.uuid)

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None,
              share_info=None):
        self._ensure()
        root = vmopsmod.root_volume(block_device_info)
        self._check_volumes(block_device_info, root)
        # Before the config drive is built: it carries the tags. Nova
        # saves the instance after spawn.
        devicemeta.refresh(context, instance, save=False)
        # A rebuild here whose VM is on another host of the pool is an
        # evacuate (a rebuild in place destroyed the VM first).
        if instance.task_state == task_states.REBUILD_SPAWNING and \
                self._evacuate.take_over(instance, network_info,
                                         block_device_info, power_on):
            return
        self._vmops.spawn(context, instance, image_meta, network_info,
                          block_device_info=block_device_info,
                          power_on=False, injected_files=injected_files,
                          admin_password=admin_password)
        try:
            vm = self._vmops.require(instance)
            # The root volume first: userdevice 0, what the VM boots.
            mapping = sorted(
                driver.block_device_info_get_mapping(block_device_info),
                key=lambda bdm: bdm is not root)
            for bdm in mapping:
                self._volumeops.attach(vm, instance, bdm['connection_info'],
                                       bdm['mount_device'], running=False,
                                       bootable=bdm is root)
            if power_on:
                self._vmops.power_on(instance)
        except Exception:
            with excutils.save_and_reraise_exception():
                # Volumes are detached with the VM, never destroyed; the
                # SRs introduced for them are forgotten again.
                self._vmops.destroy(instance, destroy_disks=True)
                self._release_volume_srs(block_device_info)

    @staticmethod
    def _check_volumes(block_device_info, root):
        """Refuse, before anything is built, volumes the build cannot use.

        InvalidInput and VolumeEncryptionNotSupported abort the build
        (every SXM host would refuse it too) with the reason in the
        instance fault.
        """
        for bdm in driver.block_device_info_get_mapping(block_device_info):
            info = bdm.get('connection_info') or {}
            vol = volumeops.volume_id(info) or bdm.get('volume_id') or '?'
            if (info.get('data') or {}).get('encrypted'):
                raise exception.VolumeEncryptionNotSupported(
                    volume_type=attach.DRIVER_VOLUME_TYPE, volume_id=vol)
            if bdm is not root:
                continue
            kind = info.get('driver_volume_type')
            if kind != attach.DRIVER_VOLUME_TYPE:
                raise exception.InvalidInput(
                    reason='boot volume %s is a %r volume: the SXM driver '
                           'boots %r volumes (a VDI) only'
                           % (vol, kind, attach.DRIVER_VOLUME_TYPE))
            device = bdm.get('mount_device')
            try:
                number = volumeops.userdevice(device)
            except exception.InvalidDevicePath:
                number = None
            if number != vmopsmod.ROOT:
                raise exception.InvalidInput(
                    reason='boot volume %s is mapped to device %s: XAPI '
                           'boots userdevice 0, map the boot volume to the '
                           'first disk (/dev/xvda, /dev/vda) or leave its '
                           'device name unset' % (vol, device))

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        if instance.task_state == task_states.RESIZE_REVERTING:
            # The resize's copy (the original is not the instance's VM
            # until finish_revert_migration): Nova asks to keep disks it
            # takes for shared storage, but the copy's own are not.
            destroy_disks = True
        # A migration of the VM (or its bring-back) is stopped first; a VM
        # an interrupted migration left in another pool goes too.
        try:
            self._migration.stop_for_destroy(instance)
        except Exception as exc:
            LOG.warning('Could not stop the migration of this instance '
                        'before deleting it: %s', exc, instance=instance)
        self._vmops.destroy(instance, destroy_disks=destroy_disks)
        try:
            self._migration.destroy_elsewhere(instance)
        except Exception as exc:
            LOG.error('Could not look for the VM of this instance in the '
                      'pool of its interrupted migration: %s', exc,
                      instance=instance)
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
        # Shelving: Nova stopped the guest first and removes nothing if
        # the upload fails; its DB power state is still the one before.
        shelving = instance.task_state in SHELVING
        was_running = instance.power_state == power_state.RUNNING
        try:
            try:
                self._vmops.snapshot(context, instance, image_id,
                                     update_task_state)
            except errors.SxmError as exc:
                raise SnapshotFailed(image_id=image_id,
                                     reason=str(exc)) from exc
        except Exception:
            with excutils.save_and_reraise_exception():
                if shelving:
                    self._undo_shelve(context, instance, image_id,
                                      was_running)

    def _undo_shelve(self, context, instance, image_id, was_running):
        """After a failed shelve upload: no image left, guest as before."""
        try:
            image = vmopsmod.IMAGE_API.get(context, image_id)
            if image.get('status') != 'active':
                vmopsmod.IMAGE_API.delete(context, image_id)
                LOG.info('Shelve failed: deleted its image %s', image_id,
                         instance=instance)
        except exception.ImageNotFound:
            pass
        except Exception as exc:
            LOG.warning('Shelve failed and its image %s could not be '
                        'deleted: %s', image_id, exc, instance=instance)
        if not was_running:
            return
        try:
            self._vmops.power_on(instance)
            LOG.info('Shelve failed: the guest, stopped for it, was '
                     'started again', instance=instance)
        except Exception as exc:
            LOG.warning('Shelve failed and the guest stopped for it could '
                        'not be started again: %s', exc, instance=instance)

    def plug_vifs(self, instance, network_info):
        # Nova calls this at start-up only (_init_instance), where any
        # exception but VirtualInterfacePlugException (the server goes to
        # ERROR) stops the whole service.
        found = self._vmops.survey(instance)
        if found['where'] != 'here':
            LOG.warning('Not plugging VIFs: the VM is %s (see the start-up '
                        'line of this instance)',
                        'missing from this pool'
                        if found['where'] == 'missing'
                        else 'on host %s' % found['host_name'],
                        instance=instance)
            return
        if found['operations']:
            LOG.warning('Not plugging VIFs while XAPI runs %s on the VM',
                        ', '.join(found['operations']), instance=instance)
            return
        try:
            self._vif.plug(found['ref'], instance, network_info,
                           running=found['power'] == power_state.RUNNING)
        except exception.NetworkNotFoundForBridge as exc:
            raise exception.VirtualInterfacePlugException(
                exc.format_message()) from exc
        except errors.HandleInvalid:
            LOG.warning('Not plugging VIFs: the VM went away meanwhile',
                        instance=instance)
        except errors.SxmError as exc:
            LOG.error('Plugging the VIFs failed, the VM is left as it is: '
                      '%s', exc, instance=instance)

    def resume_state_on_host_boot(self, context, instance, network_info,
                                  share_info, block_device_info=None):
        # [DEFAULT] resume_guests_state_on_host_boot: start a VM found
        # halted (or suspended, paused) that Nova had running.
        found = self._vmops.survey(instance)
        if found['where'] != 'here' or found['operations']:
            LOG.warning('Not starting the VM at start-up: it is %s',
                        found['where'] if found['where'] != 'here'
                        else 'inside XAPI operation(s) %s'
                        % ', '.join(found['operations']),
                        instance=instance)
            return
        self._vmops.power_on(instance)

    def unplug_vifs(self, instance, network_info):
        vm = self._vmops.lookup(instance)
        if vm is not None:
            self._vif.unplug(vm, instance, network_info)

    def attach_interface(self, context, instance, image_meta, vif):
        # A halted VM gets the VIF for its next start; a running one gets
        # it hot-plugged, which XAPI refuses for a guest without PV drivers
        # (Nova then deallocates the port).
        vm = self._vmops.require(instance)
        running = self._conn.call('VM.get_power_state', vm) != 'Halted'
        try:
            self._vif.attach(vm, instance, vif, running)
        except exception.NetworkNotFoundForBridge as exc:
            raise InterfaceAttachRefused(instance_uuid=instance.uuid,
                                         reason=exc.format_message())
        except errors.SxmError as exc:
            raise InterfaceAttachRefused(instance_uuid=instance.uuid,
                                         reason=str(exc)) from exc
        try:
            devicemeta.refresh(context, instance)
        except Exception:
            # Nova releases the port on failure: the VIF goes too.
            with excutils.save_and_reraise_exception():
                self._undo(instance, self._vif.detach, vm, instance,
                           vif['id'])

    def detach_interface(self, context, instance, vif):
        vm = self._vmops.require(instance)
        try:
            found = self._vif.detach(vm, instance, vif['id'])
        except errors.SxmError as exc:
            raise InterfaceDetachRefused(instance_uuid=instance.uuid,
                                         reason=str(exc)) from exc
        if not found:
            # As libvirt: the port goes, there was no device to remove.
            LOG.warning('No VIF of port %s on the VM: nothing to detach',
                        vif['id'], instance=instance)
        self._forget_tags(context, instance, gone_port=vif['id'])

    # -- volumes -------------------------------------------------------------

    @staticmethod
    def _driver_devices(instance, root_device_name):
        """Device names of the disks the driver places itself.

        Swap and ephemeral disks sit at XAPI userdevices 2 and 4 (vmops);
        Nova's own naming would hand those positions to volumes (root
        ``sda``, swap ``sdb``, first volume ``sdc`` = userdevice 2).
        """
        prefix = block_device.match_device(block_device.prepend_dev(
            root_device_name or block_device.DEFAULT_ROOT_DEV_NAME))[0]
        flavor = instance.flavor
        taken = []
        if flavor.swap:
            taken.append(prefix + chr(ord('a') + int(vmopsmod.SWAP)))
        if flavor.ephemeral_gb:
            taken.append(prefix + chr(ord('a') + int(vmopsmod.EPHEMERAL)))
        return taken

    def get_device_name_for_instance(self, instance, bdms, block_device_obj):
        mappings = block_device.instance_block_mapping(instance, bdms)
        used = list(mappings.values()) + self._driver_devices(
            instance, mappings['root'])
        # The name a user asked for, if any (checked against what is used).
        asked = getattr(block_device_obj, 'device_name', None)
        return compute_utils.get_next_device_name(
            instance, used, mappings['root'],
            asked if isinstance(asked, str) else None)

    def default_device_names_for_instance(self, instance, root_device_name,
                                          *block_device_lists):
        # Swap and the ephemeral disk are named where the driver puts them.
        own = self._driver_devices(instance, root_device_name)
        used = [bdm.device_name for lst in block_device_lists for bdm in lst
                if bdm.device_name] + [root_device_name]
        for lst in block_device_lists:
            for bdm in lst:
                if bdm.device_name:
                    continue
                if block_device.new_format_is_swap(bdm) and \
                        instance.flavor.swap and own[0] not in used:
                    name = own[0]
                elif block_device.new_format_is_ephemeral(bdm) and \
                        instance.flavor.ephemeral_gb and own[-1] not in used:
                    name = own[-1]
                else:
                    name = compute_utils.get_next_device_name(
                        instance, used + own, root_device_name)
                bdm.device_name = name
                bdm.save()
                used.append(name)

    def attach_volume(self, context, connection_info, instance, mountpoint,
                      disk_bus=None, device_type=None, encryption=None):
        if encryption:
            raise exception.VolumeEncryptionNotSupported(
                volume_type=attach.DRIVER_VOLUME_TYPE,
                volume_id=connection_info.get('serial', ''))
        vm = self._vmops.require(instance)
        running = self._vmops.get_info(
            instance, use_cache=False).state == power_state.RUNNING
        self._volumeops.attach(vm, instance, connection_info, mountpoint,
                               running)
        try:
            devicemeta.refresh(context, instance)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._undo(instance, self._volumeops.detach, vm, instance,
                           connection_info, mountpoint)

    def detach_volume(self, context, connection_info, instance, mountpoint,
                      encryption=None):
        vm = self._vmops.lookup(instance)
        if vm is not None:
            self._volumeops.detach(vm, instance, connection_info,
                                   mountpoint)
        # Nova also calls this to drop the connection of a volume the server
        # keeps (rollbacks of live migration, resize, rebuild: a task is
        # under way); the API's detach runs with none.
        if instance.task_state is None:
            self._forget_tags(
                context, instance,
                gone_volume=volumeops.volume_id(connection_info))

    def swap_volume(self, context, old_connection_info, new_connection_info,
                    instance, mountpoint, resize_to):
        # Refused (raised) for a VM that is not halted or a new volume
        # this pool cannot reach: Nova's manager rolls the swap back (the
        # BDM keeps the old volume; Cinder's migration is told it failed).
        self._volumeops.swap(self._vmops.require(instance), instance,
                             old_connection_info, new_connection_info,
                             mountpoint, resize_to)

    def extend_volume(self, context, connection_info, instance,
                      requested_size):
        self._volumeops.check_extended(self._vmops.require(instance),
                                       instance, connection_info,
                                       requested_size)

    @staticmethod
    def _undo(instance, step, *args):
        try:
            step(*args)
        except Exception as exc:
            LOG.error('Could not undo the attach (%s): %s', step.__name__,
                      exc, instance=instance)

    @staticmethod
    def _forget_tags(context, instance, **gone):
        # The device is gone already: a failure here leaves a stale entry
        # (Nova removes a tagged volume's first one itself), not an error.
        try:
            devicemeta.refresh(context, instance, **gone)
        except Exception as exc:
            LOG.warning('Could not update the device metadata after a '
                        'detach: %s', exc, instance=instance)

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
        raise _not_supported(
            'Forcing a live migration to complete',
            'XAPI has no post-copy, the memory phase of a Storage XenMotion '
            'is already its last and shortest step; the migration goes on')

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

    def instance_on_disk(self, instance):
        # Evacuate: the VM of a dead host's compute, with every disk on an
        # SR this host reaches, is taken over (see ``evacuate``).
        self._ensure()
        return self._evacuate.on_disk(instance)

    def check_instance_shared_storage_local(self, context, instance):
        # After an evacuate the old compute asks whether the new host uses
        # its VM's disks before it destroys that VM (with them or not).
        return self._evacuate.shared_storage_data(instance)

    def check_instance_shared_storage_remote(self, context, data):
        self._ensure()
        return self._evacuate.shares_storage(data)

    def check_instance_shared_storage_cleanup(self, context, data):
        pass

    def host_maintenance_mode(self, host, mode):
        # See hostmod.Maintenance: host.disable and the servers moved by
        # Nova's live migration; host.enable on the way back.
        self._ensure()
        if mode:
            return self._maintenance.enter(host)
        return self._maintenance.leave()

    def set_host_enabled(self, enabled):
        # As the historic driver: the XAPI host follows the compute service
        # (a disabled host starts no VM, so a stopped server of a disabled
        # compute starts again once it is enabled).
        self._ensure()
        return self._maintenance.set_enabled(enabled)

    def get_host_uptime(self):
        # Read each time: a host reboot changes boot_time under us.
        self._ensure()
        line = self._host.uptime()
        if line is None:
            raise _not_supported('Host uptime', 'XAPI host %s reports no '
                                 'other_config:boot_time'
                                 % self._host.host_name)
        return line

    # -- rescue (see nova_sxm.virt.rescue) -----------------------------------

    def rescue(self, context, instance, network_info, image_meta,
               rescue_password, block_device_info, share_info):
        self._rescue.rescue(context, instance, network_info, image_meta,
                            rescue_password, block_device_info)

    def unrescue(self, context, instance):
        self._rescue.unrescue(instance)

    # -- resize and cold migration (see resize) ------------------------------

    def migrate_disk_and_power_off(self, context, instance, dest,
                                   flavor, network_info,
                                   block_device_info=None,
                                   timeout=0, retry_interval=0):
        self._ensure()
        return self._resize.migrate_disk_and_power_off(
            context, instance, flavor, network_info, block_device_info,
            timeout)

    def finish_migration(self, context, migration, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         allocations, block_device_info=None,
                         power_on=True, share_info=None):
        self._ensure()
        self._resize.finish_migration(context, migration, instance,
                                      network_info, resize_instance,
                                      block_device_info, power_on)

    def confirm_migration(self, context, migration, instance, network_info):
        self._ensure()
        self._resize.confirm_migration(migration, instance)

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info=None,
                                power_on=True, share_info=None):
        self._ensure()
        self._resize.finish_revert_migration(
            context, instance, network_info, migration, block_device_info,
            power_on)
