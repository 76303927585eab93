"""The opt-in techniques of d2l_dcgan.recipes: each does what it says, the book's recipe stays the
book's bit for bit, and everything random in them replays exactly on resume."""
import json
import os
import shutil
import subprocess
import sys
from dataclasses import fields, replace

import mxnet as mx
import numpy as onp
import pytest
from mxnet import autograd, gluon, init, np

from d2l_dcgan import (DCGANError, discriminator, generator, load_image_folder, make_sprites,
                       train)
from d2l_dcgan.commands.resume import CHANGEABLE, KEPT, NEW, ON_RESUME, RECIPE_FLAGS
from d2l_dcgan.commands.recipe_flags import recipe_defaults, train_recipe
from d2l_dcgan.commands.train import train_parser
from d2l_dcgan.flags import parse_given, seed_everything
from d2l_dcgan import checkpoint as ckpt
from d2l_dcgan import run as run_module
from d2l_dcgan.model import sample
from d2l_dcgan.recipes import (AUGMENTS, RECIPES, DiffAugment, GeneratorEMA, Recipe, Sampler,
                               augment_params, diff_augment, recompute_batchnorm_stats)
from d2l_dcgan.run import Run, fit
from d2l_dcgan.train import _step_D, _step_G, make_trainers
from twins import twins
from timeouts import limit

pytestmark = pytest.mark.numerics  # see pytest.ini

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, 'PYTHONPATH': os.pathsep.join(
    [REPO_ROOT] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else []))}
LATENT = 16


@pytest.fixture(scope='module')
def sprites(tmp_path_factory):
    return make_sprites(str(tmp_path_factory.mktemp('data') / 'sprites'), num_images=96)


def _weights(net):
    # MXNet 1.9.1 (oneDNN): reading a weight while an op on it is in flight can return it
    # scrambled (seen here as a permutation of the values); wait for the engine first
    mx.nd.waitall()
    return [p.data().asnumpy() for p in net.collect_params().values()]


def _adam(net, lr=0.005):
    return gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': lr, 'beta1': 0.5})


def _batch(n=8, seed=0):
    rng = onp.random.default_rng(seed)
    return (np.array(rng.uniform(-1, 1, (n, 3, 64, 64)).astype('float32')),
            np.array(rng.standard_normal((n, LATENT, 1, 1)).astype('float32')))


def _nets(X, Z):
    """Two pairs (D, G) with the same weights, imperative, so the hooks and grads are plain."""
    D = twins(lambda: discriminator(8), X)
    G = twins(lambda: generator(8), Z)
    return (D[0], G[0]), (D[1], G[1])


def _bce(logits, target):
    """Sigmoid binary cross-entropy per example, in float64: the formula, not MXNet's."""
    x = onp.asarray(logits, dtype='float64').reshape(len(logits), -1).mean(axis=1)
    return onp.maximum(x, 0) - x * target + onp.log1p(onp.exp(-onp.abs(x)))


def _identity_params(n, height=64, width=64):
    return {'brightness': onp.zeros((n, 1, 1, 1), 'float32'),
            'saturation': onp.ones((n, 1, 1, 1), 'float32'),
            'contrast': onp.ones((n, 1, 1, 1), 'float32'),
            'shift': onp.zeros((n, 2), 'int64'),
            'mask': onp.ones((n, 1, height, width), 'float32')}


# ------------------------------------------------------------------------- the book stays the book

def test_book_recipe_is_train_bit_for_bit(sprites):
    """fit with --recipe book's Recipe runs train's update (the book's equations) to the bit."""
    runs = []
    for loop, kwargs in ((train, {}), (fit, {'recipe': RECIPES['book'], 'verbose': False})):
        seed_everything(3)
        net_D, net_G = discriminator(8), generator(8)
        history = loop(net_D, net_G, load_image_folder(sprites, batch_size=32), 2, 0.005, LATENT,
                       mx.cpu(), animator=None, **kwargs)
        runs.append(([(r['loss_D'], r['loss_G']) for r in history],
                     _weights(net_D) + _weights(net_G)))
    assert runs[0][0] == runs[1][0] and len(runs[0][0]) == 2
    assert all((a == b).all() for a, b in zip(runs[0][1], runs[1][1]))
    assert RECIPES['book'] == Recipe() and not Recipe().needs_seed


# ------------------------------------------------------------------------------- label smoothing

