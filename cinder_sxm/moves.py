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


"""The record of a move in a volume's admin metadata.

The driver writes it before XAPI starts a move (and adds the task, or the
uuid of the copy, once known) and clears it when Cinder's side is set; a
successor's start-up (``recovery``) reads what a killed service left.
"""

from cinder import context as cinder_context
from cinder.db import api as db

# Admin metadata of a volume being moved by the driver.
MOVE_HOST = 'sxm_move_host'      # the host (backend#pool) it moves to
MOVE_TYPE = 'sxm_move_type'      # the volume type id a retype sets
MOVE_SR = 'sxm_move_sr'          # the uuid of the destination SR
MOVE_FROM = 'sxm_move_from'      # the VDI uuid it moves from
MOVE_TASK = 'sxm_move_task'      # the XAPI task doing it
# A move to another XAPI pool (cinder_sxm.crosspool) also records:
MOVE_POOL = 'sxm_move_pool'      # the uuid of the destination pool
MOVE_URL = 'sxm_move_url'        # its XAPI URL (never with credentials)
MOVE_TO = 'sxm_move_to'          # the uuid of the copy made there
MOVE_KEYS = (MOVE_HOST, MOVE_TYPE, MOVE_SR, MOVE_FROM, MOVE_TASK,
             MOVE_POOL, MOVE_URL, MOVE_TO)


def record_move(volume, values):
    """Add ``values`` (MOVE_KEYS) to the volume's admin metadata."""
    with volume.obj_as_admin():
        volume.admin_metadata_update(
            {k: str(v) for k, v in values.items()}, False)


def clear_move(volume):
    ctxt = cinder_context.get_admin_context()
    for key in MOVE_KEYS:
        db.volume_admin_metadata_delete(ctxt, volume.id, key)
    if volume.obj_attr_is_set('admin_metadata'):
        for key in MOVE_KEYS:
            volume.admin_metadata.pop(key, None)
        volume.obj_reset_changes(['admin_metadata'])
