"""The command line, run as a user runs it: examples/train_pokemon.py and `python -m d2l_dcgan`.

Every process imports MXNet and d2l (about 3 s of CPU), so the processes a group of tests needs
are started together by a module fixture, a few at a time; and most argument checks, which are
the same code in-process, run in-process, with capfd seeing stderr at the file-descriptor level."""
import json
import math
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as onp
import pytest
from PIL import Image

from d2l import mxnet as d2l
from d2l_dcgan import ArgumentError, DCGANError, cli
from d2l_dcgan.commands.train import train_parser
from d2l_dcgan.flags import run_command
from d2l_dcgan.data import POKEMON_SHA1
from mxnet import context
from timeouts import limit

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = [sys.executable, 'examples/train_pokemon.py']
GENERATE = [sys.executable, '-m', 'd2l_dcgan', 'generate']
TINY = ['--n-G', '8', '--n-D', '8', '--batch-size', '16', '--no-progress', '--device', 'cpu']
FINAL_LINE = re.compile(
    r'loss_D \d+\.\d{3}, loss_G \d+\.\d{3}, \d+\.\d examples/sec on cpu\(0\)')
ENV = {**os.environ, 'PYTHONPATH': os.pathsep.join(
    [REPO_ROOT] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else []))}
WORKERS = max(2, min(4, os.cpu_count() or 2))
NUM_GPUS = context.num_gpus()


def run(cmd):
    return subprocess.run([str(c) for c in cmd], cwd=REPO_ROOT, env=ENV, capture_output=True,
                          text=True, timeout=limit(300))


def run_all(cmds):
    """{name: CompletedProcess} of {name: command}, run concurrently."""
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {name: pool.submit(run, cmd) for name, cmd in cmds.items()}
        return {name: f.result() for name, f in futures.items()}


def train_cmd(tmp, name, *args):
    return TRAIN + ['--cache-dir', tmp / name / 'cache', '--out-dir', tmp / name / 'out',
                    *TINY, *args]


def sprites_run(tmp, name, seed, epochs=2):
    return train_cmd(tmp, name, '--dataset', 'sprites', '--num-sprites', '32',
                     '--num-epochs', str(epochs), '--seed', str(seed))


