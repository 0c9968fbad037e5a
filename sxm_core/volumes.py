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

"""Single volumes (VDIs): moving one between SRs of a pool, its lock, SRs.

``VdiMover.move`` moves one VDI to another SR of its pool (live with
``VDI.pool_migrate`` when a running VM uses it, else ``VDI.copy`` and the
VBDs of a halted VM recreated on the copy) and returns a ``VdiMove``. Two
moves of one volume, or a move and anything else that must see the volume
where it is (a VM start, a snapshot, a delete), are kept apart by
``volume_lock``: an oslo.concurrency lock, a file lock shared by the
processes of a node when a lock path is given. Key it on something that
survives the move: the VDI uuid changes with ``VDI.pool_migrate`` and
``VDI.copy``, so Cinder keys it on the volume id.
"""

import contextlib
import dataclasses

from oslo_concurrency import lockutils

from sxm_core import conf
from sxm_core import constants
from sxm_core import errors
from sxm_core import migrate
from sxm_core import redact
from sxm_core import slots as slotsmod
from sxm_core import tasks

LOG = redact.get_logger(__name__)

LOCK_PREFIX = 'sxm-volume-'
# One set of in-process locks for every caller, as lockutils' own
# synchronized() has: two Migrators of a process must exclude each other.
_SEMAPHORES = lockutils.Semaphores()


@dataclasses.dataclass(frozen=True)
class VdiMove:
    """What ``VdiMover.move`` did.

    ``vdi_uuid``: the volume's VDI afterwards (a new uuid when it moved);
    ``sr_uuid``: the SR it is on; ``moved``: False when it was on that SR
    already; ``live``: moved with VDI.pool_migrate (else VDI.copy);
    ``leftovers``: uuids of originals that could not be removed (each is
    logged with the reason); they are not in use and can be destroyed.
    """

    vdi_uuid: str
    sr_uuid: str
    moved: bool
    live: bool = False
    leftovers: tuple = ()


class VolumeBusy(errors.SxmError):
    message = ('Cannot %(what)s: volume %(key)s is busy (a move or another '
               'operation holds its lock). Try again when it has ended.')


def lock_name(key):
    return LOCK_PREFIX + str(key)


@contextlib.contextmanager
def volume_lock(key, lock_path=None, blocking=True, what='move it'):
    """Hold the lock of volume ``key`` (a Cinder volume id, or a VDI uuid).

    With ``lock_path`` the lock is a file there, shared by every process
    of the node that uses the same directory (cinder-volume, nova-compute,
    the CLI); without, it holds within this process. ``blocking=False``
    raises ``VolumeBusy`` (naming ``what`` the caller wanted to do)
    instead of waiting. Not re-entrant: code that
    holds it calls ``VdiMover.move`` with ``lock=False``.
    """
    cm = lockutils.lock(lock_name(key), external=bool(lock_path),
                        lock_path=lock_path, do_log=False,
                        semaphores=_SEMAPHORES, blocking=blocking)
    try:
        cm.__enter__()
    except lockutils.AcquireLockFailedException:
        raise VolumeBusy(key=key, what=what) from None
    try:
        yield
    finally:
        cm.__exit__(None, None, None)


def find_sr(pool, sr):
    """(ref, uuid, name label) of SR ``sr``: a ref, uuid or name label.

    One lookup by uuid (or by name), never a read of the whole pool.
    """
    if str(sr).startswith('OpaqueRef:'):
        try:
            uuid = pool.call('SR.get_uuid', sr)
        except errors.HandleInvalid:
            raise errors.NotFound(kind='SR', name=sr, pool=pool.url) \
                from None
        return sr, uuid, pool.call('SR.get_name_label', sr)
    try:
        ref = pool.call('SR.get_by_uuid', sr)
    except errors.UuidInvalid:
        found = pool.call('SR.get_by_name_label', sr)
        if not found:
            raise errors.NotFound(kind='SR', name=sr, pool=pool.url) \
                from None
        if len(found) > 1:
            raise errors.Ambiguous(count=len(found), kind='SR', name=sr,
                                   pool=pool.url) from None
        ref = found[0]
        return ref, pool.call('SR.get_uuid', ref), sr
    return ref, sr, pool.call('SR.get_name_label', ref)


class TaskPool(object):
    """A SessionPool whose Async tasks are tagged and announced.

    Each task it starts gets the owner tag (``owner``, default: the one
    ``tasks.set_owner`` gave ``pool``) in its ``other_config``, and
    ``on_task(task_ref)`` is called as soon as XAPI accepted it, so that
    a caller can record it durably: XAPI goes on with it if this process
    dies. Both are best effort, logged and never raised: the task runs
    already and must be waited for.
    """

    def __init__(self, pool, owner=None, on_task=None):
        self._pool = pool
        self.owner = owner
        self._on_task = on_task

    def __getattr__(self, name):
        return getattr(self._pool, name)

    def announcing(self, on_task):
        """The same pool, telling ``on_task`` of each new task."""
        return TaskPool(self._pool, self.owner, on_task)

    def call(self, method, *args):
        result = self._pool.call(method, *args)
        if method.startswith('Async.') or method == 'task.create':
            tasks.tag(self._pool, result, self.owner)
            if self._on_task is not None:
                try:
                    self._on_task(result)
                except Exception:
                    LOG.exception('Could not record task %s of %s', result,
                                  method)
        return result

    def owned_tasks(self):
        """{task ref: record} of the tasks tagged with this owner."""
        owner = self.owner or tasks.owner_of(self._pool)
        # xapi's filter language has no map keys: tasks are few anyway.
        return {ref: rec for ref, rec in
                self._pool.call('task.get_all_records').items()
                if rec.get('other_config', {}).get(tasks.OWNER_KEY)
                == owner}


