#!/usr/bin/env python
"""Throughput of the chapter's DCGAN code against d2l_dcgan's, on the same data, batch and device.

    python benchmarks/throughput.py                      # 512 sprites, batch 64, 3 reps (~4 min, 2-core CPU)
    python benchmarks/throughput.py --batch-size 256     # the chapter's batch size
    python benchmarks/throughput.py --data-dir ~/.cache/d2l-dcgan/pokemon --device gpu:0 --json out.json

What it measures, every number a ratio or a rate taken in this one run (the machine is noisy):

* end to end, one epoch including data loading: "chapter" (the book's nn.Block nets, d2l.update_D /
  update_G with their float() per step, its ImageFolderDataset + transforms DataLoader with d2l's
  worker processes, MXNet's own OpenMP thread count, as in the book's notebook) against "ours"
  (d2l_dcgan.train on load_image_folder, with the thread count `import d2l_dcgan` sets), both
  after an untimed warm-up; examples/sec, ratio, achieved GFLOP/s and % of a matmul peak. A third
  variant, "chapter_threads", is the chapter's code with d2l_dcgan's thread count: it splits the
  gain into the threads' share and the code's;
* the input pipelines alone (images/sec, no training) against our training step alone (examples/sec
  on a batch already on the device): a pipeline that delivers >= 5x the step never starves it;
* peak resident memory of each variant's process.

Each repetition runs each variant in a fresh subprocess (`--only VARIANT`, one JSON line back),
reversing the order every repetition, so drift and noise hit all alike and memory is measured per
variant.
"""
import os
import sys

# Snapshot the threading/MXNet environment before anything is imported, to report what importing
# d2l_dcgan (or mxnet/d2l) changes; every variant's process inherits the same one.
ENV_PREFIXES = ('OMP_', 'KMP_', 'MKL_', 'OPENBLAS_', 'MXNET_', 'CUDA_VISIBLE')
ENV_BEFORE_IMPORTS = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
CHILD_ENV = dict(os.environ)  # what the variants' processes start from

# The chapter's notebook imports MXNet itself, which then picks its own OpenMP thread count;
# d2l_dcgan sets the count only when it is imported before MXNet (d2l_dcgan/cpu.py).
if '--only' in sys.argv[:-1] and sys.argv[sys.argv.index('--only') + 1] == 'chapter':
    import warnings
    import mxnet  # noqa: F401
    warnings.filterwarnings('ignore', 'mxnet was imported before d2l_dcgan')  # on purpose here
# Every variant's process imports the package, so npx.set_np() and the like apply to all; only
# its thread count does not reach "chapter" (MXNet was loaded first there).
import d2l_dcgan  # noqa: E402

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as onp  # noqa: E402
import mxnet as mx  # noqa: E402
from mxnet import gluon, init, np, npx  # noqa: E402
from mxnet.gluon import nn  # noqa: E402
from d2l import mxnet as d2l  # noqa: E402
from d2l_dcgan.book import chapter_nets, chapter_train  # noqa: E402
from d2l_dcgan.gpu import select_device  # noqa: E402
from d2l_dcgan.train import make_trainers, train_step  # noqa: E402

ENV_AFTER_IMPORTS = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}

npx.set_np()  # the chapter's first cell; d2l_dcgan does the same at import

CHAPTER_BATCH_SIZE = 256
ISSUE_GFLOP_PER_EXAMPLE = 2.7  # quoted in the issue for n_G = n_D = 64
LR, LATENT_DIM = 0.005, 100  # the chapter's
VARIANTS = ('chapter', 'chapter_threads', 'ours')
RATIOS = (('ours', 'chapter'), ('ours', 'chapter_threads'), ('chapter_threads', 'chapter'))
RESULT_PREFIX = 'THROUGHPUT_RESULT '


# ---------------------------------------------------------------------------------------------
# The chapter's code: its nets (d2l_dcgan.book, verbatim), its pipeline and its training loop.
# ---------------------------------------------------------------------------------------------

