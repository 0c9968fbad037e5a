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

"""The storage migrations of a pool: list, watch, cancel, drain a host.

A storage migration is an XAPI task: ``Async.VM.migrate_send`` (or
``Async.VDI.pool_migrate``, which xapi runs as a migrate_send of the VM),
named so in the task's ``name_label``, and linked to its VM by the VM's
``current_operations`` (task ref -> ``migrate_send``). The task runs on in
XAPI whatever happens to the client that started it, so any client can
find it again (``list_migrations``, ``find_migration``), follow it
(``watch``) or stop it (``cancel``). ``drain`` moves every running VM off
a host with bounded concurrency.

The migrate_receive token (see ``sxm_core.lease``) of a migration this
process started is ended by whoever here sees its task end: the
Migrator's own wait, or ``watch``/``cancel`` given the Migrator's
``leases`` book after the wait lost contact. A process killed
mid-migration takes the token with it; to keep such a death from leaving
anything of its own behind in the destination pool, the Migrator logs
out its idle destination sessions before the long wait, and the CLI
hands the token to a *custodian* (``Custodian``): a small child process
in a session of its own that got the token through a pipe (never argv,
environment or disk), watches the task with event.from and logs the
token out when the task has ended, even after its parent was killed.
When the parent ends the lease itself it tells the custodian, which then
just exits.

An owning service (nova-compute) must not leave a migration running
that nothing will finish on its side: its custodian (``owner_custodian_for``)
is also a watchdog. When its parent dies (EOF on the pipe) or it is told
to go (SIGTERM or SIGINT: systemd stops every process of a service's
cgroup once the main one died) while the task runs, it cancels the task,
follows it to its end, removes what the destination pool got
(``cleanup.cleanup_destination``, from the public facts of the plan),
removes the owner's marker from the source VM's ``other_config``,
destroys the task and logs the token out. Past xapi's point of no return
the cancel is refused and the migration completes: the owner's
reconciliation at its next start deals with that. A parent that dies
just after the task ended leaves the task to the custodian too: it
destroys it (and cleans the destination after a failure).
"""

import concurrent.futures
import dataclasses
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time

from sxm_core import cleanup
from sxm_core import constants
from sxm_core import errors
from sxm_core import migrate
from sxm_core import plan as planmod
from sxm_core import redact
from sxm_core import retry
from sxm_core import sessions
from sxm_core import tasks

LOG = redact.get_logger(__name__)
NULL = constants.OPAQUE_NULL
# The task names of storage migrations (xapi's Async task name_label).
STORAGE_TASKS = ('Async.VM.migrate_send', 'Async.VDI.pool_migrate')
STORAGE_OPERATION = 'migrate_send'
RUNNING = (constants.TASK_PENDING, constants.TASK_CANCELLING)


