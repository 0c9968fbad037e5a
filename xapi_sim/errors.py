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

"""XAPI error codes and the exception that carries them onto the wire.

The parameter names come from xen-api ``ocaml/idl/datamodel_errors.ml``; the
simulator checks arity against this table so that a typo in a raise site
fails loudly in tests instead of putting a malformed error on the wire.
"""

from sxm_core import xapi_errors

# The one table of codes and parameter names, shared with the core (pure
# data: the product still never imports the simulator).
ERROR_PARAMS = xapi_errors.PARAMS


class XapiError(Exception):
    """An XAPI failure: ``[code, *params]`` on the wire."""

    def __init__(self, code, *params):
        if not xapi_errors.accepts(code, len(params)):
            expected = xapi_errors.params(code)
            raise TypeError('%s takes %d parameters (%s), got %d'
                            % (code, len(expected), ', '.join(expected),
                               len(params)))
        super().__init__(code, *params)
        self.code = code
        self.params = [str(p) for p in params]

    @property
    def description(self):
        return [self.code] + self.params

    def __str__(self):
        return '%s %s' % (self.code, self.params)


class Restarted(Exception):
    """The toolstack running a call restarted: the call ends unanswered.

    Not an XAPI error: nobody is left to put it on the wire.
    """

    def __init__(self, pool):
        super().__init__('the toolstack of %s restarted' % pool)
        self.pool = pool


def sr_full():
    """The error the SM backends raise when a VDI does not fit its SR.

    SMAPIv1 backends turn ``SR_FULL`` (exit code 44) into
    ``SR_BACKEND_FAILURE_44 [""; "There is insufficient space"; ""]``.
    """
    return XapiError('SR_BACKEND_FAILURE_44', '',
                     'There is insufficient space', '')
