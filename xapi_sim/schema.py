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

"""The subset of xapi's datamodel the simulator keeps, with field types.

Field names, enum spellings and writability follow xen-api
``ocaml/idl/datamodel*.ml``. Qualifiers:

* ``RW``: settable with ``set_<field>`` and given to ``<Class>.create``;
* ``C``: given to ``create`` (StaticRO in xapi), read-only afterwards;
* ``RO``: maintained by the server.

Types are tuples: ``('string',)``, ``('int',)`` (int64, a string on the
wire), ``('float',)``, ``('bool',)``, ``('datetime',)``, ``('ref', cls)``,
``('set', type)``, ``('map', ktype, vtype)``, ``('enum', values)``.
"""

import collections

STRING = ('string',)
INT = ('int',)
FLOAT = ('float',)
BOOL = ('bool',)
DATETIME = ('datetime',)
SSMAP = ('map', STRING, STRING)
SSET = ('set', STRING)


def ref(cls):
    return ('ref', cls)


def refs(cls):
    return ('set', ('ref', cls))


def enum(*values):
    return ('enum', values)


Field = collections.namedtuple('Field', 'type qualifier default')

_REQUIRED = object()
REQUIRED = _REQUIRED

POWER_STATES = ('Halted', 'Paused', 'Running', 'Suspended')
VDI_TYPES = ('system', 'user', 'ephemeral', 'suspend', 'crashdump',
             'ha_statefile', 'metadata', 'redo_log', 'rrd', 'pvs_cache',
             'cbt_metadata')
TASK_STATUS = ('pending', 'success', 'failure', 'cancelling', 'cancelled')


def _f(type_, qualifier='RO', default=None):
    return Field(type_, qualifier, default)


def _common(name_rw=True):
    q = 'RW' if name_rw else 'RO'
    return {
        'uuid': _f(STRING),
        'name_label': _f(STRING, q, ''),
        'name_description': _f(STRING, q, ''),
    }


def _ops():
    return {
        'allowed_operations': _f(SSET, 'RO', []),
        'current_operations': _f(SSMAP, 'RO', {}),
    }


CLASSES = {}


def _cls(name, fields, has_name=True):
    base = _common() if has_name else {'uuid': _f(STRING)}
    base.update(fields)
    CLASSES[name] = base


_cls('session', {
    'this_host': _f(ref('host')),
    'this_user': _f(STRING, 'RO', ''),
    'last_active': _f(DATETIME),
    'pool': _f(BOOL, 'RO', False),
    'other_config': _f(SSMAP, 'RW', {}),
    'is_local_superuser': _f(BOOL, 'RO', True),
    'auth_user_name': _f(STRING, 'RO', ''),
    'originator': _f(STRING, 'RO', ''),
    'tasks': _f(refs('task'), 'RO', []),
    # The rest of xapi's session record (datamodel.ml).
    'subject': _f(ref('subject'), 'RO', 'OpaqueRef:NULL'),
    'validation_time': _f(DATETIME, 'RO', 0),
    'auth_user_sid': _f(STRING, 'RO', ''),
    'rbac_permissions': _f(SSET, 'RO', []),
    # The session that created this one (login_no_password: the caller's
    # session, e.g. host.migrate_receive's); logging the parent out does
    # not end it (Xapi_session.destroy_db_session destroys one session).
    'parent': _f(ref('session'), 'RO', 'OpaqueRef:NULL'),
    'client_certificate': _f(BOOL, 'RO', False),
}, has_name=False)

_cls('pool', {
    'master': _f(ref('host')),
    'default_SR': _f(ref('SR'), 'RW', 'OpaqueRef:NULL'),
    'suspend_image_SR': _f(ref('SR'), 'RW', 'OpaqueRef:NULL'),
    'crash_dump_SR': _f(ref('SR'), 'RW', 'OpaqueRef:NULL'),
    'other_config': _f(SSMAP, 'RW', {}),
    'ha_enabled': _f(BOOL, 'RO', False),
    'tags': _f(SSET, 'RW', []),
    'restrictions': _f(SSMAP, 'RO', {}),
    'cpu_info': _f(SSMAP, 'RO', {}),
    'migration_compression': _f(BOOL, 'RW', False),
})

