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

"""One pool's object database and its event log.

Every pool owns one ``Database``; nothing is module-global, so several
pools live side by side in one process without sharing refs.
"""

import collections
import os
import random
import threading
import time
import uuid as uuidlib

from xapi_sim import errors
from xapi_sim import schema

NULL = 'OpaqueRef:NULL'

# (class, field) -> (class, set field) kept in step automatically, as xapi's
# database does for its one-to-many relations.
RELATIONS = {
    ('VBD', 'VM'): ('VM', 'VBDs'),
    ('VBD', 'VDI'): ('VDI', 'VBDs'),
    ('VIF', 'VM'): ('VM', 'VIFs'),
    ('VIF', 'network'): ('network', 'VIFs'),
    ('VDI', 'SR'): ('SR', 'VDIs'),
    ('VDI', 'snapshot_of'): ('VDI', 'snapshots'),
    ('VM', 'snapshot_of'): ('VM', 'snapshots'),
    ('VM', 'resident_on'): ('host', 'resident_VMs'),
    ('PBD', 'SR'): ('SR', 'PBDs'),
    ('PBD', 'host'): ('host', 'PBDs'),
    ('PIF', 'network'): ('network', 'PIFs'),
    ('PIF', 'host'): ('host', 'PIFs'),
    ('task', 'subtask_of'): ('task', 'subtasks'),
    ('console', 'VM'): ('VM', 'consoles'),
    ('host_cpu', 'host'): ('host', 'host_CPUs'),
}

# Objects of these classes never appear in the event stream.
NO_EVENTS = frozenset(['session'])
# Classes whose refs are secrets (a session's ref is its credential).
SECRET_REFS = frozenset(['session'])

EVENT_LOG_SIZE = 20000


# Stored values are JSON-like: scalars, lists and dicts of them.
_CONTAINERS = (list, dict)


def copy_value(value):
    """A deep copy of a stored value (much cheaper than copy.deepcopy).

    Every event carries a snapshot of its record, so this runs for each
    change of every object, parent records with thousands of members
    included.
    """
    kind = type(value)
    if kind is dict:
        return {k: copy_value(v) if type(v) in _CONTAINERS else v
                for k, v in value.items()}
    if kind is list:
        return [copy_value(v) if type(v) in _CONTAINERS else v
                for v in value]
    return value


# Refs and uuids of every object but sessions: random, though not from
# the OS's entropy pool (os.urandom is a system call, which costs as much
# as the rest of a create on a busy machine: thousands of objects are made
# at a time). A session's ref is its secret: that one comes from uuid4.
_random = random.Random(os.urandom(32))


def new_uuid():
    return str(uuidlib.UUID(int=_random.getrandbits(128), version=4))


def new_ref(cls=None):
    if cls in SECRET_REFS:
        return 'OpaqueRef:%s' % uuidlib.uuid4()
    return 'OpaqueRef:%s' % new_uuid()


def format_token(event_id):
    return '%020d,%020d' % (event_id, 0)


def parse_token(token):
    if token in ('', None):
        return None
    try:
        return int(str(token).split(',')[0])
    except ValueError:
        # xapi's event.from: EVENT_FROM_TOKEN_PARSE_FAILURE [token].
        raise errors.XapiError('EVENT_FROM_TOKEN_PARSE_FAILURE', token)


