"""The chapter's figures, drawn headless: training images, leaky-ReLU curves, the loss figure."""
import matplotlib

matplotlib.use('Agg')

import matplotlib.pyplot as plt  # noqa: E402
import numpy as onp  # noqa: E402
import pytest  # noqa: E402
from mxnet import np  # noqa: E402
from PIL import Image  # noqa: E402

from d2l_dcgan import GANAnimator, plot_leaky_relu, save_image_grid, show_images  # noqa: E402
from d2l_dcgan.plot import in_notebook, to_image_grid  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close('all')


def test_grid_of_21_images_is_3_rows_of_7_in_0_1():
    X = onp.linspace(-1, 1, 21 * 3 * 4 * 5, dtype='float32').reshape(21, 3, 4, 5)
    grid = to_image_grid(X, 3, 7)
    assert grid.shape == (3 * 4, 7 * 5, 3)
    assert grid.min() == 0 and grid.max() == 1
    # image 8 (row 1, column 1) sits at its place, as (C, H, W) -> (H, W, C) / 2 + 0.5
    onp.testing.assert_allclose(grid[4:8, 5:10], X[8].transpose(1, 2, 0) / 2 + 0.5)


def test_grayscale_grid_and_missing_images_are_white():
    grid = to_image_grid(-onp.ones((5, 1, 2, 2), 'float32'), 2, 3)
    assert grid.shape == (4, 6)
    assert (grid[:2, :6] == 0).all() and (grid[2:, :4] == 0).all() and (grid[2:, 4:] == 1).all()


def test_save_image_grid_writes_a_png(tmp_path):
    path = tmp_path / 'grid.png'
    save_image_grid(np.zeros((10, 3, 8, 8)), str(path), ncols=4)
    with Image.open(path) as img:
        assert img.size == (4 * 8, 3 * 8)
    assert [p.name for p in tmp_path.iterdir()] == ['grid.png']


def test_show_images_draws_the_first_20(tmp_path):
    X = np.random.uniform(-1, 1, size=(32, 3, 64, 64))
    axes = show_images(X, path=str(tmp_path / 'first20.png'))
    assert len(axes) == 20
    onp.testing.assert_allclose(axes[7].get_images()[0].get_array(),
                                X[7].transpose(1, 2, 0).asnumpy() / 2 + 0.5, rtol=1e-6)
    assert (tmp_path / 'first20.png').stat().st_size > 0


def test_leaky_relu_curves_for_six_alphas(tmp_path):
    ax = plot_leaky_relu(path=str(tmp_path / 'leaky.png'))
    lines = ax.get_lines()
    assert len(lines) == 6  # d2l.plot alone would draw only 4
    for alpha, line in zip((0, .2, .4, .6, .8, 1), lines):
        x, y = line.get_data()
        assert x[0] == pytest.approx(-2) and y[0] == pytest.approx(-2 * alpha)
        assert y[-1] == pytest.approx(x[-1])  # the identity for x > 0
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ['0', '0.2', '0.4', '0.6',
                                                                   '0.8', '1']


@pytest.mark.parametrize('swd', [False, True])
def test_gan_animator_writes_the_figure_every_epoch(tmp_path, swd):
    path = tmp_path / 'dcgan.png'
    animator = GANAnimator(3, path=str(path), swd=swd)
    assert not animator.live and not in_notebook()
    assert len(animator.axes) == (3 if swd else 2)
    grid = onp.ones((192, 448, 3))
    for epoch, (d, g, s) in enumerate([(0.9, 5.0, 300.0), (0.5, 3.0, 250.0)], 1):
        animator.add(epoch, d, g, grid, swd=s)
        assert path.stat().st_size > 0
    d_line, g_line = animator.axes[0].get_lines()
    assert list(d_line.get_ydata()) == [0.9, 0.5] and list(g_line.get_ydata()) == [5.0, 3.0]
    if swd:
        assert list(animator.axes[2].get_lines()[0].get_ydata()) == [300.0, 250.0]
    animator.close()
