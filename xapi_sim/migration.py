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

"""Storage XenMotion: the engine behind VM.migrate_send and VDI.pool_migrate.

Two algorithms share one data plane, one bandwidth cap and one heartbeat:

``mirror`` (xapi's): per disk in order of virtual size, snapshot the disk
and from that instant mirror every guest write synchronously to the
destination leaf; copy the snapshot into the destination base in the
background; then the next disk. Mirrors stay up until the memory migration,
which pauses the guest briefly; then the VM switches to the new disks.

``copy`` mode (migrate_send's ``copy`` option, cross-pool): the disks are
copied, never mirrored, the destination imports a new VM (new uuid, new
MACs, no snapshots: not a restore) and the source stays as it was.

``copy-dirty`` (the baseline other platforms use, selected by the
simulator's settings, never by an XAPI parameter): full copy of each live
disk while tracking written blocks, then passes over the blocks dirtied
meanwhile until what is left fits the downtime target (or a pass limit),
then stop-and-copy of the rest with the guest paused.
"""

import copy
import threading
import time
import uuid as uuidlib

from xapi_sim import db as dbmod
from xapi_sim import errors
from xapi_sim import storage

NULL = dbmod.NULL
MAX_STORAGE_MIGRATES = 3
ALGORITHMS = ('mirror', 'copy-dirty')

DEFAULT_SETTINGS = {
    # 'mirror' (SXM) or 'copy-dirty' (the baseline).
    'algorithm': 'mirror',
    # Bytes/s shared by the background copy and mirrored writes; 0: no cap.
    'bandwidth': 0,
    # Extra latency of each mirrored write (the destination's round trip).
    'mirror_latency': 0.0,
    # Memory pre-copy while the guest runs, then the final pause.
    'memory_seconds': 0.05,
    'pause_seconds': 0.05,
    # copy-dirty: stop iterating once the rest takes this long at the cap.
    'downtime_target': 0.1,
    'max_passes': 8,
    # A destination SR with the source SR's uuid means no transfer.
    'relax_xsm_sr_check': True,
    # Older xapi left sm_config base_mirror on the new VDIs.
    'leave_base_mirror': False,
}


class TokenBucket(object):
    """A bandwidth cap: ``take(n)`` blocks until n bytes may pass.

    One first-come-first-served queue for the background copy (which asks
    block by block) and the mirrored guest writes: when both want more
    than the link gives, they share it, so the synchronous mirror slows
    the guest down and the copy still finishes, as SXM does.
    """

    def __init__(self, rate):
        self.rate = float(rate or 0)
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def take(self, nbytes):
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + nbytes / self.rate
            delay = self._next - now
        if delay > 0:
            time.sleep(delay)


class Mirror(object):
    """Sends a source disk's writes to the destination leaf, synchronously.

    A failure breaks the mirror, not the guest: the guest's write already
    completed locally, and the migration notices ``failed`` and aborts.
    """

    def __init__(self, dest, bucket, latency):
        self.dest = dest
        self.bucket = bucket
        self.latency = latency
        self.failed = None
        self.bytes = 0

    def __call__(self, offset, data):
        if self.failed is not None:
            return
        try:
            self.bucket.take(len(data))
            if self.latency:
                time.sleep(self.latency)
            self.dest.write_blocks(offset, data)
            self.bytes += len(data)
        except Exception as exc:
            self.failed = exc


class Job(object):
    """One disk to move: where it is, where it goes, and what was made.

    ``kind`` is ``mirror`` for a running VM's read-write disks and ``copy``
    for everything else (VM snapshots, read-only disks, a halted VM's
    disks), as in xapi's ``migrate_send``.
    """

    def __init__(self, vbd, vdi, rec, disk, dest_sr, kind):
        self.vbd = vbd
        self.vdi = vdi
        self.rec = rec
        self.disk = disk
        self.dest_sr = dest_sr
        self.kind = kind
        self.dest_vdi = None
        self.dest_disk = None
        self.snap_vdi = None
        self.mirror = None
        self.tracker = None
        self.no_transfer = False
        # Copy mode of a running VM: copy from a snapshot taken first, so
        # that the copy is one instant of the disk (crash-consistent).
        self.freeze = False
        self.seconds = 0.0


