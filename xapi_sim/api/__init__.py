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

"""The XenAPI method registry and dispatcher.

Handlers register with ``@method('Class.name', params, optional=N)``. The
dispatcher resolves ``Class_method`` aliases and the ``Async.`` prefix,
checks the arity (counting the session argument, as xapi does), checks the
session, and runs the handler directly or in a task.
"""

import collections
import threading
import time

from xapi_sim import db as dbmod
from xapi_sim import errors
from xapi_sim import schema
from xapi_sim import wire

Method = collections.namedtuple(
    'Method', 'name func params optional has_async needs_session')

METHODS = {}


def method(name, params=(), optional=0, has_async=True, needs_session=True):
    """Register a handler ``func(ctx, *params)``.

    ``optional`` trailing params were added in later API versions; callers
    may leave them out (xapi fills their defaults).
    """
    def register(func):
        METHODS[name] = Method(name, func, tuple(params), optional,
                               has_async, needs_session)
        return func
    return register


class Context(object):
    """What a handler needs: the pool, the caller's session, its task."""

    def __init__(self, pool, session, task=None):
        self.pool = pool
        self.db = pool.db
        self.session = session
        self.task = task
        # The toolstack this call runs in: a restart ends it.
        self.epoch = pool.epoch

    def check_alive(self):
        """Raise ``errors.Restarted`` once the pool's toolstack restarted."""
        if self.pool.epoch != self.epoch:
            raise errors.Restarted(self.pool.name)

    def progress(self, fraction):
        if self.task is not None:
            fraction = max(0.0, min(1.0, float(fraction)))
            self.db.update('task', self.task, progress=fraction)

    def check_cancel(self):
        """Raise TASK_CANCELLED once ``task.cancel`` has been called."""
        self.check_alive()
        if self.task is None:
            return
        with self.db.lock:
            status = self.db.get('task', self.task)['status']
        if status == 'cancelling':
            raise errors.XapiError('TASK_CANCELLED', self.task)

    def enter_point_of_no_return(self):
        """Stop accepting task.cancel, or raise if one came in already."""
        if self.task is None:
            return
        with self.db.lock:
            self.check_cancel()
            self.db.update('task', self.task, allowed_operations=[])

    def set_cancellable(self, cancellable):
        if self.task is not None:
            self.db.update('task', self.task, allowed_operations=(
                ['cancel'] if cancellable else []))


def resolve(name):
    """The Method for a wire name, or None; and whether it is Async."""
    is_async = False
    if name.startswith('Async.'):
        is_async = True
        name = name[len('Async.'):]
    found = METHODS.get(name)
    if found is None and '.' not in name:
        # Class_method: pick the longest class name that prefixes it.
        for cls in sorted(set(schema.CLASSES) | {'event'}, key=len,
                          reverse=True):
            if name.startswith(cls + '_'):
                found = METHODS.get('%s.%s' % (cls, name[len(cls) + 1:]))
                if found is not None:
                    break
    if found is None or (is_async and not found.has_async):
        return None, is_async
    return found, is_async


def dispatch(pool, name, params):
    """Run one call; returns the wire value or raises XapiError."""
    found, is_async = resolve(name)
    if found is None:
        raise errors.XapiError('MESSAGE_METHOD_UNKNOWN', name)
    given = len(params)
    full = len(found.params) + (1 if found.needs_session else 0)
    if not (full - found.optional <= given <= full):
        raise errors.XapiError('MESSAGE_PARAMETER_COUNT_MISMATCH', name,
                               full, given)
    if not found.needs_session:
        return found.func(Context(pool, None), *params)
    session = params[0]
    pool.check_session(session)
    args = params[1:]
    if not is_async:
        return found.func(Context(pool, session), *args)
    return start_task(pool, session, found, args)


def start_task(pool, session, found, args):
    db = pool.db
    now = time.time()
    task = db.add('task', {
        'name_label': 'Async.%s' % found.name,
        'created': now,
        'finished': 0,
        'status': 'pending',
        'resident_on': pool.master,
        'allowed_operations': ['cancel'],
        'other_config': {},
    })
    pool.track_task(session, task)
    ctx = Context(pool, session, task)

    def run():
        try:
            value = found.func(ctx, *args)
        except errors.Restarted:
            # The process running it is gone, and the task with it.
            pass
        except errors.XapiError as exc:
            finish_task(db, task, exc=exc)
        except Exception as exc:  # a simulator bug: say so, like xapi
            pool.log.exception('task %s failed', found.name)
            finish_task(db, task, exc=errors.XapiError(
                'INTERNAL_ERROR', '%s: %s' % (type(exc).__name__, exc)))
        else:
            finish_task(db, task, value=value)
        finally:
            pool.running_tasks.pop(task, None)

    thread = threading.Thread(target=run, daemon=True,
                              name='task-%s' % found.name)
    pool.running_tasks[task] = thread
    thread.start()
    return task


def finish_task(db, task, value=None, exc=None):
    with db.lock:
        if not db.exists('task', task):
            return
        changes = {'finished': time.time(), 'allowed_operations': []}
        if exc is None:
            changes.update(status='success', progress=1.0,
                           result='' if value is None
                           else wire.encode_value(value))
        elif exc.code == 'TASK_CANCELLED':
            changes.update(status='cancelled', error_info=exc.description)
        else:
            changes.update(status='failure', error_info=exc.description)
        db.update('task', task, **changes)


NULL = dbmod.NULL


def load():
    """Import the handler modules so that they register."""
    from xapi_sim.api import copy  # noqa: F401
    from xapi_sim.api import generic  # noqa: F401
    from xapi_sim.api import host  # noqa: F401
    from xapi_sim.api import migrate  # noqa: F401
    from xapi_sim.api import session  # noqa: F401
    from xapi_sim.api import snapshot  # noqa: F401
    from xapi_sim.api import storage  # noqa: F401
    from xapi_sim.api import vm  # noqa: F401
