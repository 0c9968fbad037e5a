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

"""A detached VDI copied from one XAPI pool into a new VDI of another.

``copy_vdi`` is what a volume moved between pools needs: XAPI has no call
for it (``VDI.copy`` and ``VDI.pool_migrate`` stay inside a pool, Storage
XenMotion moves whole VMs), so the bytes go through XAPI's HTTP handlers.

What crosses the wire: the source pool's ``GET /export_raw_vdi?format=vhd``,
a dynamic VHD holding only the allocated blocks (a sparse disk stays
sparse, and its holes are never sent), then the same VHD into the new VDI
with ``PUT /import_raw_vdi?format=vhd``, then the new VDI exported again to
verify it. Each transfer is tied to an XAPI task of its pool.

Why a spool file on the way: xapi's vhd export is close-delimited (no
Content-Length: vhd-tool streams until the connection closes), while its
import needs the Content-Length before the body (it refuses chunked
uploads). The VHD is spooled to a sparse temporary file without a name
in the file system, which the kernel frees when it is closed, even if
this process is killed.
The spool also lets the image be checked (structure, virtual size) and
hashed before the destination receives a byte.

The digest compared is the sha256 of the disk's logical content (absent
blocks read as zeros): the source's export and the destination's
re-export must match whatever each SR allocated. The source VDI is only
read; the caller destroys it once its own records say the volume moved.
A copy killed half way leaves a VDI marked ``COPY_OF`` in its
``other_config`` in the destination pool: ``leftovers`` finds it.
"""

import dataclasses
import os
import tempfile
import time

from sxm_core import constants
from sxm_core import errors
from sxm_core import facts
from sxm_core import plan
from sxm_core import redact
from sxm_core import retry
from sxm_core import transfer
from sxm_core import vhd

LOG = redact.get_logger(__name__)

# other_config key of the new VDI: the uuid of the VDI it is a copy of.
COPY_OF = 'sxm_copy_of'
PHASES = ('export', 'import', 'verify')
MIB = 1 << 20
# The XAPI capability a destination SR needs (SM.features).
VDI_CREATE = 'VDI_CREATE'
# The caller's progress callback is told about each 1% of a phase, the
# log about each 10%.
_REPORT_STEP = 0.01
# Destroying the new VDI is retried while xapi still holds it for the
# handler that just failed.
_DESTROY_RETRIES = 3


class CopyFailed(errors.SxmError):
    """A cross-pool copy was refused or failed; nothing is left behind.

    ``phase``: 'check' (refused before anything was created), 'create',
    'export', 'import' or 'verify'; ``reason`` says why.
    """

    def __init__(self, phase, reason, vdi='?', sr='?'):
        self.phase = phase
        self.reason = str(reason)
        if phase == 'check':
            text = 'Cannot copy VDI %s to SR %s: %s' % (vdi, sr, reason)
        else:
            text = ('Copy of VDI %s to SR %s failed in the %s phase: %s'
                    % (vdi, sr, phase, reason))
        super().__init__(text)


@dataclasses.dataclass
class CopyResult:
    """What ``copy_vdi`` did.

    ``sent_bytes``: the VHD stream the source pool exported;
    ``received_bytes``: the VHD stream the destination imported;
    ``verify_bytes``: the destination's re-export read to verify;
    ``digest``: sha256 (hex) of the disk's logical content, equal on both
    sides.
    """

    vdi_uuid: str
    sr_uuid: str
    virtual_size: int
    sent_bytes: int
    received_bytes: int
    verify_bytes: int
    seconds: float
    digest: str


def _describe_pool(rec):
    return "pool '%s' (%s)" % (rec['name_label'] or '', rec['uuid'])


