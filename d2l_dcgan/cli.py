"""Command line: `python -m d2l_dcgan train ...` (same as examples/train_pokemon.py), `generate`,
`evaluate` and `crosscheck`."""
import argparse
import json
import math
import os
import random
import sys
import time

from .errors import DCGANError
from .fileio import atomic_write


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)', but not for flags or options without a default."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def number(kind, low, high=None, above=False):
    """An argparse type: a finite `kind` that is >= low (> low if `above`) and < high."""
    noun = 'an integer' if kind is int else 'a number'
    bound = (f'> {low}' if above else f'>= {low}') + (f' and < {high}' if high is not None else '')

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected {noun}, got {text!r}')
        if not (math.isfinite(value) and (value > low if above else value >= low)
                and (high is None or value < high)):
            raise argparse.ArgumentTypeError(f'must be {bound}, got {text!r}')
        return value
    parse.__name__ = kind.__name__
    return parse


POSITIVE_INT, POSITIVE_FLOAT = number(int, 0, above=True), number(float, 0, above=True)
NON_NEGATIVE_INT, NON_NEGATIVE_FLOAT = number(int, 0), number(float, 0)
SEED = number(int, 0, 2**32)  # NumPy's global generator takes no other seeds


def apply_budget(args, small, full):
    """Fill the flags left at None from the `full` preset with --full, else from `small`: the
    exercise scripts' budgets (a dict of flag name -> value each)."""
    for name, value in (full if args.full else small).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def seed_everything(seed):
    import mxnet as mx
    import numpy as onp
    random.seed(seed)
    onp.random.seed(seed)  # Gluon's DataLoader shuffles with NumPy's global generator
    mx.random.seed(seed, ctx='all')


def prepare_out_dir(path):
    if os.path.exists(path) and not os.path.isdir(path):
        raise DCGANError(f'--out-dir {path} is a file, not a directory')
    try:
        os.makedirs(os.path.join(path, 'samples'), exist_ok=True)
    except OSError as e:
        raise DCGANError(f'cannot create --out-dir {path}: {e.strerror or e}') from e
    if not os.access(path, os.W_OK | os.X_OK):
        raise DCGANError(f'--out-dir {path} is not writable')
    return path


def prepare_cache_dir(path):
    if os.path.exists(path) and not os.path.isdir(path):
        raise DCGANError(f'--cache-dir {path} is a file, not a directory')
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise DCGANError(f'cannot create --cache-dir {path}: {e.strerror or e}') from e
    return path


def write_json(path, obj):
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(obj, f, indent=2)
    atomic_write(path, write)


def save_params(net, path):
    atomic_write(path, net.save_parameters)


