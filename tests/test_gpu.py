"""d2l_dcgan.gpu on a CPU-only machine: preloading with fake library folders, the no-op on a CPU
build of MXNet, fatbin/ELF reading on synthetic files, compute-capability rules, select_device's
choices and messages with fake GPUs. The opt-in `cuda_install` test installs the real cu112 extra."""
import os
import runpy
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from d2l_dcgan import DCGANError, gpu  # first: with mxnet-cu112 it preloads the CUDA libraries
from d2l_dcgan.gpu import (MXNET_CU112_ARCHS, Build, GPUInfo, can_run, format_archs,
                           preload_cuda_libraries, select_device)
import mxnet as mx  # noqa: E402,I100

ROOT = Path(__file__).resolve().parent.parent
CU112 = Build('mxnet-cu112', '1.9.1', True)
CPU = Build('mxnet', '1.9.1', False)
ALL_SONAMES = [s for _, names in gpu.CUDA11_LIBRARIES for s in names]


def fake_site(tmp_path, skip=()):
    """tmp_path/site/nvidia/<package>/lib/<soname>, empty files, like the nvidia-*-cu11 wheels."""
    site = tmp_path / 'site'
    for package, sonames in gpu.CUDA11_LIBRARIES:
        for soname in sonames:
            if soname in skip:
                continue
            lib = site / 'nvidia' / package / 'lib'
            lib.mkdir(parents=True, exist_ok=True)
            (lib / soname).write_bytes(b'')
    return site


class Loader:
    """Records what would be dlopened; the names in `fail` (a bare soname or a path) raise
    OSError, as dlopen does."""

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


def preload(site, loader, system=None, loaded=(), **kw):
    system = dict(system or {})
    kw.setdefault('build', CU112)
    kw.setdefault('needed', None)
    if kw['needed'] is None:
        kw['needed'] = ALL_SONAMES + ['libcuda.so.1', 'libc.so.6', 'libgomp.so.1']
    kw.setdefault('mxnet_dir', str(site / 'mxnet'))
    kw.setdefault('env', {})
    return preload_cuda_libraries([str(site)], loader=loader, find_system=system.get,
                                  loaded=lambda s: s in loaded, **kw)


# --- preloading ------------------------------------------------------------------------------

def test_preload_loads_every_library_from_pip_in_dependency_order(tmp_path):
    site = fake_site(tmp_path)
    loader = Loader()
    report = preload(site, loader, system={'libcuda.so.1': '/usr/lib/libcuda.so.1'})
    expected = [str(site / 'nvidia' / pkg / 'lib' / s)
                for pkg, names in gpu.CUDA11_LIBRARIES for s in names]
    assert loader.names == expected
    assert all(mode == os.RTLD_GLOBAL for _, mode in loader.calls)
    # what depends on what comes after it
    order = [os.path.basename(n) for n in loader.names]
    assert order.index('libcublasLt.so.11') < order.index('libcublas.so.11') \
        < order.index('libcusolver.so.11') < order.index('libcudnn.so.8')
    assert order[0] == 'libcudart.so.11.0'
    assert [lib.source for lib in report.libraries] == ['pip'] * len(ALL_SONAMES)
    assert report.missing == [] and report.driver == '/usr/lib/libcuda.so.1' and report.ok
    assert report.hint() == ''
    assert 'libcudnn.so.8' in report.summary() and 'pip' in report.summary()


def test_preload_prefers_what_the_system_provides(tmp_path):
    site = fake_site(tmp_path)
    loader = Loader()
    system = {'libcudart.so.11.0': '/usr/local/cuda-11.8/lib64/libcudart.so.11.0',
              'libcudnn.so.8': '/usr/lib/x86_64-linux-gnu/libcudnn.so.8',
              'libcuda.so.1': '/usr/lib/x86_64-linux-gnu/libcuda.so.1'}
    report = preload(site, loader, system=system)
    # system libraries by bare soname (the linker's own search finds the system's copy) ...
    assert 'libcudart.so.11.0' in loader.names and 'libcudnn.so.8' in loader.names
    assert not any(n.endswith('/libcudart.so.11.0') or n.endswith('/libcudnn.so.8')
                   for n in loader.names)
    # ... still in dependency order, the rest from pip
    assert loader.names[0] == 'libcudart.so.11.0'
    assert loader.names.index('libcudnn.so.8') > loader.names.index(
        str(site / 'nvidia' / 'cusolver' / 'lib' / 'libcusolver.so.11'))
    src = {lib.soname: (lib.source, lib.path) for lib in report.libraries}
    assert src['libcudart.so.11.0'] == ('system', system['libcudart.so.11.0'])
    assert src['libcudnn.so.8'] == ('system', system['libcudnn.so.8'])
    assert src['libcublas.so.11'][0] == 'pip'


