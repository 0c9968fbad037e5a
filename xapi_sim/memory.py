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

"""Host memory accounting, as xapi's ``memory_check.ml`` does it.

* A VM's ``memory_overhead`` comes from xenopsd's memory model
  (``xapi-idl/memory/memory.ml``: shadow pages, per-vCPU pages, the
  device model's extra MiBs).
* ``host_compute_free_memory`` is what the pool master believes is free:
  ``host_metrics.memory_total - host.memory_overhead`` minus, for every VM
  resident on or scheduled to the host (dom0 included),
  ``memory_dynamic_min + memory_overhead``.
* ``required_to_start`` is what a VM needs to boot: its dynamic_min (HVM,
  PV, PVH; static_max for PV-in-PVH) rounded up to a MiB, plus its
  overhead.
* ``host_memory_free`` is what the host's monitoring reports in
  ``host_metrics.memory_free``: the memory no running domain occupies
  (``memory_actual + memory_overhead`` of each).

Migrations onto a host call ``assert_enough_memory`` with the VM's record
(the record of the source pool for a cross-pool move), before they start
moving anything; VM.start/start_on/resume call it under the pool lock so
that two starts cannot both take the last free MiB.
"""

from xapi_sim import errors

MiB = 1 << 20
NULL = 'OpaqueRef:NULL'
RUNNING = ('Running', 'Paused')


def _mib_of_bytes_used(value):
    return -(-int(value) // MiB)


def _mib_of_pages_used(pages):
    return -(-int(pages) // 256)


# (extra_internal_mib, extra_external_mib, shim_mib(static_max_mib))
_MODELS = {
    'hvm': (1, 1, lambda mib: 0),
    'pv': (0, 1, lambda mib: 0),
    'pv_in_pvh': (1, 1, lambda mib: 23 + mib // 90),
}


def domain_type(rec):
    """xapi's Helpers.check_domain_type.

    'unspecified' follows the boot policy (an HVM boot policy means HVM,
    none means PV).
    """
    dt = rec.get('domain_type', 'hvm')
    if dt == 'unspecified':
        return 'hvm' if rec.get('HVM_boot_policy') else 'pv'
    return dt


def _model(rec):
    dt = domain_type(rec)
    return _MODELS['hvm' if dt == 'pvh' else dt]


def _multiplier(rec):
    # PV guests use Linux's default shadow multiplier, whatever the field.
    if domain_type(rec) == 'pv':
        return 1.0
    return float(rec.get('HVM_shadow_multiplier', 1.0))


def overhead_mib(rec):
    """Memory.<model>.overhead_mib for a VM record."""
    internal, external, shim = _model(rec)
    static_max_mib = _mib_of_bytes_used(rec['memory_static_max'])
    vcpus = int(rec['VCPUs_max'])
    shadow = _mib_of_pages_used(256 * vcpus + 2 * static_max_mib)
    shadow = max(1, int(shadow * _multiplier(rec)))
    return (internal + external + shadow + _mib_of_pages_used(38 * vcpus)
            + shim(static_max_mib))


def vm_overhead(rec):
    """VM.memory_overhead in bytes (vm_compute_memory_overhead)."""
    return overhead_mib(rec) * MiB


def required_to_start(rec):
    """Bytes a VM needs free on a host to boot (vm_compute_start_memory)."""
    if domain_type(rec) == 'pv_in_pvh':
        target = rec['memory_static_max']
    else:
        target = rec['memory_dynamic_min']
    target_mib = _mib_of_bytes_used(target)
    return (target_mib + overhead_mib(rec)) * MiB


def constraints_coercible(rec):
    """Vm_memory_constraints.transform succeeds: what VM.start checks."""
    return (int(rec['memory_static_min']) <= int(rec['memory_static_max'])
            and int(rec['memory_dynamic_min'])
            <= int(rec['memory_dynamic_max']))


def constraints_valid(static_min, dynamic_min, dynamic_max, static_max):
    """static_min <= dynamic_min <= dynamic_max <= static_max."""
    return static_min <= dynamic_min <= dynamic_max <= static_max


def _host_total(db, host):
    metrics = db.get('host', host)['metrics']
    if metrics == NULL or not db.exists('host_metrics', metrics):
        return 0
    return int(db.get('host_metrics', metrics)['memory_total'])


def host_compute_free_memory(db, host, ignore_vm=None):
    """host.compute_free_memory.

    ``ignore_vm`` is not counted (the VM being placed, as xapi's
    ignore_scheduled_vm).
    """
    with db.lock:
        available = _host_total(db, host) - int(
            db.get('host', host)['memory_overhead'])
        for vm, rec in db.tables['VM'].items():
            if vm == ignore_vm:
                continue
            if host in (rec['resident_on'],
                        rec['scheduled_to_be_resident_on']):
                available -= (int(rec['memory_dynamic_min'])
                              + int(rec['memory_overhead']))
        return max(0, available)


def host_memory_free(db, host):
    """host_metrics.memory_free: what running domains leave free."""
    with db.lock:
        free = _host_total(db, host) - int(
            db.get('host', host)['memory_overhead'])
        # resident_VMs: the VMs whose resident_on is this host (the
        # database keeps it), not every VM of the pool.
        for vm in db.get('host', host)['resident_VMs']:
            rec = db.get('VM', vm)
            if rec['power_state'] not in RUNNING:
                continue
            metrics = rec.get('metrics', NULL)
            actual = (db.get('VM_metrics', metrics)['memory_actual']
                      if db.exists('VM_metrics', metrics) else 0)
            free -= int(actual) + int(rec['memory_overhead'])
        return max(0, free)


def assert_enough_memory(db, host, rec, vm=None):
    """HOST_NOT_ENOUGH_FREE_MEMORY [needed; available] unless it fits.

    ``rec`` is a VM record, possibly another pool's; ``host`` is a host
    of ``db``.

    ``vm`` is the VM's ref in ``db`` when it has one: it is not counted
    twice when it is already resident there.
    """
    needed = required_to_start(rec)
    available = host_compute_free_memory(db, host, ignore_vm=vm)
    if available < needed:
        raise errors.XapiError('HOST_NOT_ENOUGH_FREE_MEMORY', needed,
                               available)
