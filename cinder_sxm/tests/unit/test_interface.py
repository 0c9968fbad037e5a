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


"""The driver against Cinder's volume driver interface, really checked.

cinder.interface's own compliance check compares argument counts through
an API that is gone on Python 3, so it passes anything. Here every method
of every interface the driver claims must exist, be callable, and accept
the interface's parameters (names, order, defaults) by inspect.signature.
"""

import inspect

from cinder.interface import volume_driver
import testtools

from cinder_sxm import driver

INTERFACES = (volume_driver.VolumeDriverCore,)
# Optional parts of the contract the driver implements itself.
OWN = ('create_cloned_volume', 'extend_volume', 'retype', 'migrate_volume',
       'update_migrated_volume', 'create_snapshot', 'delete_snapshot',
       'create_volume_from_snapshot', 'copy_image_to_volume', 'clone_image',
       'copy_volume_to_image', 'initialize_connection',
       'terminate_connection', 'create_volume', 'delete_volume',
       'do_setup', 'check_for_setup_error', 'get_volume_stats')


def interface_methods(iface):
    return {name: member for name, member in vars(iface).items()
            if inspect.isfunction(member) and not name.startswith('__')}


def problems(cls, iface):
    """What in ``cls`` breaks ``iface``'s method signatures."""
    found = []
    for name, spec in sorted(interface_methods(iface).items()):
        impl = getattr(cls, name, None)
        if (isinstance(inspect.getattr_static(cls, name, None), property)
                and list(inspect.signature(spec).parameters) == ['self']):
            continue  # an accessor the base driver offers as a property
        if impl is None or not callable(impl):
            found.append('%s: missing' % name)
            continue
        want = inspect.signature(spec).parameters
        have = inspect.signature(impl).parameters
        var_kw = any(p.kind == p.VAR_KEYWORD for p in have.values())
        var_pos = any(p.kind == p.VAR_POSITIONAL for p in have.values())
        have_pos = [p for p in have.values()
                    if p.kind in (p.POSITIONAL_ONLY,
                                  p.POSITIONAL_OR_KEYWORD)]
        for i, param in enumerate(want.values()):
            if i < len(have_pos) and have_pos[i].name == param.name:
                got = have_pos[i]
            elif param.name in have:
                got = have[param.name]
                if param.kind != param.KEYWORD_ONLY:
                    found.append('%s: %s is not at position %d'
                                 % (name, param.name, i))
                    continue
            elif var_kw and (i >= len(have_pos) and var_pos
                             or param.kind == param.KEYWORD_ONLY):
                continue
            else:
                found.append('%s: no parameter %s' % (name, param.name))
                continue
            if (param.default is not param.empty
                    and got.default is got.empty):
                found.append('%s: %s must be optional' % (name, param.name))
        # Extra parameters of the implementation must be optional.
        names = set(want)
        for param in have.values():
            if (param.name not in names and param.default is param.empty
                    and param.kind in (param.POSITIONAL_OR_KEYWORD,
                                       param.KEYWORD_ONLY)):
                found.append('%s: extra required parameter %s'
                             % (name, param.name))
    return found


class TestInterface(testtools.TestCase):

    def test_conforms_to_the_volume_driver_interface(self):
        for iface in INTERFACES:
            self.assertEqual([], problems(driver.SxmVolumeDriver, iface),
                             iface.__name__)

    def test_registered_as_a_cinder_volume_driver(self):
        from cinder.interface import util
        drivers = {d.class_name for d in util.get_volume_drivers()}
        self.assertIn('SxmVolumeDriver', drivers)

    def test_own_implementations_not_inherited_stubs(self):
        for name in OWN:
            self.assertIn(name, vars(driver.SxmVolumeDriver), name)

    def test_the_checker_catches_breakage(self):
        class Broken(driver.SxmVolumeDriver):
            def create_volume(self):
                pass

            def retype(self, context, volume, diff, new_type, host):
                pass

            def initialize_connection(self, volume, connector,
                                      initiator_data, extra):
                pass

            def terminate_connection(self, volume, connector,
                                     force=False):
                pass

            def delete_volume(self, volume, *, when):
                pass
        found = problems(Broken, volume_driver.VolumeDriverCore)
        self.assertIn('create_volume: no parameter volume', found)
        self.assertIn('retype: new_type is not at position 3', found)
        self.assertIn('initialize_connection: initiator_data must be '
                      'optional', found)
        self.assertIn('initialize_connection: extra required parameter '
                      'extra', found)
        self.assertIn('delete_volume: extra required parameter when',
                      found)
        # An extra optional parameter is compatible.
        self.assertNotIn('terminate_connection', ' '.join(found))
