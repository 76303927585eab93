"""The chapter's training loop: shared update_D / update_G, Adam(beta1 0.5), SigmoidBCELoss."""
import math
import time

from d2l import mxnet as d2l
from mxnet import autograd, gluon, init, np

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


def update_D(X, Z, net_D, net_G, loss, trainer_D):
    """Update the discriminator; return the batch's summed loss as a scalar on X's device.

    Same maths as d2l.update_D, but the value is left on the device: `float()` of it equals
    d2l's return value, and a loop that sums it syncs with the device only when it reads it.
    X and Z may also be lists of per-device shards (d2l's split_and_load) for data parallelism."""
    Xs, Zs = _shards(X, Z)
    batch_size = sum(X.shape[0] for X in Xs)
    losses = []
    with autograd.record():
        for X, Z in zip(Xs, Zs):
            ones = np.ones((X.shape[0],), ctx=X.ctx)
            zeros = np.zeros((X.shape[0],), ctx=X.ctx)
            real_Y = net_D(X)
            fake_X = net_G(Z)
            # Do not need to compute gradient for `net_G`, detach it from computing gradients.
            fake_Y = net_D(fake_X.detach())
            losses.append((loss(real_Y, ones) + loss(fake_Y, zeros)) / 2)
    autograd.backward(losses)
    trainer_D.step(batch_size)
    return _total(losses)


def update_G(Z, net_D, net_G, loss, trainer_G):
    """Update the generator; return the batch's summed loss as a scalar on Z's device."""
    Zs, = _shards(Z)
    batch_size = sum(Z.shape[0] for Z in Zs)
    losses = []
    with autograd.record():
        for Z in Zs:
            ones = np.ones((Z.shape[0],), ctx=Z.ctx)
            fake_X = net_G(Z)
            # Recomputing `fake_Y` is needed since `net_D` is changed
            fake_Y = net_D(fake_X)
            losses.append(loss(fake_Y, ones))
    autograd.backward(losses)
    trainer_G.step(batch_size)
    return _total(losses)


def init_nets(net_D, net_G, device):
    """The chapter's initialisation: every weight from Normal(0.02), on `device` (or a list)."""
    net_D.initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)
    net_G.initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)


def _check_positive(name, value, kind=int):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if not ok or (kind is int and int(value) != value) or (kind is float and not math.isfinite(value)):
        raise DCGANError(f'{name} must be a positive {kind.__name__}, got {value!r}')


def train(net_D, net_G, data_iter, num_epochs, lr, latent_dim, device=None, *,
          devices=None, hybridize=True, fixed_Z=None, animator=None, on_epoch_end=None,
          progress=False, verbose=True):
    """Train the chapter's DCGAN and return its history, one dict per epoch.

    `device` defaults to d2l.try_gpu(). With `devices=[...]` each batch is split across them
    (data parallel, like d2l's multi-GPU chapters; BatchNorm then sees per-device statistics), and
    the first one holds the sample noise and the loss sums. `fixed_Z` is the noise of the sample grid (21 vectors,
    drawn once so that epochs compare); `animator` defaults to a GANAnimator (live in Jupyter);
    `on_epoch_end(record, net_D, net_G)` runs after each epoch (the CLI saves files there)."""
    _check_positive('num_epochs', num_epochs)
    _check_positive('lr', lr, float)
    _check_positive('latent_dim', latent_dim)
    if devices:
        devices = list(devices)
        if len(set(devices)) < len(devices):
            # two shards on one device also crash MXNet 1.9.1's MKLDNN backward
            raise DCGANError(f'devices must be distinct, got {devices}')
        device = devices[0]
    else:
        device = d2l.try_gpu() if device is None else device
        devices = [device]
    loss = gluon.loss.SigmoidBCELoss()
    init_nets(net_D, net_G, devices)
    if hybridize:
        net_D.hybridize(static_alloc=True, static_shape=True)
        net_G.hybridize(static_alloc=True, static_shape=True)
    trainer_hp = {'learning_rate': lr, 'beta1': 0.5}
    trainer_D = gluon.Trainer(net_D.collect_params(), 'adam', trainer_hp)
    trainer_G = gluon.Trainer(net_G.collect_params(), 'adam', trainer_hp)
    if fixed_Z is None:
        fixed_Z = np.random.normal(0, 1, size=(21, latent_dim, 1, 1), ctx=device)
    fixed_Z = fixed_Z.as_in_ctx(device)
    if animator is None:
        animator = GANAnimator(num_epochs)
    history = []
    for epoch in range(1, num_epochs + 1):
        batches = data_iter
        if progress:
            from tqdm import tqdm
            batches = tqdm(data_iter, desc=f'epoch {epoch}/{num_epochs}', leave=False,
                           unit='batch', dynamic_ncols=True)
        start = time.perf_counter()
        sum_D = sum_G = 0
        num_examples = 0
        for step, (X, _) in enumerate(batches):
            batch_size = X.shape[0]
            if batch_size < len(devices):
                continue  # a last batch too small to give every device an example
            Z = np.random.normal(0, 1, size=(batch_size, latent_dim, 1, 1), ctx=device)
            if len(devices) > 1:
                X = gluon.utils.split_and_load(X, devices, even_split=False)
                Z = gluon.utils.split_and_load(Z, devices, even_split=False)
            else:
                X = X.as_in_ctx(device)
            sum_D = sum_D + update_D(X, Z, net_D, net_G, loss, trainer_D)
            sum_G = sum_G + update_G(Z, net_D, net_G, loss, trainer_G)
            num_examples += batch_size
            if progress and step % 10 == 0:  # reading the sums waits for the device: not every step
                batches.set_postfix(loss_D=f'{float(sum_D) / num_examples:.3f}',
                                    loss_G=f'{float(sum_G) / num_examples:.3f}')
        if num_examples == 0:
            raise DCGANError('the data iterator yielded no batches')
        loss_D, loss_G = float(sum_D) / num_examples, float(sum_G) / num_examples
        speed = num_examples / (time.perf_counter() - start)
        if progress:
            batches.close()
        animator.add(epoch, loss_D, loss_G, sample_grid(net_G, fixed_Z))
        record = {'epoch': epoch, 'loss_D': loss_D, 'loss_G': loss_G,
                  'examples_per_sec': speed}
        history.append(record)
        if on_epoch_end is not None:
            on_epoch_end(record, net_D, net_G)
    if verbose:
        print(f'loss_D {loss_D:.3f}, loss_G {loss_G:.3f}, '
              f'{speed:.1f} examples/sec on {", ".join(str(d) for d in devices)}')
    return history
