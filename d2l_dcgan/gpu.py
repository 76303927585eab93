"""GPU support for `mxnet-cu112==1.9.1`: its CUDA 11 libraries from pip, and which GPUs run it.

Nothing here imports MXNet at module level, so `preload_cuda_libraries()` can run before
`import mxnet`: libmxnet.so links the CUDA 11 libraries but ships none of them."""
import ctypes
import os
import sys
from collections import namedtuple
from importlib import metadata

CUDA_BUILD = 'mxnet-cu112'
BUILD_LABEL = 'mxnet-cu112 1.9.1'
# Its kernels: cubins for these compute capabilities and no PTX (as in every MXNet 1.9.1 CUDA
# wheel on PyPI), so Hopper (sm_90) and Blackwell (sm_100, sm_120) cannot run it
MXNET_CU112_ARCHS = (50, 60, 70, 80, 86)
BUILT_FOR = f'sm_{MXNET_CU112_ARCHS[0]}..{MXNET_CU112_ARCHS[-1]}'
DRIVER_SONAME = 'libcuda.so.1'

# (folder of its nvidia-*-cu11 wheel under site-packages/nvidia/, soname), in dependency order
CUDA11_LIBRARIES = (
    ('cuda_runtime', 'libcudart.so.11.0'),
    ('nvtx', 'libnvToolsExt.so.1'),
    ('cuda_nvrtc', 'libnvrtc.so.11.2'),
    ('cublas', 'libcublasLt.so.11'),
    ('cublas', 'libcublas.so.11'),
    ('cufft', 'libcufft.so.10'),
    ('curand', 'libcurand.so.10'),
    ('cusolver', 'libcusolver.so.11'),
    ('cudnn', 'libcudnn.so.8'),
    ('nccl', 'libnccl.so.2'),
)

# Set before `import mxnet` for the CUDA build unless the user set them (README: GPU)
CUDA_ENV_DEFAULTS = {
    # autotuning has hung mxnet-cu112 on Ampere with cuDNN 8 (apache/mxnet#20346)
    'MXNET_CUDNN_AUTOTUNE_DEFAULT': '0',
    # pip's cuDNN 8.9 is never the exact 8.x MXNet was built with, and cuDNN 8 is compatible
    'MXNET_CUDNN_LIB_CHECKING': '0',
}

GPUInfo = namedtuple('GPUInfo', 'index name capability')
GPUInfo.__doc__ = 'A GPU as the CUDA driver sees it: index, name, capability (major, minor).'


def is_cuda_build():
    """Whether the installed MXNet is mxnet-cu112 (package metadata; MXNet is not imported)."""
    try:
        metadata.version(CUDA_BUILD.replace('-', '_'))  # as its dist-info folder spells it
        return True
    except metadata.PackageNotFoundError:
        return False


# --- preloading the CUDA 11 libraries ----------------------------------------------------------

Library = namedtuple('Library', 'soname path error')
Library.__doc__ = "A CUDA library: pip's copy that was loaded (path None: none), or dlopen's error."


class PreloadReport(namedtuple('PreloadReport', 'cuda libraries driver env')):
    """What `preload_cuda_libraries` did: Libraries, driver loaded (bool), env defaults set."""

    @property
    def missing(self):
        return [lib.soname for lib in self.libraries if not lib.path or lib.error]

    def summary(self):
        if not self.cuda:
            return f'CUDA libraries: nothing to load ({CUDA_BUILD} is not installed: a CPU build)'
        out = [f'CUDA libraries for {BUILD_LABEL}:']
        for lib in self.libraries:
            where = lib.path or 'not from pip: left to the dynamic linker'
            out.append(f'  {lib.soname:<20} {where}' + (f' ({lib.error})' if lib.error else ''))
        out.append(f'  {DRIVER_SONAME:<20} '
                   + ('the NVIDIA driver' if self.driver else 'missing: no NVIDIA driver'))
        if self.env:
            out.append('  env defaults set: ' + ', '.join(f'{k}={v}' for k, v in self.env.items()))
        return '\n'.join(out)

    def hint(self):
        """One sentence for an ImportError of mxnet: what is missing and what to do ('' if none)."""
        parts = []
        if self.cuda and not self.driver:
            parts.append(f'{BUILD_LABEL} needs the NVIDIA driver ({DRIVER_SONAME}), which this '
                         'machine lacks: on a machine without a GPU install "d2l_dcgan[cpu]" '
                         'instead')
        if self.cuda and self.missing:
            parts.append(f'CUDA 11 libraries not loaded from pip: {", ".join(self.missing)}; '
                         'pip install "d2l_dcgan[cu112]" installs them (nvidia-*-cu11)')
        return '; '.join(parts)


