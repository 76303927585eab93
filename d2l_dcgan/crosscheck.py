"""`python -m d2l_dcgan crosscheck`: the book's code against this package's, step by step.

The book's side is the chapter's code as d2l ships it: its `nn.Block` nets (d2l_dcgan.book,
verbatim) trained imperatively by `d2l.update_D` and `d2l.update_G` from the installed d2l, with
the chapter's initialisation and Trainers. Our side is `generator`/`discriminator` hybridized as
`train` runs them, updated by `train_step` (update_D then update_G, G's forward pass shared) as
`train` and `fit` update them. Both start from the same weights
(ours are copied from the book's, in `collect_params()` order) and see the same batches and
noise; after every step the losses and every parameter (weights, BatchNorm's gamma, beta and
running statistics) are compared."""
import sys

import mxnet as mx
import numpy as onp
from d2l import mxnet as d2l
from mxnet import gluon, init, np

from . import discriminator, generator, init_nets
from .book import chapter_nets
from .data import to_tensor
from .errors import DCGANError
from .train import hybridize, make_trainers, train_step
from .flags import (HelpFormatter, Parser, POSITIVE_FLOAT, POSITIVE_INT, SEED, add_data_flags,
                    chosen_device, device_spec, examples, read_data, run_command)

# What "within float rounding" allows: on a CPU the two sides agree to the last bit; another
# device or library may sum in another order (cuDNN picks its algorithms), which moves a result
# by a few float32 ulps, while a changed update moves weights by a good part of lr per step.
# The measurements behind these bounds: docs/crosscheck.md.
WEIGHT_TOL_LR = 1e-3  # the largest |book - ours| of any parameter, in units of lr
WEIGHT_TOL_MIN = 32 * 2.0**-23  # 32 float32 ulps of 1.0
LOSS_RTOL = 1e-4  # either loss, |book - ours| / |book|: logits of weights within the above


def weight_tolerance(lr):
    return max(WEIGHT_TOL_LR * lr, WEIGHT_TOL_MIN)


def crosscheck_parser(prog=None):
    p = Parser(prog=prog, description=(
        "Train the book's code (nn.Block nets, d2l.update_D/update_G) and this package's "
        '(hybridized nets, d2l_dcgan.train_step) side by side from identical weights on '
        'the same batches and noise; print both losses and the largest weight difference per '
        'step; exit 0 if every difference is within float rounding, else 1.'),
        formatter_class=HelpFormatter)
    p.epilog = examples(p.prog, ('5 steps on 256 drawn sprites, offline', ''),
                        ('the chapter\'s sizes on the Pokemon, 20 steps',
                         '--dataset pokemon --batch-size 256 --steps 20'))
    p.add_argument('--steps', type=POSITIVE_INT, default=5, help='training steps to compare')
    add_data_flags(p.add_argument_group('data'))
    p.set_defaults(dataset='sprites', num_sprites=256)
    p.add_argument('--batch-size', type=POSITIVE_INT, default=64, help='images per step')
    p.add_argument('--n-G', dest='n_G', type=POSITIVE_INT, default=64, help='generator width')
    p.add_argument('--n-D', dest='n_D', type=POSITIVE_INT, default=64,
                   help='discriminator width')
    p.add_argument('--lr', type=POSITIVE_FLOAT, default=0.005, help="Adam's learning rate")
    p.add_argument('--latent-dim', type=POSITIVE_INT, default=100, help='length of Z')
    p.add_argument('--seed', type=SEED, default=0, help='seed of the weights, batches and noise')
    p.add_argument('--device', type=device_spec, default='auto',
                   help='auto, cpu, cpu:N, gpu or gpu:N')
    return p


