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
drift apart. Pure functions over XAPI records; no XAPI calls.
"""

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


class CrossPoolRefused(Exception):
    """A pool-local SR's volume asked for from another XAPI pool."""


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
            raise CrossPoolRefused(
                'Volume %(vol)s is on tier %(tier)s (SR %(sr)s, type '
                '%(type)s), local to XAPI pool %(pool)s; the consumer is '
                'in XAPI pool %(other)s. Retype the volume to a shared '
                'tier (an nfs-like SR) first.'
                % {'vol': volume_id, 'tier': tier or sr_rec['name_label'],
                   'sr': sr_rec['uuid'], 'type': sr_rec['type'],
                   'pool': pool_uuid, 'other': consumer})
        data['introduce'] = introduce_data(sr_rec, device_config)
    return {'driver_volume_type': DRIVER_VOLUME_TYPE, 'data': data}
