"""The command line keeps its word: --resume continues the run it names with all its settings,
no flag is dropped unseen, no command writes over a user's file, and every refusal is one line
naming the flag, exit 2, before any data is read where the flags alone decide."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from d2l_dcgan import cli
from d2l_dcgan.plot import GANAnimator
from test_cli import ENV, REPO_ROOT, assert_one_line_error
from timeouts import limit

TINY = ['--n-G', '8', '--n-D', '8', '--batch-size', '16', '--no-progress', '--device', 'cpu',
        '--swd-samples', '16', '--seed', '0']
MODULE = [sys.executable, '-m', 'd2l_dcgan']


def train(*argv):
    return cli.train_main([str(a) for a in argv])


def metrics(out):
    with open(os.path.join(out, 'metrics.json')) as f:
        return json.load(f)


def checkpoints(out):
    folder = os.path.join(out, 'checkpoints')
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def call(capfd, main, *argv):
    """(exit status, stdout, stderr) of an in-process command; argparse's exits included."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capfd.readouterr()
    return code, out, err


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """A folder A holding the images (A/small, 32 sprites) and a 2-epoch run A/run started from
    inside A with the relative --data-dir small and the recovery flags set."""
    from d2l_dcgan import make_sprites
    a = tmp_path_factory.mktemp('A')
    make_sprites(str(a / 'small'), num_images=32)
    r = subprocess.run([*MODULE, 'train', '--data-dir', 'small', '--out-dir', 'run',
                        '--num-epochs', '2', '--keep-checkpoints', '10', '--checkpoint-every', '1',
                        '--on-divergence', 'rollback', *TINY], cwd=a, env=ENV,
                       capture_output=True, text=True, timeout=limit(300))
    assert r.returncode == 0, r.stderr
    return a


@pytest.fixture
def run_copy(small, tmp_path):
    """A copy of the fixture's run (its data stays in A/small) for a test that changes it."""
    shutil.copytree(small / 'run', tmp_path / 'run')
    return tmp_path / 'run'


# ------------------------------------------------------------------------ work lost or changed

def test_generate_never_writes_over_its_params(small, capfd):
    params = small / 'run' / 'net_G.params'
    before = params.read_bytes()
    code, out, err = call(capfd, cli.generate_main, '--params', params, '--out', params,
                          '--device', 'cpu')
    assert_one_line_error(code, out, err, f'--out {params} is the file of --params')
    assert params.read_bytes() == before


@pytest.mark.parametrize('name', ['notes.txt', 'run/dcgan.png', 'run/samples/epoch_001.png'])
def test_generate_never_writes_over_a_file_that_is_no_png_or_a_runs(small, tmp_path, capfd,
                                                                     name):
    target = small / name if name.startswith('run/') else tmp_path / name
    if not target.exists():
        target.write_text('my notes\n')
    before = target.read_bytes()
    code, out, err = call(capfd, cli.generate_main, '--params', small / 'run' / 'net_G.params',
                          '--out', target, '--device', 'cpu')
    expected = 'is a file of the training run' if name.startswith('run/') else \
        'exists and is not a PNG image'
    assert_one_line_error(code, out, err, expected)
    assert target.read_bytes() == before


def test_generate_replaces_a_png_of_its_own(small, tmp_path, capfd):
    grid = tmp_path / 'grid.png'
    Image.new('RGB', (4, 4)).save(grid)
    code, out, err = call(capfd, cli.generate_main, '--params', small / 'run' / 'net_G.params',
                          '--out', grid, '--num-samples', '8', '--device', 'cpu')
    assert code == 0, err
    assert Image.open(grid).size == (8 * 64, 64)


