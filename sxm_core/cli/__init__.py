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
    sxm list    --url URL
    sxm watch   TASK_OR_VM --url URL
    sxm cancel  TASK_OR_VM --url URL
    sxm drain   HOST --url URL [--dest-url URL] [choices] [--concurrency N]

Passwords come from SXM_PASSWORD / SXM_DEST_PASSWORD, a ``--config-file``
([sxm] connection_password), or a prompt; never from the command line,
where other users could read them. Results go to stdout; errors, log
lines and progress to stderr. Exit status: 0 done, 1 the migration
failed, 2 bad input or a plan that cannot run, 130 cancelled (Ctrl-C or
SIGTERM). ``sxm demo`` only says where the demo went: ``xapi-sim demo``
(it runs on the XAPI simulator, which this package never imports).

The package: ``parser`` (the command line), ``pools`` (settings and
session pools), ``commands`` (one function per subcommand), ``signals``
(Ctrl-C and SIGTERM while a worker runs), ``console`` (the two streams,
progress bars, exit statuses) and ``formats`` (plan tables, summaries and
JSON shapes).
"""

import argparse

from oslo_config import cfg

from sxm_core.cli import commands
from sxm_core.cli import console as consolemod
from sxm_core.cli import parser as parsermod
from sxm_core.cli import pools
from sxm_core import errors

EXIT_OK = consolemod.EXIT_OK
EXIT_FAILED = consolemod.EXIT_FAILED
EXIT_BAD_INPUT = consolemod.EXIT_BAD_INPUT
EXIT_CANCELLED = consolemod.EXIT_CANCELLED


def main(argv=None, out=None, err=None):
    """Run ``sxm`` with ``argv`` (default: sys.argv); the exit status."""
    args = parsermod.build().parse_args(argv)
    console = consolemod.Console(out, err, quiet=args.quiet,
                                 as_json=getattr(args, 'as_json', False))
    consolemod.setup_logging(args.debug, console.err)
    if args.command == 'demo':
        return consolemod.fail(console, EXIT_BAD_INPUT,
                               parsermod.DEMO_MOVED)
    source = dest = None
    try:
        opts = pools.load_conf(args.config_file)
        source, dest = pools.connect(
            args, opts, dest=args.command in commands.TWO_POOLS)
        return commands.COMMANDS[args.command](args, console, opts, source,
                                               dest)
    except (errors.SxmError, argparse.ArgumentTypeError, ValueError,
            cfg.Error) as exc:
        return consolemod.fail(console, EXIT_BAD_INPUT, exc)
    except KeyboardInterrupt:
        # SignalGuard covers every migration: none was running.
        return consolemod.fail(console, EXIT_CANCELLED, 'Interrupted (no '
                               'migration was running).')
    finally:
        for pool in {id(p): p for p in (source, dest) if p}.values():
            pool.close()
