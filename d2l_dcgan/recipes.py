"""Opt-in techniques beyond the book's recipe, for the run layer (`fit`, the CLI's `train`).

`Recipe()` is the book's recipe (RECIPES['book']): with it `fit` runs the book's update bit for
bit and samples as the book does. Each field switches one technique on; `RECIPES['improved']`
is the combination chosen from benchmarks/quality.py's measurements (docs/quality.md).
Randomness (augmentation, the noise that sets the averaged generator's BatchNorm statistics)
comes from the run's named streams, so a resumed run replays it exactly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

import numpy as onp
from mxnet import autograd, np
from mxnet.gluon import nn

from .errors import DCGANError

AUGMENTS = ('color', 'translation', 'cutout')  # Zhao et al.'s policy, applied in this order
BATCHNORM_SAMPLES = 512  # noise vectors whose statistics the averaged generator's BatchNorm gets


@dataclass(frozen=True)
class Recipe:
    """The run's techniques; every default is the book's."""
    # Karras et al. 2018 (Progressive GANs, sec. 4); Yazici et al. 2019 (averaging in GANs)
    ema_halflife: int = 0  # images over which G's weight average halves its memory; 0: off
    # Karras et al. 2020 (StyleGAN2-ADA, its ema_rampup): early on the average forgets faster
    ema_rampup: float = 0.0  # the half-life is at most this times the images seen; 0: off
    # Salimans et al. 2016, "Improved Techniques for Training GANs", sec. 3.4
    label_smoothing: float = 0.0  # D's target for real images is 1 - this; 0: the book's 1
    # Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"
    augment: tuple = ()  # ops of AUGMENTS on every image D sees, real and generated
    # Karras et al. 2020 (ADA): each op on each image with a chance p; here p ramps up with the
    # images seen, as augmenting from the start slows G early, before D has anything to overfit
    augment_ramp: int = 0  # images over which p rises linearly from 0 to 1; 0: p is always 1
    # Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule" (TTUR)
    lr_D: Optional[float] = None  # None: fit's lr
    lr_G: Optional[float] = None  # None: fit's lr
    # a step-size schedule: fast while G finds the data's colours and layout, slow to refine
    lr_decay: float = 1.0  # the rates fall geometrically to this share of their start ...
    lr_decay_images: int = 0  # ... over this many training images, then stay
    # Isola et al. 2017 (pix2pix, sec. 3.3): test-time BatchNorm with the test batch's statistics
    sample_batch_stats: bool = False
    # more steps for the same images: at small budgets a low rate is short of steps, not images
    batch_size: Optional[int] = None  # train's unless --batch-size is given (fit: data_iter's)

    def __post_init__(self):
        ops = tuple(self.augment.split(',') if isinstance(self.augment, str) else self.augment)
        ops = tuple(op.strip() for op in ops if op.strip())
        unknown = [op for op in ops if op not in AUGMENTS]
        if unknown or len(set(ops)) < len(ops):
            raise DCGANError(f'augment takes distinct ops of {", ".join(AUGMENTS)}; got '
                             f'{",".join(ops)}')
        object.__setattr__(self, 'augment', tuple(op for op in AUGMENTS if op in ops))
        if not (isinstance(self.augment_ramp, int) and self.augment_ramp >= 0):
            raise DCGANError(f'augment_ramp must be a whole number of images >= 0, got '
                             f'{self.augment_ramp!r}')
        if self.augment_ramp and not self.augment:
            raise DCGANError('augment_ramp ramps up the augmentation: it needs augment')
        if not (0 <= self.label_smoothing < 1):
            raise DCGANError(f'label_smoothing must be in [0, 1), got {self.label_smoothing}')
        if not (isinstance(self.ema_halflife, int) and self.ema_halflife >= 0):
            raise DCGANError(f'ema_halflife must be a whole number of images >= 0, got '
                             f'{self.ema_halflife!r}')
        if not (onp.isfinite(self.ema_rampup) and self.ema_rampup >= 0):
            raise DCGANError(f'ema_rampup must be a number >= 0, got {self.ema_rampup!r}')
        if self.ema_rampup and not self.ema_halflife:
            raise DCGANError('ema_rampup shortens the weight average\'s half-life: it needs '
                             'ema_halflife')
        for name in ('lr_D', 'lr_G'):
            value = getattr(self, name)
            if value is not None and not (onp.isfinite(value) and value > 0):
                raise DCGANError(f'{name} must be a positive number or None, got {value!r}')
        if not (isinstance(self.lr_decay_images, int) and self.lr_decay_images >= 0
                and 0 < self.lr_decay <= 1):
            raise DCGANError(f'lr_decay must be in (0, 1] and lr_decay_images a whole number '
                             f'>= 0, got {self.lr_decay!r} and {self.lr_decay_images!r}')
        if self.batch_size is not None and not (isinstance(self.batch_size, int)
                                                and self.batch_size > 0):
            raise DCGANError(f'batch_size must be a whole number > 0 or None, got '
                             f'{self.batch_size!r}')
        if (self.lr_decay < 1) != (self.lr_decay_images > 0):
            raise DCGANError('lr_decay and lr_decay_images go together: the rates fall to '
                             'lr_decay of their start over lr_decay_images images')

    @property
    def real_label(self):
        return 1.0 - self.label_smoothing

    @property
    def needs_seed(self):
        """True if the recipe draws random numbers of its own (from the run's streams)."""
        return bool(self.augment or self.ema_halflife)

    def lrs(self, lr):
        """(D's, G's) learning rates, given fit's `lr`."""
        return tuple(lr if v is None else v for v in (self.lr_D, self.lr_G))

    def augment_chance(self, images_seen):
        """The chance p that an op augments an image, after `images_seen` images."""
        return min(1.0, images_seen / self.augment_ramp) if self.augment_ramp else 1.0

    def lr_factor(self, images_seen):
        """The share of their start the learning rates are at after `images_seen` images."""
        if self.lr_decay == 1:
            return 1.0
        return self.lr_decay ** min(1.0, images_seen / self.lr_decay_images)

    def override(self, **values):
        """This recipe with the values that are not None in their place."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def to_json(self):
        return {**asdict(self), 'augment': list(self.augment)}

    @classmethod
    def from_json(cls, saved):
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if k == 'augment' else v)
                      for k, v in (saved or {}).items() if k in names})

    def describe(self):
        parts = [f'{k} {v}' for k, v in (('ema_halflife', self.ema_halflife),
                                          ('ema_rampup', self.ema_rampup),
                                          ('label_smoothing', self.label_smoothing),
                                          ('lr_D', self.lr_D), ('lr_G', self.lr_G),
                                          ('lr_decay', self.lr_decay_images and self.lr_decay),
                                          ('lr_decay_images', self.lr_decay_images),
                                          ('batch_size', self.batch_size)) if v]
        if self.augment:
            parts.append('augment ' + ','.join(self.augment))
        if self.augment_ramp:
            parts.append(f'augment_ramp {self.augment_ramp}')
        if self.sample_batch_stats:
            parts.append('sample_batch_stats')
        return ', '.join(parts) or "the book's"


RECIPES = {
    'book': Recipe(),
    # both nets at the chapter's TensorFlow tab's rate, G's weight average, its half-life ramped
    # up to 10,000 images, 4x the steps of batch 256, and DiffAugment ramped in over 200,000
    # images, as D began to win there; what it measured: docs/quality.md (the widths-64 sweep)
    'improved': Recipe(ema_halflife=10_000, ema_rampup=0.02, lr_D=0.0005, lr_G=0.0005,
                       batch_size=64, augment=AUGMENTS, augment_ramp=200_000),
}


# ------------------------------------------------------------------- differentiable augmentation

# each parameter's value that leaves an image as it is
IDENTITIES = (('color', 'brightness', 0), ('color', 'saturation', 1), ('color', 'contrast', 1),
              ('translation', 'shift', 0), ('cutout', 'mask', 1))


def augment_params(rng, ops, n, height, width, chance=1.0):
    """Zhao et al.'s random parameters for `n` images as float32 NumPy arrays (their
    DiffAugment_pytorch.py): brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast
    x U(0.5, 1.5); a translation by whole pixels up to 1/8 of the size, zeros shifted in; a
    cutout of half the size at a random centre. With `chance` < 1 each op is applied to each
    image with that chance, as in ADA; the others get the op's identity."""
    params = {}
    if 'color' in ops:
        params['brightness'] = rng.random((n, 1, 1, 1), dtype='float32') - 0.5
        params['saturation'] = rng.random((n, 1, 1, 1), dtype='float32') * 2
        params['contrast'] = rng.random((n, 1, 1, 1), dtype='float32') + 0.5
    if 'translation' in ops:
        params['shift'] = onp.stack(
            [rng.integers(-int(s * 0.125 + 0.5), int(s * 0.125 + 0.5) + 1, n)
             for s in (height, width)], axis=1)
    if 'cutout' in ops:
        mask = onp.ones((n, 1, height, width), dtype='float32')
        for i in range(n):
            box = []
            for s in (height, width):
                size = int(s * 0.5 + 0.5)
                centre = rng.integers(0, s + (1 - size % 2))
                box.append(slice(max(centre - size // 2, 0), max(centre - size // 2 + size, 0)))
            mask[(i, 0) + tuple(box)] = 0
        params['mask'] = mask
    if chance < 1:  # drawn after the parameters: with chance 1 the draws are those of before
        skip = {op: rng.random(n) >= chance for op in ops}
        for op, key, identity in IDENTITIES:
            if op in ops:
                params[key][skip[op]] = identity
    return params


def _shift_matrices(shifts, size):
    """(n, 1, size, size) 0/1 matrices S with (S @ x)[y] = x[y - shift], zero outside."""
    rows = onp.arange(size)
    return (rows[None, :, None] - shifts[:, None, None] == rows[None, None, :]).astype(
        'float32')[:, None]


def diff_augment(X, params):
    """Images X (N, C, H, W) in [-1, 1] augmented with `params` (augment_params), by MXNet ops,
    so gradients flow back to whatever made X. A translation is two matrix products with 0/1
    shift matrices: exact for whole pixels."""
    def const(a):
        return np.array(a, ctx=X.ctx, dtype=X.dtype)
    if 'brightness' in params:
        X = X + const(params['brightness'])
        mean = X.mean(axis=1, keepdims=True)
        X = (X - mean) * const(params['saturation']) + mean
        mean = X.mean(axis=(1, 2, 3), keepdims=True)
        X = (X - mean) * const(params['contrast']) + mean
    if 'shift' in params:
        rows = const(_shift_matrices(params['shift'][:, 0], X.shape[2]))
        cols = const(_shift_matrices(params['shift'][:, 1], X.shape[3]).transpose(0, 1, 3, 2))
        X = np.matmul(np.matmul(rows, X), cols)
    if 'mask' in params:
        X = X * const(params['mask'])
    return X


class DiffAugment:
    """The augmentation of one training step: every call draws new parameters from `rng`,
    each op applied to each image with `chance`."""

    def __init__(self, ops, rng, chance=1.0):
        self.ops, self.rng, self.chance = ops, rng, chance

    def __call__(self, X):
        n, _, height, width = X.shape
        return diff_augment(X, augment_params(self.rng, self.ops, n, height, width, self.chance))


# -------------------------------------------------------------------------------------- sampling

class Sampler:
    """How a recipe samples: `net` (the generator, or its weight average with `average`), with
    BatchNorm's running averages or, with `batch_stats`, each batch's own statistics (training
    mode, nothing recorded: the running averages stay as they are). sample(Z) -> images."""

    def __init__(self, net, batch_stats=False, average=False):
        self.net, self.batch_stats, self.average = net, batch_stats, average

    def __call__(self, Z):
        from .model import generate_images
        return generate_images(self.net, Z, self.batch_stats)


def recompute_batchnorm_stats(net, Z):
    """Set every BatchNorm layer's running mean and variance to the statistics of its input
    when `net` (not hybridized: the hooks see each layer) runs on the batch Z in training mode.
    Inference on Z then gives what training mode gives: the averaged weights get statistics of
    their own, not an average of the raw generator's."""
    seen = []
    layers = []
    net.apply(lambda block: layers.append(block) if isinstance(block, nn.BatchNorm) else None)
    hooks = [layer.register_forward_pre_hook(lambda block, args: seen.append((block, args[0])))
             for layer in layers]
    try:
        with autograd.train_mode():
            net(Z)
    finally:
        for hook in hooks:
            hook.detach()
    for layer, X in seen:
        axes = tuple(a for a in range(X.ndim) if a != 1)
        mean = X.mean(axis=axes)
        shape = [1] * X.ndim
        shape[1] = -1
        # the batch's own (biased) variance, the one training-mode BatchNorm divides by
        layer.running_mean.set_data(mean)
        layer.running_var.set_data(np.square(X - mean.reshape(tuple(shape))).mean(axis=axes))


class GeneratorEMA:
    """An exponential moving average of a generator's weights (BatchNorm's gamma and beta
    included), on one device, in a copy `net` built by d2l_dcgan.generator. Each step with B
    images moves it by 1 - 0.5 ** (B / halflife): its memory halves every `halflife` images,
    whatever the batch size; with `rampup`, every min(halflife, rampup x the images seen before
    the step), so that it does not remember the first, bad weights for long. The running
    statistics are not averaged: `refresh` recomputes them for the averaged weights (averaging
    them too measured worse than no average)."""

    def __init__(self, net_G, halflife, device, rampup=0.0):
        from .model import generator, generator_sizes
        source = net_G._collect_params_with_prefix()
        shapes = {k: p.shape for k, p in source.items()}
        try:
            n_G, out_channels, latent_dim = generator_sizes(shapes)
        except (KeyError, ValueError, IndexError) as e:
            raise DCGANError('the weight average (ema_halflife) needs a generator built by '
                             'd2l_dcgan.generator, with its shapes known') from e
        self.net = generator(n_G, out_channels)
        self.net.initialize(ctx=device)
        self.net(np.zeros((1, latent_dim, 1, 1), ctx=device))  # deferred shapes
        own = self.net._collect_params_with_prefix()
        if {k: p.shape for k, p in own.items()} != shapes:
            raise DCGANError('the weight average (ema_halflife) needs a generator built by '
                             'd2l_dcgan.generator')
        for k, p in own.items():
            p.set_data(source[k].data(device))
        self.pairs = [(source[k], own[k]) for k in own if source[k].grad_req != 'null']
        self.halflife, self.device, self.rampup = halflife, device, rampup

    def update(self, batch_size, images_seen=0):
        """One step of `batch_size` images, after `images_seen` images of training."""
        halflife = min(self.halflife, self.rampup * images_seen) if self.rampup else self.halflife
        beta = 0.5 ** (batch_size / halflife) if halflife > 0 else 0.0  # 0: a copy of G
        for source, average in self.pairs:
            average.set_data(average.data() * beta + source.data(self.device) * (1 - beta))

    def refresh(self, Z):
        """BatchNorm statistics for the averaged weights, from the noise Z (on its device)."""
        recompute_batchnorm_stats(self.net, Z)
