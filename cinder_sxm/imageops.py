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


"""Disk images in and out of volumes: ``sxm_core.transfer`` for Cinder.

The transfers themselves (``PUT /import_raw_vdi``, ``GET
/export_raw_vdi``, ``format`` raw or vhd, each tied to an XAPI task) are
the core's. What is Cinder's: the name of the transfers' tasks, by which
a restarted cinder-volume finds the ones its predecessor left
(``recovery``).
"""

from sxm_core import transfer

FORMATS = transfer.FORMATS
# name_label of the task of a transfer.
TASK_LABEL = 'cinder-sxm'


class Transfers(transfer.VdiTransfer):
    """The backend's transfers; their tasks are named ``TASK_LABEL``."""

    def __init__(self, pool, ca_file=None, insecure=False, timeout=300):
        super().__init__(pool, label=TASK_LABEL, ca_file=ca_file,
                         insecure=insecure, timeout=timeout)
