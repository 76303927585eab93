"""SWD (d2l_dcgan.metrics): the pyramid, known cases on drawn images, the API's promises.

The known cases compare 64-image sets with the paper's 128 neighbourhoods per image but 128
directions per level instead of 512 (dir_repeats=1), since sorting the projections is most of the
cost and the machine is shared; more directions only average away a little more noise. Everything
else runs with fewer neighbourhoods and directions still, which changes the noise of the
estimate, not what is tested.

Observed (SWD x 1e3 at 64, 32, 16 | mean), here and with all 512 directions:
identical 0, 0, 0 | 0 (both); halves 21.6, 26.6, 71.2 | 39.8 (22.0, 26.7, 65.5 | 38.1);
shifted 10.2, 11.4, 27.8 | 16.5 (10.2, 11.5, 28.1 | 16.6); blurred 53.2, 12.9, 3.66 | 23.3
(52.7, 12.7, 3.69 | 23.0); noise 354, 178, 133 | 222 (353, 175, 133 | 220)."""
import warnings

import numpy as onp
import pytest

from d2l_dcgan.errors import DCGANError
from d2l_dcgan.metrics import laplacian_pyramid, sliced_wasserstein, swd_resolutions

FAST = dict(nhoods_per_image=16, dir_repeats=1, dirs_per_repeat=32)
CASES = dict(dir_repeats=1)


def blobs(n, seed=0, size=64, channels=3):
    """n images in [-1, 1], (n, C, size, size): six anti-aliased discs of random colours and radii
    on a random background, so there are flat areas, edges and a spread of colours and shapes."""
    rng = onp.random.default_rng(seed)
    yy, xx = onp.mgrid[0:size, 0:size] + 0.5
    img = onp.empty((n, channels, size, size))
    img[:] = rng.uniform(-0.8, 0.2, (n, channels, 1, 1))
    for _ in range(6):
        cy, cx = rng.uniform(size / 8, size * 7 / 8, (2, n, 1, 1))
        r = rng.uniform(size / 16, size / 4, (n, 1, 1))
        alpha = onp.clip(r - onp.hypot(yy - cy, xx - cx) + 0.5, 0, 1)[:, None]
        img = img * (1 - alpha) + rng.uniform(-1, 1, (n, channels, 1, 1)) * alpha
    return img.astype(onp.float32)


def box_blur(x):
    """3x3 mean filter with edge padding: removes most detail at the finest scale only."""
    h, w = x.shape[-2:]
    p = onp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode='edge')
    return sum(p[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9


@pytest.fixture(scope='module')
def halves():
    """Two disjoint halves of one 128-image set: same distribution, different images."""
    x = blobs(128)
    return x[:64], x[64:]


@pytest.fixture(scope='module')
def cases(halves):
    a, b = halves
    noise = onp.random.default_rng(1).uniform(-1, 1, a.shape).astype(onp.float32)
    return {
        'identical': sliced_wasserstein(a, a, **FAST),  # exactly 0 at any settings: save the time
        'halves': sliced_wasserstein(a, b, **CASES),
        # +0.5 with saturation, as brightening a uint8 image does: 9% of the pixels clip
        'shifted': sliced_wasserstein(a, onp.clip(a + 0.5, -1, 1), **CASES),
        'blurred': sliced_wasserstein(a, box_blur(a), **CASES),
        'noise': sliced_wasserstein(a, noise, **CASES),
    }


def test_resolutions_are_the_reference_ones():
    assert swd_resolutions(64) == [64, 32, 16]
    assert swd_resolutions(128) == [128, 64, 32, 16]
    assert swd_resolutions(28) == [28]  # Fashion-MNIST size with the default min_resolution
    assert swd_resolutions(28, min_resolution=7) == [28, 14, 7]
    assert swd_resolutions(8) == []


def _conv5x5_reflect(x):
    """Direct 2-d convolution with the reference's 5x5 kernel (scipy's mode='mirror')."""
    k = onp.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256
    h, w = x.shape[-2:]
    p = onp.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode='reflect')
    return sum(k[i, j] * p[:, :, i:i + h, j:j + w] for i in range(5) for j in range(5))


def test_laplacian_pyramid_matches_a_direct_implementation_and_inverts():
    x = onp.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32))
    levels = laplacian_pyramid(x, 3)
    assert [lv.shape for lv in levels] == [(2, 3, 32, 32), (2, 3, 16, 16), (2, 3, 8, 8)]
    # the reference: g1 = pyrDown(g0) = blur then every 2nd pixel; L0 = g0 - pyrUp(g1)
    gauss = [x]
    for _ in range(2):
        gauss.append(_conv5x5_reflect(gauss[-1])[:, :, ::2, ::2])
    for i in range(2):
        up = onp.zeros_like(gauss[i])
        up[:, :, ::2, ::2] = gauss[i + 1]
        onp.testing.assert_allclose(levels[i], gauss[i] - 4 * _conv5x5_reflect(up), atol=1e-12)
    onp.testing.assert_allclose(levels[2], gauss[2], atol=1e-12)  # coarsest: the Gaussian level
    # a Laplacian pyramid loses nothing: upsampling and adding the levels gives the image back
    rebuilt = levels[2]
    for level in levels[1::-1]:
        up = onp.zeros_like(level)
        up[:, :, ::2, ::2] = rebuilt
        rebuilt = level + 4 * _conv5x5_reflect(up)
    onp.testing.assert_allclose(rebuilt, x, atol=1e-12)


