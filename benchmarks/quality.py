#!/usr/bin/env python
"""Sample quality of the book's recipe against the opt-in techniques, at one fixed budget.

    python benchmarks/quality.py                       # 2,048 sprites, widths 32, 5 epochs
    python benchmarks/quality.py --recipes book,ema --seeds 0,1,2
    python benchmarks/quality.py --data-dir ../data/pokemon --epochs 20 --width 64
    python benchmarks/quality.py --table               # print the table of what is done

Each recipe (d2l_dcgan.recipes; the candidates below) trains with 3 seeds through `fit`, the
code path of the command line's `train`, on the same images for the same number of epochs, so
every row has seen the same number of training images. Per run: the SWD curve (after every
epoch, --curve-samples generated against as many real images) and the final SWD
(--final-samples against as many real), each generated image made as the recipe samples
(its weight average, its BatchNorm statistics), and the 64 samples of the seed's fixed noise
(the same noise for every recipe) for the figure. Every (recipe, seed) runs in its own process.

Results go to --out (JSON) after every run, so a partial run is kept; running again skips the
runs already there with the same settings and recipe. --figure draws the book's samples beside
the improved recipe's, from the same noise.
"""
import d2l_dcgan  # noqa: F401  first: MXNet's thread count

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as onp

from d2l_dcgan.flags import write_json
from d2l_dcgan.recipes import RECIPES, Recipe

HERE = os.path.dirname(os.path.abspath(__file__))
RESULT_PREFIX = 'QUALITY_RESULT '
SMOOTH, AUGMENT = 0.1, ('color', 'translation', 'cutout')
EMA_HALFLIFE = 1024  # images: half an epoch of the 2,048 sprites
SHORT_HALFLIFE = 256  # 4 steps of 64: less lag behind a generator still improving fast
SLOW_LR = 0.00125  # a quarter of the book's 0.005, about Heusel et al.'s ratio of the two
FAST_LR = 0.01  # twice the book's: measured after slow_G came out far worse than the book
# the candidates, one technique each (two learning rates both ways), then a combination of
# what helped, chosen from the single-technique rows over all seeds, and the command line's
# --recipe improved
CANDIDATES = {
    'book': Recipe(),
    'ema': Recipe(ema_halflife=EMA_HALFLIFE),
    'smooth': Recipe(label_smoothing=SMOOTH),
    'augment': Recipe(augment=AUGMENT),
    'slow_G': Recipe(lr_G=SLOW_LR),
    'slow_D': Recipe(lr_D=SLOW_LR),
    'fast_G': Recipe(lr_G=FAST_LR),
    'batch_stats': Recipe(sample_batch_stats=True),
    'ema_short': Recipe(ema_halflife=SHORT_HALFLIFE),
    'ema+augment': Recipe(ema_halflife=EMA_HALFLIFE, augment=AUGMENT),
    'ema+batch_stats': Recipe(ema_halflife=EMA_HALFLIFE, sample_batch_stats=True),
    'improved': RECIPES['improved'],
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--recipes', default=','.join(CANDIDATES),
                   help='comma-separated names of ' + ', '.join(CANDIDATES))
    p.add_argument('--seeds', default='0,1,2', help='comma-separated seeds')
    p.add_argument('--data-dir', help='an ImageFolder root instead of the sprites')
    p.add_argument('--num-sprites', type=int, default=2048, help='sprites drawn (no --data-dir)')
    p.add_argument('--cache-dir', default=os.path.join('..', 'data'), help='where sprites go')
    p.add_argument('--epochs', type=int, default=5, help='the budget: passes over the data')
    p.add_argument('--width', type=int, default=32, help='n_G = n_D')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=0.005, help="the book's learning rate")
    p.add_argument('--latent-dim', type=int, default=100)
    p.add_argument('--curve-samples', type=int, default=128,
                   help='generated (and real) images of the per-epoch SWD')
    p.add_argument('--final-samples', type=int, default=512,
                   help='generated (and real) images of the final SWD')
    p.add_argument('--out', default=os.path.join(HERE, 'quality.json'))
    p.add_argument('--figure', help='write book vs improved samples (each of --seeds) to this '
                   'PNG')
    p.add_argument('--table', action='store_true', help='only print the table of --out')
    p.add_argument('--only', help=argparse.SUPPRESS)  # NAME:SEED, in a child process
    return p.parse_args(argv)