def chapter_data_iter(data_dir, batch_size):
    """The chapter's pipeline: every epoch decodes, resizes and normalizes each image again,
    in d2l.get_dataloader_workers() (4) worker processes."""
    pokemon = gluon.data.vision.datasets.ImageFolderDataset(data_dir)
    transformer = gluon.data.vision.transforms.Compose([
        gluon.data.vision.transforms.Resize(64),
        gluon.data.vision.transforms.ToTensor(),
        gluon.data.vision.transforms.Normalize(0.5, 0.5)
    ])
    return gluon.data.DataLoader(
        pokemon.transform_first(transformer), batch_size=batch_size,
        shuffle=True, num_workers=d2l.get_dataloader_workers())


# ---------------------------------------------------------------------------------------------
# Timing helpers shared by both variants.
# ---------------------------------------------------------------------------------------------

class EpochClock:
    """A no-op animator: add() only stamps the time. Both train loops call it once per epoch after
    the losses were read (float) and the sample images copied to the host, i.e. after the device
    finished the epoch, so the gaps between stamps are whole epochs' wall-clock times."""

    def __init__(self):
        self.stamps, self.losses = [], []

    def add(self, epoch, loss_D=None, loss_G=None, *rest, **kwargs):
        self.stamps.append(time.perf_counter())
        self.losses.append((loss_D, loss_G))


class WarmupThenEpochs:
    """Iterable over `loader`: the first pass trains on only `warmup_batches` batches (the untimed
    warm-up epoch: graph/MKLDNN primitive creation, Adam state), later passes are whole epochs.

    The warm-up still draws the rest of the epoch without yielding it: an abandoned multi-worker
    iterator would keep decoding in the background and slow the first timed epoch."""

    def __init__(self, loader, warmup_batches):
        self.loader, self.warmup_batches = loader, warmup_batches
        self.passes = 0
        self.examples = []  # examples yielded per pass

    def __iter__(self):
        self.passes += 1
        self.examples.append(0)
        limit = self.warmup_batches if self.passes == 1 else None
        for i, (X, y) in enumerate(self.loader):
            if limit is None or i < limit:
                self.examples[-1] += X.shape[0]
                yield X, y


def epoch_rates(clock, iterable):
    """Examples/sec of each timed epoch (all but the warm-up) from the clock's stamps."""
    return [n / (t1 - t0) for n, t0, t1 in
            zip(iterable.examples[1:], clock.stamps[:-1], clock.stamps[1:])]


def time_pipeline(loader, device=None, min_seconds=1.0):
    """Images/sec a loader delivers with no training: one untimed epoch, then whole epochs until
    min_seconds passed. With `device`, each batch is also copied there."""
    def one_epoch():
        n = 0
        for X, _ in loader:
            if device is not None:
                X = X.as_in_ctx(device)
            X.wait_to_read()
            n += X.shape[0]
        return n
    one_epoch()
    n, start = 0, time.perf_counter()
    while True:
        n += one_epoch()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return n / elapsed


def time_ours_step(net_D, net_G, X, latent_dim, lr, iters):
    """Examples/sec of train()'s own step alone (train_step) on one batch already on the device
    (nets already hybridized and warm from train()); waits once at the end, as train() does."""
    loss = gluon.loss.SigmoidBCELoss()
    trainer_D, trainer_G = make_trainers(net_D, net_G, lr)
    Z = np.random.normal(0, 1, size=(X.shape[0], latent_dim, 1, 1), ctx=X.ctx)

    def step():
        return sum(train_step(X, Z, net_D, net_G, loss, trainer_D, trainer_G))
    float(step())  # untimed: these new trainers allocate their Adam state on the first step
    start = time.perf_counter()
    total = step()
    for _ in range(iters - 1):
        total = total + step()
    npx.waitall()  # the last step's updates too, not only its losses
    return iters * X.shape[0] / (time.perf_counter() - start)


