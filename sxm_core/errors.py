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

"""Typed errors of the core.

``SxmError`` formats a class-level ``message`` template with keyword
arguments (os-brick's BrickException style) and scrubs secrets from the
result. ``XapiFailure.from_failure`` is the only code that reads a
``XenAPI.Failure``'s ``details``; it picks a subclass for the codes callers
branch on and words the message for a human, naming objects by name label
and uuid when the caller gives a ``describe`` callback.
"""

from sxm_core import redact
from sxm_core import xapi_errors

# Parameter names of XAPI errors (xen-api datamodel_errors.ml): the one
# table the simulator uses too.
ERROR_PARAMS = xapi_errors.PARAMS

# How to say it, and what to do about it. %(name)s are the parameters,
# already described ("VDI 'data' (uuid ...)") where a describer was given.
_WORDING = {
    'VDI_NOT_IN_MAP': '%(vdi)s has no destination SR: map every disk.',
    'VIF_NOT_IN_MAP': '%(vif)s has no destination network: map its '
                      'network.',
    'VDI_CBT_ENABLED': '%(vdi)s has changed block tracking enabled: '
                       'disable CBT on it before migrating.',
    'SR_DOES_NOT_SUPPORT_MIGRATION': '%(sr)s does not support storage '
                                     'migration (a source SR needs '
                                     'VDI_SNAPSHOT and VDI_MIRROR, a '
                                     'destination SR VDI_MIRROR_IN).',
    'SR_BACKEND_FAILURE_44': 'The destination SR is full: free space on it '
                             'or choose another SR.',
    'TOO_MANY_STORAGE_MIGRATES': 'The source host already runs '
                                 '%(number)s storage migrations: retry '
                                 'later.',
    'VM_BAD_POWER_STATE': '%(vm)s is %(actual)s; the operation needs '
                          '%(expected)s.',
    'MIRROR_FAILED': 'Mirroring %(vdi)s to the destination failed.',
    'SESSION_AUTHENTICATION_FAILED': 'XAPI refused the credentials of user '
                                     '%(username)s.',
    'SESSION_INVALID': 'The XAPI session is no longer valid.',
    'HANDLE_INVALID': 'The %(class)s %(handle)s does not exist (any more).',
    'UUID_INVALID': 'No %(class)s has uuid %(uuid)s.',
    'VDI_IN_USE': '%(vdi)s is in use.',
    'VDI_NEEDS_VM_FOR_MIGRATE': '%(vdi)s is not attached to a VM: copy it '
                                'instead of migrating it live.',
    'VM_REQUIRES_SR': '%(vm)s needs %(sr)s, which the target host cannot '
                      'see.',
    'HOST_CANNOT_ATTACH_NETWORK': '%(host)s has no interface on %(network)s.',
    'INTERFACE_HAS_NO_IP': '%(interface)s has no IP address: configure the '
                           'migration network of the destination host.',
    'PIF_HAS_NO_NETWORK_CONFIGURATION': '%(pif)s has no IP configuration: '
                                        'configure the migration network '
                                        'of the destination host.',
    'TASK_CANCELLED': 'The operation was cancelled.',
    'OPERATION_NOT_ALLOWED': 'XAPI does not allow this: %(reason)s',
    'CANNOT_CONTACT_HOST': 'Cannot contact host %(host)s.',
    'VM_MIGRATE_FAILED': 'Migrating the memory of %(vm)s failed: '
                         '%(msg)s',
    'VMS_FAILED_TO_COOPERATE': 'The guest did not answer the suspend '
                               'request of the final pause (%(vms)s): '
                               'check its PV drivers, then retry.',
    'SR_BACKEND_FAILURE_40': 'The SR scan failed (SR_BACKEND_FAILURE_40): '
                             'the storage backend did not answer; retry '
                             'once the SR is reachable again.',
    'INTERNAL_ERROR': 'XAPI internal error: %(message)s',
    'VM_MISSING_PV_DRIVERS': '%(vm)s has no PV drivers (or its agent does '
                             'not claim hotplug): stop the guest for this '
                             'change, or install its PV drivers.',
    'HOST_OFFLINE': '%(host)s is offline (not live): XAPI cannot ask it.',
    'HOST_IS_LIVE': '%(host)s is still live: reset a VM\'s power state '
                    'only when its host is down.',
    'HOST_DISABLED': '%(host)s is disabled (maintenance): enable it first.',
    'HOST_NOT_LIVE': 'The target host is not live.',
}