class _Copy(object):
    """One copy's state: what the checks read, what was created."""

    def __init__(self, source, vdi_uuid, destination, sr_uuid):
        self.source = source
        self.destination = destination
        self.vdi_uuid = vdi_uuid
        self.sr_uuid = sr_uuid
        self.phase = 'check'
        self.vdi = self.rec = self.sr = None
        self.new = self.new_uuid = None
        # Upper bound of the data the source holds (what the export sends).
        self.held = 0

    def refuse(self, reason, *args):
        return CopyFailed('check', reason % args if args else reason,
                          self.vdi_uuid, self.sr_uuid)

    def failed(self, reason):
        return CopyFailed(self.phase, reason, self.vdi_uuid, self.sr_uuid)

    # -- checks: nothing is created until they all pass -----------------

    def check(self, spool_dir, other_config):
        for name, value in (('vdi_uuid', self.vdi_uuid),
                            ('sr_uuid', self.sr_uuid)):
            if not isinstance(value, str) or not value:
                raise self.refuse('%s must be a uuid, got %r', name, value)
        if not isinstance(other_config, dict) or not all(
                isinstance(k, str) and isinstance(v, str)
                for k, v in other_config.items()):
            raise self.refuse('other_config must map strings to strings, '
                              'got %r', other_config)
        if spool_dir is not None and not os.path.isdir(spool_dir):
            raise self.refuse('the spool directory %s does not exist',
                              spool_dir)
        src_pool = facts.pool_record(self.source)
        dst_pool = facts.pool_record(self.destination)
        if src_pool['uuid'] == dst_pool['uuid']:
            raise self.refuse(
                'the source and the destination are one pool, %s: use '
                'VDI.pool_migrate / VDI.copy within a pool',
                _describe_pool(src_pool))
        self._check_source(src_pool)
        self._check_destination(src_pool, dst_pool)

    def _check_source(self, src_pool):
        api = self.source.api
        try:
            self.vdi = api.VDI.get_by_uuid(self.vdi_uuid)
            self.rec = api.VDI.get_record(self.vdi)
        except errors.XapiFailure as exc:
            if errors.missing(exc):
                raise self.refuse('no such VDI in the source %s',
                                  _describe_pool(src_pool)) from None
            raise
        rec = self.rec
        if rec['is_a_snapshot']:
            raise self.refuse(
                "VDI '%s' is a snapshot (of VDI %s): only a volume's own "
                'VDI is copied to another pool', rec['name_label'],
                self._uuid_of(rec['snapshot_of']))
        if not rec['managed']:
            raise self.refuse(
                "VDI '%s' is a base copy (a hidden VHD parent that SM "
                'manages): copy the VDIs that use it', rec['name_label'])
        attached = self.attached_to()
        if attached:
            raise self.refuse(
                "VDI '%s' is attached to %s: XAPI cannot copy a plugged "
                'disk to another pool alone; detach it first (or move '
                'its VM with Storage XenMotion)', rec['name_label'],
                ', '.join(attached))

    def _uuid_of(self, vdi):
        if vdi == constants.OPAQUE_NULL:
            return '(none)'
        try:
            return self.source.api.VDI.get_uuid(vdi)
        except errors.HandleInvalid:
            return '(gone)'

    def attached_to(self, rw_only=False):
        """Labels of the VMs that have the source VDI plugged."""
        vbds = self.source.api.VBD.get_all_records_where(
            'field "VDI" = "%s"' % self.vdi)
        out = []
        for vbd in sorted(vbds.values(), key=lambda r: r['uuid']):
            if not vbd['currently_attached']:
                continue
            if rw_only and vbd['mode'] != 'RW':
                continue
            try:
                vm = self.source.api.VM.get_record(vbd['VM'])
                out.append("VM '%s' (%s)" % (vm['name_label'], vm['uuid']))
            except errors.HandleInvalid:
                out.append('a VM that is gone')
        return out

    def _check_destination(self, src_pool, dst_pool):
        api = self.destination.api
        try:
            self.sr = api.SR.get_by_uuid(self.sr_uuid)
        except errors.XapiFailure as exc:
            if not errors.missing(exc):
                raise
            where = 'no such SR in the destination %s' % _describe_pool(
                dst_pool)
            try:
                self.source.api.SR.get_by_uuid(self.sr_uuid)
                where = ('the SR is in the source %s, not in the '
                         'destination %s' % (_describe_pool(src_pool),
                                             _describe_pool(dst_pool)))
            except errors.XapiFailure as again:
                if not errors.missing(again):
                    raise
            raise self.refuse(where) from None
        # The SR as a migration's planner reads it: SM features, the
        # hosts that have it plugged, its space.
        dst_sr = facts.sr_facts(self.destination, dst_pool, self.sr)
        label = '%s, of type %s,' % (dst_sr.label(), dst_sr.type)
        if VDI_CREATE not in dst_sr.features:
            raise self.refuse('%s cannot hold new VDIs: its SM lacks %s',
                              label, VDI_CREATE)
        if not dst_sr.hosts:
            raise self.refuse('%s is not plugged on any host of %s: plug '
                              'its PBD first', label,
                              _describe_pool(dst_pool))
        src_sr = facts.sr_facts(self.source, src_pool, self.rec['SR'],
                                attachments=False)
        self._check_space(src_sr, dst_sr)

    def _check_space(self, src_sr, dst_sr):
        """The space rule of a migration's preflight, for one disk."""
        # A thin SR's figures are only as fresh as its last scan.
        rec, disk = facts.detached_disk(self.source, self.vdi, self.rec)
        if rec is None:
            raise self.refuse('the VDI is gone from the source pool')
        self.rec = rec
        self.held, needed = plan.copy_space(disk, src_sr, dst_sr)
        if needed > dst_sr.free:
            raise self.refuse(
                '%s has %s free; the copy needs %s (%s SR)', dst_sr.label(),
                plan.human_bytes(dst_sr.free), plan.human_bytes(needed),
                'a thick' if dst_sr.thick else 'a thin')

    # -- the copy -------------------------------------------------------

    def create(self, name_label, name_description, other_config):
        self.phase = 'create'
        rec = self.rec
        self.new = self.destination.api.VDI.create({
            'name_label': (rec['name_label'] if name_label is None
                           else name_label),
            'name_description': name_description or '',
            'SR': self.sr, 'virtual_size': str(self.size),
            'type': 'user', 'sharable': rec['sharable'],
            'read_only': False,
            'other_config': dict(other_config, **{COPY_OF: self.vdi_uuid}),
            'xenstore_data': {}, 'sm_config': {}, 'tags': []})
        self.new_uuid = self.destination.api.VDI.get_uuid(self.new)

    @property
    def size(self):
        return int(self.rec['virtual_size'])

    def discard(self):
        """Destroy the new VDI after a failure; never raises."""
        if self.new is None:
            return

        def busy(exc):
            # xapi may still hold it for the handler that just failed.
            return isinstance(exc, (errors.OtherOperationInProgress,
                                    errors.VdiInUse))
        try:
            retry.call(lambda: self.destination.api.VDI.destroy(self.new),
                       _DESTROY_RETRIES, busy, delay=retry.backoff(0.5))
        except errors.SxmError as exc:
            if not errors.missing(exc):
                LOG.warning('Could not destroy VDI %s, the unfinished copy '
                            'of VDI %s in the destination pool: %s. '
                            'Destroy it by hand.', self.new_uuid,
                            self.vdi_uuid, exc)
                return
        LOG.info('Destroyed VDI %s, the unfinished copy of VDI %s',
                 self.new_uuid, self.vdi_uuid)


