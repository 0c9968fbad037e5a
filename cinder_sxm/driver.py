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


"""Cinder volume driver: volumes are VDIs of XenServer / XCP-ng SRs.

One backend talks to one XAPI pool; each configured SR is one Cinder pool
(a tier: e.g. a thick lvmoiscsi 'gold', a thin shared nfs 'silver').
Retype between the pools of the backend moves the VDI with XAPI: live with
VDI.pool_migrate when the volume is plugged into a running VM, else with
VDI.copy and VDI.destroy (sxm_core.volumes.VdiMover). Nova attaches a
volume from its ``xensm`` connection info (nova_sxm's volumeops).

``provider_location`` is the VDI uuid (see volumeops). A volume's VDI is
also found by its name label, which XAPI keeps through VDI.copy and
VDI.pool_migrate: delete removes the volume's data wherever a move put it,
with what interrupted moves left, and start-up (``update_provider_info``,
see recovery) brings every volume a dead cinder-volume left mid-operation
into agreement with XAPI.

Images (raw, vhd) go in and out through XAPI's HTTP handlers
(``imageops``); a volume from an image is made by ``clone_image``. The
driver runs nothing as root; Cinder's own image flows still run
``qemu-img`` through cinder-volume's root helper (rootwrap, privsep), as
for any backend.

One backend serves the SRs of one XAPI pool. A detached volume moves to
a backend of another pool itself (``migrate_volume``: ``openstack volume
migrate``, or a retype whose types differ only by volume_backend_name),
streamed as sparse VHD and verified before the source VDI goes (see
crosspool); what cannot move that way (attached, with snapshots, no
credentials for that pool) is refused by name, and so is a target volume
of Cinder's generic migration that XAPI cannot fill (see
``_check_migration_target``): no volume is ever half moved. Multiattach
only on the SRs of ``sxm_multiattach_srs`` (sharable VDIs).

Existing VDIs are adopted and given back by ``manage`` (``openstack volume
manage`` / ``unmanage``, volumes and snapshots); a revert copies a snapshot
into the volume's own VDI; an attached volume grows under its VM only
where the SR's storage plugin offers VDI_RESIZE_ONLINE (no stock one
does: each pool reports ``online_extend_support``).

cinder.conf::

    [DEFAULT]
    enabled_backends = xenserver

    [xenserver]
    volume_driver = cinder_sxm.driver.SxmVolumeDriver
    volume_backend_name = xenserver
    sxm_connection_url = https://pool-master.example.org/
    sxm_connection_password = ...
    sxm_srs = gold,silver
    # optional: passwords of other pools volumes move to (by pool uuid),
    # and the SRs whose volumes may be multi-attached
    sxm_remote_pool_passwords = 9f1a...:secret
    sxm_multiattach_srs = silver

and one volume type per tier: ``volume_backend_name=xenserver``,
``pool_name=gold`` (the SR's name label).
"""

import contextlib
import os

from cinder import context as cinder_context
from cinder import exception
from cinder.image import image_utils
from cinder import interface
from cinder import objects
from cinder.volume import configuration
from cinder.volume import driver
from cinder.volume import volume_utils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import excutils
from oslo_utils import units

from cinder_sxm import conf
from cinder_sxm import crosspool
from cinder_sxm import imageops
from cinder_sxm import manage
from cinder_sxm import moves
from cinder_sxm import recovery
from cinder_sxm import stats
from cinder_sxm import volumeops
from sxm_core import attach
from sxm_core import conf as core_conf
from sxm_core import errors
from sxm_core import sessions
from sxm_core import vhd
from sxm_core import volumes

LOG = logging.getLogger(__name__)
CONF = cfg.CONF
CONF.register_opts(conf.OPTS, group=configuration.SHARED_CONF_GROUP)


@contextlib.contextmanager
def _translated(what):
    """The core's errors as VolumeBackendAPIException naming ``what``."""
    try:
        yield
    except errors.SxmError as exc:
        raise exception.VolumeBackendAPIException(
            data='%s: %s' % (what, exc)) from None


