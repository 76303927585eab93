"""examples/exercise_relu.py and examples/exercise_fashion_mnist.py end to end, on tiny budgets.

Both scripts run as a user runs them, concurrently (each process imports MXNet, ~3 s of CPU):
the ReLU exercise on 32 drawn sprites, the Fashion-MNIST one on a synthetic set of IDX files
(tests/test_fashion.py's silhouettes), since the real one cannot be downloaded offline."""
import json
import math
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from test_fashion import write_fake_fashion_mnist
from timeouts import limit

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, 'PYTHONPATH': os.pathsep.join(
    [REPO_ROOT] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else []))}
RELU = [sys.executable, 'examples/exercise_relu.py']
FASHION = [sys.executable, 'examples/exercise_fashion_mnist.py']
TINY = ['--n-G', '8', '--n-D', '8', '--device', 'cpu', '--seed', '3']


def run(cmd):
    return subprocess.run([str(c) for c in cmd], cwd=REPO_ROOT, env=ENV, capture_output=True,
                          text=True, timeout=limit(300))


def finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('exercises')
    data = tmp / 'fashion'
    write_fake_fashion_mnist(str(data), num_train=96, num_test=40, gz=False)
    cmds = {
        'relu': RELU + TINY + ['--num-sprites', '32', '--cache-dir', tmp / 'cache',
                               '--num-epochs', '2', '--batch-size', '16',
                               '--swd-samples', '12', '--out-dir', tmp / 'relu'],
        'fashion': FASHION + TINY + ['--data-dir', data, '--limit', '64', '--num-epochs', '1',
                                     '--batch-size', '16', '--classifier-epochs', '1',
                                     '--num-samples', '48', '--min-swd-images', '4',
                                     '--swd-samples', '16', '--out-dir', tmp / 'fashion-out'],
        'fashion_no_files': FASHION + TINY + ['--data-dir', tmp, '--out-dir', tmp / 'x'],
    }
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(run, cmd) for name, cmd in cmds.items()}
        return tmp, {name: f.result() for name, f in futures.items()}


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _png(path):
    with Image.open(path) as img:
        img.verify()
        return img.size


def test_help_documents_the_defaults():
    for cmd, expected in ((RELU, ['--swd-samples N', '(default: 256)',
                                  '(default 6; --full: 20)', '(default 512; --full: 1024)',
                                  '(default: sprites)']),
                          (FASHION, ['--limit N', '(default 4000; --full: all)',
                                     '(default 3; --full: 10)', '(default: 16)',
                                     '(default 1000; --full: 10000)'])):
        proc = run(cmd + ['--help'])  # parses before importing MXNet: fast
        out = _ok(proc)
        for text in expected + ['--data-dir', '--seed', '--device', '--out-dir', '--full',
                                '--num-epochs', '--batch-size', '--n-G', '--n-D']:
            assert text in ' '.join(out.split()), text


def test_relu_exercise_end_to_end(runs):
    tmp, procs = runs
    out = _ok(procs['relu'])
    assert re.search(r'epoch \|\s+leaky \(alpha 0\.2\)\s+\|\s+relu \(alpha 0\)', out)
    assert re.search(r'^\s+2 \|(\s+\d+\.\d+){3} \|(\s+\d+\.\d+){3}$', out, re.M), out
    finding = re.search(r'^finding: (.*)$', out, re.M).group(1)
    assert 'ended with the lower SWD' in finding
    with open(tmp / 'relu' / 'exercise_relu.json') as f:
        result = json.load(f)
    assert result['finding'] == finding
    assert set(result['variants']) == {'leaky', 'relu'}
    assert result['variants']['leaky']['alpha'] == 0.2 and result['variants']['relu']['alpha'] == 0
    assert result['swd']['samples'] == 12 and finite(result['swd']['real_vs_real'])
    finals = {}
    for name, variant in result['variants'].items():
        assert variant['diverged'] is None
        assert [e['epoch'] for e in variant['epochs']] == [1, 2]
        for e in variant['epochs']:
            for key in ('loss_D', 'loss_G', 'swd', 'examples_per_sec'):
                assert finite(e[key]) and e[key] >= 0, (name, key, e)
            assert len(e['swd_levels']) == 3 and all(map(finite, e['swd_levels']))
        finals[name] = variant['epochs'][-1]['swd']
    winner = min(finals, key=finals.get)
    assert finding.startswith(f'{winner} (alpha')  # computed from the numbers
    assert result['settings']['num_epochs'] == 2 and result['settings']['n_G'] == 8
    width, height = _png(tmp / 'relu' / 'exercise_relu.png')
    assert width > 800 and height > 600