def test_laplacian_pyramid_odd_sizes():
    levels = laplacian_pyramid(onp.ones((1, 1, 29, 31)), 3)
    assert [lv.shape[2:] for lv in levels] == [(29, 31), (15, 16), (8, 8)]
    # a flat image has no detail at any level but the coarsest
    assert max(abs(lv).max() for lv in levels[:-1]) < 1e-12


def test_identical_sets_give_exactly_zero(cases):
    per_level, mean = cases['identical']
    assert per_level == [0.0, 0.0, 0.0] and mean == 0.0


def test_halves_of_one_distribution_give_the_noise_floor(cases):
    """Different images of one distribution: not 0 (64 images are a small sample), but far below
    noise; this is the scale the other cases are judged against."""
    per_level, mean = cases['halves']
    assert len(per_level) == 3 and all(0 < v for v in per_level)
    assert mean < cases['noise'][1] / 3


def test_a_global_brightness_shift_is_invisible_without_clipping(halves):
    """Each set's descriptors are normalised by that set's own per-channel mean and std (the
    reference does so too), so shifting every pixel of a set by one constant changes nothing."""
    a, _ = halves
    per_level, mean = sliced_wasserstein(a, a + 0.3, **FAST)
    assert max(per_level) < 1e-3  # float32 rounding of the descriptors: ~1e-7 of ~1, x 1e3


def test_brightness_shifted_copy_is_larger_than_identical(cases):
    per_level, mean = cases['shifted']
    assert min(per_level) > 1.0  # SWD x 1e3; float rounding alone stays below 1e-3 (see above)


def test_blurred_copy_differs_most_at_the_finest_level(cases):
    blurred, halves = cases['blurred'][0], cases['halves'][0]
    assert blurred[0] > 3 * max(blurred[1:])
    assert blurred[0] > 2 * halves[0]


def test_uniform_noise_is_far_away(cases):
    noise, halves = cases['noise'], cases['halves']
    assert noise[1] > 5 * cases['shifted'][1]
    assert noise[1] > 3 * halves[1]
    # at 16x16 the noise is averaged nearly flat, so the finest level is where it stands out
    assert noise[0][0] > 10 * halves[0][0]


def test_deterministic_under_a_seed(halves):
    a, b = halves
    first = sliced_wasserstein(a, b, seed=3, **FAST)
    assert sliced_wasserstein(a, b, seed=3, **FAST) == first
    assert sliced_wasserstein(a, b, seed=4, **FAST) != first


def test_symmetric(halves):
    a, b = halves
    assert sliced_wasserstein(a, b, seed=5, **FAST) == sliced_wasserstein(b, a, seed=5, **FAST)
    # sets of different sizes: the larger is subsampled the same way whichever argument it is
    assert (sliced_wasserstein(a, b[:40], seed=5, **FAST)
            == sliced_wasserstein(b[:40], a, seed=5, **FAST))


def _to_uint8_nhwc(x):
    return onp.round((x + 1) * 127.5).astype(onp.uint8).transpose(0, 2, 3, 1)


def test_uint8_nhwc_equals_float_nchw(halves):
    a, b = (_to_uint8_nhwc(x) for x in halves)
    # the data pipeline's conversion (ToTensor, then Normalize(0.5, 0.5))
    fa, fb = ((x.transpose(0, 3, 1, 2).astype(onp.float32) / 255 - 0.5) / 0.5 for x in (a, b))
    expected = sliced_wasserstein(fa, fb, **FAST)
    assert sliced_wasserstein(a, b, **FAST) == expected
    assert sliced_wasserstein(a, fb, **FAST) == expected  # one of each works too
    # x / 127.5 - 1 rounds differently in the last bit; the distance barely moves
    ga, gb = (x.transpose(0, 3, 1, 2) / 127.5 - 1 for x in (a, b))
    onp.testing.assert_allclose(sliced_wasserstein(ga, gb, **FAST)[0], expected[0], rtol=1e-5)


def test_mxnet_arrays(halves):
    from mxnet import nd, np as mnp
    a, b = halves
    expected = sliced_wasserstein(a, b, **FAST)
    assert sliced_wasserstein(mnp.array(a), mnp.array(b), **FAST) == expected
    assert sliced_wasserstein(nd.array(a), b, **FAST) == expected


