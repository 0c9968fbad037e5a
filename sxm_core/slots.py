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

"""Storage migration slots: how many migrations a source host runs at once.

xapi refuses a fourth storage migration from one host
(TOO_MANY_STORAGE_MIGRATES). ``HostSlots`` keeps this process (and, with
a lock path, every process of the node) under a lower limit;
``wait_for_free_slot`` waits, through event.from, until xapi's own count
for a host drops again after a refusal.
"""

import threading
import time

from oslo_concurrency import lockutils

from sxm_core import constants
from sxm_core import errors
from sxm_core import redact
from sxm_core import tasks

LOG = redact.get_logger(__name__)
STORAGE_OPERATION = 'migrate_send'


class HostSlots(object):
    """At most ``limit`` storage migrations at once from one XAPI host.

    Share one object between every Migrator of a process
    (``shared_slots``) so that the limit holds across them. A waiter
    wakes as soon as a slot is released in this process (a Condition).
    With ``lock_path`` the slots are file locks shared with other
    processes, whose releases cannot notify this one: then a waiter also
    looks again every ``poll`` seconds. ``cancel_poll`` bounds how late a
    set ``cancel`` Event is noticed (an Event cannot wake a Condition).
    """

    def __init__(self, limit=2, lock_path=None, poll=0.5, cancel_poll=0.5):
        if not 1 <= limit <= constants.XAPI_MAX_STORAGE_MIGRATES:
            raise ValueError('limit must be 1..%d'
                             % constants.XAPI_MAX_STORAGE_MIGRATES)
        self.limit = limit
        self.lock_path = lock_path
        self.poll = poll
        self.cancel_poll = cancel_poll
        self._semaphores = lockutils.Semaphores()
        self._released = threading.Condition()

    def _try(self, host):
        for i in range(self.limit):
            name = 'sxm-storage-migrate-%s-%d' % (host, i)
            cm = lockutils.lock(name, external=bool(self.lock_path),
                                lock_path=self.lock_path, do_log=False,
                                semaphores=self._semaphores,
                                blocking=False)
            try:
                cm.__enter__()
            except lockutils.AcquireLockFailedException:
                continue
            return _Held(cm, self)
        return None

    def acquire(self, host, cancel=None):
        """A context manager holding one slot of host ``host``.

        ``host`` is the host's ref: every caller names a host alike (a
        ref is stable and needs no read; its uuid would).
        Raises ``errors.Cancelled`` when ``cancel`` is set first.
        """
        with self._released:
            while True:
                held = self._try(host)
                if held is not None:
                    return held
                if cancel is not None and cancel.is_set():
                    raise errors.Cancelled(
                        waiting='waiting for a free storage migration '
                                'slot of host %s' % host)
                bounds = [t for t in (
                    self.poll if self.lock_path else None,
                    self.cancel_poll if cancel is not None else None)
                    if t is not None]
                self._released.wait(min(bounds) if bounds else None)

    def _notify(self):
        with self._released:
            self._released.notify_all()


_SHARED_SLOTS = {}
_SHARED_LOCK = threading.Lock()


def shared_slots(limit=2, lock_path=None):
    """The process's one ``HostSlots`` for (``limit``, ``lock_path``)."""
    with _SHARED_LOCK:
        key = (limit, lock_path)
        if key not in _SHARED_SLOTS:
            _SHARED_SLOTS[key] = HostSlots(limit, lock_path=lock_path)
        return _SHARED_SLOTS[key]


class _Held(object):
    def __init__(self, cm, slots=None):
        self._cm = cm
        self._slots = slots

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(None, None, None)
        if self._slots is not None:
            self._slots._notify()
        return False


def wait_for_free_slot(pool, host, cancel, timeout, clock=time.monotonic):
    """Wait until XAPI host ``host`` (a ref) runs fewer storage migrations.

    Watches VMs with event.from (``SessionPool.wait_session``): xapi
    counts a storage migration from its start to the end of the VM's
    migrate_send operation (VM.current_operations). Returns True once a
    slot is free, False after ``timeout`` seconds or when ``cancel`` is
    set.
    """
    deadline = clock() + timeout
    busy = {}   # VM ref -> its storage migration tasks, on ``host``
    token = ''
    with pool.wait_session() as session:
        while not cancel.is_set() and clock() < deadline:
            try:
                answer = session.call('event.from', ['VM'], token,
                                      tasks.EVENT_TIMEOUT)
            except errors.EventsLost:
                token, busy = '', {}
                continue
            token = answer['token']
            for event in answer['events']:
                ref, rec = event['ref'], event.get('snapshot') or {}
                ops = {t for t, op in (rec.get('current_operations')
                                       or {}).items()
                       if op == STORAGE_OPERATION}
                if (event['operation'] == 'del' or not ops
                        or rec.get('resident_on') != host):
                    busy.pop(ref, None)
                else:
                    busy[ref] = ops
            # A count, not any end: another refused client's attempt
            # ending frees nothing.
            running = sum(len(v) for v in busy.values())
            if running < constants.XAPI_MAX_STORAGE_MIGRATES:
                LOG.info('A storage migration slot of the host is free '
                         '(%d running); retrying', running)
                return True
    return False
