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

"""The one retry policy of the core.

``call(fn, retries, retry_if, ...)`` runs ``fn()`` and, when it raises an
exception ``retry_if`` accepts, waits and runs it again, at most
``retries`` more times; then the last exception propagates unchanged.
Logins and read-only calls retry connection errors with exponential
backoff (``backoff``); a migration refused with TOO_MANY_STORAGE_MIGRATES
retries after waiting for a storage migration of its host to end (its
``wait`` watches event.from instead of sleeping).
"""

import time


def backoff(base, factor=2.0, cap=None):
    """Delays ``base``, ``base * factor``, ... (at most ``cap``)."""
    def delay(attempt):
        value = base * factor ** attempt
        return min(value, cap) if cap is not None else value
    return delay


def call(fn, retries, retry_if, delay=None, wait=time.sleep,
         on_retry=None):
    """``fn()``, retried on the exceptions ``retry_if(exc)`` accepts.

    ``delay(attempt)`` gives the pause before retry ``attempt + 1`` (0 by
    default) and ``wait(seconds)`` takes it (``time.sleep``, or a wait
    that returns early when there is a reason to retry at once).
    ``on_retry(exc, attempt, seconds)`` is told before each pause, e.g. to
    log. Anything ``retry_if`` refuses propagates at once.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if attempt >= retries or not retry_if(exc):
                raise
            pause = delay(attempt) if delay is not None else 0.0
            attempt += 1
            if on_retry is not None:
                on_retry(exc, attempt, pause)
            wait(pause)
