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
    sxm demo

Passwords come from SXM_PASSWORD / SXM_DEST_PASSWORD, a ``--config-file``
([sxm] connection_password), or a prompt; never from the command line,
where other users could read them. Results go to stdout; errors, log
lines and progress to stderr. Exit status: 0 done, 1 the migration
failed, 2 bad input or a plan that cannot run, 130 cancelled (Ctrl-C or
SIGTERM).

Ctrl-C never raises into the code that talks to XAPI: while a migration
runs, SIGINT and SIGTERM only set the cancel Event the worker watches, and
the main thread waits for the worker to say it is done. A
KeyboardInterrupt landing in ``Thread.join`` could leave a migration
running with nobody to cancel it or destroy its task.
"""

import argparse
import datetime
import getpass
import os
import signal
import sys
import threading
import time

from oslo_config import cfg

from sxm_core import conf
from sxm_core import errors
from sxm_core import fleet
from sxm_core import migrate
from sxm_core import plan as planmod
from sxm_core import progress as progressmod
from sxm_core import sessions

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130

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


def _pairs(values, what):
    out = {}
    for item in values or ():
        key, sep, value = item.partition('=')
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(
                '%s takes KEY=VALUE, got %r' % (what, item))
        out[key] = value
    return out


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


def _parser():
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

    add('demo', 'run a live cross-pool migration on the embedded XAPI '
        'simulator and verify every byte',
        'exit status:\n  0    the demo passed     1    it failed\n'
        '  130  cancelled (Ctrl-C): the simulator is stopped\n')
    return parser


def load_conf(path=None):
    conf_ = cfg.ConfigOpts()
    conf_.register_opts(conf.XAPI_OPTS + conf.MIGRATION_OPTS, group='sxm')
    conf_(args=[], project='sxm', default_config_files=[path] if path
          else [])
    return conf_.sxm


safe_url = sessions.safe_url


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


def _log_in(pool, which):
    """Log in once now: bad credentials fail before any other prompt.

    The refusal names its pool (``SessionPool(label=...)``).
    """
    with pool.session():
        pass


def _pools(args, opts, dest=True):
    url = args.url or opts.connection_url
    if not url:
        raise errors.InvalidInput(reason='Give the source pool master with '
                                  '--url (or SXM_URL, or [sxm] '
                                  'connection_url).')
    username = args.username or opts.connection_username
    password = _password('SXM_PASSWORD', 'Password for %s@%s: '
                         % (username, safe_url(url)),
                         opts.connection_password)
    common = _pool_kwargs(args, opts)
    source = sessions.SessionPool(url, username, password, label='source',
                                  **common)
    dest_url = getattr(args, 'dest_url', None) if dest else None
    if not dest_url or dest_url == url:
        try:
            _log_in(source, 'source')
        except BaseException:
            source.close()
            raise
        return source, source
    dest_user = args.dest_username or username
    prompt = 'Password for %s@%s: ' % (dest_user, safe_url(dest_url))
    try:
        _log_in(source, 'source')
        dest_password = _password('SXM_DEST_PASSWORD', prompt,
                                  password if dest_user == username
                                  else None)
        target = sessions.SessionPool(dest_url, dest_user, dest_password,
                                      label='destination', **common)
    except BaseException:
        source.close()
        raise
    try:
        _log_in(target, 'destination')
    except BaseException:
        source.close()
        target.close()
        raise
    return source, target


def migrator_for(source, dest, opts):
    return migrate.Migrator(
        source, dest, seconds_per_gib=opts.seconds_per_gib,
        minimum_timeout=opts.minimum_timeout,
        stall_timeout=opts.stall_timeout,
        slots=migrate.HostSlots(opts.max_concurrent_storage_migrations,
                                lock_path=opts.lock_path),
        too_many_retries=opts.too_many_migrates_retries,
        too_many_interval=opts.too_many_migrates_interval,
        # A killed CLI must not leave its migrate_receive token alive.
        custodian=fleet.custodian_for(source, dest))


def _choices(args):
    return dict(dest_host=args.dest_host, sr=args.sr,
                sr_map=_pairs(args.sr_map, '--sr-map'), tier=args.tier,
                network_map=_pairs(args.network_map, '--network-map'),
                migration_network=args.migration_network)


# -- signals -----------------------------------------------------------------

class SignalGuard(object):
    """While active, SIGINT and SIGTERM are only counted.

    The handler takes no lock at all (a handler runs between two bytecodes
    of the main thread, maybe while that thread holds the very lock it
    would want): ``wait``, in the main thread, sets ``cancel`` and reports
    the signals. Outside the main thread (an embedding program) it
    installs nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, cancel=None):
        self.cancel = cancel if cancel is not None else threading.Event()
        self.count = 0
        self._announced = 0
        self._previous = {}

    def _handler(self, signum, frame):
        self.count += 1

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        return False

    def new_signals(self):
        """How many signals came since the last call."""
        count = self.count
        new, self._announced = count - self._announced, count
        return new

    def wait(self, done, on_first, on_again, poll=0.2):
        """Wait for ``done``; call on_first()/on_again() as signals come.

        ``poll`` only bounds how late a signal is reported: ``done`` wakes
        the wait at once.
        """
        while not done.wait(poll):
            self._report(on_first, on_again)
        self._report(on_first, on_again)

    def _report(self, on_first, on_again):
        before = self._announced
        new = self.new_signals()
        if new:
            self.cancel.set()
        for i in range(new):
            (on_first if before + i == 0 else on_again)()