@dataclasses.dataclass(frozen=True)
class MigrationInfo:
    """One storage migration task, as XAPI shows it."""

    task_ref: str
    task_uuid: str
    vm_ref: str             # NULL when no VM claims the task
    vm_uuid: str
    vm_name: str
    host_name: str          # the VM's host when the list was read
    progress: float         # 0..1
    status: str             # pending, cancelling, success, ...
    created: str            # the task's creation time (ISO 8601, UTC)
    name_label: str = ''    # the task's, e.g. Async.VM.migrate_send
    host_uuid: str = ''
    cancellable: bool = False

    def label(self):
        if self.vm_name:
            return "migration of VM '%s' (%s), task %s" % (
                self.vm_name, self.vm_uuid, self.task_uuid)
        return 'storage migration task %s' % self.task_uuid


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a storage migration ended.

    ``status`` is xapi's: success, failure or cancelled. ``vm_ref`` is the
    VM in the destination pool after a success; ``error`` the typed
    ``errors.XapiFailure`` of a failure or a cancel; ``source_vm`` the
    source VM's power state after a cancel ('gone' when it no longer
    exists), else None.
    """

    info: MigrationInfo
    status: str
    vm_ref: object = None
    error: object = None
    source_vm: object = None

    @property
    def ok(self):
        return self.status == constants.TASK_SUCCESS

    def describe(self):
        if self.ok:
            return '%s succeeded.' % _capital(self.info.label())
        text = '%s ended %s: %s' % (_capital(self.info.label()),
                                    self.status, self.error)
        if self.source_vm is not None:
            text += ' The source VM is %s.' % self.source_vm
        return text


@dataclasses.dataclass(frozen=True)
class DrainOutcome:
    """One VM of a drain: ``result`` (migrate.Result) or ``error``.

    ``status`` says which: 'moved'; 'skipped' (the drain was cancelled
    before this VM started: nothing was done to it); 'cancelled' (its
    migration was cancelled before the point of no return: it runs on at
    the source); 'failed'.
    """

    vm_name: str
    vm_uuid: str
    result: object = None
    error: object = None

    @property
    def ok(self):
        return self.error is None

    @property
    def status(self):
        if self.error is None:
            return 'moved'
        if isinstance(self.error, errors.DrainSkipped):
            return 'skipped'
        if isinstance(self.error, (errors.MigrationCancelled,
                                   errors.Cancelled)):
            return 'cancelled'
        return 'failed'

    @property
    def skipped(self):
        return self.status == 'skipped'

    @property
    def cancelled(self):
        return self.status == 'cancelled'


def _capital(text):
    return text[:1].upper() + text[1:]


def _created(value):
    # XML-RPC DateTime ('20261201T20:56:04Z') or a plain string.
    text = str(getattr(value, 'value', value) or '')
    if len(text) >= 17 and text[8] == 'T' and '-' not in text[:8]:
        text = '%s-%s-%sT%s' % (text[:4], text[4:6], text[6:8], text[9:])
    return text


def _info(task_ref, task, vm_ref, vm, host):
    return MigrationInfo(
        task_ref=task_ref, task_uuid=task['uuid'],
        vm_ref=vm_ref or NULL, vm_uuid=vm['uuid'] if vm else '',
        vm_name=vm['name_label'] if vm else '',
        host_name=host['name_label'] if host else '',
        progress=float(task.get('progress') or 0.0),
        status=task['status'], created=_created(task.get('created')),
        name_label=task.get('name_label', ''),
        host_uuid=host['uuid'] if host else '',
        cancellable='cancel' in (task.get('allowed_operations') or ()))


def _read(pool):
    with pool.session() as x:
        all_tasks = x.task.get_all_records()
        vms = x.VM.get_all_records()
        hosts = x.host.get_all_records()
    owner = {}
    for ref, vm in vms.items():
        for task_ref, op in (vm.get('current_operations') or {}).items():
            if op == STORAGE_OPERATION:
                owner[task_ref] = ref
    return all_tasks, vms, hosts, owner


def _migrations(pool, finished=False):
    all_tasks, vms, hosts, owner = _read(pool)
    out = []
    for ref, task in all_tasks.items():
        vm_ref = owner.get(ref)
        if task.get('status') not in RUNNING and not finished:
            continue
        if task.get('name_label') not in STORAGE_TASKS and vm_ref is None:
            continue
        vm = vms.get(vm_ref)
        host = hosts.get(vm['resident_on']) if vm else None
        out.append(_info(ref, task, vm_ref, vm, host))
    out.sort(key=lambda i: (i.created, i.task_uuid))
    return out


def list_migrations(pool):
    """[MigrationInfo] of the storage migrations running in ``pool``.

    Oldest first. A task of a VM that just finished its migration may be
    missing its VM (``vm_ref`` NULL).
    """
    return _migrations(pool)


def find_migration(pool, ident):
    """The storage migration of task or VM ``ident``.

    ``ident`` is a task uuid or ref, or a VM uuid, ref or name label. A
    VM's migration must be running; a task named by uuid or ref may have
    ended (its client died or lost contact before destroying it): then
    ``watch`` reports how it ended. Raises ``errors.MigrationNotFound``
    (or ``errors.Ambiguous`` when a VM name matches several migrations).
    """
    every = _migrations(pool, finished=True)
    running = [i for i in every if i.status in RUNNING]
    exact = [i for i in running
             if ident in (i.task_uuid, i.task_ref, i.vm_uuid, i.vm_ref)]
    exact += [i for i in every if ident in (i.task_uuid, i.task_ref)]
    if exact:
        return exact[0]
    named = [i for i in running if i.vm_name == ident]
    if len(named) > 1:
        raise errors.Ambiguous(count=len(named), kind='migrating VM',
                               name=ident, pool=pool.url)
    if named:
        return named[0]
    raise errors.MigrationNotFound(name=ident, pool=pool.url)


def watch(pool, info, progress=None, cancel=None, stop=None, leases=None):
    """Follow a migration to its end; returns its ``Outcome``.

    ``progress(fraction)`` is called as it moves; setting the
    ``threading.Event`` ``cancel`` cancels the migration; setting ``stop``
    only stops watching (the session it waited on is given back, or
    logged out if it was its own) and raises
    ``errors.Detached``: the migration goes on. Raises
    ``errors.ContactLost`` when the pool goes silent (the task may still
    run) and ``errors.TaskVanished`` when the task vanished. ``leases``
    (a ``lease.Leases``, e.g. the Migrator's that started the task):
    when it holds the task's migrate_receive token (this process's own
    migration, after a lost contact), the token is ended once the task
    has ended.
    """
    watcher = tasks.Watch(progress=progress, cancel=cancel, stop=stop)
    try:
        value = tasks.wait_task(pool, info.task_ref, info.label(),
                                watch=watcher, call='VM.migrate_send')
    except (errors.ContactLost, errors.Detached):
        raise
    except errors.XapiFailure as exc:
        _end_lease(leases, info)
        status = (constants.TASK_CANCELLED
                  if isinstance(exc, errors.TaskCancelled)
                  else constants.TASK_FAILURE)
        return Outcome(info, status, error=exc)
    _end_lease(leases, info)
    return Outcome(info, constants.TASK_SUCCESS, vm_ref=value)


def _end_lease(leases, info):
    if leases is not None:
        leases.end(info.task_ref)


def cancel(pool, info, leases=None):
    """Cancel a migration and wait for its end; returns its ``Outcome``.

    Past the point of no return xapi refuses (OPERATION_NOT_ALLOWED or the
    task no longer allows ``cancel``): then the migration is followed to
    its end and the outcome says how it really ended. ``source_vm`` says
    what became of the source VM. ``leases``: as for ``watch``.
    """
    try:
        pool.call('task.cancel', info.task_ref)
    except errors.HandleInvalid:
        raise errors.MigrationNotFound(name=info.task_uuid,
                                       pool=pool.url) from None
    except errors.XapiFailure as exc:
        LOG.warning('XAPI refused to cancel %s: %s', info.label(), exc)
    outcome = watch(pool, info, leases=leases)
    return dataclasses.replace(outcome, source_vm=_power_state(pool, info))


def _power_state(pool, info):
    if info.vm_ref == NULL:
        return None
    try:
        return pool.call('VM.get_power_state', info.vm_ref)
    except errors.HandleInvalid:
        return 'gone'
    except errors.SxmError as exc:
        return 'unknown (%s)' % exc


def running_vms(pool, host):
    """[(ref, name, uuid)] of the running guests of ``host`` (name/uuid)."""
    with pool.session() as x:
        hosts = x.host.get_all_records()
        match = [r for r, h in hosts.items()
                 if host in (r, h['uuid'], h['name_label'])]
        if not match:
            raise errors.NotFound(kind='host', name=host, pool=pool.url)
        if len(match) > 1:
            raise errors.Ambiguous(count=len(match), kind='host', name=host,
                                   pool=pool.url)
        vms = x.VM.get_all_records()
    out = []
    for ref, vm in vms.items():
        if (vm['resident_on'] == match[0]
                and vm['power_state'] == constants.RUNNING
                and not vm['is_control_domain']
                and not vm['is_a_template'] and not vm['is_a_snapshot']):
            out.append((ref, vm['name_label'], vm['uuid']))
    return sorted(out, key=lambda v: (v[1], v[2]))


def _disk_bytes(pool, vms):
    """{VM ref: bytes its disks hold}, what its migration will copy."""
    with pool.session() as x:
        vbds = x.VBD.get_all_records()
        vdis = x.VDI.get_all_records()
    out = {ref: 0 for ref, _, _ in vms}
    for vbd in vbds.values():
        vdi = vdis.get(vbd['VDI'])
        if vbd['VM'] in out and vdi is not None and vbd['type'] != 'CD':
            out[vbd['VM']] += int(vdi['physical_utilisation'])
    return out


def drain(source_pool, dest_pool, host, choices=None, concurrency=2,
          on_progress=None, on_done=None, cancel=None, migrator=None):
    """Migrate every running VM of ``host`` (a name or uuid) away.

    At most ``concurrency`` migrations run at once, and never more than
    the Migrator's ``HostSlots`` allow from the host. ``choices`` are
    ``Migrator.plan``'s keywords (dest_host, sr, sr_map, tier, network_map,
    migration_network), the same for every VM. One VM failing does not
    stop the others. ``on_progress(vm_name, migrate.Progress)`` and
    ``on_done(vm_name, result or exception)`` are called from the worker
    threads. Setting ``cancel`` cancels the running migrations and skips
    the rest. Returns a ``DrainOutcome`` per VM, in the order of the VMs.
    """
    if concurrency < 1:
        raise ValueError('concurrency must be at least 1')
    choices = dict(choices or {})
    migrator = migrator or migrate.Migrator(source_pool, dest_pool)
    cancel = cancel or threading.Event()
    vms = running_vms(source_pool, host)
    LOG.info('Draining %d VM(s) from host %s, %d at a time', len(vms),
             host, concurrency)
    # Largest first (LPT): the tail of the drain is then a few small VMs
    # and the link stays busy until the end.
    size = _disk_bytes(source_pool, vms)
    order = sorted(vms, key=lambda v: -size.get(v[0], 0))

    def one(vm):
        ref, name, uuid = vm
        if cancel.is_set():
            return DrainOutcome(name, uuid,
                                error=errors.DrainSkipped(vm=name))
        try:
            the_plan, _ = migrator.plan(ref, **choices)
            # One migrate_receive for the check and the migration.
            problems, held = migrator.prepare(the_plan)
            if planmod.blocking(problems):
                raise errors.PreflightFailed(planmod.blocking(problems))
            result = migrator.migrate(
                the_plan, progress=(lambda p: _call(on_progress, name, p)),
                cancel=cancel, lease=held)
        except Exception as exc:  # one VM's failure is reported, not fatal
            LOG.error('Drain: VM %s failed: %s', name, exc)
            _call(on_done, name, exc)
            return DrainOutcome(name, uuid, error=exc)
        _call(on_done, name, result)
        return DrainOutcome(name, uuid, result=result)

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix='sxm-drain') as ex:
        futures = {vm: ex.submit(one, vm) for vm in order}
        outcomes = [futures[vm].result() for vm in vms]
    LOG.info('Drain of host %s: %d of %d VM(s) moved in %.1f s', host,
             sum(o.ok for o in outcomes), len(outcomes),
             time.monotonic() - started)
    return outcomes


def _call(callback, name, value):
    if callback is None:
        return
    try:
        callback(name, value)
    except Exception:  # the caller's bug must not stop a migration
        LOG.exception('Drain callback for VM %s failed', name)


# -- the custodian of a migrate_receive token --------------------------------

# The longest a custodian follows a task: xapi's own session GC horizon;
# and how long it keeps trying a pool that does not answer.
CUSTODIAN_LIFETIME = 24 * 3600.0
CUSTODIAN_SILENCE = 3600.0
# An owner's custodian: the longest event.from, so that its parent's death
# is acted on quickly, and how long it waits for the parent's word after
# the task ended before it takes the parent for dead.
OWNER_POLL = 2.0
OWNER_GRACE = 60.0
# How long a watchdog whose owner died keeps trying a silent pool.
OWNER_SILENCE = 600.0
# The CLI's custodian, after the task ended: how long it waits for its
# parent's word before it logs the token out itself.
CLI_GRACE = 10.0
# How XAPI's session records name a custodian's own logins.
WATCHDOG_ORIGINATOR = 'openstack-sxm watchdog'
LOG_FORMAT = ('%(asctime)s %(process)d %(levelname)s sxm custodian: '
              '%(message)s')


class Custodian(object):
    """The parent's handle on a custodian process (see the module doc).

    ``owner`` (a dict of public facts, see ``owner_custodian_for``) makes
    it the watchdog of an owning service; None keeps the CLI's mode.
    """

    def __init__(self, source, dest, task, token, owner=None,
                 log_file=None):
        # An owner's custodian reports to the service's log file, else to
        # its stderr (a journal); never to a pipe, whose reader would
        # wait for the custodian too. The CLI's would write over its
        # output.
        self._proc = subprocess.Popen(
            [sys.executable, '-m', 'sxm_core.fleet', 'custodian'],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=(None if owner is not None and not log_file
                    and _stderr_kept() else subprocess.DEVNULL),
            start_new_session=True, close_fds=True)
        self.pid = self._proc.pid
        brief = {'source': source.connection_args(),
                 'dest': dest.connection_args(), 'task': task,
                 'token': token, 'owner': owner, 'log_file': log_file}
        try:
            self._proc.stdin.write(json.dumps(brief).encode() + b'\n')
            self._proc.stdin.flush()
        except OSError:
            self.done()
            raise

    def done(self):
        """The parent logged the token out itself: the custodian exits."""
        try:
            self._proc.stdin.write(b'done\n')
            self._proc.stdin.close()
        except (OSError, ValueError):
            pass
        # It exits at its next look at the task: reap it without waiting.
        threading.Thread(target=self._proc.wait, daemon=True,
                         name='sxm-custodian-reaper').start()


def _stderr_kept():
    """Whether a child may keep this process's stderr (not a pipe)."""
    try:
        return not stat.S_ISFIFO(os.fstat(2).st_mode)
    except OSError:
        return False