_cls('host', {
    'hostname': _f(STRING, 'RO', ''),
    'address': _f(STRING, 'RO', ''),
    'enabled': _f(BOOL, 'RO', True),
    'API_version_major': _f(INT, 'RO', 2),
    'API_version_minor': _f(INT, 'RO', 21),
    'API_version_vendor': _f(STRING, 'RO', 'XenSource'),
    'software_version': _f(SSMAP, 'RO', {}),
    'other_config': _f(SSMAP, 'RW', {}),
    'capabilities': _f(SSET, 'RO', []),
    'cpu_info': _f(SSMAP, 'RO', {}),
    'resident_VMs': _f(refs('VM'), 'RO', []),
    'PIFs': _f(refs('PIF'), 'RO', []),
    'PBDs': _f(refs('PBD'), 'RO', []),
    'suspend_image_sr': _f(ref('SR'), 'RW', 'OpaqueRef:NULL'),
    'crash_dump_sr': _f(ref('SR'), 'RW', 'OpaqueRef:NULL'),
    'memory_overhead': _f(INT, 'RO', 0),
    'edition': _f(STRING, 'RO', 'xcp-ng'),
    'tags': _f(SSET, 'RW', []),
    'metrics': _f(ref('host_metrics'), 'RO', 'OpaqueRef:NULL'),
    'host_CPUs': _f(refs('host_cpu'), 'RO', []),
    'iscsi_iqn': _f(STRING, 'RO', ''),
    'sched_policy': _f(STRING, 'RO', 'credit'),
    'license_params': _f(SSMAP, 'RO', {}),
    'logging': _f(SSMAP, 'RW', {}),
    'power_on_mode': _f(STRING, 'RO', ''),
    'external_auth_type': _f(STRING, 'RO', ''),
    **_ops(),
})

_cls('host_metrics', {
    'memory_total': _f(INT, 'RO', 0),
    'memory_free': _f(INT, 'RO', 0),
    'live': _f(BOOL, 'RO', True),
    'last_updated': _f(DATETIME, 'RO', None),
    'other_config': _f(SSMAP, 'RW', {}),
}, has_name=False)

_cls('host_cpu', {
    'host': _f(ref('host')),
    'number': _f(INT, 'RO', 0),
    'vendor': _f(STRING, 'RO', ''),
    'speed': _f(INT, 'RO', 0),
    'modelname': _f(STRING, 'RO', ''),
    'family': _f(INT, 'RO', 0),
    'model': _f(INT, 'RO', 0),
    'stepping': _f(STRING, 'RO', ''),
    'flags': _f(STRING, 'RO', ''),
    'features': _f(STRING, 'RO', ''),
    'utilisation': _f(FLOAT, 'RO', 0.0),
    'other_config': _f(SSMAP, 'RW', {}),
}, has_name=False)

_cls('network', {
    'bridge': _f(STRING, 'C', REQUIRED),
    'MTU': _f(INT, 'RW', 1500),
    'managed': _f(BOOL, 'C', True),
    'PIFs': _f(refs('PIF'), 'RO', []),
    'VIFs': _f(refs('VIF'), 'RO', []),
    'other_config': _f(SSMAP, 'RW', {}),
    'tags': _f(SSET, 'RW', []),
    'purpose': _f(SSET, 'RO', []),
    **_ops(),
})

_cls('PIF', {
    'device': _f(STRING),
    'network': _f(ref('network')),
    'host': _f(ref('host')),
    'MAC': _f(STRING, 'RO', ''),
    'MTU': _f(INT, 'RO', 1500),
    'VLAN': _f(INT, 'RO', -1),
    'physical': _f(BOOL, 'RO', True),
    'currently_attached': _f(BOOL, 'RO', True),
    'ip_configuration_mode': _f(enum('None', 'DHCP', 'Static'), 'RO',
                                'None'),
    'IP': _f(STRING, 'RO', ''),
    'netmask': _f(STRING, 'RO', ''),
    'gateway': _f(STRING, 'RO', ''),
    'DNS': _f(STRING, 'RO', ''),
    'management': _f(BOOL, 'RO', False),
    'other_config': _f(SSMAP, 'RW', {}),
}, has_name=False)

_cls('SM', {
    'type': _f(STRING),
    'vendor': _f(STRING, 'RO', ''),
    'copyright': _f(STRING, 'RO', ''),
    'version': _f(STRING, 'RO', '1.0'),
    'required_api_version': _f(STRING, 'RO', '1.0'),
    'configuration': _f(SSMAP, 'RO', {}),
    'capabilities': _f(SSET, 'RO', []),
    'features': _f(('map', STRING, INT), 'RO', {}),
    'other_config': _f(SSMAP, 'RW', {}),
    'driver_filename': _f(STRING, 'RO', ''),
})