def train_parser(prog=None):
    p = Parser(prog=prog, description=(
        'Train the DCGAN of d2l\'s chapter on the Pokemon sprites (or any image folder). '
        'Every epoch writes the loss figure, a sample grid, both nets\' parameters and '
        'metrics.json into --out-dir.'),
        formatter_class=HelpFormatter)
    data = p.add_argument_group('data')
    add_data_flags(data)
    data.add_argument('--num-workers', type=int, default=0,
                      help='DataLoader worker processes (images are decoded once into memory)')
    model = p.add_argument_group('model and training (the chapter\'s defaults)')
    # argparse shows a default only next to a help text, so every option has one
    model.add_argument('--num-epochs', type=POSITIVE_INT, default=20,
                       help='passes over the data')
    model.add_argument('--batch-size', type=POSITIVE_INT, default=256,
                       help='images per step')
    model.add_argument('--lr', type=POSITIVE_FLOAT, default=0.005,
                       help='Adam\'s learning rate, both nets')
    model.add_argument('--latent-dim', type=POSITIVE_INT, default=100,
                       help='length of the noise vectors Z')
    model.add_argument('--n-G', dest='n_G', type=POSITIVE_INT, default=64,
                       help='generator width (channels of its last G_block)')
    model.add_argument('--n-D', dest='n_D', type=POSITIVE_INT, default=64,
                       help='discriminator width (channels of its first D_block)')
    model.add_argument('--alpha', type=NON_NEGATIVE_FLOAT, default=0.2,
                       help='LeakyReLU slope in D; 0 is plain ReLU (exercise 1)')
    model.add_argument('--no-hybridize', dest='hybridize', action='store_false',
                       help='run the nets imperatively (slower; for debugging)')
    run = p.add_argument_group('run')
    run.add_argument('--seed', type=SEED, default=None,
                     help='random seed (default: a fresh one, recorded in metrics.json)')
    run.add_argument('--device', default='auto', help='auto, cpu, cpu:N, gpu or gpu:N')
    run.add_argument('--out-dir', default=os.path.join('runs', 'dcgan'),
                     help='where the figures, parameters and metrics.json go')
    run.add_argument('--num-samples', type=POSITIVE_INT, default=64,
                     help='images in each epoch\'s sample grid (fixed noise, 8 per row)')
    run.add_argument('--no-progress', dest='progress', action='store_false',
                     help='no per-epoch progress bar')
    run.add_argument('--devices', help='data parallel over several devices, e.g. gpu:0,gpu:1 '
                     '(each batch is split across them); overrides --device')
    run.add_argument('--swd-samples', type=NON_NEGATIVE_INT, default=128,
                     help='generated and real images whose sliced Wasserstein distance is '
                          'measured after every epoch (0: off)')
    add_recipe_flags(p.add_argument_group(
        'better samples (opt-in; the defaults are the book\'s recipe)'))
    safe = p.add_argument_group('checkpoints and recovery')
    safe.add_argument('--resume', metavar='OUT_DIR',
                      help='continue the run in OUT_DIR from its newest valid checkpoint, with '
                           'its settings, up to --num-epochs in all')
    safe.add_argument('--checkpoint-every', type=NON_NEGATIVE_INT, default=0,
                      help='also checkpoint every N steps (0: at the end of each epoch only)')
    safe.add_argument('--keep-checkpoints', type=POSITIVE_INT, default=3,
                      help='how many of the newest checkpoints to keep')
    safe.add_argument('--on-divergence', choices=('stop', 'rollback'), default='stop',
                      help='when a loss turns NaN/inf or exceeds --max-loss: stop, or reload '
                           'the last checkpoint with half the learning rate (at most 3 times)')
    safe.add_argument('--max-loss', type=POSITIVE_FLOAT, default=100.0,
                      help='a mean loss above this counts as divergence (logits beyond ~this)')
    return p


def augment_ops(text):
    """--augment's value: comma-separated ops of recipes.AUGMENTS, or 'none' ('')."""
    from .recipes import AUGMENTS, Recipe
    if text.strip() == 'none':
        return ''
    try:
        ops = Recipe(augment=text).augment  # Recipe checks the ops
    except DCGANError:
        ops = ()
    if not ops:
        raise argparse.ArgumentTypeError(f'expected distinct ops of {",".join(AUGMENTS)} or '
                                         f'none, got {text!r}')
    return ','.join(ops)


def add_recipe_flags(group):
    """train's opt-in techniques (d2l_dcgan.recipes); a flag given overrides --recipe's value."""
    from .recipes import AUGMENTS, RECIPES
    group.add_argument('--recipe', choices=tuple(RECIPES), default='book',
                       help='book: the chapter\'s; improved: ' + RECIPES['improved'].describe())
    group.add_argument('--ema-halflife', type=NON_NEGATIVE_INT, metavar='IMAGES',
                       help='average the generator\'s weights, their memory halving every '
                            'IMAGES training images (0: off); writes net_G_ema.params')
    group.add_argument('--label-smoothing', type=number(float, 0, 1), metavar='X',
                       help='one-sided label smoothing: D\'s target for real images is 1 - X '
                            '(0: off)')
    group.add_argument('--augment', type=augment_ops, nargs='?', const=','.join(AUGMENTS),
                       metavar='OPS', help='differentiable augmentation of every image D '
                       f'sees: {",".join(AUGMENTS)} (all without OPS) or none')
    group.add_argument('--lr-D', dest='lr_D', type=POSITIVE_FLOAT,
                       help='the discriminator\'s learning rate (default: --lr)')
    group.add_argument('--lr-G', dest='lr_G', type=POSITIVE_FLOAT,
                       help='the generator\'s learning rate (default: --lr)')
    # two flags, not argparse.BooleanOptionalAction, which Python 3.8 lacks
    group.add_argument('--sample-batch-stats', action='store_const', const=True,
                       help='sample (grids, SWD) with each batch\'s BatchNorm statistics, not '
                            'the running averages')
    group.add_argument('--no-sample-batch-stats', dest='sample_batch_stats',
                       action='store_const', const=False,
                       help='sample with the running averages, whatever --recipe says')


