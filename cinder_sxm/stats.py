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


"""Pure functions: pool stats and location_info.

No XAPI calls here: they take records (dicts as XAPI returns them) and
return what Cinder wants, so they are tested without a simulator.
"""

DRIVER_NAME = 'SxmVolumeDriver'
GiB = 1 << 30
THIN_TYPES = frozenset(('ext', 'file', 'nfs'))
THICK_TYPES = frozenset(('lvm', 'lvmoiscsi', 'lvmohba'))
# SR types that hold no movable volumes.
UNMOVABLE_TYPES = frozenset(('iso', 'udev'))


def _gib(value):
    return round(int(value) / GiB, 2)


def is_thin(sr_type):
    return sr_type not in THICK_TYPES


def location_info(pool_uuid, sr_uuid):
    return '%s:%s:%s' % (DRIVER_NAME, pool_uuid, sr_uuid)


def parse_location_info(text):
    """(pool uuid, SR uuid) of one of this driver's pools, else None."""
    parts = (text or '').split(':')
    if len(parts) != 3 or parts[0] != DRIVER_NAME or not all(parts[1:]):
        return None
    return parts[1], parts[2]


def pool_stats(sr_rec, pool_uuid, max_over_subscription_ratio,
               reserved_percentage):
    """One Cinder pool's capabilities from an SR record."""
    thin = is_thin(sr_rec['type'])
    total = int(sr_rec['physical_size'])
    used = int(sr_rec['physical_utilisation'])
    return {
        'pool_name': sr_rec['name_label'],
        'total_capacity_gb': _gib(total),
        'free_capacity_gb': _gib(max(0, total - used)),
        'provisioned_capacity_gb': _gib(sr_rec['virtual_allocation']),
        'allocated_capacity_gb': _gib(sr_rec['virtual_allocation']),
        'thin_provisioning_support': thin,
        'thick_provisioning_support': not thin,
        'max_over_subscription_ratio': (max_over_subscription_ratio
                                        if thin else 1.0),
        'reserved_percentage': reserved_percentage,
        'QoS_support': False,
        'multiattach': False,
        # VHD-based SRs refuse VDI.resize of a plugged VDI
        # (VDI_RESIZE_ONLINE is not an SM feature of theirs).
        'online_extend_support': False,
        'location_info': location_info(pool_uuid, sr_rec['uuid']),
        'sxm_sr_type': sr_rec['type'],
        'sxm_shared': bool(sr_rec['shared']),
    }