def custodian_for(source, dest):
    """A Migrator ``custodian`` factory for a short-lived client (CLI).

    In-pool migrations get one too: migrate_receive makes a token there
    as well.
    """
    def start(task, token, the_plan=None):
        return Custodian(source, dest, task, token)
    return start


def owner_facts(the_plan, marker_key=None):
    """The public facts an owner's custodian cleans up with (a dict)."""
    if the_plan is None:
        return {'marker_key': marker_key}
    return {'vm_uuid': the_plan.vm.uuid,
            'source_vdis': sorted(s.disk.uuid for s in the_plan.disks
                                  + the_plan.snapshot_disks),
            'cross_pool': bool(the_plan.cross_pool),
            'marker_key': marker_key}


def owner_custodian_for(source, dest, marker_key=None, log_file=None):
    """A Migrator ``custodian`` factory for a service owning its migrations.

    The custodian cancels the migration when the service dies (see the
    module doc). ``marker_key``: an ``other_config`` key of the source VM
    the owner wrote for this migration, removed after a cancel.
    ``log_file``: where the custodian appends what it does (the
    service's log).
    """
    def start(task, token, the_plan=None):
        return Custodian(source, dest, task, token,
                         owner=owner_facts(the_plan, marker_key),
                         log_file=log_file)
    return start