def max_rss_mib(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------------------------------------
# One variant, in its own process (--only).
# ---------------------------------------------------------------------------------------------

def run_chapter(args, data_dir, device):
    out = {}
    data_iter = chapter_data_iter(data_dir, args.batch_size)
    out['pipeline_images_per_sec'] = time_pipeline(data_iter)
    if device.device_type != 'cpu':
        out['pipeline_to_device_images_per_sec'] = time_pipeline(data_iter, device)
    net_D, net_G = chapter_nets(args.width, args.width)
    batches, clock = WarmupThenEpochs(data_iter, args.warmup_batches), EpochClock()
    chapter_train(net_D, net_G, batches, 1 + args.epochs, LR, LATENT_DIM, device, clock)
    out['epoch_examples_per_sec'] = epoch_rates(clock, batches)
    out['examples_per_epoch'] = batches.examples[1:]
    out['loss_D_G_last_epoch'] = clock.losses[-1]
    out['rss_self_mib'] = max_rss_mib()
    # terminate d2l's worker processes so that they are reaped and show in RUSAGE_CHILDREN
    del data_iter, batches
    gc.collect()
    out['rss_largest_worker_mib'] = max_rss_mib(resource.RUSAGE_CHILDREN)
    return out


def run_ours(args, data_dir, device):
    out = {}
    start = time.perf_counter()
    loader = d2l_dcgan.load_image_folder(data_dir, batch_size=args.batch_size)
    decode_seconds = time.perf_counter() - start
    out['pipeline_images_per_sec'] = time_pipeline(loader)
    if device.device_type != 'cpu':  # on the CPU as_in_ctx is a no-op: same number
        out['pipeline_to_device_images_per_sec'] = time_pipeline(loader, device)
    num_images = sum(X.shape[0] for X, _ in loader)
    out['decode_images_per_sec'] = num_images / decode_seconds
    out['rss_after_data_mib'] = max_rss_mib()
    net_G, net_D = d2l_dcgan.generator(args.width), d2l_dcgan.discriminator(args.width)
    batches, clock = WarmupThenEpochs(loader, args.warmup_batches), EpochClock()
    history = d2l_dcgan.train(net_D, net_G, batches, 1 + args.epochs, LR, LATENT_DIM, device,
                              animator=clock)
    out['epoch_examples_per_sec'] = epoch_rates(clock, batches)
    out['examples_per_epoch'] = batches.examples[1:]
    out['train_reported_examples_per_sec'] = [r['examples_per_sec'] for r in history[1:]]
    out['loss_D_G_last_epoch'] = clock.losses[-1]
    X = next(iter(loader))[0].as_in_ctx(device)
    X.wait_to_read()
    out['step_examples_per_sec'] = time_ours_step(net_D, net_G, X, LATENT_DIM, LR,
                                                  args.step_iters)
    out['rss_self_mib'] = max_rss_mib()
    return out


def run_one_variant(args):
    device = select_device(args.device)[0]
    run = run_ours if args.only == 'ours' else run_chapter
    out = run(args, args.data_dir, device)
    out.update(variant=args.only, device=str(device), pid=os.getpid(),
               env_changed_by_imports=env_diff(ENV_BEFORE_IMPORTS, ENV_AFTER_IMPORTS),
               # MXNet's own GEMM in this process: shows the OpenMP thread count at work
               mxnet_matmul_gflops=matmul_peak_gflops(device=device, library='mxnet'))
    print(RESULT_PREFIX + json.dumps(out), flush=True)


# ---------------------------------------------------------------------------------------------
# FLOPs and peak.
# ---------------------------------------------------------------------------------------------

def _layers(block):
    """Conv layers and other leaves of `block` in order (a conv with an activation has a child)."""
    children = list(block._children.values())
    if not children or isinstance(block, (nn.Conv2D, nn.Conv2DTranspose)):
        yield block
        return
    for child in children:
        yield from _layers(child)


def conv_flops(net, in_shape):
    """Forward FLOPs per example of the Conv2D / Conv2DTranspose layers of `net`, walked in order
    from `in_shape` (C, H, W); a multiply-add counts as 2 FLOPs. Returns (flops, out_shape).

    Conv2D with output C_out x H_out x W_out: 2 * C_in * k*k * C_out * H_out * W_out.
    Conv2DTranspose is the backward-data pass of the conv that maps its output back to its input,
    so the same count uses its *input* spatial size: 2 * C_in * k*k * C_out * H_in * W_in.
    BatchNorm and activations are O(activations), negligible next to these."""
    C, H, W = in_shape
    flops = 0
    for layer in _layers(net):
        if not isinstance(layer, (nn.Conv2D, nn.Conv2DTranspose)):
            continue
        (kh, kw), (sh, sw), (ph, pw) = (layer._kwargs[k] for k in ('kernel', 'stride', 'pad'))
        C_out = layer._channels
        if isinstance(layer, nn.Conv2DTranspose):
            H_out, W_out = (H - 1) * sh - 2 * ph + kh, (W - 1) * sw - 2 * pw + kw
            flops += 2 * C * kh * kw * C_out * H * W
        else:
            H_out, W_out = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
            flops += 2 * C * kh * kw * C_out * H_out * W_out
        C, H, W = C_out, H_out, W_out
    return flops, (C, H, W)


def training_step_flops(width):
    """FLOPs per example of one training step (update_D + update_G), by this convention:
    a backward pass costs 2x its forward (gradients w.r.t. inputs and weights), so
      update_D = D(real) + G + D(fake) forwards + backward of D on real and fake = 6 D + G
      update_G = G + D forwards + backward through both                        = 3 D + 3 G
      step     = 9 D + 4 G   (D, G: one forward per example)"""
    net_G, net_D = d2l_dcgan.generator(width), d2l_dcgan.discriminator(width)
    G, G_out = conv_flops(net_G, (LATENT_DIM, 1, 1))
    D, D_out = conv_flops(net_D, G_out)
    assert G_out == (3, 64, 64) and D_out == (1, 1, 1), (G_out, D_out)
    return {'G_forward': G, 'D_forward': D, 'update_D': 6 * D + G, 'update_G': 3 * D + 3 * G,
            'step': 9 * D + 4 * G}


def matmul_peak_gflops(n=2048, repeats=5, device=None, library='numpy'):
    """Best-of-`repeats` float32 n x n matmul, 2 n^3 / t: numpy on the host, or mx.np on a GPU
    (or on the CPU with library='mxnet')."""
    if library == 'mxnet' or (device is not None and device.device_type != 'cpu'):
        a = np.random.uniform(size=(n, n), ctx=device).astype('float32')
        mm = lambda: np.dot(a, a).wait_to_read()  # noqa: E731
    else:
        a = onp.random.default_rng(0).random((n, n), dtype=onp.float32)
        mm = lambda: a @ a  # noqa: E731
    mm()
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        mm()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


# ---------------------------------------------------------------------------------------------
# The parent: data, alternation of subprocesses, aggregation, report.
# ---------------------------------------------------------------------------------------------

def env_diff(before, after):
    return {k: after.get(k) for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)}


