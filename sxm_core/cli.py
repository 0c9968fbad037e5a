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

"""``sxm``: plan, run and watch Storage XenMotion from a shell.

    sxm plan    VM --url URL [--dest-url URL] [choices]
    sxm migrate VM --url URL [--dest-url URL] [choices]
    sxm demo

Passwords come from SXM_PASSWORD / SXM_DEST_PASSWORD, a ``--config-file``
([sxm] connection_password), or a prompt; never from the command line,
where other users could read them. Exit status: 0 done, 1 the migration
failed, 2 bad input or a plan that cannot run, 130 cancelled (Ctrl-C).
"""

import argparse
import getpass
import os
import sys
import threading

from oslo_config import cfg

from sxm_core import conf
from sxm_core import errors
from sxm_core import migrate
from sxm_core import plan as planmod
from sxm_core import progress as progressmod
from sxm_core import sessions

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 1, 2, 130


def _pairs(values, what):
    out = {}
    for item in values or ():
        key, sep, value = item.partition('=')
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(
                '%s takes KEY=VALUE, got %r' % (what, item))
        out[key] = value
    return out


def _parser():
    parser = argparse.ArgumentParser(
        prog='sxm', description='Storage XenMotion for XenServer / XCP-ng: '
        'live migration of a VM with its disks between pools or SRs.')
    parser.add_argument('--config-file', help='oslo.config file with an '
                        '[sxm] section (connection_*, timeouts)')
    parser.add_argument('--debug', action='store_true',
                        help='log what is done (secrets masked)')
    sub = parser.add_subparsers(dest='command', required=True)
    for name, text in (('plan', 'show what a migration would do and '
                                'whether it can run'),
                       ('migrate', 'run a live storage migration')):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument('vm', help='VM name label or uuid')
        p.add_argument('--url', default=os.environ.get('SXM_URL'),
                       help='source pool master URL (env SXM_URL)')
        p.add_argument('--username', default=os.environ.get('SXM_USERNAME'),
                       help='source user (env SXM_USERNAME; default root)')
        p.add_argument('--dest-url', default=os.environ.get('SXM_DEST_URL'),
                       help='destination pool master URL (env '
                            'SXM_DEST_URL); omit for a move inside the '
                            'source pool')
        p.add_argument('--dest-username',
                       default=os.environ.get('SXM_DEST_USERNAME'),
                       help='destination user (env SXM_DEST_USERNAME)')
        p.add_argument('--dest-host', help='destination host name or uuid '
                       '(default: the pool master, or the current host '
                       'in-pool)')
        p.add_argument('--sr', help='destination SR (name or uuid) for '
                       'every disk')
        p.add_argument('--sr-map', action='append', metavar='DISK=SR',
                       help='destination SR of one disk (by userdevice, '
                            'name or VDI uuid); repeatable')
        p.add_argument('--tier', choices=planmod.TIERS,
                       help='pick the thin or thick SR (or the same kind as '
                            'the source) with the most free space')
        p.add_argument('--network-map', action='append', metavar='SRC=DST',
                       help='destination network of a source network (name, '
                            'uuid or bridge), MAC or port id; repeatable')
        p.add_argument('--migration-network',
                       help='destination network that receives the '
                            'migration (default: one with an IP on the '
                            'destination host)')
        p.add_argument('--ca-file', help='CA bundle for https pool masters')
        p.add_argument('--insecure', action='store_true', default=None,
                       help='do not verify TLS certificates (lab pools)')
    sub.add_parser('demo', help='run a live cross-pool migration on the '
                   'embedded XAPI simulator and verify every byte')
    return parser


def load_conf(path=None):
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
    raise errors.SxmError('No password: set %s or connection_password in '
                          'the --config-file.' % env)


