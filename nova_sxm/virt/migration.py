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

"""Live migration with Storage XenMotion, through ``sxm_core.migrate``.

The carrier. Nova's conductor relays the destination's answer to the
source and never imports this driver, so the data travels in an in-tree
class: ``nova.objects.migrate_data.LibvirtLiveMigrateData`` (what nova's own
FakeDriver returns). Fields used, all public facts of the destination:

=========================== ================================================
``image_type``              ``'sxm'``: marks the object as this driver's
``target_connect_addr``     URL of the destination pool master
``filename``                JSON ``{"version": 1, "pool_uuid", "host_uuid",
                            "host_name", "sr_uuid", "networks": {port id:
                            network uuid}, "migration_network": uuid|null,
                            "source_url", "source_pool_uuid",
                            "source_vm_uuid", "source_vdis": [VDI uuid],
                            "introduced_srs": [SR uuid]}`` (the source's
                            added by check_can_live_migrate_source, for a
                            rollback at the destination; the last one by
                            pre_live_migration: volume SRs it introduced
                            in the destination pool)
``block_migration``         True: SXM (disks move); False: disks stay on
                            storage both hosts reach
``disk_available_mb``       free space of the destination SR
``is_shared_block_storage`` every disk is on storage the destination reaches
``is_shared_instance_path`` always False, so that nova calls
                            ``rollback_live_migration_at_destination``
=========================== ================================================

Volumes. A volume stays on its SR: the destination pool must reach that
SR. ``check_can_live_migrate_source`` refuses, naming the volume, when the
SR is local to a pool other than the destination's; ``pre_live_migration``
introduces a shared SR of another pool in the destination pool from the
connection info Cinder made for the destination's connector, so that the
plan maps the volume's VDI to the same SR uuid there (SXM copies nothing
for it); ``post_live_migration`` forgets the SR in the source pool when
this driver had introduced it there and nothing else uses it, and
``rollback_live_migration_at_destination`` forgets what
``pre_live_migration`` introduced.

No session id or ``host.migrate_receive`` token is ever in it: the source
logs in to the destination pool with its own credentials (``[sxm]
connection_username`` and ``remote_pool_passwords[pool uuid]`` or
``connection_password``) and asks for the token itself, inside
``sxm_core.migrate.Migrator``. nova-compute logs this object at DEBUG.
"""

import threading
import time

from nova import exception
from nova.objects import migrate_data as migrate_data_obj
from nova.virt import driver as virt_driver
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import excutils
from oslo_utils import units
from sxm_core import constants
from sxm_core import errors
from sxm_core import facts as factsmod
from sxm_core import fleet
from sxm_core import migrate as core_migrate
from sxm_core import plan as planmod
from sxm_core import tasks

from nova_sxm.virt import vmops
from nova_sxm.virt import volumeops

LOG = logging.getLogger(__name__)
CARRIER_TAG = 'sxm'
FACTS_VERSION = 1
# After a lost contact with the source pool: how long to keep trying to
# follow the migration task, and the pause between tries.
FOLLOW_SECONDS = 600
FOLLOW_RETRY = 5.0


# -- pure helpers -----------------------------------------------------------

def pack(facts, url, block_migration, disk_over_commit, free_bytes,
         shared):
    """The carrier object for the destination's public ``facts``."""
    data = migrate_data_obj.LibvirtLiveMigrateData()
    data.image_type = CARRIER_TAG
    data.target_connect_addr = url
    data.filename = jsonutils.dumps(dict(facts, version=FACTS_VERSION))
    if block_migration is not None:
        data.block_migration = block_migration
    if disk_over_commit is not None:
        data.disk_over_commit = disk_over_commit
    data.disk_available_mb = free_bytes // units.Mi
    data.is_shared_block_storage = shared
    data.is_shared_instance_path = False
    data.graphics_listen_addr_vnc = None
    data.graphics_listen_addr_spice = None
    data.serial_listen_addr = None
    return data


def unpack(data):
    """(url, facts) from a carrier object; MigrationPreCheckError if alien."""
    if (not isinstance(data, migrate_data_obj.LibvirtLiveMigrateData)
            or data.obj_attr_is_set('image_type') is False
            or data.image_type != CARRIER_TAG):
        raise exception.MigrationPreCheckError(
            reason='the destination is not managed by the SXM driver')
    return data.target_connect_addr, jsonutils.loads(data.filename)


