"""Sliced Wasserstein distance (SWD) between two image sets, in numpy only.

Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and Variation"
(ICLR 2018, arXiv:1710.10196), section 5 and appendix D, computed as their reference
implementation does (`metrics/sliced_wasserstein.py` in tkarras/progressive_growing_of_gans):

1. a Laplacian pyramid of every image (5x5 Gaussian [1, 4, 6, 4, 1]/16 outer product, reflect
   borders like cv2.pyrDown/pyrUp), one level per resolution from the images' own down to
   `min_resolution` (64, 32, 16 for 64x64 images); the coarsest level is the Gaussian level;
2. `nhoods_per_image` random `nhood_size` x `nhood_size` neighbourhoods per image and level, all
   channels (3 * 7 * 7 = 147 numbers for RGB);
3. each set's descriptors normalised per channel by that set's own mean and std (so a global
   per-channel brightness or contrast change of a whole set is invisible, as in the reference);
4. per level, `dir_repeats` x `dirs_per_repeat` random unit directions; both sets are projected,
   each projection sorted, and the mean absolute difference of the sorted projections (the 1-d
   Wasserstein-1 distance) averaged over all directions; reported x 1e3, like the paper's tables.

Where this differs from the reference, and why:

- Randomness comes from `numpy.random.SeedSequence(seed)`, spawned into three independent
  PCG64 streams (subsampling, neighbourhood positions, directions), not from numpy's global state,
  so a call is deterministic under its seed and leaves other code's random numbers alone.
- The same neighbourhood positions are used for image i of `a` and image i of `b`: swapping the
  sets then swaps nothing else, so `sliced_wasserstein(a, b) == sliced_wasserstein(b, a)`
  exactly, a set against itself gives exactly 0, and the sampling noise between two sets is
  smaller (common random numbers) than with independent positions.
- Sets of different sizes are allowed: the larger is subsampled (without replacement, seeded) to
  the smaller, since the sorted-projection distance needs equal counts.
- A channel that is constant over a whole set (std below 1e-6, e.g. a collapsed generator) is only
  centred, not divided by ~0, so the distance stays finite instead of becoming NaN.
- Odd image sizes work: the coarser level has ceil(size / 2) pixels and is upsampled back onto
  the finer level's exact grid (cv2.pyrUp with `dstsize`); the reference requires even sizes.
- Every projection (a BLAS matrix product) is checked by Freivalds' algorithm, in float64 without
  BLAS, and recomputed without BLAS if wrong: some BLAS kernels are (see `_project`), and a
  wrong product gives a wrong or NaN distance.
"""
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import DCGANError, check_positive

__all__ = ['sliced_wasserstein', 'laplacian_pyramid', 'swd_resolutions']

# [1, 4, 6, 4, 1] / 16; its outer product is the reference's 5x5 `gaussian_filter` (/ 256).
_KERNEL = np.array([1., 4., 6., 4., 1.]) / 16
# A channel whose std over a whole set is below this is treated as constant (uint8 images step by
# 2/255 ~ 0.008 in [-1, 1], so no real image content is this flat).
_MIN_STD = 1e-6


def _blur(x, step=1):
    """The 5x5 Gaussian over the last two axes with reflect borders, sampled every `step` pixels.

    Separable (two 1-d passes) for speed; equals scipy.ndimage.convolve(mode='mirror') with the
    reference's 2-d kernel. With step=2 only the kept pixels are computed."""
    h, w = x.shape[-2:]
    p = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(2, 2), (2, 2)], mode='reflect')
    rows = sum(k * p[..., i:i + h:step, :] for i, k in enumerate(_KERNEL))
    return sum(k * rows[..., i:i + w:step] for i, k in enumerate(_KERNEL))


def _pyr_down(x):
    """Blur, then keep every second row and column (cv2.pyrDown)."""
    return _blur(x, step=2)


def _pyr_up(x, shape):
    """Zeros between the pixels of `x` on a grid of `shape` (H, W), then blur x 4 (cv2.pyrUp)."""
    up = np.zeros(x.shape[:-2] + tuple(shape), dtype=x.dtype)
    up[..., ::2, ::2] = x
    return 4 * _blur(up)


