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

"""Single volumes (VDIs): what a move returns, the per-volume lock, SRs.

``Migrator.move_vdi`` (sxm_core.migrate) moves one VDI between the SRs of
a pool and returns a ``VdiMove``. Two moves of one volume, or a move and
anything else that must see the volume where it is (a VM start, a
snapshot, a delete), are kept apart by ``volume_lock``: an oslo.concurrency
lock, a file lock shared by the processes of a node when a lock path is
given. Key it on something that survives the move: the VDI uuid changes
with ``VDI.pool_migrate`` and ``VDI.copy``, so Cinder keys it on the
volume id.
"""

import contextlib
import dataclasses

from oslo_concurrency import lockutils

from sxm_core import errors

LOCK_PREFIX = 'sxm-volume-'
# One set of in-process locks for every caller, as lockutils' own
# synchronized() has: two Migrators of a process must exclude each other.
_SEMAPHORES = lockutils.Semaphores()


@dataclasses.dataclass(frozen=True)
class VdiMove:
    """What ``Migrator.move_vdi`` did.

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
    holds it calls ``Migrator.move_vdi`` with ``lock=False``.
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
        except errors.XapiFailure as exc:
            if exc.code != 'HANDLE_INVALID':
                raise
            raise errors.NotFound(kind='SR', name=sr, pool=pool.url) \
                from None
        return sr, uuid, pool.call('SR.get_name_label', sr)
    try:
        ref = pool.call('SR.get_by_uuid', sr)
    except errors.XapiFailure as exc:
        if exc.code != 'UUID_INVALID':
            raise
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