def child_command(args, variant, data_dir):
    cmd = [sys.executable, os.path.abspath(__file__), '--only', variant, '--data-dir', data_dir]
    for flag in ('batch_size', 'device', 'epochs', 'warmup_batches', 'step_iters', 'width'):
        cmd += ['--' + flag.replace('_', '-'), str(getattr(args, flag))]
    return cmd


def run_child(args, variant, data_dir):
    # stderr passes through (warnings stay visible); stdout carries the one result line
    proc = subprocess.run(child_command(args, variant, data_dir), stdout=subprocess.PIPE,
                          text=True, env=CHILD_ENV)
    lines = [l for l in proc.stdout.splitlines() if l.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        sys.stdout.write(proc.stdout)
        raise SystemExit(f'the {variant} run failed (exit status {proc.returncode})')
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def mean_rate(record):
    """Examples/sec over all timed epochs of one run (total examples / total time)."""
    n, rates = record['examples_per_epoch'], record['epoch_examples_per_sec']
    return sum(n) / sum(k / r for k, r in zip(n, rates))


def median_of(records, key):
    values = [r[key] for r in records if key in r]
    return statistics.median(values) if values else None


def summarize(runs, flops, peak):
    """Medians over repetitions of every rate, GFLOP/s, % of peak and the paired ratios."""
    s = {}
    for v in VARIANTS:
        recs = runs[v]
        for r in recs:
            r['examples_per_sec'] = mean_rate(r)
        s[v] = {key: median_of(recs, key) for key in (
            'examples_per_sec', 'pipeline_images_per_sec', 'pipeline_to_device_images_per_sec',
            'decode_images_per_sec', 'step_examples_per_sec', 'rss_self_mib',
            'rss_largest_worker_mib', 'rss_after_data_mib', 'mxnet_matmul_gflops')}
        s[v]['examples_per_sec_per_rep'] = [r['examples_per_sec'] for r in recs]
        if v == 'ours':
            s[v]['train_reported_examples_per_sec'] = statistics.median(
                x for r in recs for x in r['train_reported_examples_per_sec'])
        s[v]['gflops'] = flops['step'] * s[v]['examples_per_sec'] / 1e9
        s[v]['percent_of_peak'] = 100 * s[v]['gflops'] / peak
    step = s['ours']['step_examples_per_sec']
    s['ours']['step_gflops'] = flops['step'] * step / 1e9
    s['ours']['step_percent_of_peak'] = 100 * s['ours']['step_gflops'] / peak
    for v in VARIANTS:
        s[v]['pipeline_over_step'] = s[v]['pipeline_images_per_sec'] / step
    for num, den in RATIOS:
        key = f'ratio_{num}_over_{den}'
        s[key] = s[num]['examples_per_sec'] / s[den]['examples_per_sec']
        s[key + '_per_rep'] = [n['examples_per_sec'] / d['examples_per_sec']
                               for n, d in zip(runs[num], runs[den])]
    return s


def print_report(rep):
    a, s, f = rep['settings'], rep['summary'], rep['flops_per_example']
    ch, ours = s['chapter'], s['ours']
    names = {'chapter': 'chapter (nn.Block, d2l.update_*, DataLoader)',
             'chapter_threads': "chapter, d2l_dcgan's OpenMP threads",
             'ours': 'ours (d2l_dcgan.train, load_image_folder)'}
    fmt = lambda xs: ', '.join(f'{x:.1f}' for x in xs)  # noqa: E731
    print(f"\nd2l_dcgan throughput: {a['data']}, batch {a['batch_size']} (the chapter uses "
          f"{CHAPTER_BATCH_SIZE}), {a['device']}, n_G = n_D = {a['width']}, {a['reps']} reps x "
          f"{a['epochs']} timed epoch(s) of {a['steps_per_epoch']} steps after a {a['warmup_batches']}-batch "
          f"warm-up, order reversed every rep")
    print(f"MXNet {mx.__version__}, {os.cpu_count()} CPUs; threading env given: "
          f"{rep['env']['threading_env'] or 'none set'}; importing d2l_dcgan first sets: "
          f"{rep['env']['changed_by_imports'] or 'nothing'} (not in the chapter's process)")
    print('\nend to end, whole epochs incl. data loading   examples/s (median)   per rep        '
          'GFLOP/s   % of matmul peak   MXNet matmul GFLOP/s')
    for v in VARIANTS:
        r = s[v]
        print(f"  {names[v]:<45}{r['examples_per_sec']:>9.1f}            "
              f"{fmt(r['examples_per_sec_per_rep']):<15}{r['gflops']:>6.1f}    "
              f"{r['percent_of_peak']:>5.1f}%            {r['mxnet_matmul_gflops']:>6.1f}")
    print(f"  ours as reported by train()'s history        {ours['train_reported_examples_per_sec']:>9.1f}")
    for num, den in RATIOS:
        key = f'ratio_{num}_over_{den}'
        paired = s[key + '_per_rep']
        print(f"  ratio {num}/{den}: {s[key]:.2f}x of the medians; per rep "
              f"{', '.join(f'{x:.2f}' for x in paired)} (median {statistics.median(paired):.2f}x)")
    print('\ninput pipeline alone vs training step alone (medians)')
    print(f"  decode once (load_image_folder, excluded above)  {ours['decode_images_per_sec']:>9.0f} images/s")
    print(f"  chapter DataLoader ({a['chapter_workers']} workers), one epoch      "
          f"{ch['pipeline_images_per_sec']:>9.0f} images/s = {ch['pipeline_over_step']:.1f}x the step")
    print(f"  ours load_image_folder, one epoch               {ours['pipeline_images_per_sec']:>9.0f} "
          f"images/s = {ours['pipeline_over_step']:.1f}x the step (target >= 5x: "
          f"{'met' if ours['pipeline_over_step'] >= 5 else 'NOT met'})")
    for name, v in s.items():
        if isinstance(v, dict) and v.get('pipeline_to_device_images_per_sec'):
            print(f"  {name} + as_in_ctx({a['device']})  {v['pipeline_to_device_images_per_sec']:>9.0f} images/s")
    print(f"  training step alone (ours, batch on device)     {ours['step_examples_per_sec']:>9.1f} "
          f"examples/s = {ours['step_gflops']:.1f} GFLOP/s, {ours['step_percent_of_peak']:.1f}% of peak")
    ballpark = ''
    if a['width'] == 64:
        ballpark = (f" (issue says ~{ISSUE_GFLOP_PER_EXAMPLE}: "
                    f"{100 * (f['step'] / 1e9 / ISSUE_GFLOP_PER_EXAMPLE - 1):+.1f}%)")
    print(f"\nFLOPs per example per training step: {f['step'] / 1e9:.3f} GFLOP = 9 D + 4 G with "
          f"D forward {f['D_forward'] / 1e9:.3f}, G forward {f['G_forward'] / 1e9:.3f}{ballpark}")
    print(f"matmul peak ({rep['peak']['what']}): {rep['peak']['gflops']:.1f} GFLOP/s "
          f"(before {rep['peak']['before']:.1f}, after {rep['peak']['after']:.1f})")
    m = rep['memory_mib']
    print(f"peak RSS (MiB, median over reps): chapter process {ch['rss_self_mib']:.0f} "
          f"(+ largest forked DataLoader worker {ch['rss_largest_worker_mib']:.0f}, pages shared), "
          f"ours process {ours['rss_self_mib']:.0f} ({ours['rss_after_data_mib']:.0f} after "
          f"decoding the data), this parent {m['parent_self']:.0f}")
    print(f"total runtime {rep['total_seconds']:.0f} s")


def run_benchmark(args):
    t0 = time.perf_counter()
    device = select_device(args.device)[0]
    if args.data_dir:
        data_dir, data_desc = args.data_dir, f'ImageFolder {args.data_dir}'
    else:
        data_dir = d2l_dcgan.make_sprites(
            os.path.join(args.cache_dir, f'sprites-{args.num_images}'), num_images=args.num_images)
        data_desc = f'{args.num_images} sprites'
    num_images = len(gluon.data.vision.datasets.ImageFolderDataset(data_dir).items)
    flops = training_step_flops(args.width)
    peak_before = matmul_peak_gflops(device=device)
    runs = {v: [] for v in VARIANTS}
    for rep in range(args.reps):
        order = VARIANTS if rep % 2 == 0 else VARIANTS[::-1]  # A B, B A, ...: no variant always first
        for variant in order:
            print(f'rep {rep + 1}/{args.reps}: {variant}...', file=sys.stderr, flush=True)
            runs[variant].append(run_child(args, variant, data_dir))
    peak_after = matmul_peak_gflops(device=device)
    peak = max(peak_before, peak_after)
    report = {
        'settings': {**{k: v for k, v in vars(args).items() if k != 'json'},
                     'data_dir': data_dir, 'data': data_desc, 'num_images': num_images,
                     'device': str(device), 'steps_per_epoch': -(-num_images // args.batch_size),
                     'chapter_workers': d2l.get_dataloader_workers()},
        'env': {'threading_env': ENV_BEFORE_IMPORTS,
                'changed_by_imports': env_diff(ENV_BEFORE_IMPORTS, ENV_AFTER_IMPORTS),
                'mxnet': mx.__version__, 'python': platform.python_version(),
                'cpus': os.cpu_count(), 'machine': platform.machine()},
        'flops_per_example': flops,
        'peak': {'gflops': peak, 'before': peak_before, 'after': peak_after,
                 'what': ('mx.np.dot' if device.device_type != 'cpu' else 'numpy')
                 + ' float32 2048x2048, best of 5, before and after'},
        'runs': runs,
        'summary': summarize(runs, flops, peak),
    }
    report['memory_mib'] = {'parent_self': max_rss_mib(),
                            'largest_child': max_rss_mib(resource.RUSAGE_CHILDREN)}
    report['total_seconds'] = time.perf_counter() - t0
    print_report(report)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
        print(f'wrote {args.json}')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--num-images', type=int, default=512,
                   help='procedurally drawn sprites to make (d2l_dcgan.make_sprites), if no --data-dir')
    p.add_argument('--data-dir', help='an ImageFolder root instead (DIR/<class>/<image>), e.g. the '
                   'extracted pokemon/; one epoch is then the whole folder')
    p.add_argument('--cache-dir', default=os.path.join(tempfile.gettempdir(), 'd2l_dcgan_bench'),
                   help='where the sprites are drawn (once; reused by later runs)')
    p.add_argument('--batch-size', type=int, default=64,
                   help=f'small for CPU speed; the chapter uses {CHAPTER_BATCH_SIZE}. Best a divisor '
                   'of the image count: a smaller last batch is a new shape')
    p.add_argument('--device', default='auto', help='auto, cpu, cpu:N, gpu or gpu:N')
    p.add_argument('--reps', type=int, default=3, help='repetitions; medians are reported')
    p.add_argument('--epochs', type=int, default=1, help='timed epochs per variant per repetition')
    p.add_argument('--warmup-batches', type=int, default=1,
                   help='batches trained in the untimed warm-up epoch (graph and primitive creation)')
    p.add_argument('--step-iters', type=int, default=2, help='timed steps of the step-alone measurement')
    p.add_argument('--width', type=int, default=64, help='n_G = n_D (64 is the chapter\'s)')
    p.add_argument('--json', metavar='OUT', help='write every number here')
    p.add_argument('--only', choices=VARIANTS,
                   help='run one repetition of one variant in this process and print one JSON line '
                   '(what the parent runs in its subprocesses)')
    args = p.parse_args(argv)
    for name in ('num_images', 'batch_size', 'reps', 'epochs', 'warmup_batches', 'step_iters',
                 'width'):
        if getattr(args, name) <= 0:
            p.error(f'--{name.replace("_", "-")} must be positive')
    if args.only and not args.data_dir:
        p.error('--only needs --data-dir')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.only:
        run_one_variant(args)
    else:
        run_benchmark(args)


if __name__ == '__main__':
    main()
