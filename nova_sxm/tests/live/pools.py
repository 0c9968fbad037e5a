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

"""Real pools for the shared scenarios, named by environment variables.

``LivePools`` offers what ``base.SimulatorPools`` offers, minus the
simulator's control interface and guest checker (``simulated`` False).
"""

import os
import ssl
import xmlrpc.client

import fixtures

# name -> what it holds; all needed, else the live tests skip.
REQUIRED = {
    'SXM_LIVE_SOURCE_URL': 'URL of the source pool master',
    'SXM_LIVE_DEST_URL': 'URL of the destination pool master',
    'SXM_LIVE_PASSWORD': 'password of SXM_LIVE_USERNAME on both pools',
    'SXM_LIVE_IMAGE': 'path of a raw or vhd image to boot',
}
POOL_ENV = {'pool-a': 'SOURCE', 'pool-b': 'DEST'}


def missing(environ=None):
    environ = os.environ if environ is None else environ
    return [name for name in REQUIRED if not environ.get(name)]


def skip_reason(environ=None):
    """Why the live tests cannot run, or None."""
    absent = missing(environ)
    if not absent:
        return None
    return ('no live XenServer / XCP-ng pools configured: set %s '
            '(see nova_sxm/tests/live/README.rst)'
            % ', '.join('%s (%s)' % (n, REQUIRED[n]) for n in absent))


class LivePools(fixtures.Fixture):
    """The source (``pool-a``) and destination (``pool-b``) pools."""

    simulated = False

    def __init__(self, environ=None):
        super().__init__()
        env = os.environ if environ is None else environ
        self.env = env
        self.username = env.get('SXM_LIVE_USERNAME') or 'root'
        password = env['SXM_LIVE_PASSWORD']
        self.passwords = {
            'pool-a': password,
            'pool-b': env.get('SXM_LIVE_DEST_PASSWORD') or password}
        self._urls = {pool: env['SXM_LIVE_%s_URL' % which]
                      for pool, which in POOL_ENV.items()}
        self.ca_file = env.get('SXM_LIVE_CA_FILE') or None
        self.insecure = env.get('SXM_LIVE_INSECURE', '') in ('1', 'true',
                                                             'yes')
        self.image = env['SXM_LIVE_IMAGE']
        self.image_format = env.get('SXM_LIVE_IMAGE_FORMAT') or (
            'vhd' if self.image.endswith('.vhd') else 'raw')
        self.export_timeout = int(env.get('SXM_LIVE_EXPORT_TIMEOUT')
                                  or 1800)
        self.compute_flags = {}
        for pool, which in POOL_ENV.items():
            flags = {}
            for var, opt in (('HOST', 'host_name'),
                             ('SR', 'sr_matching_filter'),
                             ('NETWORK', 'default_network')):
                value = env.get('SXM_LIVE_%s_%s' % (which, var))
                if value:
                    flags[opt] = value
            self.compute_flags[pool] = flags

    def url(self, pool):
        return self._urls[pool]

    def ssl_context(self):
        if not any(url.startswith('https') for url in self._urls.values()):
            return None
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def session_kwargs(self):
        ctx = self.ssl_context()
        if ctx is None:
            return {}
        return {'transport': xmlrpc.client.SafeTransport(context=ctx)}

    def tls_flags(self):
        return {'ca_file': self.ca_file, 'insecure': self.insecure}

    def image_data(self):
        with open(self.image, 'rb') as f:
            return f.read()