def _custodian_main(stdin):
    brief = json.loads(stdin.readline() or '{}')
    if not brief:
        return 1
    if brief.get('log_file'):
        try:
            handler = logging.FileHandler(brief['log_file'])
        except OSError:
            pass    # stderr is /dev/null then: the restart reconciles
        else:
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            logging.getLogger().addHandler(handler)
    redact.register(brief.get('token'))
    for side in ('source', 'dest'):
        redact.register(brief[side].get('password'))
    owner = brief.get('owner')
    source = sessions.SessionPool(maxsize=1, retries=0,
                                  originator=WATCHDOG_ORIGINATOR,
                                  **brief['source'])
    dest = sessions.SessionPool(maxsize=1, retries=0,
                                originator=WATCHDOG_ORIGINATOR,
                                **brief['dest'])
    stop = threading.Event()    # the parent said 'done'
    wake = threading.Event()    # 'done', the parent's death or a signal

    def listen():
        # 'done': the parent logged the token out. EOF: the parent died.
        if stdin.readline().strip() == 'done':
            stop.set()
        wake.set()
    threading.Thread(target=listen, daemon=True).start()
    try:
        if owner is None:
            # The CLI's custodian only logs the token out, whatever
            # became of its parent; a parent alive logs it out itself
            # once it has read the task's end (and says 'done').
            if _task_ended(source, brief['task'], stop):
                wake.wait(CLI_GRACE)
                if not stop.is_set():
                    dest.logout_token(brief['token'])
            return 0
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: wake.set())
        return _watchdog(source, dest, brief, owner, stop, wake)
    finally:
        source.close()
        dest.close()


