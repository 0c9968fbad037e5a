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

"""The driver's connection to its XAPI pool, and to other pools.

Options are read once, when the driver is created (several nova-compute
services of one test process share oslo.config's CONF, each configured in
turn). The pool master's session id never leaves ``sxm_core``'s session
pool; for migrations to another pool the source logs in to that pool
itself (``remote_pool``), so migration tokens stay in its process.
"""

import dataclasses
import os
import types

from oslo_log import log as logging
from sxm_core import conf as core_conf
from sxm_core import errors
from sxm_core import fleet
from sxm_core import migrate
from sxm_core import sessions
from sxm_core import tasks
from sxm_core import transfer

import nova_sxm.conf

CONF = nova_sxm.conf.CONF
LOG = logging.getLogger(__name__)
# name_label of the XAPI task of an image transfer.
TRANSFER_LABEL = 'nova-sxm'
# How XAPI's session records name this service.
ORIGINATOR = 'openstack-sxm nova-compute'


@dataclasses.dataclass(frozen=True)
class Settings:
    """The ``[sxm]`` options this driver was created with."""

    pool_kwargs: dict
    host_name: str
    sr_matching_filter: str
    default_network: str
    live_migration_network: str
    remote_pool_passwords: dict
    image_upload_format: str
    # The core's MIGRATION_OPTS as read at creation (for
    # ``Migrator.from_options``).
    migration: types.SimpleNamespace

    @classmethod
    def from_conf(cls, conf=None):
        group = (conf or CONF).sxm
        return cls(
            pool_kwargs=core_conf.pool_kwargs(group, ORIGINATOR),
            host_name=group.host_name,
            sr_matching_filter=group.sr_matching_filter,
            default_network=group.default_network,
            live_migration_network=group.live_migration_network,
            remote_pool_passwords=dict(group.remote_pool_passwords or {}),
            image_upload_format=group.image_upload_format,
            migration=types.SimpleNamespace(**{
                opt.dest: getattr(group, opt.dest)
                for opt in core_conf.MIGRATION_OPTS}))

    def __repr__(self):
        # Never print the passwords (a dataclass repr would).
        return '<Settings %s host=%s>' % (self.pool_kwargs.get('url'),
                                          self.host_name)


def _log_file():
    """nova-compute's log file (oslo.log's options), or None."""
    log_file = getattr(CONF, 'log_file', None)
    if not log_file:
        return None
    log_dir = getattr(CONF, 'log_dir', None)
    return os.path.join(log_dir, log_file) if log_dir else log_file


class XapiConnection(object):
    """A SessionPool to this compute's pool plus the raw VDI transfers."""

    def __init__(self, settings):
        if not settings.pool_kwargs.get('url'):
            raise errors.SxmError('[sxm] connection_url is not set: name '
                                  'the XAPI pool master of this host.')
        self.settings = settings
        self.pool = sessions.SessionPool(**settings.pool_kwargs)

    def call(self, method, *args):
        return self.pool.call(method, *args)

    def close(self):
        self.pool.close()

    def remote_pool(self, url, pool_uuid):
        """A SessionPool to another pool, with this compute's credentials.

        The password is ``remote_pool_passwords[pool_uuid]`` when listed,
        else ``connection_password``.
        """
        kwargs = dict(self.settings.pool_kwargs)
        kwargs['url'] = url
        password = self.settings.remote_pool_passwords.get(pool_uuid)
        if password:
            kwargs['password'] = password
        return sessions.SessionPool(**kwargs)

    def migrator(self, dest=None, source=None, marker_key=None):
        """A Migrator from ``source`` (default: this pool) to ``dest``.

        Every migration it runs gets a watchdog process
        (``fleet.owner_custodian_for``) that cancels it if this
        nova-compute dies first; ``marker_key`` names the source VM's
        ``other_config`` key it removes then.
        """
        source = source or self.pool
        guard = fleet.owner_custodian_for(source, dest or source,
                                          marker_key=marker_key,
                                          log_file=_log_file())

        def custodian(task, token, the_plan=None):
            # Tagged as this service's: a restart reaps it once ended.
            tasks.tag(source, task)
            return guard(task, token, the_plan)
        # Its slots are the process's shared ones: every nova-compute
        # driver of this process counts against the same limit. The
        # destination pool is made for one migration and closed after
        # it: its session is kept through the wait (one login).
        return migrate.Migrator.from_options(
            source, dest, self.settings.migration, custodian=custodian,
            keep_dest_sessions=True)

    # -- raw VDI transfer (XAPI's HTTP handlers) -----------------------------

    def _transfer(self):
        kwargs = self.settings.pool_kwargs
        return transfer.VdiTransfer(self.pool, label=TRANSFER_LABEL,
                                    ca_file=kwargs.get('ca_file'),
                                    insecure=kwargs.get('insecure'))

    def import_raw(self, vdi_ref, fileobj, length):
        """PUT ``length`` bytes of ``fileobj`` into a VDI (/import_raw_vdi)."""
        self._transfer().upload(vdi_ref, fileobj, 'raw', length=length)

    def export_raw(self, vdi_ref, fileobj, fmt=None):
        """GET a VDI's bytes (/export_raw_vdi) into ``fileobj``, sparse.

        ``fmt`` is XAPI's ``format`` parameter: None or ``raw`` for the
        disk's bytes, ``vhd`` for a dynamic VHD (footer copy first, only
        the allocated blocks), as Glance's format inspector recognises.
        """
        self._transfer().download(vdi_ref, fileobj, fmt or 'raw',
                                  sparse=True)
