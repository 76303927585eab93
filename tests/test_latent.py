"""Walks in the latent space: slerp, the seeded walks, and `generate --interpolate K`."""
import numpy as onp
import pytest
from PIL import Image

from d2l_dcgan import cli
from d2l_dcgan.commands.sampling import load_generator
from d2l_dcgan.latent import latent_walks, slerp
from d2l_dcgan.model import sample
from d2l_dcgan.plot import save_image_grid

pytestmark = pytest.mark.numerics  # see pytest.ini


def test_slerp_ends_exactly_at_its_points_and_keeps_the_norm():
    rng = onp.random.default_rng(0)
    z0, z1 = rng.standard_normal((2, 100)).astype('float32')
    assert slerp(z0, z1, 0.0).tobytes() == z0.tobytes()
    assert slerp(z0, z1, 1.0).tobytes() == z1.tobytes()
    # two orthogonal points of norm 10, as Gaussian latents nearly are: slerp stays on the
    # sphere, the straight line cuts inside it to 10 / sqrt(2) at its midpoint
    a, b = onp.zeros(100, 'float32'), onp.zeros(100, 'float32')
    a[0], b[1] = 10, 10
    for t in (0.25, 0.5, 0.75):
        assert onp.linalg.norm(slerp(a, b, t)) == pytest.approx(10, rel=1e-6)
    assert onp.linalg.norm((a + b) / 2) == pytest.approx(10 / 2**0.5)
    onp.testing.assert_allclose(slerp(a, b, 0.5)[:2], [10 / 2**0.5] * 2, rtol=1e-6)
    # parallel points: the straight line
    onp.testing.assert_allclose(slerp(a, 3 * a, 0.5), 2 * a, rtol=1e-6)


def test_walks_are_seeded_rows_from_one_endpoint_to_the_other():
    Z, ends = latent_walks(3, 5, 100, seed=7)
    assert Z.shape == (15, 100, 1, 1) and Z.dtype == onp.float32
    assert ends.shape == (3, 2, 100, 1, 1)
    onp.testing.assert_array_equal(Z[0::5], ends[:, 0])
    onp.testing.assert_array_equal(Z[4::5], ends[:, 1])
    Z2, _ = latent_walks(3, 5, 100, seed=7)
    onp.testing.assert_array_equal(Z, Z2)
    assert not onp.array_equal(latent_walks(3, 5, 100, seed=8)[0], Z)
    # the middle points are new, and each row moves steadily away from its start
    dist = onp.linalg.norm((Z.reshape(3, 5, 100) - Z.reshape(3, 5, 100)[:, :1]), axis=2)
    assert (onp.diff(dist, axis=1) > 0).all()
    with pytest.raises(ValueError):
        latent_walks(1, 1, 100, seed=0)


def tiles(path, size=64):
    with Image.open(path) as img:
        a = onp.asarray(img.convert('RGB')).astype(int)
    return [[a[r:r + size, c:c + size] for c in range(0, a.shape[1], size)]
            for r in range(0, a.shape[0], size)]


def test_generate_interpolate_rows_end_at_plain_samples_of_their_points(random_G, tmp_path):
    out = tmp_path / 'walks.png'
    assert cli.generate_main(['--params', str(random_G), '--num-samples', '12', '--interpolate',
                              '4', '--seed', '3', '--device', 'cpu', '--out', str(out)]) == 0
    walks = tiles(out)
    assert len(walks) == 3 and all(len(row) == 4 for row in walks)
    # the two points of each row, sampled on their own (a batch of 2, not 12)
    from mxnet import cpu
    net_G, latent_dim = load_generator(str(random_G), cpu())
    _, ends = latent_walks(3, 4, latent_dim, seed=3)
    plain = tmp_path / 'plain.png'
    save_image_grid(onp.concatenate([sample(net_G, e, cpu()) for e in ends]), str(plain),
                    ncols=2)
    for row, (first, last) in zip(walks, tiles(plain)):
        assert onp.abs(row[0] - first).max() <= 1  # one level of 8-bit rounding at most
        assert onp.abs(row[-1] - last).max() <= 1
        assert onp.abs(row[0] - row[-1]).max() > 50  # the two points draw different images
        assert onp.abs(row[1] - row[0]).max() > 0 and onp.abs(row[2] - row[-1]).max() > 0


def test_generate_interpolate_needs_whole_rows(random_G, tmp_path, capfd):
    code = cli.generate_main(['--params', str(random_G), '--num-samples', '10', '--interpolate',
                              '4', '--device', 'cpu', '--out', str(tmp_path / 'w.png')],
                             prog='generate')
    out, err = capfd.readouterr()
    assert code == 2
    assert err == ('generate: error: --num-samples 10 is not a multiple of --interpolate 4 (rows '
                   'of 4 images) (see --help)\n')
    assert not (tmp_path / 'w.png').exists()
