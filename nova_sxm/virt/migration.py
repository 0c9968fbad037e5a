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
                            network uuid}, "migration_network": uuid|null}``
``block_migration``         True: SXM (disks move); False: disks stay on
                            storage both hosts reach
``disk_available_mb``       free space of the destination SR
``is_shared_block_storage`` every disk is on storage the destination reaches
``is_shared_instance_path`` always False, so that nova calls
                            ``rollback_live_migration_at_destination``
=========================== ================================================

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
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import units
from sxm_core import errors
from sxm_core import plan as planmod
from sxm_core import tasks

from nova_sxm.virt import vmops

LOG = logging.getLogger(__name__)
CARRIER_TAG = 'sxm'
FACTS_VERSION = 1


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

    A zero is written as None: nova 34's API response schema for server
    migrations requires these byte counts to be null or at least 1.
    """
    done = min(progress.bytes_done, progress.bytes_total)
    memory_done = 0
    if progress.phase in ('memory', 'done'):
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


class LiveMigrationOps(object):
    """The live-migration hooks of the driver."""

    def __init__(self, conn, host, vmops_, vifops):
        self._conn = conn
        self._host = host
        self._vmops = vmops_
        self._vif = vifops
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

    def pre_live_migration(self, instance, migrate_data):
        # Volumes' SRs must be known here: scan them so that their VDIs
        # (created by Cinder meanwhile) are found after the move.
        return migrate_data

    def post_at_destination(self, instance):
        ref = self._vmops.lookup(instance, check_host=False)
        if ref is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        # A later VM.start of this instance belongs on this host.
        self._conn.call('VM.set_affinity', ref, self._host.host_ref)

    def rollback_at_destination(self, instance):
        """Leave the destination pool as before the migration.

        XAPI removes what a failed migrate_send created; a halted leftover
        of this instance is removed here, a running VM never is.
        """
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

    def check_source(self, instance, dest_check_data):
        url, facts = unpack(dest_check_data)
        dest = self._dest_pool(url, facts)
        try:
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
            block = decide_block(
                requested, [s.disk.label() for s in (
                    the_plan.disks if the_plan else ()) if s.transfer],
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
            return dest_check_data
        finally:
            if dest is not None:
                dest.close()

    def disk_info(self, instance):
        vm = self._vmops.require(instance)
        disks = []
        for vbd_rec, vdi_rec in self._vmops.disk_records(vm):
            disks.append({
                'type': 'vhd', 'path': vdi_rec['uuid'],
                'userdevice': vbd_rec['userdevice'],
                'virt_disk_size': int(vdi_rec['virtual_size']),
                'disk_size': int(vdi_rec['physical_utilisation']),
                'backing_file': '', 'over_committed_disk_size': 0})
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
            if dest is None and not block:
                self._pool_migrate(instance, the_plan, cancel)
                return True
            reporter = _Reporter(instance, migration, the_plan.vm.memory)
            try:
                result = migrator.migrate(the_plan, progress=reporter,
                                          cancel=cancel)
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
