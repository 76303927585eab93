"""Every command in README.md runs as written in a fresh clone: each code block's line, and each
inline `python ...`, `make ...`, `docker ...` span, is found here and run at a small size (the
Pokemon replaced by 32 drawn sprites in a temporary data cache, small nets, one epoch), or,
where it would install or train for hours, checked with `--help` or `make -n`. A command this
file does not know fails the test, so a new one cannot escape it."""
import itertools
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from timeouts import limit

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO_ROOT, 'README.md')
PREFIXES = ('python ', 'make', 'docker ', 'podman ', 'source ', 'D2L_DCGAN_SMALL=1 make')
# the container's interface (docs/container.md): its own tests run these
RUN = 'docker run --rm -v d2l-dcgan-cache:/cache -v "$PWD/runs:/d2l-dcgan/runs"'
CONTAINER = {'docker build -t d2l-dcgan .', f'{RUN} d2l-dcgan',
             f'{RUN} d2l-dcgan make train', f'{RUN} d2l-dcgan make test',
             RUN.replace('--rm', '--rm -p 8888:8888') + ' d2l-dcgan make notebook'}
# small sizes for the training commands; a flag given is replaced, these are added
SMALL = {'--n-G': '8', '--n-D': '8', '--batch-size': '16', '--swd-samples': '16',
         '--device': 'cpu'}
TIMEOUT = limit(300)
RUN_NUMBER = itertools.count()  # each run without --out-dir a folder of its own


def readme_commands(text=None):
    """(kind, command) in the README's order: kind 'sh' (a line of a sh block, or an inline
    span that starts like a command) or 'python' (a python block)."""
    if text is None:
        with open(README, encoding='utf-8') as f:
            text = f.read()
    found = []
    for lang, body in re.findall(r'^```(\w*)\n(.*?)^```', text, re.S | re.M):
        if lang == 'python':
            found.append(('python', body))
            continue
        assert lang == 'sh', f'a code block without a language, or not sh/python: {body[:60]}'
        found += [('sh', line.split('  #')[0].strip()) for line in body.splitlines()
                  if line.strip()]
    prose = re.sub(r'^```.*?^```', '', text, flags=re.S | re.M)
    spans = re.findall(r'`([^`\n]+)`', prose.replace('\n  ', ' ').replace('\n', ' '))
    found += [('sh', s.strip()) for s in spans if s.startswith(PREFIXES) and s != 'make']
    unique = []
    for item in found:
        if item not in unique:
            unique.append(item)
    return unique


def with_flags(argv, flags):
    """argv with each of `flags` ({flag: value}) set to that value, replacing one given."""
    out = list(argv)
    for flag, value in flags.items():
        while flag in out:
            i = out.index(flag)
            del out[i:i + 2]
        out += [flag, value]
    return out


def small_train(argv, tmp):
    """A train command (after the script or `-m d2l_dcgan train`) at a small size."""
    if '--help' in argv:
        return argv
    if '--resume' in argv:  # the run keeps its own settings; a resume refuses others
        return argv
    flags = dict(SMALL)
    if '--budget' in argv:
        flags['--budget'] = '32'
    elif '--num-epochs' not in argv or int(argv[argv.index('--num-epochs') + 1]) > 2:
        flags['--num-epochs'] = '1'
    if '--dataset' in argv and argv[argv.index('--dataset') + 1] == 'sprites':
        flags['--num-sprites'] = '32'
    if '--out-dir' not in argv:
        flags['--out-dir'] = str(tmp / 'runs' / f'default-{next(RUN_NUMBER)}')
    return with_flags(argv, flags) + ['--no-progress']


def small(argv, tmp):
    """`python ...` argv at a small size, its runs/ paths in `tmp`."""
    argv = [str(tmp / a) if a.startswith('runs/') else a for a in argv]
    script = argv[1:3] if argv[1] == '-m' else argv[1:2]
    rest = argv[1 + len(script):]
    if script == ['examples/train_pokemon.py']:
        rest = small_train(rest, tmp)
    elif script == ['-m', 'd2l_dcgan'] and rest[0] == 'train':
        rest = ['train'] + small_train(rest[1:], tmp)
    elif script == ['-m', 'd2l_dcgan'] and rest[0] == 'crosscheck':
        rest = with_flags(rest, {'--steps': '1', '--n-G': '8', '--n-D': '8',
                                 '--batch-size': '8', '--num-sprites': '16'})
    elif script == ['-m', 'd2l_dcgan'] and rest[0] in ('generate', 'evaluate'):
        rest = with_flags(rest, {'--device': 'cpu'})
    elif script == ['examples/gpu_check.py']:
        rest = with_flags(rest, {'--steps': '1', '--warmup': '0', '--batch-size': '2'})
    else:
        raise AssertionError(f'README command not known to tests/test_readme.py: {argv}')
    return [sys.executable, *script, *rest]


@pytest.fixture(scope='module')
def fresh(tmp_path_factory):
    """(tmp folder, environment): a data cache whose Pokemon are 32 drawn sprites, extracted as
    download_extract marks its own, so that nothing is downloaded."""
    from d2l_dcgan import make_sprites
    from d2l_dcgan.data import POKEMON_SHA1
    tmp = tmp_path_factory.mktemp('readme')
    cache = tmp / 'cache'
    make_sprites(str(cache / 'pokemon'), num_images=32)
    (cache / 'pokemon.extracted').write_text(POKEMON_SHA1)
    (tmp / 'runs').mkdir()
    env = {**os.environ, 'D2L_DCGAN_CACHE': str(cache), 'MPLBACKEND': 'Agg',
           'PYTHONPATH': os.pathsep.join(
               [REPO_ROOT] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else []))}
    return tmp, env


