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

"""Faults the control interface arms at named points of a migration.

A fault fires once (or ``times`` times) when a migration passes its point;
``copy``, ``mirror`` and ``destination_full`` fire when a disk's background
copy reaches ``percent``. Each raises the error xapi raises there, unless
the caller gives ``code`` and ``params``.
"""

import threading

from xapi_sim import errors

POINTS = ('prepare', 'snapshot', 'mirror', 'copy', 'destination_full',
          'metadata', 'memory', 'finalize')
_AT_PERCENT = ('mirror', 'copy', 'destination_full')


def default_error(point, vdi, vm):
    if point == 'mirror':
        return errors.XapiError('MIRROR_FAILED', vdi)
    if point == 'destination_full':
        return errors.sr_full()
    if point == 'copy':
        return errors.XapiError('VDI_COPY_FAILED',
                                'Storage_error ([S(Internal_error)])')
    if point == 'snapshot':
        return errors.XapiError('SR_BACKEND_FAILURE_82', '',
                                'Failed to snapshot VDI', '')
    if point == 'memory':
        return errors.XapiError('VM_MIGRATE_FAILED', vm, '', '',
                                'Xenops_interface.Internal_error')
    if point == 'metadata':
        return errors.XapiError('IMPORT_ERROR', 'metadata import failed')
    return errors.XapiError('INTERNAL_ERROR', 'fault injected at %s' % point)


class FaultError(ValueError):
    pass


class Faults(object):
    def __init__(self):
        self._lock = threading.Lock()
        self._armed = []

    def arm(self, point, percent=0, times=1, code=None, params=()):
        if point not in POINTS:
            raise FaultError('unknown fault point %r (one of %s)'
                             % (point, ', '.join(POINTS)))
        try:
            percent = float(percent or 0)
            times = int(times)
        except (TypeError, ValueError):
            raise FaultError('percent and times must be numbers')
        if not 0 <= percent <= 100 or times < 1:
            raise FaultError('percent must be 0..100 and times >= 1')
        with self._lock:
            self._armed.append({'point': point, 'percent': percent,
                                'times': times, 'code': code,
                                'params': [str(p) for p in params or ()]})

    def clear(self):
        with self._lock:
            self._armed = []

    def armed(self):
        with self._lock:
            return [dict(f) for f in self._armed]

    def take(self, point, percent=100.0):
        """The armed fault for ``point`` that is due at ``percent``."""
        with self._lock:
            for fault in self._armed:
                if fault['point'] != point:
                    continue
                if point in _AT_PERCENT and percent < fault['percent']:
                    continue
                fault['times'] -= 1
                if fault['times'] <= 0:
                    self._armed.remove(fault)
                return fault
        return None

    def check(self, point, percent=100.0, vdi='', vm=''):
        fault = self.take(point, percent)
        if fault is None:
            return
        if fault['code']:
            raise errors.XapiError(fault['code'], *fault['params'])
        raise default_error(point, vdi, vm)
