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

"""Calls found in a package's source, for tests that check raise sites."""

import ast
import os


def calls_to(package, name):
    """(path relative to the package, ast.Call) for each call of ``name``.

    ``name`` matches a plain call (``Name(...)``) and an attribute call
    (``module.Name(...)``) alike.
    """
    root = list(package.__path__)[0]
    for folder, _, files in os.walk(root):
        for filename in sorted(files):
            if not filename.endswith('.py'):
                continue
            path = os.path.join(folder, filename)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                if getattr(func, 'id', getattr(func, 'attr', None)) == name:
                    yield os.path.relpath(path, root), node
