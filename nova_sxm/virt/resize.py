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

"""Cold migration and resize: the halted VM copied, the original kept.

The historic xenapi driver's shape, with Storage XenMotion for the bytes:

* source, ``migrate_disk_and_power_off``: refuse a smaller disk before
  anything moves; stop the guest (clean within Nova's timeout, else
  hard); detach its volumes (Nova moves their connections); mark the VM
  as the resize's kept original (``other_config[ORIG_KEY]`` replaces
  ``nova_uuid``, so lookups by instance no longer find it, also after a
  restart); copy it: to another pool by ``VM.migrate_send`` in xapi's
  copy mode (``sxm_core`` Migrator), within the pool by ``VM.copy`` to
  the destination host's SR (xapi refuses copy mode in a pool). The copy
  gets ``nova_uuid`` and the destination host's affinity. Any failure
  removes the copy, unmarks the original and starts it again if it ran:
  InstanceFaultRollback, Nova keeps the server where and as it was.
* destination, ``finish_migration``: the new flavor on the halted copy
  (VCPUs, memory, root and ephemeral disks grown by VDI.resize), VIFs
  made again for ``network_info``, volumes attached, started.
* source, ``confirm_migration``: the original and its own disks go.
  ``finish_revert_migration``: Nova destroyed the copy first (the
  destination's ``destroy``, disks included); the original is unmarked,
  gets its volumes back and starts: its disks were never written.

The destination publishes what the source needs in its compute node's
stats (``public_facts``: pool uuid and master URL, instance SR uuid; the
node's uuid is the XAPI host's); the source logs in to another pool with
its own credentials (``session.XapiConnection.remote_pool``). The copy's
VM uuid is not the original's: nothing relies on it.
"""

import time

from nova.compute import task_states
from nova import exception
from nova import objects
from nova.virt import driver as virt_driver
from oslo_log import log as logging
from oslo_utils import units
from sxm_core import errors
from sxm_core import plan as planmod
from sxm_core import sessions
from sxm_core import tasks

from nova_sxm.virt import migration as livemig
from nova_sxm.virt import vmops as vmopsmod

LOG = logging.getLogger(__name__)
NULL = vmopsmod.NULL
UUID_KEY = vmopsmod.UUID_KEY
# other_config of a kept original: "<instance uuid>/<migration uuid>".
ORIG_KEY = 'nova_resize_original'
ORIG_SUFFIX = '-orig'
# Compute node stats the destination publishes (public facts only).
FACT_POOL_UUID = 'sxm_pool_uuid'
FACT_POOL_URL = 'sxm_pool_url'
FACT_SR_UUID = 'sxm_sr_uuid'
FACT_DEFAULT_NETWORK = 'sxm_default_network'
# instance.progress at the steps of a resize (the historic driver's way).
STEP_STOPPED, STEP_COPY_START, STEP_COPIED, STEP_FINISHED = 10, 20, 80, 100
# How long a revert at start-up waits for a cancelled copy to end (s).
COPY_STOP_TIMEOUT = 300


def orig_value(instance_uuid, migration_uuid):
    return '%s/%s' % (instance_uuid, migration_uuid or '')


def _refusal(reason):
    # Nova's compute manager keeps the server's state (ACTIVE or
    # SHUTOFF) on the source for InstanceFaultRollback.
    return exception.InstanceFaultRollback(
        inner_exception=exception.ResizeError(reason=reason))


