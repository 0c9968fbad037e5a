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

"""Running storage migrations: plan, check, send, verify.

``Migrator`` ties a source pool (and a destination pool, for cross-pool
moves) to the planner and XAPI: ``plan`` reads what the VM's move needs
and builds a plan, ``prepare`` asks the destination for a migrate_receive
token (a ``lease.Lease``) and has xapi check the plan with it, ``send``
runs ``VM.migrate_send`` within a storage migration slot of the source
host (``slots``), retries xapi's TOO_MANY_STORAGE_MIGRATES with the same
token, scales the timeout with the bytes to move and verifies the
outcome; after a failure it reports what state the migration left. A plan
built with ``copy`` runs xapi's copy mode (options ``{"copy": "true"}``):
a halted VM copied to another pool, the source left as it was; the
Result names the copy.
"""

import dataclasses
import threading
import time
import weakref

from sxm_core import cleanup
from sxm_core import conf
from sxm_core import constants
from sxm_core import errors
from sxm_core import facts
from sxm_core import lease as leasemod
from sxm_core import plan as planmod
from sxm_core import redact
from sxm_core import retry
from sxm_core import slots as slotsmod
from sxm_core import tasks

LOG = redact.get_logger(__name__)
NULL = constants.OPAQUE_NULL
GIB = 1 << 30


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


@dataclasses.dataclass(frozen=True)
class Survey:
    """What a plan is built from: facts of the VM and of both pools."""

    vm: object              # facts.VmFacts
    source: object          # facts.PoolFacts of the source pool
    dest: object            # facts.PoolFacts of the destination pool


