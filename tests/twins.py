"""Nets with identical weights, for comparing two ways of computing the same thing."""
from mxnet import init


def copy_params(src, dst):
    for ps, pd in zip(src.collect_params().values(), dst.collect_params().values()):
        assert ps.shape == pd.shape
        pd.set_data(ps.data())


def twins(make, x, ctx=None):
    """Two nets built by `make`, initialised alike by running `x` through them, same weights."""
    a, b = make(), make()
    for net in (a, b):
        net.initialize(init.Normal(0.02), ctx=ctx)
        net(x)  # finish deferred initialisation
    copy_params(a, b)
    return a, b
