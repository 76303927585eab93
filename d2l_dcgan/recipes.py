"""Opt-in techniques beyond the book's recipe, for the run layer (`fit`, the CLI's `train`).

`Recipe()` is the book's recipe (RECIPES['book']): with it `fit` runs the book's update bit for
bit and samples as the book does. Each field switches one technique on; `RECIPES['improved']`
is the combination chosen from benchmarks/quality.py's measurements (docs/quality.md).
Randomness (augmentation, the noise that sets the averaged generator's BatchNorm statistics)
comes from the run's named streams, so a resumed run replays it exactly.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Optional

import numpy as onp
from mxnet import autograd, np
from mxnet.gluon import nn

from .errors import DCGANError
from .model import generate_images, generator, generator_sizes

AUGMENTS = ('color', 'translation', 'cutout')  # Zhao et al.'s policy, applied in this order
BATCHNORM_SAMPLES = 512  # noise vectors whose statistics the averaged generator's BatchNorm gets


@dataclass(frozen=True)
class Bound:
    """A recipe option's numbers: a `kind` (int: whole) >= low (> low if `above`) and < high
    (<= high if `upto`), or None if `none`; `images`: a count of images (50000, 50k)."""
    kind: type
    low: float
    high: Optional[float] = None
    above: bool = False
    upto: bool = False
    none: bool = False
    images: bool = False

    def holds(self, value):
        if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
            return value is None and self.none
        high = self.high is None or value < self.high or (self.upto and value == self.high)
        return ((self.kind is float or isinstance(value, numbers.Integral)) and
                math.isfinite(value) and (value > self.low if self.above else value >= self.low)
                and high)

    def check(self, name, value):
        if not self.holds(value):
            noun = 'a whole number' if self.kind is int else 'a number'
            limit = f'{">" if self.above else ">="} {self.low}' + (
                '' if self.high is None else f' and {"<=" if self.upto else "<"} {self.high}')
            raise DCGANError(f'{name} must be {noun} {limit}{" or None" if self.none else ""}, '
                             f'got {value!r}')
        return value


class Switch:
    """A recipe option that is on or off."""

    def check(self, name, value):
        if not isinstance(value, bool):
            raise DCGANError(f'{name} must be True or False, got {value!r}')
        return value


@dataclass(frozen=True)
class Ops:
    """A recipe option naming distinct ops of `ops` (a tuple, or comma-separated text), kept
    in the order of `ops`."""
    ops: tuple

    def check(self, name, value):
        given = tuple(value.split(',') if isinstance(value, str) else value)
        given = tuple(op.strip() for op in given if op.strip())
        if set(given) - set(self.ops) or len(set(given)) < len(given):
            raise DCGANError(f'{name} takes distinct ops of {", ".join(self.ops)}; got '
                             f'{",".join(given)}')
        return tuple(op for op in self.ops if op in given)


def option(default, values, help, metavar=None, needs=None, flag=True, resume='kept'):
    """A Recipe field, declared once: its default, its `values` (Bound, Switch or Ops), the
    help line (naming other options as {name}, which train spells as its flags) and metavar of
    its flag of train (`flag`: False if train's own flag gives it), the option it `needs` to be
    on, as (name, why), and what --resume does with it (the recipe a run trained with is kept:
    a flag given must agree)."""
    return field(default=default, metadata=dict(values=values, help=help, metavar=metavar,
                                                needs=needs, flag=flag, resume=resume))


@dataclass(frozen=True)
class Recipe:
    """The run's techniques; every default is the book's. Each field is one option, declared
    once (`option`): train's flags, --resume's checks and describe() come from it."""
    # Karras et al. 2018 (Progressive GANs, sec. 4); Yazici et al. 2019 (averaging in GANs)
    ema_halflife: int = option(
        0, Bound(int, 0), 'average the generator\'s weights, their memory halving every '
        'IMAGES training images (0: off); writes net_G_ema.params', 'IMAGES')
    # Karras et al. 2020 (StyleGAN2-ADA, its ema_rampup): early on the average forgets faster
    ema_rampup: float = option(
        0.0, Bound(float, 0), 'the average\'s half-life is at most X times the images seen so '
        'far, so it forgets the first weights sooner (0: off)', 'X',
        needs=('ema_halflife', 'shortens the weight average\'s half-life'))
    # Salimans et al. 2016, "Improved Techniques for Training GANs", sec. 3.4
    label_smoothing: float = option(
        0.0, Bound(float, 0, 1), 'one-sided label smoothing: D\'s target for real images is '
        '1 - X (0: off)', 'X')
    # Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"
    augment: tuple = option(
        (), Ops(AUGMENTS), 'differentiable augmentation of every image D sees: '
        f'{",".join(AUGMENTS)} (all without OPS) or none', 'OPS')
    # Karras et al. 2020 (ADA): each op on each image with a chance p; here p ramps up with the
    # images seen, as augmenting from the start slows G early, before D has anything to overfit
    augment_ramp: int = option(
        0, Bound(int, 0), 'each op augments each image with a chance that rises from 0 to 1 '
        'over IMAGES training images (0: always)', 'IMAGES',
        needs=('augment', 'ramps up the augmentation'))
    # Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule" (TTUR); None: fit's lr
    lr_D: Optional[float] = option(
        None, Bound(float, 0, above=True, none=True),
        'the discriminator\'s learning rate (default: {lr})')
    lr_G: Optional[float] = option(
        None, Bound(float, 0, above=True, none=True),
        'the generator\'s learning rate (default: {lr})')
    # a step-size schedule: fast while G finds the data's colours and layout, slow to refine
    lr_decay: float = option(
        1.0, Bound(float, 0, 1, above=True, upto=True), 'both learning rates fall '
        'geometrically to X times their start over {lr_decay_images} images, then stay (1: off)',
        'X', needs=('lr_decay_images', 'is reached over lr_decay_images images'))
    lr_decay_images: int = option(
        0, Bound(int, 0, images=True), 'the training images over which {lr_decay} falls '
        '(50000, 50k)', 'IMAGES', needs=('lr_decay', 'times the rates\' fall to lr_decay'))
    # Isola et al. 2017 (pix2pix, sec. 3.3): test-time BatchNorm with the test batch's statistics
    sample_batch_stats: bool = option(
        False, Switch(), 'sample (grids, SWD) with each batch\'s BatchNorm statistics, not the '
        'running averages')
    # more steps for the same images: at small budgets a low rate is short of steps, not images
    batch_size: Optional[int] = option(  # train's unless --batch-size is given (fit: data_iter's)
        None, Bound(int, 0, above=True, none=True), 'images per step', flag=False)

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, f.metadata['values'].check(
                f.name, getattr(self, f.name)))
        for f in fields(self):
            other, why = f.metadata['needs'] or (None, '')
            if other and self.is_on(f.name) and not self.is_on(other):
                raise DCGANError(f'{f.name} {why}: it needs {other}')

    def is_on(self, name):
        """True if option `name` is not at its default (the book's)."""
        return getattr(self, name) != Recipe.__dataclass_fields__[name].default

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
        """The options not at their default, as 'ema_halflife 10000, augment color,cutout'."""
        def said(f, value):
            return f.name if value is True else f'{f.name} ' + (
                ','.join(value) if isinstance(value, tuple) else str(value))
        return ', '.join(said(f, getattr(self, f.name)) for f in fields(self)
                         if self.is_on(f.name)) or "the book's"


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
