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

"""Running storage migrations: plan, check, execute, verify, undo.

``Migrator`` ties a source pool (and a destination pool, for cross-pool
moves) to the planner and XAPI. It limits concurrent storage migrations per
source host (oslo.concurrency locks, across processes when a lock path is
given), retries xapi's TOO_MANY_STORAGE_MIGRATES as soon as a storage
migration of that host ends (watched through event.from, within a bounded
wait), scales the timeout with the bytes to move, verifies the outcome,
removes SXM leftovers and, when a migration fails, reports what state it
left. The migrate_receive token stays in this process's memory
(``RECEIVE_TOKENS``; see ``sxm_core.fleet``) and is logged out once the
task has ended, never while it may still run.
"""

import dataclasses
import threading
import time
import weakref

from oslo_concurrency import lockutils
import XenAPI

from sxm_core import constants
from sxm_core import errors
from sxm_core import facts
from sxm_core import plan as planmod
from sxm_core import redact
from sxm_core import retry
from sxm_core import sessions
from sxm_core import tasks
from sxm_core import volumes

LOG = redact.get_logger(__name__)
NULL = constants.OPAQUE_NULL
GIB = 1 << 30
STORAGE_OPERATION = 'migrate_send'


class ReceiveTokens(object):
    """migrate_receive tokens of this process's migrations, by task ref.

    Memory only, never persisted: the token is a session of the
    destination pool. ``release`` logs one out; call it only once its task
    has ended (``migrate_send`` uses the session until then).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._tokens = {}

    def hold(self, task, dest_pool, token, custodian=None):
        with self._lock:
            self._tokens[task] = (dest_pool, token, custodian)

    def held(self, task):
        with self._lock:
            return task in self._tokens

    def release(self, task):
        """Log out the token of ``task`` if this process holds it."""
        with self._lock:
            entry = self._tokens.pop(task, None)
        if entry is None:
            return False
        dest_pool, token, custodian = entry
        dest_pool.logout_token(token)
        if custodian is not None:
            custodian.done()
        return True

    def detach(self, task):
        """Stop tracking ``task`` and keep its token alive (for a retry).

        The token's custodian, if any, exits without logging it out.
        """
        with self._lock:
            entry = self._tokens.pop(task, None)
        if entry is not None and entry[2] is not None:
            entry[2].done()


RECEIVE_TOKENS = ReceiveTokens()


@dataclasses.dataclass
class Progress:
    """What a progress callback gets.

    ``bytes_*`` count the disks' data, ``memory_*`` the VM's memory
    (0 of 0 for a move of disks only); during the 'mirror' and 'copy'
    phases ``memory_done`` is 0, in 'memory' it grows with the task's
    progress past the storage share, at 'done' it equals
    ``memory_total``.
    """

    fraction: float
    phase: str              # 'mirror', 'copy', 'memory', 'done'
    disk: object            # plan.DiskStep being moved, or None
    bytes_done: int
    bytes_total: int
    memory_done: int = 0
    memory_total: int = 0


def progress_of(the_plan, fraction):
    """The ``Progress`` of a migrate_send task at ``fraction`` (pure)."""
    total = the_plan.bytes_to_move
    memory = int(the_plan.vm.memory or 0)
    phase, step = the_plan.phase(fraction)
    storage = min(1.0, fraction / planmod.STORAGE_SHARE)
    memory_done = 0
    if phase == 'memory':
        share = 1.0 - planmod.STORAGE_SHARE
        memory_done = round(memory * max(0.0, min(
            1.0, (fraction - planmod.STORAGE_SHARE) / share)))
    return Progress(fraction, phase, step, int(storage * total), total,
                    memory_done, memory)


class Receipt(object):
    """What ``host.migrate_receive`` answered: the destination map.

    The destination half of a migration. ``dest`` is the map
    ``VM.assert_can_migrate`` and ``VM.migrate_send`` take; its
    ``session_id`` is a live session of the destination pool (a secret:
    ``repr`` masks it, and it is never logged or persisted). ``release``
    logs it out (idempotent); ``Migrator.send`` takes care of that once
    its task has ended, so release a receipt yourself only when it is not
    handed to ``send``.
    """

    def __init__(self, pool, dest, host_ref=None, network_ref=None):
        self.pool = pool
        self.dest = dest
        self.host_ref = host_ref
        self.network_ref = network_ref
        self._lock = threading.Lock()
        self._handed = False
        redact.register(self.token)

    @property
    def token(self):
        return (self.dest or {}).get('session_id')

    @property
    def released(self):
        return self._handed

    def __repr__(self):
        return '<Receipt host=%s (token masked)>' % self.host_ref

    def _take(self):
        with self._lock:
            handed, self._handed = self._handed, True
        return not handed

    def release(self):
        """Log the token out unless that was done or handed on."""
        if self._take():
            self.pool.logout_token(self.token)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def receive(dest_pool, host_ref, network_ref, options=None):
    """``host.migrate_receive`` in the destination pool: a ``Receipt``."""
    dest = dest_pool.call('host.migrate_receive', host_ref, network_ref,
                          options or {})
    return Receipt(dest_pool, dest, host_ref, network_ref)


@dataclasses.dataclass
class Result:
    vm_ref: str             # the VM in the destination pool
    vm_uuid: str
    seconds: float
    bytes_planned: int      # the plan's upper bound of bytes to move
    disks: list             # [(userdevice, vdi uuid, SR uuid)] afterwards
    leftovers_removed: list
    warnings: list          # what went wrong after the VM had moved


@dataclasses.dataclass
class StateReport:
    """Where things stand after a failed or cancelled migration."""

    source_vm: str          # power state of the source VM, or 'gone'
    source_host: str
    dest_vm: str            # 'none' or the destination VM's power state
    new_vdis: list          # VDIs like the moved disks that appeared

    def describe(self):
        lines = ['State after the failure: source VM %s%s; destination '
                 'VM %s.' % (self.source_vm, ' on %s' % self.source_host
                             if self.source_host else '', self.dest_vm)]
        if self.new_vdis:
            lines.append('VDIs like the moved disks appeared on the target '
                         'SRs and were not removed (check them): %s'
                         % ', '.join(self.new_vdis))
        else:
            lines.append('No VDI was left behind on the target SRs.')
        return '\n'.join(lines)


class HostSlots(object):
    """At most ``limit`` storage migrations at once from one XAPI host.

    Share one object between every Migrator of a process
    (``shared_slots``) so that the limit holds across them. A waiter
    wakes as soon as a slot is released in this process (a Condition).
    With ``lock_path`` the slots are file locks shared with other
    processes, whose releases cannot notify this one: then a waiter also
    looks again every ``poll`` seconds. ``cancel_poll`` bounds how late a
    set ``cancel`` Event is noticed (an Event cannot wake a Condition).
    ``sleep`` is kept for compatibility and no longer used.
    """

    def __init__(self, limit=2, lock_path=None, poll=0.5,
                 sleep=time.sleep, cancel_poll=0.5):
        if not 1 <= limit <= constants.XAPI_MAX_STORAGE_MIGRATES:
            raise ValueError('limit must be 1..%d'
                             % constants.XAPI_MAX_STORAGE_MIGRATES)
        self.limit = limit
        self.lock_path = lock_path
        self.poll = poll
        self.cancel_poll = cancel_poll
        self._sleep = sleep
        self._semaphores = lockutils.Semaphores()
        self._released = threading.Condition()

    def _try(self, host_uuid):
        for i in range(self.limit):
            name = 'sxm-storage-migrate-%s-%d' % (host_uuid, i)
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

    def acquire(self, host_uuid, cancel=None):
        """A context manager holding one slot of ``host_uuid``.

        Raises ``errors.Cancelled`` when ``cancel`` is set first.
        """
        with self._released:
            while True:
                held = self._try(host_uuid)
                if held is not None:
                    return held
                if cancel is not None and cancel.is_set():
                    raise errors.Cancelled(
                        waiting='waiting for a free storage migration '
                                'slot of host %s' % host_uuid)
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


class Migrator(object):
    """Storage migrations from ``source`` (a SessionPool) to ``dest``.

    ``slots`` (a HostSlots) should be one long-lived object per process so
    that its limit holds across migrations. After TOO_MANY_STORAGE_MIGRATES
    the migration is retried as soon as a storage migration of the host
    ends, waiting at most ``too_many_interval`` seconds per retry;
    ``sleep`` replaces that wait (tests). ``custodian`` (a callable
    ``(task_ref, token, plan) -> Custodian`` or None) hands the
    migrate_receive token to a process that outlives this one (the CLI;
    a service's watchdog: ``fleet.owner_custodian_for``).
    """

    def __init__(self, source, dest=None, seconds_per_gib=800,
                 minimum_timeout=300, stall_timeout=600, slots=None,
                 too_many_retries=10, too_many_interval=600,
                 sleep=None, clock=time.monotonic, custodian=None):
        self.source = source
        self.dest = dest or source
        self.seconds_per_gib = seconds_per_gib
        self.minimum_timeout = minimum_timeout
        self.stall_timeout = stall_timeout or None
        self.slots = slots or shared_slots()
        self.too_many_retries = too_many_retries
        self.too_many_interval = too_many_interval
        self._sleep = sleep
        self._clock = clock
        self._custodian = custodian
        # (what happened, clock) of the TOO_MANY_STORAGE_MIGRATES retries.
        self.retry_log = []
        # id(plan) -> (weakref to the plan, its preflight problems).
        self._preflights = {}
        self._preflights_lock = threading.Lock()

    def preflight(self, the_plan):
        """``plan.preflight(the_plan)``, computed once per plan object."""
        key = id(the_plan)
        with self._preflights_lock:
            entry = self._preflights.get(key)
            if entry is not None and entry[0]() is the_plan:
                return list(entry[1])
        problems = planmod.preflight(the_plan)

        def forget(_ref, key=key):
            with self._preflights_lock:
                self._preflights.pop(key, None)
        with self._preflights_lock:
            self._preflights[key] = (weakref.ref(the_plan, forget),
                                     list(problems))
        return list(problems)

    # -- planning --------------------------------------------------------

    def plan(self, vm, **choices):
        """(plan, problems) for VM ``vm`` (a name, uuid or ref).

        ``choices`` are build_plan's: dest_host, sr_map, sr, tier,
        network_map, migration_network.
        """
        ref = vm if str(vm).startswith('OpaqueRef:') else \
            facts.find_vm(self.source, vm)
        # VDI utilisation is only as fresh as the last scan of its SR.
        facts.scan_srs(self.source, ref)
        source = facts.read_pool(self.source)
        dest = (source if self.dest is self.source
                else facts.read_pool(self.dest))
        vm_facts = facts.read_vm(self.source, ref)
        the_plan = planmod.build_plan(vm_facts, source, dest, **choices)
        return the_plan, self.preflight(the_plan)

    def check(self, the_plan, receipt=None):
        """Local preflight plus xapi's own VM.assert_can_migrate.

        With ``receipt`` (from ``receive``) the check uses that token and
        leaves it for ``migrate``/``send``; without, it asks for one and
        logs it out again.
        """
        problems = self.preflight(the_plan)
        if planmod.blocking(problems):
            return problems
        own = None
        try:
            if receipt is None:
                receipt = own = self.receive(the_plan)
            self.assert_can_migrate(the_plan, receipt)
        except errors.XapiFailure as exc:
            problems.append(planmod.Problem('xapi', 'XAPI refuses: %s'
                                            % exc))
        except errors.ConnectionFailed as exc:
            problems.append(planmod.Problem('connection', str(exc)))
        finally:
            if own is not None:
                own.release()
        return problems

    # -- the two halves ----------------------------------------------------

    def receive(self, the_plan):
        """The destination half: ``host.migrate_receive`` -> ``Receipt``.

        Asked of the destination pool for the plan's host and migration
        network. Hand it to ``check`` and then ``send`` (or ``migrate``),
        which logs it out once the migration has ended.
        """
        return receive(self.dest, the_plan.dest_host.ref,
                       the_plan.network.ref)

    def assert_can_migrate(self, the_plan, receipt):
        """The source half's check: ``VM.assert_can_migrate``.

        Raises ``errors.XapiFailure`` worded with the plan's names.
        """
        try:
            self.source.call('VM.assert_can_migrate', the_plan.vm.ref,
                             receipt.dest, the_plan.live, the_plan.vdi_map,
                             the_plan.vif_map, {})
        except errors.XapiFailure as exc:
            raise self._described(exc, the_plan) from None

    def _receive(self, the_plan):
        # Kept for callers of the old private helper: a bare dest map.
        return self.receive(the_plan).dest

    def _described(self, exc, the_plan):
        return errors.XapiFailure.from_details(
            [exc.code] + exc.params, call=exc.call,
            describe=describer(the_plan))

    def timeout_for(self, nbytes):
        return self.minimum_timeout + self.seconds_per_gib * nbytes / GIB

    # -- execution -------------------------------------------------------

    def migrate(self, the_plan, progress=None, cancel=None, receipt=None):
        """Run a checked plan; returns a Result or raises.

        ``receipt`` is the one ``check`` used (``receive``); without it
        the migration asks for one. Either way it is logged out once the
        migration has ended. Raises ``errors.MigrationCancelled`` (the
        cancel came before the point of no return: the source VM runs on),
        ``errors.MigrationFailed`` (XAPI ended the migration: its
        ``state`` says what is left, ``source_intact`` whether the source
        is whole) or ``errors.ContactLost`` (the task may still run: do
        not roll back). Once XAPI reports the migration done, nothing
        turns it into a failure: leftover removal and verification report
        problems in ``Result.warnings``.
        """
        problems = planmod.blocking(self.preflight(the_plan))
        if problems:
            if receipt is not None:
                receipt.release()
            raise errors.PreflightFailed(problems)
        if receipt is None:
            receipt = self.receive(the_plan)
        return self.send(the_plan, receipt, progress=progress,
                         cancel=cancel)

    def send(self, the_plan, receipt, progress=None, cancel=None):
        """The source half: ``Async.VM.migrate_send`` with ``receipt``.

        Waits for a storage migration slot of the source host, starts the
        migration with the plan's disk and network maps, follows it and
        verifies the outcome; see ``migrate`` for what it returns and
        raises. The receipt is logged out once the task has ended (kept
        while a task that lost contact may still use it).
        """
        vm = the_plan.vm
        cancel = cancel or threading.Event()
        what = 'migration of %s' % vm.label()
        try:
            before = self._target_vdis(the_plan)
            started = self._clock()
            host_uuid = self._source_host_uuid(the_plan)
        except BaseException:
            receipt.release()
            raise
        LOG.info('Starting %s to pool %s (%s to move)', what,
                 the_plan.dest.name,
                 planmod.human_bytes(the_plan.bytes_to_move))
        try:
            with self.slots.acquire(host_uuid, cancel):
                new_vm = self._send(the_plan, what, progress, cancel,
                                    receipt)
        except errors.ContactLost:
            # The source pool is silent: asking it what is left would only
            # hang. The error names the task, which may still be running.
            LOG.error('%s: lost contact with the source pool', what)
            raise
        except errors.TaskVanished as exc:
            # No outcome will ever be reported: where the VM is says it.
            receipt.release()
            state = self.report_state(the_plan, before)
            new_vm = self._arrived(the_plan, state)
            if new_vm is None:
                LOG.error('%s failed: %s', what, exc)
                raise errors.MigrationFailed(exc, state) from None
            LOG.warning('%s: %s The VM runs at the destination: the '
                        'migration completed.', what, exc)
        except errors.SxmError as exc:
            receipt.release()  # a no-op when its task released it
            state = self.report_state(the_plan, before)
            if isinstance(exc, (errors.TaskCancelled, errors.Cancelled)):
                LOG.warning('%s cancelled: %s', what, exc)
                raise errors.MigrationCancelled(exc, state) from None
            LOG.error('%s failed: %s', what, exc)
            raise errors.MigrationFailed(exc, state) from None
        except BaseException:
            receipt.release()
            raise
        result = Result(vm_ref=new_vm, vm_uuid=vm.uuid, seconds=0.0,
                        bytes_planned=the_plan.bytes_to_move, disks=[],
                        leftovers_removed=[], warnings=[])
        for step in (self._remove_leftovers, self.verify):
            try:
                step(the_plan, result)
            except errors.SxmError as exc:
                result.warnings.append('%s: %s' % (step.__doc__.split(
                    '\n')[0].rstrip('.'), exc))
        result.seconds = self._clock() - started
        for warning in result.warnings:
            LOG.warning('%s: %s', what, warning)
        if progress is not None:
            memory = int(the_plan.vm.memory or 0)
            progress(Progress(1.0, 'done', None, the_plan.bytes_to_move,
                              the_plan.bytes_to_move, memory, memory))
        LOG.info('%s finished in %.1f s', what, result.seconds)
        return result

    def _arrived(self, the_plan, state):
        """The VM's ref at the destination when a lost task completed.

        Across pools xapi destroys the source VM only once the VM runs at
        the destination; in a pool the VM resides on the destination host
        only after a migration. None: it did not arrive.
        """
        if the_plan.cross_pool:
            if state.source_vm != 'gone' or state.dest_vm in ('none',) or \
                    str(state.dest_vm).startswith('unknown'):
                return None
            if the_plan.live and state.dest_vm != constants.RUNNING:
                return None
            try:
                return self.dest.call('VM.get_by_uuid', the_plan.vm.uuid)
            except errors.SxmError:
                return None
        if the_plan.dest_host is None:
            return None
        try:
            here = self.source.call('VM.get_resident_on', the_plan.vm.ref)
        except errors.SxmError:
            return None
        return the_plan.vm.ref if here == the_plan.dest_host.ref else None

    def _send(self, the_plan, what, progress, cancel, receipt):
        total = the_plan.bytes_to_move

        def on_progress(fraction):
            if progress is not None:
                progress(progress_of(the_plan, fraction))

        describe = describer(the_plan)
        watch = tasks.Watch(progress=on_progress, cancel=cancel,
                            timeout=self.timeout_for(total
                                                     + the_plan.vm.memory),
                            stall_timeout=self.stall_timeout,
                            describe=describe, clock=self._clock)
        attempts = []

        def once():
            if attempts:
                if cancel.is_set():
                    raise errors.Cancelled(waiting='waiting to retry the '
                                           + what)
                self.retry_log.append(('retry', self._clock()))
            attempts.append(self._clock())
            return self._send_once(the_plan, what, watch, describe,
                                   receipt)

        def on_retry(exc, attempt, seconds):
            self.retry_log.append(('refused', self._clock()))
            LOG.warning('Host busy with other storage migrations; '
                        'retry %d of %d when one of them ends (at most '
                        '%d s)', attempt, self.too_many_retries,
                        self.too_many_interval)

        def wait(seconds):
            if self._sleep is not None:
                self._sleep(seconds)
            else:
                self._wait_for_slot(the_plan, cancel)

        # The same receipt for every attempt: migrate_receive runs once.
        return retry.call(
            once, self.too_many_retries,
            retry_if=lambda exc: (isinstance(
                exc, errors.TooManyStorageMigrates) and not cancel.is_set()),
            delay=lambda attempt: self.too_many_interval, wait=wait,
            on_retry=on_retry)

    def _send_once(self, the_plan, what, watch, describe, receipt):
        """One migrate_send: start it, hold its token, wait for its end."""
        token = receipt.token
        method = 'VM.migrate_send'
        try:
            task = self.source.call(
                'Async.' + method, the_plan.vm.ref, receipt.dest,
                the_plan.live, the_plan.vdi_map, the_plan.vif_map, {})
        except errors.XapiFailure as exc:
            raise errors.XapiFailure.from_details(
                [exc.code] + exc.params, call=method,
                describe=describe) from None
        custodian = None
        if self._custodian is not None:
            try:
                custodian = self._custodian(task, token, the_plan)
            except Exception:  # the migration matters more than the guard
                LOG.exception('Could not start the token custodian of %s',
                              what)
        # From here the task's end logs the token out, not the receipt.
        receipt._take()
        RECEIVE_TOKENS.hold(task, self.dest, token, custodian)
        # The destination pool is not needed until the task ends: a
        # process killed meanwhile leaves no login of its own there.
        if self.dest is not self.source:
            self.dest.release_idle()
        ended = silent = busy = False
        try:
            value = tasks.wait_task(self.source, task, what, watch=watch,
                                    call=method)
            ended = True
            return value
        except errors.ContactLost:
            # The task may still run: it keeps its token, and asking the
            # silent pool about it would only hang.
            silent = True
            raise
        except errors.TooManyStorageMigrates:
            # Refused before it began: the token serves the retry.
            ended = busy = True
            raise
        except errors.XapiFailure:
            ended = True  # the task's own error: it has ended
            raise
        finally:
            if not silent and (ended or not self._task_running(task)):
                if busy:
                    RECEIVE_TOKENS.detach(task)
                    receipt._handed = False
                else:
                    RECEIVE_TOKENS.release(task)
                self._destroy_task(task, what)

    def _task_running(self, task):
        try:
            return self.source.call('task.get_status', task) in (
                constants.TASK_PENDING, constants.TASK_CANCELLING)
        except errors.HandleInvalid:
            return False
        except errors.SxmError:
            return True  # cannot tell: keep the token for a later watch

    def _destroy_task(self, task, what):
        try:
            self.source.call('task.destroy', task)
        except errors.HandleInvalid:
            pass  # gone already (a toolstack restart forgets tasks)
        except errors.SxmError as exc:
            LOG.warning('Could not destroy the task of %s: %s', what, exc)

    def _wait_for_slot(self, the_plan, cancel):
        """Wait until the source host runs fewer storage migrations.

        Watches VMs and tasks with event.from: xapi counts a storage
        migration from its start to the end of the VM's migrate_send
        operation (VM.current_operations). Returns at the latest after
        ``too_many_interval`` seconds or when ``cancel`` is set.
        """
        host = the_plan.vm.resident_on
        if host == NULL:
            host = the_plan.source.master
        deadline = self._clock() + self.too_many_interval
        busy = {}   # VM ref -> its storage migration tasks, on ``host``
        token = ''
        with self.source.private_session() as session:
            while not cancel.is_set() and self._clock() < deadline:
                try:
                    answer = session.xenapi.event_from(
                        ['VM'], token, tasks.EVENT_TIMEOUT)
                except XenAPI.Failure as failure:
                    exc = errors.XapiFailure.from_failure(
                        failure, call='event.from')
                    if isinstance(exc, errors.EventsLost):
                        token, busy = '', {}
                        continue
                    raise exc from None
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
                    return
        LOG.info('No storage migration of the host ended within %d s; '
                 'retrying anyway', self.too_many_interval)

    def _source_host_uuid(self, the_plan):
        ref = the_plan.vm.resident_on
        if ref == NULL:
            ref = the_plan.source.master
        host = the_plan.source.host(ref)
        return host.uuid if host else ref

    # -- afterwards --------------------------------------------------------

    def verify(self, the_plan, result):
        """Check that the VM runs where planned with every disk moved."""
        with self.dest.session() as s:
            x = s.xenapi
            rec = x.VM.get_record(result.vm_ref)
            problems = []
            if the_plan.live and rec['power_state'] != constants.RUNNING:
                problems.append('the VM is %s' % rec['power_state'])
            if (the_plan.live and the_plan.dest_host is not None
                    and rec['resident_on'] != the_plan.dest_host.ref):
                problems.append('the VM is not on host %s'
                                % the_plan.dest_host.name)
            planned = {s.disk.userdevice: s for s in the_plan.disks}
            for vbd in rec['VBDs']:
                vbd_rec = x.VBD.get_record(vbd)
                if vbd_rec['VDI'] == NULL or vbd_rec['type'] == 'CD':
                    continue
                vdi_rec = x.VDI.get_record(vbd_rec['VDI'])
                sr_uuid = x.SR.get_uuid(vdi_rec['SR'])
                result.disks.append((vbd_rec['userdevice'], vdi_rec['uuid'],
                                     sr_uuid))
                step = planned.get(vbd_rec['userdevice'])
                if step is not None and step.dest_sr is not None and \
                        sr_uuid != step.dest_sr.uuid:
                    problems.append('disk %s is on SR %s, not %s' % (
                        vbd_rec['userdevice'], sr_uuid, step.dest_sr.uuid))
        if problems:
            raise errors.VerificationFailed(problems='; '.join(problems))

    def _remove_leftovers(self, the_plan, result):
        """Strip sm_config base_mirror that older xapi left on new VDIs."""
        with self.dest.session() as s:
            x = s.xenapi
            for vbd in x.VM.get_VBDs(result.vm_ref):
                vdi = x.VBD.get_VDI(vbd)
                if vdi == NULL:
                    continue
                if 'base_mirror' in x.VDI.get_sm_config(vdi):
                    x.VDI.remove_from_sm_config(vdi, 'base_mirror')
                    result.leftovers_removed.append(
                        '%s:base_mirror' % x.VDI.get_uuid(vdi))

    def _target_vdis(self, the_plan):
        srs = {s.dest_sr.ref for s in the_plan.disks + the_plan.snapshot_disks
               if s.dest_sr is not None}
        out = set()
        with self.dest.session() as s:
            for sr in srs:
                out.update(s.xenapi.SR.get_VDIs(sr))
        return out

    def report_state(self, the_plan, before):
        """What a failed migration left: the VMs and any new VDIs.

        Only VDIs that look like the moved disks (same name and size) and
        appeared on the target SRs meanwhile are listed: other tenants use
        those SRs too. Nothing here deletes anything.
        """
        vm = the_plan.vm
        source_vm, source_host = 'unknown', ''
        try:
            rec = self.source.call('VM.get_record', vm.ref)
            source_vm = rec['power_state']
            host = the_plan.source.host(rec['resident_on'])
            source_host = host.name if host else ''
        except errors.HandleInvalid:
            source_vm = 'gone'
        except errors.SxmError as exc:
            source_vm = 'unknown (%s)' % exc
        dest_vm = 'none'
        if the_plan.cross_pool:
            try:
                ref = self.dest.call('VM.get_by_uuid', vm.uuid)
                dest_vm = self.dest.call('VM.get_power_state', ref)
            except errors.XapiFailure:
                pass
            except errors.SxmError as exc:
                dest_vm = 'unknown (%s)' % exc
        moved = {(s.disk.name, s.disk.virtual_size)
                 for s in the_plan.disks + the_plan.snapshot_disks
                 if s.transfer}
        new = []
        try:
            # Listed first: _target_vdis borrows a pooled session itself,
            # and a pool of one has no second one to give.
            appeared = sorted(self._target_vdis(the_plan) - before)
            with self.dest.session() as s:
                for vdi in appeared:
                    rec = s.xenapi.VDI.get_record(vdi)
                    if (rec['name_label'], int(rec['virtual_size'])) in moved:
                        new.append(rec['uuid'])
        except errors.SxmError as exc:
            new.append('(could not list: %s)' % exc)
        return StateReport(source_vm, source_host, dest_vm, new)

    def cleanup_destination(self, the_plan):
        """Remove what a failed or aborted migration left at the destination.

        See ``cleanup_destination``; the source VM must still exist in the
        source pool (else the migration completed and nothing is removed).
        Safe to call twice. Returns what was removed.
        """
        keep = [s.disk.uuid for s in the_plan.disks + the_plan.snapshot_disks]
        return cleanup_destination(self.dest, the_plan.vm.uuid, keep,
                                   cross_pool=the_plan.cross_pool,
                                   source_pool=self.source)

    # -- single VDIs (Cinder) ------------------------------------------------

    def move_vdi(self, vdi_uuid, sr, progress=None, cancel=None,
                 lock_key=None, lock=True, on_task=None):
        """Move one VDI to SR ``sr`` (ref, uuid or name) in this pool.

        Plugged into a running VM: ``VDI.pool_migrate`` (live; the VBD
        follows, the VDI gets a new uuid). Otherwise ``VDI.copy``, the VBDs
        of a halted VM recreated on the copy, then ``VDI.destroy`` of the
        original. Returns a ``volumes.VdiMove``.

        ``on_task(task_ref)`` is called as soon as XAPI has accepted the
        copy, so that a caller can record the task durably: XAPI goes on
        with it if this process dies, and a successor can follow it
        (``finish_copy``).

        Holds ``volumes.volume_lock(lock_key or vdi_uuid)`` (across
        processes when the slots have a lock path) unless ``lock`` is False
        because the caller holds it. A move that waited for another finds
        the VDI gone when that one moved it: ``errors.NotFound``.
        """
        if not lock:
            return self._move_vdi(vdi_uuid, sr, progress, cancel, on_task)
        with volumes.volume_lock(lock_key or vdi_uuid, self.slots.lock_path):
            return self._move_vdi(vdi_uuid, sr, progress, cancel, on_task)

    def _move_vdi(self, vdi_uuid, sr, progress, cancel, on_task=None):
        pool = self.source
        sr_ref, sr_uuid, sr_name = volumes.find_sr(pool, sr)
        try:
            vdi = pool.call('VDI.get_by_uuid', vdi_uuid)
        except errors.XapiFailure as exc:
            if exc.code != 'UUID_INVALID':
                raise
            raise errors.NotFound(
                'No VDI %s in pool %s (was it moved or removed meanwhile?)'
                % (vdi_uuid, pool.url)) from None
        rec = pool.call('VDI.get_record', vdi)
        if rec['SR'] == sr_ref:
            return volumes.VdiMove(vdi_uuid, sr_uuid, moved=False)
        size = int(rec['virtual_size'])
        what = "move of VDI '%s' (%s) to SR '%s' (%s)" % (
            rec['name_label'], vdi_uuid, sr_name, sr_uuid)
        watch = tasks.Watch(
            progress=(lambda f: progress(Progress(f, 'copy', None,
                                                  int(f * size), size)))
            if progress else None,
            cancel=cancel, timeout=self.timeout_for(size),
            stall_timeout=self.stall_timeout)
        announcing = _Announcing(pool, on_task)
        live = self._running_vbd(rec['VBDs'])
        if live is not None:
            vm = pool.call('VBD.get_VM', live)
            host_uuid = pool.call('host.get_uuid',
                                  pool.call('VM.get_resident_on', vm))
            device = pool.call('VBD.get_userdevice', live)
            try:
                with self.slots.acquire(host_uuid, cancel):
                    new = tasks.call_async(announcing, 'VDI.pool_migrate',
                                           (vdi, sr_ref, {}), what,
                                           watch=watch)
            except (errors.HandleInvalid, errors.TaskVanished) as exc:
                # The task is gone (a toolstack restart fails and forgets
                # running tasks), not necessarily the move: past the point
                # of no return the VM runs on the new VDI.
                new = self._moved_disk(vm, device, vdi_uuid, sr_ref)
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
        new_uuid = self.source.call('VDI.get_uuid', new)
        # xapi removes the original itself; one still there is left.
        left = () if new_uuid == vdi_uuid or not self._vdi_exists(
            vdi_uuid) else (vdi_uuid,)
        if left:
            LOG.warning('%s done, but xapi left the original VDI %s '
                        'behind', what, vdi_uuid)
        return volumes.VdiMove(new_uuid, sr_uuid, moved=True, live=True,
                               leftovers=left)

    def finish_copy(self, vdi, new, what, vbds=None):
        """End a move by VDI.copy: ``new``, the copy, replaces ``vdi``.

        ``new`` takes the place of ``vdi`` in its VBDs (``vbds``, default:
        its VBDs now), then ``vdi`` is destroyed. Returns the ``VdiMove``.

        Also for a successor process: a copy whose task succeeded after
        the mover died is finished the same way.
        """
        pool = self.source
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
        new_uuid = pool.call('VDI.get_uuid', new)
        sr_uuid = pool.call('SR.get_uuid', pool.call('VDI.get_SR', new))
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
        return volumes.VdiMove(new_uuid, sr_uuid, moved=True, live=False,
                               leftovers=left)

    def _moved_disk(self, vm, device, vdi_uuid, sr_ref):
        """VM ``vm``'s disk ``device`` if it is now a VDI on ``sr_ref``.

        None unless the original VDI ``vdi_uuid`` is gone and the disk is
        another VDI on that SR.
        """
        if self._vdi_exists(vdi_uuid):
            return None
        for vbd in self.source.call('VM.get_VBDs', vm):
            rec = self.source.call('VBD.get_record', vbd)
            if rec['userdevice'] == device and not rec['empty'] and \
                    self.source.call('VDI.get_SR', rec['VDI']) == sr_ref:
                return rec['VDI']
        return None

    def _vdi_exists(self, vdi_uuid):
        """False only when XAPI says so: after a move, never raise."""
        try:
            self.source.call('VDI.get_by_uuid', vdi_uuid)
        except errors.XapiFailure as exc:
            return exc.code != 'UUID_INVALID'
        except errors.SxmError:
            pass
        return True

    def _running_vbd(self, vbds):
        """A VBD of ``vbds`` plugged into a running VM, or None."""
        for vbd in vbds:
            rec = self.source.call('VBD.get_record', vbd)
            if rec['currently_attached'] and self.source.call(
                    'VM.get_power_state', rec['VM']) == constants.RUNNING:
                return vbd
        return None

    def _repoint_vbd(self, vbd, vdi):
        """VBD.VDI cannot be set: recreate the VBD on ``vdi``."""
        rec = self.source.call('VBD.get_record', vbd)
        fields = {k: rec[k] for k in (
            'VM', 'userdevice', 'bootable', 'mode', 'type', 'unpluggable',
            'other_config', 'qos_algorithm_type', 'qos_algorithm_params')}
        fields['empty'] = False
        self.source.call('VBD.destroy', vbd)  # frees the userdevice
        try:
            return self.source.call('VBD.create', dict(fields, VDI=vdi))
        except errors.SxmError:
            self.source.call('VBD.create', dict(fields, VDI=rec['VDI']))
            raise


class _Announcing(object):
    """A SessionPool that tells ``on_task`` the ref of each Async task.

    A failing ``on_task`` is logged, never raised: the task runs already
    and must be waited for.
    """

    def __init__(self, pool, on_task):
        self._pool = pool
        self._on_task = on_task

    def __getattr__(self, name):
        return getattr(self._pool, name)

    def call(self, method, *args):
        result = self._pool.call(method, *args)
        if method.startswith('Async.'):
            # The owner is registered for the pool, not for this wrapper.
            tasks.tag(self._pool, result)
        if self._on_task is not None and method.startswith('Async.'):
            try:
                self._on_task(result)
            except Exception:
                LOG.exception('Could not record task %s of %s', result,
                              method)
        return result


def cleanup_destination(dest_pool, vm_uuid, source_vdis=(), cross_pool=True,
                        source_pool=None):
    """Remove what a failed or aborted migration of ``vm_uuid`` left.

    In the destination pool: across pools, a halted VM record with the
    source VM's uuid (and its snapshots) and the VDIs of its disks; in
    either case, VDIs still marked as mirror targets (``sm_config
    base_mirror``) of the VM's disks ``source_vdis`` (uuids). A VDI with
    one of those uuids is never removed: a shared SR's VDI keeps its uuid
    in both pools. xapi normally removes all this itself; this is for
    what a crash or a lost connection left.

    Raises ``errors.MigrationCompleted`` when the VM runs in the
    destination pool, or is gone from ``source_pool`` (when given): the
    migration finished and nothing may be removed. Safe to call twice:
    the second call finds nothing. Returns [description of each removed
    object]; a step that fails does not stop the others
    (``errors.CleanupFailed`` at the end).
    """
    keep = set(source_vdis)
    removed = []
    undo = errors.ErrorCollector()
    pool_name = sessions.safe_url(dest_pool.url)
    if source_pool is not None:
        try:
            ref = source_pool.call('VM.get_by_uuid', vm_uuid)
            ops = source_pool.call('VM.get_current_operations', ref)
        except errors.XapiFailure as exc:
            if exc.code not in ('UUID_INVALID', 'HANDLE_INVALID') or \
                    not cross_pool:
                raise
            raise errors.MigrationCompleted(
                vm_uuid=vm_uuid, pool=pool_name,
                why='the source VM is gone') from None
        if STORAGE_OPERATION in ops.values():
            raise errors.MigrationRunning(vm_uuid=vm_uuid)
    with dest_pool.session() as s:
        x = s.xenapi
        vdis = []   # refs of VDIs created for the VM
        if cross_pool:
            try:
                vm = x.VM.get_by_uuid(vm_uuid)
            except XenAPI.Failure as failure:
                if failure.details[:1] != ['UUID_INVALID']:
                    raise
                vm = None
            if vm is not None:
                rec = x.VM.get_record(vm)
                if rec['power_state'] != constants.HALTED:
                    raise errors.MigrationCompleted(
                        vm_uuid=vm_uuid, pool=pool_name,
                        why='the VM is %s there' % rec['power_state'])
                for owner in list(rec['snapshots']) + [vm]:
                    for vbd in x.VM.get_VBDs(owner):
                        vbd_rec = x.VBD.get_record(vbd)
                        if vbd_rec['type'] == 'CD' or \
                                vbd_rec['VDI'] == NULL:
                            continue
                        if x.VDI.get_uuid(vbd_rec['VDI']) not in keep:
                            vdis.append(vbd_rec['VDI'])
                for owner in list(rec['snapshots']) + [vm]:
                    with undo.context('removing VM %s', owner):
                        x.VM.destroy(owner)
                        removed.append('VM %s' % (
                            vm_uuid if owner == vm else owner))
        marks = {'/' + uuid for uuid in keep}
        for ref, rec in x.VDI.get_all_records().items():
            mark = (rec.get('sm_config') or {}).get('base_mirror', '')
            if rec['uuid'] not in keep and any(
                    mark.endswith(m) for m in marks) and ref not in vdis:
                vdis.append(ref)
        for vdi in vdis:
            with undo.context('removing VDI %s', vdi):
                try:
                    uuid = x.VDI.get_uuid(vdi)
                    x.VDI.destroy(vdi)
                except XenAPI.Failure as failure:
                    if failure.details[:1] == ['HANDLE_INVALID']:
                        continue  # gone already: cleaned twice
                    raise
                removed.append('VDI %s' % uuid)
    if removed:
        LOG.info('Removed what the migration of VM %s left in the pool at '
                 '%s: %s', vm_uuid, pool_name, ', '.join(removed))
    undo.raise_if_any()
    return removed


def describer(the_plan):
    """A callback naming refs of the plan's objects for error messages."""
    names = {}
    vm = the_plan.vm
    names[vm.ref] = vm.label()
    for step in the_plan.disks + the_plan.snapshot_disks:
        names[step.disk.vdi] = step.disk.label()
    for pool in (the_plan.source, the_plan.dest):
        for sr in pool.srs:
            names[sr.ref] = sr.label()
        for net in pool.networks:
            names[net.ref] = "network '%s' (%s)" % (net.name, net.uuid)
        for host in pool.hosts:
            names[host.ref] = "host '%s' (%s)" % (host.name, host.uuid)
    for vif in vm.vifs:
        names[vif.ref] = '%s of %s' % (vif.label(), vm.label())

    def describe(kind, ref):
        return names.get(ref)
    return describe
