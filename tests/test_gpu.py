"""d2l_dcgan.gpu on a CPU-only machine: preloading with fake library folders, the no-op on a CPU
build of MXNet, compute-capability rules, the probe, select_device's choices and messages with
fake GPUs. The opt-in `cuda_install` test installs the real cu112 extra."""
import os
import runpy
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from d2l_dcgan import DCGANError, gpu  # first: with mxnet-cu112 it preloads the CUDA libraries
from d2l_dcgan.gpu import (MXNET_CU112_ARCHS, GPUInfo, can_run, preload_cuda_libraries,
                           select_device)
import mxnet as mx  # noqa: E402,I100

ROOT = Path(__file__).resolve().parent.parent
ALL_SONAMES = [soname for _, soname in gpu.CUDA11_LIBRARIES]
NO_KERNEL = ('MXNetError: Check failed: err == cudaSuccess (209 vs. 0) : Name: '
             'mxnet_generic_kernel ErrStr:no kernel image is available for execution on the '
             'device')


def fake_site(tmp_path, skip=()):
    """tmp_path/site/nvidia/<package>/lib/<soname>, empty files, like the nvidia-*-cu11 wheels."""
    site = tmp_path / 'site'
    for package, soname in gpu.CUDA11_LIBRARIES:
        if soname not in skip:
            lib = site / 'nvidia' / package / 'lib'
            lib.mkdir(parents=True, exist_ok=True)
            (lib / soname).write_bytes(b'')
    return site


class Loader:
    """Records what would be dlopened; the names in `fail` (a path or a soname) raise OSError,
    as dlopen does."""

    def __init__(self, fail=()):
        self.calls, self.fail = [], set(fail)

    def __call__(self, name, mode=0):
        if name in self.fail:
            raise OSError(f'{name}: cannot open shared object file')
        self.calls.append((name, mode))
        return object()

    @property
    def names(self):
        return [name for name, _ in self.calls]


def preload(site, loader, **kw):
    kw.setdefault('env', {})
    return preload_cuda_libraries([str(site.parent / 'empty'), str(site)], cuda=True,
                                  loader=loader, **kw)


# --- preloading ------------------------------------------------------------------------------

def test_preload_loads_every_library_from_pip_in_dependency_order(tmp_path):
    site = fake_site(tmp_path)
    loader = Loader()
    report = preload(site, loader)
    expected = [str(site / 'nvidia' / pkg / 'lib' / s) for pkg, s in gpu.CUDA11_LIBRARIES]
    assert loader.names == expected + ['libcuda.so.1']  # the driver last, by soname
    assert all(mode == os.RTLD_GLOBAL for _, mode in loader.calls)
    # what depends on what comes after it
    order = [os.path.basename(n) for n in loader.names]
    assert order.index('libcublasLt.so.11') < order.index('libcublas.so.11') \
        < order.index('libcusolver.so.11') < order.index('libcudnn.so.8')
    assert order[0] == 'libcudart.so.11.0'
    assert [lib.path for lib in report.libraries] == expected
    assert report.missing == [] and report.driver and report.hint() == ''
    assert 'libcudnn.so.8' in report.summary() and str(site) in report.summary()


def test_a_library_pip_lacks_is_left_to_the_dynamic_linker(tmp_path):
    site = fake_site(tmp_path, skip={'libcudnn.so.8'})
    loader = Loader()
    report = preload(site, loader)
    assert not any('libcudnn' in n for n in loader.names)
    assert report.missing == ['libcudnn.so.8']
    assert 'libcudnn.so.8        not from pip: left to the dynamic linker' in report.summary()
    hint = report.hint()
    assert 'libcudnn.so.8' in hint and 'd2l_dcgan[cu112]' in hint and 'libcuda.so.1' not in hint


