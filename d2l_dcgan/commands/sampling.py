"""What `generate` and `evaluate` share: the generator's flags and loading it from its file."""
import os

import mxnet as mx
from mxnet.base import MXNetError

from ..errors import DCGANError
from ..flags import chosen_device
from ..model import generator, generator_sizes


def add_sampling_flags(p):
    p.add_argument('--params', required=True, metavar='FILE',
                   help='a net_G.params (or net_G_ema.params) written by training')
    p.add_argument('--batch-stats', action='store_true',
                   help='BatchNorm with each batch\'s statistics (up to 256 images), not the '
                        'running averages (as training with --sample-batch-stats samples)')


def load_generator(path, device):
    """Rebuild the generator a .params file was saved from (sizes read off its weights)."""
    if os.path.isdir(path):
        raise DCGANError(f'--params {path} is a folder; give a generator\'s file, such as '
                         f'{os.path.join(path, "net_G.params")}')
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
