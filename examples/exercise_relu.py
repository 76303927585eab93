"""Exercise 1 of d2l's DCGAN chapter: plain ReLU instead of leaky ReLU in the discriminator.

Trains the chapter's DCGAN twice with the same seed, data and budget: once with the chapter's
LeakyReLU(alpha=0.2) in every D_block, once with alpha=0 (plain ReLU). After every epoch it
records loss_D, loss_G and the sliced Wasserstein distance (SWD, Karras et al. 2018, x1e3; lower
is better) between a fixed batch of generated images and a fixed sample of real ones. It writes
exercise_relu.png (both runs' loss curves, SWD per epoch, final samples) and exercise_relu.json
into --out-dir and prints a table and a one-line finding computed from the numbers.

    python examples/exercise_relu.py                  # sprites, small CPU budget (a few minutes)
    python examples/exercise_relu.py --full --dataset pokemon      # the chapter's budget
    python examples/exercise_relu.py --data-dir ~/.cache/d2l-dcgan/pokemon --seed 1
"""
import os
import sys
import time

import matplotlib
import matplotlib.pyplot as plt
import numpy as onp

# the chapter's budget (--full) and the small CPU one (the default)
FULL = {'num_epochs': 20, 'batch_size': 256, 'n_G': 64, 'n_D': 64, 'num_sprites': 1024}
SMALL = {'num_epochs': 6, 'batch_size': 64, 'n_G': 16, 'n_D': 16, 'num_sprites': 512}
# thresholds of the finding: a discriminator loss below this has "collapsed" (D wins outright:
# log 2 = 0.69 is a D that cannot tell), a generator loss above this has "blown up"
COLLAPSED_D, BLOWN_UP_G = 0.1, 5.0


from d2l_dcgan.data import DEFAULT_CACHE_DIR, array_loader, read_images  # noqa: E402
from d2l_dcgan.errors import DCGANError  # noqa: E402
from d2l_dcgan.fileio import write_json  # noqa: E402
from d2l_dcgan.flags import (HelpFormatter, Parser, apply_budget, chosen_device,  # noqa: E402
                             data_root, device_spec, doc_and_examples, number, run_command)
from d2l_dcgan.metrics import sliced_wasserstein  # noqa: E402
from d2l_dcgan.model import discriminator, generator, sample  # noqa: E402
from d2l_dcgan.plot import save_figure, to_image_grid  # noqa: E402
from d2l_dcgan.run import fit  # noqa: E402


