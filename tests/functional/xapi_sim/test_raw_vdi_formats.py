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

"""/import_raw_vdi and /export_raw_vdi: format=raw|vhd and task_id."""

import random
import urllib.error
import urllib.parse
import urllib.request

from tests.functional import simhelpers
from tests.functional.xapi_sim import base
from xapi_sim import vhd

MiB = base.MiB


class TestFormats(base.SimulatorTestCase):

    def url_for(self, path, vdi, **extra):
        query = dict({'session_id': self.session.handle, 'vdi': vdi},
                     **extra)
        return '%s%s?%s' % (self.url(), path, urllib.parse.urlencode(query))

    def get(self, vdi, **extra):
        with urllib.request.urlopen(self.url_for('export_raw_vdi', vdi,
                                                 **extra),
                                    timeout=base.DEADLINE) as resp:
            return resp.read(), dict(resp.headers)

    def put(self, vdi, data, **extra):
        req = urllib.request.Request(
            self.url_for('import_raw_vdi', vdi, **extra), data=data,
            method='PUT')
        with urllib.request.urlopen(req, timeout=base.DEADLINE) as resp:
            return resp.status, dict(resp.headers)

    def written_vdi(self, size=6 * MiB):
        vdi = self.create_vdi(self.sr('ext'), size)
        data = bytearray(size)
        rng = random.Random(4)
        # Data in the first and the third 2 MiB block only.
        data[0:4096] = rng.randbytes(4096)
        data[5 * MiB:5 * MiB + 65536] = rng.randbytes(65536)
        self.import_vdi(vdi, bytes(data))
        return vdi, bytes(data)

    def test_vhd_export_is_a_dynamic_vhd_of_the_data(self):
        vdi, data = self.written_vdi()
        image, _ = self.get(vdi, format='vhd')
        self.assertEqual(b'conectix', image[:8])
        self.assertEqual(b'conectix', image[-512:-504])
        self.assertEqual(b'cxsparse', image[512:520])
        # Two 2 MiB blocks hold data: the VHD is about that size.
        self.assertLess(len(image), 5 * MiB)
        self.assertGreater(len(image), 4 * MiB)
        target = self.create_vdi(self.sr('lvm'), 6 * MiB)
        self.assertEqual(200, self.put(target, image, format='vhd')[0])
        self.assertEqual(base.sha256(data),
                         base.sha256(self.export_vdi(target)))

    def test_fixed_vhd_import(self):
        data = random.Random(5).randbytes(2 * MiB)
        image = data + vhd.footer(len(data), disk_type=2,
                                  data_offset=0xFFFFFFFFFFFFFFFF)
        target = self.create_vdi(self.sr('ext'), 4 * MiB)
        self.assertEqual(200, self.put(target, image, format='vhd')[0])
        got = self.export_vdi(target)
        self.assertEqual(base.sha256(data + bytes(2 * MiB)),
                         base.sha256(got))

    def test_raw_is_the_default_and_explicit(self):
        vdi, data = self.written_vdi()
        self.assertEqual(data, self.get(vdi, format='raw')[0])
        self.assertEqual(data, self.get(vdi)[0])

    def test_task_id_is_completed(self):
        vdi, data = self.written_vdi()
        task = self.api.task.create('export', '')
        body, headers = self.get(vdi, task_id=task)
        self.assertEqual(data, body)
        self.assertEqual(task, headers.get('task-id'))
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'])
        task = self.api.task.create('import', '')
        status, headers = self.put(vdi, bytes(MiB), task_id=task)
        self.assertEqual((200, task), (status, headers.get('task-id')))
        self.assertEqual('success', self.wait_task(task)['status'])

    def test_bad_input_fails_the_task(self):
        vdi, data = self.written_vdi()
        task = self.api.task.create('export', '')
        exc = self.assertRaises(urllib.error.HTTPError, self.get, vdi,
                                format='qcow9', task_id=task)
        self.assertEqual(404, exc.code)
        rec = self.wait_task(task)
        self.assertEqual('failure', rec['status'])
        self.assertEqual(['INTERNAL_ERROR', 'Unknown format qcow9'],
                         rec['error_info'])
        # Import_raw_vdi answers 200 before it reads the image: what goes
        # wrong after that is in the task only.
        task = self.api.task.create('import', '')
        status, headers = self.put(vdi, b'not a vhd' * 100, format='vhd',
                                   task_id=task)
        self.assertEqual((200, 'close'), (status, headers['Connection']))
        rec = self.wait_task(task)
        self.assertEqual('failure', rec['status'])
        self.assertEqual(['VDI_IO_ERROR', 'Device I/O errors'],
                         rec['error_info'])
        # A VHD bigger than the VDI fails the task and nothing is written.
        big = self.create_vdi(self.sr('ext'), 8 * MiB)
        self.import_vdi(big, b'\x01' * (8 * MiB))
        image, _ = self.get(big, format='vhd')
        task = self.api.task.create('import', '')
        self.assertEqual(200, self.put(vdi, image, format='vhd',
                                       task_id=task)[0])
        self.assertEqual(['VDI_IO_ERROR', 'Device I/O errors'],
                         self.wait_task(task)['error_info'])
        self.assertEqual(data, self.export_vdi(vdi))
        # So is a raw image bigger than the VDI.
        task = self.api.task.create('import', '')
        self.put(vdi, b'\x02' * (6 * MiB + 1), task_id=task)
        self.assertEqual(['VDI_IO_ERROR', 'Device I/O errors'],
                         self.wait_task(task)['error_info'])
        self.assertEqual(data, self.export_vdi(vdi))
        self.assertStillServing()

    def test_import_into_read_only_vdi_fails_the_task(self):
        record = dict(simhelpers.vmbuild.vdi_record(self.sr('ext'), MiB),
                      read_only=True)
        vdi = self.api.VDI.create(record)
        task = self.api.task.create('import', '')
        self.assertEqual(200, self.put(vdi, b'\x03' * MiB, task_id=task)[0])
        rec = self.wait_task(task)
        self.assertEqual(['VDI_READONLY', vdi], rec['error_info'])
        self.assertEqual(bytes(MiB), self.export_vdi(vdi))

    def test_import_into_a_snapshot_fails_the_task(self):
        vdi, data = self.written_vdi()
        snap = self.api.VDI.snapshot(vdi)
        task = self.api.task.create('import', '')
        self.put(snap, b'\x04' * MiB, task_id=task)
        rec = self.wait_task(task)
        self.assertEqual('failure', rec['status'])
        self.assertEqual('VDI_READONLY', rec['error_info'][0])
        self.assertEqual(data, self.export_vdi(snap))

    def test_import_into_a_disk_a_running_vm_holds_rw(self):
        # dom0's VBD escapes the sharing check: xapi writes it anyway.
        vdi, _ = self.written_vdi()
        vm = self.create_vm()
        self.create_vbd(vm, vdi, '0')
        self.api.VM.start(vm, False, False)
        task = self.api.task.create('import', '')
        self.assertEqual(200, self.put(vdi, b'\x05' * MiB, task_id=task)[0])
        rec = self.wait_task(task)
        self.assertEqual('success', rec['status'])
        self.assertEqual('<value>%s</value>' % vdi, rec['result'])
        self.assertEqual(b'\x05' * MiB, self.export_vdi(vdi)[:MiB])