def preload_cuda_libraries(site_dirs=None, *, cuda=None, loader=ctypes.CDLL, env=None):
    """dlopen pip's copies of the CUDA 11 libraries (RTLD_GLOBAL, in dependency order) so that
    libmxnet.so finds them loaded, the others being left to the dynamic linker; set
    CUDA_ENV_DEFAULTS. A cheap no-op for a CPU build. Returns a PreloadReport.

    site_dirs (default sys.path), cuda (mxnet-cu112 installed), loader and env are for tests."""
    cuda = is_cuda_build() if cuda is None else cuda
    libraries, driver, env_set = [], False, {}
    if cuda:
        env = os.environ if env is None else env
        env_set = {k: v for k, v in CUDA_ENV_DEFAULTS.items() if k not in env}
        env.update(env_set)
        for package, soname in CUDA11_LIBRARIES:
            paths = (os.path.join(d or os.curdir, 'nvidia', package, 'lib', soname)
                     for d in (sys.path if site_dirs is None else site_dirs))
            path, error = next((p for p in paths if os.path.isfile(p)), None), None
            if path:
                try:
                    loader(path, mode=os.RTLD_GLOBAL)
                except OSError as e:
                    error = str(e)
            libraries.append(Library(soname, path, error))
        try:
            loader(DRIVER_SONAME, mode=os.RTLD_GLOBAL)
            driver = True
        except OSError:
            pass
    return PreloadReport(cuda, tuple(libraries), driver, env_set)


# --- which GPUs can run it -------------------------------------------------------------------

def can_run(capability):
    """Whether a GPU of this (major, minor) runs a cubin of mxnet-cu112: one of the same major
    and a minor no higher (7.5 runs sm_70, 8.9 runs sm_86)."""
    major, minor = capability
    return any(a // 10 == major and minor >= a % 10 for a in MXNET_CU112_ARCHS)


_DRIVER = []


def _driver():
    """The CUDA driver API (libcuda.so.1, after cuInit), or None without an NVIDIA driver."""
    if not _DRIVER:
        try:
            lib = ctypes.CDLL(DRIVER_SONAME)
            _DRIVER.append(lib if lib.cuInit(0) == 0 else None)
        except (OSError, AttributeError):
            _DRIVER.append(None)
    return _DRIVER[0]


def gpu_capability(index=0):
    """GPUInfo of GPU `index` from the CUDA driver API; None without a driver or such a GPU."""
    lib, dev, major, minor = _driver(), ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
    # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76
    if (not lib or lib.cuDeviceGet(ctypes.byref(dev), int(index)) != 0
            or lib.cuDeviceGetAttribute(ctypes.byref(major), 75, dev) != 0
            or lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev) != 0):
        return None
    name = ctypes.create_string_buffer(256)
    if lib.cuDeviceGetName(name, 256, dev) != 0:
        name.value = b'unknown GPU'
    return GPUInfo(int(index), name.value.decode('utf-8', 'replace'), (major.value, minor.value))


def list_gpus():
    """GPUInfo of every GPU the driver shows (after CUDA_VISIBLE_DEVICES); [] without a driver."""
    lib, n = _driver(), ctypes.c_int(0)
    if not lib or lib.cuDeviceGetCount(ctypes.byref(n)) != 0:
        return []
    return [g for g in map(gpu_capability, range(n.value)) if g]