def parser():
    description, epilog = doc_and_examples(__doc__)
    p = Parser(prog='exercise_relu.py', description=description, epilog=epilog,
               formatter_class=HelpFormatter)  # it keeps the docstring's line breaks
    data = p.add_argument_group('data')
    data.add_argument('--dataset', choices=('sprites', 'pokemon'), default='sprites',
                      help='sprites: a procedurally drawn offline stand-in; pokemon: download '
                           'd2l\'s pokemon.zip (SHA-1 checked)')
    data.add_argument('--data-dir', help='train on this ImageFolder root instead '
                      '(DIR/<class>/<image>.png, e.g. an extracted pokemon.zip\'s pokemon/)')
    data.add_argument('--num-sprites', type=number(int, 0, above=True),
                      help=f'images in the sprites dataset (default {SMALL["num_sprites"]}; '
                           f'--full: {FULL["num_sprites"]})')
    data.add_argument('--cache-dir', default=DEFAULT_CACHE_DIR,
                      help='where pokemon.zip is downloaded, the sprites drawn and the decoded '
                           'images kept (train\'s: $D2L_DCGAN_CACHE, else ~/.cache/d2l-dcgan)')
    data.add_argument('--no-image-cache', dest='image_cache', action='store_false',
                      help='decode the images in memory, not into (or from) DIR/decoded of '
                           '--cache-dir')
    model = p.add_argument_group('budget (the same for both runs)')
    model.add_argument('--full', action='store_true',
                       help='the chapter\'s budget: 20 epochs, batch 256, n_G = n_D = 64 '
                            '(hours on a CPU); flags given explicitly still win')
    model.add_argument('--num-epochs', type=number(int, 0, above=True),
                       help=f'passes over the data (default {SMALL["num_epochs"]}; '
                            f'--full: {FULL["num_epochs"]})')
    model.add_argument('--batch-size', type=number(int, 0, above=True),
                       help=f'images per step (default {SMALL["batch_size"]}; '
                            f'--full: {FULL["batch_size"]})')
    model.add_argument('--n-G', dest='n_G', type=number(int, 0, above=True),
                       help=f'generator width (default {SMALL["n_G"]}; --full: {FULL["n_G"]})')
    model.add_argument('--n-D', dest='n_D', type=number(int, 0, above=True),
                       help=f'discriminator width (default {SMALL["n_D"]}; '
                            f'--full: {FULL["n_D"]})')
    model.add_argument('--lr', type=number(float, 0, above=True), default=0.005,
                       help='Adam\'s learning rate, both nets (the chapter\'s)')
    model.add_argument('--latent-dim', type=number(int, 0, above=True), default=100,
                       help='length of the noise vectors Z')
    model.add_argument('--alpha', type=number(float, 0, 1, above=True), default=0.2,
                       help='the leaky run\'s LeakyReLU slope (the other run uses 0)')
    run = p.add_argument_group('run')
    run.add_argument('--swd-samples', type=number(int, 0, above=True), default=256,
                     help='generated and real images compared by the SWD after each epoch')
    run.add_argument('--seed', type=number(int, 0, 2**31), default=0,
                     help='seed of both runs (weights, noise, shuffling) and of the SWD')
    run.add_argument('--device', type=device_spec, default='auto',
                     help='auto, cpu, cpu:N, gpu or gpu:N')
    run.add_argument('--out-dir', default=os.path.join('runs', 'exercise_relu'),
                     help='where exercise_relu.png and exercise_relu.json go')
    return p


def load_images(args):
    """(root, uint8 images (N, 64, 64, 3)) of the chosen dataset, decoded once."""
    root = data_root(args)
    return root, read_images(root, size=64,
                             cache_dir=args.cache_dir if args.image_cache else None)[0]


def run_variant(name, alpha, args, loader, real_ref, Z, device):
    net_G, net_D = generator(args.n_G), discriminator(args.n_D, alpha)
    epochs, samples = [], {}

    def on_epoch_end(record, net_D, net_G):
        start = time.perf_counter()
        fake = sample(net_G, Z, device)
        levels, swd = sliced_wasserstein(fake, real_ref, seed=args.seed)
        epochs.append({'epoch': record['epoch'], 'loss_D': float(record['loss_D']),
                       'loss_G': float(record['loss_G']),  # finite: train() checks
                       'examples_per_sec': record['examples_per_sec'],
                       'swd': swd, 'swd_levels': levels})
        samples['final'] = fake[:32]
        print(f'  {name}: epoch {record["epoch"]:3d}  loss_D {record["loss_D"]:.3f}  '
              f'loss_G {record["loss_G"]:.3f}  SWD {swd:7.2f}  '
              f'({record["examples_per_sec"]:.0f} examples/s, SWD {time.perf_counter() - start:.1f} s)',
              flush=True)

    print(f'{name} (alpha {alpha:g}): training {args.num_epochs} epochs', flush=True)
    start = time.perf_counter()
    diverged = None
    try:
        # no figure per epoch: this script draws its own at the end
        fit(net_D, net_G, loader, args.num_epochs, args.lr, args.latent_dim, device,
            seed=args.seed, animator=None, on_epoch_end=on_epoch_end, verbose=False)
    except DCGANError as e:
        if 'diverged' not in str(e):
            raise
        diverged = getattr(e, 'message', str(e))  # a result of the exercise, not a failure
        print(f'  {name}: {diverged}', flush=True)
    return {'alpha': alpha, 'epochs': epochs, 'diverged': diverged,
            'seconds': time.perf_counter() - start}, samples.get('final')