@pytest.mark.parametrize('real_label', [1.0, 0.9])
def test_label_smoothing_is_Ds_real_target(real_label):
    X, Z = _batch()
    (net_D, net_G), _ = _nets(X, Z)
    with autograd.train_mode():  # the logits _step_D will see (no update without a backward)
        real_Y, fake_Y = net_D(X).asnumpy(), net_D(net_G(Z)).asnumpy()
    loss_D, _ = _step_D([X], [Z], net_D, net_G, gluon.loss.SigmoidBCELoss(), _adam(net_D),
                        real_label=real_label)
    expected = ((_bce(real_Y, real_label) + _bce(fake_Y, 0.0)) / 2).sum()
    assert float(loss_D) == pytest.approx(expected, rel=1e-5)
    other = ((_bce(real_Y, 1.9 - real_label) + _bce(fake_Y, 0.0)) / 2).sum()
    assert abs(float(loss_D) - other) > 1e-3  # 0.9 and 1 give different losses here


def test_fit_passes_the_recipes_real_label(sprites, monkeypatch):
    seen = []
    real_train_step = run_module.train_step

    def spy(*args, **kwargs):
        seen.append(kwargs['real_label'])
        return real_train_step(*args, **kwargs)

    monkeypatch.setattr(run_module, 'train_step', spy)
    fit(discriminator(8), generator(8), load_image_folder(sprites, batch_size=48), 1, 0.005,
        LATENT, mx.cpu(), seed=0, animator=None, verbose=False,
        recipe=Recipe(label_smoothing=0.1))
    assert seen == [0.9, 0.9]


# ---------------------------------------------------------------------------------- augmentation

def test_augmentation_at_identity_parameters_changes_nothing():
    X, Z = _batch()
    assert onp.allclose(diff_augment(X, _identity_params(8)).asnumpy(), X.asnumpy(), atol=1e-6)
    plain, augmented = _nets(X, Z)
    loss = gluon.loss.SigmoidBCELoss()
    a, _ = _step_D([X], [Z], *plain, loss, _adam(plain[0]))
    b, _ = _step_D([X], [Z], *augmented, loss, _adam(augmented[0]),
                   augment=lambda x: diff_augment(x, _identity_params(x.shape[0])))
    assert float(a) == pytest.approx(float(b), rel=1e-5)


def test_augmentation_ops_are_zhao_et_al():
    """Each op against NumPy: colour by its formulas, translation by slicing, cutout's box."""
    rng = onp.random.default_rng(1)
    X = rng.uniform(-1, 1, (4, 3, 16, 16)).astype('float32')
    params = augment_params(onp.random.default_rng(2), AUGMENTS, 4, 16, 16)
    b, s, c = params['brightness'], params['saturation'], params['contrast']
    assert (-0.5 <= b).all() and (b < 0.5).all() and (0 <= s).all() and (s < 2).all()
    assert (0.5 <= c).all() and (c < 1.5).all() and (onp.abs(params['shift']) <= 2).all()
    only = {k: params[k] for k in ('brightness', 'saturation', 'contrast')}
    expected = X + b
    expected = (expected - expected.mean(1, keepdims=True)) * s + expected.mean(1, keepdims=True)
    m = expected.mean((1, 2, 3), keepdims=True)
    expected = (expected - m) * c + m
    assert onp.allclose(diff_augment(np.array(X), only).asnumpy(), expected, atol=1e-5)
    shifts = onp.array([[1, -2], [0, 0], [-1, 2], [2, 1]])
    moved = diff_augment(np.array(X), {'shift': shifts}).asnumpy()
    for img, (dy, dx) in zip(range(4), shifts):
        want = onp.zeros_like(X[img])
        want[:, max(dy, 0):16 + min(dy, 0), max(dx, 0):16 + min(dx, 0)] = \
            X[img][:, max(-dy, 0):16 - max(dy, 0), max(-dx, 0):16 - max(dx, 0)]
        assert (moved[img] == want).all()  # whole pixels: exact
    mask = params['mask'][:, 0]
    for m in mask:  # one box of at most 8 x 8 zeros (half the size), clipped at the borders
        rows, cols = onp.nonzero(m == 0)
        assert 0 < len(rows) <= 64 and len(rows) == (onp.ptp(rows) + 1) * (onp.ptp(cols) + 1)
    assert (diff_augment(np.array(X), {'mask': params['mask']}).asnumpy() == X * params['mask']).all()