def test_cublas_and_cublaslt_come_from_one_place(tmp_path):
    """A system libcublas.so.11 without its libcublasLt.so.11: both from pip, not a mix."""
    site = fake_site(tmp_path)
    loader = Loader()
    report = preload(site, loader, system={'libcublas.so.11': '/opt/cuda/libcublas.so.11'})
    src = {lib.soname: lib.source for lib in report.libraries}
    assert src['libcublas.so.11'] == src['libcublasLt.so.11'] == 'pip'
    assert 'libcublas.so.11' not in loader.names


def test_a_system_library_that_fails_to_load_falls_back_to_pip(tmp_path):
    site = fake_site(tmp_path)
    loader = Loader(fail={'libnccl.so.2'})  # the bare soname fails, the pip path loads
    report = preload(site, loader, system={'libnccl.so.2': '/usr/lib/libnccl.so.2'})
    nccl = [lib for lib in report.libraries if lib.soname == 'libnccl.so.2'][0]
    assert nccl.source == 'pip' and nccl.path == str(site / 'nvidia/nccl/lib/libnccl.so.2')


def test_missing_libraries_and_driver_are_reported(tmp_path):
    site = fake_site(tmp_path, skip={'libcudnn.so.8'})
    loader = Loader()
    report = preload(site, loader)
    assert report.missing == ['libcudnn.so.8'] and report.driver is None and not report.ok
    hint = report.hint()
    assert 'libcudnn.so.8' in hint and 'd2l_dcgan[cu112]' in hint and 'libcuda.so.1' in hint
    assert '\n' not in hint
    assert 'libcudnn.so.8' not in [os.path.basename(n) for n in loader.names]


def test_a_pip_library_that_fails_to_load_is_missing_with_the_error(tmp_path):
    site = fake_site(tmp_path)
    loader = Loader(fail={str(site / 'nvidia/cufft/lib/libcufft.so.10')})
    report = preload(site, loader)
    cufft = [lib for lib in report.libraries if lib.soname == 'libcufft.so.10'][0]
    assert cufft.source == 'missing' and 'cannot open' in cufft.error
    assert report.missing == ['libcufft.so.10']


def test_only_what_libmxnet_needs_and_what_is_loaded_already_stays(tmp_path):
    site = fake_site(tmp_path)
    (site / 'mxnet').mkdir()
    (site / 'mxnet' / 'libnccl.so.2').write_bytes(b'')  # bundled next to libmxnet.so
    loader = Loader()
    report = preload(site, loader, loaded={'libcudart.so.11.0'},
                     needed=['libcudart.so.11.0', 'libcublas.so.11', 'libnccl.so.2',
                             'libcuda.so.1', 'libc.so.6'])
    assert [os.path.basename(n) for n in loader.names] == ['libcublasLt.so.11',
                                                          'libcublas.so.11']
    src = {lib.soname: lib.source for lib in report.libraries}
    assert src == {'libcudart.so.11.0': 'loaded', 'libcublasLt.so.11': 'pip',
                   'libcublas.so.11': 'pip', 'libnccl.so.2': 'bundled'}


def test_an_unknown_cuda_soname_is_searched_in_every_nvidia_folder(tmp_path):
    site = fake_site(tmp_path)
    (site / 'nvidia' / 'cusparse' / 'lib').mkdir(parents=True)
    (site / 'nvidia' / 'cusparse' / 'lib' / 'libcusparse.so.11').write_bytes(b'')
    loader = Loader()
    report = preload(site, loader, needed=['libcusparse.so.11', 'libz.so.1'])
    assert loader.names == [str(site / 'nvidia/cusparse/lib/libcusparse.so.11')]
    assert [lib.soname for lib in report.libraries] == ['libcusparse.so.11']


def test_env_defaults_are_set_only_where_unset(tmp_path):
    env = {'MXNET_CUDNN_AUTOTUNE_DEFAULT': '2'}
    report = preload(fake_site(tmp_path), Loader(), env=env)
    assert env == {'MXNET_CUDNN_AUTOTUNE_DEFAULT': '2', 'MXNET_CUDNN_LIB_CHECKING': '0'}
    assert report.env == {'MXNET_CUDNN_LIB_CHECKING': '0'}
    assert set(gpu.CUDA_ENV_DEFAULTS) == {'MXNET_CUDNN_AUTOTUNE_DEFAULT',
                                          'MXNET_CUDNN_LIB_CHECKING'}


