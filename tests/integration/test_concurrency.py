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

"""The cloud's authentication under concurrent requests, and its secrets.

Every call one service makes to another in this cloud, made many at once
with the credentials that service has in its configuration (a service
user's own token, or a user's token with the service's token beside it as
X-Service-Token, as Nova and Cinder send them), and every API with a
user's token: none is refused (401) or fails (5xx). The tokens are raw
headers, not a keystoneauth session that would fetch a new token and try
again on a 401: a refusal shows.

The field failure (Placement answering the conductor 401 "Token
authorization failed" on two simultaneous requests during ``nova
host-evacuate-live``): every ``cloud.sh up``, also on a running cloud (as
an operator restarts one dead service), set every service user's password
again; Keystone revokes all tokens of a user whose password is set, even
to the same value. The services' cached tokens were then refused; a
keystoneauth session asks for a new token and retries on the first 401,
but a second request refused while that new token is being fetched finds
nothing to invalidate and is not retried (keystoneauth1 Session.request):
its 401 reaches the caller. ``up`` now leaves a working password alone.
"""

import concurrent.futures
import os
import stat
import subprocess
import threading

from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session
import requests

from test_cloud import CLOUD
from test_cloud import CloudTestCase
from test_cloud import TOP

HOST = 'http://127.0.0.1'
PORTS = {'KEYSTONE_PORT': 5000, 'PLACEMENT_PORT': 8778, 'GLANCE_PORT': 9292,
         'NOVA_PORT': 8774, 'CINDER_PORT': 8776, 'NEUTRON_PORT': 9696}
KEYSTONE = '%s:%d/v3' % (HOST, PORTS['KEYSTONE_PORT'])
PLACEMENT = '%s:%d' % (HOST, PORTS['PLACEMENT_PORT'])
GLANCE = '%s:%d/v2' % (HOST, PORTS['GLANCE_PORT'])
NOVA = '%s:%d/v2.1' % (HOST, PORTS['NOVA_PORT'])
CINDER = '%s:%d/v3' % (HOST, PORTS['CINDER_PORT'])
NEUTRON = '%s:%d/v2.0' % (HOST, PORTS['NEUTRON_PORT'])
SERVICE_USERS = ('nova', 'placement', 'cinder', 'glance', 'neutron')
# Requests of one kind in flight at once, and rounds of them.
WIDTH = 6
ROUNDS = 2


def token(user, password, project):
    """(token id, project id) of a project-scoped password login."""
    resp = requests.post(KEYSTONE + '/auth/tokens', json={'auth': {
        'identity': {'methods': ['password'], 'password': {'user': {
            'name': user, 'domain': {'id': 'default'},
            'password': password}}},
        'scope': {'project': {'name': project,
                              'domain': {'id': 'default'}}}}}, timeout=60)
    resp.raise_for_status()
    return (resp.headers['X-Subject-Token'],
            resp.json()['token']['project']['id'])


