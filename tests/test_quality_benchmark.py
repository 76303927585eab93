"""benchmarks/quality.py, run small: each budget measured once, and a killed sweep continued
by the same command to the numbers of one that was not killed."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from d2l_dcgan import make_sprites
from d2l_dcgan.recipes import RECIPES
from test_recipes import ENV, REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, 'benchmarks'))
import quality  # noqa: E402  (benchmarks/ is not a package)
from timeouts import limit


@pytest.fixture(scope='module')
def sprites(tmp_path_factory):
    return make_sprites(str(tmp_path_factory.mktemp('data') / 'sprites'), num_images=96)


def sweep_cmd(sprites, tmp, recipes='book'):
    """96 images, budgets of 1/10,000 and 1/5,000 of the chapter's images: epochs 1 and 2."""
    return [sys.executable, 'benchmarks/quality.py', '--data-dir', sprites, '--recipes', recipes,
            '--seeds', '0', '--budgets', '1/10000,1/5000', '--width', '8', '--batch-size', '16',
            '--samples', '32', '--work-dir', str(tmp / 'runs'), '--cache-dir', str(tmp / 'cache'),
            '--out', str(tmp / 'quality.json')]


def sweep(cmd):
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=ENV, capture_output=True, text=True,
                          timeout=limit(600))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def points(tmp, key='book/0'):
    with open(tmp / 'quality.json') as f:
        return json.load(f)['runs'][key]['points']


def test_each_budget_is_measured_once_per_run(sprites, tmp_path):
    out = sweep(sweep_cmd(sprites, tmp_path, 'book,improved'))
    assert [l.split(':')[0] for l in out.splitlines() if ', SWD ' in l] == ['book/0'] * 2 + \
        ['improved/0'] * 2
    results = json.load(open(tmp_path / 'quality.json'))
    for key in ('book/0', 'improved/0'):
        assert [(p['epoch'], p['images']) for p in points(tmp_path, key)] == [(1, 96), (2, 192)]
    assert [p['averaged'] for p in points(tmp_path, 'improved/0')] == [True, True]
    assert all(p['swd_raw_G'] == p['swd'] for p in points(tmp_path, 'book/0'))
    assert all(p['swd_raw_G'] != p['swd'] for p in points(tmp_path, 'improved/0'))
    assert all(p['swd'] > results['real_vs_real'] > 0 for p in points(tmp_path))
    table = {(r['recipe'], r['epoch']): r for r in results['table']}
    assert table['book', 2]['ratio_to_book'] == 1 and table['improved', 2]['ratio_to_book'] > 0
    samples = sorted(os.listdir(tmp_path / 'quality_samples'))
    assert samples == [f'{k}-seed0-epoch00{e}.jpg' for k in ('book', 'improved') for e in (1, 2)]
    assert Image.open(tmp_path / 'quality_samples' / samples[0]).size == (256, 256)  # 20 kB
    again = sweep(sweep_cmd(sprites, tmp_path, 'book,improved') + [
        '--figure', str(tmp_path / 'curve.png'), '--grids', str(tmp_path / 'grids.png')])
    assert ', SWD ' not in again and 'continuing' not in again  # nothing trained again
    assert (tmp_path / 'curve.png').stat().st_size and (tmp_path / 'grids.png').stat().st_size
    last = list(quality.RECIPES)[-1]  # the 11th candidate; matplotlib's tab10 has 10 colours
    results['runs']['improved/0']['recipe'] = last
    results['table'] = quality.table(results)
    quality.draw_curves(results, str(tmp_path / 'all.png'), list(quality.RECIPES))
    assert len(quality.RECIPES) > 10 and (tmp_path / 'all.png').stat().st_size
    sweep([sys.executable, 'benchmarks/quality.py', '--out', str(tmp_path / 'quality.json'),
           '--recipes', 'book', '--grids', str(tmp_path / 'book.png')])  # drawn from --out alone
    widths = [Image.open(tmp_path / f).size[0] for f in ('grids.png', 'book.png')]
    assert widths[1] * 2 == widths[0]  # one column of samples, not two


def test_a_killed_sweep_continues_to_the_numbers_of_one_not_killed(sprites, tmp_path):
    straight, killed = tmp_path / 'straight', tmp_path / 'killed'
    sweep(sweep_cmd(sprites, straight))
    proc = subprocess.Popen(sweep_cmd(sprites, killed), cwd=REPO_ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + limit(300)
    while not (killed / 'quality.json').exists():  # the first budget is measured
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its `train`, wherever they are
    proc.wait()
    assert [p['epoch'] for p in points(killed)] in ([1], [1, 2])
    out = sweep(sweep_cmd(sprites, killed))
    measured = [l for l in out.splitlines() if ', SWD ' in l]
    if len(points(killed)) == 2 and not measured:
        pytest.skip('the kill came after the whole sweep; nothing was left to continue')
    assert len(measured) == 1 and measured[0].startswith('book/0: 192 images'), out
    assert 'book/0: continuing' in out and 'from epoch 1 to 2' in out
    keys = ('epoch', 'images', 'swd', 'swd_levels', 'loss_D', 'loss_G')
    assert [{k: p[k] for k in keys} for p in points(killed)] == \
        [{k: p[k] for k in keys} for p in points(straight)]


def test_the_candidate_the_widths_64_sweep_measured_is_the_improved_recipe():
    """docs/quality.md's curve of lr0.0005+avg0.02+batch64+aug200k is --recipe improved's."""
    chosen = 'lr0.0005+avg0.02+batch64+aug200k'
    assert quality.recipe_of(chosen) == RECIPES['improved']
    assert quality.recipe_of('improved') == RECIPES['improved']
    assert quality.label(chosen) == f'{chosen} (= --recipe improved)'
    assert quality.label('lr0.0005+avg0.02+batch64') == 'lr0.0005+avg0.02+batch64'  # no augment
    assert quality.recipe_of('lr0.0005+avg0.02') != RECIPES['improved']  # its batch: 256
    assert quality.label('decay50k+avg0.02') == 'decay50k+avg0.02'
    assert quality.own_batch_size('improved') and not quality.own_batch_size('lr0.0005+avg0.02')
    assert quality.label('book') == '--recipe book'
