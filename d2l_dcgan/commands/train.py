"""`python -m d2l_dcgan train` (and examples/train_pokemon.py): the chapter's training run, with
its files written into --out-dir every epoch."""
import os
import random
import sys
import time

import matplotlib
from mxnet import np

from ..errors import DCGANError, one_line
from ..flags import (CHAPTER_IMAGES, HelpFormatter, NON_NEGATIVE_FLOAT, NON_NEGATIVE_INT,
                     POSITIVE_FLOAT, POSITIVE_INT, Parser, SEED, add_data_flags, chosen_device,
                     command_line, device_specs, epochs_for, error_line, examples, image_count,
                     load_data, number, parse_given, run_command, seed_everything)
from ..gpu import select_device
from ..metrics import sliced_wasserstein
from ..model import discriminator, generator
from ..plot import GANAnimator
from ..recipes import RECIPES
from ..run import fit, fixed_noise, stream
from ..runfolder import METRICS, RunFiles, RunFolder
from .recipe_flags import add_recipe_flags, recipe_defaults, train_recipe
from .resume import images_fingerprint, resume_settings, run_recipe


def train_parser(prog=None):
    p = Parser(prog=prog, description=(
        'Train the DCGAN of d2l\'s chapter on the Pokemon sprites (or any image folder). '
        'Every epoch writes the loss figure, a sample grid, both nets\' parameters and '
        'metrics.json into --out-dir.'),
        formatter_class=HelpFormatter)
    p.epilog = examples(
        p.prog, ('the chapter\'s run: 20 epochs of the Pokemon', '--out-dir runs/book'),
        ('the improved recipe on 240,000 images', '--recipe improved --budget 240k'),
        ('a run continued (after a crash, say) up to 30 epochs in all',
         '--resume runs/book --num-epochs 30'))
    data = p.add_argument_group('data')
    add_data_flags(data, skipped_listed_in=METRICS)
    data.add_argument('--num-workers', type=NON_NEGATIVE_INT, default=0,
                      help='DataLoader worker processes that batch the decoded images (0: the '
                           'main process; decoding runs once, one process per core, before '
                           'training, or not at all when the decoded-image cache has them)')
    model = p.add_argument_group('model and training (the chapter\'s defaults)')
    # argparse shows a default only next to a help text, so every option has one
    length = model.add_mutually_exclusive_group()
    length.add_argument('--num-epochs', type=POSITIVE_INT, default=20,
                        help='passes over the data')
    length.add_argument('--budget', type=image_count, metavar='IMAGES',
                        help='train on this many images (200000, 200k, 0.8M), not --num-epochs: '
                             'the first whole epoch at or past it (the chapter\'s run: '
                             f'{CHAPTER_IMAGES:,})')
    model.add_argument('--batch-size', type=POSITIVE_INT, default=256,
                       help='images per step (the improved recipe\'s: '
                            f'{RECIPES["improved"].batch_size} unless given)')
    model.add_argument('--lr', type=POSITIVE_FLOAT, default=0.005,
                       help='Adam\'s learning rate, both nets (the improved recipe\'s: '
                            f'{RECIPES["improved"].lr_G:g} unless given)')
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
    run.add_argument('--device', type=device_specs, default='auto',
                     help='auto, cpu, cpu:N, gpu or gpu:N; or several, e.g. gpu:0,gpu:1, to '
                          'train data parallel (each batch split across them)')
    p.rename('--devices', '--device')
    run.add_argument('--out-dir', default=os.path.join('runs', 'dcgan'),
                     help='where the figures, parameters and metrics.json go')
    run.add_argument('--num-samples', type=POSITIVE_INT, default=64,
                     help='images in each epoch\'s sample grid (fixed noise, 8 per row)')
    run.add_argument('--no-progress', dest='progress', action='store_false',
                     help='no per-epoch progress bar')
    run.add_argument('--swd-samples', type=number(int, 2, also=(0,)), default=128,
                     help='generated and real images whose sliced Wasserstein distance is '
                          'measured after every epoch (0: off)')
    add_recipe_flags(p.add_argument_group(
        'better samples (opt-in; the defaults are the book\'s recipe)'))
    safe = p.add_argument_group('checkpoints and recovery')
    safe.add_argument('--resume', metavar='DIR',
                      help='continue the run in DIR from its newest valid checkpoint, with '
                           'all its settings, up to --num-epochs (or --budget) in all; given '
                           'again, --num-epochs or --budget (upward), --device, --num-workers, '
                           '--data-dir and --cache-dir (the same images moved) and the recovery '
                           'flags below apply, and any other flag must agree with the run')
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


def swd_metric(images, num, latent_dim, seed, device):
    """epoch_metrics for fit(): SWD between `num` generated and `num` real images."""
    rng = stream(seed, 'swd')
    real = images[rng.choice(len(images), min(num, len(images)), replace=False)]
    Z = np.array(rng.standard_normal((len(real), latent_dim, 1, 1), dtype='float32'), ctx=device)

    def measure(net_G):
        levels, mean = sliced_wasserstein(real, net_G(Z).asnumpy(), seed=seed)
        return {'swd': mean, 'swd_levels': levels}
    return measure


def resume_hint(args):
    """What to run after an interrupted run: --resume if a checkpoint was written."""
    out = getattr(args, 'out_dir', None)
    if not out:
        return ''
    if not RunFolder(out).newest_checkpoint():
        return f'; no checkpoint in {out} yet, so nothing to resume'
    return f'; resume with: {command_line("--resume", out)}'


