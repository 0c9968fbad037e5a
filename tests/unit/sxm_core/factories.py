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

"""Hand-made facts (``sxm_core.facts`` dataclasses) for the planner tests.

``World`` is two pools like the simulator's default topology: pool ``a``
(the source) and pool ``b``, one host each, a thin ext SR (the default) and
a thick lvm SR per pool, and one network with an IP on each host. Tests
change what they need with ``dataclasses.replace`` or the helpers here.
"""

import dataclasses

from sxm_core import constants
from sxm_core import facts

MiB = 1 << 20
GiB = 1 << 30
NULL = constants.OPAQUE_NULL

# What the SM of a storage-migration-capable SR type advertises.
SM_FEATURES = frozenset(['SR_PROBE', 'VDI_CREATE', 'VDI_DELETE',
                         'VDI_SNAPSHOT', 'VDI_CLONE', 'VDI_MIRROR',
                         'VDI_MIRROR_IN', 'VDI_RESIZE'])


def host(tag, name=None):
    return facts.Host(ref='OpaqueRef:host-%s' % tag,
                      uuid='00000000-0000-0000-0000-host%s' % tag,
                      name=name or 'host-%s' % tag,
                      address='10.0.0.%d' % (len(tag) + 1))


def network(tag, name, bridge, pifs=()):
    return facts.Network(ref='OpaqueRef:net-%s' % tag,
                         uuid='00000000-0000-0000-0000-net%s' % tag,
                         name=name, bridge=bridge, pifs=tuple(pifs))


def sr(tag, name, sr_type='ext', size=64 * GiB, used=0, hosts=(),
       shared=False, features=SM_FEATURES, content_type='user'):
    return facts.SR(ref='OpaqueRef:sr-%s' % tag,
                    uuid='00000000-0000-0000-0000-sr%s' % tag, name=name,
                    type=sr_type, shared=shared, content_type=content_type,
                    physical_size=size, physical_utilisation=used,
                    virtual_allocation=used, features=frozenset(features),
                    hosts=frozenset(hosts))


def disk(tag, userdevice, sr_, size=16 * MiB, used=None, name=None,
         mode='RW', cbt=False, snapshot_of=NULL, parents=0):
    return facts.Disk(vbd='OpaqueRef:vbd-%s' % tag,
                      vdi='OpaqueRef:vdi-%s' % tag,
                      uuid='00000000-0000-0000-0000-vdi%s' % tag,
                      name=name or 'disk-%s' % tag, userdevice=userdevice,
                      mode=mode, virtual_size=size,
                      physical_utilisation=size if used is None else used,
                      sr=sr_.ref, cbt_enabled=cbt, snapshot_of=snapshot_of,
                      parents_utilisation=parents)


def vif(tag, net, device='0', mac=None, other_config=()):
    return facts.Vif(ref='OpaqueRef:vif-%s' % tag, device=device,
                     mac=mac or '02:00:00:00:00:%02x' % len(tag),
                     network=net.ref, other_config=tuple(other_config))


def vm(disks=(), vifs=(), power_state=constants.RUNNING, resident_on=NULL,
       cd_drives=(), snapshots=(), snapshot_disks=(), name='web'):
    return facts.VM(ref='OpaqueRef:vm-%s' % name,
                    uuid='00000000-0000-0000-0000-vm%s' % name, name=name,
                    power_state=power_state, resident_on=resident_on,
                    disks=tuple(disks), vifs=tuple(vifs),
                    cd_drives=tuple(cd_drives), snapshots=tuple(snapshots),
                    snapshot_disks=tuple(snapshot_disks))


def pool(tag, hosts, srs, networks, default_sr=None):
    return facts.Pool(url='https://pool-%s.example.org/' % tag,
                      uuid='00000000-0000-0000-0000-pool%s' % tag,
                      name='pool-%s' % tag, master=hosts[0].ref,
                      default_sr=(default_sr.ref if default_sr is not None
                                  else NULL),
                      hosts=tuple(hosts), srs=tuple(srs),
                      networks=tuple(networks))


class World(object):
    """Pools ``a`` and ``b`` and a running VM on pool a with two disks.

    ``vm`` has disk 0 'system' (32 MiB, 8 MiB used) on a's lvm SR and
    disk 1 'data' (16 MiB, 4 MiB used) on a's ext SR, and one VIF on a's
    network.
    """

    def __init__(self):
        self.host_a = host('a', 'pool-a-host1')
        self.host_b = host('b', 'pool-b-host1')
        self.net_a = network('a', 'Pool-wide network', 'xenbr0',
                             [(self.host_a.ref, '10.0.0.1', 'Static')])
        self.net_b = network('b', 'Pool-wide network', 'xenbr0',
                             [(self.host_b.ref, '10.0.1.1', 'Static')])
        self.ext_a = sr('exta', 'Local storage (ext)', 'ext',
                        hosts=[self.host_a.ref])
        self.lvm_a = sr('lvma', 'Local storage (lvm)', 'lvm',
                        hosts=[self.host_a.ref])
        self.ext_b = sr('extb', 'Local storage (ext)', 'ext',
                        hosts=[self.host_b.ref])
        self.lvm_b = sr('lvmb', 'Local storage (lvm)', 'lvm',
                        hosts=[self.host_b.ref])
        self.system = disk('system', '0', self.lvm_a, 32 * MiB, 32 * MiB,
                           name='system')
        self.data = disk('data', '1', self.ext_a, 16 * MiB, 4 * MiB,
                         name='data')
        self.vif = vif('eth0', self.net_a, other_config=[
            ('neutron-port-id', 'port-1')])
        self.vm = vm([self.system, self.data], [self.vif],
                     resident_on=self.host_a.ref)

    @property
    def a(self):
        return pool('a', [self.host_a], [self.ext_a, self.lvm_a],
                    [self.net_a], self.ext_a)

    @property
    def b(self):
        return pool('b', [self.host_b], [self.ext_b, self.lvm_b],
                    [self.net_b], self.ext_b)

    def with_srs(self, pool_, *srs):
        """``pool_`` with these SRs added (or replacing same-ref ones)."""
        refs = {s.ref for s in srs}
        kept = tuple(s for s in pool_.srs if s.ref not in refs)
        return dataclasses.replace(pool_, srs=kept + tuple(srs))

    def with_networks(self, pool_, *networks):
        return dataclasses.replace(pool_, networks=tuple(networks))