_cls('SR', {
    'VDIs': _f(refs('VDI'), 'RO', []),
    'PBDs': _f(refs('PBD'), 'RO', []),
    'virtual_allocation': _f(INT, 'RO', 0),
    'physical_utilisation': _f(INT, 'RO', 0),
    'physical_size': _f(INT, 'RO', 0),
    'type': _f(STRING),
    'content_type': _f(STRING, 'RO', 'user'),
    'shared': _f(BOOL, 'RW', False),
    'other_config': _f(SSMAP, 'RW', {}),
    'tags': _f(SSET, 'RW', []),
    'sm_config': _f(SSMAP, 'RW', {}),
    'blobs': _f(SSMAP, 'RO', {}),
    'local_cache_enabled': _f(BOOL, 'RO', False),
    'clustered': _f(BOOL, 'RO', False),
    'is_tools_sr': _f(BOOL, 'RO', False),
    **_ops(),
})

_cls('PBD', {
    'host': _f(ref('host'), 'C', REQUIRED),
    'SR': _f(ref('SR'), 'C', REQUIRED),
    'device_config': _f(SSMAP, 'C', {}),
    'currently_attached': _f(BOOL, 'RO', False),
    'other_config': _f(SSMAP, 'RW', {}),
}, has_name=False)

_cls('VDI', {
    'SR': _f(ref('SR'), 'C', REQUIRED),
    'VBDs': _f(refs('VBD'), 'RO', []),
    'crash_dumps': _f(SSET, 'RO', []),
    'virtual_size': _f(INT, 'C', REQUIRED),
    'physical_utilisation': _f(INT, 'RO', 0),
    'type': _f(enum(*VDI_TYPES), 'C', REQUIRED),
    'sharable': _f(BOOL, 'C', False),
    'read_only': _f(BOOL, 'C', False),
    'other_config': _f(SSMAP, 'RW', {}),
    'storage_lock': _f(BOOL, 'RO', False),
    'location': _f(STRING, 'RO', ''),
    'managed': _f(BOOL, 'RO', True),
    'missing': _f(BOOL, 'RO', False),
    'parent': _f(ref('VDI'), 'RO', 'OpaqueRef:NULL'),
    'xenstore_data': _f(SSMAP, 'C', {}),
    'sm_config': _f(SSMAP, 'RW', {}),
    'is_a_snapshot': _f(BOOL, 'RO', False),
    'snapshot_of': _f(ref('VDI'), 'RO', 'OpaqueRef:NULL'),
    'snapshots': _f(refs('VDI'), 'RO', []),
    'snapshot_time': _f(DATETIME, 'RO', None),
    'tags': _f(SSET, 'C', []),
    'allow_caching': _f(BOOL, 'RO', False),
    'on_boot': _f(enum('reset', 'persist'), 'RO', 'persist'),
    'metadata_of_pool': _f(ref('pool'), 'RO', 'OpaqueRef:NULL'),
    'metadata_latest': _f(BOOL, 'RO', False),
    'is_tools_iso': _f(BOOL, 'RO', False),
    'cbt_enabled': _f(BOOL, 'RO', False),
    **_ops(),
})

_cls('VBD', {
    'VM': _f(ref('VM'), 'C', REQUIRED),
    'VDI': _f(ref('VDI'), 'C', REQUIRED),
    'device': _f(STRING, 'RO', ''),
    'userdevice': _f(STRING, 'RW', REQUIRED),
    'bootable': _f(BOOL, 'RW', False),
    'mode': _f(enum('RO', 'RW'), 'RW', REQUIRED),
    'type': _f(enum('CD', 'Disk', 'Floppy'), 'RW', REQUIRED),
    'unpluggable': _f(BOOL, 'RW', True),
    'storage_lock': _f(BOOL, 'RO', False),
    'empty': _f(BOOL, 'C', REQUIRED),
    'other_config': _f(SSMAP, 'RW', {}),
    'currently_attached': _f(BOOL, 'RO', False),
    'status_code': _f(INT, 'RO', 0),
    'status_detail': _f(STRING, 'RO', ''),
    'runtime_properties': _f(SSMAP, 'RO', {}),
    'qos_algorithm_type': _f(STRING, 'RW', ''),
    'qos_algorithm_params': _f(SSMAP, 'RW', {}),
    'qos_supported_algorithms': _f(SSET, 'RO', []),
    **_ops(),
}, has_name=False)