def test_resume_keeps_the_recovery_settings(run_copy, capfd):
    assert len(checkpoints(run_copy)) == 4  # every step of 2 epochs of 2 steps
    figures = plt.get_fignums()
    code, out, err = call(capfd, cli.train_main, '--resume', run_copy, '--num-epochs', '3')
    assert code == 0, err
    assert plt.get_fignums() == figures  # the loss plot's figure is closed: runs in one process
    assert len(checkpoints(run_copy)) == 6  # --keep-checkpoints 10 kept: none pruned
    settings = metrics(run_copy)['settings']
    assert (settings['checkpoint_every'], settings['keep_checkpoints'],
            settings['on_divergence'], settings['device']) == (1, 10, 'rollback', 'cpu')
    assert [e['epoch'] for e in metrics(run_copy)['epochs']] == [1, 2, 3]


def test_resume_with_recovery_flags_given_applies_them(run_copy, capfd):
    code, out, err = call(capfd, cli.train_main, '--resume', run_copy, '--num-epochs', '3',
                          '--keep-checkpoints', '2', '--on-divergence', 'stop')
    assert code == 0, err
    assert len(checkpoints(run_copy)) == 2
    settings = metrics(run_copy)['settings']
    assert (settings['keep_checkpoints'], settings['on_divergence']) == (2, 'stop')


def test_resume_keeps_the_recipe_the_run_trained_with(small, tmp_path, capfd, monkeypatch):
    from d2l_dcgan.recipes import RECIPES, Recipe
    out = tmp_path / 'run'
    today = RECIPES['improved']
    older = Recipe(ema_halflife=256, lr_D=0.001, lr_G=0.001)
    monkeypatch.setitem(RECIPES, 'improved', older)  # the recipe as an older version defined it
    code, _, err = call(capfd, cli.train_main, '--data-dir', small / 'small', '--out-dir', out,
                        '--recipe', 'improved', '--num-epochs', '1', *TINY)
    assert code == 0, err
    monkeypatch.setitem(RECIPES, 'improved', today)
    code, out_text, err = call(capfd, cli.train_main, '--resume', out, '--num-epochs', '2')
    assert code == 0, err
    assert f'recipe: {older.describe()}\n' in out_text
    assert Recipe.from_json(metrics(out)['recipe']) == older
    assert [e['epoch'] for e in metrics(out)['epochs']] == [1, 2]


def test_resume_refuses_another_out_dir(small, tmp_path, capfd):
    other = tmp_path / 'other'
    code, out, err = call(capfd, cli.train_main, '--resume', small / 'run', '--out-dir', other,
                          '--num-epochs', '3')
    assert_one_line_error(code, out, err, f'--out-dir {other} is another folder')
    assert not other.exists()


@pytest.mark.parametrize('argv, expected', [
    (['--batch', '8'], 'unrecognized arguments: --batch 8'),
    (['--batch-size', '8'], '--batch-size is 16 there'),
    (['--batch-size', '256'], '--batch-size is 16 there'),  # the default, given: still refused
])
def test_resume_lets_no_flag_pass_unseen(small, capfd, argv, expected):
    before = (small / 'run' / 'metrics.json').read_bytes()
    code, out, err = call(capfd, cli.train_main, '--resume', small / 'run', '--num-epochs', '3',
                          *argv)
    assert_one_line_error(code, out, err, expected)
    assert (small / 'run' / 'metrics.json').read_bytes() == before


def _files(out):
    """Every file and folder of a run folder: its bytes (a folder: None) and mtime."""
    found = {}
    for root, dirs, names in os.walk(out):
        for name in dirs + names:
            path = os.path.join(root, name)
            found[path] = (Path(path).read_bytes() if os.path.isfile(path) else None,
                           os.stat(path).st_mtime_ns)
    return found


@pytest.mark.parametrize('argv', [[], ['--num-epochs', '2']])
def test_resume_of_a_finished_run_says_so_and_writes_nothing(small, capfd, argv):
    """A job that resumes until the command succeeds, killed after the run's last epoch."""
    before = _files(small / 'run')
    code, out, err = call(capfd, cli.train_main, '--resume', small / 'run', *argv)
    assert (code, err) == (0, '')
    assert out == (f'the run in {small / "run"} is complete: 2 epoch(s) done, as '
                   '--num-epochs 2 asks; nothing to train\n')
    assert _files(small / 'run') == before


