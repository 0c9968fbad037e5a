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

"""``.. support_matrix:: FILE``: a support matrix in Nova's INI format.

The file (relative to the document) has one ``[driver.NAME]`` section per
column (``title``, optional ``link``) and one section per feature, in
the order they appear::

    [operation.attach-volume]
    title=Attach block volume to instance
    status=optional
    notes=Hotplug additional block storage into a running instance.
    cli=openstack server add volume <server> <volume>
    driver.sxm=complete
    driver-notes.sxm=...

``cli`` lists commands separated by ``;``. ``status`` is ``mandatory``,
``optional``, ``choice(GROUP)`` or ``condition(EXPR)``; each driver's
value is ``complete``, ``partial``, ``missing`` or ``unknown``, and every
feature names every driver. A file that breaks these rules fails the
build, naming the section.

The directive renders a summary table (one row per feature, one column
per driver, the counts per driver under it) and then one section per
feature with its notes, command and each driver's value and notes. It is
written for this project (Nova's own extension lives in Nova's
repository, not in its package) and renders through reStructuredText,
so that the theme styles it as any other table.
"""

import collections
import configparser
import os
import re

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.util.nodes import nested_parse_with_titles

VALUES = ('complete', 'partial', 'missing', 'unknown')
STATUS = re.compile(r'^(?:mandatory|optional|choice\([\w.-]+\)'
                    r'|condition\([^)]+\))$')

Driver = collections.namedtuple('Driver', 'key title link')
Feature = collections.namedtuple(
    'Feature', 'key title status notes cli values driver_notes')


class MatrixError(Exception):
    pass


def load(path):
    """``(drivers, features)`` of the INI file at ``path``.

    :raises MatrixError: naming the section and what is wrong.
    """
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    with open(path, encoding='utf-8') as f:
        parser.read_file(f)
    drivers = []
    for section in parser.sections():
        if section.startswith('driver.'):
            if not parser.has_option(section, 'title'):
                raise MatrixError('[%s] has no title' % section)
            drivers.append(Driver(section[len('driver.'):],
                                  parser.get(section, 'title'),
                                  parser.get(section, 'link',
                                             fallback=None)))
    if not drivers:
        raise MatrixError('no [driver.NAME] section')
    features = []
    for section in parser.sections():
        if section.startswith('driver.'):
            continue
        for required in ('title', 'status'):
            if not parser.has_option(section, required):
                raise MatrixError('[%s] has no %s' % (section, required))
        status = parser.get(section, 'status')
        if not STATUS.match(status):
            raise MatrixError('[%s] status %r is not mandatory, optional, '
                              'choice(...) or condition(...)'
                              % (section, status))
        values, driver_notes = {}, {}
        for driver in drivers:
            option = 'driver.%s' % driver.key
            if not parser.has_option(section, option):
                raise MatrixError('[%s] has no %s' % (section, option))
            value = parser.get(section, option)
            if value not in VALUES:
                raise MatrixError('[%s] %s=%s is not one of %s'
                                  % (section, option, value,
                                     ', '.join(VALUES)))
            values[driver.key] = value
            driver_notes[driver.key] = parser.get(
                section, 'driver-notes.%s' % driver.key, fallback=None)
        known = {'title', 'status', 'notes', 'cli'}
        known.update('driver.%s' % d.key for d in drivers)
        known.update('driver-notes.%s' % d.key for d in drivers)
        unknown = sorted(set(parser.options(section)) - known)
        if unknown:
            raise MatrixError('[%s] has unknown keys: %s'
                              % (section, ', '.join(unknown)))
        features.append(Feature(section, parser.get(section, 'title'),
                                status,
                                parser.get(section, 'notes', fallback=None),
                                parser.get(section, 'cli', fallback=None),
                                values, driver_notes))
    return drivers, features


def _anchor(feature):
    return 'support-matrix-' + re.sub(r'[^a-z0-9]+', '-',
                                      feature.key.lower()).strip('-')


def _paragraphs(text):
    """INI continuation lines to reStructuredText lines."""
    return [line.strip() for line in text.strip().splitlines()]


def render(drivers, features):
    """The reStructuredText of the matrix, as a list of lines."""
    out = []
    add = out.append
    add('.. list-table:: Summary')
    add('   :header-rows: 1')
    add('   :class: support-matrix')
    add('')
    add('   * - Feature')
    add('     - Status')
    for driver in drivers:
        add('     - %s' % driver.title)
    for feature in features:
        add('   * - :ref:`%s <%s>`' % (feature.title, _anchor(feature)))
        add('     - %s' % feature.status)
        for driver in drivers:
            add('     - %s' % feature.values[driver.key])
    add('')
    for driver in drivers:
        counts = collections.Counter(f.values[driver.key] for f in features)
        add('* %s: %s.' % (driver.title, ', '.join(
            '%d %s' % (counts[v], v) for v in VALUES if counts[v])))
    add('')
    add('Details')
    add('-------')
    add('')
    for feature in features:
        add('.. _%s:' % _anchor(feature))
        add('')
        add(feature.title)
        add('~' * len(feature.title))
        add('')
        add(':Status: %s' % feature.status)
        commands = [' '.join(c.split())
                    for c in (feature.cli or '').split(';') if c.strip()]
        if commands:
            add(':CLI: %s' % '; '.join('``%s``' % c for c in commands))
        add('')
        if feature.notes:
            out.extend(_paragraphs(feature.notes))
            add('')
        for driver in drivers:
            add('* **%s**: %s' % (driver.title, feature.values[driver.key]))
            notes = feature.driver_notes[driver.key]
            if notes:
                add('')
                out.extend('  ' + line for line in _paragraphs(notes))
                add('')
        add('')
    return out


class SupportMatrixDirective(Directive):
    required_arguments = 1
    has_content = False

    def run(self):
        env = self.state.document.settings.env
        rel, path = env.relfn2path(self.arguments[0])
        env.note_dependency(rel)
        try:
            drivers, features = load(path)
        except (OSError, configparser.Error, MatrixError) as exc:
            raise self.error('support matrix %s: %s'
                             % (os.path.basename(path), exc))
        lines = StringList()
        for number, line in enumerate(render(drivers, features)):
            lines.append(line, path, number)
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, lines, node)
        return node.children


def setup(app):
    app.add_directive('support_matrix', SupportMatrixDirective)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
