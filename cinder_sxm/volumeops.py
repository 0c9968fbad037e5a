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


"""Volumes as VDIs: the XAPI calls behind the driver.

A volume's ``provider_location`` is its VDI's uuid, alone: VDI uuids are
unique in an XAPI pool and the SR follows from the VDI record, so nothing
stale can be stored. A snapshot's ``provider_location`` is the uuid of its
snapshot VDI. The VDI uuid changes when the volume moves to another SR
(retype, migrate_volume), and the new one is returned as a model update.

A volume's VDI is also found by a stable identity, which survives moves
and the death of the process that moved it: its name label (``volume.name``)
is carried by both VDI.copy and VDI.pool_migrate (xapi creates the mirror
target from the source's vdi_info: name, description, tags), and by the
target of a move still running. VDI.copy also copies ``other_config``;
VDI.pool_migrate does not (xapi syncs only ``config-drive``), so the
``cinder_volume_id`` key is a check, not the key of the search.

Every XAPI task the driver starts is tagged in its ``other_config`` with
the core's owner tag naming the cinder-volume backend (``OWNER_KEY``, see
sxm_core.tasks): a successor of a dead service finds the tasks it left
behind, follows or cancels them, and destroys them.
"""

from oslo_log import log as logging

from cinder_sxm import stats
from sxm_core import constants
from sxm_core import errors
from sxm_core import tasks
from sxm_core import volumes

LOG = logging.getLogger(__name__)
# Name label of the snapshot a revert copies against (gone after it).
REVERT_BASE = 'revert base of '
GiB = 1 << 30
# VDI other_config key naming the Cinder object a VDI belongs to.
VOLUME_KEY = 'cinder_volume_id'
SNAPSHOT_KEY = 'cinder_snapshot_id'
# The tasks of a cinder-volume carry the core's owner tag (sxm_core.tasks:
# other_config 'sxm_owner' = 'cinder-volume/<host@backend>').
OWNER_KEY = tasks.OWNER_KEY
SERVICE = 'cinder-volume'
RUNNING = (constants.TASK_PENDING, constants.TASK_CANCELLING)


def owned_pool(pool, host):
    """``pool`` tagging each task it starts as this backend's (``host``)."""
    return volumes.TaskPool(pool, owner=tasks.owner_tag(SERVICE, host))


