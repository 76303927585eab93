"""GPU support for `mxnet-cu112==1.9.1`: CUDA 11 libraries from pip, and which GPUs can run it.

Nothing here imports MXNet at module level, so `preload_cuda_libraries()` can run before
`import mxnet` (it must: libmxnet.so is linked against the CUDA 11 libraries, and the dynamic
linker resolves them when mxnet's ctypes loads it).

mxnet-cu112 1.9.1 bundles none of the CUDA 11 libraries it links (`readelf -d libmxnet.so`):
libcudart.so.11.0, libcublas.so.11 (and its libcublasLt.so.11), libcudnn.so.8, libcufft.so.10,
libcurand.so.10, libcusolver.so.11, libnvrtc.so.11.2, libnccl.so.2, libnvToolsExt.so.1, plus the
driver's libcuda.so.1. The `cu112` extra of setup.py installs them from PyPI's `nvidia-*-cu11`
wheels into site-packages/nvidia/<package>/lib/, where the dynamic linker does not look;
`preload_cuda_libraries` dlopens them there with RTLD_GLOBAL, in dependency order, so that
libmxnet.so finds them already loaded (glibc matches a DT_NEEDED entry against the sonames of the
loaded libraries). A library the system already provides (LD_LIBRARY_PATH, the ld.so cache, the
default folders: e.g. an installed CUDA 11 toolkit) is taken from the system instead.

Its GPU kernels are cubins for sm_50, 60, 70, 80 and 86 with no PTX, so a GPU runs it only if
one cubin matches (same major, minor at least the cubin's): Maxwell to Ampere and Ada (8.9 runs
sm_86 code); not Kepler (3.x), and not Hopper (9.0) or Blackwell (10.x, 12.x), which fail with
"no kernel image is available for execution on the device".
"""
import ctypes
import os
import re
import shutil
import struct
import subprocess
import sys
from collections import namedtuple

# The cubin architectures of mxnet-cu112 1.9.1's libmxnet.so (read off its .nv_fatbin section:
# 198 fatbins, each with ELF images for exactly these, and no PTX). `built_archs()` reads the
# installed library and falls back to this list.
MXNET_CU112_ARCHS = (50, 60, 70, 80, 86)

DRIVER_SONAME = 'libcuda.so.1'

# The CUDA 11 libraries of mxnet-cu112 1.9.1, in load (dependency) order, grouped by the
# nvidia-*-cu11 wheel that ships them (folder under site-packages/nvidia/). A group is taken
# whole from one place: cuBLAS and cuBLASLt must be the same release.
#   libcusolver.so.11 needs libcublas/libcublasLt; libcudnn.so.8 dlopens its sub-libraries
#   (libcudnn_{ops,cnn,adv}_{infer,train}.so.8) itself, from its own folder (RUNPATH $ORIGIN),
#   and they need cuBLAS, already loaded by then; libnvrtc.so.11.2 finds its
#   libnvrtc-builtins.so.11.8 the same way.
CUDA11_LIBRARIES = (
    ('cuda_runtime', ('libcudart.so.11.0',)),
    ('nvtx', ('libnvToolsExt.so.1',)),
    ('cuda_nvrtc', ('libnvrtc.so.11.2',)),
    ('cublas', ('libcublasLt.so.11', 'libcublas.so.11')),
    ('cufft', ('libcufft.so.10',)),
    ('curand', ('libcurand.so.10',)),
    ('cusolver', ('libcusolver.so.11',)),
    ('cudnn', ('libcudnn.so.8',)),
    ('nccl', ('libnccl.so.2',)),
)

# Distributions of MXNet that are CUDA builds (one per CUDA version; all install `mxnet`).
_CUDA_DIST = re.compile(r'^mxnet[-_]cu\d+$', re.I)
_MXNET_DISTS = ('mxnet-cu112', 'mxnet-cu110', 'mxnet-cu102', 'mxnet-cu101', 'mxnet-cu100',
                'mxnet')

