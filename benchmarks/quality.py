#!/usr/bin/env python
"""Time to quality: the SWD of `--recipe book` and `--recipe improved` against the training
images seen, up to the chapter's budget (20 epochs of the 40,597 Pokemon: 811,940 images).

    python benchmarks/quality.py --data-dir DIR                # book, improved; seeds 0, 1
    python benchmarks/quality.py --data-dir DIR --budgets 1/16,1/8,1/4,1/2,1
    python benchmarks/quality.py --table                       # what --out holds
    python benchmarks/quality.py --figure docs/quality_curve.png --grids docs/quality_grids.png
    python benchmarks/quality.py --recipes book,improved --figure curve.png  # only these two

Every (recipe, seed) is one run of the command line's `train` with the chapter's settings
(batch 256, widths 64, lr 0.005, latent 100; --width and --batch-size for smaller sweeps) and
the recipe's flags (a recipe's own batch size, as improved's 64, wins), in WORK/RECIPE-seedS.
It trains epoch after epoch (a checkpoint each) to the first budget, is measured, and
continues with --resume to the next. A budget F is the first whole epoch at or past F x 811,940
images. A measurement: the SWD (x1e3, the mean of the 64, 32 and 16 px levels) between 1,024
images generated as the recipe samples (its weight average where it has one) and 1,024 real
ones, and a copy of that epoch's 64 samples of the seed's fixed noise (the same noise for every
recipe).

Results go to --out after every measurement. A sweep that is killed or runs out of time is
continued by the same command: measurements done are kept, and each run goes on from its last
checkpoint (a run whose folder was lost starts again; seeded, it trains the same weights).
"""
import d2l_dcgan  # noqa: F401  first: MXNet's thread count, compat

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction

import matplotlib
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import mxnet as mx
import numpy as onp
from PIL import Image

from d2l_dcgan.commands.evaluate import generator_swd
from d2l_dcgan.commands.recipe_flags import recipe_defaults, train_recipe
from d2l_dcgan.commands.sampling import load_generator
from d2l_dcgan.commands.train import train_parser
from d2l_dcgan.data import DEFAULT_CACHE_DIR, read_images
from d2l_dcgan.fileio import write_json
from d2l_dcgan.flags import CHAPTER_IMAGES, epochs_for, parse_given
from d2l_dcgan.metrics import sliced_wasserstein
from d2l_dcgan.plot import save_figure
from d2l_dcgan.recipes import RECIPES as TRAIN_RECIPES
from d2l_dcgan.runfolder import EMA_PARAMS, RunFolder

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# each recipe: train's flags on top of the chapter's settings
RECIPES = {
    'book': [],
    'improved': ['--recipe', 'improved'],
}
# candidates for --recipe improved: lower learning rates for both nets (the chapter's TensorFlow
# tab uses 0.0005) with a weight average whose half-life ramps up to 10,000 images
AVERAGE = ['--ema-halflife', '10000', '--ema-rampup', '0.05']
RECIPES.update({f'lr{lr}+avg': ['--lr-D', lr, '--lr-G', lr] + AVERAGE
                for lr in ('0.0005', '0.001', '0.002')})
# the full-budget runs: the best half-life grows with the images seen, so a ramp of
# 0.02 (the half-life at each budget: docs/quality.md, --recipe improved)
RAMPED = ['--ema-halflife', '10000', '--ema-rampup', '0.02']
RECIPES['lr0.0005+avg0.02'] = ['--lr-D', '0.0005', '--lr-G', '0.0005'] + RAMPED
# lr0.0005 lost to the book at 1/16 (widths 64): the book's rate first, falling to 0.0005 by 50k
RECIPES['decay50k+avg0.02'] = ['--lr-decay', '0.1', '--lr-decay-images', '50000'] + RAMPED
# improved of then (lr0.0005+avg0.02) lost to the book at 1/16 (docs/quality.md): a faster
# start, 0.002 to improved's 0.0005 by 100,000 images (1/8)
RECIPES['decay100k+lr0.002+avg0.02'] = ['--lr', '0.002', '--lr-decay', '0.25',
                                        '--lr-decay-images', '100000'] + RAMPED