def test_augmentation_changes_the_loss_and_gradients_reach_G():
    X, Z = _batch()
    plain, augmented = _nets(X, Z)
    loss = gluon.loss.SigmoidBCELoss()
    losses, grads = [], []
    # one pair after the other: a graph still recorded when another over the same Z runs
    # backward loses Z's node in MXNet 1.9.1 ("The any container is empty")
    for (net_D, net_G), augment in ((plain, None),
                                    (augmented, DiffAugment(AUGMENTS, onp.random.default_rng(0)))):
        loss_D, fakes = _step_D([X], [Z], net_D, net_G, loss, _adam(net_D), augment=augment)
        _step_G(lambda: fakes, net_D, loss, _adam(net_G), augment=augment)
        losses.append(float(loss_D))
        grads.append([p.grad().asnumpy() for p in net_G.collect_params().values()
                      if p.grad_req != 'null'])
    assert abs(losses[0] - losses[1]) > 1e-3
    assert all(onp.isfinite(g).all() for g in grads[1])
    assert all(onp.abs(g).sum() > 0 for g in grads[1])  # every G weight got a gradient
    assert any(not onp.allclose(g, h) for g, h in zip(grads[0], grads[1]))


def test_a_chance_below_1_leaves_each_op_off_some_images():
    """ADA's p: with chance 1 the draws of before; with 0 no image changes; with 0.5 each op is
    on for some images and off (its identity) for the others, the drawn values kept where on."""
    def params(chance):
        return augment_params(onp.random.default_rng(3), AUGMENTS, 64, 16, 16, chance)
    always = augment_params(onp.random.default_rng(3), AUGMENTS, 64, 16, 16)
    assert all((params(1.0)[k] == v).all() for k, v in always.items())
    never = params(0.0)
    assert (never['brightness'] == 0).all() and (never['saturation'] == 1).all()
    assert (never['contrast'] == 1).all() and (never['shift'] == 0).all()
    assert (never['mask'] == 1).all()
    X = np.array(onp.random.default_rng(4).uniform(-1, 1, (64, 3, 16, 16)).astype('float32'))
    assert onp.allclose(diff_augment(X, never).asnumpy(), X.asnumpy(), atol=1e-6)
    half = params(0.5)
    for key, off in (('brightness', 0), ('saturation', 1), ('shift', 0), ('mask', 1)):
        on = (half[key] != off).reshape(64, -1).any(axis=1)
        assert 16 < on.sum() < 48  # about 32 of 64
        assert (half[key][on] == always[key][on]).all()
    colour, moved = (half['brightness'] != 0).ravel(), (half['shift'] != 0).any(axis=1)
    assert (colour != moved).any()  # each op draws its own images


def test_the_augment_ramp_raises_the_chance_with_the_images_seen():
    ramp = Recipe(augment=AUGMENTS, augment_ramp=1000)
    assert [ramp.augment_chance(n) for n in (0, 250, 1000, 5000)] == [0, 0.25, 1, 1]
    assert Recipe(augment=AUGMENTS).augment_chance(0) == 1
    run = Run.start(discriminator(8), generator(8), 0.005, LATENT, [mx.cpu()], seed=5,
                    recipe=ramp)
    run.state.images_seen = 600
    assert run.augment(1).chance == 0.6
    assert 'augment_ramp 1000' in ramp.describe()
    with pytest.raises(DCGANError, match='augment_ramp ramps up the augmentation: it needs'):
        Recipe(augment_ramp=1000)
    with pytest.raises(DCGANError, match='augment_ramp must be a whole number'):
        Recipe(augment=AUGMENTS, augment_ramp=-1)


def test_each_step_augments_from_its_own_stream():
    def params(run, epoch, step):
        run.state.epoch = epoch
        return augment_params(run.augment(step).rng, AUGMENTS, 4, 64, 64)

    run = Run.start(discriminator(8), generator(8), 0.005, LATENT, [mx.cpu()], seed=5,
                    recipe=Recipe(augment=AUGMENTS))
    first = params(run, 1, 3)
    assert all((first[k] == v).all() for k, v in params(run, 1, 3).items())
    assert not (first['brightness'] == params(run, 1, 4)['brightness']).all()
    assert not (first['brightness'] == params(run, 2, 3)['brightness']).all()
    assert Run.start(discriminator(8), generator(8), 0.005, LATENT, [mx.cpu()],
                     seed=5).augment(3) is None


# ------------------------------------------------------------------------ the generator's average