class Migrator(object):
    """Storage migrations from ``source`` (a SessionPool) to ``dest``.

    ``slots`` (a ``slots.HostSlots``) should be one long-lived object per
    process so that its limit holds across migrations. After
    TOO_MANY_STORAGE_MIGRATES the migration is retried as soon as a
    storage migration of the host ends, waiting at most
    ``too_many_interval`` seconds per retry; ``sleep`` replaces that wait
    (tests). ``custodian`` (a callable ``(task_ref, token, plan) ->
    object with done()`` or None) hands the migrate_receive token to a
    process that outlives this one, told when the lease ends. ``leases``
    (a ``lease.Leases``, default: one of its own) books the tokens of its
    running tasks: pass it to whatever follows a task after a lost
    contact, to end the token when the task has ended. By default the
    destination pool's idle sessions are logged out during the task
    wait, so that a process killed meanwhile leaves no login of its own
    there (the checks after the task read through the migrate_receive
    session, which lives until the lease ends anyway);
    ``keep_dest_sessions`` keeps them, for a caller that uses the
    destination pool again soon after.
    """

    def __init__(self, source, dest=None, seconds_per_gib=800,
                 minimum_timeout=300, stall_timeout=600, slots=None,
                 too_many_retries=10, too_many_interval=600,
                 sleep=None, clock=time.monotonic, custodian=None,
                 leases=None, keep_dest_sessions=False):
        self.source = source
        self.dest = dest or source
        self.seconds_per_gib = seconds_per_gib
        self.minimum_timeout = minimum_timeout
        self.stall_timeout = stall_timeout or None
        self.slots = slots or slotsmod.shared_slots()
        self.too_many_retries = too_many_retries
        self.too_many_interval = too_many_interval
        self.leases = leases if leases is not None else leasemod.Leases()
        self.keep_dest_sessions = keep_dest_sessions
        self._sleep = sleep
        self._clock = clock
        self._custodian = custodian
        # (what happened, clock) of the TOO_MANY_STORAGE_MIGRATES retries.
        self.retry_log = []
        # id(plan) -> (weakref to the plan, its preflight problems).
        self._preflights = {}
        self._preflights_lock = threading.Lock()

    @classmethod
    def from_options(cls, source, dest, options, **extra):
        """A Migrator configured by ``options``.

        ``options``: anything with ``sxm_core.conf``'s MIGRATION_OPTS
        names as attributes (an oslo.config group, an argparse
        namespace); ``extra`` adds or overrides keywords (custodian,
        leases, slots...).
        """
        kwargs = conf.migrator_kwargs(options)
        kwargs.update(extra)
        return cls(source, dest, **kwargs)

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

    def survey(self, vm, **choices):
        """Read what planning VM ``vm`` (a name, uuid or ref) needs.

        The VM's own records (its thin SRs scanned first: VDI utilisation
        is only as fresh as the last scan) and, of both pools, what the VM
        and ``choices`` (``plan``'s) name: never whole pools. One survey
        serves several ``plan`` calls whose choices it covers (e.g. with
        and without moving the disks: survey with the ``sr_map`` that
        moves them).
        """
        return Survey(*facts.gather(self.source, self.dest, vm, choices))

    def plan(self, vm, survey=None, **choices):
        """(plan, problems) for VM ``vm`` (a name, uuid or ref).

        ``survey`` (from ``survey``) saves reading the pools again.
        ``choices`` are build_plan's: dest_host, sr_map, sr, tier,
        network_map, migration_network.
        """
        survey = survey or self.survey(vm, **choices)
        the_plan = planmod.build_plan(survey.vm, survey.source, survey.dest,
                                      **choices)
        return the_plan, self.preflight(the_plan)

    def prepare(self, the_plan):
        """(problems, lease): ready ``the_plan`` to be sent.

        Local preflight; unless it blocks, ``host.migrate_receive`` in the
        destination pool and xapi's own ``VM.assert_can_migrate`` with
        that token. ``lease`` is the token (a HELD ``lease.Lease``) for
        ``send``/``migrate``, or None when a problem blocks (a token
        received was ended already). A caller that does not go on ends
        it with ``lease.release()``.
        """
        problems = self.preflight(the_plan)
        if planmod.blocking(problems):
            return problems, None
        held = None
        try:
            held = self.receive(the_plan)
            self.assert_can_migrate(the_plan, held)
        except errors.XapiFailure as exc:
            problems.append(planmod.Problem('xapi', 'XAPI refuses: %s'
                                            % exc))
        except errors.ConnectionFailed as exc:
            problems.append(planmod.Problem('connection', str(exc)))
        if planmod.blocking(problems):
            if held is not None:
                held.end()
            return problems, None
        return problems, held

    def check(self, the_plan):
        """``prepare``'s problems, the token ended again (a dry run)."""
        problems, held = self.prepare(the_plan)
        if held is not None:
            held.end()
        return problems

    def receive(self, the_plan):
        """``host.migrate_receive`` for the plan: a HELD ``lease.Lease``."""
        return leasemod.receive(self.dest, the_plan.dest_host.ref,
                                the_plan.network.ref)

    def assert_can_migrate(self, the_plan, held):
        """``VM.assert_can_migrate`` with the token of lease ``held``.

        Raises ``errors.XapiFailure`` worded with the plan's names.
        """
        try:
            self.source.call('VM.assert_can_migrate', the_plan.vm.ref,
                             held.dest, the_plan.live, the_plan.vdi_map,
                             the_plan.vif_map, the_plan.options)
        except errors.XapiFailure as exc:
            raise exc.reworded(describe=describer(the_plan)) from None

    def timeout_for(self, nbytes):
        return self.minimum_timeout + self.seconds_per_gib * nbytes / GIB

    # -- execution -------------------------------------------------------

    def migrate(self, the_plan, progress=None, cancel=None, lease=None):
        """Run a checked plan; returns a Result or raises.

        ``lease`` is the one ``prepare`` returned; without it the
        migration asks for one. Either way it is ended once the migration
        has ended. Raises ``errors.PreflightFailed``,
        ``errors.MigrationCancelled`` (the cancel came before the point
        of no return: the source VM runs on), ``errors.MigrationFailed``
        (XAPI ended the migration: its ``state`` says what is left,
        ``source_intact`` whether the source is whole) or
        ``errors.ContactLost`` (the task may still run: do not roll
        back; its lease stays booked in ``leases``). Once XAPI reports
        the migration done, nothing turns it into a failure: leftover
        removal and verification report problems in ``Result.warnings``.
        """
        problems = planmod.blocking(self.preflight(the_plan))
        if problems:
            if lease is not None:
                lease.release()
            raise errors.PreflightFailed(problems)
        if lease is None:
            lease = self.receive(the_plan)
        return self.send(the_plan, lease, progress=progress, cancel=cancel)

    def send(self, the_plan, lease, progress=None, cancel=None):
        """The source half: ``Async.VM.migrate_send`` with ``lease``.

        Waits for a storage migration slot of the source host, starts the
        migration with the plan's disk and network maps, follows it and
        verifies the outcome; see ``migrate`` for what it returns and
        raises. The lease is ended once the task has ended (kept while a
        task that lost contact may still use it).
        """
        if lease.ended:
            # Its session is gone: a task would start and fail with it.
            raise leasemod.LeaseError(what='used for a migration',
                                      state=lease.state)
        vm = the_plan.vm
        cancel = cancel or threading.Event()
        what = 'migration of %s' % vm.label()
        before = planned_vdis(the_plan)
        started = self._clock()
        try:
            host = self._source_host(the_plan)
        except BaseException:
            lease.release()
            raise
        LOG.info('Starting %s to pool %s (%s to move)', what,
                 the_plan.dest.name,
                 planmod.human_bytes(the_plan.bytes_to_move))
        try:
            with self.slots.acquire(host, cancel):
                new_vm = self._send(the_plan, what, progress, cancel, lease)
        except errors.ContactLost:
            # The source pool is silent: asking it what is left would only
            # hang. The error names the task, which may still be running.
            LOG.error('%s: lost contact with the source pool', what)
            raise
        except errors.TaskVanished as exc:
            # No outcome will ever be reported: where the VM is says it.
            lease.release()
            state = self.report_state(the_plan, before)
            new_vm = self._arrived(the_plan, state)
            if new_vm is None:
                LOG.error('%s failed: %s', what, exc)
                raise errors.MigrationFailed(exc, state) from None
            LOG.warning('%s: %s The VM runs at the destination: the '
                        'migration completed.', what, exc)
        except errors.SxmError as exc:
            lease.release()  # a no-op when its task ended it
            state = self.report_state(the_plan, before)
            if isinstance(exc, (errors.TaskCancelled, errors.Cancelled)):
                LOG.warning('%s cancelled: %s', what, exc)
                raise errors.MigrationCancelled(exc, state) from None
            LOG.error('%s failed: %s', what, exc)
            raise errors.MigrationFailed(exc, state) from None
        except BaseException:
            lease.release()
            raise
        result = Result(vm_ref=new_vm, vm_uuid=vm.uuid, seconds=0.0,
                        bytes_planned=the_plan.bytes_to_move, disks=[],
                        leftovers_removed=[], warnings=[])
        try:
            self._check_arrival(the_plan, result, lease)
        finally:
            # Kept until now (a task that succeeded leaves it HANDED):
            # the checks read the destination through it.
            lease.end()
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

    def _send(self, the_plan, what, progress, cancel, held):
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
            return self._send_once(the_plan, what, watch, describe, held)

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

        # The same lease for every attempt: migrate_receive runs once.
        return retry.call(
            once, self.too_many_retries,
            retry_if=lambda exc: (isinstance(
                exc, errors.TooManyStorageMigrates) and not cancel.is_set()),
            delay=lambda attempt: self.too_many_interval, wait=wait,
            on_retry=on_retry)

    def _send_once(self, the_plan, what, watch, describe, held):
        """One migrate_send: start it, hand it the lease, wait for its end."""
        method = 'VM.migrate_send'
        try:
            task = self.source.call(
                'Async.' + method, the_plan.vm.ref, held.dest,
                the_plan.live, the_plan.vdi_map, the_plan.vif_map,
                the_plan.options)
        except errors.XapiFailure as exc:
            raise exc.reworded(call=method, describe=describe) from None
        custodian = None
        if self._custodian is not None:
            try:
                custodian = self._custodian(task, held.token, the_plan)
            except Exception:  # the migration matters more than the guard
                LOG.exception('Could not start the token custodian of %s',
                              what)
        held.hand(task, self.leases, custodian)
        # The destination pool is not needed until the task ends (then the
        # lease's own session reads it): a process killed meanwhile
        # leaves no login of its own there.
        if self.dest is not self.source and not self.keep_dest_sessions:
            self.dest.release_idle()
        ended = silent = busy = done = False
        try:
            value = tasks.wait_task(self.source, task, what, watch=watch,
                                    call=method)
            ended = done = True
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
                    held.keep()
                elif not done:
                    held.end()  # done: send() ends it after its checks
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
        """Wait until the source host runs fewer storage migrations."""
        host = the_plan.vm.resident_on
        if host == NULL:
            host = the_plan.source.master
        if not slotsmod.wait_for_free_slot(self.source, host, cancel,
                                           self.too_many_interval,
                                           clock=self._clock):
            LOG.info('No storage migration of the host ended within %d s; '
                     'retrying anyway', self.too_many_interval)

    @staticmethod
    def _source_host(the_plan):
        """The ref of the host that runs the migration (its slots' key)."""
        ref = the_plan.vm.resident_on
        return the_plan.source.master if ref == NULL else ref

    # -- afterwards --------------------------------------------------------

    def _check_arrival(self, the_plan, result, lease):
        """Strip leftovers and verify, reading through ``lease``'s session.

        xapi leaves the migrate_receive session logged in for its owner
        to end: reading the destination through it costs no login. When
        it is gone (a lost task's lease was ended, a toolstack restart
        forgot it), a session of the pool reads instead. What fails is a
        warning: the VM has moved.
        """
        # The step under way: a broken connection surfaces only when its
        # session is given back.
        stage = [self.verify]
        try:
            if not lease.ended and lease.token:
                try:
                    with self.dest.token_session(lease.token) as x:
                        self._after(the_plan, result, x, stage)
                    return
                except errors.SessionInvalid:
                    LOG.info('The migrate_receive session of %s is gone; '
                             'checking with a session of our own',
                             the_plan.vm.label())
                    del result.disks[:], result.warnings[:]
                    stage[0] = self.verify
            with self.dest.session() as x:
                self._after(the_plan, result, x, stage)
        except errors.SxmError as exc:
            result.warnings.append(_step_failed(stage[0], exc))

    def _after(self, the_plan, result, x, stage):
        arrived = self._arrived_disks(the_plan, result.vm_ref, x)
        if the_plan.copy:
            # A copy (copy mode) is a new VM with a uuid of its own.
            result.vm_uuid = arrived[0]['uuid']
        for step in (self._remove_leftovers, self.verify):
            stage[0] = step
            try:
                step(the_plan, result, x, arrived)
            except errors.SessionInvalid:
                raise
            except errors.SxmError as exc:
                result.warnings.append(_step_failed(step, exc))

    def verify(self, the_plan, result, session=None, arrived=None):
        """Check that the VM runs where planned with every disk moved.

        ``session`` (a typed Session of the destination pool) and
        ``arrived`` (``_arrived_disks``'s answer) save reading again.
        """
        if session is None:
            with self.dest.session() as x:
                return self.verify(the_plan, result, x, arrived)
        rec, disks = arrived or self._arrived_disks(the_plan, result.vm_ref,
                                                    session)
        problems = []
        if the_plan.live and rec['power_state'] != constants.RUNNING:
            problems.append('the VM is %s' % rec['power_state'])
        if (the_plan.live and the_plan.dest_host is not None
                and rec['resident_on'] != the_plan.dest_host.ref):
            problems.append('the VM is not on host %s'
                            % the_plan.dest_host.name)
        planned = {s.disk.userdevice: s for s in the_plan.disks}
        sr_uuids = {sr.ref: sr.uuid for sr in the_plan.dest.srs}
        for userdevice, vdi_rec in disks:
            sr_uuid = sr_uuids.get(vdi_rec['SR']) or session.SR.get_uuid(
                vdi_rec['SR'])
            result.disks.append((userdevice, vdi_rec['uuid'], sr_uuid))
            step = planned.get(userdevice)
            if step is not None and step.dest_sr is not None and \
                    sr_uuid != step.dest_sr.uuid:
                problems.append('disk %s is on SR %s, not %s' % (
                    userdevice, sr_uuid, step.dest_sr.uuid))
        if problems:
            raise errors.VerificationFailed(problems='; '.join(problems))

    def _remove_leftovers(self, the_plan, result, x, arrived):
        """Strip sm_config base_mirror that older xapi left on new VDIs."""
        for _userdevice, vdi_rec in arrived[1]:
            if 'base_mirror' in vdi_rec['sm_config']:
                x.VDI.remove_from_sm_config(vdi_rec['ref'], 'base_mirror')
                result.leftovers_removed.append(
                    '%s:base_mirror' % vdi_rec['uuid'])

    def _arrived_disks(self, the_plan, vm_ref, x):
        """(VM record, [(userdevice, VDI record)]) of the VM's disks.

        One read of the VM and one of the VDIs named like its disks on
        their planned SRs (xapi gives a moved disk its source's name and
        size). Only when those do not account for every VBD of the VM (a
        CD drive, a disk elsewhere, twin names) are its VBDs read. Each
        VDI record carries its ref as ``ref``.
        """
        rec = x.VM.get_record(vm_ref)
        keys, terms = {}, []
        for step in the_plan.disks:
            sr = step.dest_sr.ref if step.dest_sr is not None else None
            key = (sr, step.disk.name, step.disk.virtual_size)
            keys.setdefault(key, []).append(step)
            if sr is not None and facts.quotable(step.disk.name):
                terms.append('field "SR" = "%s" and field "name__label" = '
                             '"%s"' % (sr, step.disk.name))
        found = (x.VDI.get_all_records_where(
            ' or '.join('(%s)' % t for t in sorted(set(terms))))
            if terms else {})
        vbds = set(rec['VBDs'])
        disks, seen, used = [], set(), set()
        for ref, vdi_rec in sorted(found.items()):
            mine = vbds.intersection(vdi_rec['VBDs'])
            steps = keys.get((vdi_rec['SR'], vdi_rec['name_label'],
                              int(vdi_rec['virtual_size'])), [])
            if not mine:
                continue
            if len(mine) != 1 or len(steps) != 1 or id(steps[0]) in used:
                break  # twins: only the VBDs tell them apart
            seen.update(mine)
            used.add(id(steps[0]))
            disks.append((steps[0].disk.userdevice, dict(vdi_rec, ref=ref)))
        else:
            if seen == vbds and len(disks) == len(the_plan.disks):
                return rec, sorted(disks, key=lambda d: d[0])
        disks = []
        where = 'field "VM" = "%s"' % vm_ref
        for vbd_rec in x.VBD.get_all_records_where(where).values():
            vdi = vbd_rec['VDI']
            if vbd_rec['type'] == 'CD' or vdi == NULL:
                continue
            vdi_rec = found.get(vdi) or x.VDI.get_record(vdi)
            disks.append((vbd_rec['userdevice'], dict(vdi_rec, ref=vdi)))
        return rec, sorted(disks, key=lambda d: d[0])

    def _target_vdis(self, the_plan):
        srs = {s.dest_sr.ref for s in the_plan.disks + the_plan.snapshot_disks
               if s.dest_sr is not None}
        out = set()
        with self.dest.session() as x:
            for sr in srs:
                out.update(x.SR.get_VDIs(sr))
        return out

    def report_state(self, the_plan, before):
        """What a failed migration left: the VMs and any new VDIs.

        Only VDIs that look like the moved disks (same name and size) and
        appeared on the target SRs since ``before`` (``planned_vdis``) are
        listed: other tenants use those SRs too. Nothing here deletes
        anything.
        """
        vm = the_plan.vm
        source_vm, source_host = 'unknown', ''
        try:
            rec = self.source.call('VM.get_record', vm.ref)
            source_vm = rec['power_state']
            host = the_plan.source.host(rec['resident_on'])
            if host is not None:
                source_host = host.name
            elif rec['resident_on'] != NULL:
                source_host = self._host_name(rec['resident_on'])
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
            with self.dest.session() as x:
                for vdi in appeared:
                    rec = x.VDI.get_record(vdi)
                    if (rec['name_label'], int(rec['virtual_size'])) in moved:
                        new.append(rec['uuid'])
        except errors.SxmError as exc:
            new.append('(could not list: %s)' % exc)
        return StateReport(source_vm, source_host, dest_vm, new)

    def _host_name(self, ref):
        # Not read to plan: a cross-pool plan names source hosts by ref.
        try:
            return self.source.call('host.get_name_label', ref)
        except errors.SxmError:
            return ref

    def cleanup_destination(self, the_plan):
        """Remove what a failed or aborted migration left at the destination.

        See ``cleanup.cleanup_destination``; the source VM must still
        exist in the source pool (else the migration completed and nothing
        is removed). Safe to call twice. Returns what was removed.
        """
        keep = [s.disk.uuid for s in the_plan.disks + the_plan.snapshot_disks]
        return cleanup.cleanup_destination(
            self.dest, the_plan.vm.uuid, keep,
            cross_pool=the_plan.cross_pool, source_pool=self.source)


def _step_failed(step, exc):
    """The warning of a check after the switch that failed."""
    return '%s: %s' % (step.__doc__.split('\n')[0].rstrip('.'), exc)


def planned_vdis(the_plan):
    """The VDIs the plan's target SRs held when it was made.

    What ``report_state`` compares with: read with the SRs' records while
    planning, so that sending costs no read of whole SRs.
    """
    out = set()
    for step in the_plan.disks + the_plan.snapshot_disks:
        if step.dest_sr is not None:
            out.update(step.dest_sr.vdis)
    return out


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
