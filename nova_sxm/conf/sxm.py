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

"""The ``[sxm]`` group of nova.conf, read by the SXM compute driver.

Only oslo.config is imported here, so the options load (and the sample
config generates) without nova installed.
"""

import re

from oslo_config import cfg

from sxm_core import conf as core_conf

sxm_group = cfg.OptGroup(
    'sxm',
    title='XenServer / XCP-ng (Storage XenMotion) options',
    help="""
Options of the SXM compute driver (``compute_driver = sxm.driver.SxmDriver``).

One nova-compute service manages one XenServer / XCP-ng host. It talks to the
pool master over the network (XAPI over HTTP(S)); a pool of N hosts runs N
nova-compute services, each with its own ``host_name``. Live block migration
uses Storage XenMotion, within a pool or to another pool.
""")

# One line per form; parse_sr_filter() gives the friendly error, this
# expression lets oslo.config refuse a bad value when the file is parsed.
# Keep both in step (the unit tests compare them).
_UUID = '[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}'
SR_FILTER_REGEX = (
    r'^(?:default-sr:true'
    r'|other-config:[^=\r\n]+=[^\r\n]+'
    r'|name-label:[^\r\n]+'
    r'|uuid:' + _UUID + r')\Z')

SR_FILTER_FORMS = ("'default-sr:true', 'other-config:KEY=VALUE', "
                   "'name-label:NAME' or 'uuid:UUID'")

SXM_OPTS = [
    cfg.StrOpt('host_name',
               help="""
Name label or UUID of the XenServer host this nova-compute service manages.

Instances of this service run on that host, and its resources are what the
service reports to placement. The service itself runs anywhere that reaches
the pool master at ``connection_url``.

Possible values:

* Unset (default): the pool master. Fine for a single-host pool; in a pool of
  several hosts run one nova-compute per host, each naming its host here.
* A host name label as shown by ``xe host-list params=name-label``.
* A host UUID.

Related options:

* connection_url
"""),
    cfg.StrOpt('sr_matching_filter',
               default='default-sr:true',
               regex=SR_FILTER_REGEX,
               help="""
Which storage repository (SR) holds the disks of new instances, and receives
the disks of instances that live-migrate to this host.

Possible values:

* ``default-sr:true``: the pool's default SR (the one XenCenter marks as
  default).
* ``other-config:KEY=VALUE``: the SR whose other-config holds KEY=VALUE. In a
  default XenServer / XCP-ng install,
  ``other-config:i18n-key=local-storage`` selects the host's local storage.
* ``name-label:NAME``: the SR named NAME (spaces allowed).
* ``uuid:UUID``: the SR with that UUID.

A value of any other form is refused with an error naming this option.

Related options:

* host_name
"""),
    cfg.StrOpt('default_network',
               default='xenbr0',
               help="""
XAPI network for a VIF whose Neutron network matches no XAPI network.

Each VIF is attached to the XAPI network chosen by the first rule that
matches:

1. the XAPI network whose bridge equals the bridge of the VIF's Neutron
   network;
2. else the XAPI network whose name label equals the Neutron network's name;
3. else this network.

Possible values:

* A XAPI network name label, bridge name (e.g. ``xenbr0``) or UUID.

Related options:

* live_migration_network
"""),
    cfg.StrOpt('live_migration_network',
               help="""
XAPI network of the destination host that receives live migrations.

Memory and disk contents of migrating instances travel over this network; the
destination host needs an IP address on it.

Possible values:

* Unset (default): the destination host's management network.
* A XAPI network name label, bridge name or UUID, on the destination host's
  pool.

Related options:

* default_network
* remote_pool_passwords
"""),
    cfg.DictOpt('remote_pool_passwords',
                default={},
                secret=True,
                help="""
Passwords of other XAPI pools, for live migrations to them.

For a live migration to another pool, the source nova-compute logs in to the
destination pool itself and asks it for the migration token, so that token
never leaves the source process. It logs in as ``connection_username`` with
the password listed here for the destination pool. Never logged.

Possible values:

* Comma-separated ``POOL_UUID:PASSWORD`` pairs, e.g.
  ``6b3d0c2e-...:secret1,9f1a...:secret2``. A password may contain ``:``
  but not ``,`` (oslo.config's dictionary syntax); write ``$`` as ``$$``.
* Empty (default): every pool uses ``connection_password``.

Related options:

* connection_username
* connection_password
"""),
    cfg.StrOpt('image_upload_format',
               default='vhd',
               choices=[
                   ('vhd', 'Upload dynamic VHD images (disk_format vhd) '
                           'as XAPI exports them: only the allocated '
                           'blocks travel.'),
                   ('raw', 'Upload raw images (disk_format raw): readable '
                           'by every hypervisor, full size on the wire.'),
               ],
               help="""
Disk format of instance snapshots (and shelved instances) uploaded to Glance.

``vhd`` uploads the dynamic VHD that XAPI's ``/export_raw_vdi?format=vhd``
streams (a copy of the footer first): the VHD that Glance's format inspector
(oslo.utils) recognises. Glance refuses a fixed VHD (footer at the end only)
as "does not match stream data raw". The driver checks the VHD header
before it uploads, and a refused upload leaves no image behind and the
server as it was.

Related options:

* None
"""),
]

# The core lists are reused, never redefined: an option added to them shows
# up here (and in the sample config) with no change to this module.
ALL_OPTS = core_conf.XAPI_OPTS + core_conf.MIGRATION_OPTS + SXM_OPTS


def register_opts(conf):
    conf.register_group(sxm_group)
    conf.register_opts(ALL_OPTS, group=sxm_group)


def list_opts():
    return {sxm_group: ALL_OPTS}


def parse_sr_filter(value):
    """Split an ``sr_matching_filter`` value.

    :param value: the option's value, e.g. ``other-config:i18n-key=local``.
    :returns: ``(kind, key, value)``: ``('default-sr', None, 'true')``,
        ``('other-config', KEY, VALUE)``, ``('name-label', None, NAME)`` or
        ``('uuid', None, UUID)`` (UUID in lower case, as XAPI stores it).
    :raises ValueError: naming the option, the value and the accepted forms.
    """
    def bad(reason):
        return ValueError('Invalid sr_matching_filter %r: %s. Use %s.'
                          % (value, reason, SR_FILTER_FORMS))

    if not isinstance(value, str) or not value:
        raise bad('empty')
    if '\n' in value or '\r' in value:
        raise bad('it spans several lines')
    kind, sep, rest = value.partition(':')
    if not sep:
        raise bad('no ":" after the kind of filter')
    if kind == 'default-sr':
        if rest != 'true':
            raise bad('only "default-sr:true" is meaningful')
        return kind, None, rest
    if kind == 'other-config':
        key, eq, val = rest.partition('=')
        if not eq:
            raise bad('other-config needs KEY=VALUE')
        if not key:
            raise bad('the other-config KEY is empty')
        if not val:
            raise bad('the other-config VALUE is empty')
        return kind, key, val
    if kind == 'name-label':
        if not rest:
            raise bad('the SR name is empty')
        return kind, None, rest
    if kind == 'uuid':
        if not re.fullmatch(_UUID, rest):
            raise bad('%r is not a UUID' % rest)
        return kind, None, rest.lower()
    raise bad('unknown kind %r' % kind)
