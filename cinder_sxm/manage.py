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


"""Existing VDIs adopted as Cinder volumes and snapshots, and given back.

``openstack volume manage`` names a VDI by ``source-id`` (its uuid) or
``source-name`` (its name label). An adopted VDI gets what the driver finds
a volume by (volumeops): the volume's name label and its id in
``other_config``; its former name label is kept in ``other_config``
(``FORMER_NAME_KEY``) and given back by unmanage, which leaves the VDI
and its bytes where they are. A VDI whose virtual size is not a whole GiB
grows to the next GiB (what Cinder counts); its bytes are kept.

A VDI is refused, with the reason, when Cinder could not own it: not on
one of the backend's SRs (or on another pool than the one asked for),
plugged into or known to a VM (a VBD: Cinder would hand it to a second
guest), a snapshot (manage it as a snapshot), a base copy or otherwise
hidden (``managed`` false), not a user disk, read-only, busy with a task,
or already Cinder's. A snapshot VDI must be a snapshot of the volume's
VDI (``snapshot_of``).
"""

from cinder import exception
from oslo_log import log as logging

from cinder_sxm import volumeops
from sxm_core import errors
from sxm_core import volumes

LOG = logging.getLogger(__name__)
GiB = volumeops.GiB
# other_config key keeping an adopted VDI's name label for unmanage.
FORMER_NAME_KEY = 'cinder_former_name_label'
REF_KEYS = ('source-id', 'source-name')


