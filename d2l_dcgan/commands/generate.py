"""`python -m d2l_dcgan generate`: a trained generator's samples, or walks, as one PNG grid."""
import sys

import matplotlib
from mxnet import np

from ..errors import DCGANError
from ..flags import (HelpFormatter, POSITIVE_INT, Parser, SEED, check_output_file, device_spec,
                     examples, number, run_command, seed_everything)
from ..latent import latent_walks
from ..model import sample
from ..plot import save_image_grid
from .sampling import add_sampling_flags, device_and_generator


def generate_parser(prog=None):
    p = Parser(prog=prog, description='Sample a trained generator into one PNG grid.',
               formatter_class=HelpFormatter, usage='%(prog)s --params FILE [options]')
    p.epilog = examples(
        p.prog, ('64 images of a run\'s generator', '--params runs/book/net_G.params'),
        ('8 walks of 8 images between random points',
         '--params runs/book/net_G.params --interpolate 8 --out walks.png'))
    add_sampling_flags(p)
    p.add_argument('--num-samples', type=POSITIVE_INT, default=64, help='images to generate')
    p.rename('--num', '--num-samples')
    p.add_argument('--ncols', type=POSITIVE_INT, default=8, help='images per row')
    p.add_argument('--seed', type=SEED, default=0, help='random seed of the noise')
    p.add_argument('--device', type=device_spec, default='auto',
                   help='auto, cpu, cpu:N, gpu or gpu:N')
    p.add_argument('--out', default='generated.png', metavar='FILE',
                   help='PNG file to write (a new file, or a PNG image to replace)')
    p.add_argument('--interpolate', type=number(int, 2), metavar='K',
                   help='walks in the latent space instead: rows of K images, each row a '
                        'spherical interpolation between two random points (--num-samples '
                        'must be a multiple of K)')
    return p


def run_generate(args):
    matplotlib.use('Agg')
    if args.interpolate and args.num_samples % args.interpolate:
        raise DCGANError(f'--num-samples {args.num_samples} is not a multiple of --interpolate '
                         f'{args.interpolate} (rows of {args.interpolate} images)')
    check_output_file('--out', args.out, {'--params': args.params})
    device, net_G, latent_dim = device_and_generator(args)
    seed_everything(args.seed)
    if args.interpolate:
        Z, _ = latent_walks(args.num_samples // args.interpolate, args.interpolate, latent_dim,
                            args.seed)
        ncols = args.interpolate
    else:
        Z = np.random.normal(0, 1, size=(args.num_samples, latent_dim, 1, 1), ctx=device).asnumpy()
        ncols = args.ncols
    save_image_grid(sample(net_G, Z, device, batch_stats=args.batch_stats), args.out,
                    ncols=ncols)
    what = (f' ({args.num_samples // args.interpolate} walks of {args.interpolate})'
            if args.interpolate else '')
    print(f'wrote {args.num_samples} images{what} to {args.out}')


def generate_main(argv=None, prog=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = generate_parser(prog)
    return run_command(run_generate, parser.parse_args(argv), parser=parser)