def _trained_G(hybridize=False):
    X, Z = _batch(16)
    net_D, net_G = discriminator(8), generator(8)
    for net in (net_D, net_G):
        net.initialize(init.Normal(0.02))
        if hybridize:
            net.hybridize(static_alloc=True, static_shape=True)
    net_D(net_G(Z))
    trainer_D, trainer_G = make_trainers(net_D, net_G, 0.005)
    loss = gluon.loss.SigmoidBCELoss()
    _, fakes = _step_D([X], [Z], net_D, net_G, loss, trainer_D)
    _step_G(lambda: fakes, net_D, loss, trainer_G)
    return net_G, Z


def test_ema_moves_by_the_half_life_and_averages_weights_not_statistics():
    net_G, Z = _trained_G()
    ema = GeneratorEMA(net_G, 64, mx.cpu())
    names = [p.name for _, p in ema.pairs]
    assert names and not any('running' in n for n in names)
    assert any('gamma' in n for n in names) and any('beta' in n for n in names)
    mx.nd.waitall()
    before = [a.data().asnumpy() for _, a in ema.pairs]
    for source, _ in ema.pairs:
        source.set_data(source.data() + 1)
    ema.update(64)  # one half-life of images: halfway to the new weights
    mx.nd.waitall()
    for (source, average), old in zip(ema.pairs, before):
        assert onp.allclose(average.data().asnumpy(), old + 0.5, atol=1e-6)
    ema.update(16)  # beta = 0.5 ** (16 / 64)
    mx.nd.waitall()
    beta = 0.5 ** 0.25
    for (source, average), old in zip(ema.pairs, before):
        want = beta * (old + 0.5) + (1 - beta) * (old + 1)
        assert onp.allclose(average.data().asnumpy(), want, atol=1e-6)


def test_ema_rampup_forgets_the_first_weights_sooner():
    """StyleGAN2-ADA's ramp: the half-life is min(halflife, rampup x the images seen before
    the step), so the first step copies G and the cap holds once enough images are seen."""
    net_G, Z = _trained_G()
    ema = GeneratorEMA(net_G, 64, mx.cpu(), rampup=0.5)
    mx.nd.waitall()
    before = [a.data().asnumpy() for _, a in ema.pairs]
    for shift, (batch, seen), moved in ((1, (16, 0), 1.0),  # half-life 0: a copy of G
                                        (2, (16, 32), 1.5),  # min(64, 16): halfway
                                        (3, (64, 1000), 2.25)):  # the cap, 64: halfway
        for (source, _), old in zip(ema.pairs, before):
            source.set_data(np.array(old + shift, ctx=mx.cpu()))
        ema.update(batch, seen)
        mx.nd.waitall()
        for (_, average), old in zip(ema.pairs, before):
            assert onp.allclose(average.data().asnumpy(), old + moved, atol=1e-6), shift
    with pytest.raises(DCGANError, match='ema_rampup .* needs ema_halflife'):
        Recipe(ema_rampup=0.05)


def test_ema_batchnorm_statistics_are_its_own():
    """After refresh, inference on the noise gives what training mode gives: the statistics are
    the averaged weights' own, not the raw generator's running averages."""
    net_G, Z = _trained_G()
    ema = GeneratorEMA(net_G, 64, mx.cpu())
    for _, average in ema.pairs:
        average.set_data(average.data() * 1.5)  # weights unlike the raw generator's
    ema.refresh(Z)
    with autograd.train_mode():
        batch = ema.net(Z).asnumpy()
    assert onp.allclose(ema.net(Z).asnumpy(), batch, atol=1e-5)
    raw = net_G[1].batch_norm.running_var.data().asnumpy()
    assert not onp.allclose(ema.net[1].batch_norm.running_var.data().asnumpy(), raw)


def test_recompute_changes_only_the_statistics():
    net_G, Z = _trained_G()
    def named():
        mx.nd.waitall()  # see _weights
        return {k: p.data().asnumpy() for k, p in net_G._collect_params_with_prefix().items()}
    before = named()
    recompute_batchnorm_stats(net_G, Z)
    after = named()
    changed = sorted(k for k in before if not (before[k] == after[k]).all())
    assert changed and all(k.endswith(('running_mean', 'running_var')) for k in changed)