# Environment defaults for a CUDA build, set (os.environ.setdefault: a user's own value wins)
# before `import mxnet`, which reads them.
CUDA_ENV_DEFAULTS = {
    # cuDNN autotuning (MXNet's default 1 runs cudnnFind for every conv layer and every new input
    # shape) is reported to hang or run for very long with mxnet-cu112 on Ampere and cuDNN 8.x
    # (apache/mxnet#20346: stuck right after "Running performance tests to find the best
    # convolution algorithm"; #15529, #20213), and it runs again for each new shape (the last,
    # smaller batch of an epoch; `generate --num`). The DCGAN's ten small convolutions gain
    # little from it, so 0 uses cuDNN's heuristics. `export MXNET_CUDNN_AUTOTUNE_DEFAULT=1`
    # to tune anyway.
    'MXNET_CUDNN_AUTOTUNE_DEFAULT': '0',
    # MXNet 1.9.1 warns "cuDNN lib mismatch: linked-against version 8906 != compiled-against
    # version 81xx" at start-up whenever the runtime cuDNN is not the exact 8.x it was built with,
    # i.e. always with the cuDNN 8.9 of the cu112 extra. cuDNN 8 is backward compatible within
    # major version 8, so the warning only alarms users.
    'MXNET_CUDNN_LIB_CHECKING': '0',
}

Build = namedtuple('Build', 'name version cuda')
Build.__doc__ = 'The installed MXNet distribution: name (e.g. mxnet-cu112), version, cuda (bool).'

GPUInfo = namedtuple('GPUInfo', 'index name capability')
GPUInfo.__doc__ = 'A GPU as the CUDA driver sees it: index, name, capability (major, minor).'


# --- which MXNet is installed ------------------------------------------------------------------

def mxnet_build():
    """The installed MXNet distribution as a Build, or None; reads package metadata only.

    When both `mxnet` and a CUDA build are installed (they overwrite each other's files), the CUDA
    build is reported only if the installed libmxnet.so links libcudart."""
    from importlib import metadata
    found = []
    for name in _MXNET_DISTS:
        for spelling in dict.fromkeys((name, name.replace('-', '_'))):  # Python 3.8 needs '_'
            try:
                version = metadata.version(spelling)
            except metadata.PackageNotFoundError:
                continue
            found.append(Build(name, version, bool(_CUDA_DIST.match(name))))
            break
    if not found:
        return None
    cuda = [b for b in found if b.cuda]
    if cuda and len(found) > 1:
        needed = elf_needed(mxnet_library_path() or '')
        if needed is not None and not any(n.startswith('libcudart.') for n in needed):
            return [b for b in found if not b.cuda][0]
    return cuda[0] if cuda else found[0]


def build_label(build):
    return f'{build.name} {build.version}' if build else 'this MXNet build'


def mxnet_library_path():
    """Path of the installed libmxnet.so, found without importing mxnet; None if absent."""
    import importlib.util
    try:
        spec = importlib.util.find_spec('mxnet')
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, 'libmxnet.so')
        if os.path.isfile(path):
            return path
    return None


# --- ELF reading (bounded: headers, the dynamic section, fatbin headers) -----------------------

