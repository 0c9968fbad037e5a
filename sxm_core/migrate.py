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
given), retries xapi's TOO_MANY_STORAGE_MIGRATES a bounded number of times,
scales the timeout with the bytes to move, verifies the outcome, removes
SXM leftovers and, when a migration fails, reports what state it left.
"""

import dataclasses
import threading
import time

from oslo_concurrency import lockutils

from sxm_core import constants
from sxm_core import errors
from sxm_core import facts
from sxm_core import plan as planmod
from sxm_core import redact
from sxm_core import tasks

LOG = redact.get_logger(__name__)
NULL = constants.OPAQUE_NULL
GIB = 1 << 30


@dataclasses.dataclass
class Progress:
    """What a progress callback gets."""

    fraction: float
    phase: str              # 'mirror', 'copy', 'memory', 'done'
    disk: object            # plan.DiskStep being moved, or None
    bytes_done: int
    bytes_total: int


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
    """At most ``limit`` storage migrations at once from one XAPI host."""

    def __init__(self, limit=2, lock_path=None, poll=0.5,
                 sleep=time.sleep):
        if not 1 <= limit <= constants.XAPI_MAX_STORAGE_MIGRATES:
            raise ValueError('limit must be 1..%d'
                             % constants.XAPI_MAX_STORAGE_MIGRATES)
        self.limit = limit
        self.lock_path = lock_path
        self.poll = poll
        self._sleep = sleep
        self._semaphores = lockutils.Semaphores()

    def acquire(self, host_uuid, cancel=None):
        """A context manager holding one slot of ``host_uuid``."""
        while True:
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
                return _Held(cm)
            if cancel is not None and cancel.is_set():
                raise errors.SxmError('Cancelled while waiting for a free '
                                      'storage migration slot.')
            self._sleep(self.poll)


class _Held(object):
    def __init__(self, cm):
        self._cm = cm

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(None, None, None)
        return False


class Migrator(object):
    """Storage migrations from ``source`` (a SessionPool) to ``dest``.

    ``slots`` (a HostSlots) should be one long-lived object per process so
    that its limit holds across migrations; ``sleep`` replaces the
    cancellable wait between TOO_MANY_STORAGE_MIGRATES retries (tests).
    """

    def __init__(self, source, dest=None, seconds_per_gib=800,
                 minimum_timeout=300, stall_timeout=600, slots=None,
                 too_many_retries=5, too_many_interval=30,
                 sleep=None, clock=time.monotonic):
        self.source = source
        self.dest = dest or source
        self.seconds_per_gib = seconds_per_gib
        self.minimum_timeout = minimum_timeout
        self.stall_timeout = stall_timeout or None
        self.slots = slots or HostSlots()
        self.too_many_retries = too_many_retries
        self.too_many_interval = too_many_interval
        self._sleep = sleep
        self._clock = clock

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
        return the_plan, planmod.preflight(the_plan)

    def check(self, the_plan):
        """Local preflight plus xapi's own VM.assert_can_migrate."""
        problems = planmod.preflight(the_plan)
        if planmod.blocking(problems):
            return problems
        dest = {}
        try:
            dest = self._receive(the_plan)
            self.source.call('VM.assert_can_migrate', the_plan.vm.ref, dest,
                             the_plan.live, the_plan.vdi_map,
                             the_plan.vif_map, {})
        except errors.XapiFailure as exc:
            exc = self._described(exc, the_plan)
            problems.append(planmod.Problem('xapi', 'XAPI refuses: %s'
                                            % exc))
        except errors.ConnectionFailed as exc:
            problems.append(planmod.Problem('connection', str(exc)))
        finally:
            self.dest.logout_token(dest.get('session_id'))
        return problems

    def _receive(self, the_plan):
        dest = self.dest.call('host.migrate_receive', the_plan.dest_host.ref,
                              the_plan.network.ref, {})
        # The token is a live session of the destination pool.
        redact.register(dest.get('session_id'))
        return dest

    def _described(self, exc, the_plan):
        return errors.XapiFailure.from_details(
            [exc.code] + exc.params, call=exc.call,
            describe=describer(the_plan))

    def timeout_for(self, nbytes):
        return self.minimum_timeout + self.seconds_per_gib * nbytes / GIB

    # -- execution -------------------------------------------------------

    def migrate(self, the_plan, progress=None, cancel=None):
        """Run a checked plan; returns a Result or raises MigrationFailed.

        Once XAPI reports the migration done, nothing turns it into a
        failure: leftover removal and verification report problems in
        ``Result.warnings``.
        """
        problems = planmod.blocking(planmod.preflight(the_plan))
        if problems:
            raise errors.PreflightFailed(problems)
        vm = the_plan.vm
        cancel = cancel or threading.Event()
        before = self._target_vdis(the_plan)
        started = self._clock()
        host_uuid = self._source_host_uuid(the_plan)
        what = 'migration of %s' % vm.label()
        LOG.info('Starting %s to pool %s (%s to move)', what,
                 the_plan.dest.name,
                 planmod.human_bytes(the_plan.bytes_to_move))
        try:
            with self.slots.acquire(host_uuid, cancel):
                new_vm = self._send(the_plan, what, progress, cancel)
        except errors.SxmError as exc:
            state = self.report_state(the_plan, before)
            LOG.error('%s failed: %s', what, exc)
            raise errors.MigrationFailed(exc, state) from None
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
            progress(Progress(1.0, 'done', None, the_plan.bytes_to_move,
                              the_plan.bytes_to_move))
        LOG.info('%s finished in %.1f s', what, result.seconds)
        return result

    def _send(self, the_plan, what, progress, cancel):
        total = the_plan.bytes_to_move

        def on_progress(fraction):
            if progress is None:
                return
            phase, step = the_plan.phase(fraction)
            progress(Progress(fraction, phase, step,
                              int(min(1.0, fraction / planmod.STORAGE_SHARE)
                                  * total), total))

        describe = describer(the_plan)
        watch = tasks.Watch(progress=on_progress, cancel=cancel,
                            timeout=self.timeout_for(total
                                                     + the_plan.vm.memory),
                            stall_timeout=self.stall_timeout,
                            describe=describe, clock=self._clock)
        attempt = 0
        while True:
            dest = self._receive(the_plan)
            try:
                return tasks.call_async(
                    self.source, 'VM.migrate_send',
                    (the_plan.vm.ref, dest, the_plan.live,
                     the_plan.vdi_map, the_plan.vif_map, {}), what,
                    watch=watch, describe=describe)
            except errors.TooManyStorageMigrates:
                if attempt >= self.too_many_retries or cancel.is_set():
                    raise
                attempt += 1
                LOG.warning('Host busy with other storage migrations; '
                            'retry %d of %d in %d s', attempt,
                            self.too_many_retries, self.too_many_interval)
                if self._sleep is not None:
                    self._sleep(self.too_many_interval)
                else:
                    cancel.wait(self.too_many_interval)
                if cancel.is_set():
                    raise errors.SxmError('Cancelled while waiting to '
                                          'retry %s.' % what)
            finally:
                self.dest.logout_token(dest.get('session_id'))

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
            raise errors.SxmError('; '.join(problems))

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
            with self.dest.session() as s:
                for vdi in sorted(self._target_vdis(the_plan) - before):
                    rec = s.xenapi.VDI.get_record(vdi)
                    if (rec['name_label'], int(rec['virtual_size'])) in moved:
                        new.append(rec['uuid'])
        except errors.SxmError as exc:
            new.append('(could not list: %s)' % exc)
        return StateReport(source_vm, source_host, dest_vm, new)

    # -- single VDIs (Cinder) ------------------------------------------------

    def move_vdi(self, vdi_uuid, sr, progress=None, cancel=None):
        """Move one VDI to SR ``sr`` (ref, uuid or name) in this pool.

        Plugged into a running VM: ``VDI.pool_migrate`` (live; the VBD
        follows, the VDI gets a new uuid). Otherwise ``VDI.copy``, the VBDs
        of a halted VM recreated on the copy, then ``VDI.destroy`` of the
        original.
        Returns the VDI's uuid afterwards (unchanged when it is already on
        ``sr``).
        """
        pool = self.source
        pool_facts = facts.read_pool(pool)
        target = pool_facts.find('SR', sr)
        vdi = pool.call('VDI.get_by_uuid', vdi_uuid)
        rec = pool.call('VDI.get_record', vdi)
        if rec['SR'] == target.ref:
            return vdi_uuid  # already there: nothing to move
        size = int(rec['virtual_size'])
        what = "move of VDI '%s' (%s) to %s" % (rec['name_label'], vdi_uuid,
                                                target.label())
        watch = tasks.Watch(
            progress=(lambda f: progress(Progress(f, 'copy', None,
                                                  int(f * size), size)))
            if progress else None,
            cancel=cancel, timeout=self.timeout_for(size),
            stall_timeout=self.stall_timeout)
        live = self._running_vbd(rec['VBDs'])
        if live is not None:
            vm = pool.call('VBD.get_VM', live)
            host_uuid = pool.call('host.get_uuid',
                                  pool.call('VM.get_resident_on', vm))
            with self.slots.acquire(host_uuid, cancel):
                new = tasks.call_async(pool, 'VDI.pool_migrate',
                                       (vdi, target.ref, {}), what,
                                       watch=watch)
            return pool.call('VDI.get_uuid', new)
        new = tasks.call_async(pool, 'VDI.copy', (vdi, target.ref), what,
                               watch=watch)
        # A halted VM keeps its disk: its VBDs move to the copy. Until they
        # all have, the original is the volume; after, the copy is.
        moved = []
        try:
            for vbd in rec['VBDs']:
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
        try:
            pool.call('VDI.destroy', vdi)
        except errors.SxmError as exc:
            # The copy is in use now: never remove it; the original is a
            # leftover for the operator.
            LOG.warning('%s done, but the original VDI %s could not be '
                        'removed: %s', what, vdi_uuid, exc)
        return new_uuid

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