def boom(*args, **kwargs):
    raise AssertionError('nothing may be loaded for a CPU build')


@pytest.mark.parametrize('build', [CPU, None], ids=['cpu build', 'detected'])
def test_preload_is_a_no_op_for_a_cpu_build(tmp_path, build):
    """This machine's venv has `mxnet` (CPU): detected from package metadata, nothing loaded,
    no environment variable set."""
    env = {}
    report = preload_cuda_libraries([str(fake_site(tmp_path))], build=build, loader=boom,
                                    find_system=boom, loaded=boom, env=env)
    assert report.noop and report.ok and report.libraries == [] and env == {}
    assert 'CPU build' in report.summary() and report.hint() == ''


def test_the_installed_build_is_read_from_metadata():
    build = gpu.mxnet_build()
    assert build == Build('mxnet', '1.9.1', False)
    needed = gpu.elf_needed(gpu.mxnet_library_path())
    assert 'libopenblas.so.0' in needed and not any('cuda' in n for n in needed)
    assert gpu.built_archs() == ()


def test_no_mxnet_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, 'mxnet_build', lambda: None)
    report = preload_cuda_libraries([str(tmp_path)], loader=boom, env={})
    assert report.noop and 'not installed' in report.summary()


# --- reading libmxnet.so ---------------------------------------------------------------------

def fatbin(entries):
    """One fatbin container: entries are (kind, arch), kind 1 = PTX, 2 = cubin."""
    body = b''
    for kind, arch in entries:
        payload = b'\0' * 24
        header = struct.pack('<HHIQIIHHI', kind, 0x0101, 64, len(payload), 0, 0, 0, 0, arch)
        body += header.ljust(64, b'\0') + payload
    return struct.pack('<IHHQ', 0xBA55ED50, 1, 16, len(body)) + body


def write_elf(path, sections):
    """A minimal 64-bit little-endian ELF with the given (name, type, data) sections."""
    names = b'\0' + b''.join(n.encode() + b'\0' for n, _, _ in sections) + b'.shstrtab\0'
    blob, offsets = bytearray(b'\0' * 64), []
    for _, _, data in sections:
        while len(blob) % 8:
            blob += b'\0'
        offsets.append(len(blob))
        blob += data
    names_off = len(blob)
    blob += names
    while len(blob) % 8:
        blob += b'\0'
    shoff = len(blob)
    table = [b'\0' * 64]
    name_pos = 1
    for (name, sh_type, data), off in zip(sections, offsets):
        link = len(sections) if sh_type == 6 else 0  # .dynamic links to .dynstr, placed last
        table.append(struct.pack('<IIQQQQIIQQ', name_pos, sh_type, 0, 0, off, len(data), link,
                                 0, 8, 0))
        name_pos += len(name) + 1
    table.append(struct.pack('<IIQQQQIIQQ', name_pos, 3, 0, 0, names_off, len(names), 0, 0, 1,
                             0))
    blob += b''.join(table)
    head = b'\x7fELF' + bytes([2, 1, 1]) + b'\0' * 9
    head += struct.pack('<HHIQQQIHHHHHH', 3, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64,
                        len(table), len(table) - 1)
    blob[:64] = head
    Path(path).write_bytes(bytes(blob))
    return str(path)


def test_fatbin_architectures_are_read_from_the_library(tmp_path):
    cubins = [(2, a) for a in MXNET_CU112_ARCHS]
    data = fatbin(cubins) + b'\0' * 8 + fatbin(cubins)  # two containers, padding between
    lib = write_elf(tmp_path / 'libmxnet.so', [('.text', 1, b'\x90' * 40),
                                               ('.nv_fatbin', 1, data)])
    assert gpu.read_fatbin_archs(lib) == gpu.FatbinArchs(MXNET_CU112_ARCHS, ())
    assert gpu.built_archs(lib) == MXNET_CU112_ARCHS
    with_ptx = write_elf(tmp_path / 'ptx.so', [('.nv_fatbin', 1, fatbin([(2, 80), (1, 90)]))])
    assert gpu.read_fatbin_archs(with_ptx) == gpu.FatbinArchs((80,), (90,))
    assert gpu.built_ptx(with_ptx) == (90,)


