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

"""Nova's config drive image for a VM, as the historic xenapi driver made it.

Nova's own builder (``nova.virt.configdrive.ConfigDriveBuilder`` with
``InstanceMetadata``) writes the image on the nova-compute node;
``vmops`` then uploads it into a VDI on the instance's SR and attaches it
read-only at userdevice 3 (the historic driver's ``CONFIGDRIVE``). An
ISO9660 drive (``[DEFAULT] config_drive_format``, the default) needs
``[DEFAULT] mkisofs_cmd`` (genisoimage) on the nova-compute node: without
it the build is refused before any VM exists. A vfat drive is made by
Nova's privsep helpers (mkfs.vfat and a loop mount as root).

The admin password, when Nova has one, travels inside the drive
(``meta_data.json`` ``admin_pass``): XAPI cannot set it in a guest
without the guest agent the historic driver used.
"""

import os
import shutil

from nova.api.metadata import base as instance_metadata
import nova.conf
from nova import exception
from nova.virt import configdrive as nova_configdrive

CONF = nova.conf.CONF
# A label the guest's cloud-init looks for; also the VDI's name.
LABEL = 'config-2'


def required(instance):
    """True when Nova asks for a config drive (and records that it has one).

    The API shows ``config_drive`` from the instance record, which Nova
    leaves to the driver (as libvirt does) to set.
    """
    if not nova_configdrive.required_by(instance):
        return False
    nova_configdrive.update_instance(instance)
    return True


def check_tools(instance):
    """Refuse a build whose config drive this compute cannot make."""
    if CONF.config_drive_format == 'iso9660' and \
            shutil.which(CONF.mkisofs_cmd) is None:
        raise exception.BuildAbortException(
            instance_uuid=instance.uuid,
            reason='a config drive is required and [DEFAULT] mkisofs_cmd '
                   '%r is not installed on this nova-compute node '
                   '(install genisoimage)' % CONF.mkisofs_cmd)


def build(instance, network_info, injected_files, admin_password, tmpdir):
    """Write the config drive image under ``tmpdir``; return its path."""
    extra_md = {'admin_pass': admin_password} if admin_password else {}
    metadata = instance_metadata.InstanceMetadata(
        instance, content=injected_files, extra_md=extra_md,
        network_info=network_info)
    path = os.path.join(tmpdir, LABEL)
    with nova_configdrive.ConfigDriveBuilder(instance_md=metadata) as cdb:
        cdb.make_drive(path)
    return path
