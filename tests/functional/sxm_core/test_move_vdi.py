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

"""VdiMover.move: what it returns, its lock, halted VMs' volumes.

XAPI refuses VDI.pool_migrate unless the VDI is plugged into a running VM,
so the core copies the disk, recreates the VM's VBD on the copy and
destroys the original: the VM must find its volume where it was, with the
same bytes, and start. Two moves of one volume wait for each other
(``volumes.volume_lock``): the second finds the volume moved, and no copy
is left over.
"""

import hashlib
import threading

import fixtures
import XenAPI

from sxm_core import errors
from sxm_core import slots
from sxm_core import volumes
from tests.functional.sxm_core import base

MiB = base.MiB
EXT = base.EXT
LVM = base.LVM


class TestMoveVdiOfAHaltedVm(base.CoreTestCase):

    def test_the_vbd_follows_the_copy(self):
        vm, vdis = self.make_vm(
            disks=(('0', 'system', EXT, 8 * MiB, MiB),), start=False,
            vif=False)
        volume = self.create_vdi(self.sr_named(EXT), 16 * MiB, 'volume')
        self.fill(volume, 4 * MiB, seed='volume')
        self.create_vbd(vm, volume, '1', bootable=False, mode='RO',
                        other_config={'osvol': 'true'})
        old_vbd = self.vbd_at(vm, '1')
        old_rec = self.api.VBD.get_record(old_vbd)
        old_uuid = self.api.VDI.get_uuid(volume)
        image = self.sha256(volume)
        before = self.vdi_set()

        m = self.mover()
        result = m.move(old_uuid, LVM)

        new_uuid = result.vdi_uuid
        self.assertEqual((True, False, ()),
                         (result.moved, result.live, result.leftovers))
        self.assertNotEqual(old_uuid, new_uuid)
        new = self.api.VDI.get_by_uuid(new_uuid)
        self.assertEqual(self.sr_named(LVM), self.api.VDI.get_SR(new))
        self.assertEqual(str(16 * MiB), self.api.VDI.get_virtual_size(new))
        # The old VDI is gone, and nothing else appeared or went.
        exc = self.assertRaises(XenAPI.Failure, self.api.VDI.get_record,
                                volume)
        self.assertEqual(['HANDLE_INVALID', 'VDI', volume], exc.details)
        self.assertEqual(before - {volume} | {new}, self.vdi_set())
        # One VBD at userdevice 1, on the copy, as it was.
        at_1 = [v for v in self.api.VM.get_VBDs(vm)
                if self.api.VBD.get_userdevice(v) == '1']
        self.assertEqual(1, len(at_1), at_1)
        rec = self.api.VBD.get_record(at_1[0])
        self.assertEqual(new, rec['VDI'])
        self.assertEqual([at_1[0]], self.api.VDI.get_VBDs(new))
        for field in ('other_config', 'mode', 'bootable', 'type',
                      'unpluggable', 'empty'):
            self.assertEqual(old_rec[field], rec[field], field)
        self.assertEqual({'osvol': 'true'}, rec['other_config'])
        self.assertEqual('RO', rec['mode'])
        # The system disk did not move.
        system = self.vbd_at(vm, '0')
        self.assertEqual(vdis['0'], self.api.VBD.get_VDI(system))
        self.assertEqual(image, self.sha256(new))

        self.api.VM.start(vm, False, False)
        self.assertEqual('Running', self.api.VM.get_power_state(vm))
        self.assertTrue(self.api.VBD.get_currently_attached(at_1[0]))

    def vbd_at(self, vm, userdevice):
        (vbd,) = [v for v in self.api.VM.get_VBDs(vm)
                  if self.api.VBD.get_userdevice(v) == userdevice]
        return vbd

    def sha256(self, vdi):
        return hashlib.sha256(self.export_vdi(vdi)).hexdigest()


