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

"""The CI configuration names things that exist.

A Zuul job whose playbook, tox environment, script or devstack variable
was renamed fails only once a CI runs it; these tests fail first.
"""

import configparser
import os
import re

import testtools
import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# Jobs of other repositories that the project stanza may name, with the
# tox environment each runs.
EXTERNAL_JOBS = {'openstack-tox-pep8': 'pep8',
                 'openstack-tox-docs': 'docs',
                 'build-openstack-releasenotes': 'releasenotes'}


def _read(path):
    with open(os.path.join(TOP, path)) as f:
        return f.read()


def _zuul():
    jobs, projects = {}, []
    for item in yaml.safe_load(_read('.zuul.yaml')):
        (kind, body), = item.items()
        if kind == 'job':
            jobs[body['name']] = body
        elif kind == 'project':
            projects.append(body)
    return jobs, projects


def _playbooks(job):
    for key in ('pre-run', 'run', 'post-run'):
        value = job.get(key) or []
        for path in [value] if isinstance(value, str) else value:
            yield path


def _tox_envs():
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(_read('tox.ini'))
    named = {s.split(':', 1)[1] for s in ini.sections()
             if s.startswith('testenv:')}
    return named, ini.get('tox', 'envlist').split(',')


class TestZuulConfig(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.jobs, self.projects = _zuul()

    def test_playbooks_exist_and_are_plays(self):
        for name, job in self.jobs.items():
            for path in _playbooks(job):
                self.assertTrue(os.path.isfile(os.path.join(TOP, path)),
                                '%s: no playbook %s' % (name, path))
                plays = yaml.safe_load(_read(path))
                self.assertIsInstance(plays, list, path)
                for play in plays:
                    self.assertIn('hosts', play, path)

    def test_scripts_the_playbooks_run_exist(self):
        for job in self.jobs.values():
            for path in _playbooks(job):
                for script in re.findall(r'\./(tools/[\w./-]+\.sh)',
                                         _read(path)):
                    full = os.path.join(TOP, script)
                    self.assertTrue(os.access(full, os.X_OK),
                                    '%s runs %s, not an executable file'
                                    % (path, script))

    def test_tox_jobs_name_environments_of_tox_ini(self):
        named, envlist = _tox_envs()
        for name, job in self.jobs.items():
            parent = job.get('parent', '')
            if not parent.startswith('openstack-tox-'):
                continue
            env = job.get('vars', {}).get(
                'tox_envlist', parent[len('openstack-tox-'):])
            # pyXY environments come from [testenv], like envlist's py3.
            known = env in named or (re.match(r'py3\d*$', env)
                                     and 'py3' in envlist)
            self.assertTrue(known, '%s runs tox env %s, which tox.ini '
                            'does not define' % (name, env))
        for job, env in EXTERNAL_JOBS.items():
            self.assertIn(env, named, job)

    def test_a_change_runs_the_jobs_that_test_it(self):
        # Zuul skips a job when every changed file matches one of its
        # irrelevant-files: the devstack plugin's tests are in the unit
        # and functional runs, the docs are built by the README's test
        # command and the docs jobs.
        def runs(job, path):
            return not any(re.search(rx, path)
                           for rx in job.get('irrelevant-files', []))
        for name in ('openstack-sxm-unit-functional',
                     'openstack-sxm-tox-py311', 'openstack-sxm-tox-py312'):
            job = self.jobs[name]
            self.assertTrue(runs(job, 'devstack/plugin.sh'), name)
            self.assertTrue(runs(job, 'devstack/settings'), name)
            self.assertTrue(runs(job, 'sxm_core/migrate.py'), name)
            self.assertFalse(runs(job, 'doc/source/index.rst'), name)
        checked = set()
        for project in self.projects:
            checked.update(j if isinstance(j, str) else list(j)[0]
                           for j in project['check']['jobs'])
        self.assertLessEqual(set(EXTERNAL_JOBS), checked)

    def test_project_pipelines_name_known_jobs(self):
        for project in self.projects:
            for pipeline, body in project.items():
                for job in body['jobs']:
                    job = job if isinstance(job, str) else list(job)[0]
                    self.assertIn(job, set(self.jobs) | set(EXTERNAL_JOBS),
                                  '%s names unknown job %s'
                                  % (pipeline, job))

    def test_devstack_job_sets_only_variables_of_the_plugin(self):
        settings = _read('devstack/settings')
        defined = set(re.findall(r'^(\w+)=', settings, re.M))
        # The password is read from the environment, never defaulted.
        defined.add('XENAPI_PASSWORD')
        job = self.jobs['openstack-sxm-devstack-xcpng']
        localrcs = [job['vars']['devstack_localrc']]
        localrcs += [g['devstack_localrc']
                     for g in job.get('group-vars', {}).values()]
        for localrc in localrcs:
            for var in localrc:
                if var.startswith(('SXM_', 'XENAPI_')):
                    self.assertIn(var, defined, 'devstack/settings has no '
                                  '%s' % var)
        self.assertIn('openstack-sxm', job['vars']['devstack_plugins'])
        self.assertIn('define_plugin openstack-sxm', settings)


class TestTempestSelection(testtools.TestCase):

    def test_include_list_is_tempest_regexes(self):
        lines = [line.strip() for line in
                 _read('tools/cloud/tempest-include.txt').splitlines()]
        regexes = [line for line in lines if line and
                   not line.startswith('#')]
        self.assertNotEqual([], regexes)
        for regex in regexes:
            re.compile(regex)
            self.assertTrue(regex.startswith(r'^tempest\.api\.'), regex)

    def test_devstack_job_runs_the_same_tests(self):
        jobs, _ = _zuul()
        job_regex = jobs['openstack-sxm-devstack-xcpng']['vars'][
            'tempest_test_regex']
        for line in _read('tools/cloud/tempest-include.txt').splitlines():
            if line.strip() and not line.startswith('#'):
                self.assertIn(line.strip(), job_regex)

    def test_tempest_pinned_in_upper_constraints(self):
        pins = dict(line.split('===', 1) for line in
                    _read('upper-constraints.txt').splitlines()
                    if '===' in line)
        wanted = re.search(r'^tempest==([\w.]+)',
                           _read('tools/cloud/tempest-requirements.txt'),
                           re.M).group(1)
        self.assertEqual(wanted, pins.get('tempest'))
