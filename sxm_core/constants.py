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

"""XAPI strings the core compares against."""

OPAQUE_NULL = 'OpaqueRef:NULL'

RUNNING = 'Running'
HALTED = 'Halted'
PAUSED = 'Paused'
SUSPENDED = 'Suspended'
# Power states from which VM.migrate_send may start.
MIGRATABLE_STATES = (HALTED, SUSPENDED, RUNNING)

# SM features a storage migration needs: snapshot and mirror out of the
# source SR, mirror into the destination SR (xapi's
# assert_sr_support_operations).
SOURCE_SR_FEATURES = ('VDI_SNAPSHOT', 'VDI_MIRROR')
DEST_SR_FEATURES = ('VDI_MIRROR_IN',)
THICK_SR_TYPES = ('lvm', 'lvmoiscsi', 'lvmohba')
ISO_CONTENT = 'iso'

TASK_PENDING = 'pending'
TASK_SUCCESS = 'success'
TASK_FAILURE = 'failure'
TASK_CANCELLING = 'cancelling'
TASK_CANCELLED = 'cancelled'

# xapi refuses a fourth storage migration per host.
XAPI_MAX_STORAGE_MIGRATES = 3