def test_a_pip_library_that_fails_to_load_is_reported_with_the_error(tmp_path):
    site = fake_site(tmp_path)
    report = preload(site, Loader(fail={str(site / 'nvidia/cufft/lib/libcufft.so.10')}))
    cufft = [lib for lib in report.libraries if lib.soname == 'libcufft.so.10'][0]
    assert cufft.path and 'cannot open' in cufft.error
    assert report.missing == ['libcufft.so.10'] and 'cannot open' in report.summary()


def test_no_driver_is_in_the_hint(tmp_path):
    report = preload(fake_site(tmp_path, skip={'libnccl.so.2'}), Loader(fail={'libcuda.so.1'}))
    assert not report.driver and 'missing: no NVIDIA driver' in report.summary()
    hint = report.hint()
    assert '\n' not in hint
    assert 'NVIDIA driver (libcuda.so.1)' in hint and 'd2l_dcgan[cpu]' in hint
    assert 'libnccl.so.2' in hint


def test_env_defaults_are_set_only_where_unset(tmp_path):
    env = {'MXNET_CUDNN_AUTOTUNE_DEFAULT': '2'}
    report = preload(fake_site(tmp_path), Loader(), env=env)
    assert env == {'MXNET_CUDNN_AUTOTUNE_DEFAULT': '2', 'MXNET_CUDNN_LIB_CHECKING': '0'}
    assert report.env == {'MXNET_CUDNN_LIB_CHECKING': '0'}
    assert set(gpu.CUDA_ENV_DEFAULTS) == {'MXNET_CUDNN_AUTOTUNE_DEFAULT',
                                          'MXNET_CUDNN_LIB_CHECKING'}


def boom(*args, **kwargs):
    raise AssertionError('not to be called')


@pytest.mark.parametrize('cuda', [False, None], ids=['cpu build', 'detected'])
def test_preload_is_a_no_op_for_a_cpu_build(tmp_path, cuda):
    """This machine's venv has `mxnet` (CPU): nothing loaded, no environment variable set."""
    env = {}
    report = preload_cuda_libraries([str(fake_site(tmp_path))], cuda=cuda, loader=boom, env=env)
    assert not report.cuda and report.libraries == () and env == {}
    assert 'CPU build' in report.summary() and report.hint() == ''


def test_the_cuda_build_is_mxnet_cu112_from_package_metadata(monkeypatch):
    assert not gpu.is_cuda_build()  # this machine: mxnet (CPU)

    def version(name):
        if name != 'mxnet_cu112':
            raise metadata.PackageNotFoundError(name)
        return '1.9.1'
    monkeypatch.setattr(metadata, 'version', version)
    assert gpu.is_cuda_build()


# --- compute capability ----------------------------------------------------------------------

def test_the_kernels_of_mxnet_cu112():
    assert MXNET_CU112_ARCHS == (50, 60, 70, 80, 86) and gpu.BUILT_FOR == 'sm_50..86'


@pytest.mark.parametrize('capability, ok', [
    ((8, 0), True),    # A100: sm_80 cubin
    ((8, 6), True),    # RTX 30xx, A40: sm_86 cubin
    ((8, 9), True),    # Ada (RTX 40xx, L4, L40): runs the sm_86 cubin (same major, 9 >= 6)
    ((8, 7), True),    # Orin: sm_86
    ((7, 5), True),    # Turing (T4): runs the sm_70 cubin (same major, 5 >= 0)
    ((7, 0), True),    # V100
    ((6, 1), True),    # Pascal GeForce: sm_60
    ((5, 2), True),    # Maxwell: sm_50
    ((9, 0), False),   # H100: no sm_9x cubin and no PTX
    ((10, 0), False),  # B200
    ((12, 0), False),  # RTX 50xx
    ((3, 5), False),   # Kepler
    ((3, 7), False),   # K80
])
def test_can_run_follows_cudas_binary_compatibility(capability, ok):
    assert can_run(capability) is ok


