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

"""Device role tagging: a server's tagged NICs and disks for its guest.

Nova keeps the tags users give (``--nic ...,tag=``, ``--block-device
...,tag=``, and attach with a tag: API microversions 2.32, 2.42, 2.49)
on the VirtualInterface and BlockDeviceMapping records; the driver turns
them into ``instance.device_metadata``, which Nova writes into the config
drive and serves from the metadata service (``meta_data.json``
``devices``). As the historic xenapi driver did:

* a NIC is its MAC on the PCI bus (no address: XAPI does not say where
  its device model puts it);
* a disk is listed once per name the guest may know it by, all with the
  volume id as ``serial``: the emulated IDE disk (userdevices 0 to 3 of
  an HVM guest before its PV drivers take over), the Windows PV driver's
  registry key, and xen-blkfront's ``/sys/devices/vbd-<number>`` (the
  xvd and, for the first four userdevices, the emulated IDE numbering).
  See xen's docs/misc/vbd-interface.txt.

The userdevice of a disk is the one its device name maps to (``volumeops
.userdevice``), where the driver attaches it.
"""

from nova import exception
from nova import objects
from oslo_log import log as logging

from nova_sxm.virt import volumeops

LOG = logging.getLogger(__name__)
REGISTRY = ('HKLM\\SYSTEM\\ControlSet001\\Enum\\SCSI\\'
            'Disk&Ven_XENSRC&Prod_PVDISK\\')
VBD_PREFIX = '/sys/devices/vbd-'
# Emulated IDE disks of an HVM guest (two controllers, two disks each).
IDE_DISKS = 4
# xen-blkfront's xvd numbering: 16 disks with minor numbers, then extended.
XVD_DISKS = 16


def disk_metadata(serial, tag, device_name):
    """[DiskMetadata] of one tagged disk, one per name the guest sees."""
    tags = [tag]
    try:
        num = int(volumeops.userdevice(device_name))
    except exception.InvalidDevicePath:
        LOG.warning('Disk %s tagged %r has no device name the driver can '
                    'place (%r): listed without a bus', serial, tag,
                    device_name)
        return [objects.DiskMetadata(serial=serial, tags=tags)]
    xen_pv = objects.XenDeviceBus(address='00%02d00' % num)
    if num < XVD_DISKS:
        xvd = 202 << 8 | num << 4
    else:
        xvd = 1 << 28 | num << 8
    xen_xvd = objects.XenDeviceBus(address=str(xvd))
    out = [objects.DiskMetadata(serial=serial, tags=tags, bus=xen_pv,
                                path=REGISTRY + xen_pv.address),
           objects.DiskMetadata(serial=serial, tags=tags, bus=xen_xvd,
                                path=VBD_PREFIX + xen_xvd.address)]
    if num < IDE_DISKS:
        # hda/hdb are major 3, hdc/hdd major 22; 64 minors per disk.
        hd = 3 << 8 | num << 6 if num < 2 else 22 << 8 | (num - 2) << 6
        xen_hd = objects.XenDeviceBus(address=str(hd))
        ide = objects.IDEDeviceBus(address='%d:%d' % (num // 2, num % 2))
        out = ([objects.DiskMetadata(serial=serial, tags=tags, bus=ide,
                                     path=device_name)] + out +
               [objects.DiskMetadata(serial=serial, tags=tags, bus=xen_hd,
                                     path=VBD_PREFIX + xen_hd.address)])
    return out


def devices(context, instance, gone_volume=None, gone_port=None):
    """The tagged devices of ``instance`` as Nova's records have them.

    ``gone_volume`` (a volume id) and ``gone_port`` (a port id) are left
    out: a detach asks while their records still exist.
    """
    out = []
    vifs = objects.VirtualInterfaceList.get_by_instance_uuid(
        context, instance.uuid)
    for vif in vifs:
        if 'tag' in vif and vif.tag and vif.uuid != gone_port:
            out.append(objects.NetworkInterfaceMetadata(
                mac=vif.address, bus=objects.PCIDeviceBus(),
                tags=[vif.tag]))
    bdms = objects.BlockDeviceMappingList.get_by_instance_uuid(
        context, instance.uuid)
    for bdm in bdms:
        if not ('tag' in bdm and bdm.tag):
            continue
        if gone_volume is not None and bdm.volume_id == gone_volume:
            continue
        out.extend(disk_metadata(bdm.volume_id, bdm.tag, bdm.device_name))
    return out


def refresh(context, instance, save=True, gone_volume=None,
            gone_port=None):
    """Set ``instance.device_metadata`` from Nova's records (and save).

    An instance that never had tagged devices keeps None; one that had,
    or loses a volume, gets an empty list (Nova's own clean-up after the
    detach of a tagged volume reads ``device_metadata.devices``).
    """
    found = devices(context, instance, gone_volume, gone_port)
    if found or gone_volume or instance.device_metadata is not None:
        instance.device_metadata = objects.InstanceDeviceMetadata(
            devices=found)
    if save:
        instance.save()
