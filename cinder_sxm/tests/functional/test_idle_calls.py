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

"""What an idle cinder-volume asks of its pool master, per minute.

Counted by the simulator's call log while the real volume manager runs
each periodic task as often as it runs in a minute at its default
interval (the stats report, every ``backend_stats_polling_interval``).
"""

import math

from cinder_sxm import stats
from cinder_sxm.tests.functional import base
from sxm_core import errors

BUDGET = 10  # XAPI calls a minute


class IdleVolumeServiceTest(base.SxmCinderTestCase):

    def one_minute(self):
        """{method: calls} of one minute of the volume manager's tasks."""
        manager = self.volume.manager
        log = self.sim.pools['pool-a'].call_log
        log.reset()
        self.reports = 0
        for name, task in manager._periodic_tasks:
            spacing = manager._periodic_spacing[name]
            runs = max(1, math.ceil(60.0 / spacing))
            if name.endswith('publish_service_capabilities'):
                self.reports += runs
            for _ in range(runs):
                task(manager, self._context())
        by_method = {}
        for method, originator, _size in log.entries():
            if originator != 'tests':
                by_method[method] = by_method.get(method, 0) + 1
        return by_method

    def test_an_idle_minute_within_budget(self):
        self.one_minute()
        calls = self.one_minute()
        self.assertLessEqual(sum(calls.values()), BUDGET, calls)
        # One read a stats report, however many SRs the backend has.
        self.assertEqual(1, self.reports)
        self.assertEqual(self.reports, sum(calls.values()), calls)
        # What it reported is what the SRs hold now.
        pools = {p['pool_name']: p for p in
                 self.volume.manager.driver.get_volume_stats()['pools']}
        self.assertEqual({'gold', 'silver'}, set(pools))
        gold = self.xapi.SR.get_by_name_label('gold')[0]
        self.assertEqual(
            stats.location_info(pools['gold']['location_info'].split(':')[1],
                                self.xapi.SR.get_uuid(gold)),
            pools['gold']['location_info'])


class ConfiguredSRsTest(base.SxmCinderTestCase):
    """The SR reader the stats use, against the simulator."""

    def setUp(self):
        super().setUp()
        self.log = self.sim.pools['pool-a'].call_log

    def reader(self, keys):
        return stats.ConfiguredSRs(self.xapi_call, keys, where='pool-a')

    def xapi_call(self, method, *args):
        target = self.xapi
        for part in method.split('.'):
            target = getattr(target, part)
        return target(*args)

    def calls(self, fn):
        self.log.reset()
        out = fn()
        return out, len(self.log.entries())

    def test_one_call_per_read_for_all_srs(self):
        gold = self.xapi.SR.get_by_name_label('gold')[0]
        gold_uuid = self.xapi.SR.get_uuid(gold)
        srs = self.reader([gold_uuid, 'silver'])
        first, n = self.calls(srs.records)
        self.assertEqual(1, n)
        again, n = self.calls(srs.records)
        self.assertEqual(1, n)
        silver = self.xapi.SR.get_by_name_label('silver')[0]
        self.assertEqual([(gold_uuid, gold), ('silver', silver)],
                         [(k, r['ref']) for k, r in again])
        self.assertEqual(['gold', 'silver'],
                         [r['name_label'] for _, r in first])

    def test_a_missing_sr_is_named_and_the_others_still_read(self):
        srs = self.reader(['nosuch', 'silver'])
        (key, exc), (_, silver) = srs.records()
        self.assertEqual('nosuch', key)
        self.assertIsInstance(exc, errors.NotFound)
        self.assertIn("'nosuch'", str(exc))
        self.assertEqual('silver', silver['name_label'])