def test_resume_to_fewer_epochs_than_done_is_refused(small, capfd):
    before = _files(small / 'run')
    code, out, err = call(capfd, cli.train_main, '--resume', small / 'run', '--num-epochs', '1')
    assert_one_line_error(code, out, err, 'has done 2 epoch(s): --num-epochs 1 is fewer; give 2 '
                                          'or more')
    assert _files(small / 'run') == before


def test_a_budget_buys_the_first_whole_epoch_at_or_past_it(small, tmp_path, capfd):
    run = tmp_path / 'run'
    code, out, err = call(capfd, cli.train_main, '--data-dir', small / 'small', '--out-dir', run,
                          '--budget', '40', *TINY)
    assert code == 0, err
    assert '\nbudget: 40 images: 2 epochs of 32 (64 images)\n' in out
    assert (metrics(run)['settings']['budget'], len(metrics(run)['epochs'])) == (40, 2)
    code, out, err = call(capfd, cli.train_main, '--resume', run, '--budget', '0.1k')
    assert code == 0, err
    assert '\nbudget: 100 images: 4 epochs of 32 (128 images)\n' in out
    assert [e['epoch'] for e in metrics(run)['epochs']] == [1, 2, 3, 4]
    before = _files(run)
    for argv, budget in ((['--budget', '128'], 128), ([], 100)):  # given, or the run's own
        code, out, err = call(capfd, cli.train_main, '--resume', run, *argv)
        assert (code, err) == (0, '')
        assert out == (f'the run in {run} is complete: 4 epoch(s) done, as --budget {budget} '
                       '(4 epoch(s) of its 32 images) asks; nothing to train\n')
    code, out, err = call(capfd, cli.train_main, '--resume', run, '--budget', '96')
    assert_one_line_error(code, out, err, 'has done 4 epoch(s): --budget 96 (3 epoch(s) of its 32 '
                          'images) is fewer; give more than 96 images')
    assert _files(run) == before
    code, out, err = call(capfd, cli.train_main, '--resume', run, '--num-epochs', '5')
    assert code == 0, err
    assert (metrics(run)['settings']['budget'], len(metrics(run)['epochs'])) == (None, 5)


# ------------------------------------------------------------------------ a run that continues

def test_a_run_with_a_relative_data_dir_resumes_from_elsewhere(small, run_copy, capfd):
    assert metrics(run_copy)['settings']['data_dir'] == str(small / 'small')  # saved absolute
    code, out, err = call(capfd, cli.train_main, '--resume', run_copy, '--num-epochs', '3')
    assert code == 0, err


def test_an_older_run_with_a_relative_data_dir_resumes(small, run_copy, capfd):
    m = metrics(run_copy)
    m['settings']['data_dir'] = 'small'  # as versions before this one saved it
    del m['images_fingerprint']
    (run_copy / 'metrics.json').write_text(json.dumps(m))
    code, out, err = call(capfd, cli.train_main, '--resume', run_copy, '--num-epochs', '3')
    assert code == 0, err
    code, out, err = call(capfd, cli.train_main, '--resume', run_copy, '--num-epochs', '4',
                          '--data-dir', small / 'small')
    assert code == 0, err


def test_a_moved_data_folder_can_be_given_anew(small, run_copy, tmp_path, capfd):
    moved = tmp_path / 'moved'
    shutil.copytree(small / 'small', moved)
    code, out, err = call(capfd, cli.train_main, '--resume', run_copy, '--num-epochs', '3',
                          '--data-dir', moved)
    assert code == 0, err
    assert metrics(run_copy)['settings']['data_dir'] == str(moved)
    os.remove(next(moved.glob('*/*.png')))  # now it holds other images
    code, out, err = call(capfd, cli.train_main, '--resume', run_copy, '--num-epochs', '4',
                          '--data-dir', moved)
    assert_one_line_error(code, out, err, f'--data-dir {moved} does not hold the images')


