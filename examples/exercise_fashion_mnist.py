"""Exercise 2 of d2l's DCGAN chapter: DCGAN on Fashion-MNIST; which categories work, which don't.

1. Trains a small classifier, d2l's LeNet with batch normalization, on the real 28x28 training
   images and checks it on the test images, as they are and after the trip the generated images
   take (the GAN's Resize(64), then shrunk back to 28x28 with area averaging).
2. Trains the chapter's DCGAN on all ten categories (1-channel nets, 64x64, [-1, 1]).
3. Generates --num-samples images, shrinks them to 28x28 and lets the classifier sort them.
   Per category: the share of generated images put there (vs. its share of the real images),
   the classifier's mean confidence on them, and the sliced Wasserstein distance (SWD x1e3,
   Karras et al. 2018; lower is better) between them and real images of that category, next to
   the SWD between two disjoint real samples of the same size (the floor a perfect generator
   would reach; SWD grows as samples shrink, so only the gap above the floor compares across
   categories). Categories are ranked by that gap; those with fewer than --min-swd-images
   generated images get no SWD and rank last.

Writes into --out-dir: exercise_fashion_mnist.png (one row of generated samples per category,
best first), exercise_fashion_mnist.json (all numbers), dcgan.png (the chapter's loss figure),
net_G.params; prints a table and a one-line finding computed from the numbers.

    python examples/exercise_fashion_mnist.py --data-dir DIR        # small CPU budget
    python examples/exercise_fashion_mnist.py --data-dir DIR --full # the chapter's budget

The --data-dir folder holds train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (gzipped or not); without it, Gluon's
FashionMNIST downloads them into $MXNET_HOME/datasets/fashion-mnist.
"""
import os
import sys
import time

import matplotlib
import matplotlib.pyplot as plt
import numpy as onp

# the chapter's budget (--full; limit 0 = every training image) and the small CPU one (default)
FULL = {'num_epochs': 20, 'batch_size': 256, 'n_G': 64, 'n_D': 64, 'limit': 0,
        'classifier_epochs': 10, 'num_samples': 10000}
SMALL = {'num_epochs': 4, 'batch_size': 64, 'n_G': 16, 'n_D': 16, 'limit': 4000,
         'classifier_epochs': 3, 'num_samples': 1000}
SIZE = 64  # the chapter's image size
ONEDNN_NOTE = ('oneDNN (MKLDNN) is off: MXNet 1.9.1\'s oneDNN Conv2DTranspose fails to '
               'backpropagate through a layer with 1 output channel, the 1-channel '
               'generator\'s last ("could not create a primitive descriptor for a reorder '
               'primitive"); CPU training is slower without it (docs/speed.md)')


def avoid_onednn_deconv_bug():
    """Turn oneDNN off before MXNet loads, unless MXNET_MKLDNN_ENABLED is set; True if it did.

    Only the CPU backend uses oneDNN, so a GPU run loses nothing."""
    if 'MXNET_MKLDNN_ENABLED' in os.environ:
        return False
    os.environ['MXNET_MKLDNN_ENABLED'] = '0'
    # without oneDNN, MXNet logs a "storage type fallback" warning per operator
    os.environ.setdefault('MXNET_STORAGE_FALLBACK_LOG_VERBOSE', '0')
    return True


def _budget_help(text, name, show=str):
    return f'{text} (default {show(SMALL[name])}; --full: {show(FULL[name])})'


