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


"""Options of the SXM volume driver, read per backend section.

The core's XAPI and migration options are registered under an ``sxm_``
prefix: a backend section is shared with every other option of Cinder
and its drivers (``call_timeout``, ``insecure``, ``lock_path``...), and
prefixed names cannot collide with them.
"""

import copy
import types

from oslo_config import cfg

from sxm_core import conf as core_conf

PREFIX = 'sxm_'


def _prefixed(opts):
    names = [o.name for o in opts]
    out = []
    for opt in opts:
        new = copy.deepcopy(opt)
        new.name = PREFIX + opt.name
        new.dest = new.name.replace('-', '_')
        help_text = new.help or ''
        for name in names:
            help_text = help_text.replace('* %s' % name,
                                          '* %s%s' % (PREFIX, name))
        new.help = help_text
        out.append(new)
    return out


XAPI_OPTS = _prefixed(core_conf.XAPI_OPTS)
MIGRATION_OPTS = _prefixed(core_conf.MIGRATION_OPTS)

DRIVER_OPTS = [
    cfg.ListOpt('sxm_srs', default=[],
                help='The storage repositories (SRs) this backend serves, '
                     'by uuid or name label, one Cinder pool each (the '
                     'pool is named after the SR\'s name label). Volume '
                     'types pick a tier with the extra specs '
                     '``volume_backend_name`` and ``pool_name``. Retype '
                     'between these pools moves the volume with XAPI, '
                     'live when it is attached to a running VM.\n\n'
                     'Related options:\n\n* sxm_connection_url'),
    cfg.DictOpt('sxm_remote_pool_passwords', default={}, secret=True,
                help='Passwords of other XAPI pools, for moving a detached '
                     'volume to a backend of another pool (migrate, or a '
                     'retype to a type of that backend). This backend\'s '
                     'cinder-volume logs in to the destination pool itself, '
                     'as sxm_connection_username, with the password listed '
                     'here for that pool\'s uuid. Comma-separated '
                     '``POOL_UUID:PASSWORD`` pairs; a password may contain '
                     '``:`` but not ``,``. Empty (default): every pool '
                     'uses sxm_connection_password. Never logged.\n\n'
                     'Related options:\n\n* sxm_connection_username\n'
                     '* sxm_connection_password'),
    cfg.ListOpt('sxm_multiattach_srs', default=[],
                help='The SRs of sxm_srs (by uuid or name label) whose '
                     'volumes may be attached to several servers at once '
                     '(volume types with ``multiattach=\'<is> True\'``). '
                     'Their volumes are created sharable (VDI.sharable), '
                     'which XAPI requires to plug a VDI into more than one '
                     'VM, and cannot be snapshotted (XAPI: '
                     'VDI_IS_SHARABLE). For VMs on different hosts of the '
                     'pool, the file /etc/xensource/allow_multiple_vdi_'
                     'attach must exist on every host of the pool; the '
                     'guests need a cluster file system. Empty (default): '
                     'no multiattach.\n\n'
                     'Related options:\n\n* sxm_srs'),
]

OPTS = XAPI_OPTS + MIGRATION_OPTS + DRIVER_OPTS


def core_view(configuration):
    """The unprefixed names ``sxm_core.conf.pool_kwargs`` reads."""
    values = {o.name[len(PREFIX):]: getattr(configuration, o.dest)
              for o in XAPI_OPTS + MIGRATION_OPTS}
    return types.SimpleNamespace(**values)


def list_opts():
    return [('backend_defaults', OPTS)]