_cls('VIF', {
    'device': _f(STRING, 'C', REQUIRED),
    'network': _f(ref('network'), 'C', REQUIRED),
    'VM': _f(ref('VM'), 'C', REQUIRED),
    'MAC': _f(STRING, 'C', ''),
    'MTU': _f(INT, 'C', 1500),
    'other_config': _f(SSMAP, 'RW', {}),
    'currently_attached': _f(BOOL, 'RO', False),
    'status_code': _f(INT, 'RO', 0),
    'status_detail': _f(STRING, 'RO', ''),
    'runtime_properties': _f(SSMAP, 'RO', {}),
    'qos_algorithm_type': _f(STRING, 'RW', ''),
    'qos_algorithm_params': _f(SSMAP, 'RW', {}),
    'qos_supported_algorithms': _f(SSET, 'RO', []),
    'MAC_autogenerated': _f(BOOL, 'RO', False),
    'locking_mode': _f(enum('network_default', 'locked', 'unlocked',
                            'disabled'), 'C', 'network_default'),
    'ipv4_allowed': _f(SSET, 'C', []),
    'ipv6_allowed': _f(SSET, 'C', []),
    **_ops(),
}, has_name=False)

_cls('VM', {
    'power_state': _f(enum(*POWER_STATES), 'RO', 'Halted'),
    'user_version': _f(INT, 'RW', 1),
    'is_a_template': _f(BOOL, 'RW', False),
    'is_default_template': _f(BOOL, 'RO', False),
    'suspend_VDI': _f(ref('VDI'), 'RO', 'OpaqueRef:NULL'),
    'resident_on': _f(ref('host'), 'RO', 'OpaqueRef:NULL'),
    'scheduled_to_be_resident_on': _f(ref('host'), 'RO', 'OpaqueRef:NULL'),
    'affinity': _f(ref('host'), 'RW', 'OpaqueRef:NULL'),
    'memory_overhead': _f(INT, 'RO', 0),
    'memory_target': _f(INT, 'RO', 0),
    'memory_static_max': _f(INT, 'RW', 1 << 30),
    'memory_dynamic_max': _f(INT, 'RW', 1 << 30),
    'memory_dynamic_min': _f(INT, 'RW', 1 << 30),
    'memory_static_min': _f(INT, 'RW', 1 << 30),
    'VCPUs_params': _f(SSMAP, 'RW', {}),
    'VCPUs_max': _f(INT, 'RW', 1),
    'VCPUs_at_startup': _f(INT, 'RW', 1),
    'actions_after_shutdown': _f(enum('destroy', 'restart'), 'RW',
                                 'destroy'),
    'actions_after_reboot': _f(enum('destroy', 'restart'), 'RW', 'restart'),
    'actions_after_crash': _f(enum('destroy', 'coredump_and_destroy',
                                   'restart', 'coredump_and_restart',
                                   'preserve', 'rename_restart'), 'RW',
                              'restart'),
    'VIFs': _f(refs('VIF'), 'RO', []),
    'VBDs': _f(refs('VBD'), 'RO', []),
    'crash_dumps': _f(SSET, 'RO', []),
    'PV_bootloader': _f(STRING, 'RW', ''),
    'PV_kernel': _f(STRING, 'RW', ''),
    'PV_ramdisk': _f(STRING, 'RW', ''),
    'PV_args': _f(STRING, 'RW', ''),
    'PV_bootloader_args': _f(STRING, 'RW', ''),
    'PV_legacy_args': _f(STRING, 'RW', ''),
    'HVM_boot_policy': _f(STRING, 'RW', 'BIOS order'),
    'HVM_boot_params': _f(SSMAP, 'RW', {}),
    'platform': _f(SSMAP, 'RW', {}),
    'PCI_bus': _f(STRING, 'RW', ''),
    'other_config': _f(SSMAP, 'RW', {}),
    'domid': _f(INT, 'RO', -1),
    'domarch': _f(STRING, 'RO', ''),
    'last_boot_CPU_flags': _f(SSMAP, 'RO', {}),
    'is_control_domain': _f(BOOL, 'RO', False),
    'recommendations': _f(STRING, 'RW', ''),
    'xenstore_data': _f(SSMAP, 'RW', {}),
    'is_a_snapshot': _f(BOOL, 'RO', False),
    'snapshot_of': _f(ref('VM'), 'RO', 'OpaqueRef:NULL'),
    'snapshots': _f(refs('VM'), 'RO', []),
    'snapshot_time': _f(DATETIME, 'RO', None),
    'tags': _f(SSET, 'RW', []),
    'blocked_operations': _f(SSMAP, 'RW', {}),
    'bios_strings': _f(SSMAP, 'RO', {}),
    'domain_type': _f(enum('hvm', 'pv', 'pv_in_pvh', 'pvh', 'unspecified'),
                      'RW', 'hvm'),
    'has_vendor_device': _f(BOOL, 'RW', False),
    'generation_id': _f(STRING, 'RO', ''),
    'start_delay': _f(INT, 'RO', 0),
    'shutdown_delay': _f(INT, 'RO', 0),
    'order': _f(INT, 'RO', 0),
    'metrics': _f(ref('VM_metrics'), 'RO', 'OpaqueRef:NULL'),
    'guest_metrics': _f(ref('VM_guest_metrics'), 'RO', 'OpaqueRef:NULL'),
    'consoles': _f(refs('console'), 'RO', []),
    'suspend_SR': _f(ref('SR'), 'RW', 'OpaqueRef:NULL'),
    'HVM_shadow_multiplier': _f(FLOAT, 'RW', 1.0),
    'requires_reboot': _f(BOOL, 'RO', False),
    **_ops(),
})