# ---------------------------------------------------------------------- tracebacks, wrong words

@pytest.mark.parametrize('devices, expected', [
    (',', "--device: expected auto, cpu, cpu:N, gpu, gpu:N or several such as gpu:0,gpu:1, "
          "got ','"),
    ('', "--device: expected auto, cpu, cpu:N, gpu, gpu:N or several such as gpu:0,gpu:1, "
         "got ''"),
    ('cpu:0,cpu:0', "--device: cpu:0 given twice in 'cpu:0,cpu:0'"),
    ('cpu:0,gpu:0', '--device: gpu:0: MXNet sees 0 GPU(s)'),
])
def test_devices_are_checked_before_the_data(tmp_path, capfd, devices, expected):
    if devices == 'cpu:0,gpu:0':
        from mxnet import context
        if context.num_gpus():
            pytest.skip('a GPU is visible here')
    code, out, err = call(capfd, cli.train_main, '--data-dir', tmp_path / 'missing',
                          '--out-dir', tmp_path / 'out', '--device', devices)
    err = '\n'.join(line for line in err.splitlines() if not line.startswith('devices:'))
    assert_one_line_error(code, '', err, expected)
    assert not (tmp_path / 'out').exists()


def test_a_run_of_the_older_devices_flag_resumes_on_its_devices(run_copy, capfd):
    """Before --device took several devices, --devices recorded them in the run's settings."""
    saved = metrics(run_copy)
    saved['settings'].update(device='auto', devices='cpu:0,cpu:1')
    with open(run_copy / 'metrics.json', 'w') as f:
        json.dump(saved, f)
    code, out, err = call(capfd, cli.train_main, '--resume', run_copy, '--num-epochs', '3')
    assert code == 0, err
    assert 'devices: cpu(0), cpu(1) (data parallel)' in out
    assert metrics(run_copy)['devices'] == ['cpu(0)', 'cpu(1)']


def test_a_batch_smaller_than_the_devices_is_refused_by_name(tmp_path, capfd):
    code, out, err = call(capfd, cli.train_main, '--data-dir', tmp_path / 'missing',
                          '--out-dir', tmp_path / 'out', '--device', 'cpu:0,cpu:1',
                          '--batch-size', '1')
    assert_one_line_error(code, out, err, '--batch-size 1 is smaller than the 2 devices of '
                                          '--device')


@pytest.mark.parametrize('main, argv, expected', [
    (cli.train_main, ['--swd-samples', '1'], "--swd-samples: must be 0 or >= 2, got '1'"),
    (cli.evaluate_main, ['--params', 'x', '--num-samples', '1'],
     "--num-samples: must be >= 2, got '1'"),
    (cli.train_main, ['--num-workers', '-1'], "--num-workers: must be >= 0, got '-1'"),
])
def test_numbers_a_command_cannot_use_are_refused(capfd, main, argv, expected):
    assert_one_line_error(*call(capfd, main, *argv), expected)


@pytest.fixture
def one_image(tmp_path):
    """An image folder that holds one 64x64 image."""
    (tmp_path / 'one' / 'a').mkdir(parents=True)
    Image.new('RGB', (64, 64)).save(tmp_path / 'one' / 'a' / 'x.png')
    return tmp_path / 'one'


def test_a_one_image_folder_is_refused_before_training(one_image, tmp_path, capfd):
    code, out, err = call(capfd, cli.train_main, '--data-dir', one_image,
                          '--out-dir', tmp_path / 'out', *TINY[:-4])
    assert_one_line_error(code, out, err, '--swd-samples 128: the data has 1 image')
    assert not (tmp_path / 'out').exists()  # nothing left behind