def train_recipe(args):
    """The recipes.Recipe of --recipe with the flags given on top."""
    from .recipes import RECIPES
    return RECIPES[args.recipe].override(
        ema_halflife=args.ema_halflife, label_smoothing=args.label_smoothing,
        augment=args.augment, lr_D=args.lr_D, lr_G=args.lr_G,
        sample_batch_stats=args.sample_batch_stats)


# what --resume takes from the run it continues; the other flags may change on resume
RUN_SETTINGS = ('dataset', 'data_dir', 'cache_dir', 'num_sprites', 'batch_size', 'lr',
                'latent_dim', 'n_G', 'n_D', 'alpha', 'seed', 'num_samples', 'swd_samples',
                'hybridize', 'recipe', 'ema_halflife', 'label_smoothing', 'augment', 'lr_D',
                'lr_G', 'sample_batch_stats', 'skip_bad_images', 'max_image_pixels')


def explicit_flags(parser, argv):
    """The dests of the options spelled out in argv (argparse cannot tell them from defaults)."""
    given = set()
    for action in parser._actions:
        for opt in action.option_strings:
            if any(a == opt or a.startswith(opt + '=') for a in argv):
                given.add(action.dest)
    return given


def resume_settings(args, given):
    """args of a --resume: the saved run's settings, with the flags given now on top."""
    run_dir = args.resume
    metrics_path = os.path.join(run_dir, 'metrics.json')
    if not os.path.isdir(run_dir):
        raise DCGANError(f'--resume {run_dir}: no such folder')
    try:
        with open(metrics_path) as f:
            saved = json.load(f)['settings']
    except (OSError, ValueError, KeyError) as e:
        raise DCGANError(f'--resume {run_dir}: no readable metrics.json, so not a run folder '
                         f'of this program ({type(e).__name__})') from e
    for key in RUN_SETTINGS:
        if key in given and key in saved and getattr(args, key) != saved[key]:
            raise DCGANError(f'--resume continues {run_dir} with its own settings: '
                             f'--{key.replace("_", "-")} is {saved.get(key)!r} there')
    merged = {**vars(args), **{k: saved[k] for k in RUN_SETTINGS if k in saved}}
    merged.update(out_dir=run_dir, resume=run_dir)
    return argparse.Namespace(**merged)


def data_root(args):
    """The ImageFolder root of --data-dir, or of --dataset (drawn or downloaded as needed)."""
    from .data import download_extract
    from .sprites import make_sprites
    if args.data_dir:
        return args.data_dir
    prepare_cache_dir(args.cache_dir)
    if args.dataset == 'sprites':
        return make_sprites(os.path.join(args.cache_dir, f'sprites-{args.num_sprites}'),
                            num_images=args.num_sprites)
    return download_extract('pokemon', args.cache_dir)


def read_data(args, skipped=None):
    """(ImageFolder root, uint8 images, labels) of the chosen dataset, read as the flags say."""
    from .data import read_images
    root = data_root(args)
    images, labels, _ = read_images(root, skip_bad_images=args.skip_bad_images,
                                    max_image_pixels=args.max_image_pixels, skipped=skipped)
    return root, images, labels


def load_data(args):
    """(ImageFolder root, uint8 images, DataLoader, skipped images) of the chosen dataset."""
    from .data import array_loader
    skipped = []
    root, images, labels = read_data(args, skipped)
    return root, images, array_loader(images, labels, args.batch_size,
                                      num_workers=args.num_workers), skipped


def add_data_flags(group):
    from .data import MAX_IMAGE_PIXELS
    group.add_argument('--dataset', choices=('pokemon', 'sprites'), default='pokemon',
                       help='pokemon: download d2l\'s pokemon.zip (SHA-1 checked); sprites: '
                            'draw a deterministic offline stand-in set')
    group.add_argument('--data-dir', help='use this ImageFolder root instead '
                       '(DIR/<class>/<image>.png, e.g. an extracted pokemon.zip\'s pokemon/)')
    group.add_argument('--cache-dir', default=os.path.join('..', 'data'),
                       help='where pokemon.zip is downloaded and extracted, and sprites drawn')
    group.add_argument('--num-sprites', type=POSITIVE_INT, default=1024,
                       help='images in the sprites dataset')
    group.add_argument('--skip-bad-images', action='store_true',
                       help='leave out images that cannot be read, each named on stderr and '
                            'listed in metrics.json, instead of stopping at the first')
    group.add_argument('--max-image-pixels', type=POSITIVE_INT, default=MAX_IMAGE_PIXELS,
                       help='refuse an image whose header gives more pixels than this, before '
                            'decoding it (Pillow\'s threshold for decompression bombs)')


