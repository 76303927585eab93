"""Train the chapter's DCGAN on the Pokemon sprites: `python examples/train_pokemon.py --help`."""
import signal
import sys


def interrupted(signum, frame):
    print('interrupted', file=sys.stderr)
    sys.exit(130)


if __name__ == '__main__':  # Ctrl-C while MXNet loads: one line and 130, not a traceback
    signal.signal(signal.SIGINT, interrupted)

from d2l_dcgan.cli import line_buffered_stdout, train_main  # noqa: E402

if __name__ == '__main__':
    signal.signal(signal.SIGINT, signal.default_int_handler)
    line_buffered_stdout()
    sys.exit(train_main(prog='train_pokemon.py'))