@pytest.mark.parametrize('cmd, prog', [
    ([sys.executable, 'examples/train_pokemon.py'], 'train_pokemon.py'),
    (MODULE + ['train'], 'python -m d2l_dcgan train')])
def test_a_log_gets_each_line_when_it_is_printed(one_image, tmp_path, cmd, prog):
    """Piped (a log file, `docker logs`), stdout's lines come as they are printed, so before an
    error that follows them on stderr: not all at the exit, as Python buffers a pipe."""
    env = {k: v for k, v in ENV.items() if k != 'PYTHONUNBUFFERED'}  # Python's default
    log = subprocess.run(
        cmd + ['--data-dir', str(one_image), '--out-dir', str(tmp_path / 'out'), *TINY[:-4]],
        cwd=REPO_ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=limit(120)).stdout
    assert [line.split(':')[0] for line in log.splitlines()] == [
        'device', 'recipe', 'data', prog], log


def _interrupt(cmd, out, wait_for, cwd=REPO_ROOT):
    """Run cmd, send SIGINT once `wait_for(out)` holds; (exit status, stderr)."""
    proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + limit(240)
    while not wait_for(out) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=limit(120))
    return proc.returncode, stderr


def test_the_resume_hint_names_the_command_that_ran(small, tmp_path):
    out = tmp_path / 'run'
    code, err = _interrupt([*MODULE, 'train', '--data-dir', small / 'small', '--out-dir', out,
                            '--num-epochs', '1000', *TINY], out,
                           lambda out: os.path.exists(out / 'samples' / 'epoch_001.png'))
    assert code == 130 and 'Traceback' not in err, err
    assert f'resume with: {"python -m d2l_dcgan train"} --resume {out}' in err


def test_no_resume_hint_without_a_checkpoint(small, tmp_path):
    out = tmp_path / 'run'
    code, err = _interrupt([*MODULE, 'train', '--data-dir', small / 'small', '--out-dir', out,
                            '--num-epochs', '1000', *TINY], out,
                           lambda out: os.path.exists(out / 'metrics.json'))
    assert code == 130 and 'Traceback' not in err, err
    if not checkpoints(out):  # stopped before the first epoch's end, as meant
        assert '--resume' not in err and 'nothing to resume' in err


def test_a_ctrl_c_python_drops_in_a_del_still_stops_the_run(small, tmp_path, capfd,
                                                            monkeypatch):
    """Python prints and drops a KeyboardInterrupt raised inside a __del__ (MXNet frees its
    arrays in them); one came there in CI, and the run trained on. It stops all the same."""
    from d2l_dcgan import run

    class InterruptedWhileFreed:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)

    start = run.Run.start.__func__

    def start_then_drop_an_interrupt(cls, *args, **kwargs):
        started = start(cls, *args, **kwargs)
        InterruptedWhileFreed()  # freed at once, before training installs its own handler
        return started
    monkeypatch.setattr(run.Run, 'start', classmethod(start_then_drop_an_interrupt))
    out, handler, hook = tmp_path / 'run', signal.getsignal(signal.SIGINT), sys.unraisablehook
    figures = plt.get_fignums()
    code, _, err = call(capfd, cli.train_main, '--data-dir', small / 'small', '--out-dir', out,
                        '--num-epochs', '2', *TINY)
    assert code == 130 and 'Traceback' not in err, err
    assert err.strip().endswith('nothing to resume') and checkpoints(out) == []
    assert plt.get_fignums() == figures  # the loss plot's figure is closed
    assert signal.getsignal(signal.SIGINT) is handler and sys.unraisablehook is hook  # put back


