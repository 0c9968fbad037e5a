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

"""sxm_core.retry: the one retry policy, pure (no sockets, no sleeping)."""

import testtools

from sxm_core import retry


class Flaky(object):
    """Raises the given exceptions in turn, then returns 'done'."""

    def __init__(self, *failures):
        self.failures = list(failures)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return 'done'


class TestCall(testtools.TestCase):

    def test_retries_what_it_is_told_to_with_backoff(self):
        fn = Flaky(OSError('a'), OSError('b'))
        waits, told = [], []
        self.assertEqual('done', retry.call(
            fn, 3, lambda e: isinstance(e, OSError),
            delay=retry.backoff(0.5), wait=waits.append,
            on_retry=lambda e, n, s: told.append((str(e), n, s))))
        self.assertEqual(3, fn.calls)
        self.assertEqual([0.5, 1.0], waits)
        self.assertEqual([('a', 1, 0.5), ('b', 2, 1.0)], told)

    def test_gives_up_with_the_last_error(self):
        fn = Flaky(OSError('1'), OSError('2'), OSError('3'))
        exc = self.assertRaises(OSError, retry.call, fn, 2,
                                lambda e: True, wait=lambda s: None)
        self.assertEqual('3', str(exc))
        self.assertEqual(3, fn.calls)

    def test_other_errors_are_not_retried(self):
        fn = Flaky(ValueError('bad input'))
        waits = []
        self.assertRaises(ValueError, retry.call, fn, 5,
                          lambda e: isinstance(e, OSError),
                          wait=waits.append)
        self.assertEqual(1, fn.calls)
        self.assertEqual([], waits)

    def test_no_retries(self):
        fn = Flaky(OSError('x'))
        self.assertRaises(OSError, retry.call, fn, 0, lambda e: True)
        self.assertEqual(1, fn.calls)

    def test_backoff_cap(self):
        delay = retry.backoff(1.0, factor=3.0, cap=5.0)
        self.assertEqual([1.0, 3.0, 5.0, 5.0], [delay(i) for i in range(4)])
