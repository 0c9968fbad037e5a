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


"""Start-up reconciliation: Cinder's records agree with XAPI again.

cinder-volume can die (kill -9, a crash, a host reboot) in the middle of
an operation; XAPI goes on with whatever task it was given. Cinder's own
start-up (VolumeManager.init_host) resets 'creating' and 'downloading' to
'error', 'uploading' to available / in-use and deletes again what was
'deleting'; it leaves 'retyping', 'extending' and a migration_status of
'starting' / 'migrating' as they are, and never looks at the backend. The
driver does the rest from ``update_provider_info``, which init_host calls
with this backend's volumes before it counts their capacity:

- XAPI tasks this backend started (tagged with its host, see volumeops)
  and nobody will follow are cancelled, waited for and destroyed.
- A move (retype, migrate_volume) records where it goes in the volume's
  admin metadata (``moves.MOVE_KEYS``) before it starts and the task's ref once
  XAPI has it. A move whose task still runs is followed to its end in the
  background; then, or at once when it has ended: on the new SR, the
  volume gets the new host (``backend#pool``), type and provider_location,
  as the manager's retype would have set them; still on the source, it
  keeps them and the copies of the move are destroyed. A copy that
  succeeded while the service was down is finished (VBDs of a halted VM
  moved to it, the original destroyed). Either way its status is
  available / in-use again, migration_status 'success' or 'error'.
- A move to another XAPI pool (cinder_sxm.crosspool) records that pool,
  its URL and the copy's uuid: while the source VDI exists, the copy
  (and what a killed copy marked there) is destroyed in that pool and the
  volume stays; once it is gone (destroyed only after the copy was
  verified), the volume gets the destination's host and the copy as
  provider_location, migration_status 'success'.
- 'creating' / 'downloading' (create from image, clone, from snapshot):
  the VDIs made for the volume are destroyed and it is set to 'error' (as
  Cinder's own clean-up does next). A VDI that a clone, copy or snapshot
  task of the dead service made and no volume or snapshot names (a clone
  still labelled as its source) is destroyed.
- 'extending': back to available / in-use with the size the VDI has.
- 'uploading' with no upload running (killed before the upload reached
  the driver: Cinder's clean-up has no workers row for it): back to
  available / in-use.
- Any other volume whose provider_location names a VDI that is gone is
  pointed at the VDI holding its data (found by its name label).

Every change is a WARNING naming the volume and what XAPI showed. One
volume that cannot be reconciled is logged and left; the others go on.
"""

import math
import threading

from cinder import context as cinder_context
from cinder import objects
from cinder.volume import volume_utils
from oslo_log import log as logging

from sxm_core import errors
from sxm_core import tasks

from cinder_sxm import crosspool
from cinder_sxm import imageops
from cinder_sxm import moves
from cinder_sxm import volumeops

LOG = logging.getLogger(__name__)
GiB = volumeops.GiB

MIGRATING = ('starting', 'migrating')
# How long a cancelled task of a dead service may take to end.
CANCEL_TIMEOUT = 30
# Tasks whose result is a new VDI (a clone, a copy, a snapshot).
MAKERS = ('Async.VDI.clone', 'Async.VDI.copy', 'Async.VDI.snapshot')


def _settled_status(volume):
    return 'in-use' if volume.attach_status == 'attached' else 'available'


