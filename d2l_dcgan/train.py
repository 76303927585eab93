"""The chapter's training loop: shared update_D / update_G, Adam(beta1 0.5), SigmoidBCELoss."""
import math
import time

from d2l import mxnet as d2l
from mxnet import autograd, gluon, init, np

from .errors import DCGANError
from .plot import GANAnimator, sample_grid


def update_D(X, Z, net_D, net_G, loss, trainer_D):
    """Update the discriminator; return the batch's summed loss as a scalar on X's device.

    Same maths as d2l.update_D, but the value is left on the device: `float()` of it equals
    d2l's return value, and a loop that sums it syncs with the device only when it reads it."""
    batch_size = X.shape[0]
    ones = np.ones((batch_size,), ctx=X.ctx)
    zeros = np.zeros((batch_size,), ctx=X.ctx)
    with autograd.record():
        real_Y = net_D(X)
        fake_X = net_G(Z)
        # Do not need to compute gradient for `net_G`, detach it from computing gradients.
        fake_Y = net_D(fake_X.detach())
        loss_D = (loss(real_Y, ones) + loss(fake_Y, zeros)) / 2
    loss_D.backward()
    trainer_D.step(batch_size)
    return loss_D.sum()


def update_G(Z, net_D, net_G, loss, trainer_G):
    """Update the generator; return the batch's summed loss as a scalar on Z's device."""
    batch_size = Z.shape[0]
    ones = np.ones((batch_size,), ctx=Z.ctx)
    with autograd.record():
        fake_X = net_G(Z)
        # Recomputing `fake_Y` is needed since `net_D` is changed
        fake_Y = net_D(fake_X)
        loss_G = loss(fake_Y, ones)
    loss_G.backward()
    trainer_G.step(batch_size)
    return loss_G.sum()


def init_nets(net_D, net_G, device):
    """The chapter's initialisation: every weight from Normal(0.02), on `device`."""
    net_D.initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)
    net_G.initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)


def _check_positive(name, value, kind=int):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if not ok or (kind is int and int(value) != value) or (kind is float and not math.isfinite(value)):
        raise DCGANError(f'{name} must be a positive {kind.__name__}, got {value!r}')


def train(net_D, net_G, data_iter, num_epochs, lr, latent_dim, device=None, *,
          hybridize=True, fixed_Z=None, animator=None, on_epoch_end=None, progress=False,
          verbose=True):
    """Train the chapter's DCGAN and return its history, one dict per epoch.

    `device` defaults to d2l.try_gpu(). `fixed_Z` is the noise of the sample grid (21 vectors,
    drawn once so that epochs compare); `animator` defaults to a GANAnimator (live in Jupyter);
    `on_epoch_end(record, net_D, net_G)` runs after each epoch (the CLI saves files there)."""
    _check_positive('num_epochs', num_epochs)
    _check_positive('lr', lr, float)
    _check_positive('latent_dim', latent_dim)
    device = d2l.try_gpu() if device is None else device
    loss = gluon.loss.SigmoidBCELoss()
    init_nets(net_D, net_G, device)
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
            Z = np.random.normal(0, 1, size=(batch_size, latent_dim, 1, 1), ctx=device)
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
              f'{speed:.1f} examples/sec on {str(device)}')
    return history
