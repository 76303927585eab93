"""Train the chapter's DCGAN on the Pokemon sprites: `python examples/train_pokemon.py --help`."""
import sys

from d2l_dcgan.cli import train_main

if __name__ == '__main__':
    sys.exit(train_main(prog='train_pokemon.py'))