def progress_fields(progress, memory_total):
    """Migration object fields for a ``sxm_core.migrate.Progress``.

    Memory comes from the core's ``memory_done`` / ``memory_total``; a
    Progress without them (``memory_total`` 0) is counted here from the
    task fraction past the storage share, against ``memory_total``.
    A zero is written as None: nova 34's API response schema for server
    migrations requires these byte counts to be null or at least 1.
    """
    done = min(progress.bytes_done, progress.bytes_total)
    memory_done = 0
    if progress.memory_total:
        memory_total = progress.memory_total
        memory_done = min(progress.memory_done, memory_total)
        if progress.phase == 'done':
            memory_done = memory_total
    elif progress.phase in ('memory', 'done'):
        share = 1.0 - planmod.STORAGE_SHARE
        frac = (progress.fraction - planmod.STORAGE_SHARE) / share
        memory_done = round(memory_total * max(0.0, min(1.0, frac)))
    fields = {
        'disk_total': progress.bytes_total,
        'disk_processed': done,
        'disk_remaining': progress.bytes_total - done,
        'memory_total': memory_total,
        'memory_processed': memory_done,
        'memory_remaining': memory_total - memory_done,
    }
    return {k: v or None for k, v in fields.items()}


def decide_block(requested, unreachable, host_name):
    """Whether a live migration moves the disks (Storage XenMotion).

    ``requested`` is the API's block_migration: True, False or None
    ('auto'); ``unreachable`` labels the disks on storage the destination
    host cannot reach (it is only looked at when ``requested`` is not
    True). 'auto' keeps the disks where they are when the destination
    reaches all of them (a pool migration that copies nothing), else moves
    them; False with such disks is refused.
    """
    if requested is True:
        return True
    if not unreachable:
        return False
    if requested is False:
        raise exception.InvalidSharedStorage(
            path=', '.join(unreachable),
            reason='disks on storage host %s cannot reach; use a block '
                   'migration' % host_name)
    return True


def problems_text(problems):
    return '; '.join(p.message for p in planmod.blocking(problems))


def volume_connections(block_device_info):
    """[(volume id, connection info)] of the xensm volumes."""
    out = []
    for bdm in virt_driver.block_device_info_get_mapping(block_device_info):
        info = bdm.get('connection_info') or {}
        if info.get('driver_volume_type') == volumeops.DRIVER_TYPE:
            out.append((volumeops.volume_id(info), info))
    return out


def unreachable_volume(vol, data, dest_pool, dest_host, dest_knows_sr):
    """Why a volume cannot follow its VM to ``dest_pool``, or None.

    It can when its SR is the destination pool's own, is already known
    there, or is shared (the destination introduces it).
    """
    home = data.get('pool_uuid')
    if home == dest_pool or dest_knows_sr or data.get('shared'):
        return None
    return ('volume %s is on SR %s (%s), local to XAPI pool %s: host %s '
            'in XAPI pool %s cannot reach it. Retype the volume to a shared '
            'tier, or detach it, before migrating.'
            % (vol, data.get('sr_uuid'), data.get('sr_type', '?'),
               home or '?', dest_host, dest_pool))


