"""train's recipe flags, made from d2l_dcgan.recipes.Recipe's options (each declared once
there): what `train` offers and `--resume` compares, below both commands."""
import argparse
import re
from dataclasses import fields

from ..errors import DCGANError
from ..flags import image_count, number
from ..recipes import RECIPES, Ops, Recipe, Switch

OPTIONS = {f.name: f for f in fields(Recipe)}
# the options that are flags of their own (batch_size is train's --batch-size)
RECIPE_FLAGS = tuple(name for name, f in OPTIONS.items() if f.metadata['flag'])


def flag(name):
    return '--' + name.replace('_', '-')


def flag_help(text):
    """An option's help line with the options it names ({lr}) as train's flags (--lr)."""
    return re.sub(r'\{(\w+)\}', lambda m: flag(m.group(1)), text)


def ops_type(values):
    """An argparse type for recipes.Ops: comma-separated ops, or 'none' ('')."""
    def ops(text):
        if text.strip() == 'none':
            return ''
        try:
            given = values.check('', text)
        except DCGANError:
            given = ()
        if not given:
            raise argparse.ArgumentTypeError(f'expected distinct ops of {",".join(values.ops)} '
                                             f'or none, got {text!r}')
        return ','.join(given)
    return ops


def flag_kwargs(values):
    """add_argument's type and more for an option's values (recipes.Bound or Ops)."""
    if isinstance(values, Ops):  # the flag alone: all of them
        return dict(type=ops_type(values), nargs='?', const=','.join(values.ops))
    if values.images:  # 0, the option's off, is its default
        return dict(type=image_count)
    return dict(type=number(values.kind, values.low, values.high, values.above,
                            also=(values.high,) if values.upto else ()))


def add_recipe_flags(group):
    """train's opt-in techniques (d2l_dcgan.recipes); a flag given overrides --recipe's value."""
    group.add_argument('--recipe', choices=tuple(RECIPES), default='book',
                       help='book: the chapter\'s; improved: ' + RECIPES['improved'].describe())
    for name in RECIPE_FLAGS:
        meta = OPTIONS[name].metadata
        if isinstance(meta['values'], Switch):
            # two flags, not argparse.BooleanOptionalAction, which Python 3.8 lacks
            group.add_argument(flag(name), action='store_const', const=True, help=flag_help(meta['help']))
            group.add_argument(flag('no_' + name), dest=name, action='store_const',
                               const=False, help=f'not {flag(name)}, whatever --recipe says')
        else:
            group.add_argument(flag(name), dest=name, metavar=meta['metavar'],
                               help=flag_help(meta['help']), **flag_kwargs(meta['values']))


def recipe_defaults(args, given):
    """What --recipe sets unless given: its batch size, and its nets' rates, which a --lr given
    replaces for both (--lr-D and --lr-G given still set their net's)."""
    recipe = RECIPES[args.recipe]
    if recipe.batch_size and 'batch_size' not in given:
        args.batch_size = recipe.batch_size
    if 'lr' in given:
        for key in ('lr_D', 'lr_G'):
            if getattr(recipe, key) is not None and getattr(args, key) is None:
                setattr(args, key, args.lr)


def given_off(name, value):
    """True if `value`, given for option `name`, is its default: off."""
    return value is not None and OPTIONS[name].metadata['values'].check(name, value) == \
        OPTIONS[name].default


def train_recipe(args):
    """The recipes.Recipe of --recipe with the flags given on top. An option that needs another
    one given off is off too, unless given: no average or augmentation, none of --recipe's
    ramps. A recipe's own batch size is train's --batch-size (what ran)."""
    recipe = RECIPES[args.recipe]
    values = {name: getattr(args, name) for name in RECIPE_FLAGS}
    for name in RECIPE_FLAGS:
        needs = OPTIONS[name].metadata['needs']
        if needs and values[name] is None and given_off(needs[0], values.get(needs[0])):
            values[name] = OPTIONS[name].default
    own = {name: getattr(args, name) if getattr(recipe, name) else None
           for name in OPTIONS if name not in RECIPE_FLAGS}
    return recipe.override(**values, **own)
