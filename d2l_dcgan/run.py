"""The run layer around the chapter's step: checkpoints and exact resume, a divergence guard,
SIGINT/SIGTERM, several devices, a progress bar, per-epoch metrics and callbacks.

`fit` trains with the same `train_step` as `train`, so the two cannot drift apart; without a
seed and a checkpoint folder it draws the same random numbers as `train`, in the same order.
With a seed, every random draw comes from a named stream seeded by (seed, epoch), so a run
resumed from a checkpoint replays exactly what an uninterrupted one does."""
from __future__ import annotations

import math
import signal
import sys
from dataclasses import asdict, dataclass, field
from typing import Optional

import mxnet as mx
import numpy as onp
from d2l import mxnet as d2l
from mxnet import gluon, np
from tqdm import tqdm

from . import checkpoint as ckpt
from .errors import ArgumentError, DCGANError, check_positive
from .interrupts import StopOnSignal, TrainingInterrupted
from .plot import GANAnimator, sample_grid
from .recipes import BATCHNORM_SAMPLES, DiffAugment, GeneratorEMA, Recipe, Sampler
from .train import (Accumulator, computed_seconds, default_device, hybridize, init_nets,
                    make_trainers, train_step)

# the random streams of a seeded run; a stream's number is its index (saved runs depend on it)
STREAMS = ('shuffle', 'noise', 'fixed_noise', 'init', 'swd', 'augment', 'batchnorm')


def stream_seed(seed, name, epoch=0, *more):
    """The seed of stream `name` in `epoch` of the run seeded with `seed` (and in its step,
    say, given as `more`)."""
    return int(onp.random.SeedSequence([seed, epoch, STREAMS.index(name), *more])
               .generate_state(1)[0])


def stream(seed, name, epoch=0, *more):
    """A NumPy generator of stream `name` in `epoch` (and `more`)."""
    return onp.random.default_rng(stream_seed(seed, name, epoch, *more))


def fixed_noise(seed, num, latent_dim):
    """The noise of the sample grids: the same for a seed whatever `num` (a prefix of more)."""
    return stream(seed, 'fixed_noise').standard_normal((num, latent_dim, 1, 1), dtype='float32')


@dataclass
class RunState:
    """Where a run is; checkpoints save it as state.json and resume from it."""
    seed: Optional[int]
    lr: float  # the discriminator's (and the book's one learning rate)
    lr_G: Optional[float] = None  # the generator's; None: lr (checkpoints from before it)
    epoch: int = 1  # the epoch in progress
    step: int = 0  # its steps done (a resumed epoch skips them)
    global_step: int = 0
    images_seen: int = 0  # training images of all steps done (0 in checkpoints from before it)
    history: list = field(default_factory=list)  # one record per finished epoch
    partial: Optional[dict] = None  # an unfinished epoch's sum_D, sum_G, num_examples, elapsed

    @classmethod
    def from_json(cls, saved):
        state = cls(**{k: saved[k] for k in cls.__dataclass_fields__ if k in saved})
        if state.partial is None:  # saved at the end of its epoch
            state.epoch, state.step = state.epoch + 1, 0
        return state

    def lrs(self):
        """(D's, G's) learning rates."""
        return self.lr, self.lr if self.lr_G is None else self.lr_G


@dataclass
class DivergenceGuard:
    """A mean loss that is not finite, or above max_loss (logits beyond about +-max_loss), is
    divergence: 'stop' raises; 'rollback' reloads the last checkpoint at half the learning rate,
    at most `max_rollbacks` times."""
    max_loss: float = 100.0
    on_divergence: str = 'stop'
    max_rollbacks: int = 3
    verbose: bool = True
    rollbacks: int = 0

    def __post_init__(self):
        if self.on_divergence not in ('stop', 'rollback'):
            raise DCGANError(f"on_divergence must be 'stop' or 'rollback', got "
                             f"{self.on_divergence!r}")

    def rolls_back(self, where, loss_D, loss_G, run):
        """False if the losses are sane; True if `run` is to roll back; else raises."""
        if math.isfinite(loss_D) and math.isfinite(loss_G) and max(loss_D, loss_G) <= self.max_loss:
            return False
        what = f'training diverged at {where} (loss_D {loss_D:.4g}, loss_G {loss_G:.4g})'
        last = run.last_checkpoint
        if self.on_divergence == 'stop' or not last or self.rollbacks >= self.max_rollbacks:
            hint = (f'the last good checkpoint is {last}; resume from it with a lower lr'
                    if last else 'no checkpoint was written; try a lower lr')
            raise ArgumentError('lr', f'{what}; {hint}')
        self.rollbacks += 1
        if self.verbose:
            lr_D, lr_G = run.state.lrs()
            lrs = f'lr {lr_D / 2:g}' + (f', lr_G {lr_G / 2:g}' if lr_G != lr_D else '')
            print(f'{what}: rolling back to {last} with {lrs}', file=sys.stderr)
        return True


