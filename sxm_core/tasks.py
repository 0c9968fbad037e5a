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

"""XAPI tasks: calling ``Async.*``, waiting through ``event.from``.

``task_result`` is a pure function of a task record (xen-orchestra's
``_getTaskResult``). ``wait_task`` watches one task with ``event.from`` on
``task/<ref>`` (no sleep loop), reports progress, cancels on request, on an
overall timeout or when progress stalls, and restarts its watch on
``EVENTS_LOST``. ``call_async`` wraps an ``Async.`` call and always destroys
the task afterwards.

A wait survives connection blips (a reset, a master restarting) by
watching again on the same session; each ``event.from`` has a read timeout
a few seconds above the server's own (``SessionPool.event_grace``), so a
silent pool is noticed at once, and after ``SessionPool.contact_timeout``
seconds without any answer the wait ends with ``errors.ContactLost``,
naming the task's uuid: the task itself may still be running in XAPI.

Task hygiene: a service names itself once per pool (``set_owner``, e.g.
``nova-sxm`` and the XAPI host uuid it manages); from then on every task
``call_async`` or ``start`` creates (or ``tag`` is given) on that pool carries
``other_config['sxm_owner']`` (never a secret), and ``reap`` destroys the
ended tasks of that owner, e.g. those a killed process left behind.
"""


import copy
import threading
import time
import weakref
import xmlrpc.client

from sxm_core import constants
from sxm_core import errors
from sxm_core import redact

LOG = redact.get_logger(__name__)

PENDING = object()
# How long one event.from may block, and the grace after a cancel.
EVENT_TIMEOUT = 5.0
CANCEL_GRACE = 60.0


def parse_result(text):
    """The value of a task ``result`` (an XML-RPC ``<value>``), or None."""
    if not text:
        return None
    doc = ('<?xml version="1.0"?><methodResponse><params><param>%s'
           '</param></params></methodResponse>' % text)
    (value,), _ = xmlrpc.client.loads(doc, use_builtin_types=True)
    return value


def task_result(record, task=None, call=None, describe=None):
    """PENDING, the task's value, or raise the task's error."""
    status = record.get('status')
    if status in (constants.TASK_PENDING, constants.TASK_CANCELLING):
        return PENDING
    if status == constants.TASK_SUCCESS:
        return parse_result(record.get('result'))
    if status == constants.TASK_CANCELLED:
        return _raise(record.get('error_info') or ['TASK_CANCELLED', task],
                      task, call, describe)
    return _raise(record.get('error_info'), task, call, describe)


def _raise(details, task, call, describe):
    raise errors.XapiFailure.from_details(details, call=call,
                                          describe=describe, task=task)


class Watch(object):
    """What to do while waiting: callbacks and limits, all optional.

    ``progress(fraction)`` is called when progress moves; ``cancel`` is a
    ``threading.Event`` the caller sets to cancel; ``stop`` one it sets to
    stop waiting without cancelling (the wait raises ``errors.Detached``
    within one event.from timeout); ``timeout`` bounds the whole wait and
    ``stall_timeout`` the time without progress (seconds, None for no
    bound); ``clock`` is injectable for tests.
    """

    def __init__(self, progress=None, cancel=None, timeout=None,
                 stall_timeout=None, clock=None, describe=None, stop=None):
        self.progress = progress
        self.cancel = cancel
        self.stop = stop
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.clock = clock or time.monotonic
        self.describe = describe


def _event_from(session, task, token):
    return session.call('event_from', ['task/%s' % task], token,
                        EVENT_TIMEOUT)


# Used when the pool does not say (a test double).
CONTACT_TIMEOUT = 30.0


