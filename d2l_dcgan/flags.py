"""What the commands (d2l_dcgan/commands/, crosscheck) share: the parser, number types, the data
flags and their loading, devices, seeding, and running a command with one-line errors."""
import argparse
import difflib
import math
import os
import random
import re
import shlex
import sys

import mxnet as mx
import numpy as onp

from .data import (DEFAULT_CACHE_DIR, MAX_IMAGE_PIXELS, array_loader, download_extract,
                   read_images)
from .errors import DCGANError, one_line
from .gpu import is_device_spec, select_device
from .interrupts import KeyboardInterrupts, TrainingInterrupted
from .runfolder import run_folder_of
from .sprites import make_sprites


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)', but not for flags or options without a default; short metavars;
    text laid out by hand (an epilog of commands, a docstring) kept as it is."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)

    def _get_default_metavar_for_optional(self, action):
        """N for an integer, X for a number, DIR for a folder, else the dest in capitals."""
        kind = {'int': 'N', 'float': 'X'}.get(getattr(action.type, '__name__', None))
        return kind or ('DIR' if action.dest.endswith('_dir') else action.dest.upper())

    def _fill_text(self, text, width, indent):
        if '\n' in text.strip():  # as argparse.RawDescriptionHelpFormatter keeps it
            return ''.join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class Parser(argparse.ArgumentParser):
    """argparse as every command speaks it: one-line errors with the --help hint, "did you mean"
    for a near miss, a lower-case spelling of every mixed-case flag (--n-g for --n-G), and
    earlier versions' spellings of renamed flags, with a one-line note."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('allow_abbrev', False)  # `--batch 8` would get past --resume's checks
        kwargs.setdefault('formatter_class', HelpFormatter)
        kwargs.setdefault('usage', '%(prog)s [options]')  # --help lists them, in groups
        super().__init__(*args, **kwargs)
        self.renamed = {}  # an earlier version's spelling -> today's
        self.notes = True  # say so when a renamed spelling is used

    def rename(self, old, new):
        """Accept `old`, an earlier spelling of the option `new`, saying it is now `new`."""
        self.renamed[old] = new

    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f'{self.prog}: error: {one_line(message)} (see --help)\n')

    def parse_args(self, args=None, namespace=None):
        args, extra = self.parse_known_args(args, namespace)
        if extra:
            self.error(f'unrecognized arguments: {" ".join(extra)}{self.did_you_mean(extra)}')
        return args

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        self._add_spellings()
        for arg in args:
            old = arg.partition('=')[0] if isinstance(arg, str) else None
            if self.notes and old in self.renamed:
                print(f'{self.prog}: note: {old} is now {self.renamed[old]} ({old} still works)',
                      file=sys.stderr)
        return super().parse_known_args(args, namespace)

    def _add_spellings(self):
        """Let argparse's table of option strings take the renamed and lower-case spellings too:
        accepted, but not listed by --help."""
        table = self._option_string_actions  # argparse has no public way to hide a spelling
        for old, new in self.renamed.items():
            table.setdefault(old, table[new])
        for option, action in list(table.items()):
            table.setdefault(option.lower(), action)

    def did_you_mean(self, extra):
        """'; did you mean --batch-size?' for the first unknown option near one of ours."""
        options = [o for a in self._actions for o in a.option_strings if o.startswith('--')]
        for arg in extra:
            near = difflib.get_close_matches(arg.partition('=')[0], options, n=1) if (
                isinstance(arg, str) and arg.startswith('-')) else []
            if near:
                return f'; did you mean {near[0]}?'
        return ''

    def flag(self, name):
        """The option that sets the argument `name` (its dest), or `name` if none does."""
        return next((a.option_strings[0] for a in self._actions
                     if a.dest == name and a.option_strings), name)


def examples(prog, *commands):
    """An epilog of example commands: `commands` are (what it does, `prog`'s flags) pairs."""
    if prog.endswith('.py'):  # examples/train_pokemon.py
        prog = f'python examples/{prog}'
    return 'examples:\n' + '\n'.join(f'  # {what}\n  {prog} {flags}'.rstrip()
                                      for what, flags in commands)


def doc_and_examples(doc):
    """A script's docstring as (description, epilog): its indented `python ...` lines become
    the epilog of examples."""
    lines = doc.strip('\n').splitlines()
    commands = [line.strip() for line in lines if line.startswith('    python ')]
    rest = '\n'.join(line for line in lines if not line.startswith('    python '))
    return re.sub(r'\n{3,}', '\n\n', rest), 'examples:\n' + '\n'.join(f'  {c}' for c in commands)


def error_message(parser, e):
    """A DCGANError as the command line says it: about an argument, in argparse's words, with
    its flag (`parser`'s) in place of its name, there and in the message."""
    if not e.arg or parser is None:
        return str(e)
    message = e.message
    for name in {e.arg, *getattr(e, 'also', ())}:  # whole words, not part of a path
        message = re.sub(rf'(?<![\w/.-]){re.escape(name)}(?![\w/-])', parser.flag(name), message)
    return f'argument {parser.flag(e.arg)}: {message}'


def error_line(parser, e):
    """error_message's line as argparse says an error: the program, then the --help hint."""
    prog = f'{parser.prog}: ' if parser is not None else ''
    return f'{prog}error: {one_line(error_message(parser, e))} (see --help)'


class _Unset:
    """The value of an option not given, while parse_given parses."""


def parse_given(parser, argv):
    """(args, given): argv parsed, and the dests of the options it gives. argparse fills in a
    default only where the namespace has no value yet, so a namespace of markers shows them."""
    defaults = vars(parser.parse_args([]))
    args = parser.parse_args(argv, argparse.Namespace(**dict.fromkeys(defaults, _Unset)))
    given = {k for k, v in vars(args).items() if v is not _Unset}
    for key in set(defaults) - given:
        setattr(args, key, defaults[key])
    return args, given


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
    random.seed(seed)
    onp.random.seed(seed)  # Gluon's DataLoader shuffles with NumPy's global generator
    mx.random.seed(seed, ctx='all')


def device_spec(text):
    """--device's value: auto, cpu, cpu:N, gpu or gpu:N."""
    if not is_device_spec(text):
        raise argparse.ArgumentTypeError(f'expected auto, cpu, cpu:N, gpu or gpu:N, got {text!r}')
    return text


def device_specs(text):
    """--device's value where it may be several devices: one, or distinct cpu[:N] or gpu[:N],
    comma-separated, as 'gpu:0,gpu:1' (data parallel)."""
    if ',' not in text and is_device_spec(text):
        return text
    specs = [s.strip().lower() for s in text.split(',')]
    if not all(re.fullmatch(r'(cpu|gpu)(:\d+)?', s) for s in specs):
        raise argparse.ArgumentTypeError(f'expected auto, cpu, cpu:N, gpu, gpu:N or several '
                                         f'such as gpu:0,gpu:1, got {text!r}')
    specs = [s if ':' in s else s + ':0' for s in specs]
    twice = sorted({s for s in specs if specs.count(s) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f'{", ".join(twice)} given twice in {text!r}; each '
                                         'device takes its own share of a batch once')
    return ','.join(specs)


def prepare_cache_dir(path):
    if os.path.exists(path) and not os.path.isdir(path):
        raise DCGANError(f'--cache-dir {path} is a file, not a directory')
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise DCGANError(f'cannot create --cache-dir {path}: {e.strerror or e}') from e
    return path


PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


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
    listed = f' and listed in {skipped_listed_in}' if skipped_listed_in else ''
    group.add_argument('--dataset', choices=('pokemon', 'sprites'), default='pokemon',
                       help='pokemon: download d2l\'s pokemon.zip (SHA-1 checked); sprites: '
                            'draw a deterministic offline stand-in set')
    group.add_argument('--data-dir', help='use this ImageFolder root instead '
                       '(DIR/<class>/<image>.png, e.g. an extracted pokemon.zip\'s pokemon/)')
    group.add_argument('--cache-dir', default=DEFAULT_CACHE_DIR,
                       help='where pokemon.zip is downloaded and extracted, sprites drawn, and '
                            'the decoded images kept (DIR/decoded); the default is '
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
                            'cache in --cache-dir\'s decoded/, which later runs map instead of '
                            'decoding')


def data_root(args):
    """The ImageFolder root of --data-dir, or of --dataset (drawn or downloaded as needed)."""
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
    root = data_root(args)
    images, labels, _ = read_images(root, skip_bad_images=args.skip_bad_images,
                                    max_image_pixels=args.max_image_pixels, skipped=skipped,
                                    cache_dir=args.cache_dir if args.image_cache else None)
    return root, images, labels


def load_data(args):
    """(ImageFolder root, uint8 images, DataLoader, skipped images) of the chosen dataset."""
    skipped = []
    root, images, labels = read_data(args, skipped)
    return root, images, array_loader(images, labels, args.batch_size,
                                      num_workers=args.num_workers), skipped


def chosen_device(spec):
    """The device --device names (gpu.select_device), said on one line with why."""
    ctx, why = select_device(spec)
    print(f'device: {ctx} ({why})')
    return ctx


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


def run_command(fn, args, interrupted_hint=lambda args: '', parser=None):
    """fn(args) with the command line's exits: a DCGANError is one line (error_line, with the
    flags of `parser`) and 2, a signal 128+N."""
    try:
        with KeyboardInterrupts():
            fn(args)
    except TrainingInterrupted as e:
        print(one_line(f'{e}{interrupted_hint(args)}'), file=sys.stderr)
        return 128 + e.signum
    except DCGANError as e:
        print(error_line(parser, e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(one_line(f'interrupted{interrupted_hint(args)}'), file=sys.stderr)
        return 130
    return 0
