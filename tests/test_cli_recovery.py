"""The command line under faults: Ctrl-C, kill, resume, a second run, a full disk; and evaluate."""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import mxnet as mx
import pytest

from d2l_dcgan import DCGANError, cli
from d2l_dcgan import checkpoint as ckpt
from d2l_dcgan.runfolder import RunFolder, RunLock
from d2l_dcgan.fileio import atomic_write, is_temporary
from test_cli import ENV, REPO_ROOT, TRAIN, run, run_all
from timeouts import limit

TINY = ['--n-G', '8', '--n-D', '8', '--batch-size', '16', '--no-progress', '--device', 'cpu',
        '--swd-samples', '16']


def sprites_cmd(tmp, name, *args):
    return TRAIN + ['--dataset', 'sprites', '--num-sprites', '32', '--seed', '3',
                    '--cache-dir', tmp / 'cache', '--out-dir', tmp / name, *TINY, *args]


def epochs_of(out):
    with open(os.path.join(out, 'metrics.json')) as f:
        return json.load(f)['epochs']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Two epochs straight, and one epoch then `--resume --num-epochs 2`."""
    tmp = tmp_path_factory.mktemp('runs')
    first = run_all({'straight': sprites_cmd(tmp, 'straight', '--num-epochs', '2'),
                     'halves': sprites_cmd(tmp, 'halves', '--num-epochs', '1')})
    resumed = run(TRAIN + ['--resume', tmp / 'halves', '--num-epochs', '2', '--no-progress'])
    return tmp, first, resumed


@pytest.mark.numerics  # exact on every instruction set, as on every CPU
def test_resume_continues_to_the_same_numbers(runs):
    tmp, first, resumed = runs
    assert first['straight'].returncode == 0, first['straight'].stderr
    assert resumed.returncode == 0, resumed.stderr
    assert 'resuming from' in resumed.stdout
    straight, halves = epochs_of(tmp / 'straight'), epochs_of(tmp / 'halves')
    assert [e['epoch'] for e in halves] == [1, 2]  # appended to the same metrics.json
    key = lambda e: (e['loss_D'], e['loss_G'], e['swd'])  # noqa: E731
    assert [key(e) for e in halves] == [key(e) for e in straight]
    a = mx.nd.load(str(tmp / 'straight' / 'net_G.params'))
    b = mx.nd.load(str(tmp / 'halves' / 'net_G.params'))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).asnumpy().all() for k in a)


def test_resume_refuses_to_change_the_runs_settings(runs, capfd):
    tmp, _, _ = runs
    assert cli.train_main(['--resume', str(tmp / 'straight'), '--lr', '0.1']) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and '--lr is 0.005 there' in err[0]


def test_resume_of_a_folder_that_is_no_run(tmp_path, capfd):
    assert cli.train_main(['--resume', str(tmp_path)]) == 2
    assert 'no readable metrics.json' in capfd.readouterr().err


def test_resume_of_a_run_stopped_before_it_recorded_its_settings(tmp_path, capfd):
    """The folder a run killed in its first instant leaves: its lock and an empty samples/."""
    with RunFolder(str(tmp_path / 'run')):
        pass
    assert sorted(os.listdir(tmp_path / 'run')) == ['.lock', 'samples']
    assert cli.train_main(['--resume', str(tmp_path / 'run')]) == 2
    err = capfd.readouterr().err
    assert 'its run was stopped before it recorded its settings in metrics.json' in err


def _start(cmd):
    return subprocess.Popen([str(c) for c in cmd], cwd=REPO_ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_first_epoch(proc, out, timeout=limit(240)):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if epochs_of(out):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail('no epoch finished in time')


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_after_the_step_with_a_checkpoint(tmp_path, signum):
    out = tmp_path / 'run'
    proc = _start(sprites_cmd(tmp_path, 'run', '--num-epochs', '1000'))
    _wait_for_first_epoch(proc, out)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=limit(120))
    assert proc.returncode == 128 + signum, stderr
    assert 'Traceback' not in stderr
    assert f'resume with: python examples/train_pokemon.py --resume {out}' in stderr
    path, state = ckpt.newest_valid_checkpoint(str(out / 'checkpoints'))
    assert path is not None and state['epoch'] >= 1
    assert not [f for f in os.listdir(out / 'checkpoints') if is_temporary(f)]
    # and the run goes on from there
    done = len(state['history'])
    r = run(TRAIN + ['--resume', out, '--num-epochs', str(done + 1), '--no-progress'])
    assert r.returncode == 0, r.stderr
    assert [e['epoch'] for e in epochs_of(out)] == list(range(1, done + 2))


def test_a_second_run_into_the_same_out_dir_is_refused(tmp_path, capfd):
    out = tmp_path / 'run'
    out.mkdir()
    with RunLock(str(out)):
        code = cli.train_main(['--dataset', 'sprites', '--num-sprites', '8', '--num-epochs',
                               '1', '--cache-dir', str(tmp_path / 'cache'), '--out-dir',
                               str(out)])
    assert code == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f'another run (pid {os.getpid()})' in err[0]
    assert not os.path.exists(out / 'metrics.json')


def test_a_full_disk_keeps_the_previous_file(tmp_path):
    path = tmp_path / 'metrics.json'
    path.write_text('{"good": true}')

    def fill_the_disk(tmp):
        with open(tmp, 'w') as f:
            f.write('{"half')
        raise OSError(errno.ENOSPC, 'No space left on device')

    with pytest.raises(DCGANError, match='No space left on device.*previous version'):
        atomic_write(str(path), fill_the_disk)
    assert path.read_text() == '{"good": true}'
    assert os.listdir(tmp_path) == ['metrics.json']


def test_evaluate_prints_the_swd_of_a_trained_generator(runs):
    tmp, _, _ = runs
    r = run([sys.executable, '-m', 'd2l_dcgan', 'evaluate', '--params', tmp / 'straight' / 'net_G.params',
             '--dataset', 'sprites', '--num-sprites', '32', '--cache-dir', tmp / 'cache',
             '--num-samples', '32', '--device', 'cpu'])
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith('SWD x1e3 to the data (32 generated vs 32 real images')
    assert '64px' in line and '32px' in line and '16px' in line and 'mean' in line


def test_evaluate_of_something_that_is_no_generator(runs, capfd):
    tmp, _, _ = runs
    assert cli.evaluate_main(['--params', str(tmp / 'straight' / 'net_D.params'),
                              '--dataset', 'sprites', '--cache-dir', str(tmp / 'cache')]) == 2
    assert 'is not a generator' in capfd.readouterr().err


def test_a_new_run_into_a_used_out_dir_is_refused(runs, capfd):
    """It would mix its checkpoints with the old run's, and pruning would delete its own."""
    tmp, _, _ = runs
    before = sorted(os.listdir(tmp / 'straight' / 'checkpoints'))
    code = cli.train_main(['--dataset', 'sprites', '--num-sprites', '32', '--num-epochs', '1',
                           '--cache-dir', str(tmp / 'cache'), '--out-dir', str(tmp / 'straight')])
    assert code == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'holds a run already (ckpt-e0002-s000002)' in err[0]
    assert f'--resume {tmp / "straight"}' in err[0]
    assert sorted(os.listdir(tmp / 'straight' / 'checkpoints')) == before