def test_fashion_exercise_end_to_end(runs):
    tmp, procs = runs
    out = _ok(procs['fashion'])
    assert 'the DCGAN trains on the first 64' in out
    with open(tmp / 'fashion-out' / 'exercise_fashion_mnist.json') as f:
        result = json.load(f)
    rows = result['per_category']
    assert [r['rank'] for r in rows] == list(range(1, 11))
    assert sorted(r['category'] for r in rows) == sorted(result['categories'])
    assert sum(r['count'] for r in rows) == result['num_generated'] == 48
    assert math.isclose(sum(r['share'] for r in rows), 1.0)
    assert math.isclose(sum(r['real_share'] for r in rows), 1.0)
    for r in rows:
        for key in ('label', 'category', 'count', 'share', 'real_share', 'mean_confidence',
                    'swd', 'swd_levels', 'real_vs_real_swd', 'swd_excess', 'note', 'rank'):
            assert key in r, key
        if r['count']:
            assert 0.1 <= r['mean_confidence'] <= 1
        else:
            assert r['mean_confidence'] is None
        if r['count'] < 4:
            assert r['swd'] is None and 'fewer than 4' in r['note']
        else:
            assert finite(r['swd']) and len(r['swd_levels']) == 3
    judged = [r for r in rows if r['swd'] is not None]
    assert rows[:len(judged)] == judged  # categories with an SWD rank first
    key = result['ranked_by']
    assert [r[key] for r in judged] == sorted(r[key] for r in judged)
    clf = result['classifier']
    assert 0 <= clf['test_accuracy'] <= 1 and 0 <= clf['round_trip_accuracy'] <= 1
    assert len(clf['epochs']) == 1 and len(result['dcgan_epochs']) == 1
    assert all(finite(result['dcgan_epochs'][0][k]) for k in ('loss_D', 'loss_G'))
    assert finite(result['all_categories']['swd'])
    finding = re.search(r'^finding: (.*)$', out, re.M).group(1)
    assert finding == result['finding'] and 'The classifier reads' in finding
    # the table, best first
    table = re.findall(r'^\s+(\d+)  (\S+(?: boot)?)\s', out, re.M)
    assert [name for _, name in table] == [r['category'] for r in rows]
    for name in ('exercise_fashion_mnist.png', 'dcgan.png'):
        _png(tmp / 'fashion-out' / name)
    assert os.path.getsize(tmp / 'fashion-out' / 'net_G.params') > 0
    assert 'wrote ' in out and 'exercise_fashion_mnist.json' in out


def test_fashion_exercise_without_the_files_says_so_in_one_line(runs):
    _, procs = runs
    proc = procs['fashion_no_files']
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith('exercise_fashion_mnist.py: error: ')
    assert 'has no train-images-idx3-ubyte.gz' in lines[0]
    assert 'Traceback' not in proc.stderr