def _train(root, num_epochs, ckpt_dir, recipe, **kwargs):
    seen = {}
    history = fit(discriminator(8), generator(8), load_image_folder(root, batch_size=32),
                  num_epochs, 0.005, LATENT, mx.cpu(), seed=11, animator=None, verbose=False,
                  checkpoint_dir=ckpt_dir, recipe=recipe,
                  on_epoch_samples=lambda record, sample: seen.update(
                      net=sample.net, images=sample(np.ones((4, LATENT, 1, 1))).asnumpy()),
                  **kwargs)
    return history, seen


ALL = Recipe(ema_halflife=64, ema_rampup=0.5, label_smoothing=0.1, augment=AUGMENTS,
             augment_ramp=192, lr_G=0.002, lr_decay=0.5, lr_decay_images=64,
             sample_batch_stats=True)


@pytest.fixture(scope='module')
def straight(sprites, tmp_path_factory):
    return _train(sprites, 2, str(tmp_path_factory.mktemp('straight')), ALL)


@pytest.mark.parametrize('where', ['epoch end', 'mid-epoch'])
def test_ema_and_augmentation_are_exact_on_resume(sprites, straight, tmp_path, where):
    if where == 'epoch end':
        _train(sprites, 1, str(tmp_path), ALL)
    else:
        _train(sprites, 2, str(tmp_path), ALL, checkpoint_every=2)
        for path in ckpt.list_checkpoints(str(tmp_path)):
            if not path.endswith('ckpt-e0002-s000001'):
                shutil.rmtree(path)  # resume from the middle of epoch 2
    resumed = _train(sprites, 2, str(tmp_path), ALL, resume=True)
    assert [(r['loss_D'], r['loss_G']) for r in straight[0]] == \
        [(r['loss_D'], r['loss_G']) for r in resumed[0]]
    assert straight[1]['net'] is not None and resumed[1]['net'] is not None
    a, b = _weights(straight[1]['net']), _weights(resumed[1]['net'])
    assert len(a) == 21 and all((x == y).all() for x, y in zip(a, b))  # incl. BN statistics
    assert (straight[1]['images'] == resumed[1]['images']).all()
    newest = ckpt.list_checkpoints(str(tmp_path))[0]
    assert ckpt.EMA_FILE in json.load(open(os.path.join(newest, 'MANIFEST.json')))
    state = ckpt.verify_checkpoint(newest)
    assert Recipe.from_json(state['recipe']) == ALL and state['lr_G'] == 0.002


def test_a_checkpoint_of_another_recipe_is_refused(sprites, tmp_path):
    _train(sprites, 1, str(tmp_path), Recipe())
    with pytest.raises(DCGANError, match="recipe \\(the book's\\).*continue it with its own"):
        _train(sprites, 2, str(tmp_path), Recipe(ema_halflife=64), resume=True)


# ---------------------------------------------------------------------- separate learning rates

def test_separate_learning_rates_reach_each_trainer():
    net_D, net_G = discriminator(8), generator(8)
    net_D.initialize()
    net_G.initialize()
    trainer_D, trainer_G = make_trainers(net_D, net_G, 0.004, 0.001)
    assert (trainer_D.learning_rate, trainer_G.learning_rate) == (0.004, 0.001)
    assert [t.learning_rate for t in make_trainers(net_D, net_G, 0.003)] == [0.003, 0.003]
    run = Run.start(discriminator(8), generator(8), 0.005, LATENT, [mx.cpu()], seed=0,
                    recipe=Recipe(lr_G=0.001))
    assert (run.trainer_D.learning_rate, run.trainer_G.learning_rate) == (0.005, 0.001)
    assert run.state.lrs() == (0.005, 0.001)
    run.set_lr(*[lr / 2 for lr in run.state.lrs()])  # what a rollback does
    assert (run.trainer_D.learning_rate, run.trainer_G.learning_rate) == (0.0025, 0.0005)


