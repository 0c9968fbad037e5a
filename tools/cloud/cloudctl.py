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

"""What tools/cloud/cloud.sh does in Python: render its config templates,
create the Keystone projects, users and catalog, the volume types, and
wait for (or check) the services.

Every step is idempotent: ``cloud.sh up`` on a running cloud changes
nothing.
"""

import argparse
import os
import socket
import string
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICES = {
    # user: (service name, type, port, path)
    'placement': ('placement', 'placement', 'PLACEMENT_PORT', ''),
    'glance': ('glance', 'image', 'GLANCE_PORT', ''),
    'nova': ('nova', 'compute', 'NOVA_PORT', '/v2.1'),
    'cinder': ('cinderv3', 'volumev3', 'CINDER_PORT',
               '/v3/%(project_id)s'),
    'neutron': ('neutron', 'network', 'NEUTRON_PORT', ''),
}


class Template(string.Template):
    # ${NAME} only: oslo.config and gunicorn files have their own "$".
    pattern = r'\$(?:(?P<escaped>\$\$)|\{(?P<braced>[A-Z_a-z0-9]+)\}' \
              r'|(?P<named>(?!))|(?P<invalid>))'


class _Values(dict):
    def __missing__(self, key):
        for prefix, inc in (('AUTHTOKEN_', 'authtoken.inc'),
                            ('SERVICE_AUTH_', 'service-auth.inc')):
            if key.startswith(prefix):
                values = _Values(self, SVC=key[len(prefix):])
                return render_text(_read(inc), values).strip()
        raise KeyError(key)


def _read(name):
    with open(os.path.join(HERE, 'etc', name)) as f:
        return f.read()