def _elf_sections(f):
    """{name: (type, offset, size, link)} of a 64-bit little-endian ELF file, or None."""
    head = f.read(64)
    if len(head) < 64 or head[:4] != b'\x7fELF' or head[4] != 2 or head[5] != 1:
        return None
    shoff, = struct.unpack_from('<Q', head, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', head, 0x3A)
    if not shoff or shentsize < 64 or not 0 < shnum < 1 << 16 or shstrndx >= shnum:
        return None
    f.seek(shoff)
    table = f.read(shentsize * shnum)
    if len(table) < shentsize * shnum:
        return None
    raw = [struct.unpack_from('<IIQQQQII', table, i * shentsize) for i in range(shnum)]
    f.seek(raw[shstrndx][4])
    names = f.read(min(raw[shstrndx][5], 1 << 20))
    sections = {}
    for name_off, sh_type, _flags, _addr, offset, size, link, _info in raw:
        end = names.find(b'\0', name_off)
        sections[names[name_off:end].decode('ascii', 'replace')] = (sh_type, offset, size, link, raw)
    return sections


def elf_needed(path):
    """The DT_NEEDED sonames of a shared library (like `readelf -d`), or None if unreadable."""
    try:
        with open(path, 'rb') as f:
            sections = _elf_sections(f)
            if not sections:
                return None
            dyn = [s for s in sections.values() if s[0] == 6]  # SHT_DYNAMIC
            if not dyn:
                return []
            _, offset, size, link, raw = dyn[0]
            f.seek(offset)
            data = f.read(min(size, 1 << 20))
            str_off = raw[link][4]
            needed = []
            for i in range(0, len(data) - 15, 16):
                tag, val = struct.unpack_from('<qQ', data, i)
                if tag == 0:  # DT_NULL
                    break
                if tag == 1:  # DT_NEEDED
                    f.seek(str_off + val)
                    needed.append(f.read(256).split(b'\0', 1)[0].decode('ascii', 'replace'))
            return needed
    except (OSError, struct.error, IndexError):
        return None


FatbinArchs = namedtuple('FatbinArchs', 'sm ptx')

_FATBIN_MAGIC = 0xBA55ED50


def read_fatbin_archs(path, max_reads=200000):
    """The architectures of the GPU code embedded in `path` as FatbinArchs(sm, ptx), or None.

    Walks the .nv_fatbin section's fatbin containers and reads only each entry's header
    (kind 1 = PTX, 2 = cubin; the architecture as major*10+minor): about 1,200 small reads for
    mxnet-cu112's 891 MB libmxnet.so, a few milliseconds. None if the file has no such section
    (a CPU build) or the layout is not recognised."""
    sm, ptx = set(), set()
    try:
        with open(path, 'rb') as f:
            sections = _elf_sections(f)
            if not sections or '.nv_fatbin' not in sections:
                return None
            _, pos, size, _, _ = sections['.nv_fatbin']
            end = pos + size
            reads = 0
            while pos + 16 <= end and reads < max_reads:
                f.seek(pos)
                magic, _version, header_size, fat_size = struct.unpack('<IHHQ', f.read(16))
                reads += 1
                if magic != _FATBIN_MAGIC:
                    pos += 8  # containers are 8-byte aligned, with padding between them
                    continue
                entry, stop = pos + header_size, pos + header_size + fat_size
                while entry + 32 <= stop and reads < max_reads:
                    f.seek(entry)
                    head = f.read(32)
                    reads += 1
                    kind, _, entry_header, entry_size = struct.unpack_from('<HHIQ', head, 0)
                    arch, = struct.unpack_from('<I', head, 28)
                    if entry_header == 0:
                        break
                    if kind == 1:
                        ptx.add(arch)
                    elif kind == 2:
                        sm.add(arch)
                    entry += entry_header + entry_size
                pos = stop
    except (OSError, struct.error):
        return None
    if not sm and not ptx:
        return None
    return FatbinArchs(tuple(sorted(sm)), tuple(sorted(ptx)))


def _cuobjdump_archs(path):
    """sm_XX of `cuobjdump --list-elf` (a CUDA toolkit tool), if it is installed; else None."""
    tool = shutil.which('cuobjdump')
    if not tool:
        return None
    try:
        out = subprocess.run([tool, '--list-elf', path], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    archs = sorted({int(m) for m in re.findall(r'\bsm_(\d+)', out)})
    return tuple(archs) or None


_ARCHS_CACHE = {}
_FATBIN_CACHE = {}


def _fatbin(path):
    if path not in _FATBIN_CACHE:
        _FATBIN_CACHE[path] = read_fatbin_archs(path)
    return _FATBIN_CACHE[path]


def built_archs(path=None, build=None):
    """The compute capabilities (e.g. 86 for sm_86) that the installed MXNet has cubins for.

    Read from libmxnet.so's fatbin headers (`read_fatbin_archs`), else with `cuobjdump` if the
    CUDA toolkit is installed; for mxnet-cu112 1.9.1 whose library cannot be read, the known
    MXNET_CU112_ARCHS. () for a CPU build."""
    path = path or mxnet_library_path()
    if path in _ARCHS_CACHE:
        return _ARCHS_CACHE[path]
    archs = None
    if path:
        fat = _fatbin(path)
        archs = fat.sm if fat else _cuobjdump_archs(path)
    if archs is None:
        build = build if build is not None else mxnet_build()
        if build and build.name == 'mxnet-cu112' and build.version == '1.9.1':
            archs = MXNET_CU112_ARCHS
        else:
            archs = ()
    if path:
        _ARCHS_CACHE[path] = archs
    return archs


def built_ptx(path=None):
    """The PTX architectures embedded in libmxnet.so (none for mxnet-cu112 1.9.1)."""
    path = path or mxnet_library_path()
    fat = _fatbin(path) if path else None
    return fat.ptx if fat else ()


# --- compute capability ------------------------------------------------------------------------

def _cc(capability):
    """(8, 6), 86 or '8.6' -> 86."""
    if isinstance(capability, (tuple, list)):
        return int(capability[0]) * 10 + int(capability[1])
    if isinstance(capability, str):
        major, _, minor = capability.partition('.')
        return int(major) * 10 + int(minor or 0)
    return int(capability)


def sm_name(capability):
    return f'sm_{_cc(capability)}'


def can_run(capability, archs=MXNET_CU112_ARCHS, ptx=()):
    """Whether a GPU of this compute capability can run code built for `archs` (and `ptx`).

    CUDA's binary compatibility: a cubin for sm_XY runs on a GPU of capability X.Z iff Z >= Y
    (same major); PTX for compute_XY is JIT-compiled for any capability >= X.Y. So with
    mxnet-cu112's cubins (sm_50, 60, 70, 80, 86; no PTX): 7.5 runs the sm_70 code, 8.9 the sm_86
    code; 3.5, 9.0, 10.0, 12.0 run nothing."""
    cc = _cc(capability)
    major, minor = divmod(cc, 10)
    return (any(a // 10 == major and minor >= a % 10 for a in archs)
            or any(cc >= p for p in ptx))


def format_archs(archs):
    """(50, 60, 70, 80, 86) -> 'sm_50..86'."""
    archs = sorted(archs)
    if not archs:
        return 'no GPU architecture'
    if len(archs) == 1:
        return f'sm_{archs[0]}'
    return f'sm_{archs[0]}..{archs[-1]}'


class _Driver:
    """The CUDA driver API (libcuda.so.1), enough to name GPUs and read their capability."""

    def __init__(self, lib):
        self.lib = lib
        if lib.cuInit(0) != 0:
            raise OSError('cuInit failed')

    def count(self):
        n = ctypes.c_int(0)
        return n.value if self.lib.cuDeviceGetCount(ctypes.byref(n)) == 0 else 0

    def info(self, index):
        dev = ctypes.c_int(0)
        if self.lib.cuDeviceGet(ctypes.byref(dev), int(index)) != 0:
            return None
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76
        if (self.lib.cuDeviceGetAttribute(ctypes.byref(major), 75, dev) != 0
                or self.lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev) != 0):
            return None
        name = ctypes.create_string_buffer(256)
        if self.lib.cuDeviceGetName(name, 256, dev) != 0:
            name.value = b'unknown GPU'
        return GPUInfo(int(index), name.value.decode('utf-8', 'replace'),
                       (major.value, minor.value))


_DRIVER = []


def _driver():
    if not _DRIVER:
        try:
            _DRIVER.append(_Driver(ctypes.CDLL(DRIVER_SONAME)))
        except (OSError, AttributeError):
            _DRIVER.append(None)
    return _DRIVER[0]


def gpu_capability(index=0):
    """GPUInfo(index, name, (major, minor)) of GPU `index` from the CUDA driver API; None where
    there is no NVIDIA driver, no such GPU, or the driver fails."""
    driver = _driver()
    return driver.info(index) if driver else None


def list_gpus():
    """GPUInfo of every GPU the driver shows (after CUDA_VISIBLE_DEVICES); [] without a driver."""
    driver = _driver()
    if not driver:
        return []
    return [g for g in (driver.info(i) for i in range(driver.count())) if g]


# --- choosing the device -----------------------------------------------------------------------

def _mx_num_gpus():
    import mxnet as mx
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:  # e.g. a driver too old for CUDA 11
        return 0


def _unsupported(gpu, build, archs):
    cc = _cc(gpu.capability)
    return (f'GPU {gpu.index} ({gpu.name}, sm_{cc}) cannot run {build_label(build)} '
            f'(built for {format_archs(archs)})')


def _advice(cc, archs):
    if any(a // 10 == 8 for a in archs):
        other = 'an Ampere/Ada GPU (sm_80-sm_89)'
    else:
        other = f'a GPU this build supports ({format_archs(archs)})'
    return f'use --device cpu, {other}, or an MXNet build for sm_{cc}'


def select_device(spec='auto', num_gpus=None, capability=None, archs=None, build=None,
                  ptx=None):
    """'auto', 'cpu', 'cpu:N', 'gpu' or 'gpu:N' -> (mx.Context, why it was chosen).

    'auto' takes gpu(0) when MXNet is a CUDA build, sees a GPU, and GPU 0's compute capability is
    one its kernels are built for; else the CPU, with the reason. 'gpu[:N]' raises DCGANError
    (one line) when MXNet sees no such GPU or the GPU cannot run this build. The pieces are
    injectable for tests: num_gpus (int; default MXNet's count), capability (index -> GPUInfo or
    None; default the CUDA driver API), archs and ptx (default read off libmxnet.so), build
    (default from package metadata)."""
    import mxnet as mx
    from .errors import DCGANError
    kind, _, index = str(spec).strip().lower().partition(':')
    if kind not in ('auto', 'cpu', 'gpu') or (index and not index.isdigit()) or (
            kind == 'auto' and index):
        raise DCGANError(f'--device must be auto, cpu, cpu:N, gpu or gpu:N, got {spec!r}')
    index = int(index or 0)
    if kind == 'cpu':
        return mx.cpu(index), 'asked for'
    build = build if build is not None else mxnet_build()
    if num_gpus is None:
        num_gpus = _mx_num_gpus() if build is None or build.cuda else 0
    capability = capability or gpu_capability
    if archs is None:
        archs = built_archs(build=build)
    if ptx is None:
        ptx = built_ptx() if archs else ()
    if kind == 'auto':
        if not num_gpus:
            if build is not None and not build.cuda:
                return mx.cpu(), f'no GPU visible to MXNet ({build_label(build)} is a CPU build)'
            return mx.cpu(), 'no GPU visible to MXNet'
        gpu = capability(0)
        if gpu is None or not (archs or ptx):
            unknown = ('the CUDA driver API did not answer' if gpu is None
                       else 'cannot read which architectures libmxnet.so is built for')
            return mx.gpu(0), f'{num_gpus} GPU(s) visible to MXNet (not checked: {unknown})'
        if not can_run(gpu.capability, archs, ptx):
            return mx.cpu(), f'{_unsupported(gpu, build, archs)}: using CPU'
        return mx.gpu(0), (f'{num_gpus} GPU(s) visible to MXNet; GPU 0 is {gpu.name}, '
                           f'{sm_name(gpu.capability)}')
    if index >= num_gpus:
        if build is not None and build.cuda:
            raise DCGANError(
                f'--device {spec}: MXNet ({build_label(build)}) sees {num_gpus} GPU(s) '
                f'(check nvidia-smi and CUDA_VISIBLE_DEVICES), use --device cpu instead')
        raise DCGANError(
            f'--device {spec}: MXNet sees {num_gpus} GPU(s) (a CPU build of MXNet sees none; '
            f'install d2l_dcgan[cu112] on a CUDA machine), use --device cpu instead')
    gpu = capability(index)
    if gpu is not None and (archs or ptx) and not can_run(gpu.capability, archs, ptx):
        raise DCGANError(f'--device {spec}: {_unsupported(gpu, build, archs)}, with no PTX to '
                         f'compile for it; {_advice(_cc(gpu.capability), archs)}')
    return mx.gpu(index), 'asked for'


# --- preloading the CUDA 11 libraries ----------------------------------------------------------

class LibraryStatus(namedtuple('LibraryStatus', 'soname package source path error')):
    """One library: source is 'loaded' (already in the process), 'system', 'bundled' (next to
    libmxnet.so), 'pip' (site-packages/nvidia/<package>/lib), or 'missing'."""


class PreloadReport:
    """What `preload_cuda_libraries` did: build, libraries, driver path, env defaults set."""

    def __init__(self, build, libraries=(), driver=None, env=None, noop_reason=None):
        self.build = build
        self.libraries = list(libraries)
        self.driver = driver
        self.env = dict(env or {})
        self.noop_reason = noop_reason

    @property
    def noop(self):
        return self.noop_reason is not None

    @property
    def missing(self):
        return [lib.soname for lib in self.libraries if lib.source == 'missing']

    @property
    def ok(self):
        return self.noop or (not self.missing and self.driver is not None)

    def by_source(self, source):
        return [lib for lib in self.libraries if lib.source == source]

    def lines(self):
        if self.noop:
            return [f'CUDA libraries: nothing to load ({self.noop_reason})']
        out = [f'CUDA libraries for {build_label(self.build)}:']
        for lib in self.libraries:
            where = lib.path or ''
            if lib.error:
                where = f'{where} ({lib.error})'.strip()
            out.append(f'  {lib.soname:<20} {lib.source:<8} {where}')
        out.append(f'  {DRIVER_SONAME:<20} {"driver" if self.driver else "missing":<8} '
                   f'{self.driver or "no NVIDIA driver found"}')
        if self.env:
            out.append('  env defaults set: ' + ', '.join(f'{k}={v}' for k, v in self.env.items()))
        return out

    def summary(self):
        return '\n'.join(self.lines())

    def hint(self):
        """One sentence for an ImportError of mxnet: what is missing and what to do ('' if ok)."""
        if self.ok:
            return ''
        parts = []
        if self.driver is None:
            parts.append(f'{build_label(self.build)} needs the NVIDIA driver ({DRIVER_SONAME}), '
                         'which this machine lacks: on a machine without a GPU install '
                         '"d2l_dcgan[cpu]" instead')
        if self.missing:
            parts.append(f'CUDA 11 libraries not found: {", ".join(self.missing)}; '
                         'pip install "d2l_dcgan[cu112]" installs them (nvidia-*-cu11)')
        return '; '.join(parts)

    def __repr__(self):
        return f'PreloadReport({self.summary()!r})'


def default_site_dirs():
    """The sys.path folders that hold an `nvidia/` folder (pip's nvidia-*-cu11 wheels)."""
    seen, dirs = set(), []
    for entry in sys.path:
        folder = os.path.abspath(entry or os.getcwd())
        if folder not in seen and os.path.isdir(os.path.join(folder, 'nvidia')):
            seen.add(folder)
            dirs.append(folder)
    return dirs


def _pip_path(soname, package, site_dirs):
    """site/nvidia/<package>/lib/<soname> in the first site dir that has it, else any
    site/nvidia/*/lib/<soname>."""
    for site in site_dirs:
        path = os.path.join(site, 'nvidia', package or '', 'lib', soname)
        if package and os.path.isfile(path):
            return path
    for site in site_dirs:
        root = os.path.join(site, 'nvidia')
        try:
            packages = sorted(os.listdir(root))
        except OSError:
            continue
        for pkg in packages:
            path = os.path.join(root, pkg, 'lib', soname)
            if os.path.isfile(path):
                return path
    return None


_LDCONFIG = []


def _ld_cache():
    """{soname: path} of the dynamic linker's cache (`ldconfig -p`), 64-bit entries."""
    if not _LDCONFIG:
        cache = {}
        tool = shutil.which('ldconfig') or next(
            (p for p in ('/sbin/ldconfig', '/usr/sbin/ldconfig') if os.path.exists(p)), None)
        if tool:
            try:
                out = subprocess.run([tool, '-p'], capture_output=True, text=True,
                                     timeout=10).stdout
            except (OSError, subprocess.SubprocessError):
                out = ''
            for line in out.splitlines():
                m = re.match(r'\s+(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)', line)
                if m and (sys.maxsize <= 2**32 or '64' in m.group(2)):
                    cache.setdefault(m.group(1), m.group(3))
        _LDCONFIG.append(cache)
    return _LDCONFIG[0]


_DEFAULT_LIB_DIRS = ('/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64',
                     '/usr/lib64', '/lib', '/usr/lib', '/usr/lib/wsl/lib')


def find_system_library(soname):
    """Where the dynamic linker would find `soname` by itself (LD_LIBRARY_PATH, its cache, the
    default folders), without loading it; None if nowhere."""
    for folder in os.environ.get('LD_LIBRARY_PATH', '').split(os.pathsep):
        if folder and os.path.isfile(os.path.join(folder, soname)):
            return os.path.join(folder, soname)
    path = _ld_cache().get(soname)
    if path:
        return path
    for folder in _DEFAULT_LIB_DIRS:
        if os.path.isfile(os.path.join(folder, soname)):
            return os.path.join(folder, soname)
    return None


def is_loaded(soname):
    """Whether a library with this soname is already loaded in this process (RTLD_NOLOAD)."""
    try:
        ctypes.CDLL(soname, mode=os.RTLD_NOLOAD | os.RTLD_GLOBAL)
        return True
    except OSError:
        return False


def set_cuda_env_defaults(env=None):
    """os.environ.setdefault of CUDA_ENV_DEFAULTS; returns those it set (not the user's own)."""
    env = os.environ if env is None else env
    done = {}
    for key, value in CUDA_ENV_DEFAULTS.items():
        if key not in env:
            env[key] = value
            done[key] = value
    return done


def _groups(needed):
    """CUDA11_LIBRARIES restricted to the groups libmxnet.so needs, then any other CUDA-looking
    soname it needs as a group of its own (found under any nvidia/*/lib)."""
    if needed is None:
        return list(CUDA11_LIBRARIES)
    needed = [n for n in needed if n != DRIVER_SONAME]
    groups = [(pkg, names) for pkg, names in CUDA11_LIBRARIES if set(names) & set(needed)]
    known = {n for _, names in CUDA11_LIBRARIES for n in names}
    extra = [n for n in needed if n not in known
             and re.match(r'lib(cu|nv|nccl|cudnn)', n)]
    return groups + [(None, (n,)) for n in extra]


_REPORT = []


def last_preload_report():
    """The report of the first default `preload_cuda_libraries()` call, or None."""
    return _REPORT[0] if _REPORT else None


def preload_cuda_libraries(site_dirs=None, *, build=None, needed=None, loader=None,
                           find_system=None, loaded=None, mxnet_dir=None, set_env=True,
                           env=None):
    """Load mxnet-cu112's CUDA 11 libraries from pip's nvidia-*-cu11 wheels, before `import mxnet`.

    A cheap no-op returning a report when the installed MXNet is not a CUDA build (package
    metadata, MXNet not imported). Otherwise, per library group in dependency order
    (CUDA11_LIBRARIES, restricted to what libmxnet.so's DT_NEEDED lists): a group the process
    already has or the system provides (LD_LIBRARY_PATH, ld.so cache, default folders) is
    taken from there, loaded by bare soname; else from site_dirs' nvidia/<package>/lib/ by path;
    each with `loader(path, mode=RTLD_GLOBAL)` so that the libraries loaded later, and
    libmxnet.so, bind to it. Also sets CUDA_ENV_DEFAULTS (setdefault) unless set_env is False.

    Every argument is injectable for tests: build (Build), needed (sonames; default read off
    libmxnet.so), loader (default ctypes.CDLL), find_system (soname -> path or None), loaded
    (soname -> bool), mxnet_dir (folder of libmxnet.so), env (mapping, default os.environ).
    Never raises: a library that cannot be loaded is reported missing, with the error.
    Returns a PreloadReport; the default call runs once per process (later calls return it)."""
    default_call = (site_dirs is None and build is None and needed is None and loader is None
                    and find_system is None and loaded is None and mxnet_dir is None
                    and env is None and set_env)
    if default_call and _REPORT:
        return _REPORT[0]
    report = _preload(site_dirs, build, needed, loader, find_system, loaded, mxnet_dir,
                      set_env, env)
    if default_call:
        _REPORT.append(report)
    return report


def _preload(site_dirs, build, needed, loader, find_system, loaded, mxnet_dir, set_env, env):
    if build is None:
        try:
            build = mxnet_build()
        except Exception as e:  # noqa: BLE001 - broken metadata must not break the import
            return PreloadReport(None, noop_reason=f'cannot read package metadata: {e}')
    if build is None:
        return PreloadReport(None, noop_reason='MXNet is not installed')
    if not build.cuda:
        return PreloadReport(build, noop_reason=f'{build_label(build)} is a CPU build')
    if not sys.platform.startswith('linux'):
        return PreloadReport(build, noop_reason=f'not Linux ({sys.platform})')
    loader = loader or ctypes.CDLL
    find_system = find_system or find_system_library
    loaded = loaded or is_loaded
    mode = getattr(os, 'RTLD_GLOBAL', ctypes.RTLD_GLOBAL)
    if mxnet_dir is None or needed is None:
        lib_path = mxnet_library_path()
        if mxnet_dir is None and lib_path:
            mxnet_dir = os.path.dirname(lib_path)
        if needed is None and lib_path:
            needed = elf_needed(lib_path)
    site_dirs = default_site_dirs() if site_dirs is None else list(site_dirs)
    env_set = set_cuda_env_defaults(env) if set_env else {}

    libraries = []
    for package, sonames in _groups(needed):
        where = {}
        for soname in sonames:
            if loaded(soname):
                where[soname] = ('loaded', None)
            elif mxnet_dir and os.path.isfile(os.path.join(mxnet_dir, soname)):
                where[soname] = ('bundled', os.path.join(mxnet_dir, soname))
            else:
                path = find_system(soname)
                where[soname] = ('system', path) if path else None
        if all(where.values()):  # the process or the system has the whole group: use it
            for soname in sonames:
                source, path = where[soname]
                error = None
                if source == 'system':
                    try:
                        loader(soname, mode=mode)
                    except OSError as e:
                        pip = _pip_path(soname, package, site_dirs)
                        source, path, error = _load_pip(loader, mode, soname, pip, str(e))
                libraries.append(LibraryStatus(soname, package, source, path, error))
            continue
        for soname in sonames:  # else pip's copy of the whole group (what is already loaded stays)
            if where[soname] and where[soname][0] in ('loaded', 'bundled'):
                libraries.append(LibraryStatus(soname, package, *where[soname], None))
                continue
            pip = _pip_path(soname, package, site_dirs)
            source, path, error = _load_pip(loader, mode, soname, pip, None)
            if source == 'missing' and where[soname]:  # no pip copy: the system's after all
                try:
                    loader(soname, mode=mode)
                    source, path, error = where[soname][0], where[soname][1], None
                except OSError as e:
                    error = str(e)
            libraries.append(LibraryStatus(soname, package, source, path, error))
    driver = find_system(DRIVER_SONAME) or (DRIVER_SONAME if loaded(DRIVER_SONAME) else None)
    return PreloadReport(build, libraries, driver, env_set)


def _load_pip(loader, mode, soname, path, earlier_error):
    if not path:
        return 'missing', None, earlier_error
    try:
        loader(path, mode=mode)
        return 'pip', path, None
    except OSError as e:
        return 'missing', path, str(e)
