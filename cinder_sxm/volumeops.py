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
"""

from oslo_log import log as logging

from sxm_core import errors
from sxm_core import tasks

LOG = logging.getLogger(__name__)
GiB = 1 << 30
# VDI other_config key naming the Cinder object a VDI belongs to.
VOLUME_KEY = 'cinder_volume_id'
SNAPSHOT_KEY = 'cinder_snapshot_id'


def _missing(exc):
    return exc.code in ('UUID_INVALID', 'HANDLE_INVALID')


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
        except errors.XapiFailure as exc:
            if exc.code != 'UUID_INVALID':
                raise
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
                if not _missing(exc):
                    raise
        return {}

    def find_vdi(self, vdi_uuid):
        """The VDI ref, or None when no such VDI exists."""
        if not vdi_uuid:
            return None
        try:
            return self.call('VDI.get_by_uuid', vdi_uuid)
        except errors.XapiFailure as exc:
            if _missing(exc):
                return None
            raise

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

    def create(self, sr, size_gb, volume):
        vdi = self.call('VDI.create', {
            'SR': sr, 'virtual_size': str(int(size_gb) * GiB),
            'type': 'user', 'sharable': False, 'read_only': False,
            'name_label': volume.name,
            'name_description': volume.display_description or '',
            'other_config': {VOLUME_KEY: volume.id}, 'xenstore_data': {},
            'sm_config': {}, 'tags': []})
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
            if not _missing(exc):
                raise

    def resize(self, vdi, size_gb, what):
        size = int(size_gb) * GiB
        if int(self.call('VDI.get_virtual_size', vdi)) < size:
            tasks.call_async(self.pool, 'VDI.resize', (vdi, str(size)),
                             'resize of %s' % what)

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
            new = tasks.call_async(self.pool, 'VDI.copy', (src, sr),
                                   'copy of %s' % what)
        try:
            self.label_volume(new, volume)
            self.resize(new, size_gb, volume.name)
        except errors.SxmError:
            self.call('VDI.destroy', new)  # no orphan VDI
            raise
        return self.call('VDI.get_uuid', new)

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