class TestMoveVdiFailures(base.CoreTestCase):
    """Whatever fails, the halted VM keeps exactly one intact volume."""

    def setUp(self):
        super().setUp()
        self.vm, _ = self.make_vm(
            disks=(('0', 'system', EXT, 8 * MiB, MiB),), start=False,
            vif=False)
        self.volume = self.create_vdi(self.sr_named(EXT), 16 * MiB,
                                      'volume')
        self.fill(self.volume, 2 * MiB, seed='volume')
        self.digest = hashlib.sha256(self.export_vdi(self.volume)).digest()
        self.create_vbd(self.vm, self.volume, '1',
                        other_config={'osvol': 'true'})
        self.faults = {}
        pool = self.pool('pool-a',
                         session_factory=base.flaky_factory(self.faults))
        self.mover = volumes.VdiMover(
            pool, slots=slots.HostSlots(poll=0.01))

    def volume_of_vm(self):
        vbds = [v for v in self.api.VM.get_VBDs(self.vm)
                if self.api.VBD.get_userdevice(v) == '1']
        self.assertEqual(1, len(vbds))
        self.assertEqual({'osvol': 'true'},
                         self.api.VBD.get_other_config(vbds[0]))
        vdi = self.api.VBD.get_VDI(vbds[0])
        self.assertEqual(self.digest,
                         hashlib.sha256(self.export_vdi(vdi)).digest())
        return vdi

    def move(self):
        return self.mover.move(self.api.VDI.get_uuid(self.volume), LVM)

    def test_the_original_cannot_be_removed(self):
        self.faults['VDI.destroy'] = [
            XenAPI.Failure(['INTERNAL_ERROR', 'backend busy'])]
        log = self.useFixture(fixtures.FakeLogger(name='sxm_core.volumes'))
        result = self.move()
        vdi = self.volume_of_vm()
        self.assertEqual(result.vdi_uuid, self.api.VDI.get_uuid(vdi))
        self.assertTrue(result.moved)
        self.assertEqual(self.sr_uuid(LVM), result.sr_uuid)
        # Reported, with the reason, for the operator.
        old_uuid = self.api.VDI.get_uuid(self.volume)
        self.assertEqual((old_uuid,), result.leftovers)
        self.assertIn('original VDI %s could not be removed' % old_uuid,
                      log.output)
        self.assertIn('backend busy', log.output)
        self.assertEqual(self.sr_named(LVM), self.api.VDI.get_SR(vdi))
        # The original is left for the operator, unattached.
        self.assertIn(self.volume, self.api.VDI.get_all())
        self.assertEqual([], self.api.VDI.get_VBDs(self.volume))

    def test_the_reply_to_the_removal_is_lost(self):
        # XAPI did destroy the original; only the answer never came back.
        self.faults['VDI.destroy'] = []

        real = base.FlakySession.xenapi_request

        def request(session, method, params):
            value = real(session, method, params)
            if method == 'VDI.destroy' and not self.faults.get('lost'):
                self.faults['lost'] = True
                raise ConnectionResetError('reply lost')
            return value
        self.useFixture(fixtures.MockPatchObject(
            base.FlakySession, 'xenapi_request', request))
        result = self.move()
        self.assertEqual((True, ()), (result.moved, result.leftovers))
        vdi = self.volume_of_vm()
        self.assertEqual(self.sr_named(LVM), self.api.VDI.get_SR(vdi))
        self.assertNotIn(self.volume, self.api.VDI.get_all())

    def test_the_vbd_cannot_be_recreated(self):
        self.faults['VBD.create'] = [
            XenAPI.Failure(['INTERNAL_ERROR', 'database busy'])]
        self.assertRaises(errors.XapiFailure, self.move)
        vdi = self.volume_of_vm()
        self.assertEqual(self.volume, vdi)
        # The copy is gone again: one volume, where it was.
        names = [self.api.VDI.get_name_label(v)
                 for v in self.api.VDI.get_all()]
        self.assertEqual(1, names.count('volume'))