class _Meter(object):
    """One phase's progress: the caller's callback and the log.

    ``total`` may be an estimate (xapi's vhd export announces no length):
    it grows with what is done, and the phase ends at done == total.
    """

    def __init__(self, phase, total, what, progress):
        self.phase = phase
        self.total = max(1, total)
        self.what = what
        self.progress = progress
        self.done = 0
        self.start = time.monotonic()
        self._told = -1.0
        self._tenths = 0  # logged so far
        self._tell(0)

    def __call__(self, done):
        self.done = done
        self.total = max(self.total, done)
        fraction = done / self.total
        if fraction - self._told >= _REPORT_STEP:
            self._tell(done)
        if int(fraction * 10) > self._tenths:
            self._tenths = int(fraction * 10)
            self._log(fraction)

    def _tell(self, done):
        self._told = done / self.total
        if self.progress is not None:
            self.progress(self.phase, done, self.total)

    def _log(self, fraction):
        seconds = max(time.monotonic() - self.start, 1e-6)
        LOG.info('%s: %s %d%% (%s of %s, %.1f MiB/s)', self.what,
                 self.phase, round(100 * fraction),
                 plan.human_bytes(self.done), plan.human_bytes(self.total),
                 self.done / MIB / seconds)

    def finish(self):
        self.total = self.done
        if self.progress is not None:
            self.progress(self.phase, self.done, self.total)
        if self._tenths < 10:
            self._log(1.0)