def run_worker(fn, guard, on_first, on_again):
    """Run ``fn()`` in a thread until it returns; ('result'|'error', x).

    The main thread only waits on an Event the worker sets when it ends,
    reporting signals meanwhile; ``fn`` watches ``guard.cancel``.
    """
    done = threading.Event()
    outcome = {}

    def work():
        try:
            outcome['result'] = fn()
        except BaseException as exc:  # reported by the caller, whatever
            outcome['error'] = exc
        finally:
            done.set()

    worker = threading.Thread(target=work, name='sxm-worker', daemon=True)
    worker.start()
    guard.wait(done, on_first, on_again)
    worker.join()
    if 'error' in outcome:
        return 'error', outcome['error']
    return 'result', outcome['result']


# -- migrate -----------------------------------------------------------------

def cancelled_message(vm_name, state, dest_name, cross_pool=True):
    """One line: what a cancelled migration left, from a StateReport."""
    if state is None:
        return ('Cancelled: the state of VM %r is unknown; check it with '
                '`sxm plan`.' % vm_name)
    if state.source_vm == 'Running':
        text = 'Cancelled: VM %r keeps running on %s with its disks' % (
            vm_name, state.source_host or 'its host')
    else:
        text = 'Cancelled: VM %r is %s%s' % (
            vm_name, state.source_vm,
            ' on %s' % state.source_host if state.source_host else '')
    where = 'pool %s' % dest_name if cross_pool else 'the target SRs'
    left = []
    if cross_pool and state.dest_vm != 'none':
        left.append('a VM (%s) is in %s' % (state.dest_vm, where))
    if state.new_vdis:
        left.append('VDIs left on the target SRs (check them): %s'
                    % ', '.join(state.new_vdis))
    if left:
        return '%s; %s.' % (text, '; '.join(left))
    return '%s; nothing was left in %s.' % (text, where)


def _state_json(state):
    if state is None:
        return None
    return {'source_vm': state.source_vm, 'source_host': state.source_host,
            'dest_vm': state.dest_vm, 'new_vdis': list(state.new_vdis)}


def fail(console, status, message, **extra):
    """Report an error (stderr, and stdout as JSON with --json)."""
    console.error(message)
    if console.as_json:
        doc = {'error': str(message), 'exit': status}
        doc.update(extra)
        console.json(doc)
    return status


