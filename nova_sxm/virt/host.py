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

"""The XenServer host a nova-compute manages: identity, SR, resources,
uptime and maintenance mode.

Nova's periodic tasks ask about the host every minute: what cannot change
is read once, this host's VMs are kept current with ``event.from``, so
that an idle compute's XAPI calls grow neither with its instances nor
with the VMs of the other hosts of its pool.
"""

import threading
import time

from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import units
from oslo_utils import versionutils

from nova.compute import api as compute_api
from nova.compute import vm_states
import nova.conf
from nova import context as nova_context
from nova import exception
from nova import objects
from nova.objects import fields as obj_fields
from nova import servicegroup
from sxm_core import constants
from sxm_core import errors

from nova_sxm.conf import sxm as sxm_conf

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
NULL = constants.OPAQUE_NULL
# Nova's hypervisor type: xapi runs Xen guests (HVM); the conductor
# compares it between source and destination of a live migration.
HV_TYPE = obj_fields.HVType.XEN


class SRNotFound(exception.NotFound):
    msg_fmt = ('[sxm] sr_matching_filter %(filter)r matches no SR attached '
               'to host %(host)s.')


class HostNotUnique(exception.NovaException):
    msg_fmt = ('[sxm] host_name %(name)r matches %(count)d hosts of the '
               'pool at %(url)s: name one host by its name label or UUID.')