def _die(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def render_text(text, values):
    try:
        return Template(text).substitute(values)
    except KeyError as exc:
        _die('cloudctl: template variable %s is not set' % exc)


def render(args):
    values = _Values(os.environ)
    for pair in args.set or ():
        key, _, value = pair.partition('=')
        values[key] = value
    out = render_text(_read(args.template), values)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # The mode of O_CREAT holds only for a new file: configs hold passwords.
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(out)


# -- waiting -----------------------------------------------------------------

def answers_http(url):
    try:
        urllib.request.urlopen(url, timeout=5).close()
        return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


def answers_tcp(port):
    try:
        socket.create_connection(('127.0.0.1', int(port)), timeout=3).close()
        return True
    except OSError:
        return False


def _alive(pidfile):
    try:
        with open(pidfile) as f:
            os.kill(int(f.read().strip()), 0)
        return True
    except (OSError, ValueError):
        return False


def wait(args):
    """Wait until the check answers; fail early when the process died."""
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if _check(args.kind, args.target):
            return 0
        if args.pidfile and not _alive(args.pidfile):
            print('cloud: %s died while starting' % args.name,
                  file=sys.stderr)
            return 1
        time.sleep(0.5)
    print('cloud: %s did not answer within %ss' % (args.name, args.timeout),
          file=sys.stderr)
    return 1


def _check(kind, target):
    if kind == 'http':
        return answers_http(target)
    if kind == 'tcp':
        return answers_tcp(target)
    if kind in ('compute', 'volume'):
        return _services_up(kind, target.split(','))
    if kind == 'pools':
        return _pools_known(target.split(','))
    _die('cloudctl: unknown check %s' % kind)


def _conn():
    import openstack
    return openstack.connect(cloud='sxm-admin')


def _services_up(kind, names):
    """Every ``binary@host`` of ``names`` is enabled and up."""
    try:
        conn = _conn()
        if kind == 'compute':
            found = conn.compute.services()
        else:
            found = conn.block_storage.services()
        up = {'%s@%s' % (s.binary, s.host) for s in found
              if s.state == 'up' and s.status == 'enabled'}
    except Exception:  # any failure here means: not yet
        return False
    return set(names) <= up


def _pools_known(names):
    """The scheduler has the capabilities of every ``host@backend#pool``.

    A volume service up is not enough: a backend's pools reach the
    scheduler with its first capabilities report, and a report sent while
    the scheduler was still starting is lost until the next periodic one.
    """
    try:
        known = {p.name for p in _conn().block_storage.backend_pools()}
    except Exception:  # any failure here means: not yet
        return False
    return set(names) <= known


def check(args):
    """``kind:target`` pairs; prints what does not answer, exit 1 if any."""
    failed = []
    for item in args.checks:
        name, kind, target = item.split('|', 2)
        if not _check(kind, target):
            failed.append(name)
    for name in failed:
        print('cloud: %s does not answer' % name)
    return 1 if failed else 0


# -- keystone and cinder resources --------------------------------------------

def _password_works(name, password):
    """Keystone issues ``name`` a token (unscoped) for ``password``."""
    from keystoneauth1 import exceptions
    from keystoneauth1.identity import v3
    from keystoneauth1 import session
    auth = v3.Password(
        auth_url='http://127.0.0.1:%s/v3' % os.environ['KEYSTONE_PORT'],
        username=name, password=password, user_domain_name='Default')
    try:
        session.Session(auth=auth).get_token()
        return True
    except exceptions.Unauthorized:
        return False


def keystone(args):
    conn = _conn()
    ident = conn.identity
    env = os.environ
    domain = ident.find_domain('default')
    roles = {r.name: r for r in ident.roles()}
    for role in ('member', 'reader', 'service', 'admin'):
        if role not in roles:
            roles[role] = ident.create_role(name=role)
    projects = {}
    for name in ('service', 'demo'):
        projects[name] = (ident.find_project(name, domain_id=domain.id)
                          or ident.create_project(name=name,
                                                  domain_id=domain.id))

    def user(name, password, project, role_names):
        found = ident.find_user(name, domain_id=domain.id)
        if found is None:
            found = ident.create_user(name=name, password=password,
                                      domain_id=domain.id,
                                      default_project_id=project.id)
        elif not _password_works(name, password):
            # Keystone revokes every token of a user whose password is
            # set, even to the same value: only when it differs.
            ident.update_user(found, password=password)
        for role in role_names:
            ident.assign_project_role_to_user(project, found, roles[role])

    user('demo', env['DEMO_PASSWORD'], projects['demo'], ['member'])
    services = {s.type: s for s in ident.services()}
    endpoints = list(ident.endpoints())
    for svc, (name, stype, port_var, path) in SERVICES.items():
        user(svc, env['SERVICE_PASSWORD'], projects['service'],
             ['admin', 'service'])
        service = services.get(stype) or ident.create_service(
            name=name, type=stype)
        url = 'http://127.0.0.1:%s%s' % (env[port_var], path)
        have = {e.interface for e in endpoints
                if e.service_id == service.id}
        for interface in ('public', 'internal', 'admin'):
            if interface not in have:
                ident.create_endpoint(service_id=service.id, url=url,
                                      interface=interface,
                                      region_id='RegionOne')
    return 0


def volume_types(args):
    conn = _conn()
    have = {t.name for t in conn.block_storage.types()}
    # pool-a and pool-b name a backend and nothing else: Cinder hands a
    # retype between them to the driver, which moves the volume between
    # the XAPI pools (it compares every extra spec, equal ones included,
    # and takes its generic migration, which cannot copy XAPI volumes,
    # when any but volume_backend_name is set). gold-any names no
    # backend: its volumes may be migrated to the gold pool of either
    # (the scheduler checks the volume's type against the target).
    for name, backend, tier in (('gold', 'sxm', 'gold'),
                                ('silver', 'sxm', 'silver'),
                                ('pool-a', 'sxm', None),
                                ('pool-b', 'sxm-b', None),
                                ('gold-any', None, 'gold')):
        if name not in have:
            specs = {}
            if backend:
                specs['volume_backend_name'] = backend
            if tier:
                specs['pool_name'] = tier
            conn.block_storage.create_type(name=name, extra_specs=specs)
    return 0


def neutron_ready(args):
    """List networks, then ports.

    neutron 29's API fails to list ports (no Port.port_forwardings) until
    some query has configured its ORM mappers, which listing networks does.
    """
    conn = _conn()
    list(conn.network.networks())
    list(conn.network.ports())
    return 0


def install_srs(args):
    """Suspend and crash-dump SRs, set as a XenServer install sets them.

    The installer points the pool's (and each host's) suspend image and
    crash dump SRs at local storage, the default SR; the simulator starts
    without, like a bare xapi, and VM.suspend then fails VM_NO_SUSPEND_SR.
    """
    import XenAPI
    session = XenAPI.Session(args.url)
    session.login_with_password('root', os.environ['XAPI_PASSWORD'],
                                '2.21', 'cloud.sh')
    try:
        api = session.xenapi
        pool = api.pool.get_all()[0]
        sr = api.pool.get_default_SR(pool)
        api.pool.set_suspend_image_SR(pool, sr)
        api.pool.set_crash_dump_SR(pool, sr)
        for host in api.host.get_all():
            api.host.set_suspend_image_sr(host, sr)
            api.host.set_crash_dump_sr(host, sr)
    finally:
        session.xenapi.session.logout()
    return 0


def _parser():
    parser = argparse.ArgumentParser(prog='cloudctl')
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('render')
    p.add_argument('template')
    p.add_argument('output')
    p.add_argument('--set', action='append', metavar='NAME=VALUE')
    p.set_defaults(func=render)
    p = sub.add_parser('wait')
    p.add_argument('name')
    p.add_argument('kind', choices=('http', 'tcp', 'compute', 'volume',
                                    'pools'))
    p.add_argument('target')
    p.add_argument('--pidfile')
    p.add_argument('--timeout', type=float, default=120)
    p.set_defaults(func=wait)
    p = sub.add_parser('check')
    p.add_argument('checks', nargs='+', metavar='NAME|KIND|TARGET')
    p.set_defaults(func=check)
    p = sub.add_parser('keystone')
    p.set_defaults(func=keystone)
    p = sub.add_parser('neutron-ready')
    p.set_defaults(func=neutron_ready)
    p = sub.add_parser('install-srs')
    p.add_argument('url')
    p.set_defaults(func=install_srs)
    p = sub.add_parser('volume-types')
    p.set_defaults(func=volume_types)
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == '__main__':
    sys.exit(main())
