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

"""errors: typed XAPI failures, their wording, and the ErrorCollector."""

import uuid

import testtools
import XenAPI

from sxm_core import errors
from sxm_core import plan as planmod
from sxm_core import redact
from tests.unit import sourcewalk

VDI = 'OpaqueRef:3f0c0c0e-0000-4000-8000-000000000001'
VDI_UUID = '9a1f6c1e-5b0e-4f43-a1a5-3c1f9d7a2b11'
VM = 'OpaqueRef:3f0c0c0e-0000-4000-8000-000000000002'


def describe(kind, ref):
    """What migrate.describer gives: names for the refs it knows."""
    return {VDI: "disk 1 'data' (%s)" % VDI_UUID,
            VM: "VM 'web' (4c1e4f0a-0000-4000-8000-000000000009)"}.get(ref)


class TestFromDetails(testtools.TestCase):

    def test_subclasses_for_the_codes_callers_branch_on(self):
        for code, cls in (
                ('SESSION_INVALID', errors.SessionInvalid),
                ('HANDLE_INVALID', errors.HandleInvalid),
                ('HOST_IS_SLAVE', errors.HostIsSlave),
                ('EVENTS_LOST', errors.EventsLost),
                ('TASK_CANCELLED', errors.TaskCancelled),
                ('SESSION_AUTHENTICATION_FAILED',
                 errors.AuthenticationFailed),
                ('TOO_MANY_STORAGE_MIGRATES',
                 errors.TooManyStorageMigrates)):
            exc = errors.XapiFailure.from_details([code, 'x'])
            self.assertIs(cls, type(exc), code)
            self.assertIsInstance(exc, errors.XapiFailure)
            self.assertIsInstance(exc, errors.SxmError)
            self.assertEqual(code, exc.code)
        exc = errors.XapiFailure.from_details(['MIRROR_FAILED', VDI])
        self.assertIs(errors.XapiFailure, type(exc))

    def test_from_failure_reads_the_details(self):
        failure = XenAPI.Failure(['VDI_IN_USE', VDI, 'destroy'])
        exc = errors.XapiFailure.from_failure(failure, call='VDI.destroy')
        self.assertEqual('VDI_IN_USE', exc.code)
        self.assertEqual([VDI, 'destroy'], exc.params)
        self.assertEqual('VDI.destroy', exc.call)

    def test_params_are_strings(self):
        exc = errors.XapiFailure.from_details(
            ['TOO_MANY_STORAGE_MIGRATES', 3])
        self.assertEqual(['3'], exc.params)
        self.assertEqual('3', exc.param('number'))

    def test_param_by_datamodel_name(self):
        exc = errors.XapiFailure.from_details(
            ['VM_BAD_POWER_STATE', VM, 'running', 'halted'])
        self.assertEqual(VM, exc.param('vm'))
        self.assertEqual('running', exc.param('expected'))
        self.assertEqual('halted', exc.param('actual'))
        self.assertRaises(KeyError, exc.param, 'sr')
        short = errors.XapiFailure.from_details(['VM_BAD_POWER_STATE', VM])
        self.assertIsNone(short.param('actual'))
        unknown = errors.XapiFailure.from_details(['SOMETHING_NEW', 'a'])
        self.assertRaises(KeyError, unknown.param, 'a')

    def test_host_is_slave_names_the_master(self):
        exc = errors.XapiFailure.from_details(['HOST_IS_SLAVE',
                                               '192.0.2.10'])
        self.assertEqual('192.0.2.10', exc.param('master'))

    def test_no_details(self):
        for details in (None, []):
            exc = errors.XapiFailure.from_details(details)
            self.assertEqual('INTERNAL_ERROR', exc.code)
        exc = errors.XapiFailure.from_failure(ValueError('no details'))
        self.assertEqual('INTERNAL_ERROR', exc.code)

    def test_wording_names_objects_by_name_and_uuid(self):
        exc = errors.XapiFailure.from_details(
            ['MIRROR_FAILED', VDI], call='VM.migrate_send',
            describe=describe)
        self.assertEqual("Mirroring disk 1 'data' (%s) to the destination "
                         'failed. (in VM.migrate_send)' % VDI_UUID, str(exc))
        # The raw parameters stay as xapi sent them.
        self.assertEqual([VDI], exc.params)
        exc = errors.XapiFailure.from_details(
            ['VM_BAD_POWER_STATE', VM, 'running', 'halted'],
            describe=describe)
        self.assertEqual("VM 'web' (4c1e4f0a-0000-4000-8000-000000000009) "
                         'is halted; the operation needs running.', str(exc))

    def test_wording_without_a_name_keeps_the_ref(self):
        exc = errors.XapiFailure.from_details(
            ['VDI_CBT_ENABLED', 'OpaqueRef:unknown'], describe=describe)
        self.assertIn('OpaqueRef:unknown has changed block tracking',
                      str(exc))
        exc = errors.XapiFailure.from_details(['VDI_NOT_IN_MAP', VDI])
        self.assertIn(VDI, str(exc))

    def test_describe_is_only_asked_about_objects(self):
        asked = []

        def spy(kind, value):
            asked.append(kind)
            return 'described'
        exc = errors.XapiFailure.from_details(
            ['VM_BAD_POWER_STATE', VM, 'running', 'halted'], describe=spy)
        self.assertEqual(['vm'], asked)
        self.assertIn('halted', str(exc))

    def test_unknown_code_says_code_and_params(self):
        exc = errors.XapiFailure.from_details(
            ['VDI_COPY_FAILED', 'Storage_error'], call='VM.migrate_send')
        self.assertIn('VDI_COPY_FAILED', str(exc))
        self.assertIn('Storage_error', str(exc))
        self.assertIn('VM.migrate_send', str(exc))

    def test_authentication_failure_is_worded_without_the_password(self):
        redact.register('Pa55-word!')
        self.addCleanup(redact.forget, 'Pa55-word!')
        exc = errors.XapiFailure.from_details(
            ['SESSION_AUTHENTICATION_FAILED', 'root',
             'Authentication failure for Pa55-word!'])
        self.assertIsInstance(exc, errors.AuthenticationFailed)
        self.assertIn('refused the credentials of user root', str(exc))
        self.assertNotIn('Pa55-word!', str(exc))

    def test_wording_of_well_known_codes(self):
        for details, text in (
                (['SR_BACKEND_FAILURE_44', '', 'no space', ''],
                 'destination SR is full'),
                (['TOO_MANY_STORAGE_MIGRATES', '3'], 'already runs 3'),
                (['VIF_NOT_IN_MAP', 'OpaqueRef:v'], 'has no destination'),
                (['SR_DOES_NOT_SUPPORT_MIGRATION', 'OpaqueRef:s'],
                 'VDI_MIRROR'),
                (['INTERFACE_HAS_NO_IP', 'OpaqueRef:p'], 'no IP address'),
                (['TASK_CANCELLED', 'OpaqueRef:t'], 'was cancelled')):
            self.assertIn(text, str(errors.XapiFailure.from_details(
                details)), details[0])