class Migration(object):
    """Moves the disks of one VM and then the VM itself.

    ``jobs`` are the VDIs to move (the VM's and its snapshots'); ``live``
    says whether a guest runs (then its RW disks are mirrored and its
    memory migrates). ``snapshots`` maps each snapshot VM ref of the source
    to the jobs of its VDIs; ``vif_map`` maps every VIF (the VM's and its
    snapshots') to a destination network for a cross-pool migration.
    """

    def __init__(self, ctx, vm, jobs, dest_pool, dest_host, live,
                 vif_map=None, cross_pool=False, storage=True,
                 copy_mac=None):
        self.ctx = ctx
        # Copy mode when set: makes each new VIF's MAC (xapi blanks them
        # on a non-restoring import).
        self.copy_mac = copy_mac
        # Only storage migrations count towards TOO_MANY_STORAGE_MIGRATES.
        self.storage = storage
        self.src = ctx.pool
        self.sim = ctx.pool.sim
        self.vm = vm
        # xapi's order: ascending virtual size, then snapshot time.
        self.jobs = sorted(jobs, key=lambda j: (
            j.rec['virtual_size'], j.rec.get('snapshot_time') or 0))
        self.dst = dest_pool
        # A restart of the destination's toolstack cancels what it receives
        # (Storage_migrate.killall at xapi init): the mirrors break.
        self.dst_epoch = dest_pool.epoch
        self.dest_host = dest_host
        self.live = live
        self.vif_map = vif_map or {}
        self.cross_pool = cross_pool
        self.settings = dict(self.sim.settings)
        # The link between the pools: one cap for every migration at once.
        self.bucket = self.sim.link()
        self.faults = self.sim.faults
        self.created_vdis = []       # destination VDIs to destroy on failure
        self.dest_vm = None
        # (class, destination device ref) -> plugged at the source: only
        # plugged devices come up plugged on the other side.
        self.plugged = {}
        self.stats = {'algorithm': self.settings['algorithm'],
                      'bytes_copied': 0, 'passes': 0, 'converged': True,
                      'downtime': 0.0}
        with self.src.db.lock:
            rec = self.src.db.get('VM', vm)
            self.vm_uuid = rec['uuid']
            self.source_host = rec['resident_on']
            if self.source_host == NULL:
                self.source_host = self.src.master

    # -- helpers ---------------------------------------------------------

    def _check(self, point, percent=100.0, vdi=''):
        self.faults.check(point, percent, vdi=vdi, vm=self.vm,
                          restart=self._restart_here)

    def _restart_here(self):
        """Restart the toolstack running this migration, from outside it.

        Returns once the restart has begun: before the point of no return
        the migration's next check ends it; after it, it completes and
        its task is lost with the others.
        """
        epoch = self.src.epoch
        threading.Thread(target=self.sim.restart_toolstack,
                         args=(self.src.name,), daemon=True,
                         name='toolstack-restart-%s' % self.src.name).start()
        deadline = time.monotonic() + 10
        while self.src.epoch == epoch and time.monotonic() < deadline:
            time.sleep(0.001)

    def _check_peer(self, job=None):
        """Fail as xapi does once the destination's toolstack restarted."""
        if not self.cross_pool or self.dst.epoch == self.dst_epoch:
            return
        mirrored = [j for j in self.jobs if j.mirror is not None]
        if job is not None and job.kind == 'copy':
            raise errors.XapiError('VDI_COPY_FAILED',
                                   'Storage_error ([S(Internal_error)])')
        if job is None and mirrored:
            job = mirrored[0]
        if job is not None:
            raise errors.XapiError('MIRROR_FAILED', job.vdi)
        raise errors.XapiError('VM_MIGRATE_CONTACT_REMOTE_SERVICE_FAILED')

    def _progress(self, done_weight):
        total = sum(j.rec['virtual_size'] for j in self.jobs) or 1
        self.ctx.progress(0.9 * done_weight / total)

    def _new_dest_vdi(self, job, disk, sm_config=None):
        rec = job.rec
        record = {k: rec[k] for k in (
            'name_label', 'name_description', 'type', 'sharable',
            'read_only', 'other_config', 'xenstore_data', 'tags',
            'is_a_snapshot', 'snapshot_time')}
        record['SR'] = job.dest_sr
        record['virtual_size'] = rec['virtual_size']
        record['sm_config'] = dict(sm_config or {}, vdi_type='vhd')
        ref = self.dst.add_vdi(record, disk)
        self.created_vdis.append(ref)
        self._busy(self.dst, ref, job.kind)
        return ref

    def _sr_uuid(self, pool, sr):
        with pool.db.lock:
            return pool.db.get('SR', sr)['uuid']

    # -- the run -----------------------------------------------------------

    def run(self):
        started = time.monotonic()
        slot = (self.sim.storage_migrate_slot(self.source_host)
                if self.storage else None)
        try:
            self._check('prepare')
            self._move_disks()
            self.ctx.check_cancel()
            self._check_peer()
            self._check('metadata')
            if self.cross_pool:
                self._import_metadata()
            self._migrate_memory()
        except BaseException:
            self._rollback()
            raise
        finally:
            if slot is not None:
                slot.release()
            self.stats['seconds'] = time.monotonic() - started
            self.sim.migration_log.append(self._summary())
        try:
            self._check('finalize')
        finally:
            self._release_marks()
        if self.copy_mac is None:
            self._cleanup_source()
        else:
            self._drop_snapshots()
        return self.dest_vm

    def _release_marks(self):
        for vdi in self.created_vdis:
            self._busy(self.dst, vdi, None)
        for job in self.jobs:
            self._busy(self.src, job.vdi, None)
            if job.snap_vdi is not None:
                self._busy(self.src, job.snap_vdi, None)

    def _summary(self):
        out = dict(self.stats)
        out['vm'] = self.vm_uuid
        out['bytes_mirrored'] = sum(j.mirror.bytes for j in self.jobs
                                    if j.mirror is not None)
        out['bytes_sent'] = out['bytes_copied'] + out['bytes_mirrored']
        out['disks'] = [{'vdi': j.rec['uuid'], 'kind': j.kind,
                         'seconds': j.seconds,
                         'virtual_size': j.rec['virtual_size'],
                         'no_transfer': j.no_transfer}
                        for j in self.jobs]
        return out

    def _busy(self, pool, vdi, operation):
        """Mark (or with None clear) a VDI this migration works on.

        Its current_operations keep API callers from destroying, resizing
        or copying into it meanwhile.
        """
        key = self.ctx.task or self.vm
        with pool.db.lock:
            if not pool.db.exists('VDI', vdi):
                return
            ops = dict(pool.db.get('VDI', vdi)['current_operations'])
            if operation is None:
                ops.pop(key, None)
            else:
                ops[key] = operation
            pool.db.update('VDI', vdi, current_operations=ops)

    def _move_disks(self):
        done = 0
        copy_dirty = self.settings['algorithm'] == 'copy-dirty'
        for job in self.jobs:
            self._busy(self.src, job.vdi, job.kind)
        for job in self.jobs:
            self.ctx.check_cancel()
            t0 = time.monotonic()
            if not self._same_sr(job):
                if job.kind == 'copy':
                    self._copy_job(job, done)
                elif copy_dirty:
                    self._copy_dirty_job(job, done)
                else:
                    self._mirror_job(job, done)
                self.dst.refresh_vdi(job.dest_vdi)
            done += job.rec['virtual_size']
            self._progress(done)
            job.seconds = time.monotonic() - t0
        if copy_dirty:
            self._dirty_passes()
        self._link_snapshots()

    def _link_snapshots(self):
        """Moved snapshot VDIs point at the moved VDI they were taken of."""
        new_vdi = {j.vdi: j.dest_vdi for j in self.jobs}
        with self.dst.db.lock:
            for job in self.jobs:
                origin = new_vdi.get(job.rec['snapshot_of'])
                if (job.rec['is_a_snapshot'] and origin is not None
                        and not job.no_transfer):
                    self.dst.db.update('VDI', job.dest_vdi,
                                       snapshot_of=origin)

    def _same_sr(self, job):
        """Whether a disk stays where it is.

        In-pool, a disk mapped to its own SR does not move. Across pools, a
        destination SR with the source SR's uuid (a shared SR introduced in
        both pools) holds the very same VDI: no transfer, as xapi does with
        relax_xsm_sr_check.
        """
        if not self.cross_pool:
            if job.dest_sr != job.rec['SR']:
                return False
            job.dest_vdi = job.vdi
        else:
            if not self.settings['relax_xsm_sr_check']:
                return False
            if (self._sr_uuid(self.dst, job.dest_sr)
                    != self._sr_uuid(self.src, job.rec['SR'])):
                return False
            self.dst.introduce_from_store(job.dest_sr)
            with self.dst.db.lock:
                job.dest_vdi = self.dst.db.by_uuid['VDI'].get(
                    job.rec['uuid'])
            if job.dest_vdi is None:
                raise errors.XapiError(
                    'INTERNAL_ERROR',
                    'SR UUID matches on destination but VDI does not exist')
        job.no_transfer = True
        return True

    def _copy_job(self, job, done_before):
        disk = storage.Disk.create(self.dst.store(job.dest_sr),
                                   job.rec['virtual_size'])
        job.dest_disk = disk
        job.dest_vdi = self._new_dest_vdi(job, disk)
        source = job.disk
        if job.freeze:
            self._check('snapshot', vdi=job.vdi)
            source = job.disk.snapshot()
            try:
                job.snap_vdi = self.src.add_vdi(dict(
                    self._snapshot_record(job, None),
                    sm_config={'vdi_type': 'vhd'}), source)
            except BaseException:
                source.destroy()
                raise
            self._busy(self.src, job.snap_vdi, 'copy')
        self.stats['bytes_copied'] += self._copy(job, source, disk,
                                                 done_before)

    def _mirror_job(self, job, done_before):
        self._check('snapshot', vdi=job.vdi)
        disk, base = storage.Disk.create_mirror_target(
            self.dst.store(job.dest_sr), job.rec['virtual_size'])
        mirror_id = '%s/%s' % (self._sr_uuid(self.src, job.rec['SR']),
                               job.rec['uuid'])
        job.dest_disk = disk
        try:
            job.dest_vdi = self._new_dest_vdi(
                job, disk, {'base_mirror': mirror_id})
        except BaseException:
            base.destroy()
            raise
        job.mirror = Mirror(disk, self.bucket,
                            self.settings['mirror_latency'])
        try:
            snap_disk = job.disk.snapshot(mirror=job.mirror)
        except BaseException:
            base.destroy()
            raise
        job.snap_vdi = self.src.add_vdi(self._snapshot_record(job, mirror_id),
                                        snap_disk)
        self._busy(self.src, job.snap_vdi, 'mirror')
        try:
            self.stats['bytes_copied'] += self._copy(job, snap_disk, base,
                                                     done_before)
        finally:
            base.seal_base()
        self._assert_mirror(job)
        if not self.settings['leave_base_mirror']:
            # The mirror is established: xapi drops the key again.
            with self.dst.db.lock:
                sm = dict(self.dst.db.get('VDI', job.dest_vdi)['sm_config'])
                sm.pop('base_mirror', None)
                self.dst.db.update('VDI', job.dest_vdi, sm_config=sm)

    def _snapshot_record(self, job, mirror_id):
        rec = job.rec
        return {'name_label': rec['name_label'],
                'name_description': rec['name_description'],
                'SR': rec['SR'], 'virtual_size': rec['virtual_size'],
                'type': rec['type'], 'is_a_snapshot': True,
                'snapshot_of': job.vdi, 'snapshot_time': time.time(),
                'sm_config': {'vdi_type': 'vhd', 'mirror': 'null',
                              'base_mirror': mirror_id}}

    def _copy(self, job, src, dest, done_before):
        weight = job.rec['virtual_size']

        def progress(done, total):
            self.ctx.check_cancel()
            self._check_peer(job)
            pct = 100.0 * done / total if total else 100.0
            self._check('copy', pct, vdi=job.vdi)
            self._check('destination_full', pct, vdi=job.vdi)
            if job.mirror is not None:
                if self.faults.take('mirror', pct):
                    job.mirror.failed = errors.XapiError('MIRROR_FAILED',
                                                         job.vdi)
                self._assert_mirror(job)
            self._progress(done_before + weight * pct / 100.0)

        return src.copy_to(dest, progress=progress,
                           throttle=self.bucket.take)

    def _assert_mirror(self, job):
        failed = job.mirror.failed if job.mirror is not None else None
        if failed is None:
            return
        if (isinstance(failed, errors.XapiError)
                and failed.code.startswith('SR_BACKEND_FAILURE')):
            raise failed
        raise errors.XapiError('MIRROR_FAILED', job.vdi)

    # -- copy-dirty --------------------------------------------------------

    def _copy_dirty_job(self, job, done_before):
        disk = storage.Disk.create(self.dst.store(job.dest_sr),
                                   job.rec['virtual_size'])
        job.dest_disk = disk
        job.dest_vdi = self._new_dest_vdi(job, disk)
        job.tracker = BlockSet()
        with job.disk.lock:
            job.disk.watchers.append(job.tracker.update_range)
        self.stats['bytes_copied'] += self._copy_blocks(
            job, job.disk.allocated_blocks(), done_before)

    def _dirty_passes(self):
        rate = self.settings['bandwidth']
        tracked = [j for j in self.jobs if j.tracker is not None]
        while tracked:
            self.ctx.check_cancel()
            dirty = sum(len(j.tracker) for j in tracked)
            left = dirty * storage.BLOCK / rate if rate else 0.0
            if left <= self.settings['downtime_target']:
                break
            if self.stats['passes'] >= self.settings['max_passes']:
                self.stats['converged'] = False
                break
            self.stats['passes'] += 1
            for job in tracked:
                self.stats['bytes_copied'] += self._copy_blocks(
                    job, job.tracker.take(), None)

    def _copy_blocks(self, job, blocks, done_before):
        """Copy blocks of a live disk; each run is read under its lock."""
        src, dest = job.disk, job.dest_disk
        sent = 0
        runs = list(storage._runs(sorted(blocks)))
        for i, run in enumerate(runs):
            with src.lock:
                data = b''.join(src.read_block(b) for b in run)
            start = run[0] * storage.BLOCK
            data = data[:dest.size - start]
            for at in range(0, len(data), storage.BLOCK):
                self.bucket.take(min(storage.BLOCK, len(data) - at))
            dest.write_blocks(start, data)
            sent += len(data)
            if done_before is not None:
                self.ctx.check_cancel()
                pct = 100.0 * (i + 1) / len(runs)
                self._check('copy', pct, vdi=job.vdi)
                self._check('destination_full', pct, vdi=job.vdi)
                self._progress(done_before
                               + job.rec['virtual_size'] * pct / 100.0)
        return sent

    # -- metadata and memory -------------------------------------------------

    def _import_metadata(self):
        """Create the VM (same uuid), its snapshots and devices remotely."""
        src_db, dst_db = self.src.db, self.dst.db
        new_vdi = {j.vdi: j.dest_vdi for j in self.jobs}
        with src_db.lock:
            vms = [self.vm]
            if self.copy_mac is None:
                # send_snapshots = not copy
                vms.extend(src_db.get('VM', self.vm)['snapshots'])
            recs = [(v, src_db.snapshot('VM', v)) for v in vms]
            devices = {v: ([src_db.snapshot('VBD', b) for b in r['VBDs']],
                           [(f, src_db.snapshot('VIF', f))
                            for f in r['VIFs']])
                       for v, r in recs}
        with dst_db.lock:
            for vm, rec in recs:
                extra = {'power_state': 'Halted'}
                suspend = new_vdi.get(rec.get('suspend_VDI'))
                if rec['power_state'] == 'Suspended' and suspend:
                    # The suspend image moved with it: still resumable.
                    extra.update(power_state='Suspended',
                                 suspend_VDI=suspend)
                if vm != self.vm:
                    extra.update(is_a_snapshot=True,
                                 snapshot_of=self.dest_vm)
                fields = vm_fields(rec, extra)
                if self.copy_mac is not None:
                    _as_new_vm(fields)
                ref = dst_db.add('VM', fields)
                if vm == self.vm:
                    self.dest_vm = ref
                vbds, vifs = devices[vm]
                for vbd in vbds:
                    vdi = new_vdi.get(vbd['VDI'], NULL)
                    fields = {'VM': ref, 'VDI': vdi, 'empty': vdi == NULL}
                    if extra['power_state'] == 'Suspended':
                        # A suspended VM keeps its devices as they were,
                        # in the other pool as in this one.
                        fields['currently_attached'] = vbd[
                            'currently_attached']
                    new = dst_db.add('VBD', device_fields(vbd, fields))
                    self.plugged[('VBD', new)] = vbd['currently_attached']
                for vif_ref, vif in vifs:
                    fields = {'VM': ref, 'network': self.vif_map[vif_ref]}
                    if self.copy_mac is not None:
                        fields.update(MAC=self.copy_mac(),
                                      MAC_autogenerated=True)
                    if extra['power_state'] == 'Suspended':
                        fields['currently_attached'] = vif[
                            'currently_attached']
                    new = dst_db.add('VIF', device_fields(vif, fields))
                    self.plugged[('VIF', new)] = vif['currently_attached']

    def _migrate_memory(self):
        if not self.live:
            self._switch()
            self.ctx.progress(1.0)
            return
        dom = self.sim.domain(self.vm_uuid)
        deadline = time.monotonic() + self.settings['memory_seconds']
        while time.monotonic() < deadline:
            self.ctx.check_cancel()
            self._check_peer()
            for job in self.jobs:
                self._assert_mirror(job)
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
        self._check('memory')
        # xenopsd asks the guest to suspend for the final pause.
        self.faults.check('cooperate', vm=self.vm_uuid)
        self.ctx.check_cancel()
        self._check_peer()
        paused_at = time.monotonic()
        dom.pause()
        try:
            for job in self.jobs:
                self._assert_mirror(job)
                if job.tracker is not None:
                    # Stop-and-copy: the guest is paused.
                    with job.disk.lock:
                        job.disk.watchers.remove(job.tracker.update_range)
                    self.stats['bytes_copied'] += self._copy_blocks(
                        job, job.tracker.take(), None)
                    job.tracker = None
            time.sleep(self.settings['pause_seconds'])
            # The point of no return: the guest resumes on the other side.
            # A cancel that came in until now still counts.
            self.ctx.enter_point_of_no_return()
            for job in self.jobs:
                if job.mirror is not None:
                    job.disk.detach_mirror(job.mirror)
            self._switch()
        finally:
            self.stats['downtime'] = time.monotonic() - paused_at
            dom.unpause()
        self.ctx.progress(1.0)

    def _switch(self):
        """Make the destination VM the live one, atomically for guests."""
        if self.copy_mac is not None:
            # A copy: the source VM keeps running (or not) as it was.
            return
        src_db, dst_db = self.src.db, self.dst.db
        if not self.cross_pool:
            with src_db.lock:
                for job in self.jobs:
                    if job.vbd is not None and not job.no_transfer:
                        src_db.update('VBD', job.vbd, VDI=job.dest_vdi)
                for job in self.jobs:
                    if job.vbd is None and not job.no_transfer:
                        _repoint_snapshot_vbds(src_db, job.vdi,
                                               job.dest_vdi)
                        for vm in src_db.find('VM', suspend_VDI=job.vdi):
                            src_db.update('VM', vm,
                                          suspend_VDI=job.dest_vdi)
                if self.live:
                    src_db.update('VM', self.vm, resident_on=self.dest_host)
            self.dest_vm = self.vm
            return
        # Both pools at once, always in the same order.
        first, second = sorted((src_db, dst_db), key=id)
        with first.lock, second.lock:
            if self.live:
                rec = dst_db.get('VM', self.dest_vm)
                for cls in ('VBD', 'VIF'):
                    for dev in rec[cls + 's']:
                        dst_db.update(cls, dev, currently_attached=(
                            self.plugged.get((cls, dev), False)))
                self.dst.next_domid += 1
                dst_db.update('VM', self.dest_vm, power_state='Running',
                              resident_on=self.dest_host,
                              domid=self.dst.next_domid)
            src_db.update('VM', self.vm, power_state='Halted',
                          resident_on=NULL, domid=-1)
            srec = src_db.get('VM', self.vm)
            for vbd in srec['VBDs']:
                src_db.update('VBD', vbd, currently_attached=False)
            for vif in srec['VIFs']:
                src_db.update('VIF', vif, currently_attached=False)

    # -- after --------------------------------------------------------------

    def _drop_snapshots(self):
        """The source snapshots this migration took go."""
        for job in self.jobs:
            if job.snap_vdi is not None:
                destroy_vdi(self.src, job.snap_vdi)

    def _cleanup_source(self):
        """Success: the moved source disks and, across pools, the VM go."""
        self._drop_snapshots()
        if self.cross_pool:
            src_db = self.src.db
            with src_db.lock:
                snaps = list(src_db.get('VM', self.vm)['snapshots'])
            for vm in snaps + [self.vm]:
                _destroy_vm_record(src_db, vm)
        for job in self.jobs:
            if not job.no_transfer:
                destroy_vdi(self.src, job.vdi)

    def _rollback(self):
        """Failure or cancel before the point of no return: undo it all."""
        for job in self.jobs:
            if job.mirror is not None:
                job.disk.detach_mirror(job.mirror)
            if job.tracker is not None:
                with job.disk.lock:
                    if job.tracker.update_range in job.disk.watchers:
                        job.disk.watchers.remove(job.tracker.update_range)
            if job.snap_vdi is not None:
                destroy_vdi(self.src, job.snap_vdi)
        if self.dest_vm is not None and self.cross_pool:
            dst_db = self.dst.db
            with dst_db.lock:
                snaps = list(dst_db.get('VM', self.dest_vm)['snapshots'])
            for vm in snaps + [self.dest_vm]:
                _destroy_vm_record(dst_db, vm)
            self.dest_vm = None
        for vdi in reversed(self.created_vdis):
            destroy_vdi(self.dst, vdi)
        self._release_marks()


