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

"""What the ``sxm`` command prints: plan tables, summaries, JSON shapes.

Pure functions from plans, results and migration records to text or to
JSON-ready dicts; ``sxm_core.cli.console`` writes them out. The JSON
shapes are documented in README.rst ("The sxm command").
"""

import datetime

from sxm_core import plan as planmod

human_bytes = planmod.human_bytes


def table(rows):
    """Lines of a text table; ``rows[0]`` is the header."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append('  '.join(str(c).ljust(w) for c, w in zip(row, widths))
                   .rstrip())
        if n == 0:
            out.append('  '.join('-' * w for w in widths))
    return out


def human_seconds(seconds):
    if seconds is None:
        return '-'
    seconds = int(seconds)
    if seconds < 60:
        return '%ds' % seconds
    if seconds < 3600:
        return '%dm%02ds' % divmod(seconds, 60)
    return '%dh%02dm' % (seconds // 3600, seconds % 3600 // 60)


def age(created, now=None):
    """Seconds since an ISO 8601 UTC time, or None."""
    try:
        when = datetime.datetime.fromisoformat(str(created).replace(
            'Z', '+00:00'))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (now - when).total_seconds())


def one_line(exc):
    """A multi-line error message as one table cell."""
    lines = [line.strip().lstrip('- ') for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(exc).__name__
    head, rest = lines[0], lines[1:]
    if head.endswith(':') and rest:
        return '%s %s' % (head, '; '.join(rest))
    return '; '.join(lines)


# -- plans -------------------------------------------------------------------

def format_plan(plan, problems=()):
    """The plan as a table an operator reads before saying yes."""
    vm = plan.vm
    src, dst = plan.source, plan.dest
    lines = [
        '%s %s: %s -> %s%s' % (
            'Live' if plan.live else 'Offline', 'cross-pool migration'
            if plan.cross_pool else 'in-pool storage migration',
            vm.label(), "pool '%s'" % dst.name,
            ", host '%s'" % plan.dest_host.name if plan.dest_host else ''),
        '',
    ]
    if plan.nothing_to_move:
        lines.append('Nothing to move: %s' % (
            'every disk of %s already is on its destination SR.'
            % vm.label() if vm.disks else '%s has no disk.' % vm.label()))
    else:
        lines += _disk_table(plan)
    if plan.vifs:
        lines.append('')
        rows = [('VIF', 'MAC', 'from network', 'to network')]
        for step in plan.vifs:
            src_net = src.network(step.vif.network)
            rows.append((step.vif.device, step.vif.mac,
                         src_net.name if src_net else step.vif.network,
                         step.dest_network.name if step.dest_network
                         else '?'))
        lines += table(rows)
    if not plan.nothing_to_move:
        lines.append('')
        lines.append('To move: %s' % human_bytes(plan.bytes_to_move))
    for p in problems:
        lines.append('%s %s' % ('ERROR:' if p.blocking else 'note:',
                                p.message))
    return '\n'.join(lines)


def sr_name(sr):
    """An SR's name with its type, once: 'Local storage (ext)' has it."""
    if '(%s)' % sr.type in sr.name:
        return sr.name
    return '%s (%s)' % (sr.name, sr.type)


def _disk_table(plan):
    rows = [('disk', 'size', 'from SR', 'to SR', 'how', 'space needed')]
    for step in plan.disks + plan.snapshot_disks:
        d = step.disk
        src_sr = plan.source.sr(d.sr)
        rows.append((
            '%s %s' % (d.userdevice or 'snap', d.name),
            human_bytes(d.virtual_size),
            sr_name(src_sr) if src_sr else d.sr,
            sr_name(step.dest_sr) if step.dest_sr else '?',
            step.problem or step.kind,
            '?' if step.problem else human_bytes(step.bytes_needed)))
    return table(rows)


def _sr_json(sr):
    return None if sr is None else {'uuid': sr.uuid, 'name': sr.name,
                                    'type': sr.type}