class TestSxmErrors(testtools.TestCase):

    def test_templates_take_keyword_arguments(self):
        exc = errors.NotFound(kind='SR', name='gold', pool='pool-b')
        self.assertEqual("No SR 'gold' in pool pool-b.", str(exc))
        self.assertEqual({'kind': 'SR', 'name': 'gold', 'pool': 'pool-b'},
                         exc.kwargs)
        exc = errors.TaskTimeout(what='migration', seconds=30)
        self.assertIn('within 30 s', str(exc))

    def test_a_template_missing_an_argument_still_gives_a_message(self):
        exc = errors.NotFound(kind='SR')
        self.assertEqual(errors.NotFound.message, str(exc))

    def test_messages_are_scrubbed(self):
        redact.register('OpaqueRef:secret-session')
        self.addCleanup(redact.forget, 'OpaqueRef:secret-session')
        exc = errors.SxmError('session OpaqueRef:secret-session expired')
        self.assertNotIn('secret-session', str(exc))
        exc = errors.ConnectionFailed(
            url='http://h/?session_id=OpaqueRef:abc', reason='refused')
        self.assertNotIn('OpaqueRef:abc', str(exc))

    def test_preflight_failed_lists_every_problem(self):
        exc = errors.PreflightFailed([planmod.Problem('a', 'first'),
                                      planmod.Problem('b', 'second')])
        self.assertEqual(2, len(exc.problems))
        self.assertEqual('The migration cannot start:\n  - first\n'
                         '  - second', str(exc))

    def test_migration_failed_says_what_is_left(self):
        class State(object):
            def describe(self):
                return 'source VM Running'
        cause = errors.XapiFailure.from_details(['MIRROR_FAILED', VDI],
                                                describe=describe)
        exc = errors.MigrationFailed(cause, State())
        self.assertIs(cause, exc.cause)
        self.assertIn("disk 1 'data'", str(exc))
        self.assertIn('source VM Running', str(exc))
        self.assertEqual(str(cause), str(errors.MigrationFailed(cause)))


