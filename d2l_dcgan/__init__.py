"""d2l_dcgan: the DCGAN chapter of Dive into Deep Learning as an MXNet Gluon package."""
__version__ = '0.1.0'

import signal as _signal
import sys as _sys


def _exit_interrupted(signum, frame):
    print('interrupted', file=_sys.stderr)
    _sys.exit(128 + signum)


# `python -m d2l_dcgan` and `d2l-dcgan` import this package first: Ctrl-C while MXNet loads
# exits like Ctrl-C later (one line, 130), not with a traceback of the import
_COMMAND = _sys.argv[:1] == ['-m'] or _sys.argv[0].endswith('d2l-dcgan') if _sys.argv else False
if _COMMAND:
    _signal.signal(_signal.SIGINT, _exit_interrupted)

from . import compat
from .cpu import set_mxnet_threads
from .gpu import preload_cuda_libraries

# MXNet 1.9.1 reads names that NumPy >= 1.24 and Python >= 3.12 removed: put them back first
_COMPAT = compat.apply()

# MXNet would use half the cores on a CPU without hyper-threads; it reads this once, at import
_MXNET_THREADS = set_mxnet_threads()

# mxnet-cu112 ships none of the CUDA 11 libraries it links: load pip's before `import mxnet`
_CUDA = preload_cuda_libraries()

try:
    import mxnet  # noqa: F401
except (ImportError, OSError) as e:  # mxnet and mxnet-cu112 both provide `mxnet`: an extra
    hint = _CUDA.hint()
    if 'libgomp' in str(e) or 'libquadmath' in str(e):  # minimal systems lack GCC's runtime
        raise ImportError(
            f'MXNet is installed, but its library cannot load: {e}. On a minimal system GCC\'s '
            'runtime libraries are missing: apt-get install libgomp1 libquadmath0 (Debian, '
            'Ubuntu), dnf install libgomp libquadmath (Fedora); tools/system-libs checks') from e
    raise ImportError(
        'd2l_dcgan needs MXNet 1.9.1: pip install "d2l_dcgan[cpu]" (mxnet==1.9.1) '
        'or "d2l_dcgan[cu112]" (mxnet-cu112==1.9.1 and its CUDA 11 libraries) '
        f'[{e}]' + (f' {hint}' if hint else '')) from e

from mxnet import npx

if compat.numpy_scalar_repr_is_typed():  # NumPy 2 would pass 'np.int64(17)' to MXNet's C side
    compat.patch_mxnet_params()

# The chapter's code runs in MXNet's NumPy mode, like every d2l MXNet section.
npx.set_np()

from .errors import ArgumentError, DCGANError  # noqa: E402
from .model import G_block, D_block, generator, discriminator  # noqa: E402
from .data import (load_pokemon, load_image_folder, read_images,  # noqa: E402
                   download, download_extract)
from .sprites import make_sprites  # noqa: E402
from .fashion import (FASHION_CLASSES, read_idx, load_fashion_mnist_arrays,  # noqa: E402
                      load_fashion_mnist)
from .metrics import sliced_wasserstein  # noqa: E402
from .train import update_D, update_G, train, init_nets  # noqa: E402
from .run import fit  # noqa: E402
from .plot import (GANAnimator, show_images, plot_leaky_relu,  # noqa: E402
                   sample_grid, save_image_grid)

if _COMMAND:
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)

__all__ = [
    'DCGANError', 'ArgumentError', 'G_block', 'D_block', 'generator', 'discriminator',
    'load_pokemon', 'load_image_folder', 'read_images', 'download', 'download_extract',
    'make_sprites', 'update_D', 'update_G', 'train', 'init_nets', 'fit',
    'GANAnimator', 'show_images', 'plot_leaky_relu', 'sample_grid',
    'save_image_grid', 'FASHION_CLASSES', 'read_idx', 'load_fashion_mnist_arrays',
    'load_fashion_mnist', 'sliced_wasserstein',
]