def load_example(name):
    """An example script as a module (its work happens under `if __name__ == '__main__'`)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(REPO_ROOT, 'examples', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fashion_judging_ranks_by_the_gap_above_the_real_floor():
    """Real trousers passed off as generated rank above noise passed off as bags; nothing else
    was generated, so the other categories come last with a note."""
    import argparse
    import numpy as onp
    from d2l_dcgan.fashion import FASHION_CLASSES, resize_images
    from test_fashion import fake_fashion_arrays
    ex = load_example('exercise_fashion_mnist')
    images, labels = fake_fashion_arrays(200, seed=5)  # 20 per category
    real64 = resize_images(images, 64)
    other, other_labels = fake_fashion_arrays(100, seed=6)
    trousers = resize_images(other[other_labels == 1][:8], 64)
    noise = onp.random.default_rng(0).integers(0, 256, (8, 64, 64, 1), dtype=onp.uint8)
    gen = onp.concatenate([trousers, noise])
    probs = onp.full((16, 10), 0.02)
    probs[:8, 1], probs[8:, 8] = 0.82, 0.82
    args = argparse.Namespace(seed=0, swd_samples=16, min_swd_images=4)
    rows, key = ex.judge_categories(gen, probs, real64, labels.astype(onp.int32), args)
    assert key == 'swd_excess'
    assert [r['category'] for r in rows[:2]] == ['trouser', 'bag']
    assert [r['rank'] for r in rows] == list(range(1, 11))
    trouser, bag = rows[0], rows[1]
    assert trouser['count'] == bag['count'] == 8 and trouser['swd_images'] == 8
    assert trouser['share'] == bag['share'] == 0.5 and trouser['real_share'] == 0.1
    assert math.isclose(trouser['mean_confidence'], 0.82)
    assert 0 < trouser['real_vs_real_swd'] and trouser['swd_excess'] < bag['swd_excess']
    for r in rows[2:]:
        assert r['count'] == 0 and r['swd'] is None and 'fewer than 4' in r['note']
    assert {r['category'] for r in rows} == set(FASHION_CLASSES)
    text = ex.finding(rows, key, {'test_accuracy': 0.9, 'round_trip_accuracy': 0.8})
    assert text.startswith('trouser (SWD ') and ') came out best and bag (SWD ' in text
    assert 'ranked by SWD above the real-vs-real floor' in text
    assert 'over-produced (over twice their real share): trouser 50.0%, bag 50.0%' in text
    assert 'so the resizing itself costs it accuracy' in text


def test_relu_finding_is_computed_from_the_numbers():
    ex = load_example('exercise_relu')

    def run(swds, loss_D, loss_G, alpha, diverged=None):
        return {'alpha': alpha, 'seed': 7, 'diverged': diverged,
                'epochs': [{'epoch': i + 1, 'swd': s, 'loss_D': d, 'loss_G': g}
                           for i, (s, d, g) in enumerate(zip(swds, loss_D, loss_G))]}
    results = {'leaky': run([300, 200, 150, 140], [0.9, 0.7, 0.6, 0.6], [2, 3, 2.5, 2.2], 0.2),
               'relu': run([300, 250, 240, 230], [0.5, 0.1, 0.05, 0.03], [3, 5, 6, 7.5], 0.0)}
    text = ex.finding(results, floor=12.0)
    assert text.startswith('leaky (alpha 0.2) ended with the lower SWD, 140.0 vs 230.0 for '
                           'relu (alpha 0)')
    assert 'over the last 2 epochs the mean SWD was 145.0 vs 235.0, the same order' in text
    assert 'both far above the real-vs-real SWD of 12.0' in text
    assert "relu: D's loss collapsed to 0.030 and G's loss blew up to 7.50" in text
    assert "leaky: D's loss did not collapse (final 0.600)" in text and 'One seed (7)' in text
    results['relu'] = run([300, 120, 260, 130], [0.6] * 4, [2] * 4, 0.0)
    text = ex.finding(results, floor=None)
    assert text.startswith('relu (alpha 0) ended with the lower SWD, 130.0 vs 140.0')
    assert 'the other order, so at this budget neither is clearly better' in text
    results['relu'] = run([], [], [], 0.0, diverged='training diverged at epoch 1, step 10 '
                          '(loss_D nan, loss_G nan); no checkpoint was written; try a lower --lr')
    text = ex.finding(results, floor=None)
    assert text.startswith('only leaky (alpha 0.2) finished an epoch')
    assert 'relu diverged at epoch 1, step 10 (loss_D nan, loss_G nan).' in text