class FakeLibcuda:
    """The CUDA driver API calls gpu.py makes, answered from a list of (name, (major, minor))."""

    def __init__(self, gpus, init=0):
        self.gpus, self.init = gpus, init

    def cuInit(self, flags):
        return self.init

    def cuDeviceGetCount(self, count):
        count._obj.value = len(self.gpus)
        return 0

    def cuDeviceGet(self, dev, ordinal):
        if ordinal >= len(self.gpus):
            return 101  # CUDA_ERROR_INVALID_DEVICE
        dev._obj.value = ordinal
        return 0

    def cuDeviceGetAttribute(self, value, attribute, dev):
        value._obj.value = self.gpus[dev.value][1][{75: 0, 76: 1}[attribute]]
        return 0

    def cuDeviceGetName(self, buf, size, dev):
        buf.value = self.gpus[dev.value][0].encode()
        return 0


def test_the_driver_api_gives_names_and_capabilities(monkeypatch):
    libcuda = FakeLibcuda([('NVIDIA A100-SXM4-40GB', (8, 0)), ('NVIDIA H100 80GB HBM3', (9, 0))])
    monkeypatch.setattr(gpu.ctypes, 'CDLL', lambda name: libcuda)
    monkeypatch.setattr(gpu, '_DRIVER', [])
    assert gpu.gpu_capability(1) == GPUInfo(1, 'NVIDIA H100 80GB HBM3', (9, 0))
    assert gpu.gpu_capability(2) is None
    assert [g.capability for g in gpu.list_gpus()] == [(8, 0), (9, 0)]
    libcuda.init = 100  # CUDA_ERROR_NO_DEVICE: cuInit fails, no GPU
    monkeypatch.setattr(gpu, '_DRIVER', [])
    assert gpu.gpu_capability(0) is None and gpu.list_gpus() == []


def test_no_driver_here():
    assert gpu.gpu_capability(0) is None and gpu.list_gpus() == []


# --- the probe ---------------------------------------------------------------------------------

def test_the_probe_passes_on_the_cpu_and_leaves_names_and_random_numbers_alone():
    mx.random.seed(0)
    expected = mx.np.random.uniform(size=3).asnumpy()
    mx.random.seed(0)
    assert gpu.probe(mx.cpu()) is None
    assert (mx.np.random.uniform(size=3).asnumpy() == expected).all()
    before = list(mx.gluon.nn.Dense(1).collect_params())[0]
    gpu.probe(mx.cpu())
    after = list(mx.gluon.nn.Dense(1).collect_params())[0]
    assert int(after[5:-7]) == int(before[5:-7]) + 1  # dense<N>_weight: the next N


@pytest.mark.skipif(mx.context.num_gpus() > 0, reason='this MXNet runs on a GPU')
def test_the_probe_returns_mxnets_error_line():
    assert gpu.probe(mx.gpu(0)) == 'MXNetError: Operator _npi_ones is not implemented for GPU.'


def test_first_line_finds_the_message_after_mxnets_traceback():
    error = mx.base.MXNetError('Traceback (most recent call last):\n  File "../src/operator/'
                               'nn/../mxnet_op.h", line 1120\n' + NO_KERNEL)
    assert gpu.first_line(error) == NO_KERNEL
    assert gpu.first_line(mx.base.MXNetError('\nout of memory\n')) == 'out of memory'


# --- select_device ---------------------------------------------------------------------------

A100 = GPUInfo(0, 'NVIDIA A100-SXM4-80GB', (8, 0))
H100 = GPUInfo(0, 'NVIDIA H100 80GB HBM3', (9, 0))


def passes(ctx):
    return None


def gpus(*infos, probe=passes):
    table = {i: g._replace(index=i) for i, g in enumerate(infos)}
    return dict(num_gpus=len(infos), capability=table.get, probe=probe, cuda=True)