def settings(args):
    """What every run of one table shares; a table is only extended under the same ones."""
    keys = ('data_dir', 'num_sprites', 'epochs', 'width', 'batch_size', 'lr', 'latent_dim',
            'curve_samples', 'final_samples')
    return {k: getattr(args, k) for k in keys}


def train_one(args, name, seed):
    """One (recipe, seed) run through fit; its result as a dict."""
    import mxnet as mx
    from mxnet import np
    from d2l_dcgan import discriminator, generator
    from d2l_dcgan.flags import load_data, seed_everything
    from d2l_dcgan.commands.train import swd_metric
    from d2l_dcgan.data import MAX_IMAGE_PIXELS
    from d2l_dcgan.run import fit, fixed_noise
    recipe = CANDIDATES[name]
    device = mx.cpu()
    seed_everything(seed)
    _, images, data_iter, _ = load_data(SimpleNamespace(
        data_dir=args.data_dir, cache_dir=args.cache_dir, dataset='sprites',
        num_sprites=args.num_sprites, batch_size=args.batch_size, num_workers=0,
        skip_bad_images=False, max_image_pixels=MAX_IMAGE_PIXELS, image_cache=True))
    final_swd = swd_metric(images, args.final_samples, args.latent_dim, seed, device)
    fixed_Z = np.array(fixed_noise(seed, 64, args.latent_dim), ctx=device)
    result = {}

    def at_the_end(record, sample):
        if record['epoch'] == args.epochs:
            result.update(final_swd(sample))
            onp.save(samples_path(args, name, seed), sample(fixed_Z).asnumpy())

    start = time.time()
    history = fit(discriminator(args.width), generator(args.width), data_iter, args.epochs,
                  args.lr, args.latent_dim, device, seed=seed, fixed_Z=fixed_Z,
                  animator=None, recipe=recipe, verbose=False, on_epoch_samples=at_the_end,
                  epoch_metrics=swd_metric(images, args.curve_samples, args.latent_dim, seed,
                                           device))
    return {'recipe': name, 'seed': seed, 'settings': recipe.to_json(),
            'swd': result['swd'], 'swd_levels': result['swd_levels'],
            'curve': [r['swd'] for r in history],
            'loss_D': [r['loss_D'] for r in history], 'loss_G': [r['loss_G'] for r in history],
            'num_images': len(images), 'seconds': time.time() - start}


def samples_path(args, name, seed):
    folder = os.path.splitext(args.out)[0] + '_samples'
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f'{name}-seed{seed}.npy')


def load(args):
    if os.path.exists(args.out):
        with open(args.out) as f:
            saved = json.load(f)
        if saved.get('settings') == settings(args):
            return saved
        print(f'{args.out} holds another budget; starting a new table there')
    return {'settings': settings(args), 'runs': {}, 'table': []}


def save(args, results):
    results['table'] = table(results)
    write_json(args.out, results)


def table(results):
    """One row per recipe with every seed done: final SWD mean, min, max; ratio to the book's
    mean; the mean curve; wall seconds."""
    by_recipe = {}
    for run in results['runs'].values():
        by_recipe.setdefault(run['recipe'], []).append(run)
    book = by_recipe.get('book')
    book_mean = statistics.mean(r['swd'] for r in book) if book else None
    rows = []
    for name in sorted(by_recipe, key=lambda n: list(CANDIDATES).index(n)
                       if n in CANDIDATES else len(CANDIDATES)):
        runs = sorted(by_recipe[name], key=lambda r: r['seed'])
        swds = [r['swd'] for r in runs]
        mean = statistics.mean(swds)
        rows.append({
            'recipe': name, 'what': Recipe.from_json(runs[0]['settings']).describe(),
            'seeds': [r['seed'] for r in runs], 'swd': swds, 'mean': mean,
            'min': min(swds), 'max': max(swds),
            'ratio': mean / book_mean if book_mean else None,
            'seeds_below_book_mean': sum(s < book_mean for s in swds) if book_mean else None,
            'curve': [statistics.mean(c) for c in zip(*(r['curve'] for r in runs))],
            'seconds': sum(r['seconds'] for r in runs)})
    return rows


def wall_seconds(results):
    """Seconds of all runs measured (a run reused under a second name counted once)."""
    return sum({(r['seed'], json.dumps(r['settings'])): r['seconds']
                for r in results['runs'].values()}.values())