# -------------------------------------------------------------------------------- training

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Three 2-epoch runs on 32 sprites: seed 0 twice and seed 1; {name: (result, out dir)}."""
    tmp = tmp_path_factory.mktemp('train')
    runs = {'seed 0': 0, 'seed 0 again': 0, 'seed 1': 1}
    results = run_all({name: sprites_run(tmp, name, seed) for name, seed in runs.items()})
    return {name: (r, tmp / name / 'out') for name, r in results.items()}


def metrics(out):
    with open(out / 'metrics.json') as f:
        return json.load(f)


def test_train_on_sprites_end_to_end(trained):
    r, out = trained['seed 0']
    assert r.returncode == 0, r.stderr
    assert r.stderr == '', r.stderr
    for f in ('dcgan.png', 'samples/epoch_001.png', 'samples/epoch_002.png', 'net_G.params',
              'net_D.params', 'metrics.json'):
        assert (out / f).is_file(), f
    assert sorted(os.listdir(out / 'samples')) == ['epoch_001.png', 'epoch_002.png']
    assert not [f for f in os.listdir(out) if '.tmp-' in f]  # atomic writes left no temp file
    with Image.open(out / 'samples' / 'epoch_002.png') as img:
        assert img.size == (8 * 64, 8 * 64)  # 64 samples, 8 per row

    m = metrics(out)
    assert m['device'] == 'cpu(0)'
    assert m['num_images'] == 32 and m['skipped_images'] == []
    settings = m['settings']
    assert (settings['seed'], settings['lr'], settings['batch_size'], settings['num_epochs'],
            settings['latent_dim'], settings['n_G'], settings['n_D']) == (0, 0.005, 16, 2, 100,
                                                                          8, 8)
    assert [e['epoch'] for e in m['epochs']] == [1, 2]
    for e in m['epochs']:
        assert set(e) == {'epoch', 'loss_D', 'loss_G', 'examples_per_sec', 'swd', 'swd_levels'}
        for key in ('loss_D', 'loss_G', 'examples_per_sec', 'swd'):
            assert isinstance(e[key], float) and math.isfinite(e[key]) and e[key] > 0, (key, e)
        assert len(e['swd_levels']) == 3  # 64, 32, 16
    assert sorted(os.listdir(out / 'checkpoints')) == ['ckpt-e0001-s000002', 'ckpt-e0002-s000002']

    last = m['epochs'][-1]
    assert FINAL_LINE.search(r.stdout), r.stdout
    assert f'loss_D {last["loss_D"]:.3f}, loss_G {last["loss_G"]:.3f}' in r.stdout


def test_generate_from_trained_params(trained, tmp_path):
    _, out = trained['seed 0']
    grids = {name: tmp_path / f'{name}.png' for name in ('a', 'b')}
    results = run_all({name: GENERATE + ['--params', out / 'net_G.params', '--num-samples', '16',
                                         '--seed', '0', '--device', 'cpu', '--out', path]
                       for name, path in grids.items()})
    images = {}
    for name, path in grids.items():
        r = results[name]
        assert r.returncode == 0, r.stderr
        assert r.stderr == '', r.stderr
        assert f'wrote 16 images to {path}' in r.stdout
        with Image.open(path) as img:
            assert img.format == 'PNG'
            assert img.size == (8 * 64, 2 * 64)  # 16 images, 8 columns
            images[name] = onp.asarray(img)
    onp.testing.assert_array_equal(images['a'], images['b'])


def test_generate_seed_picks_the_noise(random_G, tmp_path):
    images = []
    for seed in (0, 1, 0):
        path = tmp_path / f'{len(images)}.png'
        assert cli.generate_main(['--params', str(random_G), '--num-samples', '10', '--ncols', '5',
                                  '--seed', str(seed), '--device', 'cpu',
                                  '--out', str(path)]) == 0
        with Image.open(path) as img:
            assert img.size == (5 * 64, 2 * 64)
            images.append(onp.asarray(img))
    onp.testing.assert_array_equal(images[0], images[2])
    assert not onp.array_equal(images[0], images[1])


def test_training_is_reproducible_with_a_seed(trained):
    def losses(name):
        r, out = trained[name]
        assert r.returncode == 0, r.stderr
        return [(e['loss_D'], e['loss_G']) for e in metrics(out)['epochs']]

    assert losses('seed 0') == losses('seed 0 again')
    assert losses('seed 0') != losses('seed 1')


# ------------------------------------------------------------------ help and bad inputs

@pytest.fixture(scope='module')
def bad(tmp_path_factory):
    """Paths for the bad-input runs: an empty folder, a folder with a corrupt image, a file..."""
    from mxnet import np
    from d2l_dcgan import discriminator
    tmp = tmp_path_factory.mktemp('bad')
    (tmp / 'empty').mkdir()
    (tmp / 'corrupt' / 'c').mkdir(parents=True)
    Image.new('RGB', (64, 64), (255, 0, 0)).save(tmp / 'corrupt' / 'c' / 'good.png')
    (tmp / 'corrupt' / 'c' / 'bad.png').write_bytes(os.urandom(512))
    (tmp / 'a_file').write_text('not a folder')
    net_D = discriminator(8)
    net_D.initialize()
    net_D(np.zeros((1, 3, 64, 64)))
    net_D.save_parameters(str(tmp / 'net_D.params'))
    return tmp


def sprites_args(tmp, name):
    return train_cmd(tmp, name, '--dataset', 'sprites', '--num-sprites', '16',
                     '--num-epochs', '1')


# Run as real processes: name -> (command given the `bad` folder, text its stderr line must hold)
BAD_INPUTS = {
    'data-dir missing': (lambda t: train_cmd(t, 'r1', '--data-dir', t / 'missing'),
                         'does not exist'),
    'data-dir empty': (lambda t: train_cmd(t, 'r2', '--data-dir', t / 'empty'),
                       'no PNG/JPEG images'),
    'corrupt image': (lambda t: train_cmd(t, 'r3', '--data-dir', t / 'corrupt'),
                      'bad.png'),
    'device gpu': (lambda t: sprites_args(t, 'r4') + ['--device', 'gpu'], 'GPU'),
    'device foo': (lambda t: sprites_args(t, 'r5') + ['--device', 'foo'], '--device'),
    'lr nan': (lambda t: sprites_args(t, 'r6') + ['--lr', 'nan'], '--lr'),
    'out-dir is a file': (lambda t: sprites_args(t, 'r7') + ['--out-dir', t / 'a_file'],
                          '--out-dir'),
    'generate: params missing': (
        lambda t: GENERATE + ['--params', t / 'missing.params', '--out', t / 'g1.png'],
        'does not exist'),
    'generate: params of D': (
        lambda t: GENERATE + ['--params', t / 'net_D.params', '--out', t / 'g2.png'],
        'not a generator'),
}

# More argument checks, in-process: each would cost a process and its 3-second import, for the
# same parser code that 'lr nan' above runs in a real one. name -> (arguments, text of the line)
BAD_TRAIN_ARGS = {
    'num-epochs 0': (['--num-epochs', '0'], '--num-epochs'),
    'num-epochs -1': (['--num-epochs', '-1'], '--num-epochs'),
    'num-epochs 1.5': (['--num-epochs', '1.5'], '--num-epochs'),
    'budget 0': (['--budget', '0'], '--budget'),
    'budget 1.5': (['--budget', '1.5'], '--budget: must be a whole number of images'),
    'budget 2x': (['--budget', '2x'], '--budget: expected a number of images'),
    'budget and num-epochs': (['--budget', '1k'],  # sprites_args gives --num-epochs 1
                              '--budget: not allowed with argument --num-epochs'),
    'batch-size 0': (['--batch-size', '0'], '--batch-size'),
    'lr 0': (['--lr', '0'], '--lr'),
    'lr -0.1': (['--lr', '-0.1'], '--lr'),
    'lr inf': (['--lr', 'inf'], '--lr'),
    'latent-dim 0': (['--latent-dim', '0'], '--latent-dim'),
    'seed -1': (['--seed', '-1'], '--seed'),
    'seed 2**32': (['--seed', str(2**32)], '--seed'),
    'alpha -1': (['--alpha', '-1'], '--alpha'),
    'dataset mnist': (['--dataset', 'mnist'], '--dataset'),
}


@pytest.fixture(scope='module')
def quick_runs(bad):
    """Every bad-input process, and --help, started together."""
    cmds = {name: make(bad) for name, (make, _) in BAD_INPUTS.items()}
    cmds['train --help'] = TRAIN + ['--help']
    return run_all(cmds)


def test_train_help_lists_the_chapters_defaults(quick_runs):
    r = quick_runs['train --help']
    assert r.returncode == 0 and r.stderr == '', r.stderr
    text = ' '.join(r.stdout.split())
    for option, default in (('--batch-size', '256'), ('--lr', '0.005'), ('--num-epochs', '20'),
                            ('--latent-dim', '100'),
                            ('--cache-dir', os.environ['D2L_DCGAN_CACHE']),  # conftest's
                            ('--max-image-pixels', '89478485')):
        assert re.search(rf'{option} [A-Z_]+ (?:(?! --[a-z]).)*\(default: {re.escape(default)}\)',
                         text), option
    assert '(default: None)' not in text and '(default: True)' not in text


def test_generate_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(['generate', '--help'])
    assert e.value.code == 0
    out = ' '.join(capsys.readouterr().out.split())
    assert '--params FILE' in out
    assert re.search(r'--seed N [^-]*\(default: 0\)', out)


def assert_one_line_error(returncode, stdout, stderr, expected):
    """Exit 2 with one line on stderr holding `expected`, and no traceback."""
    assert returncode == 2, (stdout, stderr)
    assert 'Traceback' not in stdout + stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize('name', list(BAD_INPUTS))
def test_bad_input_is_one_line(quick_runs, name):
    if name == 'device gpu' and NUM_GPUS:
        pytest.skip('this MXNet sees a GPU')
    r = quick_runs[name]
    assert_one_line_error(r.returncode, r.stdout, r.stderr, BAD_INPUTS[name][1])


@pytest.mark.parametrize('name', list(BAD_TRAIN_ARGS))
def test_bad_train_argument_is_one_line(tmp_path, capfd, name):
    args, expected = BAD_TRAIN_ARGS[name]
    argv = sprites_args(tmp_path, 'run')[len(TRAIN):] + args
    with pytest.raises(SystemExit) as e:  # argparse exits
        cli.train_main([str(a) for a in argv], prog='train_pokemon.py')
    out, err = capfd.readouterr()
    assert_one_line_error(e.value.code, out, err, expected)
    assert err.startswith('train_pokemon.py: error: argument ' + expected)
    assert not (tmp_path / 'run').exists()  # rejected before anything was written


@pytest.mark.parametrize('args, expected', [
    (['--params', '{bad}/a_file'], 'not a generator'),  # not an MXNet file at all
    (['--params', '{bad}/net_D.params', '--num-samples', '0'], '--num-samples'),
    (['--params', '{bad}/net_D.params', '--seed', '-1'], '--seed'),
    (['--params', '{bad}/net_D.params', '--device', 'gpu:99'], 'GPU'),
    (['--out', 'x.png'], '--params'),  # required
], ids=['params not MXNet', 'num 0', 'seed -1', 'device gpu:99', 'no params'])
def test_bad_generate_argument_is_one_line(bad, tmp_path, capfd, args, expected):
    argv = [a.format(bad=bad) for a in args]
    if '--out' not in argv:
        argv += ['--out', str(tmp_path / 'g.png')]
    try:
        code = cli.generate_main(argv, prog='python -m d2l_dcgan generate')
    except SystemExit as e:  # argparse exits, the rest returns
        code = e.code
    out, err = capfd.readouterr()
    assert_one_line_error(code, out, err, expected)
    assert not (tmp_path / 'g.png').exists()


@pytest.mark.parametrize('argv, what', [([], 'no command given'),
                                        (['frobnicate'], "unknown command 'frobnicate'"),
                                        (['--version'], "unknown command '--version'")])
def test_no_command_is_one_line(capfd, argv, what):
    code = cli.main(argv)
    out, err = capfd.readouterr()
    assert_one_line_error(code, out, err, f'python -m d2l_dcgan: error: {what} (choose from '
                                          'train, generate, evaluate, crosscheck; see --help)')


def test_help_lists_the_commands(capfd):
    assert cli.main(['--help']) == 0
    out = capfd.readouterr().out
    for command in ('train', 'generate', 'evaluate', 'crosscheck'):
        assert re.search(rf'^  {command} +\w', out, re.M), out


def test_cache_dir_is_a_file(bad, tmp_path, capfd):
    argv = sprites_args(tmp_path, 'run')[len(TRAIN):] + ['--cache-dir', bad / 'a_file']
    code = cli.train_main([str(a) for a in argv])
    out, err = capfd.readouterr()
    assert_one_line_error(code, out, err, f'--cache-dir {bad / "a_file"} is a file')


def test_corrupt_image_is_named_by_its_path(quick_runs, bad):
    assert str(bad / 'corrupt' / 'c' / 'bad.png') in quick_runs['corrupt image'].stderr


def test_pokemon_unreachable(tmp_path, monkeypatch, capfd):
    """Without network: exit 2 and a message saying where to put pokemon.zip by hand."""
    monkeypatch.setitem(d2l.DATA_HUB, 'pokemon', ('http://127.0.0.1:9/pokemon.zip', POKEMON_SHA1))
    cache = tmp_path / 'cache'
    code = cli.train_main(['--dataset', 'pokemon', '--cache-dir', str(cache),
                           '--out-dir', str(tmp_path / 'out'), '--num-epochs', '1', *TINY])
    out, err = capfd.readouterr()
    assert_one_line_error(code, out, err, 'pokemon.zip')
    lines = err.splitlines()
    assert (': error: argument --cache-dir: could not download http://127.0.0.1:9/pokemon.zip'
            in lines[0])
    assert f'put pokemon.zip (SHA-1 {POKEMON_SHA1}) into {cache} by hand' in lines[0]
    assert 'or give an image folder as --data-dir (see --help)' in lines[0]
    assert os.listdir(cache) == ['pokemon.lock']  # and no .part file


def test_generate_out_is_a_folder(random_G, tmp_path, capfd):
    code = cli.generate_main(['--params', str(random_G), '--device', 'cpu',
                              '--out', str(tmp_path)])
    out, err = capfd.readouterr()
    assert_one_line_error(code, out, err, f'--out {tmp_path} is a folder')


def test_dcgan_error_is_the_one_line(capsys):
    """run_command turns a DCGANError into argparse's 'PROG: error: ...' and exit 2, an
    ArgumentError with its flag; other exceptions propagate."""
    def fails(error):
        raise error

    parser = train_parser('train')
    assert run_command(fails, DCGANError('the problem'), parser=parser) == 2
    assert capsys.readouterr().err == 'train: error: the problem (see --help)\n'
    out_dir = ArgumentError('cache_dir', 'x/data_dir/cache_dir is no cache_dir: give a data_dir',
                            also=['data_dir'])
    assert str(out_dir) == ('argument cache_dir: x/data_dir/cache_dir is no cache_dir: give a '
                            'data_dir')
    assert run_command(fails, out_dir, parser=parser) == 2
    assert capsys.readouterr().err == ('train: error: argument --cache-dir: x/data_dir/cache_dir '
                                       'is no --cache-dir: give a --data-dir (see --help)\n')
    with pytest.raises(ZeroDivisionError):
        run_command(lambda args: 1 / 0, None)


def test_the_default_data_cache_is_the_machines_and_is_printed(tmp_path):
    """Without --cache-dir, train draws its sprites into $D2L_DCGAN_CACHE and says where."""
    cache = tmp_path / 'machine-cache'
    r = subprocess.run(TRAIN + ['--out-dir', str(tmp_path / 'out'), *TINY, '--dataset', 'sprites',
                                '--num-sprites', '16', '--num-epochs', '1', '--swd-samples', '0',
                                '--seed', '0'],
                       cwd=REPO_ROOT, env={**ENV, 'D2L_DCGAN_CACHE': str(cache)},
                       capture_output=True, text=True, timeout=limit(300))
    assert r.returncode == 0, r.stderr
    assert f'data cache: {cache}\n' in r.stdout
    assert (cache / 'sprites-16').is_dir() and (cache / 'decoded').is_dir()
