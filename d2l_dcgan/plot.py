"""The chapter's figures: loss curves with a sample grid, training images, leaky-ReLU curves."""
import os

import matplotlib.pyplot as plt
import numpy as onp
from d2l import mxnet as d2l
from IPython import display, get_ipython
from mxnet import np
from mxnet.gluon import nn

from .fileio import atomic_write


def in_notebook():
    try:
        shell = get_ipython()
        return shell is not None and 'IPKernelApp' in shell.config
    except Exception:  # a shell without a config
        return False


def save_figure(fig, path, **kwargs):
    """Write a figure atomically: readers of `path` never see half a PNG."""
    fmt = os.path.splitext(path)[1][1:] or 'png'
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))


def to_image_grid(X, nrows, ncols):
    """(N, C, H, W) in [-1, 1] -> one (nrows*H, ncols*W, C) float array in [0, 1], row by row."""
    X = X.asnumpy() if hasattr(X, 'asnumpy') else onp.asarray(X)
    X = onp.clip(X[:nrows * ncols].transpose(0, 2, 3, 1) / 2 + 0.5, 0, 1)
    if len(X) < nrows * ncols:
        X = onp.concatenate([X, onp.ones((nrows * ncols - len(X),) + X.shape[1:], X.dtype)])
    rows = [onp.concatenate(list(X[r * ncols:(r + 1) * ncols]), axis=1) for r in range(nrows)]
    grid = onp.concatenate(rows, axis=0)
    return grid[..., 0] if grid.shape[-1] == 1 else grid


def sample_grid(net_G, Z, nrows=3, ncols=7):
    """The chapter's 3x7 grid of generated images for the noise batch `Z`."""
    return to_image_grid(net_G(Z), nrows, ncols)


def save_image_grid(X, path, nrows=None, ncols=8):
    """Save (N, C, H, W) images in [-1, 1] as one PNG grid (N/ncols rows)."""
    nrows = nrows or -(-len(X) // ncols)
    grid = to_image_grid(X, nrows, ncols)
    atomic_write(path, lambda tmp: plt.imsave(tmp, grid, format='png',
                                              cmap='gray' if grid.ndim == 2 else None))


class GANAnimator:
    """The chapter's figure: loss_D and loss_G per epoch above, generated images below, and with
    `swd=True` a third panel of the sliced Wasserstein distance to the data per epoch.

    Like d2l.Animator it redraws live in Jupyter; elsewhere d2l.Animator would print figure reprs,
    so this one writes the figure to `path` (if given) after every epoch instead."""

    def __init__(self, num_epochs, path=None, swd=False, figsize=None):
        self.path, self.live = path, in_notebook()
        if self.live:
            d2l.use_svg_display()
        self.num_epochs = num_epochs
        nrows = 3 if swd else 2
        self.fig, self.axes = plt.subplots(nrows, 1, figsize=figsize or (5, 2.5 * nrows))
        self.fig.subplots_adjust(hspace=0.3)
        self.epochs, self.losses_D, self.losses_G, self.swd = [], [], [], []

    def _curve_axes(self, ax, ylabel):
        ax.set_xlabel('epoch')
        ax.set_ylabel(ylabel)
        ax.set_xlim(1, max(self.num_epochs, 2))
        ax.grid()

    def add(self, epoch, loss_D, loss_G, grid=None, swd=None):
        self.epochs.append(epoch)
        self.losses_D.append(loss_D)
        self.losses_G.append(loss_G)
        self.swd.append(swd)
        ax = self.axes[0]
        ax.cla()
        marker = 'o' if len(self.epochs) == 1 else None  # one point draws no line
        ax.plot(self.epochs, self.losses_D, '-', marker=marker, label='discriminator')
        ax.plot(self.epochs, self.losses_G, 'm--', marker=marker, label='generator')
        self._curve_axes(ax, 'loss')
        ax.legend()
        if grid is not None:
            self.axes[1].cla()
            self.axes[1].imshow(grid, cmap='gray' if grid.ndim == 2 else None)
            self.axes[1].axis('off')
        if len(self.axes) > 2:
            ax = self.axes[2]
            ax.cla()
            points = [(e, v) for e, v in zip(self.epochs, self.swd) if v is not None]
            if points:
                ax.plot(*zip(*points), 'g-o', markersize=3, label='SWD x 1e3 (lower is closer)')
                ax.legend()
            self._curve_axes(ax, 'SWD to data')
        if self.live:
            display.display(self.fig)
            display.clear_output(wait=True)
        if self.path:
            save_figure(self.fig, self.path)

    def close(self):
        plt.close(self.fig)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def show_images(X, num_rows=4, num_cols=5, path=None):
    """The chapter's first figure: the first num_rows*num_cols images of a batch X in [-1, 1]."""
    d2l.set_figsize((4, 4))
    imgs = X[:num_rows * num_cols].transpose(0, 2, 3, 1) / 2 + 0.5
    imgs = imgs.asnumpy() if hasattr(imgs, 'asnumpy') else imgs
    axes = d2l.show_images(onp.clip(imgs, 0, 1), num_rows=num_rows, num_cols=num_cols)
    if path:
        save_figure(plt.gcf(), path)
    return axes


def plot_leaky_relu(alphas=(0, .2, .4, .6, .8, 1), path=None):
    """The chapter's leaky-ReLU curves on [-2, 1) for each alpha (alpha 0 is plain ReLU)."""
    x = np.arange(-2, 1, 0.1)
    Y = [nn.LeakyReLU(alpha)(x).asnumpy() for alpha in alphas]
    # d2l.plot's default has 4 line styles, which would silently drop the last two alphas
    fmts = ('-', 'm--', 'g-.', 'r:', 'c-', 'k--')
    d2l.plot(x.asnumpy(), Y, 'x', 'y', [str(a) for a in alphas], fmts=fmts[:len(alphas)])
    if path:
        save_figure(plt.gcf(), path)
    return plt.gca()
