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

"""Task hygiene: tagged at creation, destroyed at the end, reaped later.

A service names itself on its pool (``tasks.set_owner``); ``call_async``
tags each task it creates with ``other_config['sxm_owner']`` and destroys
it whether the operation succeeded or failed; ``tasks.reap`` destroys the
ended tasks of that owner only (a process killed mid-wait leaves them).
"""

from sxm_core import errors
from sxm_core import tasks
from tests.functional.sxm_core import base

MiB = base.MiB
HOST = '2b4c7f0e-0000-4000-8000-000000000001'


class TestTaskHygiene(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        self.core = self.pool()
        self.vdi = self.create_vdi(self.sr_named(base.EXT), MiB, 'disk')
        self.tag = tasks.owner_tag('nova-sxm', HOST)

    def tasks_now(self):
        return self.api.task.get_all_records()

    def test_call_async_destroys_its_task_on_success_and_failure(self):
        tasks.set_owner(self.core, 'nova-sxm', HOST)
        before = set(self.tasks_now())
        snap = tasks.call_async(self.core, 'VDI.snapshot', (self.vdi, {}),
                                'snapshot of disk')
        self.assertEqual('disk', self.api.VDI.get_name_label(snap))
        self.assertRaises(errors.XapiFailure, tasks.call_async, self.core,
                          'VDI.resize', (self.vdi, str(MiB // 2)),
                          'shrink of disk')
        self.assertEqual(before, set(self.tasks_now()))

    def test_tasks_are_tagged_with_their_owner_only_when_named(self):
        untagged = tasks.start(self.core, 'VDI.snapshot', self.vdi, {})
        self.assertNotIn(tasks.OWNER_KEY,
                         self.api.task.get_other_config(untagged))
        tasks.set_owner(self.core, 'nova-sxm', HOST)
        self.assertEqual(self.tag, tasks.owner_of(self.core))
        tagged = tasks.start(self.core, 'VDI.snapshot', self.vdi, {})
        self.assertEqual({tasks.OWNER_KEY: self.tag},
                         self.api.task.get_other_config(tagged))
        # Tagging twice (a retried tag) is harmless.
        tasks.tag(self.core, tagged)
        self.assertEqual({tasks.OWNER_KEY: self.tag},
                         self.api.task.get_other_config(tagged))

    def test_reap_destroys_only_the_owners_ended_tasks(self):
        tasks.set_owner(self.core, 'nova-sxm', HOST)
        done = tasks.start(self.core, 'VDI.snapshot', self.vdi, {})
        failed = tasks.start(self.core, 'VDI.resize', self.vdi,
                             str(MiB // 2))
        running = self.api.task.create('long', 'runs on')
        self.api.task.add_to_other_config(running, tasks.OWNER_KEY,
                                          self.tag)
        foreign = self.api.Async.VDI.snapshot(self.vdi, {})
        neighbour = self.api.Async.VDI.snapshot(self.vdi, {})
        self.api.task.add_to_other_config(
            neighbour, tasks.OWNER_KEY,
            tasks.owner_tag('nova-sxm', 'another-host'))
        for task in (done, failed, foreign, neighbour):
            self.poll(lambda: self.api.task.get_status(task) != 'pending',
                      what='task to end')
        self.assertEqual('failure', self.api.task.get_status(failed))
        reaped = tasks.reap(self.pool(), 'nova-sxm', HOST)
        self.assertEqual(2, len(reaped), reaped)
        left = set(self.tasks_now())
        self.assertEqual(set(), {done, failed} & left)
        self.assertEqual({running, foreign, neighbour},
                         {running, foreign, neighbour} & left)
