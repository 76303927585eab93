"""train's recipe flags (d2l_dcgan.recipes): what `train` offers and `--resume` compares,
below both commands."""
import argparse

from ..errors import DCGANError
from ..flags import NON_NEGATIVE_FLOAT, NON_NEGATIVE_INT, POSITIVE_FLOAT, image_count, number

# compared as the recipe the run trained with
RECIPE_FLAGS = ('ema_halflife', 'ema_rampup', 'label_smoothing', 'augment', 'augment_ramp',
                'lr_D', 'lr_G', 'lr_decay', 'lr_decay_images', 'sample_batch_stats')


def augment_ops(text):
    """--augment's value: comma-separated ops of recipes.AUGMENTS, or 'none' ('')."""
    from ..recipes import AUGMENTS, Recipe
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
    from ..recipes import AUGMENTS, RECIPES
    group.add_argument('--recipe', choices=tuple(RECIPES), default='book',
                       help='book: the chapter\'s; improved: ' + RECIPES['improved'].describe())
    group.add_argument('--ema-halflife', type=NON_NEGATIVE_INT, metavar='IMAGES',
                       help='average the generator\'s weights, their memory halving every '
                            'IMAGES training images (0: off); writes net_G_ema.params')
    group.add_argument('--ema-rampup', type=NON_NEGATIVE_FLOAT, metavar='X',
                       help='the average\'s half-life is at most X times the images seen so '
                            'far, so it forgets the first weights sooner (0: off)')
    group.add_argument('--label-smoothing', type=number(float, 0, 1), metavar='X',
                       help='one-sided label smoothing: D\'s target for real images is 1 - X '
                            '(0: off)')
    group.add_argument('--augment', type=augment_ops, nargs='?', const=','.join(AUGMENTS),
                       metavar='OPS', help='differentiable augmentation of every image D '
                       f'sees: {",".join(AUGMENTS)} (all without OPS) or none')
    group.add_argument('--augment-ramp', type=NON_NEGATIVE_INT, metavar='IMAGES',
                       help='each op augments each image with a chance that rises from 0 to 1 '
                            'over IMAGES training images (0: always)')
    group.add_argument('--lr-D', dest='lr_D', type=POSITIVE_FLOAT,
                       help='the discriminator\'s learning rate (default: --lr)')
    group.add_argument('--lr-G', dest='lr_G', type=POSITIVE_FLOAT,
                       help='the generator\'s learning rate (default: --lr)')
    group.add_argument('--lr-decay', type=number(float, 0, 1, above=True, also=(1,)),
                       metavar='X', help='both learning rates fall geometrically to X times '
                       'their start over --lr-decay-images images, then stay (1: off)')
    group.add_argument('--lr-decay-images', type=image_count, metavar='IMAGES',
                       help='the training images over which --lr-decay falls (50000, 50k)')
    # two flags, not argparse.BooleanOptionalAction, which Python 3.8 lacks
    group.add_argument('--sample-batch-stats', action='store_const', const=True,
                       help='sample (grids, SWD) with each batch\'s BatchNorm statistics, not '
                            'the running averages')
    group.add_argument('--no-sample-batch-stats', dest='sample_batch_stats',
                       action='store_const', const=False,
                       help='sample with the running averages, whatever --recipe says')


def recipe_defaults(args, given):
    """What --recipe sets unless given: its batch size, and its nets' rates, which a --lr given
    replaces for both (--lr-D and --lr-G given still set their net's)."""
    from ..recipes import RECIPES
    recipe = RECIPES[args.recipe]
    if recipe.batch_size and 'batch_size' not in given:
        args.batch_size = recipe.batch_size
    if 'lr' in given:
        for key in ('lr_D', 'lr_G'):
            if getattr(recipe, key) is not None and getattr(args, key) is None:
                setattr(args, key, args.lr)


def train_recipe(args):
    """The recipes.Recipe of --recipe with the flags given on top."""
    from ..recipes import RECIPES
    rampup = 0.0 if args.ema_halflife == 0 and args.ema_rampup is None else args.ema_rampup
    ramp = 0 if args.augment == '' and args.augment_ramp is None else args.augment_ramp
    return RECIPES[args.recipe].override(  # no average or augmentation: none of --recipe's ramps
        ema_halflife=args.ema_halflife, ema_rampup=rampup,
        label_smoothing=args.label_smoothing, augment=args.augment, augment_ramp=ramp,
        lr_D=args.lr_D, lr_G=args.lr_G, lr_decay=args.lr_decay,
        lr_decay_images=args.lr_decay_images,
        sample_batch_stats=args.sample_batch_stats,
        batch_size=args.batch_size if RECIPES[args.recipe].batch_size else None)  # what ran