def laplacian_pyramid(images, num_levels):
    """Levels of a (N, C, H, W) float array, finest first; the last is the Gaussian level itself."""
    levels = [np.asarray(images, dtype=np.float64)]
    for _ in range(1, num_levels):
        down = _pyr_down(levels[-1])
        levels[-1] = levels[-1] - _pyr_up(down, levels[-1].shape[-2:])
        levels.append(down)
    return levels


def swd_resolutions(height, width=None, min_resolution=16):
    """The pyramid levels' heights for (height, width) images, finest first: [64, 32, 16] for 64.

    Like the reference, levels go down while both sides are at least `min_resolution`; a level
    has ceil(size / 2) pixels of the one above it."""
    width = height if width is None else width
    resolutions = []
    while height >= min_resolution and width >= min_resolution:
        resolutions.append(height)
        height, width = (height + 1) // 2, (width + 1) // 2
    return resolutions


def _as_nchw(x, name):
    """float (N, C, H, W) as is, uint8 (N, H, W, C) in [0, 255] -> [-1, 1] NCHW; float64."""
    if hasattr(x, 'asnumpy'):  # MXNet NDArray or mxnet.numpy ndarray, without importing mxnet
        x = x.asnumpy()
    x = np.asarray(x)
    if x.ndim != 4:
        raise DCGANError(
            f'{name} must be a batch of images, float (N, C, H, W) or uint8 (N, H, W, C); '
            f'got an array of shape {x.shape}')
    if x.dtype == np.uint8:
        if x.shape[3] > 4 and x.shape[1] <= 4:
            raise DCGANError(
                f'{name} is uint8 of shape {x.shape}, which looks like (N, C, H, W); uint8 images '
                f'must be (N, H, W, C) like read_images returns')
        # exactly the data pipeline's ToTensor + Normalize(0.5, 0.5) (data.to_tensor), in float32
        x = x.transpose(0, 3, 1, 2).astype(np.float32) / 255
        x = (x - 0.5) / 0.5
    elif np.issubdtype(x.dtype, np.floating):
        if x.shape[1] > 4 and x.shape[3] <= 4:
            raise DCGANError(
                f'{name} is float of shape {x.shape}, which looks like (N, H, W, C); float images '
                f'must be (N, C, H, W) like the generator outputs')
    else:
        raise DCGANError(
            f'{name} has dtype {x.dtype}; expected float (N, C, H, W) in [-1, 1] '
            f'or uint8 (N, H, W, C) in [0, 255]')
    if x.shape[0] < 2:
        raise DCGANError(f'{name} has {x.shape[0]} image(s); the SWD needs at least 2 per set')
    if not np.isfinite(x).all():
        raise DCGANError(f'{name} contains NaN or infinite values')
    return x.astype(np.float64)


def _descriptors(level, img, ys, xs, nhood_size):
    """The neighbourhoods with top-left corners (ys, xs) of images `img`, normalised per channel.

    Returns float32 (len(img), C * nhood_size**2), like the reference's finalize_descriptors."""
    windows = np.lib.stride_tricks.sliding_window_view(level, (nhood_size, nhood_size),
                                                       axis=(2, 3))
    desc = windows[img, :, ys, xs]  # (M, C, k, k): gathers from a view, no index array per pixel
    mean = desc.mean(axis=(0, 2, 3), keepdims=True)
    std = desc.std(axis=(0, 2, 3), keepdims=True)
    desc = (desc - mean) / np.where(std > _MIN_STD, std, 1.0)
    return desc.reshape(len(desc), -1).astype(np.float32)


def _flip_negatives(keys):
    """In place: int32 views of float32s -> keys with the floats' order, and back.

    Flipping the magnitude bits of negative numbers makes integer order equal float order (the
    map is its own inverse). numpy 1.23 sorts int32 about a third faster than float32 (no
    NaN-aware comparisons), and sorting is most of the SWD's time."""
    mask = keys >> 31  # -1 for negatives, 0 otherwise
    mask &= np.int32(0x7FFFFFFF)
    keys ^= mask


