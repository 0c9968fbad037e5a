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

"""The expression language of ``<Class>.get_all_records_where``.

The grammar of xen-api ``ocaml/database/db_filter_parse.mly``::

    expr  := value "=" value | expr "and" expr | expr "or" expr
           | "not" expr | "true" | "false" | "(" expr ")"
    value := '"' chars '"' | "field" '"' name '"'

``and`` and ``or`` bind equally and associate to the left; ``not`` binds
tightest. Field names are database column names: a dotted name such as
``name.label`` is written ``name__label``. Values compare as the database
stores them: booleans ``true``/``false``, numbers in decimal, enums in
their datamodel spelling, sets and maps as s-expressions.
"""

import re

from xapi_sim import errors
from xapi_sim import wire

_TOKEN = re.compile(r'\s*(?:(=)|(\()|(\))|"([^"]*)"|([A-Za-z_]+))')
_KEYWORDS = ('true', 'false', 'field', 'and', 'or', 'not')


def _error(expr, why):
    return errors.XapiError('INTERNAL_ERROR',
                            'Invalid expression %r: %s' % (expr, why))


def _tokens(expr):
    out, pos = [], 0
    text = expr.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _error(expr, 'unexpected %r' % text[pos:pos + 10].strip())
        pos = m.end()
        eq, lp, rp, ident, word = m.groups()
        if eq:
            out.append(('=', None))
        elif lp:
            out.append(('(', None))
        elif rp:
            out.append((')', None))
        elif ident is not None:
            out.append(('ident', ident))
        elif word in _KEYWORDS:
            out.append((word, None))
        else:
            raise _error(expr, 'unknown word %r' % word)
    out.append(('eof', None))
    return out


def parse(expr):
    """An expression tree of nested tuples; INTERNAL_ERROR if malformed."""
    if not isinstance(expr, str):
        raise errors.XapiError('FIELD_TYPE_ERROR', 'expr')
    toks = _tokens(expr)
    pos = [0]

    def peek():
        return toks[pos[0]][0]

    def take(kind):
        tok = toks[pos[0]]
        if tok[0] != kind:
            raise _error(expr, 'expected %s, got %s' % (kind, tok[0]))
        pos[0] += 1
        return tok[1]

    def value():
        if peek() == 'field':
            take('field')
            return ('field', take('ident'))
        return ('literal', take('ident'))

    def unary():
        kind = peek()
        if kind == 'not':
            take('not')
            return ('not', unary())
        if kind in ('true', 'false'):
            take(kind)
            return (kind,)
        if kind == '(':
            take('(')
            inner = binary()
            take(')')
            return inner
        left = value()
        take('=')
        return ('eq', left, value())

    def binary():
        left = unary()
        while peek() in ('and', 'or'):
            op = peek()
            take(op)
            left = (op, left, unary())
        return left

    tree = binary()
    take('eof')
    return tree


def _sexpr(items):
    return '(%s)' % ' '.join(items)


def _quote(text):
    return "'%s'" % str(text).replace('\\', '\\\\').replace("'", "\\'")


def db_string(ftype, value):
    """A stored value as xapi's database writes it."""
    kind = ftype[0]
    if kind == 'bool':
        return 'true' if value else 'false'
    if kind == 'int':
        return str(int(value))
    if kind == 'float':
        return '%.6f' % float(value) if value is not None else ''
    if kind == 'datetime':
        return wire.format_datetime(value)
    if kind == 'set':
        return _sexpr(_quote(db_string(ftype[1], v)) for v in value)
    if kind == 'map':
        return _sexpr('(%s %s)' % (_quote(db_string(ftype[1], k)),
                                   _quote(db_string(ftype[2], v)))
                      for k, v in value.items())
    return '' if value is None else str(value)


def column_to_field(name):
    """The field a database column holds: ``name__label`` is name_label.

    Only the datamodel's nested names (``name.label``,
    ``name.description``) are written with ``__``.
    """
    if name in ('name__label', 'name__description'):
        return 'name_' + name[len('name__'):]
    if name in ('name_label', 'name_description'):
        return None
    return name


def match(tree, cls, rec, fields):
    """Whether the record ``rec`` of ``cls`` (schema ``fields``) matches."""
    def lookup(col):
        field = column_to_field(col)
        if field is None or field not in fields:
            raise errors.XapiError(
                'INTERNAL_ERROR', 'missing field %s in table %s'
                % (col, cls))
        return db_string(fields[field].type, rec.get(field))
    return evaluate(tree, lookup)


def evaluate(tree, lookup):
    """``lookup(column)`` returns a field's database string."""
    kind = tree[0]
    if kind == 'true':
        return True
    if kind == 'false':
        return False
    if kind == 'not':
        return not evaluate(tree[1], lookup)
    if kind == 'and':
        return evaluate(tree[1], lookup) and evaluate(tree[2], lookup)
    if kind == 'or':
        return evaluate(tree[1], lookup) or evaluate(tree[2], lookup)

    def val(v):
        return lookup(v[1]) if v[0] == 'field' else v[1]
    return val(tree[1]) == val(tree[2])
