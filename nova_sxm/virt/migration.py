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
``connection_password``) and asks for the token itself. nova-compute logs
this object at DEBUG.

One plan, one token, one login. The destination's check only reports
public facts. ``check_source`` reads the VM and what both pools hold for
it once, decides block or not, runs the local preflight, and keeps the
plan with its destination pool session in memory (``PLAN_KEEP`` seconds)
for ``get_instance_disk_info`` and ``live_migration``, which (in the same
process) asks for the migrate_receive token, has XAPI check the plan with
it (``VM.assert_can_migrate``) and sends with that same token, then
closes the destination pool. It plans again only when
``pre_live_migration`` introduced volume SRs at the destination or no
kept plan matches (e.g. after a restart).

A dead owner. XAPI runs a ``migrate_send`` to its end whatever happens
to nova-compute, while Nova, when the source compute starts again, only
calls ``live_migration_abort`` (``_reset_live_migration``, from
``_init_instance`` of an instance left MIGRATING), swallows what it
raises, sets the Migration ``error`` and keeps the instance on this
compute. So the decision is that Nova's record wins, and the driver makes
XAPI match it:

* Watchdog. Each migration gets a custodian process
  (``fleet.owner_custodian_for``, made by ``XapiConnection.migrator``):
  when nova-compute dies (EOF on its pipe) or the service is stopped
  (SIGTERM), it cancels the task, cleans the destination pool, removes
  the marker, destroys the task and logs the migrate_receive token out.