def _freivalds(desc):
    """What checking products with `desc` needs: a random vector r, desc.T @ r, and the tolerance.

    Float32 rounding moves a projection on a unit direction by at most K eps |desc_k| (K numbers
    summed), so proj @ r moves by at most K eps sum_k |r_k| |desc_k|; a wrong entry moves it
    by about |r_k| times its error. In float64, and without BLAS (einsum), which is what is
    checked."""
    r = np.random.default_rng(len(desc)).standard_normal(len(desc))
    norms = np.sqrt(np.einsum('kj,kj->k', desc, desc, dtype=np.float64))
    tol = desc.shape[1] * np.finfo(np.float32).eps * np.einsum('k,k->', np.abs(r), norms)
    return r, np.einsum('kj,k->j', desc, r), 2 * tol


def _project(dirs, desc, check):
    """dirs @ desc.T in float32, checked by Freivalds' algorithm; redone without BLAS if wrong.

    numpy's BLAS picks its kernels by the CPU, and one can be wrong: OpenBLAS 0.3.34's armv9sme
    kernels (numpy 2.5's, on qemu 7.2's default ARM64 CPU) give wrong products, NaN among them,
    when an operand is transposed, as desc.T is here."""
    proj = np.matmul(dirs, desc.T)
    if _product_ok(proj, dirs, check):
        return proj
    warnings.warn("numpy's BLAS computed a wrong matrix product; the SWD projects without it "
                  '(einsum, slower). OPENBLAS_CORETYPE=ARMV8 (on ARM64) picks other kernels',
                  RuntimeWarning, stacklevel=2)
    proj = np.einsum('ij,kj->ik', dirs, desc)
    if not _product_ok(proj, dirs, check):
        raise DCGANError('the SWD\'s projections are wrong even without BLAS; not reporting one')
    return proj


def _product_ok(proj, dirs, check):
    """Whether proj @ r is dirs @ (desc.T @ r) within float32 rounding (False for NaN)."""
    r, desc_r, tol = check
    got, want = np.einsum('ik,k->i', proj, r), np.einsum('ij,j->i', dirs, desc_r)
    return bool(np.all(np.abs(got - want) <= tol))


def _sorted_projections(desc, dirs, check):
    """Each direction's projections of all descriptors, sorted: float32 (directions, descriptors).

    Rows are contiguous, so each sort runs along memory."""
    proj = _project(dirs, desc, check)
    keys = proj.view(np.int32)
    _flip_negatives(keys)
    keys.sort(axis=1)
    _flip_negatives(keys)
    return proj


def _swd(desc_a, desc_b, rng, dir_repeats, dirs_per_repeat, pool):
    """Mean over random unit directions of the 1-d Wasserstein-1 distance of the projections."""
    total = 0.0
    checks = _freivalds(desc_a), _freivalds(desc_b)
    for _ in range(dir_repeats):
        dirs = rng.standard_normal((dirs_per_repeat, desc_a.shape[1]))
        dirs /= np.sqrt(np.sum(np.square(dirs), axis=1, keepdims=True))
        dirs = dirs.astype(np.float32)  # the reference projects in float32 too
        # numpy's sort releases the GIL, so the two sets' sorts run on two cores
        proj_a, proj_b = pool.map(_sorted_projections, (desc_a, desc_b), (dirs, dirs), checks)
        # |x - y| == |y - x| bit for bit, so the result is symmetric in a and b exactly
        diff = np.subtract(proj_a, proj_b, out=proj_a)
        total += float(np.mean(np.abs(diff, out=diff), dtype=np.float64))
    return total / dir_repeats