class _Waiter(object):
    """The state of one wait_task: progress, deadlines, cancel requests."""

    def __init__(self, pool, task, what, watch, call):
        self.pool = pool
        self.task = task
        self.what = what
        self.watch = watch
        self.call = call
        self.started = self.last_move = watch.clock()
        self.last_progress = None
        self.cancelled_for = None   # 'request', 'timeout' or 'stall'
        self.cancel_at = None
        self.cancel_refused = False
        self.last_answer = self.started  # when XAPI last answered
        self.task_uuid = None

    def seen(self, record):
        """Handle a task record; returns its value or PENDING."""
        self.task_uuid = record.get('uuid') or self.task_uuid
        progress = float(record.get('progress') or 0.0)
        if progress != self.last_progress:
            self.last_progress, self.last_move = progress, \
                self.watch.clock()
            if self.watch.progress is not None:
                try:
                    self.watch.progress(progress)
                except Exception:  # the caller's bug must not orphan a task
                    LOG.exception('Progress callback of %s failed',
                                  self.what)
        try:
            return task_result(record, task=self.task, call=self.call,
                               describe=self.watch.describe)
        except errors.TaskCancelled:
            if self.cancelled_for == 'timeout':
                raise errors.TaskTimeout(what=self.what,
                                         seconds=self.watch.timeout)
            if self.cancelled_for == 'stall':
                raise errors.TaskStalled(what=self.what,
                                         seconds=self.watch.stall_timeout)
            raise

    def police(self, session):
        """Cancel on request, timeout or stall; raise once cancel is moot."""
        watch, now = self.watch, self.watch.clock()
        if watch.stop is not None and watch.stop.is_set():
            raise errors.Detached(what=self.what)
        reason = None
        if watch.cancel is not None and watch.cancel.is_set():
            reason = 'request'
        elif watch.timeout and now - self.started > watch.timeout:
            reason = 'timeout'
        elif watch.stall_timeout and now - self.last_move > \
                watch.stall_timeout:
            reason = 'stall'
        if reason and self.cancelled_for is None:
            self.cancelled_for, self.cancel_at = reason, now
            self.cancel_refused = not _cancel(session, self.task, self.what,
                                              reason)
        if (self.cancelled_for in ('timeout', 'stall')
                and not self.cancel_refused
                and now - self.cancel_at > CANCEL_GRACE):
            # The task accepted the cancel but never ended: give up on it.
            if self.cancelled_for == 'timeout':
                raise errors.TaskTimeout(what=self.what,
                                         seconds=watch.timeout)
            raise errors.TaskStalled(what=self.what,
                                     seconds=watch.stall_timeout)


def wait_task(pool, task, what, watch=None, call=None):
    """Wait for ``task`` to finish; returns its value or raises.

    ``what`` names the operation in messages ("migration of VM 'web'").
    The wait blocks in event.from on the pool's idle session when it has
    one to spare, else on a session of its own (``wait_session``),
    follows the
    task through connection blips, and keeps waiting when a cancel comes
    too late (past the point of no return): the task's outcome is what
    counts. When the pool stays silent for its ``contact_timeout`` it
    raises ``errors.ContactLost``: the task may still be running.
    """
    waiter = _Waiter(pool, task, what, watch or Watch(), call)
    limit = getattr(pool, 'contact_timeout', None) or CONTACT_TIMEOUT
    failures, previous = 0, None
    while True:
        silent = waiter.watch.clock() - waiter.last_answer
        try:
            return _wait(pool, waiter, max(1.0, limit - silent))
        except errors.ConnectionFailed as exc:
            now = waiter.watch.clock()
            if now - waiter.last_answer >= limit:
                raise errors.ContactLost(
                    url=getattr(pool, 'url', '?'),
                    seconds=now - waiter.last_answer, what=what,
                    task_uuid=_task_uuid(waiter)) from None
            # Only failures since the last answer count for the backoff.
            failures = failures + 1 if waiter.last_answer == previous else 1
            previous = waiter.last_answer
            LOG.warning('Connection lost while waiting for %s (%s); '
                        'watching again', what, exc)
            delay = min(2.0, 0.25 * 2 ** failures,
                        limit - (now - waiter.last_answer))
            wake = waiter.watch.stop or waiter.watch.cancel
            if wake is not None:
                wake.wait(delay)
            else:
                time.sleep(delay)
            if waiter.watch.stop is not None and waiter.watch.stop.is_set():
                raise errors.Detached(what=what) from None


def _task_uuid(waiter):
    # Known once the task's record was seen; else its ref identifies it.
    return waiter.task_uuid or waiter.task


def _wait(pool, waiter, login_timeout):
    token = ''
    with pool.wait_session(login_timeout=login_timeout) as session:
        while True:
            try:
                answer = _event_from(session, waiter.task, token)
            except errors.EventsLost:
                LOG.info('Events lost while waiting for %s; re-reading the '
                         'task', waiter.what)
                token = ''
                continue
            waiter.last_answer = waiter.watch.clock()
            first = token == ''
            token = answer['token']
            record = None
            for event in answer['events']:
                if event['ref'] != waiter.task:
                    continue
                if event['operation'] == 'del':
                    raise errors.TaskVanished(what=waiter.what)
                record = event.get('snapshot') or record
            if first and record is None:
                try:
                    record = _get_record(session, waiter.task)
                except errors.HandleInvalid:
                    raise errors.TaskVanished(what=waiter.what) from None
            if record is not None:
                value = waiter.seen(record)
                if value is not PENDING:
                    return value
            waiter.police(session)


