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

"""Pools built for scale: local SRs per host, VMs in bulk, event.from.

What ``Simulator.add_vms`` builds in the simulator's process must look,
to a XenAPI client over HTTP, like VMs a client built and started; a
local SR of the topology belongs to its host only.
"""

import copy

import XenAPI

from tests.functional.xapi_sim import base
from xapi_sim import errors
from xapi_sim import sim as simmod

MiB = base.MiB


def _topology():
    topo = copy.deepcopy(simmod.DEFAULT_TOPOLOGY)
    spec = topo['pools'][0]
    spec['hosts'] = [{'name': 'pool-a-host%d' % i} for i in (1, 2, 3)]
    spec['srs'] = [{'name': 'shared', 'type': 'nfs', 'size': '1TiB',
                    'shared': True, 'default': True}] + [
        {'name': 'Local storage', 'type': 'ext', 'size': '64GiB',
         'host': 'pool-a-host%d' % i} for i in (1, 2, 3)]
    return topo


class BulkTest(base.SimulatorTestCase):

    topology = _topology()

    def hosts(self):
        return {rec['name_label']: ref
                for ref, rec in self.api.host.get_all_records().items()}

    def local_srs(self):
        """{host name: its local SR ref}."""
        names = {ref: rec['name_label']
                 for ref, rec in self.api.host.get_all_records().items()}
        found = {}
        for sr in self.api.SR.get_by_name_label('Local storage'):
            pbds = self.api.SR.get_PBDs(sr)
            self.assertEqual(1, len(pbds))
            found[names[self.api.PBD.get_host(pbds[0])]] = sr
        return found

    def test_a_local_sr_is_its_hosts_only(self):
        local = self.local_srs()
        self.assertEqual(['pool-a-host1', 'pool-a-host2', 'pool-a-host3'],
                         sorted(local))
        shared = self.sr_named('shared')
        self.assertEqual(3, len(self.api.SR.get_PBDs(shared)))
        self.assertFalse(self.api.SR.get_shared(local['pool-a-host2']))

    def test_an_unknown_host_of_a_local_sr_is_named(self):
        topo = _topology()
        topo['pools'][0]['srs'].append({'name': 'x', 'type': 'ext',
                                        'size': '1GiB', 'host': 'nohost'})
        exc = self.assertRaises(ValueError, simmod.Simulator, topo)
        self.assertIn('no host nohost in pool pool-a', str(exc))

    def test_bulk_vms_run_on_their_hosts_as_xapi_shows_them(self):
        hosts, local = self.hosts(), self.local_srs()
        shared = self.sr_named('shared')
        free_before = self.api.host.compute_free_memory(
            hosts['pool-a-host2'])
        specs = [{'name': 'bulk%d' % i,
                  'host': hosts['pool-a-host%d' % (i % 3 + 1)],
                  'memory': 512 * MiB,
                  'other_config': {'owner': 'bench-%d' % i},
                  'disks': [(64 * MiB, local['pool-a-host%d' % (i % 3 + 1)]),
                            (32 * MiB, shared)]}
                 for i in range(6)]
        refs = self.sim.add_vms('pool-a', specs)
        self.assertEqual(6, len(refs))
        records = self.api.VM.get_all_records()
        for i, ref in enumerate(refs):
            rec = records[ref]
            host = 'pool-a-host%d' % (i % 3 + 1)
            self.assertEqual('bulk%d' % i, rec['name_label'])
            self.assertEqual('Running', rec['power_state'])
            self.assertEqual(hosts[host], rec['resident_on'])
            self.assertIn(ref, self.api.host.get_resident_VMs(hosts[host]))
            self.assertEqual({'owner': 'bench-%d' % i}, rec['other_config'])
            vbds = sorted((self.api.VBD.get_record(v) for v in rec['VBDs']),
                          key=lambda v: v['userdevice'])
            self.assertEqual(['0', '1'], [v['userdevice'] for v in vbds])
            self.assertTrue(all(v['currently_attached'] for v in vbds))
            self.assertEqual(
                [(str(64 * MiB), local[host]), (str(32 * MiB), shared)],
                [(self.api.VDI.get_virtual_size(v['VDI']),
                  self.api.VDI.get_SR(v['VDI'])) for v in vbds])
            vifs = rec['VIFs']
            self.assertEqual(1, len(vifs))
            self.assertEqual(self.network(),
                             self.api.VIF.get_network(vifs[0]))
            self.assertTrue(self.api.VIF.get_currently_attached(vifs[0]))
        # Two VMs of 512 MiB (and their overhead) now run on host2.
        used = int(free_before) - int(self.api.host.compute_free_memory(
            hosts['pool-a-host2']))
        self.assertGreaterEqual(used, 2 * 512 * MiB)
        # Nothing runs their guests unless asked.
        uuid = records[refs[0]]['uuid']
        self.assertNotIn(uuid, self.sim.domains)
        # The simulator's own session is gone: the test's is the only one.
        self.assertEqual([self.session.handle],
                         self.sim['pool-a'].db.all_refs('session'))

    def test_bulk_vms_can_run_their_guests(self):
        hosts, local = self.hosts(), self.local_srs()
        ref, = self.sim.add_vms('pool-a', [{
            'name': 'with-guest', 'host': hosts['pool-a-host1'],
            'disks': [(16 * MiB, local['pool-a-host1'])]}], guests=True)
        uuid = self.api.VM.get_uuid(ref)
        ctl = self.control()
        ctl.workload_start(uuid, '0', pattern='uniform', rate=MiB,
                           block_size=4096, seed=3)
        self.poll(lambda: ctl.guest_stats(uuid)['disks'][0]['writes'] > 5,
                  what='the guest wrote')
        ctl.workload_stop(uuid)
        report = ctl.guest_check(uuid)
        self.assertEqual(['0'], [r['userdevice'] for r in report])
        self.assertTrue(report[0]['ok'], report)

    def test_a_full_local_sr_fails_the_bulk_build_with_xapis_error(self):
        hosts, local = self.hosts(), self.local_srs()
        lvm = self.sim['pool-a'].add_sr(
            'thick', 'lvm', 64 * MiB, host=hosts['pool-a-host1'])
        vdis = set(self.api.VDI.get_all())
        exc = self.assertRaises(
            errors.XapiError, self.sim.add_vms, 'pool-a', [
                {'name': 'fits', 'host': hosts['pool-a-host1'],
                 'disks': [(16 * MiB, local['pool-a-host1'])]},
                {'name': 'too-big', 'host': hosts['pool-a-host1'],
                 'disks': [(16 * MiB, local['pool-a-host1']),
                           (128 * MiB, lvm)]}])
        self.assertEqual('SR_BACKEND_FAILURE_44', exc.code)
        # The VM that failed is gone with its first disk; the one before
        # it stays.
        self.assertEqual([], self.api.VM.get_by_name_label('too-big'))
        fits, = self.api.VM.get_by_name_label('fits')
        self.assertEqual('Running', self.api.VM.get_power_state(fits))
        self.assertEqual(1, len(set(self.api.VDI.get_all()) - vdis))

    def test_event_from_without_classes_only_gives_a_token(self):
        hosts, local = self.hosts(), self.local_srs()
        self.sim.add_vms('pool-a', [{
            'name': 'vm%d' % i, 'host': hosts['pool-a-host1'],
            'disks': [(16 * MiB, local['pool-a-host1'])]}
            for i in range(3)])
        got = base.event_from(self.api, [], '', 0)
        self.assertEqual([], got['events'])
        self.assertTrue(got['token'])
        got = base.event_from(self.api, ['VM'], '', 0)
        self.assertEqual({'vm'}, {e['class'].lower() for e in got['events']})
        self.assertEqual(set(self.api.VM.get_all()),
                         {e['ref'] for e in got['events']})
        # A token taken with no classes is current: nothing happened since.
        token = base.event_from(self.api, [], '', 0)['token']
        self.assertEqual([], base.event_from(self.api, ['vm'], token,
                                             0)['events'])

    def test_records_where_by_reference_as_a_full_scan_finds_them(self):
        # The relation sets narrow the search; the answer is the same.
        hosts, local = self.hosts(), self.local_srs()
        a, b, c = self.sim.add_vms('pool-a', [{
            'name': 'vm%d' % i, 'host': hosts['pool-a-host1'],
            'disks': [(16 * MiB, local['pool-a-host1'])] * (i + 1)}
            for i in range(3)])
        vbds = self.api.VBD.get_all_records()

        def where(expr):
            return self.api.VBD.get_all_records_where(expr)

        def of(*vms):
            return {r: rec for r, rec in vbds.items() if rec['VM'] in vms}
        self.assertEqual(of(b), where('field "VM" = "%s"' % b))
        self.assertEqual(of(a, c), where(
            'field "VM" = "%s" or "%s" = field "VM"' % (a, c)))
        self.assertEqual(
            {r: rec for r, rec in of(c).items() if rec['userdevice'] == '1'},
            where('field "VM" = "%s" and field "userdevice" = "1"' % c))
        self.assertEqual({}, where('field "VM" = "%s" and field "VM" = "%s"'
                                   % (a, b)))
        self.assertEqual({}, where('field "VM" = "OpaqueRef:NULL"'))
        self.assertEqual({}, where('field "VM" = "OpaqueRef:nothing"'))
        self.assertEqual(of(a, b, c), where(
            'not field "VM" = "%s" or field "VM" = "%s"' % (a, a)))
        # A field VBDs lack fails as it does when every VBD is tested,
        # even when the VM named has no VBD.
        vm = self.create_vm('bare')
        exc = self.assertRaises(
            XenAPI.Failure, where,
            'field "bogus" = "x" and field "VM" = "%s"' % vm)
        self.assertEqual('INTERNAL_ERROR', exc.details[0])
        self.assertIn('bogus', exc.details[1])
