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

"""Messages xapi generates for every class: getters, setters, map edits."""

from xapi_sim.api import method
from xapi_sim import dbfilter
from xapi_sim import errors
from xapi_sim import schema
from xapi_sim import wire

NULL = 'OpaqueRef:NULL'


def check_refs(db, cls, record):
    """HANDLE_INVALID for a ref field naming no object of this pool."""
    for name, value in record.items():
        ftype = schema.CLASSES[cls][name].type
        if ftype[0] == 'ref' and value != NULL:
            db.get(ftype[1], value)


def create_record(ctx, cls, record, extra=None):
    """Validate a ``<Class>.create`` record and insert it; returns the ref.

    Unknown keys are ignored and fields with defaults may be left out, as
    xapi's generated unmarshallers do; a missing field without a default or
    a value of the wrong type is FIELD_TYPE_ERROR.
    """
    if not isinstance(record, dict):
        raise errors.XapiError('FIELD_TYPE_ERROR', 'args')
    fields = schema.CLASSES[cls]
    clean = {}
    for name, field in fields.items():
        if field.qualifier not in ('RW', 'C'):
            continue
        if name in record:
            clean[name] = wire.from_wire(field.type, record[name], name)
        elif field.default is schema.REQUIRED:
            raise errors.XapiError('FIELD_TYPE_ERROR', name)
    with ctx.db.lock:
        check_refs(ctx.db, cls, clean)
        clean.update(extra or {})
        return ctx.db.add(cls, clean)


def _register_class(cls, fields):
    def get_record(ctx, ref):
        with ctx.db.lock:
            return wire.record_to_wire(cls, ctx.db.get(cls, ref))

    def get_all(ctx):
        return ctx.db.all_refs(cls)

    def get_all_records(ctx):
        with ctx.db.lock:
            return {ref: wire.record_to_wire(cls, rec)
                    for ref, rec in ctx.db.tables[cls].items()}

    def get_by_uuid(ctx, uuid):
        with ctx.db.lock:
            return ctx.db.by_uuid_ref(cls, uuid)

    def get_all_records_where(ctx, expr):
        tree = dbfilter.parse(expr)
        test = dbfilter.predicate(tree, cls, fields)

        def related(column, value):
            field = dbfilter.column_to_field(column)
            return ctx.db.referring(cls, field, value) if field else None
        with ctx.db.lock:
            table = ctx.db.tables[cls]
            # A field the table lacks fails on the first record tested:
            # test them all, as xapi does.
            refs = None if dbfilter.unknown_columns(tree, fields) else \
                dbfilter.candidates(tree, related)
            rows = table.items() if refs is None else [
                (ref, table[ref]) for ref in refs if ref in table]
            return {ref: wire.record_to_wire(cls, rec)
                    for ref, rec in rows if test(rec)}

    method('%s.get_all_records_where' % cls, ['expr'],
           has_async=False)(get_all_records_where)
    method('%s.get_record' % cls, ['self'], has_async=False)(get_record)
    method('%s.get_all' % cls, [], has_async=False)(get_all)
    method('%s.get_all_records' % cls, [], has_async=False)(get_all_records)
    method('%s.get_by_uuid' % cls, ['uuid'], has_async=False)(get_by_uuid)
    if cls in schema.NAMED:
        def get_by_name_label(ctx, label):
            return ctx.db.find(cls, name_label=label)
        method('%s.get_by_name_label' % cls, ['label'],
               has_async=False)(get_by_name_label)
    for name, field in fields.items():
        _register_field(cls, name, field)


def _register_field(cls, name, field):
    def getter(ctx, ref):
        with ctx.db.lock:
            return wire.to_wire(field.type, ctx.db.get(cls, ref)[name])
    method('%s.get_%s' % (cls, name), ['self'], has_async=False)(getter)
    if field.qualifier != 'RW':
        return

    def setter(ctx, ref, value):
        value = wire.from_wire(field.type, value, name)
        with ctx.db.lock:
            ctx.db.get(cls, ref)
            if field.type[0] == 'ref' and value != NULL:
                ctx.db.get(field.type[1], value)
            ctx.db.update(cls, ref, **{name: value})
    method('%s.set_%s' % (cls, name), ['self', 'value'],
           has_async=False)(setter)

    if field.type[0] == 'map':
        def add_to(ctx, ref, key, value):
            with ctx.db.lock:
                rec = ctx.db.get(cls, ref)
                if key in rec[name]:
                    raise errors.XapiError('MAP_DUPLICATE_KEY', cls, name,
                                           rec['uuid'], key)
                new = dict(rec[name])
                new[key] = wire.from_wire(field.type[2], value, name)
                ctx.db.update(cls, ref, **{name: new})

        def remove_from(ctx, ref, key):
            with ctx.db.lock:
                rec = ctx.db.get(cls, ref)
                new = dict(rec[name])
                new.pop(key, None)
                ctx.db.update(cls, ref, **{name: new})
        method('%s.add_to_%s' % (cls, name), ['self', 'key', 'value'],
               has_async=False)(add_to)
        method('%s.remove_from_%s' % (cls, name), ['self', 'key'],
               has_async=False)(remove_from)
    elif field.type[0] == 'set':
        def add(ctx, ref, value):
            with ctx.db.lock:
                rec = ctx.db.get(cls, ref)
                if value not in rec[name]:
                    ctx.db.update(cls, ref, **{name: rec[name] + [value]})

        def remove(ctx, ref, value):
            with ctx.db.lock:
                rec = ctx.db.get(cls, ref)
                ctx.db.update(cls, ref, **{
                    name: [v for v in rec[name] if v != value]})
        method('%s.add_%s' % (cls, name), ['self', 'value'],
               has_async=False)(add)
        method('%s.remove_%s' % (cls, name), ['self', 'value'],
               has_async=False)(remove)


for _cls, _fields in schema.CLASSES.items():
    _register_class(_cls, _fields)


def assert_idle(db, vm):
    """OTHER_OPERATION_IN_PROGRESS while the VM migrates.

    xapi's with_vm_operation refuses conflicting operations the same way.
    """
    ops = db.get('VM', vm)['current_operations']
    if ops:
        raise other_operation_in_progress('VM', vm, ops)


def other_operation_in_progress(cls, ref, ops):
    """OTHER_OPERATION_IN_PROGRESS [class; object; operation; task].

    As xapi_vm_lifecycle.report_concurrent_operations_error: one operation
    gives its name and task ref, several give {a,b} lists of each.
    """
    items = sorted(ops.items())
    if len(items) == 1:
        op_ref, op = items[0]
    else:
        op_ref = '{%s}' % ','.join(k for k, _ in items)
        op = '{%s}' % ','.join(v for _, v in items)
    return errors.XapiError('OTHER_OPERATION_IN_PROGRESS', cls, ref, op,
                            op_ref)
