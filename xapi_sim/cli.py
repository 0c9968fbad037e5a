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

"""``xapi-sim serve``: run the simulator's pools until interrupted.

``xapi-sim create-vm``: build a VM in a running pool, over the network
(XenAPI and the pool's /sim control interface), to try ``sxm`` on.

``xapi-sim fault``, ``xapi-sim toolstack-restart``, ``xapi-sim
designate-new-master``: do to a running simulator what the field does to
XAPI (see ``xapi_sim.control``), e.g. from the one-machine cloud.

``xapi-sim demo``: a live cross-pool migration with ``sxm``'s code on a
simulator of its own (``xapi_sim.demo``).
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading

import XenAPI

from xapi_sim import control
from xapi_sim import sim as simmod
from xapi_sim import vmbuild


def _parser():
    parser = argparse.ArgumentParser(
        prog='xapi-sim',
        description='An XAPI (XenServer / XCP-ng) simulator speaking the '
                    'XenAPI wire protocol, for tests and demos.')
    sub = parser.add_subparsers(dest='command', required=True)
    serve = sub.add_parser(
        'serve', help='start the pools and serve them until interrupted',
        description='Without --config: two pools, pool-a and pool-b, each '
                    'with one host, a thin ext SR (the default SR), a thick '
                    'lvm SR and one network; user %r, password %r.'
                    % (simmod.DEFAULT_USERNAME, simmod.DEFAULT_PASSWORD))
    serve.add_argument('--config', help='topology file (JSON)')
    serve.add_argument('--host', default='127.0.0.1',
                       help='address to listen on (default: %(default)s)')
    serve.add_argument('--port', type=int, default=None,
                       help='port of the first pool; the next pools take '
                            'the following ports (default: any free port)')
    serve.add_argument('--data-dir',
                       help='where SR files live (default: a temporary '
                            'directory removed at exit)')
    create = sub.add_parser(
        'create-vm', help='create a VM with disks in a running pool',
        description='Create a VM with one disk per --disk and a VIF on the '
                    'management network, start it and print its uuid. On '
                    'any error nothing is left behind.')
    _login_args(create)
    create.add_argument('--name', required=True, help='the name label')
    create.add_argument('--disk', action='append', default=[],
                        type=_disk_arg, metavar='SIZE[@SR]',
                        help='a disk of SIZE (256MiB, 2GiB, ...) on the SR '
                             'of that name, uuid or type (ext, lvm, ...); '
                             "default: the pool's default SR. Repeat for "
                             'more disks (userdevice 0, 1, ...)')
    create.add_argument('--memory', default=256 * vmbuild.MiB,
                        type=_size_arg, help='(default: 256MiB)')
    create.add_argument('--write', type=_workload_arg,
                        metavar='PATTERN[:RATE]',
                        help='start a guest writing to every disk: PATTERN '
                             'sequential, uniform or hotspot, RATE per '
                             'second per disk, e.g. uniform:8MiB/s '
                             '(default rate 1MiB/s; 0: as fast as it goes)')
    create.add_argument('--start', action=argparse.BooleanOptionalAction,
                        default=True,
                        help='start the VM (default); --no-start leaves it '
                             'halted')
    _field_parsers(sub)
    demo = sub.add_parser(
        'demo', help='run a live cross-pool migration on a simulator of its '
        'own and verify every byte',
        description='Start two pools, boot a VM whose guest writes to a '
                    'thick and a thin disk, migrate it live to the other '
                    'pool as `sxm migrate` does and check every disk byte '
                    'for byte; the simulator is stopped at the end.',
        epilog='exit status: 0 the demo passed, 1 it failed, 130 cancelled '
               '(Ctrl-C): the simulator is stopped',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument('--debug', action='store_true',
                      help='log what is done (secrets masked)')
    demo.add_argument('-q', '--quiet', action='store_true',
                      help='no progress and no notes')
    return parser


def _login_args(parser):
    parser.add_argument('--url', required=True,
                        help="the pool's URL, as xapi-sim serve prints it")
    parser.add_argument('--username', default=simmod.DEFAULT_USERNAME,
                        help='(default: %(default)s)')
    parser.add_argument('--password',
                        help='(default: $XAPI_SIM_PASSWORD, else %r)'
                        % simmod.DEFAULT_PASSWORD)


def _field_parsers(sub):
    fault = sub.add_parser(
        'fault', help='arm a fault (or clear them all)',
        description='Arm a fault at a named point: a migration step '
                    '(prepare, snapshot, mirror, copy, destination_full, '
                    'metadata, memory, cooperate, finalize), the next '
                    'SR.scan (sr_scan) or the connection of a call '
                    '(connection_reset). Prints what is armed (JSON).')
    _login_args(fault)
    fault.add_argument('point', nargs='?', help='where the fault fires')
    fault.add_argument('--percent', type=float, default=0,
                       help="of a disk's copy, for mirror, copy and "
                            'destination_full')
    fault.add_argument('--times', type=int, default=1,
                       help='how many times it fires (default: 1)')
    fault.add_argument('--code', help='the XAPI error code to raise '
                                      "instead of xapi's own")
    fault.add_argument('--param', action='append', default=[],
                       help='a parameter of --code (repeat)')
    fault.add_argument('--method', help='connection_reset: the XenAPI '
                                        'call whose answer is lost')
    fault.add_argument('--action', choices=('toolstack_restart',),
                       help='instead of an error, restart the toolstack '
                            'there (copy, metadata, memory, finalize)')
    fault.add_argument('--clear', action='store_true',
                       help='disarm every fault')
    restart = sub.add_parser(
        'toolstack-restart', help="restart a pool's toolstack",
        description='As xe-toolstack-restart: connections drop, sessions '
                    'and tasks are gone, migrations in flight are undone, '
                    'guests run on. Prints {pool, epoch, url} (JSON).')
    _login_args(restart)
    restart.add_argument('--pool', help='the pool to restart (default: '
                                        'the one at --url)')
    restart.add_argument('--down', type=float, default=0,
                         help='seconds to refuse connections (default: 0)')
    move = sub.add_parser(
        'designate-new-master', help='move the master role of a pool',
        description='Another host becomes the master (both toolstacks '
                    'restart); the old master answers HOST_IS_SLAVE. '
                    'Prints {pool, epoch, url} (JSON): url is the new '
                    "master's.")
    _login_args(move)
    move.add_argument('--host', required=True,
                      help='the new master: host ref, uuid or name')
    move.add_argument('--pool', help='(default: the one at --url)')
    move.add_argument('--down', type=float, default=0,
                      help='seconds to refuse connections (default: 0)')


def _login(args):
    """A session from --url, --username, --password; None if refused.

    (What refused it is printed.)
    """
    password = (args.password or os.environ.get('XAPI_SIM_PASSWORD')
                or simmod.DEFAULT_PASSWORD)
    session = XenAPI.Session(args.url)
    try:
        session.login_with_password(args.username, password, '1.0',
                                    'xapi-sim %s' % args.command)
    except (OSError, XenAPI.Failure) as exc:
        print('xapi-sim %s: cannot log in to %s: %s'
              % (args.command, args.url, exc), file=sys.stderr)
        return None
    return session


def _logout(session):
    try:
        session.xenapi.session.logout()
    except (OSError, XenAPI.Failure):
        pass  # a restart ended the session already


def field_op(args, out=sys.stdout):
    """fault, toolstack-restart, designate-new-master over /sim."""
    if args.command == 'fault' and not args.clear and not args.point:
        print('xapi-sim fault: give a POINT, or --clear', file=sys.stderr)
        return 2
    session = _login(args)
    if session is None:
        return 1
    ctl = control.Control(args.url, session.handle)
    try:
        if args.command == 'fault':
            if args.clear:
                value = ctl.fault_clear()
            else:
                extra = {k: getattr(args, k) for k in
                         ('code', 'method', 'action')
                         if getattr(args, k) is not None}
                value = ctl.fault_inject(args.point, percent=args.percent,
                                         times=args.times,
                                         params=args.param, **extra)
        elif args.command == 'toolstack-restart':
            value = ctl.toolstack_restart(pool=args.pool, down=args.down)
        else:
            value = ctl.designate_new_master(args.host, pool=args.pool,
                                             down=args.down)
    except (OSError, control.ControlError) as exc:
        print('xapi-sim %s: %s' % (args.command, exc), file=sys.stderr)
        return 1
    finally:
        _logout(session)
    print(json.dumps(value, sort_keys=True), file=out)
    return 0


def _size_arg(text):
    try:
        return vmbuild.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def _disk_arg(text):
    size, _, sr = text.partition('@')
    return _size_arg(size), sr or None


def _workload_arg(text):
    try:
        return vmbuild.parse_workload(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def create_vm(args, out=sys.stdout):
    if args.write and not (args.start and args.disk):
        print('xapi-sim create-vm: --write needs a running VM with a disk: '
              'give a --disk, drop --no-start', file=sys.stderr)
        return 2
    session = _login(args)
    if session is None:
        return 1
    api = session.xenapi
    try:
        disks = [(size, vmbuild.find_sr(api, sr)) for size, sr in args.disk]
        vm, vdis = vmbuild.create_vm(api, args.name, disks, args.memory,
                                     start=args.start)
        if args.write:
            try:
                _start_writers(args, session, vm, len(vdis))
            except BaseException:
                vmbuild.undo(api, vm, vdis)
                raise
        print(api.VM.get_uuid(vm), file=out)
        return 0
    except (vmbuild.BuildError, control.ControlError) as exc:
        print('xapi-sim create-vm: %s' % exc, file=sys.stderr)
        return 2 if isinstance(exc, vmbuild.BuildError) else 1
    except XenAPI.Failure as exc:
        print('xapi-sim create-vm: XAPI refused: %s'
              % ' '.join(exc.details), file=sys.stderr)
        return 1
    finally:
        _logout(session)


def _start_writers(args, session, vm, ndisks):
    pattern, rate = args.write
    ctl = control.Control(args.url, session.handle)
    for n in range(ndisks):
        ctl.workload_start(vm, str(n), pattern=pattern, rate=rate,
                           block_size=4096, seed=n + 1)


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == 'demo':
        # Imported here: only the demo needs the sxm command's modules.
        from xapi_sim import demo
        return demo.main(debug=args.debug, quiet=args.quiet)
    logging.basicConfig(level=logging.WARNING)
    if args.command == 'create-vm':
        return create_vm(args)
    if args.command in ('fault', 'toolstack-restart',
                        'designate-new-master'):
        return field_op(args)
    topology = simmod.DEFAULT_TOPOLOGY
    if args.config:
        try:
            with open(args.config) as f:
                topology = json.load(f)
        except (OSError, ValueError) as exc:
            print('xapi-sim: cannot read %s: %s' % (args.config, exc),
                  file=sys.stderr)
            return 2
    if args.port is not None:
        topology = json.loads(json.dumps(topology))
        for i, spec in enumerate(topology.get('pools', [])):
            spec['port'] = args.port + i
    try:
        sim = simmod.Simulator(topology, root=args.data_dir, bind=args.host)
    except (OSError, ValueError, KeyError) as exc:
        print('xapi-sim: bad topology: %s' % exc, file=sys.stderr)
        return 2
    sim.start()
    for name, p in sim.pools.items():
        print('%s %s' % (name, p.url), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