def _pools(args, opts):
    url = args.url or opts.connection_url
    if not url:
        raise errors.SxmError('Give the source pool master with --url (or '
                              'SXM_URL, or [sxm] connection_url).')
    username = args.username or opts.connection_username
    password = _password('SXM_PASSWORD', 'Password for %s@%s: '
                         % (username, url), opts.connection_password)
    common = dict(ca_file=args.ca_file or opts.ca_file,
                  insecure=bool(args.insecure) or opts.insecure,
                  login_timeout=opts.login_timeout,
                  call_timeout=opts.call_timeout,
                  maxsize=opts.session_pool_size,
                  retries=opts.connect_retries)
    source = sessions.SessionPool(url, username, password, **common)
    if not args.dest_url or args.dest_url == url:
        return source, source
    dest_user = args.dest_username or username
    prompt = 'Password for %s@%s: ' % (dest_user, args.dest_url)
    dest_password = _password('SXM_DEST_PASSWORD', prompt,
                              password if dest_user == username else None)
    return source, sessions.SessionPool(args.dest_url, dest_user,
                                        dest_password, **common)


def migrator_for(source, dest, opts):
    return migrate.Migrator(
        source, dest, seconds_per_gib=opts.seconds_per_gib,
        minimum_timeout=opts.minimum_timeout,
        stall_timeout=opts.stall_timeout,
        slots=migrate.HostSlots(opts.max_concurrent_storage_migrations,
                                lock_path=opts.lock_path),
        too_many_retries=opts.too_many_migrates_retries,
        too_many_interval=opts.too_many_migrates_interval)


def _choices(args):
    return dict(dest_host=args.dest_host, sr=args.sr,
                sr_map=_pairs(args.sr_map, '--sr-map'), tier=args.tier,
                network_map=_pairs(args.network_map, '--network-map'),
                migration_network=args.migration_network)


def run_migration(migrator, the_plan, out):
    """Migrate with a progress bar; Ctrl-C cancels. Returns exit status."""
    cancel = threading.Event()
    outcome = {}
    bar = progressmod.Bar(the_plan, out)

    def work():
        try:
            outcome['result'] = migrator.migrate(the_plan, bar.update,
                                                 cancel)
        except Exception as exc:  # reported below, whatever it is
            outcome['error'] = exc

    worker = threading.Thread(target=work, name='sxm-migrate', daemon=True)
    worker.start()
    while worker.is_alive():
        try:
            worker.join(0.2)
        except KeyboardInterrupt:
            if not cancel.is_set():
                print('\nCancelling (the source VM keeps running)...',
                      file=out, flush=True)
                cancel.set()
    bar.close()
    if 'error' in outcome:
        print('sxm: %s' % outcome['error'], file=out)
        return EXIT_CANCELLED if cancel.is_set() else EXIT_FAILED
    result = outcome['result']
    print(progressmod.summary(the_plan, result), file=out)
    return EXIT_FAILED if result.warnings else 0


def main(argv=None, out=None):
    out = out or sys.stdout
    parser = _parser()
    args = parser.parse_args(argv)
    progressmod.setup_logging(args.debug)
    if args.command == 'demo':
        from sxm_core import demo  # the only place the simulator is used
        return demo.run(out)
    source = dest = None
    try:
        opts = load_conf(args.config_file)
        source, dest = _pools(args, opts)
        migrator = migrator_for(source, dest, opts)
        the_plan, problems = migrator.plan(args.vm, **_choices(args))
        if not planmod.blocking(problems):
            problems = migrator.check(the_plan)
        print(planmod.format_plan(the_plan, problems), file=out)
        if planmod.blocking(problems):
            return EXIT_BAD_INPUT
        if args.command == 'plan':
            return 0
        return run_migration(migrator, the_plan, out)
    except (errors.SxmError, argparse.ArgumentTypeError, ValueError,
            cfg.Error) as exc:
        print('sxm: %s' % exc, file=out)
        return EXIT_BAD_INPUT
    finally:
        for pool in {id(p): p for p in (source, dest) if p}.values():
            pool.close()


if __name__ == '__main__':
    sys.exit(main())
