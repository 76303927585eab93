"""The chapter's shape checks, plus: hybridized nets compute exactly what imperative ones do."""
import mxnet as mx
import numpy as onp
import pytest
from mxnet import autograd, init, np

from d2l_dcgan import D_block, G_block, discriminator, generator
from twins import twins

pytestmark = pytest.mark.numerics  # see pytest.ini


def test_g_block_doubles_spatial_size():
    x = np.zeros((2, 3, 16, 16))
    g_blk = G_block(20)
    g_blk.initialize()
    assert g_blk(x).shape == (2, 20, 32, 32)


def test_g_block_from_1x1_to_4x4():
    x = np.zeros((2, 3, 1, 1))
    g_blk = G_block(20, strides=1, padding=0)
    g_blk.initialize()
    assert g_blk(x).shape == (2, 20, 4, 4)


def test_d_block_halves_spatial_size():
    x = np.zeros((2, 3, 16, 16))
    d_blk = D_block(20)
    d_blk.initialize()
    assert d_blk(x).shape == (2, 20, 8, 8)


def test_full_size_generator_shape_and_range():
    net_G = generator()
    net_G.initialize(init.Normal(0.02))
    x = np.random.normal(size=(1, 100, 1, 1))
    y = net_G(x)
    assert y.shape == (1, 3, 64, 64)
    assert float(np.abs(y).max()) <= 1  # tanh
    # the chapter's widths: 512 -> 256 -> 128 -> 64 -> 3 channels
    assert [blk.conv2d_trans.weight.shape[1] for blk in list(net_G)[:4]] == [512, 256, 128, 64]


def test_full_size_discriminator_shape():
    net_D = discriminator()
    net_D.initialize(init.Normal(0.02))
    assert net_D(np.zeros((1, 3, 64, 64))).shape == (1, 1, 1, 1)
    assert [blk.conv2d.weight.shape[0] for blk in list(net_D)[:4]] == [64, 128, 256, 512]


def test_blocks_have_no_conv_bias():
    assert G_block(8).conv2d_trans.bias is None
    assert D_block(8).conv2d.bias is None


def test_alpha_zero_discriminator_is_plain_relu():
    d_blk = D_block(4, alpha=0)
    d_blk.initialize(init.Normal(1))
    y = d_blk(np.random.normal(size=(2, 3, 8, 8)))
    assert float(y.min()) == 0.0
    d_blk = D_block(4)
    d_blk.initialize(init.Normal(1))
    assert float(d_blk(np.random.normal(size=(2, 3, 8, 8))).min()) < 0


@pytest.mark.parametrize('make,shape', [
    (lambda: generator(8), (4, 100, 1, 1)),
    (lambda: discriminator(8), (4, 3, 64, 64)),
    (lambda: generator(), (2, 100, 1, 1)),
])
def test_hybridized_equals_imperative(make, shape):
    mx.random.seed(0)
    x = np.random.normal(size=shape)
    a, b = twins(make, x)
    b.hybridize(static_alloc=True, static_shape=True)
    onp.testing.assert_allclose(a(x).asnumpy(), b(x).asnumpy(), rtol=1e-5, atol=1e-6)
    grads = []
    for net in (a, b):
        with autograd.record():  # training mode: batch statistics in BatchNorm
            y = net(x)
            loss = (y ** 2).sum()
        loss.backward()
        grads.append([p.grad().asnumpy() for p in net.collect_params().values()
                      if p.grad_req != 'null'])
    assert len(grads[0]) == len(grads[1]) > 0
    for ga, gb in zip(*grads):
        onp.testing.assert_allclose(ga, gb, rtol=1e-4, atol=1e-6)