DOMAIN_TYPES = ('hvm', 'pv', 'pv_in_pvh', 'pvh', 'unspecified')

_cls('VM_metrics', {
    'memory_actual': _f(INT, 'RO', 0),
    'VCPUs_number': _f(INT, 'RO', 0),
    'VCPUs_utilisation': _f(('map', INT, FLOAT), 'RO', {}),
    'VCPUs_CPU': _f(('map', INT, INT), 'RO', {}),
    'VCPUs_params': _f(SSMAP, 'RO', {}),
    'VCPUs_flags': _f(('map', INT, SSET), 'RO', {}),
    'state': _f(SSET, 'RO', []),
    'start_time': _f(DATETIME, 'RO', None),
    'install_time': _f(DATETIME, 'RO', None),
    'last_updated': _f(DATETIME, 'RO', None),
    'other_config': _f(SSMAP, 'RW', {}),
    'hvm': _f(BOOL, 'RO', False),
    'nested_virt': _f(BOOL, 'RO', False),
    'nomigrate': _f(BOOL, 'RO', False),
    'current_domain_type': _f(enum(*DOMAIN_TYPES), 'RO', 'unspecified'),
}, has_name=False)

HOTPLUG = ('yes', 'no', 'unspecified')

_cls('VM_guest_metrics', {
    'os_version': _f(SSMAP, 'RO', {}),
    'netbios_name': _f(SSMAP, 'RO', {}),
    'PV_drivers_version': _f(SSMAP, 'RO', {}),
    'PV_drivers_up_to_date': _f(BOOL, 'RO', False),
    'memory': _f(SSMAP, 'RO', {}),
    'disks': _f(SSMAP, 'RO', {}),
    'networks': _f(SSMAP, 'RO', {}),
    'other': _f(SSMAP, 'RO', {}),
    'last_updated': _f(DATETIME, 'RO', None),
    'other_config': _f(SSMAP, 'RW', {}),
    'live': _f(BOOL, 'RO', False),
    'can_use_hotplug_vbd': _f(enum(*HOTPLUG), 'RO', 'unspecified'),
    'can_use_hotplug_vif': _f(enum(*HOTPLUG), 'RO', 'unspecified'),
    'PV_drivers_detected': _f(BOOL, 'RO', False),
}, has_name=False)

_cls('console', {
    'protocol': _f(enum('vt100', 'rfb', 'rdp'), 'RO', 'rfb'),
    'location': _f(STRING, 'RO', ''),
    'VM': _f(ref('VM')),
    'other_config': _f(SSMAP, 'RW', {}),
    'port': _f(INT, 'RO', -1),
}, has_name=False)

_cls('task', {
    'created': _f(DATETIME),
    'finished': _f(DATETIME),
    'status': _f(enum(*TASK_STATUS), 'RO', 'pending'),
    'resident_on': _f(ref('host')),
    'progress': _f(FLOAT, 'RO', 0.0),
    'type': _f(STRING, 'RO', ''),
    'result': _f(STRING, 'RO', ''),
    'error_info': _f(SSET, 'RO', []),
    'other_config': _f(SSMAP, 'RW', {}),
    'subtask_of': _f(ref('task'), 'RO', 'OpaqueRef:NULL'),
    'subtasks': _f(refs('task'), 'RO', []),
    'backtrace': _f(STRING, 'RO', '()'),
    **_ops(),
})

# Classes whose objects can be looked up by name label.
NAMED = frozenset(c for c, f in CLASSES.items() if 'name_label' in f)


def writable(cls, field):
    f = CLASSES[cls].get(field)
    return f is not None and f.qualifier == 'RW'