class ResizeOps(object):
    """The resize and cold-migration hooks of the driver."""

    def __init__(self, conn, host, vmops, vifops, volumeops):
        self._conn = conn
        self._host = host
        self._vmops = vmops
        self._vif = vifops
        self._volumeops = volumeops
        self._sr_uuid = None

    # -- destination's public facts ------------------------------------------

    def public_facts(self):
        """What a source needs to copy a VM to this host (no secret)."""
        if self._sr_uuid is None:
            self._sr_uuid = self._host.find_sr_record()[1]['uuid']
        return {FACT_POOL_UUID: self._host.pool_uuid,
                FACT_POOL_URL: sessions.safe_url(self._conn.pool.url),
                FACT_SR_UUID: self._sr_uuid,
                FACT_DEFAULT_NETWORK: self._conn.settings.default_network}

    @staticmethod
    def _dest_facts(context, migration):
        node = objects.ComputeNode.get_by_host_and_nodename(
            context, migration.dest_compute, migration.dest_node)
        stats = node.stats or {}
        if not stats.get(FACT_POOL_UUID) or not stats.get(FACT_SR_UUID):
            raise _refusal(
                'compute %s (node %s) publishes no XAPI pool: it is not an '
                'SXM compute, or has not reported its resources yet'
                % (migration.dest_compute, migration.dest_node))
        return {'host_uuid': node.uuid,
                'host_name': migration.dest_node,
                'pool_uuid': stats[FACT_POOL_UUID],
                'url': stats[FACT_POOL_URL],
                'sr_uuid': stats[FACT_SR_UUID],
                'default_network': stats.get(FACT_DEFAULT_NETWORK)}

    # -- source: migrate_disk_and_power_off ----------------------------------

    def migrate_disk_and_power_off(self, context, instance, flavor,
                                   network_info, block_device_info,
                                   timeout):
        if instance.migration_context is None:
            # Nova's resize_instance always has one: it names the
            # Migration, whose destination compute publishes its pool.
            raise _refusal('the instance has no migration context: no '
                           'destination compute to copy it to')
        migration = objects.Migration.get_by_id_and_instance(
            context, instance.migration_context.migration_id, instance.uuid)
        ref = self._vmops.require(instance)
        self._check_sizes(instance, ref, flavor, block_device_info)
        facts = self._dest_facts(context, migration)
        was_running = self._conn.call(
            'VM.get_power_state', ref).lower() == 'running'
        volumes = livemig.volume_connections(block_device_info)
        root = vmopsmod.root_volume(block_device_info)
        detached = []
        marked = False
        try:
            self._vmops.power_off(instance, timeout)
            self._progress(instance, STEP_STOPPED)
            for bdm in virt_driver.block_device_info_get_mapping(
                    block_device_info):
                self._volumeops.detach(ref, instance,
                                       bdm['connection_info'],
                                       bdm['mount_device'])
                detached.append(bdm)
            self._mark(ref, instance, migration)
            marked = True
            self._progress(instance, STEP_COPY_START)
            self._copy(instance, ref, migration, facts, network_info)
        except Exception as exc:
            LOG.error('Resize / cold migration to %s failed, the server '
                      'stays here as it was: %s', facts['host_name'], exc,
                      instance=instance)
            self._restore_after_failure(instance, ref, migration, facts,
                                        marked, detached, root, was_running)
            if isinstance(exc, exception.InstanceFaultRollback):
                raise
            raise _refusal(str(exc)) from exc
        LOG.info('Copied the halted VM to %s for the resize (%d volume(s) '
                 'follow through Cinder)', facts['host_name'], len(volumes),
                 instance=instance)
        self._progress(instance, STEP_COPIED)
        return ''

    def _check_sizes(self, instance, ref, flavor, block_device_info):
        """A smaller disk is refused before anything is stopped or copied."""
        own = self._own_disk_sizes(ref)
        from_volume = vmopsmod.root_volume(block_device_info) is not None
        reasons = []
        root = own.get(vmopsmod.ROOT)
        if (not from_volume and root is not None and flavor.root_gb and
                flavor.root_gb * units.Gi < root):
            reasons.append('root disk of %d GiB to %d GiB'
                           % (-(-root // units.Gi), flavor.root_gb))
        eph = own.get(vmopsmod.EPHEMERAL)
        if eph is not None and flavor.ephemeral_gb * units.Gi < eph:
            reasons.append('ephemeral disk of %d GiB to %d GiB'
                           % (-(-eph // units.Gi), flavor.ephemeral_gb))
        if reasons:
            raise _refusal('Unable to resize disk down (%s): XAPI cannot '
                           'shrink a VDI' % '; '.join(reasons))

    def _own_disk_sizes(self, ref):
        return {vbd['userdevice']: int(vdi['virtual_size'])
                for vbd, vdi in self._vmops.disk_records(ref)
                if vmopsmod.own_disk(vbd, vdi['other_config'])}

    def _mark(self, ref, instance, migration):
        call = self._conn.call
        _set_other(call, ref, ORIG_KEY,
                   orig_value(instance.uuid, migration.uuid))
        call('VM.remove_from_other_config', ref, UUID_KEY)
        # The historic driver's name for it, for operators reading xe.
        call('VM.set_name_label', ref, instance.name + ORIG_SUFFIX)

    def _unmark(self, call, ref, instance):
        _set_other(call, ref, UUID_KEY, instance.uuid)
        call('VM.remove_from_other_config', ref, ORIG_KEY)
        call('VM.set_name_label', ref, instance.name)

    def _copy(self, instance, ref, migration, facts, network_info):
        if facts['pool_uuid'] == self._host.pool_uuid:
            return self._copy_in_pool(instance, ref, facts)
        return self._copy_to_pool(instance, ref, migration, facts,
                                  network_info)

    def _copy_in_pool(self, instance, ref, facts):
        call = self._conn.call
        sr = call('SR.get_by_uuid', facts['sr_uuid'])
        host = call('host.get_by_uuid', facts['host_uuid'])
        new = tasks.call_async(self._conn.pool, 'VM.copy',
                               (ref, instance.name, sr),
                               'VM.copy for the resize')
        self._adopt(call, new, instance, host)
        return new

    def _copy_to_pool(self, instance, ref, migration, facts, network_info):
        dest = self._conn.remote_pool(facts['url'], facts['pool_uuid'])
        try:
            migrator = self._conn.migrator(dest)
            choices = {
                'dest_host': facts['host_uuid'],
                'sr': facts['sr_uuid'],
                'network_map': self._network_map(dest, network_info,
                                                 facts['default_network'])}
            the_plan, problems = migrator.plan(ref, copy=True, **choices)
            blocking = planmod.blocking(problems)
            if blocking:
                raise _refusal(livemig.problems_text(blocking))
            reporter = _Reporter(instance, migration)
            try:
                result = migrator.migrate(the_plan, progress=reporter)
            except errors.MigrationFailed as exc:
                self._remove_vdis(dest, exc.state.new_vdis, instance)
                raise
            for warning in result.warnings:
                LOG.warning('Copy for the resize: %s', warning,
                            instance=instance)
            host = dest.call('host.get_by_uuid', facts['host_uuid'])
            self._adopt(dest.call, result.vm_ref, instance, host)
            return result.vm_ref
        finally:
            dest.close()

    @staticmethod
    def _remove_vdis(pool, uuids, instance):
        """The disks a failed copy left on the destination's SRs."""
        for uuid in uuids:
            try:
                pool.call('VDI.destroy', pool.call('VDI.get_by_uuid', uuid))
                LOG.info('Removed disk %s left by the failed copy', uuid,
                         instance=instance)
            except errors.UuidInvalid:
                pass  # gone, or a "could not list" note
            except errors.SxmError as exc:
                LOG.warning('Could not remove disk %s left by the failed '
                            'copy: %s', uuid, exc, instance=instance)

    @staticmethod
    def _network_map(dest, network_info, default_network):
        """{MAC: destination network uuid} for the copy's VIFs.

        The copy's VIFs are made again at the destination for
        ``network_info``: any network of the destination pool serves the
        copy, the one Nova's VIF names (bridge, label) first.
        """
        keys = [k for vif in network_info or ()
                for k in ((vif.get('network') or {}).get('bridge'),
                          (vif.get('network') or {}).get('label')) if k]
        if default_network:
            keys.append(default_network)
        keys = [k for k in keys if '"' not in k]
        if not keys:
            return {}
        terms = ['field "%s" = "%s"' % (col, k) for k in sorted(set(keys))
                 for col in ('uuid', 'bridge', 'name__label')]
        nets = dest.call('network.get_all_records_where', ' or '.join(terms))
        out = {}
        for vif in network_info or ():
            net = vif.get('network') or {}
            for want in (net.get('bridge'), net.get('label'),
                         default_network):
                found = [rec['uuid'] for rec in nets.values() if want and
                         want in (rec['uuid'], rec['bridge'],
                                  rec['name_label'])]
                if found and vif.get('address'):
                    out[vif['address']] = found[0]
                    break
        return out

    @staticmethod
    def _adopt(call, new, instance, host):
        """Make the copy the instance's VM on the destination host."""
        call('VM.remove_from_other_config', new, ORIG_KEY)
        _set_other(call, new, UUID_KEY, instance.uuid)
        call('VM.set_affinity', new, host)
        call('VM.set_name_label', new, instance.name)

    def _restore_after_failure(self, instance, ref, migration, facts,
                               marked, detached, root, was_running):
        """The copy removed; the original unmarked, its volumes back."""
        try:
            self._remove_copies(instance, ref, migration, facts)
        except Exception as exc:
            LOG.error('Could not remove what the failed copy left in XAPI '
                      'pool %s: %s', facts['pool_uuid'], exc,
                      instance=instance)
        try:
            if marked:
                self._unmark(self._conn.call, ref, instance)
            for bdm in detached:
                self._volumeops.attach(ref, instance, bdm['connection_info'],
                                       bdm['mount_device'], running=False,
                                       bootable=bdm is root)
            if was_running:
                self._vmops.power_on(instance)
        except Exception as exc:
            LOG.error('Could not return the VM to its state before the '
                      'resize: %s', exc, instance=instance)

    def _remove_copies(self, instance, ref, migration, facts):
        """Destroy the VMs and disks a failed copy left behind.

        A copy carries the original's ORIG_KEY until it is adopted, or
        already the instance's nova_uuid: both are looked for, the
        original excepted.
        """
        same = facts['pool_uuid'] == self._host.pool_uuid
        pool = self._conn.pool if same else self._conn.remote_pool(
            facts['url'], facts['pool_uuid'])
        want = orig_value(instance.uuid, migration.uuid)
        try:
            found = pool.call('VM.get_all_records_where', vmopsmod.GUESTS)
            for vm, rec in sorted(found.items()):
                other = rec['other_config']
                if vm == ref and same:
                    continue
                if other.get(ORIG_KEY) == want or \
                        other.get(UUID_KEY) == instance.uuid:
                    LOG.info('Removing the copy %s left by the failed '
                             'resize', rec['uuid'], instance=instance)
                    vmopsmod.VMOps.in_pool(pool, self._host).destroy_ref(
                        instance, vm)
        finally:
            if not same:
                pool.close()

    def _stop_copies(self, instance, ref, timeout=COPY_STOP_TIMEOUT):
        """Cancel the XAPI tasks copying ``ref``; wait until they end."""
        call = self._conn.call
        deadline = time.monotonic() + timeout
        cancelled = set()
        while True:
            running = call('VM.get_current_operations', ref)
            if not running:
                return
            for task in set(running) - cancelled:
                LOG.warning('Cancelling the %s of the resize that this '
                            'compute ran before it stopped', running[task],
                            instance=instance)
                try:
                    call('task.cancel', task)
                except errors.SxmError as exc:
                    # Past its point of no return: it ends by itself.
                    LOG.info('XAPI did not cancel it: %s', exc,
                             instance=instance)
                cancelled.add(task)
            if time.monotonic() > deadline:
                raise exception.NovaException(
                    'the copy of the resize still runs in XAPI after %d s'
                    % timeout)
            time.sleep(1.0)

    @staticmethod
    def _progress(instance, percent):
        instance.progress = percent
        instance.save()

    # -- destination: finish_migration ---------------------------------------

    def finish_migration(self, context, migration, instance, network_info,
                         resize_instance, block_device_info, power_on):
        ref = self._vmops.require(instance)
        call = self._conn.call
        flavor = instance.flavor
        self._apply_flavor(call, ref, flavor)
        if resize_instance:
            self._grow_disks(call, ref, flavor, instance)
        # The copy's VIFs are the source pool's: made again for this host.
        for vif in call('VM.get_VIFs', ref):
            call('VIF.destroy', vif)
        self._vif.plug(ref, instance, network_info)
        root = vmopsmod.root_volume(block_device_info)
        for bdm in virt_driver.block_device_info_get_mapping(
                block_device_info):
            self._volumeops.attach(ref, instance, bdm['connection_info'],
                                   bdm['mount_device'], running=False,
                                   bootable=bdm is root)
        if power_on:
            self._vmops.power_on(instance)
        self._progress(instance, STEP_FINISHED)

    @staticmethod
    def _apply_flavor(call, ref, flavor):
        vcpus = str(flavor.vcpus)
        # VCPUs_at_startup may never exceed VCPUs_max.
        if int(call('VM.get_VCPUs_max', ref)) < flavor.vcpus:
            call('VM.set_VCPUs_max', ref, vcpus)
            call('VM.set_VCPUs_at_startup', ref, vcpus)
        else:
            call('VM.set_VCPUs_at_startup', ref, vcpus)
            call('VM.set_VCPUs_max', ref, vcpus)
        memory = str(flavor.memory_mb * units.Mi)
        call('VM.set_memory_limits', ref, memory, memory, memory, memory)

    def _grow_disks(self, call, ref, flavor, instance):
        sizes = {vmopsmod.ROOT: flavor.root_gb * units.Gi,
                 vmopsmod.EPHEMERAL: flavor.ephemeral_gb * units.Gi}
        for vbd, vdi in self._vmops.disk_records(ref):
            want = sizes.get(vbd['userdevice'])
            if not want or not vmopsmod.own_disk(vbd, vdi['other_config']):
                continue
            if want > int(vdi['virtual_size']):
                LOG.info('Growing disk %s from %d to %d bytes',
                         vbd['userdevice'], int(vdi['virtual_size']), want,
                         instance=instance)
                call('VDI.resize', vbd['VDI'], str(want))

    # -- source: confirm and revert ------------------------------------------

    def _originals(self, instance, migration=None):
        """[(ref, record)] of this pool's kept originals of the instance."""
        found = self._conn.call('VM.get_all_records_where', vmopsmod.GUESTS)
        out = []
        for ref, rec in sorted(found.items()):
            value = rec['other_config'].get(ORIG_KEY) or ''
            if not value.startswith(instance.uuid + '/'):
                continue
            if migration is not None and value != orig_value(
                    instance.uuid, migration.uuid):
                continue
            out.append((ref, rec))
        return out

    def is_original(self, rec):
        return ORIG_KEY in rec['other_config']

    def confirm_migration(self, migration, instance):
        originals = self._originals(instance, migration)
        if not originals:
            LOG.info('No kept original VM to remove (removed already)',
                     instance=instance)
        for ref, rec in originals:
            LOG.info('Resize confirmed: removing the original VM %s and '
                     'its disks', rec['uuid'], instance=instance)
            self._vmops.destroy_ref(instance, ref)

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info, power_on):
        originals = self._originals(instance, migration) or \
            self._originals(instance)
        if originals and instance.task_state == \
                task_states.RESIZE_MIGRATING:
            # This compute died while it copied (Nova's start-up reverts):
            # a copy XAPI still runs is cancelled and followed to its end,
            # then what it left at the destination goes.
            try:
                self._stop_copies(instance, originals[0][0])
                self._remove_copies(instance, originals[0][0], migration,
                                    self._dest_facts(context, migration))
            except Exception as exc:
                LOG.error('Could not remove what the interrupted copy left '
                          'at %s: %s', migration.dest_compute, exc,
                          instance=instance)
        if originals:
            ref, rec = originals[0]
            self._unmark(self._conn.call, ref, instance)
            self._conn.call('VM.set_affinity', ref, self._host.host_ref)
            LOG.info('Resize reverted: the original VM %s is the '
                     'instance\'s again', rec['uuid'], instance=instance)
        else:
            # Failed before the original was marked (or restored already).
            ref = self._vmops.lookup(instance)
            if ref is None:
                raise exception.InstanceNotFound(instance_id=instance.uuid)
        self._vif.plug(ref, instance, network_info)
        root = vmopsmod.root_volume(block_device_info)
        for bdm in virt_driver.block_device_info_get_mapping(
                block_device_info):
            if self._volumeops.find_vbd(ref, bdm['connection_info'],
                                        bdm['mount_device']) is None:
                self._volumeops.attach(ref, instance,
                                       bdm['connection_info'],
                                       bdm['mount_device'], running=False,
                                       bootable=bdm is root)
        if power_on:
            self._vmops.power_on(instance)


def _set_other(call, ref, key, value):
    # add_to_other_config refuses a key that is there (MAP_DUPLICATE_KEY).
    call('VM.remove_from_other_config', ref, key)
    call('VM.add_to_other_config', ref, key, value)


class _Reporter(object):
    """Copy progress to the Migration record and instance.progress.

    At most one save per second: the copy's task wait is not held up.
    """

    def __init__(self, instance, migration, interval=1.0,
                 clock=time.monotonic):
        self.instance = instance
        self.migration = migration
        self.interval = interval
        self._clock = clock
        self._saved_at = None

    def __call__(self, progress):
        now = self._clock()
        if (progress.phase != 'done' and self._saved_at is not None
                and now - self._saved_at < self.interval):
            return
        self._saved_at = now
        for name, value in livemig.progress_fields(progress, 0).items():
            setattr(self.migration, name, value)
        self.migration.save()
        span = STEP_COPIED - STEP_COPY_START
        self.instance.progress = STEP_COPY_START + int(
            span * min(1.0, progress.fraction))
        self.instance.save()
