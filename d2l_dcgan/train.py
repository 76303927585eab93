"""The chapter's training loop: shared update_D / update_G, Adam(beta1 0.5), SigmoidBCELoss.

Two things make it faster than the book's code and change no number (tests check both):
- update_G skips the discriminator's weight gradients, which trainer_G never reads;
- train_step computes G's forward pass once for both updates. d2l's update_G recomputes
  net_G(Z) with the weights and noise update_D used, so the same images; MXNet's BatchNorm
  updates its running averages in the backward pass, which runs once either way. This holds
  only for a generator whose forward pass is a pure function (see shares_forward): a dropout
  layer would draw a new mask the second time.
"""
import contextlib

from d2l import mxnet as d2l
from mxnet import autograd, gluon, init, np, npx
from mxnet.gluon import nn

from .errors import DCGANError, check_positive
from .gpu import select_device
from .model import G_block
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


def _identity(X):
    return X


def _step_D(Xs, Zs, net_D, net_G, loss, trainer_D, *, real_label=1.0, augment=None):
    """update_D on per-device shards; also returns the generated images, graph recorded.

    `real_label`: the real images' target (1 is the book's; below 1 is one-sided label
    smoothing). `augment`: a function applied to every batch D sees, real and generated."""
    augment = augment or _identity
    batch_size = sum(X.shape[0] for X in Xs)
    fakes, losses = [], []
    with autograd.record():
        for X, Z in zip(Xs, Zs):
            ones = np.full((X.shape[0],), real_label, ctx=X.ctx)
            zeros = np.zeros((X.shape[0],), ctx=X.ctx)
            real_Y = net_D(augment(X))
            fakes.append(net_G(Z))
            # Do not need to compute gradient for `net_G`, detach it from computing gradients.
            fake_Y = net_D(augment(fakes[-1].detach()))
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


def _step_G(fakes, net_D, loss, trainer_G, *, augment=None):
    """update_G on the per-device images `fakes`, recorded while generated; D sees them
    through `augment`, so G's gradients flow through it."""
    augment = augment or _identity
    losses = []
    with _no_weight_grads(net_D):
        with autograd.record():
            for fake_X in fakes():
                ones = np.ones((fake_X.shape[0],), ctx=fake_X.ctx)
                # Recomputing `fake_Y` is needed since `net_D` is changed
                losses.append(loss(net_D(augment(fake_X)), ones))
        autograd.backward(losses)
    trainer_G.step(sum(l.shape[0] for l in losses))
    return _total(losses)


def update_D(X, Z, net_D, net_G, loss, trainer_D):
    """Update the discriminator; return the batch's summed loss, left on the device.

    `float()` of it equals d2l.update_D's value. X and Z may be lists of per-device shards."""
    return _step_D(*_shards(X, Z), net_D, net_G, loss, trainer_D)[0]


def update_G(Z, net_D, net_G, loss, trainer_G):
    """Update the generator; return the batch's summed loss, left on the device."""
    Zs, = _shards(Z)
    return _step_G(lambda: [net_G(Z) for Z in Zs], net_D, loss, trainer_G)


# layers whose forward pass is a pure function of weights and input in training mode
_PURE_LAYERS = (nn.HybridSequential, nn.Sequential, nn.Conv2D, nn.Conv2DTranspose, nn.BatchNorm,
                nn.Activation, nn.LeakyReLU)


def shares_forward(net_G):
    """True if net_G's forward pass may be computed once for update_D and update_G alike."""
    blocks = []
    net_G.apply(blocks.append)
    return all(isinstance(b, _PURE_LAYERS + (G_block,)) for b in blocks)


def train_step(X, Z, net_D, net_G, loss, trainer_D, trainer_G, *, real_label=1.0,
               augment=None):
    """update_D then update_G, with G's forward pass computed once when that is exact.

    The keywords are the run layer's opt-in techniques (d2l_dcgan.recipes); their defaults are
    the book's update."""
    Xs, Zs = _shards(X, Z)
    loss_D, fakes = _step_D(Xs, Zs, net_D, net_G, loss, trainer_D, real_label=real_label,
                            augment=augment)
    if not shares_forward(net_G):
        return loss_D, _step_G(lambda: [net_G(Z) for Z in Zs], net_D, loss, trainer_G,
                               augment=augment)
    return loss_D, _step_G(lambda: fakes, net_D, loss, trainer_G, augment=augment)