def _watchdog(source, dest, brief, owner, stop, wake):
    """The owner's custodian: cancel the task when the owner is gone."""
    task, token = brief['task'], brief['token']
    if _task_ended(source, task, wake, poll=OWNER_POLL):
        dest.logout_token(token)
        # The parent destroys the task once it has read its end: give it
        # the time to, and to say so.
        wake.wait(OWNER_GRACE)
        if not stop.is_set():
            _finish(source, dest, task, owner)
        return 0
    if stop.is_set() or not wake.is_set():
        return 0    # the parent took care; or the pool stayed silent
    LOG.warning('The owner of migration task %s is gone; cancelling it',
                _task_uuid(source, task))
    try:
        source.call('task.cancel', task)
    except errors.HandleInvalid:
        pass
    except errors.SxmError as exc:
        # Past the point of no return: it completes; the owner's next
        # start reconciles.
        LOG.warning('XAPI refused to cancel migration task %s: %s', task,
                    exc)
    if not _task_ended(source, task, threading.Event(), poll=OWNER_POLL,
                       silence=OWNER_SILENCE):
        LOG.error('Migration task %s: no answer from the source pool for '
                  '%d s after the cancel; giving up', task, OWNER_SILENCE)
        return 1
    dest.logout_token(token)
    _finish(source, dest, task, owner)
    return 0