def size_gb(rec):
    """The VDI's virtual size in whole GiB, rounded up."""
    return -(-int(rec['virtual_size']) // GiB)


def _vm_names(ops, rec):
    names = []
    for vbd in rec['VBDs']:
        vm = ops.call_or_none('VBD.get_VM', vbd)
        if vm is None:
            continue
        vm_rec = ops.call_or_none('VM.get_record', vm)
        if vm_rec is not None:
            names.append('%s (%s)' % (vm_rec['name_label'], vm_rec['uuid']))
    return names


def common_refusal(rec, keys, known):
    """Why no Cinder object may own the VDI ``rec``, or None.

    ``known(key, object_id)`` tells whether the Cinder object that the
    other_config ``key`` names exists: a mark left by a Cinder object
    that is gone (or copied by XAPI into a VDI made by hand from a
    volume's) does not stand in the way.
    """
    other = rec.get('other_config') or {}
    for key in keys:
        owner = other.get(key)
        if owner and known(key, owner):
            return 'it is managed by Cinder already (as %s)' % owner
    if not rec.get('managed', True):
        return ('XAPI does not manage it (managed=false: a base copy of a '
                'snapshot chain or a hidden VDI)')
    if rec['type'].lower() != 'user':
        return 'it is not a user disk (type %s)' % rec['type']
    if rec.get('read_only'):
        return 'it is read-only'
    if rec.get('current_operations'):
        return 'XAPI is working on it (%s)' % ', '.join(
            sorted(set(rec['current_operations'].values())))
    return None


class Adopter(object):
    """Manage / unmanage through one VolumeOps.

    ``srs()`` returns {pool name: SR record with 'ref'} of the backend
    (read once: an Adopter serves one request); ``known`` is
    common_refusal's.
    """

    def __init__(self, ops, srs, known, lock_path=None):
        self.ops = ops
        self._read_srs = srs
        self._srs = None
        self.known = known
        self.lock_path = lock_path

    def srs(self):
        # Once per request: a listing asks for every VDI of the SRs.
        if self._srs is None:
            self._srs = self._read_srs()
        return self._srs

    # -- finding -------------------------------------------------------------

    @staticmethod
    def _invalid(existing_ref, reason):
        return exception.ManageExistingInvalidReference(
            existing_ref=existing_ref, reason=reason)

    def _key(self, existing_ref):
        if not isinstance(existing_ref, dict):
            raise self._invalid(existing_ref, 'give source-id (a VDI uuid) '
                                'or source-name (a VDI name label)')
        given = [k for k in REF_KEYS if existing_ref.get(k)]
        if len(given) != 1:
            raise self._invalid(
                existing_ref, 'give exactly one of source-id (a VDI uuid) '
                'or source-name (a VDI name label)')
        return given[0], str(existing_ref[given[0]])

    def _record(self, ref):
        rec = self.ops.call_or_none('VDI.get_record', ref)
        return None if rec is None else dict(rec, ref=ref)

    def _find(self, existing_ref, wanted):
        """The VDI record (with 'ref') ``existing_ref`` names.

        ``wanted(rec)`` tells the VDIs a name label may mean apart from
        others of the same name (a volume's snapshots carry its name).
        """
        key, value = self._key(existing_ref)
        if key == 'source-id':
            ref = self.ops.find_vdi(value)
            rec = ref and self._record(ref)
            if rec is None:
                raise self._invalid(existing_ref, 'no VDI has uuid %s in '
                                    'the XAPI pool at %s'
                                    % (value, self.ops.pool.url))
            return rec
        found = [r for r in (self._record(ref) for ref in self.ops.call(
            'VDI.get_by_name_label', value)) if r is not None]
        if not found:
            raise self._invalid(existing_ref, 'no VDI is named %r in the '
                                'XAPI pool at %s'
                                % (value, self.ops.pool.url))
        fitting = [r for r in found if wanted(r)]
        if len(fitting) > 1:
            raise self._invalid(
                existing_ref, '%d VDIs are named %r (%s): give source-id '
                '(the VDI uuid) instead' % (
                    len(fitting), value,
                    ', '.join(sorted(r['uuid'] for r in fitting))))
        if fitting:
            return fitting[0]
        if len(found) == 1:
            return found[0]  # its refusal names the problem
        raise self._invalid(existing_ref, 'none of the %d VDIs named %r '
                            'can be managed here (%s): give source-id to '
                            'learn why' % (len(found), value, ', '.join(
                                sorted(r['uuid'] for r in found))))

    def _pool_of(self, rec):
        """(pool name, SR record) of the backend pool holding ``rec``."""
        for name, sr in self.srs().items():
            if sr['ref'] == rec['SR']:
                return name, sr
        return None, None

    # -- volumes -------------------------------------------------------------

    def _volume_refusal(self, rec, pool):
        name, _ = self._pool_of(rec)
        if name is None:
            sr = self.ops.call_or_none('SR.get_record', rec['SR'])
            return ('it is on SR %s, which is not one of this backend\'s '
                    'pools (%s)' % (
                        '%s (%s)' % (sr['name_label'], sr['uuid'])
                        if sr else rec['SR'], ', '.join(sorted(self.srs()))))
        if pool is not None and name != pool:
            return ('it is on pool %s, not on pool %s that the request '
                    'names: manage it with host ...#%s' % (name, pool, name))
        if rec.get('is_a_snapshot'):
            return ('it is a snapshot: manage it as a snapshot of the '
                    'volume of its VDI')
        reason = common_refusal(rec, (volumeops.VOLUME_KEY,
                                      volumeops.SNAPSHOT_KEY), self.known)
        if reason:
            return reason
        if rec['VBDs']:
            return ('a VM that Cinder does not know has it: %s; destroy '
                    'the VBD(s) first' % (', '.join(
                        _vm_names(self.ops, rec)) or rec['VBDs']))
        return None

    def volume_vdi(self, existing_ref, pool):
        """The record of the VDI to adopt on pool ``pool`` (None: any)."""
        rec = self._find(existing_ref, lambda r: (
            not r.get('is_a_snapshot') and r.get('managed', True)
            and self._pool_of(r)[0] is not None))
        self._refuse(existing_ref, rec, self._volume_refusal(rec, pool))
        return rec

    def _refuse(self, existing_ref, rec, reason):
        """ManageExistingInvalidReference naming the VDI, if ``reason``."""
        if reason:
            raise self._invalid(existing_ref, 'VDI %s: %s'
                                % (rec['uuid'], reason))

    def manage_volume(self, volume, existing_ref, pool):
        """Adopt the VDI for ``volume``; returns (its uuid, its pool)."""
        uuid = self.volume_vdi(existing_ref, pool)['uuid']
        # Two requests for one VDI: the second sees the first's mark.
        with volumes.volume_lock(uuid, self.lock_path):
            rec = self.volume_vdi({'source-id': uuid}, pool)
            self._mark(rec, volume.name, volumeops.VOLUME_KEY, volume.id)
            size = size_gb(rec) * GiB
            if int(rec['virtual_size']) < size:
                try:
                    self.ops.resize(rec['ref'], size_gb(rec), volume.name)
                except errors.SxmError:
                    self._unmark(rec['ref'], volumeops.VOLUME_KEY)
                    raise
                LOG.info('VDI %s of volume %s grew from %s bytes to %d '
                         'GiB, the size Cinder counts', uuid, volume.id,
                         rec['virtual_size'], size_gb(rec))
        LOG.info('Volume %s manages VDI %s (formerly named %r)', volume.id,
                 uuid, rec['name_label'])
        return uuid, self._pool_of(rec)[0]

    # -- snapshots -----------------------------------------------------------

    def snapshot_vdi(self, existing_ref, volume_vdi):
        """The record of the snapshot VDI of VDI ``volume_vdi`` to adopt."""
        rec = self._find(existing_ref, lambda r: (
            r.get('is_a_snapshot') and r.get('snapshot_of') == volume_vdi))
        reason = None
        if not rec.get('is_a_snapshot'):
            reason = 'it is not a snapshot'
        elif rec.get('snapshot_of') != volume_vdi:
            reason = ('it is not a snapshot of the volume\'s VDI %s' %
                      self.ops.call('VDI.get_uuid', volume_vdi))
        else:
            reason = common_refusal(dict(rec, read_only=False),
                                    (volumeops.SNAPSHOT_KEY,), self.known)
        self._refuse(existing_ref, rec, reason)
        return rec

    def manage_snapshot(self, snapshot, existing_ref, volume_vdi):
        uuid = self.snapshot_vdi(existing_ref, volume_vdi)['uuid']
        with volumes.volume_lock(uuid, self.lock_path):
            rec = self.snapshot_vdi({'source-id': uuid}, volume_vdi)
            self._mark(rec, snapshot.name, volumeops.SNAPSHOT_KEY,
                       snapshot.id)
        LOG.info('Snapshot %s manages VDI %s (formerly named %r)',
                 snapshot.id, uuid, rec['name_label'])
        return uuid

    # -- marks ---------------------------------------------------------------

    def _mark(self, rec, name, key, object_id):
        other = dict(rec.get('other_config') or {})
        # A snapshot carries its volume's mark (XAPI copies other_config).
        other.pop(volumeops.VOLUME_KEY, None)
        other[FORMER_NAME_KEY] = rec['name_label']
        other[key] = object_id
        self.ops.call('VDI.set_other_config', rec['ref'], other)
        self.ops.call('VDI.set_name_label', rec['ref'], name)

    def _unmark(self, vdi, key):
        """Remove Cinder's marks; the former name label comes back."""
        other = dict(self.ops.call('VDI.get_other_config', vdi))
        former = other.pop(FORMER_NAME_KEY, None)
        other.pop(key, None)
        if former is not None:
            self.ops.call('VDI.set_name_label', vdi, former)
        self.ops.call('VDI.set_other_config', vdi, other)
        return former

    def unmanage(self, vdi, key, what):
        """Give the VDI back to XAPI alone: it stays, with its bytes."""
        if vdi is None:
            LOG.warning('%s has no VDI any more: nothing to unmanage', what)
            return
        former = self._unmark(vdi, key)
        LOG.info('%s is no longer managed; its VDI %s stays%s', what,
                 self.ops.call('VDI.get_uuid', vdi),
                 ' (named %r again)' % former if former is not None else '')

    # -- listing -------------------------------------------------------------

    def _vdis(self):
        """[(pool name, VDI record with 'ref')] of the backend's SRs."""
        pools = {sr['ref']: name for name, sr in self.srs().items()}
        if not pools:
            return []
        found = self.ops.call('VDI.get_all_records_where', ' or '.join(
            'field "SR" = "%s"' % ref for ref in sorted(pools)))
        return sorted(((pools[rec['SR']], dict(rec, ref=ref))
                       for ref, rec in found.items() if rec['SR'] in pools),
                      key=lambda item: item[1]['uuid'])

    def manageable_volumes(self, cinder_volumes):
        """Cinder's manageable-volume entries for the backend's SRs."""
        by_vdi = {v.provider_location: v.id for v in cinder_volumes}
        out = []
        for pool, rec in self._vdis():
            if rec.get('is_a_snapshot'):
                continue
            reason = self._volume_refusal(rec, None)
            out.append({
                'reference': {'source-id': rec['uuid']},
                'size': size_gb(rec),
                'safe_to_manage': reason is None,
                'reason_not_safe': reason,
                'cinder_id': by_vdi.get(rec['uuid']) or (
                    rec.get('other_config') or {}).get(volumeops.VOLUME_KEY),
                'extra_info': {'pool': pool,
                               'name_label': rec['name_label']},
            })
        return out

    def manageable_snapshots(self, cinder_snapshots):
        """Cinder's manageable-snapshot entries for the backend's SRs."""
        by_vdi = {s.provider_location: s.id for s in cinder_snapshots}
        out = []
        for pool, rec in self._vdis():
            if not rec.get('is_a_snapshot'):
                continue
            parent = self.ops.call_or_none('VDI.get_uuid', rec['snapshot_of'])
            reason = common_refusal(dict(rec, read_only=False),
                                    (volumeops.SNAPSHOT_KEY,), self.known)
            if parent is None:
                reason = reason or 'the VDI it is a snapshot of is gone'
            out.append({
                'reference': {'source-id': rec['uuid']},
                'size': size_gb(rec),
                'safe_to_manage': reason is None,
                'reason_not_safe': reason,
                'cinder_id': by_vdi.get(rec['uuid']) or (
                    rec.get('other_config') or {}).get(
                        volumeops.SNAPSHOT_KEY),
                'source_reference': {'source-id': parent},
                'extra_info': {'pool': pool,
                               'name_label': rec['name_label']},
            })
        return out