def swd_metric(images, num, latent_dim, seed, device):
    """epoch_metrics for fit(): SWD between `num` generated and `num` real images."""
    import numpy as onp
    from mxnet import np
    from .metrics import sliced_wasserstein
    from .run import stream
    rng = stream(seed, 'swd')
    real = images[rng.choice(len(images), min(num, len(images)), replace=False)]
    Z = np.array(rng.standard_normal((len(real), latent_dim, 1, 1), dtype='float32'), ctx=device)

    def measure(net_G):
        levels, mean = sliced_wasserstein(real, net_G(Z).asnumpy(), seed=seed)
        return {'swd': mean, 'swd_levels': levels}
    return measure


def resume_hint(args):
    return f'resume with: python examples/train_pokemon.py --resume {args.out_dir}'


def chosen_device(spec):
    """The device --device names (gpu.select_device), said on one line with why."""
    from .gpu import select_device
    device, why = select_device(spec)
    print(f'device: {device} ({why})')
    return device


def pick_devices(args):
    """The devices of --devices (data parallel) or --device, said on one line."""
    from .gpu import select_device
    if args.devices:
        devices = [select_device(spec)[0] for spec in args.devices.split(',') if spec.strip()]
        print(f'devices: {", ".join(map(str, devices))} (data parallel)')
        return devices
    return [chosen_device(args.device)]


def check_run_folder(out, ckpt_dir, resume):
    """A new run needs a folder without checkpoints: it would mix its own in and prune them."""
    from .checkpoint import list_checkpoints
    found = list_checkpoints(ckpt_dir)
    if resume and not found:
        print(f'no checkpoint in {ckpt_dir}: starting from the beginning')
    elif not resume and found:
        raise DCGANError(f'--out-dir {out} holds a run already ({os.path.basename(found[0])}); '
                         f'continue it with --resume {out}, or choose another --out-dir')


class RunFiles:
    """What a training run writes into --out-dir after every epoch, each file atomically."""

    def __init__(self, out, fixed_Z, metrics, resume):
        self.out, self.fixed_Z, self.metrics = out, fixed_Z, metrics
        self.metrics_path = os.path.join(out, 'metrics.json')
        if resume and os.path.exists(self.metrics_path):
            with open(self.metrics_path) as f:
                metrics['epochs'] = json.load(f).get('epochs', [])
        write_json(self.metrics_path, metrics)

    def on_epoch_samples(self, record, sample):
        from .plot import save_image_grid
        save_image_grid(sample(self.fixed_Z), os.path.join(
            self.out, 'samples', f'epoch_{record["epoch"]:03d}.png'))
        if sample.average:
            save_params(sample.net, os.path.join(self.out, 'net_G_ema.params'))

    def on_epoch_end(self, record, net_D, net_G):
        save_params(net_G, os.path.join(self.out, 'net_G.params'))
        save_params(net_D, os.path.join(self.out, 'net_D.params'))
        # an epoch run again after a rollback or resume replaces its earlier record
        epochs = [r for r in self.metrics['epochs'] if r['epoch'] < record['epoch']]
        self.metrics['epochs'] = epochs + [record]
        write_json(self.metrics_path, self.metrics)