def test_built_archs_falls_back_to_the_known_list(tmp_path):
    no_fatbin = write_elf(tmp_path / 'cpu.so', [('.text', 1, b'\x90' * 8)])
    assert gpu.read_fatbin_archs(no_fatbin) is None
    assert gpu.built_archs(no_fatbin, build=CU112) == MXNET_CU112_ARCHS
    assert gpu.built_archs(str(tmp_path / 'other.so'), build=CPU) == ()
    (tmp_path / 'junk.so').write_bytes(b'not an ELF file')
    assert gpu.read_fatbin_archs(str(tmp_path / 'junk.so')) is None
    assert gpu.elf_needed(str(tmp_path / 'junk.so')) is None


def test_elf_needed_reads_the_dynamic_section(tmp_path):
    strtab = b'\0libcudart.so.11.0\0libcudnn.so.8\0libmxnet.so\0'
    dyn = struct.pack('<qQqQqQqQ', 1, 1, 1, 19, 14, 33, 0, 0)  # NEEDED, NEEDED, SONAME, NULL
    lib = write_elf(tmp_path / 'libmxnet.so', [('.dynamic', 6, dyn), ('.dynstr', 3, strtab)])
    assert gpu.elf_needed(lib) == ['libcudart.so.11.0', 'libcudnn.so.8']


def test_the_known_architectures_of_mxnet_cu112():
    assert MXNET_CU112_ARCHS == (50, 60, 70, 80, 86)
    assert format_archs(MXNET_CU112_ARCHS) == 'sm_50..86'


# --- compute capability ----------------------------------------------------------------------

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
    assert can_run(capability, MXNET_CU112_ARCHS) is ok
    assert can_run(capability[0] * 10 + capability[1]) is ok
    assert can_run(f'{capability[0]}.{capability[1]}') is ok


def test_ptx_runs_on_every_later_gpu():
    assert can_run((9, 0), (80,), ptx=(80,)) and can_run((12, 0), (), ptx=(86,))
    assert not can_run((7, 5), (), ptx=(80,))


class FakeLibcuda:
    """The CUDA driver API calls gpu._Driver makes, answered from a list of (name, (maj, min))."""

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
    driver = gpu._Driver(FakeLibcuda([('NVIDIA A100-SXM4-40GB', (8, 0)),
                                      ('NVIDIA H100 80GB HBM3', (9, 0))]))
    monkeypatch.setattr(gpu, '_DRIVER', [driver])
    assert gpu.gpu_capability(1) == GPUInfo(1, 'NVIDIA H100 80GB HBM3', (9, 0))
    assert gpu.gpu_capability(2) is None
    assert [g.capability for g in gpu.list_gpus()] == [(8, 0), (9, 0)]
    with pytest.raises(OSError):
        gpu._Driver(FakeLibcuda([], init=100))  # CUDA_ERROR_NO_DEVICE


def test_no_driver_here():
    assert gpu.gpu_capability(0) is None and gpu.list_gpus() == []


# --- select_device ---------------------------------------------------------------------------

A100 = GPUInfo(0, 'NVIDIA A100-SXM4-80GB', (8, 0))
H100 = GPUInfo(0, 'NVIDIA H100 80GB HBM3', (9, 0))


def gpus(*infos):
    table = {i: g._replace(index=i) for i, g in enumerate(infos)}
    return dict(num_gpus=len(infos), capability=table.get, archs=MXNET_CU112_ARCHS, ptx=(),
                build=CU112)


@pytest.mark.parametrize('info', [A100, GPUInfo(0, 'NVIDIA GeForce RTX 3090', (8, 6)),
                                  GPUInfo(0, 'NVIDIA L4', (8, 9)),
                                  GPUInfo(0, 'Tesla T4', (7, 5))],
                         ids=['sm_80', 'sm_86', 'sm_89', 'sm_75'])
def test_auto_takes_a_supported_gpu(info):
    ctx, why = select_device('auto', **gpus(info))
    assert ctx == mx.gpu(0)
    cc = info.capability[0] * 10 + info.capability[1]
    assert why == f'1 GPU(s) visible to MXNet; GPU 0 is {info.name}, sm_{cc}'


@pytest.mark.parametrize('info', [H100, GPUInfo(0, 'NVIDIA B200', (10, 0)),
                                  GPUInfo(0, 'Tesla K80', (3, 7))], ids=['sm_90', 'sm_100',
                                                                          'sm_37'])
def test_auto_falls_back_to_the_cpu_on_an_unsupported_gpu(info):
    ctx, why = select_device('auto', **gpus(info))
    cc = info.capability[0] * 10 + info.capability[1]
    assert ctx == mx.cpu()
    assert why == (f'GPU 0 ({info.name}, sm_{cc}) cannot run mxnet-cu112 1.9.1 '
                   '(built for sm_50..86): using CPU')


