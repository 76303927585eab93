"""MXNet's OpenMP thread count: d2l_dcgan counts cores where MXNet halves the CPUs."""
import os
import platform
import subprocess
import sys

import pytest

from d2l_dcgan import cpu
from d2l_dcgan.cpu import (cgroup_cpu_limit, core_count, mxnet_default_threads, physical_cores,
                           set_mxnet_threads)


def fake_sysfs(tmp_path, siblings):
    """/sys/devices/system/cpu with thread_siblings_list per CPU, e.g. {0: '0,2', 2: '0,2'}."""
    root = tmp_path / 'cpu'
    for cpu, text in siblings.items():
        topology = root / f'cpu{cpu}' / 'topology'
        topology.mkdir(parents=True)
        (topology / 'thread_siblings_list').write_text(text + '\n')
    return str(root)


def fake_cgroup(tmp_path, v2=None, v1=None):
    root = tmp_path / 'cgroup'
    root.mkdir(parents=True, exist_ok=True)
    if v2 is not None:
        (root / 'cpu.max').write_text(v2 + '\n')
    if v1 is not None:
        (root / 'cpu').mkdir()
        (root / 'cpu' / 'cpu.cfs_quota_us').write_text(f'{v1[0]}\n')
        (root / 'cpu' / 'cpu.cfs_period_us').write_text(f'{v1[1]}\n')
    return str(root)


def test_cores_without_hyper_threads_are_all_counted(tmp_path):
    sys_cpu = fake_sysfs(tmp_path, {0: '0', 1: '1'})
    assert physical_cores({0, 1}, sys_cpu, fake_cgroup(tmp_path)) == 2


def test_hyper_thread_siblings_count_once(tmp_path):
    sys_cpu = fake_sysfs(tmp_path, {0: '0,2', 1: '1,3', 2: '0,2', 3: '1,3'})
    assert physical_cores({0, 1, 2, 3}, sys_cpu, fake_cgroup(tmp_path)) == 2
    # a process pinned to one thread of each core still has both cores
    assert physical_cores({0, 3}, sys_cpu, fake_cgroup(tmp_path)) == 2
    assert physical_cores({0, 2}, sys_cpu, fake_cgroup(tmp_path)) == 1


def test_a_containers_cpu_quota_caps_the_count(tmp_path):
    sys_cpu = fake_sysfs(tmp_path, {i: str(i) for i in range(8)})
    cpus = set(range(8))
    assert physical_cores(cpus, sys_cpu, fake_cgroup(tmp_path / 'a', v2='250000 100000')) == 3
    assert physical_cores(cpus, sys_cpu, fake_cgroup(tmp_path / 'b', v2='max 100000')) == 8
    assert physical_cores(cpus, sys_cpu, fake_cgroup(tmp_path / 'c', v1=(200000, 100000))) == 2
    assert physical_cores(cpus, sys_cpu, fake_cgroup(tmp_path / 'd', v1=(-1, 100000))) == 8
    assert cgroup_cpu_limit(fake_cgroup(tmp_path / 'e', v2='50000 100000')) == 1


@pytest.mark.parametrize('v2', ['garbage', '', '100000'])
def test_an_unreadable_quota_is_no_quota(tmp_path, v2):
    assert cgroup_cpu_limit(fake_cgroup(tmp_path, v2=v2)) is None


def test_no_sysfs_means_no_opinion(tmp_path):
    assert physical_cores({0, 1}, str(tmp_path / 'missing'), fake_cgroup(tmp_path)) is None
    assert physical_cores(set(), fake_sysfs(tmp_path, {}), fake_cgroup(tmp_path)) is None


def test_without_sysfs_the_cpus_this_process_may_run_on_are_counted(tmp_path):
    missing = str(tmp_path / 'missing')
    cores, assumed = core_count({0, 1, 5}, missing, fake_cgroup(tmp_path / 'a'))
    assert cores == 3 and 'counting the 3 CPUs this process may run on as cores' in assumed
    quota = fake_cgroup(tmp_path / 'b', v2='200000 100000')
    cores, assumed = core_count(set(range(8)), missing, quota)
    assert cores == 2 and assumed.endswith('8 CPUs this process may run on as cores, 2 by the '
                                           'cgroup CPU quota')
    # where sysfs tells, nothing is assumed
    sys_cpu = fake_sysfs(tmp_path, {0: '0', 1: '1'})
    assert core_count({0, 1}, sys_cpu, fake_cgroup(tmp_path / 'c')) == (2, None)


def test_without_sysfs_mxnet_gets_every_usable_cpu_and_the_user_one_line(tmp_path, monkeypatch,
                                                                          capsys):
    missing, cgroup = str(tmp_path / 'missing'), fake_cgroup(tmp_path)
    monkeypatch.setattr(cpu, 'core_count', lambda: core_count({0, 1}, missing, cgroup))
    env = {}
    assert set_mxnet_threads(env, modules={}) == 2 and env == {'MXNET_OMP_MAX_THREADS': '2'}
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(f'd2l_dcgan: {missing} does not say')
    assert err.endswith('as cores; MXNET_OMP_MAX_THREADS=2\n')


def test_the_count_goes_to_mxnets_own_variable():
    env = {}
    assert set_mxnet_threads(env, modules={}, cores=6) == 6
    assert env == {'MXNET_OMP_MAX_THREADS': '6'}