@interface.volumedriver
class SxmVolumeDriver(driver.VolumeDriver):
    """Volumes on the SRs of a XenServer / XCP-ng pool.

    Version history::

        1.0.0 - volumes as VDIs, one pool per SR, live retype between pools
        1.1.0 - volumes from images through XAPI (no root helper); manage /
                unmanage of volumes and snapshots; revert to snapshot;
                online extend where the SR's storage plugin offers it
        1.2.0 - detached volumes move to backends of other XAPI pools;
                multiattach on opted-in SRs
    """

    VERSION = '1.2.0'
    CI_WIKI_NAME = 'openstack-sxm'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.configuration:
            self.configuration.append_config_values(conf.OPTS)
        self._xapi = None
        self._owned = None
        self._recovery = None
        self._ops = None
        self._transfers = None
        self._mover = None
        self._crosspool = None
        self._lock_path = None
        self._pool_uuid = None
        self._srs = None
        self._sm = None
        self.backend_name = None

    @staticmethod
    def get_driver_options():
        return conf.OPTS

    # -- setup ---------------------------------------------------------------

    def do_setup(self, context):
        self.backend_name = (self.configuration.safe_get(
            'volume_backend_name') or 'SxmVolumeDriver')
        view = conf.core_view(self.configuration)
        if not view.connection_url:
            raise exception.InvalidConfigurationValue(
                option='sxm_connection_url', value=None)
        try:
            self._xapi = sessions.SessionPool(**core_conf.pool_kwargs(
                view, 'openstack-sxm cinder-volume'))
        except ValueError as exc:
            raise exception.InvalidConfigurationValue(
                option='sxm_connection_url', value=str(exc)) from None
        # Every task it starts names this service: a successor ends them.
        self._owned = volumeops.owned_pool(
            self._xapi, self.host or self.backend_name)
        self._ops = volumeops.VolumeOps(self._owned)
        self._sm = stats.SmFeatures(self._ops.call)
        self._transfers = imageops.Transfers(
            self._owned, ca_file=view.ca_file, insecure=view.insecure,
            timeout=view.long_call_timeout)
        self._mover = volumes.VdiMover.from_options(self._owned, view)
        self._crosspool = crosspool.CrossPool(
            self, core_conf.pool_kwargs(view, 'openstack-sxm cinder-volume'),
            self.configuration.sxm_remote_pool_passwords,
            ca_file=view.ca_file, insecure=view.insecure,
            timeout=view.long_call_timeout)
        self._lock_path = view.lock_path

    def check_for_setup_error(self):
        srs = self.configuration.sxm_srs
        if not srs:
            raise exception.InvalidConfigurationValue(option='sxm_srs',
                                                      value=srs)
        with _translated('Logging in to %s' % self._xapi.url):
            self._pool_uuid = self._ops.pool_uuid()
        self._sr_map()  # every SR must resolve

    def _sr_map(self, strict=True):
        """{pool name: SR record (with 'ref')} of the configured SRs.

        ``strict``: an SR that cannot be found is an error; otherwise it
        is left out (with a warning) so that the others stay usable.
        """
        if self._srs is None:
            self._srs = stats.ConfiguredSRs(
                self._ops.call, self.configuration.sxm_srs, self._xapi.url)
        try:
            found = self._srs.records()
        except errors.SxmError as exc:
            raise exception.VolumeBackendAPIException(
                data='Cannot read the SRs (option sxm_srs) of backend %s '
                     'in the XAPI pool at %s: %s'
                     % (self.backend_name, self._xapi.url, exc))
        out = {}
        for key, rec in found:
            if isinstance(rec, errors.SxmError):
                msg = ('SR %r of backend %s (option sxm_srs) is not usable '
                       'in the XAPI pool at %s: %s'
                       % (key, self.backend_name, self._xapi.url, rec))
                if strict:
                    raise exception.VolumeBackendAPIException(data=msg)
                LOG.warning(msg)
                continue
            out[rec['name_label']] = rec
        return out

    def _pool_id(self):
        if self._pool_uuid is None:
            with _translated('Reading the XAPI pool'):
                self._pool_uuid = self._ops.pool_uuid()
        return self._pool_uuid

    # -- stats ---------------------------------------------------------------

    def _update_volume_stats(self):
        ratio = volume_utils.get_max_over_subscription_ratio(
            self.configuration.max_over_subscription_ratio,
            supports_auto=False)
        reserved = self.configuration.reserved_percentage
        try:
            pool_uuid = self._pool_id()
            url = sessions.safe_url(self._xapi.url)
            pools = [stats.pool_stats(rec, pool_uuid, ratio, reserved,
                                      self._sm.get(rec['type']),
                                      self._multiattach(rec), url)
                     for rec in self._sr_map(strict=False).values()]
        except (exception.VolumeBackendAPIException,
                errors.SxmError) as exc:
            # No pools: the scheduler places nothing here until XAPI
            # answers again.
            LOG.error('Cannot read the pools of backend %s: %s',
                      self.backend_name, exc)
            pools = []
        self._stats = {
            'volume_backend_name': self.backend_name,
            'vendor_name': 'XenServer/XCP-ng',
            'driver_version': self.VERSION,
            'storage_protocol': attach.DRIVER_VOLUME_TYPE,
            # Each volume is its own VDI: no target shared between them.
            'shared_targets': False,
            'pools': pools,
        }

    def get_volume_stats(self, refresh=False):
        if not self._stats or refresh:
            self._update_volume_stats()
        return self._stats

    # -- helpers -------------------------------------------------------------

    def _target_sr(self, volume):
        """SR record of the pool the scheduler chose for ``volume``."""
        srs = self._sr_map()
        name = volume_utils.extract_host(volume.host, 'pool')
        if name is None:
            return next(iter(srs.values()))
        if name not in srs:
            raise exception.VolumeBackendAPIException(
                data='Volume %s is scheduled to pool %r, which backend %s '
                     'does not have (pools: %s)'
                     % (volume.id, name, self.backend_name,
                        ', '.join(sorted(srs))))
        return srs[name]

    def _multiattach(self, sr_rec):
        """Whether the operator opted SR ``sr_rec`` in to multiattach."""
        keys = self.configuration.sxm_multiattach_srs or ()
        return sr_rec['uuid'] in keys or sr_rec['name_label'] in keys

    def _locked(self, volume_id):
        """The volume's lock: a move waits for it, and it for a move.

        Keyed on the volume id, which a move keeps (the VDI uuid changes).
        """
        return volumes.volume_lock(volume_id, self._lock_path)

    def _sr_refs(self):
        return {rec['ref'] for rec in self._sr_map(strict=False).values()}

    def _find_vdi(self, volume):
        """The ref of the volume's VDI, or None.

        By provider_location; when that names a VDI that is gone (a move
        finished while this service was down), by the volume's name label,
        and provider_location is corrected.
        """
        vdi = self._ops.find_vdi(volume.provider_location)
        if vdi is not None:
            return vdi
        found = [(ref, rec) for ref, rec in self._ops.volume_vdis(
            volume.id, volume.name, self._sr_refs())
            if not self._ops.running_tasks(rec)]
        if len(found) != 1:
            return None
        ref, rec = found[0]
        LOG.warning('Volume %s: VDI %s (provider_location) is gone; its '
                    'data is in VDI %s', volume.id, volume.provider_location,
                    rec['uuid'])
        try:
            volume.provider_location = rec['uuid']
            volume.save()
        except Exception as exc:
            LOG.warning('Could not record VDI %s as the provider_location '
                        'of volume %s: %s', rec['uuid'], volume.id, exc)
        return ref

    def _vdi(self, volume):
        vdi = self._find_vdi(volume)
        if vdi is None:
            raise exception.VolumeNotFound(volume_id=volume.id)
        return vdi

    # -- volumes -------------------------------------------------------------

    def _check_migration_target(self, volume):
        """Refuse a target of Cinder's generic migration we cannot fill.

        Cinder's generic migration copies a detached volume through block
        devices of the cinder-volume host (os-brick), which XAPI volumes
        are not; for an attached one it asks Nova to swap the volume,
        which XAPI can do only within one pool. Refused here, the target
        goes to 'error', Cinder deletes it and the source stays as it is.
        """
        status = volume.migration_status or ''
        if not status.startswith('target:'):
            return
        source_id = status[len('target:'):]
        source = objects.Volume.get_by_id(cinder_context.get_admin_context(),
                                          source_id)
        attached = bool(source.volume_attachment)
        here = self._ops.find_vdi(source.provider_location) is not None
        if attached and here:
            return  # Nova swaps it within this pool (swap_volume)
        if attached:
            why = ('the source volume %s is attached to server(s) %s in '
                   'another XAPI pool: XAPI cannot move a plugged VDI to '
                   'another pool alone; live-migrate the server with its '
                   'disks (openstack server migrate --live-migration '
                   '--block-migration), or detach the volume first'
                   % (source_id, ', '.join(a.instance_uuid or a.id for a
                                           in source.volume_attachment)))
        else:
            why = ('XAPI volumes cannot be copied through block devices of '
                   'the cinder-volume host (Cinder\'s generic migration of '
                   'detached volume %s): use a volume type that differs '
                   'from the volume\'s only by volume_backend_name, so '
                   'that the driver moves it itself' % source_id)
        raise exception.VolumeBackendAPIException(
            data='Refusing to create volume %s as the migration target of '
                 'volume %s: %s' % (volume.id, source_id, why))

    def _check_multiattach(self, volume, sr):
        if volume.multiattach and not self._multiattach(sr):
            raise exception.VolumeBackendAPIException(
                data='Volume %s is multiattach, and SR %s does not take '
                     'multiattach volumes: list it in sxm_multiattach_srs '
                     '(once /etc/xensource/allow_multiple_vdi_attach exists '
                     'on every host of its pool) or use another type'
                     % (volume.id, sr['name_label']))

    def create_volume(self, volume):
        self._check_migration_target(volume)
        sr = self._target_sr(volume)
        self._check_multiattach(volume, sr)
        with _translated('Creating volume %s' % volume.id):
            uuid = self._ops.create(sr['ref'], volume.size, volume)
        LOG.info('Created volume %s as VDI %s on SR %s', volume.id, uuid,
                 sr['name_label'])
        return {'provider_location': uuid}

    def delete_volume(self, volume):
        try:
            with self._locked(volume.id):
                self._ops.destroy_volume(
                    volume.id, volume.name, volume.provider_location,
                    self._sr_refs(), 'volume %s' % volume.id)
        except errors.VdiInUse:
            raise exception.VolumeIsBusy(volume_name=volume.name)
        except errors.XapiFailure as exc:
            raise exception.VolumeBackendAPIException(
                data='Deleting volume %s: %s' % (volume.id, exc))
        except errors.SxmError as exc:
            raise exception.VolumeBackendAPIException(
                data='Deleting volume %s: %s' % (volume.id, exc))

    def extend_volume(self, volume, new_size):
        """VDI.resize, or VDI.resize_online under a running VM.

        Online only where the SR's SM offers it (the pool's
        online_extend_support): refused by name elsewhere, and for a
        volume attached through another XAPI pool (see VolumeOps.extend).
        """
        attached = any(a.attach_status == 'attached'
                       for a in volume.volume_attachment or ())
        with self._locked(volume.id), _translated(
                'Extending volume %s to %s GiB' % (volume.id, new_size)):
            self._ops.extend(
                self._vdi(volume), new_size, volume.name, attached,
                lambda sr_type: self._sm.get(sr_type, fresh=True))

    def create_cloned_volume(self, volume, src_vref):
        sr = self._target_sr(volume)
        self._check_multiattach(volume, sr)
        with self._locked(src_vref.id), _translated(
                'Cloning volume %s' % src_vref.id):
            uuid = self._ops.clone_or_copy(
                self._ops.call('VDI.get_uuid', self._vdi(src_vref)),
                sr['ref'], volume.size, volume, 'volume %s' % src_vref.id)
        return {'provider_location': uuid}

    def create_snapshot(self, snapshot):
        if snapshot.volume.multiattach:
            # As xapi refuses VDI.snapshot of a sharable VDI.
            raise exception.VolumeBackendAPIException(
                data='Snapshot %s: volume %s is multiattach; XAPI cannot '
                     'snapshot a sharable VDI (VDI_IS_SHARABLE): clone it '
                     'or back it up instead' % (snapshot.id,
                                                snapshot.volume_id))
        with self._locked(snapshot.volume_id), _translated(
                'Snapshot %s of volume %s' % (snapshot.id,
                                              snapshot.volume_id)):
            uuid = self._ops.snapshot(
                self._ops.call('VDI.get_uuid', self._vdi(snapshot.volume)),
                snapshot)
        return {'provider_location': uuid}

    def delete_snapshot(self, snapshot):
        with _translated('Deleting snapshot %s' % snapshot.id):
            self._ops.destroy(snapshot.provider_location,
                              'snapshot %s' % snapshot.id)

    def create_volume_from_snapshot(self, volume, snapshot):
        sr = self._target_sr(volume)
        self._check_multiattach(volume, sr)
        with _translated('Volume %s from snapshot %s'
                         % (volume.id, snapshot.id)):
            uuid = self._ops.clone_or_copy(
                snapshot.provider_location, sr['ref'], volume.size, volume,
                'snapshot %s' % snapshot.id)
        return {'provider_location': uuid}

    # -- exports and connections ---------------------------------------------

    def create_export(self, context, volume, connector):
        pass

    def ensure_export(self, context, volume):
        pass

    def remove_export(self, context, volume):
        pass

    def initialize_connection(self, volume, connector, initiator_data=None):
        with _translated('Connecting volume %s' % volume.id):
            vdi = self._vdi(volume)
            sr = self._ops.call('VDI.get_SR', vdi)
            sr_rec = self._ops.sr_record(sr)
            device_config = (self._ops.device_config(sr_rec)
                             if sr_rec['shared'] else {})
        tier = volume_utils.extract_host(volume.host, 'pool')
        try:
            return attach.connection_info(
                volume.id, self._ops.call('VDI.get_uuid', vdi), sr_rec,
                self._pool_id(), connector, device_config, tier=tier)
        except attach.CrossPoolRefused as exc:
            raise exception.VolumeBackendAPIException(data=str(exc))

    def terminate_connection(self, volume, connector, **kwargs):
        if connector is None:
            # Force detach: no consumer will unplug it any more.
            with _translated('Force-detaching volume %s' % volume.id):
                vdi = self._find_vdi(volume)
                if vdi is not None:
                    self._ops.force_detach(
                        self._ops.call('VDI.get_uuid', vdi),
                        'volume %s' % volume.id)

    # -- images --------------------------------------------------------------

    @staticmethod
    def _image_format(image_id, disk_format):
        if disk_format not in imageops.FORMATS:
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason='disk format %r: XAPI imports and exports raw and '
                       'vhd' % disk_format)
        return disk_format

    @staticmethod
    def _image_file(stack, context, image_service, image_id):
        """A local file holding the image's bytes, fetched once."""
        # The volume manager may have fetched (and checked) it already.
        fetched = image_utils.TemporaryImages.for_image_service(
            image_service).get(context, image_id)
        if fetched is None:
            fetched = stack.enter_context(
                image_utils.temporary_file(prefix='sxm-image-'))
            image_utils.fetch(context, image_service, image_id, fetched,
                              None, None)
        return fetched

    @staticmethod
    def _check_image_fits(image_id, path, fmt, size_gb):
        """Refuse an image the volume cannot hold, naming why."""
        capacity = int(size_gb) * units.Gi
        if fmt == 'vhd':
            try:
                with open(path, 'rb') as f:
                    vhd.inspect(f, capacity)
            except vhd.VhdError as exc:
                raise exception.ImageUnacceptable(
                    image_id=image_id, reason=str(exc)) from None
        elif os.path.getsize(path) > capacity:
            raise exception.ImageTooBig(
                image_id=image_id,
                reason='the image (%d bytes) is larger than the volume '
                       '(%s GiB)' % (os.path.getsize(path), size_gb))

    def _write_image(self, volume, path, fmt, image_id):
        with self._locked(volume.id), _translated(
                'Writing image %s to volume %s' % (image_id, volume.id)):
            self._transfers.upload(self._vdi(volume), path, fmt,
                                   'import of image %s' % image_id)

    def copy_image_to_volume(self, context, volume, image_service, image_id,
                             disable_sparse=False):
        meta = image_service.show(context, image_id)
        fmt = self._image_format(image_id, meta.get('disk_format') or 'raw')
        with contextlib.ExitStack() as stack:
            path = self._image_file(stack, context, image_service, image_id)
            self._write_image(volume, path, fmt, image_id)

    def clone_image(self, context, volume, image_location, image_meta,
                    image_service):
        """A new volume from an image, through XAPI alone.

        Cinder's generic path inspects the image with ``qemu-img`` and its
        format inspector as root (rootwrap, privsep: ``sudo``), which a
        cinder-volume without a root helper cannot run. XAPI reads raw and
        VHD itself, and both are checked here (size, VHD structure)
        before a VDI is made; a failed write leaves no VDI behind.
        """
        image_id = image_meta['id']
        fmt = self._image_format(image_id,
                                 image_meta.get('disk_format') or 'raw')
        with contextlib.ExitStack() as stack:
            path = self._image_file(stack, context, image_service, image_id)
            self._check_image_fits(image_id, path, fmt, volume.size)
            model_update = self.create_volume(volume)
            volume.provider_location = model_update['provider_location']
            try:
                self._write_image(volume, path, fmt, image_id)
            except Exception:
                with excutils.save_and_reraise_exception():
                    self._forget_failed_volume(volume, image_id)
        return model_update, True

    def _forget_failed_volume(self, volume, image_id):
        try:
            self.delete_volume(volume)
        except exception.CinderException as exc:
            LOG.error('Volume %s: could not remove its VDI %s after the '
                      'import of image %s failed: %s', volume.id,
                      volume.provider_location, image_id, exc)

    def copy_volume_to_image(self, context, volume, image_service,
                             image_meta):
        fmt = self._image_format(image_meta['id'],
                                 image_meta.get('disk_format') or 'raw')
        with image_utils.temporary_file(prefix='sxm-image-') as tmp:
            with self._locked(volume.id), _translated(
                    'Reading volume %s' % volume.id):
                vdi = self._vdi(volume)
                with open(tmp, 'wb') as out:
                    self._transfers.download(
                        vdi, out, fmt, 'export of volume %s' % volume.id)
            with open(tmp, 'rb') as data:
                image_service.update(context, image_meta['id'], {}, data)

    # -- manage, unmanage, revert (see manage) -------------------------------

    def _adopter(self):
        return manage.Adopter(self._ops, self._sr_map, self._known,
                              self._lock_path)

    @staticmethod
    def _known(key, object_id):
        """Whether the Cinder object a VDI's mark names exists."""
        cls = (objects.Snapshot if key == volumeops.SNAPSHOT_KEY
               else objects.Volume)
        try:
            cls.get_by_id(cinder_context.get_admin_context(), object_id)
        except exception.NotFound:
            return False
        return True

    def manage_existing_get_size(self, volume, existing_ref):
        with _translated('Reading VDI %s' % (existing_ref,)):
            return manage.size_gb(self._adopter().volume_vdi(
                existing_ref, volume_utils.extract_host(volume.host,
                                                        'pool')))

    def manage_existing(self, volume, existing_ref):
        pool = volume_utils.extract_host(volume.host, 'pool')
        with _translated('Managing VDI %s as volume %s'
                         % (existing_ref, volume.id)):
            uuid, where = self._adopter().manage_volume(
                volume, existing_ref, pool)
        # Cinder's manage flow leaves the table's default (True) and no
        # service_uuid, for which os-brick's guard_connection on the
        # compute host locks on None and the attach fails: a VDI shares
        # no target, as create_volume's volumes already say.
        update = {'provider_location': uuid, 'shared_targets': False}
        if pool is None:
            # Asked of the backend: the volume is in the VDI's pool.
            update['host'] = volume_utils.append_host(volume.host, where)
        return update

    def unmanage(self, volume):
        with self._locked(volume.id), _translated(
                'Unmanaging volume %s' % volume.id):
            self._adopter().unmanage(self._find_vdi(volume),
                                     volumeops.VOLUME_KEY,
                                     'Volume %s' % volume.id)

    def _snapshot_parent(self, snapshot):
        with _translated('Finding the VDI of volume %s'
                         % snapshot.volume_id):
            return self._vdi(snapshot.volume)

    def manage_existing_snapshot_get_size(self, snapshot, existing_ref):
        parent = self._snapshot_parent(snapshot)
        with _translated('Reading VDI %s' % (existing_ref,)):
            return manage.size_gb(self._adopter().snapshot_vdi(
                existing_ref, parent))

    def manage_existing_snapshot(self, snapshot, existing_ref):
        parent = self._snapshot_parent(snapshot)
        with _translated('Managing VDI %s as snapshot %s'
                         % (existing_ref, snapshot.id)):
            uuid = self._adopter().manage_snapshot(snapshot, existing_ref,
                                                   parent)
        return {'provider_location': uuid}

    def unmanage_snapshot(self, snapshot):
        with _translated('Unmanaging snapshot %s' % snapshot.id):
            self._adopter().unmanage(
                self._ops.find_vdi(snapshot.provider_location),
                volumeops.SNAPSHOT_KEY, 'Snapshot %s' % snapshot.id)

    def get_manageable_volumes(self, cinder_volumes, marker, limit, offset,
                               sort_keys, sort_dirs):
        with _translated('Listing the VDIs of backend %s'
                         % self.backend_name):
            entries = self._adopter().manageable_volumes(cinder_volumes)
        return volume_utils.paginate_entries_list(
            entries, marker, limit, offset, sort_keys, sort_dirs)

    def get_manageable_snapshots(self, cinder_snapshots, marker, limit,
                                 offset, sort_keys, sort_dirs):
        with _translated('Listing the snapshot VDIs of backend %s'
                         % self.backend_name):
            entries = self._adopter().manageable_snapshots(cinder_snapshots)
        return volume_utils.paginate_entries_list(
            entries, marker, limit, offset, sort_keys, sort_dirs)

    def revert_to_snapshot(self, context, volume, snapshot):
        """The volume's bytes become the snapshot's, in its own VDI."""
        with self._locked(volume.id):
            vdi = self._vdi(volume)
            snap = self._ops.find_vdi(snapshot.provider_location)
            if snap is None:
                raise exception.SnapshotNotFound(snapshot_id=snapshot.id)
            try:
                self._ops.revert(vdi, snap, 'volume %s' % volume.id)
            except errors.VdiInUse:
                raise exception.InvalidVolume(
                    reason='volume %s cannot be reverted to snapshot %s '
                           'while a VM has its VDI plugged (XAPI: '
                           'VDI_IN_USE): detach it first'
                           % (volume.id, snapshot.id)) from None
            except errors.SxmError as exc:
                raise exception.VolumeBackendAPIException(
                    data='Reverting volume %s to snapshot %s: %s'
                         % (volume.id, snapshot.id, exc)) from None
        LOG.info('Volume %s reverted to snapshot %s (VDI %s)', volume.id,
                 snapshot.id, snapshot.provider_location)

    # -- moving between pools ------------------------------------------------

    def _move_refusal(self, context, volume, host):
        """Why the volume cannot move to ``host``'s pool here, or None."""
        where = stats.parse_location_info(
            host.get('capabilities', {}).get('location_info'))
        if where is None:
            return 'the destination is not a pool of an SXM backend'
        pool_uuid, sr_uuid = where
        if pool_uuid != self._pool_id():
            return ('the destination SR %s is in another XAPI pool (%s)'
                    % (sr_uuid, pool_uuid))
        srs = {r['uuid']: r for r in self._sr_map().values()}
        if sr_uuid not in srs:
            return 'SR %s is not one of this backend\'s pools' % sr_uuid
        if srs[sr_uuid]['type'] in stats.UNMOVABLE_TYPES:
            return 'SR %s (type %s) cannot take migrations' % (
                sr_uuid, srs[sr_uuid]['type'])
        snaps = objects.SnapshotList.get_all_for_volume(context, volume.id)
        if len(snaps):
            return ('the volume has %d snapshot(s), which cannot move with '
                    'it' % len(snaps))
        return None

    def _move(self, context, volume, host, why, new_type=None):
        """(moved, model update) of moving ``volume`` to ``host``'s pool.

        Never raises for a move that cannot or did not happen: Cinder then
        keeps the volume where it is, or tries its generic migration,
        which is harmless within a pool: its target volume is refused
        here for a detached source (``_check_migration_target``), and for
        an attached one Nova swaps within the pool or refuses by name.
        """
        try:
            return self._try_move(context, volume, host, why, new_type)
        except (errors.SxmError, exception.VolumeBackendAPIException) as exc:
            LOG.error('Cannot %s volume %s to %s: %s', why, volume.id,
                      host.get('host'), exc)
            return False, None

    def _try_move(self, context, volume, host, why, new_type=None):
        # Under the volume's lock from the first look until the new VDI is
        # labelled: a second move that waited finds the old VDI gone and
        # refuses.
        with self._locked(volume.id):
            return self._locked_move(context, volume, host, why, new_type)

    def _locked_move(self, context, volume, host, why, new_type=None):
        target = stats.parse_location_info(
            host.get('capabilities', {}).get('location_info'))
        # provider_location only: a move that waited for another must find
        # the VDI gone and refuse (the successor's start-up, not a move,
        # repairs a provider_location that is stale for other reasons).
        current = self._ops.find_vdi(volume.provider_location)
        if current is None:
            LOG.warning('Cannot %s volume %s: its VDI %s is missing (moved '
                        'or removed meanwhile)', why, volume.id,
                        volume.provider_location)
            return False, None
        if target is not None and self._ops.sr_record(
                self._ops.call('VDI.get_SR', current))['uuid'] == target[1]:
            return True, None  # same SR: nothing to move
        reason = self._move_refusal(context, volume, host)
        if reason:
            LOG.warning('Cannot %s volume %s to %s: %s', why, volume.id,
                        host.get('host'), reason)
            return False, None
        # Where it goes, in Cinder's database before XAPI starts: if this
        # service dies, its successor finishes Cinder's side (recovery).
        self._note_move(volume, {
            moves.MOVE_HOST: host.get('host'),
            moves.MOVE_TYPE: new_type.id if new_type else '',
            moves.MOVE_SR: target[1],
            moves.MOVE_FROM: volume.provider_location})
        try:
            result = self._mover.move(
                volume.provider_location, target[1], lock=False,
                on_task=lambda task: self._note_move(
                    volume, {moves.MOVE_TASK: task}))
        except errors.SxmError as exc:
            LOG.error('%s of volume %s to %s failed: %s', why, volume.id,
                      host.get('host'), exc)
            return self._after_failed_move(volume, target[1], why)
        self._forget_move(volume)
        if not result.moved:
            return True, None
        try:
            self._ops.label_volume(
                self._ops.require_vdi(result.vdi_uuid, volume.id), volume)
        except errors.SxmError as exc:
            LOG.warning('Could not label VDI %s of volume %s: %s',
                        result.vdi_uuid, volume.id, exc)
        how = 'live (VDI.pool_migrate)' if result.live else 'VDI.copy'
        LOG.info('Moved volume %s (%s, %s) to SR %s: VDI %s is now %s',
                 volume.id, why, how, result.sr_uuid,
                 volume.provider_location, result.vdi_uuid)
        if result.leftovers:
            LOG.warning('Volume %s moved to SR %s, but its former VDI(s) %s '
                        'could not be removed: they are unused, destroy '
                        'them when their SR allows', volume.id,
                        result.sr_uuid, ', '.join(result.leftovers))
        return True, {'provider_location': result.vdi_uuid}

    def _after_failed_move(self, volume, sr_uuid, why):
        """(moved, model update) from what XAPI shows after an error.

        An error may come after the point of no return (the task lost in
        a toolstack restart, the connection reset once the copy ended):
        the VDI may be on SR ``sr_uuid`` all the same. When XAPI cannot
        tell, the move stays recorded for the next start-up.
        """
        try:
            source = self._ops.find_vdi(volume.provider_location)
            found = [(ref, rec) for ref, rec in self._ops.volume_vdis(
                volume.id, volume.name, self._sr_refs())
                if ref != source and not self._ops.running_tasks(rec)]
            if source is not None:
                for ref, rec in found:
                    if any(self._ops.call('VBD.get_currently_attached', v)
                           for v in rec['VBDs']):
                        continue
                    self._ops.call('VDI.destroy', ref)
                    LOG.warning('Destroyed VDI %s that the failed %s of '
                                'volume %s left', rec['uuid'], why,
                                volume.id)
                self._forget_move(volume)
                return False, None
            srs = {rec['ref']: rec['uuid']
                   for rec in self._sr_map(strict=False).values()}
            moved = [(ref, rec) for ref, rec in found
                     if srs.get(rec['SR']) == sr_uuid]
            if len(moved) != 1:
                LOG.error('After the failed %s of volume %s, its VDI %s is '
                          'gone and %d VDI(s) labelled %s are on SR %s: '
                          'left for the next start-up of this service',
                          why, volume.id, volume.provider_location,
                          len(moved), volume.name, sr_uuid)
                return False, None
            ref, rec = moved[0]
            self._ops.label_volume(ref, volume)
        except errors.SxmError as exc:
            LOG.error('Cannot tell where the failed %s left volume %s (%s): '
                      'left for the next start-up of this service', why,
                      volume.id, exc)
            return False, None
        self._forget_move(volume)
        LOG.warning('The %s of volume %s failed after XAPI had moved its '
                    'VDI: it is VDI %s on SR %s now', why, volume.id,
                    rec['uuid'], sr_uuid)
        return True, {'provider_location': rec['uuid']}

    def _note_move(self, volume, values):
        try:
            moves.record_move(volume, {k: v for k, v in values.items()
                                       if v is not None})
        except Exception as exc:
            LOG.warning('Could not record the move of volume %s in its '
                        'admin metadata: %s', volume.id, exc)

    def _forget_move(self, volume):
        try:
            moves.clear_move(volume)
        except Exception as exc:
            LOG.warning('Could not clear the move of volume %s from its '
                        'admin metadata: %s', volume.id, exc)

    def _other_pool(self, host):
        """(pool, SR, URL) of ``host`` when it is in another XAPI pool."""
        where = crosspool.destination(host)
        if where is None or where[0] == self._pool_id():
            return None
        return where

    def _cross_pool(self, context, volume, host):
        """Move ``volume`` to another XAPI pool, or raise saying why.

        Raises rather than returning (False, None): Cinder's generic
        migration would then copy through host block devices (impossible
        for XAPI volumes) or ask Nova to swap an attached volume.
        """
        try:
            with self._locked(volume.id):
                return self._crosspool.move(context, volume, host,
                                            self._other_pool(host))
        except exception.VolumeMigrationFailed as exc:
            LOG.error('%s', exc)
            raise

    def _check_multiattach_move(self, volume, host):
        attachments = [a for a in volume.volume_attachment or ()
                       if a.attach_status == 'attached']
        if volume.multiattach and len(attachments) > 1:
            # VDI.pool_migrate mirrors one VM's writes; not two VMs'.
            raise exception.VolumeMigrationFailed(
                reason='volume %s is attached to %d servers: XAPI cannot '
                       'move a VDI that several VMs have plugged; detach '
                       'it from all but one first'
                       % (volume.id, len(attachments)))
        if volume.multiattach and not host.get('capabilities', {}).get(
                'multiattach'):
            raise exception.VolumeMigrationFailed(
                reason='volume %s is multiattach and pool %s takes no '
                       'multiattach volumes (sxm_multiattach_srs)'
                       % (volume.id, host.get('host')))

    def retype(self, context, volume, new_type, diff, host):
        self._check_multiattach_move(volume, host)
        if self._other_pool(host):
            return self._cross_pool(context, volume, host)
        return self._move(context, volume, host, 'retype', new_type)

    def migrate_volume(self, context, volume, host):
        self._check_multiattach_move(volume, host)
        if self._other_pool(host):
            return self._cross_pool(context, volume, host)
        if volume.attach_status == 'attached' or volume.status == 'in-use':
            return False, None  # the manager never asks; be sure anyway
        return self._move(context, volume, host, 'migrate')

    # -- start-up ------------------------------------------------------------

    def update_provider_info(self, volumes, snapshots):
        """Reconcile this backend's volumes with XAPI (see recovery).

        init_host calls it once the driver is set up, with the volumes of
        this backend, before it counts their capacity. Never raises: one
        volume that cannot be reconciled is logged and left.
        """
        self._recovery = recovery.Recovery(self)
        self._recovery.run(volumes, snapshots)
        return None, None

    def update_migrated_volume(self, context, volume, new_volume,
                               original_volume_status):
        # The VDI keeps the new volume's uuid; label it as the original.
        vdi = self._ops.find_vdi(new_volume.provider_location)
        if vdi is not None:
            try:
                self._ops.label_volume(vdi, volume)
            except errors.SxmError as exc:
                LOG.warning('Could not relabel VDI %s after migrating '
                            'volume %s: %s', new_volume.provider_location,
                            volume.id, exc)
        return {'_name_id': None,
                'provider_location': new_volume.provider_location}