def _spool(spool_dir):
    # Never named (O_TMPFILE) or unlinked at once: gone with the process,
    # even after a kill -9.
    return tempfile.TemporaryFile(prefix='sxm-copy-', suffix='.vhd',
                                  dir=spool_dir)


def _read_image(f, size, copy, what):
    """(digest, length) of the VHD spooled in ``f``, its size checked."""
    length = f.seek(0, os.SEEK_END)
    try:
        foot = vhd.inspect(f, size)
        if foot.current_size != size:
            raise copy.failed('%s is of a %d-byte disk, not %d bytes'
                              % (what, foot.current_size, size))
        f.seek(0)
        digest, _ = vhd.digest(f.read, length, size)
    except vhd.VhdError as exc:
        raise copy.failed('%s: %s' % (what, exc)) from None
    f.seek(0)
    return digest, length


def copy_vdi(source, vdi_uuid, destination, sr_uuid, name_label=None,
             name_description='', other_config=None, spool_dir=None,
             progress=None, on_created=None, ca_file=None, insecure=False,
             timeout=None, label='openstack-sxm'):
    """Copy a VDI into a new VDI of another pool; a ``CopyResult``.

    VDI ``vdi_uuid`` of pool ``source`` goes into a new VDI on SR
    ``sr_uuid`` of pool ``destination`` (both sessions.SessionPool).
    Refused (``CopyFailed``, phase 'check') before anything is created:
    a source VDI that is missing, plugged into a VM, a snapshot or a base
    copy; a destination SR that is missing, in another pool, cannot create
    VDIs, is unplugged or has too little room (a thick SR the whole
    virtual size, a thin one what the source holds); one pool for both.

    The new VDI has the source's size and sharable flag, type user,
    ``name_label`` (default: the source's), ``name_description`` and
    ``other_config`` plus ``COPY_OF``: the source's uuid.
    ``on_created(new_uuid)`` is called before a byte is sent, so that the
    caller can record it (a successor cleans up after a kill -9 with
    ``leftovers``). Then export, import and verify (see the module's
    docstring); ``progress(phase, done_bytes, total_bytes)``, phase in
    ``PHASES``, at the start and end of each phase and at each 1% (the
    export's total is an estimate until it ends: xapi announces no
    length). An exception from ``progress`` or ``on_created`` stops the
    copy like any failure: the way to cancel one.

    Any failure after the VDI was created destroys it and raises
    ``CopyFailed`` naming the phase, its cause chained (``__cause__``);
    the spool files never outlive the call. ``spool_dir``: where the
    VHD is spooled (default: tempfile's directory), as large as the data
    of the disk. ``ca_file``, ``insecure``, ``timeout`` (a socket
    read's) and ``label`` (the XAPI tasks' name) for both pools'
    transfers.
    """
    started = time.monotonic()
    copy = _Copy(source, vdi_uuid, destination, sr_uuid)
    other_config = {} if other_config is None else other_config
    try:
        copy.check(spool_dir, other_config)
    except errors.SxmError as exc:
        if isinstance(exc, CopyFailed):
            raise
        raise copy.failed(exc) from exc
    try:
        copy.create(name_label, name_description, other_config)
        what = 'Cross-pool copy of VDI %s to VDI %s' % (
            vdi_uuid, copy.new_uuid)
        LOG.info('%s (SR %s, %s) started', what, sr_uuid,
                 plan.human_bytes(copy.size))
        if on_created is not None:
            on_created(copy.new_uuid)
        result = _transfer(copy, what, spool_dir, progress,
                           dict(ca_file=ca_file, insecure=insecure,
                                timeout=timeout, label=label))
    except CopyFailed:
        copy.discard()
        raise
    except errors.SxmError as exc:
        copy.discard()
        raise copy.failed(exc) from exc
    except Exception as exc:
        copy.discard()
        raise copy.failed('%s: %s' % (exc.__class__.__name__, exc)) \
            from exc
    except BaseException:
        # Interrupted (a signal's exception): clean up all the same.
        copy.discard()
        raise
    result.seconds = time.monotonic() - started
    LOG.info('%s done: a %s disk, %d bytes exported, %d imported, %d '
             'read back, %.1f s, sha256 %s', what,
             plan.human_bytes(copy.size), result.sent_bytes,
             result.received_bytes, result.verify_bytes, result.seconds,
             result.digest)
    return result


