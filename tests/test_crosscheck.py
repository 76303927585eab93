"""`python -m d2l_dcgan crosscheck`: the book's code (nn.Block nets, d2l.update_D/update_G)
against this package's, from identical weights on the same batches and noise."""
import os
import re
import subprocess
import sys

import pytest

from d2l_dcgan import crosscheck
from d2l_dcgan.train import train_step
from timeouts import limit

pytestmark = pytest.mark.numerics  # see pytest.ini

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--n-G', '8', '--n-D', '8', '--batch-size', '16', '--device', 'cpu']
ROW = re.compile(r'^\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$', re.M)


def rows(out):
    return [(int(m[0]), *map(float, m[1:])) for m in ROW.findall(out)]


def test_the_command_agrees_on_the_sprites(sprites_root, tmp_path):
    """The real command, in its own process, as a reader runs it."""
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [REPO_ROOT] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else []))}
    r = subprocess.run([sys.executable, '-m', 'd2l_dcgan', 'crosscheck', '--dataset', 'sprites',
                        '--num-sprites', '32', '--cache-dir', str(tmp_path), *TINY],
                       cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=limit(300))
    assert r.returncode == 0, r.stdout + r.stderr
    table = rows(r.stdout)
    assert [row[0] for row in table] == [1, 2, 3, 4, 5]  # --steps defaults to 5
    for _, book_D, ours_D, book_G, ours_G, dw in table:
        assert ours_D == pytest.approx(book_D, rel=1e-4) and book_D > 0
        assert ours_G == pytest.approx(book_G, rel=1e-4) and book_G > 0
        assert dw <= crosscheck.weight_tolerance(0.005)
    assert 'OK: ' in r.stdout


def test_agrees_on_any_image_folder(image_folder, capsys):
    """6 random 96x120 images in 2 classes: one batch of 6, reshuffled every step."""
    assert crosscheck.crosscheck_main(['--data-dir', str(image_folder), '--steps', '3',
                                       *TINY]) == 0
    out = capsys.readouterr().out
    assert '3 steps of 6 images' in out
    assert len(rows(out)) == 3 and 'OK: ' in out


def test_a_changed_update_is_caught(sprites_root, monkeypatch, capsys):
    """Our generator's update with Adam's beta1 0.9 instead of the chapter's 0.5.

    Adam's first step does not depend on beta1 (its bias correction divides it out) up to
    rounding, so the first step that differs is the second."""
    def changed_step(X, Z, net_D, net_G, loss, trainer_D, trainer_G):
        trainer_G._optimizer.beta1 = 0.9
        return train_step(X, Z, net_D, net_G, loss, trainer_D, trainer_G)

    monkeypatch.setattr(crosscheck, 'train_step', changed_step)
    assert crosscheck.crosscheck_main(['--data-dir', sprites_root, '--steps', '3', *TINY]) == 1
    out = capsys.readouterr().out
    table = rows(out)
    assert len(table) == 3
    assert table[0][5] <= crosscheck.weight_tolerance(0.005)  # step 1: within rounding
    assert table[1][5] > 100 * crosscheck.weight_tolerance(0.005)  # step 2: far outside
    assert 'DIFFERENT: step 2 is the first that differs' in out


def test_weights_are_copied_by_order_and_compared():
    from mxnet import np
    from d2l_dcgan import discriminator, generator, init_nets
    from d2l_dcgan.book import chapter_nets
    book_D, book_G = chapter_nets(4, 4)
    ours_G, ours_D = generator(4), discriminator(4)
    for net_D, net_G in ((book_D, book_G), (ours_D, ours_G)):
        init_nets(net_D, net_G, None)
        net_D(net_G(np.zeros((1, 100, 1, 1))))
    assert crosscheck.max_difference((book_D, book_G), (ours_D, ours_G))[0] > 0
    crosscheck.copy_weights((book_D, book_G), (ours_D, ours_G))
    assert crosscheck.max_difference((book_D, book_G), (ours_D, ours_G))[0] == 0
    first = list(ours_G.collect_params().values())[0]
    first.set_data(first.data() + 1)
    dw, where = crosscheck.max_difference((book_D, book_G), (ours_D, ours_G))
    assert dw == pytest.approx(1) and where == first.name
    with pytest.raises(ValueError, match='against'):
        crosscheck.copy_weights((book_D, book_G), (ours_D, generator(8)))