@pytest.mark.parametrize('info', [A100, GPUInfo(0, 'NVIDIA GeForce RTX 3090', (8, 6)),
                                  GPUInfo(0, 'NVIDIA L4', (8, 9)),
                                  GPUInfo(0, 'Tesla T4', (7, 5))],
                         ids=['sm_80', 'sm_86', 'sm_89', 'sm_75'])
def test_auto_takes_a_supported_gpu_that_passes_the_probe(info):
    probed = []
    ctx, why = select_device('auto', **gpus(info, probe=lambda ctx: probed.append(ctx)))
    assert ctx == mx.gpu(0) and probed == [mx.gpu(0)]
    cc = info.capability[0] * 10 + info.capability[1]
    assert why == f'1 GPU(s) visible to MXNet; GPU 0 is {info.name}, sm_{cc}'


@pytest.mark.parametrize('info', [H100, GPUInfo(0, 'NVIDIA B200', (10, 0)),
                                  GPUInfo(0, 'Tesla K80', (3, 7))], ids=['sm_90', 'sm_100',
                                                                          'sm_37'])
def test_auto_falls_back_to_the_cpu_on_an_unsupported_gpu(info):
    ctx, why = select_device('auto', **gpus(info, probe=boom))  # checked before the probe
    cc = info.capability[0] * 10 + info.capability[1]
    assert ctx == mx.cpu()
    assert why == (f'GPU 0 ({info.name}, sm_{cc}) cannot run mxnet-cu112 1.9.1 '
                   '(built for sm_50..86): using CPU')


def test_auto_falls_back_to_the_cpu_when_the_probe_fails():
    ctx, why = select_device('auto', **gpus(A100, probe=lambda ctx: NO_KERNEL))
    assert ctx == mx.cpu() and '\n' not in why
    assert why == ('GPU 0 (NVIDIA A100-SXM4-80GB, sm_80) failed a test forward/backward pass '
                   f'({NO_KERNEL}): using CPU')


def test_gpu_stops_when_the_probe_fails():
    setup = gpus(A100, A100, probe=lambda ctx: 'MXNetError: out of memory' if ctx.device_id
                 else None)
    assert select_device('gpu:0', **setup) == (mx.gpu(0), 'asked for')
    with pytest.raises(DCGANError) as e:
        select_device('gpu:1', **setup)
    assert str(e.value) == ('argument device: gpu:1: GPU 1 (NVIDIA A100-SXM4-80GB, sm_80) '
                            'failed a test forward/backward pass (MXNetError: out of memory); '
                            'use cpu')


def test_auto_without_a_gpu():
    assert select_device('auto', **gpus()) == (mx.cpu(), 'no GPU visible to MXNet')
    # this machine: CPU build of MXNet, everything detected
    ctx, why = select_device('auto')
    assert ctx == mx.cpu() and why == ('no GPU visible to MXNet (mxnet-cu112 is not installed: '
                                       'a CPU build)')


def test_an_unknown_capability_leaves_it_to_the_probe():
    setup = dict(num_gpus=2, capability=lambda i: None, cuda=True)
    ctx, why = select_device('auto', probe=passes, **setup)
    assert ctx == mx.gpu(0) and why == ('2 GPU(s) visible to MXNet; GPU 0 ran a test pass '
                                        '(capability unknown: the CUDA driver API did not answer)')
    ctx, why = select_device('auto', probe=lambda ctx: NO_KERNEL, **setup)
    assert ctx == mx.cpu() and why.startswith('GPU 0 failed a test forward/backward pass (')


def test_gpu_on_an_unsupported_gpu_says_what_to_do():
    with pytest.raises(DCGANError) as e:
        select_device('gpu', **gpus(H100, probe=boom))
    msg = str(e.value)
    assert '\n' not in msg
    assert msg == ('argument device: gpu: GPU 0 (NVIDIA H100 80GB HBM3, sm_90) cannot run '
                   'mxnet-cu112 1.9.1 (built for sm_50..86), with no PTX to compile for it; use '
                   'cpu, an Ampere/Ada GPU (sm_80-sm_89), or an MXNet build for sm_90')


