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

"""The ``sxm`` parser as the CLI reference shows it (``.. argparse::``).

``sxm_core.cli.parser.build()`` itself, with two changes for the page:

* each epilog (environment variables, exit status, output), laid out for
  a terminal by ``RawDescriptionHelpFormatter``, becomes a literal block,
  so that it reads as ``sxm COMMAND --help`` prints it instead of being
  parsed as reStructuredText;
* the defaults taken from the environment of the build (``SXM_URL``...)
  are cleared, so that the page never shows the builder's settings.
"""

import argparse
import textwrap

from sxm_core.cli import parser as parsermod

FROM_ENVIRONMENT = ('url', 'username', 'dest_url', 'dest_username')


def _literal(text):
    if not text:
        return text
    return ('.. code-block:: text\n\n'
            + textwrap.indent(text.rstrip('\n'), '    ') + '\n')


def _fix(parser):
    parser.epilog = _literal(parser.epilog)
    for action in parser._actions:
        if action.dest in FROM_ENVIRONMENT:
            action.default = None
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _fix(sub)


def build():
    """The ``sxm`` parser, for sphinx-argparse."""
    parser = parsermod.build()
    _fix(parser)
    return parser