class LiveMigrationOps(object):
    """The live-migration hooks of the driver."""

    def __init__(self, conn, host, vmops_, vifops, volumeops_):
        self._conn = conn
        self._host = host
        self._vmops = vmops_
        self._vif = vifops
        self._volumeops = volumeops_
        # instance uuid -> threading.Event that cancels its migration
        self.active_migrations = {}

    # -- destination ---------------------------------------------------------

    def check_destination(self, instance, block_migration,
                          disk_over_commit):
        call = self._conn.call
        sr = self._host.find_sr()
        sr_rec = call('SR.get_record', sr)
        free = max(0, int(sr_rec['physical_size'])
                   - int(sr_rec['physical_utilisation']))
        networks = self._vif.networks()
        port_map = {}
        for vif in instance.get_network_info():
            ref = self._vif.choose_network(vif, networks)
            port_map[vif['id']] = networks[ref]['uuid']
        migration_network = None
        wanted = self._conn.settings.live_migration_network
        if wanted:
            found = [rec['uuid'] for rec in networks.values()
                     if wanted in (rec['uuid'], rec['bridge'],
                                   rec['name_label'])]
            if len(found) != 1:
                raise exception.MigrationPreCheckError(
                    reason='[sxm] live_migration_network %r matches %d '
                           'networks on host %s' % (wanted, len(found),
                                                    self._host.host_name))
            migration_network = found[0]
        facts = {'pool_uuid': self._host.pool_uuid,
                 'host_uuid': self._host.host_uuid,
                 'host_name': self._host.host_name,
                 'sr_uuid': sr_rec['uuid'], 'networks': port_map,
                 'migration_network': migration_network}
        # Whether the disks can stay is known at the source: until then a
        # block migration is assumed.
        return pack(facts, self._conn.pool.url, block_migration,
                    disk_over_commit, free, shared=False)

    def pre_live_migration(self, instance, block_device_info,
                           migrate_data):
        """Make every volume's SR and VDI known in this pool.

        ``block_device_info`` carries the connection info Cinder made for
        this host's connector: a shared SR of another pool comes with what
        introducing it takes. The SRs introduced are added to the
        carrier, for a rollback here.
        """
        url, facts = unpack(migrate_data)
        introduced = []
        try:
            for vol, info in volume_connections(block_device_info):
                sr, new = self._volumeops.connect_sr(info)
                if new:
                    introduced.append(info['data']['sr_uuid'])
                # The VDI map needs the VDI known here before the move.
                self._volumeops.find_vdi(sr, info['data'])
        except Exception:
            with excutils.save_and_reraise_exception():
                for sr_uuid in introduced:
                    self._release(sr_uuid, instance)
        if introduced:
            facts['introduced_srs'] = introduced
            migrate_data.filename = jsonutils.dumps(facts)
            LOG.info('Introduced volume SR(s) %s for the incoming '
                     'migration', ', '.join(introduced), instance=instance)
        return migrate_data

    def _release(self, sr_uuid, instance):
        try:
            self._volumeops.release_sr(sr_uuid)
        except errors.SxmError as exc:
            LOG.warning('Could not forget volume SR %s: %s', sr_uuid, exc,
                        instance=instance)

    def post_at_source(self, instance, block_device_info, migrate_data):
        """Forget the volume SRs this driver introduced in this pool.

        Only after a move to another pool, and only those no other VBD
        here uses.
        """
        try:
            _, facts = unpack(migrate_data)
        except exception.MigrationPreCheckError:
            return
        if facts['pool_uuid'] == self._host.pool_uuid:
            return
        for vol, info in volume_connections(block_device_info):
            self._release(info['data']['sr_uuid'], instance)

    def post_at_destination(self, instance):
        ref = self._vmops.lookup(instance, check_host=False)
        if ref is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        # A later VM.start of this instance belongs on this host.
        self._conn.call('VM.set_affinity', ref, self._host.host_ref)

    def rollback_at_destination(self, instance, migrate_data=None):
        """Leave the destination pool as before the migration.

        XAPI removes what a failed migrate_send created; what a crash or a
        lost connection left is removed with the core's
        ``cleanup_destination`` (a halted VM record of the source VM and
        the VDIs created for it, mirror targets of its disks; never one of
        the source VM's own VDIs, which a shared SR's volume is, and never
        anything of a VM that runs here). Volume SRs pre_live_migration
        introduced are forgotten again.
        """
        try:
            _, facts = unpack(migrate_data)
        except exception.MigrationPreCheckError:
            facts = {}
        vm_uuid = facts.get('source_vm_uuid')
        if vm_uuid:
            cross_pool = facts.get('source_pool_uuid') != self._host.pool_uuid
            # Asked first whether the migration still runs there (or
            # completed): what it is still using is never removed.
            source = (self._conn.remote_pool(facts['source_url'],
                                             facts['source_pool_uuid'])
                      if cross_pool and facts.get('source_url') else None)
            try:
                core_migrate.cleanup_destination(
                    self._conn.pool, vm_uuid, facts.get('source_vdis', ()),
                    cross_pool=cross_pool,
                    source_pool=source or (None if cross_pool
                                           else self._conn.pool))
            except errors.MigrationCompleted as exc:
                LOG.warning('Nothing rolled back at the destination: %s',
                            exc, instance=instance)
            except errors.SxmError as exc:
                LOG.error('Rollback at the destination incomplete: %s',
                          exc, instance=instance)
            finally:
                if source is not None:
                    source.close()
        else:
            # A carrier from a source that did not name its VM.
            self._remove_leftover(instance)
        for sr_uuid in facts.get('introduced_srs') or ():
            self._release(sr_uuid, instance)

    def _remove_leftover(self, instance):
        ref = self._vmops.lookup(instance, check_host=False)
        if ref is None:
            return
        state = self._conn.call('VM.get_power_state', ref)
        resident = self._conn.call('VM.get_resident_on', ref)
        if state == 'Halted' and resident == vmops.NULL and \
                self._conn.call('VM.get_affinity', ref) in (
                    vmops.NULL, self._host.host_ref):
            LOG.warning('Removing the halted leftover VM of a failed '
                        'migration', instance=instance)
            self._vmops.destroy_ref(instance, ref)

    # -- source --------------------------------------------------------------

    def _dest_pool(self, url, facts):
        if facts['pool_uuid'] == self._host.pool_uuid:
            return None
        return self._conn.remote_pool(url, facts['pool_uuid'])

    def _plan(self, migrator, instance, facts, block_migration):
        vm = self._vmops.require(instance)
        sr_map = {}
        same_pool = facts['pool_uuid'] == self._host.pool_uuid
        own = self._vmops.own_disks(vm)
        for vbd_rec, vdi_rec in self._vmops.disk_records(vm):
            if vdi_rec['uuid'] in own and block_migration:
                sr_map[vdi_rec['uuid']] = facts['sr_uuid']
            elif same_pool:
                # A volume (or a disk staying put) keeps its SR.
                sr_map[vdi_rec['uuid']] = self._conn.call(
                    'SR.get_uuid', vdi_rec['SR'])
        network_map = dict(facts.get('networks') or {})
        the_plan, problems = migrator.plan(
            vm, dest_host=facts['host_uuid'], sr_map=sr_map,
            network_map=network_map,
            migration_network=facts.get('migration_network'))
        return the_plan, problems

    def _check_volumes(self, block_device_info, facts, dest):
        """MigrationPreCheckError naming each volume that cannot follow."""
        reasons = []
        for vol, info in volume_connections(block_device_info):
            data = info.get('data') or {}
            try:
                dest.call('SR.get_by_uuid', data.get('sr_uuid'))
                known = True
            except errors.XapiFailure:
                known = False
            why = unreachable_volume(vol, data, facts['pool_uuid'],
                                     facts['host_name'], known)
            if why:
                reasons.append(why)
        if reasons:
            # With a host given through the scheduler (API 2.30+), Nova's
            # conductor only says "No valid host" to the user and logs this
            # at DEBUG: the source host's log is where operators find it.
            LOG.warning('Live migration to %s refused: %s',
                        facts['host_name'], '; '.join(reasons))
            raise exception.MigrationPreCheckError(
                reason='; '.join(reasons))

    def check_source(self, instance, dest_check_data,
                     block_device_info=None):
        url, facts = unpack(dest_check_data)
        dest = self._dest_pool(url, facts)
        try:
            if dest is not None:
                # Before anything else: nothing may be copied for these.
                self._check_volumes(block_device_info, facts, dest)
            volume_vdis = self._volumeops.volume_vdis(
                self._vmops.require(instance))
            migrator = self._conn.migrator(dest)
            requested = (dest_check_data.block_migration
                         if 'block_migration' in dest_check_data else None)
            # Disks can stay when every one is on storage the destination
            # host reaches: try that first unless a block migration was
            # asked for.
            the_plan = None
            if requested is not True:
                the_plan, problems = self._plan(migrator, instance, facts,
                                                block_migration=False)
            # A volume is never copied: its SR is introduced at the
            # destination (pre_live_migration) or the check above refused.
            block = decide_block(
                requested, [s.disk.label() for s in (
                    the_plan.disks if the_plan else ())
                    if s.transfer and s.disk.uuid not in volume_vdis],
                facts['host_name'])
            if block:
                the_plan, problems = self._plan(migrator, instance, facts,
                                                block_migration=True)
            problems = (migrator.check(the_plan)
                        if not planmod.blocking(problems) else problems)
            if planmod.blocking(problems):
                raise exception.MigrationPreCheckError(
                    reason=problems_text(problems))
            dest_check_data.block_migration = block
            dest_check_data.is_shared_block_storage = not block
            # Public facts the destination's rollback needs: which VM and
            # which of its VDIs (never to be removed there).
            facts.update(
                source_url=self._conn.pool.url,
                source_pool_uuid=self._host.pool_uuid,
                source_vm_uuid=the_plan.vm.uuid,
                source_vdis=sorted(s.disk.uuid for s in the_plan.disks
                                   + the_plan.snapshot_disks))
            dest_check_data.filename = jsonutils.dumps(facts)
            return dest_check_data
        finally:
            if dest is not None:
                dest.close()

    def disk_info(self, instance):
        """The instance's own disks (volumes stay on their SR).

        ``disk_size`` is what the disk's whole VHD chain holds (its leaf
        and the base copies ``sm_config vhd-parent`` leads to, as the
        core's ``Disk.holds`` counts it): a leaf alone is small after a
        snapshot or a storage migration.
        """
        vm = self._vmops.require(instance)
        volumes = self._volumeops.volume_vdis(vm)
        disks = []
        for disk in factsmod.read_vm(self._conn.pool, vm).disks:
            if disk.uuid in volumes:
                continue
            disks.append({
                'type': 'vhd', 'path': disk.uuid,
                'userdevice': disk.userdevice,
                'virt_disk_size': disk.virtual_size,
                'disk_size': disk.holds,
                'backing_file': '',
                'over_committed_disk_size': max(
                    0, disk.virtual_size - disk.holds)})
        return jsonutils.dumps(disks)

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration, migrate_data):
        cancel = threading.Event()
        self.active_migrations[instance.uuid] = cancel
        try:
            ok = self._run(instance, migrate_data, cancel)
        except Exception:
            LOG.exception('Live migration failed', instance=instance)
            ok = 'error'
        finally:
            self.active_migrations.pop(instance.uuid, None)
        if ok is True:
            post_method(context, instance, dest, block_migration,
                        migrate_data)
        else:
            recover_method(context, instance, dest, migrate_data,
                           migration_status=ok)

    def _run(self, instance, migrate_data, cancel):
        url, facts = unpack(migrate_data)
        block = bool(migrate_data.block_migration) \
            if 'block_migration' in migrate_data else True
        migration = (migrate_data.migration
                     if migrate_data.obj_attr_is_set('migration') else None)
        dest = self._dest_pool(url, facts)
        try:
            migrator = self._conn.migrator(dest)
            the_plan, problems = self._plan(migrator, instance, facts, block)
            if planmod.blocking(problems):
                LOG.error('Live migration refused: %s',
                          problems_text(problems), instance=instance)
                return 'error'
            copied = self._copied_volumes(the_plan)
            if copied:
                LOG.error('Live migration refused: the destination pool '
                          'does not know the SR of volume(s) %s; they '
                          'would be copied', ', '.join(copied),
                          instance=instance)
                return 'error'
            if dest is None and not block:
                self._pool_migrate(instance, the_plan, cancel)
                return True
            reporter = _Reporter(instance, migration, the_plan.vm.memory)
            try:
                result = migrator.migrate(the_plan, progress=reporter,
                                          cancel=cancel)
            except errors.ContactLost as exc:
                return self._follow(instance, exc, the_plan, reporter,
                                    cancel)
            except errors.MigrationFailed as exc:
                status = 'cancelled' if cancel.is_set() else 'error'
                LOG.error('Live migration %s: %s', status, exc,
                          instance=instance)
                return status
            LOG.info('Live migration done in %.1f s', result.seconds,
                     instance=instance)
            return True
        finally:
            if dest is not None:
                dest.close()

    def _follow(self, instance, lost, the_plan, reporter, cancel,
                sleep=time.sleep, clock=time.monotonic):
        """The source pool went silent while its task ran: follow the task.

        The migration may still complete, so nothing is rolled back
        while it may run: ``fleet.watch`` follows the task once the pool
        answers again (trying for ``FOLLOW_SECONDS``). A task that is gone
        is judged by where the VM is.
        """
        LOG.warning('Lost contact with XAPI during the live migration; '
                    'following its task %s', lost.task_uuid,
                    instance=instance)
        pool = self._conn.pool
        deadline = clock() + FOLLOW_SECONDS

        def progress(fraction):
            reporter(core_migrate.progress_of(the_plan, fraction))
        while True:
            try:
                info = fleet.find_migration(pool, lost.task_uuid)
                outcome = fleet.watch(pool, info, progress=progress,
                                      cancel=cancel)
            except (errors.ContactLost, errors.ConnectionFailed) as exc:
                if clock() > deadline:
                    LOG.error('Live migration: no contact with XAPI for '
                              '%d s; its task %s may still run: %s',
                              FOLLOW_SECONDS, lost.task_uuid, exc,
                              instance=instance)
                    return 'error'
                sleep(FOLLOW_RETRY)
                continue
            except (errors.MigrationNotFound, errors.TaskVanished):
                return self._judge_by_vm(instance, the_plan)
            if outcome.ok:
                LOG.info('Live migration done (followed after a lost '
                         'contact)', instance=instance)
                return True
            LOG.error('Live migration: %s', outcome.describe(),
                      instance=instance)
            return ('cancelled' if outcome.status
                    == constants.TASK_CANCELLED else 'error')

    def _judge_by_vm(self, instance, the_plan):
        """A vanished task: judged by where the VM is.

        Across pools xapi removes the source VM only on success; in a pool
        the VM resides on the destination host only after one.
        """
        ref = self._vmops.lookup(instance, check_host=False)
        if ref is not None and not the_plan.cross_pool and \
                the_plan.dest_host is not None and \
                self._conn.call('VM.get_resident_on', ref) == \
                the_plan.dest_host.ref:
            ref = None
        if ref is None:
            LOG.info('Live migration task gone and the VM is at the '
                     'destination: the migration completed',
                     instance=instance)
            return True
        LOG.error('Live migration task gone; the VM is still here: the '
                  'migration failed', instance=instance)
        return 'error'

    def _copied_volumes(self, the_plan):
        """Volumes the plan would copy (their SR is not at the dest)."""
        volumes = self._volumeops.volume_vdis(the_plan.vm.ref)
        return sorted(volumes[s.disk.uuid][0] for s in the_plan.disks
                      if s.transfer and s.disk.uuid in volumes)

    def _pool_migrate(self, instance, the_plan, cancel):
        watch = tasks.Watch(cancel=cancel)
        tasks.call_async(self._conn.pool, 'VM.pool_migrate',
                         (the_plan.vm.ref, the_plan.dest_host.ref,
                          {'live': 'true'}),
                         'pool migration of %s' % instance.uuid, watch=watch)

    def abort(self, instance):
        cancel = self.active_migrations.get(instance.uuid)
        if cancel is None:
            raise exception.NoActiveMigrationForInstance(
                instance_id=instance.uuid)
        LOG.info('Aborting the live migration', instance=instance)
        cancel.set()


class _Reporter(object):
    """Writes migration progress to the Migration and the Instance.

    Two database writes per report: at most one report per ``interval``
    seconds (and one per phase), so that the event loop following the
    XAPI task is not held up by them.
    """

    def __init__(self, instance, migration, memory_total, interval=1.0,
                 clock=time.monotonic):
        self.instance = instance
        self.migration = migration
        self.memory_total = memory_total
        self.interval = interval
        self._clock = clock
        self._last = None
        self._saved_at = None

    def __call__(self, progress):
        percent = int(progress.fraction * 100)
        key = (percent, progress.phase)
        if key == self._last:
            return
        now = self._clock()
        if (self._last is not None and progress.phase == self._last[1]
                and now - self._saved_at < self.interval):
            return
        self._last = key
        self._saved_at = now
        if self.migration is not None:
            for name, value in progress_fields(
                    progress, self.memory_total).items():
                setattr(self.migration, name, value)
            self.migration.save()
        self.instance.progress = percent
        self.instance.save()
