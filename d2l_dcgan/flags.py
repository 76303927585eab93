"""What the commands (d2l_dcgan/commands/, crosscheck) share: the parser, number types, the data
flags and their loading, devices, seeding, and running a command with one-line errors."""
import argparse
import json
import math
import os
import random
import shlex
import sys

from .errors import DCGANError, one_line
from .fileio import atomic_write
from .interrupts import KeyboardInterrupts, TrainingInterrupted


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault('allow_abbrev', False)  # `--batch 8` would get past --resume's checks
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f'{self.prog}: error: {one_line(message)} (see --help)\n')


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)', but not for flags or options without a default."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def given_flags(build_parser, argv):
    """The dests of the options given in argv, by parsing it again with no defaults."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def number(kind, low, high=None, above=False, also=()):
    """An argparse type: a finite `kind` that is >= low (> low if `above`) and < high, or one
    of `also`."""
    noun = 'an integer' if kind is int else 'a number'
    bound = (f'> {low}' if above else f'>= {low}') + (f' and < {high}' if high is not None else '')
    bound = ' or '.join([str(a) for a in also] + [bound])

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected {noun}, got {text!r}')
        if value not in also and not (math.isfinite(value) and (
                value > low if above else value >= low) and (high is None or value < high)):
            raise argparse.ArgumentTypeError(f'must be {bound}, got {text!r}')
        return value
    parse.__name__ = kind.__name__
    return parse


POSITIVE_INT, POSITIVE_FLOAT = number(int, 0, above=True), number(float, 0, above=True)
NON_NEGATIVE_INT, NON_NEGATIVE_FLOAT = number(int, 0), number(float, 0)
SEED = number(int, 0, 2**32)  # NumPy's global generator takes no other seeds
IMAGE_SETS = number(int, 2)  # the SWD compares sets of at least 2 images
CHAPTER_IMAGES = 20 * 40_597  # the chapter's run: 20 epochs of the 40,597 Pokemon sprites


def image_count(text):
    """--budget's value: a positive number of images, as 200000, 200k or 0.8M."""
    scale = {'k': 1_000, 'm': 1_000_000}.get(text.strip()[-1:].lower(), 1)
    try:
        value = float(text.strip()[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number of images such as 200000 or '
                                         f'200k, got {text!r}')
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise argparse.ArgumentTypeError(f'must be a whole number of images >= 1, got {text!r}')
    return int(value)


def epochs_for(budget, num_images):
    """The epochs a budget of training images buys: the first whole one at or past it."""
    return max(1, math.ceil(budget / num_images))


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


PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def run_folder_of(path):
    """The training run folder that `path` would be a file of (its samples/ too), or None."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(folder) == 'samples':
        folder = os.path.dirname(folder)
    is_run = all(os.path.exists(os.path.join(folder, f)) for f in ('metrics.json', 'checkpoints'))
    return folder if is_run else None


def check_output_file(flag, path, inputs=()):
    """Refuse an output path that is a folder, lies in no folder, is one of the command's
    `inputs` ({flag: path}), an existing file of a training run, or an existing file that is
    not a PNG image."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise DCGANError(f'{flag} {path} is a folder; give the PNG file to write')
    if not os.path.isdir(parent):
        raise DCGANError(f'{flag} {path}: folder {parent} does not exist')
    if not os.path.exists(path):
        return path
    for input_flag, input_path in inputs.items():
        if input_path and os.path.exists(input_path) and os.path.samefile(path, input_path):
            raise DCGANError(f'{flag} {path} is the file of {input_flag}; writing it would '
                             'destroy it: give another file')
    run = run_folder_of(path)
    if run:
        raise DCGANError(f'{flag} {path} is a file of the training run in {run}; '
                         'not overwriting it: give a new file name')
    with open(path, 'rb') as f:
        if f.read(len(PNG_MAGIC)) != PNG_MAGIC:
            raise DCGANError(f'{flag} {path} exists and is not a PNG image; not overwriting it: '
                             'give another file, or remove it first')
    return path


def add_data_flags(group, skipped_listed_in=None):
    """The data flags of every command; `skipped_listed_in`: the file that lists skipped images."""
    from .data import DEFAULT_CACHE_DIR, MAX_IMAGE_PIXELS
    listed = f' and listed in {skipped_listed_in}' if skipped_listed_in else ''
    group.add_argument('--dataset', choices=('pokemon', 'sprites'), default='pokemon',
                       help='pokemon: download d2l\'s pokemon.zip (SHA-1 checked); sprites: '
                            'draw a deterministic offline stand-in set')
    group.add_argument('--data-dir', help='use this ImageFolder root instead '
                       '(DIR/<class>/<image>.png, e.g. an extracted pokemon.zip\'s pokemon/)')
    group.add_argument('--cache-dir', default=DEFAULT_CACHE_DIR,
                       help='where pokemon.zip is downloaded and extracted, sprites drawn, and '
                            'the decoded images kept (CACHE_DIR/decoded); the default is '
                            '$D2L_DCGAN_CACHE, else $XDG_CACHE_HOME/d2l-dcgan or '
                            '~/.cache/d2l-dcgan, one per machine')
    group.add_argument('--num-sprites', type=POSITIVE_INT, default=1024,
                       help='images in the sprites dataset')
    group.add_argument('--skip-bad-images', action='store_true',
                       help=f'leave out images that cannot be read, each named on stderr{listed}, '
                            'instead of stopping at the first')
    group.add_argument('--max-image-pixels', type=POSITIVE_INT, default=MAX_IMAGE_PIXELS,
                       help='refuse an image whose header gives more pixels than this, before '
                            'decoding it (Pillow\'s threshold for decompression bombs)')
    group.add_argument('--no-image-cache', dest='image_cache', action='store_false',
                       help='decode the images in memory, not into (or from) the decoded-image '
                            'cache in CACHE_DIR/decoded, which later runs map instead of '
                            'decoding')


def data_root(args):
    """The ImageFolder root of --data-dir, or of --dataset (drawn or downloaded as needed)."""
    from .data import download_extract
    from .sprites import make_sprites
    if args.data_dir:
        return args.data_dir
    prepare_cache_dir(args.cache_dir)
    print(f'data cache: {os.path.abspath(args.cache_dir)}')
    if args.dataset == 'sprites':
        return make_sprites(os.path.join(args.cache_dir, f'sprites-{args.num_sprites}'),
                            num_images=args.num_sprites)
    return download_extract('pokemon', args.cache_dir)


def read_data(args, skipped=None):
    """(ImageFolder root, uint8 images, labels) of the chosen dataset, read as the flags say."""
    from .data import read_images
    root = data_root(args)
    images, labels, _ = read_images(root, skip_bad_images=args.skip_bad_images,
                                    max_image_pixels=args.max_image_pixels, skipped=skipped,
                                    cache_dir=args.cache_dir if args.image_cache else None)
    return root, images, labels


def load_data(args):
    """(ImageFolder root, uint8 images, DataLoader, skipped images) of the chosen dataset."""
    from .data import array_loader
    skipped = []
    root, images, labels = read_data(args, skipped)
    return root, images, array_loader(images, labels, args.batch_size,
                                      num_workers=args.num_workers), skipped


def chosen_device(spec, flag='--device'):
    """The device `flag` names (gpu.select_device), said on one line with why."""
    from .gpu import select_device
    device, why = select_device(spec, flag=flag)
    print(f'device: {device} ({why})')
    return device


def command_line(*more):
    """The command this process was started as, with `more` arguments: what to run again."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else 'python -m d2l_dcgan'
    if os.path.basename(argv0) == '__main__.py':  # python -m d2l_dcgan
        words = ['python', '-m', 'd2l_dcgan', *sys.argv[1:2]]
    elif argv0.endswith('.py'):
        words = ['python', argv0]
    else:  # a console script such as d2l-dcgan
        words = [os.path.basename(argv0), *sys.argv[1:2]]
    return ' '.join(shlex.quote(w) for w in words + list(more))


def run_command(fn, args, interrupted_hint=lambda args: ''):
    """fn(args) with the command line's exits: a DCGANError is one line and 2, a signal 128+N."""
    try:
        with KeyboardInterrupts():
            fn(args)
    except TrainingInterrupted as e:
        print(one_line(f'{e}{interrupted_hint(args)}'), file=sys.stderr)
        return 128 + e.signum
    except DCGANError as e:
        print(f'error: {one_line(str(e))}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(one_line(f'interrupted{interrupted_hint(args)}'), file=sys.stderr)
        return 130
    return 0