def _task_uuid(pool, task):
    try:
        return pool.call('task.get_uuid', task)
    except errors.SxmError:
        return task


def _finish(source, dest, task, owner):
    """After the owner's death: undo a failed migration, destroy its task."""
    try:
        status = source.call('task.get_status', task)
    except errors.HandleInvalid:
        status = None   # destroyed: judged by where the VM is
    except errors.SxmError as exc:
        LOG.warning('Cannot read migration task %s: %s', task, exc)
        return
    vm_uuid = owner.get('vm_uuid')
    if status != constants.TASK_SUCCESS and vm_uuid:
        try:
            removed = cleanup.cleanup_destination(
                dest, vm_uuid, owner.get('source_vdis') or (),
                cross_pool=owner.get('cross_pool', True),
                source_pool=source)
            LOG.warning('Migration of VM %s %s after its owner died; '
                        'removed from the destination: %s', vm_uuid,
                        status or 'ended', ', '.join(removed) or 'nothing')
        except errors.MigrationCompleted:
            status = constants.TASK_SUCCESS
        except errors.SxmError as exc:
            LOG.error('Cleaning the destination of the migration of VM %s '
                      'failed: %s', vm_uuid, exc)
        key = owner.get('marker_key')
        if key and status != constants.TASK_SUCCESS:
            try:
                ref = source.call('VM.get_by_uuid', vm_uuid)
                source.call('VM.remove_from_other_config', ref, key)
            except errors.SxmError as exc:
                LOG.warning('Could not remove %s from VM %s: %s', key,
                            vm_uuid, exc)
    if status is not None:
        try:
            source.call('task.destroy', task)
        except errors.SxmError as exc:
            LOG.warning('Could not destroy migration task %s: %s', task,
                        exc)


def _task_ended(pool, task, stop, poll=tasks.EVENT_TIMEOUT,
                silence=CUSTODIAN_SILENCE):
    """Wait until ``task`` ends (True) or ``stop`` is set (False).

    False too after ``silence`` seconds without an answer from the pool.
    """
    deadline = time.monotonic() + CUSTODIAN_LIFETIME
    heard = [time.monotonic()]

    def follow():
        with pool.private_session() as session:
            token = ''
            while not stop.is_set():
                answer = session.call('event.from', ['task/%s' % task],
                                      token, poll)
                heard[0] = time.monotonic()
                if token == '' and not any(
                        e['ref'] == task for e in answer['events']):
                    record = session.task.get_record(task)
                else:
                    record = None
                token = answer['token']
                for event in answer['events']:
                    if event['ref'] != task:
                        continue
                    if event['operation'] == 'del':
                        return True
                    record = event.get('snapshot') or record
                if record is not None and record['status'] not in RUNNING:
                    return True
        return False

    def retry_if(exc):
        # Keep trying until the pool answers again, within the limits.
        now = time.monotonic()
        return (not isinstance(exc, errors.HandleInvalid)
                and isinstance(exc, errors.SxmError) and not stop.is_set()
                and now < deadline and now - heard[0] < silence)

    try:
        return retry.call(follow, sys.maxsize, retry_if,
                          delay=lambda attempt: 5.0, wait=stop.wait)
    except errors.HandleInvalid:
        return True   # the task is gone: it has ended
    except errors.SxmError:
        return False


if __name__ == '__main__':
    if sys.argv[1:] == ['custodian']:
        os.umask(0o077)
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
        sys.exit(_custodian_main(sys.stdin))
    sys.exit('usage: python -m sxm_core.fleet custodian')
