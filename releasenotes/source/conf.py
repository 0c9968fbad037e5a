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

"""Sphinx configuration of the openstack-sxm release notes (reno)."""

# -- General configuration ----------------------------------------------------

extensions = [
    'openstackdocstheme',
    'reno.sphinxext',
]

templates_path = ['_templates']
source_suffix = '.rst'
master_doc = 'index'

project = 'openstack-sxm Release Notes'
copyright = '2026, openstack-sxm developers'

# Release notes carry no version of their own: reno names the versions.
version = ''
release = ''

exclude_patterns = []
pygments_style = 'native'

# -- openstackdocstheme -------------------------------------------------------

# The project has no opendev repository or Launchpad project (yet): no
# source or bug links, rather than links that lead nowhere.
openstackdocs_repo_name = ''
openstackdocs_bug_project = ''
openstackdocs_bug_tag = ''
openstackdocs_auto_name = False

# -- Options for HTML output --------------------------------------------------

html_theme = 'openstackdocs'
html_static_path = ['_static']
htmlhelp_basename = 'openstack-sxmReleaseNotesdoc'

# -- Options for internationalization -----------------------------------------

locale_dirs = ['locale/']
