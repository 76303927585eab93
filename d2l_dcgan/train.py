"""The chapter's training loop: shared update_D / update_G, Adam(beta1 0.5), SigmoidBCELoss."""
import contextlib
import math
import signal
import sys
import threading
import time

import mxnet as mx
import numpy as onp
from d2l import mxnet as d2l
from mxnet import autograd, gluon, init, np
from mxnet.gluon import nn

from . import checkpoint as ckpt
from .errors import DCGANError
from .plot import GANAnimator, sample_grid


def _shards(*arrays):
    """A batch as lists of per-device shards: one array stays a one-shard list."""
    return [a if isinstance(a, (list, tuple)) else [a] for a in arrays]


def _total(losses):
    """Sum per-shard losses on the first shard's device; no host sync."""
    total = losses[0].sum()
    for l in losses[1:]:
        total = total + l.sum().as_in_ctx(total.ctx)
    return total


def _step_D(Xs, Zs, net_D, net_G, loss, trainer_D):
    """update_D's work on per-device shards; also returns the generated images, whose graph
    stays recorded so that a generator step may reuse them."""
    batch_size = sum(X.shape[0] for X in Xs)
    fakes, losses = [], []
    with autograd.record():
        for X, Z in zip(Xs, Zs):
            ones = np.ones((X.shape[0],), ctx=X.ctx)
            zeros = np.zeros((X.shape[0],), ctx=X.ctx)
            real_Y = net_D(X)
            fakes.append(net_G(Z))
            # Do not need to compute gradient for `net_G`, detach it from computing gradients.
            fake_Y = net_D(fakes[-1].detach())
            losses.append((loss(real_Y, ones) + loss(fake_Y, zeros)) / 2)
    autograd.backward(losses)
    trainer_D.step(batch_size)
    return _total(losses), fakes


@contextlib.contextmanager
def _no_weight_grads(net):
    """Gradients flow through `net` to its input, but its own weights' are not computed."""
    params = list(net.collect_params().values())
    reqs = [p.grad_req for p in params]
    for p in params:
        p.grad_req = 'null'
    try:
        yield
    finally:
        for p, req in zip(params, reqs):
            p.grad_req = req


def _step_G(generate, net_D, loss, trainer_G):
    """update_G's work on the per-device images `generate()` gives while recording.

    It skips the discriminator's weight gradients, which trainer_G never reads (and update_D
    overwrites): about a third of the backward pass."""
    losses = []
    with _no_weight_grads(net_D):
        with autograd.record():
            for fake_X in generate():
                ones = np.ones((fake_X.shape[0],), ctx=fake_X.ctx)
                # Recomputing `fake_Y` is needed since `net_D` is changed
                losses.append(loss(net_D(fake_X), ones))
        autograd.backward(losses)
    trainer_G.step(sum(l.shape[0] for l in losses))
    return _total(losses)


def update_D(X, Z, net_D, net_G, loss, trainer_D):
    """Update the discriminator; return the batch's summed loss as a scalar on X's device.

    Same maths as d2l.update_D, but the value is left on the device: `float()` of it equals
    d2l's return value, and a loop that sums it syncs with the device only when it reads it.
    X and Z may also be lists of per-device shards (d2l's split_and_load) for data parallelism."""
    return _step_D(*_shards(X, Z), net_D, net_G, loss, trainer_D)[0]


def update_G(Z, net_D, net_G, loss, trainer_G):
    """Update the generator; return the batch's summed loss as a scalar on Z's device.

    Same maths as d2l.update_G, without the discriminator's unused weight gradients."""
    Zs, = _shards(Z)
    return _step_G(lambda: [net_G(Z) for Z in Zs], net_D, loss, trainer_G)


# layers whose forward pass is a pure function of weights and input in training mode; MXNet's
# BatchNorm updates its running averages in the backward pass, which runs once either way
_PURE_LAYERS = (nn.HybridSequential, nn.Sequential, nn.Conv2D, nn.Conv2DTranspose, nn.BatchNorm,
                nn.Activation, nn.LeakyReLU)


def shares_forward(net_G):
    """True if net_G's forward pass may be computed once for update_D and update_G alike."""
    from .model import G_block
    blocks = []
    net_G.apply(blocks.append)
    return all(isinstance(b, _PURE_LAYERS + (G_block,)) for b in blocks)


