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

"""The XenServer host a nova-compute manages: identity, SR, resources."""

from oslo_serialization import jsonutils
from oslo_utils import units
from oslo_utils import versionutils

from nova import exception
from nova.objects import fields as obj_fields
from sxm_core import constants
from sxm_core import errors

from nova_sxm.conf import sxm as sxm_conf

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
        self.host_ref, self.host_uuid = ref, rec['uuid']
        self.host_name = rec['name_label']
        self.address = rec['address']
        self.iqn = rec.get('iscsi_iqn') or rec['other_config'].get(
            'iscsi_iqn', '')
        return self

    def _find_host(self, wanted):
        try:
            return self._conn.call('host.get_by_uuid', wanted)
        except errors.XapiFailure:
            found = self._conn.call('host.get_by_name_label', wanted)
        if len(found) != 1:
            raise HostNotUnique(name=wanted, count=len(found),
                                url=self._conn.pool.url)
        return found[0]

    # -- storage -------------------------------------------------------------

    def find_sr(self, sr_filter=None):
        """The SR ``sr_matching_filter`` names, attached to this host."""
        sr_filter = sr_filter or self.settings.sr_matching_filter
        kind, key, value = sxm_conf.parse_sr_filter(sr_filter)
        call = self._conn.call
        if kind == 'default-sr':
            ref = call('pool.get_default_SR', self.pool_ref)
            candidates = [] if ref == NULL else [ref]
        elif kind == 'uuid':
            try:
                candidates = [call('SR.get_by_uuid', value)]
            except errors.XapiFailure:
                candidates = []
        elif kind == 'name-label':
            candidates = call('SR.get_by_name_label', value)
        else:
            candidates = [ref for ref, rec in
                          call('SR.get_all_records').items()
                          if rec['other_config'].get(key) == value]
        usable = [ref for ref in candidates if self._attached(ref)]
        if not usable:
            raise SRNotFound(filter=sr_filter, host=self.host_name)
        return usable[0]

    def _attached(self, sr_ref):
        call = self._conn.call
        rec = call('SR.get_record', sr_ref)
        if rec['content_type'] == constants.ISO_CONTENT:
            return False
        for pbd in rec['PBDs']:
            pbd_rec = call('PBD.get_record', pbd)
            if pbd_rec['host'] == self.host_ref and \
                    pbd_rec['currently_attached']:
                return True
        return False

    # -- resources -----------------------------------------------------------

    def stats(self):
        """Resources of the host and its instance SR, for the tracker."""
        call = self._conn.call
        host = call('host.get_record', self.host_ref)
        vcpus = len(host['host_CPUs']) or int(
            host['cpu_info'].get('cpu_count', 0))
        mem_total = mem_free = 0
        if host['metrics'] != NULL:
            metrics = call('host_metrics.get_record', host['metrics'])
            mem_total = int(metrics['memory_total'])
            mem_free = int(metrics['memory_free'])
        sr = call('SR.get_record', self.find_sr())
        disk_total = int(sr['physical_size'])
        disk_used = int(sr['physical_utilisation'])
        vcpus_used = 0
        for vm in host['resident_VMs']:
            rec = call('VM.get_record', vm)
            if not rec['is_control_domain']:
                vcpus_used += int(rec['VCPUs_max'])
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
        }


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