def test_lr_decay_falls_geometrically_then_stays():
    recipe = Recipe(lr_decay=0.1, lr_decay_images=64)
    assert [recipe.lr_factor(n) for n in (0, 64, 1000)] == [1.0, 0.1, 0.1]
    assert recipe.lr_factor(32) == pytest.approx(0.1 ** 0.5)
    assert Recipe().lr_factor(10**6) == 1.0
    run = Run.start(discriminator(8), generator(8), 0.004, LATENT, [mx.cpu()], seed=0,
                    recipe=Recipe(lr_G=0.001, lr_decay=0.1, lr_decay_images=64))
    X, Z = np.zeros((4, 3, 64, 64)), np.ones((4, LATENT, 1, 1))
    for seen, halved in ((0, 1), (32, 1), (96, 2)):
        if halved == 2:
            run.set_lr(*[lr / 2 for lr in run.state.lrs()])  # what a rollback does
        run.state.images_seen = seen
        run.step(X, Z)
        want = [lr / halved * recipe.lr_factor(seen) for lr in (0.004, 0.001)]
        assert [run.trainer_D.learning_rate, run.trainer_G.learning_rate] == \
            pytest.approx(want, rel=1e-12)
    assert run.state.lrs() == (0.002, 0.0005)  # the state keeps the rates it decays from
    for bad in (dict(lr_decay=0.1), dict(lr_decay_images=64), dict(lr_decay=0, lr_decay_images=1),
                dict(lr_decay=1.5, lr_decay_images=1)):
        with pytest.raises(DCGANError, match='lr_decay'):
            Recipe(**bad)


# --------------------------------------------------------------------------- batch-stat sampling

@pytest.mark.parametrize('hybridize', [False, True])
def test_sampling_with_batch_statistics_leaves_the_running_averages(hybridize):
    net_G, Z = _trained_G(hybridize)
    before = _weights(net_G)
    images = Sampler(net_G, batch_stats=True)(Z).asnumpy()
    from_numpy = sample(net_G, Z.asnumpy(), mx.cpu(), batch_stats=True)
    mx.nd.waitall()
    assert all((a == b).all() for a, b in zip(before, _weights(net_G)))
    assert onp.allclose(images, from_numpy, atol=1e-6)
    assert not onp.allclose(images, Sampler(net_G)(Z).asnumpy(), atol=1e-3)


# ------------------------------------------------------------------------------- command line

def test_recipe_flags_override_the_recipe(monkeypatch):
    parser = train_parser()
    args = parser.parse_args(['--recipe', 'improved', '--label-smoothing', '0.2',
                              '--augment', '--lr-G', '0.001', '--no-sample-batch-stats'])
    recipe = train_recipe(args)
    assert recipe.label_smoothing == 0.2 and recipe.augment == AUGMENTS
    assert recipe.lr_G == 0.001 and recipe.sample_batch_stats is False
    assert recipe.ema_halflife == RECIPES['improved'].ema_halflife
    no_average = train_recipe(parser.parse_args(['--recipe', 'improved', '--ema-halflife', '0']))
    assert no_average == replace(RECIPES['improved'], ema_halflife=0, ema_rampup=0.0,
                                 batch_size=256)  # the parser's (recipe_defaults sets 64)
    assert train_recipe(parser.parse_args([])) == Recipe()
    assert train_recipe(parser.parse_args(['--augment', 'none'])) == Recipe()
    assert train_recipe(parser.parse_args(['--augment', 'cutout,color'])).augment == \
        ('color', 'cutout')
    ramped = parser.parse_args(['--augment', '--augment-ramp', '200000'])
    assert train_recipe(ramped) == Recipe(augment=AUGMENTS, augment_ramp=200_000)
    monkeypatch.setitem(RECIPES, 'improved', replace(RECIPES['improved'], augment=AUGMENTS,
                                                     augment_ramp=1000))
    assert train_recipe(parser.parse_args(['--recipe', 'improved', '--augment', 'none'])) == \
        replace(RECIPES['improved'], augment=(), augment_ramp=0, batch_size=256)  # and its ramp
    assert ON_RESUME['recipe'] == KEPT
    decay = train_recipe(parser.parse_args(['--lr-decay', '0.1', '--lr-decay-images', '50k']))
    assert (decay.lr_decay, decay.lr_decay_images) == (0.1, 50_000)


def test_each_recipe_option_is_a_flag_that_resume_keeps():
    options = {f.name for f in fields(Recipe)} - {'batch_size'}  # train's own --batch-size
    assert set(RECIPE_FLAGS) == options
    assert all(ON_RESUME[name] == KEPT for name in options)
    args, given = parse_given(train_parser(), ['--ema-halflife', '5', '--no-sample-batch-stats',
                                               '--lr-decay-images', '2k', '--augment'])
    assert given == {'ema_halflife', 'sample_batch_stats', 'lr_decay_images', 'augment'}
    assert (args.ema_halflife, args.sample_batch_stats, args.lr_decay_images) == (5, False, 2000)
    assert args.lr_decay is None and args.augment == ','.join(AUGMENTS)