class Progress:
    """A bar over an epoch's steps, only when stderr is a terminal (tqdm's disable=None). It
    advances when a step has been computed, one step behind the one just queued, so that the
    device always has work waiting."""

    def __init__(self, enabled, total, initial, desc):
        self.bar = tqdm(total=total, initial=initial, desc=desc, leave=False, unit='batch',
                        dynamic_ncols=True, disable=None if enabled else True)
        self.queued = None

    def step(self, loss):
        if self.bar.disable:
            return
        if self.queued is not None:
            self.queued.wait_to_read()
            self.bar.update(1)
        self.queued = loss

    def show(self, loss_D, loss_G):
        self.bar.set_postfix(loss_D=f'{loss_D:.3f}', loss_G=f'{loss_G:.3f}', refresh=False)

    def close(self):
        self.bar.close()


def distinct_devices(devices):
    """One device or a list of distinct ones, as a list; default_device() if None."""
    devices = (list(devices) if isinstance(devices, (list, tuple))
               else [devices or default_device()])
    if len(set(devices)) < len(devices):
        # two shards on one device also crash MXNet 1.9.1's MKLDNN backward
        raise DCGANError(f'devices must be distinct, got {devices}')
    return devices


def _params_finite(*nets):
    return all(bool(np.isfinite(p.data()).all()) for net in nets
               for p in net.collect_params().values())