# at 1/16 a batch of 256 gives improved 210 steps: a batch of 64 gives 4x the steps for the same
# images, at a little less speed (docs/speed.md)
RECIPES['lr0.0005+avg0.02+batch64'] = RECIPES['lr0.0005+avg0.02'] + ['--batch-size', '64']
# improved's SWD rose from 1/4 to 1/2 as D won on 3,786 images (docs/quality.md): DiffAugment,
# made for a D that overfits few
RECIPES['lr0.0005+avg0.02+batch64+aug'] = RECIPES['lr0.0005+avg0.02+batch64'] + ['--augment']
# it cost 1/16 and caught up by 1/8 (docs/quality.md): augment a growing share of the images,
# all of them from 200,000 (1/4) on, where D began to win
RECIPES['lr0.0005+avg0.02+batch64+aug200k'] = RECIPES['lr0.0005+avg0.02+batch64+aug'] + [
    '--augment-ramp', '200000']


def recipe_of(name):
    """The d2l_dcgan.recipes.Recipe that `train` runs with RECIPES[name]'s flags, with the
    batch size it trains with."""
    args, given = parse_given(train_parser(), RECIPES[name])
    recipe_defaults(args, given)
    return replace(train_recipe(args), batch_size=args.batch_size)


def own_batch_size(name):
    """True if RECIPES[name] trains with a batch size of its own, not the sweep's."""
    return recipe_of(name).batch_size != recipe_of('book').batch_size


def label(name):
    """The recipe's name in the figures: --recipe's, where its flags make one of them."""
    if name in TRAIN_RECIPES:
        return f'--recipe {name}'
    mine = recipe_of(name)
    same = [n for n in TRAIN_RECIPES if recipe_of(n) == mine]
    return f'{name} (= --recipe {same[0]})' if same else name


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--data-dir', help='an ImageFolder root of real images (required to train)')
    p.add_argument('--recipes', help='comma-separated, of ' + ', '.join(RECIPES) + ': the ones '
                   'to train (default: book,improved); without --data-dir, the ones --figure '
                   'and --grids draw (default: all in --out)')
    p.add_argument('--seeds', default='0,1', help='comma-separated seeds')
    p.add_argument('--budgets', default='1/16,1/8,1/4',
                   help="fractions of the chapter's 811,940 training images")
    p.add_argument('--width', type=int, default=64, help='n_G = n_D')
    p.add_argument('--batch-size', type=int, default=256,
                   help='the batch of the recipes without one of their own (improved has one)')
    p.add_argument('--samples', type=int, default=1024,
                   help='generated (and real) images of each SWD')
    p.add_argument('--work-dir', default=os.path.join(DEFAULT_CACHE_DIR, 'quality-runs'),
                   help='the runs\' folders (checkpoints: outside the repository)')
    p.add_argument('--cache-dir', default=DEFAULT_CACHE_DIR,
                   help="train's --cache-dir (the decoded images)")
    p.add_argument('--out', default=os.path.join(HERE, 'quality.json'))
    p.add_argument('--table', action='store_true', help='only print the table of --out')
    p.add_argument('--figure', help='write the SWD curves of --out to this PNG')
    p.add_argument('--grids', help='write the recipes\' samples side by side at each budget '
                   '(seed 0, or the first measured) to this PNG')
    args = p.parse_args(argv)
    args.names = [n.strip() for n in (args.recipes or '').split(',') if n.strip()]
    return args


def fraction(text):
    return Fraction(text.strip())


def share(images):
    """`images` as a share of the chapter's: '1/16.0' for 50,746."""
    return f'1/{CHAPTER_IMAGES / images:.1f}'


def settings(args, num_images):
    """What every measurement of one sweep shares; --out is only extended under the same."""
    return {'data_dir': os.path.abspath(args.data_dir), 'num_images': num_images,
            'width': args.width, 'batch_size': args.batch_size, 'samples': args.samples,
            'chapter_images': CHAPTER_IMAGES}


