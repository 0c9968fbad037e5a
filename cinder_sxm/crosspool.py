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


"""Moving a detached volume to a backend of another XAPI pool.

XAPI moves VDIs between SRs of one pool only (VDI.pool_migrate,
VDI.copy). To another pool, the source backend's cinder-volume logs in to
the destination pool itself (its URL is in the destination pool's
capabilities, ``sxm_pool_url``; its password in
``sxm_remote_pool_passwords``) and has sxm_core.crosspool copy the VDI
through XAPI's export and import handlers as sparse VHD, verified by
digest; only then is the source VDI destroyed.

The move is recorded in the volume's admin metadata before anything
starts (``moves.MOVE_*``; the new VDI's uuid as soon as it exists), so
that a successor of a killed service either removes the copy (the source
VDI still exists) or finishes Cinder's side (the source is gone: the
copy was verified first). Cinder's side is finished here at once, before
the manager does the same, so that no moment exists where the database
names a VDI that is gone and no record says where the volume went.

Refusals raise (VolumeMigrationFailed): a move that returned (False,
None) would let Cinder try its generic migration, which cannot copy XAPI
volumes through host block devices and, for an attached volume, would
ask Nova to swap it.
"""

import contextlib

from cinder import context as cinder_context
from cinder import exception
from cinder import objects
from cinder.volume import volume_utils
from oslo_log import log as logging

from sxm_core import crosspool as copier
from sxm_core import errors
from sxm_core import sessions

from cinder_sxm import moves
from cinder_sxm import stats
from cinder_sxm import volumeops

LOG = logging.getLogger(__name__)
# How often progress is logged, in percent of the disk.
PROGRESS_STEP = 10


def refuse(volume, why):
    """VolumeMigrationFailed naming the volume and ``why``."""
    return exception.VolumeMigrationFailed(
        reason='volume %s cannot move to another XAPI pool: %s'
               % (volume.id, why))


def destination(host):
    """(pool uuid, SR uuid, pool URL) from a backend's capabilities."""
    caps = host.get('capabilities', {})
    where = stats.parse_location_info(caps.get('location_info'))
    if where is None:
        return None
    return where + (caps.get(stats.POOL_URL),)


