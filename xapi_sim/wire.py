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

"""XML-RPC encoding as xapi writes it.

xapi writes strings as bare ``<value>text</value>`` (no ``<string>``),
int64 as decimal strings, and every response as a ``Status`` struct. Task
``result`` fields hold the same encoding of the return value.
"""

import datetime
from xml.sax import saxutils
import xmlrpc.client

from xapi_sim import errors
from xapi_sim import schema

_ESCAPE = {'"': '&quot;'}


def _esc(text):
    return saxutils.escape(text, _ESCAPE)


def format_datetime(epoch):
    if epoch is None:
        epoch = 0
    dt = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return dt.strftime('%Y%m%dT%H:%M:%SZ')


class DateTime(object):
    """A dateTime.iso8601 value; epoch seconds in UTC."""

    def __init__(self, epoch):
        self.epoch = epoch


def encode_value(value):
    """One ``<value>`` element in xapi's style."""
    out = []
    _encode(value, out)
    return ''.join(out)


class Int32(int):
    """An xapi int32 (rare: event.from's valid_ref_counts): an <int>."""


def _encode(value, out):
    if isinstance(value, bool):
        out.append('<value><boolean>%d</boolean></value>' % value)
    elif isinstance(value, str):
        out.append('<value>%s</value>' % _esc(value))
    elif isinstance(value, Int32):
        out.append('<value><int>%d</int></value>' % value)
    elif isinstance(value, int):
        # int64 travels as a string; xmlrpc <int> is only 32 bits.
        out.append('<value>%d</value>' % value)
    elif isinstance(value, float):
        out.append('<value><double>%r</double></value>' % value)
    elif isinstance(value, DateTime):
        out.append('<value><dateTime.iso8601>%s</dateTime.iso8601></value>'
                   % format_datetime(value.epoch))
    elif isinstance(value, dict):
        out.append('<value><struct>')
        for k, v in value.items():
            out.append('<member><name>%s</name>' % _esc(str(k)))
            _encode(v, out)
            out.append('</member>')
        out.append('</struct></value>')
    elif isinstance(value, (list, tuple)):
        out.append('<value><array><data>')
        for v in value:
            _encode(v, out)
        out.append('</data></array></value>')
    elif value is None:
        out.append('<value></value>')
    else:
        raise TypeError('cannot encode %r' % (value,))


def success(value):
    return _response({'Status': 'Success', 'Value': value})


def failure(description):
    return _response({'Status': 'Failure',
                      'ErrorDescription': list(description)})


def _response(struct):
    return ('<?xml version="1.0"?><methodResponse><params><param>%s'
            '</param></params></methodResponse>' % encode_value(struct))


def parse_call(body):
    """(method, params) of an XML-RPC request body."""
    params, method = xmlrpc.client.loads(body, use_builtin_types=True)
    return method, params


def to_wire(type_, value):
    """A stored Python value to its wire form, following the schema type."""
    kind = type_[0]
    if kind == 'int':
        return str(int(value))
    if kind == 'float':
        return float(value)
    if kind == 'bool':
        return bool(value)
    if kind == 'datetime':
        return DateTime(value)
    if kind == 'set':
        return [to_wire(type_[1], v) for v in value]
    if kind == 'map':
        return {str(to_wire(type_[1], k)): to_wire(type_[2], v)
                for k, v in value.items()}
    return '' if value is None else str(value)


def from_wire(type_, value, field):
    """A wire value to its stored form; raises FIELD_TYPE_ERROR."""
    kind = type_[0]
    try:
        if kind == 'int':
            return int(value)
        if kind == 'float':
            return float(value)
        if kind == 'bool':
            if isinstance(value, str):
                if value.lower() not in ('true', 'false'):
                    raise ValueError(value)
                return value.lower() == 'true'
            return bool(value)
        if kind == 'datetime':
            return value
        if kind == 'set':
            if not isinstance(value, (list, tuple)):
                raise ValueError(value)
            return [from_wire(type_[1], v, field) for v in value]
        if kind == 'map':
            if not isinstance(value, dict):
                raise ValueError(value)
            return {from_wire(type_[1], k, field):
                    from_wire(type_[2], v, field) for k, v in value.items()}
        if kind == 'enum':
            # xapi's unmarshallers lower-case the input before matching, so
            # 'disk' and 'User' are accepted; stored (and returned) values
            # keep the datamodel's spelling.
            if not isinstance(value, str):
                raise ValueError(value)
            for known in type_[1]:
                if known.lower() == value.lower():
                    return known
            raise ValueError(value)
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    except (TypeError, ValueError):
        raise errors.XapiError('FIELD_TYPE_ERROR', field)


def record_to_wire(cls, rec):
    fields = schema.CLASSES[cls]
    return {name: to_wire(fields[name].type, value)
            for name, value in rec.items() if name in fields}
