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

"""redact: registered secrets, session ids in URLs and passwords masked."""

import logging

import fixtures
import testtools

from sxm_core import redact

SESSION = 'OpaqueRef:0e5c3b9a-6c4e-4d0b-9f57-1f2d3c4b5a69'


class RedactTestCase(testtools.TestCase):

    def secret(self, value):
        redact.register(value)
        self.addCleanup(redact.forget, value)
        return value


class TestScrub(RedactTestCase):

    def test_registered_secrets(self):
        self.secret(SESSION)
        self.secret('hunter2-pw')
        text = redact.scrub('session %s of root/hunter2-pw (%s)'
                            % (SESSION, SESSION))
        self.assertEqual('session *** of root/*** (***)', text)

    def test_longest_secret_first(self):
        self.secret('abcd')
        self.secret('abcdefgh')
        self.assertEqual('x *** y', redact.scrub('x abcdefgh y'))

    def test_forget(self):
        self.secret('temporary-token')
        redact.forget('temporary-token')
        self.assertEqual('temporary-token',
                         redact.scrub('temporary-token'))

    def test_short_and_empty_values_are_not_secrets(self):
        self.secret('')
        self.secret(None)
        self.secret('abc')
        self.assertEqual('abc is fine', redact.scrub('abc is fine'))

    def test_session_id_in_urls(self):
        url = ('http://10.0.0.2:80/services/SM?session_id=%s&vdi=OpaqueRef:'
               'v1' % SESSION)
        self.assertEqual('http://10.0.0.2:80/services/SM?session_id=***'
                         '&vdi=OpaqueRef:v1', redact.scrub(url))
        self.assertEqual("{'xenops': 'http://h/x?session_id=***'}",
                         redact.scrub("{'xenops': 'http://h/x?session_id=%s'}"
                                      % SESSION))

    def test_password_values(self):
        for text, expected in (
                ('password=hunter2 user=root', 'password=*** user=root'),
                ('connection_password = s3cr3t', 'connection_password = ***'),
                ("{'password': 'hunter2', 'user': 'root'}",
                 "{'password': '***', 'user': 'root'}"),
                ('{"passwd": "x-y-z"}', '{"passwd": "***"}'),
                ('Password: hunter2', 'Password: ***'),
                ('pwd=abc,def', 'pwd=***,def')):
            self.assertEqual(expected, redact.scrub(text))

    def test_password_values_in_key_value_syntax(self):
        for text, expected in (
                ('password: hunter2', 'password: ***'),
                ('password: hunter2\nuser: root',
                 'password: ***\nuser: root'),
                ('password: hunter2 user: root', 'password: *** user: root'),
                ('{password: hunter2, user: root}',
                 '{password: ***, user: root}'),
                ("password: 'two words'", "password: '***'"),
                ('"password": 12345678', '"password": ***'),
                ('SXM_PASSWORD=hunter2', 'SXM_PASSWORD=***'),
                ('http://h/?user=root&password=hunter2&x=1',
                 'http://h/?user=root&password=***&x=1'),
                ('connection_password=a;b', 'connection_password=***;b')):
            self.assertEqual(expected, redact.scrub(text), text)

    def test_prose_about_passwords_is_kept(self):
        for text in (
                'No password: set SXM_PASSWORD or connection_password in '
                'the --config-file.',
                'Wrong password: try again later.',
                'password: set it in the config file',
                'The connection_password option holds the password.',
                'passwords: none given'):
            self.assertEqual(text, redact.scrub(text))

    def test_non_strings(self):
        self.secret(SESSION)
        self.assertEqual("['***', 3]", redact.scrub([SESSION, 3]))

    def test_scrub_value_keeps_the_shape(self):
        self.secret(SESSION)
        value = {'session_id': SESSION,
                 'urls': ['http://h/?session_id=abc', ('x', SESSION)],
                 'n': 5}
        self.assertEqual({'session_id': '***',
                          'urls': ['http://h/?session_id=***', ('x', '***')],
                          'n': 5}, redact.scrub_value(value))


class TestLogger(RedactTestCase):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(
            level=logging.DEBUG, format='%(levelname)s %(message)s'))

    def test_arguments_and_messages_are_scrubbed(self):
        self.secret(SESSION)
        LOG = redact.get_logger('sxm_core.tests.redact')
        LOG.debug('logged in with %s', SESSION)
        LOG.info('dest %(d)s', {'d': {'session_id': SESSION}})
        LOG.warning('url http://h/?session_id=raw-token-1 password=pw1234')
        out = self.log.output
        self.assertNotIn(SESSION, out)
        self.assertNotIn('raw-token-1', out)
        self.assertNotIn('pw1234', out)
        self.assertIn('DEBUG logged in with ***', out)

    def test_tracebacks_are_scrubbed(self):
        self.secret(SESSION)
        LOG = redact.get_logger('sxm_core.tests.redact')
        try:
            raise RuntimeError('bad session %s' % SESSION)
        except RuntimeError:
            LOG.exception('call failed')
        self.assertIn('RuntimeError: bad session ***', self.log.output)
        self.assertNotIn(SESSION, self.log.output)

    def test_a_bad_format_string_is_still_logged(self):
        self.secret(SESSION)
        LOG = redact.get_logger('sxm_core.tests.redact')
        LOG.info('broken %d ' + SESSION, 'not a number')
        self.assertIn('broken %d ***', self.log.output)