class VolumeOps(object):
    """VDI operations through one SessionPool."""

    def __init__(self, pool):
        self.pool = pool

    def call(self, method, *args):
        return self.pool.call(method, *args)

    # -- lookups -------------------------------------------------------------

    def pool_uuid(self):
        pools = self.call('pool.get_all')
        return self.call('pool.get_uuid', pools[0])

    def resolve_sr(self, key):
        """The ref of SR ``key`` (uuid or name label), exactly one."""
        try:
            return self.call('SR.get_by_uuid', key)
        except errors.UuidInvalid:
            pass  # not a uuid of this pool: try the name
        found = self.call('SR.get_by_name_label', key)
        if not found:
            raise errors.NotFound(kind='SR', name=key, pool=self.pool.url)
        if len(found) > 1:
            raise errors.Ambiguous(count=len(found), kind='SR', name=key,
                                   pool=self.pool.url)
        return found[0]

    def sr_record(self, sr):
        return self.call('SR.get_record', sr)

    def device_config(self, sr_rec):
        """device_config of one of the SR's PBDs ({} if none)."""
        for pbd in sr_rec.get('PBDs', []):
            try:
                return self.call('PBD.get_device_config', pbd)
            except errors.XapiFailure as exc:
                if not errors.missing(exc):
                    raise
        return {}

    def call_or_none(self, method, *args):
        """``method``'s answer, or None when the object it names is gone."""
        try:
            return self.call(method, *args)
        except errors.XapiFailure as exc:
            if errors.missing(exc):
                return None
            raise

    def find_vdi(self, vdi_uuid):
        """The VDI ref, or None when no such VDI exists."""
        if not vdi_uuid:
            return None
        return self.call_or_none('VDI.get_by_uuid', vdi_uuid)

    def volume_vdis(self, volume_id, name, srs):
        """[(ref, record)] of the VDIs holding volume ``volume_id``.

        Found by name label ``name`` on the SRs ``srs`` (refs), not
        snapshots, not another Cinder object's: the volume's VDI wherever
        a move left it, and the targets of interrupted moves and copies.
        """
        out = []
        for ref in self.call('VDI.get_by_name_label', name):
            rec = self.call_or_none('VDI.get_record', ref)
            if rec is None:
                continue  # destroyed meanwhile
            other = rec.get('other_config') or {}
            if (rec['SR'] not in srs or rec.get('is_a_snapshot')
                    or SNAPSHOT_KEY in other
                    or other.get(VOLUME_KEY, volume_id) != volume_id):
                continue
            out.append((ref, rec))
        return out

    def running_tasks(self, rec):
        """The refs of the tasks still working on a VDI (its record)."""
        out = []
        for task in (rec.get('current_operations') or {}):
            try:
                if self.call('task.get_status', task) in RUNNING:
                    out.append(task)
            except errors.XapiFailure as exc:
                if not errors.missing(exc):
                    raise
        return out

    def end_task(self, task, what, follow=False, timeout=None):
        """Wait for (or cancel, then wait for) ``task``; destroy it.

        Returns the task's record as it ended, or None when it is gone.
        A task that does not end within ``timeout`` is left to XAPI.
        """
        rec = self.call_or_none('task.get_record', task)
        if rec is None:
            return None
        if rec['status'] in RUNNING:
            if not follow and 'cancel' in (rec.get('allowed_operations')
                                           or []):
                LOG.warning('Cancelling XAPI task %s (%s) of a cinder-volume '
                            'that is gone', rec['uuid'], what)
                try:
                    self.call('task.cancel', task)
                except errors.XapiFailure as exc:
                    LOG.warning('Could not cancel task %s (%s): %s',
                                rec['uuid'], what, exc)
            try:
                tasks.wait_task(self.pool, task, what,
                                watch=tasks.Watch(timeout=timeout))
            except errors.XapiFailure:
                pass  # the record says how it ended
            except (errors.TaskTimeout, errors.TaskStalled,
                    errors.ContactLost) as exc:
                LOG.error('XAPI task %s (%s) did not end: %s', rec['uuid'],
                          what, exc)
                return rec
            rec = self.call_or_none('task.get_record', task)
            if rec is None:
                return None
        if rec['status'] not in RUNNING:
            try:
                self.call('task.destroy', task)
            except errors.XapiFailure as exc:
                if not errors.missing(exc):
                    LOG.warning('Could not destroy task %s (%s): %s',
                                rec['uuid'], what, exc)
        return rec

    def require_vdi(self, vdi_uuid, what):
        vdi = self.find_vdi(vdi_uuid)
        if vdi is None:
            raise errors.NotFound(kind='VDI', name='%s of %s' % (vdi_uuid,
                                                                 what),
                                  pool=self.pool.url)
        return vdi

    # -- lifecycle -----------------------------------------------------------

    def _label(self, vdi, name, description, key, object_id):
        self.call('VDI.set_name_label', vdi, name)
        self.call('VDI.set_name_description', vdi, description or '')
        other = dict(self.call('VDI.get_other_config', vdi))
        other.pop(VOLUME_KEY, None)
        other.pop(SNAPSHOT_KEY, None)
        other[key] = object_id
        self.call('VDI.set_other_config', vdi, other)

    def label_volume(self, vdi, volume):
        self._label(vdi, volume.name, volume.display_description,
                    VOLUME_KEY, volume.id)

    @staticmethod
    def _new_record(sr, size, volume):
        return {
            'SR': sr, 'virtual_size': str(int(size)),
            # Several VMs may plug it only if sharable (multiattach).
            'type': 'user', 'sharable': bool(volume.multiattach),
            'read_only': False,
            'name_label': volume.name,
            'name_description': volume.display_description or '',
            'other_config': {VOLUME_KEY: volume.id}, 'xenstore_data': {},
            'sm_config': {}, 'tags': []}

    def create(self, sr, size_gb, volume):
        vdi = self.call('VDI.create', self._new_record(
            sr, int(size_gb) * GiB, volume))
        return self.call('VDI.get_uuid', vdi)

    def destroy(self, vdi_uuid, what):
        """Destroy a VDI; one that is already gone is fine."""
        vdi = self.find_vdi(vdi_uuid)
        if vdi is None:
            LOG.info('VDI %s of %s is gone already', vdi_uuid, what)
            return
        try:
            self.call('VDI.destroy', vdi)
        except errors.XapiFailure as exc:
            if not errors.missing(exc):
                raise

    def destroy_volume(self, volume_id, name, vdi_uuid, srs, what):
        """Destroy every VDI holding volume ``volume_id``.

        The one ``vdi_uuid`` names (provider_location, possibly stale) and
        those of its identity (``volume_vdis``): the volume's data wherever
        a move put it, and what interrupted moves or copies left. Tasks
        still working on them are cancelled first (their owner is gone:
        the caller holds the volume's lock). Raises XapiFailure
        ``VDI_IN_USE`` when one is plugged in; nothing found is fine.
        Returns the uuids destroyed.
        """
        found = dict(self.volume_vdis(volume_id, name, srs))
        named = self.find_vdi(vdi_uuid)
        if named is not None and named not in found:
            found[named] = self.call('VDI.get_record', named)
        for ref, rec in found.items():
            for vbd in rec['VBDs']:
                try:
                    attached = self.call('VBD.get_currently_attached', vbd)
                except errors.XapiFailure as exc:
                    if errors.missing(exc):
                        continue
                    raise
                if attached:
                    raise errors.XapiFailure.from_details(
                        ['VDI_IN_USE', ref, 'destroy'], call='VDI.destroy')
        for ref, rec in found.items():
            for task in self.running_tasks(rec):
                self.end_task(task, 'a task on VDI %s of %s'
                              % (rec['uuid'], what))
        gone = []
        for ref, rec in found.items():
            try:
                self.call('VDI.destroy', ref)
            except errors.XapiFailure as exc:
                if not errors.missing(exc):
                    raise
            gone.append(rec['uuid'])
            if rec['uuid'] != vdi_uuid:
                # The data a move put elsewhere, or a move's leftover.
                LOG.warning('Destroyed VDI %s of %s, found by its name '
                            'label %s (provider_location names VDI %s)',
                            rec['uuid'], what, name, vdi_uuid)
        if not found:
            LOG.info('No VDI holds %s (VDI %s is gone already)', what,
                     vdi_uuid)
        return gone

    def resize(self, vdi, size_gb, what):
        size = int(size_gb) * GiB
        if int(self.call('VDI.get_virtual_size', vdi)) < size:
            tasks.call_async(self.pool, 'VDI.resize', (vdi, str(size)),
                             'resize of %s' % what)

    def extend(self, vdi, size_gb, what, attached, sm_features):
        """Grow a volume's VDI to ``size_gb``, plugged into a VM or not.

        A VDI a running VM has plugged grows with VDI.resize_online, only
        where the SR's SM offers VDI_RESIZE_ONLINE (``sm_features(sr
        type)``); else VDI.resize. ``attached``: Cinder has the volume
        attached; with no VBD in this pool, it is another pool's VM's,
        which this pool cannot pause for a resize: refused.
        """
        size = int(size_gb) * GiB
        rec = self.call('VDI.get_record', vdi)
        if int(rec['virtual_size']) >= size:
            return
        plugged = [v for v in rec['VBDs']
                   if self.call('VBD.get_currently_attached', v)]
        sr_rec = self.call('SR.get_record', rec['SR'])
        if not plugged:
            if attached and not rec['VBDs']:
                raise errors.SxmError(
                    'VDI %s is attached to a server of another XAPI pool '
                    '(no VBD in the pool of SR %s), which cannot resize '
                    'it under that server: detach the volume, extend it, '
                    'attach it again'
                    % (rec['uuid'], sr_rec['name_label']))
            self.resize(vdi, size_gb, what)
            return
        if stats.ONLINE_RESIZE not in sm_features(sr_rec['type']):
            raise errors.SxmError(
                'VDI %s is plugged into a running VM and SR %s (type %s) '
                'cannot resize a plugged VDI (its SM does not offer %s): '
                'detach the volume or stop the server, then extend it'
                % (rec['uuid'], sr_rec['name_label'], sr_rec['type'],
                   stats.ONLINE_RESIZE))
        LOG.info('Resizing VDI %s of %s online to %d GiB', rec['uuid'],
                 what, size_gb)
        tasks.call_async(self.pool, 'VDI.resize_online', (vdi, str(size)),
                         'online resize of %s' % what)

    def revert(self, vdi, snap, what):
        """Make VDI ``vdi``'s bytes those of snapshot VDI ``snap``.

        In place (the VDI keeps its uuid, its attachments' records and its
        other snapshots): VDI.copy into ``vdi``, with a snapshot of its
        present state as the base, so that only the blocks that differ
        are written, those written since the snapshot included (a copy
        without a base is meant for an empty VDI and would leave them).
        XAPI refuses it (VDI_IN_USE) while a guest has ``vdi`` plugged.
        """
        sr = self.call('VDI.get_SR', vdi)
        now = tasks.call_async(self.pool, 'VDI.snapshot', (vdi, {}),
                               'snapshot of %s before its revert' % what)
        try:
            # Never mistaken for the volume's or a Cinder snapshot's VDI
            # if this service dies before it is gone.
            self.call('VDI.set_name_label', now, REVERT_BASE + what)
            self.call('VDI.set_other_config', now, {})
            tasks.call_async(self.pool, 'VDI.copy',
                             (snap, sr, now, vdi), 'revert of %s' % what)
        finally:
            self._destroy_quietly(now, 'the revert of %s' % what)

    def snapshot(self, vdi_uuid, snapshot):
        vdi = self.require_vdi(vdi_uuid, snapshot.volume_id)
        snap = tasks.call_async(self.pool, 'VDI.snapshot', (vdi, {}),
                                'snapshot %s' % snapshot.id)
        self._label(snap, snapshot.name, snapshot.display_description,
                    SNAPSHOT_KEY, snapshot.id)
        return self.call('VDI.get_uuid', snap)

    def clone_or_copy(self, src_uuid, sr, size_gb, volume, what):
        """A new VDI for ``volume`` from VDI ``src_uuid`` on SR ``sr``.

        VDI.clone when the source is on ``sr`` (thin, instant), VDI.copy to
        another SR; then resized to ``size_gb`` if that is larger.
        """
        src = self.require_vdi(src_uuid, what)
        if self.call('VDI.get_SR', src) == sr:
            new = tasks.call_async(self.pool, 'VDI.clone', (src, {}),
                                   'clone of %s' % what)
        else:
            # Into a VDI labelled as the new volume from the start: if
            # this service dies mid-copy, the target is found as its VDI,
            # never mistaken for the source volume's.
            size = max(int(size_gb) * GiB,
                       int(self.call('VDI.get_virtual_size', src)))
            new = self.call('VDI.create', self._new_record(
                sr, size, volume))
            try:
                tasks.call_async(self.pool, 'VDI.copy',
                                 (src, sr, constants.OPAQUE_NULL, new),
                                 'copy of %s' % what)
            except errors.SxmError:
                self._destroy_quietly(new, volume.name)
                raise
        try:
            self.label_volume(new, volume)
            if bool(volume.multiattach) != bool(
                    self.call('VDI.get_sharable', new)):
                self.call('VDI.set_sharable', new, bool(volume.multiattach))
            self.resize(new, size_gb, volume.name)
        except errors.SxmError:
            self._destroy_quietly(new, volume.name)  # no orphan VDI
            raise
        return self.call('VDI.get_uuid', new)

    def _destroy_quietly(self, vdi, what):
        try:
            self.call('VDI.destroy', vdi)
        except errors.SxmError as exc:
            LOG.error('Could not remove VDI %s of %s after a failure: %s',
                      vdi, what, exc)

    # -- attachments ---------------------------------------------------------

    def vbds(self, vdi):
        return self.call('VDI.get_VBDs', vdi)

    def force_detach(self, vdi_uuid, what):
        """Unplug and destroy every VBD of the VDI (Cinder force-detach)."""
        vdi = self.find_vdi(vdi_uuid)
        if vdi is None:
            return
        undo = errors.ErrorCollector()
        for vbd in self.vbds(vdi):
            with undo.context('detaching VBD %s of %s', vbd, what):
                if self.call('VBD.get_currently_attached', vbd):
                    self.call('VBD.unplug_force', vbd)
                self.call('VBD.destroy', vbd)
        undo.raise_if_any()
