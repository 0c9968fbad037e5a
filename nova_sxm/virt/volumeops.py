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

"""Cinder volumes as VDIs, in this pool or on a shared SR of another.

``connection_info`` is built by ``sxm_core.attach.connection_info``,
which also decides what another pool may not attach::

    {'driver_volume_type': 'xensm',
     'data': {'volume_id', 'vdi_uuid', 'sr_uuid', 'pool_uuid' (the XAPI
              pool the volume's SR belongs to), 'sr_type', 'shared',
              'introduce': {...}  (only for a consumer in another pool:
              what SR.introduce and PBD.create need, without secrets)}}

An SR this pool does not know is introduced (SR.introduce, one PBD per
host for a shared SR, PBD.plug, SR.scan) and marked with
``other_config[INTRODUCED_KEY]``; when its last VBD in this pool goes the
SR is forgotten again (PBD.unplug, SR.forget). An SR without that mark was
set up by the operator and is never forgotten.

The VBD carries ``other_config['nova_volume_id']``. A volume's VBD is found
by its device and that key, never by VDI uuid alone: Cinder's live retype
moves the VDI to another SR, which gives it a new uuid.

Multiattach: every VBD is RW; XAPI lets several VMs plug one VDI only
when the VDI is ``sharable`` (the Cinder backend sets it on the SRs it
opted in), else VBD.plug fails with VDI_IN_USE, translated here.

Swap (Nova's swap_volume): only for a halted VM, whose old VDI is copied
into the new one (VDI.copy with ``into_vdi``) before the VBD is replaced
at the same device. XAPI cannot mirror a plugged disk into another VDI
without moving the VM, so any other power state is refused.
"""

from nova import exception
from oslo_concurrency import lockutils
from oslo_log import log as logging
from oslo_utils import excutils
from sxm_core import attach
from sxm_core import constants
from sxm_core import errors
from sxm_core import tasks

LOG = logging.getLogger(__name__)
VOLUME_KEY = 'nova_volume_id'
# On an SR this driver introduced: the XAPI pool the SR belongs to.
INTRODUCED_KEY = 'nova-sxm-introduced-from'
NULL = constants.OPAQUE_NULL
GiB = 1 << 30
# The VBD fields a swap keeps (with other_config; the VDI changes).
_VBD_KEPT = ('VM', 'userdevice', 'bootable', 'mode', 'type', 'empty',
             'unpluggable', 'qos_algorithm_type', 'qos_algorithm_params')


def userdevice(mountpoint):
    """'/dev/xvdb' -> '1'; '/dev/sdc' -> '2'; '3' -> '3'."""
    name = str(mountpoint).rsplit('/', 1)[-1]
    if name.isdigit():
        return name
    for prefix in ('xvd', 'sd', 'vd', 'hd'):
        if name.startswith(prefix):
            letters = name[len(prefix):].rstrip('0123456789')
            if len(letters) == 1 and letters.isalpha():
                return str(ord(letters) - ord('a'))
    raise exception.InvalidDevicePath(path=mountpoint)


def volume_id(connection_info):
    return (connection_info.get('serial')
            or connection_info.get('data', {}).get('volume_id') or '')


def volume_data(connection_info):
    """The ``data`` of an xensm connection; VolumeDriverNotFound if not."""
    data = attach.volume_data(connection_info)
    if data is None:
        raise exception.VolumeDriverNotFound(
            driver_type=connection_info.get('driver_volume_type'))
    return data


class ExtendVolumeFailed(exception.NovaException):
    msg_fmt = ('Volume %(volume_id)s of instance %(instance_uuid)s cannot '
               'be extended: %(reason)s')


class SwapVolumeRefused(exception.NovaException):
    # Short: Nova keeps 255 characters of it in the action's event.
    msg_fmt = 'Cannot swap volume %(old)s for %(new)s: %(reason)s'


def _lock(sr_uuid):
    # Attach (introduce) and detach (forget) of one SR in this process.
    return lockutils.lock('sxm-volume-sr-%s' % sr_uuid)