class HostState(object):
    """The managed host and the SR that holds instance disks."""

    def __init__(self, conn):
        self._conn = conn
        self.settings = conn.settings
        self.host_ref = None
        self.host_uuid = None
        self.host_name = None
        self.address = None
        self.pool_ref = None
        self.pool_uuid = None
        self.iqn = ''
        # host record as of connect(): CPUs, version, metrics ref.
        self._record = None
        self._stats_sr = None
        self.vms = HostVMs(conn, self)

    def connect(self):
        """Find the managed host (``host_name`` or the pool master)."""
        call = self._conn.call
        self.pool_ref = call('pool.get_all')[0]
        self.pool_uuid = call('pool.get_uuid', self.pool_ref)
        wanted = self.settings.host_name
        if not wanted:
            ref = call('pool.get_master', self.pool_ref)
        else:
            ref = self._find_host(wanted)
        rec = call('host.get_record', ref)
        self._record = rec
        self._stats_sr = None
        self.vms.reset()
        self.host_ref, self.host_uuid = ref, rec['uuid']
        self.host_name = rec['name_label']
        self.address = rec['address']
        self.iqn = rec.get('iscsi_iqn') or rec['other_config'].get(
            'iscsi_iqn', '')
        return self

    def _find_host(self, wanted):
        try:
            return self._conn.call('host.get_by_uuid', wanted)
        except errors.UuidInvalid:
            found = self._conn.call('host.get_by_name_label', wanted)
        if len(found) != 1:
            raise HostNotUnique(name=wanted, count=len(found),
                                url=self._conn.pool.url)
        return found[0]

    def owns(self, rec):
        """Whether VM record ``rec`` is this host's.

        A running VM is its resident host's; a halted one is the host it
        prefers (affinity), or any host's when it prefers none.
        """
        if rec['resident_on'] != NULL:
            return rec['resident_on'] == self.host_ref
        return rec['affinity'] in (NULL, self.host_ref)

    # -- storage -------------------------------------------------------------

    def find_sr(self, sr_filter=None):
        """The SR ``sr_matching_filter`` names, attached to this host."""
        return self.find_sr_record(sr_filter)[0]

    def find_sr_record(self, sr_filter=None):
        """(ref, record) of the SR ``find_sr`` finds."""
        sr_filter = sr_filter or self.settings.sr_matching_filter
        kind, key, value = sxm_conf.parse_sr_filter(sr_filter)
        call = self._conn.call
        if kind == 'default-sr':
            ref = call('pool.get_default_SR', self.pool_ref)
            candidates = [] if ref == NULL else [ref]
        elif kind == 'uuid':
            try:
                candidates = [call('SR.get_by_uuid', value)]
            except errors.UuidInvalid:
                candidates = []
        elif kind == 'name-label':
            candidates = call('SR.get_by_name_label', value)
        else:
            candidates = [ref for ref, rec in
                          call('SR.get_all_records').items()
                          if rec['other_config'].get(key) == value]
        for ref in candidates:
            rec = call('SR.get_record', ref)
            if self._attached(rec):
                return ref, rec
        raise SRNotFound(filter=sr_filter, host=self.host_name)

    def _attached(self, rec):
        if rec['content_type'] == constants.ISO_CONTENT:
            return False
        for pbd in rec['PBDs']:
            pbd_rec = self._conn.call('PBD.get_record', pbd)
            if pbd_rec['host'] == self.host_ref and \
                    pbd_rec['currently_attached']:
                return True
        return False

    # -- resources -----------------------------------------------------------

    def _instance_sr_record(self):
        """The record of the instance SR, its ref kept between runs."""
        if self._stats_sr is not None:
            try:
                return self._conn.call('SR.get_record', self._stats_sr)
            except errors.HandleInvalid:
                self._stats_sr = None  # forgotten or re-introduced
        self._stats_sr, rec = self.find_sr_record()
        return rec

    def stats(self):
        """Resources of the host and its instance SR, for the tracker."""
        host = self._record
        vcpus = len(host['host_CPUs']) or int(
            host['cpu_info'].get('cpu_count', 0))
        mem_total = mem_free = 0
        if host['metrics'] != NULL:
            metrics = self._conn.call('host_metrics.get_record',
                                      host['metrics'])
            mem_total = int(metrics['memory_total'])
            mem_free = int(metrics['memory_free'])
        sr = self._instance_sr_record()
        disk_total = int(sr['physical_size'])
        disk_used = int(sr['physical_utilisation'])
        vcpus_used = sum(int(rec['VCPUs_max'])
                         for rec in self.vms.records(fresh=False).values()
                         if rec['resident_on'] == self.host_ref)
        version = host['software_version'].get(
            'product_version') or host['software_version'].get(
            'platform_version', '0.0.0')
        return {
            'vcpus': vcpus,
            'memory_mb': mem_total // units.Mi,
            'memory_mb_used': (mem_total - mem_free) // units.Mi,
            'local_gb': disk_total // units.Gi,
            'local_gb_used': disk_used // units.Gi,
            'vcpus_used': vcpus_used,
            'disk_available_least': (disk_total - disk_used) // units.Gi,
            'hypervisor_type': HV_TYPE,
            'hypervisor_version': versionutils.convert_version_to_int(
                _numeric(version)),
            'hypervisor_hostname': self.host_name,
            'cpu_info': jsonutils.dumps({
                'vendor': host['cpu_info'].get('vendor'),
                'model': host['cpu_info'].get('modelname'),
                'topology': {'sockets': int(host['cpu_info'].get(
                    'socket_count', 1) or 1), 'cores': vcpus, 'threads': 1},
                'features': []}),
            'supported_instances': [(obj_fields.Architecture.X86_64,
                                     HV_TYPE, obj_fields.VMMode.HVM)],
            'numa_topology': None,
            'uuid': self.host_uuid,
            # What Nova's os-hypervisors shows as the uptime (2.88+).
            'stats': {'uptime': self.uptime()},
        }

    def uptime(self):
        """The host's ``uptime_line``, read afresh (a reboot moves it)."""
        return uptime_line(self._conn.call('host.get_other_config',
                                           self.host_ref))


