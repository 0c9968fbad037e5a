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
"""

import time
import xmlrpc.client

import XenAPI

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
    ``threading.Event`` the caller sets to cancel; ``timeout`` bounds the
    whole wait and ``stall_timeout`` the time without progress (seconds,
    None for no bound); ``clock`` is injectable for tests.
    """

    def __init__(self, progress=None, cancel=None, timeout=None,
                 stall_timeout=None, clock=None, describe=None):
        self.progress = progress
        self.cancel = cancel
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.clock = clock or time.monotonic
        self.describe = describe


def _event_from(session, task, token):
    return session.xenapi.event_from(['task/%s' % task], token,
                                     EVENT_TIMEOUT)


def wait_task(pool, task, what, watch=None, call=None):
    """Wait for ``task`` to finish; returns its value or raises.

    ``what`` names the operation in messages ("migration of VM 'web'").
    """
    watch = watch or Watch()
    clock = watch.clock
    started = last_move = clock()
    last_progress = None
    cancelled_for = None
    cancel_at = None
    token = ''
    with pool.session() as session:
        while True:
            try:
                answer = _event_from(session, task, token)
            except XenAPI.Failure as failure:
                exc = errors.XapiFailure.from_failure(failure,
                                                      call='event.from')
                if isinstance(exc, errors.EventsLost):
                    LOG.info('Events lost while waiting for %s; '
                             're-reading the task', what)
                    token = ''
                    continue
                raise exc
            first = token == ''
            token = answer['token']
            record = None
            for event in answer['events']:
                if event['ref'] != task:
                    continue
                if event['operation'] == 'del':
                    raise errors.SxmError(
                        'The task of %s was destroyed before it finished.'
                        % what)
                record = event.get('snapshot') or record
            if first and record is None:
                record = _get_record(session, task)
            if record is not None:
                progress = float(record.get('progress') or 0.0)
                if progress != last_progress:
                    last_progress, last_move = progress, clock()
                    if watch.progress is not None:
                        watch.progress(progress)
                try:
                    value = task_result(record, task=task, call=call,
                                        describe=watch.describe)
                except errors.TaskCancelled:
                    if cancelled_for == 'timeout':
                        raise errors.TaskTimeout(what=what,
                                                 seconds=watch.timeout)
                    if cancelled_for == 'stall':
                        raise errors.TaskStalled(
                            what=what, seconds=watch.stall_timeout)
                    raise
                if value is not PENDING:
                    if cancelled_for is not None and cancelled_for != \
                            'request':
                        # Past the point of no return: it finished anyway.
                        LOG.warning('%s finished after it was cancelled '
                                    '(%s)', what, cancelled_for)
                    return value
            now = clock()
            reason = None
            if watch.cancel is not None and watch.cancel.is_set():
                reason = 'request'
            elif watch.timeout and now - started > watch.timeout:
                reason = 'timeout'
            elif watch.stall_timeout and now - last_move > \
                    watch.stall_timeout:
                reason = 'stall'
            if reason and cancelled_for is None:
                cancelled_for, cancel_at = reason, now
                _cancel(session, task, what, reason)
            if cancelled_for in ('timeout', 'stall') and \
                    now - cancel_at > CANCEL_GRACE:
                break
    if cancelled_for == 'timeout':
        raise errors.TaskTimeout(what=what, seconds=watch.timeout)
    raise errors.TaskStalled(what=what, seconds=watch.stall_timeout)


def _get_record(session, task):
    try:
        return session.xenapi.task.get_record(task)
    except XenAPI.Failure as failure:
        raise errors.XapiFailure.from_failure(failure,
                                              call='task.get_record')


def _cancel(session, task, what, reason):
    LOG.info('Cancelling %s (%s)', what, reason)
    try:
        session.xenapi.task.cancel(task)
    except XenAPI.Failure as failure:
        # Past the point of no return a task is no longer cancellable:
        # keep waiting for its outcome.
        LOG.warning('Could not cancel %s: %s', what,
                    errors.XapiFailure.from_failure(failure))


def call_async(pool, method, args, what, watch=None, describe=None):
    """``Async.<method>(*args)``, waited for; the task is destroyed after."""
    try:
        task = pool.call('Async.' + method, *args)
    except errors.XapiFailure as exc:
        if describe is not None:
            raise errors.XapiFailure.from_details(
                [exc.code] + exc.params, call=method, describe=describe)
        raise
    try:
        if watch is not None and watch.describe is None:
            watch.describe = describe
        return wait_task(pool, task, what, watch=watch, call=method)
    finally:
        try:
            pool.call('task.destroy', task)
        except errors.SxmError as exc:
            LOG.warning('Could not destroy the task of %s: %s', what, exc)
