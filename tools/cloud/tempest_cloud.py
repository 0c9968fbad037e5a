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

"""tempest.conf from a running cloud, and a plain summary of a Tempest run.

Run by tools/cloud/tempest.sh with the Python of Tempest's own venv (it
needs only requests, PyYAML, python-subunit and testtools, all Tempest
dependencies)::

    tempest_cloud.py configure --clouds-yaml FILE --cloud NAME --out FILE
    stestr last --subunit | tempest_cloud.py summary

``configure`` reads the cloud's admin credentials from clouds.yaml, asks
the APIs what the cloud has (compute services, API microversions, Cinder
backends and volume types) and writes a tempest.conf saying so. It creates
what Tempest needs and the cloud may lack: a small raw image and two
flavors, each found by name first so that a second run reuses them.
"""

import argparse
import configparser
import os
import re
import sys
import time
import urllib.parse

import requests
import yaml

# Names of what configure creates, found by name on a later run.
IMAGE_NAME = 'sxm-tempest-raw'
FLAVORS = (
    # (name, ram MiB, vcpus, root GiB): the alt flavor differs in RAM only.
    ('sxm-tempest', 256, 1, 1),
    ('sxm-tempest-alt', 384, 1, 1),
)
# A raw image smaller than the root disk: the driver streams it into the
# root VDI and the guest never boots it (the simulator runs no OS).
IMAGE_BYTES = 4 * 1024 * 1024
TIMEOUT = 30


class CloudError(Exception):
    """The cloud answered something configure cannot work with."""


class Cloud(object):
    """Admin REST access to one cloud of clouds.yaml."""

    def __init__(self, clouds_yaml, name):
        with open(clouds_yaml) as f:
            clouds = yaml.safe_load(f).get('clouds') or {}
        if name not in clouds:
            msg = ('%s has no cloud %r (it has: %s)' % (
                clouds_yaml, name, ', '.join(sorted(clouds)) or 'none'))
            raise CloudError(msg)
        self.conf = clouds[name]
        self.auth = self.conf.get('auth') or {}
        for key in ('auth_url', 'username', 'password', 'project_name'):
            if not self.auth.get(key):
                msg = ('cloud %r of %s has no auth %s'
                       % (name, clouds_yaml, key))
                raise CloudError(msg)
        self.region = self.conf.get('region_name')
        self.interface = self.conf.get('interface') or 'public'
        self.verify = self.conf.get('cacert') or self.conf.get('verify', True)
        self.http = requests.Session()
        self.http.verify = self.verify
        self.token = None
        self.catalog = []
        self.project_id = None
        self._login()

    @property
    def user_domain(self):
        return (self.auth.get('user_domain_name')
                or self.auth.get('domain_name') or 'Default')

    @property
    def project_domain(self):
        return (self.auth.get('project_domain_name')
                or self.auth.get('domain_name') or 'Default')

    @property
    def identity_v3(self):
        url = self.auth['auth_url'].rstrip('/')
        return url if url.endswith('/v3') else url + '/v3'

    def _login(self):
        body = {'auth': {
            'identity': {'methods': ['password'], 'password': {'user': {
                'name': self.auth['username'],
                'domain': {'name': self.user_domain},
                'password': self.auth['password']}}},
            'scope': {'project': {
                'name': self.auth['project_name'],
                'domain': {'name': self.project_domain}}}}}
        resp = self.http.post(self.identity_v3 + '/auth/tokens', json=body,
                              timeout=TIMEOUT)
        if resp.status_code != 201:
            # Not the body: a failed login echoes nothing useful, and the
            # request held the password.
            msg = ('Keystone at %s refused the admin login (HTTP %s)'
                   % (self.identity_v3, resp.status_code))
            raise CloudError(msg)
        self.token = resp.headers['X-Subject-Token']
        token = resp.json()['token']
        self.catalog = token.get('catalog') or []
        self.project_id = token['project']['id']
        self.http.headers['X-Auth-Token'] = self.token

    def service_types(self):
        return {svc['type'] for svc in self.catalog}

    def endpoint(self, *types):
        """URL of the first of ``types`` in the catalog, else None."""
        for wanted in types:
            for svc in self.catalog:
                if svc['type'] != wanted:
                    continue
                for ep in svc['endpoints']:
                    if ep['interface'] != self.interface:
                        continue
                    if self.region and self.region not in (
                            ep.get('region_id'), ep.get('region')):
                        continue
                    return ep['url'].rstrip('/')
        return None

    def region_of(self, service_type):
        for svc in self.catalog:
            if svc['type'] == service_type:
                for ep in svc['endpoints']:
                    return ep.get('region_id') or ep.get('region')
        return None

    def call(self, method, url, expect=(200,), **kwargs):
        kwargs.setdefault('timeout', TIMEOUT)
        resp = self.http.request(method, url, **kwargs)
        if resp.status_code not in expect:
            msg = ('%s %s: HTTP %s %s' % (
                method, _path(url), resp.status_code, resp.text[:300]))
            raise CloudError(msg)
        return resp


