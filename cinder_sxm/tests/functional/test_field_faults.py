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

"""Live retype through Cinder's API while XAPI does what the field does:
a toolstack restart mid-copy, a pool master that moved, SR.scan failing
(SM error 40) during the move, xenopsd's Vms_failed_to_cooperate at the
end of VDI.pool_migrate, a connection reset once the task had ended.

Each ends with the volume in exactly one place Cinder knows: a status
that is not transient, the type, host pool and provider_location of the
SR its one VDI is on, the guest's VBD on that VDI, no copy left on the
other SR, and every byte the guest wrote on it.
"""

import logging

import fixtures
import XenAPI

from cinder_sxm.tests.functional import base
from tests.functional import simhelpers

MiB = base.MiB


class FieldFaultBase(base.SxmCinderTestCase):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(
            name='cinder_sxm', level=logging.INFO))

    def settled(self, volume_id):
        """The volume once no longer retyping."""
        vol = self._poll_volume_while(volume_id, ['retyping'],
                                      max_retries=240)
        self.assertIsNotNone(vol)
        return vol

    def managed_on(self, tier):
        """A client's VDIs on a tier (SM's base copies are xapi's)."""
        return {v for v in self.vdis_on(tier)
                if self.xapi.VDI.get_managed(v)}

    def fresh_session(self):
        """The test's own session and control, at the master of now."""
        self.session = self.login('pool-a')
        self.xapi = self.session.xenapi
        self.ctl = self.control('pool-a')

    def assertStayed(self, vol, old, vm, gold_before):
        """Still silver, on its own VDI, which the guest still writes."""
        self.assertEqual('in-use', vol['status'])
        self.assertEqual('silver', vol['volume_type'])
        self.assertEqual('%s#silver' % base.HOST,
                         self.admin_volume(vol['id']).host)
        self.assertEqual((old, 'silver'), self.vdi_of(vol['id']))
        self.assertEqual(old, self.vbd_vdi(vm))
        self.assertEqual(gold_before, self.vdis_on('gold'),
                         'a copy was left on gold')
        self.assertEqual('Running', self.xapi.VM.get_power_state(vm))
        self.check_guest(vm)

    def assertMoved(self, vol, old, vm):
        """Gold now, on one new VDI, which the guest writes."""
        self.assertEqual('in-use', vol['status'])
        self.assertEqual('gold', vol['volume_type'])
        self.assertEqual('%s#gold' % base.HOST,
                         self.admin_volume(vol['id']).host)
        new, sr = self.vdi_of(vol['id'])
        self.assertEqual('gold', sr)
        self.assertNotEqual(old, new)
        self.assertEqual(new, self.vbd_vdi(vm))
        self.assertNotIn(old, self.xapi.VDI.get_all())
        self.assertEqual({new}, self.managed_on('gold'))
        self.check_guest(vm)


class TestToolstackRestart(FieldFaultBase):

    def test_restart_mid_copy(self):
        vol, old, vm = self.attached('silver')
        gold_before = self.vdis_on('gold')
        self.ctl.configure(bandwidth=2 * MiB)
        self.start_retype(vol['id'], 'gold')
        self.poll(lambda: self.vdis_on('gold') - gold_before, timeout=60,
                  what='the copy to gold')
        self.ctl.toolstack_restart(down=0.5)
        vol = self.settled(vol['id'])
        self.fresh_session()
        self.ctl.configure(bandwidth=0)
        self.assertStayed(vol, old, vm, gold_before)
        self.assertIn('retype of volume %s' % vol['id'], self.log.output)
        # The driver's task went with the toolstack; none is left.
        self.assertEqual([], self.xapi.task.get_all())


class TestToolstackRestartAtTheEnd(FieldFaultBase):
    """A restart after the point of no return.

    The VDI moved, and the task that says so is lost: Cinder must name
    the new VDI.
    """

    def test_volume_follows_its_vdi(self):
        vol, old, vm = self.attached('silver')
        self.ctl.fault_inject('finalize', action='toolstack_restart')
        self.start_retype(vol['id'], 'gold')
        vol = self.settled(vol['id'])
        self.fresh_session()
        self.assertMoved(vol, old, vm)


class TestMasterMoves(FieldFaultBase):

    def setUp(self):
        self.useFixture(fixtures.MonkeyPatch(
            'cinder_sxm.tests.functional.base.TOPOLOGY',
            simhelpers.two_host_topology('pool-a',
                                         topology=base.TOPOLOGY)))
        super().setUp()

    def test_retype_after_the_master_moved(self):
        vol, old, vm = self.attached('silver')
        (host2,) = self.xapi.host.get_by_name_label('pool-a-host2')
        self.ctl.designate_new_master(host2)
        self.fresh_session()
        self.assertEqual(host2, self.xapi.pool.get_master(
            self.xapi.pool.get_all()[0]))
        self.start_retype(vol['id'], 'gold')
        vol = self.settled(vol['id'])
        self.assertMoved(vol, old, vm)


class TestScanFails(FieldFaultBase):

    def test_scan_of_another_client_during_the_move(self):
        vol, old, vm = self.attached('silver')
        self.ctl.configure(bandwidth=2 * MiB)
        self.start_retype(vol['id'], 'gold')
        self.poll(lambda: self.vdis_on('gold'), timeout=60,
                  what='the copy to gold')
        # Another client (an operator's xe sr-scan, Xen Orchestra) scans
        # the SRs the volume moves between; SM fails the scans.
        self.ctl.fault_inject('sr_scan', times=2)
        for tier in ('gold', 'silver'):
            (sr,) = self.xapi.SR.get_by_name_label(tier)
            exc = self.assertRaises(XenAPI.Failure, self.xapi.SR.scan, sr)
            self.assertEqual(['SR_BACKEND_FAILURE_40', '',
                              'The SR scan failed ', ''], exc.details)
        self.ctl.configure(bandwidth=0)
        vol = self.settled(vol['id'])
        self.assertMoved(vol, old, vm)


class TestFailedToCooperate(FieldFaultBase):

    def test_the_move_is_undone(self):
        vol, old, vm = self.attached('silver')
        gold_before = self.vdis_on('gold')
        self.ctl.fault_inject('cooperate')
        self.start_retype(vol['id'], 'gold')
        vol = self.settled(vol['id'])
        self.assertEqual([], self.ctl.call('faults'))
        self.assertStayed(vol, old, vm, gold_before)
        self.assertIn('retype of volume %s' % vol['id'], self.log.output)
        self.assertIn('Vms_failed_to_cooperate', self.log.output)
        self.assertEqual([], self.xapi.task.get_all())


class TestConnectionReset(FieldFaultBase):

    def test_the_move_completes(self):
        vol, old, vm = self.attached('silver')
        # Twice: Python's XML-RPC client sends a call again once.
        self.ctl.fault_inject('connection_reset', times=2)
        self.start_retype(vol['id'], 'gold')
        vol = self.settled(vol['id'])
        self.assertEqual([], self.ctl.call('faults'),
                         'no connection was reset')
        self.assertMoved(vol, old, vm)
        self.assertEqual([], self.xapi.task.get_all())
