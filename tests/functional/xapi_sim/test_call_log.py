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

"""The simulator's call log: what the call budgets are measured with."""

import XenAPI

from tests.functional import simhelpers


class TestCallLog(simhelpers.SimTestCase):

    def test_calls_are_counted_by_method_and_originator(self):
        ctl = self.control()
        ctl.calls(reset=True)
        other = XenAPI.Session(self.url())
        other.login_with_password(self.simfix.username,
                                  self.simfix.password, '2.21',
                                  'budget-test')
        other.xenapi.VM.get_all()
        other.xenapi.VM.get_all()
        self.api.host.get_all()
        try:
            other.xenapi.VM.get_record('OpaqueRef:nonexistent')
        except XenAPI.Failure:
            pass  # failures are calls too
        log = ctl.calls()
        self.assertEqual(1, log['logins'])
        self.assertEqual(2, log['by_method']['VM.get_all'])
        self.assertEqual(1, log['by_method']['VM.get_record'])
        self.assertEqual(4, log['by_originator']['budget-test'])
        self.assertEqual(5, log['calls'])
        self.assertGreater(log['bytes'], 0)
        # This test's own session and the other one are open.
        self.assertEqual(2, log['sessions_open'])
        other.xenapi.session.logout()
        again = ctl.calls(reset=True)
        self.assertEqual(1, again['sessions_open'])
        self.assertEqual(1, again['by_method']['session.logout'])
        self.assertEqual(0, ctl.calls()['calls'])

    def test_no_session_ref_is_kept(self):
        self.api.VM.get_all()
        for method, originator, _size in self.sim.pools[
                'pool-a'].call_log.entries():
            self.assertNotIn(self.session.handle, originator)
            self.assertNotIn('OpaqueRef', originator)