class Maintenance(object):
    """Host maintenance mode, as the historic xenapi driver had it.

    On: the XAPI host is disabled (XAPI starts and receives no VM there)
    and every ACTIVE server of this compute is live-migrated
    by Nova (scheduler, claims, port bindings, allocations and the
    Migration record are Nova's) to a compute of another host of this
    pool, 'auto' block migration: a VM on a shared SR moves its memory
    only (VM.pool_migrate), one on this host's local SR moves its disks
    too (in-pool Storage XenMotion). The historic driver called
    VM.pool_migrate itself and set ``instance.host``, which left Neutron
    bindings and Placement behind. Stopped, suspended and busy servers
    stay (XAPI starts nothing on a disabled host: start them after the
    maintenance or move them first). Off: the XAPI host is enabled again.

    Nova 34 calls it for the os-hosts API (microversions up to 2.42,
    ``openstack host set --enable-maintenance|--disable-maintenance
    <compute>``), as
    ``PUT /os-hosts/<compute> {"maintenance_mode": "enable"}``.
    """

    # Seconds between two looks at the servers being migrated.
    POLL = 1.0

    def __init__(self, conn, host):
        self._conn = conn
        self._host = host

    def set_enabled(self, enabled):
        """host.enable / host.disable; Nova's 'enabled' or 'disabled'."""
        self._conn.call('host.enable' if enabled else 'host.disable',
                        self._host.host_ref)
        return 'enabled' if enabled else 'disabled'

    def leave(self):
        self.set_enabled(True)
        LOG.info('Maintenance mode off: XAPI host %s enabled',
                 self._host.host_name)
        return 'off_maintenance'

    def enter(self, compute_host):
        """Disable the host and move its servers; 'on_maintenance'.

        Else (a server could not move) the reason, naming every server
        left on the host; the host stays disabled.
        """
        ctx = nova_context.get_admin_context()
        self.set_enabled(False)
        targets = self._targets(ctx)
        api = compute_api.API()
        left = {}
        moving = []
        instances = objects.InstanceList.get_by_host_and_node(
            ctx, compute_host, self._host.host_name)
        for n, instance in enumerate(instances):
            # The Migration records name the server's owner (the driver
            # hook is given no request context).
            ctx = nova_context.RequestContext(
                user_id=instance.user_id, project_id=instance.project_id,
                is_admin=True)
            if instance.vm_state == vm_states.PAUSED and \
                    instance.task_state is None:
                # xapi_vm_lifecycle: pool_migrate runs on a Running VM
                # only, migrate_send on a Running, Halted or Suspended one.
                left[instance.uuid] = ('paused: XAPI does not migrate a '
                                       'paused VM; unpause it, or stop it')
                continue
            if instance.vm_state != vm_states.ACTIVE or \
                    instance.task_state is not None:
                LOG.info('Maintenance: server %s stays (vm_state %s, '
                         'task_state %s)', instance.uuid, instance.vm_state,
                         instance.task_state, instance=instance)
                continue
            reasons = []
            # Round robin, each server trying every target in turn.
            for dest in targets[n % max(1, len(targets)):] + \
                    targets[:n % max(1, len(targets))]:
                try:
                    api.live_migrate(ctx, instance, None, None, dest,
                                     force=False, async_=False)
                except Exception as exc:
                    reasons.append('%s: %s' % (dest, _words(exc)))
                    instance.refresh()
                    continue
                moving.append(instance)
                break
            else:
                left[instance.uuid] = '; '.join(reasons) or (
                    'no other host of pool %s has an enabled, running '
                    'nova-compute' % self._host.pool_uuid)
        # As long as Nova waits for its own long calls: a stuck migration
        # is reported, not waited for forever.
        deadline = time.monotonic() + CONF.long_rpc_timeout
        for instance in moving:
            where = self._wait(instance, deadline)
            if where is None:
                left[instance.uuid] = 'still migrating after %ds (see the '\
                    'server\'s migrations)' % CONF.long_rpc_timeout
            elif where == compute_host:
                left[instance.uuid] = 'its live migration failed (see '\
                    'the server\'s migrations and events)'
            else:
                LOG.info('Maintenance: server moved to %s', where,
                         instance=instance)
        if left:
            # Not 'on_maintenance': the os-hosts API answers 400 with it.
            words = ('XAPI host %s is disabled but these servers are still '
                     'on it: %s. Retry once the cause is fixed, or '
                     'disable maintenance mode.' % (
                         self._host.host_name, '; '.join(
                             '%s (%s)' % item
                             for item in sorted(left.items()))))
            LOG.warning('Maintenance: %s', words)
            return words
        LOG.info('Maintenance mode on: XAPI host %s disabled and %d '
                 'server(s) moved', self._host.host_name, len(moving))
        return 'on_maintenance'

    def _targets(self, ctx):
        """Computes of the pool's other enabled, live hosts, freest first."""
        group = servicegroup.API()
        found = []
        for ref, rec in self._conn.call('host.get_all_records').items():
            if ref == self._host.host_ref or not rec['enabled']:
                continue
            free = 0
            if rec['metrics'] != NULL:
                metrics = self._conn.call('host_metrics.get_record',
                                          rec['metrics'])
                if not metrics['live']:
                    continue
                free = int(metrics['memory_free'])
            try:
                node = objects.ComputeNode.get_by_uuid(ctx, rec['uuid'])
                service = objects.Service.get_by_compute_host(ctx,
                                                              node.host)
            except exception.NotFound:
                continue  # no nova-compute manages that host
            if service.disabled or not group.service_is_up(service):
                continue
            found.append((-free, node.host))
        return [host for _, host in sorted(found)]

    def _wait(self, instance, deadline):
        """The compute host of ``instance`` once its migration ended.

        None if it still migrates at ``deadline`` (time.monotonic()).
        """
        while True:
            instance.refresh()
            if instance.task_state is None:
                return instance.host
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.POLL)