* Marker. Before ``migrate_send`` the source records the migration's
  public facts (``MARKER_KEY``: JSON with the instance, the source and
  destination pool URLs and uuids, the destination host, the start
  time; never a session id or token) on the
  source VM's ``other_config`` (XAPI copies it to the destination VM)
  and on its pool's ``other_config`` under ``POINTER_PREFIX`` + the
  instance uuid (it outlives the source VM). Cleared on failure, on
  rollback and after success (``post_live_migration`` at the source,
  ``post_live_migration_at_destination`` for the VM's copy). Its task
  is not named: the core tags it as this service's, and an ended one
  is destroyed by the watchdog or by the reap at start-up.
* Reconciliation (``abort`` with no migration in this process's memory,
  i.e. after a restart): a ``migrate_send`` of the VM still running is
  cancelled and followed to its end and the destination pool cleaned; a
  migration that ended badly has its leftovers removed; one that
  completed (VM gone from this pool, present in the pool the marker
  names) is brought back by a live Storage XenMotion from that pool to
  this host and its SR, with this compute's credentials for that pool,
  in a background thread so that start-up goes on with the other
  instances. Meanwhile ``get_info`` finds no VM here: Nova reads NOSTATE
  and its power sync leaves the server alone; once back, the next sync
  reads Running. A WARNING says each time what was found and done.
  Past the point of no return of a watchdog's cancel the migration
  completes: the same bring-back applies. Without a marker the abort
  raises NoActiveMigrationForInstance as before. ``reconcile_host``
  (for the driver's start-up, with Nova's instances of the host) does
  the same for the records of instances Nova no longer has MIGRATING
  (a bring-back that was itself interrupted), removes the VM of an
  instance the API deleted while this compute was down, and drops the
  record of one Nova has on another compute.
* Destination side: the destination compute is not told by Nova; a VM
  that arrived with a marker of an instance Nova keeps elsewhere is left
  alone there (the source brings it back); ``post_at_destination``
  clears the marker once Nova completes the migration. A source compute
  down for longer than the copy finds the completed migration at its
  start: the bring-back above.
* Delete. ``destroy`` stops a bring-back, cancels a migration of the VM
  still running, and ``destroy_elsewhere`` removes the instance's VM
  from the pool its marker names when it is not legitimately there
  (Nova's node of the instance is not that pool's host).
"""

import datetime
import threading
import time

from nova.compute import task_states
from nova import context as nova_context
from nova import exception
from nova import objects
from nova.objects import migrate_data as migrate_data_obj
from nova.scheduler.client import report as report_client
from nova.virt import driver as virt_driver
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import excutils
from oslo_utils import units
from sxm_core import attach
from sxm_core import cleanup as core_cleanup
from sxm_core import constants
from sxm_core import errors
from sxm_core import facts as factsmod
from sxm_core import fleet
from sxm_core import migrate as core_migrate
from sxm_core import plan as planmod
from sxm_core import retry
from sxm_core import sessions
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
# The record of a migration under way: on the source VM (and so on its
# copy at the destination), and on the source pool per instance.
MARKER_KEY = 'nova-sxm-migration'
POINTER_PREFIX = MARKER_KEY + '/'
MARKER_VERSION = 1
# How long a destroy waits for a migration or bring-back it stopped.
STOP_WAIT = 120
# How long the plan of a source check waits for its live_migration (Nova
# calls pre_live_migration at the destination in between) before it is
# dropped and its destination pool session logged out.
PLAN_KEEP = 300


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


def make_marker(instance_uuid, vm_uuid, source_url, source_pool_uuid,
                source_host_uuid, dest_url, facts, started=None):
    """The public facts of a migration under way (a dict)."""
    return {
        'version': MARKER_VERSION, 'instance_uuid': instance_uuid,
        'vm_uuid': vm_uuid,
        'source_url': sessions.safe_url(source_url),
        'source_pool_uuid': source_pool_uuid,
        'source_host_uuid': source_host_uuid,
        'dest_url': sessions.safe_url(dest_url),
        'dest_pool_uuid': facts['pool_uuid'],
        'dest_host_uuid': facts['host_uuid'],
        'dest_host_name': facts.get('host_name'),
        'started': started or datetime.datetime.now(
            datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
    }


def read_marker(text, instance_uuid=None):
    """The marker dict in ``text``, or None (absent, garbled, not ours)."""
    try:
        value = jsonutils.loads(text) if text else None
    except (TypeError, ValueError):
        return None
    if not isinstance(value, dict) or not value.get('dest_url') or \
            not value.get('dest_pool_uuid'):
        return None
    if instance_uuid and value.get('instance_uuid') != instance_uuid:
        return None
    return value


def _choices(facts, moved=()):
    """``Migrator.plan`` choices from the destination's ``facts``.

    ``moved``: VDI uuids of the disks that go to the destination's SR.
    """
    return {'dest_host': facts['host_uuid'],
            'sr_map': {uuid: facts['sr_uuid'] for uuid in moved},
            'network_map': dict(facts.get('networks') or {}),
            'migration_network': facts.get('migration_network')}


def problems_text(problems):
    return '; '.join(p.message for p in planmod.blocking(problems))


def volume_connections(block_device_info):
    """[(volume id, connection info)] of the xensm volumes."""
    out = []
    for bdm in virt_driver.block_device_info_get_mapping(block_device_info):
        info = bdm.get('connection_info') or {}
        if attach.volume_data(info) is not None:
            out.append((volumeops.volume_id(info), info))
    return out


def unreachable_volume(vol, data, dest_pool, dest_host, dest_knows_sr):
    """Why a volume cannot follow its VM to ``dest_pool``, or None.

    It can when its SR is the destination pool's own, is already known
    there, or is shared (the destination introduces it).
    """
    if attach.refusal(vol, data, dest_pool, knows_sr=dest_knows_sr) is None:
        return None
    return ('volume %s is on SR %s (%s), local to XAPI pool %s: host %s '
            'in XAPI pool %s cannot reach it. Retype the volume to a shared '
            'tier, or detach it, before migrating.'
            % (vol, data.get('sr_uuid'), data.get('sr_type', '?'),
               data.get('pool_uuid') or '?', dest_host, dest_pool))


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
        # instance uuid -> (thread, cancel Event) of a bring-back
        self._returns = {}
        self._returns_lock = threading.Lock()
        # instance uuid -> _Planned: the source check's plan
        self._planned = {}
        self._planned_lock = threading.Lock()

    # -- destination ---------------------------------------------------------

    def check_destination(self, instance, block_migration,
                          disk_over_commit):
        _, sr_rec = self._host.find_sr_record()
        free = max(0, int(sr_rec['physical_size'])
                   - int(sr_rec['physical_utilisation']))
        wanted = self._conn.settings.live_migration_network
        network_info = instance.get_network_info()
        networks = self._vif.networks(network_info,
                                      also=[wanted] if wanted else ())
        port_map = {}
        for vif in network_info:
            ref = self._vif.choose_network(vif, networks)
            port_map[vif['id']] = networks[ref]['uuid']
        migration_network = None
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
        # Nova completes the migration: nothing left to reconcile.
        self._set_pointer(instance.uuid, None)
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
        # Nova has the instance here now: the marker XAPI copied along
        # would make this VM look like an interrupted migration's.
        _set_key(self._conn.call, 'VM', ref, MARKER_KEY, None)

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
                core_cleanup.cleanup_destination(
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

    def _plan(self, migrator, survey, own, facts, block_migration):
        """The plan from ``survey`` (pure: no XAPI call).

        ``own``: VDI uuids of the instance's own disks, which move to the
        destination's SR in a block migration.
        """
        choices = _choices(facts, own if block_migration else ())
        if facts['pool_uuid'] == self._host.pool_uuid:
            # A volume (or a disk staying put) keeps its SR when the
            # destination host reaches it; a disk on the source host's
            # local SR follows the VM to the destination's SR (so that
            # 'auto' is a block migration, not a refused pool_migrate).
            dest_host = next((h for h in survey.source.hosts
                              if h.uuid == facts['host_uuid']), None)
            srs = {sr.ref: sr for sr in survey.source.srs}
            for disk in survey.vm.disks:
                sr = srs.get(disk.sr)
                if disk.uuid in choices['sr_map'] or sr is None:
                    continue
                if dest_host is None or dest_host.ref in sr.hosts:
                    choices['sr_map'][disk.uuid] = sr.uuid
                elif disk.uuid in own:
                    choices['sr_map'][disk.uuid] = facts['sr_uuid']
        return migrator.plan(survey.vm.ref, survey=survey, **choices)

    def _survey(self, migrator, instance, facts):
        """(survey, own disk uuids, volumes) of the instance.

        One read of the VM and of what both pools hold for it, enough for
        a plan with or without moving its disks. ``volumes``: as
        ``vmops.VMOps.disk_roles`` says.
        """
        vm = self._vmops.require(instance)
        own, volumes = self._vmops.disk_roles(vm)
        survey = migrator.survey(vm, **_choices(facts, own))
        return survey, own, volumes

    def _check_volumes(self, block_device_info, facts, dest):
        """MigrationPreCheckError naming each volume that cannot follow."""
        reasons = []
        for vol, info in volume_connections(block_device_info):
            data = info.get('data') or {}
            try:
                dest.call('SR.get_by_uuid', data.get('sr_uuid'))
                known = True
            except errors.UuidInvalid:
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
        """Plan the migration (once) and check it locally.

        Reads what the plan needs once and keeps the plan, with the
        destination pool's session, for ``live_migration`` (at most
        ``PLAN_KEEP`` seconds). XAPI's own check (migrate_receive and
        VM.assert_can_migrate) runs there, right before the send, so
        that one migrate_receive token serves both and never waits on
        Nova's RPCs in between.
        """
        url, facts = unpack(dest_check_data)
        self._drop_plan(instance.uuid)
        dest = self._dest_pool(url, facts)
        kept = False
        try:
            if dest is not None:
                # Before anything else: nothing may be copied for these.
                self._check_volumes(block_device_info, facts, dest)
            migrator = self._conn.migrator(dest)
            survey, own, volumes = self._survey(migrator, instance, facts)
            requested = (dest_check_data.block_migration
                         if 'block_migration' in dest_check_data else None)
            # Disks can stay when every one is on storage the destination
            # host reaches: try that first unless a block migration was
            # asked for.
            the_plan = None
            if requested is not True:
                the_plan, problems = self._plan(migrator, survey, own, facts,
                                                block_migration=False)
            # A volume is never copied: its SR is introduced at the
            # destination (pre_live_migration) or the check above refused.
            block = decide_block(
                requested, [s.disk.label() for s in (
                    the_plan.disks if the_plan else ())
                    if s.transfer and s.disk.uuid not in volumes],
                facts['host_name'])
            if block:
                the_plan, problems = self._plan(migrator, survey, own, facts,
                                                block_migration=True)
            if planmod.blocking(problems):
                # The scheduler turns a refused host into "No valid host
                # was found": the reason must be in this compute's log.
                reason = problems_text(problems)
                LOG.warning('Live migration to %s refused: %s',
                            facts['host_name'], reason)
                raise exception.MigrationPreCheckError(reason=reason)
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
            self._keep_plan(instance.uuid, _Planned(
                the_plan, volumes, dest, url, facts['pool_uuid'], block))
            kept = True
            return dest_check_data
        finally:
            if dest is not None and not kept:
                dest.close()

    def _keep_plan(self, instance_uuid, planned):
        planned.timer = threading.Timer(
            PLAN_KEEP, self._drop_plan, (instance_uuid, planned))
        planned.timer.daemon = True
        with self._planned_lock:
            self._planned[instance_uuid] = planned
        planned.timer.start()

    def _take_plan(self, instance_uuid, url, facts, block):
        """The source check's plan for this migration, or None."""
        with self._planned_lock:
            planned = self._planned.pop(instance_uuid, None)
        if planned is None:
            return None
        planned.timer.cancel()
        if (planned.url, planned.pool_uuid, planned.block) != (
                url, facts['pool_uuid'], block):
            planned.close()
            return None
        return planned

    def _drop_plan(self, instance_uuid, planned=None):
        """Forget the kept plan (only ``planned``, when given)."""
        with self._planned_lock:
            found = self._planned.get(instance_uuid)
            if found is None or (planned is not None and found is not planned):
                return
            del self._planned[instance_uuid]
        found.timer.cancel()
        found.close()

    def disk_info(self, instance):
        """The instance's own disks (volumes stay on their SR).

        ``disk_size`` is what the disk's whole VHD chain holds (its leaf
        and the base copies ``sm_config vhd-parent`` leads to, as the
        core's ``Disk.holds`` counts it): a leaf alone is small after a
        snapshot or a storage migration. Nova asks for it between the
        source check and ``live_migration``: the check's kept plan
        answers it.
        """
        with self._planned_lock:
            planned = self._planned.get(instance.uuid)
        if planned is not None:
            found, volumes = planned.plan.vm.disks, planned.volumes
        else:
            vm = self._vmops.require(instance)
            _, volumes = self._vmops.disk_roles(vm)
            found = factsmod.read_vm(self._conn.pool, vm).disks
        disks = []
        for disk in found:
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
        if ok is not True:
            self._clear_after_failure(instance)
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
        planned = self._take_plan(instance.uuid, url, facts, block)
        dest = planned.dest if planned else self._dest_pool(url, facts)
        try:
            migrator = self._conn.migrator(dest, marker_key=MARKER_KEY)
            if planned is not None and not facts.get('introduced_srs'):
                the_plan, volumes = planned.plan, planned.volumes
            else:
                # No check in this process (a restart), or volume SRs
                # introduced at the destination since: its pool changed.
                survey, own, volumes = self._survey(migrator, instance,
                                                    facts)
                the_plan, problems = self._plan(migrator, survey, own, facts,
                                                block)
                if planmod.blocking(problems):
                    LOG.error('Live migration refused: %s',
                              problems_text(problems), instance=instance)
                    return 'error'
            copied = sorted(volumes[s.disk.uuid][0] for s in the_plan.disks
                            if s.transfer and s.disk.uuid in volumes)
            if copied:
                LOG.error('Live migration refused: the destination pool '
                          'does not know the SR of volume(s) %s; they '
                          'would be copied', ', '.join(copied),
                          instance=instance)
                return 'error'
            if dest is None and not block:
                self._pool_migrate(instance, the_plan, cancel)
                return True
            # XAPI's check and the send share one migrate_receive token.
            problems, held = migrator.prepare(the_plan)
            if planmod.blocking(problems):
                LOG.error('Live migration refused: %s',
                          problems_text(problems), instance=instance)
                return 'error'
            try:
                marker = make_marker(
                    instance.uuid, the_plan.vm.uuid, self._conn.pool.url,
                    self._host.pool_uuid, self._host.host_uuid, url, facts)
                self._mark(instance, the_plan.vm.ref, marker)
            except BaseException:
                held.release()
                raise
            reporter = _Reporter(instance, migration, the_plan.vm.memory)
            try:
                result = migrator.migrate(the_plan, progress=reporter,
                                          cancel=cancel, lease=held)
            except errors.ContactLost as exc:
                return self._follow(instance, exc, the_plan, reporter,
                                    cancel, leases=migrator.leases)
            except errors.MigrationFailed as exc:
                if isinstance(exc.cause, (errors.TaskVanished,
                                          errors.HandleInvalid)) and \
                        not isinstance(exc, errors.MigrationCancelled):
                    # XAPI lost the task (a toolstack restart): where
                    # the VM is says how the migration ended.
                    LOG.warning('Live migration: its XAPI task is gone; '
                                'judging by where the VM is. %s', exc,
                                instance=instance)
                    return self._judge_by_vm(instance, the_plan)
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
                leases=None, sleep=time.sleep, clock=time.monotonic):
        """The source pool went silent while its task ran: follow the task.

        The migration may still complete, so nothing is rolled back
        while it may run: ``fleet.watch`` follows the task once the pool
        answers again (trying for ``FOLLOW_SECONDS``). A task that is gone
        is judged by where the VM is. ``leases``: the Migrator's, whose
        migrate_receive token the task's end ends.
        """
        LOG.warning('Lost contact with XAPI during the live migration; '
                    'following its task %s', lost.task_uuid,
                    instance=instance)
        pool = self._conn.pool
        deadline = clock() + FOLLOW_SECONDS

        def progress(fraction):
            reporter(core_migrate.progress_of(the_plan, fraction))

        def follow():
            info = fleet.find_migration(pool, lost.task_uuid)
            return fleet.watch(pool, info, progress=progress,
                               cancel=cancel, leases=leases)
        try:
            outcome = retry.call(
                follow, int(FOLLOW_SECONDS / FOLLOW_RETRY) + 1,
                retry_if=lambda exc: isinstance(exc, (
                    errors.ContactLost, errors.ConnectionFailed))
                and clock() <= deadline,
                delay=lambda attempt: FOLLOW_RETRY, wait=sleep)
        except (errors.ContactLost, errors.ConnectionFailed) as exc:
            LOG.error('Live migration: no contact with XAPI for %d s; its '
                      'task %s may still run: %s', FOLLOW_SECONDS,
                      lost.task_uuid, exc, instance=instance)
            return 'error'
        except (errors.MigrationNotFound, errors.TaskVanished):
            return self._judge_by_vm(instance, the_plan)
        if outcome.ok:
            LOG.info('Live migration done (followed after a lost contact)',
                     instance=instance)
            return True
        LOG.error('Live migration: %s', outcome.describe(),
                  instance=instance)
        return ('cancelled' if outcome.status == constants.TASK_CANCELLED
                else 'error')

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

    def _pool_migrate(self, instance, the_plan, cancel):
        watch = tasks.Watch(cancel=cancel)
        tasks.call_async(self._conn.pool, 'VM.pool_migrate',
                         (the_plan.vm.ref, the_plan.dest_host.ref,
                          {'live': 'true'}),
                         'pool migration of %s' % instance.uuid, watch=watch)

    def abort(self, instance):
        cancel = self.active_migrations.get(instance.uuid)
        if cancel is not None:
            LOG.info('Aborting the live migration', instance=instance)
            cancel.set()
            return
        # Not this process's: after a restart, XAPI may still know it.
        if not self.reconcile(instance):
            raise exception.NoActiveMigrationForInstance(
                instance_id=instance.uuid)
        self._give_back_allocations(instance)

    def _give_back_allocations(self, instance):
        """Nova keeps the instance here: so do its Placement allocations.

        Nova's _reset_live_migration only sets the Migration 'error': the
        instance would keep consuming the destination's resources while
        the source's stay held by the migration. Swapped back as Nova's
        own rollback does (ComputeManager._revert_allocation).
        """
        ctxt = nova_context.get_admin_context()
        try:
            migration = objects.Migration.get_by_instance_and_status(
                ctxt, instance.uuid, 'running')
        except exception.MigrationNotFoundByStatus:
            return
        if migration.source_compute != instance.host:
            return
        try:
            report = report_client.report_client_singleton()
            if not report.get_allocations_for_consumer(ctxt, migration.uuid):
                return
            report.move_allocations(ctxt, migration.uuid, instance.uuid)
        except Exception as exc:
            LOG.warning('Could not give the instance back its allocations '
                        'of this host (held by migration %s): %s',
                        migration.uuid, exc, instance=instance)
            return
        LOG.info('Allocations held by migration %s given back to the '
                 'instance on this host', migration.uuid, instance=instance)

    # -- markers --------------------------------------------------------------

    def _mark(self, instance, vm_ref, marker):
        """Record ``marker`` on the VM and the pool (before migrate_send)."""
        text = jsonutils.dumps(marker)
        _set_key(self._conn.call, 'VM', vm_ref, MARKER_KEY, text)
        self._set_pointer(instance.uuid, text)

    def _set_pointer(self, instance_uuid, text):
        try:
            _set_key(self._conn.call, 'pool', self._pool_ref(),
                     POINTER_PREFIX + instance_uuid, text)
        except errors.SxmError as exc:
            LOG.warning('Could not %s the migration record of instance %s '
                        'in XAPI pool %s: %s',
                        'write' if text else 'remove', instance_uuid,
                        self._host.pool_uuid, exc)

    def _pool_ref(self):
        return self._host.pool_ref or self._conn.call('pool.get_all')[0]

    def pointers(self):
        """{instance uuid: marker} of this pool's migration records."""
        other = self._conn.call('pool.get_other_config', self._pool_ref())
        out = {}
        for key, text in other.items():
            if key.startswith(POINTER_PREFIX):
                uuid = key[len(POINTER_PREFIX):]
                marker = read_marker(text, uuid)
                if marker is not None:
                    out[uuid] = marker
        return out

    def marker_of(self, instance, vm_ref=None):
        """The marker of the instance's last migration from here, or None.

        The pool's record first (it outlives the source VM), then the
        VM's own.
        """
        marker = self.pointers().get(instance.uuid)
        if marker is None and vm_ref is not None:
            other = self._conn.call('VM.get_other_config', vm_ref)
            marker = read_marker(other.get(MARKER_KEY), instance.uuid)
        return marker

    def _clear_after_failure(self, instance):
        """The migration ended and the VM is here: forget its marker."""
        try:
            ref = self._vmops.lookup(instance, check_host=False)
            if ref is None or self._running_migration(ref) is not None:
                return  # it may arrive there: keep the record
            _set_key(self._conn.call, 'VM', ref, MARKER_KEY, None)
            self._set_pointer(instance.uuid, None)
        except Exception as exc:
            LOG.warning('Could not clear the migration record: %s', exc,
                        instance=instance)

    # -- reconciliation after a restart ---------------------------------------

    def reconcile(self, instance):
        """Make XAPI match Nova after the migration's owner died.

        Nova keeps the instance on this compute (see the module doc).
        Returns False when XAPI shows no migration of the instance.
        """
        with self._returns_lock:
            if instance.uuid in self._returns:
                return True   # being brought back already
        ref = self._vmops.lookup(instance, check_host=False)
        marker = self.marker_of(instance, ref)
        running = self._running_migration(ref)
        if running is not None:
            LOG.warning('Found live migration task %s of this instance '
                        'still running in XAPI (its nova-compute died); '
                        'cancelling it, as Nova keeps the instance here',
                        running.task_uuid, instance=instance)
            outcome = fleet.cancel(self._conn.pool, running)
            self._destroy_task(running.task_ref)
            if not outcome.ok:
                self._clean_destination(instance, ref, marker)
                LOG.warning('Live migration task %s %s; the VM runs here, '
                            'the destination pool is clean',
                            running.task_uuid, outcome.status,
                            instance=instance)
                return True
            LOG.warning('Live migration task %s completed before the '
                        'cancel took effect', running.task_uuid,
                        instance=instance)
            ref = self._vmops.lookup(instance, check_host=False)
            if marker is None:
                LOG.error('Live migration task %s completed, and no '
                          'migration record names its destination pool: '
                          'the VM runs there while Nova has the instance '
                          'on this host', running.task_uuid,
                          instance=instance)
                return True
        if marker is None:
            return False
        if ref is not None and not self._moved_in_pool(ref, marker):
            # Failed, cancelled (by the watchdog) or never started.
            self._clean_destination(instance, ref, marker)
            LOG.warning('The live migration of this instance to XAPI pool '
                        '%s (started %s) ended while its nova-compute was '
                        'down; the VM is here and leftovers at the '
                        'destination were removed', marker['dest_pool_uuid'],
                        marker.get('started'), instance=instance)
            return True
        self.bring_back(instance, marker)
        return True

    def _moved_in_pool(self, ref, marker):
        """Whether an in-pool migration put the VM on its other host."""
        if marker['dest_pool_uuid'] != self._host.pool_uuid:
            return False
        rec = self._conn.call('VM.get_record', ref)
        return rec['resident_on'] not in (vmops.NULL, self._host.host_ref)

    def _running_migration(self, ref):
        if ref is None:
            return None
        rec = self._conn.call('VM.get_record', ref)
        if fleet.STORAGE_OPERATION not in rec['current_operations'].values():
            return None
        uuid = rec['uuid']
        for info in fleet.list_migrations(self._conn.pool):
            if info.vm_uuid == uuid:
                return info
        return None

    def _destroy_task(self, task_ref):
        try:
            self._conn.call('task.destroy', task_ref)
        except errors.SxmError:
            pass   # gone already

    def _remote(self, marker):
        if marker['dest_pool_uuid'] == self._host.pool_uuid:
            return None
        return self._conn.remote_pool(marker['dest_url'],
                                      marker['dest_pool_uuid'])

    def _clean_destination(self, instance, ref, marker):
        """Remove what a migration that did not complete left there."""
        if ref is not None:
            _set_key(self._conn.call, 'VM', ref, MARKER_KEY, None)
        if marker is None:
            self._set_pointer(instance.uuid, None)
            return
        remote = self._remote(marker)
        try:
            keep = [vdi['uuid'] for _, vdi in self._vmops.disk_records(ref)]
            core_cleanup.cleanup_destination(
                remote or self._conn.pool, marker['vm_uuid'], keep,
                cross_pool=remote is not None, source_pool=self._conn.pool)
        except errors.SxmError as exc:
            LOG.error('Cleaning XAPI pool %s after the interrupted live '
                      'migration failed: %s', marker['dest_pool_uuid'], exc,
                      instance=instance)
            return
        finally:
            if remote is not None:
                remote.close()
        self._set_pointer(instance.uuid, None)

    def bring_back(self, instance, marker):
        """Live-migrate the instance back here from the marker's pool.

        In a background thread (start-up goes on); returns it.
        """
        try:
            port_map = self._port_map(instance)
        except Exception as exc:
            LOG.warning('No network information for the return trip '
                        '(%s): VIFs go to networks of the same name',
                        exc, instance=instance)
            port_map = {}
        cancel = threading.Event()
        thread = threading.Thread(
            target=self._bring_back, args=(instance, marker, port_map,
                                           cancel),
            name='sxm-bring-back-%s' % instance.uuid, daemon=True)
        with self._returns_lock:
            if instance.uuid in self._returns:
                return self._returns[instance.uuid][0]
            self._returns[instance.uuid] = (thread, cancel)
        LOG.warning('The live migration of this instance to XAPI pool %s '
                    '(host %s, started %s) completed while its nova-compute '
                    'was down, but Nova keeps the instance on this host: '
                    'bringing it back with a live migration',
                    marker['dest_pool_uuid'], marker.get('dest_host_name'),
                    marker.get('started'), instance=instance)
        thread.start()
        return thread

    def _port_map(self, instance):
        network_info = instance.get_network_info()
        networks = self._vif.networks(network_info)
        out = {}
        for vif in network_info:
            out[vif['id']] = networks[self._vif.choose_network(
                vif, networks)]['uuid']
        return out

    def _bring_back(self, instance, marker, port_map, cancel):
        try:
            self._return_trip(instance, marker, port_map, cancel)
        except errors.MigrationCancelled:
            LOG.warning('Bringing the instance back was cancelled; its VM '
                        'stays in XAPI pool %s', marker['dest_pool_uuid'],
                        instance=instance)
        except Exception:
            LOG.exception('Bringing the instance back from XAPI pool %s '
                          'failed: its VM is there while Nova has it on '
                          'this host', marker['dest_pool_uuid'],
                          instance=instance)
        finally:
            with self._returns_lock:
                self._returns.pop(instance.uuid, None)

    def _return_trip(self, instance, marker, port_map, cancel):
        remote = self._remote(marker)
        there = remote or self._conn.pool
        try:
            found = vmops.find_vm(there, instance.uuid, instance.name)
            if found is None:
                LOG.error('The VM of this instance is neither here nor in '
                          'XAPI pool %s: nothing to bring back',
                          marker['dest_pool_uuid'], instance=instance)
                self._set_pointer(instance.uuid, None)
                return
            ref = found[0]
            sr_uuid = self._host.find_sr_record()[1]['uuid']
            # Its own disks come to this host's SR; volumes keep theirs.
            own, _ = vmops.VMOps.in_pool(there, self._host).disk_roles(ref)
            sr_map = {uuid: sr_uuid for uuid in own}
            migrator = self._conn.migrator(
                self._conn.pool if remote else None, source=there)
            the_plan, problems = migrator.plan(
                ref, dest_host=self._host.host_uuid, sr_map=sr_map,
                network_map=port_map)
            if planmod.blocking(problems):
                LOG.error('Cannot bring the instance back from XAPI pool '
                          '%s: %s', marker['dest_pool_uuid'],
                          problems_text(problems), instance=instance)
                return
            result = migrator.migrate(the_plan, cancel=cancel)
        finally:
            if remote is not None:
                remote.close()
        here = self._vmops.lookup(instance, check_host=False)
        if here is not None:
            self._conn.call('VM.set_affinity', here, self._host.host_ref)
            _set_key(self._conn.call, 'VM', here, MARKER_KEY, None)
        self._set_pointer(instance.uuid, None)
        LOG.warning('Brought the instance back from XAPI pool %s in %.1f s: '
                    'its VM runs on this host again, as Nova has it',
                    marker['dest_pool_uuid'], result.seconds,
                    instance=instance)

    def reconcile_host(self, context, instances):
        """Reconcile the migration records of this host at start-up.

        ``instances``: Nova's instances of this compute (what
        ``process_instances_at_startup`` gets). One left MIGRATING is
        Nova's to abort (``abort`` reconciles it then). Another one with
        a record had its bring-back interrupted: ``reconcile``. A record
        of an instance Nova deleted meanwhile (the API deletes locally
        while its compute is down) has the VM removed from the pool the
        record names; one of an instance Nova has on another compute is
        dropped.
        """
        by_uuid = {i.uuid: i for i in instances}
        for uuid, marker in self.pointers().items():
            if marker.get('source_host_uuid') not in (
                    None, self._host.host_uuid):
                continue
            try:
                instance = by_uuid.get(uuid)
                if instance is None:
                    self._reconcile_absent(context, uuid)
                elif instance.task_state != task_states.MIGRATING:
                    self.reconcile(instance)
            except Exception as exc:
                LOG.warning('Could not reconcile the interrupted migration '
                            'of instance %s: %s', uuid, exc)

    def _reconcile_absent(self, context, uuid):
        try:
            instance = objects.Instance.get_by_uuid(
                context.elevated(read_deleted='yes'), uuid)
        except exception.InstanceNotFound:
            # Purged: what Nova knew is gone, the record names the VM.
            instance = objects.Instance(uuid=uuid, node=None)
        else:
            if not instance.deleted:
                LOG.info('Dropping the migration record of instance %s: '
                         'Nova has it on %s', uuid, instance.host)
                self._set_pointer(uuid, None)
                return
        LOG.warning('Instance %s was deleted while an interrupted live '
                    'migration had its VM in another pool; removing it',
                    uuid)
        self.destroy_elsewhere(instance)

    # -- delete ---------------------------------------------------------------

    def stop_for_destroy(self, instance):
        """Before a delete: stop a bring-back or a migration of the VM."""
        with self._returns_lock:
            entry = self._returns.get(instance.uuid)
        if entry is not None:
            entry[1].set()
            entry[0].join(STOP_WAIT)
        cancel = self.active_migrations.get(instance.uuid)
        if cancel is not None:
            cancel.set()
            deadline = time.monotonic() + STOP_WAIT
            while instance.uuid in self.active_migrations and \
                    time.monotonic() < deadline:
                time.sleep(0.2)
            return
        ref = self._vmops.lookup(instance, check_host=False)
        running = self._running_migration(ref)
        if running is not None:
            LOG.warning('Deleting the instance: cancelling its live '
                        'migration task %s first', running.task_uuid,
                        instance=instance)
            outcome = fleet.cancel(self._conn.pool, running)
            self._destroy_task(running.task_ref)
            if not outcome.ok:
                self._clean_destination(instance, ref,
                                        self.marker_of(instance, ref))

    def destroy_elsewhere(self, instance):
        """Remove the instance's VM from the pool its marker names.

        Only a VM whose ``other_config`` names this instance, and never
        one that runs on the host Nova has as the instance's node (a
        compute of that pool runs it for Nova). Returns True when a VM
        was removed.
        """
        marker = self.pointers().get(instance.uuid)
        if marker is None:
            return False
        if instance.node and instance.node != self._host.host_name:
            return False   # Nova has it on another node: not ours
        remote = self._remote(marker)
        there = remote or self._conn.pool
        removed = False
        try:
            # (A purged instance has no name: by other_config only.)
            found = vmops.find_vm(there, instance.uuid)
            if found is not None:
                ref, rec = found
                host = rec['resident_on'] if rec['resident_on'] != \
                    vmops.NULL else rec['affinity']
                name = (there.call('host.get_name_label', host)
                        if host != vmops.NULL else None)
                if remote is None and host in (vmops.NULL,
                                               self._host.host_ref):
                    return False   # this host's own VM: vmops destroys it
                if name and name == instance.node:
                    return False
                vmops.VMOps.in_pool(there, self._host).destroy_ref(
                    instance, ref)
                removed = True
                LOG.warning('Removed the VM of this instance from XAPI pool '
                            '%s (host %s), where an interrupted live '
                            'migration had left it', marker['dest_pool_uuid'],
                            name, instance=instance)
        finally:
            if remote is not None:
                remote.close()
        self._set_pointer(instance.uuid, None)
        return removed


def _set_key(call, cls, ref, key, value):
    """Set (or with None remove) one ``other_config`` key of an object.

    XAPI cannot update a key in place: added at once, and replaced only
    when XAPI says it exists.
    """
    if value is not None:
        try:
            call('%s.add_to_other_config' % cls, ref, key, value)
            return
        except errors.MapDuplicateKey:
            pass
    try:
        call('%s.remove_from_other_config' % cls, ref, key)
    except errors.XapiFailure:
        pass   # not there
    if value is not None:
        call('%s.add_to_other_config' % cls, ref, key, value)


class _Planned(object):
    """A source check's plan, kept for its live_migration."""

    def __init__(self, plan, volumes, dest, url, pool_uuid, block):
        self.plan = plan
        self.volumes = volumes  # VMOps.disk_roles' volumes of the VM
        self.dest = dest        # the destination's SessionPool, or None
        self.url = url
        self.pool_uuid = pool_uuid
        self.block = block
        self.timer = None

    def close(self):
        if self.dest is not None:
            self.dest.close()


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