def _repoint_snapshot_vbds(db, old, new):
    for vbd in list(db.get('VDI', old)['VBDs']):
        db.update('VBD', vbd, VDI=new)


def destroy_vdi(pool, vdi):
    """Remove a VDI, its VBDs and its disk; a VDI already gone is fine."""
    with pool.db.lock:
        if not pool.db.exists('VDI', vdi):
            return
        for vbd in list(pool.db.get('VDI', vdi)['VBDs']):
            pool.db.remove('VBD', vbd)
    pool.remove_vdi(vdi)


class BlockSet(set):
    """Dirty blocks, filled by a disk watcher and drained by a copy pass."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()

    def update_range(self, first, last):
        with self._lock:
            self.update(range(first, last + 1))

    def take(self):
        with self._lock:
            out = set(self)
            self.clear()
            return out


_VM_COPY = ('name_label', 'name_description', 'user_version', 'affinity',
            'memory_static_max', 'memory_dynamic_max', 'memory_dynamic_min',
            'memory_static_min', 'VCPUs_params', 'VCPUs_max',
            'VCPUs_at_startup', 'actions_after_shutdown',
            'actions_after_reboot', 'actions_after_crash', 'PV_bootloader',
            'PV_kernel', 'PV_ramdisk', 'PV_args', 'PV_bootloader_args',
            'PV_legacy_args', 'HVM_boot_policy', 'HVM_boot_params',
            'platform', 'PCI_bus', 'other_config', 'recommendations',
            'xenstore_data', 'tags', 'blocked_operations', 'bios_strings',
            'domain_type', 'has_vendor_device', 'generation_id',
            'snapshot_time', 'uuid', 'is_a_template')


def _as_new_vm(fields):
    """What import.ml changes when it does not restore (copy mode).

    A new uuid and a fresh mac_seed; the access key is never imported.
    """
    fields.pop('uuid', None)
    other = dict(fields.get('other_config', {}))
    other.pop('grant_api_access', None)
    other['mac_seed'] = str(uuidlib.uuid4())
    fields['other_config'] = other


def vm_fields(rec, extra):
    out = {k: copy.deepcopy(rec[k]) for k in _VM_COPY if k in rec}
    out['affinity'] = NULL
    out.update(extra)
    return out


_DEVICE_SKIP = ('uuid', 'VM', 'VDI', 'network', 'currently_attached',
                'allowed_operations', 'current_operations', 'status_code',
                'status_detail', 'runtime_properties')


def device_fields(rec, extra):
    out = {k: copy.deepcopy(v) for k, v in rec.items()
           if k not in _DEVICE_SKIP}
    out['currently_attached'] = False
    out.update(extra)
    return out


def _destroy_vm_record(db, vm):
    with db.lock:
        if not db.exists('VM', vm):
            return
        rec = db.get('VM', vm)
        for vbd in list(rec['VBDs']):
            db.remove('VBD', vbd)
        for vif in list(rec['VIFs']):
            db.remove('VIF', vif)
        db.remove('VM', vm)