@dataclass
class Run:
    """One run: its nets and trainers on their devices, the sample noise, and its state."""
    net_D: gluon.Block
    net_G: gluon.Block
    trainer_D: gluon.Trainer
    trainer_G: gluon.Trainer
    devices: list
    latent_dim: int
    fixed_Z: Optional[np.ndarray]  # the sample grids' noise; None: new noise each epoch
    state: RunState
    checkpoint_dir: Optional[str] = None
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    last_checkpoint: Optional[str] = None
    loss: gluon.loss.Loss = field(default_factory=gluon.loss.SigmoidBCELoss)
    recipe: Recipe = field(default_factory=Recipe)
    ema: Optional[GeneratorEMA] = None  # the generator's weight average, if the recipe has one

    @classmethod
    def start(cls, net_D, net_G, lr, latent_dim, devices, seed=None, fixed_Z=None,
              hybridize_nets=True, recipe=None, **checkpoints):
        """Initialise the nets as train() does (from the seed's streams if there is one), with
        the recipe's learning rates and weight average."""
        recipe = recipe or Recipe()
        if seed is not None:
            mx.random.seed(stream_seed(seed, 'init'), ctx='all')
        init_nets(net_D, net_G, devices)
        if hybridize_nets:
            hybridize(net_D, net_G)
        lr_D, lr_G = recipe.lrs(lr)
        trainer_D, trainer_G = make_trainers(net_D, net_G, lr_D, lr_G)
        if fixed_Z is None and seed is not None:
            fixed_Z = fixed_noise(seed, 21, latent_dim)
        run = cls(net_D, net_G, trainer_D, trainer_G, devices, latent_dim,
                  None if fixed_Z is None else np.array(fixed_Z, ctx=devices[0]),
                  RunState(seed, lr_D, lr_G),
                  recipe=recipe, **checkpoints)
        if recipe.ema_halflife:
            net_G(run.fixed_Z)  # finish deferred initialisation: the average starts from it
            run.ema = GeneratorEMA(net_G, recipe.ema_halflife, devices[0], recipe.ema_rampup)
        return run

    def noise(self):
        """The epoch's noise source: a function of the batch size. With a seed it also seeds
        the epoch's shuffle (Gluon's DataLoader shuffles with NumPy's global generator)."""
        seed, epoch, shape = self.state.seed, self.state.epoch, (self.latent_dim, 1, 1)
        if seed is None:  # the book's draws, from MXNet's global generator
            return lambda n: np.random.normal(0, 1, size=(n,) + shape)
        onp.random.seed(stream_seed(seed, 'shuffle', epoch))
        rng = stream(seed, 'noise', epoch)
        return lambda n: np.array(rng.standard_normal((n,) + shape, dtype='float32'))

    def augment(self, step):
        """The recipe's augmentation of `step` in this epoch (its own stream), or None."""
        if not self.recipe.augment:
            return None
        return DiffAugment(self.recipe.augment,
                           stream(self.state.seed, 'augment', self.state.epoch, step),
                           self.recipe.augment_chance(self.state.images_seen))

    def grid_noise(self):
        """The noise of this epoch's sample grid: fixed, or drawn anew as the book does."""
        if self.fixed_Z is not None:
            return self.fixed_Z[:21]
        return np.random.normal(0, 1, size=(21, self.latent_dim, 1, 1), ctx=self.devices[0])

    def step(self, X, Z, step=0):
        """train_step (the epoch's `step`) on a batch split across the devices, then the weight
        average's update; the summed losses on the first device."""
        batch_size = X.shape[0]
        augment = self.augment(step)
        if len(self.devices) > 1:
            X = gluon.utils.split_and_load(X, self.devices, even_split=False)
            Z = gluon.utils.split_and_load(Z, self.devices, even_split=False)
        else:
            X, Z = X.as_in_ctx(self.devices[0]), Z.as_in_ctx(self.devices[0])
        if self.recipe.lr_decay_images:  # not an mx.lr_scheduler: those count updates, not
            self.apply_lrs()  # images, and refuse the set_learning_rate of a rollback
        losses = train_step(X, Z, self.net_D, self.net_G, self.loss, self.trainer_D,
                            self.trainer_G, real_label=self.recipe.real_label, augment=augment)
        if self.ema:
            self.ema.update(batch_size, self.state.images_seen)
        return losses

    def sampler(self):
        """How the recipe samples now (the book's: net_G itself); the weight average gets its
        BatchNorm statistics first, from the run's 'batchnorm' stream."""
        if not self.ema:
            return Sampler(self.net_G, self.recipe.sample_batch_stats)
        Z = stream(self.state.seed, 'batchnorm').standard_normal(
            (BATCHNORM_SAMPLES, self.latent_dim, 1, 1), dtype='float32')
        self.ema.refresh(np.array(Z, ctx=self.devices[0]))
        return Sampler(self.ema.net, self.recipe.sample_batch_stats, average=True)

    def set_lr(self, lr, lr_G=None):
        """Set D's learning rate to `lr` and G's to `lr_G` (default: lr)."""
        self.state.lr, self.state.lr_G = lr, lr if lr_G is None else lr_G
        self.apply_lrs()

    def apply_lrs(self):
        """Give the trainers the state's rates, as the recipe's decay has them now."""
        factor = self.recipe.lr_factor(self.state.images_seen)
        for trainer, rate in zip((self.trainer_D, self.trainer_G), self.state.lrs()):
            trainer.set_learning_rate(rate * factor)

    def check_finite(self):
        """Raise DCGANError if the run checkpoints and its weights are not finite."""
        if self.checkpoint_dir and not _params_finite(self.net_D, self.net_G):
            raise DCGANError(f'the weights are not finite at epoch {self.state.epoch}, step '
                             f'{self.state.step}; no checkpoint written over '
                             f'{self.last_checkpoint}')

    def save(self):
        """Checkpoint the run, if it has a folder; never from weights that are not finite."""
        if not self.checkpoint_dir:
            return None
        self.check_finite()
        self.last_checkpoint = ckpt.save_checkpoint(
            self.checkpoint_dir, self.net_D, self.net_G, self.trainer_D, self.trainer_G,
            self.fixed_Z, {**asdict(self.state), 'latent_dim': self.latent_dim,
                           'recipe': self.recipe.to_json()},
            keep=self.keep_checkpoints, ema_net=self.ema.net if self.ema else None)
        return self.last_checkpoint

    def restore(self, path, saved):
        """Load a checkpoint's weights (and weight average), optimizer states, sample noise,
        state and learning rates; a checkpoint of another recipe is refused."""
        recipe = Recipe.from_json(saved.get('recipe'))  # none saved: the book's
        if recipe != self.recipe:
            raise DCGANError(f'checkpoint {path} was trained with the recipe '
                             f'({recipe.describe()}), not ({self.recipe.describe()}); continue '
                             f'it with its own')
        self.net_D(self.net_G(self.fixed_Z))  # finish deferred initialisation before loading
        fixed_Z = ckpt.load_checkpoint(path, self.net_D, self.net_G, self.trainer_D,
                                       self.trainer_G, self.devices,
                                       ema_net=self.ema.net if self.ema else None)
        self.fixed_Z = np.array(fixed_Z, ctx=self.devices[0])
        self.state = RunState.from_json(saved)
        self.set_lr(*self.state.lrs())
        self.last_checkpoint = path

    def resume(self, verbose=True):
        """Continue from the newest valid checkpoint, if there is one."""
        path, saved = ckpt.newest_valid_checkpoint(self.checkpoint_dir)
        if not path:
            return
        if verbose and saved['seed'] != self.state.seed:
            print(f'resuming with the checkpoint\'s seed {saved["seed"]} (not {self.state.seed})')
        self.restore(path, saved)
        if verbose:
            print(f'resuming from {path}: epoch {self.state.epoch}, step {self.state.step + 1}')

    def roll_back(self):
        """Reload the newest valid checkpoint, at half the learning rates in use."""
        lowered = [lr / 2 for lr in self.state.lrs()]
        path, saved = ckpt.newest_valid_checkpoint(self.checkpoint_dir)
        if path is None:
            raise ArgumentError('lr', f'training diverged and no checkpoint in '
                                f'{self.checkpoint_dir} verifies any more to roll back to; '
                                'try a lower lr')
        self.restore(path, saved)
        self.set_lr(*lowered)

    def end_epoch(self, record, steps):
        """Record the finished epoch, checkpoint it, and move on to the next."""
        self.state.history.append(record)
        self.state.step, self.state.partial = steps, None
        self.save()
        self.state.epoch, self.state.step = self.state.epoch + 1, 0


