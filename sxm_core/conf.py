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

"""Option definitions of the core, for the services that embed it.

The core reads no configuration itself: the Nova driver, the Cinder driver
and the ``sxm`` CLI register these lists in their own groups and pass the
values in (``pool_kwargs``, ``migrator_kwargs``, ``mover_kwargs``).
``list_opts`` feeds oslo-config-generator through the ``oslo.config.opts``
entry point ``sxm_core``.
"""

from oslo_config import cfg

from sxm_core import slots

XAPI_OPTS = [
    cfg.URIOpt('connection_url', schemes=['http', 'https'],
               help='URL of the XAPI pool master, e.g. '
                    'https://xenserver1.example.org/. A pool member works '
                    'too: the session follows HOST_IS_SLAVE to the master.'),
    cfg.StrOpt('connection_username', default='root',
               help='XAPI user name.'),
    cfg.StrOpt('connection_password', secret=True,
               help='XAPI password. Never logged.'),
    cfg.StrOpt('ca_file',
               help='CA bundle used to verify the pool master\'s '
                    'certificate on https. Default: the system store.\n\n'
                    'Related options:\n\n* insecure'),
    cfg.BoolOpt('insecure', default=False,
                help='Do not verify the pool master\'s TLS certificate. '
                     'Only for lab pools with self-signed certificates.\n\n'
                     'Related options:\n\n* ca_file'),
    cfg.IntOpt('login_timeout', default=30, min=1,
               help='Seconds to wait for a login to the pool master.'),
    cfg.IntOpt('call_timeout', default=30, min=5,
               help='Read timeout, in seconds, of an ordinary XAPI call '
                    '(a getter, a setter, starting an Async task). A pool '
                    'master that stops answering (crashed, or a firewall '
                    'dropping the connection without a reset) is noticed '
                    'after this long instead of hanging.\n\n'
                    'Related options:\n\n* long_call_timeout\n'
                    '* event_grace'),
    cfg.IntOpt('long_call_timeout', default=300, min=10,
               help='Read timeout, in seconds, of the XAPI calls that may '
                    'legitimately run long synchronously: SR.scan, '
                    'VM.assert_can_migrate, host.migrate_receive, VDI and '
                    'VM lifecycle calls. Migrations and copies run as '
                    'Async tasks and are not bounded by it.\n\n'
                    'Related options:\n\n* call_timeout'),
    cfg.IntOpt('event_grace', default=5, min=1,
               help='Seconds a client waits for an event.from answer on '
                    'top of the timeout it asks the server for. Small: a '
                    'silent pool is then noticed within seconds.\n\n'
                    'Related options:\n\n* contact_timeout'),
    cfg.IntOpt('contact_timeout', default=30, min=5,
               help='Seconds without any answer from the pool master '
                    'after which the wait for a running migration gives '
                    'up, saying that contact is lost and naming the task, '
                    'which may still be running in XAPI (follow it with '
                    '`sxm watch`). Connection resets and short outages '
                    'within this time are survived.\n\n'
                    'Related options:\n\n* event_grace'),
    cfg.IntOpt('session_pool_size', default=4, min=1,
               help='XAPI sessions kept per pool master; each serves one '
                    'thread at a time.'),
    cfg.IntOpt('connect_retries', default=3, min=0,
               help='Retries, with exponential backoff, of a login or a '
                    'read-only call that fails to connect. XAPI failures '
                    'are never retried.'),
]

MIGRATION_OPTS = [
    cfg.IntOpt('seconds_per_gib', default=800, min=1,
               help='A storage migration times out after this many seconds '
                    'per GiB to move (plus minimum_timeout), and is then '
                    'cancelled.\n\nRelated options:\n\n* minimum_timeout'),
    cfg.IntOpt('minimum_timeout', default=300, min=1,
               help='Seconds every storage migration is allowed on top of '
                    'seconds_per_gib.'),
    cfg.IntOpt('stall_timeout', default=600, min=0,
               help='Cancel a storage migration whose progress has not '
                    'moved for this many seconds. 0 disables.'),
    cfg.IntOpt('max_concurrent_storage_migrations', default=2, min=1,
               max=3,
               help='Storage migrations started at once from one XenServer '
                    'host by this node (xapi refuses a fourth). Enforced '
                    'across processes with oslo.concurrency file locks '
                    'when lock_path is set.\n\nRelated options:\n\n'
                    '* lock_path'),
    cfg.StrOpt('lock_path',
               help='Directory for the file locks that limit storage '
                    'migrations per host across processes on this node '
                    '(nova-compute and cinder-volume may share a host), '
                    'and for the per-volume locks that keep two moves of '
                    'one volume apart. Unset: they hold within one process '
                    'only.\n\n'
                    'Related options:\n\n'
                    '* max_concurrent_storage_migrations'),
    cfg.IntOpt('too_many_migrates_retries', default=10, min=0,
               help='How often to retry a migration that xapi refused with '
                    'TOO_MANY_STORAGE_MIGRATES. Each retry starts as soon '
                    'as a storage migration of the host ends.\n\n'
                    'Related options:\n\n* too_many_migrates_interval'),
    cfg.IntOpt('too_many_migrates_interval', default=600, min=1,
               help='The longest wait, in seconds, for a storage migration '
                    'of the busy host to end before retrying anyway.\n\n'
                    'Related options:\n\n* too_many_migrates_retries'),
]


def list_opts():
    return [('sxm', XAPI_OPTS + MIGRATION_OPTS)]


def pool_kwargs(conf, originator='openstack-sxm'):
    """SessionPool keyword arguments from a group holding XAPI_OPTS.

    ``originator`` names the service in XAPI's session records (xapi
    also counts its session limit per originator).
    """
    return {
        'originator': originator,
        'url': conf.connection_url,
        'username': conf.connection_username,
        'password': conf.connection_password,
        'ca_file': conf.ca_file,
        'insecure': conf.insecure,
        'login_timeout': conf.login_timeout,
        'call_timeout': conf.call_timeout,
        'long_call_timeout': conf.long_call_timeout,
        'event_grace': conf.event_grace,
        'contact_timeout': conf.contact_timeout,
        'maxsize': conf.session_pool_size,
        'retries': conf.connect_retries,
    }


def mover_kwargs(options):
    """``volumes.VdiMover`` keywords from ``options`` (MIGRATION_OPTS).

    ``options``: anything with these options' names as attributes (an
    oslo.config group, an argparse namespace). The slots are the
    process's shared ones for that limit and lock path.
    """
    return {
        'seconds_per_gib': options.seconds_per_gib,
        'minimum_timeout': options.minimum_timeout,
        'stall_timeout': options.stall_timeout,
        'slots': slots.shared_slots(
            options.max_concurrent_storage_migrations, options.lock_path),
    }


def migrator_kwargs(options):
    """``migrate.Migrator`` keywords from ``options`` (MIGRATION_OPTS)."""
    kwargs = mover_kwargs(options)
    kwargs.update(too_many_retries=options.too_many_migrates_retries,
                  too_many_interval=options.too_many_migrates_interval)
    return kwargs
