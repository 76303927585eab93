"""Command line: `python -m d2l_dcgan COMMAND` (or `d2l-dcgan COMMAND`); each command lives in
d2l_dcgan/commands/ (crosscheck in d2l_dcgan/crosscheck.py), what they share in flags.py."""
import sys

from .commands.evaluate import evaluate_main
from .commands.generate import generate_main
from .commands.train import train_main
from .crosscheck import crosscheck_main


COMMANDS = {
    'train': (train_main, 'train the DCGAN on the Pokemon (or any image folder), as the '
                          'chapter does (same as examples/train_pokemon.py)'),
    'generate': (generate_main, 'sample a trained generator into one PNG grid, or walks'),
    'evaluate': (evaluate_main, 'the SWD between a trained generator\'s images and the data'),
    'crosscheck': (crosscheck_main, 'train the book\'s code and this package\'s side by side '
                                    'and compare them step by step'),
}


def usage(prog):
    lines = [f'usage: {prog} {{{",".join(COMMANDS)}}} [--help] ...', '', 'commands:']
    lines += [f'  {name:<11} {about}' for name, (_, about) in COMMANDS.items()]
    return '\n'.join(lines + ['', f'{prog} COMMAND --help shows the flags of COMMAND'])


def line_buffered_stdout():
    """Each line to a pipe or log file (`docker logs`) when printed, in order with stderr's."""
    if hasattr(sys.stdout, 'reconfigure'):  # Python block-buffers a piped stdout
        sys.stdout.reconfigure(line_buffering=True)


def main(argv=None):
    line_buffered_stdout()
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = 'd2l-dcgan' if sys.argv[0].endswith('d2l-dcgan') else 'python -m d2l_dcgan'
    if argv and argv[0] in ('-h', '--help'):
        print(usage(prog))
        return 0
    if not argv or argv[0] not in COMMANDS:
        what = f'unknown command {argv[0]!r}' if argv else 'no command given'
        print(f'{prog}: error: {what} (choose from {", ".join(COMMANDS)}; see --help)',
              file=sys.stderr)
        return 2
    return COMMANDS[argv[0]][0](argv[1:], prog=f'{prog} {argv[0]}')
