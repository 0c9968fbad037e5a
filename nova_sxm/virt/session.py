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
import http.client
import os
import urllib.parse

from oslo_log import log as logging
from sxm_core import conf as core_conf
from sxm_core import errors
from sxm_core import fleet
from sxm_core import migrate
from sxm_core import sessions
from sxm_core import tasks

import nova_sxm.conf

CONF = nova_sxm.conf.CONF
LOG = logging.getLogger(__name__)
CHUNK = 1 << 20


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
    seconds_per_gib: int
    minimum_timeout: int
    stall_timeout: int
    max_concurrent_storage_migrations: int
    lock_path: str
    too_many_migrates_retries: int
    too_many_migrates_interval: int

    @classmethod
    def from_conf(cls, conf=None):
        group = (conf or CONF).sxm
        return cls(
            pool_kwargs=core_conf.pool_kwargs(group),
            host_name=group.host_name,
            sr_matching_filter=group.sr_matching_filter,
            default_network=group.default_network,
            live_migration_network=group.live_migration_network,
            remote_pool_passwords=dict(group.remote_pool_passwords or {}),
            image_upload_format=group.image_upload_format,
            seconds_per_gib=group.seconds_per_gib,
            minimum_timeout=group.minimum_timeout,
            stall_timeout=group.stall_timeout,
            max_concurrent_storage_migrations=(
                group.max_concurrent_storage_migrations),
            lock_path=group.lock_path,
            too_many_migrates_retries=group.too_many_migrates_retries,
            too_many_migrates_interval=group.too_many_migrates_interval)

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
        # The process's one HostSlots: every nova-compute driver (and
        # every Migrator) of this process counts against the same limit.
        self.slots = migrate.shared_slots(
            settings.max_concurrent_storage_migrations, settings.lock_path)

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

    def migrator(self, dest=None, source=None, marker_key=None,
                 on_start=None):
        """A Migrator from ``source`` (default: this pool) to ``dest``.

        Every migration it runs gets a watchdog process
        (``fleet.owner_custodian_for``) that cancels it if this
        nova-compute dies first; ``marker_key`` names the source VM's
        ``other_config`` key it removes then. ``on_start(task_ref)`` is
        called once the XAPI task exists.
        """
        s = self.settings
        source = source or self.pool
        guard = fleet.owner_custodian_for(source, dest or source,
                                          marker_key=marker_key,
                                          log_file=_log_file())

        def custodian(task, token, the_plan=None):
            # Tagged as this service's: a restart reaps it once ended.
            tasks.tag(source, task)
            if on_start is not None:
                try:
                    on_start(task)
                except Exception:  # a note, not a reason to stop
                    LOG.exception('Recording migration task %s failed',
                                  task)
            return guard(task, token, the_plan)
        return migrate.Migrator(
            source, dest, seconds_per_gib=s.seconds_per_gib,
            minimum_timeout=s.minimum_timeout,
            stall_timeout=s.stall_timeout, slots=self.slots,
            too_many_retries=s.too_many_migrates_retries,
            too_many_interval=s.too_many_migrates_interval,
            custodian=custodian)

    # -- raw VDI transfer (XAPI's HTTP handlers) -----------------------------

    def _http(self):
        parts = urllib.parse.urlsplit(self.pool.url)
        timeout = self.pool.long_call_timeout
        if parts.scheme == 'https':
            kwargs = self.settings.pool_kwargs
            ctx = sessions.ssl_context(kwargs.get('ca_file'),
                                       kwargs.get('insecure'))
            return http.client.HTTPSConnection(parts.hostname, parts.port,
                                               timeout=timeout, context=ctx)
        return http.client.HTTPConnection(parts.hostname, parts.port,
                                          timeout=timeout)

    def _path(self, handler, handle, vdi_ref, fmt=None):
        query = {'session_id': handle, 'vdi': vdi_ref}
        if fmt:
            query['format'] = fmt
        return '/%s?%s' % (handler, urllib.parse.urlencode(query))

    def import_raw(self, vdi_ref, fileobj, length):
        """PUT ``length`` bytes of ``fileobj`` into a VDI (/import_raw_vdi)."""
        with self.pool.session() as s:
            conn = self._http()
            try:
                conn.request('PUT', self._path('import_raw_vdi', s.handle,
                                               vdi_ref),
                             body=_Limited(fileobj, length),
                             headers={'Content-Length': str(length),
                                      'Content-Type':
                                          'application/octet-stream'})
                resp = conn.getresponse()
                body = resp.read(4096)
            finally:
                conn.close()
        if resp.status != 200:
            raise errors.SxmError('Import into VDI %s failed: HTTP %d %s'
                                  % (vdi_ref, resp.status,
                                     body.decode('utf-8', 'replace')))

    def export_raw(self, vdi_ref, fileobj, fmt=None):
        """GET a VDI's bytes (/export_raw_vdi) into ``fileobj``.

        ``fmt`` is XAPI's ``format`` parameter: None or ``raw`` for the
        disk's bytes, ``vhd`` for a dynamic VHD (footer copy first, only
        the allocated blocks), as Glance's format inspector recognises.
        """
        with self.pool.session() as s:
            conn = self._http()
            try:
                conn.request('GET', self._path('export_raw_vdi', s.handle,
                                               vdi_ref, fmt))
                resp = conn.getresponse()
                if resp.status != 200:
                    raise errors.SxmError(
                        'Export of VDI %s failed: HTTP %d %s' % (
                            vdi_ref, resp.status,
                            resp.read(4096).decode('utf-8', 'replace')))
                _copy_sparse(resp, fileobj)
            finally:
                conn.close()


def _copy_sparse(src, dst):
    """Copy, seeking over zero chunks so that ``dst`` stays sparse."""
    zero = bytes(CHUNK)
    end = dst.tell()
    while True:
        data = src.read(CHUNK)
        if not data:
            break
        if data == zero[:len(data)]:
            dst.seek(len(data), 1)
        else:
            dst.write(data)
        end = dst.tell()
    dst.truncate(end)


class _Limited(object):
    """A file object read in chunks, stopping after ``length`` bytes."""

    def __init__(self, fileobj, length):
        self._f = fileobj
        self._left = length

    def read(self, size=CHUNK):
        if self._left <= 0:
            return b''
        data = self._f.read(min(size if size > 0 else CHUNK, self._left))
        self._left -= len(data)
        return data