def init_nets(net_D, net_G, device):
    """The chapter's initialisation: every weight from Normal(0.02), on `device` (or a list)."""
    net_D.initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)
    net_G.initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)


def make_trainers(net_D, net_G, lr, lr_G=None):
    """The chapter's Adam(lr, beta1 0.5) for each net; `lr_G` (default: lr) for the generator's,
    two time-scales (Heusel et al. 2017)."""
    # lists, not ParameterDicts: Trainer sorts those by names that carry per-process counters
    # (batchnorm8_ vs batchnorm10_), which would scramble the optimizer states on resume
    return tuple(gluon.Trainer(list(net.collect_params().values()), 'adam',
                               {'learning_rate': rate, 'beta1': 0.5})
                 for net, rate in ((net_D, lr), (net_G, lr if lr_G is None else lr_G)))


def hybridize(*nets):
    """Compile each net to a static graph (the same numbers, less Python per step)."""
    for net in nets:
        net.hybridize(static_alloc=True, static_shape=True)


class Accumulator(d2l.Accumulator):
    """d2l's Accumulator, but it sums device arrays where they are: float() would wait for
    the device every step."""

    def add(self, *args):
        self.data = [a + b for a, b in zip(self.data, args)]


def computed_seconds(timer):
    """The timer's seconds once the devices have computed all that was queued."""
    npx.waitall()  # steps run behind the loop: the last ones' time belongs to the epoch
    return timer.stop()


def default_device():
    """d2l.try_gpu(), but only a GPU that runs MXNet 1.9.1's kernels (else the CPU)."""
    return select_device('auto')[0]


def train(net_D, net_G, data_iter, num_epochs, lr, latent_dim, device=None,
          animator=GANAnimator):
    """Train the chapter's DCGAN; return one dict of losses and speed per epoch.

    `device`: default_device(). `animator`: the figure's class, an object with its add(), or
    None to draw nothing."""
    check_positive(num_epochs=num_epochs, latent_dim=latent_dim)
    check_positive(float, lr=lr)
    device = default_device() if device is None else device
    loss = gluon.loss.SigmoidBCELoss()
    init_nets(net_D, net_G, device)
    hybridize(net_D, net_G)
    trainer_D, trainer_G = make_trainers(net_D, net_G, lr)
    if isinstance(animator, type):
        animator = animator(num_epochs)
    history = []
    for epoch in range(1, num_epochs + 1):
        # Train one epoch
        timer = d2l.Timer()
        metric = Accumulator(3)  # loss_D, loss_G, num_examples
        for X, _ in data_iter:
            batch_size = X.shape[0]
            Z = np.random.normal(0, 1, size=(batch_size, latent_dim, 1, 1))
            X, Z = X.as_in_ctx(device), Z.as_in_ctx(device)
            metric.add(*train_step(X, Z, net_D, net_G, loss, trainer_D, trainer_G),
                       batch_size)
        if not metric[2]:
            raise DCGANError('the data iterator yielded no batches')
        # Show generated examples
        Z = np.random.normal(0, 1, size=(21, latent_dim, 1, 1), ctx=device)
        # Show the losses
        loss_D, loss_G = float(metric[0]) / metric[2], float(metric[1]) / metric[2]
        history.append({'epoch': epoch, 'loss_D': loss_D, 'loss_G': loss_G,
                        'examples_per_sec': metric[2] / computed_seconds(timer)})
        if animator is not None:
            animator.add(epoch, loss_D, loss_G, sample_grid(net_G, Z))
    print(f'loss_D {loss_D:.3f}, loss_G {loss_G:.3f}, '
          f'{metric[2] / timer.stop():.1f} examples/sec on {str(device)}')
    return history
