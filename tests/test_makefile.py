"""`make` finds a Python: 3.8-3.11 (the stack MXNet 1.9.1 was released for) first, then 3.14,
3.13 or 3.12, then a newer one with a warning; with none it stops before creating anything.

Each test puts stub interpreters on an otherwise empty PATH: a stub answers the version query
with its version (or fails, like a broken shim) and logs every call; asked to create the venv
it fails, so make stops right after choosing, with the choice in the log."""
import os
import shutil
import subprocess

import pytest
from timeouts import limit

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE = shutil.which('make')
pytestmark = pytest.mark.skipif(MAKE is None, reason='no make on PATH')

STUB = """#!/bin/sh
echo "$0 $*" >> {log}
case "$1" in
    -c) {answer} ;;
    *) exit 1 ;;
esac
"""


def run_make(tmp_path, pythons, *make_args):
    """`make test` with only `pythons` ({name: version or None for one that does not run}) on
    PATH; (CompletedProcess, calls the stubs logged, venv path)."""
    bin_dir, log, venv = tmp_path / 'bin', tmp_path / 'calls.log', tmp_path / 'venv'
    bin_dir.mkdir()
    for name, version in pythons.items():
        answer = f'echo {version}' if version else 'exit 1'
        (bin_dir / name).write_text(STUB.format(log=log, answer=answer))
        (bin_dir / name).chmod(0o755)
    r = subprocess.run([MAKE, '-C', REPO_ROOT, 'test', f'VENV={venv}', *make_args],
                       env={'PATH': str(bin_dir), 'HOME': str(tmp_path)},
                       capture_output=True, text=True, timeout=limit(60))
    calls = log.read_text().splitlines() if log.exists() else []
    return r, [c.replace(str(bin_dir) + '/', '') for c in calls], venv


def venv_made_with(calls, venv):
    return [c.split()[0] for c in calls if c.endswith(f'-m venv {venv}')]


def test_picks_the_newest_of_3_8_to_3_11(tmp_path):
    r, calls, venv = run_make(tmp_path, {'python3.9': '3.9', 'python3.11': '3.11',
                                         'python3.12': '3.12', 'python3': '3.12'})
    assert r.returncode != 0  # the stub cannot make a venv
    assert venv_made_with(calls, venv) == ['python3.11']


def test_takes_python3_when_it_is_3_8_to_3_11(tmp_path):
    r, calls, venv = run_make(tmp_path, {'python3': '3.10', 'python3.12': '3.12'})
    assert venv_made_with(calls, venv) == ['python3']


def test_skips_an_interpreter_that_does_not_run(tmp_path):
    r, calls, venv = run_make(tmp_path, {'python3.11': None, 'python3.8': '3.8'})
    assert venv_made_with(calls, venv) == ['python3.8']


def test_explicit_python_wins(tmp_path):
    other = tmp_path / 'elsewhere'
    other.mkdir()
    (other / 'mypython').write_text(STUB.format(log=tmp_path / 'calls.log', answer='echo 3.11'))
    (other / 'mypython').chmod(0o755)
    r, calls, venv = run_make(tmp_path, {'python3.11': '3.11'}, f'PYTHON={other}/mypython')
    assert venv_made_with(calls, venv) == [f'{other}/mypython']


def test_without_3_8_to_3_11_takes_the_newest_of_3_12_and_3_13(tmp_path):
    r, calls, venv = run_make(tmp_path, {'python3.12': '3.12', 'python3.13': '3.13',
                                         'python3': '3.12'})
    assert venv_made_with(calls, venv) == ['python3.13']


def test_debian_13_python3_alone_is_taken(tmp_path):  # python3 is 3.13, no python3.11 package
    r, calls, venv = run_make(tmp_path, {'python3': '3.13', 'python3.11': None})
    assert venv_made_with(calls, venv) == ['python3']


def test_debian_testing_python3_14_is_taken_without_a_warning(tmp_path):  # CI tests it
    r, calls, venv = run_make(tmp_path, {'python3': '3.14', 'python3.13': None})
    assert venv_made_with(calls, venv) == ['python3']
    assert 'warning' not in r.stderr


def test_a_newer_python_is_tried_with_a_warning(tmp_path):
    r, calls, venv = run_make(tmp_path, {'python3': '3.15', 'python3.7': '3.7'})
    assert venv_made_with(calls, venv) == ['python3']
    assert ('warning: python3 is Python 3.15, newer than any d2l_dcgan was tested on (3.8-3.14)'
            in r.stderr)


@pytest.mark.parametrize('pythons, found', [
    ({'python3': '3.7', 'python3.7': '3.7', 'python': None},
     'found python3.7 (3.7), python3 (3.7), python (does not run) on PATH'),
    ({}, 'found none on PATH'),
], ids=['only 3.7', 'none'])
def test_no_usable_python_stops_with_one_line(tmp_path, pythons, found):
    r, calls, venv = run_make(tmp_path, pythons)
    assert r.returncode != 0
    assert not venv.exists() and venv_made_with(calls, venv) == []
    lines = [l for l in r.stderr.splitlines() if not l.startswith('make')]
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith('no usable Python: ' + found)
    for words in ('d2l_dcgan needs Python 3.8-3.14', 'apt install python3 python3-venv',
                  'pyenv install 3.13', 'make PYTHON=/path/to/python3'):
        assert words in line


def dry_run(tmp_path, target, *make_args, installed=None, stale=False):
    """What `make -n TARGET` would run with a venv that `installed` (an extra, or None) built;
    `stale`: its marker is older than setup.py, as after a pull that changed it."""
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    if installed:
        marker = venv / 'bin' / f'.installed-{installed}'
        marker.touch()
        if stale:
            os.utime(marker, (0, 0))
    r = subprocess.run([MAKE, '-n', '-C', REPO_ROOT, target, f'VENV={venv}', *make_args],
                       capture_output=True, text=True, timeout=limit(60))
    assert r.returncode == 0, r.stderr
    return r.stdout


def installs(commands):
    """The extras `commands` install (`-e ".[cu112,test]"` -> ['cu112'])."""
    return [c.split('-e ".[')[1].split(',')[0] for c in commands.splitlines() if '-e ".[' in c]


@pytest.mark.parametrize('target', ['test', 'notebook', 'demo', 'train', 'install'])
def test_a_gpu_build_stays_a_gpu_build(tmp_path, target):
    out = dry_run(tmp_path, target, installed='cu112')
    assert installs(out) == [] and 'uninstall' not in out
    if target != 'install':
        assert f'{tmp_path}/venv/bin/' in out  # it runs, with the venv as it is


def test_a_stale_gpu_build_is_reinstalled_as_a_gpu_build(tmp_path):
    out = dry_run(tmp_path, 'test', installed='cu112', stale=True)
    assert installs(out) == ['cu112', 'cu112']  # pip and uv branches of the recipe
    assert 'pip uninstall --quiet --yes mxnet ' in out  # the CPU build's package, not its own


def test_a_fresh_venv_is_the_cpu_build(tmp_path):
    out = dry_run(tmp_path, 'test')
    assert installs(out) == ['cpu', 'cpu']
    assert 'pip uninstall --quiet --yes mxnet-cu112 ' in out


def test_switching_the_build_removes_the_other_mxnet(tmp_path):
    out = dry_run(tmp_path, 'test', 'EXTRA=cpu', installed='cu112')
    assert installs(out) == ['cpu', 'cpu']
    assert 'pip uninstall --quiet --yes mxnet-cu112 ' in out
    assert out.index('rm -f') < out.index('uninstall') < out.index('-e ".[cpu')