def test_every_train_option_is_sorted_for_resume():
    """A flag added to train must be put in ON_RESUME: kept, changeable or this command's."""
    assert set(vars(train_parser().parse_args([]))) == set(ON_RESUME)
    assert set(ON_RESUME.values()) == {KEPT, CHANGEABLE, NEW}


def test_an_lr_given_with_improved_is_both_nets_rate():
    def recipe(*argv):
        args, given = parse_given(train_parser(), argv)
        recipe_defaults(args, given)
        return train_recipe(args).lrs(args.lr)
    improved = RECIPES['improved']
    assert improved.lr_D is not None and improved.lr_G is not None  # its own rates ...
    assert recipe('--recipe', 'improved') == (improved.lr_D, improved.lr_G)
    assert recipe('--recipe', 'improved', '--lr', '0.001') == (0.001, 0.001)  # ... unless --lr
    assert recipe('--recipe', 'improved', '--lr', '0.001', '--lr-G', '0.002') == (0.001, 0.002)
    assert recipe('--lr', '0.001') == (0.001, 0.001)
    args = train_parser().parse_args(['--lr', '0.001'])
    recipe_defaults(args, {'lr'})
    assert train_recipe(args) == Recipe()  # the book's recipe records no rates of its own


def test_improved_trains_with_its_own_batch_size_unless_one_is_given():
    def batch_sizes(*argv):  # (the run's batch size, the one its recipe records)
        args, given = parse_given(train_parser(), argv)
        recipe_defaults(args, given)
        return args.batch_size, train_recipe(args).batch_size
    assert RECIPES['improved'].batch_size == 64
    assert batch_sizes() == (256, None)  # the chapter's, and the book's recipe has none
    assert batch_sizes('--batch-size', '64') == (64, None)
    assert batch_sizes('--recipe', 'improved') == (64, 64)
    assert batch_sizes('--recipe', 'improved', '--batch-size', '256') == (256, 256)
    assert 'batch_size 64' in RECIPES['improved'].describe()
    with pytest.raises(DCGANError, match='batch_size must be a whole number > 0'):
        Recipe(batch_size=0)


def _cli(*args):
    return subprocess.run([sys.executable, '-m', 'd2l_dcgan', *map(str, args)], cwd=REPO_ROOT,
                          env=ENV, capture_output=True, text=True, timeout=limit(300))


def test_cli_improved_writes_the_average_and_generate_reads_it(tmp_path):
    out = tmp_path / 'out'
    common = ['--dataset', 'sprites', '--num-sprites', 32, '--cache-dir', tmp_path / 'cache',
              '--n-G', 8, '--n-D', 8, '--batch-size', 16, '--latent-dim', LATENT,
              '--swd-samples', 16, '--no-progress', '--device', 'cpu']
    r = _cli('train', '--recipe', 'improved', '--num-epochs', 1, '--seed', 0, '--out-dir', out,
             *common)
    assert r.returncode == 0, r.stderr
    metrics = json.load(open(out / 'metrics.json'))
    assert metrics['settings']['recipe'] == 'improved'
    assert Recipe.from_json(metrics['recipe']) == replace(RECIPES['improved'], batch_size=16)
    assert RECIPES['improved'].ema_halflife  # the improved recipe averages the generator
    assert (out / 'net_G_ema.params').is_file()
    resumed = _cli('train', '--resume', out, '--num-epochs', 2, '--no-progress')
    assert resumed.returncode == 0, resumed.stderr
    assert 'recipe: ' + replace(RECIPES['improved'], batch_size=16).describe() in resumed.stdout
    assert len(json.load(open(out / 'metrics.json'))['epochs']) == 2
    refused = _cli('train', '--resume', out, '--num-epochs', 3, '--recipe', 'book')
    assert refused.returncode == 2 and "--recipe is 'improved' there" in refused.stderr
    png = tmp_path / 'ema.png'
    g = _cli('generate', '--params', out / 'net_G_ema.params', '--batch-stats', '--num-samples', 8,
             '--device', 'cpu', '--out', png)
    assert g.returncode == 0 and png.is_file(), g.stderr
    e = _cli('evaluate', '--params', out / 'net_G_ema.params', '--num-samples', 16, '--device',
             'cpu', '--dataset', 'sprites', '--num-sprites', 32, '--cache-dir', tmp_path / 'cache')
    assert e.returncode == 0 and 'mean' in e.stdout, e.stderr
