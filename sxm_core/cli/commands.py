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

"""The ``sxm`` subcommands: plan, migrate, list, watch, cancel, drain.

Each takes (args, console, opts, source, dest) and returns the exit
status. Long waits run in a worker thread under a ``SignalGuard``.
"""

import threading

from sxm_core.cli import console as consolemod
from sxm_core.cli import formats
from sxm_core.cli import parser
from sxm_core.cli import pools
from sxm_core.cli import signals
from sxm_core import errors
from sxm_core import fleet
from sxm_core import plan as planmod
from sxm_core import sessions

fail = consolemod.fail
EXIT_OK = consolemod.EXIT_OK
EXIT_FAILED = consolemod.EXIT_FAILED
EXIT_BAD_INPUT = consolemod.EXIT_BAD_INPUT
EXIT_CANCELLED = consolemod.EXIT_CANCELLED


# -- plan, migrate -----------------------------------------------------------

def run_migration(migrator, the_plan, console, lease=None):
    """Migrate with progress; SIGINT/SIGTERM cancel. Returns exit status.

    ``lease`` is the migrate_receive token ``Migrator.prepare`` checked
    the plan with; without one the migration asks for one.
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

    with signals.SignalGuard() as guard:
        kind, value = signals.run_worker(
            lambda: migrator.migrate(the_plan, bar, guard.cancel,
                                     lease=lease),
            guard, first, again)
        bar.close()
    cancelled = guard.cancel.is_set()
    if kind == 'error':
        exc = value
        state = getattr(exc, 'state', None)
        if isinstance(exc, errors.MigrationFailed):
            _clean_destination(migrator, the_plan, console)
        if cancelled:
            return fail(console, EXIT_CANCELLED, formats.cancelled_message(
                vm_name, state, the_plan.dest.name, the_plan.cross_pool),
                state=formats.state_json(state))
        if not isinstance(exc, Exception):
            raise exc
        return fail(console, EXIT_FAILED, exc,
                    state=formats.state_json(state))
    result = value
    if cancelled:
        console.note('The cancel came too late: the migration had already '
                     'finished.', always=True)
    if console.as_json:
        console.json({'plan': formats.plan_json(the_plan, []),
                      'result': formats.result_json(the_plan, result)})
    else:
        console.result(formats.summary(the_plan, result))
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


def plan_and_migrate(args, console, opts, source, dest):
    migrator = pools.migrator_for(source, dest, opts)
    the_plan, problems = migrator.plan(args.vm, **parser.choices(args))
    if (args.command == 'migrate' and the_plan.nothing_to_move
            and not planmod.blocking(problems)):
        # In-pool with every disk in place: no empty VM.migrate_send.
        if console.as_json:
            console.json({'plan': formats.plan_json(the_plan, problems),
                          'result': None, 'nothing_to_move': True})
        else:
            if not console.quiet:
                console.result(formats.format_plan(the_plan, problems))
            console.result('Nothing to migrate.')
        return EXIT_OK
    # The destination half, once: the check and the migration share
    # this migrate_receive token.
    problems, lease = migrator.prepare(the_plan)
    try:
        return _checked(args, console, migrator, the_plan, problems, lease)
    finally:
        if lease is not None:
            lease.release()  # a no-op once a migration holds it


def _checked(args, console, migrator, the_plan, problems, lease):
    blocked = planmod.blocking(problems)
    if args.command == 'plan':
        if console.as_json:
            console.json(formats.plan_json(the_plan, problems))
        else:
            console.result(formats.format_plan(the_plan, problems))
        if blocked:
            console.error('The plan cannot run: %d problem(s) above.'
                          % len(blocked))
            return EXIT_BAD_INPUT
        return EXIT_OK
    if blocked:
        if not console.as_json:
            console.result(formats.format_plan(the_plan, problems))
        return fail(console, EXIT_BAD_INPUT,
                    errors.PreflightFailed(blocked),
                    plan=formats.plan_json(the_plan, problems))
    if not console.as_json and not console.quiet:
        console.result(formats.format_plan(the_plan, problems) + '\n')
    return run_migration(migrator, the_plan, console, lease)


# -- list, watch, cancel -----------------------------------------------------

def list_migrations(args, console, opts, source, dest):
    infos = fleet.list_migrations(source)
    where = sessions.safe_url(source.url)
    if console.as_json:
        console.json({'pool': where,
                      'migrations': [formats.info_json(i) for i in infos]})
        return EXIT_OK
    if not infos:
        console.result('No storage migration is running in the pool at %s.'
                       % where)
        return EXIT_OK
    rows = [('TASK', 'VM', 'VM UUID', 'HOST', 'PROGRESS', 'STATUS', 'AGE')]
    for i in infos:
        rows.append((i.task_uuid, i.vm_name or '-', i.vm_uuid or '-',
                     i.host_name or '-', '%d%%' % int(100 * i.progress),
                     i.status, formats.human_seconds(formats.age(i.created))))
    console.result('\n'.join(formats.table(rows)))
    return EXIT_OK


def watch(args, console, opts, source, dest):
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
    with signals.SignalGuard(threading.Event()) as guard:
        console.note('Watching the %s (Ctrl-C detaches; it does not '
                     'cancel).' % info.label())
        bar = console.bar(100, info.vm_name or info.task_uuid, unit='%')
        worker = threading.Thread(target=work, args=(bar,),
                                  name='sxm-watch', daemon=True)
        worker.start()
        # Either the migration ends or the operator detaches.
        guard.wait(signals.Either(done, guard), detached.set, lambda: None)
        if detached.is_set():
            # The watch notices within one event.from and lets go of its
            # session; a second Ctrl-C stops waiting for it.
            guard.wait(signals.Either(done, guard, after=guard.count),
                       lambda: None, lambda: None)
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
        console.json(formats.outcome_json(result))
    else:
        console.result(result.describe())
    return EXIT_OK if result.ok else EXIT_FAILED


def cancel(args, console, opts, source, dest):
    info = fleet.find_migration(source, args.ident)
    console.note('Cancelling the %s...' % info.label())

    def again():
        console.note('The cancel is already requested: waiting for XAPI to '
                     'end the migration.', always=True)

    # Ctrl-C while XAPI winds the migration down only says so.
    with signals.SignalGuard() as guard:
        kind, value = signals.run_worker(
            lambda: fleet.cancel(source, info), guard, again, again)
    if kind == 'error':
        if not isinstance(value, Exception):
            raise value
        return fail(console, EXIT_FAILED, value)
    if console.as_json:
        console.json(formats.outcome_json(value))
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


# -- drain -------------------------------------------------------------------

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
            message = formats.one_line(o.error)
        rows.append({'vm_name': o.vm_name, 'vm_uuid': o.vm_uuid,
                     'outcome': state, 'seconds': seconds, 'bytes': nbytes,
                     'message': message})
    return rows


def drain(args, console, opts, source, dest):
    if args.concurrency < 1:
        raise errors.InvalidInput(reason='--concurrency must be at least '
                                  '1.')
    if dest is source and not args.dest_host:
        raise errors.InvalidInput(
            reason='Give --dest-url (another pool) or --dest-host (another '
                   'host of this pool): a drain moves the VMs off host %s.'
                   % args.host)
    names = [name for _, name, _ in fleet.running_vms(source, args.host)]
    view = consolemod.DrainView(console, names)
    migrator = pools.migrator_for(source, dest, opts)

    def first():
        console.note('Cancelling the running migrations and skipping the '
                     'rest (the source VMs keep running)...', always=True)

    def again():
        console.note('The drain is already being cancelled: waiting for '
                     'XAPI to end the running migrations.', always=True)

    with signals.SignalGuard() as guard:
        kind, value = signals.run_worker(
            lambda: fleet.drain(source, dest, args.host,
                                parser.choices(args), args.concurrency,
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
                          formats.human_seconds(r['seconds']),
                          formats.human_bytes(r['bytes'])
                          if r['bytes'] is not None else '-',
                          r['message'] or ''))
        console.result('\n'.join(formats.table(table)))
        console.result('%d of %d VM(s) moved off host %s.'
                       % (moved, len(rows), args.host))
    if cancelled:
        console.error('Drain cancelled: %d moved, %d not.'
                      % (moved, len(rows) - moved))
        return EXIT_CANCELLED
    return EXIT_OK if moved == len(rows) else EXIT_FAILED


COMMANDS = {'plan': plan_and_migrate, 'migrate': plan_and_migrate,
            'list': list_migrations, 'watch': watch, 'cancel': cancel,
            'drain': drain}
# Commands that talk to a destination pool too.
TWO_POOLS = {'plan', 'migrate', 'drain'}
