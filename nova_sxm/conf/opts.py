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

"""Entry point of oslo-config-generator for the ``[sxm]`` group of nova.conf.

setup.cfg: ``oslo.config.opts = nova_sxm = nova_sxm.conf.opts:list_opts``.
"""

from nova_sxm.conf import sxm


def list_opts():
    # The generator wants (group, opts) pairs, not nova's per-module dicts.
    return [(group, list(opts)) for group, opts in sxm.list_opts().items()]