def _path(url):
    return urllib.parse.urlsplit(url).path


def microversions(cloud, endpoint):
    """(min, max) microversion of the API version at ``endpoint``."""
    body = cloud.call('GET', endpoint + '/', expect=(200, 300)).json()
    version = body.get('version') or {}
    if not version.get('version'):
        # Some APIs answer only at their root: find our version there.
        for ver in body.get('versions') or []:
            for link in ver.get('links') or []:
                if _path(link.get('href', '')).rstrip('/') == \
                        _path(endpoint).rstrip('/'):
                    version = ver
    return version.get('min_version') or None, version.get('version') or None


def compute_hosts(cloud, nova):
    services = cloud.call(
        'GET', nova + '/os-services',
        params={'binary': 'nova-compute'}).json()['services']
    return sorted(s['host'] for s in services
                  if s['state'] == 'up' and s['status'] == 'enabled')


def ensure_image(cloud, glance):
    images = cloud.call('GET', glance + '/v2/images',
                        params={'name': IMAGE_NAME}).json()['images']
    active = [i for i in images if i['status'] == 'active']
    if active:
        return active[0]['id'], False
    image = cloud.call('POST', glance + '/v2/images', expect=(201,), json={
        'name': IMAGE_NAME, 'disk_format': 'raw', 'container_format': 'bare',
        'visibility': 'public'}).json()
    # Bytes that vary, so that a copy that loses or shifts data differs.
    data = b''.join(i.to_bytes(4, 'big') for i in range(IMAGE_BYTES // 4))
    cloud.call('PUT', glance + '/v2/images/%s/file' % image['id'],
               expect=(204,), data=data,
               headers={'Content-Type': 'application/octet-stream'})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = cloud.call('GET', glance + '/v2/images/%s' % image['id']
                            ).json()['status']
        if status == 'active':
            return image['id'], True
        if status in ('killed', 'deleted'):
            break
        time.sleep(1)
    msg = ('image %s (%s) did not become active: %s'
           % (IMAGE_NAME, image['id'], status))
    raise CloudError(msg)


def ensure_flavor(cloud, nova, name, ram, vcpus, disk):
    flavors = cloud.call('GET', nova + '/flavors/detail',
                         params={'is_public': 'None'}).json()['flavors']
    for flavor in flavors:
        if flavor['name'] == name:
            return flavor['id'], False
    flavor = cloud.call('POST', nova + '/flavors', json={'flavor': {
        'name': name, 'ram': ram, 'vcpus': vcpus, 'disk': disk}}).json()
    return flavor['flavor']['id'], True


def volume_backends(cloud, cinder):
    """Distinct volume_backend_name of the pools, and every pool name."""
    pools = cloud.call('GET', cinder + '/scheduler-stats/get_pools',
                       params={'detail': 'True'}).json()['pools']
    names = []
    for pool in pools:
        name = (pool.get('capabilities') or {}).get('volume_backend_name')
        if name and name not in names:
            names.append(name)
    return sorted(names), [p['name'] for p in pools]


def volume_types(cloud, cinder):
    types = cloud.call('GET', cinder + '/types').json()['volume_types']
    return {t['name']: t.get('extra_specs') or {} for t in types}


def build_conf(cloud, args, log):
    conf = configparser.ConfigParser(interpolation=None)
    conf.optionxform = str

    def section(name, **values):
        if name != 'DEFAULT' and not conf.has_section(name):
            conf.add_section(name)
        for key, value in values.items():
            if value is not None:
                conf.set(name, key, str(value))

    have = cloud.service_types()
    nova = cloud.endpoint('compute')
    glance = cloud.endpoint('image')
    cinder_type = next((t for t in ('volumev3', 'block-storage', 'volume')
                        if t in have), None)
    cinder = cloud.endpoint(cinder_type) if cinder_type else None
    if not nova or not glance:
        msg = ('the catalog has no %s endpoint: Tempest cannot test '
               'this cloud' % ('compute' if not nova else 'image'))
        raise CloudError(msg)
    neutron = cloud.endpoint('network')
    region = cloud.region or cloud.region_of('compute')

    section('DEFAULT', log_file='tempest.log', debug=False,
            use_stderr=False)
    section('oslo_concurrency', lock_path=os.path.join(args.workdir, 'lock'))
    section('auth',
            use_dynamic_credentials=True,
            create_isolated_networks=False,
            admin_username=cloud.auth['username'],
            admin_password=cloud.auth['password'],
            admin_project_name=cloud.auth['project_name'],
            admin_domain_name=cloud.user_domain,
            default_credentials_domain_name=cloud.project_domain)
    section('identity',
            uri_v3=cloud.identity_v3,
            auth_version='v3',
            region=region,
            v3_endpoint_type=cloud.interface,
            disable_ssl_certificate_validation=cloud.verify is False,
            ca_certificates_file=(cloud.verify if isinstance(cloud.verify,
                                                             str) else None))
    section('identity-feature-enabled', api_v2=False)

    # -- compute ---------------------------------------------------------
    hosts = compute_hosts(cloud, nova)
    log('nova-compute services up: %d (%s)' % (len(hosts), ', '.join(hosts)))
    nova_min, nova_max = microversions(cloud, nova)
    image_id, made = ensure_image(cloud, glance)
    log('image %s %s (%s)' % (IMAGE_NAME, 'created' if made else 'reused',
                              image_id))
    flavor_ids = []
    for name, ram, vcpus, disk in FLAVORS:
        flavor_id, made = ensure_flavor(cloud, nova, name, ram, vcpus, disk)
        flavor_ids.append(flavor_id)
        log('flavor %s %s (%s)' % (name, 'created' if made else 'reused',
                                   flavor_id))
    section('compute',
            region=region,
            endpoint_type=cloud.interface,
            image_ref=image_id,
            image_ref_alt=image_id,
            flavor_ref=flavor_ids[0],
            flavor_ref_alt=flavor_ids[1],
            min_compute_nodes=len(hosts),
            min_microversion=nova_min,
            max_microversion=nova_max,
            build_timeout=args.build_timeout)
    # What the SXM driver does (doc/source/user/support-matrix.ini).
    section('compute-feature-enabled',
            live_migration=True,
            block_migration_for_live_migration=True,
            can_migrate_between_any_hosts=len(hosts) >= 2,
            live_migrate_back_and_forth=False,
            # A boot volume stays on its SR, which the other pool of this
            # cloud cannot reach: the driver refuses such a migration.
            volume_backed_live_migration=False,
            pause=True,
            suspend=True,
            snapshot=True,
            # By Storage XenMotion of the halted VM (copy mode).
            resize=True,
            cold_migration=True,
            shelve=True,
            shelve_migrate=False,
            rescue=True,
            console_output=False,
            change_password=False,
            interface_attach=False,
            serial_console=False,
            vnc_console=False,
            spice_console=False,
            personality=False,
            config_drive=True,
            metadata_service=False,
            attach_encrypted_volume=False,
            # The driver can (sharable VDIs on opted-in SRs), but servers
            # land in either pool and a gold volume is pool-a's only.
            volume_multiattach=False,
            # Tempest swaps an ACTIVE server's volume: XAPI cannot.
            swap_volume=False,
            stable_rescue=False,
            hostname_fqdn_sanitization=False)
    section('validation', run_validation=False)

    # -- image -----------------------------------------------------------
    section('image', region=region, endpoint_type=cloud.interface,
            build_timeout=args.build_timeout)

    # -- volume ----------------------------------------------------------
    if cinder:
        backends, pools = volume_backends(cloud, cinder)
        types = volume_types(cloud, cinder)
        log('cinder pools: %s; backend names: %s; volume types: %s' % (
            ', '.join(pools) or 'none', ', '.join(backends) or 'none',
            ', '.join(sorted(types)) or 'none'))
        cinder_root = cinder.split('/v3')[0]
        cinder_min, cinder_max = microversions(cloud, cinder_root + '/v3')
        # The type of every volume Tempest creates: one that both compute
        # hosts reach, so that a server with a volume attached can move
        # between pools.
        vtype = args.volume_type if args.volume_type in types else None
        if args.volume_type and vtype is None:
            log('volume type %s does not exist: volumes get the default '
                'type' % args.volume_type)
        section('volume',
                region=region,
                endpoint_type=cloud.interface,
                catalog_type=cinder_type,
                backend_names=','.join(backends),
                volume_type=vtype,
                storage_protocol='xensm',
                manage_volume_ref='source-name,volume-%s',
                manage_snapshot_ref='source-name,snapshot-%s',
                vendor_name='XenServer/XCP-ng',
                volume_size=1,
                # What XAPI exports (upload to image); qcow2, Tempest's
                # other default, is refused by the driver.
                disk_format='raw,vhd',
                min_microversion=cinder_min,
                max_microversion=cinder_max,
                build_timeout=args.build_timeout)
        section('volume-feature-enabled',
                multi_backend=len(backends) >= 2,
                backup=False,
                snapshot=True,
                clone=True,
                # openstack volume manage by name label: Cinder names
                # volumes volume-<id> and snapshots snapshot-<id>.
                manage_volume=True,
                manage_snapshot=True,
                extend_attached_volume=False)
    if neutron:
        # A Neutron with no agent binds no port: Tempest creates no
        # network for its projects (create_isolated_networks), servers
        # boot with none, and only the extensions this Neutron has count.
        exts = sorted(e['alias'] for e in cloud.call(
            'GET', neutron + '/v2.0/extensions').json()['extensions'])
        log('neutron: %d API extensions, trunk %s' % (
            len(exts), 'on' if 'trunk' in exts else 'off'))
        section('network', region=region, endpoint_type=cloud.interface)
        section('network-feature-enabled', api_extensions=','.join(exts))
    section('service_available',
            nova='compute' in have,
            glance=True,
            cinder=cinder is not None,
            neutron=neutron is not None,
            swift='object-store' in have,
            horizon=False)
    return conf


def configure(args):
    def log(msg):
        print('tempest.conf: %s' % msg)

    cloud = Cloud(args.clouds_yaml, args.cloud)
    conf = build_conf(cloud, args, log)
    # It holds the admin password: readable by its owner only.
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write('# Written by tools/cloud/tempest.sh from the running '
                'cloud; rewritten on every run.\n')
        conf.write(f)
    os.chmod(args.out, 0o600)
    log('wrote %s' % args.out)


def exclusions(selected_file, exclude_file):
    """(test id, reason) of each selected test the exclude list drops."""
    rules = []
    with open(exclude_file) as f:
        for line in f:
            regex, _, reason = line.partition('#')
            if regex.strip():
                rules.append((re.compile(regex.strip()), reason.strip()))
    with open(selected_file) as f:
        selected = [line.strip() for line in f if line.strip()]
    for test_id in selected:
        for regex, reason in rules:
            if regex.search(test_id):
                yield test_id, reason
                break


def summary(args):
    """PASS/FAIL/SKIP per test of a subunit v2 stream on stdin.

    With --selected and --exclude-list, also EXCL for each selected test
    the exclude list kept from running, with its reason.
    """
    import subunit
    import testtools

    results = []

    def on_test(test):
        reason = ''
        details = test.get('details') or {}
        if 'reason' in details:
            # Tempest wraps a skip of a test marked unstable as "Marked as
            # unstable ... failure was: <reason>": keep the reason.
            reason = details['reason'].as_text().strip().rsplit(
                'failure was: ', 1)[-1]
        elif test['status'] == 'fail' and 'traceback' in details:
            lines = details['traceback'].as_text().strip().splitlines()
            reason = lines[-1] if lines else ''
        results.append((test['status'], test['id'], reason))

    stream = subunit.ByteStreamToStreamResult(
        sys.stdin.buffer, non_subunit_name='stdout')
    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    try:
        stream.run(result)
    finally:
        result.stopTestRun()

    if args.selected and args.exclude_list:
        results.extend(('excluded', test_id, reason) for test_id, reason
                       in exclusions(args.selected, args.exclude_list))

    labels = {'success': 'PASS', 'fail': 'FAIL', 'skip': 'SKIP',
              'xfail': 'XFAIL', 'uxsuccess': 'UXSUCCESS', 'excluded': 'EXCL'}
    counts = {}
    for status, test_id, reason in sorted(results, key=lambda r: r[1]):
        label = labels.get(status, status.upper())
        counts[label] = counts.get(label, 0) + 1
        # Drop the idempotent id and tags tempest appends to every name.
        name = test_id.split('[')[0]
        print('%-5s %s%s' % (label, name, (': ' + reason) if reason else ''))
    print('tempest: %s' % ', '.join(
        '%d %s' % (n, label.lower()) for label, n in sorted(counts.items()))
        if counts else 'tempest: no test ran')
    return 1 if counts.get('FAIL') or counts.get('UXSUCCESS') else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    cfg = sub.add_parser('configure', help='write tempest.conf')
    cfg.add_argument('--clouds-yaml', required=True)
    cfg.add_argument('--cloud', required=True,
                     help='an admin cloud of clouds.yaml')
    cfg.add_argument('--out', required=True, help='tempest.conf to write')
    cfg.add_argument('--workdir', required=True,
                     help="Tempest's workspace (lock files)")
    cfg.add_argument('--volume-type', default='silver',
                     help='type of the volumes Tempest creates, if it '
                          'exists (default: %(default)s)')
    cfg.add_argument('--build-timeout', type=int, default=600)
    summ = sub.add_parser('summary',
                          help='summarise a subunit stream on stdin')
    summ.add_argument('--selected',
                      help='file of the test ids selected before exclusion')
    summ.add_argument('--exclude-list', help="the run's exclude list")
    args = parser.parse_args(argv)
    try:
        if args.command == 'configure':
            return configure(args)
        return summary(args)
    except (CloudError, requests.RequestException, OSError) as exc:
        print('tempest_cloud.py %s: %s' % (args.command, exc),
              file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