def train_to(args, name, seed, epochs, run_dir):
    """`train` the run in `run_dir` to `epochs` epochs: started, or continued from its last
    checkpoint."""
    base = [sys.executable, '-m', 'd2l_dcgan', 'train']
    folder = RunFolder(run_dir)
    if folder.newest_checkpoint():
        done = len(folder.recorded()['epochs'])
        if done > epochs:  # its weights at `epochs` are gone
            sys.exit(f'{run_dir} has trained past epoch {epochs}: sweep the budgets in '
                     f'increasing order, or delete the run to train it again')
        if done == epochs:  # killed after training, before the measurement
            return
        print(f'{name}/{seed}: continuing {run_dir} from epoch {done} to {epochs}', flush=True)
        cmd = base + ['--resume', run_dir, '--num-epochs', str(epochs)]
    else:
        shutil.rmtree(run_dir, ignore_errors=True)  # a run killed before its first checkpoint
        cmd = base + ['--data-dir', args.data_dir, '--cache-dir', args.cache_dir,
                      '--out-dir', run_dir, '--num-epochs', str(epochs), '--seed', str(seed),
                      '--n-G', str(args.width), '--n-D', str(args.width),
                      '--swd-samples', '0', '--device', 'cpu', '--no-progress']
        if not own_batch_size(name):
            cmd += ['--batch-size', str(args.batch_size)]
        cmd += RECIPES[name]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f'{name}/{seed}: train failed ({proc.returncode}):\n{proc.stderr[-3000:]}')


def measure(args, images, run_dir, epoch, seed):
    """The SWD of the run's generator (its average where it has one; and of the raw G) after
    `epoch`, and what the run recorded of its training."""
    folder = RunFolder(run_dir)
    metrics = folder.recorded()
    done = [e for e in metrics['epochs'] if e['epoch'] <= epoch]
    assert len(done) == epoch, f'{run_dir} holds {len(done)} epochs, not {epoch}'
    raw, average = folder.params('net_G'), folder.params(EMA_PARAMS)
    averaged = os.path.exists(average)
    swds = {}
    for params in [average] * averaged + [raw]:
        net_G, latent_dim = load_generator(params, mx.cpu())
        swds[params] = generator_swd(net_G, latent_dim, images, args.samples, seed, mx.cpu())
    levels, swd, _ = swds[average if averaged else raw]
    return {'epoch': epoch, 'images': epoch * metrics['num_images'], 'swd': swd,
            'swd_levels': levels, 'averaged': averaged, 'recipe': metrics['recipe'],
            'swd_raw_G': swds[raw][1],
            'loss_D': done[-1]['loss_D'], 'loss_G': done[-1]['loss_G'],
            'train_seconds': sum(metrics['num_images'] / e['examples_per_sec'] for e in done)}


def keep_samples(args, run_dir, key, epoch):
    """A copy of the epoch's sample grid beside --out, for the figure, to commit: the run folder
    lies outside the repository and is lost with its machine. At the figure's size (256 px, as
    draw_grids shows it at 50 dpi), as JPEG: about 20 kB, against 700 kB for the run's PNG."""
    os.makedirs(samples_folder(args), exist_ok=True)
    with Image.open(RunFolder(run_dir).sample_grid(epoch)) as im:
        im.convert('RGB').resize((256, 256), Image.LANCZOS).save(
            samples_path(args, key, epoch), quality=90)


def samples_folder(args):
    return os.path.splitext(args.out)[0] + '_samples'


def samples_path(args, key, epoch):
    """Where keep_samples puts the samples of run `key` (RECIPE/SEED) at `epoch`."""
    return os.path.join(samples_folder(args), f'{key.replace("/", "-seed")}-epoch{epoch:03d}.jpg')


