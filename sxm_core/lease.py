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

"""The migrate_receive token of a migration, as one object: a ``Lease``.

``host.migrate_receive`` creates a session in the destination pool and
hands its id to the caller inside the ``dest`` map; ``VM.migrate_send``
uses it for the whole migration. Real xapi (xapi_host.ml
``migrate_receive``) makes it with ``Xapi_session.login_no_password``;
``migrate_send`` (xapi_vm_migrate.ml) never logs it out, so left alone it
lives until xapi's session GC (24 h of inactivity), and logging it out
while the task runs breaks the migration. So the process that asked for
it logs it out, exactly once, when nothing can use it any more. It is a
credential of the destination pool: it lives only in this process's
memory (never a task field, file, record or log line; ``repr`` masks it).

States and their transitions (public methods; any other move raises
``LeaseError``)::

    HELD --hand(task)--> HANDED --keep()--> KEPT --hand(task)--> HANDED
      |                    |                  |
      +---- end() ---------+------ end() -----+-----> ENDED (logged out)

* HELD: received, not used by a task yet (a check may use it).
* HANDED: a migrate_send task runs with it; its end, seen by whoever
  waits for the task (or follows it later through the ``Leases`` book it
  was handed with), ends the lease. A custodian process may guard it
  meanwhile. A Migrator whose task succeeded first reads the arrived VM
  through the token (``SessionPool.token_session``): no login of its own.
* KEPT: the task was refused with TOO_MANY_STORAGE_MIGRATES before it
  began: the token serves the retry (no second migrate_receive).
* ENDED: logged out. ``end`` a second time does nothing.

``release`` is the caller's "I am done with it": it ends a lease unless a
task holds it (HANDED), whose end will.
"""

import threading

from sxm_core import errors
from sxm_core import redact

LOG = redact.get_logger(__name__)

HELD = 'held'
HANDED = 'handed'
KEPT = 'kept'
ENDED = 'ended'


class LeaseError(errors.SxmError):
    message = ('The migrate_receive token cannot be %(what)s: it is '
               '%(state)s.')


class Lease(object):
    """One migrate_receive answer and the life of its token.

    ``dest`` is the map ``VM.assert_can_migrate`` and ``VM.migrate_send``
    take; ``pool`` the destination SessionPool that logs it out.
    """

    def __init__(self, pool, dest, host_ref=None, network_ref=None):
        self.pool = pool
        self.dest = dest
        self.host_ref = host_ref
        self.network_ref = network_ref
        self.task = None
        self._state = HELD
        self._custodian = None
        self._book = None
        self._lock = threading.Lock()
        redact.register(self.token)

    @property
    def token(self):
        return (self.dest or {}).get('session_id')

    @property
    def state(self):
        return self._state

    @property
    def ended(self):
        return self._state == ENDED

    def __repr__(self):
        return '<Lease %s host=%s task=%s (token masked)>' % (
            self._state, self.host_ref, self.task)

    def hand(self, task, book=None, custodian=None):
        """A task (``task``, its ref) now runs with the token.

        ``book`` (a ``Leases``) lets whoever later sees the task end in
        this process end the lease; ``custodian`` (with a ``done()``) is
        told when the lease ends or is kept.
        """
        with self._lock:
            if self._state not in (HELD, KEPT):
                raise LeaseError(what='handed to task %s' % task,
                                 state=self._state)
            self._state = HANDED
            self.task, self._custodian, self._book = task, custodian, book
        if book is not None:
            book.add(task, self)

    def keep(self):
        """The task was refused before it began: keep the token to retry."""
        with self._lock:
            if self._state != HANDED:
                raise LeaseError(what='kept', state=self._state)
            self._state = KEPT
            custodian, book, task = self._custodian, self._book, self.task
            self.task = self._custodian = self._book = None
        self._let_go(custodian, book, task)

    def end(self):
        """Log the token out; True if this call did (False: ended before)."""
        with self._lock:
            if self._state == ENDED:
                return False
            self._state = ENDED
            custodian, book, task = self._custodian, self._book, self.task
            self._custodian = self._book = None
        self.pool.logout_token(self.token)
        self._let_go(custodian, book, task)
        return True

    def release(self):
        """End the lease unless a task holds it; True if this call ended it.

        For a caller done with the lease (a refused check, a migration
        that never started): a running task's end ends it instead.
        """
        with self._lock:
            if self._state == HANDED:
                return False
        return self.end()

    def _let_go(self, custodian, book, task):
        if book is not None:
            book.remove(task, self)
        if custodian is not None:
            try:
                custodian.done()
            except Exception:  # the lease is settled; only the guard fails
                LOG.exception('Could not tell the custodian of task %s',
                              task)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


class Leases(object):
    """The HANDED leases of this process's migrations, by task ref.

    One book per owner (a Migrator, or the caller that shares one between
    Migrators): code that follows a task after its Migrator lost contact
    takes it to end the lease of a task it saw end.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._by_task = {}

    def add(self, task, lease):
        with self._lock:
            self._by_task[task] = lease

    def remove(self, task, lease):
        with self._lock:
            if self._by_task.get(task) is lease:
                del self._by_task[task]

    def held(self, task):
        with self._lock:
            return task in self._by_task

    def end(self, task):
        """End the lease of ``task`` if this book has it; True if so."""
        with self._lock:
            lease = self._by_task.get(task)
        return lease.end() if lease is not None else False


def receive(dest_pool, host_ref, network_ref, options=None):
    """``host.migrate_receive`` in the destination pool: a HELD ``Lease``."""
    dest = dest_pool.call('host.migrate_receive', host_ref, network_ref,
                          options or {})
    return Lease(dest_pool, dest, host_ref, network_ref)