def finding(results, floor):
    """One sentence from the numbers: which run ended with the lower SWD, whether the last half
    of the epochs agrees, and how each run's losses ended."""
    label = {n: f'{n} (alpha {results[n]["alpha"]:g})' for n in results}
    names = [n for n in results if results[n]['epochs']]
    if len(names) == 2:
        final = {n: results[n]['epochs'][-1]['swd'] for n in names}
        a, b = sorted(names, key=final.get)
        text = (f'{label[a]} ended with the lower SWD, {final[a]:.1f} vs {final[b]:.1f} '
                f'for {label[b]}')
        m = min(len(results[n]['epochs']) for n in names) // 2
        if m >= 2:  # one epoch's SWD is noisy: does the second half agree?
            late = {n: sum(e['swd'] for e in results[n]['epochs'][-m:]) / m for n in names}
            text += (f'; over the last {m} epochs the mean SWD was {late[a]:.1f} vs '
                     f'{late[b]:.1f}, ' + ('the same order' if late[a] <= late[b] else
                                           'the other order, so at this budget neither is '
                                           'clearly better'))
        if floor is not None and min(final.values()) > 2 * floor:
            text += f'; both far above the real-vs-real SWD of {floor:.1f}'
        mean = {(n, k): sum(e[k] for e in results[n]['epochs']) / len(results[n]['epochs'])
                for n in names for k in ('loss_D', 'loss_G')}
        text += (f'; averaged over the epochs, loss_D was {mean[a, "loss_D"]:.2f} ({a}) vs '
                 f'{mean[b, "loss_D"]:.2f} ({b}) and loss_G {mean[a, "loss_G"]:.2f} vs '
                 f'{mean[b, "loss_G"]:.2f}')
    elif names:
        text = f'only {label[names[0]]} finished an epoch'
    else:
        text = 'neither run finished an epoch'
    states = []
    for n, r in results.items():
        if r['diverged']:
            states.append(f'{n} {r["diverged"].split(";")[0].replace("training ", "")}')
            continue
        if not r['epochs']:
            continue
        e = r['epochs'][-1]
        peak = max(r['epochs'], key=lambda x: x['loss_G'])
        bits = []
        if e['loss_D'] < COLLAPSED_D:
            bits.append(f'D\'s loss collapsed to {e["loss_D"]:.3f}')
        if e['loss_G'] > BLOWN_UP_G:
            bits.append(f'G\'s loss blew up to {e["loss_G"]:.2f}')
        if not bits:
            bits.append(f'D\'s loss did not collapse (final {e["loss_D"]:.3f}) nor G\'s blow '
                        f'up (final {e["loss_G"]:.2f}, peak {peak["loss_G"]:.2f} at epoch '
                        f'{peak["epoch"]})')
        states.append(f'{n}: ' + ' and '.join(bits))
    seed = next(iter(results.values()))['seed']
    return (text + '; ' + '; '.join(states) + f'. One seed ({seed}): rerun with other --seed '
            'values before generalising.')


def print_table(results):
    names = list(results)
    head = ' | '.join(f'{n + " (alpha " + format(results[n]["alpha"], "g") + ")":^26}'
                      for n in names)
    print(f'\nepoch | {head}')
    print('      | ' + ' | '.join(f'{"loss_D":>8}{"loss_G":>9}{"SWD":>9}' for _ in names))
    num = max(len(results[n]['epochs']) for n in names)
    for i in range(num):
        cells = []
        for n in names:
            eps = results[n]['epochs']
            if i < len(eps):
                e = eps[i]
                cells.append(f'{_fmt(e["loss_D"], 8, 3)}{_fmt(e["loss_G"], 9, 3)}'
                             f'{_fmt(e["swd"], 9, 2)}')
            else:
                cells.append(f'{"-":>8}{"-":>9}{"-":>9}')
        print(f'{i + 1:5d} | ' + ' | '.join(cells))


def _fmt(x, width, digits):
    return f'{x:{width}.{digits}f}' if x is not None else f'{"nan":>{width}}'