def first_line(error):
    """The line of an MXNetError that says what failed (MXNet puts a C++ traceback first)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return next((line for line in lines if line.startswith('MXNetError:')),
                lines[0] if lines else repr(error))


def probe(ctx):
    """One forward and backward pass of a tiny G_block on ctx: None, or MXNet's error line."""
    # here, not at the top: this module loads before MXNet, and alone in examples/gpu_check.py
    import mxnet as mx
    from mxnet import autograd, np
    from .model import G_block
    try:
        with mx.name.NameManager():  # the user's blocks keep their names (g_block0_, ...)
            block = G_block(4)
        block.initialize(mx.init.Constant(0.1), ctx=ctx)  # and the random numbers theirs
        X = np.ones((1, 8, 4, 4), ctx=ctx)
        with autograd.record():
            Y = block(X)
        Y.backward()
        block.conv2d_trans.weight.grad(ctx).asnumpy()
        Y.wait_to_read()
    except mx.base.MXNetError as e:
        return first_line(e)
    return None


# --- choosing the device -----------------------------------------------------------------------

def is_device_spec(text):
    """Whether `text` is auto, cpu, cpu:N, gpu or gpu:N (any case, spaces around)."""
    kind, _, index = str(text).strip().lower().partition(':')
    return kind in ('auto', 'cpu', 'gpu') and (index.isdigit() or not index) and not (
        kind == 'auto' and index)


def select_device(device='auto', num_gpus=None, capability=gpu_capability, probe=probe,
                  cuda=None):
    """'auto', 'cpu', 'cpu:N', 'gpu' or 'gpu:N' -> (mx.Context, why it was chosen).

    A GPU is taken if MXNet sees it, its compute capability is one mxnet-cu112 has kernels for,
    and a tiny forward and backward pass runs on it; else 'auto' takes the CPU and says why,
    and 'gpu[:N]' raises an ArgumentError about `device` (one line). num_gpus, capability
    (index -> GPUInfo or None), probe (ctx -> None or an error line) and cuda (mxnet-cu112
    installed) are for tests."""
    # here, not at the top: this module loads before MXNet, and alone in examples/gpu_check.py
    import mxnet as mx
    from .errors import ArgumentError
    if not is_device_spec(device):
        raise ArgumentError('device', f'expected auto, cpu, cpu:N, gpu or gpu:N, got {device!r}')
    kind, _, index = str(device).strip().lower().partition(':')
    index = int(index or 0)
    if kind == 'cpu':
        return mx.cpu(index), 'asked for'
    cuda = is_cuda_build() if cuda is None else cuda
    if num_gpus is None:
        try:
            num_gpus = mx.context.num_gpus()
        except mx.base.MXNetError:  # e.g. a driver too old for CUDA 11
            num_gpus = 0
    if kind == 'auto' and not num_gpus:
        return mx.cpu(), 'no GPU visible to MXNet' + (
            '' if cuda else f' ({CUDA_BUILD} is not installed: a CPU build)')
    if index >= num_gpus:
        mxnet = f'MXNet ({BUILD_LABEL})' if cuda else 'MXNet'
        why = ('check nvidia-smi and CUDA_VISIBLE_DEVICES' if cuda else
               'a CPU build of MXNet sees none; install d2l_dcgan[cu112] on a CUDA machine')
        raise ArgumentError('device', f'{device}: {mxnet} sees {num_gpus} GPU(s) ({why}); use '
                                      'cpu instead')
    gpu = capability(index)
    sm = f'sm_{gpu.capability[0]}{gpu.capability[1]}' if gpu else ''
    label = f'GPU {index} ({gpu.name}, {sm})' if gpu else f'GPU {index}'
    if gpu and not can_run(gpu.capability):
        problem = f'{label} cannot run {BUILD_LABEL} (built for {BUILT_FOR})'
        advice = (f', with no PTX to compile for it; use cpu, an Ampere/Ada GPU '
                  f'(sm_80-sm_89), or an MXNet build for {sm}')
    else:
        error = probe(mx.gpu(index))
        problem = error and f'{label} failed a test forward/backward pass ({error})'
        advice = '; use cpu'
    if problem and kind == 'auto':
        return mx.cpu(), f'{problem}: using CPU'
    if problem:
        raise ArgumentError('device', f'{device}: {problem}{advice}')
    if kind == 'gpu':
        return mx.gpu(index), 'asked for'
    return mx.gpu(0), (f'{num_gpus} GPU(s) visible to MXNet; GPU 0 is {gpu.name}, {sm}' if gpu
                       else f'{num_gpus} GPU(s) visible to MXNet; GPU 0 ran a test pass '
                            '(capability unknown: the CUDA driver API did not answer)')