def parser():
    # imports MXNet, so it comes after avoid_onednn_deconv_bug()
    from d2l_dcgan.flags import HelpFormatter, Parser, device_spec, doc_and_examples, number

    description, epilog = doc_and_examples(__doc__)
    p = Parser(prog='exercise_fashion_mnist.py', description=description, epilog=epilog,
               formatter_class=HelpFormatter)  # it keeps the docstring's line breaks
    data = p.add_argument_group('data')
    data.add_argument('--data-dir', help='folder with the four Fashion-MNIST IDX files (.gz or '
                      'raw); without it, Gluon\'s FashionMNIST downloader is tried')
    data.add_argument('--limit', type=number(int, 0), help=_budget_help(
        'train the DCGAN on only the first N training images, 0 for all; the classifier always '
        'learns from all of them', 'limit', lambda v: v or 'all'))
    gan = p.add_argument_group('DCGAN')
    gan.add_argument('--full', action='store_true',
                     help='the chapter\'s budget: 20 epochs, batch 256, n_G = n_D = 64, every '
                          'image, 10 classifier epochs, 10000 generated images (hours on a '
                          'CPU); flags given explicitly still win')
    gan.add_argument('--num-epochs', type=number(int, 1), help=_budget_help(
        'DCGAN passes over the data', 'num_epochs'))
    gan.add_argument('--batch-size', type=number(int, 1), help=_budget_help(
        'DCGAN images per step', 'batch_size'))
    gan.add_argument('--n-G', dest='n_G', type=number(int, 1), help=_budget_help(
        'generator width', 'n_G'))
    gan.add_argument('--n-D', dest='n_D', type=number(int, 1), help=_budget_help(
        'discriminator width', 'n_D'))
    gan.add_argument('--lr', type=number(float, 0, above=True), default=0.005,
                     help='Adam\'s learning rate, both nets (the chapter\'s)')
    gan.add_argument('--latent-dim', type=number(int, 1), default=100,
                     help='length of the noise vectors Z')
    judge = p.add_argument_group('judging the categories')
    judge.add_argument('--classifier-epochs', type=number(int, 1), help=_budget_help(
        'epochs of the LeNet classifier (SGD, batch 256)', 'classifier_epochs'))
    judge.add_argument('--classifier-lr', type=number(float, 0, above=True), default=1.0,
                       help='the classifier\'s SGD learning rate (d2l\'s for LeNet with '
                            'batch normalization)')
    judge.add_argument('--num-samples', type=number(int, 2), help=_budget_help(
        'generated images sorted into categories', 'num_samples'))
    p.rename('--num-generated', '--num-samples')
    judge.add_argument('--swd-samples', type=number(int, 2), default=256,
                       help='at most this many generated (and as many real) images per '
                            'category enter its SWD')
    judge.add_argument('--min-swd-images', type=number(int, 2), default=16,
                       help='a category with fewer generated images gets no SWD')
    judge.add_argument('--ncols', type=number(int, 1), default=10,
                       help='generated images per category (one row each) in the figure')
    p.rename('--samples-per-row', '--ncols')
    run = p.add_argument_group('run')
    run.add_argument('--seed', type=number(int, 0, 2**31), default=0,
                     help='seed of everything: weights, noise, shuffling, the SWD')
    run.add_argument('--device', type=device_spec, default='auto',
                     help='auto, cpu, cpu:N, gpu or gpu:N')
    run.add_argument('--out-dir', default=os.path.join('runs', 'exercise_fashion_mnist'),
                     help='where the figures, JSON and net_G.params go')
    return p


# ---------------------------------------------------------------------------------------------
# the judge: d2l's LeNet with batch normalization (sec_batch_norm, concise implementation)

def lenet():
    # here: MXNet loads after avoid_onednn_deconv_bug()
    from mxnet.gluon import nn
    net = nn.HybridSequential()
    net.add(nn.Conv2D(6, kernel_size=5), nn.BatchNorm(), nn.Activation('sigmoid'),
            nn.AvgPool2D(pool_size=2, strides=2),
            nn.Conv2D(16, kernel_size=5), nn.BatchNorm(), nn.Activation('sigmoid'),
            nn.AvgPool2D(pool_size=2, strides=2),
            nn.Dense(120), nn.BatchNorm(), nn.Activation('sigmoid'),
            nn.Dense(84), nn.BatchNorm(), nn.Activation('sigmoid'),
            nn.Dense(10))
    return net


def _as_input(images_u8, device):
    """uint8 (N, H, W[, 1]) -> float32 (N, 1, H, W) in [0, 1], d2l's ToTensor for Fashion-MNIST."""
    # here: MXNet loads after avoid_onednn_deconv_bug()
    from mxnet import np
    X = images_u8.reshape(len(images_u8), 1, *images_u8.shape[1:3])
    return np.array(X, ctx=device).astype('float32') / 255


