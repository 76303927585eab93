"""The exception type the command line turns into a one-line message (one_line), its kind that
names the argument at fault, and the check of positive arguments that raises it."""
import math
import numbers


class DCGANError(Exception):
    """A problem with the user's input or environment, explained in one line."""
    arg = None  # the argument at fault, if one is (ArgumentError)


class ArgumentError(DCGANError):
    """A DCGANError about the argument `arg` of the function called, worded as argparse words
    its errors ('argument lr: ...'); `also`: other arguments the message names. The command
    line puts its flags in their places (flags.error_message): a notebook never sees a flag."""

    def __init__(self, arg, message, also=()):
        super().__init__(arg, message, also)
        self.arg, self.message, self.also = arg, message, tuple(also)

    def __str__(self):
        return f'argument {self.arg}: {self.message}'


def check_positive(kind=int, **values):
    """Raise ArgumentError unless each value is a positive, finite `kind` (int or float)."""
    for name, value in values.items():
        ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
              and math.isfinite(value) and value > 0
              and (kind is float or isinstance(value, numbers.Integral)))
        if not ok:
            noun = 'integer' if kind is int else 'number'
            raise ArgumentError(name, f'must be a positive {noun}, got {value!r}')


def one_line(text):
    """`text` with its control characters escaped (a file name may hold a newline), so a
    message stays on one line."""
    return ''.join(c.encode('unicode_escape').decode('ascii') if ord(c) < 32 or c == '\x7f'
                   else c for c in str(text))