def real_floor(images, samples):
    """The SWD between two disjoint sets of `samples` real images: how close 'close' gets."""
    n = min(samples, len(images) // 2)
    order = onp.random.default_rng(0).permutation(len(images))
    return sliced_wasserstein(images[order[:n]], images[order[n:2 * n]], seed=0)[1], n


def load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def save(path, results):
    results['table'] = table(results)
    write_json(path, results)


def sweep(args):
    images, _, _ = read_images(args.data_dir, cache_dir=args.cache_dir)
    results = load(args.out) or {'settings': settings(args, len(images)), 'runs': {}}
    if results['settings'] != settings(args, len(images)):
        sys.exit(f'{args.out} holds a sweep with other settings ({results["settings"]}); '
                 f'give --out another file')
    if 'real_vs_real' not in results:
        results['real_vs_real'], results['real_vs_real_images'] = real_floor(images, args.samples)
    budgets = sorted({fraction(b) for b in args.budgets.split(',') if b.strip()})
    for name in args.names or ['book', 'improved']:
        for seed in [int(s) for s in args.seeds.split(',')]:
            key = f'{name}/{seed}'
            run = results['runs'].setdefault(key, {'recipe': name, 'seed': seed,
                                                   'flags': RECIPES[name], 'points': []})
            if run['flags'] != RECIPES[name]:
                sys.exit(f'{key} in {args.out} was trained with {run["flags"]}, not '
                         f'{RECIPES[name]}; give --out another file')
            run_dir = os.path.join(args.work_dir, f'{name}-seed{seed}')
            for budget in budgets:
                epoch = epochs_for(budget * CHAPTER_IMAGES, len(images))  # as --budget does
                if any(p['epoch'] == epoch for p in run['points']):
                    continue
                train_to(args, name, seed, epoch, run_dir)
                point = {'budget': str(budget), **measure(args, images, run_dir, epoch, seed)}
                keep_samples(args, run_dir, key, epoch)
                run['points'] = sorted(run['points'] + [point], key=lambda p: p['epoch'])
                save(args.out, results)
                print(f'{key}: {point["images"]:,} images ({share(point["images"])} of the '
                      f'chapter\'s), SWD {point["swd"]:.1f}, '
                      f'{point["train_seconds"] / 60:.1f} min of training', flush=True)
    save(args.out, results)
    return results


def table(results):
    """Per recipe and budget: the seeds' SWD, their mean, and the mean's ratio to the book's."""
    rows = {}
    for run in results['runs'].values():
        for p in run['points']:
            rows.setdefault((run['recipe'], p['epoch']), []).append((run['seed'], p))
    book = {epoch: statistics.mean(p['swd'] for _, p in pts)
            for (name, epoch), pts in rows.items() if name == 'book'}
    out = []
    for (name, epoch), pts in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        mean = statistics.mean(p['swd'] for _, p in pts)
        out.append({'recipe': name, 'epoch': epoch, 'images': pts[0][1]['images'],
                    'budget': pts[0][1]['budget'], 'seeds': [s for s, _ in pts],
                    'swd': [p['swd'] for _, p in pts], 'mean': mean,
                    'ratio_to_book': mean / book[epoch] if epoch in book else None,
                    'train_minutes': statistics.mean(p['train_seconds'] for _, p in pts) / 60})
    return out


def print_table(results):
    """The table of --out, as docs/quality.md holds it (tests/test_docs.py compares them)."""
    if 'epochs' in results['settings']:
        return print_first_table(results)
    s = results['settings']
    print(f"{s['num_images']:,} images of {os.path.basename(s['data_dir'])}/, widths "
          f"{s['width']}, batch {s['batch_size']} (or a recipe's own); SWD x1e3 of "
          f"{s['samples']:,} generated against {s['samples']:,} real images; two disjoint sets "
          f"of {results.get('real_vs_real_images', s['samples']):,} real images: "
          f"{results.get('real_vs_real', float('nan')):.1f}")
    print()
    print("| budget | images seen | recipe | SWD per seed | mean | / book |")
    print('| --- | --- | --- | --- | --- | --- |')
    for r in results['table']:
        ratio = f"{r['ratio_to_book']:.2f}" if r['ratio_to_book'] is not None else '-'
        print(f"| {r['budget']} | {r['images']:,} ({share(r['images'])}) | {r['recipe']} | "
              + ', '.join(f'{v:.1f}' for v in r['swd']) + f" | {r['mean']:.1f} | {ratio} |")


def print_first_table(results):
    """The table of benchmarks/quality-5-epochs.json, written by this script at commit dd4ae30."""
    s = results['settings']
    print(f"{s['num_sprites']:,} sprites, {s['epochs']} epochs, widths {s['width']}, batch "
          f"{s['batch_size']}; final SWD x1e3 of {s['final_samples']} generated against "
          f"{s['final_samples']} real images, per-epoch SWD of {s['curve_samples']} against "
          f"{s['curve_samples']}")
    print()
    print('| recipe | what | final SWD mean | min | max | / book | SWD after epochs 1-5 '
          '(mean of seeds) |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for r in results['table']:
        print(f"| {r['recipe']} | {r['what']} | {r['mean']:.1f} | {r['min']:.1f} | "
              f"{r['max']:.1f} | {r['ratio']:.2f} | " + ' '.join(f'{v:.0f}' for v in r['curve'])
              + ' |')


def draw_curves(results, path, names):
    """SWD against images seen: each seed a thin line, each recipe's mean a thick one."""
    matplotlib.use('Agg')
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = {n: plt.cm.tab10.colors[i % 10] for i, n in enumerate(names)}  # the first blue
    for name in names:
        runs = [r for r in results['runs'].values() if r['recipe'] == name and r['points']]
        for run in runs:
            ax.plot([p['images'] for p in run['points']], [p['swd'] for p in run['points']],
                    color=colours[name], lw=0.8, alpha=0.5, marker='.')
        means = [r for r in results['table'] if r['recipe'] == name]
        if means:
            ax.plot([r['images'] for r in means], [r['mean'] for r in means],
                    color=colours[name], lw=2.5, label=f'{label(name)} (mean of seeds)')
    if 'real_vs_real' in results:
        ax.axhline(results['real_vs_real'], color='grey', ls=':', lw=1,
                   label='two disjoint real sets')
    ax.set_xscale('log')
    ax.set_xlabel("training images seen (the chapter's run: 811,940)")
    ax.set_ylabel('SWD x1e3 to the data (lower is better)')
    s = results['settings']
    ax.set_title(f"{s['num_images']:,} real images, widths {s['width']}, batch "
                 f"{s['batch_size']} (or a recipe's own)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    print(f'wrote {path}')


def draw_grids(args, results, path, names):
    """Each budget a row: the recipes' samples side by side, from the same noise (one seed)."""
    matplotlib.use('Agg')
    seeds = sorted({r['seed'] for r in results['runs'].values()})
    seed = 0 if 0 in seeds else seeds[0]
    names = [n for n in names if f'{n}/{seed}' in results['runs']]
    epochs = sorted({p['epoch'] for n in names for p in results['runs'][f'{n}/{seed}']['points']})
    fig, axes = plt.subplots(len(epochs), len(names), figsize=(5 * len(names), 5 * len(epochs)),
                             squeeze=False)
    for row, epoch in zip(axes, epochs):
        for ax, name in zip(row, names):
            ax.axis('off')
            point = next((p for p in results['runs'][f'{name}/{seed}']['points']
                          if p['epoch'] == epoch), None)
            jpg = samples_path(args, f'{name}/{seed}', epoch)
            if point is None or not os.path.exists(jpg):
                continue
            ax.imshow(mpimg.imread(jpg))
            ax.set_title(f"{label(name)}\n{point['images']:,} images "
                         f"({share(point['images'])} of the chapter's): "
                         f"SWD {point['swd']:.1f}", fontsize=9)
    fig.suptitle(f'seed {seed}: the same noise for every recipe', fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=50)
    print(f'wrote {path}')


def main(argv=None):
    args = parse_args(argv)
    unknown = [n for n in args.names if n not in RECIPES]
    if unknown:
        sys.exit(f'unknown recipes {unknown}; choose from {", ".join(RECIPES)}')
    if args.table or not args.data_dir:  # what --out holds: the table, figures
        results = load(args.out)
        if results is None:
            sys.exit(f'{args.out} does not exist: run the sweep first (--data-dir DIR, the '
                     f'real images to train on)')
    else:
        results = sweep(args)
    print_table(results)
    if args.figure:
        draw_curves(results, args.figure, args.names or list(RECIPES))
    if args.grids:
        draw_grids(args, results, args.grids, args.names or list(RECIPES))
    return 0


if __name__ == '__main__':
    sys.exit(main())