class VdiMover(object):
    """Moves single VDIs between the SRs of one pool (``pool``).

    ``slots`` (a ``slots.HostSlots``) bounds the live moves per host
    (xapi runs VDI.pool_migrate as a storage migration of the VM);
    a move times out after ``minimum_timeout`` + ``seconds_per_gib`` per
    GiB and is cancelled after ``stall_timeout`` seconds without
    progress.
    """

    def __init__(self, pool, slots=None, seconds_per_gib=800,
                 minimum_timeout=300, stall_timeout=600):
        self.pool = pool
        self.slots = slots or slotsmod.shared_slots()
        self.seconds_per_gib = seconds_per_gib
        self.minimum_timeout = minimum_timeout
        self.stall_timeout = stall_timeout or None

    @classmethod
    def from_options(cls, pool, options, **extra):
        """A mover from ``options`` (with ``sxm_core.conf``'s names)."""
        kwargs = conf.mover_kwargs(options)
        kwargs.update(extra)
        return cls(pool, **kwargs)

    def timeout_for(self, nbytes):
        return (self.minimum_timeout
                + self.seconds_per_gib * nbytes / migrate.GIB)

    def move(self, vdi_uuid, sr, progress=None, cancel=None,
             lock_key=None, lock=True, on_task=None):
        """Move one VDI to SR ``sr`` (ref, uuid or name) in this pool.

        Plugged into a running VM: ``VDI.pool_migrate`` (live; the VBD
        follows, the VDI gets a new uuid). Otherwise ``VDI.copy``, the VBDs
        of a halted VM recreated on the copy, then ``VDI.destroy`` of the
        original. Returns a ``VdiMove``. ``progress`` gets a
        ``migrate.Progress``.

        ``on_task(task_ref)`` is called as soon as XAPI has accepted the
        copy, so that a caller can record the task durably: XAPI goes on
        with it if this process dies, and a successor can follow it
        (``finish_copy``).

        Holds ``volume_lock(lock_key or vdi_uuid)`` (across processes when
        the slots have a lock path) unless ``lock`` is False because the
        caller holds it. A move that waited for another finds the VDI
        gone when that one moved it: ``errors.NotFound``.
        """
        if not lock:
            return self._move(vdi_uuid, sr, progress, cancel, on_task)
        with volume_lock(lock_key or vdi_uuid, self.slots.lock_path):
            return self._move(vdi_uuid, sr, progress, cancel, on_task)

    def _move(self, vdi_uuid, sr, progress, cancel, on_task=None):
        pool = self.pool
        sr_ref, sr_uuid, sr_name = find_sr(pool, sr)
        try:
            vdi = pool.call('VDI.get_by_uuid', vdi_uuid)
        except errors.UuidInvalid:
            raise errors.NotFound(
                'No VDI %s in pool %s (was it moved or removed meanwhile?)'
                % (vdi_uuid, pool.url)) from None
        rec = pool.call('VDI.get_record', vdi)
        if rec['SR'] == sr_ref:
            return VdiMove(vdi_uuid, sr_uuid, moved=False)
        size = int(rec['virtual_size'])
        what = "move of VDI '%s' (%s) to SR '%s' (%s)" % (
            rec['name_label'], vdi_uuid, sr_name, sr_uuid)
        watch = tasks.Watch(
            progress=(lambda f: progress(migrate.Progress(
                f, 'copy', None, int(f * size), size)))
            if progress else None,
            cancel=cancel, timeout=self.timeout_for(size),
            stall_timeout=self.stall_timeout)
        announcing = (pool.announcing(on_task) if isinstance(pool, TaskPool)
                      else TaskPool(pool, on_task=on_task))
        live = self._running_vbd(rec['VBDs'])
        if live is not None:
            vbd = pool.call('VBD.get_record', live)
            host = pool.call('VM.get_resident_on', vbd['VM'])
            try:
                with self.slots.acquire(host, cancel):
                    new = tasks.call_async(announcing, 'VDI.pool_migrate',
                                           (vdi, sr_ref, {}), what,
                                           watch=watch)
            except (errors.HandleInvalid, errors.TaskVanished) as exc:
                # The task is gone (a toolstack restart fails and forgets
                # running tasks), not necessarily the move: past the point
                # of no return the VM runs on the new VDI.
                new = self._moved_disk(vbd['VM'], vbd['userdevice'],
                                       vdi_uuid, sr_ref)
                if new is None:
                    raise
                LOG.warning('%s: its task was lost (%s), but the VM runs on '
                            'the new VDI: the move is done', what, exc)
            return self.finish_pool_migrate(vdi_uuid, new, sr_uuid, what)
        new = tasks.call_async(announcing, 'VDI.copy', (vdi, sr_ref), what,
                               watch=watch)
        return self.finish_copy(vdi, new, what, vbds=rec['VBDs'])

    def finish_pool_migrate(self, vdi_uuid, new, sr_uuid, what):
        """What a VDI.pool_migrate of ``vdi_uuid`` that returned ``new`` did.

        ``new`` is on SR ``sr_uuid``. Returns the ``VdiMove``.
        """
        new_uuid = self.pool.call('VDI.get_uuid', new)
        # xapi removes the original itself; one still there is left.
        left = () if new_uuid == vdi_uuid or not self._vdi_exists(
            vdi_uuid) else (vdi_uuid,)
        if left:
            LOG.warning('%s done, but xapi left the original VDI %s '
                        'behind', what, vdi_uuid)
        return VdiMove(new_uuid, sr_uuid, moved=True, live=True,
                       leftovers=left)

    def finish_copy(self, vdi, new, what, vbds=None):
        """End a move by VDI.copy: ``new``, the copy, replaces ``vdi``.

        ``new`` takes the place of ``vdi`` in its VBDs (``vbds``, default:
        its VBDs now), then ``vdi`` is destroyed. Returns the ``VdiMove``.

        Also for a successor process: a copy whose task succeeded after
        the mover died is finished the same way.
        """
        pool = self.pool
        vdi_uuid = pool.call('VDI.get_uuid', vdi)
        if vbds is None:
            vbds = pool.call('VDI.get_VBDs', vdi)
        # A halted VM keeps its disk: its VBDs move to the copy. Until they
        # all have, the original is the volume; after, the copy is.
        moved = []
        try:
            for vbd in vbds:
                moved.append(self._repoint_vbd(vbd, new))
        except errors.SxmError:
            undo = errors.ErrorCollector()
            for vbd in moved:
                with undo.context('putting VBD %s back', vbd):
                    self._repoint_vbd(vbd, vdi)
            if not undo:
                with undo.context('removing the copy'):
                    pool.call('VDI.destroy', new)
            if undo:
                LOG.error('Undoing %s left: %s', what, undo.errors)
            raise
        new_rec = pool.call('VDI.get_record', new)
        sr_uuid = pool.call('SR.get_uuid', new_rec['SR'])
        left = ()
        try:
            pool.call('VDI.destroy', vdi)
        except errors.SxmError as exc:
            # The copy is in use now: never remove it. The original may be
            # gone all the same (only the reply was lost): look.
            if self._vdi_exists(vdi_uuid):
                left = (vdi_uuid,)
                LOG.warning('%s done, but the original VDI %s could not be '
                            'removed (%s): it is unused, destroy it when '
                            'its SR allows', what, vdi_uuid, exc)
        return VdiMove(new_rec['uuid'], sr_uuid, moved=True, live=False,
                       leftovers=left)

    def _moved_disk(self, vm, device, vdi_uuid, sr_ref):
        """VM ``vm``'s disk ``device`` if it is now a VDI on ``sr_ref``.

        None unless the original VDI ``vdi_uuid`` is gone and the disk is
        another VDI on that SR.
        """
        if self._vdi_exists(vdi_uuid):
            return None
        for vbd in self.pool.call('VM.get_VBDs', vm):
            rec = self.pool.call('VBD.get_record', vbd)
            if rec['userdevice'] == device and not rec['empty'] and \
                    self.pool.call('VDI.get_SR', rec['VDI']) == sr_ref:
                return rec['VDI']
        return None

    def _vdi_exists(self, vdi_uuid):
        """False only when XAPI says so: after a move, never raise."""
        try:
            self.pool.call('VDI.get_by_uuid', vdi_uuid)
        except errors.UuidInvalid:
            return False
        except errors.SxmError:
            pass
        return True

    def _running_vbd(self, vbds):
        """A VBD of ``vbds`` plugged into a running VM, or None."""
        for vbd in vbds:
            rec = self.pool.call('VBD.get_record', vbd)
            if rec['currently_attached'] and self.pool.call(
                    'VM.get_power_state', rec['VM']) == constants.RUNNING:
                return vbd
        return None

    def _repoint_vbd(self, vbd, vdi):
        """VBD.VDI cannot be set: recreate the VBD on ``vdi``."""
        rec = self.pool.call('VBD.get_record', vbd)
        fields = {k: rec[k] for k in (
            'VM', 'userdevice', 'bootable', 'mode', 'type', 'unpluggable',
            'other_config', 'qos_algorithm_type', 'qos_algorithm_params')}
        fields['empty'] = False
        self.pool.call('VBD.destroy', vbd)  # frees the userdevice
        try:
            return self.pool.call('VBD.create', dict(fields, VDI=vdi))
        except errors.SxmError:
            self.pool.call('VBD.create', dict(fields, VDI=rec['VDI']))
            raise