def train_classifier(images, labels, epochs, lr, seed, device, batch_size=256):
    # here: MXNet loads after avoid_onednn_deconv_bug()
    import mxnet as mx
    from mxnet import autograd, gluon, init
    mx.random.seed(seed, ctx='all')
    net = lenet()
    net.initialize(init.Xavier(), ctx=device)
    net.hybridize()
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': lr})
    rng = onp.random.default_rng(seed)
    history = []
    for epoch in range(1, epochs + 1):
        start, total, correct = time.perf_counter(), 0.0, 0
        order = rng.permutation(len(images))
        for i in range(0, len(order), batch_size):
            idx = onp.sort(order[i:i + batch_size])
            X = _as_input(images[idx], device)
            y = mx.np.array(labels[idx], ctx=device)
            with autograd.record():
                y_hat = net(X)
                l = loss(y_hat, y)
            l.backward()
            trainer.step(len(idx))
            total += float(l.sum())
            correct += int((y_hat.argmax(axis=1).astype('int32') == y).sum())
        history.append({'epoch': epoch, 'loss': total / len(images),
                        'train_accuracy': correct / len(images)})
        print(f'  classifier epoch {epoch}: loss {total / len(images):.3f}, train accuracy '
              f'{correct / len(images):.3f} ({time.perf_counter() - start:.1f} s)', flush=True)
    return net, history


def predict(net, images_u8, device, batch_size=1024):
    """Softmax probabilities (N, 10) as numpy for uint8 images of the classifier's size."""
    # here: MXNet loads after avoid_onednn_deconv_bug()
    from mxnet import npx
    return onp.concatenate([npx.softmax(net(_as_input(images_u8[i:i + batch_size], device)))
                            .asnumpy() for i in range(0, len(images_u8), batch_size)])


def shrink(images_u8, shape):
    """64x64 images back to the classifier's (H, W): Gluon's Resize with area averaging."""
    # here: MXNet loads after avoid_onednn_deconv_bug()
    from d2l_dcgan.fashion import resize_images
    assert shape[0] == shape[1], shape
    return resize_images(images_u8, shape[0], interpolation=3)


# ---------------------------------------------------------------------------------------------

def _first_line(e):
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    return lines[0] if lines else type(e).__name__


class _Progress:
    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self, record, net_D, net_G):
        print(f'  DCGAN epoch {record["epoch"]}: loss_D {record["loss_D"]:.3f}, loss_G '
              f'{record["loss_G"]:.3f} ({record["examples_per_sec"]:.0f} examples/s, '
              f'{time.perf_counter() - self.start:.0f} s so far)', flush=True)


def generate_u8(net_G, Z, device, chunk=256):
    """Generated images as uint8 (N, 64, 64, 1), rounded like a saved PNG."""
    # here: MXNet loads after avoid_onednn_deconv_bug()
    from d2l_dcgan.model import sample
    X = sample(net_G, Z, device, chunk)
    return onp.clip(onp.round((X / 2 + 0.5) * 255), 0, 255).astype(onp.uint8).transpose(0, 2, 3, 1)


