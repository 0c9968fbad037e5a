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


"""The ``xensm`` volume connection: what cinder_sxm hands out and nova_sxm
reads.

Both drivers use this one module, so the two sides of an attach cannot
drift apart: the ``xensm`` name, the connection info, and the refusal of a
pool-local SR's volume to another XAPI pool (``CrossPoolRefused``, raised
by the volume side when it hands out the connection and by the compute
side when it cannot introduce the SR). Pure functions over XAPI records;
no XAPI calls.
"""

from sxm_core import errors

DRIVER_VOLUME_TYPE = 'xensm'
# device_config keys that must not leave the volume driver.
_SECRET_KEYS = ('password', 'secret', 'chappassword', 'incoming_chappassword')


def public_device_config(device_config):
    """A PBD's device_config without its secrets."""
    return {k: v for k, v in (device_config or {}).items()
            if not any(s in k.lower() for s in _SECRET_KEYS)}


def introduce_data(sr_rec, device_config):
    """What another XAPI pool needs to SR.introduce (and plug) this SR."""
    return {'sr_uuid': sr_rec['uuid'],
            'name_label': sr_rec['name_label'],
            'name_description': sr_rec.get('name_description', ''),
            'type': sr_rec['type'],
            'content_type': sr_rec['content_type'],
            'shared': bool(sr_rec['shared']),
            'sm_config': dict(sr_rec.get('sm_config') or {}),
            'device_config': public_device_config(device_config)}


def consumer_pool(connector):
    """The XAPI pool uuid a connector names, or None.

    nova_sxm's get_volume_connector puts it under ``xapi_pool_uuid``.
    """
    if not connector:
        return None
    return connector.get('xapi_pool_uuid')


class CrossPoolRefused(errors.SxmError):
    """A pool-local SR's volume asked for from another XAPI pool."""

    message = ('Volume %(volume)s is on %(where)s, local to XAPI pool '
               '%(pool)s; the consumer is in XAPI pool %(other)s. Retype the '
               'volume to a shared tier (an nfs-like SR) first.')

    def __init__(self, volume, sr, sr_type, pool, other, tier=None):
        where = 'SR %s (type %s)' % (sr, sr_type)
        if tier:
            where = 'tier %s (%s)' % (tier, where)
        super().__init__(volume=volume, where=where, pool=pool, other=other)


def volume_data(connection_info):
    """The ``data`` of an ``xensm`` connection, or None for another type."""
    if (connection_info or {}).get('driver_volume_type') != \
            DRIVER_VOLUME_TYPE:
        return None
    return connection_info.get('data') or {}


def check_introducible(volume_id, data, here):
    """Why XAPI pool ``here`` cannot introduce a volume's SR, if it can't.

    For an SR that pool ``here`` does not know. The volume side adds what
    introducing needs only for a shared SR of another pool: without it,
    an SR of another pool is CrossPoolRefused, and one of pool ``here``
    itself is gone (errors.NotFound).
    """
    home = data.get('pool_uuid')
    if data.get('introduce') and home != here:
        return
    if home and home != here:
        raise CrossPoolRefused(volume_id or '?', data.get('sr_uuid', '?'),
                               data.get('sr_type', '?'), home, here)
    raise errors.NotFound(kind='SR', name=data.get('sr_uuid', '?'),
                          pool=here)


def refusal(volume_id, data, here, knows_sr=False):
    """The CrossPoolRefused of a volume going to XAPI pool ``here``, or None.

    A volume (connection ``data``) can follow its VM to pool ``here`` when
    its SR is that pool's own, is known there already (``knows_sr``), or
    is shared (pool ``here`` introduces it).
    """
    home = data.get('pool_uuid')
    if home == here or knows_sr or data.get('shared'):
        return None
    return CrossPoolRefused(volume_id or '?', data.get('sr_uuid', '?'),
                            data.get('sr_type', '?'), home or '?', here)


def connection_info(volume_id, vdi_uuid, sr_rec, pool_uuid, connector,
                    device_config=None, tier=None):
    """The ``xensm`` connection info for ``connector``.

    Raises CrossPoolRefused when the consumer is another XAPI pool and the
    SR is local to this one.
    """
    data = {'volume_id': volume_id, 'vdi_uuid': vdi_uuid,
            'sr_uuid': sr_rec['uuid'], 'pool_uuid': pool_uuid,
            'sr_type': sr_rec['type'], 'shared': bool(sr_rec['shared'])}
    consumer = consumer_pool(connector)
    if consumer is not None and consumer != pool_uuid:
        if not sr_rec['shared']:
            raise CrossPoolRefused(volume_id, sr_rec['uuid'],
                                   sr_rec['type'], pool_uuid, consumer,
                                   tier=tier or sr_rec['name_label'])
        data['introduce'] = introduce_data(sr_rec, device_config)
    return {'driver_volume_type': DRIVER_VOLUME_TYPE, 'data': data}
