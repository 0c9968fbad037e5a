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

"""``xapi-sim serve``: run the simulator's pools until interrupted."""

import argparse
import json
import logging
import signal
import sys
import threading

from xapi_sim import sim as simmod


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
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
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
