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

"""Instance lifecycle on XAPI: build, power, snapshot, rescue, destroy.

A nova instance is the XAPI VM whose ``other_config['nova_uuid']`` is the
instance uuid (VM uuids cannot be chosen in XAPI). Its disks carry
``other_config['nova_disk']`` (root, swap, ephemeral) so that destroy
removes only them: volumes are detached, never destroyed. Device numbers
follow the historic xenapi driver: root 0, swap 2, config drive 3 (read
only, see ``configdrive``), ephemeral 4.

A server booted from a volume has no root disk of its own: its root
volume (the block device with boot index 0) is attached at userdevice 0,
bootable, like any volume (``volumeops``); swap and ephemeral disks are
the driver's as for an image-backed server.
"""

import os
import tempfile
import types

from nova import block_device
from nova.compute import power_state
from nova.compute import task_states
from nova.compute import vm_states
from nova import exception
from nova.image import glance
from nova.virt import driver as virt_driver
from nova.virt import hardware
from oslo_log import log as logging
from oslo_utils import units
from sxm_core import constants
from sxm_core import errors
from sxm_core import tasks

from nova_sxm.virt import configdrive
from nova_sxm.virt import images
from nova_sxm.virt import volumeops

LOG = logging.getLogger(__name__)
NULL = constants.OPAQUE_NULL
UUID_KEY = 'nova_uuid'
DISK_KEY = 'nova_disk'
ROOT, SWAP, EPHEMERAL = '0', '2', '4'
CONFIGDRIVE = '3'
# Where a rescue VM has the instance's root disk (the historic driver's).
RESCUE = '1'
# A rescue VM (see ``rescue``) carries RESCUE_KEY = instance uuid instead
# of UUID_KEY, so that every lookup by instance finds the original VM; its
# VBDs to the instance's disks carry BORROWED_KEY: they are not its own.
RESCUE_KEY = 'nova_rescue_of'
BORROWED_KEY = 'nova_rescue_borrowed'
RESCUE_SUFFIX = '-rescue'
IMAGE_API = glance.API()

POWER_STATES = {
    'running': power_state.RUNNING,
    'paused': power_state.PAUSED,
    'halted': power_state.SHUTDOWN,
    'suspended': power_state.SUSPENDED,
    'crashed': power_state.CRASHED,
}


# XAPI operations during which the power state reads as something it is
# about to stop being: Nova sees NOSTATE (its power sync then waits)
# rather than a state it would "correct" under XAPI's feet.
POWER_CHANGING = frozenset((
    'start', 'start_on', 'resume', 'resume_on', 'clean_shutdown',
    'hard_shutdown', 'shutdown', 'clean_reboot', 'hard_reboot', 'suspend',
    'pause', 'unpause', 'pool_migrate', 'migrate_send', 'checkpoint'))


def nova_power_state(rec):
    """Nova's power state of a VM record.

    A VM that is not running while XAPI changes its power state (e.g. a
    start under way) is NOSTATE: transient, not "shut down".
    """
    state = POWER_STATES.get(rec['power_state'].lower(),
                             power_state.NOSTATE)
    ops = set((rec.get('current_operations') or {}).values())
    if state != power_state.RUNNING and ops & POWER_CHANGING:
        return power_state.NOSTATE
    return state


def root_volume(block_device_info):
    """The volume mapping the instance boots from, or None (an image).

    Nova marks it with boot index 0; a mapping without boot indexes
    (older records) is the root when its device is the instance's root
    device, as the historic xenapi driver decided.
    """
    mapping = virt_driver.block_device_info_get_mapping(block_device_info)
    root = block_device.get_root_bdm(mapping)
    if root is not None:
        return root
    if virt_driver.block_device_info_get_image(block_device_info):
        return None
    name = virt_driver.block_device_info_get_root_device(block_device_info)
    if not name:
        return None
    for bdm in mapping:
        device = bdm.get('mount_device')
        if device and (block_device.strip_dev(device)
                       == block_device.strip_dev(name)):
            return bdm
    return None