def train_epoch(run, data_iter, stop, guard, bar, check_every=10):
    """One epoch of train_step (its rest, on resume): (metric, seconds, steps), or None to
    roll back. Checks the losses every `check_every` steps, checkpoints when due or asked to."""
    state, noise = run.state, run.noise()
    metric, timer = Accumulator(3), d2l.Timer()  # loss_D, loss_G, num_examples
    elapsed = 0.0
    if state.partial:
        p = state.partial
        metric.data, elapsed = [p['sum_D'], p['sum_G'], p['num_examples']], p['elapsed']
    step = 0
    for step, (X, _) in enumerate(data_iter, 1):
        Z = noise(X.shape[0])  # drawn for skipped steps too, so the stream stays in step
        if step <= state.step or X.shape[0] < len(run.devices):
            continue  # replayed on resume; or too small to give every device an example
        loss_D, loss_G = run.step(X, Z, step)
        metric.add(loss_D, loss_G, X.shape[0])
        bar.step(loss_G)
        state.global_step, state.images_seen = state.global_step + 1, state.images_seen + X.shape[0]
        interrupted = stop.signum is not None
        periodic = run.checkpoint_every and state.global_step % run.checkpoint_every == 0
        if step % check_every and not (interrupted or periodic):
            continue
        # reading the sums waits for the device, so not every step
        ld, lg = float(metric[0]) / metric[2], float(metric[1]) / metric[2]
        if guard.rolls_back(f'epoch {state.epoch}, step {step}', ld, lg, run):
            return None
        bar.show(ld, lg)
        if interrupted or periodic:
            state.step, state.partial = step, {
                'sum_D': float(metric[0]), 'sum_G': float(metric[1]),
                'num_examples': int(metric[2]), 'elapsed': elapsed + computed_seconds(timer)}
            path = run.save()
        if interrupted:
            raise TrainingInterrupted(f'{signal.Signals(stop.signum).name}: stopped at epoch '
                                      f'{state.epoch}, step {step}; checkpoint {path}',
                                      stop.signum)
    return metric, elapsed + computed_seconds(timer), step