class CrossPool(object):
    """Cross-pool moves of one backend's volumes.

    ``driver``: the SxmVolumeDriver (its session pool, volume ops, lock,
    options).
    """

    def __init__(self, driver, pool_kwargs, passwords, ca_file=None,
                 insecure=False, timeout=None):
        self.driver = driver
        self.ops = driver._ops
        self._pool_kwargs = dict(pool_kwargs)
        self._passwords = dict(passwords or {})
        self._ca_file = ca_file
        self._insecure = insecure
        self._timeout = timeout

    # -- the other pool ------------------------------------------------------

    @contextlib.contextmanager
    def remote(self, url, pool_uuid):
        """A SessionPool logged in to pool ``pool_uuid`` at ``url``.

        As sxm_connection_username, with the pool's password from
        sxm_remote_pool_passwords (else this backend's own). Closed after.
        """
        kwargs = dict(self._pool_kwargs, url=url)
        if self._passwords.get(pool_uuid):
            kwargs['password'] = self._passwords[pool_uuid]
        kwargs['originator'] = 'openstack-sxm cinder-volume (cross-pool)'
        pool = sessions.SessionPool(**kwargs)
        try:
            found = pool.call('pool.get_uuid', pool.call('pool.get_all')[0])
            if found != pool_uuid:
                raise errors.InvalidInput(
                    'the XAPI pool at %s is pool %s, not %s as the '
                    'destination backend reports'
                    % (sessions.safe_url(url), found, pool_uuid))
            yield pool
        finally:
            pool.close()

    def _login_refusal(self, volume, url, pool_uuid, exc):
        if isinstance(exc, errors.AuthenticationFailed):
            return refuse(volume, 'this backend cannot log in to XAPI pool '
                          '%s at %s: add its password to '
                          'sxm_remote_pool_passwords (as %s:PASSWORD) in '
                          'this backend\'s section' % (
                              pool_uuid, sessions.safe_url(url), pool_uuid))
        return refuse(volume, 'cannot reach XAPI pool %s at %s: %s'
                      % (pool_uuid, sessions.safe_url(url), exc))

    # -- refusals ------------------------------------------------------------

    def check(self, context, volume, host, where):
        """Raise VolumeMigrationFailed when the move cannot be made."""
        pool_uuid, sr_uuid, url = where
        servers = [a.instance_uuid or a.attached_host or a.id
                   for a in volume.volume_attachment or ()]
        if servers or volume.attach_status == 'attached':
            raise refuse(volume, 'it is attached to server(s) %s: XAPI '
                         'cannot move a plugged VDI to another pool alone; '
                         'live-migrate the server with its disks '
                         '(openstack server migrate --live-migration '
                         '--block-migration), or '
                         'detach the volume first'
                         % (', '.join(servers) or 'unknown'))
        snaps = objects.SnapshotList.get_all_for_volume(context, volume.id)
        if len(snaps):
            raise refuse(volume, 'it has %d snapshot(s), which cannot move '
                         'with it: delete them (or keep the volume in '
                         'pool %s)' % (len(snaps), self.driver._pool_id()))
        if volume.multiattach and not host.get('capabilities', {}).get(
                'multiattach'):
            raise refuse(volume, 'it is a multiattach volume and SR %s '
                         'does not take multiattach volumes (option '
                         'sxm_multiattach_srs of its backend)' % sr_uuid)
        if not url:
            raise refuse(volume, 'the destination backend %s does not '
                         'publish its pool\'s XAPI URL (capability %s): '
                         'upgrade its driver' % (host.get('host'),
                                                 stats.POOL_URL))

    # -- the move ------------------------------------------------------------

    def move(self, context, volume, host, where):
        """(True, model update) once the volume is in the other pool."""
        self.check(context, volume, host, where)
        pool_uuid, sr_uuid, url = where
        source = self.ops.find_vdi(volume.provider_location)
        if source is None:
            raise refuse(volume, 'its VDI %s is missing (moved or removed '
                         'meanwhile)' % volume.provider_location)
        try:
            with self.remote(url, pool_uuid) as dest:
                return self._copy(volume, host, dest, where)
        except errors.SxmError as exc:
            raise self._login_refusal(volume, url, pool_uuid, exc) from None

    def _copy(self, volume, host, dest, where):
        pool_uuid, sr_uuid, url = where
        from_uuid = volume.provider_location
        self.driver._note_move(volume, {
            moves.MOVE_HOST: host.get('host'),
            moves.MOVE_TYPE: self._new_type(volume, host),
            moves.MOVE_SR: sr_uuid,
            moves.MOVE_FROM: from_uuid,
            moves.MOVE_POOL: pool_uuid,
            moves.MOVE_URL: sessions.safe_url(url)})
        LOG.info('Volume %s: copying VDI %s to SR %s of XAPI pool %s',
                 volume.id, from_uuid, sr_uuid, pool_uuid)
        try:
            result = copier.copy_vdi(
                self.driver._xapi, from_uuid, dest, sr_uuid,
                name_label=volume.name,
                name_description=volume.display_description or '',
                other_config={volumeops.VOLUME_KEY: volume.id},
                progress=self._progress(volume),
                on_created=lambda uuid: self.driver._note_move(
                    volume, {moves.MOVE_TO: uuid}),
                ca_file=self._ca_file, insecure=self._insecure,
                timeout=self._timeout)
        except copier.CopyFailed as exc:
            # copy_vdi removed its VDI: the volume stays where it is.
            self.driver._forget_move(volume)
            raise refuse(volume, str(exc)) from None
        # Verified: the source may go. A kill from here on is finished by
        # the successor (recovery), as the record names the copy.
        try:
            self.ops.call('VDI.destroy', self.ops.require_vdi(
                from_uuid, volume.id))
        except errors.SxmError as exc:
            LOG.warning('Volume %s moved to VDI %s of pool %s, but its '
                        'former VDI %s could not be destroyed (%s): it is '
                        'unused, destroy it', volume.id, result.vdi_uuid,
                        pool_uuid, from_uuid, exc)
        update = finish(volume, host.get('host'), result.vdi_uuid)
        LOG.info('Moved volume %s to XAPI pool %s: VDI %s (SR %s), %d of '
                 '%d bytes sent, verified, in %.1f s', volume.id, pool_uuid,
                 result.vdi_uuid, result.sr_uuid, result.sent_bytes,
                 result.virtual_size, result.seconds)
        return True, update

    @staticmethod
    def _progress(volume):
        state = {}

        def progress(phase, done, total):
            pct = 100 * done // total if total else 100
            key = (phase, pct // PROGRESS_STEP)
            if state.get('last') == key:
                return
            state['last'] = key
            LOG.info('Volume %s: %s %d%% (%d of %d bytes)', volume.id,
                     phase, pct, done, total)
        return progress

    @staticmethod
    def _new_type(volume, host):
        """The type a retype to ``host`` sets, when only one fits."""
        if volume.status != 'retyping':
            return None
        # Types name the volume_backend_name the destination reports,
        # which need not be its section in cinder.conf.
        backend = (host.get('capabilities', {}).get('volume_backend_name')
                   or volume_utils.extract_host(
                       host.get('host'), 'backend').split('@')[-1])
        return type_for(host.get('host'), backend, volume.volume_type_id)


def type_for(host, backend, current_type_id):
    """The one volume type bound to ``backend`` and ``host``'s pool, or None.

    A retype runs through migrate_volume without the new type: it is
    recorded so that a successor can finish a retype (see recovery).
    """
    ctxt = cinder_context.get_admin_context()
    pool = volume_utils.extract_host(host, 'pool')
    fits = []
    for vtype in objects.VolumeTypeList.get_all(ctxt):
        specs = vtype.extra_specs or {}
        if vtype.id == current_type_id:
            continue
        if specs.get('volume_backend_name') != backend:
            continue
        if specs.get('pool_name') not in (None, pool):
            continue
        fits.append(vtype.id)
    return fits[0] if len(fits) == 1 else None


def finish(volume, host, vdi_uuid, new_type=None):
    """Cinder's side of a finished move, as the manager would set it.

    Returns the model update for the manager.
    """
    updates = {'host': host, 'provider_location': vdi_uuid,
               'migration_status': 'success'}
    try:
        service = objects.Service.get_by_args(
            cinder_context.get_admin_context(),
            volume_utils.extract_host(host, 'backend'), 'cinder-volume')
        updates.update(service_uuid=service.uuid,
                       availability_zone=service.availability_zone)
    except Exception as exc:
        # Decoration only: the move itself is recorded below.
        LOG.warning('Volume %s: cannot read the cinder-volume service of '
                    '%s (%s); its service and availability zone are left',
                    volume.id, host, exc)
    if new_type:
        updates['volume_type_id'] = new_type
    if volume.status in ('retyping', 'maintenance'):
        updates['status'] = volume.previous_status or (
            'in-use' if volume.attach_status == 'attached' else 'available')
    volume.update(updates)
    # As admin: the move's record changed the admin metadata, which a
    # user's context (a retype asked by its owner) cannot save.
    with volume.obj_as_admin():
        volume.save()
    moves.clear_move(volume)
    return {'provider_location': vdi_uuid}


def find(pool, vdi_uuid):
    """Whether VDI ``vdi_uuid`` exists in ``pool``."""
    try:
        pool.call('VDI.get_by_uuid', vdi_uuid)
    except errors.XapiFailure as exc:
        if errors.missing(exc):
            return False
        raise
    return True


def discard_copies(pool, source_uuid, copy_uuid):
    """Destroy in ``pool`` the copies of VDI ``source_uuid``; their uuids.

    The one recorded (``copy_uuid``) and any other a killed copy marked.
    """
    found = dict(copier.leftovers(pool, source_uuid))
    if copy_uuid:
        try:
            ref = pool.call('VDI.get_by_uuid', copy_uuid)
            found.setdefault(ref, {'uuid': copy_uuid})
        except errors.XapiFailure as exc:
            if not errors.missing(exc):
                raise
    gone = []
    for ref, rec in found.items():
        try:
            pool.call('VDI.destroy', ref)
        except errors.XapiFailure as exc:
            if not errors.missing(exc):
                raise
        gone.append(rec['uuid'])
    return gone