class ConcurrencyTestCase(CloudTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tokens = {}
        cls.projects = {}
        for user, password, project in (
                [('admin', cls.secrets['ADMIN_PASSWORD'], 'admin'),
                 ('demo', cls.secrets['DEMO_PASSWORD'], 'demo')] +
                [(svc, cls.secrets['SERVICE_PASSWORD'], 'service')
                 for svc in SERVICE_USERS]):
            cls.tokens[user], cls.projects[user] = token(user, password,
                                                         project)

    def calls(self):
        """(what, method, url, user token, service token) of every pair.

        The credentials are those of the caller's configuration
        (tools/cloud/etc/*.conf): [placement] of nova.conf is the
        placement user; [cinder] and [glance] calls carry the user's
        token and the nova user's as service token; [neutron] of nova.conf
        is the neutron user; [nova] of cinder.conf and neutron.conf the
        cinder and neutron users.
        """
        t = self.tokens
        demo = self.projects['demo']
        rp = PLACEMENT + '/resource_providers'
        ac = PLACEMENT + '/allocation_candidates?resources=VCPU:1,MEMORY_MB:64'
        return [
            # nova-conductor / nova-scheduler / nova-compute -> placement
            ('nova -> placement (providers)', 'GET', rp, t['placement'],
             None),
            ('nova -> placement (candidates)', 'GET', ac, t['placement'],
             None),
            # nova -> cinder, glance: the user's token and nova's
            ('nova -> cinder (user + service token)', 'GET',
             '%s/%s/volumes/detail' % (CINDER, demo), t['demo'], t['nova']),
            ('nova -> glance (user + service token)', 'GET',
             GLANCE + '/images', t['demo'], t['nova']),
            ('nova -> neutron (service user)', 'GET', NEUTRON + '/ports',
             t['neutron'], None),
            ('nova -> neutron (user + service token)', 'GET',
             NEUTRON + '/ports', t['demo'], t['nova']),
            # cinder -> nova (external events, servers), glance
            ('cinder -> nova (service user)', 'GET',
             NOVA + '/servers/detail?all_tenants=1', t['cinder'], None),
            ('cinder -> nova (user + service token)', 'GET',
             NOVA + '/servers', t['demo'], t['cinder']),
            ('cinder -> glance (user + service token)', 'GET',
             GLANCE + '/images', t['demo'], t['cinder']),
            # neutron -> nova, glance -> keystone (its token checks)
            ('neutron -> nova (service user)', 'GET',
             NOVA + '/os-services', t['neutron'], None),
            ('glance (service user)', 'GET', GLANCE + '/images',
             t['glance'], None),
            # Users straight to every API.
            ('admin -> placement', 'GET', rp, t['admin'], None),
            ('admin -> nova', 'GET', NOVA + '/servers/detail', t['admin'],
             None),
            ('demo -> nova', 'GET', NOVA + '/servers', t['demo'], None),
            ('demo -> cinder', 'GET', '%s/%s/volumes' % (CINDER, demo),
             t['demo'], None),
            ('admin -> cinder', 'GET', '%s/%s/volumes/detail?all_tenants=1'
             % (CINDER, self.projects['admin']), t['admin'], None),
            ('demo -> glance', 'GET', GLANCE + '/images', t['demo'], None),
            ('demo -> neutron', 'GET', NEUTRON + '/networks', t['demo'],
             None),
            ('demo -> keystone', 'GET', KEYSTONE + '/auth/projects',
             t['demo'], None),
        ]

    def storm(self, calls, width=WIDTH, rounds=ROUNDS):
        """Every call ``width`` times at once, ``rounds`` times.

        Returns the failures: (what, status, body) of every 401 or 5xx.
        """
        jobs = [c for c in calls for _ in range(width)]
        barrier = threading.Barrier(len(jobs))
        failures = []

        def one(call):
            what, method, url, user_token, service_token = call
            headers = {'X-Auth-Token': user_token}
            if url.startswith(PLACEMENT):
                headers['OpenStack-API-Version'] = 'placement 1.36'
            if service_token:
                headers['X-Service-Token'] = service_token
            barrier.wait(timeout=120)
            for _ in range(rounds):
                resp = requests.request(method, url, headers=headers,
                                        timeout=180)
                if resp.status_code == 401 or resp.status_code >= 500:
                    failures.append((what, resp.status_code,
                                     resp.text[:200]))
                elif resp.status_code >= 400:
                    # A refusal by policy is a test bug, not a finding.
                    failures.append((what, resp.status_code,
                                     'unexpected: ' + resp.text[:200]))

        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            for future in [pool.submit(one, c) for c in jobs]:
                future.result()
        return failures

    def assertNoFailure(self, failures):
        self.assertEqual([], failures, '%d requests failed' % len(failures))


class ConcurrentAuthTest(ConcurrencyTestCase):

    def test_1_every_service_pair_at_once(self):
        self.assertNoFailure(self.storm(self.calls()))

    def test_2_fresh_tokens_at_once(self):
        """Each request with a token issued at that moment (all at once).

        Keystone issues and validates under load; the services validate
        tokens none of them has cached.
        """
        password = self.secrets['SERVICE_PASSWORD']
        barrier = threading.Barrier(len(SERVICE_USERS) * 2)
        failures = []
        target = {'nova': NOVA + '/servers', 'placement':
                  PLACEMENT + '/resource_providers',
                  'cinder': NOVA + '/servers', 'glance': GLANCE + '/images',
                  'neutron': NOVA + '/servers'}

        def one(user):
            barrier.wait(timeout=120)
            fresh, _ = token(user, password, 'service')
            resp = requests.get(target[user], timeout=180, headers={
                'X-Auth-Token': fresh})
            if resp.status_code >= 400:
                failures.append((user, resp.status_code, resp.text[:200]))

        users = SERVICE_USERS * 2
        with concurrent.futures.ThreadPoolExecutor(len(users)) as pool:
            for future in [pool.submit(one, u) for u in users]:
                future.result()
        self.assertNoFailure(failures)

    def test_3_bring_up_again_keeps_tokens_valid(self):
        """What ``cloud.sh up`` does to Keystone, on a running cloud.

        Only its Keystone step (tools/cloud/cloudctl.py keystone): a whole
        ``up`` would also start services other tests stopped on purpose.
        """
        # The services' own sessions: each caches its token and, on a 401,
        # fetches a new one and retries once.
        sessions = {}
        for user in SERVICE_USERS:
            sessions[user] = ks_session.Session(auth=v3.Password(
                auth_url=KEYSTONE, username=user,
                password=self.secrets['SERVICE_PASSWORD'],
                project_name='service', user_domain_name='Default',
                project_domain_name='Default'))
            sessions[user].get_token()
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=os.path.join(
            CLOUD, 'clouds.yaml'), **self.secrets)
        env.update({k: str(v) for k, v in PORTS.items()})
        venv = os.environ.get('VENV', os.path.join(TOP, '.venv'))
        subprocess.run([os.path.join(venv, 'bin', 'python'),
                        os.path.join(TOP, 'tools', 'cloud', 'cloudctl.py'),
                        'keystone'], env=env, check=True,
                       capture_output=True, timeout=300)
        admin = self.tokens['admin']
        for user, held in sorted(self.tokens.items()):
            resp = requests.get(KEYSTONE + '/auth/tokens', timeout=60,
                                headers={'X-Auth-Token': admin,
                                         'X-Subject-Token': held})
            self.assertEqual(200, resp.status_code,
                             'the token %s held was revoked by the bring-up'
                             % user)
        self.assertNoFailure(self.storm(self.calls(), rounds=1))
        # Then many requests at once through each session, as the
        # conductor's to Placement during an evacuation.
        target = {'nova': NOVA + '/servers', 'placement':
                  PLACEMENT + '/resource_providers',
                  'cinder': NOVA + '/os-services',
                  'glance': GLANCE + '/images',
                  'neutron': NOVA + '/os-services'}
        jobs = [u for u in SERVICE_USERS for _ in range(WIDTH)]
        barrier = threading.Barrier(len(jobs))
        failures = []

        def one(user):
            barrier.wait(timeout=120)
            resp = sessions[user].get(target[user], raise_exc=False,
                                      timeout=180)
            if resp.status_code >= 400:
                failures.append((user, resp.status_code, resp.text[:200]))

        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            for future in [pool.submit(one, u) for u in jobs]:
                future.result()
        self.assertNoFailure(failures)


