"""Shared fixtures: small image folders on disk, and a generator whose images vary with Z."""
import atexit
import os
import shutil
import tempfile

# the tests' own data cache, set before d2l_dcgan reads it: no test fills or reads the machine's
os.environ['D2L_DCGAN_CACHE'] = tempfile.mkdtemp(prefix='d2l_dcgan_test_cache_')
atexit.register(shutil.rmtree, os.environ['D2L_DCGAN_CACHE'], ignore_errors=True)

import d2l_dcgan  # noqa: F401,E402  before any test module's mxnet/d2l import: MXNet's threads

import numpy as onp
import pytest
from PIL import Image


@pytest.fixture(scope='session')
def sprites_root(tmp_path_factory):
    """32 procedurally drawn sprites (8 per kind), made once per test session."""
    from d2l_dcgan import make_sprites
    return make_sprites(str(tmp_path_factory.mktemp('sprites') / 'sprites-32'), num_images=32)


@pytest.fixture
def image_folder(tmp_path):
    """An ImageFolder root `tmp_path/images` with 2 classes of 3 random 96x120 RGB PNGs each.

    Not 64x64, so the chapter's Resize(64) has work to do."""
    root = tmp_path / 'images'
    rng = onp.random.default_rng(0)
    for cls in ('a', 'b'):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, size=(96, 120, 3), dtype=onp.uint8)
            Image.fromarray(pixels).save(root / cls / f'{i}.png')
    return root


@pytest.fixture(scope='session')
def random_G(tmp_path_factory):
    """net_G.params of a generator(8) with large random weights.

    One fresh from Normal(0.02), or collapsed after 2 epochs, draws nearly the same image for
    every Z: a seed test on it would pass without the seed doing anything."""
    from mxnet import init, np
    from d2l_dcgan import generator
    path = tmp_path_factory.mktemp('random_G') / 'net_G.params'
    net_G = generator(8)
    net_G.initialize(init.Normal(0.5))
    net_G(np.zeros((1, 100, 1, 1)))
    net_G.save_parameters(str(path))
    return path