def run_train(args):
    import matplotlib
    matplotlib.use('Agg')  # headless: the figures go to files
    from mxnet import np
    from .checkpoint import RunLock
    from .model import discriminator, generator
    from .plot import GANAnimator
    from .run import fit, fixed_noise

    devices = pick_devices(args)
    out = prepare_out_dir(args.out_dir)
    ckpt_dir = os.path.join(out, 'checkpoints')
    with RunLock(out):
        check_run_folder(out, ckpt_dir, args.resume)
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
        recipe = train_recipe(args)
        print(f'recipe: {recipe.describe()}')
        seed_everything(seed)
        data_dir, images, data_iter, skipped = load_data(args)
        print(f'data: {len(images)} images from {data_dir}')
        net_G, net_D = generator(args.n_G), discriminator(args.n_D, args.alpha)
        # the same noise on resume: drawn from the seed
        fixed_Z = np.array(fixed_noise(seed, args.num_samples, args.latent_dim), ctx=devices[0])
        files = RunFiles(out, fixed_Z, {
            'settings': {**vars(args), 'seed': seed}, 'recipe': recipe.to_json(),
            'device': str(devices[0]), 'devices': [str(d) for d in devices],
            'data_dir': os.path.abspath(data_dir), 'num_images': len(images),
            'skipped_images': skipped, 'epochs': []}, args.resume)
        start = time.time()
        history = fit(
            net_D, net_G, data_iter, args.num_epochs, args.lr, args.latent_dim, devices,
            hybridize=args.hybridize, seed=seed, fixed_Z=fixed_Z, recipe=recipe,
            animator=GANAnimator(args.num_epochs, path=os.path.join(out, 'dcgan.png'),
                                 swd=args.swd_samples > 0),
            on_epoch_samples=files.on_epoch_samples, on_epoch_end=files.on_epoch_end,
            progress=args.progress, checkpoint_dir=ckpt_dir,
            checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
            resume=bool(args.resume), max_loss=args.max_loss, on_divergence=args.on_divergence,
            epoch_metrics=(swd_metric(images, args.swd_samples, args.latent_dim, seed,
                                      devices[0]) if args.swd_samples else None))
        if history and history[-1].get('swd') is not None:
            print(f'SWD x1e3 to the data: {history[-1]["swd"]:.1f}')
    ema = 'net_G_ema.params, ' if recipe.ema_halflife else ''
    print(f'{len(history)} epochs done ({time.time() - start:.1f} s this run); '
          f'wrote {out}/dcgan.png, samples/, net_G.params, {ema}net_D.params, metrics.json, '
          f'checkpoints/')


def generate_parser(prog=None):
    p = Parser(prog=prog, description='Sample a trained generator into one PNG grid.',
                formatter_class=HelpFormatter)
    add_sampling_flags(p)
    p.add_argument('--num', type=POSITIVE_INT, default=64, help='images to generate')
    p.add_argument('--ncols', type=POSITIVE_INT, default=8, help='images per row')
    p.add_argument('--seed', type=SEED, default=0, help='random seed of the noise')
    p.add_argument('--device', default='auto', help='auto, cpu, cpu:N, gpu or gpu:N')
    p.add_argument('--out', default='generated.png', help='PNG file to write')
    p.add_argument('--interpolate', type=number(int, 2), metavar='K',
                   help='walks in the latent space instead: rows of K images, each row a '
                        'spherical interpolation between two random points (--num must be a '
                        'multiple of K)')
    return p


def add_sampling_flags(p):
    p.add_argument('--params', required=True,
                   help='a net_G.params (or net_G_ema.params) written by training')
    p.add_argument('--batch-stats', action='store_true',
                   help='BatchNorm with each batch\'s statistics (up to 256 images), not the '
                        'running averages (as training with --sample-batch-stats samples)')


def load_generator(path, device):
    """Rebuild the generator a .params file was saved from (sizes read off its weights)."""
    import mxnet as mx
    from mxnet.base import MXNetError
    from .model import generator, generator_sizes
    if not os.path.isfile(path):
        raise DCGANError(f'--params {path} does not exist')
    try:
        n_G, out_channels, latent_dim = generator_sizes(
            {k: v.shape for k, v in mx.nd.load(path).items()})
        net_G = generator(n_G, out_channels)
        net_G.load_parameters(path, ctx=device)
    except (MXNetError, KeyError, AssertionError, ValueError, AttributeError) as e:
        raise DCGANError(f'--params {path} is not a generator saved by d2l_dcgan '
                         f'({type(e).__name__})') from e
    return net_G, latent_dim


def device_and_generator(args):
    """The chosen device (said once) and the generator of --params on it, with its latent size."""
    device = chosen_device(args.device)
    return (device,) + load_generator(args.params, device)