def test_auto_without_a_gpu():
    assert select_device('auto', **gpus()) == (mx.cpu(), 'no GPU visible to MXNet')
    # this machine: CPU build of MXNet, everything detected
    ctx, why = select_device('auto')
    assert ctx == mx.cpu() and why == 'no GPU visible to MXNet (mxnet 1.9.1 is a CPU build)'


def test_auto_trusts_mxnet_when_the_capability_is_unknown():
    ctx, why = select_device('auto', num_gpus=2, capability=lambda i: None,
                             archs=MXNET_CU112_ARCHS, ptx=(), build=CU112)
    assert ctx == mx.gpu(0) and 'not checked' in why and '2 GPU(s)' in why


def test_gpu_on_an_unsupported_gpu_says_what_to_do():
    with pytest.raises(DCGANError) as e:
        select_device('gpu', **gpus(H100))
    msg = str(e.value)
    assert '\n' not in msg
    assert msg == ('--device gpu: GPU 0 (NVIDIA H100 80GB HBM3, sm_90) cannot run mxnet-cu112 '
                   '1.9.1 (built for sm_50..86), with no PTX to compile for it; use --device '
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
    assert str(e.value) == ('--device gpu:2: MXNet (mxnet-cu112 1.9.1) sees 2 GPU(s) (check '
                            'nvidia-smi and CUDA_VISIBLE_DEVICES), use --device cpu instead')


def test_gpu_with_a_cpu_build():
    with pytest.raises(DCGANError, match=r'MXNet sees 0 GPU\(s\).*--device cpu'):
        select_device('gpu')  # this machine
    with pytest.raises(DCGANError, match='MXNet sees 0'):
        select_device('gpu:1', num_gpus=0, build=CPU)


def test_cpu_and_bad_specs():
    assert select_device('cpu', **gpus(A100)) == (mx.cpu(0), 'asked for')
    assert select_device(' CPU:1 ') == (mx.cpu(1), 'asked for')
    for bad in ('foo', 'gpu:x', 'auto:1', 'cuda:0', ''):
        with pytest.raises(DCGANError, match='--device must be auto, cpu, cpu:N, gpu or gpu:N'):
            select_device(bad)


# --- the real install (opt-in) ---------------------------------------------------------------

CHECK_INSTALL = textwrap.dedent('''
    import ctypes, importlib.util, json, os, sys
    spec = importlib.util.spec_from_file_location('gpu', sys.argv[1])
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)  # gpu.py alone: the venv has no d2l_dcgan dependencies
    lib = gpu.mxnet_library_path()
    if sys.argv[2] == 'bare':  # without preloading, libmxnet.so cannot be loaded
        try:
            ctypes.CDLL(lib)
            print(json.dumps({'error': None}))
        except OSError as e:
            print(json.dumps({'error': str(e)}))
        sys.exit()
    report = gpu.preload_cuda_libraries()
    needed = gpu.elf_needed(lib)
    unresolved = []
    for soname in needed:
        if soname == 'libcuda.so.1' or os.path.isfile(os.path.join(os.path.dirname(lib), soname)):
            continue  # the driver; or next to libmxnet.so (its RPATH is $ORIGIN)
        try:
            ctypes.CDLL(soname)  # a preloaded library answers to its soname
        except OSError as e:
            unresolved.append(f'{soname}: {e}')
    out = {'build': report.build, 'needed': needed, 'unresolved': unresolved,
           'libraries': [lib._asdict() for lib in report.libraries], 'archs': gpu.built_archs(),
           'summary': report.summary()}
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
    result = run('preload')
    print(result['summary'])
    assert result['build'][:2] == ['mxnet-cu112', '1.9.1']
    assert result['unresolved'] == [], result['unresolved']
    sources = {lib['soname']: lib for lib in result['libraries']}
    for package, sonames in gpu.CUDA11_LIBRARIES:
        for soname in sonames:  # each wheel provides its soname at nvidia/<package>/lib
            if sources[soname]['source'] == 'pip':
                assert sources[soname]['path'].endswith(f'nvidia/{package}/lib/{soname}')
            else:
                assert sources[soname]['source'] == 'system'
    assert set(ALL_SONAMES) - {'libcublasLt.so.11'} <= set(result['needed'])
    assert tuple(result['archs']) == MXNET_CU112_ARCHS
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
