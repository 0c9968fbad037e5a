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


"""Cinder's pools of one backend: their stats and location_info.

``pool_stats`` and the location_info helpers are pure functions over
records (dicts as XAPI returns them). ``ConfiguredSRs`` reads the records
of the configured SRs: one XAPI call per stats update, whatever the
number of SRs, so that an idle cinder-volume costs its pool master one
call a minute. ``SmFeatures`` keeps what each SR type's SM offers (it
changes only when an SM plugin is installed or upgraded).
"""

import time

from sxm_core import errors

DRIVER_NAME = 'SxmVolumeDriver'
GiB = 1 << 30
THIN_TYPES = frozenset(('ext', 'file', 'nfs'))
THICK_TYPES = frozenset(('lvm', 'lvmoiscsi', 'lvmohba'))
# SR types that hold no movable volumes.
UNMOVABLE_TYPES = frozenset(('iso', 'udev'))
# The SM feature that lets xapi resize a VDI plugged into a running VM
# (VDI.resize_online). No stock SM driver offers it (EXT, NFS, File,
# LVHD: offline resize only); third-party ones may (RBDSR, SMAPIv3).
ONLINE_RESIZE = 'VDI_RESIZE_ONLINE'
# Capability: the pool's XAPI URL, never with credentials.
POOL_URL = 'sxm_pool_url'
# How long SM features are trusted before they are read again.
SM_FEATURES_TTL = 3600.0


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
               reserved_percentage, sm_features=(), multiattach=False,
               pool_url=None):
    """One Cinder pool's capabilities from an SR record.

    ``sm_features``: the features of the SR type's SM (SM.features).
    ``multiattach``: the SR is opted in (sxm_multiattach_srs).
    ``pool_url``: the XAPI pool's URL without credentials, for a backend
    of another pool to log in to when it moves a volume here.
    """
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
        # Only where the operator opted in: XAPI needs sharable VDIs and,
        # across hosts, a flag file on each host; guests a cluster FS.
        'multiattach': bool(multiattach),
        # False: Cinder's scheduler refuses to extend an attached volume
        # here (CapabilitiesFilter) instead of failing it in the driver.
        'online_extend_support': ONLINE_RESIZE in sm_features,
        'location_info': location_info(pool_uuid, sr_rec['uuid']),
        'sxm_sr_type': sr_rec['type'],
        'sxm_shared': bool(sr_rec['shared']),
        POOL_URL: pool_url,
    }


def _eq(column, value):
    # xapi's filter language (get_all_records_where).
    return 'field "%s" = "%s"' % (column, value)


class SmFeatures(object):
    """{SR type: SM features} of a pool, read at most once an hour.

    ``call(method, *args)`` calls XAPI. Read again at once when asked for
    a type it has not seen (an SR of a newly installed SM).
    """

    def __init__(self, call, ttl=SM_FEATURES_TTL, clock=time.monotonic):
        self._call = call
        self._ttl = ttl
        self._clock = clock
        self._by_type = None
        self._read_at = None

    def _read(self):
        by_type = {}
        for rec in self._call('SM.get_all_records').values():
            by_type[rec['type']] = frozenset(rec['features'])
        self._by_type, self._read_at = by_type, self._clock()

    def get(self, sr_type, fresh=False):
        """The SM features of ``sr_type`` (empty if it has no SM).

        ``fresh``: read them now (before acting on them).
        """
        if (fresh or self._by_type is None or sr_type not in self._by_type
                or self._clock() - self._read_at > self._ttl):
            self._read()
            # A type without an SM: not read again for it before the TTL.
            self._by_type.setdefault(sr_type, frozenset())
        return self._by_type[sr_type]


class ConfiguredSRs(object):
    """The records of the SRs a backend's ``sxm_srs`` names.

    ``call(method, *args)`` calls XAPI. A key (an SR uuid or name label)
    is resolved once to the SR's uuid; later reads ask for those uuids
    only, so an SR forgotten and introduced again (a new ref, the same
    uuid) is found without a second lookup. An SR no longer named by its
    key (renamed) is missing until the key names one again.
    """

    def __init__(self, call, keys, where=''):
        self._call = call
        self._keys = list(keys)
        self._where = where
        self._uuids = {}   # key -> SR uuid

    def _resolve(self, keys):
        """({key: SR uuid or SxmError}, {ref: record}) in one call."""
        terms = []
        for key in keys:
            if '"' not in key:  # xapi's filter strings have no escapes
                terms += [_eq('uuid', key), _eq('name__label', key)]
        found = (self._call('SR.get_all_records_where', ' or '.join(terms))
                 if terms else {})
        out = {}
        for key in keys:
            matches = [r['uuid'] for r in found.values() if r['uuid'] == key]
            matches = matches or [r['uuid'] for r in found.values()
                                  if r['name_label'] == key]
            if not matches:
                out[key] = errors.NotFound(kind='SR', name=key,
                                           pool=self._where)
            elif len(matches) > 1:
                out[key] = errors.Ambiguous(count=len(matches), kind='SR',
                                            name=key, pool=self._where)
            else:
                out[key] = matches[0]
        return out, found

    def records(self):
        """[(key, SR record with 'ref', or the SxmError of that key)].

        In ``sxm_srs`` order. ConnectionFailed and XAPI errors other
        than a missing SR propagate.
        """
        unknown = [k for k in self._keys if k not in self._uuids]
        problems, found = {}, {}
        if unknown:
            resolved, found = self._resolve(unknown)
            for key, got in resolved.items():
                if isinstance(got, errors.SxmError):
                    problems[key] = got
                else:
                    self._uuids[key] = got
        by_uuid = {rec['uuid']: dict(rec, ref=ref)
                   for ref, rec in found.items()}
        more = sorted({self._uuids[k] for k in self._keys
                       if k in self._uuids} - set(by_uuid))
        if more:
            found = self._call('SR.get_all_records_where',
                               ' or '.join(_eq('uuid', u) for u in more))
            by_uuid.update((rec['uuid'], dict(rec, ref=ref))
                           for ref, rec in found.items())
        out = []
        for key in self._keys:
            if key in problems:
                out.append((key, problems[key]))
                continue
            rec = by_uuid.get(self._uuids[key])
            if rec is None or key not in (rec['uuid'], rec['name_label']):
                # Gone or renamed since: look it up afresh next time.
                del self._uuids[key]
                rec = errors.NotFound(kind='SR', name=key, pool=self._where)
            out.append((key, rec))
        return out