def _transfer(copy, what, spool_dir, progress, options):
    src = transfer.VdiTransfer(copy.source, **options)
    dst = transfer.VdiTransfer(copy.destination, **options)
    size = copy.size
    with _spool(spool_dir) as image:
        copy.phase = 'export'
        meter = _Meter('export', copy.held, what, progress)
        sent = src.download(copy.vdi, image, 'vhd', sparse=True,
                            progress=meter,
                            what='Export of VDI %s' % copy.vdi_uuid)
        meter.finish()
        digest, length = _read_image(image, size, copy,
                                     'the source VDI\'s export')
        copy.phase = 'import'
        meter = _Meter('import', length, what, progress)
        dst.upload(copy.new, image, 'vhd', length=length, progress=meter,
                   what='Import into VDI %s' % copy.new_uuid)
        meter.finish()
    copy.phase = 'verify'
    with _spool(spool_dir) as image:
        meter = _Meter('verify', length, what, progress)
        verify = dst.download(copy.new, image, 'vhd', sparse=True,
                              progress=meter,
                              what='Export of VDI %s' % copy.new_uuid)
        meter.finish()
        again, _ = _read_image(image, size, copy,
                               'the destination VDI\'s export')
    if again != digest:
        raise copy.failed('the new VDI holds other data than the source '
                          '(sha256 %s, the source %s)' % (again, digest))
    # The export is a VDI read while nothing holds it: a VM that plugged
    # it meanwhile may have written during the export.
    attached = copy.attached_to(rw_only=True)
    if attached:
        raise copy.failed('the source VDI was plugged into %s during the '
                          'copy: it may have changed' % ', '.join(attached))
    return CopyResult(vdi_uuid=copy.new_uuid, sr_uuid=copy.sr_uuid,
                      virtual_size=size, sent_bytes=sent,
                      received_bytes=length, verify_bytes=verify,
                      seconds=0.0, digest=digest)


def leftovers(pool, source_vdi_uuid):
    """[(ref, record)] of VDIs in ``pool`` a copy of ``source_vdi_uuid`` made.

    What a copy killed before its end left (``COPY_OF`` in other_config);
    also a finished copy. xapi's filter language cannot test a map key:
    this reads the pool's VDI table, once, at a caller's start-up.
    """
    found = [(ref, rec) for ref, rec in
             pool.api.VDI.get_all_records().items()
             if rec['other_config'].get(COPY_OF) == source_vdi_uuid]
    return sorted(found, key=lambda item: item[1]['uuid'])
