"""`python -m d2l_dcgan evaluate`: the SWD between a trained generator's images and the data."""
import sys

import numpy as onp

from ..errors import DCGANError
from ..flags import (HelpFormatter, IMAGE_SETS, Parser, SEED, add_data_flags, device_spec,
                     examples, read_data, run_command)
from ..metrics import sliced_wasserstein, swd_resolutions
from ..model import sample
from .sampling import add_sampling_flags, device_and_generator


def evaluate_parser(prog=None):
    p = Parser(prog=prog, description=(
        'Sliced Wasserstein distance (Karras et al. 2018; x 1e3 per Laplacian level, lower is '
        'closer) between images of a trained generator and the data.'),
        formatter_class=HelpFormatter, usage='%(prog)s --params FILE [options]')
    p.epilog = examples(
        p.prog, ('a run\'s generator against the Pokemon', '--params runs/book/net_G.params'),
        ('its average, on 2048 images of an image folder', '--params runs/book/net_G_ema.params '
         '--data-dir DIR --num-samples 2048'))
    add_sampling_flags(p)
    add_data_flags(p.add_argument_group('data'))
    p.add_argument('--num-samples', type=IMAGE_SETS, default=512,
                   help='generated and real images to compare (fewer if the data has fewer; '
                        'at least 2)')
    p.rename('--num', '--num-samples')
    p.add_argument('--seed', type=SEED, default=0, help='random seed of noise and sampling')
    p.add_argument('--device', type=device_spec, default='auto',
                   help='auto, cpu, cpu:N, gpu or gpu:N')
    return p


def generator_swd(net_G, latent_dim, images, num, seed, device, batch_stats=False):
    """(per-level SWD, their mean, images compared): `num` images of net_G (fewer if `images`
    has fewer) against as many of the uint8 `images`, drawn with `seed`."""
    rng = onp.random.default_rng(seed)
    real = images[rng.choice(len(images), min(num, len(images)), replace=False)]
    Z = rng.standard_normal((len(real), latent_dim, 1, 1), dtype='float32')
    fake = sample(net_G, Z, device, batch_stats=batch_stats)
    levels, mean = sliced_wasserstein(real, fake, seed=seed)
    return levels, mean, len(real)


def run_evaluate(args):
    device, net_G, latent_dim = device_and_generator(args)
    root, images, _ = read_data(args)
    if len(images) < 2:
        raise DCGANError(f'{root} has {len(images)} image; the SWD compares at least 2 real '
                         'images with as many generated ones')
    levels, mean, n = generator_swd(net_G, latent_dim, images, args.num_samples, args.seed,
                                    device, args.batch_stats)
    sizes = swd_resolutions(images.shape[1])
    print(f'SWD x1e3 to the data ({n} generated vs {n} real images of {root}): '
          + ', '.join(f'{s}px {v:.1f}' for s, v in zip(sizes, levels)) + f'; mean {mean:.1f}')


def evaluate_main(argv=None, prog=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = evaluate_parser(prog)
    return run_command(run_evaluate, parser.parse_args(argv), parser=parser)
