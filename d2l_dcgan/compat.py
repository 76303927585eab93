"""MXNet 1.9.1 on the NumPy and Python releases that came after it.

MXNet is retired: its Python package reads names that NumPy has since removed (apache/mxnet#21165)
and `distutils`, which Python 3.12 removed. `apply()` puts back only what is missing, before
MXNet loads; on the stack MXNet was released for (Python 3.8-3.11, NumPy < 1.24) it changes
nothing. Every value is what the removed name was."""
import platform
import types
import warnings

import numpy

from .cpu import mxnet_loaded


def _removed_in_1_20(name):
    def expired(*args, **kwargs):  # what NumPy 1.20-1.26 left under these names
        raise RuntimeError(f'the function {name} was removed from NumPy version 1.20 (NEP 32); '
                           'use the numpy_financial library')
    expired.__name__ = name
    return expired


def _renamed(old, new):
    """A function named `old` that calls numpy.`new` (not `new` itself: MXNet registers its
    operators for NumPy's dispatch by function object, and `new` has its own)."""
    def call(*args, **kwargs):
        return getattr(numpy, new)(*args, **kwargs)
    call.__name__ = old
    return call


def _in1d(ar1, ar2, assume_unique=False, invert=False):
    return numpy.isin(ar1, ar2, assume_unique=assume_unique, invert=invert).ravel()


def _msort(a):
    return numpy.sort(a, axis=0)


def removed_names():
    """{name: value} of what MXNet 1.9.1's Python package reads from NumPy, as it was."""
    names = {
        # removed in NumPy 1.24 (NumPy 2.0 brought back `bool`, as numpy.bool_)
        'bool': bool, 'int': int, 'float': float, 'complex': complex, 'object': object,
        'str': str,
        # removed in NumPy 2.0
        'PZERO': 0.0, 'NZERO': -0.0, 'PINF': float('inf'), 'NINF': float('-inf'),
        'Inf': float('inf'), 'NaN': float('nan'), 'NAN': float('nan'),
        'alltrue': _renamed('alltrue', 'all'), 'sometrue': _renamed('sometrue', 'any'),
        'product': _renamed('product', 'prod'), 'round_': _renamed('round_', 'round'),
        'msort': _msort,
        'compat': types.SimpleNamespace(basestring=str),  # mx.np.pad reads compat.basestring
        # removed in NumPy 2.4
        'in1d': _in1d, 'trapz': _renamed('trapz', 'trapezoid'),
    }
    # removed in NumPy 1.20 (1.20-1.26 kept names that raise)
    names.update((n, _removed_in_1_20(n)) for n in ('mirr', 'npv', 'pmt', 'ppmt', 'pv', 'rate'))
    return names


def missing_names(module=numpy):
    """The names of removed_names() that `module` lacks."""
    with warnings.catch_warnings():  # NumPy 1.24-2.x warn on a look-up of np.object, np.str
        warnings.simplefilter('ignore')
        return sorted(n for n in removed_names() if not hasattr(module, n))


def needed():
    """Whether this NumPy or Python lacks something MXNet 1.9.1 reads."""
    return bool(missing_names()) or _distutils_missing() or numpy_scalar_repr_is_typed()


def _distutils_missing():
    try:
        import distutils.version  # noqa: F401  mxnet/numpy_op_fallback.py; gone in Python 3.12
    except ImportError:
        return True
    return False


def numpy_scalar_repr_is_typed():
    """NumPy 2 prints scalars as np.int64(17) (NEP 51), in lists too."""
    return repr([numpy.int64(1)]) != '[1]'


def plain(value):
    """An operator parameter as MXNet 1.9.1 expects it: NumPy scalars in a list or tuple as
    Python numbers, since MXNet passes str(value) to C and NumPy 2's repr adds the type."""
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value.item() if isinstance(value, numpy.generic) else value


def _plain_params(invoke, index):
    """`invoke` with its argument `index` (the parameter values) passed through plain()."""
    def wrapped(*args, **kwargs):
        args = list(args)
        args[index] = [plain(v) for v in args[index]]
        return invoke(*args, **kwargs)
    wrapped.__wrapped__ = invoke
    return wrapped


def patch_mxnet_params():
    """Make the two ways MXNet passes operator parameters to C (imperative calls, graph nodes)
    see NumPy scalars in lists as plain numbers. After `import mxnet`; once is enough."""
    # here, not at the top: this module loads before MXNet, which apply() must patch first
    from mxnet.ndarray import register as nd_register, _internal as nd_internal
    from mxnet.symbol import register as sym_register, _internal as sym_internal
    if hasattr(nd_register._imperative_invoke, '__wrapped__'):
        return
    # the generated operator functions look these up in their register module's globals
    invoke = _plain_params(nd_register._imperative_invoke, 3)  # (handle, ndargs, keys, vals..)
    create = _plain_params(sym_register._symbol_creator, 4)  # (handle, args, kwargs, keys, vals..)
    nd_register._imperative_invoke = nd_internal._imperative_invoke = invoke
    sym_register._symbol_creator = sym_internal._symbol_creator = create


def apply(modules=None):
    """Put back what MXNet 1.9.1 reads and this NumPy or Python lacks. Before `import mxnet`
    (else warns: it failed already). Returns the names added to numpy (none on the pinned stack)."""
    if mxnet_loaded(modules) and needed():
        warnings.warn(
            f'mxnet was imported before d2l_dcgan: on NumPy {numpy.__version__} and Python '
            f'{platform.python_version()}, MXNet 1.9.1 fails to import unless d2l_dcgan has put '
            'back what they removed; import d2l_dcgan first', RuntimeWarning, stacklevel=3)
    added = missing_names()
    names = removed_names()
    for name in added:
        setattr(numpy, name, names[name])
    if _distutils_missing():
        import setuptools  # noqa: F401  installs its own copy as `distutils` (we require it there)
    return added