def judge_categories(gen, probs, real, real_labels, args):
    """Per category: share, mean confidence, SWD to real images of it and the real-vs-real floor."""
    # here: MXNet loads after avoid_onednn_deconv_bug()
    from d2l_dcgan.fashion import FASHION_CLASSES
    from d2l_dcgan.metrics import sliced_wasserstein
    assigned, confidence = probs.argmax(axis=1), probs.max(axis=1)
    rng = onp.random.default_rng(args.seed + 1)
    rows = []
    for c, name in enumerate(FASHION_CLASSES):
        idx = onp.flatnonzero(assigned == c)
        real_idx = onp.flatnonzero(real_labels == c)
        row = {'label': c, 'category': name, 'count': int(len(idx)),
               'share': len(idx) / len(gen), 'real_share': len(real_idx) / len(real),
               'mean_confidence': float(confidence[idx].mean()) if len(idx) else None,
               'swd': None, 'swd_levels': None, 'swd_images': None,
               'real_vs_real_swd': None, 'swd_excess': None, 'note': None}
        if len(idx) < args.min_swd_images:
            row['note'] = (f'no SWD: {len(idx)} generated image(s), fewer than '
                           f'{args.min_swd_images}')
        elif len(real_idx) < 2:
            row['note'] = f'no SWD: {len(real_idx)} real image(s) of this category'
        else:
            start = time.perf_counter()
            order = rng.permutation(real_idx)
            # the same number of images in the floor's two disjoint real samples, when there
            # are enough real images for them
            with_floor = len(real_idx) // 2 >= args.min_swd_images
            n = min(len(idx), args.swd_samples,
                    len(real_idx) // 2 if with_floor else len(real_idx))
            levels, swd = sliced_wasserstein(gen[idx[:n]], real[onp.sort(order[:n])],
                                             seed=args.seed)
            row.update(swd=swd, swd_levels=levels, swd_images=n)
            if with_floor:
                floor = sliced_wasserstein(real[onp.sort(order[:n])],
                                           real[onp.sort(order[n:2 * n])], seed=args.seed)[1]
                row.update(real_vs_real_swd=floor, swd_excess=swd - floor)
            else:
                row['note'] = (f'no real-vs-real floor: {len(real_idx)} real images, fewer '
                               f'than 2 x {args.min_swd_images}')
            print(f'  {name}: SWD {swd:.1f} on {n} images '
                  f'({time.perf_counter() - start:.1f} s)', flush=True)
        rows.append(row)
    return rank(rows)


def rank(rows):
    """Best first: by SWD above the real-vs-real floor when every judged category has a floor,
    else by SWD; categories without an SWD last, the more often generated first."""
    judged = [r for r in rows if r['swd'] is not None]
    key = 'swd_excess' if judged and all(r['swd_excess'] is not None for r in judged) else 'swd'
    judged.sort(key=lambda r: r[key])
    rest = sorted((r for r in rows if r['swd'] is None), key=lambda r: -r['share'])
    for i, r in enumerate(judged + rest, 1):
        r['rank'] = i
    return judged + rest, key


def _f(x, spec, none='-'):
    return format(x, spec) if x is not None else none


def print_table(rows):
    print(f'\n{"rank":>4}  {"category":<11}{"share":>7}{"real":>7}{"conf":>6}{"SWD":>8}'
          f'{"real-real":>10}{"gap":>7}  note')
    for r in rows:
        print(f'{r["rank"]:>4}  {r["category"]:<11}{r["share"]:>7.1%}{r["real_share"]:>7.1%}'
              f'{_f(r["mean_confidence"], ".2f"):>6}{_f(r["swd"], ".1f"):>8}'
              f'{_f(r["real_vs_real_swd"], ".1f"):>10}{_f(r["swd_excess"], "+.1f"):>7}  '
              f'{r["note"] or ""}')


def finding(rows, key, checks):
    judged = [r for r in rows if r['swd'] is not None]
    unjudged = [r for r in rows if r['swd'] is None]

    def describe(r):
        gap = (f', {r["swd_excess"]:+.1f} vs its real-vs-real {r["real_vs_real_swd"]:.1f}'
               if r['swd_excess'] is not None else '')
        return (f'{r["category"]} (SWD {r["swd"]:.1f}{gap}; {r["share"]:.1%} of the generated '
                f'images vs {r["real_share"]:.1%} of the real, confidence '
                f'{r["mean_confidence"]:.2f})')

    if len(judged) >= 2:
        text = f'{describe(judged[0])} came out best and {describe(judged[-1])} worst'
    elif judged:
        text = f'only {describe(judged[0])} had enough generated images for an SWD'
    else:
        text = 'no category had enough generated images for an SWD'
    text += f' (ranked by {"SWD above the real-vs-real floor" if key == "swd_excess" else "SWD"})'
    rare = [r for r in rows if r['share'] < r['real_share'] / 2]
    common = [r for r in rows if r['share'] > r['real_share'] * 2]
    if rare:
        text += ('; under-produced (under half their real share): '
                 + ', '.join(f'{r["category"]} {r["share"]:.1%}' for r in rare))
    if common:
        text += ('; over-produced (over twice their real share): '
                 + ', '.join(f'{r["category"]} {r["share"]:.1%}' for r in common))
    unjudged = [r for r in unjudged if r not in rare]  # rare ones are named already
    if unjudged:
        text += f'; no SWD for {", ".join(r["category"] for r in unjudged)}'
    text += (f'. The classifier reads {checks["test_accuracy"]:.1%} of the real test images '
             f'right, {checks["round_trip_accuracy"]:.1%} after the 28->64->28 round trip the '
             f'generated images take')
    if checks['round_trip_accuracy'] < checks['test_accuracy'] - 0.05:
        text += ', so the resizing itself costs it accuracy'
    return text + '.'


def plot(rows, gen, real, real_labels, per_row, path):
    # here: MXNet loads after avoid_onednn_deconv_bug()
    from d2l_dcgan.plot import save_figure
    H, W = gen.shape[1:3]
    gap = 6
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.0 * (per_row + 1) + 3.2,
                                                     1.05 * len(rows) + 0.6))
    axes = onp.atleast_1d(axes)
    for ax, r in zip(axes, rows):
        strip = onp.full((H, (per_row + 1) * W + gap), 128, onp.uint8)  # gray: no image
        reals = onp.flatnonzero(real_labels == r['label'])
        if len(reals):
            strip[:, :W] = real[reals[0], ..., 0]
        for j, i in enumerate(r['_indices'][:per_row]):
            x = W + gap + j * W
            strip[:, x:x + W] = gen[i, ..., 0]
        ax.imshow(strip, cmap='gray', vmin=0, vmax=255, interpolation='nearest')
        ax.set_xticks([])
        ax.set_yticks([])
        ax.axvline(W + gap / 2 - 0.5, color='tab:orange', lw=2)
        if not len(r['_indices']):
            ax.text((W + gap + strip.shape[1]) / 2, H / 2, 'no generated image was put here',
                    ha='center', va='center', color='white', fontsize=10)
        label = (f'{r["rank"]}. {r["category"]}\n{r["share"]:.1%} generated '
                 f'({r["real_share"]:.0%} real)\nconf {_f(r["mean_confidence"], ".2f")}, '
                 f'SWD {_f(r["swd"], ".1f")}')
        ax.text(-0.01, 0.5, label, transform=ax.transAxes, ha='right', va='center', fontsize=9)
    axes[0].set_title('left of the line: one real image; right: generated images the '
                      'classifier put in the category (best category first)', fontsize=10)
    width = fig.get_figwidth()
    fig.subplots_adjust(left=2.4 / width, right=1 - 0.1 / width, top=0.95, bottom=0.01,
                        hspace=0.12)
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def main(args, onednn_off=False):
    matplotlib.use('Agg')
    # here: MXNet loads after avoid_onednn_deconv_bug()
    from d2l_dcgan.fileio import save_params, write_json
    from d2l_dcgan.flags import apply_budget, chosen_device
    from d2l_dcgan.errors import DCGANError
    from d2l_dcgan.fashion import (FASHION_CLASSES, array_loader, load_fashion_mnist_arrays,
                                   resize_images)
    from d2l_dcgan.metrics import sliced_wasserstein
    from d2l_dcgan.model import discriminator, generator
    from d2l_dcgan.plot import GANAnimator
    from d2l_dcgan.run import fit
    from mxnet.base import MXNetError

    apply_budget(args, SMALL, FULL)
    device = chosen_device(args.device)
    if onednn_off and device.device_type == 'cpu':
        print(f'note: {ONEDNN_NOTE}')
    out = args.out_dir
    if os.path.exists(out) and not os.path.isdir(out):
        raise DCGANError(f'--out-dir {out} is a file, not a directory')
    os.makedirs(out, exist_ok=True)
    timings = {}
    t0 = time.perf_counter()
    train_images, train_labels = load_fashion_mnist_arrays(args.data_dir, train=True)
    test_images, test_labels = load_fashion_mnist_arrays(args.data_dir, train=False)
    if test_images.shape[1:] != train_images.shape[1:]:
        raise DCGANError(f'the training images are {train_images.shape[1:]} but the test images '
                         f'{test_images.shape[1:]}')
    limit = args.limit or len(train_images)
    gan_images, gan_labels = train_images[:limit], train_labels[:limit]
    source = os.path.abspath(args.data_dir) if args.data_dir else 'Gluon FashionMNIST'
    print(f'data: {len(train_images)} training and {len(test_images)} test images from '
          f'{source}; the DCGAN trains on the first {len(gan_images)}')

    print(f'classifier: d2l\'s LeNet with batch normalization, {args.classifier_epochs} '
          f'epoch(s) on {len(train_images)} images', flush=True)
    t = time.perf_counter()
    classifier, clf_history = train_classifier(train_images, train_labels, args.classifier_epochs,
                                               args.classifier_lr, args.seed, device)
    test_acc = float((predict(classifier, test_images, device).argmax(1) == test_labels).mean())
    round_trip = shrink(resize_images(test_images, SIZE), test_images.shape[1:])
    trip_acc = float((predict(classifier, round_trip, device).argmax(1) == test_labels).mean())
    checks = {'test_accuracy': test_acc, 'round_trip_accuracy': trip_acc,
              'epochs': clf_history}
    timings['classifier'] = time.perf_counter() - t
    print(f'  test accuracy {test_acc:.3f}; after 28->{SIZE}->28: {trip_acc:.3f}')

    print(f'DCGAN: {args.num_epochs} epoch(s), batch {args.batch_size}, n_G {args.n_G}, '
          f'n_D {args.n_D}', flush=True)
    t = time.perf_counter()
    real64 = resize_images(gan_images, SIZE)  # the chapter's Resize(64), once
    loader = array_loader(real64, gan_labels, batch_size=args.batch_size, size=SIZE)
    net_G, net_D = generator(args.n_G, out_channels=1), discriminator(args.n_D)
    try:
        with GANAnimator(args.num_epochs, path=os.path.join(out, 'dcgan.png')) as animator:
            history = fit(net_D, net_G, loader, args.num_epochs, args.lr, args.latent_dim,
                          device, seed=args.seed, animator=animator, on_epoch_end=_Progress(),
                          verbose=False)
    except MXNetError as e:
        if 'reorder primitive' not in str(e):
            raise
        raise DCGANError(f'MXNet\'s oneDNN failed in the 1-channel generator\'s backward pass '
                         f'({_first_line(e)}); run with MXNET_MKLDNN_ENABLED=0 (the default '
                         f'of this script when the variable is unset)') from e
    save_params(net_G, os.path.join(out, 'net_G.params'))
    timings['dcgan'] = time.perf_counter() - t

    print(f'judging {args.num_samples} generated images', flush=True)
    t = time.perf_counter()
    Z = onp.random.default_rng(args.seed).standard_normal(
        (args.num_samples, args.latent_dim, 1, 1), dtype='float32')
    gen = generate_u8(net_G, Z, device)
    probs = predict(classifier, shrink(gen, train_images.shape[1:]), device)
    rows, key = judge_categories(gen, probs, real64, gan_labels, args)
    assigned = probs.argmax(axis=1)
    for r in rows:
        r['_indices'] = onp.flatnonzero(assigned == r['label'])
    k = min(len(gen), len(real64), args.swd_samples)
    order = onp.random.default_rng(args.seed + 2).permutation(len(real64))
    overall = {'images': k, 'swd': sliced_wasserstein(gen[:k], real64[onp.sort(order[:k])],
                                                     seed=args.seed)[1],
               'real_vs_real_swd': None}
    if len(real64) >= 2 * k:
        overall['real_vs_real_swd'] = sliced_wasserstein(
            real64[onp.sort(order[:k])], real64[onp.sort(order[k:2 * k])], seed=args.seed)[1]
    timings['judging'] = time.perf_counter() - t

    text = finding(rows, key, checks)
    print_table(rows)
    floor = _f(overall['real_vs_real_swd'], '.1f')
    print(f'all categories: SWD {overall["swd"]:.1f} on {k} images (real vs real {floor})')
    print(f'\nfinding: {text}')

    fig_path = os.path.join(out, 'exercise_fashion_mnist.png')
    json_path = os.path.join(out, 'exercise_fashion_mnist.json')
    plot(rows, gen, real64, gan_labels, args.ncols, fig_path)
    timings['total'] = time.perf_counter() - t0
    write_json(json_path, {
        'settings': vars(args), 'device': str(device), 'data': source,
        'num_train_images': len(train_images), 'num_gan_images': len(gan_images),
        'categories': list(FASHION_CLASSES),
        'classifier': checks, 'dcgan_epochs': history,
        'num_generated': len(gen), 'ranked_by': key,
        'per_category': [{k_: v for k_, v in r.items() if not k_.startswith('_')} for r in rows],
        'all_categories': overall, 'finding': text, 'seconds': timings})
    print(f'wrote {fig_path}, {json_path}, {os.path.join(out, "dcgan.png")} and '
          f'{os.path.join(out, "net_G.params")} ({timings["total"]:.0f} s)')


if __name__ == '__main__':
    onednn_off = avoid_onednn_deconv_bug()  # before MXNet is imported
    from d2l_dcgan.flags import run_command
    p = parser()
    sys.exit(run_command(lambda args: main(args, onednn_off), p.parse_args(), parser=p))