def run_generate(args):
    import matplotlib
    matplotlib.use('Agg')
    from mxnet import np
    from .plot import save_image_grid
    from .latent import latent_walks
    from .model import sample
    if args.interpolate and args.num % args.interpolate:
        raise DCGANError(f'--num {args.num} is not a multiple of --interpolate '
                         f'{args.interpolate} (rows of {args.interpolate} images)')
    out_parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_parent):
        raise DCGANError(f'--out {args.out}: folder {out_parent} does not exist')
    if os.path.isdir(args.out):
        raise DCGANError(f'--out {args.out} is a folder; give the PNG file to write')
    device, net_G, latent_dim = device_and_generator(args)
    seed_everything(args.seed)
    if args.interpolate:
        Z, _ = latent_walks(args.num // args.interpolate, args.interpolate, latent_dim,
                            args.seed)
        ncols = args.interpolate
    else:
        Z = np.random.normal(0, 1, size=(args.num, latent_dim, 1, 1), ctx=device).asnumpy()
        ncols = args.ncols
    save_image_grid(sample(net_G, Z, device, batch_stats=args.batch_stats), args.out,
                    ncols=ncols)
    what = (f' ({args.num // args.interpolate} walks of {args.interpolate})'
            if args.interpolate else '')
    print(f'wrote {args.num} images{what} to {args.out}')


def evaluate_parser(prog=None):
    p = Parser(prog=prog, description=(
        'Sliced Wasserstein distance (Karras et al. 2018; x 1e3 per Laplacian level, lower is '
        'closer) between images of a trained generator and the data.'),
        formatter_class=HelpFormatter)
    add_sampling_flags(p)
    add_data_flags(p)
    p.add_argument('--num', type=POSITIVE_INT, default=512,
                   help='generated and real images to compare (fewer if the data has fewer)')
    p.add_argument('--seed', type=SEED, default=0, help='random seed of noise and sampling')
    p.add_argument('--device', default='auto', help='auto, cpu, cpu:N, gpu or gpu:N')
    return p


def run_evaluate(args):
    import numpy as onp
    from .metrics import sliced_wasserstein, swd_resolutions
    from .model import sample
    device, net_G, latent_dim = device_and_generator(args)
    root, images, _ = read_data(args)
    rng = onp.random.default_rng(args.seed)
    real = images[rng.choice(len(images), min(args.num, len(images)), replace=False)]
    Z = rng.standard_normal((len(real), latent_dim, 1, 1), dtype='float32')
    fake = sample(net_G, Z, device, batch_stats=args.batch_stats)
    levels, mean = sliced_wasserstein(real, fake, seed=args.seed)
    sizes = swd_resolutions(real.shape[1])
    print(f'SWD x1e3 to the data ({len(real)} generated vs {len(real)} real images of {root}): '
          + ', '.join(f'{s}px {v:.1f}' for s, v in zip(sizes, levels)) + f'; mean {mean:.1f}')


def _run(fn, args):
    from .run import TrainingInterrupted
    try:
        fn(args)
    except TrainingInterrupted as e:
        print(f'{e}; {resume_hint(args)}', file=sys.stderr)
        return 128 + e.signum
    except DCGANError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = f'; {resume_hint(args)}' if getattr(args, 'out_dir', None) else ''
        print(f'interrupted{hint}', file=sys.stderr)
        return 130
    return 0


def train_main(argv=None, prog=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = train_parser(prog)
    args = parser.parse_args(argv)
    if args.resume:
        try:
            args = resume_settings(args, explicit_flags(parser, argv))
        except DCGANError as e:
            print(f'error: {e}', file=sys.stderr)
            return 2
    return _run(run_train, args)


def generate_main(argv=None, prog=None):
    return _run(run_generate, generate_parser(prog).parse_args(argv))


def evaluate_main(argv=None, prog=None):
    return _run(run_evaluate, evaluate_parser(prog).parse_args(argv))


def crosscheck_main(argv=None, prog=None):
    from .crosscheck import crosscheck_main as main  # it imports this module
    return main(argv, prog)


COMMANDS = {'train': train_main, 'generate': generate_main, 'evaluate': evaluate_main,
            'crosscheck': crosscheck_main}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print('usage: python -m d2l_dcgan {train,generate,evaluate,crosscheck} [--help] ...',
              file=sys.stderr)
        return 0 if argv and argv[0] in ('-h', '--help') else 2
    return COMMANDS[argv[0]](argv[1:], prog=f'python -m d2l_dcgan {argv[0]}')
