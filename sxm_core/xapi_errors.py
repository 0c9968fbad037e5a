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

"""The XAPI error codes this project raises, reads or is likely to meet.

One table for the core (``errors.XapiFailure.param``) and the simulator
(which checks the arity of every error it puts on the wire). Codes and
parameter names come from xen-api ``ocaml/idl/datamodel_errors.ml`` (code
strings from ``ocaml/xapi-consts/api_errors.ml``), the names made into
identifiers ("Master IP address" -> ``master_ip_address``). Where xapi's
raise sites send another number of parameters than the datamodel lists,
the wire wins and a comment says so. Pure data: importable without oslo,
XenAPI or anything else.
"""

PARAMS = {
    'CANNOT_CONTACT_HOST': ('host',),
    'CANNOT_RESET_CONTROL_DOMAIN': ('vm',),
    'DEVICE_ALREADY_ATTACHED': ('device',),
    'DEVICE_ALREADY_DETACHED': ('device',),
    'DEVICE_ALREADY_EXISTS': ('device',),
    'DOMAIN_EXISTS': ('vm', 'domid'),
    'EVENTS_LOST': (),
    'EVENT_FROM_TOKEN_PARSE_FAILURE': ('token',),
    'FIELD_TYPE_ERROR': ('field',),
    'HANDLE_INVALID': ('class', 'handle'),
    'HOST_CANNOT_ATTACH_NETWORK': ('host', 'network'),
    'HOST_CANNOT_SEE_SR': ('host', 'sr'),
    'HOST_DISABLED': ('host',),
    'HOST_IS_LIVE': ('host',),
    'HOST_IS_SLAVE': ('master_ip_address',),
    'HOST_NOT_ENOUGH_FREE_MEMORY': ('needed', 'available'),
    'HOST_NOT_LIVE': (),
    'HOST_OFFLINE': ('host',),
    'IMPORT_ERROR': ('msg',),
    'INTERFACE_HAS_NO_IP': ('interface',),
    'INTERNAL_ERROR': ('message',),
    'INVALID_DEVICE': ('device',),
    'INVALID_VALUE': ('field', 'value'),
    'LICENCE_RESTRICTION': ('feature',),
    'MAC_INVALID': ('mac',),
    'MAP_DUPLICATE_KEY': ('type', 'param_name', 'uuid', 'key'),
    # Declared with "constraint"; xapi_vm_helpers.validate_memory raises
    # it with none.
    'MEMORY_CONSTRAINT_VIOLATION': ('constraint',),
    'MEMORY_CONSTRAINT_VIOLATION_ORDER': (),
    'MESSAGE_METHOD_UNKNOWN': ('method',),
    'MESSAGE_PARAMETER_COUNT_MISMATCH': ('method', 'expected', 'received'),
    'MIRROR_FAILED': ('vdi',),
    # One parameter per PIF/VIF still on the network (a list, flattened).
    'NETWORK_CONTAINS_PIF': ('pifs',),
    'NETWORK_CONTAINS_VIF': ('vifs',),
    'NETWORK_INCOMPATIBLE_PURPOSES': ('new_purpose', 'conflicting_purpose'),
    'NO_HOSTS_AVAILABLE': (),
    'OPERATION_BLOCKED': ('ref', 'code'),
    'OPERATION_NOT_ALLOWED': ('reason',),
    # Current xapi sends four; older releases sent [class; object].
    'OTHER_OPERATION_IN_PROGRESS': ('class', 'object', 'operation_type',
                                    'operation_ref'),
    'PBD_EXISTS': ('sr', 'host', 'pbd'),
    'PERMISSION_DENIED': ('message',),
    'PIF_HAS_NO_NETWORK_CONFIGURATION': ('pif',),
    # Declared without parameters; xapi_session.ml sends [user; message].
    'SESSION_AUTHENTICATION_FAILED': ('username', 'message'),
    'SESSION_INVALID': ('handle',),
    # Declared [sr; capabilities]; xapi_vm_migrate.ml sends [sr].
    'SR_DOES_NOT_SUPPORT_MIGRATION': ('sr',),
    'SR_FULL': ('requested', 'maximum'),
    'SR_HAS_NO_PBDS': ('sr',),
    'SR_HAS_PBD': ('sr',),
    'SR_OPERATION_NOT_SUPPORTED': ('sr',),
    'SR_SUSPEND_SPACE_INSUFFICIENT': ('sr',),
    'SR_UUID_EXISTS': ('uuid',),
    'TASK_CANCELLED': ('task',),
    'TOO_MANY_STORAGE_MIGRATES': ('number',),
    'UUID_INVALID': ('type', 'uuid'),
    'VALUE_NOT_SUPPORTED': ('field', 'value', 'reason'),
    'VBD_CDS_MUST_BE_READONLY': (),
    'VBD_NOT_EMPTY': ('vbd',),
    'VBD_NOT_REMOVABLE_MEDIA': ('vbd',),
    'VBD_NOT_UNPLUGGABLE': ('vbd',),
    'VDI_CBT_ENABLED': ('vdi',),
    # Declared without parameters; the copy path sends the reason.
    'VDI_COPY_FAILED': ('details',),
    'VDI_INCOMPATIBLE_TYPE': ('vdi', 'type'),
    'VDI_IN_USE': ('vdi', 'operation'),
    'VDI_IS_SHARABLE': ('vdi',),
    'VDI_IO_ERROR': ('reason',),
    'VDI_IS_A_PHYSICAL_DEVICE': ('vdi',),
    'VDI_LOCATION_MISSING': ('sr', 'location'),
    'VDI_NEEDS_VM_FOR_MIGRATE': ('vdi',),
    'VDI_NOT_IN_MAP': ('vdi',),
    'VDI_NOT_MANAGED': ('vdi',),
    'VDI_READONLY': ('vdi',),
    'VDI_TOO_LARGE': ('vdi', 'maximum_size'),
    'VDI_TOO_SMALL': ('vdi', 'minimum_size'),
    'VIF_NOT_IN_MAP': ('vif',),
    'VM_BAD_POWER_STATE': ('vm', 'expected', 'actual'),
    'VM_HAS_NO_SUSPEND_VDI': ('vm',),
    'VM_HAS_PCI_ATTACHED': ('vm',),
    'VM_HAS_SRIOV_VIF': ('vm',),
    'VM_HAS_VDI_ON_MULTIPLE_SRS': ('vm',),
    'VM_HAS_VGPU': ('vm',),
    'VM_HOST_INCOMPATIBLE_VERSION_MIGRATE': ('host', 'vm'),
    'VM_IS_SNAPSHOT': ('vm', 'operation'),
    # Declared [vm]; the operation checks (xapi_vm_lifecycle.ml) send
    # [vm; operation].
    'VM_IS_TEMPLATE': ('vm', 'operation'),
    'VM_LACKS_FEATURE': ('vm',),
    'VM_MIGRATE_CONTACT_REMOTE_SERVICE_FAILED': (),
    'VM_MIGRATE_FAILED': ('vm', 'source', 'destination', 'msg'),
    'VM_MISSING_PV_DRIVERS': ('vm',),
    'VM_NO_EMPTY_CD_VBD': ('vm',),
    'VM_NO_SUSPEND_SR': ('vm',),
    'VM_REQUIRES_NETWORK': ('vm', 'network'),
    'VM_REQUIRES_SR': ('vm', 'sr'),
    'VM_SHUTDOWN_TIMEOUT': ('vm', 'timeout'),
    # Declared without parameters; xapi_xenops.ml sends one VM ref per VM
    # that did not answer (a list, flattened).
    'VMS_FAILED_TO_COOPERATE': ('vms',),
}