def _words(exc):
    fmt = getattr(exc, 'format_message', None)
    return fmt() if fmt else str(exc)


class HostVMs(object):
    """The guest VMs of the managed host, kept current by event.from.

    Read once with a filter on the host, then only what changed since:
    Nova's power sync and resource tracker cost one call a run whatever
    the number of VMs here or on the pool's other hosts.
    """

    # Lookups closer together than this (Nova's power sync asks once per
    # instance) share one event.from.
    FRESH = 2.0

    def __init__(self, conn, host, clock=time.monotonic):
        self._conn = conn
        self._host = host
        self._clock = clock
        self._lock = threading.Lock()
        self._vms = {}
        self._token = None
        self._read_at = None

    def reset(self):
        with self._lock:
            self._vms, self._token, self._read_at = {}, None, None

    def records(self, fresh=True):
        """{ref: record} of the guest VMs of the host.

        ``fresh``: with every change XAPI knows of (one event.from);
        otherwise as of at most ``FRESH`` seconds ago.
        """
        with self._lock:
            now = self._clock()
            if fresh or self._read_at is None or \
                    now - self._read_at >= self.FRESH:
                self._refresh()
                self._read_at = now
            return dict(self._vms)

    def _mine(self, rec):
        return not (rec['is_a_template'] or rec['is_a_snapshot']
                    or rec['is_control_domain']) and self._host.owns(rec)

    def _where(self):
        host = self._host.host_ref
        return ('field "is_a_template" = "false" and '
                'field "is_a_snapshot" = "false" and '
                'field "is_control_domain" = "false" and '
                '(field "resident_on" = "%s" or '
                '(field "resident_on" = "%s" and '
                '(field "affinity" = "%s" or field "affinity" = "%s")))'
                % (host, NULL, host, NULL))

    def _refresh(self):
        call = self._conn.call
        if self._token is not None:
            try:
                got = call('event.from', ['VM'], self._token, 0.0)
            except errors.EventsLost as exc:  # a token too old
                LOG.info('Reading the VMs of host %s afresh: %s',
                         self._host.host_name, exc)
                self._token = None
            except errors.XapiFailure:
                self._token = None  # read afresh next time
                raise
            else:
                for event in got['events']:
                    rec = event.get('snapshot')
                    if event['operation'] == 'del' or not rec or \
                            not self._mine(rec):
                        self._vms.pop(event['ref'], None)
                    else:
                        self._vms[event['ref']] = rec
                self._token = got['token']
                return
        # The token first: a change made during the read comes again.
        token = call('event.from', [], '', 0.0)['token']
        self._vms = call('VM.get_all_records_where', self._where())
        self._token = token


def _numeric(version):
    """'8.3.0' -> '8.3.0'; '8.3.0-beta' -> '8.3.0' (integers only)."""
    parts = []
    for part in version.split('.'):
        digits = ''.join(c for c in part if c.isdigit())
        if not digits:
            break
        parts.append(digits)
        if digits != part:
            break
    return '.'.join(parts) or '0'


def uptime_line(other_config, now=None):
    """The XAPI host's uptime as the ``uptime`` command's first fields.

    `` 15:04:05 up 3 days,  2:03,  xapi up 2:01`` from ``other_config``'s
    ``boot_time`` (the kernel's, in seconds since the epoch) and
    ``agent_start_time`` (the toolstack's); the time of day is UTC. None
    when XAPI does not report ``boot_time``.
    """
    now = time.time() if now is None else now
    try:
        booted = float(other_config['boot_time'])
    except (KeyError, TypeError, ValueError):
        return None
    line = ' %s up %s' % (time.strftime('%H:%M:%S', time.gmtime(now)),
                          _duration(now - booted))
    try:
        agent = float(other_config['agent_start_time'])
    except (KeyError, TypeError, ValueError):
        return line
    return '%s,  xapi up %s' % (line, _duration(now - agent))


def _duration(seconds):
    """procps' way: ``3 days,  2:03``, ``1 day, 12 min``, ``5 min``."""
    minutes = max(0, int(seconds)) // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    out = '%d day%s, ' % (days, '' if days == 1 else 's') if days else ''
    if hours:
        return '%s%2d:%02d' % (out, hours, minutes)
    return '%s%d min' % (out, minutes)
