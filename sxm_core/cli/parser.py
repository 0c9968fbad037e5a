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

"""The ``sxm`` command line: subcommands, options and their help."""

import argparse
import os

from sxm_core import plan as planmod

ENVIRONMENT = """\
environment:
  SXM_URL, SXM_USERNAME     source pool master URL and user (default root)
  SXM_PASSWORD              source password; else [sxm] connection_password
                            of the --config-file; else a prompt on a
                            terminal (never give passwords as arguments)
  SXM_DEST_URL, SXM_DEST_USERNAME
                            destination pool master URL and user
  SXM_DEST_PASSWORD         destination password (default: the source's
                            when the user is the same)
"""

EXIT_MIGRATE = """\
exit status:
  0    the VM moved            1    it failed, or moved with warnings
  2    bad input, or a plan that cannot run
  130  cancelled (Ctrl-C or SIGTERM): the source VM keeps running
"""

EXIT_PLAN = """\
exit status:
  0    the plan can run        2    bad input, or a plan that cannot run
"""

EXIT_WATCH = """\
exit status:
  0    the migration succeeded  1    it failed or was cancelled
  2    bad input (no such migration)
  130  detached (Ctrl-C): the migration goes on
"""

EXIT_CANCEL = """\
exit status:
  0    cancelled: the source VM keeps running
  1    too late or failed: see the message
  2    bad input (no such migration)
"""

EXIT_DRAIN = """\
exit status:
  0    every VM moved           1    one or more did not
  2    bad input
  130  cancelled (Ctrl-C or SIGTERM): running migrations were cancelled
       and the VMs not started yet skipped
"""

EXIT_LIST = """\
exit status:
  0    listed (maybe none)      2    bad input
"""

OUTPUT = """\
output: results on stdout; errors, log lines and progress on stderr.
--json prints one JSON object on stdout (errors: {"error": ..., "exit": N}).
"""

# The demo runs on the XAPI simulator, which the product does not ship.
DEMO_MOVED = ('the demo moved to the XAPI simulator (xapi-sim demo), which '
              'runs from a checkout of openstack-sxm: ./tools/demo.sh.')


def _pairs(values, what):
    out = {}
    for item in values or ():
        key, sep, value = item.partition('=')
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(
                '%s takes KEY=VALUE, got %r' % (what, item))
        out[key] = value
    return out


def choices(args):
    """The plan choices (``Migrator.plan`` keywords) of the command line."""
    return dict(dest_host=args.dest_host, sr=args.sr,
                sr_map=_pairs(args.sr_map, '--sr-map'), tier=args.tier,
                network_map=_pairs(args.network_map, '--network-map'),
                migration_network=args.migration_network)


def _global_options(parser, suppress):
    """Options accepted before and after the subcommand.

    The subcommand's copies default to SUPPRESS so that they only override
    the main parser's value when given.
    """
    default = (lambda value: argparse.SUPPRESS) if suppress else \
        (lambda value: value)
    parser.add_argument('--config-file', default=default(None),
                        help='oslo.config file with an [sxm] section '
                             '(connection_*, timeouts)')
    parser.add_argument('--debug', action='store_true',
                        default=default(False),
                        help='log what is done (secrets masked)')
    parser.add_argument('-q', '--quiet', action='store_true',
                        default=default(False),
                        help='no progress and no notes: only errors and the '
                             'final result')


def _connection_options(p, dest=True):
    p.add_argument('--url', default=os.environ.get('SXM_URL'),
                   help='source pool master URL (env SXM_URL)')
    p.add_argument('--username', default=os.environ.get('SXM_USERNAME'),
                   help='source user (env SXM_USERNAME; default root)')
    if dest:
        p.add_argument('--dest-url', default=os.environ.get('SXM_DEST_URL'),
                       help='destination pool master URL (env '
                            'SXM_DEST_URL); omit for a move inside the '
                            'source pool')
        p.add_argument('--dest-username',
                       default=os.environ.get('SXM_DEST_USERNAME'),
                       help='destination user (env SXM_DEST_USERNAME)')
    p.add_argument('--ca-file', help='CA bundle for https pool masters')
    p.add_argument('--insecure', action='store_true', default=None,
                   help='do not verify TLS certificates (lab pools)')


def _choice_options(p):
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


def _json_option(p):
    p.add_argument('--json', action='store_true', dest='as_json',
                   help='print the result as one JSON object on stdout')


def build():
    """The ``sxm`` argument parser."""
    parser = argparse.ArgumentParser(
        prog='sxm', description='Storage XenMotion for XenServer / XCP-ng: '
        'live migration of a VM with its disks between pools or SRs.',
        epilog=ENVIRONMENT + '\n' + OUTPUT,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    sub = parser.add_subparsers(dest='command', required=True)

    def add(name, text, epilog):
        return sub.add_parser(
            name, help=text, description=text, parents=[common],
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter)

    for name, text, exits in (
            ('plan', 'show what a migration would do and whether it can '
             'run', EXIT_PLAN),
            ('migrate', 'run a live storage migration; Ctrl-C cancels it '
             'and the source VM keeps running', EXIT_MIGRATE)):
        p = add(name, text, ENVIRONMENT + '\n' + exits + '\n' + OUTPUT)
        p.add_argument('vm', help='VM name label or uuid')
        _connection_options(p)
        _choice_options(p)
        _json_option(p)

    p = add('list', 'list the storage migrations running in a pool',
            ENVIRONMENT + '\n' + EXIT_LIST + '\n' + OUTPUT)
    _connection_options(p, dest=False)
    _json_option(p)

    for name, text, exits in (
            ('watch', 'follow a running storage migration (started by any '
             'client); Ctrl-C detaches and does not cancel it', EXIT_WATCH),
            ('cancel', 'cancel a running storage migration and wait for it '
             'to end; the source VM keeps running', EXIT_CANCEL)):
        p = add(name, text, ENVIRONMENT + '\n' + exits + '\n' + OUTPUT)
        p.add_argument('ident', metavar='TASK_OR_VM',
                       help='task uuid or ref, or VM name or uuid')
        _connection_options(p, dest=False)
        _json_option(p)

    p = add('drain', 'migrate every running VM of a host away, a few at a '
            'time; Ctrl-C cancels the running ones and skips the rest',
            ENVIRONMENT + '\n' + EXIT_DRAIN + '\n' + OUTPUT)
    p.add_argument('host', help='source host name or uuid')
    _connection_options(p)
    _choice_options(p)
    p.add_argument('--concurrency', type=int, default=2,
                   help='migrations at once (default 2; never more than '
                        '[sxm] max_concurrent_storage_migrations)')
    _json_option(p)

    add('demo', DEMO_MOVED, 'exit status:\n  2    always (see above)\n')
    return parser
