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

"""session.*, task.* and event.*: none of them has an Async form."""

import time

from xapi_sim.api import method
from xapi_sim import db as dbmod
from xapi_sim import errors
from xapi_sim import schema
from xapi_sim import wire

# event.from never blocks longer than this, whatever the caller asks.
MAX_EVENT_WAIT = 60.0


@method('session.login_with_password',
        ['uname', 'pwd', 'version', 'originator'], optional=2,
        has_async=False, needs_session=False)
def login_with_password(ctx, uname, pwd, version='', originator=''):
    return ctx.pool.login(uname, pwd, originator)


@method('session.slave_local_login_with_password', ['uname', 'pwd'],
        has_async=False, needs_session=False)
def slave_local_login_with_password(ctx, uname, pwd):
    return ctx.pool.login(uname, pwd, 'slave_local')


@method('session.logout', [], has_async=False)
def logout(ctx):
    ctx.pool.logout(ctx.session)


@method('session.local_logout', [], has_async=False)
def local_logout(ctx):
    ctx.pool.logout(ctx.session)


@method('task.create', ['label', 'description'], has_async=False)
def task_create(ctx, label, description):
    ref = ctx.db.add('task', {
        'name_label': label, 'name_description': description,
        'created': time.time(), 'finished': 0, 'status': 'pending',
        'resident_on': ctx.pool.master})
    ctx.pool.track_task(ctx.session, ref)
    return ref


@method('task.cancel', ['task'], has_async=False)
def task_cancel(ctx, task):
    with ctx.db.lock:
        rec = ctx.db.get('task', task)
        if 'cancel' not in rec['allowed_operations']:
            raise errors.XapiError(
                'OPERATION_NOT_ALLOWED',
                "task %s can't be cancelled in state %s"
                % (rec['uuid'], rec['status']))
        ctx.db.update('task', task, status='cancelling',
                      allowed_operations=[])


@method('task.destroy', ['self'], has_async=False)
def task_destroy(ctx, task):
    with ctx.db.lock:
        ctx.db.get('task', task)
        ctx.db.remove('task', task)


@method('task.set_status', ['self', 'value'], has_async=False)
def task_set_status(ctx, task, value):
    value = wire.from_wire(schema.CLASSES['task']['status'].type, value,
                           'status')
    ctx.db.update('task', task, status=value)


@method('task.set_progress', ['self', 'value'], has_async=False)
def task_set_progress(ctx, task, value):
    ctx.db.update('task', task, progress=float(value))


def _event_to_wire(ev):
    cls = ev['class']
    out = {
        'id': str(ev['id']),
        'timestamp': '%.6f' % ev['timestamp'],
        'class': cls.lower(),
        'operation': ev['operation'],
        'ref': ev['ref'],
    }
    if ev['snapshot'] is not None:
        out['snapshot'] = wire.record_to_wire(cls, ev['snapshot'])
    return out


def _normalise_classes(classes):
    if not isinstance(classes, (list, tuple)):
        raise errors.XapiError('FIELD_TYPE_ERROR', 'classes')
    return set(c.lower() if '/' not in c else
               '%s/%s' % (c.split('/', 1)[0].lower(), c.split('/', 1)[1])
               for c in classes)


def _ref_counts(db):
    # As xapi: every table, whatever the subscription, counted as int32.
    return {cls.lower(): wire.Int32(len(table))
            for cls, table in db.tables.items()}


@method('event.from', ['classes', 'token', 'timeout'], has_async=False)
def event_from(ctx, classes, token, timeout):
    wanted = _normalise_classes(classes)
    since = dbmod.parse_token(token)
    db = ctx.db
    try:
        wait = min(float(timeout), MAX_EVENT_WAIT)
    except (TypeError, ValueError):
        raise errors.XapiError('FIELD_TYPE_ERROR', 'timeout')
    with db.lock:
        if since is None:
            # An empty token returns the current state of every object.
            events = []
            # Only the tables asked for: a pool has tens of thousands of
            # objects, and a client often asks for none (a token only).
            tables = {w.split('/', 1)[0] for w in wanted}
            for cls, table in db.tables.items():
                if cls in dbmod.NO_EVENTS or (
                        '*' not in wanted and cls.lower() not in tables):
                    continue
                for ref, rec in table.items():
                    ev = {'id': db.last_event_id, 'timestamp': time.time(),
                          'class': cls, 'operation': 'add', 'ref': ref,
                          'snapshot': rec}
                    if dbmod._wanted(ev, wanted):
                        events.append(_event_to_wire(ev))
            return {'events': events,
                    'valid_ref_counts': _ref_counts(db),
                    'token': dbmod.format_token(db.last_event_id)}
        deadline = time.monotonic() + wait
        while True:
            found = db.events_since(since, wanted)
            if found:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Anything newer than the last event seen can be skipped.
            since = max(since, db.last_event_id)
            db.changed.wait(remaining)
            # A toolstack restart ends the wait with the process.
            ctx.check_alive()
        return {'events': [_event_to_wire(e) for e in found],
                'valid_ref_counts': _ref_counts(db),
                'token': dbmod.format_token(db.last_event_id)}


@method('event.inject', ['class', 'ref'], has_async=False)
def event_inject(ctx, cls, ref):
    if cls not in schema.CLASSES:
        raise errors.XapiError('HANDLE_INVALID', cls, ref)
    return dbmod.format_token(ctx.db.inject(cls, ref) - 1)