def plan_json(the_plan, problems):
    """The plan as a JSON-ready dict: what ``sxm plan --json`` prints."""
    src = the_plan.source
    disks = []
    for step in the_plan.disks + the_plan.snapshot_disks:
        disk = step.disk
        disks.append({
            'userdevice': disk.userdevice, 'name': disk.name,
            'vdi_uuid': disk.uuid, 'virtual_size': disk.virtual_size,
            'snapshot': step in the_plan.snapshot_disks,
            'from_sr': _sr_json(src.sr(disk.sr)),
            'to_sr': _sr_json(step.dest_sr), 'how': step.kind,
            'bytes_needed': step.bytes_needed,
            'bytes_to_copy': step.bytes_to_copy})
    vifs = []
    for step in the_plan.vifs:
        net = src.network(step.vif.network)
        vifs.append({
            'device': step.vif.device, 'mac': step.vif.mac,
            'from_network': net.name if net else step.vif.network,
            'to_network': (step.dest_network.name if step.dest_network
                           else None)})
    return {
        'vm': {'uuid': the_plan.vm.uuid, 'name': the_plan.vm.name},
        'source_pool': src.name, 'dest_pool': the_plan.dest.name,
        'dest_host': (the_plan.dest_host.name if the_plan.dest_host
                      else None),
        'cross_pool': the_plan.cross_pool, 'live': the_plan.live,
        'bytes_to_move': the_plan.bytes_to_move,
        'disks': disks, 'vifs': vifs,
        'problems': [{'code': p.code, 'message': p.message,
                      'blocking': p.blocking} for p in problems],
        'can_run': not planmod.blocking(problems)}


# -- migrations --------------------------------------------------------------

def describe(progress):
    """'mirror disk 1', 'memory', 'done' for a ``migrate.Progress``."""
    if progress.disk is not None:
        disk = progress.disk.disk
        return '%s disk %s' % (progress.phase, disk.userdevice or disk.name)
    return progress.phase


def summary(the_plan, result):
    """What a finished ``sxm migrate`` prints."""
    lines = ['Migrated %s to pool %s in %.1f s (at most %s to move).' % (
        the_plan.vm.label(), the_plan.dest.name, result.seconds,
        human_bytes(result.bytes_planned))]
    for userdevice, vdi, sr in sorted(result.disks):
        lines.append('  disk %s: VDI %s on SR %s' % (userdevice, vdi, sr))
    if result.leftovers_removed:
        lines.append('  removed leftovers: %s'
                     % ', '.join(result.leftovers_removed))
    for warning in result.warnings:
        lines.append('  WARNING: %s' % warning)
    return '\n'.join(lines)


def result_json(the_plan, result):
    """A finished migration: what ``sxm migrate --json`` prints."""
    return {
        'vm_uuid': result.vm_uuid, 'vm_name': the_plan.vm.name,
        'dest_pool': the_plan.dest.name, 'seconds': round(result.seconds, 3),
        'bytes_planned': result.bytes_planned,
        'disks': [{'userdevice': ud, 'vdi_uuid': vdi, 'sr_uuid': sr}
                  for ud, vdi, sr in sorted(result.disks)],
        'leftovers_removed': list(result.leftovers_removed),
        'warnings': list(result.warnings)}


def cancelled_message(vm_name, state, dest_name, cross_pool=True):
    """One line: what a cancelled migration left, from a StateReport."""
    if state is None:
        return ('Cancelled: the state of VM %r is unknown; check it with '
                '`sxm plan`.' % vm_name)
    if state.source_vm == 'Running':
        text = 'Cancelled: VM %r keeps running on %s with its disks' % (
            vm_name, state.source_host or 'its host')
    else:
        text = 'Cancelled: VM %r is %s%s' % (
            vm_name, state.source_vm,
            ' on %s' % state.source_host if state.source_host else '')
    where = 'pool %s' % dest_name if cross_pool else 'the target SRs'
    left = []
    if cross_pool and state.dest_vm != 'none':
        left.append('a VM (%s) is in %s' % (state.dest_vm, where))
    if state.new_vdis:
        left.append('VDIs left on the target SRs (check them): %s'
                    % ', '.join(state.new_vdis))
    if left:
        return '%s; %s.' % (text, '; '.join(left))
    return '%s; nothing was left in %s.' % (text, where)


def state_json(state):
    if state is None:
        return None
    return {'source_vm': state.source_vm, 'source_host': state.source_host,
            'dest_vm': state.dest_vm, 'new_vdis': list(state.new_vdis)}


def info_json(info):
    """A running migration (``fleet.MigrationInfo``) for ``--json``."""
    return {'task_uuid': info.task_uuid, 'task_ref': info.task_ref,
            'vm_uuid': info.vm_uuid or None, 'vm_name': info.vm_name or None,
            'host': info.host_name or None,
            'progress': round(info.progress, 4), 'status': info.status,
            'created': info.created, 'age_seconds': age(info.created)}


def outcome_json(outcome):
    return {'migration': info_json(outcome.info), 'status': outcome.status,
            'error': str(outcome.error) if outcome.error else None,
            'source_vm': outcome.source_vm}