def test_a_command_puts_back_the_hooks_when_the_sigint_handler_before_was_set_from_c(
        monkeypatch):
    """signal.signal returns None for a handler installed from C (an embedding program's): the
    command still leaves, with Python's own handler and the unraisable hook put back."""
    from d2l_dcgan.interrupts import KeyboardInterrupts
    set_handler, hook, before = signal.signal, sys.unraisablehook, signal.getsignal(signal.SIGINT)
    calls = []

    def from_c_first(sig, handler):
        calls.append(handler)
        previous = set_handler(sig, handler)
        return None if len(calls) == 1 else previous
    monkeypatch.setattr(signal, 'signal', from_c_first)
    with KeyboardInterrupts():
        assert sys.unraisablehook is not hook
    assert calls[-1] is signal.default_int_handler and sys.unraisablehook is hook
    set_handler(signal.SIGINT, before)


def test_ctrl_c_while_importing_is_one_line():
    def mxnet_loading(pid):
        try:
            with open(f'/proc/{pid}/maps') as f:
                return 'libmxnet' in f.read()
        except OSError:
            return False
    proc = subprocess.Popen([*MODULE, 'train', '--help'], cwd=REPO_ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + limit(60)
    while not mxnet_loading(proc.pid) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=limit(60))
    if proc.returncode == 0:
        pytest.skip('the import finished before the signal came')
    assert proc.returncode == 130 and err.strip() == 'interrupted', err


def test_a_file_name_with_a_newline_stays_on_one_line(tmp_path, capfd):
    (tmp_path / 'data' / 'a').mkdir(parents=True)
    (tmp_path / 'data' / 'a' / 'bad\nname.png').write_bytes(b'not a png')
    code, out, err = call(capfd, cli.train_main, '--data-dir', tmp_path / 'data',
                          '--out-dir', tmp_path / 'out', *TINY)
    assert_one_line_error(code, out, err, 'bad\\nname.png')


def test_a_skipped_file_name_with_a_newline_stays_on_one_line(tmp_path, capfd):
    from d2l_dcgan import read_images
    (tmp_path / 'data' / 'a').mkdir(parents=True)
    (tmp_path / 'data' / 'a' / 'bad\nname.png').write_bytes(b'not a png')
    Image.new('RGB', (64, 64)).save(tmp_path / 'data' / 'a' / 'good.png')
    read_images(str(tmp_path / 'data'), skip_bad_images=True)
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith('skipping ') and 'bad\\nname.png' in lines[0]


def test_params_that_is_a_folder(small, capfd):
    code, out, err = call(capfd, cli.generate_main, '--params', small / 'run', '--device', 'cpu')
    assert_one_line_error(code, out, err, f'--params {small / "run"} is a folder; give a '
                                          f'generator\'s file, such as {small / "run"}/net_G.params')


@pytest.mark.parametrize('command', ['evaluate', 'crosscheck'])
def test_help_says_no_metrics_json_where_none_is_written(capfd, command):
    with pytest.raises(SystemExit):
        cli.main([command, '--help'])
    assert 'metrics.json' not in capfd.readouterr().out


def test_resume_compares_recipe_flags_with_the_recipe_that_ran(small, tmp_path, capfd):
    out = tmp_path / 'run'
    code, _, err = call(capfd, cli.train_main, '--data-dir', small / 'small', '--out-dir', out,
                        '--num-epochs', '1', '--recipe', 'improved', *TINY)
    assert code == 0, err
    code, out_, err = call(capfd, cli.train_main, '--resume', out, '--num-epochs', '2',
                           '--ema-halflife', '0')
    assert_one_line_error(code, out_, err, '--ema-halflife is 10000 there')
    code, _, err = call(capfd, cli.train_main, '--resume', out, '--num-epochs', '2',
                        '--ema-halflife', '10000')
    assert code == 0, err


def test_a_single_epoch_draws_its_loss_as_a_point(tmp_path):
    animator = GANAnimator(1, path=str(tmp_path / 'dcgan.png'))
    animator.add(1, 0.5, 3.0)
    assert [line.get_marker() for line in animator.axes[0].lines] == ['o', 'o']
    animator.add(2, 0.4, 3.1)
    assert [line.get_marker() for line in animator.axes[0].lines] == ['None', 'None']
    animator.close()
