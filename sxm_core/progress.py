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

"""What the ``sxm`` CLI shows: a progress bar, a summary, log setup."""

import logging

import tqdm

from sxm_core import plan as planmod


class Bar(object):
    """A tqdm bar over the bytes of a plan: phase, disk, rate, ETA."""

    def __init__(self, the_plan, out):
        self.plan = the_plan
        self.bar = tqdm.tqdm(total=max(1, the_plan.bytes_to_move), unit='B',
                             unit_scale=True, unit_divisor=1024, file=out,
                             desc='starting', dynamic_ncols=True,
                             mininterval=0.2)

    def update(self, progress):
        if progress.disk is not None:
            disk = progress.disk.disk
            desc = '%s disk %s' % (progress.phase, disk.userdevice or
                                   disk.name)
        else:
            desc = progress.phase
        self.bar.set_description_str(desc, refresh=False)
        self.bar.n = min(progress.bytes_done, self.bar.total)
        self.bar.refresh()

    def close(self):
        self.bar.close()


def summary(the_plan, result):
    lines = ['',
             'Migrated %s to pool %s in %.1f s (at most %s to move).' % (
                 the_plan.vm.label(), the_plan.dest.name, result.seconds,
                 planmod.human_bytes(result.bytes_planned))]
    for userdevice, vdi, sr in sorted(result.disks):
        lines.append('  disk %s: VDI %s on SR %s' % (userdevice, vdi, sr))
    if result.leftovers_removed:
        lines.append('  removed leftovers: %s'
                     % ', '.join(result.leftovers_removed))
    for warning in result.warnings:
        lines.append('  WARNING: %s' % warning)
    return '\n'.join(lines)


def setup_logging(debug=False):
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