def test_one_channel_images(halves):
    a, b = (x[:, :1] for x in halves)
    per_level, mean = sliced_wasserstein(a, b, **FAST)
    assert len(per_level) == 3 and all(0 < v < 1e3 for v in per_level)
    assert sliced_wasserstein(a, a, **FAST)[1] == 0.0
    # uint8 (N, H, W, 1) and Fashion-MNIST's 28x28: one level by default, three from 7 up
    u = _to_uint8_nhwc(blobs(16, seed=2, size=28, channels=1))
    assert len(sliced_wasserstein(u[:8], u[8:], **FAST)[0]) == 1
    assert len(sliced_wasserstein(u[:8], u[8:], min_resolution=7, **FAST)[0]) == 3


def test_a_constant_set_gives_a_finite_distance(halves):
    """A collapsed generator's flat output has std 0; dividing by it would give NaN."""
    a, _ = halves
    per_level, mean = sliced_wasserstein(a, onp.zeros_like(a), **FAST)
    assert onp.isfinite(per_level).all() and mean > 0


@pytest.mark.parametrize('a, b, kwargs, match', [
    (onp.zeros((4, 64, 64)), None, {}, 'batch of images'),
    (onp.zeros((4, 3, 64, 64)), onp.zeros((4, 1, 64, 64)), {}, 'channel'),
    (onp.zeros((4, 3, 64, 64)), onp.zeros((4, 3, 32, 32)), {}, '64x64 images but b has 32x32'),
    (onp.zeros((1, 3, 64, 64)), None, {}, 'at least 2'),
    (onp.zeros((4, 3, 8, 8)), None, {}, 'smaller than min_resolution=16'),
    (onp.zeros((4, 3, 64, 64)), None, {'min_resolution': 4}, 'smaller than a 7x7'),
    (onp.zeros((4, 3, 64, 64), dtype=onp.int64), None, {}, 'dtype int64'),
    (onp.full((4, 3, 64, 64), onp.nan), None, {}, 'NaN'),
    (onp.zeros((4, 64, 64, 3), dtype=onp.float32), None, {}, 'looks like \\(N, H, W, C\\)'),
    (onp.zeros((4, 3, 64, 64), dtype=onp.uint8), None, {}, 'looks like \\(N, C, H, W\\)'),
    (onp.zeros((4, 3, 64, 64)), None, {'nhood_size': 6}, 'odd'),
    (onp.zeros((4, 3, 64, 64)), None, {'dir_repeats': 0}, 'dir_repeats'),
    (onp.zeros((4, 3, 64, 64)), None, {'seed': -1}, 'seed'),
])
def test_bad_inputs_raise(a, b, kwargs, match):
    if b is None:  # a valid partner where it can be; a's own check is the one tested
        b = onp.random.default_rng(0).uniform(-1, 1, (4,) + a.shape[1:])
    with pytest.raises(DCGANError, match=match):
        sliced_wasserstein(a, b, **kwargs)
    if 'b has' not in match:  # the same check on the other argument
        with pytest.raises(DCGANError, match=match.replace('a has', 'b has')):
            sliced_wasserstein(b, a, **kwargs)


def _faulty(real, fault):
    """`real` (np.matmul or np.einsum) giving products as a faulty BLAS kernel does: NaN entries
    (read from an output it never wrote), or finite wrong ones. numpy 2.5's OpenBLAS did both on
    qemu's default ARM64 CPU (its armv9sme kernels), and the SWD came out NaN."""
    def product(*args, **kwargs):
        out = real(*args, **kwargs)
        if out.ndim == 2:
            out[:, 1::3] = onp.nan if fault == 'nan' else 3 * out[:, 1::3]
        return out
    return product


@pytest.mark.parametrize('fault', ['nan', 'wrong'])
def test_a_wrong_blas_product_is_caught_and_redone_without_blas(halves, monkeypatch, fault):
    a, b = halves
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # the real BLAS's products pass the check
        expected = sliced_wasserstein(a, b, **FAST)
    monkeypatch.setattr(onp, 'matmul', _faulty(onp.matmul, fault))
    with pytest.warns(RuntimeWarning, match="numpy's BLAS computed a wrong matrix product"):
        per_level, mean = sliced_wasserstein(a, b, **FAST)
    # einsum sums in another order than BLAS: float32 rounding apart, the same distance
    onp.testing.assert_allclose(per_level, expected[0], rtol=1e-4)
    assert onp.isfinite(mean)


def test_a_wrong_product_without_blas_too_is_refused(halves, monkeypatch):
    a, b = halves
    monkeypatch.setattr(onp, 'matmul', _faulty(onp.matmul, 'wrong'))
    monkeypatch.setattr(onp, 'einsum', _faulty(onp.einsum, 'nan'))
    with pytest.warns(RuntimeWarning), pytest.raises(DCGANError, match='even without BLAS'):
        sliced_wasserstein(a, b, **FAST)