@pytest.mark.parametrize('env', [{'MXNET_OMP_MAX_THREADS': '1'}, {'OMP_NUM_THREADS': '3'}])
def test_a_users_choice_is_kept(env):
    chosen = dict(env)
    assert set_mxnet_threads(chosen, modules={}, cores=6) is None
    assert chosen == env


def test_too_late_once_mxnet_is_loaded_and_the_user_is_told():
    env = {}
    with pytest.warns(RuntimeWarning, match='on 3 of 6 cores.*MXNET_OMP_MAX_THREADS=6'):
        assert set_mxnet_threads(env, modules={'mxnet': object()}, cores=6,
                                 mxnet_default=3) is None
    assert env == {}


def test_no_warning_where_mxnet_already_uses_every_core(recwarn):
    assert set_mxnet_threads({}, modules={'mxnet': object()}, cores=4, mxnet_default=4) is None
    assert set_mxnet_threads({'OMP_NUM_THREADS': '1'}, modules={'mxnet': object()}, cores=4,
                             mxnet_default=1) is None
    assert not recwarn.list


@pytest.mark.parametrize('cpus, machine, threads', [
    (2, 'x86_64', 1), (16, 'AMD64', 8), (1, 'x86_64', 1), (8, 'aarch64', 8)])
def test_mxnets_own_count_halves_the_cpus_on_x86(cpus, machine, threads):
    assert mxnet_default_threads(cpus, machine) == threads


def test_unknown_core_count_leaves_mxnets_default():
    env = {}
    assert set_mxnet_threads(env, modules={}, cores=0) is None
    assert env == {}


def openmp_threads_used(first_import):
    """Threads of a fresh process that imports `first_import`, then d2l_dcgan, then runs one
    large MXNet matrix product: OpenMP adds a thread per extra thread in its team."""
    code = f"""
import os
try:
    import {first_import}
except AttributeError:  # mxnet on numpy >= 1.24: its library loaded, its import failed
    pass
import d2l_dcgan
from mxnet import np
before = len(os.listdir('/proc/self/task'))
a = np.ones((1024, 1024))
np.dot(a, a).wait_to_read()
print(len(os.listdir('/proc/self/task')) - before)
"""
    env = {k: v for k, v in os.environ.items() if k not in ('MXNET_OMP_MAX_THREADS', 'OMP_NUM_THREADS')}
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not os.path.isdir('/proc/self/task') or (physical_cores() or 1) < 2
                    or (os.cpu_count() or 1) >= 2 * (physical_cores() or 1),
                    reason='needs Linux, 2+ cores and no hyper-threads (where MXNet and we agree)')
def test_mxnet_runs_on_every_core_when_d2l_dcgan_comes_first():
    # MXNet alone halves the CPUs of a machine without hyper-threads: one thread fewer per half
    assert openmp_threads_used('mxnet') < openmp_threads_used('sys')


# ------------------------------------------------------------ oneDNN's instruction-set cap

# one convolution's backward pass; with DNNL_VERBOSE=1 oneDNN prints the set it runs first
ONE_CONV = """
import d2l_dcgan
import mxnet as mx
from mxnet import autograd, gluon, np
mx.random.seed(0)
net = gluon.nn.Conv2D(64, 4, 2, 1, in_channels=32)
net.initialize(mx.init.Normal(0.02))
x = np.random.normal(size=(8, 32, 32, 32))
with autograd.record():
    y = (net(x) ** 2).sum()
y.backward()
print('GRAD', net.weight.grad().asnumpy().tobytes().hex())
"""
ISA_NAMES = {'AVX2': 'Intel AVX2', 'SSE41': 'Intel SSE4.1'}  # as oneDNN 2's verbose mode says


def conv_under(cap):
    """(instruction set oneDNN ran, the gradient's bytes) of ONE_CONV with DNNL_MAX_CPU_ISA=cap
    (None: no cap)."""
    env = {k: v for k, v in os.environ.items() if k != 'DNNL_MAX_CPU_ISA'}
    env.update({'DNNL_VERBOSE': '1', **({'DNNL_MAX_CPU_ISA': cap} if cap else {})})
    out = subprocess.run([sys.executable, '-c', ONE_CONV], env=env, capture_output=True,
                         text=True, check=True).stdout
    isa = next(l for l in out.splitlines() if l.startswith('dnnl_verbose,info,cpu,isa:'))
    return isa.split('isa:', 1)[1], next(l for l in out.splitlines() if l.startswith('GRAD'))


@pytest.mark.numerics
@pytest.mark.skipif(platform.machine().lower() not in ('x86_64', 'amd64'),
                    reason='DNNL_MAX_CPU_ISA caps x86 instruction sets; .ci/run caps on x86 only')
def test_the_instruction_set_cap_ci_uses_is_what_onednn_runs():
    """.ci/run's capped runs rest on this: MXNet 1.9.1's oneDNN reads DNNL_MAX_CPU_ISA, runs
    that set, and sums in another order there (SSE4.1's 128-bit vectors against the CPU's own
    256- or 512-bit ones)."""
    native, capped = conv_under(None), {cap: conv_under(cap) for cap in ISA_NAMES}
    assert all(capped[cap][0] == name for cap, name in ISA_NAMES.items()), capped
    assert capped['SSE41'][1] != native[1]