class VolumeOps(object):

    def __init__(self, conn, host):
        self._conn = conn
        self._host = host

    # -- SRs -----------------------------------------------------------------

    def _sr_by_uuid(self, sr_uuid):
        try:
            return self._conn.call('SR.get_by_uuid', sr_uuid)
        except errors.UuidInvalid:
            return None

    def connect_sr(self, connection_info):
        """The SR ref of a volume in this pool, introduced if need be.

        Returns (sr_ref, introduced): ``introduced`` is True when this
        call introduced the SR. Raises VolumeAttachFailed naming the volume
        when the SR is another pool's and cannot be introduced here.
        """
        with _lock(volume_data(connection_info)['sr_uuid']):
            return self._connect(connection_info)

    def _connect(self, connection_info):
        # Called with the SR's lock held.
        data = volume_data(connection_info)
        vol = volume_id(connection_info)
        sr_uuid = data['sr_uuid']
        sr = self._sr_by_uuid(sr_uuid)
        if sr is not None:
            if self._introduced_here(sr):
                # Ours: another host of the pool may have introduced it
                # before this host was added to the pool.
                self._plug_on(sr, self._host.host_ref, data)
            return sr, False
        try:
            attach.check_introducible(vol, data, self._host.pool_uuid)
        except errors.SxmError as exc:
            raise exception.VolumeAttachFailed(volume_id=vol,
                                               reason=str(exc)) from None
        return self._introduce(vol, data, data['introduce']), True

    def _introduced_here(self, sr):
        return INTRODUCED_KEY in self._conn.call('SR.get_other_config', sr)

    def _introduce(self, vol, data, intro):
        call = self._conn.call
        sr_uuid = data['sr_uuid']
        LOG.info('Introducing SR %s (%s) of XAPI pool %s for volume %s',
                 sr_uuid, intro['type'], data.get('pool_uuid'), vol)
        sr = call('SR.introduce', sr_uuid, intro.get('name_label', ''),
                  intro.get('name_description', ''), intro['type'],
                  intro.get('content_type', 'user'),
                  bool(intro.get('shared')), intro.get('sm_config') or {})
        try:
            call('SR.add_to_other_config', sr, INTRODUCED_KEY,
                 data.get('pool_uuid') or '')
            hosts = (call('host.get_all') if intro.get('shared')
                     else [self._host.host_ref])
            # This host first: the others are a convenience (VM.start
            # elsewhere in the pool), this one is the attach.
            hosts.sort(key=lambda h: h != self._host.host_ref)
            for host in hosts:
                if host == self._host.host_ref:
                    self._plug_on(sr, host, data, intro)
                    continue
                try:
                    self._plug_on(sr, host, data, intro)
                except errors.XapiFailure as exc:
                    LOG.warning('SR %s introduced for volume %s cannot be '
                                'plugged on host %s: %s', sr_uuid, vol,
                                host, exc)
            call('SR.scan', sr)
        except Exception as exc:
            try:
                self._forget(sr, sr_uuid)
            except Exception:
                LOG.exception('Could not forget SR %s again after a failed '
                              'attach of volume %s', sr_uuid, vol)
            if isinstance(exc, errors.XapiFailure):
                raise exception.VolumeAttachFailed(
                    volume_id=vol,
                    reason='SR %s of XAPI pool %s cannot be attached in '
                           'XAPI pool %s: %s'
                           % (sr_uuid, data.get('pool_uuid'),
                              self._host.pool_uuid, exc))
            raise
        return sr

    def _plug_on(self, sr, host, data, intro=None):
        call = self._conn.call
        for pbd in call('SR.get_PBDs', sr):
            rec = call('PBD.get_record', pbd)
            if rec['host'] == host:
                if not rec['currently_attached']:
                    call('PBD.plug', pbd)
                return pbd
        intro = intro or data.get('introduce')
        if not intro:
            return None
        pbd = call('PBD.create', {'host': host, 'SR': sr,
                                  'device_config': intro['device_config'],
                                  'other_config': {}})
        call('PBD.plug', pbd)
        return pbd

    def _forget(self, sr, sr_uuid):
        """PBD.unplug every PBD, then SR.forget (best effort on undo)."""
        call = self._conn.call
        for pbd in call('SR.get_PBDs', sr):
            if call('PBD.get_currently_attached', pbd):
                call('PBD.unplug', pbd)
        call('SR.forget', sr)
        LOG.info('Forgot SR %s, introduced for volumes', sr_uuid)

    def _in_use(self, sr):
        call = self._conn.call
        for vdi in call('SR.get_VDIs', sr):
            if call('VDI.get_VBDs', vdi):
                return True
        return False

    def release_sr(self, sr_uuid):
        """Forget SR ``sr_uuid`` if introduced here and no longer used.

        Only an SR this driver introduced, and only when no VBD in this
        pool uses one of its VDIs. Returns whether it was forgotten.
        """
        with _lock(sr_uuid):
            return self._release(sr_uuid)

    def _release(self, sr_uuid):
        # Called with the SR's lock held.
        sr = self._sr_by_uuid(sr_uuid)
        if sr is None or not self._introduced_here(sr):
            return False
        if self._in_use(sr):
            return False
        self._forget(sr, sr_uuid)
        return True

    # -- VDIs and VBDs -------------------------------------------------------

    def find_vdi(self, sr, data):
        call = self._conn.call
        try:
            return call('VDI.get_by_uuid', data['vdi_uuid'])
        except errors.UuidInvalid:
            pass
        # A VDI created through another host or pool: rescan its SR.
        try:
            call('SR.scan', sr)
            return call('VDI.get_by_uuid', data['vdi_uuid'])
        except errors.XapiFailure as exc:
            raise exception.VolumeNotFound(
                volume_id='%s (VDI %s on SR %s: %s)' % (
                    data.get('volume_id', ''), data.get('vdi_uuid'),
                    data.get('sr_uuid'), exc))

    def attach(self, vm_ref, instance, connection_info, mountpoint,
               running, bootable=False):
        """Attach a volume's VDI to the VM at ``mountpoint``.

        ``bootable`` for the volume a server boots from: XAPI's VBD flag
        (HVM firmware boots userdevice 0, PV bootloaders look for the
        bootable disk).
        """
        data = volume_data(connection_info)
        vol = volume_id(connection_info)
        # Held until the VBD exists: a detach of another volume on the
        # same SR must not forget it in between.
        with _lock(data['sr_uuid']):
            sr, introduced = self._connect(connection_info)
            try:
                self._attach(vm_ref, sr, data, vol, mountpoint, running,
                             bootable)
            except Exception:
                with excutils.save_and_reraise_exception():
                    if introduced:
                        self._release(data['sr_uuid'])
        LOG.info('Attached volume %s at %s', vol, mountpoint,
                 instance=instance)

    def _attach(self, vm_ref, sr, data, vol, mountpoint, running,
                bootable=False):
        vdi = self.find_vdi(sr, data)
        vbd = self._conn.call('VBD.create', {
            'VM': vm_ref, 'VDI': vdi, 'userdevice': userdevice(mountpoint),
            'bootable': bool(bootable), 'mode': 'RW', 'type': 'Disk',
            'empty': False, 'unpluggable': True,
            'other_config': {VOLUME_KEY: vol},
            'qos_algorithm_type': '', 'qos_algorithm_params': {}})
        if running:
            try:
                self._conn.call('VBD.plug', vbd)
            except errors.XapiFailure as exc:
                self._conn.call('VBD.destroy', vbd)
                if isinstance(exc, errors.VdiInUse):
                    raise exception.VolumeAttachFailed(
                        volume_id=vol,
                        reason='its VDI %s is in use by another VM and is '
                               'not sharable: XAPI lets only one VM hold a '
                               'non-sharable VDI read-write (VDI_IN_USE); '
                               'a volume for several servers needs a '
                               'multiattach volume type of an SR its '
                               'Cinder backend offers multiattach on'
                               % data['vdi_uuid']) from None
                raise

    def find_vbd(self, vm_ref, connection_info, mountpoint):
        """The VBD of a volume: by device and volume id.

        Else the device's volume VBD of the connection's VDI: a swap keeps
        the VBD's volume id, which Nova replaces by the new one unless
        Cinder's migrate_volume_completion gives the old id back.
        """
        want_dev = userdevice(mountpoint)
        want_id = volume_id(connection_info)
        want_vdi = (connection_info.get('data') or {}).get('vdi_uuid')
        by_vdi = None
        call = self._conn.call
        for vbd in call('VM.get_VBDs', vm_ref):
            rec = call('VBD.get_record', vbd)
            if rec['userdevice'] != want_dev:
                continue
            if rec['other_config'].get(VOLUME_KEY) == want_id:
                return vbd
            if (want_vdi and VOLUME_KEY in rec['other_config']
                    and rec['VDI'] != NULL
                    and call('VDI.get_uuid', rec['VDI']) == want_vdi):
                by_vdi = vbd
        return by_vdi

    def swap(self, vm_ref, instance, old_info, new_info, mountpoint,
             resize_to):
        """Give a halted VM the new volume in place of the old one.

        The old VDI's bytes are copied into the new VDI (grown first to
        ``resize_to`` GiB, or the old size, if smaller: XAPI cannot
        shrink), then the VBD is replaced at the same device with the
        same mode, bootable flag and volume id: Nova's API swaps only for
        Cinder's migration of the volume, whose completion gives the new
        VDI the old volume id. Neither VDI is destroyed (Cinder owns
        both); any failure leaves the old VBD in place and raises
        SwapVolumeRefused.
        """
        old_vol, new_vol = volume_id(old_info), volume_id(new_info)
        new_data = volume_data(new_info)

        def refused(reason):
            return SwapVolumeRefused(old=old_vol, new=new_vol,
                                     reason=reason)
        call = self._conn.call
        old_vbd = self.find_vbd(vm_ref, old_info, mountpoint)
        if old_vbd is None:
            raise refused('it is not attached at %s' % mountpoint)
        state = call('VM.get_power_state', vm_ref)
        if state != 'Halted':
            raise refused(
                'VM %s. XAPI cannot mirror a plugged disk into another '
                'VDI without moving the VM: stop the server, or retype '
                'inside the backend (live VDI.pool_migrate)' % state)
        old_vdi = call('VBD.get_VDI', old_vbd)
        old_sr_uuid = call('SR.get_uuid', call('VDI.get_SR', old_vdi))
        with _lock(new_data['sr_uuid']):
            try:
                sr, introduced = self._connect(new_info)
            except exception.VolumeAttachFailed as exc:
                raise refused(
                    'a VM cannot use a VDI of another XAPI pool: '
                    'live-migrate the server with its disks (openstack '
                    'server migrate --live-migration --block-migration) '
                    '(%s)'
                    % exc.kwargs.get('reason')) from None
            try:
                new_vdi = self.find_vdi(sr, new_data)
                if new_vdi == old_vdi:
                    raise refused('both are VDI %s' % new_data['vdi_uuid'])
                self._copy_into(old_vdi, new_vdi, sr, resize_to)
                # Fails (VBD still attached) if the VM started meanwhile.
                self._replace_vbd(old_vbd, new_vdi)
            except errors.SxmError as exc:
                if introduced:
                    self._release(new_data['sr_uuid'])
                raise refused(str(exc)) from None
            except Exception:
                with excutils.save_and_reraise_exception():
                    if introduced:
                        self._release(new_data['sr_uuid'])
        if old_sr_uuid != new_data['sr_uuid']:
            self.release_sr(old_sr_uuid)
        LOG.info('Swapped volume %s for volume %s at %s', old_vol, new_vol,
                 mountpoint, instance=instance)

    def _copy_into(self, old_vdi, new_vdi, sr, resize_to):
        call = self._conn.call
        need = max(int(call('VDI.get_virtual_size', old_vdi)),
                   int(resize_to or 0) * GiB)
        if int(call('VDI.get_virtual_size', new_vdi)) < need:
            call('VDI.resize', new_vdi, str(need))
        tasks.call_async(self._conn.pool, 'VDI.copy',
                         (old_vdi, sr, NULL, new_vdi),
                         'VDI.copy for a volume swap')

    def _replace_vbd(self, old_vbd, new_vdi):
        call = self._conn.call
        rec = call('VBD.get_record', old_vbd)
        kept = {k: rec[k] for k in _VBD_KEPT}
        kept['other_config'] = rec['other_config']
        call('VBD.destroy', old_vbd)
        try:
            call('VBD.create', dict(kept, VDI=new_vdi))
        except Exception:
            with excutils.save_and_reraise_exception():
                call('VBD.create', dict(kept, VDI=rec['VDI']))

    def check_extended(self, vm_ref, instance, connection_info,
                       requested_size):
        """After Cinder grew a volume: the server's disk has the new size.

        Nothing is left for XAPI to do: Cinder resized the VDI under its
        VBD (VDI.resize_online, or VDI.resize while the VM was halted),
        and blkback hands the new size to the running guest's blkfront
        (xenstore ``sectors``) as for any VBD whose device grows.
        """
        vol = volume_id(connection_info)
        call = self._conn.call
        found = [v for v in call('VM.get_VBDs', vm_ref)
                 if call('VBD.get_other_config', v).get(VOLUME_KEY) == vol]
        if not found:
            raise ExtendVolumeFailed(
                volume_id=vol, instance_uuid=instance.uuid,
                reason='no VBD of the instance holds it')
        vdi = call('VBD.get_VDI', found[0])
        size = int(call('VDI.get_virtual_size', vdi))
        if size < requested_size:
            raise ExtendVolumeFailed(
                volume_id=vol, instance_uuid=instance.uuid,
                reason='its VDI %s holds %d bytes, less than the %d '
                       'Cinder reports: it did not grow'
                       % (call('VDI.get_uuid', vdi), size, requested_size))
        LOG.info('Volume %s is %d bytes now', vol, size, instance=instance)

    def detach(self, vm_ref, instance, connection_info, mountpoint):
        vbd = self.find_vbd(vm_ref, connection_info, mountpoint)
        if vbd is None:
            LOG.warning('Volume %s is not attached at %s; nothing to '
                        'detach', volume_id(connection_info), mountpoint,
                        instance=instance)
            return
        call = self._conn.call
        vdi = call('VBD.get_VDI', vbd)
        # The SR the VDI is on now (a retype may have moved it).
        sr_uuid = call('SR.get_uuid', call('VDI.get_SR', vdi)) \
            if vdi != NULL else None
        if call('VBD.get_currently_attached', vbd):
            call('VBD.unplug', vbd)
        call('VBD.destroy', vbd)
        if sr_uuid is not None:
            self.release_sr(sr_uuid)