# xenopsd errors xapi passes on inside INTERNAL_ERROR's message: their
# words, with what an operator does about them.
_XENOPSD_WORDING = {
    'Vms_failed_to_cooperate': 'The guest did not answer the suspend '
                               'request of the final pause '
                               '(xenopsd: Vms_failed_to_cooperate): check '
                               'its PV drivers, then retry; the VM still '
                               'runs where it ran.',
}


# Parameters that are refs of objects a describer can name.
_DESCRIBED = frozenset(['vm', 'vdi', 'sr', 'vif', 'host', 'network', 'pif',
                        'interface'])


class SxmError(Exception):
    """Base of the core's errors; ``message`` is a %-template."""

    message = 'An unknown storage migration error occurred.'

    def __init__(self, message=None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.message % kwargs
            except (KeyError, TypeError, ValueError):
                message = self.message
        self.msg = redact.scrub(message)
        super().__init__(self.msg)

    def __str__(self):
        return self.msg


class XapiFailure(SxmError):
    """XAPI answered with an error: ``code``, ``params`` (and ``call``)."""

    message = 'XAPI error %(code)s %(params)s'

    def __init__(self, code, params, call=None, describe=None, task=None):
        self.code = code
        # Masked at once: params may echo a session ref or a token, and the
        # registry forgets a token when its session is logged out.
        self.params = [redact.scrub(str(p)) for p in params]
        self.call = call
        self.task = task
        names = ERROR_PARAMS.get(code, ())
        described = {}
        for i, name in enumerate(names):
            value = self.params[i] if i < len(self.params) else ''
            if describe is not None and name in _DESCRIBED:
                value = describe(name, value) or value
            described[name] = value
        wording = _WORDING.get(code)
        try:
            text = wording % described if wording else None
        except (KeyError, TypeError, ValueError):
            text = None
        if code == 'INTERNAL_ERROR':
            for marker, words in _XENOPSD_WORDING.items():
                if marker in ' '.join(self.params):
                    text = words
        if text is None:
            text = 'XAPI error %s %s' % (code, self.params)
        if call:
            text = '%s (in %s)' % (text, call)
        super().__init__(text)

    def param(self, name):
        """A parameter by its datamodel name, e.g. ``param('actual')``."""
        try:
            i = xapi_errors.index(self.code, name)
        except ValueError:
            raise KeyError('%s has no parameter %r'
                           % (self.code, name)) from None
        return self.params[i] if i < len(self.params) else None

    def reworded(self, call=None, describe=None):
        """The same error, worded with ``describe`` (and ``call``)."""
        return self.from_details([self.code] + list(self.params),
                                 call=call or self.call, describe=describe,
                                 task=self.task)

    @classmethod
    def from_failure(cls, failure, call=None, describe=None, task=None):
        return cls.from_details(getattr(failure, 'details', None), call=call,
                                describe=describe, task=task)

    @classmethod
    def from_details(cls, details, call=None, describe=None, task=None):
        """From an ErrorDescription list ``[code, *params]``."""
        details = list(details or ['INTERNAL_ERROR', 'no error details'])
        code, params = str(details[0]), details[1:]
        sub = _SUBCLASSES.get(code, XapiFailure)
        if code.startswith('SR_BACKEND_FAILURE'):
            sub = SrBackendFailure
        return sub(code, params, call=call, describe=describe, task=task)


class SessionInvalid(XapiFailure):
    pass


class HandleInvalid(XapiFailure):
    pass


class HostIsSlave(XapiFailure):
    pass


class EventsLost(XapiFailure):
    pass


class TaskCancelled(XapiFailure):
    pass


class AuthenticationFailed(XapiFailure):
    """Refused credentials; ``pool`` (a URL without user info) when known."""

    def __init__(self, code, params, call=None, describe=None, task=None,
                 pool=None, pool_label=None):
        self.pool = pool
        super().__init__(code, params, call=call, describe=describe,
                         task=task)
        if pool:
            user = self.param('username') or '?'
            which = '%s pool' % pool_label if pool_label else 'pool'
            text = ('XAPI refused the credentials of user %s for the %s '
                    'at %s.' % (user, which, pool))
            self.msg = redact.scrub(text)
            self.args = (self.msg,)


class TooManyStorageMigrates(XapiFailure):
    pass


class UuidInvalid(XapiFailure):
    """No object of that class has that uuid (or name): it is gone."""


class MapDuplicateKey(XapiFailure):
    """``add_to_*``: the key is there already."""


class VdiInUse(XapiFailure):
    pass


class VmNoSuspendSr(XapiFailure):
    pass


class VmBadPowerState(XapiFailure):
    pass


class OperationNotAllowed(XapiFailure):
    pass


class OtherOperationInProgress(XapiFailure):
    pass


class SrBackendFailure(XapiFailure):
    """An SR backend's ``SR_BACKEND_FAILURE_<n>`` (any n)."""


_SUBCLASSES = {
    'SESSION_INVALID': SessionInvalid,
    'HANDLE_INVALID': HandleInvalid,
    'HOST_IS_SLAVE': HostIsSlave,
    'EVENTS_LOST': EventsLost,
    'TASK_CANCELLED': TaskCancelled,
    'SESSION_AUTHENTICATION_FAILED': AuthenticationFailed,
    'TOO_MANY_STORAGE_MIGRATES': TooManyStorageMigrates,
    'UUID_INVALID': UuidInvalid,
    'MAP_DUPLICATE_KEY': MapDuplicateKey,
    'VDI_IN_USE': VdiInUse,
    'VM_NO_SUSPEND_SR': VmNoSuspendSr,
    'VM_BAD_POWER_STATE': VmBadPowerState,
    'OPERATION_NOT_ALLOWED': OperationNotAllowed,
    'OTHER_OPERATION_IN_PROGRESS': OtherOperationInProgress,
}


def missing(exc):
    """Whether ``exc`` says the object asked about does not exist.

    XAPI answers UUID_INVALID for a uuid (or name) it does not know and
    HANDLE_INVALID for a ref that is gone.
    """
    return isinstance(exc, (UuidInvalid, HandleInvalid))


class ConnectionFailed(SxmError):
    message = 'Cannot reach XAPI at %(url)s: %(reason)s'


class NotFound(SxmError):
    message = 'No %(kind)s %(name)r in pool %(pool)s.'


class Ambiguous(SxmError):
    message = ('%(count)d %(kind)ss are named %(name)r in pool %(pool)s: '
               'give a uuid.')


class MigrationNotFound(NotFound):
    message = 'No storage migration %(name)r is running in pool %(pool)s.'


class ContactLost(SxmError):
    """XAPI went silent while a task ran: the task may still be running.

    Not safe to roll back: the migration may still complete.
    ``task_uuid`` names the task to follow (``fleet.watch``).
    """

    rollback_safe = False

    @property
    def task_uuid(self):
        return self.kwargs.get('task_uuid')

    message = ('Lost contact with XAPI at %(url)s for %(seconds).0f s while '
               'waiting for %(what)s. Its task %(task_uuid)s may still be '
               'running: follow it with `sxm watch %(task_uuid)s` once the '
               'pool answers again.')


class TaskTimeout(SxmError):
    message = ('%(what)s did not finish within %(seconds).0f s; it was '
               'cancelled.')


class TaskStalled(SxmError):
    message = ('%(what)s made no progress for %(seconds).0f s; it was '
               'cancelled.')


class PreflightFailed(SxmError):
    """Every reason a migration cannot start, not only the first."""

    def __init__(self, problems):
        self.problems = list(problems)
        lines = ['The migration cannot start:']
        lines += ['  - %s' % p.message for p in self.problems]
        super().__init__('\n'.join(lines))


class MigrationFailed(SxmError):
    """A migration failed before its end; ``state`` says what is left.

    XAPI ended the task (or it never started): nothing runs any more, the
    source VM keeps its disks unless ``state`` says otherwise
    (``source_intact``), so a caller may roll back. Compare
    ``MigrationCancelled`` (the caller's cancel) and ``ContactLost`` (the
    task may still run: do not roll back).
    """

    rollback_safe = True

    def __init__(self, cause, state=None):
        self.cause = cause
        self.state = state
        text = str(cause)
        if state is not None:
            text = '%s\n%s' % (text, state.describe())
        super().__init__(text)

    @property
    def source_intact(self):
        """False when the source VM is gone or could not be read."""
        if self.state is None:
            return True
        return self.state.source_vm not in ('gone',) and not str(
            self.state.source_vm).startswith('unknown')


class MigrationCancelled(MigrationFailed):
    """Cancelled on request before the point of no return.

    XAPI ended the task ``cancelled`` (or it was never started): the
    source VM keeps running with its disks.
    """


class Cancelled(SxmError):
    """A cancel came while waiting, before anything was started."""

    message = 'Cancelled while %(waiting)s.'


class VerificationFailed(SxmError):
    message = 'The migrated VM is not as planned: %(problems)s.'


class CleanupFailed(SxmError):
    """Some cleanup steps failed; ``errors`` is [(step, exception)]."""

    def __init__(self, steps):
        self.errors = list(steps)
        super().__init__('Cleanup failed: ' + '; '.join(
            '%s: %s' % (what, exc) for what, exc in self.errors))


class MigrationCompleted(SxmError):
    """A destination cleanup found the migration finished: nothing to undo.

    The VM runs in the destination pool, or is gone from the source pool.
    """

    message = ('VM %(vm_uuid)s completed its migration to the pool at '
               '%(pool)s (%(why)s): nothing was removed.')


class MigrationRunning(SxmError):
    message = ('A storage migration of VM %(vm_uuid)s is still running: '
               'cancel it (or wait for its end) before cleaning up.')


class PoolClosed(SxmError):
    message = 'The session pool for %(url)s is closed.'


class PoolExhausted(SxmError):
    message = ('No free XAPI session to %(url)s after %(seconds).0f s: too '
               'many concurrent calls for the session pool size.')


class TaskVanished(SxmError):
    """XAPI no longer has the task: its outcome was never reported.

    A toolstack restart or a new pool master forgets every task; another
    client may also have destroyed it. What happened is read from the
    objects the task worked on (where the VM or VDI is now).
    """

    message = ('XAPI lost the task of %(what)s before reporting its '
               'outcome (a toolstack restart or a new pool master forgets '
               'running tasks).')


class InvalidInput(SxmError):
    """Bad input from a user (CLI options, configuration)."""

    message = '%(reason)s'


class Detached(SxmError):
    """A watch stopped on request; the migration itself goes on."""

    message = 'Stopped watching the %(what)s; it goes on.'


class DrainSkipped(Cancelled):
    message = 'Drain cancelled before VM %(vm)s started.'


class ErrorCollector(object):
    """Runs every cleanup step, keeps the failures, raises them at the end.

    Like os-brick's ExceptionChainer::

        errs = ErrorCollector()
        with errs.context('destroying VDI %s', uuid):
            ...
        errs.raise_if_any()
    """

    def __init__(self):
        self.errors = []

    def context(self, what, *args):
        return _Step(self, what % args if args else what)

    def __bool__(self):
        return bool(self.errors)

    def raise_if_any(self):
        if self.errors:
            raise CleanupFailed(self.errors)


class _Step(object):
    def __init__(self, collector, what):
        self.collector = collector
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and isinstance(exc, Exception):
            self.collector.errors.append((self.what, exc))
            return True
        return False
