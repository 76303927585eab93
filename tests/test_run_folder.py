"""A run folder is always whole: kill -9 at any write of a run, then --resume (or, before the run
recorded its settings, the same command again), and the folder is what an uninterrupted run
leaves."""
import json
import os
import re
import subprocess
import sys

import pytest

from d2l_dcgan.fileio import is_temporary
from test_cli import ENV, REPO_ROOT, run_all
from timeouts import limit

FLAGS = ['--dataset', 'sprites', '--num-sprites', '32', '--num-epochs', '2', '--n-G', '8',
         '--n-D', '8', '--batch-size', '16', '--no-progress', '--device', 'cpu',
         '--swd-samples', '16', '--seed', '0']
# Run the command line, killing the process (SIGKILL, as kill -9) just before its Nth rename
# into place: every file of a run is written to a temporary name and renamed (fileio,
# checkpoint), so "before rename N" is each instant between two of its files.
KILLER = """
import os, signal, sys
count, kill_at = [0], int(sys.argv[1])
rename = os.replace
def replace(src, dst, *args, **kwargs):
    count[0] += 1
    if count[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return rename(src, dst, *args, **kwargs)
os.replace = replace
from d2l_dcgan.cli import main
sys.exit(main(sys.argv[2:]))
"""
# the renames of a 2-epoch run of FLAGS, in order, its sprites drawn already: its settings
# recorded before it reads its data, then what it read, then each epoch
RENAMES = ['metrics.json', 'metrics.json', 'dcgan.png', 'epoch_001.png', 'net_G.params',
           'net_D.params', 'metrics.json', 'ckpt-e0001-s000002', 'dcgan.png', 'epoch_002.png',
           'net_G.params', 'net_D.params', 'metrics.json', 'ckpt-e0002-s000002']


def command(tmp, name, kill_at=None):
    args = ['train', *FLAGS, '--cache-dir', tmp / 'cache', '--out-dir', tmp / name]
    if kill_at is None:
        return [sys.executable, '-m', 'd2l_dcgan', *args]
    return [sys.executable, '-c', KILLER, str(kill_at), *args]


def folder(out):
    """What a reader of the run folder sees: the epochs' numbers, the files and their bytes
    (but for dcgan.png, whose PNG holds matplotlib's drawing, and the lock file)."""
    with open(out / 'metrics.json') as f:
        epochs = [{k: v for k, v in e.items() if k != 'examples_per_sec'}
                  for e in json.load(f)['epochs']]
    files = {}
    for root, dirs, names in os.walk(out):
        for name in dirs + names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, out)
            if os.path.isfile(path) and name not in ('dcgan.png', '.lock', 'metrics.json') \
                    and 'checkpoints' not in rel:
                with open(path, 'rb') as f:
                    files[rel] = f.read()
            else:
                files[rel] = None
    return epochs, files


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('whole')
    r = run_all({'run': command(tmp, 'run')})['run']
    assert r.returncode == 0, r.stderr
    return tmp, folder(tmp / 'run')


def test_the_renames_are_the_ones_counted(uninterrupted, tmp_path):
    """RENAMES (what the kill points below mean) is what a run does: killed after the last,
    the run is complete."""
    (tmp_path / 'cache').symlink_to(uninterrupted[0] / 'cache')
    r = run_all({'run': command(tmp_path, 'run', kill_at=len(RENAMES) + 1)})['run']
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize('kill_at', [1, 2, 4, 5, 7, 8, 14],
                         ids=lambda n: f'before {n}: {RENAMES[n - 1]}')
def test_kill_9_then_resume_gives_the_uninterrupted_folder(uninterrupted, tmp_path, kill_at):
    tmp, want = uninterrupted
    (tmp_path / 'cache').symlink_to(tmp / 'cache')  # the same sprites, drawn once
    out = tmp_path / 'run'
    killed = subprocess.run([str(c) for c in command(tmp_path, 'run', kill_at)], cwd=REPO_ROOT,
                            env=ENV, capture_output=True, text=True, timeout=limit(300))
    assert killed.returncode == -9, killed.stderr
    # before rename 2 (the run reading its data): a folder with its settings, .lock and an
    # empty samples/, and no checkpoint; before rename 1, no settings to resume with
    assert os.path.exists(out / 'metrics.json') == (kill_at > 1)
    if kill_at == 2:
        assert os.listdir(out / 'samples') == [] and not os.path.exists(out / 'checkpoints')
    again = command(tmp_path, 'run') if kill_at == 1 else [
        sys.executable, '-m', 'd2l_dcgan', 'train', '--resume', out, '--no-progress']
    r = subprocess.run([str(c) for c in again], cwd=REPO_ROOT, env=ENV, capture_output=True,
                       text=True, timeout=limit(300))
    assert r.returncode == 0, r.stderr
    if kill_at == 2:
        assert f'no checkpoint in {out / "checkpoints"}: starting from the beginning' in r.stdout
    epochs, files = folder(out)
    assert epochs == want[0]  # every epoch, with the same numbers
    assert files.keys() == want[1].keys()  # every sample grid; no temporary file
    assert files == want[1]  # bit for bit: the weights are the last epoch's
    assert not [p for p in files if is_temporary(os.path.basename(p))]
    # the killed process left a temporary file or folder: the next one said it removed it
    assert re.search(r'^removed .*\.tmp-.*, left by a process that was killed', r.stdout,
                     re.M), r.stdout
