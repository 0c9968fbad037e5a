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

"""What the tests that kill a service of the cloud share.

The service's pid as ``cloud.sh`` recorded it, the processes of this
machine as /proc has them, and ``cloud.sh up`` after each test to start
again what the test killed.
"""

import os
import subprocess

from test_cloud import CLOUD
from test_cloud import CloudTestCase
from test_cloud import DEADLINE
from test_cloud import TOP

CLOUD_SH = os.path.join(TOP, 'tools', 'cloud', 'cloud.sh')


def pid_of(name):
    """The pid of a service of the cloud, from its pid file."""
    with open(os.path.join(CLOUD, 'run', '%s.pid' % name)) as f:
        return int(f.read().strip())


def stat(pid):
    """The fields of /proc/<pid>/stat after the command name, or None.

    [0] the state ('Z': a zombie), [1] the parent's pid, [2] the process
    group, [19] the start time in clock ticks after boot.
    """
    try:
        with open('/proc/%s/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def alive(pid):
    """Whether ``pid`` runs (a zombie does not)."""
    fields = stat(pid)
    return fields is not None and fields[0] != 'Z'


def pids():
    """Every pid of this machine."""
    return [int(entry) for entry in os.listdir('/proc') if entry.isdigit()]


class ServiceKillTestCase(CloudTestCase):
    """Kills services; ``cloud.sh up`` starts them again after each test."""

    def setUp(self):
        super().setUp()
        self.addCleanup(self.ensure_cloud)

    def vm_of_uuid(self, vm_uuid, pool):
        """(ref, record) of the VM ``vm_uuid`` in ``pool``, or Nones."""
        api = self.xapi[pool]
        try:
            ref = api.VM.get_by_uuid(vm_uuid)
        except Exception:
            return None, None
        return ref, api.VM.get_record(ref)

    def moving_task(self, vm_uuid, pool='pool-a', past=0.02):
        """The task of an XAPI operation on the VM past ``past``, or None."""
        api = self.xapi[pool]
        _, rec = self.vm_of_uuid(vm_uuid, pool)
        for task in (rec or {}).get('current_operations', {}):
            try:
                if float(api.task.get_progress(task)) > past:
                    return task
            except Exception:
                continue
        return None

    def ensure_cloud(self):
        """``cloud.sh up`` starts what is missing (the killed services)."""
        proc = subprocess.run([CLOUD_SH, 'up'], capture_output=True,
                              text=True, timeout=DEADLINE * 2)
        if proc.returncode:
            self.fail('cloud.sh up failed: %s%s' % (proc.stdout,
                                                    proc.stderr))