def fit(net_D, net_G, data_iter, num_epochs, lr, latent_dim, devices=None, *, seed=None,
        fixed_Z=None, animator=GANAnimator, on_epoch_end=None, epoch_metrics=None,
        on_epoch_samples=None, recipe=None, progress=False, verbose=True, hybridize=True,
        checkpoint_dir=None, checkpoint_every=0, keep_checkpoints=3, resume=False,
        max_loss=100.0, on_divergence='stop', check_every=10):
    """train() with the run's machinery around the same step; return the history.

    `devices`: one device or a list (each batch is split across them). `seed`: the streams'
    seed (drawn if checkpointing, or for a recipe with random numbers of its own, without one).
    `fixed_Z`: the sample noise. `animator`: as in train(). `recipe`: a recipes.Recipe of
    opt-in techniques (default: the book's). After each epoch: `epoch_metrics(sample) -> dict`,
    where sample(Z) gives images as the recipe samples them (the book's: net_G(Z));
    `on_epoch_samples(record, sample)`, where sample.net is the generator sampled (net_G or
    its weight average, sample.average); `on_epoch_end(record, net_D, net_G)`. With
    `checkpoint_dir`, a checkpoint after every epoch (after its callbacks, so that an epoch
    with a checkpoint has its files), every `checkpoint_every` steps and on
    SIGINT/SIGTERM; `resume=True` continues from the newest valid one up to `num_epochs` in
    all. See DivergenceGuard for `max_loss` and `on_divergence`."""
    check_positive(num_epochs=num_epochs, latent_dim=latent_dim, check_every=check_every)
    check_positive(float, lr=lr, max_loss=max_loss)
    devices = distinct_devices(devices)
    guard = DivergenceGuard(max_loss, on_divergence, verbose=verbose)
    recipe = recipe or Recipe()
    if seed is None and (checkpoint_dir or recipe.needs_seed):
        seed = int(onp.random.randint(2**31))  # exact resume needs the streams of a seed
    run = Run.start(net_D, net_G, lr, latent_dim, devices, seed, fixed_Z, hybridize, recipe,
                    checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
                    keep_checkpoints=keep_checkpoints)
    if isinstance(animator, type):
        animator = animator(num_epochs)
    if resume and checkpoint_dir:
        run.resume(verbose)
        for r in run.state.history if animator is not None else ():
            animator.add(r['epoch'], r['loss_D'], r['loss_G'], swd=r.get('swd'))
    record = None
    with StopOnSignal(checkpoint_dir is not None) as stop:
        while run.state.epoch <= num_epochs:
            epoch = run.state.epoch
            bar = Progress(progress, len(data_iter) if hasattr(data_iter, '__len__') else None,
                           run.state.step, f'epoch {epoch}/{num_epochs}')
            try:
                done = train_epoch(run, data_iter, stop, guard, bar, check_every)
            finally:
                bar.close()
            if done is None:
                run.roll_back()
                continue
            metric, seconds, steps = done
            if not metric[2]:
                raise DCGANError('the data iterator yielded no batches' + (
                    f' of at least {len(devices)} images, one for each device' if len(devices) > 1
                    else ''))
            loss_D, loss_G = float(metric[0]) / metric[2], float(metric[1]) / metric[2]
            if guard.rolls_back(f'the end of epoch {epoch}', loss_D, loss_G, run):
                run.roll_back()
                continue
            record = {'epoch': epoch, 'loss_D': loss_D, 'loss_G': loss_G,
                      'examples_per_sec': metric[2] / seconds}
            sample, grid_Z = run.sampler(), run.grid_noise()
            if epoch_metrics is not None:
                record.update(epoch_metrics(sample))
            if animator is not None:
                animator.add(epoch, loss_D, loss_G, sample_grid(sample, grid_Z),
                             swd=record.get('swd'))
            # the epoch's checkpoint is its commit point, written last: a kill -9 before it
            # redoes the epoch on resume, rewriting the same files
            run.check_finite()
            if on_epoch_samples is not None:
                on_epoch_samples(record, sample)
            if on_epoch_end is not None:
                on_epoch_end(record, run.net_D, run.net_G)
            run.end_epoch(record, steps)
            if stop.signum is not None:  # it came during the epoch's end: stop before the next
                raise TrainingInterrupted(f'{signal.Signals(stop.signum).name}: stopped after '
                                          f'epoch {epoch}; checkpoint {run.last_checkpoint}',
                                          stop.signum)
    if verbose and record is not None:
        print(f'loss_D {record["loss_D"]:.3f}, loss_G {record["loss_G"]:.3f}, '
              f'{record["examples_per_sec"]:.1f} examples/sec on '
              f'{", ".join(str(d) for d in devices)}')
    return run.state.history
