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

"""The ``sxm`` command's settings and its session pools.

Settings come from the ``--config-file`` ([sxm]), overridden by the
command line; passwords from SXM_PASSWORD / SXM_DEST_PASSWORD, the config
file or a prompt, never from the command line, where other users could
read them.
"""

import getpass
import os
import sys

from oslo_config import cfg

from sxm_core import conf
from sxm_core import errors
from sxm_core import fleet
from sxm_core import migrate
from sxm_core import sessions


def load_conf(path=None):
    """The [sxm] options of the file at ``path`` (defaults without)."""
    conf_ = cfg.ConfigOpts()
    conf_.register_opts(conf.XAPI_OPTS + conf.MIGRATION_OPTS, group='sxm')
    conf_(args=[], project='sxm', default_config_files=[path] if path
          else [])
    return conf_.sxm


def _password(env, prompt, fallback):
    value = os.environ.get(env)
    if value:
        return value
    if fallback:
        return fallback
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(prompt)
    raise errors.InvalidInput(reason='No password: set %s or '
                              'connection_password in the --config-file.'
                              % env)


def _pool_kwargs(args, opts):
    """The [sxm] settings but for what the command line overrides."""
    kwargs = conf.pool_kwargs(opts)
    for key in ('url', 'username', 'password'):
        del kwargs[key]
    kwargs.update(ca_file=args.ca_file or opts.ca_file,
                  insecure=bool(args.insecure) or opts.insecure)
    return kwargs


def _log_in(pool):
    """Log in once now: bad credentials fail before any other prompt.

    The refusal names its pool (``SessionPool(label=...)``).
    """
    with pool.session():
        pass


def connect(args, opts, dest=True):
    """(source, destination) SessionPools, logged in; one pool in-pool.

    ``dest`` False: the command talks to the source pool only.
    """
    url = args.url or opts.connection_url
    if not url:
        raise errors.InvalidInput(reason='Give the source pool master with '
                                  '--url (or SXM_URL, or [sxm] '
                                  'connection_url).')
    username = args.username or opts.connection_username
    safe_url = sessions.safe_url
    password = _password('SXM_PASSWORD', 'Password for %s@%s: '
                         % (username, safe_url(url)),
                         opts.connection_password)
    common = _pool_kwargs(args, opts)
    source = sessions.SessionPool(url, username, password, label='source',
                                  **common)
    dest_url = getattr(args, 'dest_url', None) if dest else None
    if not dest_url or dest_url == url:
        try:
            _log_in(source)
        except BaseException:
            source.close()
            raise
        return source, source
    dest_user = args.dest_username or username
    prompt = 'Password for %s@%s: ' % (dest_user, safe_url(dest_url))
    try:
        _log_in(source)
        dest_password = _password('SXM_DEST_PASSWORD', prompt,
                                  password if dest_user == username
                                  else None)
        target = sessions.SessionPool(dest_url, dest_user, dest_password,
                                      label='destination', **common)
    except BaseException:
        source.close()
        raise
    try:
        _log_in(target)
    except BaseException:
        source.close()
        target.close()
        raise
    return source, target


def migrator_for(source, dest, opts):
    # A killed CLI must not leave its migrate_receive token alive.
    return migrate.Migrator.from_options(
        source, dest, opts, custodian=fleet.custodian_for(source, dest))