def sliced_wasserstein(a, b, seed=0, nhoods_per_image=128, nhood_size=7, dir_repeats=4,
                       dirs_per_repeat=128, min_resolution=16):
    """SWD x 1e3 between image sets `a` and `b` per pyramid level, and their mean.

    `a`, `b`: float arrays (N, C, H, W) in [-1, 1] (the generator's output) or uint8 arrays
    (N, H, W, C) in [0, 255] (what `read_images` returns), or MXNet arrays of either (anything
    with `.asnumpy()`); any channel count, e.g. 1 or 3, the same in both. Sets of different sizes
    are compared after subsampling the larger. The defaults are the paper's.

    Returns `(per_level, mean)`: a list of Python floats from the finest level (the images' size)
    to the coarsest (>= `min_resolution`; see `swd_resolutions`), and their mean. Deterministic
    for a given `seed` (see the module docstring) and symmetric: swapping `a` and `b` gives the
    same numbers. Lower is better; a set against itself gives 0.

    Cost grows with images x `nhoods_per_image` x directions and is mostly numpy sorting the
    projections (two threads, one per set): 512 vs 512 64x64 RGB images at the defaults sort
    2 x 3 x 512 x 65,536 numbers, about 17 s of CPU time on a 2-core machine.

    Raises DCGANError for arrays that are not image batches, sets with different channel counts
    or sizes, fewer than 2 images in a set, NaN or infinite pixels, or images too small for a
    `nhood_size` neighbourhood at the coarsest level.
    """
    check_positive(nhoods_per_image=nhoods_per_image, nhood_size=nhood_size,
                   dir_repeats=dir_repeats, dirs_per_repeat=dirs_per_repeat,
                   min_resolution=min_resolution)
    if nhood_size % 2 == 0:
        raise DCGANError(f'nhood_size must be odd (a centre pixel and a radius), got {nhood_size}')
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise DCGANError(f'seed must be a non-negative integer or None, got {seed!r}')
    a, b = _as_nchw(a, 'a'), _as_nchw(b, 'b')
    if a.shape[1] != b.shape[1]:
        raise DCGANError(f'a has {a.shape[1]} channel(s) but b has {b.shape[1]}')
    if a.shape[2:] != b.shape[2:]:
        raise DCGANError(f'a has {a.shape[2]}x{a.shape[3]} images but b has '
                         f'{b.shape[2]}x{b.shape[3]}; resize one set to the other')
    height, width = a.shape[2:]
    resolutions = swd_resolutions(height, width, min_resolution)
    if not resolutions:
        raise DCGANError(f'the images are {height}x{width}, smaller than '
                         f'min_resolution={min_resolution}')
    coarsest = (height, width)
    for _ in resolutions[1:]:
        coarsest = ((coarsest[0] + 1) // 2, (coarsest[1] + 1) // 2)
    if min(coarsest) < nhood_size:
        raise DCGANError(
            f'the coarsest pyramid level is {coarsest[0]}x{coarsest[1]}, smaller than a '
            f'{nhood_size}x{nhood_size} neighbourhood; raise min_resolution to at least '
            f'{nhood_size} or lower nhood_size')

    sub_seq, pos_seq, dir_seq = np.random.SeedSequence(seed).spawn(3)
    n = min(len(a), len(b))
    # Only the larger set is subsampled, with a stream that does not depend on which argument it
    # was, so swapping a and b picks the same images.
    sub_rng = np.random.default_rng(sub_seq)
    a, b = [x if len(x) == n else x[np.sort(sub_rng.choice(len(x), n, replace=False))]
            for x in (a, b)]
    pos_rng, dir_rng = np.random.default_rng(pos_seq), np.random.default_rng(dir_seq)

    levels_a = laplacian_pyramid(a, len(resolutions))
    levels_b = laplacian_pyramid(b, len(resolutions))
    per_level = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for level_a, level_b in zip(levels_a, levels_b):
            h, w = level_a.shape[2:]
            # One draw of positions, used for image i of both sets (see the module docstring);
            # the reference's centres lie in [r, size - r), so whole neighbourhoods fit.
            img = np.repeat(np.arange(n), nhoods_per_image)
            ys = pos_rng.integers(0, h - nhood_size + 1, size=len(img))
            xs = pos_rng.integers(0, w - nhood_size + 1, size=len(img))
            desc_a = _descriptors(level_a, img, ys, xs, nhood_size)
            desc_b = _descriptors(level_b, img, ys, xs, nhood_size)
            swd = _swd(desc_a, desc_b, dir_rng, dir_repeats, dirs_per_repeat, pool)
            per_level.append(1e3 * swd)  # the paper reports SWD x 10^3
    return per_level, float(np.mean(per_level))