def batches(images, steps, batch_size, latent_dim, seed):
    """`steps` (X, Z) NumPy pairs: shuffled images (reshuffled when they run out) and noise."""
    rng = onp.random.default_rng(seed)
    batch_size = min(batch_size, len(images))
    order = onp.concatenate([rng.permutation(len(images))
                             for _ in range(-(-steps * batch_size // len(images)))])
    for step in range(steps):
        X = to_tensor(images[order[step * batch_size:(step + 1) * batch_size]]).asnumpy()
        yield X, rng.standard_normal((batch_size, latent_dim, 1, 1), dtype='float32')


def _params(*nets):
    return [p for net in nets for p in net.collect_params().values()]


def copy_weights(src_nets, dst_nets):
    """Copy every parameter of src_nets into dst_nets, matched by order (names differ)."""
    src, dst = _params(*src_nets), _params(*dst_nets)
    if len(src) != len(dst):
        raise ValueError(f'{len(src)} parameters against {len(dst)}')
    for a, b in zip(src, dst):
        if a.shape != b.shape:
            raise ValueError(f'{a.name} {a.shape} against {b.name} {b.shape}')
        b.set_data(a.data())


def max_difference(nets_a, nets_b):
    """The largest |a - b| over all parameters of the two sets of nets, and that parameter's
    name (ours)."""
    worst, where = 0.0, None
    for a, b in zip(_params(*nets_a), _params(*nets_b)):
        d = float(onp.abs(a.data().asnumpy() - b.data().asnumpy()).max())
        if d > worst or where is None:
            worst, where = d, b.name
    return worst, where


class Side:
    """A pair of nets, their Trainers and the step function that trains them."""

    def __init__(self, net_D, net_G, trainer_D, trainer_G, step):
        self.nets, self.trainers, self.step_fn = (net_D, net_G), (trainer_D, trainer_G), step

    def step(self, X, Z, loss):
        """One step: (loss_D, loss_G) per example, like the chapter's final line."""
        loss_D, loss_G = self.step_fn(X, Z, *self.nets, loss, *self.trainers)
        return float(loss_D) / X.shape[0], float(loss_G) / X.shape[0]


def book_step(X, Z, net_D, net_G, loss, trainer_D, trainer_G):
    """The chapter's step: the installed d2l's update_D, then its update_G."""
    return (d2l.update_D(X, Z, net_D, net_G, loss, trainer_D),
            d2l.update_G(Z, net_D, net_G, loss, trainer_G))


def book_side(n_G, n_D, lr, device, X, Z):
    """The chapter's train(), up to its loop: nets, initialisation, Trainers."""
    net_D, net_G = chapter_nets(n_G, n_D)
    net_D.initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)
    net_G.initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)
    net_D(net_G(Z))  # finish the deferred initialisation (inference mode: nothing changes)
    net_D(X)
    trainer_hp = {'learning_rate': lr, 'beta1': 0.5}
    trainer_D = gluon.Trainer(net_D.collect_params(), 'adam', trainer_hp)
    trainer_G = gluon.Trainer(net_G.collect_params(), 'adam', trainer_hp)
    return Side(net_D, net_G, trainer_D, trainer_G, book_step)


def our_side(book, n_G, n_D, lr, device, X, Z):
    """This package's nets, set up as train() sets them up, with the book's initial weights."""
    net_G, net_D = generator(n_G), discriminator(n_D)
    init_nets(net_D, net_G, device)
    hybridize(net_D, net_G)
    net_D(net_G(Z))
    net_D(X)
    copy_weights(book.nets, (net_D, net_G))
    return Side(net_D, net_G, *make_trainers(net_D, net_G, lr), train_step)


def _close(a, b):
    return abs(a - b) <= LOSS_RTOL * max(abs(a), abs(b))


def crosscheck(images, steps, batch_size, n_G, n_D, lr, latent_dim, seed, device, out=print):
    """Run both sides; print the table and the verdict; return the first step that differs, or
    None. Each row: step, book loss_D, ours, book loss_G, ours, largest weight difference."""
    data = [(np.array(X, ctx=device), np.array(Z, ctx=device))
            for X, Z in batches(images, steps, batch_size, latent_dim, seed)]
    mx.random.seed(seed, ctx='all')
    book = book_side(n_G, n_D, lr, device, *data[0])
    ours = our_side(book, n_G, n_D, lr, device, *data[0])
    start, where = max_difference(book.nets, ours.nets)
    if start != 0:
        raise DCGANError(f'the weights differ before training ({start:.1e} in {where})')
    loss = gluon.loss.SigmoidBCELoss()
    tol = weight_tolerance(lr)
    out(f'{len(data)} steps of {len(data[0][0])} images, n_G {n_G}, n_D {n_D}, lr {lr:g}, '
        f'seed {seed}, on {device}')
    out(f'{"step":>4}  {"book loss_D":>12}  {"ours":>12}  {"book loss_G":>12}  {"ours":>12}  '
        f'{"max |dw|":>9}')
    first, worst_w, worst_loss = None, 0.0, 0.0
    for i, (X, Z) in enumerate(data, 1):
        (bD, bG), (oD, oG) = book.step(X, Z, loss), ours.step(X, Z, loss)
        dw, where = max_difference(book.nets, ours.nets)
        out(f'{i:>4}  {bD:>12.6f}  {oD:>12.6f}  {bG:>12.6f}  {oG:>12.6f}  {dw:>9.1e}')
        worst_w = max(worst_w, dw)
        worst_loss = max(worst_loss, abs(bD - oD), abs(bG - oG))
        if first is None and not (dw <= tol and _close(bD, oD) and _close(bG, oG)):
            first = (i, dw, where, bD, oD, bG, oG)
    limits = (f'tolerance: weights within {tol:.1e}, losses within {LOSS_RTOL:g} relative; '
              f'float32 rounding moves a weight of ~1 by 1.2e-7 a step')
    if first is None:
        out(f'OK: the book\'s code and d2l_dcgan agree at every step (largest weight difference '
            f'{worst_w:.1e}, largest loss difference {worst_loss:.1e}; {limits})')
        return None
    i, dw, where, bD, oD, bG, oG = first
    out(f'DIFFERENT: step {i} is the first that differs (weights by up to {dw:.1e}, in {where}; '
        f'loss_D {bD:.6f} vs {oD:.6f}, loss_G {bG:.6f} vs {oG:.6f}; {limits})')
    return i


def run_crosscheck(args):
    device = chosen_device(args.device)
    root, images, _ = read_data(args)
    print(f'data: {len(images)} images from {root}')
    return crosscheck(images, args.steps, args.batch_size, args.n_G, args.n_D, args.lr,
                      args.latent_dim, args.seed, device)


def crosscheck_main(argv=None, prog=None):
    parser = crosscheck_parser(prog)
    args = parser.parse_args(argv)
    differs = []
    status = run_command(lambda a: differs.append(run_crosscheck(a)), args, parser=parser)
    return status or (1 if differs and differs[0] is not None else 0)


if __name__ == '__main__':
    sys.exit(crosscheck_main())