def print_table(results):
    s = results['settings']
    print(f"{s['epochs']} epochs of {results.get('num_images', '?')} images, widths "
          f"{s['width']}, batch {s['batch_size']}, lr {s['lr']}; final SWD x1e3 of "
          f"{s['final_samples']} vs {s['final_samples']} images, curve of {s['curve_samples']}; "
          f"{wall_seconds(results) / 60:.1f} min of runs")
    print('| recipe | what | final SWD mean | min | max | / book | seeds | SWD per epoch '
          '(mean over seeds) |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for r in results['table']:
        ratio = f"{r['ratio']:.2f}" if r['ratio'] is not None else '-'
        print(f"| {r['recipe']} | {r['what']} | {r['mean']:.1f} | {r['min']:.1f} | "
              f"{r['max']:.1f} | {ratio} | {','.join(map(str, r['seeds']))} | "
              + ' '.join(f'{v:.0f}' for v in r['curve']) + ' |')


def draw_figure(args, path, seeds, per_seed=24):
    """The book's and the improved recipe's first `per_seed` samples of each seed's fixed noise
    (the same noise for both), a row per seed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from d2l_dcgan.plot import save_figure, to_image_grid
    fig, axes = plt.subplots(len(seeds), 2, figsize=(12, 1.75 * len(seeds) + 0.6),
                             squeeze=False)
    for row, seed in zip(axes, seeds):
        for ax, name in zip(row, ('book', 'improved')):
            ax.imshow(to_image_grid(onp.load(samples_path(args, name, seed)), 3, per_seed // 3))
            swd = args.results['runs'][f'{name}/{seed}']['swd']
            ax.set_title(f'--recipe {name} ({CANDIDATES[name].describe()}), seed {seed}: '
                         f'SWD {swd:.1f}', fontsize=9)
            ax.axis('off')
    data = args.data_dir or f'{args.num_sprites} sprites'
    fig.suptitle(f'the same noise per seed; {args.epochs} epochs on {data}, widths '
                 f'{args.width}, batch {args.batch_size}', fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    print(f'wrote {path}')


def main(argv=None):
    args = parse_args(argv)
    if args.only:
        name, seed = args.only.rsplit(':', 1)
        print(RESULT_PREFIX + json.dumps(train_one(args, name, int(seed))))
        return 0
    names = [n.strip() for n in args.recipes.split(',') if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        sys.exit(f'unknown recipes {unknown}; choose from {", ".join(CANDIDATES)}')
    results = load(args)
    if not args.table:
        seeds = [int(s) for s in args.seeds.split(',')]
        start = time.time()
        for name in names:
            for seed in seeds:
                key, wanted = f'{name}/{seed}', CANDIDATES[name].to_json()
                done = results['runs'].get(key)
                if done and done['settings'] == wanted:
                    continue
                same = [r for r in results['runs'].values()
                        if r['seed'] == seed and r['settings'] == wanted]
                if same:  # e.g. 'improved' is one of the combinations measured already
                    results['runs'][key] = {**same[0], 'recipe': name}
                    if os.path.exists(samples_path(args, same[0]['recipe'], seed)):
                        shutil.copyfile(samples_path(args, same[0]['recipe'], seed),
                                        samples_path(args, name, seed))
                    save(args, results)
                    continue
                t0 = time.time()
                child = [sys.executable, os.path.abspath(__file__), '--only', f'{name}:{seed}',
                         *sum(([f'--{k.replace("_", "-")}', str(v)]
                               for k, v in settings(args).items() if v is not None), []),
                         '--cache-dir', args.cache_dir, '--out', args.out]
                proc = subprocess.run(child, capture_output=True, text=True)
                lines = [l for l in proc.stdout.splitlines() if l.startswith(RESULT_PREFIX)]
                if proc.returncode or not lines:
                    sys.exit(f'{key} failed ({proc.returncode}):\n{proc.stderr[-3000:]}')
                run = json.loads(lines[-1][len(RESULT_PREFIX):])
                run['seconds'] = time.time() - t0  # the whole process: data, training, SWD
                results['runs'][key] = run
                results['num_images'] = run['num_images']
                save(args, results)
                print(f'{key}: SWD {run["swd"]:.1f} (curve '
                      + ' '.join(f'{v:.0f}' for v in run['curve'])
                      + f'), {run["seconds"]:.0f} s; {time.time() - start:.0f} s so far',
                      flush=True)
    results['table'] = table(results)
    print_table(results)
    if args.figure:
        args.results = results
        draw_figure(args, args.figure, [int(s) for s in args.seeds.split(',')])
    return 0


if __name__ == '__main__':
    sys.exit(main())
