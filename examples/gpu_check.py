"""A short self-check of d2l_dcgan on a GPU machine (after `make install EXTRA=cu112`).

    python examples/gpu_check.py                   # the device --device auto would take
    python examples/gpu_check.py --device gpu:1 --steps 50
    python examples/gpu_check.py --device cpu --steps 3

Prints MXNet's version and build features, where each CUDA 11 library came from, the GPUs the
driver shows with their compute capability and whether this MXNet build can run on them, then
runs a forward/backward pass of the chapter's full-size nets and times a few training steps on
the chosen device. The last line is the verdict, one of (the figures are what it measured):

    VERDICT: OK - gpu(0) <the GPU's name> sm_<NN>, <N> examples/sec
    VERDICT: CPU ONLY - <why not a GPU>; cpu(0) <N> examples/sec
    VERDICT: FAIL - <what went wrong>

Exit status 0 for OK and CPU ONLY, 1 for FAIL.
"""
import argparse
import importlib.util
import math
import os
import platform
import sys
import time

ENV_KEYS = ('MXNET_CUDNN_AUTOTUNE_DEFAULT', 'MXNET_CUDNN_LIB_CHECKING', 'CUDA_VISIBLE_DEVICES',
            'LD_LIBRARY_PATH')


def verdict(kind, text):
    print(f'VERDICT: {kind} - {text}')
    return 0 if kind in ('OK', 'CPU ONLY') else 1


