"""How many OpenMP threads MXNet's CPU operators use, decided before MXNet loads.

MXNet 1.9.1 (src/engine/openmp.cc) gives its operators half of the CPUs on x86, assuming two
hyper-threads per core. On a machine without SMT (most cloud VMs, this project's 2-core CI)
that leaves half the cores idle: every convolution and GEMM runs at half speed. We count the
cores instead and tell MXNet through its own MXNET_OMP_MAX_THREADS, which (unlike
OMP_NUM_THREADS) leaves NumPy's and other libraries' thread pools alone. Where /sys is not
mounted (a chroot, some sandboxes) the cores cannot be told from hyper-threads: we count the
CPUs this process may run on as cores, and say so, rather than let MXNet halve them."""
import math
import os
import platform
import sys
import warnings

from .fileio import read_text

_SYS_CPU = '/sys/devices/system/cpu'
_CGROUP = '/sys/fs/cgroup'


def cgroup_cpu_limit(root=_CGROUP):
    """CPUs a container's CFS quota allows (rounded up), or None without a quota."""
    v2 = read_text(os.path.join(root, 'cpu.max'))  # "max 100000" or "200000 100000"
    if v2:
        quota, _, period = v2.partition(' ')
    else:
        quota = read_text(os.path.join(root, 'cpu', 'cpu.cfs_quota_us'))  # -1 without a quota
        period = read_text(os.path.join(root, 'cpu', 'cpu.cfs_period_us'))
    try:
        quota, period = int(quota), int(period)
    except (TypeError, ValueError):
        return None
    return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None


def capped(count, cgroup_root=_CGROUP):
    """`count` CPUs or cores, capped by a cgroup CPU quota where one is readable."""
    limit = cgroup_cpu_limit(cgroup_root)
    return min(count, limit) if limit else count


def affinity(cpus=None):
    """The CPUs this process may run on (its affinity mask); None where the OS does not tell."""
    if cpus is None and hasattr(os, 'sched_getaffinity'):
        cpus = os.sched_getaffinity(0)
    return cpus or None


def physical_cores(cpus=None, sys_cpu=_SYS_CPU, cgroup_root=_CGROUP):
    """Cores this process may run on: CPUs in its affinity mask, hyper-thread siblings counted
    once, capped by a cgroup CPU quota. None where Linux's sysfs does not tell."""
    cores = set()
    for cpu in affinity(cpus) or ():
        siblings = read_text(f'{sys_cpu}/cpu{cpu}/topology/thread_siblings_list')
        if siblings is None:
            return None
        cores.add(siblings)  # every sibling of a core lists the same set, e.g. "0,8" or "0-1"
    return capped(len(cores), cgroup_root) if cores else None


def core_count(cpus=None, sys_cpu=_SYS_CPU, cgroup_root=_CGROUP):
    """(cores, what was assumed): physical_cores; where sysfs does not tell (not mounted in a
    chroot or sandbox), the CPUs this process may run on, capped by a quota, and why."""
    cores = physical_cores(cpus, sys_cpu, cgroup_root)
    cpus = affinity(cpus)
    if cores or not cpus:
        return cores, None
    cores = capped(len(cpus), cgroup_root)
    quota = f', {cores} by the cgroup CPU quota' if cores < len(cpus) else ''
    return cores, (f'{sys_cpu} does not say which CPUs share a core (no /sys?): counting the '
                   f'{len(cpus)} CPUs this process may run on as cores{quota}')


def mxnet_loaded(modules=None):
    """Whether MXNet's library is loaded: `mxnet` imported, or an import of it that failed part
    way (its loaded submodules stay in sys.modules)."""
    modules = sys.modules if modules is None else modules
    return any(m == 'mxnet' or m.startswith('mxnet.') for m in list(modules))


THREAD_VARIABLES = ('MXNET_OMP_MAX_THREADS', 'OMP_NUM_THREADS')


def mxnet_default_threads(cpus=None, machine=None):
    """The thread count MXNet 1.9.1 picks when none is set: the CPUs, halved on x86."""
    cpus = len(os.sched_getaffinity(0)) if cpus is None else cpus
    machine = (machine or platform.machine()).lower()
    return max(1, cpus >> 1) if machine in ('x86_64', 'amd64', 'i386', 'i686') else cpus


def set_mxnet_threads(env=None, modules=None, cores=None, mxnet_default=None):
    """Set MXNET_OMP_MAX_THREADS to the physical core count, if nobody chose a thread count and
    MXNet is not loaded yet (it reads the variable once). Returns the count set, else None.
    Warns if MXNet was loaded first with fewer threads than cores, since nothing can fix it then."""
    env = os.environ if env is None else env
    modules = sys.modules if modules is None else modules
    if any(env.get(v) for v in THREAD_VARIABLES):
        return None
    cores, assumed = core_count() if cores is None else (cores, None)
    if not cores:
        return None
    if mxnet_loaded(modules):
        used = mxnet_default_threads() if mxnet_default is None else mxnet_default
        if used < cores:
            warnings.warn(
                f'mxnet was imported before d2l_dcgan, so MXNet runs its CPU operators on {used} '
                f'of {cores} cores; import d2l_dcgan first, or start Python with '
                f'MXNET_OMP_MAX_THREADS={cores}', RuntimeWarning, stacklevel=3)
        return None
    env['MXNET_OMP_MAX_THREADS'] = str(cores)
    if assumed:
        print(f'd2l_dcgan: {assumed}; MXNET_OMP_MAX_THREADS={cores}', file=sys.stderr)
    return cores
