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

"""Nova-side functional tests: real Nova services on the SXM driver."""

import os

# nova-compute runs native threads and poisons eventlet; nova's test
# packages monkey-patch with eventlet unless told otherwise. Run as
# production does (must happen before nova.tests is imported).
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
# Before any other nova module: futurist imports eventlet when present.
from nova.tests import functional  # noqa: E402,F401,H306