class TestMaskedParams(testtools.TestCase):
    """Params are masked when the failure is made, not when it is shown."""

    def token(self):
        token = 'OpaqueRef:receive-%s' % uuid.uuid4()
        redact.register(token)
        self.addCleanup(redact.forget, token)
        return token

    def assertHidden(self, secret, exc):
        for text in ([str(exc), repr(exc), str(exc.args), str(exc.params)]
                     + exc.params):
            self.assertNotIn(secret, text)

    def test_a_secret_in_params_stays_masked_after_forget(self):
        token = self.token()
        url = 'http://10.0.0.2/services/SM?session_id=%s' % token
        exc = errors.XapiFailure.from_details(
            ['VM_MIGRATE_FAILED', VM, 'source', url,
             'session %s refused' % token], call='VM.migrate_send')
        other = errors.XapiFailure.from_details(['SOME_NEW_ERROR', token])
        self.assertEqual('session *** refused', exc.param('msg'))
        self.assertEqual(['***'], other.params)
        # The migrate_receive session is logged out: its token forgotten.
        redact.forget(token)
        self.assertEqual(token, redact.scrub(token))
        for failure in (exc, other):
            self.assertHidden(token, failure)
        # Made again from the params (as a described copy is), and wrapped.
        again = errors.XapiFailure.from_details(
            [exc.code] + exc.params, describe=describe)
        self.assertHidden(token, again)
        self.assertNotIn(token, str(errors.MigrationFailed(again)))

    def test_params_without_secrets_are_kept(self):
        self.token()
        exc = errors.XapiFailure.from_details(['VDI_IN_USE', VDI, 'destroy'])
        self.assertEqual([VDI, 'destroy'], exc.params)


class TestErrorCollector(testtools.TestCase):

    def test_every_step_runs_and_failures_are_raised_together(self):
        errs = errors.ErrorCollector()
        ran = []
        with errs.context('destroying VDI %s', 'one'):
            ran.append(1)
            raise errors.SxmError('busy')
        with errs.context('forgetting SR'):
            ran.append(2)
        with errs.context('destroying VDI %s', 'two'):
            ran.append(3)
            raise ValueError('gone')
        self.assertEqual([1, 2, 3], ran)
        self.assertTrue(errs)
        self.assertEqual(['destroying VDI one', 'destroying VDI two'],
                         [what for what, _ in errs.errors])
        exc = self.assertRaises(errors.SxmError, errs.raise_if_any)
        self.assertEqual('Cleanup failed: destroying VDI one: busy; '
                         'destroying VDI two: gone', str(exc))

    def test_nothing_failed(self):
        errs = errors.ErrorCollector()
        with errs.context('step'):
            pass
        self.assertFalse(errs)
        errs.raise_if_any()

    def test_interrupts_are_not_swallowed(self):
        errs = errors.ErrorCollector()

        def interrupted():
            with errs.context('step'):
                raise KeyboardInterrupt()
        self.assertRaises(KeyboardInterrupt, interrupted)
        self.assertFalse(errs)

    def test_a_percent_sign_without_args_is_kept(self):
        errs = errors.ErrorCollector()
        with errs.context('copy at 100%'):
            raise ValueError('x')
        self.assertEqual('copy at 100%', errs.errors[0][0])


class TestNoBareSxmError(testtools.TestCase):
    """Callers branch on types: the core never raises a bare SxmError."""

    def test_no_call_constructs_a_bare_sxm_error(self):
        import sxm_core
        found = ['%s:%d' % (path, node.lineno) for path, node in
                 sourcewalk.calls_to(sxm_core, 'SxmError')]
        self.assertEqual([], found)