def own_disk(vbd_rec, vdi_other_config):
    # A volume's VBD says so whatever its VDI carries: a volume made from
    # a copy of an instance disk may keep that disk's DISK_KEY. A rescue
    # VM's VBD to the instance's disk marks it borrowed.
    return (DISK_KEY in vdi_other_config
            and volumeops.VOLUME_KEY not in vbd_rec['other_config']
            and BORROWED_KEY not in vbd_rec['other_config'])


# A pool's guest VMs, as XAPI's filter language says it.
GUESTS = ('field "is_a_template" = "false" and '
          'field "is_a_snapshot" = "false" and '
          'field "is_control_domain" = "false"')


def find_vm(pool, instance_uuid, name=None):
    """(ref, record) of the VM of ``instance_uuid`` in ``pool``, or None.

    ``pool`` is a SessionPool. By its name label ``name`` first (one
    filtered read); a renamed VM is found by its ``other_config`` among
    the pool's guest VMs (XAPI's filter cannot look into a map).
    """
    reads = [GUESTS]
    if name and '"' not in name:
        reads.insert(0, '%s and field "name__label" = "%s"' % (GUESTS, name))
    for where in reads:
        found = pool.call('VM.get_all_records_where', where)
        for ref, rec in sorted(found.items()):
            if rec['other_config'].get(UUID_KEY) == instance_uuid:
                return ref, rec
    return None