def train_step(X, Z, net_D, net_G, loss, trainer_D, trainer_G):
    """update_D then update_G, with the generator's forward pass computed once, not twice.

    d2l's update_G recomputes net_G(Z) with the weights and noise update_D used, so the same
    images; this step keeps update_D's, with its graph, for update_G's backward pass. Only for a
    generator whose forward pass is pure (see shares_forward): a dropout layer, say, would draw
    a new mask the second time. Returns the summed (loss_D, loss_G) like update_D/update_G."""
    loss_D, fakes = _step_D(*_shards(X, Z), net_D, net_G, loss, trainer_D)
    return loss_D, _step_G(lambda: fakes, net_D, loss, trainer_G)


def init_nets(net_D, net_G, device):
    """The chapter's initialisation: every weight from Normal(0.02), on `device` (or a list)."""
    net_D.initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)
    net_G.initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)


def _check_positive(name, value, kind=int):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if not ok or (kind is int and int(value) != value) or (kind is float and not math.isfinite(value)):
        raise DCGANError(f'{name} must be a positive {kind.__name__}, got {value!r}')


class TrainingInterrupted(DCGANError):
    """SIGINT or SIGTERM arrived; the step in flight finished and a checkpoint was written."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.signum = signum


class _StopOnSignal:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current step.

    A second signal interrupts at once, for a user who really means it."""

    def __init__(self, enabled):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum = None
        self.previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f'\n{signal.Signals(signum).name}: stopping after this step...', file=sys.stderr)

    def __enter__(self):
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _stream_seed(seed, epoch, stream):
    """Independent random streams per (run seed, epoch, use): a resumed epoch replays exactly."""
    return int(onp.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def _params_finite(*nets):
    return all(bool(np.isfinite(p.data()).all()) for net in nets
               for p in net.collect_params().values())


def train(net_D, net_G, data_iter, num_epochs, lr, latent_dim, device=None, *,
          devices=None, hybridize=True, seed=None, fixed_Z=None, animator=None,
          on_epoch_end=None, progress=False, verbose=True, checkpoint_dir=None,
          checkpoint_every=0, keep_checkpoints=3, resume=False, max_loss=100.0,
          on_divergence='stop', check_every=10, epoch_metrics=None):
    """Train the chapter's DCGAN and return its history, one dict per epoch.

    `device` defaults to d2l.try_gpu(). With `devices=[...]` each batch is split across them
    (data parallel, like d2l's multi-GPU chapters; BatchNorm then sees per-device statistics);
    the first one holds the sample noise and the loss sums.

    Randomness: the noise of each step and the DataLoader's shuffling (NumPy's global generator)
    are drawn from streams seeded by (`seed`, epoch), so a run resumed from a checkpoint replays
    exactly what an uninterrupted one does. `seed=None` draws one from NumPy's global generator.
    `fixed_Z` is the noise of the sample grid (the first 21 vectors are shown; drawn from the seed
    if not given); `animator` defaults to a GANAnimator (live in Jupyter);
    `on_epoch_end(record, net_D, net_G)` runs after each epoch (the CLI saves files there);
    `epoch_metrics(net_G)` may return more numbers for the epoch's record (e.g. {'swd': ...}).

    With `checkpoint_dir`, a checkpoint is written atomically after every epoch and every
    `checkpoint_every` steps (the newest `keep_checkpoints` are kept), and on SIGINT/SIGTERM after
    the step in flight (then TrainingInterrupted is raised); `resume=True` continues from the
    newest valid one up to `num_epochs` in all. Every `check_every` steps and at each epoch's end
    the running losses are read: a non-finite one, or one above `max_loss` (logits beyond about
    +-max_loss), is divergence: `on_divergence='stop'` raises DCGANError, 'rollback' reloads the
    newest checkpoint and halves the learning rate (at most 3 times). No checkpoint is ever
    written from non-finite weights."""
    _check_positive('num_epochs', num_epochs)
    _check_positive('lr', lr, float)
    _check_positive('latent_dim', latent_dim)
    if on_divergence not in ('stop', 'rollback'):
        raise DCGANError(f"on_divergence must be 'stop' or 'rollback', got {on_divergence!r}")
    if devices:
        devices = list(devices)
        if len(set(devices)) < len(devices):
            # two shards on one device also crash MXNet 1.9.1's MKLDNN backward
            raise DCGANError(f'devices must be distinct, got {devices}')
        device = devices[0]
    else:
        device = d2l.try_gpu() if device is None else device
        devices = [device]
    if seed is None:
        seed = int(onp.random.randint(2**31))
    loss = gluon.loss.SigmoidBCELoss()
    fused = shares_forward(net_G)
    mx.random.seed(_stream_seed(seed, 0, 3), ctx='all')  # the initial weights
    init_nets(net_D, net_G, devices)
    if hybridize:
        net_D.hybridize(static_alloc=True, static_shape=True)
        net_G.hybridize(static_alloc=True, static_shape=True)
    trainer_hp = {'learning_rate': lr, 'beta1': 0.5}
    # A list, not the ParameterDict: Trainer sorts a dict by names that carry per-process
    # counters (batchnorm8_ vs batchnorm10_), which would scramble optimizer states on resume.
    trainer_D = gluon.Trainer(list(net_D.collect_params().values()), 'adam', trainer_hp)
    trainer_G = gluon.Trainer(list(net_G.collect_params().values()), 'adam', trainer_hp)
    if fixed_Z is None:
        fixed_Z = onp.random.default_rng(_stream_seed(seed, 0, 2)).standard_normal(
            (21, latent_dim, 1, 1), dtype='float32')
    fixed_Z = np.array(fixed_Z, ctx=device)
    if animator is None:
        animator = GANAnimator(num_epochs)

    # where to start: the beginning, or the newest valid checkpoint
    history, epoch, done_steps, global_step, partial = [], 1, 0, 0, None
    ckpt_path, rollbacks = None, 0

    def restore(path, state):
        nonlocal history, epoch, done_steps, global_step, partial, fixed_Z, lr
        net_D(net_G(fixed_Z))  # finish deferred initialisation before loading
        fixed_Z = np.array(ckpt.load_checkpoint(path, net_D, net_G, trainer_D, trainer_G,
                                                devices), ctx=device)
        history, lr, global_step = state['history'], state['lr'], state['global_step']
        epoch, done_steps, partial = state['epoch'], state['step'], state['partial']
        if partial is None:  # the epoch was complete
            epoch, done_steps = epoch + 1, 0
        for trainer in (trainer_D, trainer_G):
            trainer.set_learning_rate(lr)

    if resume and checkpoint_dir:
        ckpt_path, state = ckpt.newest_valid_checkpoint(checkpoint_dir)
        if ckpt_path:
            if state['seed'] != seed and verbose:
                print(f'resuming with the checkpoint\'s seed {state["seed"]} (not {seed})')
            seed = state['seed']
            restore(ckpt_path, state)
            for r in history:
                animator.add(r['epoch'], r['loss_D'], r['loss_G'], swd=r.get('swd'))
            if verbose:
                print(f'resuming from {ckpt_path}: epoch {epoch}, step {done_steps + 1}')

    def save(epoch, step, partial):
        nonlocal ckpt_path
        if not checkpoint_dir:
            return None
        if not _params_finite(net_D, net_G):
            raise DCGANError(f'the weights are not finite at epoch {epoch}, step {step}; '
                             f'no checkpoint written over {ckpt_path}')
        state = {'epoch': epoch, 'step': step, 'global_step': global_step, 'partial': partial,
                 'history': history, 'seed': seed, 'lr': lr, 'latent_dim': latent_dim}
        ckpt_path = ckpt.save_checkpoint(checkpoint_dir, net_D, net_G, trainer_D, trainer_G,
                                         fixed_Z, state, keep=keep_checkpoints)
        return ckpt_path

    def diverged(where, loss_D, loss_G):
        ok = math.isfinite(loss_D) and math.isfinite(loss_G) and max(loss_D, loss_G) <= max_loss
        if ok:
            return False
        what = f'training diverged at {where} (loss_D {loss_D:.4g}, loss_G {loss_G:.4g})'
        if on_divergence == 'stop' or not ckpt_path or rollbacks >= 3:
            hint = (f'the last good checkpoint is {ckpt_path}; resume from it with a lower --lr'
                    if ckpt_path else 'no checkpoint was written; try a lower --lr')
            raise DCGANError(f'{what}; {hint}')
        if verbose:
            print(f'{what}: rolling back to {ckpt_path} with lr {lr / 2:g}', file=sys.stderr)
        return True

    speed = loss_D = loss_G = None
    with _StopOnSignal(checkpoint_dir is not None) as stop:
        while epoch <= num_epochs:
            onp.random.seed(_stream_seed(seed, epoch, 0))  # the DataLoader's shuffle
            noise = onp.random.default_rng(_stream_seed(seed, epoch, 1))
            batches = data_iter
            if progress:
                from tqdm import tqdm
                batches = tqdm(data_iter, desc=f'epoch {epoch}/{num_epochs}', leave=False,
                               unit='batch', dynamic_ncols=True, initial=0)
            sum_D, sum_G, num_examples, elapsed = 0, 0, 0, 0.0
            if partial:
                sum_D, sum_G = partial['sum_D'], partial['sum_G']
                num_examples, elapsed = partial['num_examples'], partial['elapsed']
            start = time.perf_counter()
            rolled_back = False
            step = 0
            for step, (X, _) in enumerate(batches, 1):
                batch_size = X.shape[0]
                Z = noise.standard_normal((batch_size, latent_dim, 1, 1), dtype='float32')
                if step <= done_steps or batch_size < len(devices):
                    continue  # replayed on resume; or too small to give every device an example
                Z = np.array(Z, ctx=device)
                if len(devices) > 1:
                    X = gluon.utils.split_and_load(X, devices, even_split=False)
                    Z = gluon.utils.split_and_load(Z, devices, even_split=False)
                else:
                    X = X.as_in_ctx(device)
                if fused:
                    loss_D, loss_G = train_step(X, Z, net_D, net_G, loss, trainer_D, trainer_G)
                else:
                    loss_D = update_D(X, Z, net_D, net_G, loss, trainer_D)
                    loss_G = update_G(Z, net_D, net_G, loss, trainer_G)
                sum_D, sum_G = sum_D + loss_D, sum_G + loss_G
                num_examples += batch_size
                global_step += 1
                interrupted = stop.signum is not None
                periodic = checkpoint_every and global_step % checkpoint_every == 0
                if step % check_every == 0 or interrupted or periodic:
                    # reading the sums waits for the device, so not every step
                    ld, lg = float(sum_D) / num_examples, float(sum_G) / num_examples
                    if diverged(f'epoch {epoch}, step {step}', ld, lg):
                        rolled_back = True
                        break
                    if progress:
                        batches.set_postfix(loss_D=f'{ld:.3f}', loss_G=f'{lg:.3f}')
                    if interrupted or periodic:
                        partial = {'sum_D': float(sum_D), 'sum_G': float(sum_G),
                                   'num_examples': num_examples,
                                   'elapsed': elapsed + time.perf_counter() - start}
                        path = save(epoch, step, partial)
                    if interrupted:
                        name = signal.Signals(stop.signum).name
                        raise TrainingInterrupted(
                            f'{name}: stopped at epoch {epoch}, step {step}; '
                            f'checkpoint {path}', stop.signum)
            if progress:
                batches.close()
            if not rolled_back:
                if num_examples == 0:
                    raise DCGANError('the data iterator yielded no batches')
                loss_D, loss_G = float(sum_D) / num_examples, float(sum_G) / num_examples
                rolled_back = diverged(f'the end of epoch {epoch}', loss_D, loss_G)
            if rolled_back:
                rollbacks += 1
                lowered = lr / 2
                path, state = ckpt.newest_valid_checkpoint(checkpoint_dir)
                restore(path, state)  # which also restores the checkpoint's lr
                lr = lowered
                for trainer in (trainer_D, trainer_G):
                    trainer.set_learning_rate(lr)
                continue
            speed = num_examples / (elapsed + time.perf_counter() - start)
            record = {'epoch': epoch, 'loss_D': loss_D, 'loss_G': loss_G,
                      'examples_per_sec': speed}
            if epoch_metrics is not None:
                record.update(epoch_metrics(net_G))
            animator.add(epoch, loss_D, loss_G, sample_grid(net_G, fixed_Z[:21]),
                         swd=record.get('swd'))
            history.append(record)
            save(epoch, step, None)
            if on_epoch_end is not None:
                on_epoch_end(record, net_D, net_G)
            epoch, done_steps, partial = epoch + 1, 0, None
    if verbose and speed is not None:
        print(f'loss_D {loss_D:.3f}, loss_G {loss_G:.3f}, '
              f'{speed:.1f} examples/sec on {", ".join(str(d) for d in devices)}')
    return history