def _get_record(session, task):
    return session.task.get_record(task)


def _cancel(session, task, what, reason):
    """Ask XAPI to cancel; False when it refuses (not cancellable)."""
    LOG.info('Cancelling %s (%s)', what, reason)
    try:
        session.task.cancel(task)
        return True
    except errors.XapiFailure as exc:
        # Past the point of no return a task is no longer cancellable:
        # keep waiting for its outcome.
        LOG.warning('Could not cancel %s: %s', what, exc)
        return False


# other_config key of the tasks a service created; its value is the
# owner's tag, "<service>/<XAPI host uuid>".
OWNER_KEY = 'sxm_owner'
ENDED = (constants.TASK_SUCCESS, constants.TASK_FAILURE,
         constants.TASK_CANCELLED)
_OWNERS = weakref.WeakKeyDictionary()
_OWNERS_LOCK = threading.Lock()


def owner_tag(service, scope):
    """The ``sxm_owner`` value of ``service``'s tasks within ``scope``."""
    return '%s/%s' % (service, scope)


def set_owner(pool, service, scope):
    """Tag the tasks this process creates on ``pool`` as ``service``'s.

    ``scope`` separates the services of one kind that share a pool, so
    that each reaps only its own: the XAPI host uuid a nova-compute
    manages, the backend a cinder-volume serves. Never a secret.
    """
    with _OWNERS_LOCK:
        _OWNERS[pool] = owner_tag(service, scope)


def owner_of(pool):
    """The tag ``set_owner`` gave ``pool``, or None."""
    with _OWNERS_LOCK:
        return _OWNERS.get(pool)


def tag(pool, task, value=None):
    """Mark ``task`` as created by the owner of ``pool`` (if it has one).

    ``value``: the tag, when the caller keeps its own (default: the one
    ``set_owner`` gave ``pool``). Never fails the operation: a task left
    untagged only escapes the next ``reap``.
    """
    value = value or owner_of(pool)
    if value is None:
        return
    try:
        pool.call('task.add_to_other_config', task, OWNER_KEY, value)
    except errors.MapDuplicateKey:
        pass
    except errors.SxmError as exc:
        LOG.warning('Could not tag task %s: %s', task, exc)


def start(pool, method, *args):
    """``Async.<method>(*args)``: the new task's ref, tagged (see ``tag``).

    The caller waits for it and destroys it once it has ended.
    """
    task = pool.call('Async.' + method, *args)
    tag(pool, task)
    return task


def reap(pool, service, scope):
    """Destroy the ended tasks ``service`` created within ``scope``.

    Running tasks and tasks of any other client are left alone. Returns
    the name labels of the destroyed tasks.
    """
    value = owner_tag(service, scope)
    expr = ' or '.join('field "status"="%s"' % s for s in ENDED)
    done = []
    for ref, rec in pool.call('task.get_all_records_where', expr).items():
        if (rec.get('other_config') or {}).get(OWNER_KEY) != value or \
                rec.get('status') not in ENDED:
            continue
        try:
            pool.call('task.destroy', ref)
        except errors.HandleInvalid:
            continue  # destroyed meanwhile
        done.append('%s (%s, %s)' % (rec.get('name_label', ''),
                                     rec.get('uuid', ref), rec['status']))
    return done


def call_async(pool, method, args, what, watch=None, describe=None):
    """``Async.<method>(*args)``, waited for; the task is destroyed after.

    A task still running when the wait gave up (lost contact) is left for
    XAPI to finish rather than destroyed under its feet; it is tagged (see
    ``set_owner``) so that its owner's ``reap`` removes it once it ended.
    """
    try:
        task = start(pool, method, *args)
    except errors.XapiFailure as exc:
        if describe is not None:
            raise exc.reworded(call=method, describe=describe) from None
        raise
    watch = copy.copy(watch) if watch is not None else Watch()
    if watch.describe is None:
        watch.describe = describe
    silent = False
    try:
        return wait_task(pool, task, what, watch=watch, call=method)
    except errors.ContactLost:
        silent = True  # asking the pool about the task would hang too
        raise
    finally:
        if not silent:
            _destroy_if_done(pool, task, what)


def _destroy_if_done(pool, task, what):
    try:
        if pool.call('task.get_status', task) in (
                constants.TASK_PENDING, constants.TASK_CANCELLING):
            LOG.warning('Leaving the task of %s (%s): it is still running',
                        what, task)
            return
        pool.call('task.destroy', task)
    except errors.SxmError as exc:
        LOG.warning('Could not destroy the task of %s: %s', what, exc)