def plot(results, samples, floor, path):
    names = list(results)
    colours = {names[0]: 'tab:blue', names[-1]: 'tab:red'}
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.6))
    ax = axes[0, 0]
    for n in names:
        eps = results[n]['epochs']
        x = [e['epoch'] for e in eps]
        tag = f'{n} (alpha {results[n]["alpha"]:g})'
        ax.plot(x, [e['loss_D'] for e in eps], '-o', color=colours[n], ms=4,
                label=f'{tag}: loss_D')
        ax.plot(x, [e['loss_G'] for e in eps], '--s', color=colours[n], ms=4,
                label=f'{tag}: loss_G')
    ax.set_xlabel('epoch')
    ax.set_ylabel('loss (per example)')
    ax.set_title('losses: D solid, G dashed')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    for n in names:
        eps = results[n]['epochs']
        ax.plot([e['epoch'] for e in eps], [e['swd'] for e in eps], '-o', color=colours[n],
                ms=4, label=f'{n} (alpha {results[n]["alpha"]:g})')
    if floor is not None:
        ax.axhline(floor, color='gray', ls=':', label=f'real vs real ({floor:.1f})')
    ax.set_xlabel('epoch')
    ax.set_ylabel('SWD x 1e3 (lower is better)')
    ax.set_title('sliced Wasserstein distance to real images')
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    for ax, n in zip(axes[1], names):
        ax.axis('off')
        eps = results[n]['epochs']
        if samples.get(n) is None:
            ax.set_title(f'{n}: no samples')
            continue
        ax.imshow(to_image_grid(samples[n], 4, 8))
        ax.set_title(f'{n} (alpha {results[n]["alpha"]:g}) after epoch {eps[-1]["epoch"]}: '
                     f'SWD {eps[-1]["swd"]:.1f}', fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def main(args):
    matplotlib.use('Agg')

    apply_budget(args, SMALL, FULL)
    device = chosen_device(args.device)
    out = args.out_dir
    if os.path.exists(out) and not os.path.isdir(out):
        raise DCGANError(f'--out-dir {out} is a file, not a directory')
    os.makedirs(out, exist_ok=True)
    root, images = load_images(args)
    n = len(images)
    k = min(args.swd_samples, n)
    print(f'data: {n} images from {root}; SWD on {k} generated vs {k} real images')

    rng = onp.random.default_rng(args.seed)
    order = rng.permutation(n)
    real_ref = images[onp.sort(order[:k])]
    floor = None
    if n >= 2 * k and k >= 2:  # two disjoint real samples: the SWD of a perfect generator
        floor = sliced_wasserstein(real_ref, images[onp.sort(order[k:2 * k])], seed=args.seed)[1]
        print(f'real vs real SWD ({k} vs {k} other images): {floor:.2f}')
    Z = rng.standard_normal((k, args.latent_dim, 1, 1), dtype='float32')  # both runs' SWD noise
    loader = array_loader(images, onp.zeros(len(images), 'int32'), args.batch_size)

    results, samples = {}, {}
    for name, alpha in (('leaky', args.alpha), ('relu', 0.0)):
        results[name], samples[name] = run_variant(name, alpha, args, loader, real_ref, Z, device)
        results[name]['seed'] = args.seed
    text = finding(results, floor)
    print_table(results)
    print(f'\nfinding: {text}')

    fig_path = os.path.join(out, 'exercise_relu.png')
    json_path = os.path.join(out, 'exercise_relu.json')
    plot(results, samples, floor, fig_path)
    settings = {k_: v for k_, v in vars(args).items()}
    write_json(json_path, {
        'settings': settings, 'device': str(device), 'data_dir': os.path.abspath(root),
        'num_images': n, 'swd': {'samples': k, 'real_vs_real': floor,
                                 'note': 'x1e3, Karras et al. 2018; lower is better'},
        'variants': results, 'finding': text})
    print(f'wrote {fig_path} and {json_path}')


if __name__ == '__main__':
    p = parser()
    sys.exit(run_command(main, p.parse_args(), parser=p))