@pytest.mark.parametrize('info', [GPUInfo(0, 'Tesla K40m', (3, 5)),
                                  GPUInfo(0, 'NVIDIA GeForce RTX 5090', (12, 0))])
def test_gpu_rejects_old_and_new_architectures(info):
    with pytest.raises(DCGANError, match=r'sm_(35|120)\) cannot run mxnet-cu112 1\.9\.1'):
        select_device('gpu:0', **gpus(info))


def test_gpu_n_picks_that_gpu():
    setup = gpus(H100, GPUInfo(0, 'NVIDIA A10', (8, 6)))
    assert select_device('gpu:1', **setup) == (mx.gpu(1), 'asked for')
    with pytest.raises(DCGANError, match='GPU 0 .*sm_90'):
        select_device('gpu:0', **setup)
    with pytest.raises(DCGANError) as e:
        select_device('gpu:2', **setup)
    assert str(e.value) == ('argument device: gpu:2: MXNet (mxnet-cu112 1.9.1) sees 2 GPU(s) '
                            '(check nvidia-smi and CUDA_VISIBLE_DEVICES); use cpu instead')


def test_gpu_with_a_cpu_build():
    with pytest.raises(DCGANError) as e:
        select_device('gpu')  # this machine
    assert str(e.value) == ('argument device: gpu: MXNet sees 0 GPU(s) (a CPU build of MXNet '
                            'sees none; install d2l_dcgan[cu112] on a CUDA machine); use cpu '
                            'instead')
    with pytest.raises(DCGANError, match='MXNet sees 0'):
        select_device('gpu:1', num_gpus=0, cuda=False)


def test_cpu_and_bad_specs():
    assert select_device('cpu', **gpus(A100, probe=boom)) == (mx.cpu(0), 'asked for')
    assert select_device(' CPU:1 ') == (mx.cpu(1), 'asked for')
    for bad in ('foo', 'gpu:x', 'auto:1', 'cuda:0', ''):
        with pytest.raises(DCGANError, match='argument device: expected auto, cpu, cpu:N, gpu '
                                             'or gpu:N'):
            select_device(bad)


# --- the real install (opt-in) ---------------------------------------------------------------

CHECK_INSTALL = textwrap.dedent('''
    import ctypes, importlib.util, json, os, sys
    spec = importlib.util.spec_from_file_location('gpu', sys.argv[1])
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)  # gpu.py alone: the venv has no d2l_dcgan dependencies
    lib = os.path.join(importlib.util.find_spec('mxnet').submodule_search_locations[0],
                       'libmxnet.so')
    if sys.argv[2] == 'bare':  # without preloading, libmxnet.so cannot be loaded
        try:
            ctypes.CDLL(lib)
            print(json.dumps({'lib': lib, 'error': None}))
        except OSError as e:
            print(json.dumps({'lib': lib, 'error': str(e)}))
        sys.exit()
    report = gpu.preload_cuda_libraries()
    unresolved = []
    for _, soname in gpu.CUDA11_LIBRARIES:
        try:
            ctypes.CDLL(soname)  # a preloaded library answers to its soname
        except OSError as e:
            unresolved.append(f'{soname}: {e}')
    out = {'cuda': report.cuda, 'unresolved': unresolved, 'summary': report.summary(),
           'libraries': [lib._asdict() for lib in report.libraries]}
    if len(sys.argv) > 3:  # a stub libcuda.so.1: then `import mxnet` itself must work
        ctypes.CDLL(sys.argv[3], mode=os.RTLD_GLOBAL)
        import mxnet as mx
        features = mx.runtime.Features()
        out['features'] = {k: features.is_enabled(k) for k in ('CUDA', 'CUDNN', 'NCCL')}
        out['version'] = mx.__version__
    print(json.dumps(out))
''')