class VMOps(object):

    def __init__(self, conn, host, vifops):
        self._conn = conn
        self._host = host
        self._vif = vifops

    @classmethod
    def in_pool(cls, pool, host):
        """VMOps on the VMs of another pool (a SessionPool), no VIFs."""
        return cls(types.SimpleNamespace(call=pool.call, pool=pool), host,
                   None)

    # -- lookup --------------------------------------------------------------

    def lookup(self, instance, check_host=True):
        """The VM ref of ``instance``, or None.

        With ``check_host`` a VM running on another host of the pool (it
        live-migrated there) is not this compute's: None.
        """
        found = self._find(instance, here_only=check_host)
        return found[0] if found else None

    def _find(self, instance, here_only=False):
        """(ref, record) of the instance's VM in this pool, or None.

        This host's VMs first, as event.from keeps them (no read of the
        pool); ``here_only``: only those.
        """
        for ref, rec in self._host.vms.records().items():
            if rec['other_config'].get(UUID_KEY) == instance.uuid:
                return ref, rec
        if here_only:
            return None
        return find_vm(self._conn.pool, instance.uuid, instance.name)

    def _ours(self, rec):
        return self._host.owns(rec)

    def require(self, instance):
        ref = self.lookup(instance)
        if ref is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return ref

    def instances(self, fresh=True):
        """{instance uuid: VM record} of the VMs of this host.

        ``fresh``: see ``HostVMs.records``.
        """
        return {rec['other_config'][UUID_KEY]: rec
                for rec in self._host.vms.records(fresh).values()
                if UUID_KEY in rec['other_config']}

    def get_info(self, instance, use_cache=True):
        """Nova's view of the instance's VM; InstanceNotFound if not here.

        ``use_cache``: as of this host's VMs kept current by event.from
        (Nova's power sync asks for every instance in turn); otherwise
        read from XAPI now.
        """
        if use_cache:
            rec = self.instances(fresh=False).get(instance.uuid)
        else:
            found = self._find(instance, here_only=True)
            rec = found[1] if found else None
        if rec is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        state = nova_power_state(rec)
        if state == power_state.SHUTDOWN and (
                instance.vm_state == vm_states.RESCUED or
                instance.task_state in (task_states.RESCUING,
                                        task_states.UNRESCUING)):
            # Nova expects a rescued server RUNNING (libvirt's rescue
            # domain takes the original's place): the rescue VM's state.
            found = self.rescue_vm(instance, fresh=False)
            if found is not None:
                state = nova_power_state(found[1])
        return hardware.InstanceInfo(state=state, internal_id=rec['uuid'])

    def rescue_vm(self, instance, fresh=True):
        """(ref, record) of the instance's rescue VM on this host, or None.

        ``fresh``: see ``HostVMs.records``.
        """
        for ref, rec in self._host.vms.records(fresh).items():
            if rec['other_config'].get(RESCUE_KEY) == instance.uuid:
                return ref, rec
        return None

    def survey(self, instance):
        """Where and how the instance's VM is, for start-up decisions.

        A dict: ``where`` is ``here`` (this host's), ``other-host`` (a VM
        of this pool that another host runs or prefers) or ``missing``
        (not in this pool); ``ref`` and ``record`` when found;
        ``power`` (Nova's power state) and ``operations`` (XAPI's
        current_operations, e.g. migrate_send) when here.
        """
        found = self._find(instance)
        if found is None:
            return {'where': 'missing', 'ref': None, 'record': None}
        ref, rec = found
        out = {'ref': ref, 'record': rec,
               'operations': sorted(set(
                   (rec.get('current_operations') or {}).values()))}
        if not self._ours(rec):
            host = rec['resident_on'] if rec['resident_on'] != NULL \
                else rec['affinity']
            try:
                out['host_name'] = self._conn.call('host.get_name_label',
                                                   host)
            except errors.SxmError:
                out['host_name'] = host
            out['where'] = 'other-host'
            return out
        out['where'] = 'here'
        out['power'] = nova_power_state(rec)
        return out

    # -- spawn ---------------------------------------------------------------

    def spawn(self, context, instance, image_meta, network_info,
              block_device_info=None, power_on=True, injected_files=None,
              admin_password=None):
        """Build (and start) the VM with its own disks and VIFs.

        With a root volume in ``block_device_info`` no root disk is made
        from an image: the caller attaches the volume at userdevice 0
        (the instance has no image to download). A config drive is made
        when Nova asks for one (``configdrive``).
        """
        from_volume = root_volume(block_device_info) is not None
        config_drive = configdrive.required(instance)
        if config_drive:
            configdrive.check_tools(instance)
        flavor = instance.flavor
        vm = self.create_vm(instance, instance.name,
                            {UUID_KEY: instance.uuid})
        try:
            # A server booted from a volume without swap, ephemeral disks
            # or config drive needs no SR of this host.
            sr = self._host.find_sr() if (
                not from_volume or flavor.swap or flavor.ephemeral_gb or
                config_drive) else None
            if not from_volume:
                self.root_disk(context, instance, image_meta, vm, sr)
            if flavor.swap:
                self._blank_disk(instance, vm, sr, SWAP, 'swap',
                                 flavor.swap * units.Mi)
            if flavor.ephemeral_gb:
                self._blank_disk(instance, vm, sr, EPHEMERAL, 'ephemeral',
                                 flavor.ephemeral_gb * units.Gi)
            if config_drive:
                self.config_drive(instance, vm, sr, network_info,
                                  injected_files, admin_password)
            self._vif.plug(vm, instance, network_info)
            if power_on:
                self._conn.call('VM.start_on', vm, self._host.host_ref,
                                False, False)
        except Exception:
            LOG.exception('Building the VM failed; removing it',
                          instance=instance)
            self._destroy_vm(instance, vm, destroy_disks=True)
            raise

    def create_vm(self, instance, name, other_config):
        """A halted VM of the instance's flavor, without devices."""
        memory = str(instance.flavor.memory_mb * units.Mi)
        vcpus = str(instance.flavor.vcpus)
        return self._conn.call('VM.create', {
            'name_label': name,
            'name_description': instance.display_name or '',
            'user_version': '1', 'is_a_template': False,
            'memory_static_max': memory, 'memory_dynamic_max': memory,
            'memory_dynamic_min': memory, 'memory_static_min': memory,
            'VCPUs_max': vcpus,
            'VCPUs_at_startup': vcpus, 'VCPUs_params': {},
            'actions_after_shutdown': 'destroy',
            'actions_after_reboot': 'restart',
            'actions_after_crash': 'destroy',
            'PV_bootloader': '', 'PV_kernel': '', 'PV_ramdisk': '',
            'PV_args': '', 'PV_bootloader_args': '', 'PV_legacy_args': '',
            'HVM_boot_policy': 'BIOS order',
            'HVM_boot_params': {'order': 'dc'},
            'platform': {'acpi': 'true', 'apic': 'true', 'pae': 'true',
                         'viridian': 'true', 'timeoffset': '0'},
            'PCI_bus': '', 'recommendations': '',
            'affinity': self._host.host_ref,
            'other_config': other_config,
            'xenstore_data': {}, 'tags': [], 'blocked_operations': {},
            'domain_type': 'hvm'})

    def _new_vdi(self, instance, sr, size, kind, vdi_type='user',
                 owner_key=UUID_KEY):
        return self._conn.call('VDI.create', {
            'name_label': '%s %s' % (instance.name, kind),
            'name_description': '', 'SR': sr,
            'virtual_size': str(size), 'type': vdi_type,
            'sharable': False, 'read_only': False,
            'other_config': {owner_key: instance.uuid, DISK_KEY: kind},
            'xenstore_data': {}, 'sm_config': {}, 'tags': []})

    def attach(self, vm, vdi, userdevice, bootable=False, other=None,
               mode='RW'):
        return self._conn.call('VBD.create', {
            'VM': vm, 'VDI': vdi, 'userdevice': userdevice,
            'bootable': bootable, 'mode': mode, 'type': 'Disk',
            'empty': False, 'unpluggable': True,
            'other_config': other or {}, 'qos_algorithm_type': '',
            'qos_algorithm_params': {}})

    def _blank_disk(self, instance, vm, sr, userdevice, kind, size):
        vdi = self._new_vdi(instance, sr, size, kind)
        self.attach(vm, vdi, userdevice)

    def config_drive(self, instance, vm, sr, network_info, injected_files,
                     admin_password, owner_key=UUID_KEY):
        """Nova's config drive in a VDI at userdevice 3, read-only."""
        with tempfile.TemporaryDirectory(prefix='sxm-configdrive-') as tmp:
            path = configdrive.build(instance, network_info,
                                     injected_files, admin_password, tmp)
            length = os.path.getsize(path)
            size = max(-(-length // units.Mi) * units.Mi, units.Mi)
            vdi = self._new_vdi(instance, sr, size, configdrive.LABEL,
                                owner_key=owner_key)
            self.attach(vm, vdi, CONFIGDRIVE, mode='RO')
            with open(path, 'rb') as f:
                self._conn.import_raw(vdi, f, length)

    def root_disk(self, context, instance, image_meta, vm, sr, kind='root',
                  owner_key=UUID_KEY):
        """The image's bytes in a new bootable VDI at userdevice 0."""
        fmt = image_meta.disk_format if 'disk_format' in image_meta \
            else 'raw'
        if fmt not in ('raw', 'vhd'):
            raise exception.ImageUnacceptable(
                image_id=image_meta.id,
                reason='disk_format %s: the SXM driver takes raw and vhd '
                       'images' % fmt)
        with tempfile.TemporaryDirectory(prefix='sxm-image-') as tmp:
            path = os.path.join(tmp, 'image')
            with open(path, 'wb') as f:
                IMAGE_API.download(context, image_meta.id, data=f)
            if fmt == 'vhd':
                raw_path = os.path.join(tmp, 'raw')
                with open(path, 'rb') as src, open(raw_path, 'wb') as dst:
                    images.vhd_to_raw(src, dst, image_meta.id)
                os.unlink(path)
                path = raw_path
            length = os.path.getsize(path)
            size = max(instance.flavor.root_gb * units.Gi,
                       -(-length // units.Mi) * units.Mi, units.Mi)
            if instance.flavor.root_gb and length > size:
                raise exception.FlavorDiskSmallerThanImage(
                    flavor_size=size, image_size=length)
            vdi = self._new_vdi(instance, sr, size, kind, 'system',
                                owner_key=owner_key)
            self.attach(vm, vdi, ROOT, bootable=True)
            with open(path, 'rb') as f:
                self._conn.import_raw(vdi, f, length)

    # -- power ---------------------------------------------------------------

    def power(self, ref):
        """XAPI's power state of a VM, in lower case."""
        return self._conn.call('VM.get_power_state', ref).lower()

    def hard_shutdown(self, ref):
        self._async('VM.hard_shutdown', ref)

    def start(self, ref):
        """Start a halted VM on this host."""
        self._start_here(ref, 'halted')

    def _async(self, method, *args, what=None):
        return tasks.call_async(self._conn.pool, method, args,
                                what or method)

    def _start_here(self, ref, state):
        """Start a halted or resume a suspended VM on this host.

        Returns False (nothing done) for any other power state.
        """
        if state == 'halted':
            self._async('VM.start_on', ref, self._host.host_ref, False,
                        False)
        elif state == 'suspended':
            self._async('VM.resume_on', ref, self._host.host_ref, False,
                        False)
        else:
            return False
        return True

    def _clean_else_hard(self, ref, clean, hard, instance):
        """Try XAPI's clean operation, then the hard one if it fails."""
        if clean is not None:
            try:
                self._async(clean, ref)
                return
            except errors.XapiFailure as exc:
                LOG.warning('%s failed (%s); using %s', clean, exc, hard,
                            instance=instance)
        self._async(hard, ref)

    def reboot(self, instance, reboot_type):
        ref = self.require(instance)
        state = self.power(ref)
        if self._start_here(ref, state):
            return
        soft = reboot_type == 'SOFT' and state == 'running'
        self._clean_else_hard(ref, 'VM.clean_reboot' if soft else None,
                              'VM.hard_reboot', instance)

    def power_off(self, instance, timeout=0):
        ref = self.require(instance)
        state = self.power(ref)
        if state == 'halted':
            return
        clean = timeout and state == 'running'
        self._clean_else_hard(ref, 'VM.clean_shutdown' if clean else None,
                              'VM.hard_shutdown', instance)

    def power_on(self, instance):
        ref = self.require(instance)
        state = self.power(ref)
        if not self._start_here(ref, state) and state == 'paused':
            self._conn.call('VM.unpause', ref)

    def pause(self, instance):
        self._conn.call('VM.pause', self.require(instance))

    def unpause(self, instance):
        ref = self.require(instance)
        if self.power(ref) == 'paused':
            self._conn.call('VM.unpause', ref)

    def suspend(self, instance):
        try:
            self._async('VM.suspend', self.require(instance))
        except errors.VmNoSuspendSr as exc:
            # The VM still runs: Nova keeps the server ACTIVE on a rollback
            # (anything else would mark it ERROR).
            raise exception.InstanceFaultRollback(
                inner_exception=exception.InstanceSuspendFailure(
                    reason="XAPI has no SR for the suspend image "
                           "(VM_NO_SUSPEND_SR): set the pool's "
                           "suspend-image-SR (xe pool-param-set) or the "
                           "host's suspend-image-sr")) from exc

    def resume(self, instance):
        ref = self.require(instance)
        if self.power(ref) == 'suspended':
            self._async('VM.resume_on', ref, self._host.host_ref, False,
                        False)

    # -- snapshot ------------------------------------------------------------

    def snapshot(self, context, instance, image_id, update_task_state):
        call = self._conn.call
        ref = self.lookup(instance)
        if ref is None:
            # What nova's drivers say (libvirt: no domain) and what the
            # compute manager expects: the instance went away meanwhile.
            raise exception.InstanceNotRunning(instance_id=instance.uuid)
        root = self._disks(ref).get(ROOT)
        if root is None:
            raise exception.NovaException('Instance %s has no root disk to '
                                          'snapshot.' % instance.uuid)
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        snap = self._async('VDI.snapshot', root, {})
        try:
            update_task_state(
                task_state=task_states.IMAGE_UPLOADING,
                expected_state=task_states.IMAGE_PENDING_UPLOAD)
            fmt = self._conn.settings.image_upload_format
            size = int(call('VDI.get_virtual_size', snap))
            with tempfile.TemporaryFile(prefix='sxm-snapshot-') as f:
                # XAPI streams a dynamic VHD (footer copy first), the
                # only VHD that Glance's format inspector recognises.
                self._conn.export_raw(snap, f, fmt=fmt)
                f.seek(0)
                images.check_upload(f, fmt, size, image_id)
                f.seek(0)
                metadata = {'disk_format': fmt, 'container_format': 'bare'}
                IMAGE_API.update(context, image_id, metadata, data=f,
                                 purge_props=False)
        finally:
            try:
                call('VDI.destroy', snap)
            except errors.SxmError as exc:
                LOG.warning('Could not remove the snapshot VDI: %s', exc,
                            instance=instance)

    def disk_records(self, ref):
        """[(VBD record, VDI record)] of the VM's disks (no CDs)."""
        out = []
        vbds = self._conn.call('VBD.get_all_records_where',
                               'field "VM" = "%s"' % ref)
        for _, rec in sorted(vbds.items(),
                             key=lambda item: item[1]['userdevice']):
            if rec['type'] == 'CD' or rec['VDI'] == NULL:
                continue
            out.append((rec, self._conn.call('VDI.get_record', rec['VDI'])))
        return out

    def disk_roles(self, ref):
        """(own, volumes) of the VM's disks, read in one pass.

        ``own``: VDI uuids of the instance's own disks; ``volumes``:
        {VDI uuid: (volume id, SR uuid)} of its volumes.
        """
        own, volumes = set(), {}
        for vbd, vdi in self.disk_records(ref):
            vol = vbd['other_config'].get(volumeops.VOLUME_KEY)
            if vol:
                volumes[vdi['uuid']] = (vol, self._conn.call(
                    'SR.get_uuid', vdi['SR']))
            elif own_disk(vbd, vdi['other_config']):
                own.add(vdi['uuid'])
        return own, volumes

    def own_disk_records(self, ref):
        """disk_records of the VM's own disks (no volume, none borrowed)."""
        return [(vbd, vdi) for vbd, vdi in self.disk_records(ref)
                if own_disk(vbd, vdi['other_config'])]

    def _disks(self, ref):
        """{userdevice: VDI ref} of the VM's own (non-volume) disks."""
        return {vbd['userdevice']: vbd['VDI']
                for vbd, _ in self.own_disk_records(ref)}

    # -- destroy -------------------------------------------------------------

    def destroy(self, instance, destroy_disks=True):
        """Remove the VM (and a rescue VM); a missing VM is fine."""
        ref = self.lookup(instance)
        # (lookup has just read this host's VMs: no second read.)
        rescue = self.rescue_vm(instance, fresh=False)
        if rescue is not None:
            # Its own disks only: the instance's are borrowed.
            self._destroy_vm(instance, rescue[0], destroy_disks=True)
        if ref is None:
            LOG.debug('No VM to destroy', instance=instance)
            return
        self._destroy_vm(instance, ref, destroy_disks)

    def destroy_ref(self, instance, ref):
        self._destroy_vm(instance, ref, destroy_disks=True)

    def _destroy_vm(self, instance, ref, destroy_disks):
        call = self._conn.call
        try:
            if self.power(ref) != 'halted':
                self._async('VM.hard_shutdown', ref)
            vdis = list(self._disks(ref).values()) if destroy_disks else []
            suspend = call('VM.get_suspend_VDI', ref)
            call('VM.destroy', ref)
        except errors.HandleInvalid:
            return  # gone meanwhile
        if suspend != NULL:
            vdis.append(suspend)
        for vdi in vdis:
            try:
                call('VDI.destroy', vdi)
            except errors.HandleInvalid:
                pass
