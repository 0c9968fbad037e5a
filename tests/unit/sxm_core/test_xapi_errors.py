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

"""The one XAPI error table, shared by the core and the simulator.

Every error the simulator can put on the wire is walked out of its source
(``XapiError('CODE', ...)``) and must be in the table with an arity the
table accepts, so that the core can read its parameters by name.
"""

import ast
import subprocess
import sys

import testtools

from sxm_core import errors
from sxm_core import xapi_errors
from tests.unit import sourcewalk
import xapi_sim
from xapi_sim import errors as sim_errors


def simulator_raises():
    """{code: {parameter counts, or '*' for a starred call}} and misses.

    Misses are calls whose code is not a string literal.
    """
    found, misses = {}, []
    for path, node in sourcewalk.calls_to(xapi_sim, 'XapiError'):
        if not node.args:
            continue
        first = node.args[0]
        # 'A' if x else 'B' names two codes.
        options = ([first.body, first.orelse]
                   if isinstance(first, ast.IfExp) else [first])
        if not all(isinstance(o, ast.Constant)
                   and isinstance(o.value, str) for o in options):
            misses.append(path)
            continue
        rest = node.args[1:]
        count = ('*' if any(isinstance(a, ast.Starred) for a in rest)
                 else len(rest))
        for option in options:
            found.setdefault(option.value, set()).add(count)
    return found, misses


class TestOneTable(testtools.TestCase):

    def test_the_simulator_uses_the_core_table(self):
        self.assertIs(xapi_errors.PARAMS, sim_errors.ERROR_PARAMS)
        self.assertIs(xapi_errors.PARAMS, errors.ERROR_PARAMS)

    def test_every_code_the_simulator_raises_is_in_the_table(self):
        found, misses = simulator_raises()
        # Only fault injection picks its code at run time (the test's).
        self.assertEqual({'faults.py'}, set(misses))
        # The walk sees the simulator's raise sites (not an empty tree).
        self.assertIn('VDI_NOT_IN_MAP', found)
        self.assertGreater(len(found), 40)
        missing = sorted(set(found) - set(xapi_errors.PARAMS))
        self.assertEqual([], missing)

    def test_every_raise_has_an_arity_the_table_accepts(self):
        found, _ = simulator_raises()
        wrong = []
        for code, counts in sorted(found.items()):
            for count in counts:
                if count == '*':
                    # A list spread into parameters: any count must do.
                    ok = xapi_errors.ARITIES.get(code, ()) is None
                else:
                    ok = xapi_errors.accepts(code, count)
                if not ok:
                    wrong.append((code, count, xapi_errors.params(code)))
        self.assertEqual([], wrong)

    def test_names_are_identifiers(self):
        for code, names in xapi_errors.PARAMS.items():
            for name in names:
                self.assertTrue(name.isidentifier() and name == name.lower(),
                                '%s: %r' % (code, name))

    def test_the_former_disagreements_follow_the_datamodel(self):
        self.assertEqual(('master_ip_address',),
                         xapi_errors.PARAMS['HOST_IS_SLAVE'])
        self.assertEqual(('interface',),
                         xapi_errors.PARAMS['INTERFACE_HAS_NO_IP'])
        self.assertEqual(('pif',), xapi_errors.PARAMS[
            'PIF_HAS_NO_NETWORK_CONFIGURATION'])

    def test_wire_arity_where_xapi_sends_more_than_it_declares(self):
        self.assertEqual(('vm', 'operation'),
                         xapi_errors.PARAMS['VM_IS_TEMPLATE'])
        self.assertTrue(xapi_errors.accepts('OTHER_OPERATION_IN_PROGRESS', 4))
        self.assertTrue(xapi_errors.accepts('OTHER_OPERATION_IN_PROGRESS', 2))
        self.assertFalse(xapi_errors.accepts('OTHER_OPERATION_IN_PROGRESS',
                                             3))
        self.assertRaises(TypeError, sim_errors.XapiError,
                          'OTHER_OPERATION_IN_PROGRESS', 'VM', 'ref', 'x')
        self.assertRaises(TypeError, sim_errors.XapiError, 'VDI_NOT_IN_MAP')

    def test_unknown_codes_are_not_checked(self):
        self.assertTrue(xapi_errors.accepts('SOME_FUTURE_ERROR', 7))
        self.assertEqual((), xapi_errors.params('SOME_FUTURE_ERROR'))

    def test_importable_without_oslo_or_xenapi(self):
        code = ('import sys; import sxm_core.xapi_errors; '
                'bad = [m for m in sys.modules if m.startswith("oslo") '
                'or m == "XenAPI"]; print(bad); sys.exit(1 if bad else 0)')
        proc = subprocess.run([sys.executable, '-c', code],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)


class TestParamByName(testtools.TestCase):

    def test_datamodel_names_and_the_old_aliases(self):
        exc = errors.XapiFailure.from_details(['HOST_IS_SLAVE', '192.0.2.7'])
        self.assertEqual('192.0.2.7', exc.param('master_ip_address'))
        self.assertEqual('192.0.2.7', exc.param('master'))
        exc = errors.XapiFailure.from_details(['INTERFACE_HAS_NO_IP',
                                               'OpaqueRef:pif'])
        self.assertEqual('OpaqueRef:pif', exc.param('interface'))
        self.assertEqual('OpaqueRef:pif', exc.param('pif'))
        self.assertIn('OpaqueRef:pif has no IP address', str(exc))
        exc = errors.XapiFailure.from_details(['UUID_INVALID', 'VM', 'u-1'])
        self.assertEqual('VM', exc.param('type'))
        self.assertEqual('VM', exc.param('class'))
        self.assertRaises(KeyError, exc.param, 'vdi')

    def test_four_parameter_other_operation_in_progress(self):
        exc = errors.XapiFailure.from_details(
            ['OTHER_OPERATION_IN_PROGRESS', 'VM', 'OpaqueRef:v',
             'migrate_send', 'OpaqueRef:t'])
        self.assertEqual('OpaqueRef:t', exc.param('operation_ref'))
        old = errors.XapiFailure.from_details(
            ['OTHER_OPERATION_IN_PROGRESS', 'VM', 'OpaqueRef:v'])
        self.assertIsNone(old.param('operation_ref'))
