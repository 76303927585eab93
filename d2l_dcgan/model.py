"""The chapter's generator and discriminator, as hybridizable Gluon blocks."""
import numpy as onp
from mxnet import autograd, np
from mxnet.gluon import nn


class G_block(nn.HybridBlock):
    """Conv2DTranspose (no bias) -> BatchNorm -> ReLU: doubles the spatial size by default."""

    def __init__(self, channels, kernel_size=4, strides=2, padding=1, **kwargs):
        super(G_block, self).__init__(**kwargs)
        self.conv2d_trans = nn.Conv2DTranspose(
            channels, kernel_size, strides, padding, use_bias=False)
        self.batch_norm = nn.BatchNorm()
        self.activation = nn.Activation('relu')

    def hybrid_forward(self, F, X):
        return self.activation(self.batch_norm(self.conv2d_trans(X)))


class D_block(nn.HybridBlock):
    """Conv2D (no bias) -> BatchNorm -> LeakyReLU(alpha): halves the spatial size by default."""

    def __init__(self, channels, kernel_size=4, strides=2, padding=1,
                 alpha=0.2, **kwargs):
        super(D_block, self).__init__(**kwargs)
        self.conv2d = nn.Conv2D(
            channels, kernel_size, strides, padding, use_bias=False)
        self.batch_norm = nn.BatchNorm()
        # alpha=0 is exercise 1's plain ReLU
        self.activation = nn.LeakyReLU(alpha)

    def hybrid_forward(self, F, X):
        return self.activation(self.batch_norm(self.conv2d(X)))


def generator(n_G=64, out_channels=3):
    """Latent (N, latent_dim, 1, 1) -> images (N, out_channels, 64, 64) in [-1, 1]."""
    net_G = nn.HybridSequential()
    net_G.add(G_block(n_G*8, strides=1, padding=0),  # Output: (64 * 8, 4, 4)
              G_block(n_G*4),  # Output: (64 * 4, 8, 8)
              G_block(n_G*2),  # Output: (64 * 2, 16, 16)
              G_block(n_G),    # Output: (64, 32, 32)
              nn.Conv2DTranspose(
                  out_channels, kernel_size=4, strides=2, padding=1,
                  use_bias=False, activation='tanh'))  # Output: (3, 64, 64)
    return net_G


def discriminator(n_D=64, alpha=0.2):
    """Images (N, C, 64, 64) -> one real/fake logit per image, shape (N, 1, 1, 1)."""
    net_D = nn.HybridSequential()
    net_D.add(D_block(n_D, alpha=alpha),    # Output: (64, 32, 32)
              D_block(n_D*2, alpha=alpha),  # Output: (64 * 2, 16, 16)
              D_block(n_D*4, alpha=alpha),  # Output: (64 * 4, 8, 8)
              D_block(n_D*8, alpha=alpha),  # Output: (64 * 8, 4, 4)
              nn.Conv2D(1, kernel_size=4, use_bias=False))  # Output: (1, 1, 1)
    return net_D


def generator_sizes(shapes):
    """(n_G, out_channels, latent_dim) of a `generator` from its parameters' shapes, keyed by
    their structural names ('0.conv2d_trans.weight', as .params files and
    `_collect_params_with_prefix` name them). KeyError or ValueError if it is no generator()."""
    latent_dim, n_G8 = shapes['0.conv2d_trans.weight'][:2]
    if not latent_dim or n_G8 % 8:
        raise ValueError(f'not a generator(): its first layer is {latent_dim} -> {n_G8}')
    return n_G8 // 8, shapes['4.weight'][1], latent_dim


def generate_images(net_G, Z, batch_stats=False):
    """net_G(Z); with `batch_stats` BatchNorm normalises with the batch's own statistics
    (training mode, nothing recorded: the running averages stay as they are)."""
    if not batch_stats:
        return net_G(Z)
    with autograd.train_mode():
        return net_G(Z)


def sample(net_G, Z, device, chunk=256, batch_stats=False):
    """net_G's images for the noise Z (a NumPy array), in inference mode, as NumPy (N, C, H, W)
    in [-1, 1]; `chunk` vectors at a time, so a large Z fits in device memory.

    `batch_stats`: each chunk is normalised with its own statistics (see generate_images)."""
    return onp.concatenate([
        generate_images(net_G, np.array(Z[i:i + chunk], ctx=device), batch_stats).asnumpy()
        for i in range(0, len(Z), chunk)])
