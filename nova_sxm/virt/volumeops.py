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

"""Cinder volumes as VDIs of an SR the pool already knows.

``connection_info``::

    {'driver_volume_type': 'xensm',
     'data': {'sr_uuid': '<SR uuid>', 'vdi_uuid': '<VDI uuid>',
              'volume_id': '<cinder volume id>'}}

The VBD carries ``other_config['nova_volume_id']``. A volume's VBD is found
by its device and that key, never by VDI uuid: Cinder's live retype moves
the VDI to another SR, which gives it a new uuid.
"""

from nova import exception
from oslo_log import log as logging
from sxm_core import constants
from sxm_core import errors

LOG = logging.getLogger(__name__)
DRIVER_TYPE = 'xensm'
VOLUME_KEY = 'nova_volume_id'
NULL = constants.OPAQUE_NULL


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


def _volume_id(connection_info):
    return (connection_info.get('serial')
            or connection_info.get('data', {}).get('volume_id') or '')


class VolumeOps(object):

    def __init__(self, conn):
        self._conn = conn

    def _vdi(self, data):
        call = self._conn.call
        try:
            return call('VDI.get_by_uuid', data['vdi_uuid'])
        except errors.XapiFailure:
            pass
        # A VDI created through another host or pool: rescan its SR.
        try:
            sr = call('SR.get_by_uuid', data['sr_uuid'])
            call('SR.scan', sr)
            return call('VDI.get_by_uuid', data['vdi_uuid'])
        except errors.XapiFailure as exc:
            raise exception.VolumeNotFound(
                volume_id='%s (VDI %s on SR %s: %s)' % (
                    data.get('volume_id', ''), data.get('vdi_uuid'),
                    data.get('sr_uuid'), exc))

    def attach(self, vm_ref, instance, connection_info, mountpoint,
               running):
        kind = connection_info.get('driver_volume_type')
        if kind != DRIVER_TYPE:
            raise exception.VolumeDriverNotFound(driver_type=kind)
        data = connection_info['data']
        vdi = self._vdi(data)
        vbd = self._conn.call('VBD.create', {
            'VM': vm_ref, 'VDI': vdi, 'userdevice': userdevice(mountpoint),
            'bootable': False, 'mode': 'RW', 'type': 'Disk',
            'empty': False, 'unpluggable': True,
            'other_config': {VOLUME_KEY: _volume_id(connection_info)},
            'qos_algorithm_type': '', 'qos_algorithm_params': {}})
        if running:
            try:
                self._conn.call('VBD.plug', vbd)
            except errors.XapiFailure:
                self._conn.call('VBD.destroy', vbd)
                raise
        LOG.info('Attached volume %s at %s', _volume_id(connection_info),
                 mountpoint, instance=instance)

    def find_vbd(self, vm_ref, connection_info, mountpoint):
        want_dev = userdevice(mountpoint)
        want_id = _volume_id(connection_info)
        for vbd in self._conn.call('VM.get_VBDs', vm_ref):
            rec = self._conn.call('VBD.get_record', vbd)
            if (rec['userdevice'] == want_dev
                    and rec['other_config'].get(VOLUME_KEY) == want_id):
                return vbd
        return None

    def detach(self, vm_ref, instance, connection_info, mountpoint):
        vbd = self.find_vbd(vm_ref, connection_info, mountpoint)
        if vbd is None:
            LOG.warning('Volume %s is not attached at %s; nothing to '
                        'detach', _volume_id(connection_info), mountpoint,
                        instance=instance)
            return
        if self._conn.call('VBD.get_currently_attached', vbd):
            self._conn.call('VBD.unplug', vbd)
        self._conn.call('VBD.destroy', vbd)
