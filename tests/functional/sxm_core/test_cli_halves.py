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

"""``sxm migrate`` as a real process: nothing to move, one token, cleanup.

The simulator runs in the test; the CLI in a child process talks to it
over HTTP. The test watches the simulator's database for the tasks and
sessions the CLI creates.
"""

from sxm_core import cli
from tests.functional.sxm_core import base
from tests.functional.sxm_core import cliproc
from tests.functional.sxm_core import test_cli_output

run = test_cli_output.run


class CliTestCase(base.CoreTestCase):

    def setUp(self):
        super().setUp()
        self.vm, self.vdis = self.make_vm(name='web')
        self.uuid = self.api.VM.get_uuid(self.vm)
        self.env = cliproc.environment(self.simfix.password)

    def spy_records(self, pool):
        """[(class, ref, record)] of every record the pool creates."""
        db = self.sim.pools[pool].db
        created = []
        original = db.add

        def add(cls, record, ref=None):
            ref = original(cls, record, ref)
            created.append((cls, ref, dict(record)))
            return ref
        db.add = add
        self.addCleanup(delattr, db, 'add')
        return created


class TestNothingToMigrate(CliTestCase):

    def test_every_disk_in_place_runs_no_migrate_send(self):
        made = self.spy_records('pool-a')
        status, out, err = run(['migrate', 'web', '--url',
                                self.url('pool-a'), '--sr-map',
                                '0=%s' % base.LVM, '--sr-map',
                                '1=%s' % base.EXT], self.env)
        self.assertEqual(cli.EXIT_OK, status, err)
        self.assertIn('Nothing to move:', out)
        self.assertEqual('Nothing to migrate.', out.splitlines()[-1])
        self.assertEqual([], [r for c, _, r in made if c == 'task'
                              and 'migrate' in r.get('name_label', '')])
        # Not even a migrate_receive token: one login of the CLI only.
        self.assertEqual(1, len([r for c, _, r in made
                                 if c == 'session']))
        self.assertEqual(self.vdis, {
            self.api.VBD.get_userdevice(v): self.api.VBD.get_VDI(v)
            for v in self.api.VM.get_VBDs(self.vm)})
        self.assertEqual('Running', self.api.VM.get_power_state(self.vm))

    def test_json(self):
        status, out, err = run(['migrate', 'web', '--json', '--url',
                                self.url('pool-a'), '--sr-map',
                                '0=%s' % base.LVM, '--sr-map',
                                '1=%s' % base.EXT], self.env)
        self.assertEqual(cli.EXIT_OK, status, err)
        doc = test_cli_output.json.loads(out)
        self.assertTrue(doc['nothing_to_move'])
        self.assertIsNone(doc['result'])


class TestOneToken(CliTestCase):

    def test_migrate_asks_for_one_migrate_receive(self):
        pool_b = self.sim.pools['pool-b']
        made = self.spy_records('pool-b')
        status, out, err = run(['migrate', 'web', '--url',
                                self.url('pool-a'), '--dest-url',
                                self.url('pool-b'), '--tier', 'same'],
                               self.env)
        self.assertEqual(cli.EXIT_OK, status, err)
        # migrate_receive's sessions have a parent; logins do not. Before,
        # the check and the migration asked for one each.
        tokens = [ref for c, ref, r in made if c == 'session'
                  and r.get('parent', base.NULL) != base.NULL]
        self.assertEqual(1, len(tokens), made)
        self.assertEqual(set(), set(tokens)
                         & set(pool_b.db.all_refs('session')))
        new_vm = self.vm_in(self.uuid, self.api_b)
        self.assertEqual('Running', self.api_b.VM.get_power_state(new_vm))