def make_dry_run(argv, venv):
    """What `make -n` would run for the README's make command, with the venv `venv`."""
    env_vars = [a for a in argv if '=' in a and not a.startswith('make')]
    make_args = [a for a in argv if a != 'make' and a not in env_vars]
    r = subprocess.run(['make', '-n', '-C', REPO_ROOT, *make_args, f'VENV={venv}', 'PYTHON=python3'],
                       env={**os.environ, **dict(a.split('=', 1) for a in env_vars)},
                       capture_output=True, text=True, timeout=limit(60))
    assert r.returncode == 0, r.stderr
    return r.stdout


def check_make(argv, tmp, env):
    """A make command: its dry run; demo and train also run, small, the command make would."""
    venv = tmp / 'venv'
    (venv / 'bin').mkdir(parents=True, exist_ok=True)
    extra = next((a.split('=')[1] for a in argv if a.startswith('EXTRA=')), None)
    if extra:  # a build of its own: what make would install, into a fresh venv
        out = make_dry_run(argv, tmp / f'venv-{extra}')
        assert f'-e ".[{extra},test]"' in out
        return
    (venv / 'bin' / '.installed-cpu').touch()  # a built venv: make runs, installs nothing
    out = make_dry_run(argv, venv)
    assert '-e ".[' not in out
    target = argv[argv.index('make') + 1] if argv[-1] != 'make' else ''
    expected = {'demo': 'examples/train_pokemon.py', 'train': 'examples/train_pokemon.py',
                'test': '-m pytest -q tests', 'notebook': 'jupyter notebook examples/dcgan.ipynb',
                'install': ''}
    assert target in expected, f'make target not known to tests/test_readme.py: {argv}'
    assert expected[target] in out
    if target in ('demo', 'train'):
        lines = out.replace('\\\n', ' ').splitlines()  # a recipe line continued with \\
        line = next(l for l in lines if l.startswith(f'{venv}/bin/python '))
        run(['python', *shlex.split(line)[1:]], tmp, env)


def run(argv, tmp, env):
    cmd = small(argv, tmp)
    r = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, f'{" ".join(argv)}\n(run as {cmd})\n{r.stdout[-2000:]}{r.stderr}'
    return r


def run_python_block(body, tmp, env):
    """A python block, its sizes made small (widths 8, batch 16, one epoch)."""
    small_body = body
    for name, value in (('batch_size', 16), ('n_G', 8), ('n_D', 8), ('num_epochs', 1)):
        small_body, n = re.subn(rf'\b{name}=\d+', f'{name}={value}', small_body)
        assert n, f'{name}= not in the README\'s python block; update tests/test_readme.py'
    r = subprocess.run([sys.executable, '-c', small_body], cwd=tmp, env=env,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, f'{body}\n{r.stdout[-2000:]}{r.stderr}'
    assert re.search(r'^loss_D \d+\.\d{3}, loss_G \d+\.\d{3}, ', r.stdout, re.M), r.stdout


def test_the_readme_commands_are_found():
    commands = readme_commands()
    sh = [c for kind, c in commands if kind == 'sh']
    for cmd in ('make demo', 'make test', 'source .venv/bin/activate',
                'python examples/train_pokemon.py --recipe improved --budget 240k',
                'python -m d2l_dcgan crosscheck', 'make train EXTRA=cu112'):
        assert cmd in sh
    assert CONTAINER <= set(sh)
    assert [kind for kind, _ in commands].count('python') == 1


def test_a_new_command_in_the_readme_is_found():
    text = 'Run `python examples/new.py --fast`.\n\n```sh\nmake demo  # first\n```\n'
    assert readme_commands(text) == [('sh', 'make demo'), ('sh', 'python examples/new.py --fast')]
    with pytest.raises(AssertionError, match='not known'):
        small(['python', 'examples/new.py', '--fast'], None)


def test_the_two_set_up_commands_come_first():
    sh = [c for kind, c in readme_commands() if kind == 'sh']
    assert sh[:2] == ['make demo', 'make test']


def check(kind, cmd, tmp, env):
    """Run or check one README command."""
    if kind == 'python':
        return run_python_block(cmd, tmp, env)
    if cmd.startswith(('docker ', 'podman ')):
        assert cmd.replace('podman ', 'docker ', 1) in CONTAINER, cmd
        return
    if cmd.startswith('source '):
        assert cmd == 'source .venv/bin/activate'  # make's venv, which has bin/activate:
        # make's own venv is .venv (the default VENV); a fresh one, as in a new clone
        assert f'-m venv {tmp}/new' in make_dry_run(['make', 'install'], tmp / 'new')
        with open(os.path.join(REPO_ROOT, 'Makefile')) as f:
            assert re.search(r'^VENV \?= \.venv$', f.read(), re.M)
        if sys.prefix != sys.base_prefix:  # as the tests' own venv has
            assert os.path.exists(os.path.join(sys.prefix, 'bin', 'activate'))
        return
    argv = shlex.split(cmd)
    if 'make' in argv[:2]:
        return check_make(argv, tmp, env)
    run(argv, tmp, env)


def test_every_readme_command_runs_as_written(fresh):
    """The commands on one run folder in the README's order, the others beside them."""
    tmp, env = fresh
    commands = readme_commands()
    chains = {}
    for kind, cmd in commands:  # a command naming runs/X follows the one that made runs/X
        folder = re.search(r'runs/[\w-]+', cmd) if kind == 'sh' else None
        chains.setdefault(folder[0] if folder else (kind, cmd), []).append((kind, cmd))
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(lambda chain: [check(k, c, tmp, env) for k, c in chain], chain)
                     for chain in chains.values()]:
            done.result()