class Recovery(object):
    """One reconciliation of a backend's volumes (see the module doc)."""

    def __init__(self, driver):
        self.driver = driver
        self.ops = driver._ops
        self.threads = []

    # -- entry ---------------------------------------------------------------

    def run(self, vols, snaps=()):
        try:
            srs = self.driver._sr_map(strict=False)
            self.sr_names = {rec['ref']: name for name, rec in srs.items()}
            self.sr_refs = {rec['uuid']: rec['ref'] for rec in srs.values()}
            owned = self.ops.pool.owned_tasks()
        except Exception as exc:
            LOG.error('Cannot reconcile the volumes of backend %s with XAPI '
                      'at start-up: %s', self.driver.backend_name, exc)
            return
        followed = {}
        for vol in vols:
            task = self._marker(vol).get(moves.MOVE_TASK)
            if task and task in owned:
                followed[task] = vol
        known = {o.provider_location for o in list(vols) + list(snaps)
                 if o.provider_location}
        for task, rec in owned.items():
            if task in followed:
                continue
            self._end_task(task, rec, known)
        for vol in vols:
            try:
                self._volume(vol, followed)
            except Exception:
                LOG.exception('Could not reconcile volume %s (status %s) '
                              'with XAPI', vol.id, vol.status)
        self._revert_bases()

    def _revert_bases(self):
        """Destroy the snapshots a revert killed mid-way left behind."""
        try:
            snaps = self.ops.call('VDI.get_all_records_where',
                                  'field "is_a_snapshot" = "true"')
        except errors.SxmError as exc:
            LOG.warning('Could not look for the leftovers of interrupted '
                        'reverts: %s', exc)
            return
        for ref, rec in sorted(snaps.items()):
            if (not rec['name_label'].startswith(volumeops.REVERT_BASE)
                    or rec['VBDs'] or rec['SR'] not in self.sr_names):
                continue
            try:
                self.ops.call('VDI.destroy', ref)
            except errors.SxmError as exc:
                LOG.warning('Could not destroy VDI %s (%s): %s',
                            rec['uuid'], rec['name_label'], exc)
                continue
            LOG.warning('Destroyed VDI %s, the %s that an interrupted '
                        'revert left (SR %s)', rec['uuid'],
                        rec['name_label'], self.sr_names[rec['SR']])

    def _end_task(self, task, rec, known):
        what = '%s %s' % (rec.get('name_label'), rec.get('name_description'))
        try:
            if (rec['name_label'] == imageops.TASK_LABEL
                    and rec['status'] in volumeops.RUNNING):
                # An HTTP transfer's task: its client is dead.
                LOG.warning('Destroying XAPI task %s (%s) of a transfer '
                            'that cinder-volume did not finish',
                            rec['uuid'], what)
                self.ops.call('task.destroy', task)
                return
            rec = self.ops.end_task(task, what, timeout=CANCEL_TIMEOUT)
            if rec is not None and rec['status'] == 'success' and \
                    rec['name_label'] in MAKERS:
                self._orphan(tasks.parse_result(rec.get('result')), known,
                             what)
        except errors.SxmError as exc:
            LOG.warning('Could not end XAPI task %s (%s): %s',
                        rec.get('uuid'), what, exc)

    def _orphan(self, vdi, known, what):
        """Destroy VDI ``vdi`` that a dead task made, unless it is used."""
        try:
            rec = self.ops.call('VDI.get_record', vdi)
        except errors.HandleInvalid:
            return  # gone already
        if rec['uuid'] in known or rec['VBDs'] or \
                rec['SR'] not in self.sr_names:
            return
        self.ops.call('VDI.destroy', vdi)
        LOG.warning('Destroyed VDI %s (SR %s) that %s made for a '
                    'cinder-volume that died before recording it',
                    rec['uuid'], self.sr_names[rec['SR']], what)

    @staticmethod
    def _marker(vol):
        try:
            meta = vol.admin_metadata or {}
        except Exception:
            meta = {}
        return {k: meta[k] for k in moves.MOVE_KEYS if meta.get(k)}

    def _volume(self, vol, followed):
        marker = self._marker(vol)
        if marker.get(moves.MOVE_POOL):
            with self.driver._locked(vol.id):
                self._settle_crosspool(vol, marker)
        elif (vol.status in ('retyping', 'maintenance')
                or vol.migration_status in MIGRATING or marker):
            task = marker.get(moves.MOVE_TASK)
            if task in followed:
                thread = threading.Thread(
                    target=self._follow, args=(vol, marker, task),
                    name='sxm-follow-%s' % vol.id, daemon=True)
                self.threads.append(thread)
                thread.start()
                return
            task_rec = self._ended(task) if task else None
            with self.driver._locked(vol.id):
                self._settle_move(vol, marker, task_rec)
        elif vol.status in ('creating', 'downloading'):
            with self.driver._locked(vol.id):
                self._discard(vol)
        elif vol.status == 'extending':
            with self.driver._locked(vol.id):
                self._extend(vol)
        elif vol.status == 'uploading':
            with self.driver._locked(vol.id):
                self._uploaded(vol)
        elif vol.status not in ('deleting', 'error_deleting') and \
                vol.provider_location:
            with self.driver._locked(vol.id):
                self._relocate(vol)

    # -- moves -----------------------------------------------------------

    def _ended(self, task):
        """The record of ``task`` (ended), destroyed; None when unknown."""
        try:
            return self.ops.end_task(task, 'move task %s' % task,
                                     timeout=CANCEL_TIMEOUT)
        except errors.SxmError as exc:
            LOG.warning('Could not read XAPI task %s: %s', task, exc)
            return None

    def _follow(self, vol, marker, task):
        try:
            with self.driver._locked(vol.id):
                LOG.warning('Volume %s: the XAPI task %s of its %s, started '
                            'by a cinder-volume that is gone, still runs: '
                            'following it to its end', vol.id, task,
                            self._kind(vol))
                size = int(vol.size) * GiB
                timeout = self.driver._mover.timeout_for(size)
                rec = self.ops.end_task(task, 'move of volume %s' % vol.id,
                                        follow=True, timeout=timeout)
                self._settle_move(vol, marker, rec)
        except Exception:
            LOG.exception('Could not finish the interrupted move of volume '
                          '%s', vol.id)

    @staticmethod
    def _kind(vol):
        return 'retype' if vol.status == 'retyping' else 'migration'

    def _settle_crosspool(self, vol, marker):
        """A move to another XAPI pool that a dead service left.

        The source VDI is destroyed only once the copy is verified: while
        it exists, the copy (and whatever a killed copy left) goes and
        the volume stays; once it is gone, the copy is the volume.
        """
        kind = self._kind(vol)
        copy = marker.get(moves.MOVE_TO)
        if copy and vol.provider_location == copy:
            moves.clear_move(vol)  # finished; only the record was left
            return
        source = self.ops.find_vdi(marker.get(moves.MOVE_FROM))
        try:
            with self.driver._crosspool.remote(
                    marker[moves.MOVE_URL], marker[moves.MOVE_POOL]) as dest:
                if source is not None:
                    gone = crosspool.discard_copies(
                        dest, marker.get(moves.MOVE_FROM), copy)
                    self._restore(vol, 'the %s to XAPI pool %s did not '
                                  'complete; copies destroyed there: %s; '
                                  'the volume stays on VDI %s'
                                  % (kind, marker[moves.MOVE_POOL],
                                     ', '.join(gone) or 'none',
                                     vol.provider_location))
                    return
                found = copy and crosspool.find(dest, copy)
        except errors.SxmError as exc:
            LOG.error('Volume %s: cannot settle its interrupted %s to XAPI '
                      'pool %s (%s): left for the next start-up', vol.id,
                      kind, marker.get(moves.MOVE_POOL), exc)
            return
        if not found:
            self._lost(vol)
            LOG.error('Volume %s: its VDI %s is gone and its copy %s in '
                      'XAPI pool %s is not there: set to error', vol.id,
                      marker.get(moves.MOVE_FROM), copy,
                      marker[moves.MOVE_POOL])
            return
        old = (vol.host, vol.provider_location)
        crosspool.finish(vol, marker[moves.MOVE_HOST], copy,
                         marker.get(moves.MOVE_TYPE))
        LOG.warning('Volume %s: its %s to XAPI pool %s completed (copy '
                    'verified, source destroyed) while cinder-volume was '
                    'down. Host %s -> %s, VDI %s -> %s', vol.id, kind,
                    marker[moves.MOVE_POOL], old[0], vol.host, old[1], copy)

    def _settle_move(self, vol, marker, task_rec):
        kind = self._kind(vol)
        source = self.ops.find_vdi(vol.provider_location)
        found = dict(self.ops.volume_vdis(vol.id, vol.name,
                                          set(self.sr_names)))
        result = None
        if task_rec is not None and task_rec['status'] == 'success':
            result = tasks.parse_result(task_rec.get('result'))
            if result not in found:
                result = None
        if source is not None:
            copied = (result is not None and result != source
                      and task_rec['name_label'].endswith('VDI.copy'))
            if copied:
                move = self.driver._mover.finish_copy(
                    source, result, '%s of volume %s' % (kind, vol.id))
                self._destroy_others(vol, found, keep=result)
                self._adopt(vol, move.vdi_uuid, marker,
                            'its copy to the new SR succeeded while '
                            'cinder-volume was down; the move is finished')
                return
            self._destroy_others(vol, found, keep=source)
            self._restore(vol, 'the %s did not complete (task %s); the '
                          'volume stays on VDI %s'
                          % (kind, task_rec['status'] if task_rec
                             else 'unknown', vol.provider_location))
            return
        chosen = self._choose(found, result, marker)
        if chosen is None:
            self._lost(vol)
            LOG.error('Volume %s: no VDI holds its data any more (VDI %s is '
                      'gone and no VDI is labelled %s on the SRs of backend '
                      '%s): set to error', vol.id, vol.provider_location,
                      vol.name, self.driver.backend_name)
            return
        self._destroy_others(vol, found, keep=chosen)
        self._adopt(vol, found[chosen]['uuid'], marker,
                    'the %s completed in XAPI while cinder-volume was down'
                    % kind)

    @staticmethod
    def _lost(vol):
        """The volume's data is nowhere: error, and its move forgotten."""
        vol.update({'status': 'error'})
        if vol.migration_status in MIGRATING:
            vol.migration_status = 'error'
        vol.save()
        moves.clear_move(vol)

    def _choose(self, found, result, marker):
        if result is not None:
            return result
        if not found:
            return None
        target = self.sr_refs.get(marker.get(moves.MOVE_SR))

        def rank(item):
            ref, rec = item
            return (bool(rec['VBDs']), rec['SR'] == target)
        return max(found.items(), key=rank)[0]

    def _destroy_others(self, vol, found, keep):
        for ref, rec in found.items():
            if ref == keep:
                continue
            if self.ops.running_tasks(rec):
                LOG.warning('Volume %s: VDI %s is still being worked on by '
                            'XAPI; left', vol.id, rec['uuid'])
                continue
            try:
                if any(self.ops.call('VBD.get_currently_attached', vbd)
                       for vbd in rec['VBDs']):
                    LOG.warning('Volume %s: VDI %s labelled as it is plugged '
                                'into a VM; left', vol.id, rec['uuid'])
                    continue
                self.ops.call('VDI.destroy', ref)
            except errors.SxmError as exc:
                LOG.error('Volume %s: could not destroy VDI %s left by an '
                          'interrupted operation: %s', vol.id, rec['uuid'],
                          exc)
                continue
            LOG.warning('Volume %s: destroyed VDI %s (SR %s) left by an '
                        'interrupted operation', vol.id, rec['uuid'],
                        self.sr_names.get(rec['SR'], rec['SR']))

    def _adopt(self, vol, vdi_uuid, marker, why):
        vdi = self.ops.require_vdi(vdi_uuid, 'volume %s' % vol.id)
        pool = self.sr_names[self.ops.call('VDI.get_SR', vdi)]
        backend = volume_utils.extract_host(vol.host, 'backend')
        host = volume_utils.append_host(backend, pool)
        updates = {'provider_location': vdi_uuid, 'host': host}
        new_type = marker.get(moves.MOVE_TYPE)
        if new_type and marker.get(moves.MOVE_HOST) == host:
            updates['volume_type_id'] = new_type
        elif host != vol.host:
            type_id = self._type_for_pool(vol, pool)
            if type_id:
                updates['volume_type_id'] = type_id
        if vol.status in ('retyping', 'maintenance'):
            updates['status'] = _settled_status(vol)
        if vol.migration_status in MIGRATING:
            updates['migration_status'] = 'success'
        try:
            self.ops.label_volume(vdi, vol)
        except errors.SxmError as exc:
            LOG.warning('Could not label VDI %s of volume %s: %s', vdi_uuid,
                        vol.id, exc)
        old = (vol.host, vol.volume_type_id, vol.provider_location)
        vol.update(updates)
        vol.save()
        moves.clear_move(vol)
        LOG.warning('Volume %s: %s. Host %s -> %s, type %s -> %s, VDI %s -> '
                    '%s', vol.id, why, old[0], vol.host, old[1],
                    vol.volume_type_id, old[2], vdi_uuid)

    def _restore(self, vol, why):
        updates = {}
        if vol.status in ('retyping', 'maintenance'):
            updates['status'] = _settled_status(vol)
        if vol.migration_status in MIGRATING:
            updates['migration_status'] = 'error'
        if updates:
            vol.update(updates)
            vol.save()
        moves.clear_move(vol)
        LOG.warning('Volume %s: %s; status %s', vol.id, why, vol.status)

    def _type_for_pool(self, vol, pool):
        """The one volume type of this backend bound to ``pool``, or None.

        Kept when the volume's type names no pool (any pool will do).
        """
        ctxt = cinder_context.get_admin_context()
        backend = self.driver.backend_name

        def binds(specs):
            return (specs.get('volume_backend_name') in (None, backend)
                    and specs.get('pool_name'))
        current = objects.VolumeType.get_by_id(ctxt, vol.volume_type_id)
        specs = current.extra_specs or {}
        if not binds(specs) or specs.get('pool_name') == pool:
            return None
        fits = [t.id for t in objects.VolumeTypeList.get_all(ctxt)
                if binds(t.extra_specs or {})
                and (t.extra_specs or {}).get('pool_name') == pool]
        if len(fits) == 1:
            return fits[0]
        LOG.warning('Volume %s is now in pool %s, but %s volume types are '
                    'bound to that pool: its type is left as it is', vol.id,
                    pool, len(fits) or 'no')
        return None

    # -- other interrupted operations --------------------------------------

    def _discard(self, vol):
        status = vol.status
        gone = self.ops.destroy_volume(
            vol.id, vol.name, vol.provider_location, set(self.sr_names),
            'volume %s' % vol.id)
        vol.update({'provider_location': None, 'status': 'error'})
        vol.save()
        LOG.warning('Volume %s was %s when cinder-volume stopped: VDI(s) %s '
                    'made for it destroyed; status error',
                    vol.id, status, ', '.join(gone) or 'none')

    def _extend(self, vol):
        vdi = self.driver._find_vdi(vol)
        updates = {'status': _settled_status(vol)}
        if vdi is not None:
            size = math.ceil(int(self.ops.call('VDI.get_virtual_size', vdi))
                             / GiB)
            if size > vol.size:
                updates['size'] = size
        vol.update(updates)
        vol.save()
        LOG.warning('Volume %s was extending when cinder-volume stopped: '
                    'its VDI has %s GiB; status %s', vol.id, vol.size,
                    vol.status)

    def _uploaded(self, vol):
        # Cinder resets 'uploading' only for an upload that had reached
        # this service (a workers row); one cut short before keeps it.
        vol.update({'status': _settled_status(vol)})
        vol.save()
        LOG.warning('Volume %s was uploading to an image when cinder-volume '
                    'stopped: status %s again (the upload did not finish: '
                    'delete its image if Glance still lists it)', vol.id,
                    vol.status)
        if vol.provider_location:
            self._relocate(vol)

    def _relocate(self, vol):
        if self.ops.find_vdi(vol.provider_location) is not None:
            return
        found = dict(self.ops.volume_vdis(vol.id, vol.name,
                                          set(self.sr_names)))
        chosen = self._choose(found, None, {})
        if chosen is None:
            LOG.error('Volume %s (status %s): its VDI %s is gone and no VDI '
                      'is labelled %s on the SRs of backend %s', vol.id,
                      vol.status, vol.provider_location, vol.name,
                      self.driver.backend_name)
            return
        self._adopt(vol, found[chosen]['uuid'], {},
                    'its VDI %s is gone; its data is in VDI %s'
                    % (vol.provider_location, found[chosen]['uuid']))
