"""d2l_dcgan.compat: MXNet 1.9.1 on the NumPy and Python of today, and nothing changed on the
stack it was released for."""
import math
import subprocess
import sys
import types

import mxnet as mx
import numpy
import pytest
from mxnet import gluon, np, npx

import d2l_dcgan
from d2l_dcgan import compat
from timeouts import limit

PINNED = sys.version_info < (3, 12) and numpy.lib.NumpyVersion(numpy.__version__) < '1.24.0'


@pytest.mark.skipif(not PINNED, reason='on the pinned stack only (Python 3.8-3.11, numpy < 1.24)')
def test_the_pinned_stack_is_left_as_it_is():
    assert d2l_dcgan._COMPAT == [] and compat.missing_names() == []
    assert not compat.numpy_scalar_repr_is_typed() and not compat.needed()
    from mxnet.ndarray import register
    assert not hasattr(register._imperative_invoke, '__wrapped__')  # MXNet's own, unwrapped
    assert numpy.float is float and numpy.bool is bool  # NumPy's own aliases, deprecated there


@pytest.mark.skipif(PINNED, reason='on numpy >= 1.24 or Python >= 3.12 only')
def test_what_this_numpy_lacked_was_put_back():
    assert d2l_dcgan._COMPAT, 'compat.apply() added nothing, yet this is not the pinned stack'
    assert compat.missing_names() == []


def test_every_name_is_what_numpy_had():
    bare = types.ModuleType('numpy_without_them')
    assert compat.missing_names(bare) == sorted(compat.removed_names())
    old = compat.removed_names()
    assert (old['int'], old['float'], old['bool'], old['object']) == (int, float, bool, object)
    assert math.copysign(1, old['NZERO']) == -1 and old['NINF'] == -math.inf
    assert math.isnan(old['NaN']) and old['PINF'] == old['Inf'] == math.inf
    a = numpy.array([[3, 1], [2, 0]])
    assert old['alltrue'](a) == numpy.all(a) and old['sometrue'](a) == numpy.any(a)
    assert old['product'](a) == 0 and old['round_'](2.5) == 2.0
    assert old['msort'](a).tolist() == [[2, 0], [3, 1]]
    assert old['in1d'](a, [1, 2]).tolist() == [False, True, True, False]
    if hasattr(numpy, 'trapezoid'):  # NumPy 2.0's name for it; only 2.4+, which has it, lacks trapz
        assert old['trapz']([1, 2, 3]) == 4.0
    assert old['compat'].basestring is str
    with pytest.raises(RuntimeError, match='npv was removed from NumPy version 1.20'):
        old['npv'](0.1, [1, 2])


def test_numpy_scalars_in_lists_reach_mxnet_as_numbers():
    assert compat.plain([numpy.int64(3), (numpy.float32(0.5), 2)]) == [3, (0.5, 2)]
    assert type(compat.plain([numpy.int64(3)])[0]) is int
    x = np.arange(24).reshape(6, 4)
    assert x.reshape((numpy.int64(4), numpy.int64(6))).shape == (4, 6)  # an imperative call
    # gluon.utils.split_and_load splits at numpy.int64 indices (the two-device case)
    parts = gluon.utils.split_and_load(x, [mx.cpu(0), mx.cpu(1)])
    assert [p.shape for p in parts] == [(3, 4), (3, 4)]
    assert parts[1][0].tolist() == [12, 13, 14, 15]


def test_a_hybridized_graph_takes_numpy_scalar_parameters():
    class Reshape(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.np.reshape(x, (numpy.int64(2), numpy.int64(-1)))  # a graph node's params

    net = Reshape()
    net.hybridize()
    assert net(np.arange(6)).shape == (2, 3)
    assert net(np.arange(6)).shape == (2, 3)  # the cached graph, run twice


def test_importing_mxnet_first_warns_where_it_matters():
    """After a failed `import mxnet` on a current stack, `import d2l_dcgan` says to import it
    first; on the pinned stack MXNet imports fine and only the thread count can be a reason."""
    code = ('import warnings; warnings.simplefilter("always")\n'
            'try:\n    import mxnet\nexcept Exception as e:\n'
            '    print("mxnet failed:", type(e).__name__)\n'
            'import d2l_dcgan\nfrom mxnet import np\nprint("sum", int(np.arange(4).sum()))\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                       timeout=limit(120),
                       env={'PATH': '/usr/bin:/bin', 'MXNET_OMP_MAX_THREADS': '1'})
    assert r.returncode == 0, r.stderr
    assert 'sum 6' in r.stdout
    if PINNED:
        assert 'mxnet failed' not in r.stdout and 'import d2l_dcgan first' not in r.stderr
    else:
        assert 'mxnet failed' in r.stdout
        assert 'import d2l_dcgan first' in r.stderr, r.stderr