# the driver API functions libmxnet.so 1.9.1 links, and what libcudart asks for first
STUB_DRIVER_SYMBOLS = (
    'cuInit', 'cuDriverGetVersion', 'cuGetProcAddress', 'cuGetExportTable', 'cuDeviceGetCount',
    'cuDeviceGet', 'cuDevicePrimaryCtxRetain', 'cuGetErrorString', 'cuGraphKernelNodeGetParams',
    'cuGraphNodeGetType', 'cuLaunchKernel', 'cuModuleGetFunction', 'cuModuleLoadData',
    'cuModuleLoadDataEx', 'cuModuleUnload')


def _setup_kwargs():
    import setuptools
    captured = {}
    real = setuptools.setup
    setuptools.setup = lambda **kw: captured.update(kw)
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        runpy.run_path(str(ROOT / 'setup.py'))
    finally:
        setuptools.setup = real
        os.chdir(cwd)
    return captured


@pytest.mark.cuda_install
@pytest.mark.skipif(os.environ.get('D2L_DCGAN_CUDA_INSTALL_TEST') != '1',
                    reason='downloads over 2 GB: set D2L_DCGAN_CUDA_INSTALL_TEST=1 to run')
def test_the_cu112_extra_provides_every_library_libmxnet_needs(tmp_path):
    import json
    import shutil
    kwargs = _setup_kwargs()
    numpy = [r for r in kwargs['install_requires'] if r.startswith('numpy')]
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    py = str(venv / 'bin' / 'python')
    subprocess.run([py, '-m', 'pip', 'install', '--quiet', '--no-cache-dir',
                    *kwargs['extras_require']['cu112'], *numpy], check=True)
    check = tmp_path / 'check.py'
    check.write_text(CHECK_INSTALL)
    gpu_py = str(ROOT / 'd2l_dcgan' / 'gpu.py')

    def run(*args):
        out = subprocess.run([py, str(check), gpu_py, *args], capture_output=True, text=True,
                             check=True, env={**os.environ, 'LD_LIBRARY_PATH': ''})
        return json.loads(out.stdout.strip().splitlines()[-1])

    bare = run('bare')
    if bare['error']:  # no CUDA 11 on the system: libmxnet.so alone fails on one of them
        assert any(s in bare['error'] for s in ALL_SONAMES + ['libcuda.so.1']), bare
    if shutil.which('ldd'):  # what the system lacks is what gpu.py preloads, or the driver
        ldd = subprocess.run(['ldd', bare['lib']], capture_output=True, text=True).stdout
        lacking = {line.split()[0] for line in ldd.splitlines() if 'not found' in line}
        assert lacking <= set(ALL_SONAMES) | {'libcuda.so.1'}, ldd
    result = run('preload')
    print(result['summary'])
    assert result['cuda'] and result['unresolved'] == [], result['unresolved']
    for (package, soname), lib in zip(gpu.CUDA11_LIBRARIES, result['libraries']):
        # each wheel provides its soname at nvidia/<package>/lib, and it loads
        assert lib['soname'] == soname and lib['error'] is None, lib
        assert lib['path'].endswith(f'nvidia/{package}/lib/{soname}'), lib
    compiler = next((c for c in ('cc', 'gcc') if subprocess.run(
        ['which', c], capture_output=True).returncode == 0), None)
    if compiler:  # a stub driver that reports no device: `import mxnet` then succeeds
        src = tmp_path / 'stub.c'
        src.write_text(''.join(f'int {s}(void) {{ return 100; }}\n'
                               for s in STUB_DRIVER_SYMBOLS))
        stub = tmp_path / 'stub' / 'libcuda.so.1'
        stub.parent.mkdir()
        subprocess.run([compiler, '-shared', '-fPIC', '-o', str(stub), str(src),
                        '-Wl,-soname,libcuda.so.1'], check=True)
        result = run('preload', str(stub))
        assert result['version'] == '1.9.1'
        assert result['features'] == {'CUDA': True, 'CUDNN': True, 'NCCL': True}