# SMAPIv1 backend errors (SR_BACKEND_FAILURE_<n>, generated from the SM
# error table, not in the datamodel): [code; status; message; details].
_SM_BACKEND = ('status', 'stdout', 'stderr')
for _n in (40, 44, 46, 47, 79, 82, 95, 96, 101, 102, 107):
    PARAMS['SR_BACKEND_FAILURE_%d' % _n] = _SM_BACKEND

# Codes whose wire arity varies between xapi releases or raise sites.
ARITIES = {
    'OTHER_OPERATION_IN_PROGRESS': (2, 4),
    'MEMORY_CONSTRAINT_VIOLATION': (0, 1),
    # Declared with the domid; xapi_vm.power_state_reset sends the VM only.
    'DOMAIN_EXISTS': (1, 2),
    # Any number of PIFs/VIFs.
    'NETWORK_CONTAINS_PIF': None,
    'NETWORK_CONTAINS_VIF': None,
    'VMS_FAILED_TO_COOPERATE': None,
    # The VBD checks send the VDI alone, VDI.copy/destroy VDI and
    # operation, vdis_in_use every VDI.
    'VDI_IN_USE': None,
}

# Names callers used before the table followed the datamodel.
ALIASES = {
    'HOST_IS_SLAVE': {'master': 'master_ip_address'},
    'INTERFACE_HAS_NO_IP': {'pif': 'interface'},
    'UUID_INVALID': {'class': 'type'},
}


def params(code):
    """The parameter names of ``code``, or () when it is not known."""
    return PARAMS.get(code, ())


def accepts(code, count):
    """Whether ``code`` may travel with ``count`` parameters.

    Unknown codes are not checked (False only for a known code sent with
    a wrong count).
    """
    if code not in PARAMS:
        return True
    if code in ARITIES:
        allowed = ARITIES[code]
        return allowed is None or count in allowed
    return count == len(PARAMS[code])


def index(code, name):
    """Position of parameter ``name`` (or an alias of it) of ``code``."""
    names = PARAMS.get(code, ())
    name = ALIASES.get(code, {}).get(name, name)
    return names.index(name)
