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

"""Sphinx configuration of the openstack-sxm documentation.

Built by ``tox -e docs``: ``sphinx-build -W --keep-going -b html
doc/source doc/build/html``. No network is needed: the theme's links
are static and the option reference and samples come from the installed
package's ``oslo.config.opts`` entry points.
"""

import os
import sys

# Our Sphinx extensions (doc/ext).
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__),
                                                '..', 'ext')))

extensions = [
    'openstackdocstheme',
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
    'sphinxarg.ext',
    'support_matrix',
]

# -- oslo.config -------------------------------------------------------------

# Sample files written at each build into _static/ (generated, not kept in
# git) from the generator files the project ships; configuration/samples/
# includes them and offers them for download.
config_generator_config_file = [
    ('../../etc/oslo-config-generator/sxm.conf', '_static/sxm'),
    ('../../etc/oslo-config-generator/nova-sxm.conf', '_static/nova-sxm'),
    ('../../etc/oslo-config-generator/cinder-sxm.conf',
     '_static/cinder-sxm'),
]

# -- General -----------------------------------------------------------------

project = 'openstack-sxm'
copyright = 'openstack-sxm developers'
source_suffix = {'.rst': 'restructuredtext'}
master_doc = 'index'
exclude_patterns = []
pygments_style = 'native'
add_module_names = False

# -- openstackdocstheme -------------------------------------------------------

html_theme = 'openstackdocs'
# No source links to opendev.org and no bug link: the project is hosted
# outside OpenDev and has no Launchpad project.
openstackdocs_repo_name = ''
openstackdocs_bug_project = ''
openstackdocs_use_storyboard = False
openstackdocs_auto_name = False
openstackdocs_pdf_link = False
html_theme_options = {
    'display_badge': False,
    'show_other_versions': False,
}
