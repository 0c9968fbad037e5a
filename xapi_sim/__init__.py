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

"""An XAPI simulator: XenServer / XCP-ng pools on one machine, for tests.

It speaks the XenAPI wire protocol (XML-RPC and the raw VDI HTTP
handlers), keeps real bytes in file-backed SRs, runs guest write workloads
and implements Storage XenMotion with xapi's behaviour and errors. The
demo and the tests use it; the product (sxm_core, nova_sxm, cinder_sxm)
never imports it.
"""