def run_migration(migrator, the_plan, console, receipt=None):
    """Migrate with progress; SIGINT/SIGTERM cancel. Returns exit status.

    ``receipt`` is the migrate_receive answer the check used (the
    migration logs it out); without one the migration asks for it.
    """
    bar = console.plan_bar(the_plan)
    vm_name = the_plan.vm.name

    def first():
        console.note('Cancelling the migration (the source VM keeps '
                     'running)...', always=True)

    def again():
        console.note('The migration is already being cancelled: waiting '
                     'for XAPI to end it, so that nothing is left behind.',
                     always=True)

    with SignalGuard() as guard:
        kind, value = run_worker(
            lambda: migrator.migrate(the_plan, bar, guard.cancel,
                                     receipt=receipt),
            guard, first, again)
        bar.close()
    cancelled = guard.cancel.is_set()
    if kind == 'error':
        exc = value
        state = getattr(exc, 'state', None)
        if isinstance(exc, errors.MigrationFailed):
            _clean_destination(migrator, the_plan, console)
        if cancelled:
            return fail(console, EXIT_CANCELLED, cancelled_message(
                vm_name, state, the_plan.dest.name, the_plan.cross_pool),
                state=_state_json(state))
        if not isinstance(exc, Exception):
            raise exc
        return fail(console, EXIT_FAILED, exc, state=_state_json(state))
    result = value
    if cancelled:
        console.note('The cancel came too late: the migration had already '
                     'finished.', always=True)
    if console.as_json:
        console.json({'plan': progressmod.plan_json(the_plan, []),
                      'result': progressmod.result_json(the_plan, result)})
    else:
        console.result(progressmod.summary(the_plan, result))
    return EXIT_FAILED if result.warnings else EXIT_OK


def _clean_destination(migrator, the_plan, console):
    """After a failure: remove what xapi left at the destination."""
    try:
        removed = migrator.cleanup_destination(the_plan)
    except errors.SxmError as exc:
        console.note('Could not clean up the destination: %s' % exc,
                     always=True)
        return
    if removed:
        console.note('Removed what the migration left at the destination: '
                     '%s.' % ', '.join(removed), always=True)


def _plan_and_migrate(args, console, opts, source, dest):
    migrator = migrator_for(source, dest, opts)
    the_plan, problems = migrator.plan(args.vm, **_choices(args))
    if (args.command == 'migrate' and the_plan.nothing_to_move
            and not planmod.blocking(problems)):
        # In-pool with every disk in place: no empty VM.migrate_send.
        if console.as_json:
            console.json({'plan': progressmod.plan_json(the_plan, problems),
                          'result': None, 'nothing_to_move': True})
        else:
            if not console.quiet:
                console.result(planmod.format_plan(the_plan, problems))
            console.result('Nothing to migrate.')
        return EXIT_OK
    receipt = None
    try:
        if not planmod.blocking(problems):
            # The destination half, once: the check and the migration
            # share this migrate_receive token.
            receipt = migrator.receive(the_plan)
            problems = migrator.check(the_plan, receipt)
        return _checked(args, console, migrator, the_plan, problems,
                        receipt)
    finally:
        if receipt is not None and args.command == 'plan':
            receipt.release()


def _checked(args, console, migrator, the_plan, problems, receipt):
    blocked = planmod.blocking(problems)
    if args.command == 'plan':
        if console.as_json:
            console.json(progressmod.plan_json(the_plan, problems))
        else:
            console.result(planmod.format_plan(the_plan, problems))
        if blocked:
            console.error('The plan cannot run: %d problem(s) above.'
                          % len(blocked))
            return EXIT_BAD_INPUT
        return EXIT_OK
    if blocked:
        if receipt is not None:
            receipt.release()
        if not console.as_json:
            console.result(planmod.format_plan(the_plan, problems))
        return fail(console, EXIT_BAD_INPUT,
                    errors.PreflightFailed(blocked),
                    plan=progressmod.plan_json(the_plan, problems))
    if not console.as_json and not console.quiet:
        console.result(planmod.format_plan(the_plan, problems) + '\n')
    try:
        return run_migration(migrator, the_plan, console, receipt)
    finally:
        if receipt is not None:
            receipt.release()  # a no-op once the migration took it


