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

Field faults outside the migration's own steps:

``cooperate``: at the end of the memory migration (after every disk was
mirrored) the guest does not answer xenopsd's suspend request; xapi passes
xenopsd's error on unmapped, as the field reports it (``INTERNAL_ERROR
["Xenops_interface.Xenopsd_error([S(Vms_failed_to_cooperate);[S(<vm
uuid>)]])"]``), and rolls the migration back.

``sr_scan``: the next ``SR.scan`` fails as SM's SRScan error (code 40 of
XE_SR_ERRORCODES.xml, "The SR scan failed ").

With ``action='toolstack_restart'`` a migration point (``copy``,
``metadata``, ``memory``, ``finalize``) raises nothing: the toolstack of
the pool running the migration restarts there (see
``Simulator.restart_toolstack``). Before the point of no return that
undoes the migration; at ``finalize`` (after it) the VM has moved, and
the task that says so is lost with the restart.

``connection_reset``: the HTTP connection of the next call of ``method``
is reset instead of answered, after the call did its work. Without
``method`` it is the next wait (``event.from``, ``task.get_record``,
``task.get_status``) once a task of the pool has ended since the fault was
armed: the caller loses the answer that says the task ended. Python's
XML-RPC client sends a call once more after a reset (on a new connection):
arm ``times=2`` for its caller to see the reset.
"""

import threading
import time

from xapi_sim import errors

POINTS = ('prepare', 'snapshot', 'mirror', 'copy', 'destination_full',
          'metadata', 'memory', 'cooperate', 'finalize', 'sr_scan',
          'connection_reset')
_AT_PERCENT = ('mirror', 'copy', 'destination_full')
# What a task's caller waits with: a reset there loses the task's outcome.
WAIT_CALLS = ('event.from', 'event_from', 'task.get_record',
              'task_get_record', 'task.get_status', 'task_get_status')
SCAN_FAILED = 'The SR scan failed '
ACTIONS = ('toolstack_restart',)
_ACTION_POINTS = ('copy', 'metadata', 'memory', 'finalize')


def cooperate_error(vm_uuid):
    """xenopsd's Vms_failed_to_cooperate as a migration reports it."""
    return errors.XapiError(
        'INTERNAL_ERROR',
        'Xenops_interface.Xenopsd_error([S(Vms_failed_to_cooperate);'
        '[S(%s)]])' % vm_uuid)


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
    if point == 'cooperate':
        return cooperate_error(vm)
    if point == 'sr_scan':
        return errors.XapiError('SR_BACKEND_FAILURE_40', '', SCAN_FAILED, '')
    return errors.XapiError('INTERNAL_ERROR', 'fault injected at %s' % point)


class FaultError(ValueError):
    pass


class Faults(object):
    def __init__(self):
        self._lock = threading.Lock()
        self._armed = []

    def arm(self, point, percent=0, times=1, code=None, params=(),
            method=None, action=None):
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
        if method is not None and (point != 'connection_reset'
                                   or not isinstance(method, str)):
            raise FaultError('method (a XenAPI method name) is for the '
                             'connection_reset fault only')
        if code is not None and point == 'connection_reset':
            raise FaultError('a connection reset has no error code')
        if action is not None and (action not in ACTIONS
                                   or point not in _ACTION_POINTS
                                   or code is not None):
            raise FaultError('action must be one of %s, at one of %s, '
                             'without a code' % (', '.join(ACTIONS),
                                                 ', '.join(_ACTION_POINTS)))
        fault = {'point': point, 'percent': percent, 'times': times,
                 'code': code, 'params': [str(p) for p in params or ()]}
        if point == 'connection_reset':
            fault.update(method=method, armed_at=time.time())
        if action is not None:
            fault['action'] = action
        with self._lock:
            self._armed.append(fault)

    def clear(self):
        with self._lock:
            self._armed = []

    def armed(self):
        with self._lock:
            return [dict(f) for f in self._armed]

    def _take_first(self, due):
        """Fire the first armed fault ``due(fault)`` accepts, or None.

        A fault is disarmed once it has fired ``times`` times.
        """
        with self._lock:
            for fault in self._armed:
                if due(fault):
                    fault['times'] -= 1
                    if fault['times'] <= 0:
                        self._armed.remove(fault)
                    return fault
        return None

    def take(self, point, percent=100.0):
        """The armed fault for ``point`` that is due at ``percent``."""
        return self._take_first(
            lambda fault: fault['point'] == point and not (
                point in _AT_PERCENT and percent < fault['percent']))

    def take_reset(self, method, task_ended_since):
        """Whether to reset the connection of a ``method`` call now.

        ``task_ended_since(t)`` says whether a task of the pool ended
        after time ``t``.
        """
        def due(fault):
            if fault['point'] != 'connection_reset':
                return False
            wanted = fault['method']
            if wanted is None:
                return (method in WAIT_CALLS
                        and task_ended_since(fault['armed_at']))
            return _plain(method) == _plain(wanted)
        return self._take_first(due) is not None

    def check(self, point, percent=100.0, vdi='', vm='', restart=None):
        """Raise the fault due at ``point``, or run its action.

        ``restart()`` restarts the toolstack running the caller.
        """
        fault = self.take(point, percent)
        if fault is None:
            return
        if fault.get('action') == 'toolstack_restart':
            if restart is None:
                raise FaultError('no toolstack to restart at %s' % point)
            restart()
            return
        if fault['code']:
            raise errors.XapiError(fault['code'], *fault['params'])
        raise default_error(point, vdi, vm)


def _plain(method):
    """``VDI_pool_migrate`` and ``VDI.pool_migrate`` alike."""
    name = method[len('Async.'):] if method.startswith('Async.') else method
    return name.replace('.', '_').lower()
