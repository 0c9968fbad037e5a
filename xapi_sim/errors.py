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

"""XAPI error codes and the exception that carries them onto the wire.

The parameter names come from xen-api ``ocaml/idl/datamodel_errors.ml``; the
simulator checks arity against this table so that a typo in a raise site
fails loudly in tests instead of putting a malformed error on the wire.
"""

ERROR_PARAMS = {
    'DEVICE_ALREADY_ATTACHED': ('device',),
    'DEVICE_ALREADY_DETACHED': ('device',),
    'DEVICE_ALREADY_EXISTS': ('device',),
    'EVENTS_LOST': (),
    'EVENT_FROM_TOKEN_PARSE_FAILURE': ('token',),
    'FIELD_TYPE_ERROR': ('field',),
    'HANDLE_INVALID': ('class', 'handle'),
    'HOST_IS_SLAVE': ('master_IP_address',),
    'INTERNAL_ERROR': ('message',),
    'INVALID_VALUE': ('field', 'value'),
    'MAP_DUPLICATE_KEY': ('type', 'param_name', 'uuid', 'key'),
    'MESSAGE_METHOD_UNKNOWN': ('method',),
    'MESSAGE_PARAMETER_COUNT_MISMATCH': ('method', 'expected', 'received'),
    'NETWORK_INCOMPATIBLE_PURPOSES': ('new_purpose', 'conflicting_purpose'),
    'OPERATION_NOT_ALLOWED': ('reason',),
    'OTHER_OPERATION_IN_PROGRESS': ('class', 'object'),
    'PERMISSION_DENIED': ('message',),
    'SESSION_AUTHENTICATION_FAILED': ('username', 'message'),
    'SESSION_INVALID': ('handle',),
    'SR_BACKEND_FAILURE_44': ('status', 'stdout', 'stderr'),
    'SR_FULL': ('requested', 'maximum'),
    'SR_HAS_NO_PBDS': ('sr',),
    'SR_OPERATION_NOT_SUPPORTED': ('sr',),
    'TASK_CANCELLED': ('task',),
    'UUID_INVALID': ('class', 'uuid'),
    'VALUE_NOT_SUPPORTED': ('field', 'value', 'reason'),
    'VBD_NOT_EMPTY': ('vbd',),
    'VBD_NOT_UNPLUGGABLE': ('vbd',),
    'VDI_CBT_ENABLED': ('vdi',),
    'VDI_IN_USE': ('vdi', 'operation'),
    'VDI_IS_A_PHYSICAL_DEVICE': ('vdi',),
    'VDI_NEEDS_VM_FOR_MIGRATE': ('vdi',),
    'VDI_NOT_IN_MAP': ('vdi',),
    'VDI_READONLY': ('vdi',),
    'VDI_TOO_SMALL': ('vdi', 'minimum_size'),
    'VIF_NOT_IN_MAP': ('vif',),
    'VM_BAD_POWER_STATE': ('vm', 'expected', 'actual'),
    'VM_HAS_VDI_ON_MULTIPLE_SRS': ('vm',),
    'VM_IS_TEMPLATE': ('vm', 'operation'),
    'VM_NO_EMPTY_CD_VBD': ('vm',),
    'MIRROR_FAILED': ('vdi',),
    'TOO_MANY_STORAGE_MIGRATES': ('number',),
    'VDI_COPY_FAILED': ('details',),
    'CANNOT_CONTACT_HOST': ('host',),
    'HOST_CANNOT_ATTACH_NETWORK': ('host', 'network'),
    'IMPORT_ERROR': ('msg',),
    'INTERFACE_HAS_NO_IP': ('PIF',),
    'PIF_HAS_NO_NETWORK_CONFIGURATION': ('PIF',),
    'SR_DOES_NOT_SUPPORT_MIGRATION': ('sr',),
    'VDI_INCOMPATIBLE_TYPE': ('vdi', 'type'),
    'VM_MIGRATE_FAILED': ('vm', 'source', 'destination', 'msg'),
    'VM_REQUIRES_SR': ('vm', 'sr'),
    'HOST_NOT_ENOUGH_FREE_MEMORY': ('needed', 'available'),
    'OPERATION_BLOCKED': ('ref', 'code'),
    # Declared with a "constraint" parameter, raised with none
    # (xapi_vm_helpers.validate_memory).
    'MEMORY_CONSTRAINT_VIOLATION': (),
    'MEMORY_CONSTRAINT_VIOLATION_ORDER': (),
    'VM_IS_SNAPSHOT': ('vm', 'operation'),
    'VM_NO_SUSPEND_SR': ('vm',),
    'VM_HAS_NO_SUSPEND_VDI': ('vm',),
    'SR_SUSPEND_SPACE_INSUFFICIENT': ('sr',),
    'NO_HOSTS_AVAILABLE': (),
    'INVALID_DEVICE': ('device',),
    'VBD_CDS_MUST_BE_READONLY': (),
    'VBD_NOT_REMOVABLE_MEDIA': ('vbd',),
    'MAC_INVALID': ('MAC',),
    'VDI_IO_ERROR': ('reason',),
    'SR_BACKEND_FAILURE_47': ('status', 'stdout', 'stderr'),
    'SR_UUID_EXISTS': ('uuid',),
    'SR_HAS_PBD': ('sr',),
    'VDI_LOCATION_MISSING': ('sr', 'location'),
}


class XapiError(Exception):
    """An XAPI failure: ``[code, *params]`` on the wire."""

    def __init__(self, code, *params):
        expected = ERROR_PARAMS.get(code)
        if expected is not None and len(expected) != len(params):
            raise TypeError('%s takes %d parameters (%s), got %d'
                            % (code, len(expected), ', '.join(expected),
                               len(params)))
        super().__init__(code, *params)
        self.code = code
        self.params = [str(p) for p in params]

    @property
    def description(self):
        return [self.code] + self.params

    def __str__(self):
        return '%s %s' % (self.code, self.params)


def sr_full():
    """The error the SM backends raise when a VDI does not fit its SR.

    SMAPIv1 backends turn ``SR_FULL`` (exit code 44) into
    ``SR_BACKEND_FAILURE_44 [""; "There is insufficient space"; ""]``.
    """
    return XapiError('SR_BACKEND_FAILURE_44', '',
                     'There is insufficient space', '')