# -- list, watch, cancel, drain ---------------------------------------------

def _age(created, now=None):
    """Seconds since an ISO 8601 UTC time, or None."""
    try:
        when = datetime.datetime.fromisoformat(str(created).replace(
            'Z', '+00:00'))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (now - when).total_seconds())


def human_seconds(seconds):
    if seconds is None:
        return '-'
    seconds = int(seconds)
    if seconds < 60:
        return '%ds' % seconds
    if seconds < 3600:
        return '%dm%02ds' % divmod(seconds, 60)
    return '%dh%02dm' % (seconds // 3600, seconds % 3600 // 60)


def _info_json(info):
    return {'task_uuid': info.task_uuid, 'task_ref': info.task_ref,
            'vm_uuid': info.vm_uuid or None, 'vm_name': info.vm_name or None,
            'host': info.host_name or None,
            'progress': round(info.progress, 4), 'status': info.status,
            'created': info.created, 'age_seconds': _age(info.created)}


def _list(args, console, opts, source, dest):
    infos = fleet.list_migrations(source)
    if console.as_json:
        console.json({'pool': safe_url(source.url),
                      'migrations': [_info_json(i) for i in infos]})
        return EXIT_OK
    if not infos:
        console.result('No storage migration is running in the pool at %s.'
                       % safe_url(source.url))
        return EXIT_OK
    rows = [('TASK', 'VM', 'VM UUID', 'HOST', 'PROGRESS', 'STATUS', 'AGE')]
    for i in infos:
        rows.append((i.task_uuid, i.vm_name or '-', i.vm_uuid or '-',
                     i.host_name or '-', '%d%%' % int(100 * i.progress),
                     i.status, human_seconds(_age(i.created))))
    console.result('\n'.join(progressmod.table(rows)))
    return EXIT_OK


def _outcome_json(outcome):
    return {'migration': _info_json(outcome.info), 'status': outcome.status,
            'error': str(outcome.error) if outcome.error else None,
            'source_vm': outcome.source_vm}


def _watch(args, console, opts, source, dest):
    info = fleet.find_migration(source, args.ident)
    detached = threading.Event()
    done = threading.Event()
    outcome = {}

    def work(bar):
        try:
            outcome['value'] = fleet.watch(
                source, info, progress=lambda f: bar.update(
                    f * 100, 'copying' if f < 0.9 else 'finishing'),
                stop=detached)
        except BaseException as exc:  # reported below, whatever
            outcome['error'] = exc
        finally:
            done.set()

    # The guard's Event is not the migration's: a signal only detaches.
    with SignalGuard(threading.Event()) as guard:
        console.note('Watching the %s (Ctrl-C detaches; it does not '
                     'cancel).' % info.label())
        bar = console.bar(100, info.vm_name or info.task_uuid, unit='%')
        worker = threading.Thread(target=work, args=(bar,),
                                  name='sxm-watch', daemon=True)
        worker.start()
        # Either the migration ends or the operator detaches.
        guard.wait(_Either(done, guard), detached.set, lambda: None)
        if detached.is_set():
            # The watch notices within one event.from and logs its
            # private session out; a second Ctrl-C stops waiting for it.
            guard.wait(_Either(done, guard, after=guard.count), lambda: None,
                       lambda: None)
        bar.close()
    if detached.is_set() and 'value' not in outcome and isinstance(
            outcome.get('error'), (errors.Detached, type(None))):
        return fail(console, EXIT_CANCELLED, 'Detached: the %s goes on '
                    '(not cancelled); `sxm watch %s` follows it again.'
                    % (info.label(), info.task_uuid))
    if 'error' in outcome:
        exc = outcome['error']
        if not isinstance(exc, Exception):
            raise exc
        return fail(console, EXIT_FAILED, exc)
    result = outcome['value']
    if console.as_json:
        console.json(_outcome_json(result))
    else:
        console.result(result.describe())
    return EXIT_OK if result.ok else EXIT_FAILED


class _Either(object):
    """Ends a SignalGuard wait when ``done`` is set or a signal came."""

    def __init__(self, done, guard, after=0):
        self.done = done
        self.guard = guard
        self.after = after

    def wait(self, timeout):
        return self.done.wait(timeout) or self.guard.count > self.after


def _cancel(args, console, opts, source, dest):
    info = fleet.find_migration(source, args.ident)
    console.note('Cancelling the %s...' % info.label())

    def again():
        console.note('The cancel is already requested: waiting for XAPI to '
                     'end the migration.', always=True)

    # Ctrl-C while XAPI winds the migration down only says so.
    with SignalGuard() as guard:
        kind, value = run_worker(lambda: fleet.cancel(source, info), guard,
                                 again, again)
    if kind == 'error':
        if not isinstance(value, Exception):
            raise value
        return fail(console, EXIT_FAILED, value)
    if console.as_json:
        console.json(_outcome_json(value))
    if value.status == 'cancelled':
        if not console.as_json:
            console.result('Cancelled the %s; the source VM is %s.'
                           % (info.label(), value.source_vm or 'unknown'))
        return EXIT_OK
    if not console.as_json:
        if value.ok:
            console.result('Too late to cancel: the %s had passed the '
                           'point of no return and succeeded.'
                           % info.label())
        else:
            console.result(value.describe())
    return EXIT_FAILED


class _DrainView(object):
    """Progress lines (one bar per VM on a terminal) and the outcomes."""

    def __init__(self, console, names):
        self.console = console
        self.position = {name: i for i, name in enumerate(names)}
        self.bars = {}
        self.started = {}
        self.ended = {}
        self.lock = threading.Lock()

    def progress(self, name, progress):
        with self.lock:
            bar = self.bars.get(name)
            if bar is None:
                self.started.setdefault(name, time.monotonic())
                bar = self.bars[name] = self.console.bar(
                    progress.bytes_total, name,
                    position=self.position.get(name))
        bar.update(progress.bytes_done, progressmod.describe(progress))

    def done(self, name, value):
        with self.lock:
            self.ended[name] = time.monotonic()
            bar = self.bars.get(name)
        if bar is not None:
            bar.close()
        if isinstance(value, Exception):
            self.console.note('%s: FAILED: %s' % (name, one_line(value)))
        else:
            self.console.note('%s: moved in %.1f s' % (name, value.seconds))

    def close(self):
        for bar in list(self.bars.values()):
            bar.close()

    def seconds(self, name):
        if name in self.started and name in self.ended:
            return self.ended[name] - self.started[name]
        return None


def one_line(exc):
    """A multi-line error message as one table cell."""
    lines = [line.strip().lstrip('- ') for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(exc).__name__
    head, rest = lines[0], lines[1:]
    if head.endswith(':') and rest:
        return '%s %s' % (head, '; '.join(rest))
    return '; '.join(lines)


def _drain_rows(outcomes, view, cancelled):
    rows = []
    for o in outcomes:
        if o.ok:
            state, seconds = 'moved', o.result.seconds
            nbytes, message = o.result.bytes_planned, '; '.join(
                o.result.warnings)
        else:
            state = o.status
            if cancelled and state == 'failed' and \
                    o.vm_name not in view.started:
                state = 'skipped'
            seconds, nbytes = view.seconds(o.vm_name), None
            message = one_line(o.error)
        rows.append({'vm_name': o.vm_name, 'vm_uuid': o.vm_uuid,
                     'outcome': state, 'seconds': seconds, 'bytes': nbytes,
                     'message': message})
    return rows


def _drain(args, console, opts, source, dest):
    if args.concurrency < 1:
        raise errors.InvalidInput(reason='--concurrency must be at least '
                                  '1.')
    if dest is source and not args.dest_host:
        raise errors.InvalidInput(
            reason='Give --dest-url (another pool) or --dest-host (another '
                   'host of this pool): a drain moves the VMs off host %s.'
                   % args.host)
    names = [name for _, name, _ in fleet.running_vms(source, args.host)]
    view = _DrainView(console, names)
    migrator = migrator_for(source, dest, opts)

    def first():
        console.note('Cancelling the running migrations and skipping the '
                     'rest (the source VMs keep running)...', always=True)

    def again():
        console.note('The drain is already being cancelled: waiting for '
                     'XAPI to end the running migrations.', always=True)

    with SignalGuard() as guard:
        kind, value = run_worker(
            lambda: fleet.drain(source, dest, args.host, _choices(args),
                                args.concurrency,
                                on_progress=view.progress,
                                on_done=view.done, cancel=guard.cancel,
                                migrator=migrator),
            guard, first, again)
        view.close()
    if kind == 'error':
        if not isinstance(value, Exception):
            raise value
        return fail(console, EXIT_FAILED, value)
    cancelled = guard.cancel.is_set()
    rows = _drain_rows(value, view, cancelled)
    moved = sum(r['outcome'] == 'moved' for r in rows)
    if console.as_json:
        console.json({'host': args.host, 'moved': moved,
                      'not_moved': len(rows) - moved, 'vms': rows})
    elif not rows:
        console.result('No running VM on host %s: nothing to drain.'
                       % args.host)
    else:
        table = [('VM', 'OUTCOME', 'TIME', 'BYTES', 'MESSAGE')]
        for r in rows:
            table.append((r['vm_name'], r['outcome'],
                          human_seconds(r['seconds']),
                          planmod.human_bytes(r['bytes'])
                          if r['bytes'] is not None else '-',
                          r['message'] or ''))
        console.result('\n'.join(progressmod.table(table)))
        console.result('%d of %d VM(s) moved off host %s.'
                       % (moved, len(rows), args.host))
    if cancelled:
        console.error('Drain cancelled: %d moved, %d not.'
                      % (moved, len(rows) - moved))
        return EXIT_CANCELLED
    return EXIT_OK if moved == len(rows) else EXIT_FAILED


COMMANDS = {'plan': _plan_and_migrate, 'migrate': _plan_and_migrate,
            'list': _list, 'watch': _watch, 'cancel': _cancel,
            'drain': _drain}
# Commands that talk to a destination pool too.
TWO_POOLS = {'plan', 'migrate', 'drain'}


def main(argv=None, out=None, err=None):
    parser = _parser()
    args = parser.parse_args(argv)
    console = progressmod.Console(out, err, quiet=args.quiet,
                                  as_json=getattr(args, 'as_json', False))
    progressmod.setup_logging(args.debug, console.err)
    if args.command == 'demo':
        from sxm_core import demo  # the only place the simulator is used
        try:
            return demo.run(console)
        except errors.SxmError as exc:
            return fail(console, EXIT_FAILED, 'The demo failed: %s' % exc)
    source = dest = None
    try:
        opts = load_conf(args.config_file)
        source, dest = _pools(args, opts, dest=args.command in TWO_POOLS)
        return COMMANDS[args.command](args, console, opts, source, dest)
    except (errors.SxmError, argparse.ArgumentTypeError, ValueError,
            cfg.Error) as exc:
        return fail(console, EXIT_BAD_INPUT, exc)
    except KeyboardInterrupt:
        # SignalGuard covers every migration: none was running.
        return fail(console, EXIT_CANCELLED, 'Interrupted (no migration '
                    'was running).')
    finally:
        for pool in {id(p): p for p in (source, dest) if p}.values():
            pool.close()


if __name__ == '__main__':
    sys.exit(main())