def pick_devices(args):
    """The device of --device, or its several (data parallel), said on one line."""
    if ',' not in args.device:
        return [chosen_device(args.device)]
    devices = [select_device(spec)[0] for spec in args.device.split(',')]
    print(f'devices: {", ".join(map(str, devices))} (data parallel)')
    if len(devices) > args.batch_size:
        raise DCGANError(f'--batch-size {args.batch_size} is smaller than the {len(devices)} '
                         f'devices of --device, which each need an image of every batch: '
                         f'give --batch-size {len(devices)} or more')
    return devices


def check_out_dir(path):
    """--out-dir can be a run's folder: not a file, creatable and writable."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise DCGANError(f'--out-dir {path} is a file, not a directory')
    parent = path
    while not os.path.exists(parent):  # the nearest folder that exists must take new ones
        parent = os.path.dirname(os.path.abspath(parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DCGANError(f'--out-dir {path} is not writable')
    return path


def check_run_folder(folder, resume, say=print):
    """A new run needs a folder without checkpoints: it would mix its own in and prune them."""
    found = folder.newest_checkpoint()
    if resume and not found:
        say(f'no checkpoint in {folder.checkpoints}: starting from the beginning')
    elif not resume and found:
        raise DCGANError(f'--out-dir {folder.out} holds a run already ({found}); '
                         f'continue it with --resume {folder.out}, or choose another --out-dir')


def run_settings(args, seed):
    """The settings a run records: the flags, with the seed and absolute paths."""
    absolute = {k: os.path.abspath(getattr(args, k)) for k in ('data_dir', 'cache_dir')
                if getattr(args, k)}
    return {**vars(args), 'seed': seed, **absolute}


def check_data(args, images):
    if args.swd_samples and len(images) < 2:
        raise DCGANError(f'--swd-samples {args.swd_samples}: the data has {len(images)} image; '
                         'the SWD compares at least 2 real images (or give --swd-samples 0)')


def load_run_data(args, history, seed):
    """The run's images, batches and the record of what it read; --budget in epochs of them
    (a resumed run's counted already, in the images it recorded)."""
    seed_everything(seed)
    data_dir, images, data_iter, skipped = load_data(args)
    print(f'data: {len(images)} images from {data_dir}')
    check_data(args, images)
    if args.budget and not history:
        args.num_epochs = epochs_for(args.budget, len(images))
    if args.budget:
        print(f'budget: {args.budget:,} images: {args.num_epochs} epochs of '
              f'{len(images):,} ({args.num_epochs * len(images):,} images)')
    return images, data_iter, {
        'data_dir': os.path.abspath(data_dir), 'num_images': len(images),
        'images_fingerprint': images_fingerprint(data_dir)[1], 'skipped_images': skipped}


def run_train(args):
    matplotlib.use('Agg')  # headless: the figures go to files
    devices = pick_devices(args)
    folder = RunFolder(check_out_dir(args.out_dir))
    if not args.resume:
        check_run_folder(folder, False)  # before touching the folder of another run
    with folder:
        check_run_folder(folder, args.resume)  # now that the folder is ours alone
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
        recipe = run_recipe(args.resume) if args.resume else train_recipe(args)  # kept
        print(f'recipe: {recipe.describe()}')
        if not args.resume:  # from now on a kill leaves a run to resume
            folder.start(run_settings(args, seed), recipe.to_json())
        # the checkpoint is an epoch's commit point: later records are trained again
        history = folder.history() if args.resume else []
        images, data_iter, read = load_run_data(args, history, seed)
        net_G, net_D = generator(args.n_G), discriminator(args.n_D, args.alpha)
        # the same noise on resume: drawn from the seed
        fixed_Z = np.array(fixed_noise(seed, args.num_samples, args.latent_dim), ctx=devices[0])
        files = RunFiles(folder, fixed_Z, {
            'settings': run_settings(args, seed), 'recipe': recipe.to_json(),
            'device': str(devices[0]), 'devices': [str(d) for d in devices], **read,
            'epochs': history})
        start = time.time()
        epoch_metrics = (swd_metric(images, args.swd_samples, args.latent_dim, seed, devices[0])
                         if args.swd_samples else None)
        # closed at the end, interrupted or not: train_main may run many times in one process
        with GANAnimator(args.num_epochs, path=folder.figure,
                         swd=args.swd_samples > 0) as animator:
            history = fit(
                net_D, net_G, data_iter, args.num_epochs, args.lr, args.latent_dim, devices,
                hybridize=args.hybridize, seed=seed, fixed_Z=fixed_Z, recipe=recipe,
                animator=animator, epoch_metrics=epoch_metrics,
                on_epoch_samples=files.on_epoch_samples, on_epoch_end=files.on_epoch_end,
                progress=args.progress, checkpoint_dir=folder.checkpoints,
                checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                resume=bool(args.resume), max_loss=args.max_loss,
                on_divergence=args.on_divergence)
        if history and history[-1].get('swd') is not None:
            print(f'SWD x1e3 to the data: {history[-1]["swd"]:.1f}')
    print(f'{len(history)} epochs done ({time.time() - start:.1f} s this run); '
          f'wrote {folder.out}/{RunFolder.written(recipe.ema_halflife)}')


def train_main(argv=None, prog=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = train_parser(prog)
    args, given = parse_given(parser, argv)
    if args.resume:
        try:
            args, complete = resume_settings(args, given)
        except DCGANError as e:
            print(error_line(parser, e), file=sys.stderr)
            return 2
        if complete:  # a job that resumes until it succeeds has succeeded: nothing to write
            print(one_line(complete))
            return 0
    else:
        recipe_defaults(args, given)
    return run_command(run_train, args, resume_hint, parser=parser)