class CallLog(dict):
    """A FlakySession ``faults`` that scripts nothing and logs each call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def get(self, method, default=None):
        self.calls.append(method)
        return super().get(method, default)


class TestMoveVdiResult(base.CoreTestCase):
    """What a move returns is what Cinder stores: check it against XAPI."""

    def setUp(self):
        super().setUp()
        self.calls = CallLog()
        pool = self.pool('pool-a',
                         session_factory=base.flaky_factory(self.calls))
        self.mover = volumes.VdiMover(
            pool, slots=slots.HostSlots(poll=0.01))

    def assertFound(self, result):
        vdi = self.api.VDI.get_by_uuid(result.vdi_uuid)
        self.assertEqual(result.sr_uuid,
                         self.api.SR.get_uuid(self.api.VDI.get_SR(vdi)))
        return vdi

    def test_live(self):
        vm, vdis = self.make_vm(disks=(('0', 'volume', EXT, 16 * MiB,
                                        4 * MiB),), vif=False)
        self.write(vm, devices=('0',))
        self.wait_writes(vm)
        old_uuid = self.api.VDI.get_uuid(vdis['0'])
        before = self.vdi_set()

        result = self.mover.move(old_uuid, self.sr_named(LVM))

        self.assertEqual(volumes.VdiMove(
            result.vdi_uuid, self.sr_uuid(LVM), moved=True, live=True,
            leftovers=()), result)
        self.assertNotEqual(old_uuid, result.vdi_uuid)
        new = self.assertFound(result)
        self.assertEqual(before - {vdis['0']} | {new}, self.vdi_set())
        self.wait_writes(vm)
        self.stop_and_check(vm, devices=('0',))

    def test_detached(self):
        vdi = self.create_vdi(self.sr_named(EXT), 16 * MiB, 'volume')
        self.fill(vdi, 4 * MiB, seed='volume')
        image = self.export_vdi(vdi)
        result = self.mover.move(self.api.VDI.get_uuid(vdi),
                                 self.sr_uuid(LVM))
        self.assertEqual((self.sr_uuid(LVM), True, False, ()),
                         (result.sr_uuid, result.moved, result.live,
                          result.leftovers))
        self.assertEqual(image, self.export_vdi(self.assertFound(result)))
        self.assertNotIn(vdi, self.vdi_set())

    def test_already_there(self):
        vdi = self.create_vdi(self.sr_named(EXT), 16 * MiB, 'volume')
        vdi_uuid = self.api.VDI.get_uuid(vdi)
        for sr in (EXT, self.sr_uuid(EXT), self.sr_named(EXT)):
            self.assertEqual(
                volumes.VdiMove(vdi_uuid, self.sr_uuid(EXT), moved=False),
                self.mover.move(vdi_uuid, sr), sr)

    def test_the_sr_is_looked_up_not_the_pool_read(self):
        vdi = self.create_vdi(self.sr_named(EXT), 16 * MiB, 'volume')
        for sr in (LVM, self.sr_uuid(EXT), self.sr_named(LVM)):
            del self.calls.calls[:]
            result = self.mover.move(
                self.api.VDI.get_uuid(vdi), sr)
            vdi = self.assertFound(result)
            whole = [c for c in self.calls.calls if 'get_all' in c]
            self.assertEqual([], whole, sr)

    def test_unknown_sr_ref(self):
        vdi = self.create_vdi(self.sr_named(EXT), 16 * MiB, 'volume')
        exc = self.assertRaises(errors.NotFound, self.mover.move,
                                self.api.VDI.get_uuid(vdi),
                                'OpaqueRef:no-such-sr')
        self.assertIn("No SR 'OpaqueRef:no-such-sr'", str(exc))
        self.assertEqual(self.sr_named(EXT), self.api.VDI.get_SR(vdi))


class TestOneMoveAtATime(base.CoreTestCase):
    """Two moves of one volume: the second waits, then finds it moved."""

    def setUp(self):
        super().setUp()
        self.volume = self.create_vdi(self.sr_named(EXT), 64 * MiB,
                                      'volume')
        self.fill(self.volume, 32 * MiB, seed='race')
        self.digest = hashlib.sha256(self.export_vdi(self.volume)).digest()
        self.uuid = self.api.VDI.get_uuid(self.volume)
        self.before = self.vdi_set()

    def mover(self, lock_path=None):
        return volumes.VdiMover(
            self.pool('pool-a'),
            slots=slots.HostSlots(poll=0.01, lock_path=lock_path))

    def race(self, movers, key):
        """Run one move per VdiMover of ``movers`` at once."""
        outcomes = [None] * len(movers)
        go = threading.Barrier(len(movers))

        def run(i, m):
            go.wait()
            try:
                outcomes[i] = m.move(self.uuid, LVM, lock_key=key)
            except errors.SxmError as exc:
                outcomes[i] = exc
        threads = [threading.Thread(target=run, args=(i, m))
                   for i, m in enumerate(movers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(base.DEADLINE)
            self.assertFalse(t.is_alive())
        return outcomes

    def assertOneMoved(self, outcomes):
        moves = [o for o in outcomes
                 if isinstance(o, volumes.VdiMove)]
        refused = [o for o in outcomes if isinstance(o, errors.NotFound)]
        self.assertEqual((1, len(outcomes) - 1), (len(moves), len(refused)),
                         outcomes)
        for exc in refused:
            self.assertIn('No VDI %s' % self.uuid, str(exc))
            self.assertIn('moved or removed meanwhile', str(exc))
        new = self.api.VDI.get_by_uuid(moves[0].vdi_uuid)
        self.assertEqual(self.sr_named(LVM), self.api.VDI.get_SR(new))
        self.assertEqual(self.digest,
                         hashlib.sha256(self.export_vdi(new)).digest())
        # One volume: no second copy, no original left.
        self.assertEqual(self.before - {self.volume} | {new},
                         self.vdi_set())

    def test_in_one_process(self):
        m = self.mover()
        self.assertOneMoved(self.race([m, m], key=self.uuid))

    def test_across_migrators_with_a_lock_path(self):
        path = self.useFixture(fixtures.TempDir()).path
        self.assertOneMoved(self.race(
            [self.mover(path), self.mover(path)], key='volume-1'))

    def test_a_move_holds_the_volume_lock(self):
        # What a VM start (or a snapshot) of the volume takes to see the
        # volume where it is.
        started, go = threading.Event(), threading.Event()

        def progress(_):
            started.set()
            go.wait(base.DEADLINE)
        m = self.mover()
        outcome = []
        mover = threading.Thread(target=lambda: outcome.append(m.move(
            self.uuid, LVM, progress=progress, lock_key='volume-1')))
        mover.start()
        self.addCleanup(mover.join, base.DEADLINE)
        self.addCleanup(go.set)
        self.assertTrue(started.wait(base.DEADLINE))
        exc = self.assertRaises(
            volumes.VolumeBusy, self._enter,
            volumes.volume_lock('volume-1', blocking=False,
                                what='start VM web'))
        self.assertIn('Cannot start VM web: volume volume-1 is busy',
                      str(exc))
        go.set()
        mover.join(base.DEADLINE)
        self.assertTrue(outcome[0].moved)
        self._enter(volumes.volume_lock('volume-1', blocking=False))

    def test_a_holder_of_the_lock_keeps_moves_out(self):
        m = self.mover()
        with volumes.volume_lock('volume-1'):
            self.assertEqual(self.volume, self.api.VDI.get_by_uuid(
                self.uuid))
            self.assertRaises(volumes.VolumeBusy, self._enter,
                              volumes.volume_lock('volume-1',
                                                  blocking=False))
        # The caller that holds it moves without taking it again.
        with volumes.volume_lock('volume-1'):
            result = m.move(self.uuid, LVM, lock_key='volume-1',
                            lock=False)
        self.assertTrue(result.moved)

    @staticmethod
    def _enter(cm):
        with cm:
            pass
