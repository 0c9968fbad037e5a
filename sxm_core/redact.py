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

"""Keeping secrets out of logs, messages and records.

Passwords, XAPI session refs and migrate_receive tokens look like ordinary
strings (a session ref is an OpaqueRef like any other), so they cannot be
recognised by shape alone. Whoever obtains one registers it here; ``scrub``
replaces every registered secret, and any ``session_id=`` query value, by
``***``. ``get_logger`` gives loggers whose records are scrubbed.
"""

import collections
import logging
import re
import threading

from oslo_log import log as oslo_logging

MASK = '***'
_SESSION_QUERY = re.compile(r'(session_id=)[^&\s\'"]+')
_KEY = r'(?:password|passwd|pwd)'
# What a password looks like in key/value syntax (config lines, query
# strings, dicts, JSON, YAML): ``password=x`` always, and after a colon a
# quoted value or a quoted key. A bare ``password: x`` is a value only when
# x ends its field (end of line, a separator, or the next ``key:``/``key=``
# pair): "No password: set SXM_PASSWORD or ..." is prose, not a secret.
_PASSWORD_KV = (
    re.compile(r'(%s["\']?\s*=\s*["\']?)[^\s"\',;}&]+' % _KEY, re.IGNORECASE),
    re.compile(r'(%s["\']?\s*:\s*(["\']))(?:(?!\2).)+' % _KEY,
               re.IGNORECASE),
    re.compile(r'(["\']%s["\']\s*:\s*)[^\s"\',;}\]]+' % _KEY, re.IGNORECASE),
    re.compile(r'(%s\s*:[ \t]*)[^\s"\',;}\])]+'
               r'(?=[ \t]*(?:$|[,;}\])]|[\w.-]+[ \t]*[:=]))' % _KEY,
               re.IGNORECASE | re.MULTILINE),
)

_lock = threading.Lock()
# secret -> how many holders registered it (two pools may share a password)
_secrets = collections.Counter()


def register(secret):
    """Mark a string as secret until every holder has called ``forget``."""
    if secret and isinstance(secret, str) and len(secret) >= 4:
        with _lock:
            _secrets[secret] += 1
    return secret


def forget(secret):
    with _lock:
        if _secrets.get(secret, 0) > 1:
            _secrets[secret] -= 1
        else:
            _secrets.pop(secret, None)


def scrub(text):
    """``text`` with every known secret masked."""
    if not isinstance(text, str):
        text = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _SESSION_QUERY.sub(r'\1' + MASK, text)
    for regex in _PASSWORD_KV:
        text = regex.sub(r'\1' + MASK, text)
    return text


def scrub_value(value):
    """Scrub strings nested in lists, tuples and dicts (for records)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_value(k): scrub_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub_value(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """Scrubs the formatted message (and arguments) of each record."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: scrub what we have
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(
                record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


_FILTER = RedactingFilter()


def get_logger(name):
    """An oslo.log logger whose every record is scrubbed.

    A logger-level filter runs on each record the logger creates, before
    any handler sees it, whatever handlers the service configured.
    """
    logging.getLogger(name).addFilter(_FILTER)
    return oslo_logging.getLogger(name)
