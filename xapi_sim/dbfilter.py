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
    return predicate(tree, cls, fields)(rec)


def predicate(tree, cls, fields):
    """``rec -> bool``: ``tree`` made into a function once per query.

    A field the table lacks is INTERNAL_ERROR when a record is tested, as
    in xapi (an empty table, or a branch never evaluated, raises nothing).
    """
    kind = tree[0]
    if kind == 'true':
        return lambda rec: True
    if kind == 'false':
        return lambda rec: False
    if kind == 'not':
        inner = predicate(tree[1], cls, fields)
        return lambda rec: not inner(rec)
    if kind in ('and', 'or'):
        left = predicate(tree[1], cls, fields)
        right = predicate(tree[2], cls, fields)
        if kind == 'and':
            return lambda rec: left(rec) and right(rec)
        return lambda rec: left(rec) or right(rec)
    left, right = _value(tree[1], cls, fields), _value(tree[2], cls, fields)
    return lambda rec: left(rec) == right(rec)


# Types whose database string is the value itself.
_PLAIN = ('string', 'ref', 'enum')


def _value(value, cls, fields):
    if value[0] != 'field':
        text = value[1]
        return lambda rec: text
    col = value[1]
    name = column_to_field(col)
    if name is None or name not in fields:
        def missing(rec):
            raise errors.XapiError(
                'INTERNAL_ERROR', 'missing field %s in table %s' % (col, cls))
        return missing
    ftype = fields[name].type
    if ftype[0] in _PLAIN:
        def plain(rec):
            got = rec.get(name)
            return '' if got is None else str(got)
        return plain
    return lambda rec: db_string(ftype, rec.get(name))


def unknown_columns(tree, fields):
    """The columns ``tree`` names that ``fields`` has not."""
    if tree[0] == 'eq':
        return {col for kind, col in tree[1:] if kind == 'field'
                and column_to_field(col) not in fields}
    found = set()
    for sub in tree[1:]:
        found |= unknown_columns(sub, fields)
    return found


def candidates(tree, related):
    """Refs that may match ``tree``, or None for the whole table.

    ``related(column, value)``: the refs whose ``column`` (a ref field)
    holds ``value``, from the database's relation sets, or None when it
    cannot tell. A query on a VM's VBDs then reads those, not every VBD
    of the pool; the caller still tests each candidate.
    """
    kind = tree[0]
    if kind == 'false':
        return set()
    if kind == 'eq':
        (lkind, left), (rkind, right) = tree[1], tree[2]
        if lkind == 'field' and rkind == 'literal':
            return related(left, right)
        if rkind == 'field' and lkind == 'literal':
            return related(right, left)
        return None
    if kind in ('and', 'or'):
        left = candidates(tree[1], related)
        right = candidates(tree[2], related)
        if kind == 'and':
            if left is None:
                return right
            return left if right is None else left & right
        if left is None or right is None:
            return None
        return left | right
    return None