def standalone_gpu_module():
    """d2l_dcgan/gpu.py loaded on its own (it imports nothing of the package at module level),
    to explain an `import d2l_dcgan` that failed."""
    spec = importlib.util.find_spec('d2l_dcgan')
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, 'gpu.py')
        if os.path.isfile(path):
            module_spec = importlib.util.spec_from_file_location('d2l_dcgan_gpu_check', path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module
    return None


def parser():
    """The package's parser when it imports, else argparse's: an import that fails is what
    this script is there to explain."""
    try:  # here, not at the top: an import that fails is what this script explains
        from d2l_dcgan.flags import Parser, device_spec, doc_and_examples, number
    except ImportError:
        p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_flags(p, str, lambda kind, low: kind)
        return p
    description, epilog = doc_and_examples(__doc__)
    p = Parser(prog='gpu_check.py', description=description, epilog=epilog)
    add_flags(p, device_spec, number)
    return p


def add_flags(p, device_spec, number):
    p.add_argument('--device', type=device_spec, default='auto',
                   help='auto, cpu, cpu:N, gpu or gpu:N')
    p.add_argument('--steps', type=number(int, 1), default=20,
                   help='timed training steps (D and G)')
    p.add_argument('--warmup', type=number(int, 0), default=3, help='untimed steps first')
    p.add_argument('--batch-size', type=number(int, 1), default=64, help='images per step')


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:  # argparse's, without d2l_dcgan
        p.error('--steps and --batch-size must be positive, --warmup non-negative')
    start = time.perf_counter()
    print(f'Python {platform.python_version()} on {platform.platform()}')

    # 1. the package, which (d2l_dcgan/__init__.py) preloads the CUDA libraries, then MXNet
    try:  # here, not at the top: an import that fails is what this script explains
        import d2l_dcgan
        from d2l_dcgan import gpu
    except ImportError as e:
        print(f'import d2l_dcgan failed: {e}')
        fallback = standalone_gpu_module()
        if fallback is not None:
            report = fallback.preload_cuda_libraries()
            print(report.summary())
            if report.hint():
                return verdict('FAIL', f'cannot import MXNet: {report.hint()}')
        return verdict('FAIL', f'cannot import d2l_dcgan: {e}')
    # only once d2l_dcgan imported, which loads the CUDA libraries before MXNet
    import mxnet as mx
    from mxnet import autograd, gluon, np
    report = d2l_dcgan._CUDA  # what `import d2l_dcgan` loaded, and the defaults it set
    build = gpu.CUDA_BUILD if gpu.is_cuda_build() else f'not {gpu.CUDA_BUILD}: a CPU build'
    features = mx.runtime.Features()
    enabled = {k: features.is_enabled(k) for k in ('CUDA', 'CUDNN', 'NCCL', 'CUDA_RTC')}
    print(f'MXNet {mx.__version__} ({build}) from {os.path.dirname(mx.__file__)}')
    print('  features: ' + ', '.join(f'{k}={"yes" if v else "no"}' for k, v in enabled.items()))
    print(report.summary())
    print('  environment: ' + ', '.join(f'{k}={os.environ.get(k, "(unset)")}' for k in ENV_KEYS))

    # 2. the GPUs and whether this build can run on them
    if enabled['CUDA']:
        print(f'Kernels of {gpu.BUILD_LABEL}: '
              f'{", ".join(f"sm_{a}" for a in gpu.MXNET_CU112_ARCHS)}; no PTX')
    gpus = gpu.list_gpus()
    try:
        num_gpus = mx.context.num_gpus() if enabled['CUDA'] else 0
    except mx.base.MXNetError as e:
        num_gpus = 0
        print(f'MXNet cannot count the GPUs: {gpu.first_line(e)}')
    print(f'GPUs: the driver shows {len(gpus)}, MXNet sees {num_gpus}')
    for g in gpus:
        can = ('not checked' if not enabled['CUDA'] else
               'can run this build' if gpu.can_run(g.capability) else 'CANNOT run this build')
        print(f'  gpu({g.index}): {g.name}, sm_{g.capability[0]}{g.capability[1]}: {can}')

    # 3. the device (a GPU also runs a tiny forward/backward pass first: gpu.probe)
    try:
        ctx, why = gpu.select_device(args.device)
    except d2l_dcgan.DCGANError as e:
        from d2l_dcgan.flags import error_message  # here: the top runs without d2l_dcgan
        return verdict('FAIL', error_message(p, e))
    print(f'device: {ctx} ({why})')
    label = str(ctx)
    if ctx.device_type == 'gpu':
        info = gpu.gpu_capability(ctx.device_id)
        if info:
            label += f' {info.name} sm_{info.capability[0]}{info.capability[1]}'

    # 4. forward and backward of the chapter's full-size nets, then timed training steps
    try:
        net_G, net_D = d2l_dcgan.generator(), d2l_dcgan.discriminator()
        d2l_dcgan.init_nets(net_D, net_G, ctx)
        net_G.hybridize(static_alloc=True, static_shape=True)
        net_D.hybridize(static_alloc=True, static_shape=True)
        mx.random.seed(0, ctx='all')
        n, latent = args.batch_size, 100
        Z = np.random.normal(0, 1, size=(n, latent, 1, 1), ctx=ctx)
        X = np.random.uniform(-1, 1, size=(n, 3, 64, 64), ctx=ctx)
        t = time.perf_counter()
        with autograd.record():
            fake = net_G(Z)
            score = net_D(fake)
        score.backward()
        grad = sum(float(np.abs(p.grad(ctx)).sum()) for p in net_G.collect_params().values()
                   if p.grad_req != 'null')
        if fake.shape != (n, 3, 64, 64) or score.shape != (n, 1, 1, 1):
            return verdict('FAIL', f'wrong shapes: G {fake.shape}, D {score.shape}')
        if not math.isfinite(grad) or grad == 0:
            return verdict('FAIL', f'generator gradients are {grad}')
        print(f'forward/backward: G {fake.shape} -> D {score.shape}, |grad G| {grad:.4g} '
              f'({time.perf_counter() - t:.2f} s, first call included)')

        loss = gluon.loss.SigmoidBCELoss()
        hp = {'learning_rate': 0.005, 'beta1': 0.5}
        trainer_D = gluon.Trainer(net_D.collect_params(), 'adam', hp)
        trainer_G = gluon.Trainer(net_G.collect_params(), 'adam', hp)

        def step():
            d = d2l_dcgan.update_D(X, Z, net_D, net_G, loss, trainer_D)
            g = d2l_dcgan.update_G(Z, net_D, net_G, loss, trainer_G)
            return d, g

        for _ in range(args.warmup):
            step()
        mx.nd.waitall()
        t = time.perf_counter()
        for _ in range(args.steps):
            loss_D, loss_G = step()
        mx.nd.waitall()
        elapsed = time.perf_counter() - t
        loss_D, loss_G = float(loss_D) / n, float(loss_G) / n
    except mx.base.MXNetError as e:
        return verdict('FAIL', f'{label}: {gpu.first_line(e)}')
    if not (math.isfinite(loss_D) and math.isfinite(loss_G)):
        return verdict('FAIL', f'{label}: losses are not finite (loss_D {loss_D}, loss_G {loss_G})')
    speed = args.steps * n / elapsed
    print(f'training: {args.warmup} warm-up + {args.steps} timed steps of batch {n} in '
          f'{elapsed:.2f} s; loss_D {loss_D:.3f}, loss_G {loss_G:.3f}')
    print(f'check took {time.perf_counter() - start:.1f} s')
    if ctx.device_type == 'gpu':
        return verdict('OK', f'{label}, {speed:.1f} examples/sec')
    why = f'--device {args.device}' if why == 'asked for' else why
    return verdict('CPU ONLY', f'{why}; {label} {speed:.1f} examples/sec')


if __name__ == '__main__':
    sys.exit(main())