class SecretsTest(CloudTestCase):
    """What holds the cloud's passwords is root's only."""

    def assertPrivate(self, path, mode):
        st = os.stat(path)
        self.assertEqual(0, st.st_uid, '%s is not root\'s' % path)
        self.assertEqual(mode, stat.S_IMODE(st.st_mode),
                         '%s has mode %o' % (path, stat.S_IMODE(st.st_mode)))

    def test_modes(self):
        self.assertPrivate(CLOUD, 0o700)
        self.assertPrivate(os.path.join(CLOUD, 'secrets.env'), 0o600)
        self.assertPrivate(os.path.join(CLOUD, 'clouds.yaml'), 0o600)
        for sub in ('etc', 'state', 'run'):
            self.assertPrivate(os.path.join(CLOUD, sub), 0o700)
        secrets = [v for k, v in self.secrets.items()
                   if k.endswith('PASSWORD')]
        holding = []
        for top, dirs, files in os.walk(os.path.join(CLOUD, 'etc')):
            for name in dirs:
                mode = stat.S_IMODE(os.stat(os.path.join(top, name)).st_mode)
                self.assertEqual(0, mode & 0o077, os.path.join(top, name))
            for name in files:
                path = os.path.join(top, name)
                mode = stat.S_IMODE(os.stat(path).st_mode)
                self.assertEqual(0, mode & 0o077, path)
                with open(path, 'rb') as f:
                    data = f.read()
                if any(s.encode() in data for s in secrets):
                    holding.append(name)
        # The check above looked at the files that matter.
        for conf in ('nova.conf', 'cinder.conf', 'placement.conf',
                     'glance-api.conf', 'neutron.conf', 'keystone.conf'):
            self.assertIn(conf, holding)

    def test_no_password_in_any_log(self):
        """No service's log (of the whole cloud) holds a password."""
        secrets = {k: v.encode() for k, v in self.secrets.items()
                   if k.endswith('PASSWORD')}
        logs = os.path.join(CLOUD, 'logs')
        names = sorted(os.listdir(logs))
        self.assertIn('keystone.log', names)
        for name in names:
            path = os.path.join(logs, name)
            if not os.path.isfile(path):
                continue
            with open(path, 'rb') as f:
                data = f.read()
            for key, value in secrets.items():
                self.assertNotIn(value, data, '%s in %s' % (key, name))