class Database(object):
    """Tables of records keyed by ref, with a bounded event log."""

    def __init__(self):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.tables = {cls: {} for cls in schema.CLASSES}
        self.by_uuid = {cls: {} for cls in schema.CLASSES}
        self.events = collections.deque(maxlen=EVENT_LOG_SIZE)
        self.last_event_id = 0
        # func(db, operation, cls, ref, record, old): called under ``lock``
        # after each change, to keep derived records (metrics, consoles) in
        # step as xapi's own side effects do. ``old`` maps each changed
        # field to its previous value ('mod' only).
        self.watchers = []
        # func(db, cls, record): completes a record before it is inserted
        # (and before its 'add' event), as xapi's create messages do.
        self.preparers = []

    def watch(self, func, prepare=None):
        self.watchers.append(func)
        if prepare is not None:
            self.preparers.append(prepare)

    def _notify(self, operation, cls, ref, rec, old=None):
        for func in self.watchers:
            func(self, operation, cls, ref, rec, old or {})

    # -- records ---------------------------------------------------------

    def _defaults(self, cls):
        rec = {}
        for name, field in schema.CLASSES[cls].items():
            default = field.default
            if default is schema.REQUIRED:
                continue
            rec[name] = copy_value(default)
        return rec

    def add(self, cls, record, ref=None):
        """Insert a record, filling defaults; returns its ref."""
        with self.lock:
            rec = self._defaults(cls)
            rec.update(record)
            for prepare in self.preparers:
                prepare(self, cls, rec)
            if not rec.get('uuid'):
                rec['uuid'] = (str(uuidlib.uuid4()) if cls in SECRET_REFS
                               else new_uuid())
            ref = ref or new_ref(cls)
            self.tables[cls][ref] = rec
            self.by_uuid[cls][rec['uuid']] = ref
            for (child, field), parent in RELATIONS.items():
                if child == cls and parent and rec.get(field, NULL) != NULL:
                    self._link(parent, rec[field], ref, add=True)
            self._event(cls, 'add', ref, rec)
            self._notify('add', cls, ref, rec)
            return ref

    def exists(self, cls, ref):
        return ref in self.tables[cls]

    def get(self, cls, ref):
        """The live record; callers must hold ``lock`` to read it safely."""
        try:
            return self.tables[cls][ref]
        except (KeyError, TypeError):
            raise errors.XapiError('HANDLE_INVALID', cls, ref)

    def snapshot(self, cls, ref):
        with self.lock:
            return copy_value(self.get(cls, ref))

    def by_uuid_ref(self, cls, uuid):
        try:
            return self.by_uuid[cls][uuid]
        except (KeyError, TypeError):
            raise errors.XapiError('UUID_INVALID', cls, uuid)

    def all_refs(self, cls):
        with self.lock:
            return list(self.tables[cls])

    def referring(self, cls, field, ref):
        """Refs of ``cls`` whose ref ``field`` holds ``ref``, or None.

        From the set the relation keeps in the parent record (a VM's
        ``VBDs`` for VBD.VM); None when ``field`` has no such set or
        ``ref`` is null. The caller holds ``lock``.
        """
        parent = RELATIONS.get((cls, field))
        if parent is None or ref == NULL:
            return None
        rec = self.tables[parent[0]].get(ref)
        return set() if rec is None else set(rec[parent[1]])

    def find(self, cls, **match):
        with self.lock:
            return [r for r, rec in self.tables[cls].items()
                    if all(rec.get(k) == v for k, v in match.items())]

    def update(self, cls, ref, **changes):
        with self.lock:
            rec = self.get(cls, ref)
            old = {f: rec.get(f) for f, v in changes.items()
                   if rec.get(f) != v}
            for field, value in changes.items():
                rel = RELATIONS.get((cls, field))
                if rel:
                    before = rec.get(field, NULL)
                    if before != value:
                        if before != NULL:
                            self._link(rel, before, ref, add=False)
                        if value != NULL:
                            self._link(rel, value, ref, add=True)
                rec[field] = value
            self._event(cls, 'mod', ref, rec)
            if old:
                self._notify('mod', cls, ref, rec, old)

    def remove(self, cls, ref):
        with self.lock:
            rec = self.get(cls, ref)
            for (child, field), parent in RELATIONS.items():
                if child == cls and parent and rec.get(field, NULL) != NULL:
                    self._link(parent, rec[field], ref, add=False)
            del self.tables[cls][ref]
            self.by_uuid[cls].pop(rec['uuid'], None)
            self._event(cls, 'del', ref, rec)
            self._notify('del', cls, ref, rec)

    def _link(self, parent, parent_ref, child_ref, add):
        pcls, pfield = parent
        prec = self.tables[pcls].get(parent_ref)
        if prec is None:
            return
        members = prec[pfield]
        if add and child_ref not in members:
            members.append(child_ref)
        elif not add and child_ref in members:
            members.remove(child_ref)
        else:
            return
        self._event(pcls, 'mod', parent_ref, prec)

    # -- events ----------------------------------------------------------

    def _event(self, cls, operation, ref, rec):
        if cls in NO_EVENTS:
            return
        self.last_event_id += 1
        self.events.append({
            'id': self.last_event_id,
            'timestamp': time.time(),
            'class': cls,
            'operation': operation,
            'ref': ref,
            'snapshot': copy_value(rec),
        })
        self.changed.notify_all()

    def inject(self, cls, ref):
        with self.lock:
            self._event(cls, 'mod', ref, self.get(cls, ref))
            return self.last_event_id

    def events_since(self, since, wanted):
        """Events after ``since`` whose class (or class/ref) is wanted.

        Raises EVENTS_LOST when ``since`` fell out of the bounded log.
        """
        if self.events and since < self.events[0]['id'] - 1:
            raise errors.XapiError('EVENTS_LOST')
        # Walk back from the newest: waiters are usually nearly current.
        found = []
        for e in reversed(self.events):
            if e['id'] <= since:
                break
            if _wanted(e, wanted):
                found.append(e)
        found.reverse()
        return found


def _wanted(event, wanted):
    if '*' in wanted:
        return True
    cls = event['class'].lower()
    return cls in wanted or '%s/%s' % (cls, event['ref']) in wanted
